//! The regression guard: this run's ratios ([`crate::ratios`]) against a baseline report's, each
//! flagged when it got worse by more than [`THRESHOLD`]. `natter-bench compare` fails on a flag;
//! `natter-bench run` only reports it (speed must not fail a correctness check).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ratios::{self, Ratio};
use crate::report::Report;

/// How much worse a ratio may get before it is flagged: absolute figures here move ±30 % from
/// run to run, ratios of one run much less.
pub const THRESHOLD: f64 = 0.15;

/// What happened to one ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Better, the same, or worse by at most [`THRESHOLD`].
    Held,
    /// Worse by more than [`THRESHOLD`].
    Regressed,
    /// Only in the new run.
    New,
    /// Only in the baseline.
    Gone,
}

/// One ratio in both runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub key: String,
    pub label: String,
    pub baseline: Option<f64>,
    pub new: Option<f64>,
    /// `new ÷ baseline − 1`: +0.1 is a ratio 10 % higher.
    pub change: Option<f64>,
    pub higher_is_better: bool,
    pub verdict: Verdict,
}

/// The whole comparison, with what it was compared against.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The baseline report's path and when it was generated, in words.
    pub baseline: String,
    /// Anything that makes the comparison less meaningful (e.g. runs of different sizes).
    pub notes: Vec<String>,
    pub rows: Vec<Row>,
}

/// Compares `new` with `baseline`: rows in `new`'s order, then the ratios that are gone.
pub fn compare(baseline: &[Ratio], new: &[Ratio]) -> Vec<Row> {
    let mut rows: Vec<Row> = new
        .iter()
        .map(|ratio| {
            let before = baseline.iter().find(|b| b.key == ratio.key).map(|b| b.value);
            let (change, verdict) = match before {
                Some(before) => {
                    let worse_by =
                        if ratio.higher_is_better { 1.0 - ratio.value / before } else { 1.0 - before / ratio.value };
                    // A hair of slack, so that exactly 15 % worse is not flagged by rounding.
                    let verdict = if worse_by > THRESHOLD + 1e-9 { Verdict::Regressed } else { Verdict::Held };
                    (Some(ratio.value / before - 1.0), verdict)
                }
                None => (None, Verdict::New),
            };
            Row {
                key: ratio.key.clone(),
                label: ratio.label.clone(),
                baseline: before,
                new: Some(ratio.value),
                change,
                higher_is_better: ratio.higher_is_better,
                verdict,
            }
        })
        .collect();
    rows.extend(baseline.iter().filter(|b| !new.iter().any(|ratio| ratio.key == b.key)).map(|gone| Row {
        key: gone.key.clone(),
        label: gone.label.clone(),
        baseline: Some(gone.value),
        new: None,
        change: None,
        higher_is_better: gone.higher_is_better,
        verdict: Verdict::Gone,
    }));
    rows
}

impl Comparison {
    pub fn regressions(&self) -> usize {
        self.rows.iter().filter(|row| row.verdict == Verdict::Regressed).count()
    }

    /// A Markdown section body: what was compared, any notes, and the table.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "Ratios of this run against {}; flagged when worse by more than {:.0} %.\n",
            self.baseline,
            THRESHOLD * 100.0
        );
        for note in &self.notes {
            let _ = writeln!(md, "* {note}");
        }
        if !self.notes.is_empty() {
            md.push('\n');
        }
        if self.rows.is_empty() {
            md.push_str("No ratio could be computed from either report.\n");
            return md;
        }
        md.push_str("| figure | baseline | new | change | verdict |\n|---|---|---|---|---|\n");
        for row in &self.rows {
            let better = if row.higher_is_better { "higher is better" } else { "lower is better" };
            let change = row.change.map_or("–".to_owned(), |change| format!("{:+.1} %", change * 100.0));
            let verdict = match row.verdict {
                Verdict::Held => "ok",
                Verdict::Regressed => "**REGRESSED**",
                Verdict::New => "new",
                Verdict::Gone => "gone",
            };
            let _ = writeln!(
                md,
                "| {} ({better}) | {} | {} | {change} | {verdict} |",
                row.label,
                times(row.baseline),
                times(row.new)
            );
        }
        md
    }
}

fn times(ratio: Option<f64>) -> String {
    match ratio {
        Some(ratio) if ratio >= 10.0 => format!("{ratio:.1}×"),
        Some(ratio) => format!("{ratio:.3}×"),
        None => "–".to_owned(),
    }
}

