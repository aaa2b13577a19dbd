//! The runner against an in-memory route table that keeps records the way the Redis scripts do
//! (those scripts are tested against a real Redis in natter-redis) and a bus that keeps what is
//! published.

use std::collections::HashMap;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use parking_lot::Mutex;

use super::*;
use crate::bus::{BusError, Predecessor};
use crate::ids::{ConversationId, Seq};
use crate::jobs::EncodedFrame;
use crate::presence::{MemoryRoutes, Route};

/// `MemoryRoutes` for the lookups, plus the sizes of the lookups and a record per conversation.
#[derive(Default)]
struct Table {
    routes: MemoryRoutes,
    batches: Mutex<Vec<usize>>,
    /// conversation → (last recorded seq, its nodes).
    records: Mutex<HashMap<ConversationId, (Seq, Vec<NodeId>)>>,
    /// (conversation, seq) → the first run's answer, or `None` once published.
    claims: Mutex<HashMap<(ConversationId, Seq), Option<PredecessorRoutes>>>,
    recorded: Mutex<Vec<Vec<NodeId>>>,
    fail_lookups: bool,
}

#[async_trait]
impl RouteTable for Table {
    async fn connect(&self, route: &Route) -> Result<bool, PresenceError> {
        self.routes.connect(route).await
    }
    async fn disconnect(&self, route: &Route) -> Result<bool, PresenceError> {
        self.routes.disconnect(route).await
    }
    async fn refresh(&self, node: &NodeId, routes: &[Route]) -> Result<Vec<UserId>, PresenceError> {
        self.routes.refresh(node, routes).await
    }
    async fn online(&self, users: &[UserId]) -> Result<Vec<bool>, PresenceError> {
        self.routes.online(users).await
    }
    async fn nodes_of(&self, users: &[UserId]) -> Result<Vec<(NodeId, Vec<UserId>)>, PresenceError> {
        if self.fail_lookups {
            return Err(PresenceError::Unavailable("down".into()));
        }
        self.batches.lock().push(users.len());
        self.routes.nodes_of(users).await
    }
    async fn record_entry(&self, position: &LogPosition, nodes: &[NodeId]) -> Result<EntryRecord, PresenceError> {
        let key = (position.conversation.clone(), position.seq);
        match self.claims.lock().get(&key) {
            Some(Some(first)) => return Ok(EntryRecord::Publish(first.clone())),
            Some(None) => return Ok(EntryRecord::Published),
            None => {}
        }
        self.recorded.lock().push(nodes.to_vec());
        let mut records = self.records.lock();
        let answer = match records.get(&position.conversation) {
            None => PredecessorRoutes::Unknown,
            Some((last, sent)) if *last == position.seq.prev() => PredecessorRoutes::SentTo(sent.clone()),
            Some((last, _)) if *last < position.seq.prev() => PredecessorRoutes::Pending,
            Some(_) => PredecessorRoutes::Late,
        };
        if records.get(&position.conversation).is_none_or(|(last, _)| *last < position.seq) {
            records.insert(position.conversation.clone(), (position.seq, nodes.to_vec()));
        }
        self.claims.lock().insert(key, Some(answer.clone()));
        Ok(EntryRecord::Publish(answer))
    }
    async fn entry_published(&self, position: &LogPosition) -> Result<(), PresenceError> {
        self.claims.lock().insert((position.conversation.clone(), position.seq), None);
        Ok(())
    }
    async fn sweep(&self) -> Result<Vec<UserId>, PresenceError> {
        Ok(Vec::new())
    }
}

/// Keeps every event: `(None, event)` for one to every node, `(Some(node), event)` for one node.
#[derive(Default)]
struct Published {
    events: Mutex<Vec<(Option<NodeId>, Event)>>,
    fail_to: Option<NodeId>,
}

#[async_trait]
impl Bus for Published {
    async fn publish(&self, event: Event) -> Result<(), BusError> {
        self.events.lock().push((None, event));
        Ok(())
    }
    async fn subscribe(&self) -> Result<BoxStream<'static, Event>, BusError> {
        Err(BusError::Unavailable("not in this test".into()))
    }
    async fn publish_to(&self, node: &NodeId, event: Event) -> Result<(), BusError> {
        if self.fail_to.as_ref() == Some(node) {
            return Err(BusError::Unavailable("gone".into()));
        }
        self.events.lock().push((Some(node.clone()), event));
        Ok(())
    }
    fn has_node_subjects(&self) -> bool {
        true
    }
}

