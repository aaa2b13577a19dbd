//! Adapters of natter-core's durable-jobs port ([`natter_core::jobs::JobQueue`]).
//!
//! * [`MemoryJobs`]: a bounded in-process queue for an embedded `natter serve`. Jobs are lost
//!   with the process, as before there were durable jobs.
//! * [`JetStreamJobs`]: a NATS JetStream work-queue stream shared by every worker of a cluster.

mod jetstream;
mod memory;

pub use jetstream::JetStreamJobs;
pub use memory::MemoryJobs;

use natter_core::jobs::{Job, JobKind, JobOutcome};

/// Logs the start of a run: a transcription's always (they are few and long), a fan-out's only
/// when it is delivered again (one runs for every message to a large group).
fn log_started(job: &Job, delivered: u32) {
    if job.kind() == JobKind::TranscribeVoice || delivered > 1 {
        tracing::info!(job = %job.key(), delivered, "job started");
    } else {
        tracing::debug!(job = %job.key(), delivered, "job started");
    }
}

/// Logs how a run ended, the same way for every adapter.
fn log_outcome(job: &Job, delivered: u32, outcome: &JobOutcome) {
    match outcome {
        JobOutcome::Done => tracing::debug!(job = %job.key(), delivered, "job done"),
        JobOutcome::Retry(why) => tracing::warn!(job = %job.key(), delivered, %why, "job failed; it will be retried"),
        JobOutcome::Failed(why) => tracing::warn!(job = %job.key(), delivered, %why, "job failed for good; dropped"),
    }
}
