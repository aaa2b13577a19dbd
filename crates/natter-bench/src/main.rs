//! `natter-bench`: the command line of natter's benchmark (see the library's docs).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use natter_bench::guard::{Baseline, Comparison, THRESHOLD};
use natter_bench::report::Report;
use natter_bench::run::{self, Options, Plan, Selection};
use natter_bench::{ceiling, natter, scenarios};

#[derive(Debug, Parser)]
#[command(
    name = "natter-bench",
    version,
    about = "natter's benchmark: natter against the transport ceiling, NATS and Synapse, in one run"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the scenarios against every selected system and write the report.
    Run {
        /// Small sizes (under two minutes, Synapse left out unless named in --only); fails only on
        /// a correctness error.
        #[arg(long)]
        quick: bool,
        /// Where report.md, report.json, the charts and the servers' work directories go.
        #[arg(long, default_value = "target/bench-report")]
        out: PathBuf,
        /// The natter binary to measure [default: `natter` beside this binary].
        #[arg(long)]
        natter_bin: Option<PathBuf>,
        /// Only these systems (comma-separated): natter, natter-noindex, natter-cluster, ceiling,
        /// nats, synapse. natter-noindex (search indexing off; direct and fan-out only) and
        /// synapse are left out of --quick unless named here.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Leave these systems out (same names as --only).
        #[arg(long, value_delimiter = ',')]
        skip: Vec<String>,
        /// Only these scenarios (comma-separated): connections, direct, fanout, group, catchup.
        #[arg(long, value_delimiter = ',')]
        scenarios: Vec<String>,
        /// The report.json to compare this run's ratios with, or `none`. Flags any ratio worse
        /// by more than 15 % in the report, without failing the run [default: the workspace's
        /// docs/benchmarks/report.json, if there is one, except with --quick].
        #[arg(long)]
        baseline: Option<String>,
    },
    /// Compare two runs' ratios; exits non-zero when any got worse by more than 15 %.
    Compare {
        /// The earlier report.json (e.g. docs/benchmarks/report.json).
        baseline: PathBuf,
        /// The report.json of the run to judge.
        new: PathBuf,
    },
    /// The chaos test: natter's split topology behind nginx (TLS), with PostgreSQL, NATS, Redis
    /// and etcd, used by a few hundred devices while a seeded schedule kills, freezes and
    /// restarts its parts; fails on any lost, duplicated or reordered message.
    Chaos {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// How long the devices send (faults included), e.g. 120s or 10m.
        #[arg(long, default_value = "120s", value_parser = parse_duration)]
        duration: std::time::Duration,
        /// Connected devices (a quarter of them users' second devices).
        #[arg(long, default_value_t = 200)]
        devices: usize,
        /// Members of the big group (its fan-out goes through the worker).
        #[arg(long, default_value_t = 1000)]
        big_group: usize,
        /// Mean time between two sends of one device.
        #[arg(long, default_value = "8s", value_parser = parse_duration)]
        send_every: std::time::Duration,
        /// Where the report, the history (for `chaos-check`) and the servers' logs go.
        #[arg(long, default_value = "target/chaos")]
        out: PathBuf,
        /// The natter binary [default: `natter` beside this binary].
        #[arg(long)]
        natter_bin: Option<PathBuf>,
        /// Only these faults of the schedule (comma-separated): kill, freeze, nats, redis, etcd,
        /// postgres; to reproduce one.
        #[arg(long, value_delimiter = ',')]
        faults: Vec<String>,
        /// Report a fault the devices did not get over within 5 s, without failing on it (any
        /// lost, duplicated or reordered message still fails the run).
        #[arg(long)]
        convergence_advisory: bool,
    },
    /// Runs the chaos test's checker again on a saved run (the `--out` of `chaos`).
    ChaosCheck { dir: PathBuf },
    /// The ceiling baseline's server (started by `run`).
    #[command(hide = true)]
    Ceiling {
        #[arg(long)]
        listen: std::net::SocketAddr,
    },
    /// Holds idle connections for the connections scenario (started by `run`).
    #[command(hide = true)]
    ConnectWorker {
        #[arg(long)]
        source: IpAddr,
        #[arg(long)]
        count: usize,
        #[arg(long)]
        url: Vec<String>,
        #[arg(long)]
        hello: Option<String>,
    },
}

