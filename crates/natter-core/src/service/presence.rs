//! Presence: this node's devices in the route table, and `presence` frames to friends when a user
//! comes online (first device anywhere) or goes offline (last device anywhere).
//!
//! The gateway calls [`PresenceService::connected`] and [`PresenceService::disconnected`] for each
//! WebSocket; [`PresenceService::run_maintenance`] refreshes this node's routes and heartbeat every
//! TTL/3 and sweeps nodes that died (their users go offline for their friends). The route table
//! decides transitions atomically, so whichever node reports one announces it, exactly once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use natter_proto::ServerFrame;
use parking_lot::Mutex;

use crate::api::FriendsApi;
use crate::ids::{SessionId, UserId};
use crate::notify::Notifier;
use crate::presence::{NodeId, Route, RouteTable};

/// Failed route removals kept for a retry (a long outage leaves the rest to the TTL).
const MAX_UNREMOVED: usize = 100_000;
/// Presence announcements of one maintenance round made at once (each a friend lookup and a
/// publish).
const ANNOUNCE_CONCURRENCY: usize = 16;

/// Runs where the sockets are (the gateway role): it needs the route table, a user's friends (from
/// the chat services, in this process or over gRPC) and the bus, never the store.
pub struct PresenceService {
    routes: Arc<dyn RouteTable>,
    friends: Arc<dyn FriendsApi>,
    notifier: Notifier,
    node: NodeId,
    /// This node's devices (device → user), re-asserted by [`PresenceService::refresh`].
    local: Mutex<HashMap<String, UserId>>,
    /// Connects and disconnects hold it shared, a refresh exclusively: a refresh that read a
    /// device just before its disconnect must not write its route back after the disconnect
    /// removed it (a ghost route, online with nobody to take it away but the TTL).
    gate: tokio::sync::RwLock<()>,
    /// Routes whose removal failed (the table was unreachable), retried by the next refresh.
    unremoved: Mutex<Vec<Route>>,
    /// How often routes are refreshed and dead nodes swept: a third of the route TTL.
    interval: Duration,
}

impl PresenceService {
    /// Routes of this node live `route_ttl` past their last refresh.
    pub fn new(
        routes: Arc<dyn RouteTable>,
        friends: Arc<dyn FriendsApi>,
        notifier: Notifier,
        node: NodeId,
        route_ttl: Duration,
    ) -> Self {
        let interval = (route_ttl / 3).max(Duration::from_millis(100));
        Self {
            routes,
            friends,
            notifier,
            node,
            local: Mutex::default(),
            gate: tokio::sync::RwLock::new(()),
            unremoved: Mutex::default(),
            interval,
        }
    }

    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// The device id of a socket: its session and the gateway's registration number.
    pub fn device(session: &SessionId, socket: u64) -> String {
        format!("{}:{socket}", session.0)
    }

    /// A socket of `user` opened on this node; announces `online` if it is their first anywhere.
    pub async fn connected(&self, user: &UserId, device: &str) {
        let added = {
            let _shared = self.gate.read().await;
            self.local.lock().insert(device.to_owned(), user.clone());
            self.routes.connect(&self.route(user, device)).await
        };
        match added {
            Ok(true) => self.announce(user, true).await,
            Ok(false) => {}
            // The next refresh adds the route (and announces the user if it is their first).
            Err(error) => tracing::warn!(%error, "could not add a route"),
        }
    }

    /// A socket closed; announces `offline` if it was the user's last anywhere.
    pub async fn disconnected(&self, user: &UserId, device: &str) {
        let removed = {
            let _shared = self.gate.read().await;
            self.local.lock().remove(device);
            self.routes.disconnect(&self.route(user, device)).await
        };
        match removed {
            Ok(true) => self.announce(user, false).await,
            Ok(false) => {}
            // Retried by the next refresh (and the route expires with the TTL anyway).
            Err(error) => {
                tracing::warn!(%error, "could not remove a route; retrying with the next refresh");
                let mut unremoved = self.unremoved.lock();
                // Past this many the routes are left to expire with the TTL.
                if unremoved.len() < MAX_UNREMOVED {
                    unremoved.push(self.route(user, device));
                }
            }
        }
    }

