//! `report.json` (every figure), `report.md` (tables, the bars with ratios, charts) and the
//! charts as SVG files beside it.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::guard::Comparison;
use crate::measure::Measurement;
use crate::ratios::Ratio;

/// One of the issue's bars, with what this run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bar {
    pub scenario: String,
    pub target: String,
    /// What was measured, in words, or why it was not.
    pub measured: String,
    /// measured / target for "at least" bars, target / measured for "at most" bars: ≥ 1 is met.
    pub ratio: Option<f64>,
    pub met: Option<bool>,
}

impl Bar {
    /// A bar of the form "value ≥ target".
    pub fn at_least(scenario: &str, target: &str, goal: f64, value: Option<f64>, unit: &str) -> Bar {
        Bar::compare(scenario, target, value.map(|v| (v, v / goal)), unit)
    }

    /// A bar of the form "value ≤ target".
    pub fn at_most(scenario: &str, target: &str, goal: f64, value: Option<f64>, unit: &str) -> Bar {
        Bar::compare(scenario, target, value.map(|v| (v, if v > 0.0 { goal / v } else { f64::INFINITY })), unit)
    }

    fn compare(scenario: &str, target: &str, value: Option<(f64, f64)>, unit: &str) -> Bar {
        match value {
            Some((value, ratio)) => Bar {
                scenario: scenario.to_owned(),
                target: target.to_owned(),
                measured: format!("{} {unit}", human(value)),
                ratio: Some(ratio),
                met: Some(ratio >= 1.0),
            },
            None => Bar::not_measured(scenario, target, "not measured in this run"),
        }
    }

    pub fn not_measured(scenario: &str, target: &str, why: &str) -> Bar {
        Bar {
            scenario: scenario.to_owned(),
            target: target.to_owned(),
            measured: why.to_owned(),
            ratio: None,
            met: None,
        }
    }
}

/// Everything a run wrote to report.json. Fields added since the first reports default when
/// missing, so that an older report.json still loads as a baseline.
#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    pub generated_at: String,
    /// `quick` or `full`.
    pub mode: String,
    pub machine: Machine,
    pub bars: Vec<Bar>,
    pub measurements: Vec<Measurement>,
    /// Systems or scenarios that could not run, and why.
    #[serde(default)]
    pub skipped: Vec<String>,
    /// This run's ratios, for reading; a comparison derives them again from `measurements`.
    #[serde(default)]
    pub ratios: Vec<Ratio>,
    /// This run against a baseline report, when one was compared (`run --baseline`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_comparison: Option<Comparison>,
}

impl Report {
    /// Reads a report.json written by this or an earlier version of the tool.
    pub fn load(path: &Path) -> anyhow::Result<Report> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not a natter-bench report", path.display()))
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
}

impl Machine {
    pub fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name").and_then(|rest| rest.split(':').nth(1)))
            .map_or_else(|| "unknown".to_owned(), |name| name.trim().to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: f64 = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        Machine { cpu, cores, memory_gib: memory_kib / 1024.0 / 1024.0, kernel }
    }
}

