//! The `[jobs]` configuration section, opening the job queue it names, and starting this
//! process's job consumers (the composition of natter-bus's job adapters behind natter-core's
//! port).
//!
//! Enqueueing happens wherever a voice message is sent ([`Services::send_message`]) and, with
//! worker fan-out (`[delivery]`), wherever a large group's entry is appended; consumers run only
//! where [`start_consumers`] is called (workers, or the chat role of a memory queue), so a process
//! that should not run jobs (a gateway) simply does not call it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use natter_bus::jobs::{JetStreamJobs, MemoryJobs};
use natter_core::fan_out::FanOutMetrics;
use natter_core::jobs::{JobKind, JobQueue, JobSettings, Workers};
use natter_core::service::Services;
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// Where jobs wait.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobsBackend {
    /// In the process's memory: lost on a crash or restart (one process).
    #[default]
    Memory,
    /// A NATS JetStream work-queue stream on `bus.nats_url` (needs `bus.kind = "nats"`).
    Jetstream,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    pub backend: JobsBackend,
    /// Transcription jobs one process runs at once. 0 (jetstream only): this process queues
    /// them and runs none (other processes do). Fan-out jobs: `delivery.fanout_workers`.
    pub workers: usize,
    /// Jobs waiting at most; beyond it a job is not queued (logged).
    pub max_pending: usize,
    /// JetStream: seconds a job may go unacknowledged (workers send progress within it) before
    /// it is delivered to another worker.
    pub ack_wait_secs: u64,
    /// Deliveries of one job at most before it is logged as poisoned and dropped.
    pub max_deliver: u32,
}

impl Default for JobsConfig {
    fn default() -> Self {
        let settings = JobSettings::default();
        Self {
            backend: JobsBackend::Memory,
            workers: 1,
            max_pending: settings.max_pending,
            ack_wait_secs: settings.ack_wait.as_secs(),
            max_deliver: settings.max_deliver,
        }
    }
}

impl JobsConfig {
    pub fn validate(&self, bus_kind: crate::config::BusKind) -> anyhow::Result<()> {
        if self.backend == JobsBackend::Jetstream && bus_kind != crate::config::BusKind::Nats {
            bail!("jobs.backend = \"jetstream\" needs bus.kind = \"nats\" (it uses bus.nats_url)");
        }
        if self.max_pending == 0 || self.ack_wait_secs == 0 || self.max_deliver == 0 {
            bail!("jobs.max_pending, ack_wait_secs and max_deliver must be positive");
        }
        if self.workers == 0 && self.backend == JobsBackend::Memory {
            bail!("jobs.workers = 0 needs jobs.backend = \"jetstream\" (with memory, jobs would never run)");
        }
        Ok(())
    }

    fn settings(&self) -> JobSettings {
        JobSettings {
            max_pending: self.max_pending,
            ack_wait: Duration::from_secs(self.ack_wait_secs),
            max_deliver: self.max_deliver,
        }
    }
}

/// Opens the configured job queue (JetStream: connects and makes sure the stream exists).
pub async fn open_queue(config: &Config) -> anyhow::Result<Arc<dyn JobQueue>> {
    let settings = config.jobs.settings();
    Ok(match config.jobs.backend {
        JobsBackend::Memory => Arc::new(MemoryJobs::new(settings)),
        JobsBackend::Jetstream => Arc::new(
            JetStreamJobs::connect(&config.bus.nats_url, &config.bus.subject_prefix, settings)
                .await
                .with_context(|| format!("cannot open the job queue on NATS JetStream at {}", config.bus.nats_url))?,
        ),
    })
}

/// Starts this process's job consumers, for the jobs it can run: transcriptions (`jobs.workers`
/// at once) with a speech engine, fan-outs (`delivery.fanout_workers` at once, counted in
/// `metrics`) with targeted delivery. Empty when there is nothing to run here.
pub async fn start_consumers(
    config: &Config,
    queue: &Arc<dyn JobQueue>,
    services: &Services,
    metrics: Arc<dyn FanOutMetrics>,
) -> anyhow::Result<Vec<Workers>> {
    let mut started = Vec::new();
    if config.jobs.workers == 0 {
        tracing::info!("no transcription consumers: jobs.workers = 0");
    } else if !services.speech.is_available() {
        tracing::info!("no transcription consumers: speech-to-text is off");
    } else {
        let runner = Arc::new(services.job_runner());
        let workers = queue.start_workers(JobKind::TranscribeVoice, config.jobs.workers, runner).await;
        started.push(workers.context("cannot start the transcription consumers")?);
    }
    let fanout_workers = config.delivery.fanout_workers;
    if fanout_workers == 0 {
        tracing::info!("no fan-out consumers: delivery.fanout_workers = 0");
    } else if let Some(runner) = services.fan_out_runner(metrics) {
        let workers = queue.start_workers(JobKind::FanOut, fanout_workers, Arc::new(runner)).await;
        started.push(workers.context("cannot start the fan-out consumers")?);
    } else {
        tracing::info!("no fan-out consumers: delivery is not targeted (no Redis, or no NATS)");
    }
    Ok(started)
}

/// Voice messages at most this old are transcribed again at start-up when they have none.
const REQUEUE_WITHIN: Duration = Duration::from_secs(24 * 60 * 60);
/// At most this many of them per start.
const REQUEUE_AT_MOST: u32 = 1000;

/// Queues again, in the background, the transcriptions a crash may have lost (see
/// [`Services::requeue_transcripts`]): the voice messages of the last 24 hours without a
/// transcript. Called where jobs run, once they do.
pub fn requeue_lost_transcriptions(services: Arc<Services>) {
    tokio::spawn(async move {
        match services.requeue_transcripts(REQUEUE_WITHIN, REQUEUE_AT_MOST).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "voice messages without a transcript queued again"),
            Err(error) => tracing::warn!(%error, "cannot look for voice messages without a transcript"),
        }
    });
}

/// The `[jobs]` part of `natter config example`.
pub const EXAMPLE: &str = r#"
[jobs]
# Where background jobs (voice-message transcriptions, large groups' fan-out) wait: "memory" (in
# this process; lost on a crash) or "jetstream" (a NATS JetStream work-queue stream on
# bus.nats_url, shared by every process; needs bus.kind = "nats" and nats-server with -js). At
# least once: a job whose worker dies runs again elsewhere, and runs are idempotent.
backend = "memory"
# Transcriptions one process runs at once. 0 (jetstream only): queue them here, run them elsewhere.
workers = 1
# Jobs waiting at most; beyond it a voice message is stored but not transcribed, and a large
# group's entry is published by its chat node (logged).
max_pending = 10000
# jetstream: seconds without an acknowledgement or progress before a job goes to another worker.
ack_wait_secs = 30
# Deliveries of one job at most; then it is logged as poisoned and removed.
max_deliver = 5
"#;
