//! The chaos test (`natter-bench chaos`): natter's split topology and every service it needs run
//! as real processes on loopback behind nginx, a few hundred devices use it like real apps, and
//! a seeded schedule of faults kills, freezes and restarts its parts. The checker then reads
//! every device's view and the server's log and fails on any lost, duplicated or reordered
//! message (see [`checker`]). Everything is saved for a second look (`natter-bench chaos-check`).

pub mod checker;
pub mod cluster;
pub mod device;
pub mod history;
pub mod report;
pub mod schedule;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use natter_proto::{AcceptFriendResponse, AuthResponse, ConversationView, FriendRequestView};
use serde_json::json;
use tokio::sync::watch;

use cluster::{Cluster, GATEWAYS, NODE_NAMES};
use device::{Device, Net, Phase, Progress};
use history::{Event, FinalLog, LogEntry, Recorder, Setup};
use schedule::Fault;

/// A fault must be followed by every device having every entry the log held at its end within
/// this long (the bar); the measurement itself waits up to [`CONVERGE_LIMIT`].
pub const CONVERGE_BAR: Duration = Duration::from_secs(5);
const CONVERGE_LIMIT: Duration = Duration::from_secs(30);
/// HTTP set-up calls at once.
const SETUP_CONCURRENCY: usize = 16;

/// splitmix64: small, seeded, and the same on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// A generator of its own for part `stream` of the run.
    pub fn fork(&self, stream: u64) -> Rng {
        let mut rng = Rng(self.0 ^ stream.wrapping_mul(0xd1b5_4a32_d192_ed03));
        rng.next_u64();
        rng
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    pub duration: Duration,
    /// Connected devices (about a quarter are users' second devices).
    pub devices: usize,
    /// Members of the big group (the active users and passive ones registered for it).
    pub big_group: usize,
    /// Mean time between two sends of one device.
    pub send_every: Duration,
    pub natter_binary: PathBuf,
    pub out: PathBuf,
    /// Only these faults ([`schedule::NAMES`]); empty: all.
    pub faults: Vec<String>,
    /// A fault not converged within [`CONVERGE_BAR`] is reported but does not fail the run
    /// (a violation of the checker always does).
    pub convergence_advisory: bool,
}

/// Runs the test; `Ok(true)` when the checker found nothing and every fault converged in time
/// (or convergence is advisory).
pub async fn run(options: Options) -> anyhow::Result<bool> {
    // Absolute: nginx takes its config path relative to its prefix, and processes run elsewhere.
    std::fs::create_dir_all(&options.out)?;
    let out = &std::path::absolute(&options.out)?;
    let _ = std::fs::remove_dir_all(out.join("cluster"));
    println!("chaos: seed {}, {:?}, {} devices; starting the cluster", options.seed, options.duration, options.devices);
    let mut cluster = Cluster::start(&options.natter_binary, &out.join("cluster")).await?;
    let net = Arc::new(Net::new(&cluster.url, &cluster.ca_pem)?);
    let rng = Rng::new(options.seed);
    let started = Instant::now();
    let (setup, tokens) = set_up(&net, &options, rng.fork(1)).await?;
    println!(
        "chaos: {} users, {} devices, {} conversations (big group: {} members) ready in {:.1} s",
        setup.users,
        setup.devices.len(),
        setup.conversations.len(),
        options.big_group,
        started.elapsed().as_secs_f64()
    );

    let recorder = Recorder::new(Instant::now());
    let progress: Progress =
        Arc::new(setup.devices.iter().map(|(_, convs)| convs.iter().map(|_| AtomicI64::new(-1)).collect()).collect());
    let (phase_tx, phase_rx) = watch::channel(Phase::Running);
    let mut tasks = Vec::new();
    for (index, ((_, convs), token)) in setup.devices.iter().zip(tokens).enumerate() {
        let conversations = convs.iter().map(|&c| (c, setup.conversations[c as usize].clone())).collect();
        let device = Device::new(
            index as u32,
            token,
            conversations,
            net.clone(),
            recorder.clone(),
            rng.fork(1000 + index as u64),
            options.send_every,
            progress.clone(),
            phase_rx.clone(),
        );
        tasks.push(tokio::spawn(device.run()));
    }

    let mut counters = Counters::default();
    let plan = schedule::plan(rng.fork(2), options.duration, &options.faults);
    println!("chaos: {} faults planned over {:?}", plan.len(), options.duration);
    let run_start = Instant::now();
    for (index, planned) in plan.iter().enumerate() {
        let due = run_start + planned.at;
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        if let Fault::Kill { node } = planned.fault {
            // Its counters die with it: take them first.
            counters.scrape(&net.http, &cluster.nodes[node].name, cluster.nodes[node].port).await;
        }
        let start = recorder.now();
        let target = inject(&mut cluster, &planned.fault).await.with_context(|| format!("fault {index}"))?;
        let end = recorder.now();
        let kind = planned.fault.kind().to_owned();
        println!("chaos: fault {index} {kind} {target} took {:.1} s", (end - start) as f64 / 1e6);
        recorder.record(Event::Fault { index: index as u32, kind, target, start, end });
        let (after, behind) = converge(&cluster, &setup, &progress, CONVERGE_LIMIT).await;
        let after_ms = after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        match after_ms {
            Some(ms) => println!("chaos:   converged after {ms} ms"),
            None => println!("chaos:   NOT converged within {CONVERGE_LIMIT:?}"),
        }
        if !behind.is_empty() {
            println!("chaos:   behind at {CONVERGE_BAR:?} (device, conversation, has, head): {behind:?}");
        }
        recorder.record(Event::Converged { index: index as u32, after_ms, behind });
    }
    let remaining = (run_start + options.duration).saturating_duration_since(Instant::now());
    tokio::time::sleep(remaining).await;

    println!("chaos: finishing (no new sends; last retries; final sync)");
    let _ = phase_tx.send(Phase::Finishing);
    for task in tasks {
        if tokio::time::timeout(Duration::from_secs(180), task).await.is_err() {
            bail!("a device did not finish within 180 s of the end");
        }
    }
    for node in &cluster.nodes {
        counters.scrape(&net.http, &node.name, node.port).await;
    }
    let log = final_log(&cluster, &setup)?;
    let events = recorder.events();
    history::save(out, &setup, &events, &log)?;
    cluster.stop().await;

    let verdict = checker::check(&setup, &events, &log);
    let mut summary = report::Summary::new(&setup, &events, verdict, options.duration);
    summary.server_counters = counters.0;
    summary.write(out)?;
    println!("{}", summary.to_markdown());
    if options.convergence_advisory && summary.verdict.passed() && !summary.converged_in_time {
        println!("(convergence is advisory in this run: not failing on it)");
        return Ok(true);
    }
    Ok(summary.passed())
}

