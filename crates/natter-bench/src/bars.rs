//! The bars (targets with a ratio to each), computed from one run's measurements.

use crate::measure::Measurement;
use crate::ratios;
use crate::report::{self, Bar};
use crate::run::Plan;

/// The bars, from this run's measurements.
pub fn bars(measurements: &[Measurement], plan: &Plan) -> Vec<Bar> {
    let find = |scenario: &str, system: &str, variant: &str| ratios::find(measurements, scenario, system, variant);
    let throughput = |m: Option<&Measurement>| m.and_then(|m| m.throughput);
    let embedded = ratios::EMBEDDED;
    let mut bars = Vec::new();

    let wide = measurements.iter().find(|m| m.scenario == "connections" && m.system.contains("PostgreSQL"));
    let any = wide.or_else(|| find("connections", embedded, ""));
    let per_connection = any.and_then(|m| m.extra.get("rss_per_connection_bytes").copied());
    // The bar: the ceiling's bytes per connection with the same buffers, × 1.1 (one process each).
    let embedded_per_connection =
        find("connections", embedded, "").and_then(|m| m.extra.get("rss_per_connection_bytes").copied());
    let ceiling_per_connection =
        find("connections", ratios::CEILING, "").and_then(|m| m.extra.get("rss_per_connection_bytes").copied());
    let target = "idle connection: server RSS ≤ 1.1 × the ceiling's bytes (one process each)";
    bars.push(match (embedded_per_connection, ceiling_per_connection) {
        (Some(natter), Some(ceiling)) if ceiling > 0.0 => Bar {
            scenario: "connections".into(),
            target: target.into(),
            measured: format!("{natter:.0} vs {ceiling:.0} bytes ({:.2}×)", natter / ceiling),
            ratio: Some(1.1 * ceiling / natter),
            met: Some(natter <= 1.1 * ceiling),
        },
        _ => Bar::not_measured("connections", target, "not measured in this run"),
    });
    let target = format!(
        "{} idle connections, server RSS ≤ 6 KiB each (goal)",
        report::human(plan.cluster_connections.max(plan.connections) as f64)
    );
    let mut bar = Bar::at_most("connections", &target, 6.0 * 1024.0, per_connection, "bytes/connection");
    if let Some(m) = any {
        bar.measured = format!(
            "{} at {} connections",
            bar.measured,
            report::human(m.extra.get("connected").copied().unwrap_or(0.0))
        );
    }
    bars.push(bar);

    bars.push(Bar::at_least(
        "direct",
        "embedded (SQLite) ≥ 10,000 messages/s (goal 30,000)",
        10_000.0,
        throughput(find("direct", embedded, "saturated")),
        "messages/s",
    ));
    let half = find("direct", embedded, "fixed").and_then(|m| m.latency).map(|l| l.p99_us as f64 / 1000.0);
    bars.push(Bar::at_most("direct", "p99 send→deliver ≤ 25 ms at half that rate", 25.0, half, "ms p99"));
    bars.push(Bar::at_least(
        "direct",
        "PostgreSQL + NATS, two processes ≥ 5,000 messages/s (goal 10,000)",
        5_000.0,
        throughput(find("direct", ratios::TWO_PROCESS, "saturated")),
        "messages/s",
    ));

    let two_process = throughput(find("direct", ratios::TWO_PROCESS, "saturated"));
    let split = throughput(find("direct", ratios::SPLIT, "saturated"));
    let target = "split topology (gateways → gRPC → chat) ≥ the two-process shape, same run";
    bars.push(match (split, two_process) {
        (Some(split), Some(two)) if two > 0.0 => Bar {
            scenario: "direct".into(),
            target: target.into(),
            measured: format!("{} vs {} messages/s ({:.2}×)", report::human(split), report::human(two), split / two),
            ratio: Some(split / two),
            met: Some(split >= two),
        },
        _ => Bar::not_measured("direct", target, "not measured in this run"),
    });

    let natter_fanout = throughput(find("fanout", embedded, "saturated"));
    let ceiling_fanout = throughput(find("fanout", ratios::CEILING, "saturated"));
    let nats_fanout = throughput(find("fanout", ratios::NATS, "saturated"));
    let relative = |name: &str, goal: f64, baseline: Option<f64>| match (natter_fanout, baseline) {
        (Some(natter), Some(baseline)) if baseline > 0.0 => {
            let ratio = natter / baseline;
            Bar {
                scenario: "fanout".into(),
                target: format!("deliveries/s ≥ {goal} × {name}"),
                measured: format!(
                    "{} vs {} deliveries/s ({ratio:.2}×)",
                    report::human(natter),
                    report::human(baseline)
                ),
                ratio: Some(ratio / goal),
                met: Some(ratio >= goal),
            }
        }
        _ => Bar::not_measured("fanout", &format!("deliveries/s ≥ {goal} × {name}"), "not measured in this run"),
    };
    bars.push(relative("ceiling", 0.5, ceiling_fanout));
    bars.push(relative("NATS", 0.5, nats_fanout));

    let big = measurements.iter().find(|m| {
        m.scenario == "fanout"
            && m.params.get("members") == Some(&(plan.big_group.members as f64))
            && m.system.starts_with(embedded)
    });
    let big_p99 = big.and_then(|m| m.latency).map(|l| l.p99_us as f64 / 1000.0);
    let target = format!(
        "{}-member group, all online: p99 to the last member ≤ 100 ms",
        report::human(plan.big_group.members as f64)
    );
    bars.push(Bar::at_most("fanout", &target, 100.0, big_p99, "ms p99"));

    let catchup =
        find("catchup", embedded, "").and_then(|m| m.extra.get("sync_secs_median").copied()).map(|s| s * 1000.0);
    let target = format!("{} missed messages synced in ≤ 300 ms", report::human(plan.catchup_missed as f64));
    bars.push(Bar::at_most("catchup", &target, 300.0, catchup, "ms (median of 5)"));

    let natter_direct = throughput(find("direct", embedded, "saturated"));
    for (scenario, natter) in [("direct", natter_direct), ("fanout", natter_fanout)] {
        let off = throughput(find(scenario, ratios::SEARCH_OFF, "saturated"));
        let target = "with search indexing on ≥ 0.9 × indexing off, same run";
        bars.push(match (natter, off) {
            (Some(on), Some(off)) if off > 0.0 => {
                let ratio = on / off;
                Bar {
                    scenario: scenario.into(),
                    target: target.into(),
                    measured: format!("{} vs {} ({ratio:.2}×)", report::human(on), report::human(off)),
                    ratio: Some(ratio / 0.9),
                    met: Some(ratio >= 0.9),
                }
            }
            _ => Bar::not_measured(scenario, target, "not measured in this run (--only natter,natter-noindex)"),
        });
    }
    for (scenario, natter) in [("direct", natter_direct), ("fanout", natter_fanout)] {
        let synapse = throughput(find(scenario, ratios::SYNAPSE, ""));
        let target = format!("≥ 100 × Synapse's {scenario} throughput");
        bars.push(match (natter, synapse) {
            (Some(natter), Some(synapse)) if synapse > 0.0 => {
                let ratio = natter / synapse;
                Bar {
                    scenario: scenario.into(),
                    target,
                    measured: format!("{} vs {} ({ratio:.0}×)", report::human(natter), report::human(synapse)),
                    ratio: Some(ratio / 100.0),
                    met: Some(ratio >= 100.0),
                }
            }
            _ => Bar::not_measured(scenario, &target, "not measured in this run"),
        });
    }
    bars
}
