//! Publishing committed changes: encode the frame once, hand it to the bus.
//!
//! Broadcast (the default): one event to every node, each keeps what its sockets need.
//! Targeted ([`Notifier::targeted`]): the recipients are looked up in the route table (one
//! round trip per event) and each node that holds a device of one of them gets one event with
//! only its recipients; recipients with no route get nothing (they sync when they connect). A
//! log entry's copy also says whether the conversation's previous entry went to that node (the
//! route table records each entry's nodes), so a gateway waits for a missing predecessor only
//! when it is coming. A log
//! entry also goes once to the every-entry consumers (the search indexer) through
//! [`Bus::publish_log`]. Session revocations always go to every node: a route may be stale, and a
//! socket of an ended session must close wherever it is.

use std::sync::Arc;

use natter_proto::ServerFrame;

use crate::bus::{Bus, Event, LogPosition, SessionEnd};
use crate::ids::UserId;
use crate::model::Message;
use crate::presence::{EntryRoutes, PredecessorRoutes, RouteTable};

/// Cheap to clone (one pointer): every service holds one.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    bus: Arc<dyn Bus>,
    /// Set for targeted delivery.
    routes: Option<Arc<dyn RouteTable>>,
}

impl Notifier {
    pub fn new(bus: Arc<dyn Bus>) -> Self {
        Self { inner: Arc::new(Inner { bus, routes: None }) }
    }

    /// A notifier on the same bus, delivering through `routes` to the nodes that hold the
    /// recipients. Only for a bus with per-node subjects; otherwise it stays broadcast.
    pub fn targeted(self, routes: Arc<dyn RouteTable>) -> Self {
        let bus = self.inner.bus.clone();
        if !bus.has_node_subjects() {
            tracing::warn!("the bus has no per-node subjects: delivery stays broadcast");
            return self;
        }
        Self { inner: Arc::new(Inner { bus, routes: Some(routes) }) }
    }

    /// Push a frame to every online device of `recipients`. Push may miss (sync repairs), so a
    /// bus failure is logged, not returned: the change it announces is already committed.
    pub async fn publish(&self, recipients: Vec<UserId>, frame: &ServerFrame) {
        self.publish_at(recipients, frame, None).await;
    }

    /// Like [`Notifier::publish`], for the frame of a log entry: the event also carries the entry
    /// itself and its position (see [`Event::entry`]).
    pub async fn publish_entry(&self, recipients: Vec<UserId>, frame: &ServerFrame, entry: &Message) {
        self.publish_at(recipients, frame, Some(Arc::new(entry.clone()))).await;
    }

    async fn publish_at(&self, recipients: Vec<UserId>, frame: &ServerFrame, entry: Option<Arc<Message>>) {
        if recipients.is_empty() {
            return;
        }
        let frame = match serde_json::to_vec(frame) {
            Ok(bytes) => bytes::Bytes::from(bytes),
            Err(error) => {
                tracing::error!(%error, "could not encode a server frame");
                return;
            }
        };
        let position = entry.as_deref().map(crate::wire::position);
        let event = Event { recipients, frame, position, ends: None, entry };
        let published = match &self.inner.routes {
            None => self.inner.bus.publish(event).await,
            Some(routes) => self.publish_targeted(routes.as_ref(), event).await,
        };
        if let Err(error) = published {
            tracing::warn!(%error, "bus publish failed; clients will catch up by sync");
        }
    }

    /// One event per node that holds a recipient's device, then the log entry for the indexer.
    /// If the route table cannot be read, the event is broadcast instead (every node filters, as
    /// without a table), so a route-table outage costs bandwidth, not pushes.
    async fn publish_targeted(&self, routes: &dyn RouteTable, event: Event) -> Result<(), crate::bus::BusError> {
        let looked_up = match &event.position {
            Some(position) => routes.nodes_of_entry(&event.recipients, position).await,
            None => routes
                .nodes_of(&event.recipients)
                .await
                .map(|nodes| EntryRoutes { nodes, predecessor: PredecessorRoutes::Unknown }),
        };
        let EntryRoutes { nodes, predecessor } = match looked_up {
            Ok(routes) => routes,
            Err(error) => {
                tracing::warn!(%error, "route lookup failed; broadcasting the event");
                return self.inner.bus.publish(event).await;
            }
        };
        let mut result = Ok(());
        for (node, recipients) in nodes {
            // Gateways write the frame; the typed entry goes to the log subject only.
            let position = event
                .position
                .as_ref()
                .map(|position| LogPosition { predecessor: predecessor.for_node(&node), ..position.clone() });
            let share = Event { recipients, entry: None, position, ..event.clone() };
            if let Err(error) = self.inner.bus.publish_to(&node, share).await {
                result = Err(error);
            }
        }
        if event.position.is_some() {
            // The indexer reads the entry and its position, not who receives it.
            let entry = Event { recipients: Vec::new(), ..event };
            if let Err(error) = self.inner.bus.publish_log(entry).await {
                result = Err(error);
            }
        }
        result
    }

    /// Closes `user`'s sockets of the ended sessions on every gateway. A lost event is bounded by
    /// the access token's lifetime: a socket also closes when its token expires.
    pub async fn end_sessions(&self, user: UserId, ends: SessionEnd) {
        if let Err(error) = self.inner.bus.publish(Event::end_sessions(user, ends)).await {
            tracing::warn!(%error, "bus publish of a session revocation failed; sockets close at token expiry");
        }
    }
}