#[derive(Default)]
struct Counts {
    done: Mutex<Vec<(usize, usize)>>,
    repeated: Mutex<usize>,
}

impl FanOutMetrics for Counts {
    fn job_done(&self, recipients: usize, events: usize) {
        self.done.lock().push((recipients, events));
    }
    fn job_repeated(&self) {
        *self.repeated.lock() += 1;
    }
}

fn node(id: &str) -> NodeId {
    NodeId::parse(id).expect("node id")
}

fn user(n: usize) -> UserId {
    UserId(format!("u{n}"))
}

fn job(seq: i64, recipients: Vec<UserId>) -> FanOut {
    FanOut {
        conversation_id: ConversationId::from("group"),
        seq: Seq::new(seq),
        frame: EncodedFrame(Bytes::from(format!(r#"{{"type":"message","seq":{seq}}}"#))),
        recipients,
    }
}

struct Setup {
    table: Arc<Table>,
    bus: Arc<Published>,
    counts: Arc<Counts>,
    runner: FanOutRunner,
}

/// `users` users; user n has a device on `n1` when n is even, on `n2` when n % 3 == 0 (so some
/// on both), none when neither.
async fn setup(users: usize, table: Table, bus: Published) -> Setup {
    for n in 0..users {
        for (holds, id) in [(n % 2 == 0, "n1"), (n % 3 == 0, "n2")] {
            if holds {
                let route = Route { user: user(n), node: node(id), device: format!("{id}-{n}") };
                table.connect(&route).await.expect("connect");
            }
        }
    }
    let (table, bus, counts) = (Arc::new(table), Arc::new(bus), Arc::new(Counts::default()));
    let runner = FanOutRunner::new(table.clone(), bus.clone(), counts.clone());
    Setup { table, bus, counts, runner }
}

fn recipients_of(events: &[(Option<NodeId>, Event)], id: &str) -> Vec<UserId> {
    let mut users: Vec<UserId> = events
        .iter()
        .filter(|(to, _)| to.as_ref() == Some(&node(id)))
        .flat_map(|(_, event)| event.recipients.clone())
        .collect();
    users.sort();
    users
}

#[tokio::test]
async fn recipients_are_looked_up_in_batches_and_each_gateway_gets_one_event_with_all_of_its_own() {
    let Setup { table, bus, counts, runner } = setup(1_203, Table::default(), Published::default()).await;
    let everyone: Vec<UserId> = (0..1_203).map(user).collect();
    assert_eq!(runner.fan_out(&job(1, everyone)).await, JobOutcome::Done);

    assert_eq!(*table.batches.lock(), [500, 500, 203], "one lookup per {ROUTE_BATCH} recipients");
    let events = bus.events.lock().clone();
    let targets: Vec<Option<NodeId>> = events.iter().map(|(to, _)| to.clone()).collect();
    assert_eq!(targets, [Some(node("n1")), Some(node("n2"))], "one event per gateway, merged across batches");
    let mut expected_n1: Vec<UserId> = (0..1_203).filter(|n| n % 2 == 0).map(user).collect();
    let mut expected_n2: Vec<UserId> = (0..1_203).filter(|n| n % 3 == 0).map(user).collect();
    expected_n1.sort();
    expected_n2.sort();
    assert_eq!(recipients_of(&events, "n1"), expected_n1);
    assert_eq!(recipients_of(&events, "n2"), expected_n2);
    for (_, event) in &events {
        assert_eq!(event.frame, Bytes::from_static(br#"{"type":"message","seq":1}"#), "the frame as queued");
        assert!(event.entry.is_none(), "gateways get the frame only");
    }
    assert_eq!(*table.recorded.lock(), [vec![node("n1"), node("n2")]], "one record: the union of every batch");
    assert_eq!(*counts.done.lock(), [(1_203, 2)]);
}

#[tokio::test]
async fn each_gateway_is_told_whether_the_previous_entry_went_there() {
    let Setup { bus, runner, .. } = setup(6, Table::default(), Published::default()).await;
    // seq 1 reaches only n1's users (0, 2, 4); seq 2 reaches everyone (n1 and n2).
    runner.fan_out(&job(1, vec![user(2), user(4)])).await;
    runner.fan_out(&job(2, (0..6).map(user).collect())).await;
    // seq 4 overtakes seq 3 (two workers): its predecessor is pending everywhere.
    runner.fan_out(&job(4, (0..6).map(user).collect())).await;
    runner.fan_out(&job(3, (0..6).map(user).collect())).await;

    let told: Vec<(i64, NodeId, Predecessor)> = bus
        .events
        .lock()
        .iter()
        .filter_map(|(to, event)| {
            let position = event.position.as_ref()?;
            Some((position.seq.get(), to.clone()?, position.predecessor))
        })
        .collect();
    use Predecessor::{Coming, NotComing, Unknown};
    assert_eq!(
        told,
        [
            (1, node("n1"), Unknown),
            (2, node("n1"), Coming),
            (2, node("n2"), NotComing),
            (4, node("n1"), Coming),
            (4, node("n2"), Coming),
            // The late one: gateways hold 4 and take 3 as the entry it waits for.
            (3, node("n1"), Unknown),
            (3, node("n2"), Unknown),
        ]
    );
}

#[tokio::test]
async fn a_job_run_again_after_it_published_publishes_nothing() {
    let Setup { bus, counts, runner, .. } = setup(6, Table::default(), Published::default()).await;
    let everyone: Vec<UserId> = (0..6).map(user).collect();
    assert_eq!(runner.fan_out(&job(1, everyone.clone())).await, JobOutcome::Done);
    assert_eq!(runner.run(Job::FanOut(job(1, everyone))).await, JobOutcome::Done);
    assert_eq!(bus.events.lock().len(), 2, "the first run's two events only");
    assert_eq!(*counts.repeated.lock(), 1);
}

#[tokio::test]
async fn a_failed_publish_is_retried_and_the_retry_publishes_with_the_first_answer() {
    let bus = Published { fail_to: Some(node("n2")), ..Published::default() };
    let Setup { table, bus, runner, .. } = setup(6, Table::default(), bus).await;
    // seq 1 reaches n1 alone; seq 2 everyone, and n2 cannot be reached.
    assert_eq!(runner.fan_out(&job(1, vec![user(2), user(4)])).await, JobOutcome::Done);
    let everyone: Vec<UserId> = (0..6).map(user).collect();
    let outcome = runner.fan_out(&job(2, everyone.clone())).await;
    assert!(matches!(outcome, JobOutcome::Retry(_)), "{outcome:?}");
    assert_eq!(bus.events.lock().len(), 2, "seq 1 and seq 2 to n1");

    // The retry (n2 reachable again) is told what the first run was told, not that 2 is late.
    let retry_bus = Arc::new(Published::default());
    let again = FanOutRunner::new(table.clone(), retry_bus.clone(), Arc::new(NoMetrics));
    assert_eq!(again.fan_out(&job(2, everyone)).await, JobOutcome::Done);
    let told: Vec<(Option<NodeId>, Predecessor)> = retry_bus
        .events
        .lock()
        .iter()
        .filter_map(|(to, event)| Some((to.clone(), event.position.as_ref()?.predecessor)))
        .collect();
    assert_eq!(told, [(Some(node("n1")), Predecessor::Coming), (Some(node("n2")), Predecessor::NotComing)]);
    assert_eq!(table.recorded.lock().len(), 2, "seq 2 recorded once, by its first run");
}

#[tokio::test]
async fn without_routes_the_entry_is_broadcast() {
    let table = Table { fail_lookups: true, ..Table::default() };
    let Setup { bus, counts, runner, .. } = setup(0, table, Published::default()).await;
    let everyone: Vec<UserId> = (0..3).map(user).collect();
    assert_eq!(runner.fan_out(&job(5, everyone.clone())).await, JobOutcome::Done);
    let events = bus.events.lock().clone();
    assert_eq!(events.len(), 1);
    let (to, event) = &events[0];
    assert_eq!((to, &event.recipients), (&None, &everyone), "to every node, every recipient");
    assert_eq!(event.position.as_ref().map(|p| (p.seq, p.predecessor)), Some((Seq::new(5), Predecessor::Unknown)));
    assert_eq!(*counts.done.lock(), [(3, 1)]);
}

#[tokio::test]
async fn recipients_without_a_route_cost_no_event() {
    let Setup { bus, table, runner, .. } = setup(6, Table::default(), Published::default()).await;
    // 1 and 5 have no device anywhere.
    assert_eq!(runner.fan_out(&job(1, vec![user(1), user(5)])).await, JobOutcome::Done);
    assert!(bus.events.lock().is_empty());
    assert_eq!(*table.recorded.lock(), [Vec::<NodeId>::new()], "recorded as sent nowhere");
}

#[tokio::test]
async fn another_kind_of_job_is_refused() {
    let Setup { runner, .. } = setup(0, Table::default(), Published::default()).await;
    let transcribe = Job::TranscribeVoice(crate::jobs::TranscribeVoice {
        conversation_id: ConversationId::from("c"),
        seq: Seq::FIRST,
        file_id: crate::ids::FileId::from("f"),
    });
    assert!(matches!(runner.run(transcribe).await, JobOutcome::Failed(_)));
}

/// Keeps what is queued, or refuses everything.
#[derive(Default)]
struct Queue {
    jobs: Mutex<Vec<Job>>,
    full: bool,
}

#[async_trait]
impl crate::jobs::JobQueue for Queue {
    async fn enqueue(&self, job: Job) -> Result<(), crate::jobs::JobError> {
        if self.full {
            return Err(crate::jobs::JobError::Full);
        }
        self.jobs.lock().push(job);
        Ok(())
    }
    async fn start_workers(
        &self,
        _kind: crate::jobs::JobKind,
        _workers: usize,
        _handler: Arc<dyn JobHandler>,
    ) -> Result<crate::jobs::Workers, crate::jobs::JobError> {
        Ok(crate::jobs::Workers::default())
    }
}

fn entry(seq: i64) -> crate::model::Message {
    let kind = crate::model::MessageKind::Text;
    let mut message = crate::store::blank_message(ConversationId::from("group"), user(0), kind, chrono::Utc::now());
    message.seq = Seq::new(seq);
    message
}

#[tokio::test]
async fn a_chat_node_queues_entries_above_the_threshold_and_publishes_the_others_itself() {
    let Setup { table, bus, .. } = setup(6, Table::default(), Published::default()).await;
    let queue = Arc::new(Queue::default());
    let notifier = crate::notify::Notifier::new(bus.clone())
        .targeted(table.clone())
        .with_worker_fan_out(crate::notify::WorkerFanOut { jobs: queue.clone(), above: 3 });
    let frame = natter_proto::ServerFrame::Pong { id: None };

    // Three recipients: not above 3, published here (n1 and n2, then the log subject).
    notifier.publish_entry((0..3).map(user).collect(), &frame, &entry(1)).await;
    assert_eq!(bus.events.lock().len(), 2);
    assert!(queue.jobs.lock().is_empty());

    // Four: one job for the worker with the frame as encoded here; nothing to a gateway.
    notifier.publish_entry((0..4).map(user).collect(), &frame, &entry(2)).await;
    let jobs = queue.jobs.lock().clone();
    let [Job::FanOut(job)] = jobs.as_slice() else { panic!("one fan-out job: {jobs:?}") };
    assert_eq!((job.seq, job.recipients.len()), (Seq::new(2), 4));
    assert_eq!(job.frame.0, Bytes::from(serde_json::to_vec(&frame).expect("encodes")));
    assert_eq!(bus.events.lock().len(), 2, "no event to a gateway from the chat node");

    // Not log entries (typing, presence…) never go through a job.
    notifier.publish((0..6).map(user).collect(), &frame).await;
    assert_eq!(queue.jobs.lock().len(), 1);
}

#[tokio::test]
async fn a_refused_job_is_published_by_the_chat_node_itself() {
    let Setup { table, bus, .. } = setup(6, Table::default(), Published::default()).await;
    let notifier = crate::notify::Notifier::new(bus.clone()).targeted(table.clone()).with_worker_fan_out(
        crate::notify::WorkerFanOut { jobs: Arc::new(Queue { full: true, ..Queue::default() }), above: 3 },
    );
    let frame = natter_proto::ServerFrame::Pong { id: None };
    notifier.publish_entry((0..6).map(user).collect(), &frame, &entry(1)).await;
    let mut targets: Vec<Option<NodeId>> = bus.events.lock().iter().map(|(to, _)| to.clone()).collect();
    targets.sort();
    assert_eq!(targets, [Some(node("n1")), Some(node("n2"))]);
}
