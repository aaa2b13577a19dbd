//! Publishing committed changes: encode the frame once, hand it to the bus.
//!
//! Broadcast (the default): one event to every node, each keeps what its sockets need.
//! Targeted ([`Notifier::targeted`]): the recipients are looked up in the route table (one
//! round trip per event) and each node that holds a device of one of them gets one event with
//! only its recipients; recipients with no route get nothing (they sync when they connect). A
//! log entry's copy also says whether the conversation's previous entry went to that node (the
//! route table records each entry's nodes), so a gateway waits for a missing predecessor only
//! when it is coming. A log entry also goes once to the every-entry consumers (the search
//! indexer) through [`Bus::publish_log`]. Session revocations always go to every node: a route may be stale, and a
//! socket of an ended session must close wherever it is.
//!
//! Worker fan-out ([`Notifier::with_worker_fan_out`], targeted delivery only): an entry for more
//! recipients than a threshold is not looked up here; it goes once to the every-entry consumers
//! and, as a durable [`FanOut`] job, to a worker that publishes it to the gateways (see
//! [`crate::fan_out`]). A queue that refuses the job leaves the entry to the path above.

use std::sync::Arc;

use natter_proto::ServerFrame;

use crate::bus::{Bus, BusError, Event, LogPosition, SessionEnd};
use crate::fan_out::{FanOutMetrics, FanOutRunner};
use crate::ids::UserId;
use crate::jobs::{EncodedFrame, FanOut, Job, JobQueue};
use crate::model::Message;
use crate::presence::{EntryRoutes, PredecessorRoutes, RouteTable};

/// Cheap to clone (one pointer): every service holds one.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    bus: Arc<dyn Bus>,
    /// Set for targeted delivery.
    routes: Option<Arc<dyn RouteTable>>,
    /// Set for worker fan-out (with targeted delivery only).
    fan_out: Option<WorkerFanOut>,
}

/// Entries for more than `above` recipients go to a fan-out worker through `jobs`.
#[derive(Clone)]
pub struct WorkerFanOut {
    pub jobs: Arc<dyn JobQueue>,
    pub above: usize,
}

impl Notifier {
    pub fn new(bus: Arc<dyn Bus>) -> Self {
        Self { inner: Arc::new(Inner { bus, routes: None, fan_out: None }) }
    }

    /// A notifier on the same bus, delivering through `routes` to the nodes that hold the
    /// recipients. Only for a bus with per-node subjects; otherwise it stays broadcast.
    pub fn targeted(self, routes: Arc<dyn RouteTable>) -> Self {
        if !self.inner.bus.has_node_subjects() {
            tracing::warn!("the bus has no per-node subjects: delivery stays broadcast");
            return self;
        }
        Self { inner: Arc::new(Inner { routes: Some(routes), ..(*self.inner).clone() }) }
    }

    /// A notifier that hands entries for more than `fan_out.above` recipients to a fan-out
    /// worker. Only with targeted delivery (broadcast has no lookup to move), and `above > 0`.
    pub fn with_worker_fan_out(self, fan_out: WorkerFanOut) -> Self {
        if self.inner.routes.is_none() || fan_out.above == 0 {
            return self;
        }
        Self { inner: Arc::new(Inner { fan_out: Some(fan_out), ..(*self.inner).clone() }) }
    }

    /// What runs fan-out jobs on this process's bus and route table; `None` without targeted
    /// delivery (nothing queues them then).
    pub fn fan_out_runner(&self, metrics: Arc<dyn FanOutMetrics>) -> Option<FanOutRunner> {
        let routes = self.inner.routes.clone()?;
        Some(FanOutRunner::new(routes, self.inner.bus.clone(), metrics))
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
        let published = match (&self.inner.routes, self.fan_out_queue(&event)) {
            (None, _) => self.inner.bus.publish(event).await,
            (Some(routes), Some(jobs)) => self.publish_through_worker(routes.as_ref(), jobs, event).await,
            (Some(routes), None) => self.publish_targeted(routes.as_ref(), event).await,
        };
        if let Err(error) = published {
            tracing::warn!(%error, "bus publish failed; clients will catch up by sync");
        }
    }