/// The servers' own counts of what they did (from `/metrics`), summed over every process and
/// every restart, by role: fan-out jobs on the worker, the gateways' sequencer.
#[derive(Default)]
struct Counters(BTreeMap<String, f64>);

impl Counters {
    const NAMES: [&'static str; 7] = [
        "natter_fanout_jobs",
        "natter_fanout_repeats",
        "natter_events_delivered",
        "natter_bus_events_received",
        "natter_sequencer_held",
        "natter_sequencer_gaps_given_up",
        "natter_sequencer_late",
    ];

    async fn scrape(&mut self, http: &reqwest::Client, node: &str, port: u16) {
        // The node's own port: plain HTTP on loopback, not through nginx.
        let url = format!("http://127.0.0.1:{port}/metrics");
        let Ok(Ok(response)) = tokio::time::timeout(Duration::from_secs(5), http.get(url).send()).await else { return };
        let Ok(text) = response.text().await else { return };
        let role = node.trim_end_matches(char::is_numeric);
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let Some((name, value)) = line.rsplit_once(' ') else { continue };
            let metric = name.split('{').next().unwrap_or(name).trim_end_matches("_total");
            if Self::NAMES.contains(&metric)
                && let Ok(value) = value.parse::<f64>()
            {
                *self.0.entry(format!("{role} {metric}")).or_default() += value;
            }
        }
    }
}

/// Checks a saved run again (`history.jsonl`, `log.json`, `setup.json` in `dir`).
pub fn check_saved(dir: &std::path::Path) -> anyhow::Result<bool> {
    let (setup, events, log) = history::load(dir)?;
    let duration = events
        .iter()
        .filter_map(|event| match event {
            Event::Seen { t, .. } | Event::Send { t, .. } => Some(*t),
            _ => None,
        })
        .max()
        .map_or(Duration::ZERO, Duration::from_micros);
    let verdict = checker::check(&setup, &events, &log);
    let summary = report::Summary::new(&setup, &events, verdict, duration);
    println!("{}", summary.to_markdown());
    Ok(summary.passed())
}

/// Causes `fault` and waits until it is over (the part is back); returns what it hit.
async fn inject(cluster: &mut Cluster, fault: &Fault) -> anyhow::Result<String> {
    match *fault {
        Fault::Kill { node } => {
            let node = &mut cluster.nodes[node];
            node.kill9().await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            node.start().await?;
            Ok(node.name.clone())
        }
        Fault::Freeze { gateway, secs } => {
            let node = &cluster.nodes[GATEWAYS[gateway]];
            node.freeze(true);
            tokio::time::sleep(Duration::from_secs(secs)).await;
            node.freeze(false);
            Ok(node.name.clone())
        }
        Fault::RestartNats => {
            cluster.nats.stop().await;
            cluster.nats.start().await?;
            Ok("nats".into())
        }
        Fault::RestartRedis => {
            cluster.redis.stop().await;
            cluster.redis.start().await?;
            Ok("redis".into())
        }
        Fault::RestartEtcd => {
            cluster.etcd.stop().await;
            cluster.etcd.start().await?;
            Ok("etcd".into())
        }
        Fault::RestartPostgres => {
            let postgres = &cluster.postgres;
            tokio::task::block_in_place(|| {
                postgres.stop_fast()?;
                postgres.start_again()
            })?;
            Ok("postgresql (fast shutdown)".into())
        }
    }
}

