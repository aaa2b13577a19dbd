//! Large groups fanned out by a worker: the [`FanOut`] job and what runs it.
//!
//! With targeted delivery a chat node looks up every recipient of an entry in the route table
//! (one script call) before it publishes, under the conversation's log lock. For a group above
//! `delivery.worker_fanout_above` recipients it does neither (see `notify`): it publishes the
//! entry once for the every-entry consumers (the search indexer) and queues a [`FanOut`] job —
//! conversation, `seq`, the frame as encoded once, the recipient ids — still under the lock, so
//! one chat node queues a conversation's jobs in `seq` order. A worker's [`FanOutRunner`] then:
//!
//! 1. looks the recipients up [`ROUTE_BATCH`] at a time ([`RouteTable::nodes_of`]: one short
//!    script each, so a 10,000-member group never holds Redis for one long script);
//! 2. groups them by gateway across the batches;
//! 3. records the entry's nodes, the union of every batch's, once ([`RouteTable::record_entry`],
//!    the compare-and-set of the inline path's lookup, without the lookup), which says where the
//!    conversation's previous entry went;
//! 4. publishes one event per gateway (merged across batches, never one per batch: a gateway
//!    orders a conversation's entries by `seq`, and a second event of the same `seq` would be
//!    taken for a late or repeated one), each saying whether the previous entry is coming there;
//! 5. marks the entry published ([`RouteTable::entry_published`]).
//!
//! **Ordering.** Jobs leave the queue in the order they were queued, but several workers (and a
//! retried or redelivered job) may finish them out of order. The record makes that safe exactly
//! as it does for two chat nodes publishing one conversation: an entry recorded before its
//! predecessor is told `Pending`, so every gateway that receives it waits for the predecessor
//! (the gateway's `Sequencer`, at most one second); the predecessor, recorded later, fills the
//! gap. A job that comes back later than that (a retry, a worker killed mid-job: redelivered
//! after the ack wait) reaches sockets after its successors, as a lost event would; clients
//! order by `seq` and sync.
//!
//! **Idempotency** by (conversation, `seq`): the queue drops a repeated enqueue of the same key;
//! the record claims the entry once and keeps the first run's answer; once a run has published,
//! a later run of the same job publishes nothing. A worker killed after publishing and before
//! acknowledging therefore costs nothing; one killed between the record and the publish leaves
//! the publish to the redelivery, with the first answer; one killed in the middle of the publish
//! makes the redelivery publish to every gateway again, so the sockets of the gateways that had
//! it get the entry twice (clients drop a `seq` they have).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::bus::{Bus, Event, LogPosition};
use crate::ids::UserId;
use crate::jobs::{FanOut, Job, JobHandler, JobOutcome};
use crate::presence::{EntryRecord, NodeId, PredecessorRoutes, PresenceError, RouteTable};

/// Recipients looked up per route-table call.
pub const ROUTE_BATCH: usize = 500;
/// Route lookups of one job in flight at once: a 10,000-member group's 20 batches take about
/// three round trips' time rather than twenty.
const LOOKUPS_IN_FLIGHT: usize = 8;

/// What fan-out runs report to the process's metrics (the gateway crate's registry implements
/// it; core keeps no metrics library).
pub trait FanOutMetrics: Send + Sync + 'static {
    /// A job published its entry: `recipients` looked up, `events` published (one per gateway).
    fn job_done(&self, recipients: usize, events: usize);
    /// A job found its entry published by an earlier run: nothing published.
    fn job_repeated(&self);
}

/// Counts nothing (tests, tools).
pub struct NoMetrics;

impl FanOutMetrics for NoMetrics {
    fn job_done(&self, _recipients: usize, _events: usize) {}
    fn job_repeated(&self) {}
}

/// Runs [`FanOut`] jobs: batched route lookups, one event per gateway.
pub struct FanOutRunner {
    routes: Arc<dyn RouteTable>,
    bus: Arc<dyn Bus>,
    metrics: Arc<dyn FanOutMetrics>,
    batch: usize,
}

impl FanOutRunner {
    pub fn new(routes: Arc<dyn RouteTable>, bus: Arc<dyn Bus>, metrics: Arc<dyn FanOutMetrics>) -> Self {
        Self { routes, bus, metrics, batch: ROUTE_BATCH }
    }

