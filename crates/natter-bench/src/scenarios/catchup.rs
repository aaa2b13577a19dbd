//! Catch-up: a device comes back after M messages it missed and syncs them by `seq` over HTTP
//! (`GET …/messages?after_seq=&limit=200`, page after page), as PRODUCT.md's contract says.

use std::time::{Duration, Instant};

use anyhow::bail;
use indicatif::ProgressBar;

use super::{Pace, drive_sender};
use crate::check::StreamCheck;
use crate::measure::{Correctness, Measurement, Recorder};
use crate::natter::Natter;
use crate::payload;
use crate::procs::Monitor;
use crate::system::System;

/// The largest page natter serves.
const PAGE: u32 = 200;
/// Syncs timed; the report gives their percentiles.
const ROUNDS: usize = 5;

pub async fn run(natter: &Natter, missed: u64, payload_bytes: usize, bar: &ProgressBar) -> anyhow::Result<Measurement> {
    let accounts = natter.register(2).await?;
    let conversation = natter.befriend(&accounts[0], &accounts[1]).await?;
    // The sender is online; the reader's device is not, and misses everything.
    let sender = natter.connect(&accounts[0], 0, &conversation, 0).await?;
    bar.set_length(missed);
    bar.set_position(0);
    let failed = drive_sender(sender.send.clone(), 0, missed, payload_bytes, Pace::Saturate { window: 64 }, None).await;
    bar.set_position(missed);
    if failed > 0 {
        bail!("{failed} of the {missed} messages to be missed could not be sent");
    }

    let server = Monitor::start(natter.server_pids());
    let client = Monitor::start_self();
    let mut timings = Recorder::default();
    let mut correctness = Correctness { failed_sends: failed, ..Correctness::default() };
    let mut best = Duration::MAX;
    for round in 0..ROUNDS {
        let started = Instant::now();
        let mut after = 0;
        let mut check = StreamCheck::default();
        let mut seq_gaps = 0;
        loop {
            let page = natter.history_after(&accounts[1], &conversation, after, PAGE).await?;
            for entry in &page.messages {
                if entry.seq != after + 1 {
                    seq_gaps += 1;
                }
                after = entry.seq;
                if let Some(stamp) = entry.text.as_deref().and_then(payload::parse) {
                    check.receive(stamp.index);
                }
            }
            if !page.has_more || page.messages.is_empty() {
                break;
            }
        }
        let elapsed = started.elapsed();
        timings.record(elapsed);
        best = best.min(elapsed);
        if round == 0 {
            correctness = check.finish(0..missed);
            correctness.reordered += seq_gaps;
            correctness.failed_sends = failed;
        }
    }
    drop(sender);
    let mut measurement =
        Measurement::new("catchup", &natter.name(), &format!("{missed} missed")).param("missed", missed as f64);
    measurement.param_mut("page", f64::from(PAGE));
    measurement.correctness = correctness;
    measurement.latency = timings.latency();
    let median = measurement.latency.map_or(0.0, |l| l.p50_us as f64 / 1e6);
    measurement.throughput = Some(missed as f64 / median.max(1e-9));
    measurement.throughput_unit = "messages/s synced".into();
    measurement.extra.insert("sync_secs_median".into(), median);
    measurement.extra.insert("sync_secs_best".into(), best.as_secs_f64());
    measurement.server = Some(server.finish().await);
    measurement.client = client.finish().await;
    measurement.duration_secs = median;
    Ok(measurement)
}
