//! The chaos run's report: the checker's verdict, the sends and their answers, every fault with
//! the time the devices took to converge after it, and latency through the faults.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::CONVERGE_BAR;
use super::checker::Verdict;
use super::history::{Event, Setup};

#[derive(Debug, Serialize)]
pub struct FaultRow {
    pub index: u32,
    pub kind: String,
    pub target: String,
    /// Seconds into the run.
    pub at_s: f64,
    /// From the fault's start until the part was back.
    pub lasted_ms: u64,
    /// From the fault's end until every device had every entry the log held then.
    pub converged_ms: Option<u64>,
}

/// Percentiles in milliseconds.
#[derive(Debug, Default, Serialize)]
pub struct Latency {
    pub count: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latency {
    fn of(mut samples: Vec<u64>) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
        Latency { count: samples.len(), p50: at(0.5), p99: at(0.99), max: at(1.0) }
    }
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub seed: u64,
    pub duration_s: u64,
    pub users: usize,
    pub devices: usize,
    pub conversations: usize,
    pub big_group_members: usize,
    pub verdict: Verdict,
    pub faults: Vec<FaultRow>,
    /// First attempt → `sent`, for sends that started during a fault or within 5 s after it.
    pub ack_latency_faults: Latency,
    /// The same for sends outside those windows.
    pub ack_latency_calm: Latency,
    /// First attempt → the entry on another member's device (push or sync), every delivery.
    pub delivery_latency: Latency,
    pub converged_in_time: bool,
    /// The servers' counters (`/metrics`), by role, summed over processes and restarts.
    pub server_counters: BTreeMap<String, f64>,
}

impl Summary {
    pub fn new(setup: &Setup, events: &[Event], verdict: Verdict, duration: Duration) -> Summary {
        let mut faults: Vec<FaultRow> = Vec::new();
        let mut windows = Vec::new();
        for event in events {
            match event {
                Event::Fault { index, kind, target, start, end } => {
                    windows.push((*start, *end + CONVERGE_BAR.as_micros() as u64));
                    faults.push(FaultRow {
                        index: *index,
                        kind: kind.clone(),
                        target: target.clone(),
                        at_s: *start as f64 / 1e6,
                        lasted_ms: (end - start) / 1000,
                        converged_ms: None,
                    });
                }
                Event::Converged { index, after_ms, .. } => {
                    if let Some(row) = faults.iter_mut().find(|row| row.index == *index) {
                        row.converged_ms = *after_ms;
                    }
                }
                _ => {}
            }
        }
        let mut first_sent: HashMap<&str, (u64, u32, u32)> = HashMap::new();
        let mut acked: HashMap<&str, u64> = HashMap::new();
        let mut ids: HashMap<&str, &str> = HashMap::new();
        for event in events {
            match event {
                Event::Send { t, device, conv, cmid, attempt: 0 } => {
                    first_sent.insert(cmid, (*t, *device, *conv));
                }
                Event::Ack { t, cmid, id, .. } => {
                    acked.entry(cmid).or_insert(*t);
                    ids.insert(id, cmid);
                }
                _ => {}
            }
        }
        let (mut during, mut calm) = (Vec::new(), Vec::new());
        for (cmid, acked_at) in &acked {
            let Some((sent_at, _, _)) = first_sent.get(cmid) else { continue };
            let sample = acked_at.saturating_sub(*sent_at);
            if windows.iter().any(|(start, end)| sent_at >= start && sent_at <= end) {
                during.push(sample);
            } else {
                calm.push(sample);
            }
        }
        // The first time each other device had each acknowledged entry.
        let mut delivered: HashMap<(u32, &str), u64> = HashMap::new();
        for event in events {
            if let Event::Seen { t, device, id, .. } = event
                && let Some(cmid) = ids.get(id.as_str())
                && let Some((_, sender, _)) = first_sent.get(cmid)
                && sender != device
            {
                delivered.entry((*device, id.as_str())).or_insert(*t);
            }
        }
        let delivery: Vec<u64> = delivered
            .iter()
            .filter_map(|((_, id), seen_at)| {
                let (sent_at, _, _) = first_sent.get(ids.get(id)?)?;
                Some(seen_at.saturating_sub(*sent_at))
            })
            .collect();
        let converged_in_time =
            faults.iter().all(|row| row.converged_ms.is_some_and(|ms| ms <= CONVERGE_BAR.as_millis() as u64));
        Summary {
            seed: setup.seed,
            duration_s: duration.as_secs(),
            users: setup.users,
            devices: setup.devices.len(),
            conversations: setup.conversations.len(),
            big_group_members: setup.kinds.iter().find(|(kind, _)| kind == "big").map_or(0, |(_, n)| *n),
            verdict,
            faults,
            ack_latency_faults: Latency::of(during),
            ack_latency_calm: Latency::of(calm),
            delivery_latency: Latency::of(delivery),
            converged_in_time,
            server_counters: BTreeMap::new(),
        }
    }

