//! Durable jobs on NATS JetStream.
//!
//! One work-queue stream, `<prefix>_jobs` for the subjects `<prefix>.jobs.>` (a job of kind K is
//! published to `<prefix>.jobs.K` as JSON), and one durable pull consumer per kind, named after
//! it (`transcribe_voice`, `fan_out`) and filtered to its subject, shared by every worker process
//! of that kind, so each job goes to exactly one worker at a time and a kind's workers never wait
//! behind another kind's jobs. A worker acknowledges
//! a job (and waits for the server to confirm it) only after its handler returned, that is after
//! the job's effect committed; while the handler runs it sends in-progress acks every third of
//! the ack wait. A worker that dies stops both, so its job is delivered again to another worker
//! once the ack wait has passed. A handler asking for a retry gets a delayed negative ack. After
//! `max_deliver` deliveries the server gives up on a job and says so with an advisory; one
//! worker (a queue group) logs the poisoned job and deletes it from the stream.
//!
//! The stream is bounded (`max_pending` jobs, new ones refused when full) and file-backed; an
//! enqueue returns once the server has stored the job. Publishes carry the job's key as
//! `Nats-Msg-Id`, so the same job enqueued twice within two minutes is stored once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer, stream};
use async_trait::async_trait;
use futures_util::StreamExt;
use natter_core::jobs::{Job, JobError, JobHandler, JobKind, JobOutcome, JobQueue, JobSettings, Workers};

/// The one durable consumer of every kind that natter made before each kind had its own. A work
/// queue takes no filtered consumer beside an unfiltered one, so it is removed (its jobs stay in
/// the stream, for the consumers of their kinds).
const LEGACY_CONSUMER: &str = "workers";
/// How long one pull waits on the server for a job before asking again.
const PULL_EXPIRES: Duration = Duration::from_secs(5);
/// How long a publish waits for the server to confirm that it stored the job.
const PUBLISH_ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// The JetStream job queue; cheap to clone.
#[derive(Clone)]
pub struct JetStreamJobs {
    client: async_nats::Client,
    context: jetstream::Context,
    stream: String,
    subject_prefix: String,
    settings: JobSettings,
    poisoned: Arc<AtomicU64>,
}

impl JetStreamJobs {
    /// Connects to `url` and makes sure the jobs stream exists. Fails if the server cannot be
    /// reached or has no JetStream (nats-server needs `-js`).
    pub async fn connect(url: &str, prefix: &str, settings: JobSettings) -> Result<Self, JobError> {
        check_prefix(prefix)?;
        let client = async_nats::ConnectOptions::new()
            .name("natter-jobs")
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|error| failed("connect", error))?;
        let mut context = jetstream::new(client.clone());
        context.set_timeout(PUBLISH_ACK_TIMEOUT);
        let stream = format!("{}_jobs", prefix.replace('.', "_"));
        let config = stream::Config {
            name: stream.clone(),
            subjects: vec![format!("{prefix}.jobs.>")],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            max_messages: i64::try_from(settings.max_pending).unwrap_or(i64::MAX),
            discard: stream::DiscardPolicy::New,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        context.create_or_update_stream(config).await.map_err(|error| failed("create the jobs stream", error))?;
        tracing::info!(%stream, "job queue on NATS JetStream");
        Ok(Self {
            client,
            context,
            stream,
            subject_prefix: format!("{prefix}.jobs"),
            settings,
            poisoned: Arc::default(),
        })
    }

    /// The stream's name (`<prefix>_jobs`, dots replaced).
    pub fn stream_name(&self) -> &str {
        &self.stream
    }

    /// Poisoned jobs this process has logged and removed so far.
    pub fn poisoned(&self) -> u64 {
        self.poisoned.load(Ordering::Relaxed)
    }

    /// Jobs stored and not yet acknowledged (waiting or in hand).
    pub async fn pending(&self) -> Result<u64, JobError> {
        let mut stream =
            self.context.get_stream(&self.stream).await.map_err(|error| failed("get the stream", error))?;
        Ok(stream.info().await.map_err(|error| failed("stream info", error))?.state.messages)
    }