/// A baseline report, already loaded (so that a bad path fails before a long run, not after).
pub struct Baseline {
    pub path: PathBuf,
    pub report: Report,
}

impl Baseline {
    pub fn load(path: &Path) -> anyhow::Result<Baseline> {
        Ok(Baseline { path: path.to_path_buf(), report: Report::load(path)? })
    }

    /// `new`'s ratios against this baseline's, both derived from their measurements.
    pub fn compare(&self, new: &Report) -> Comparison {
        let old = &self.report;
        let mut notes = Vec::new();
        if old.mode != new.mode {
            notes.push(format!(
                "The baseline is a {} run and this a {} run: their sizes differ, and so may their ratios.",
                old.mode, new.mode
            ));
        }
        Comparison {
            baseline: format!("{} (a {} run, generated {})", self.path.display(), old.mode, old.generated_at),
            notes,
            rows: compare(&ratios::derive(&old.measurements), &ratios::derive(&new.measurements)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ratio(key: &str, value: f64, higher_is_better: bool) -> Ratio {
        Ratio { key: key.to_owned(), label: format!("{key} label"), value, higher_is_better }
    }

    fn verdicts(rows: &[Row]) -> Vec<(&str, Verdict)> {
        rows.iter().map(|row| (row.key.as_str(), row.verdict)).collect()
    }

    #[test]
    fn a_ratio_that_fell_by_more_than_15_percent_is_flagged() {
        let rows = compare(&[ratio("fanout", 0.40, true)], &[ratio("fanout", 0.32, true)]);
        assert_eq!(verdicts(&rows), [("fanout", Verdict::Regressed)]);
        let change = rows[0].change.expect("both present");
        assert!((change + 0.20).abs() < 1e-9, "{change}");
    }

    #[test]
    fn a_ratio_that_fell_by_10_percent_or_exactly_15_is_not_flagged() {
        let rows = compare(
            &[ratio("ten", 0.40, true), ratio("fifteen", 1.0, true)],
            &[ratio("ten", 0.36, true), ratio("fifteen", 0.85, true)],
        );
        assert_eq!(verdicts(&rows), [("ten", Verdict::Held), ("fifteen", Verdict::Held)]);
    }

    #[test]
    fn improvements_are_not_flagged() {
        let rows = compare(
            &[ratio("throughput", 0.40, true), ratio("memory", 2.0, false)],
            &[ratio("throughput", 0.80, true), ratio("memory", 1.0, false)],
        );
        assert_eq!(verdicts(&rows), [("throughput", Verdict::Held), ("memory", Verdict::Held)]);
    }

    #[test]
    fn a_cost_ratio_is_flagged_when_it_rises() {
        // 2.0 → 2.5: the figure of merit (its inverse) fell by 20 %.
        let rows = compare(
            &[ratio("memory", 2.0, false), ratio("cpu", 2.0, false)],
            &[ratio("memory", 2.5, false), ratio("cpu", 2.2, false)],
        );
        assert_eq!(verdicts(&rows), [("memory", Verdict::Regressed), ("cpu", Verdict::Held)]);
    }

    #[test]
    fn ratios_in_one_report_only_are_new_or_gone_never_regressions() {
        let rows = compare(
            &[ratio("kept", 1.0, true), ratio("dropped", 1.0, true)],
            &[ratio("added", 0.01, true), ratio("kept", 1.0, true)],
        );
        assert_eq!(verdicts(&rows), [("added", Verdict::New), ("kept", Verdict::Held), ("dropped", Verdict::Gone)]);
        let comparison = Comparison { baseline: "b".into(), notes: Vec::new(), rows };
        assert_eq!(comparison.regressions(), 0);
        let table = comparison.to_markdown();
        assert!(table.contains("| added label (higher is better) | – | 0.010× | – | new |"), "{table}");
        assert!(table.contains("| dropped label (higher is better) | 1.000× | – | – | gone |"), "{table}");
    }

    #[test]
    fn the_table_shows_the_change_and_the_flag() {
        let rows = compare(&[ratio("fanout", 0.40, true)], &[ratio("fanout", 0.30, true)]);
        let comparison = Comparison { baseline: "docs/benchmarks/report.json".into(), notes: vec!["n".into()], rows };
        assert_eq!(comparison.regressions(), 1);
        let table = comparison.to_markdown();
        assert!(
            table.contains("| fanout label (higher is better) | 0.400× | 0.300× | -25.0 % | **REGRESSED** |"),
            "{table}"
        );
        assert!(table.contains("* n\n"), "{table}");
    }
}
