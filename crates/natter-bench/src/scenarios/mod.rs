//! The scenarios, written once against [`crate::system::System`] so that every system is
//! driven by the same code: the same payloads, pacing, clocks and correctness checks.

pub mod catchup;
pub mod connections;
pub mod direct;
pub mod fanout;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::{Semaphore, mpsc};

use crate::check::StreamCheck;
use crate::measure::{Correctness, Measurement, Recorder};
use crate::payload;
use crate::procs::Monitor;
use crate::system::{Delivery, SendFn};

/// How a sender paces itself.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// As fast as acknowledgements allow, with at most this many sends unacknowledged.
    Saturate { window: usize },
    /// A fixed number of sends per second (per sender), whatever the acknowledgements do.
    Rate(f64),
}

impl Pace {
    pub fn describe(&self) -> String {
        match self {
            Pace::Saturate { window } => format!("saturated (window {window})"),
            Pace::Rate(rate) => format!("fixed {rate:.0}/s"),
        }
    }
}

/// Sends `count` bodies as member `member`; returns how many sends failed. With `gate`, every
/// send first takes a permit from it (the fan-out scenario's "delivered to everyone" window).
pub async fn drive_sender(
    send: SendFn,
    member: u32,
    count: u64,
    payload_bytes: usize,
    pace: Pace,
    gate: Option<Arc<Semaphore>>,
) -> u64 {
    let mut in_flight: FuturesUnordered<crate::system::BoxFuture<anyhow::Result<()>>> = FuturesUnordered::new();
    let mut failures = 0;
    let mut ticker = match pace {
        Pace::Rate(rate) => {
            let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.001)));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            Some(ticker)
        }
        Pace::Saturate { .. } => None,
    };
    let window = match pace {
        Pace::Saturate { window } => window.max(1),
        Pace::Rate(_) => usize::MAX,
    };
    for index in 0..count {
        // While waiting for the tick, the window or the gate, acknowledgements keep being taken.
        if let Some(ticker) = ticker.as_mut() {
            loop {
                tokio::select! {
                    _ = ticker.tick() => break,
                    Some(outcome) = in_flight.next() => failures += u64::from(outcome.is_err()),
                }
            }
        }
        while in_flight.len() >= window {
            if let Some(Err(_)) = in_flight.next().await {
                failures += 1;
            }
        }
        if let Some(gate) = &gate {
            let permit = loop {
                tokio::select! {
                    permit = gate.acquire() => break permit,
                    Some(outcome) = in_flight.next() => failures += u64::from(outcome.is_err()),
                }
            };
            match permit {
                Ok(permit) => permit.forget(),
                Err(_) => break,
            }
        }
        in_flight.push(Box::pin(acknowledged(send(payload::make(member, index, payload_bytes)))));
    }
    while let Some(outcome) = in_flight.next().await {
        if let Err(error) = outcome {
            if failures == 0 {
                tracing::warn!(%error, "a send failed");
            }
            failures += 1;
        }
    }
    failures
}

/// How long a send may wait for its acknowledgement before it counts as failed.
const ACK_TIMEOUT: Duration = Duration::from_secs(60);

async fn acknowledged(send: crate::system::BoxFuture<anyhow::Result<()>>) -> anyhow::Result<()> {
    match tokio::time::timeout(ACK_TIMEOUT, send).await {
        Ok(outcome) => outcome,
        Err(_) => Err(anyhow::anyhow!("no acknowledgement within {ACK_TIMEOUT:?}")),
    }
}

/// What one receiving device saw.
#[derive(Default)]
pub struct Received {
    pub by_sender: HashMap<u32, StreamCheck>,
    pub latency: Recorder,
    /// Deliveries whose system order number (natter's `seq`) went backwards.
    pub seq_reorders: u64,
    pub last_us: u64,
    pub first_receipts: u64,
}

impl Received {
    /// The count against what should have arrived: `per_sender` bodies from each of `senders`.
    pub fn correctness(&self, senders: &[u32], per_sender: u64) -> Correctness {
        let mut count = Correctness::default();
        for sender in senders {
            match self.by_sender.get(sender) {
                Some(check) => count.add(&check.finish(0..per_sender)),
                None => count.add(&StreamCheck::default().finish(0..per_sender)),
            }
        }
        count.reordered += self.seq_reorders;
        count
    }
}

/// Reads a device's deliveries until `expected` first receipts from other members arrived, or
/// nothing arrived for `idle`. `on_first` runs for each first receipt.
pub async fn receive(
    mut deliveries: mpsc::UnboundedReceiver<Delivery>,
    me: u32,
    expected: u64,
    idle: Duration,
    on_first: impl Fn(&Delivery),
) -> Received {
    let mut received = Received::default();
    let mut last_seq = None;
    while received.first_receipts < expected {
        let delivery = match tokio::time::timeout(idle, deliveries.recv()).await {
            Ok(Some(delivery)) => delivery,
            Ok(None) | Err(_) => break,
        };
        if let Some(seq) = delivery.seq {
            if last_seq.is_some_and(|last| seq <= last) {
                received.seq_reorders += 1;
            }
            last_seq = Some(seq);
        }
        if delivery.stamp.sender == me {
            continue;
        }
        if received.by_sender.entry(delivery.stamp.sender).or_default().receive(delivery.stamp.index) {
            received.first_receipts += 1;
            received.latency.record(Duration::from_micros(delivery.received_us.saturating_sub(delivery.stamp.sent_us)));
            received.last_us = received.last_us.max(delivery.received_us);
            on_first(&delivery);
        }
    }
    received
}

/// Fills in resource use and timing; `start_us` is when the first send went out.
pub async fn finish(
    mut measurement: Measurement,
    server: Monitor,
    client: Monitor,
    start_us: u64,
    end_us: u64,
) -> Measurement {
    let server = server.finish().await;
    measurement.server = (server.peak_rss_bytes > 0).then_some(server);
    measurement.client = client.finish().await;
    measurement.duration_secs = (end_us.saturating_sub(start_us)) as f64 / 1e6;
    measurement
}
