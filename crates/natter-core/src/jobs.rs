//! The durable-jobs port: background work that must happen at least once even if the process
//! that accepted it dies (transcribing a voice message; pushing a large group's entry to the
//! gateways, see [`crate::fan_out`]).
//!
//! A [`Job`] is typed domain data (serde). The one client frame a job carries is a fan-out's:
//! the bytes it delivers, as the chat node encoded them, never parsed or built from. A producer
//! calls [`JobQueue::enqueue`] after the change that calls for the job has committed; a worker
//! process calls [`JobQueue::start_workers`] for a [`JobKind`] with a [`JobHandler`], so that
//! each kind has its own workers (a long transcription never holds up a fan-out). An adapter
//! acknowledges a job only after the handler has returned, so a job whose worker dies is
//! delivered again (to another worker, for a shared adapter): handlers must be idempotent. Every
//! job names what it works on (the conversation and `seq` of its entry), so a handler can tell
//! that the work is already done.
//!
//! Adapters (natter-bus): in-process (a bounded queue, lost with the process; what an embedded
//! `natter serve` needs) and NATS JetStream (a work-queue stream shared by every worker).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::ids::{ConversationId, FileId, Seq, UserId};

/// One unit of background work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Job {
    /// Transcribe a stored voice message and append its `transcript` entry.
    TranscribeVoice(TranscribeVoice),
    /// Push a log entry to the gateways holding its recipients (a group above
    /// `delivery.worker_fanout_above` members).
    FanOut(FanOut),
}

/// The voice message at (`conversation_id`, `seq`), whose audio is `file_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscribeVoice {
    pub conversation_id: ConversationId,
    pub seq: Seq,
    pub file_id: FileId,
}

/// The log entry at (`conversation_id`, `seq`), to be published to the gateways of
/// `recipients`. Idempotent by (conversation, `seq`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FanOut {
    pub conversation_id: ConversationId,
    pub seq: Seq,
    /// The entry's `message` frame, encoded once by the chat node.
    pub frame: EncodedFrame,
    pub recipients: Vec<UserId>,
}

/// A JSON-encoded server frame, carried as a JSON string: its bytes come back as they were
/// (escaping its quotes costs a few percent of a job whose bulk is the recipient ids; a raw
/// embedded value cannot be read back through the tagged `Job` enum).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame(pub Bytes);

impl Serialize for EncodedFrame {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = std::str::from_utf8(&self.0).map_err(|_| serde::ser::Error::custom("a frame is UTF-8 JSON"))?;
        serializer.serialize_str(text)
    }
}

impl<'de> Deserialize<'de> for EncodedFrame {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self(Bytes::from(String::deserialize(deserializer)?.into_bytes())))
    }
}

impl Job {
    /// What kind of job this is: one token, usable in a NATS subject and in logs.
    pub fn kind(&self) -> JobKind {
        match self {
            Job::TranscribeVoice(_) => JobKind::TranscribeVoice,
            Job::FanOut(_) => JobKind::FanOut,
        }
    }

    /// The same for the same work: an adapter may drop an enqueue whose key it has just seen.
    pub fn key(&self) -> String {
        match self {
            Job::TranscribeVoice(job) => format!("transcribe_voice.{}.{}", job.conversation_id, job.seq),
            Job::FanOut(job) => format!("fan_out.{}.{}", job.conversation_id, job.seq),
        }
    }
}

/// The kinds of [`Job`]. Each has its own workers ([`JobQueue::start_workers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    TranscribeVoice,
    FanOut,
}

impl JobKind {
    pub const ALL: [JobKind; 2] = [JobKind::TranscribeVoice, JobKind::FanOut];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::TranscribeVoice => "transcribe_voice",
            JobKind::FanOut => "fan_out",
        }
    }
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What became of one run of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// Done, or found done already, or found pointless (the voice message was recalled): its
    /// effect is committed, the job is acknowledged and never runs again.
    Done,
    /// A passing failure (database or engine busy, unreachable): run it again later, up to the
    /// adapter's bound on deliveries.
    Retry(String),
    /// It can never succeed (audio that cannot be decoded): acknowledged, logged, not retried.
    Failed(String),
}