    /// The durable consumer of `kind`'s jobs.
    async fn consumer(&self, kind: JobKind) -> Result<consumer::Consumer<consumer::pull::Config>, JobError> {
        let stream = self.context.get_stream(&self.stream).await.map_err(|error| failed("get the stream", error))?;
        if stream.get_consumer::<consumer::pull::Config>(LEGACY_CONSUMER).await.is_ok() {
            match stream.delete_consumer(LEGACY_CONSUMER).await {
                Ok(_) => {
                    tracing::info!("removed the jobs consumer `workers` of an earlier version; its jobs stay queued")
                }
                Err(error) => tracing::warn!(%error, "cannot remove the jobs consumer `workers` of an earlier version"),
            }
        }
        let name = kind.as_str();
        let config = consumer::pull::Config {
            durable_name: Some(name.into()),
            filter_subject: self.subject(kind),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: self.settings.ack_wait,
            max_deliver: i64::from(self.settings.max_deliver),
            ..Default::default()
        };
        match stream.create_consumer(config).await {
            Ok(consumer) => Ok(consumer),
            // Made earlier with other settings: use it as it is (see docs/CONFIG.md).
            Err(error) => {
                let existing = stream.get_consumer(name).await.map_err(|_| failed("create the consumer", &error))?;
                tracing::warn!(%error, consumer = name, "the jobs consumer exists with other settings; using it unchanged");
                Ok(existing)
            }
        }
    }

    /// `<prefix>.jobs.<kind>`.
    fn subject(&self, kind: JobKind) -> String {
        format!("{}.{kind}", self.subject_prefix)
    }
}

#[async_trait]
impl JobQueue for JetStreamJobs {
    async fn enqueue(&self, job: Job) -> Result<(), JobError> {
        let payload = serde_json::to_vec(&job).map_err(|error| failed("encode the job", error))?;
        let subject = self.subject(job.kind());
        let publish = jetstream::message::PublishMessage::build().payload(payload.into()).message_id(job.key());
        let ack = self.context.send_publish(subject, publish).await.map_err(|error| failed("publish", error))?;
        match ack.await {
            Ok(_) => Ok(()),
            Err(error) if error.to_string().contains("maximum messages") => Err(JobError::Full),
            Err(error) => Err(failed("publish", error)),
        }
    }

    async fn start_workers(
        &self,
        kind: JobKind,
        workers: usize,
        handler: Arc<dyn JobHandler>,
    ) -> Result<Workers, JobError> {
        let consumer = self.consumer(kind).await?;
        let mut tasks: Vec<_> = (0..workers.max(1))
            .map(|_| {
                let worker =
                    Worker { consumer: consumer.clone(), handler: handler.clone(), settings: self.settings.clone() };
                tokio::spawn(worker.run())
            })
            .collect();
        tasks.push(tokio::spawn(self.clone().remove_poisoned(kind)));
        Ok(Workers::new(tasks))
    }
}

impl JetStreamJobs {
    /// Follows the server's max-deliveries advisories for `kind`'s consumer (one process of the
    /// queue group gets each): logs the job and deletes it, so it does not take room forever.
    async fn remove_poisoned(self, kind: JobKind) {
        let subject = format!("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{kind}", self.stream);
        let group = format!("{}-poison-{kind}", self.stream);
        let mut advisories = match self.client.queue_subscribe(subject, group).await {
            Ok(subscriber) => subscriber,
            Err(error) => {
                tracing::error!(%error, "cannot follow poisoned jobs; they stay in the stream");
                return;
            }
        };
        while let Some(advisory) = advisories.next().await {
            let Ok(advisory) = serde_json::from_slice::<MaxDeliveries>(&advisory.payload) else { continue };
            self.remove_one(advisory).await;
        }
    }

