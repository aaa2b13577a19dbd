//! `JetStreamJobs` against a real nats-server with JetStream (`-js`), named by
//! `NATTER_TEST_NATS_URL` (scripts/test.sh starts one). Without it the tests skip, unless `CI` is
//! set: there a missing server is a failure. Each test has its own subject prefix, so its own
//! stream and consumer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use natter_bus::jobs::JetStreamJobs;
use natter_core::ids::{ConversationId, FileId, Seq};
use natter_core::jobs::{Job, JobError, JobHandler, JobKind, JobOutcome, JobQueue, JobSettings, TranscribeVoice};
use tokio::sync::mpsc;

fn nats_url(test: &str) -> Option<String> {
    match std::env::var("NATTER_TEST_NATS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("NATTER_TEST_NATS_URL is not set but CI is: run scripts/test.sh")
        }
        _ => {
            println!("skipping {test}: NATTER_TEST_NATS_URL is not set (scripts/test.sh sets it)");
            None
        }
    }
}

fn unique_prefix() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("natter-test.jobs-{}-{nanos}", std::process::id())
}

fn job(seq: i64) -> Job {
    Job::TranscribeVoice(TranscribeVoice {
        conversation_id: ConversationId::from("c1"),
        seq: Seq::new(seq),
        file_id: FileId::from("f1"),
    })
}

fn settings(ack_wait_ms: u64, max_deliver: u32) -> JobSettings {
    JobSettings { max_pending: 100, ack_wait: Duration::from_millis(ack_wait_ms), max_deliver }
}

/// Reports every run (which job, which worker) and behaves as told.
struct Probe {
    name: &'static str,
    runs: mpsc::UnboundedSender<(&'static str, Job)>,
    behaviour: Behaviour,
    count: AtomicU32,
}

enum Behaviour {
    Succeed,
    /// Takes this long, then succeeds.
    Slow(Duration),
    /// Never returns (a worker that hangs, then is killed).
    Hang,
    /// Asks for a retry every time.
    Retry,
}

impl Probe {
    fn new(name: &'static str, behaviour: Behaviour) -> (Arc<Self>, mpsc::UnboundedReceiver<(&'static str, Job)>) {
        let (runs, received) = mpsc::unbounded_channel();
        (Arc::new(Self { name, runs, behaviour, count: AtomicU32::new(0) }), received)
    }
}

#[async_trait]
impl JobHandler for Probe {
    async fn run(&self, job: Job) -> JobOutcome {
        self.count.fetch_add(1, Ordering::SeqCst);
        let _ = self.runs.send((self.name, job));
        match self.behaviour {
            Behaviour::Succeed => JobOutcome::Done,
            Behaviour::Slow(duration) => {
                tokio::time::sleep(duration).await;
                JobOutcome::Done
            }
            Behaviour::Hang => std::future::pending().await,
            Behaviour::Retry => JobOutcome::Retry("always".into()),
        }
    }
}