    /// No violation, and every fault converged within [`CONVERGE_BAR`].
    pub fn passed(&self) -> bool {
        self.verdict.passed() && self.converged_in_time
    }

    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(self)?)?;
        std::fs::write(dir.join("report.md"), self.to_markdown())?;
        Ok(())
    }

    pub fn to_markdown(&self) -> String {
        let s = &self.verdict.stats;
        let mut md = String::new();
        md.push_str(&format!(
            "Seed {}, {} s, {} users, {} devices, {} conversations (big group: {} members), {} faults.\n\n",
            self.seed,
            self.duration_s,
            self.users,
            self.devices,
            self.conversations,
            self.big_group_members,
            self.faults.len()
        ));
        if self.verdict.passed() {
            md.push_str("**Checker: no violation** (nothing lost, duplicated, reordered or acknowledged-then-missing; no read marker moved backwards).\n\n");
        } else {
            md.push_str("**Checker: VIOLATIONS**\n\n");
            for (kind, count) in &self.verdict.violations {
                md.push_str(&format!("* {kind}: {count}\n"));
            }
            md.push_str("\nFirst examples:\n\n");
            for example in &self.verdict.examples {
                md.push_str(&format!("* {example}\n"));
            }
            md.push('\n');
        }
        md.push_str(
            "| sends | attempts | retries | acked | errors | timeouts | abandoned | stored, ack lost | log entries |\n",
        );
        md.push_str("|---|---|---|---|---|---|---|---|---|\n");
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n\n",
            s.sends, s.attempts, s.retries, s.acked, s.errors, s.timeouts, s.abandoned, s.stored_unacked, s.log_entries
        ));
        if !s.error_codes.is_empty() {
            let codes: Vec<String> = s.error_codes.iter().map(|(code, n)| format!("{code} × {n}")).collect();
            md.push_str(&format!("Error answers: {}.\n\n", codes.join(", ")));
        }
        md.push_str(&format!(
            "Connections {} (disconnects {}), pushes {} (of them repeats of a seq the connection had: {}), entries fetched by sync {}, read-marker answers {}.\n\n",
            s.connections, s.disconnects, s.pushes, s.repeated_pushes, s.synced_entries, s.read_answers
        ));
        md.push_str(
            "| # | at (s) | fault | target | lasted (ms) | converged after (ms) |\n|---|---|---|---|---|---|\n",
        );
        for row in &self.faults {
            let converged = match row.converged_ms {
                Some(ms) if ms <= CONVERGE_BAR.as_millis() as u64 => ms.to_string(),
                Some(ms) => format!("**{ms}** (over {} s)", CONVERGE_BAR.as_secs()),
                None => "**not converged**".to_owned(),
            };
            md.push_str(&format!(
                "| {} | {:.1} | {} | {} | {} | {} |\n",
                row.index, row.at_s, row.kind, row.target, row.lasted_ms, converged
            ));
        }
        md.push_str("\n| latency (ms) | count | p50 | p99 | max |\n|---|---|---|---|---|\n");
        for (name, latency) in [
            ("send → sent, during faults (+5 s)", &self.ack_latency_faults),
            ("send → sent, otherwise", &self.ack_latency_calm),
            ("send → on another member's device", &self.delivery_latency),
        ] {
            md.push_str(&format!(
                "| {name} | {} | {:.1} | {:.1} | {:.1} |\n",
                latency.count, latency.p50, latency.p99, latency.max
            ));
        }
        if !self.server_counters.is_empty() {
            let counters: Vec<String> =
                self.server_counters.iter().map(|(name, value)| format!("{name} {value}")).collect();
            md.push_str(&format!("\nServer counters (summed over processes and restarts): {}.\n", counters.join(", ")));
        }
        md.push_str(&format!(
            "\nEvery fault converged within {} s: {}.\n",
            CONVERGE_BAR.as_secs(),
            if self.converged_in_time { "yes" } else { "**no**" }
        ));
        md
    }
}
