//! The `[delivery]` section: when a large group's entry is fanned out by a worker.

use anyhow::bail;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// With targeted delivery (Redis + NATS), a log entry for more recipients than this is
    /// queued as a fan-out job for a worker instead of looked up and published by the chat node
    /// (which then publishes it only for the search indexer). 0: never.
    pub worker_fanout_above: usize,
    /// Fan-out jobs one process runs at once (where jobs run: workers, or the chat role with
    /// `jobs.backend = "memory"`). 0: this process runs none.
    pub fanout_workers: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self { worker_fanout_above: 300, fanout_workers: 4 }
    }
}

impl DeliveryConfig {
    pub fn validate(&self, jobs_backend: crate::jobs::JobsBackend) -> anyhow::Result<()> {
        if self.worker_fanout_above > 0 && self.fanout_workers == 0 && jobs_backend == crate::jobs::JobsBackend::Memory
        {
            bail!(
                "delivery.fanout_workers = 0 with jobs.backend = \"memory\" would leave large groups' pushes queued \
                 for ever: set delivery.worker_fanout_above = 0, or use jobs.backend = \"jetstream\""
            );
        }
        Ok(())
    }
}

pub(crate) const EXAMPLE: &str = r#"
[delivery]
# With Redis and NATS (targeted delivery), an entry for more recipients than this goes to a
# fan-out worker: the chat node queues one durable job (see [jobs]) and a worker looks the
# recipients up in batches and publishes one event per gateway. 0: chat nodes publish every
# entry themselves. Without Redis (broadcast delivery) it changes nothing.
worker_fanout_above = 300
# Fan-out jobs one process runs at once, where jobs run (workers; the chat role with
# jobs.backend = "memory"). 0: none here.
fanout_workers = 4
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::JobsBackend;

    #[test]
    fn fan_out_needs_someone_to_run_it() {
        let none_here = DeliveryConfig { fanout_workers: 0, ..DeliveryConfig::default() };
        assert!(none_here.validate(JobsBackend::Memory).is_err(), "nobody would run the memory queue's jobs");
        assert!(none_here.validate(JobsBackend::Jetstream).is_ok(), "workers elsewhere run them");
        let off = DeliveryConfig { worker_fanout_above: 0, fanout_workers: 0 };
        assert!(off.validate(JobsBackend::Memory).is_ok());
        assert!(DeliveryConfig::default().validate(JobsBackend::Memory).is_ok());
    }
}
