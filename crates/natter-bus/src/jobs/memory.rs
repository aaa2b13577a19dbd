//! The in-process job queue: a bounded channel per kind of job and a few worker tasks each.

use std::sync::Arc;

use async_trait::async_trait;
use natter_core::jobs::{Job, JobError, JobHandler, JobKind, JobOutcome, JobQueue, JobSettings, Workers};
use tokio::sync::{Mutex, mpsc};

/// Jobs wait in memory (at most `max_pending` of each kind); a full queue refuses the enqueue. A
/// job asking for a retry is run again after a delay, at most `max_deliver` times in all.
/// Nothing survives the process.
pub struct MemoryJobs {
    /// One per [`JobKind::ALL`], in that order.
    queues: Vec<Channel>,
    settings: JobSettings,
}

struct Channel {
    sender: mpsc::Sender<(Job, u32)>,
    receiver: Arc<Mutex<mpsc::Receiver<(Job, u32)>>>,
}

impl MemoryJobs {
    pub fn new(settings: JobSettings) -> Self {
        let queues = JobKind::ALL
            .iter()
            .map(|_| {
                let (sender, receiver) = mpsc::channel(settings.max_pending.max(1));
                Channel { sender, receiver: Arc::new(Mutex::new(receiver)) }
            })
            .collect();
        Self { queues, settings }
    }

    fn channel(&self, kind: JobKind) -> Result<&Channel, JobError> {
        let index = JobKind::ALL.iter().position(|known| *known == kind);
        index.and_then(|index| self.queues.get(index)).ok_or(JobError::Unavailable(format!("no queue for {kind}")))
    }
}

#[async_trait]
impl JobQueue for MemoryJobs {
    async fn enqueue(&self, job: Job) -> Result<(), JobError> {
        self.channel(job.kind())?.sender.try_send((job, 0)).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => JobError::Full,
            mpsc::error::TrySendError::Closed(_) => JobError::Unavailable("the job queue is closed".into()),
        })
    }

    async fn start_workers(
        &self,
        kind: JobKind,
        workers: usize,
        handler: Arc<dyn JobHandler>,
    ) -> Result<Workers, JobError> {
        let channel = self.channel(kind)?;
        let tasks = (0..workers.max(1))
            .map(|_| {
                let worker = Worker {
                    receiver: channel.receiver.clone(),
                    retry: channel.sender.downgrade(),
                    handler: handler.clone(),
                    settings: self.settings.clone(),
                };
                tokio::spawn(worker.run())
            })
            .collect();
        Ok(Workers::new(tasks))
    }
}

struct Worker {
    receiver: Arc<Mutex<mpsc::Receiver<(Job, u32)>>>,
    /// Weak, so that the queue closes when the `MemoryJobs` goes away.
    retry: mpsc::WeakSender<(Job, u32)>,
    handler: Arc<dyn JobHandler>,
    settings: JobSettings,
}

impl Worker {
    async fn run(self) {
        loop {
            let Some((job, runs)) = self.receiver.lock().await.recv().await else { return };
            let delivered = runs + 1;
            super::log_started(&job, delivered);
            let outcome = self.handler.run(job.clone()).await;
            super::log_outcome(&job, delivered, &outcome);
            if let JobOutcome::Retry(_) = outcome {
                self.retry_later(job, delivered);
            }
        }
    }

    fn retry_later(&self, job: Job, delivered: u32) {
        if delivered >= self.settings.max_deliver {
            tracing::error!(job = %job.key(), ?job, delivered, "poisoned job: failed on every delivery; dropped");
            return;
        }
        let Some(sender) = self.retry.upgrade() else { return };
        let delay = self.settings.retry_delay(delivered);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if sender.try_send((job, delivered)).is_err() {
                tracing::warn!("job queue full or closed: a job to retry is dropped");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use natter_core::ids::{ConversationId, FileId, Seq};
    use natter_core::jobs::TranscribeVoice;

    use super::*;

    fn job(seq: i64) -> Job {
        Job::TranscribeVoice(TranscribeVoice {
            conversation_id: ConversationId::from("c"),
            seq: Seq::new(seq),
            file_id: FileId::from("f"),
        })
    }

    struct Flaky {
        runs: AtomicU32,
        fail_first: u32,
        done: mpsc::UnboundedSender<Job>,
    }

    #[async_trait]
    impl JobHandler for Flaky {
        async fn run(&self, job: Job) -> JobOutcome {
            let run = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
            if run <= self.fail_first {
                return JobOutcome::Retry("not yet".into());
            }
            let _ = self.done.send(job);
            JobOutcome::Done
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_is_retried_until_done_and_a_full_queue_refuses() {
        let settings = JobSettings { max_pending: 1, max_deliver: 3, ..JobSettings::default() };
        let jobs = MemoryJobs::new(settings);
        jobs.enqueue(job(1)).await.expect("room for one");
        assert!(matches!(jobs.enqueue(job(2)).await, Err(JobError::Full)));

        let (done, mut finished) = mpsc::unbounded_channel();
        let handler = Arc::new(Flaky { runs: AtomicU32::new(0), fail_first: 2, done });
        let _workers = jobs.start_workers(JobKind::TranscribeVoice, 1, handler.clone()).await.expect("workers");
        let finished = tokio::time::timeout(Duration::from_secs(60), finished.recv()).await.expect("done in time");
        assert_eq!(finished, Some(job(1)));
        assert_eq!(handler.runs.load(Ordering::SeqCst), 3, "two retries, then done");
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_failing_every_time_stops_after_max_deliver() {
        let settings = JobSettings { max_pending: 4, max_deliver: 3, ..JobSettings::default() };
        let jobs = MemoryJobs::new(settings);
        let (done, _finished) = mpsc::unbounded_channel();
        let handler = Arc::new(Flaky { runs: AtomicU32::new(0), fail_first: u32::MAX, done });
        let _workers = jobs.start_workers(JobKind::TranscribeVoice, 1, handler.clone()).await.expect("workers");
        jobs.enqueue(job(1)).await.expect("enqueue");
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(handler.runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn each_kind_has_its_own_queue_and_workers() {
        let jobs = MemoryJobs::new(JobSettings { max_pending: 1, ..JobSettings::default() });
        let fan_out = Job::FanOut(natter_core::jobs::FanOut {
            conversation_id: ConversationId::from("c"),
            seq: Seq::FIRST,
            frame: natter_core::jobs::EncodedFrame(bytes::Bytes::from_static(b"{}")),
            recipients: Vec::new(),
        });
        jobs.enqueue(job(1)).await.expect("room for a transcription");
        jobs.enqueue(fan_out.clone()).await.expect("a fan-out has its own room");

        let (done, mut finished) = mpsc::unbounded_channel();
        let handler = Arc::new(Flaky { runs: AtomicU32::new(0), fail_first: 0, done });
        let _workers = jobs.start_workers(JobKind::FanOut, 2, handler.clone()).await.expect("workers");
        let ran = tokio::time::timeout(Duration::from_secs(5), finished.recv()).await.expect("in time");
        assert_eq!(ran, Some(fan_out));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(handler.runs.load(Ordering::SeqCst), 1, "the transcription waits for its own workers");
    }
}