const SYSTEMS: [&str; 6] = ["natter", "natter-noindex", "natter-cluster", "ceiling", "nats", "synapse"];
/// Systems a quick run leaves out unless `--only` names them: Synapse is slow to set up, and the
/// quick run is a correctness check that natter-noindex would only repeat.
const NOT_IN_QUICK: [&str; 2] = ["natter-noindex", "synapse"];
/// The committed report, relative to the workspace root: the default baseline.
const COMMITTED_REPORT: &str = "docs/benchmarks/report.json";

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // reqwest has no crypto provider of its own (aws-lc-rs would need cmake) and panics when it
    // builds a client before one is installed: ring's, process-wide.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Ceiling { listen } => runtime.block_on(ceiling::serve(listen)),
        Command::ConnectWorker { source, count, url, hello } => {
            runtime.block_on(scenarios::connections::worker(source, count, url, hello))
        }
        Command::Chaos {
            seed,
            duration,
            devices,
            big_group,
            send_every,
            out,
            natter_bin,
            faults,
            convergence_advisory,
        } => {
            if let Some(unknown) = faults.iter().find(|f| !natter_bench::chaos::schedule::NAMES.contains(&f.as_str())) {
                bail!("unknown fault {unknown:?}; the faults are {}", natter_bench::chaos::schedule::NAMES.join(", "));
            }
            let natter_binary = natter_bin.unwrap_or_else(natter::default_binary);
            anyhow::ensure!(natter_binary.exists(), "no natter binary at {}", natter_binary.display());
            let options = natter_bench::chaos::Options {
                seed,
                duration,
                devices,
                big_group,
                send_every,
                natter_binary,
                out: out.clone(),
                faults,
                convergence_advisory,
            };
            let passed = runtime.block_on(natter_bench::chaos::run(options))?;
            println!("\nreport: {}", out.join("report.md").display());
            if !passed {
                eprintln!("\nCHAOS TEST FAILED: see the report (the history is saved for chaos-check)");
                std::process::exit(1);
            }
            Ok(())
        }
        Command::ChaosCheck { dir } => {
            if !natter_bench::chaos::check_saved(&dir)? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Compare { baseline, new } => {
            let comparison = Baseline::load(&baseline)?.compare(&Report::load(&new)?);
            print_comparison(&comparison);
            if comparison.regressions() > 0 {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Run { quick, out, natter_bin, only, skip, scenarios, baseline } => {
            if let Some(unknown) = scenarios.iter().find(|s| !run::SCENARIOS.contains(&s.as_str())) {
                bail!("unknown scenario {unknown:?}; the scenarios are {}", run::SCENARIOS.join(", "));
            }
            for name in only.iter().chain(&skip) {
                if !SYSTEMS.contains(&name.as_str()) {
                    bail!("unknown system {name:?}; the systems are {}", SYSTEMS.join(", "));
                }
            }
            let chosen = |name: &str| {
                let named = if only.is_empty() {
                    !(quick && NOT_IN_QUICK.contains(&name))
                } else {
                    only.iter().any(|o| o == name)
                };
                named && !skip.iter().any(|s| s == name)
            };
            let selection = Selection {
                natter: chosen("natter"),
                natter_noindex: chosen("natter-noindex"),
                natter_cluster: chosen("natter-cluster"),
                ceiling: chosen("ceiling"),
                nats: chosen("nats"),
                synapse: chosen("synapse"),
            };
            let natter_binary = natter_bin.unwrap_or_else(natter::default_binary);
            if selection.natter || selection.natter_noindex || selection.natter_cluster {
                anyhow::ensure!(
                    natter_binary.exists(),
                    "no natter binary at {} (build it: cargo build --release -p natter)",
                    natter_binary.display()
                );
            }
            let baseline = choose_baseline(baseline.as_deref(), quick)?;
            let plan = Plan { scenarios, ..Plan::new(quick) };
            let options = Options { plan, selection, natter_binary, out: out.clone(), baseline };
            let (report, correct) = runtime.block_on(run::run(options))?;
            println!("\nreport: {}", out.join("report.md").display());
            for bar in &report.bars {
                let verdict = match bar.met {
                    Some(true) => "met",
                    Some(false) => "NOT met",
                    None => "not measured",
                };
                println!("  [{verdict}] {}: {} — {}", bar.scenario, bar.target, bar.measured);
            }
            for line in &report.skipped {
                println!("  [not run] {line}");
            }
            if let Some(comparison) = &report.baseline_comparison {
                println!();
                print_comparison(comparison);
                if comparison.regressions() > 0 {
                    println!("(`run` does not fail on this; `natter-bench compare` does)");
                }
            }
            if !correct {
                eprintln!(
                    "\nCORRECTNESS FAILURE: a message was lost, duplicated or reordered, or a send failed; see the report"
                );
                std::process::exit(1);
            }
            if !report.skipped.is_empty() {
                eprintln!("\nFAILED: {} system(s) or scenario(s) could not run; see the report", report.skipped.len());
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

/// The baseline `run` compares with: `--baseline PATH` (which must load), none with
/// `--baseline none`, else the committed report unless this is a quick run (a full run's ratios
/// at other sizes; the quick run checks correctness, not speed).
fn choose_baseline(argument: Option<&str>, quick: bool) -> anyhow::Result<Option<Baseline>> {
    match argument {
        Some("none") => Ok(None),
        Some(path) => Baseline::load(Path::new(path)).map(Some),
        None if quick => Ok(None),
        None => {
            let Some(path) = committed_report() else { return Ok(None) };
            match Baseline::load(&path) {
                Ok(baseline) => Ok(Some(baseline)),
                Err(error) => {
                    eprintln!("natter-bench: not comparing with the committed report: {error:#}");
                    Ok(None)
                }
            }
        }
    }
}

/// [`COMMITTED_REPORT`] in the workspace that holds the current directory, if it exists.
fn committed_report() -> Option<PathBuf> {
    let current = std::env::current_dir().ok()?;
    let root = current.ancestors().find(|dir| {
        std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|manifest| manifest.contains("[workspace]"))
    })?;
    Some(root.join(COMMITTED_REPORT)).filter(|path| path.exists())
}

fn print_comparison(comparison: &Comparison) {
    println!("{}", comparison.to_markdown());
    match comparison.regressions() {
        0 => println!("No ratio got worse by more than {:.0} %.", THRESHOLD * 100.0),
        n => println!("{n} ratio(s) got worse by more than {:.0} %.", THRESHOLD * 100.0),
    }
}

/// `120s`, `10m`, `2h` or plain seconds.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let number: u64 = number.parse().map_err(|_| format!("not a duration: {text:?}"))?;
    let secs = match unit {
        "" | "s" => number,
        "m" => number * 60,
        "h" => number * 3600,
        _ => return Err(format!("unknown unit in {text:?} (use s, m or h)")),
    };
    Ok(std::time::Duration::from_secs(secs))
}
