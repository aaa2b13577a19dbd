//! Fan-out: one room of K members, all online; member 0 sends, everyone else receives.
//! Reports deliveries per second and, per message, the latency to the last member.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use indicatif::ProgressBar;
use tokio::sync::Semaphore;

use super::{Pace, drive_sender, finish, receive};
use crate::measure::{Correctness, Measurement, Recorder};
use crate::payload;
use crate::procs::Monitor;
use crate::system::System;

#[derive(Debug, Clone, Copy)]
pub struct FanoutParams {
    /// Members of the room, the sender included.
    pub members: usize,
    pub messages: u64,
    pub payload_bytes: usize,
    /// `Saturate { window }`: at most `window` messages not yet delivered to every member.
    pub pace: Pace,
}

pub async fn run<S: System>(system: &S, params: FanoutParams, bar: &ProgressBar) -> anyhow::Result<Measurement> {
    let mut devices = system.room(params.members).await?;
    let publisher = devices.remove(0);
    let receivers = devices.len();
    let messages = params.messages as usize;
    // Per message: receivers still to get it, and when the last one did.
    let outstanding: Arc<Vec<AtomicU32>> = Arc::new((0..messages).map(|_| AtomicU32::new(receivers as u32)).collect());
    let last_us: Arc<Vec<AtomicU64>> = Arc::new((0..messages).map(|_| AtomicU64::new(0)).collect());
    // Each body carries its send time; the receivers note it per message.
    let sent_us: Arc<Vec<AtomicU64>> = Arc::new((0..messages).map(|_| AtomicU64::new(0)).collect());
    let gate = match params.pace {
        Pace::Saturate { window } => Some(Arc::new(Semaphore::new(window.max(1)))),
        Pace::Rate(_) => None,
    };
    bar.set_length(params.messages);
    bar.set_position(0);

    let server = Monitor::start(system.server_pids());
    let client = Monitor::start_self();
    let start_us = payload::now_us();
    let mut tasks = Vec::new();
    for device in devices {
        let (outstanding, last_us, sent_us) = (outstanding.clone(), last_us.clone(), sent_us.clone());
        let (gate, bar) = (gate.clone(), bar.clone());
        tasks.push(tokio::spawn(receive(device.deliveries, device.member, params.messages, idle(params), move |d| {
            let index = d.stamp.index as usize;
            if index >= outstanding.len() {
                return;
            }
            last_us[index].fetch_max(d.received_us, Ordering::Relaxed);
            sent_us[index].store(d.stamp.sent_us, Ordering::Relaxed);
            if outstanding[index].fetch_sub(1, Ordering::AcqRel) == 1 {
                bar.inc(1);
                if let Some(gate) = &gate {
                    gate.add_permits(1);
                }
            }
        })));
    }
    // Acknowledgements do not limit the fan-out sender; deliveries do (through the gate).
    let sender_pace = match params.pace {
        Pace::Saturate { .. } => Pace::Saturate { window: usize::MAX },
        rate => rate,
    };
    let send = publisher.send.clone();
    let sender = tokio::spawn(drive_sender(send, 0, params.messages, params.payload_bytes, sender_pace, gate.clone()));
    let mut received = Vec::new();
    for task in tasks {
        received.push(task.await?);
    }
    // Receivers that gave up (a lost delivery) never release their permits: let the sender stop.
    if let Some(gate) = &gate {
        gate.close();
    }
    let failed = sender.await?;
    let mut correctness = Correctness { failed_sends: failed, ..Correctness::default() };
    let mut per_delivery = Recorder::default();
    let mut end_us = start_us;
    for received in received {
        correctness.add(&received.correctness(&[0], params.messages));
        per_delivery.merge(&received.latency);
        end_us = end_us.max(received.last_us);
    }
    drop(publisher);
    // Latency to the last member, for every message that reached everyone.
    let mut to_last = Recorder::default();
    for index in 0..messages {
        if outstanding[index].load(Ordering::Relaxed) == 0 {
            let (sent, last) = (sent_us[index].load(Ordering::Relaxed), last_us[index].load(Ordering::Relaxed));
            to_last.record(Duration::from_micros(last.saturating_sub(sent)));
        }
    }
    let mut measurement = Measurement::new("fanout", &system.name(), &params.pace.describe())
        .param("members", params.members as f64)
        .param("messages", params.messages as f64)
        .param("payload_bytes", params.payload_bytes as f64);
    let deliveries = correctness.delivered;
    measurement.correctness = correctness;
    let mut measurement = finish(measurement, server, client, start_us, end_us).await;
    measurement.throughput = Some(deliveries as f64 / measurement.duration_secs.max(1e-9));
    measurement.throughput_unit = "deliveries/s".into();
    measurement.latency = to_last.latency().or(per_delivery.latency());
    if let Some(each) = per_delivery.latency() {
        measurement.extra.insert("per_delivery_p99_us".into(), each.p99_us as f64);
    }
    measurement.note_cpu_per_delivery();
    Ok(measurement)
}

/// How long a receiver waits for the next body before it gives up.
fn idle(params: FanoutParams) -> Duration {
    match params.pace {
        Pace::Rate(rate) if rate < 1.0 => Duration::from_secs_f64(10.0 + 1.0 / rate),
        _ => Duration::from_secs(15),
    }
}
