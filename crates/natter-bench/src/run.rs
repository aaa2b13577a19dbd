//! One benchmark run: starts each system in turn (so that they never compete for the two cores),
//! runs its scenarios, stops it, then computes the bars and writes the report.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::ceiling::Ceiling;
use crate::guard::Baseline;
use crate::measure::Measurement;
use crate::nats::NatsBaseline;
use crate::natter::Natter;
use crate::report::{self, Machine, Report};
use crate::scenarios::direct::{self, DirectParams};
use crate::scenarios::fanout::{self, FanoutParams};
use crate::scenarios::{Pace, catchup, connections};
use crate::services::{Nats, Postgres, Redis};
use crate::synapse::Synapse;
use crate::system::System;
use crate::{bars, ratios};

/// The sizes of a run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub quick: bool,
    pub payload_bytes: usize,
    pub connections: usize,
    /// Connections on natter's multi-process shape (the 100,000 bar); 0 skips it.
    pub cluster_connections: usize,
    pub direct: DirectParams,
    pub cluster_nodes: usize,
    pub fanout: FanoutParams,
    pub big_group: FanoutParams,
    pub catchup_missed: u64,
    pub synapse_direct: DirectParams,
    pub synapse_fanout: FanoutParams,
    /// Scenarios to run (connections, direct, fanout, group, catchup); empty: all.
    pub scenarios: Vec<String>,
}

/// The scenario names `--scenarios` takes.
pub const SCENARIOS: [&str; 5] = ["connections", "direct", "fanout", "group", "catchup"];

impl Plan {
    pub fn wants(&self, scenario: &str) -> bool {
        self.scenarios.is_empty() || self.scenarios.iter().any(|s| s == scenario)
    }

    pub fn new(quick: bool) -> Plan {
        let payload_bytes = 128;
        let saturate = |window| Pace::Saturate { window };
        if quick {
            Plan {
                quick,
                payload_bytes,
                connections: 500,
                cluster_connections: 0,
                direct: DirectParams { pairs: 10, messages_per_sender: 100, payload_bytes, pace: saturate(8) },
                cluster_nodes: 2,
                fanout: FanoutParams { members: 50, messages: 200, payload_bytes, pace: saturate(16) },
                big_group: FanoutParams { members: 300, messages: 20, payload_bytes, pace: Pace::Rate(20.0) },
                catchup_missed: 1000,
                synapse_direct: DirectParams { pairs: 2, messages_per_sender: 10, payload_bytes, pace: saturate(1) },
                synapse_fanout: FanoutParams { members: 5, messages: 20, payload_bytes, pace: saturate(4) },
                scenarios: Vec::new(),
            }
        } else {
            Plan {
                quick,
                payload_bytes,
                connections: 15_000,
                cluster_connections: 100_000,
                direct: DirectParams { pairs: 100, messages_per_sender: 500, payload_bytes, pace: saturate(8) },
                cluster_nodes: 2,
                fanout: FanoutParams { members: 1000, messages: 2000, payload_bytes, pace: saturate(32) },
                big_group: FanoutParams { members: 10_000, messages: 100, payload_bytes, pace: Pace::Rate(5.0) },
                catchup_missed: 10_000,
                synapse_direct: DirectParams { pairs: 10, messages_per_sender: 50, payload_bytes, pace: saturate(1) },
                synapse_fanout: FanoutParams { members: 20, messages: 100, payload_bytes, pace: saturate(8) },
                scenarios: Vec::new(),
            }
        }
    }
}

/// Which systems take part.
#[derive(Debug, Clone)]
pub struct Selection {
    pub natter: bool,
    /// Embedded natter with search indexing off, direct and fan-out only: what indexing costs.
    pub natter_noindex: bool,
    pub natter_cluster: bool,
    pub ceiling: bool,
    pub nats: bool,
    pub synapse: bool,
}

pub struct Options {
    pub plan: Plan,
    pub selection: Selection,
    pub natter_binary: PathBuf,
    pub out: PathBuf,
    /// The report this run's ratios are compared with (the regression guard); none: not compared.
    pub baseline: Option<Baseline>,
}

