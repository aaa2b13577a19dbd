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

    /// Re-asserts this node's heartbeat and routes for another TTL. Users whose routes had gone
    /// (this node stalled past the TTL and was swept) are announced online again.
    pub async fn refresh(&self) {
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
        for user in gone {
            self.announce(&user, false).await;
        }
        match refreshed {
            Ok(back) => {
                for user in back {
                    self.announce(&user, true).await;
                }
            }
            Err(error) => tracing::warn!(%error, "could not refresh this node's routes"),
        }
    }

    /// Claims nodes that stopped refreshing and announces their users offline (those with no
    /// device elsewhere).
    pub async fn sweep(&self) {
        match self.routes.sweep().await {
            Ok(gone) => {
                if !gone.is_empty() {
                    tracing::info!(users = gone.len(), "swept the routes of a dead node");
                }
                for user in gone {
                    self.announce(&user, false).await;
                }
            }
            Err(error) => tracing::warn!(%error, "could not sweep dead nodes"),
        }
    }

    /// Refreshes and sweeps every TTL/3, forever (spawned once by the composition root).
    pub async fn run_maintenance(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.refresh().await;
            self.sweep().await;
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