    /// Publishes the job's entry to the gateways of its recipients (see the module docs).
    pub async fn fan_out(&self, job: &FanOut) -> JobOutcome {
        let position = LogPosition::new(job.conversation_id.clone(), job.seq);
        let nodes = match self.look_up(&job.recipients).await {
            Ok(nodes) => nodes,
            Err(error) => {
                tracing::warn!(%error, conversation = %job.conversation_id, seq = job.seq.get(),
                    "route lookup failed; broadcasting the entry");
                return self.broadcast(job, position).await;
            }
        };
        let targets: Vec<NodeId> = nodes.iter().map(|(node, _)| node.clone()).collect();
        let predecessor = match self.routes.record_entry(&position, &targets).await {
            Ok(EntryRecord::Publish(predecessor)) => predecessor,
            Ok(EntryRecord::Published) => {
                tracing::info!(conversation = %job.conversation_id, seq = job.seq.get(), "entry published by an earlier run");
                self.metrics.job_repeated();
                return JobOutcome::Done;
            }
            Err(error) => {
                // Publish all the same: gateways judge a gap by themselves, as without a record.
                tracing::warn!(%error, conversation = %job.conversation_id, seq = job.seq.get(),
                    "cannot record where the entry goes");
                PredecessorRoutes::Unknown
            }
        };
        let events = nodes.len();
        let mut failed = None;
        for (node, recipients) in nodes {
            let position = LogPosition { predecessor: predecessor.for_node(&node), ..position.clone() };
            let event =
                Event { recipients, frame: job.frame.0.clone(), position: Some(position), ends: None, entry: None };
            if let Err(error) = self.bus.publish_to(&node, event).await {
                failed = Some(error);
            }
        }
        if let Some(error) = failed {
            // Not marked published: the next run publishes again, with the answer recorded now.
            return JobOutcome::Retry(format!("publishing to a gateway failed: {error}"));
        }
        if let Err(error) = self.routes.entry_published(&position).await {
            tracing::warn!(%error, conversation = %job.conversation_id, seq = job.seq.get(),
                "cannot mark the entry published; a repeated run would publish it again");
        }
        self.metrics.job_done(job.recipients.len(), events);
        JobOutcome::Done
    }

    /// The nodes of `recipients`, each with its recipients, looked up a batch at a time, up to
    /// [`LOOKUPS_IN_FLIGHT`] batches at once (each script stays short; the round trips overlap).
    async fn look_up(&self, recipients: &[UserId]) -> Result<Vec<(NodeId, Vec<UserId>)>, PresenceError> {
        use futures_util::stream::{self, StreamExt, TryStreamExt};
        let batches: Vec<_> = recipients.chunks(self.batch.max(1)).map(|batch| self.routes.nodes_of(batch)).collect();
        let found: Vec<_> = stream::iter(batches).buffered(LOOKUPS_IN_FLIGHT).try_collect().await?;
        let mut by_node = BTreeMap::new();
        for batch in found {
            add_batch(&mut by_node, batch);
        }
        Ok(by_node.into_iter().collect())
    }

    /// Without routes: to every gateway (each keeps what its sockets need), as the inline path
    /// does when Redis fails. A route-table outage costs bandwidth, not pushes.
    async fn broadcast(&self, job: &FanOut, position: LogPosition) -> JobOutcome {
        let event = Event::new(job.recipients.clone(), job.frame.0.clone());
        match self.bus.publish(Event { position: Some(position), ..event }).await {
            Ok(()) => {
                self.metrics.job_done(job.recipients.len(), 1);
                JobOutcome::Done
            }
            Err(error) => JobOutcome::Retry(format!("broadcast failed: {error}")),
        }
    }
}

/// Adds one batch's lookup to the recipients per node so far.
fn add_batch(by_node: &mut BTreeMap<NodeId, Vec<UserId>>, batch: Vec<(NodeId, Vec<UserId>)>) {
    for (node, users) in batch {
        by_node.entry(node).or_default().extend(users);
    }
}

#[async_trait]
impl JobHandler for FanOutRunner {
    async fn run(&self, job: Job) -> JobOutcome {
        match job {
            Job::FanOut(job) => self.fan_out(&job).await,
            other => JobOutcome::Failed(format!("{} is not a fan-out job", other.key())),
        }
    }
}

#[cfg(test)]
#[path = "fan_out_tests.rs"]
mod tests;