/// Runs jobs. Called concurrently, and possibly more than once for one job.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    async fn run(&self, job: Job) -> JobOutcome;
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The queue holds as many jobs as it may; this one was not taken.
    #[error("the job queue is full")]
    Full,
    #[error("job queue unavailable: {0}")]
    Unavailable(String),
}

/// Limits every adapter applies.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// Jobs waiting at most (of every kind together); an enqueue beyond it fails with [`JobError::Full`].
    pub max_pending: usize,
    /// How long a delivered job may go without an acknowledgement or a sign of progress before
    /// it is delivered again (JetStream's ack wait; workers signal progress well within it).
    pub ack_wait: Duration,
    /// Deliveries of one job at most; a job that fails (or kills its worker) this often is
    /// logged as poisoned and dropped.
    pub max_deliver: u32,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self { max_pending: 10_000, ack_wait: Duration::from_secs(30), max_deliver: 5 }
    }
}

impl JobSettings {
    /// How long to wait before running a job that asked for a retry, after `delivered` runs.
    pub fn retry_delay(&self, delivered: u32) -> Duration {
        let seconds = 1u64 << delivered.saturating_sub(1).min(5);
        Duration::from_secs(seconds).min(self.ack_wait)
    }
}

/// The port.
#[async_trait]
pub trait JobQueue: Send + Sync + 'static {
    /// Stores `job` for some worker; returns once the adapter holds it (JetStream: the server
    /// has stored it). Called after the change that asks for the job has committed.
    async fn enqueue(&self, job: Job) -> Result<(), JobError>;

    /// Starts this process's workers for the jobs of `kind` (`workers` jobs at once), which run
    /// `handler` and acknowledge each job only after it returned. They run until
    /// [`Workers::stop`] (dropping the handle leaves them running) or the process ends.
    async fn start_workers(
        &self,
        kind: JobKind,
        workers: usize,
        handler: Arc<dyn JobHandler>,
    ) -> Result<Workers, JobError>;
}

/// The worker tasks of one [`JobQueue::start_workers`] call.
#[derive(Default)]
pub struct Workers {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Workers {
    pub fn new(tasks: Vec<tokio::task::JoinHandle<()>>) -> Self {
        Self { tasks }
    }

    /// Stops the workers at once, as a crash would: a job in hand is not acknowledged, so a
    /// shared adapter delivers it again after its ack wait.
    pub fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fan_out_job_carries_its_frame_and_reads_back_the_same_bytes() {
        let frame = r#"{"type":"message","message":{"seq":7,"text":"a \"quoted\" word ✓"}}"#.as_bytes();
        let job = Job::FanOut(FanOut {
            conversation_id: ConversationId::from("c1"),
            seq: Seq::new(7),
            frame: EncodedFrame(Bytes::from_static(frame)),
            recipients: vec![UserId::from("u1"), UserId::from("u2")],
        });
        let json = serde_json::to_string(&job).expect("encodes");
        assert!(json.starts_with(r#"{"type":"fan_out","conversation_id":"c1","seq":7,"frame":"{\"type\":"#), "{json}");
        assert!(json.ends_with(r#","recipients":["u1","u2"]}"#), "{json}");
        let back: Job = serde_json::from_str(&json).expect("decodes");
        assert_eq!(back, job, "the same frame bytes");
        assert_eq!(job.key(), "fan_out.c1.7");
        assert_eq!(job.kind().as_str(), "fan_out");
    }

    #[test]
    fn a_frame_that_is_not_utf8_is_not_encoded() {
        let job = Job::FanOut(FanOut {
            conversation_id: ConversationId::from("c1"),
            seq: Seq::FIRST,
            frame: EncodedFrame(Bytes::from_static(b"\xff")),
            recipients: Vec::new(),
        });
        assert!(serde_json::to_vec(&job).is_err());
    }
}
