//! Direct: P pairs of users in one-to-one conversations, both sides sending; send → commit →
//! ack → delivered to the peer.

use std::time::Duration;

use futures_util::stream::{self, StreamExt, TryStreamExt};
use indicatif::ProgressBar;

use super::{Pace, drive_sender, finish, receive};
use crate::measure::{Correctness, Measurement, Recorder};
use crate::payload;
use crate::procs::Monitor;
use crate::system::System;

#[derive(Debug, Clone, Copy)]
pub struct DirectParams {
    pub pairs: usize,
    /// Bodies each member of each pair sends.
    pub messages_per_sender: u64,
    pub payload_bytes: usize,
    /// Per sender: `Saturate { window: 1 }` sends the next body when the previous is acknowledged.
    pub pace: Pace,
}

pub async fn run<S: System>(system: &S, params: DirectParams, bar: &ProgressBar) -> anyhow::Result<Measurement> {
    let rooms: Vec<_> = stream::iter(0..params.pairs).map(|_| system.pair()).buffer_unordered(8).try_collect().await?;
    let total = params.pairs as u64 * 2 * params.messages_per_sender;
    bar.set_length(total);
    bar.set_position(0);

    let server = Monitor::start(system.server_pids());
    let client = Monitor::start_self();
    let start_us = payload::now_us();
    let mut receivers = Vec::new();
    let mut senders = Vec::new();
    for devices in rooms {
        for device in devices {
            let peer = 1 - device.member;
            let bar = bar.clone();
            let expected = params.messages_per_sender;
            receivers.push(tokio::spawn(async move {
                let received = receive(device.deliveries, device.member, expected, Duration::from_secs(15), |_| {
                    bar.inc(1);
                })
                .await;
                (peer, received)
            }));
            let send = device.send.clone();
            let (count, size, pace) = (params.messages_per_sender, params.payload_bytes, params.pace);
            senders.push(tokio::spawn(drive_sender(send, device.member, count, size, pace, None)));
        }
    }
    let mut correctness = Correctness::default();
    for sender in senders {
        correctness.failed_sends += sender.await?;
    }
    let mut latency = Recorder::default();
    let mut end_us = start_us;
    for receiver in receivers {
        let (peer, received) = receiver.await?;
        correctness.add(&received.correctness(&[peer], params.messages_per_sender));
        latency.merge(&received.latency);
        end_us = end_us.max(received.last_us);
    }
    let measurement = Measurement::new("direct", &system.name(), &params.pace.describe())
        .param("pairs", params.pairs as f64)
        .param("messages_per_sender", params.messages_per_sender as f64)
        .param("payload_bytes", params.payload_bytes as f64);
    let delivered = correctness.delivered;
    let mut measurement = finish(measurement, server, client, start_us, end_us).await;
    measurement.correctness = correctness;
    measurement.throughput = Some(delivered as f64 / measurement.duration_secs.max(1e-9));
    measurement.throughput_unit = "messages/s".into();
    measurement.latency = latency.latency();
    measurement.note_cpu_per_delivery();
    Ok(measurement)
}