    /// Re-asserts this node's heartbeat and routes for another TTL. Returns the transitions to
    /// announce: users whose routes had gone (this node stalled past the TTL and was swept, or
    /// Redis lost its data) are online again; routes whose removal failed earlier and is done now
    /// may have taken their users offline.
    async fn refresh(&self) -> Vec<(UserId, bool)> {
        let mut gone = Vec::new();
        let refreshed = {
            let _exclusive = self.gate.write().await;
            let mut unremoved = std::mem::take(&mut *self.unremoved.lock()).into_iter();
            while let Some(route) = unremoved.next() {
                match self.routes.disconnect(&route).await {
                    // Also when the route was gone already: the call that timed out may have
                    // removed it, transition and all, with nobody told. `announce` checks the
                    // user is offline now.
                    Ok(_) => gone.push(route.user),
                    // Still unreachable: keep the rest for later rather than wait on each.
                    Err(_) => {
                        let mut kept = self.unremoved.lock();
                        kept.push(route);
                        kept.extend(unremoved);
                        break;
                    }
                }
            }
            let routes: Vec<Route> = self.local.lock().iter().map(|(device, user)| self.route(user, device)).collect();
            self.routes.refresh(&self.node, &routes).await
        };
        gone.sort();
        gone.dedup();
        let mut transitions: Vec<(UserId, bool)> = gone.into_iter().map(|user| (user, false)).collect();
        match refreshed {
            Ok(back) => transitions.extend(back.into_iter().map(|user| (user, true))),
            Err(error) => tracing::warn!(%error, "could not refresh this node's routes"),
        }
        transitions
    }

    /// Claims nodes that stopped refreshing; returns their users that went offline (those with
    /// no device elsewhere), to announce.
    async fn sweep(&self) -> Vec<UserId> {
        match self.routes.sweep().await {
            Ok(gone) => {
                if !gone.is_empty() {
                    tracing::info!(users = gone.len(), "swept the routes of a dead node");
                }
                gone
            }
            Err(error) => {
                tracing::warn!(%error, "could not sweep dead nodes");
                Vec::new()
            }
        }
    }

    /// Refreshes and sweeps every TTL/3, forever (spawned once by the composition root).
    ///
    /// The transitions a round finds are announced by a task of their own: announcing takes a
    /// friend lookup and a publish per user, and after Redis lost its data (a restart) every
    /// user of the node is "back" at once. Announced here, they held the next refresh past the
    /// route TTL: the node's heartbeat expired, another node swept its routes (no more pushes
    /// reached its sockets), its next refresh found every user back again, and so on, round
    /// after round, for as long as the announcements took longer than the TTL.
    pub async fn run_maintenance(self: Arc<Self>) {
        let (announcements, mut pending) = tokio::sync::mpsc::unbounded_channel::<Vec<(UserId, bool)>>();
        let announcer = self.clone();
        tokio::spawn(async move {
            use futures_util::StreamExt;
            while let Some(transitions) = pending.recv().await {
                futures_util::stream::iter(transitions)
                    .for_each_concurrent(ANNOUNCE_CONCURRENCY, |(user, online)| {
                        let announcer = &announcer;
                        async move { announcer.announce(&user, online).await }
                    })
                    .await;
            }
        });
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let mut transitions = self.refresh().await;
            transitions.extend(self.sweep().await.into_iter().map(|user| (user, false)));
            if !transitions.is_empty() {
                let _ = announcements.send(transitions);
            }
        }
    }

    /// Whether each of `users` has a device connected anywhere.
    pub async fn online(&self, users: &[UserId]) -> Vec<bool> {
        online_flags(self.routes.as_ref(), users).await
    }

    fn route(&self, user: &UserId, device: &str) -> Route {
        Route { user: user.clone(), node: self.node.clone(), device: device.to_owned() }
    }

    /// Tells `user`'s friends. Two transitions of one user on two nodes (offline on one, then
    /// online on another) are announced independently; the friend lookup takes a while, so the
    /// state is read again just before publishing and a transition already overtaken is not
    /// sent: the later one, whose node publishes it, is the state friends end up with.
    async fn announce(&self, user: &UserId, online: bool) {
        let friends = self.friends.friends(user).await;
        // Unreadable now: announce what the table said a moment ago.
        if let Ok(now) = self.routes.online(std::slice::from_ref(user)).await
            && now.first() != Some(&online)
        {
            return;
        }
        match friends {
            Ok(friends) => {
                let recipients = friends.into_iter().map(|f| f.user.id).collect();
                let frame = ServerFrame::Presence { user_id: user.0.clone(), online };
                self.notifier.publish(recipients, &frame).await;
            }
            Err(error) => tracing::warn!(%error, "could not announce presence"),
        }
    }
}

