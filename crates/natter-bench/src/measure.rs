//! What a scenario run produces: throughput, latency percentiles, resource use and the
//! correctness count, in one serialisable [`Measurement`].

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// One scenario, on one system, with one set of parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    /// `connections` | `direct` | `fanout` | `catchup`.
    pub scenario: String,
    /// e.g. `natter (SQLite)`, `natter (PostgreSQL + NATS, 2 nodes)`, `ceiling`, `NATS`, `Synapse (PostgreSQL)`.
    pub system: String,
    /// What distinguishes runs of one scenario on one system, e.g. `saturated`, `fixed 500/s`.
    pub variant: String,
    /// The sizes the run used (pairs, members, messages, rate…).
    pub params: BTreeMap<String, f64>,
    /// Units per second over the measured interval; `throughput_unit` says which units.
    pub throughput: Option<f64>,
    pub throughput_unit: String,
    pub latency: Option<Latency>,
    /// Every server process of the system together; `None` where the system is in-process.
    pub server: Option<Usage>,
    /// The load generator (this process, plus its worker processes).
    pub client: Usage,
    pub correctness: Correctness,
    /// Scenario-specific figures, e.g. `rss_per_connection_bytes`, `connect_rate`.
    pub extra: BTreeMap<String, f64>,
    pub duration_secs: f64,
    /// Server CPU time over the measured phase divided by the deliveries made in it, in
    /// microseconds (direct and fan-out). Absent from reports older than this field.
    #[serde(default)]
    pub server_cpu_us_per_delivery: Option<f64>,
}

impl Measurement {
    pub fn new(scenario: &str, system: &str, variant: &str) -> Measurement {
        Measurement {
            scenario: scenario.to_owned(),
            system: system.to_owned(),
            variant: variant.to_owned(),
            params: BTreeMap::new(),
            throughput: None,
            throughput_unit: String::new(),
            latency: None,
            server: None,
            client: Usage::default(),
            correctness: Correctness::default(),
            extra: BTreeMap::new(),
            duration_secs: 0.0,
            server_cpu_us_per_delivery: None,
        }
    }

    pub fn param(mut self, name: &str, value: impl Into<f64>) -> Measurement {
        self.param_mut(name, value);
        self
    }

    pub fn param_mut(&mut self, name: &str, value: impl Into<f64>) {
        self.params.insert(name.to_owned(), value.into());
    }

    /// Sets [`Measurement::server_cpu_us_per_delivery`] from the server's CPU time and the
    /// deliveries counted; left unset without either.
    pub fn note_cpu_per_delivery(&mut self) {
        self.server_cpu_us_per_delivery = self.computed_cpu_per_delivery();
    }

    /// [`Measurement::server_cpu_us_per_delivery`], or for a report older than that field, the
    /// same figure computed from what it did record.
    pub fn cpu_us_per_delivery(&self) -> Option<f64> {
        self.server_cpu_us_per_delivery.or_else(|| self.computed_cpu_per_delivery())
    }

    fn computed_cpu_per_delivery(&self) -> Option<f64> {
        let delivered = self.correctness.delivered;
        self.server.filter(|_| delivered > 0).map(|server| server.cpu_secs * 1e6 / delivered as f64)
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

/// CPU and memory of a set of processes over a run.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Usage {
    /// User + system CPU seconds spent during the run.
    pub cpu_secs: f64,
    /// `cpu_secs` over the run's wall time, in percent of one core.
    pub cpu_percent: f64,
    /// Highest resident set size seen during the run (sum over the processes), in bytes.
    pub peak_rss_bytes: u64,
}

/// Every message sent must reach every intended device exactly once, in `seq` order.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Correctness {
    /// Deliveries that should have happened (messages × intended devices).
    pub expected: u64,
    /// Deliveries that happened (first receipts only).
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// Sends the system refused or never acknowledged.
    pub failed_sends: u64,
}

impl Correctness {
    pub fn is_clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.reordered == 0 && self.failed_sends == 0
    }

    pub fn add(&mut self, other: &Correctness) {
        self.expected += other.expected;
        self.delivered += other.delivered;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.reordered += other.reordered;
        self.failed_sends += other.failed_sends;
    }
}

/// An HDR histogram of latencies in microseconds, from 1 µs to 10 minutes at 3 significant digits.
#[derive(Clone)]
pub struct Recorder {
    histogram: Histogram<u64>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            histogram: Histogram::new_with_bounds(1, 600_000_000, 3).expect("static histogram bounds are valid"),
        }
    }
}

impl Recorder {
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1);
        self.histogram.saturating_record(micros);
    }

    pub fn merge(&mut self, other: &Recorder) {
        // Both share the same bounds, so adding cannot fail.
        let _ = self.histogram.add(&other.histogram);
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    pub fn latency(&self) -> Option<Latency> {
        let h = &self.histogram;
        (!h.is_empty()).then(|| Latency {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: h.mean(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_recorded_values() {
        let mut recorder = Recorder::default();
        for micros in 1..=1000 {
            recorder.record(Duration::from_micros(micros));
        }
        let latency = recorder.latency().expect("values were recorded");
        assert_eq!(latency.count, 1000);
        assert!((499..=501).contains(&latency.p50_us), "{latency:?}");
        assert!((989..=991).contains(&latency.p99_us), "{latency:?}");
        assert_eq!(latency.max_us, 1000);
        assert!(Recorder::default().latency().is_none());
    }

    #[test]
    fn a_correctness_count_with_any_fault_is_not_clean() {
        let clean = Correctness { expected: 4, delivered: 4, ..Correctness::default() };
        assert!(clean.is_clean());
        for broken in [
            Correctness { lost: 1, ..clean },
            Correctness { duplicated: 1, ..clean },
            Correctness { reordered: 1, ..clean },
            Correctness { failed_sends: 1, ..clean },
        ] {
            assert!(!broken.is_clean(), "{broken:?}");
        }
    }

    #[test]
    fn cpu_per_delivery_needs_server_time_and_deliveries() {
        let mut measurement = Measurement::new("fanout", "x", "saturated");
        measurement.correctness.delivered = 4000;
        measurement.note_cpu_per_delivery();
        assert_eq!(measurement.server_cpu_us_per_delivery, None, "no server measured");
        measurement.server = Some(Usage { cpu_secs: 0.5, ..Usage::default() });
        measurement.note_cpu_per_delivery();
        assert_eq!(measurement.server_cpu_us_per_delivery, Some(125.0));
        measurement.correctness.delivered = 0;
        measurement.note_cpu_per_delivery();
        assert_eq!(measurement.server_cpu_us_per_delivery, None, "nothing delivered");
    }
}