/// Writes report.json, report.md and one SVG chart per scenario into `dir`.
pub fn write(report: &Report, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(report)?)?;
    let mut md = String::new();
    let m = &report.machine;
    writeln!(md, "# natter benchmark report\n")?;
    writeln!(
        md,
        "Generated {} ({} mode) on {} cores of {}, {:.0} GiB, Linux {}. Load generator on the same machine.\n",
        report.generated_at, report.mode, m.cores, m.cpu, m.memory_gib, m.kernel
    )?;
    writeln!(md, "## Bars\n")?;
    writeln!(md, "| scenario | bar | measured | ratio | met |\n|---|---|---|---|---|")?;
    for bar in &report.bars {
        let ratio = bar.ratio.map_or("–".to_owned(), |r| format!("{r:.2}×"));
        let met = match bar.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        };
        writeln!(md, "| {} | {} | {} | {ratio} | {met} |", bar.scenario, bar.target, bar.measured)?;
    }
    if !report.ratios.is_empty() {
        writeln!(md, "\n## Ratios\n")?;
        writeln!(md, "Measured in this run; the regression guard compares these between runs.\n")?;
        writeln!(md, "| figure | ratio |\n|---|---|")?;
        for ratio in &report.ratios {
            let better = if ratio.higher_is_better { "higher is better" } else { "lower is better" };
            writeln!(md, "| {} ({better}) | {:.3}× |", ratio.label, ratio.value)?;
        }
    }
    if let Some(comparison) = &report.baseline_comparison {
        writeln!(md, "\n## Against the baseline\n\n{}", comparison.to_markdown())?;
    }
    for scenario in ["connections", "direct", "fanout", "catchup"] {
        let rows: Vec<&Measurement> = report.measurements.iter().filter(|m| m.scenario == scenario).collect();
        if rows.is_empty() {
            continue;
        }
        writeln!(md, "\n## {scenario}\n")?;
        writeln!(
            md,
            "| system | variant | params | throughput | p50 | p99 | p99.9 | max | server CPU | server CPU µs/delivery | server peak RSS | client CPU | correctness |"
        )?;
        writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")?;
        for row in &rows {
            let params: Vec<String> = row.params.iter().map(|(k, v)| format!("{k}={}", human(*v))).collect();
            let throughput =
                row.throughput.map_or("–".to_owned(), |t| format!("{} {}", human(t), row.throughput_unit));
            let (p50, p99, p999, max) = match row.latency {
                Some(l) => (ms(l.p50_us), ms(l.p99_us), ms(l.p999_us), ms(l.max_us)),
                None => ("–".into(), "–".into(), "–".into(), "–".into()),
            };
            let (server_cpu, server_rss) = match row.server {
                Some(s) => {
                    (format!("{:.0}%", s.cpu_percent), format!("{:.1} MiB", s.peak_rss_bytes as f64 / 1048576.0))
                }
                None => ("–".into(), "–".into()),
            };
            let cpu_per_delivery = row.server_cpu_us_per_delivery.map_or("–".to_owned(), |us| format!("{us:.1}"));
            let c = &row.correctness;
            let correctness = if c.is_clean() {
                format!("ok ({} of {})", human(c.delivered as f64), human(c.expected as f64))
            } else {
                format!(
                    "**FAILED**: lost {}, duplicated {}, reordered {}, failed sends {}",
                    c.lost, c.duplicated, c.reordered, c.failed_sends
                )
            };
            writeln!(
                md,
                "| {} | {} | {} | {throughput} | {p50} | {p99} | {p999} | {max} | {server_cpu} | {cpu_per_delivery} | {server_rss} | {:.0}% | {correctness} |",
                row.system,
                row.variant,
                params.join(", "),
                row.client.cpu_percent
            )?;
        }
        let extras: Vec<String> = rows
            .iter()
            .filter(|row| !row.extra.is_empty())
            .map(|row| {
                let extra: Vec<String> = row.extra.iter().map(|(k, v)| format!("{k} = {}", human(*v))).collect();
                format!("* {} ({}): {}", row.system, row.variant, extra.join(", "))
            })
            .collect();
        if !extras.is_empty() {
            writeln!(md, "\n{}", extras.join("\n"))?;
        }
        let bars: Vec<(String, f64)> = rows
            .iter()
            .filter_map(|row| Some((format!("{} — {}", row.system, row.variant), row.throughput?)))
            .collect();
        let unit = rows.first().map_or("", |row| row.throughput_unit.as_str());
        let chart = format!("{scenario}-throughput.svg");
        std::fs::write(dir.join(&chart), bar_chart(&format!("{scenario}: {unit}"), &bars))?;
        writeln!(md, "\n![{scenario} throughput]({chart})")?;
        let latencies: Vec<(String, f64)> = rows
            .iter()
            .filter_map(|row| Some((format!("{} — {}", row.system, row.variant), row.latency?.p99_us as f64 / 1000.0)))
            .collect();
        if !latencies.is_empty() {
            let chart = format!("{scenario}-p99.svg");
            std::fs::write(dir.join(&chart), bar_chart(&format!("{scenario}: p99 latency (ms)"), &latencies))?;
            writeln!(md, "\n![{scenario} p99 latency]({chart})")?;
        }
    }
    if !report.skipped.is_empty() {
        writeln!(md, "\n## Not run\n")?;
        for line in &report.skipped {
            writeln!(md, "* {line}")?;
        }
    }
    std::fs::write(dir.join("report.md"), md)?;
    Ok(())
}

fn ms(micros: u64) -> String {
    format!("{:.2} ms", micros as f64 / 1000.0)
}

