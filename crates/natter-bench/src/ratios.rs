//! The ratios a run is judged by over time: natter against a baseline measured in the same run
//! (the ceiling, NATS, Synapse, natter's other shapes). Absolute figures on a shared machine move
//! ±30 % from run to run; two systems measured minutes apart in one run move together, so their
//! ratio is what the regression guard ([`crate::guard`]) compares between runs.
//!
//! Ratios are derived from a report's measurements, never read back from the report, so that a
//! report written before a ratio existed still yields it wherever its measurements allow.

use serde::{Deserialize, Serialize};

use crate::measure::Measurement;

/// One ratio of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ratio {
    /// Stable identifier, e.g. `fanout.natter_vs_ceiling`: what two reports are matched on.
    pub key: String,
    /// What is divided by what, in words.
    pub label: String,
    pub value: f64,
    /// False for costs (memory, CPU per delivery), where a rise is the regression.
    pub higher_is_better: bool,
}

/// Which figure of a measurement a ratio uses.
#[derive(Debug, Clone, Copy)]
enum Figure {
    Throughput,
    CpuPerDelivery,
    BytesPerConnection,
}

/// A measurement by scenario and the prefixes of its system's name and variant.
#[derive(Debug, Clone, Copy)]
struct Source {
    scenario: &'static str,
    system: &'static str,
    variant: &'static str,
}

/// The name prefixes of the systems (see each system's `name()`).
pub const EMBEDDED: &str = "natter (SQLite";
pub const SEARCH_OFF: &str = "natter (search off";
pub const TWO_PROCESS: &str = "natter (PostgreSQL";
pub const SPLIT: &str = "natter (split";
pub const CEILING: &str = "ceiling";
pub const NATS: &str = "NATS";
pub const SYNAPSE: &str = "Synapse";

struct Definition {
    key: &'static str,
    label: &'static str,
    figure: Figure,
    numerator: Source,
    denominator: Source,
    higher_is_better: bool,
}

const fn source(scenario: &'static str, system: &'static str, variant: &'static str) -> Source {
    Source { scenario, system, variant }
}

const DIRECT_EMBEDDED: Source = source("direct", EMBEDDED, "saturated");
const FANOUT_EMBEDDED: Source = source("fanout", EMBEDDED, "saturated");

const DEFINITIONS: [Definition; 12] = [
    Definition {
        key: "direct.natter_vs_ceiling",
        label: "direct messages/s: natter (SQLite) ÷ relay ceiling",
        figure: Figure::Throughput,
        numerator: DIRECT_EMBEDDED,
        denominator: source("direct", CEILING, "saturated"),
        higher_is_better: true,
    },
    Definition {
        key: "direct.postgres_vs_embedded",
        label: "direct messages/s: natter (PostgreSQL + NATS, 2 processes) ÷ natter (SQLite)",
        figure: Figure::Throughput,
        numerator: source("direct", TWO_PROCESS, "saturated"),
        denominator: DIRECT_EMBEDDED,
        higher_is_better: true,
    },
    Definition {
        key: "direct.split_vs_two_process",
        label: "direct messages/s: natter (split topology) ÷ natter (PostgreSQL + NATS, 2 processes)",
        figure: Figure::Throughput,
        numerator: source("direct", SPLIT, "saturated"),
        denominator: source("direct", TWO_PROCESS, "saturated"),
        higher_is_better: true,
    },
    Definition {
        key: "direct.natter_vs_synapse",
        label: "direct messages/s: natter (SQLite) ÷ Synapse",
        figure: Figure::Throughput,
        numerator: DIRECT_EMBEDDED,
        denominator: source("direct", SYNAPSE, ""),
        higher_is_better: true,
    },
    Definition {
        key: "direct.search_on_vs_off",
        label: "direct messages/s: natter (SQLite) ÷ natter with search indexing off",
        figure: Figure::Throughput,
        numerator: DIRECT_EMBEDDED,
        denominator: source("direct", SEARCH_OFF, "saturated"),
        higher_is_better: true,
    },
    Definition {
        key: "direct.cpu_natter_vs_ceiling",
        label: "direct server CPU µs per delivery: natter (SQLite) ÷ relay ceiling",
        figure: Figure::CpuPerDelivery,
        numerator: DIRECT_EMBEDDED,
        denominator: source("direct", CEILING, "saturated"),
        higher_is_better: false,
    },
    Definition {
        key: "fanout.natter_vs_ceiling",
        label: "fan-out deliveries/s: natter (SQLite) ÷ ceiling",
        figure: Figure::Throughput,
        numerator: FANOUT_EMBEDDED,
        denominator: source("fanout", CEILING, "saturated"),
        higher_is_better: true,
    },
    Definition {
        key: "fanout.natter_vs_nats",
        label: "fan-out deliveries/s: natter (SQLite) ÷ NATS",
        figure: Figure::Throughput,
        numerator: FANOUT_EMBEDDED,
        denominator: source("fanout", NATS, "saturated"),
        higher_is_better: true,
    },
    Definition {
        key: "fanout.natter_vs_synapse",
        label: "fan-out deliveries/s: natter (SQLite) ÷ Synapse",
        figure: Figure::Throughput,
        numerator: FANOUT_EMBEDDED,
        denominator: source("fanout", SYNAPSE, ""),
        higher_is_better: true,
    },
    Definition {
        key: "fanout.search_on_vs_off",
        label: "fan-out deliveries/s: natter (SQLite) ÷ natter with search indexing off",
        figure: Figure::Throughput,
        numerator: FANOUT_EMBEDDED,
        denominator: source("fanout", SEARCH_OFF, "saturated"),
        higher_is_better: true,
    },
    Definition {
        key: "fanout.cpu_natter_vs_ceiling",
        label: "fan-out server CPU µs per delivery: natter (SQLite) ÷ ceiling",
        figure: Figure::CpuPerDelivery,
        numerator: FANOUT_EMBEDDED,
        denominator: source("fanout", CEILING, "saturated"),
        higher_is_better: false,
    },
    Definition {
        key: "connections.bytes_natter_vs_ceiling",
        label: "server RSS per idle connection: natter (SQLite) ÷ ceiling",
        figure: Figure::BytesPerConnection,
        numerator: source("connections", EMBEDDED, ""),
        denominator: source("connections", CEILING, ""),
        higher_is_better: false,
    },
];