/// Runs everything; returns the report (already written) and whether every run was correct.
pub async fn run(options: Options) -> anyhow::Result<(Report, bool)> {
    let Options { plan, selection, natter_binary, out, baseline } = options;
    let work = out.join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let progress = MultiProgress::new();
    let status = progress.add(ProgressBar::new_spinner());
    status.enable_steady_tick(Duration::from_millis(200));
    let bar = progress.add(ProgressBar::new(0));
    bar.set_style(
        ProgressStyle::with_template("  {bar:40} {pos}/{len} {per_sec} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut measurements = Vec::new();
    let mut skipped = Vec::new();
    let mut note = |what: &str, error: anyhow::Error| {
        let line = format!("{what}: {error:#}");
        tracing::error!("{line}");
        skipped.push(line);
    };

    if selection.natter {
        stage(&status, "natter (SQLite): starting");
        match Natter::start_embedded(&natter_binary, &work.join("natter")).await {
            Ok(natter) => {
                natter_scenarios(&natter, &plan, &status, &bar, &mut measurements, &mut note).await;
                natter.stop().await;
            }
            Err(error) => note("natter (SQLite)", error),
        }
    }
    if selection.natter_noindex {
        stage(&status, "natter (search off): starting");
        match Natter::start_embedded_search_off(&natter_binary, &work.join("natter-noindex")).await {
            Ok(natter) => {
                search_off_scenarios(&natter, &plan, &status, &bar, &mut measurements, &mut note).await;
                natter.stop().await;
            }
            Err(error) => note("natter (search off)", error),
        }
    }
    let postgres = if selection.natter_cluster || selection.synapse {
        stage(&status, "PostgreSQL: starting");
        match Postgres::start(&work.join("postgres")).await {
            Ok(postgres) => Some(Arc::new(postgres)),
            Err(error) => {
                note("PostgreSQL (for natter's cluster shape and Synapse)", error);
                None
            }
        }
    } else {
        None
    };
    if let (true, Some(postgres)) = (selection.natter_cluster, &postgres) {
        stage(&status, "natter (PostgreSQL + NATS): starting");
        match cluster(&natter_binary, &work, postgres, plan.cluster_nodes).await {
            Ok((natter, _nats)) => {
                if plan.wants("direct") {
                    let label = "direct on natter (PostgreSQL + NATS)";
                    stage(&status, format!("{label}: running"));
                    let outcome = direct::run(&natter, plan.direct, &bar).await;
                    step(&status, label, outcome, &mut measurements, &mut note);
                }
                natter.stop().await;
            }
            Err(error) => note("natter (PostgreSQL + NATS)", error),
        }
        stage(&status, "natter (split topology): starting");
        match split(&natter_binary, &work, postgres).await {
            Ok((natter, _nats)) => {
                let name = natter.name();
                if plan.wants("direct") {
                    let label = format!("direct on {name}");
                    stage(&status, format!("{label}: running"));
                    let outcome = direct::run(&natter, plan.direct, &bar).await;
                    step(&status, &label, outcome, &mut measurements, &mut note);
                }
                if plan.wants("fanout") {
                    let label = format!("fanout on {name}");
                    stage(&status, format!("{label}: running"));
                    let outcome = fanout::run(&natter, plan.fanout, &bar).await;
                    step(&status, &label, outcome, &mut measurements, &mut note);
                }
                if plan.wants("group") {
                    let label = format!("{}-member group on {name}", plan.big_group.members);
                    stage(&status, format!("{label}: running"));
                    let outcome = fanout::run(&natter, plan.big_group, &bar).await;
                    step(&status, &label, outcome, &mut measurements, &mut note);
                }
                natter.stop().await;
            }
            Err(error) => note("natter (split topology)", error),
        }
        if plan.cluster_connections > 0 && plan.wants("connections") {
            let nodes = plan.cluster_connections.div_ceil(connections::PER_WORKER + 1000).max(2);
            stage(&status, format!("natter (PostgreSQL + NATS, {nodes} processes): starting"));
            match cluster(&natter_binary, &work.join("wide"), postgres, nodes).await {
                Ok((natter, _nats)) => {
                    let label = "connections on natter's cluster shape";
                    stage(&status, format!("{label}: running"));
                    let outcome = connections::run(&natter, plan.cluster_connections, &bar).await;
                    step_optional(&status, label, outcome, &mut measurements, &mut note);
                    natter.stop().await;
                }
                Err(error) => note("natter (PostgreSQL + NATS, wide)", error),
            }
        }
    }
    if selection.ceiling {
        stage(&status, "ceiling: starting");
        match Ceiling::start(&work.join("ceiling")).await {
            Ok(ceiling) => {
                // The ceiling also relays direct pairs (acknowledging each send), so that natter's
                // direct throughput has a ratio too.
                if plan.wants("direct") {
                    let label = format!("direct (relay) on {}", ceiling.name());
                    stage(&status, format!("{label}: running"));
                    let outcome = direct::run(&ceiling, plan.direct, &bar).await;
                    step(&status, &label, outcome, &mut measurements, &mut note);
                }
                baseline_scenarios(&ceiling, &plan, &status, &bar, &mut measurements, &mut note).await;
            }
            Err(error) => note("ceiling", error),
        }
    }
    if selection.nats {
        stage(&status, "NATS: starting");
        match NatsBaseline::start(&work.join("nats-baseline")).await {
            Ok(nats) => baseline_scenarios(&nats, &plan, &status, &bar, &mut measurements, &mut note).await,
            Err(error) => note("NATS", error),
        }
    }
    if let (true, Some(postgres)) = (selection.synapse, &postgres) {
        stage(&status, "Synapse: installing (first run) and starting");
        match Synapse::start(&work.join("synapse"), postgres).await {
            Ok(synapse) => {
                if plan.wants("direct") {
                    let label = "direct on Synapse";
                    stage(&status, format!("{label}: running"));
                    let outcome = direct::run(&synapse, plan.synapse_direct, &bar).await;
                    step(&status, label, outcome, &mut measurements, &mut note);
                }
                if plan.wants("fanout") {
                    let label = "fanout on Synapse";
                    stage(&status, format!("{label}: running"));
                    let outcome = fanout::run(&synapse, plan.synapse_fanout, &bar).await;
                    step(&status, label, outcome, &mut measurements, &mut note);
                }
                synapse.stop().await;
            }
            Err(error) => note("Synapse", error),
        }
    }
    drop(postgres);
    status.finish_with_message("done");
    bar.finish_and_clear();

    let correct = measurements.iter().all(|m| m.correctness.is_clean());
    let mut report = Report {
        generated_at: chrono_now(),
        mode: if plan.quick { "quick".into() } else { "full".into() },
        machine: Machine::describe(),
        bars: bars::bars(&measurements, &plan),
        ratios: ratios::derive(&measurements),
        measurements,
        skipped,
        baseline_comparison: None,
    };
    report.baseline_comparison = baseline.map(|baseline| baseline.compare(&report));
    report::write(&report, &out)?;
    Ok((report, correct))
}

async fn cluster(
    binary: &std::path::Path,
    work: &std::path::Path,
    postgres: &Arc<Postgres>,
    nodes: usize,
) -> anyhow::Result<(Natter, Nats)> {
    let nats = Nats::start(&work.join("nats-bus"), false).await?;
    let natter = Natter::start_cluster(binary, &work.join("cluster"), postgres, &nats, nodes).await?;
    Ok((natter, nats))
}

/// The split topology: 2 gateways, 2 chat nodes, 1 worker, on PostgreSQL, NATS and Redis (the
/// route table: targeted delivery and presence).
async fn split(
    binary: &std::path::Path,
    work: &std::path::Path,
    postgres: &Arc<Postgres>,
) -> anyhow::Result<(Natter, (Nats, Redis))> {
    let nats = Nats::start(&work.join("nats-split"), false).await?;
    let redis = Redis::start(&work.join("redis-split")).await?;
    let natter = Natter::start_split(binary, &work.join("split"), postgres, &nats, &redis, 2, 2).await?;
    Ok((natter, (nats, redis)))
}

async fn natter_scenarios(
    natter: &Natter,
    plan: &Plan,
    status: &ProgressBar,
    bar: &ProgressBar,
    measurements: &mut Vec<Measurement>,
    note: &mut impl FnMut(&str, anyhow::Error),
) {
    let name = natter.name();
    if plan.wants("connections") {
        let label = format!("connections on {name}");
        stage(status, format!("{label}: running"));
        step_optional(status, &label, connections::run(natter, plan.connections, bar).await, measurements, note);
    }
    if plan.wants("direct") {
        let label = format!("direct on {name}");
        stage(status, format!("{label}: running"));
        step(status, &label, direct::run(natter, plan.direct, bar).await, measurements, note);
        // Latency under load: half the rate just measured, spread over the same senders.
        let saturated = measurements.iter().rev().find(|m| m.scenario == "direct").and_then(|m| m.throughput);
        if let Some(rate) = saturated {
            let senders = (plan.direct.pairs * 2) as f64;
            let per_sender = (rate / 2.0 / senders).max(1.0);
            let params = DirectParams { pace: Pace::Rate(per_sender), ..plan.direct };
            let label = format!("direct at half rate on {name}");
            stage(status, format!("{label}: running"));
            step(status, &label, direct::run(natter, params, bar).await, measurements, note);
        }
    }
    if plan.wants("fanout") {
        let label = format!("fanout on {name}");
        stage(status, format!("{label}: running"));
        step(status, &label, fanout::run(natter, plan.fanout, bar).await, measurements, note);
    }
    if plan.wants("group") {
        let label = format!("{}-member group on {name}", plan.big_group.members);
        stage(status, format!("{label}: running"));
        step(status, &label, fanout::run(natter, plan.big_group, bar).await, measurements, note);
    }
    if plan.wants("catchup") {
        let label = format!("catch-up on {name}");
        stage(status, format!("{label}: running"));
        let outcome = catchup::run(natter, plan.catchup_missed, plan.payload_bytes, bar).await;
        step(status, &label, outcome, measurements, note);
    }
}

/// What search indexing costs: direct (saturated) and fan-out, the scenarios of its bar.
async fn search_off_scenarios(
    natter: &Natter,
    plan: &Plan,
    status: &ProgressBar,
    bar: &ProgressBar,
    measurements: &mut Vec<Measurement>,
    note: &mut impl FnMut(&str, anyhow::Error),
) {
    let name = natter.name();
    if plan.wants("direct") {
        let label = format!("direct on {name}");
        stage(status, format!("{label}: running"));
        step(status, &label, direct::run(natter, plan.direct, bar).await, measurements, note);
    }
    if plan.wants("fanout") {
        let label = format!("fanout on {name}");
        stage(status, format!("{label}: running"));
        step(status, &label, fanout::run(natter, plan.fanout, bar).await, measurements, note);
    }
}

async fn baseline_scenarios<S: System>(
    system: &S,
    plan: &Plan,
    status: &ProgressBar,
    bar: &ProgressBar,
    measurements: &mut Vec<Measurement>,
    note: &mut impl FnMut(&str, anyhow::Error),
) {
    let name = system.name();
    if plan.wants("connections") {
        let label = format!("connections on {name}");
        stage(status, format!("{label}: running"));
        step_optional(status, &label, connections::run(system, plan.connections, bar).await, measurements, note);
    }
    if plan.wants("fanout") {
        let label = format!("fanout on {name}");
        stage(status, format!("{label}: running"));
        step(status, &label, fanout::run(system, plan.fanout, bar).await, measurements, note);
    }
}

fn step(
    status: &ProgressBar,
    label: &str,
    outcome: anyhow::Result<Measurement>,
    measurements: &mut Vec<Measurement>,
    note: &mut impl FnMut(&str, anyhow::Error),
) {
    step_optional(status, label, outcome.map(Some), measurements, note);
}

fn step_optional(
    status: &ProgressBar,
    label: &str,
    outcome: anyhow::Result<Option<Measurement>>,
    measurements: &mut Vec<Measurement>,
    note: &mut impl FnMut(&str, anyhow::Error),
) {
    match outcome {
        Ok(Some(measurement)) => {
            let throughput = measurement
                .throughput
                .map_or(String::new(), |t| format!("{} {}", report::human(t), measurement.throughput_unit));
            let verdict = if measurement.correctness.is_clean() { "ok" } else { "CORRECTNESS FAILURE" };
            say(status, format!("{label}: {throughput} [{verdict}]"));
            if !measurement.correctness.is_clean() {
                say(status, format!("  {:?}", measurement.correctness));
            }
            measurements.push(measurement);
        }
        Ok(None) => {}
        Err(error) => note(label, error),
    }
    stage(status, format!("{label}: done"));
}

/// Shows what the run is doing: on the spinner in a terminal, as a log line otherwise.
fn stage(status: &ProgressBar, message: impl Into<String>) {
    let message = message.into();
    if status.is_hidden() {
        eprintln!("natter-bench: {message}");
    }
    status.set_message(message);
}

/// A result line that stays on screen (or in the log).
fn say(status: &ProgressBar, line: String) {
    if status.is_hidden() {
        eprintln!("{line}");
    } else {
        status.println(line);
    }
}

/// Now as RFC 3339 UTC, from the system clock (no date crate needed for one timestamp).
fn chrono_now() -> String {
    let output = std::process::Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]).output();
    output.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default()
}