    async fn remove_one(&self, advisory: MaxDeliveries) {
        let Ok(stream) = self.context.get_stream(&self.stream).await else { return };
        let job = match stream.get_raw_message(advisory.stream_seq).await {
            Ok(message) => String::from_utf8_lossy(&message.payload).into_owned(),
            // Another process of a misconfigured cluster took it, or it was acked at the last moment.
            Err(_) => return,
        };
        tracing::error!(stream_seq = advisory.stream_seq, deliveries = advisory.deliveries, %job,
            "poisoned job: failed or lost its worker on every delivery; removed");
        match stream.delete_message(advisory.stream_seq).await {
            Ok(_) => {
                self.poisoned.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => tracing::warn!(%error, "cannot remove a poisoned job"),
        }
    }
}

/// The part of `io.nats.jetstream.advisory.v1.max_deliver` that matters here.
#[derive(serde::Deserialize)]
struct MaxDeliveries {
    stream_seq: u64,
    deliveries: u64,
}

struct Worker {
    consumer: consumer::Consumer<consumer::pull::Config>,
    handler: Arc<dyn JobHandler>,
    settings: JobSettings,
}

impl Worker {
    /// Pulls one job at a time, so a job waits on the server (where any worker can take it)
    /// rather than in this worker's buffer.
    async fn run(self) {
        loop {
            let batch = self.consumer.batch().max_messages(1).expires(PULL_EXPIRES).messages().await;
            let mut batch = match batch {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::warn!(%error, "cannot pull jobs; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            while let Some(message) = batch.next().await {
                match message {
                    Ok(message) => self.handle(message).await,
                    Err(error) => tracing::debug!(%error, "pull ended"),
                }
            }
        }
    }

    async fn handle(&self, message: jetstream::Message) {
        let delivered = message.info().map(|info| u32::try_from(info.delivered).unwrap_or(u32::MAX)).unwrap_or(1);
        let job: Job = match serde_json::from_slice(&message.payload) {
            Ok(job) => job,
            Err(error) => {
                tracing::error!(%error, subject = %message.subject, "undecodable job; dropped");
                let _ = message.ack_with(AckKind::Term).await;
                return;
            }
        };
        super::log_started(&job, delivered);
        let outcome = self.run_with_progress(&message, job.clone()).await;
        super::log_outcome(&job, delivered, &outcome);
        let acked = match outcome {
            JobOutcome::Done | JobOutcome::Failed(_) => message.double_ack().await,
            JobOutcome::Retry(_) => message.ack_with(AckKind::Nak(Some(self.settings.retry_delay(delivered)))).await,
        };
        if let Err(error) = acked {
            // The job runs again after the ack wait; its handler finds it done.
            tracing::warn!(job = %job.key(), %error, "cannot acknowledge a job");
        }
    }

    /// Runs the handler, telling the server every third of the ack wait that the job is alive.
    async fn run_with_progress(&self, message: &jetstream::Message, job: Job) -> JobOutcome {
        let every = (self.settings.ack_wait / 3).max(Duration::from_millis(100));
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let run = self.handler.run(job);
        tokio::pin!(run);
        loop {
            tokio::select! {
                outcome = &mut run => return outcome,
                _ = ticks.tick() => {
                    if let Err(error) = message.ack_with(AckKind::Progress).await {
                        tracing::warn!(%error, "cannot extend a job's ack wait");
                    }
                }
            }
        }
    }
}

/// Prefixes must be plain subject tokens: a wildcard would mix clusters' jobs.
fn check_prefix(prefix: &str) -> Result<(), JobError> {
    let valid_token = |token: &str| {
        !token.is_empty()
            && !token.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '*' | '>' | '/' | '\\'))
    };
    if prefix.split('.').all(valid_token) {
        Ok(())
    } else {
        Err(JobError::Unavailable(format!("invalid NATS subject prefix {prefix:?}")))
    }
}

fn failed(what: &str, error: impl std::fmt::Display) -> JobError {
    JobError::Unavailable(format!("NATS JetStream: cannot {what}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_plain_tokens() {
        assert!(check_prefix("natter").is_ok());
        assert!(check_prefix("prod.eu-1").is_ok());
        for bad in ["", "a..b", "a.*", ">", "a b", "a/b"] {
            assert!(check_prefix(bad).is_err(), "{bad:?}");
        }
    }
}