async fn next(runs: &mut mpsc::UnboundedReceiver<(&'static str, Job)>, within: Duration) -> (&'static str, Job) {
    tokio::time::timeout(within, runs.recv()).await.expect("a run in time").expect("the handler is alive")
}

async fn wait_until_empty(queue: &JetStreamJobs) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while queue.pending().await.expect("stream info") > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the stream still holds jobs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_job_enqueued_before_any_worker_runs_once_and_is_removed_after_its_ack() {
    let Some(url) = nats_url("a_job_enqueued_before_any_worker_runs_once_and_is_removed_after_its_ack") else { return };
    let queue = JetStreamJobs::connect(&url, &unique_prefix(), settings(2_000, 3)).await.expect("connect");
    queue.enqueue(job(1)).await.expect("enqueue");
    // The same job again (a retried send): stored once.
    queue.enqueue(job(1)).await.expect("enqueue again");
    queue.enqueue(job(2)).await.expect("enqueue another");
    assert_eq!(queue.pending().await.expect("info"), 2, "stored before any worker exists, deduplicated by key");

    let (probe, mut runs) = Probe::new("a", Behaviour::Succeed);
    let workers = queue.start_workers(JobKind::TranscribeVoice, 1, probe.clone()).await.expect("workers");
    let mut seen =
        vec![next(&mut runs, Duration::from_secs(5)).await.1, next(&mut runs, Duration::from_secs(5)).await.1];
    seen.sort_by_key(|job| job.key());
    assert_eq!(seen, vec![job(1), job(2)]);
    wait_until_empty(&queue).await;
    // Acknowledged: nothing comes back after the ack wait.
    assert!(tokio::time::timeout(Duration::from_millis(3_000), runs.recv()).await.is_err(), "no redelivery");
    assert_eq!(probe.count.load(Ordering::SeqCst), 2);
    workers.stop();
}

#[tokio::test]
async fn a_job_of_a_worker_that_dies_without_acking_goes_to_another_worker() {
    let Some(url) = nats_url("a_job_of_a_worker_that_dies_without_acking_goes_to_another_worker") else { return };
    let prefix = unique_prefix();
    // Two processes: each its own connection.
    let node_a = JetStreamJobs::connect(&url, &prefix, settings(1_000, 5)).await.expect("connect a");
    let node_b = JetStreamJobs::connect(&url, &prefix, settings(1_000, 5)).await.expect("connect b");
    let (hanging, mut runs_a) = Probe::new("a", Behaviour::Hang);
    let workers_a = node_a.start_workers(JobKind::TranscribeVoice, 1, hanging).await.expect("workers a");
    node_b.enqueue(job(7)).await.expect("enqueue");
    assert_eq!(next(&mut runs_a, Duration::from_secs(5)).await, ("a", job(7)));

    // a dies in the middle of the job: no ack, no progress any more.
    workers_a.stop();
    drop(node_a);
    let died = tokio::time::Instant::now();
    let (healthy, mut runs_b) = Probe::new("b", Behaviour::Succeed);
    let workers_b = node_b.start_workers(JobKind::TranscribeVoice, 1, healthy).await.expect("workers b");
    assert_eq!(next(&mut runs_b, Duration::from_secs(10)).await, ("b", job(7)));
    let waited = died.elapsed();
    println!("redelivered to the other worker {waited:?} after the first died (ack wait 1 s)");
    assert!(waited >= Duration::from_millis(500), "not before the ack wait ran out: {waited:?}");
    wait_until_empty(&node_b).await;
    workers_b.stop();
}

#[tokio::test]
async fn progress_keeps_a_long_job_from_being_delivered_again() {
    let Some(url) = nats_url("progress_keeps_a_long_job_from_being_delivered_again") else { return };
    let prefix = unique_prefix();
    let node_a = JetStreamJobs::connect(&url, &prefix, settings(900, 5)).await.expect("connect a");
    let node_b = JetStreamJobs::connect(&url, &prefix, settings(900, 5)).await.expect("connect b");
    // The job takes four ack waits; a idles on b's side meanwhile, ready to take a redelivery.
    let (slow, mut runs_a) = Probe::new("a", Behaviour::Slow(Duration::from_millis(3_600)));
    let workers_a = node_a.start_workers(JobKind::TranscribeVoice, 1, slow.clone()).await.expect("workers a");
    node_a.enqueue(job(3)).await.expect("enqueue");
    assert_eq!(next(&mut runs_a, Duration::from_secs(5)).await, ("a", job(3)));
    let (idle, mut runs_b) = Probe::new("b", Behaviour::Succeed);
    let workers_b = node_b.start_workers(JobKind::TranscribeVoice, 1, idle.clone()).await.expect("workers b");

    wait_until_empty(&node_a).await;
    assert!(tokio::time::timeout(Duration::from_millis(2_000), runs_b.recv()).await.is_err(), "b never got it");
    assert_eq!((slow.count.load(Ordering::SeqCst), idle.count.load(Ordering::SeqCst)), (1, 0));
    workers_a.stop();
    workers_b.stop();
}

#[tokio::test]
async fn a_job_failing_on_every_delivery_stops_at_max_deliver_and_is_removed() {
    let Some(url) = nats_url("a_job_failing_on_every_delivery_stops_at_max_deliver_and_is_removed") else { return };
    let queue = JetStreamJobs::connect(&url, &unique_prefix(), settings(1_000, 3)).await.expect("connect");
    let (failing, mut runs) = Probe::new("a", Behaviour::Retry);
    let workers = queue.start_workers(JobKind::TranscribeVoice, 1, failing.clone()).await.expect("workers");
    queue.enqueue(job(9)).await.expect("enqueue");
    for _ in 0..3 {
        assert_eq!(next(&mut runs, Duration::from_secs(10)).await.1, job(9));
    }
    // Retries are 1 s and 1 s (capped by the ack wait) apart; a fourth would come within 3 s.
    assert!(tokio::time::timeout(Duration::from_secs(3), runs.recv()).await.is_err(), "no fourth delivery");
    wait_until_empty(&queue).await;
    assert_eq!(queue.poisoned(), 1, "logged and removed once");
    assert_eq!(failing.count.load(Ordering::SeqCst), 3);
    workers.stop();
}

#[tokio::test]
async fn a_full_queue_refuses_new_jobs() {
    let Some(url) = nats_url("a_full_queue_refuses_new_jobs") else { return };
    let bounded = JobSettings { max_pending: 2, ..settings(1_000, 3) };
    let queue = JetStreamJobs::connect(&url, &unique_prefix(), bounded).await.expect("connect");
    queue.enqueue(job(1)).await.expect("room");
    queue.enqueue(job(2)).await.expect("room");
    assert!(matches!(queue.enqueue(job(3)).await, Err(JobError::Full)));
}

#[tokio::test]
async fn a_server_without_jetstream_or_a_bad_prefix_is_refused() {
    assert!(JetStreamJobs::connect("nats://127.0.0.1:1", "natter", JobSettings::default()).await.is_err());
    let Some(url) = nats_url("a_server_without_jetstream_or_a_bad_prefix_is_refused") else { return };
    assert!(JetStreamJobs::connect(&url, "natter.*", JobSettings::default()).await.is_err());
}

fn fan_out(seq: i64) -> Job {
    Job::FanOut(natter_core::jobs::FanOut {
        conversation_id: ConversationId::from("c1"),
        seq: Seq::new(seq),
        frame: natter_core::jobs::EncodedFrame(bytes::Bytes::from_static(br#"{"type":"message"}"#)),
        recipients: vec![natter_core::ids::UserId::from("u1")],
    })
}

/// Each kind of job has its own consumer, so fan-out workers never take a transcription (and a
/// long transcription never holds up a fan-out); the one consumer of every kind that an earlier
/// version made is removed at start, and the jobs it had not handed out stay queued.
#[tokio::test]
async fn each_kind_of_job_has_its_own_consumer_and_an_earlier_shared_one_is_removed() {
    let Some(url) = nats_url("each_kind_of_job_has_its_own_consumer") else { return };
    let queue = JetStreamJobs::connect(&url, &unique_prefix(), settings(2_000, 3)).await.expect("connect");
    let client = async_nats::connect(&url).await.expect("a NATS client");
    let stream = async_nats::jetstream::new(client).get_stream(queue.stream_name()).await.expect("the stream");
    let legacy = async_nats::jetstream::consumer::pull::Config {
        durable_name: Some("workers".into()),
        ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
        ..Default::default()
    };
    stream.create_consumer(legacy).await.expect("an earlier version's consumer");
    queue.enqueue(job(1)).await.expect("enqueue a transcription");
    queue.enqueue(fan_out(2)).await.expect("enqueue a fan-out");

    let (fans, mut fan_runs) = Probe::new("fan-out", Behaviour::Succeed);
    let fan_workers = queue.start_workers(JobKind::FanOut, 2, fans.clone()).await.expect("fan-out workers");
    assert_eq!(next(&mut fan_runs, Duration::from_secs(5)).await, ("fan-out", fan_out(2)));
    assert!(tokio::time::timeout(Duration::from_millis(1_500), fan_runs.recv()).await.is_err(), "not a transcription");
    assert!(stream.get_consumer::<async_nats::jetstream::consumer::pull::Config>("workers").await.is_err());

    let (transcribers, mut transcribe_runs) = Probe::new("transcribe", Behaviour::Succeed);
    let transcribe_workers =
        queue.start_workers(JobKind::TranscribeVoice, 1, transcribers).await.expect("transcription workers");
    assert_eq!(next(&mut transcribe_runs, Duration::from_secs(5)).await, ("transcribe", job(1)));
    wait_until_empty(&queue).await;
    assert_eq!(fans.count.load(Ordering::SeqCst), 1);
    fan_workers.stop();
    transcribe_workers.stop();
}
