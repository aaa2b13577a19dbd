//! Connections: N idle WebSocket connections, held by worker processes of this binary (one
//! process holds at most ~19,000 sockets here: 20,000 open files per process), each from its own
//! loopback source address (one address has ~28,000 ephemeral ports). Reports the servers'
//! resident memory per connection and the connect rate.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::SinkExt;
use futures_util::stream::{self, StreamExt};
use indicatif::ProgressBar;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;

use crate::measure::{Correctness, Measurement};
use crate::procs::{Monitor, rss_bytes};
use crate::system::System;
use crate::wsclient;

/// Sockets one worker process opens at most.
pub const PER_WORKER: usize = 15_000;
/// Connection attempts a worker has in progress at once.
const CONNECT_CONCURRENCY: usize = 256;

pub async fn run<S: System>(system: &S, connections: usize, bar: &ProgressBar) -> anyhow::Result<Option<Measurement>> {
    let Some(endpoints) = system.idle_endpoints(connections).await? else { return Ok(None) };
    let gateways = system.gateway_pids();
    let rss_before: u64 = gateways.iter().filter_map(|pid| rss_bytes(*pid)).sum();
    let server = Monitor::start(system.server_pids());
    let client = Monitor::start_self();
    bar.set_length(connections as u64);
    bar.set_position(0);
    let started = Instant::now();
    let workers = connections.div_ceil(PER_WORKER);
    let mut children = Vec::new();
    for worker in 0..workers {
        let count = PER_WORKER.min(connections - worker * PER_WORKER);
        let source = fresh_source_address();
        let mut command = Command::new(std::env::current_exe()?);
        command.args(["connect-worker", "--source", &source.to_string(), "--count", &count.to_string()]);
        // Spread over the URLs (nodes) starting at this worker's share.
        for offset in 0..endpoints.urls.len() {
            command.args(["--url", &endpoints.urls[(worker * count + offset) % endpoints.urls.len()]]);
        }
        if let Some(hello) = &endpoints.hello {
            command.args(["--hello", hello]);
        }
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).kill_on_drop(true);
        children.push(command.spawn().context("cannot start a connect worker")?);
    }
    // Each worker prints a progress line per thousand and `ready OK FAILED` when done.
    let mut connected = 0;
    let mut failed = 0;
    for child in &mut children {
        let stdout = child.stdout.take().context("worker stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        while let Some(line) = lines.next_line().await? {
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("progress"), Some(n), _) => bar.inc(n.parse().unwrap_or(0)),
                (Some("ready"), Some(ok), Some(bad)) => {
                    connected += ok.parse::<u64>().unwrap_or(0);
                    failed += bad.parse::<u64>().unwrap_or(0);
                    break;
                }
                _ => {}
            }
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    // Let the servers settle (allocations after the handshake, first pings) before reading memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after: u64 = gateways.iter().filter_map(|pid| rss_bytes(*pid)).sum();
    let mut measurement = Measurement::new("connections", &system.name(), &format!("{connections} idle"))
        .param("connections", connections as f64)
        .param("worker_processes", workers as f64);
    measurement.throughput = Some(connected as f64 / connect_secs.max(1e-9));
    measurement.throughput_unit = "connections/s".into();
    measurement.correctness = Correctness {
        expected: connections as u64,
        delivered: connected,
        lost: (connections as u64).saturating_sub(connected),
        failed_sends: failed,
        ..Correctness::default()
    };
    measurement.extra.insert("connected".into(), connected as f64);
    measurement.extra.insert("server_rss_before_bytes".into(), rss_before as f64);
    measurement.extra.insert("server_rss_after_bytes".into(), rss_after as f64);
    if connected > 0 {
        let per = rss_after.saturating_sub(rss_before) as f64 / connected as f64;
        measurement.extra.insert("rss_per_connection_bytes".into(), per);
    }
    measurement.server = Some(server.finish().await);
    measurement.client = client.finish().await;
    measurement.duration_secs = connect_secs;
    // Closing the workers' stdin tells them to exit; their sockets close with them.
    for mut child in children {
        drop(child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(20), child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
    }
    Ok(Some(measurement))
}

/// A loopback address no earlier connections run of this process used: closed connections
/// leave their ports in TIME_WAIT, and binding to an address whose ports are mostly taken makes
/// the kernel search (slow connects) or fail (EADDRINUSE).
fn fresh_source_address() -> Ipv4Addr {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Ipv4Addr::new(127, 0, (n / 250 % 250) as u8, (n % 250 + 2) as u8)
}

/// The worker: opens `count` connections from `source` to `urls` round-robin, reports, then
/// holds them (answering pings) until its standard input closes.
pub async fn worker(source: IpAddr, count: usize, urls: Vec<String>, hello: Option<String>) -> anyhow::Result<()> {
    if urls.is_empty() {
        bail!("no --url given");
    }
    let failed = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let sockets: Vec<wsclient::Socket> = stream::iter(0..count)
        .map(|i| {
            let (url, hello, failed, done) =
                (urls[i % urls.len()].clone(), hello.clone(), failed.clone(), done.clone());
            async move {
                let outcome = async {
                    let mut socket = wsclient::connect(&url, Some(source)).await?;
                    if let Some(hello) = hello {
                        socket.send(Message::Text(hello.into())).await?;
                    }
                    anyhow::Ok(socket)
                }
                .await;
                if done.fetch_add(1, Ordering::Relaxed) % 1000 == 999 {
                    println!("progress 1000");
                }
                match outcome {
                    Ok(socket) => Some(socket),
                    Err(error) => {
                        if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("connect failed: {error:#}");
                        }
                        None
                    }
                }
            }
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .filter_map(|socket| async move { socket })
        .collect()
        .await;
    let rest = done.load(Ordering::Relaxed) % 1000;
    println!("progress {rest}");
    println!("ready {} {}", sockets.len(), failed.load(Ordering::Relaxed));
    for mut socket in sockets {
        // Reading answers the server's pings; what arrives is dropped.
        tokio::spawn(async move { while let Some(Ok(_)) = socket.next().await {} });
    }
    let mut stdin = tokio::io::stdin();
    let mut buffer = [0_u8; 64];
    while stdin.read(&mut buffer).await.unwrap_or(0) > 0 {}
    Ok(())
}