/// 1234567 → "1.23M", 0.5 → "0.5".
pub fn human(value: f64) -> String {
    let abs = value.abs();
    if abs >= 1e6 {
        format!("{:.2}M", value / 1e6)
    } else if abs >= 1e4 {
        format!("{:.1}k", value / 1e3)
    } else if abs >= 100.0 || value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

/// A horizontal bar chart. Written by hand: a handful of rectangles and labels, where a plotting
/// crate's SVG text layout would need system fonts this machine does not promise.
pub fn bar_chart(title: &str, bars: &[(String, f64)]) -> String {
    const WIDTH: f64 = 900.0;
    const LABEL: f64 = 420.0;
    const ROW: f64 = 26.0;
    let height = 50.0 + ROW * bars.len() as f64;
    let max = bars.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max).max(1e-9);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{}</text>\n",
        escape(title)
    );
    for (i, (label, value)) in bars.iter().enumerate() {
        let y = 40.0 + ROW * i as f64;
        let width = (WIDTH - LABEL - 90.0) * value / max;
        let color = if label.starts_with("natter") { "#2f6fdf" } else { "#9aa5b1" };
        let _ = writeln!(
            svg,
            "<text x=\"{x}\" y=\"{ty}\" text-anchor=\"end\">{label}</text>\
             <rect x=\"{LABEL}\" y=\"{y}\" width=\"{width:.1}\" height=\"{h}\" fill=\"{color}\"/>\
             <text x=\"{vx:.1}\" y=\"{ty}\">{value}</text>",
            x = LABEL - 8.0,
            ty = y + 15.0,
            label = escape(label),
            h = ROW - 6.0,
            vx = LABEL + width + 6.0,
            value = human(*value),
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_compare_both_ways() {
        let more = Bar::at_least("direct", "≥ 100", 100.0, Some(150.0), "msg/s");
        assert_eq!((more.met, more.ratio), (Some(true), Some(1.5)));
        let less = Bar::at_most("catchup", "≤ 300 ms", 300.0, Some(600.0), "ms");
        assert_eq!((less.met, less.ratio), (Some(false), Some(0.5)));
        assert_eq!(Bar::at_least("x", "y", 1.0, None, "").met, None);
    }

    #[test]
    fn charts_are_escaped_svg() {
        let svg = bar_chart("a <b>", &[("natter & co".into(), 10.0), ("NATS".into(), 5.0)]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a &lt;b&gt;") && svg.contains("natter &amp; co"));
        assert_eq!(human(1_234_567.0), "1.23M");
        assert_eq!(human(25_300.0), "25.3k");
    }

    #[test]
    fn a_report_from_before_the_guard_still_loads() {
        // The shape of docs/benchmarks/report.json as first committed: no ratios, no
        // comparison, no CPU per delivery.
        let old = r#"{
            "generated_at": "2026-11-20T10:00:00Z", "mode": "full",
            "machine": { "cpu": "EPYC", "cores": 2, "memory_gib": 24.0, "kernel": "6.18" },
            "bars": [ { "scenario": "direct", "target": "t", "measured": "m", "ratio": null, "met": null } ],
            "measurements": [ {
                "scenario": "fanout", "system": "natter (SQLite, 1 process)", "variant": "saturated (window 32)",
                "params": { "members": 1000.0 }, "throughput": 196383.9, "throughput_unit": "deliveries/s",
                "latency": null, "server": { "cpu_secs": 20.0, "cpu_percent": 180.0, "peak_rss_bytes": 1 },
                "client": { "cpu_secs": 1.0, "cpu_percent": 10.0, "peak_rss_bytes": 1 },
                "correctness": { "expected": 10, "delivered": 10, "lost": 0, "duplicated": 0, "reordered": 0, "failed_sends": 0 },
                "extra": {}, "duration_secs": 10.0
            } ],
            "skipped": []
        }"#;
        let dir = std::env::temp_dir().join(format!("natter-bench-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("report.json");
        std::fs::write(&path, old).expect("write");
        let report = Report::load(&path).expect("an old report loads");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(report.ratios.is_empty() && report.baseline_comparison.is_none());
        let measurement = &report.measurements[0];
        assert_eq!(measurement.server_cpu_us_per_delivery, None);
        assert_eq!(measurement.cpu_us_per_delivery(), Some(2_000_000.0), "computed from what it recorded");
    }
}