/// Online flags from `routes`; all offline (logged) when the table cannot be read.
pub(crate) async fn online_flags(routes: &dyn RouteTable, users: &[UserId]) -> Vec<bool> {
    match routes.online(users).await {
        Ok(flags) => flags,
        Err(error) => {
            tracing::warn!(%error, "route table unavailable; users shown offline");
            vec![false; users.len()]
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use futures_util::stream::BoxStream;

    use super::*;
    use crate::bus::{Bus, BusError, Event};
    use crate::error::DomainResult;
    use crate::ids::FriendRequestId;
    use crate::model::{ConversationSummary, Friend, User};
    use crate::presence::PresenceError;
    use crate::service::friends::FriendRequestDetail;
    use crate::store::RequestDirection;

    /// A table that has lost every route before each refresh, as Redis does when it restarts
    /// without persistence: every refresh finds all of the node's users back.
    #[derive(Default)]
    struct Forgetful {
        refreshes: AtomicUsize,
    }

    #[async_trait]
    impl RouteTable for Forgetful {
        async fn connect(&self, _: &Route) -> Result<bool, PresenceError> {
            Ok(true)
        }
        async fn disconnect(&self, _: &Route) -> Result<bool, PresenceError> {
            Ok(false)
        }
        async fn refresh(&self, _: &NodeId, routes: &[Route]) -> Result<Vec<UserId>, PresenceError> {
            self.refreshes.fetch_add(1, Ordering::SeqCst);
            Ok(routes.iter().map(|route| route.user.clone()).collect())
        }
        async fn online(&self, users: &[UserId]) -> Result<Vec<bool>, PresenceError> {
            Ok(vec![true; users.len()])
        }
        async fn nodes_of(&self, _: &[UserId]) -> Result<Vec<(NodeId, Vec<UserId>)>, PresenceError> {
            Ok(Vec::new())
        }
        async fn sweep(&self) -> Result<Vec<UserId>, PresenceError> {
            Ok(Vec::new())
        }
    }

    /// A friend lookup takes 200 ms (a gRPC call to a busy chat node).
    struct SlowFriends;

    #[async_trait]
    impl FriendsApi for SlowFriends {
        async fn friends(&self, _: &UserId) -> DomainResult<Vec<Friend>> {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(Vec::new())
        }
        async fn send_request(&self, _: &UserId, _: &UserId, _: Option<&str>) -> DomainResult<FriendRequestDetail> {
            unimplemented!("not in this test")
        }
        async fn requests(&self, _: &UserId, _: RequestDirection) -> DomainResult<Vec<FriendRequestDetail>> {
            unimplemented!("not in this test")
        }
        async fn accept(
            &self,
            _: &UserId,
            _: &FriendRequestId,
        ) -> DomainResult<(FriendRequestDetail, ConversationSummary)> {
            unimplemented!("not in this test")
        }
        async fn reject(&self, _: &UserId, _: &FriendRequestId) -> DomainResult<FriendRequestDetail> {
            unimplemented!("not in this test")
        }
        async fn cancel(&self, _: &UserId, _: &FriendRequestId) -> DomainResult<FriendRequestDetail> {
            unimplemented!("not in this test")
        }
        async fn remove(&self, _: &UserId, _: &UserId) -> DomainResult<()> {
            unimplemented!("not in this test")
        }
        async fn block(&self, _: &UserId, _: &UserId) -> DomainResult<()> {
            unimplemented!("not in this test")
        }
        async fn unblock(&self, _: &UserId, _: &UserId) -> DomainResult<()> {
            unimplemented!("not in this test")
        }
        async fn blocked(&self, _: &UserId) -> DomainResult<Vec<User>> {
            unimplemented!("not in this test")
        }
    }

    struct Nowhere;

    #[async_trait]
    impl Bus for Nowhere {
        async fn publish(&self, _: Event) -> Result<(), BusError> {
            Ok(())
        }
        async fn subscribe(&self) -> Result<BoxStream<'static, Event>, BusError> {
            Err(BusError::Unavailable("not in this test".into()))
        }
    }

    /// Found by the chaos test: after a Redis restart every user of a gateway was "back" at each
    /// refresh, and announcing them one by one inside the maintenance loop held the heartbeat
    /// past the route TTL, so the node was swept again and again and pushes stopped reaching it.
    #[tokio::test(start_paused = true)]
    async fn announcing_users_back_does_not_hold_up_the_heartbeat() {
        let routes = Arc::new(Forgetful::default());
        let node = NodeId::parse("gateway-1").expect("a node id");
        let ttl = Duration::from_secs(3);
        let presence = Arc::new(PresenceService::new(
            routes.clone(),
            Arc::new(SlowFriends),
            Notifier::new(Arc::new(Nowhere)),
            node,
            ttl,
        ));
        for i in 0..100 {
            presence.local.lock().insert(format!("device{i}"), UserId::from(format!("user{i}").as_str()));
        }
        let maintenance = tokio::spawn(presence.clone().run_maintenance());
        tokio::time::sleep(Duration::from_secs(10)).await;
        maintenance.abort();
        // A refresh every TTL/3 = 1 s: ten in ten seconds, however long the announcements take
        // (100 users × 200 ms each would be 20 s a round, one after another).
        let refreshes = routes.refreshes.load(Ordering::SeqCst);
        assert!(refreshes >= 9, "only {refreshes} refreshes in 10 s: the heartbeat waited for announcements");
    }
}