/// How long after now every device's views hold every entry the log holds now (`None`: not
/// within `limit`), and the first few devices still behind when [`CONVERGE_BAR`] passed.
async fn converge(
    cluster: &Cluster,
    setup: &Setup,
    progress: &Progress,
    limit: Duration,
) -> (Option<Duration>, Vec<(u32, u32, i64, i64)>) {
    let started = Instant::now();
    let heads = loop {
        match heads(cluster, setup) {
            Ok(heads) => break heads,
            Err(error) if started.elapsed() < limit => {
                tracing::warn!(%error, "cannot read the log's heads yet");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(_) => return (None, Vec::new()),
        }
    };
    let mut behind_at_bar = Vec::new();
    loop {
        let behind: Vec<(u32, u32, i64, i64)> = setup
            .devices
            .iter()
            .enumerate()
            .flat_map(|(device, (_, convs))| {
                let heads = &heads;
                convs.iter().enumerate().filter_map(move |(position, conv)| {
                    let has = progress[device][position].load(Ordering::Relaxed);
                    let head = heads[*conv as usize];
                    (has < head).then_some((device as u32, *conv, has, head))
                })
            })
            .take(10)
            .collect();
        if behind.is_empty() {
            return (Some(started.elapsed()), behind_at_bar);
        }
        if started.elapsed() > CONVERGE_BAR && behind_at_bar.is_empty() {
            behind_at_bar = behind;
        }
        if started.elapsed() > limit {
            return (None, behind_at_bar);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The highest `seq` of each conversation in the log now.
fn heads(cluster: &Cluster, setup: &Setup) -> anyhow::Result<Vec<i64>> {
    let output = cluster
        .postgres
        .query(&cluster.database, "SELECT conversation_id, max(seq) FROM messages GROUP BY conversation_id")?;
    let max: BTreeMap<&str, i64> = output
        .lines()
        .filter_map(|line| {
            let (conv, seq) = line.split_once('\t')?;
            Some((conv, seq.trim().parse().ok()?))
        })
        .collect();
    Ok(setup.conversations.iter().map(|id| max.get(id.as_str()).copied().unwrap_or(0)).collect())
}

/// The log and the read markers at the end, from PostgreSQL.
fn final_log(cluster: &Cluster, setup: &Setup) -> anyhow::Result<FinalLog> {
    let index: BTreeMap<&str, usize> = setup.conversations.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    let mut log = FinalLog {
        entries: vec![Vec::new(); setup.conversations.len()],
        read_seq: vec![BTreeMap::new(); setup.conversations.len()],
    };
    let messages = cluster.postgres.query(
        &cluster.database,
        "SELECT conversation_id, seq, id, sender_id, coalesce(client_msg_id, '') FROM messages \
         ORDER BY conversation_id, seq",
    )?;
    for line in messages.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let [conv, seq, id, sender, cmid] = fields[..] else { bail!("unexpected psql line {line:?}") };
        let Some(&conv) = index.get(conv) else { continue };
        log.entries[conv].push(LogEntry {
            seq: seq.parse()?,
            id: id.to_owned(),
            sender: sender.to_owned(),
            cmid: (!cmid.is_empty()).then(|| cmid.to_owned()),
        });
    }
    let members =
        cluster.postgres.query(&cluster.database, "SELECT conversation_id, user_id, read_seq FROM members")?;
    for line in members.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let [conv, user, read_seq] = fields[..] else { bail!("unexpected psql line {line:?}") };
        let Some(&conv) = index.get(conv) else { continue };
        log.read_seq[conv].insert(user.to_owned(), read_seq.parse()?);
    }
    Ok(log)
}

/// Registers the users, makes friends (a ring: each active user has two direct chats), small
/// groups and the big group, and logs in second devices. Returns the setup and each device's
/// access token.
async fn set_up(net: &Net, options: &Options, mut rng: Rng) -> anyhow::Result<(Setup, Vec<String>)> {
    let active = (options.devices * 3 / 4).max(3);
    let second_devices = options.devices.saturating_sub(active);
    let users = options.big_group.max(active);
    let tag = format!("{:x}", rng.next_u64() % 0xff_ffff);
    let registered: Vec<AuthResponse> = stream::iter(0..users)
        .map(|i| {
            let body = json!({ "username": format!("c{tag}u{i}"), "password": "chaos-password" });
            async move { post(net, "/auth/register", None, &body).await }
        })
        .buffered(SETUP_CONCURRENCY)
        .try_collect()
        .await
        .context("registering the users")?;
    let ids: Vec<String> = registered.iter().map(|a| a.user.id.clone()).collect();
    let tokens: Vec<String> = registered.iter().map(|a| a.access_token.clone()).collect();

    let mut conversations = Vec::new();
    let mut kinds = Vec::new();
    let mut member_of: Vec<Vec<u32>> = vec![Vec::new(); active];
    // Direct chats: user i and i + 1 (mod active).
    let pairs: Vec<(usize, usize)> = (0..active).map(|i| (i, (i + 1) % active)).collect();
    let direct: Vec<String> = stream::iter(pairs.iter().copied())
        .map(|(a, b)| {
            let (tokens, ids) = (&tokens, &ids);
            async move {
                let request: FriendRequestView =
                    post(net, "/friend-requests", Some(&tokens[a]), &json!({ "user_id": ids[b] })).await?;
                let path = format!("/friend-requests/{}/accept", request.id);
                let accepted: AcceptFriendResponse = post(net, &path, Some(&tokens[b]), &json!({})).await?;
                Ok::<_, anyhow::Error>(accepted.conversation.id)
            }
        })
        .buffered(SETUP_CONCURRENCY)
        .try_collect()
        .await
        .context("making friends")?;
    for ((a, b), id) in pairs.iter().zip(direct) {
        let conv = conversations.len() as u32;
        conversations.push(id);
        kinds.push(("direct".to_owned(), 2));
        member_of[*a].push(conv);
        member_of[*b].push(conv);
    }
    // Small groups of eight.
    for _ in 0..(active / 15).max(1) {
        let mut members: Vec<usize> = Vec::new();
        while members.len() < 8.min(active) {
            let candidate = rng.below(active as u64) as usize;
            if !members.contains(&candidate) {
                members.push(candidate);
            }
        }
        let member_ids: Vec<&str> = members[1..].iter().map(|&m| ids[m].as_str()).collect();
        let body = json!({ "kind": "group", "name": "chaos small", "member_ids": member_ids });
        let group: ConversationView = post(net, "/conversations", Some(&tokens[members[0]]), &body).await?;
        let conv = conversations.len() as u32;
        conversations.push(group.id);
        kinds.push(("group".to_owned(), members.len()));
        for m in members {
            member_of[m].push(conv);
        }
    }
    // The big group: every user; listed last for each device (see Device::pick_conversation).
    let member_ids: Vec<&str> = ids[1..].iter().map(String::as_str).collect();
    let body = json!({ "kind": "group", "name": "chaos big", "member_ids": member_ids });
    let group: ConversationView =
        post(net, "/conversations", Some(&tokens[0]), &body).await.context("creating the big group")?;
    let big = conversations.len() as u32;
    conversations.push(group.id);
    kinds.push(("big".to_owned(), users));
    for convs in &mut member_of {
        convs.push(big);
    }

    // Devices: one per active user, and second devices (a login each) for the first users.
    let mut devices: Vec<(String, Vec<u32>)> = (0..active).map(|u| (ids[u].clone(), member_of[u].clone())).collect();
    let mut device_tokens: Vec<String> = tokens[..active].to_vec();
    let logins: Vec<AuthResponse> = stream::iter(0..second_devices)
        .map(|i| {
            let body = json!({ "username": format!("c{tag}u{}", i % active), "password": "chaos-password",
                               "device_name": "second" });
            async move { post(net, "/auth/login", None, &body).await }
        })
        .buffered(SETUP_CONCURRENCY)
        .try_collect()
        .await
        .context("logging in second devices")?;
    for (i, login) in logins.into_iter().enumerate() {
        devices.push((ids[i % active].clone(), member_of[i % active].clone()));
        device_tokens.push(login.access_token);
    }
    let setup = Setup { seed: options.seed, conversations, kinds, devices, users };
    Ok((setup, device_tokens))
}

async fn post<T: serde::de::DeserializeOwned>(
    net: &Net,
    path: &str,
    token: Option<&str>,
    body: &serde_json::Value,
) -> anyhow::Result<T> {
    let mut request = net.http.post(format!("{}{path}", net.api)).json(body).timeout(Duration::from_secs(120));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.with_context(|| format!("POST {path}"))?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!("POST {path}: {status}: {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("POST {path}: unexpected body {text}"))
}

/// The natter processes' names, for the report.
pub fn node_names() -> &'static [&'static str] {
    &NODE_NAMES
}