    /// The queue of a fan-out worker, when `event` is a log entry for more recipients than the
    /// threshold.
    fn fan_out_queue(&self, event: &Event) -> Option<&dyn JobQueue> {
        let fan_out = self.inner.fan_out.as_ref()?;
        (event.position.is_some() && event.recipients.len() > fan_out.above).then_some(fan_out.jobs.as_ref())
    }

    /// The log entry once for the indexer, and a fan-out job for a worker to publish it to the
    /// gateways. The caller holds the conversation's log lock, so this process queues one
    /// conversation's jobs in `seq` order. A queue that refuses the job (full, unreachable):
    /// published to the gateways here, as a small group's entry.
    async fn publish_through_worker(
        &self,
        routes: &dyn RouteTable,
        jobs: &dyn JobQueue,
        event: Event,
    ) -> Result<(), BusError> {
        let Some(position) = &event.position else { return self.publish_targeted(routes, event).await };
        let logged = self.inner.bus.publish_log(log_copy(&event)).await;
        let job = FanOut {
            conversation_id: position.conversation.clone(),
            seq: position.seq,
            frame: EncodedFrame(event.frame.clone()),
            recipients: event.recipients.clone(),
        };
        if let Err(error) = jobs.enqueue(Job::FanOut(job)).await {
            tracing::warn!(%error, conversation = %position.conversation, seq = position.seq.get(),
                "fan-out job not queued; publishing to the gateways here");
            let published = self.publish_to_gateways(routes, Event { entry: None, ..event }).await;
            return logged.and(published);
        }
        logged
    }

    /// One event per node that holds a recipient's device, then the log entry for the indexer.
    async fn publish_targeted(&self, routes: &dyn RouteTable, event: Event) -> Result<(), BusError> {
        let log_entry = event.position.is_some().then(|| log_copy(&event));
        let gateways = match self.look_up(routes, &event).await {
            Some(routes) => self.publish_to(routes, event).await,
            // Broadcast instead: the every-node event carries the entry too.
            None => return self.inner.bus.publish(event).await,
        };
        match log_entry {
            Some(entry) => gateways.and(self.inner.bus.publish_log(entry).await),
            None => gateways,
        }
    }

    /// [`Self::publish_targeted`] without the log entry.
    async fn publish_to_gateways(&self, routes: &dyn RouteTable, event: Event) -> Result<(), BusError> {
        match self.look_up(routes, &event).await {
            Some(routes) => self.publish_to(routes, event).await,
            None => self.inner.bus.publish(event).await,
        }
    }

    /// Where `event` goes. `None` if the route table cannot be read: the caller broadcasts the
    /// event instead (every node filters, as without a table), so a route-table outage costs
    /// bandwidth, not pushes.
    async fn look_up(&self, routes: &dyn RouteTable, event: &Event) -> Option<EntryRoutes> {
        let looked_up = match &event.position {
            Some(position) => routes.nodes_of_entry(&event.recipients, position).await,
            None => routes
                .nodes_of(&event.recipients)
                .await
                .map(|nodes| EntryRoutes { nodes, predecessor: PredecessorRoutes::Unknown }),
        };
        looked_up.map_err(|error| tracing::warn!(%error, "route lookup failed; broadcasting the event")).ok()
    }

    /// One event per node, with that node's recipients and the word on the predecessor.
    async fn publish_to(&self, routes: EntryRoutes, event: Event) -> Result<(), BusError> {
        let EntryRoutes { nodes, predecessor } = routes;
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

/// What the every-entry consumers get of a log entry's event: the entry and its position, not
/// who receives it.
fn log_copy(event: &Event) -> Event {
    Event {
        recipients: Vec::new(),
        frame: event.frame.clone(),
        position: event.position.clone(),
        ends: None,
        entry: event.entry.clone(),
    }
}