/// The first measurement of `scenario` whose system and variant start with the given prefixes.
pub fn find<'a>(
    measurements: &'a [Measurement],
    scenario: &str,
    system: &str,
    variant: &str,
) -> Option<&'a Measurement> {
    measurements
        .iter()
        .find(|m| m.scenario == scenario && m.system.starts_with(system) && m.variant.starts_with(variant))
}

/// Every ratio whose two measurements are in `measurements`, in a fixed order.
pub fn derive(measurements: &[Measurement]) -> Vec<Ratio> {
    DEFINITIONS
        .iter()
        .filter_map(|definition| {
            let figure = |source: Source| {
                let measurement = find(measurements, source.scenario, source.system, source.variant)?;
                let value = match definition.figure {
                    Figure::Throughput => measurement.throughput,
                    Figure::CpuPerDelivery => measurement.cpu_us_per_delivery(),
                    Figure::BytesPerConnection => measurement.extra.get("rss_per_connection_bytes").copied(),
                };
                value.filter(|value| value.is_finite() && *value > 0.0)
            };
            let value = figure(definition.numerator)? / figure(definition.denominator)?;
            Some(Ratio {
                key: definition.key.to_owned(),
                label: definition.label.to_owned(),
                value,
                higher_is_better: definition.higher_is_better,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::Usage;

    fn measured(scenario: &str, system: &str, variant: &str, throughput: f64) -> Measurement {
        let mut measurement = Measurement::new(scenario, system, variant);
        measurement.throughput = Some(throughput);
        measurement
    }

    #[test]
    fn ratios_need_both_sides_in_the_same_run() {
        let mut natter = measured("fanout", "natter (SQLite, 1 process)", "saturated (window 32)", 200_000.0);
        natter.server = Some(Usage { cpu_secs: 4.0, ..Usage::default() });
        natter.correctness.delivered = 1_000_000;
        let mut ceiling = measured("fanout", "ceiling (bare WebSocket)", "saturated (window 32)", 500_000.0);
        ceiling.server = Some(Usage { cpu_secs: 1.0, ..Usage::default() });
        ceiling.correctness.delivered = 1_000_000;
        let group = measured("fanout", "natter (SQLite, 1 process)", "fixed 5/s", 40_000.0);
        let nats_without_throughput =
            Measurement::new("fanout", "NATS (nats-server WebSocket)", "saturated (window 32)");
        let ratios = derive(&[natter, group, ceiling, nats_without_throughput]);
        let by_key: Vec<(&str, f64, bool)> =
            ratios.iter().map(|r| (r.key.as_str(), r.value, r.higher_is_better)).collect();
        assert_eq!(by_key, [("fanout.natter_vs_ceiling", 0.4, true), ("fanout.cpu_natter_vs_ceiling", 4.0, false)]);
    }

    #[test]
    fn the_search_off_system_is_not_taken_for_the_embedded_one() {
        let off = measured("direct", "natter (search off, SQLite, 1 process)", "saturated (window 8)", 5_000.0);
        let ceiling = measured("direct", "ceiling (bare WebSocket)", "saturated (window 8)", 50_000.0);
        assert!(derive(&[off.clone(), ceiling.clone()]).is_empty());
        let on = measured("direct", "natter (SQLite, 1 process)", "saturated (window 8)", 4_500.0);
        let keys: Vec<String> = derive(&[on, off, ceiling]).into_iter().map(|r| r.key).collect();
        assert_eq!(keys, ["direct.natter_vs_ceiling", "direct.search_on_vs_off"]);
    }
}
