//! Large groups fanned out by a worker, across real processes: the split topology (2 chat
//! nodes, a worker, 2 gateways) on PostgreSQL, NATS with JetStream and Redis (targeted
//! delivery), with `delivery.worker_fanout_above` lowered to 3 so that a group of 6 goes through
//! fan-out jobs.
//!
//! * members on both gateways send at once: every socket gets every entry once, in `seq` order,
//!   each gateway receives only what its sockets need, and the worker counted the jobs;
//! * the worker is killed (SIGKILL) and the group keeps sending: the jobs wait in JetStream,
//!   nothing is pushed meanwhile, and a new worker delivers every entry (at least once).
//!
//! Needs `NATTER_TEST_POSTGRES_URL`, `NATTER_TEST_NATS_URL` (nats-server with `-js`) and
//! `NATTER_TEST_REDIS_URL`; scripts/test.sh starts them. Without them the tests skip, unless
//! `CI` is set: there they fail.

#[path = "support/client.rs"]
mod client;
#[path = "support/split.rs"]
mod split;

use std::time::{Duration, Instant};

use client::{Socket, connect_ws, metric, metrics, next_frame, post, register};
use futures_util::StreamExt;
use natter_proto::{AuthResponse, MessageView};
use natter_testkit::TestDatabase;
use serde_json::{Value, json};
use split::{Cluster, ClusterEnv, Node, Spec};
use tokio_tungstenite::tungstenite::Message;

/// Fan-out on a worker for more than 3 recipients; jobs on JetStream, redelivered after 2 s.
const SETTINGS: [(&str, &str); 3] = [
    ("NATTER_DELIVERY__WORKER_FANOUT_ABOVE", "3"),
    ("NATTER_JOBS__BACKEND", "jetstream"),
    ("NATTER_JOBS__ACK_WAIT_SECS", "2"),
];
const MEMBERS: usize = 6;
const WORKER: usize = 2;
const GATEWAYS: [usize; 2] = [3, 4];

/// Members on both gateways send at once; each socket gets each entry once, in `seq` order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_groups_entries_reach_every_socket_once_in_seq_order_through_the_worker() {
    let Some((database, cluster)) = start().await else { return };
    let http = reqwest::Client::new();
    let mut group = Group::create(&http, &cluster).await;
    let (gateways_before, jobs_before) = (gateway_counts(&http, &cluster).await, fanout(&http, &cluster).await);

    const PER_MEMBER: usize = 5;
    let sent = group.send_at_once(&http, &cluster, PER_MEMBER, "burst").await;
    assert_eq!(sent.len(), MEMBERS * PER_MEMBER);
    for (n, socket) in group.sockets.iter_mut().enumerate() {
        let seqs = receive(socket, &group.id, sent.len()).await;
        assert_eq!(seqs, sent, "member {n}: every entry once, in seq order");
        assert_nothing_more(socket, &group.id, Duration::from_millis(500)).await;
    }

    let gateways_after = gateway_counts(&http, &cluster).await;
    for ((before, after), index) in gateways_before.iter().zip(&gateways_after).zip(GATEWAYS) {
        let (received, needed) = (after.bus.received - before.bus.received, after.bus.needed - before.bus.needed);
        let (held, late) = (after.held - before.held, after.late - before.late);
        println!(
            "gateway {index}: received {received} bus events, {needed} with a local recipient; \
             {held} held for a predecessor, {late} out of order"
        );
        assert!(needed >= sent.len() as u64, "gateway {index}: each entry reached it ({needed})");
        assert!(received as f64 <= 1.1 * needed as f64, "gateway {index}: {received} received, {needed} needed");
        assert_eq!(late, 0.0, "gateway {index}: no entry went out after a later one");
    }
    let jobs = fanout(&http, &cluster).await - jobs_before;
    println!("worker: {jobs:?}");
    assert_eq!(jobs.jobs, sent.len() as f64, "one job per entry, run by the worker");
    assert_eq!(jobs.recipients, (sent.len() * MEMBERS) as f64);
    assert_eq!(jobs.events, (sent.len() * GATEWAYS.len()) as f64, "one event per gateway per entry");
    drop(cluster);
    drop(database);
}

/// kill -9 the worker: the group's entries wait as jobs in JetStream (nobody else publishes
/// them), and the next worker delivers them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_of_a_killed_worker_are_delivered_by_the_next_one() {
    let Some((database, mut cluster)) = start().await else { return };
    let http = reqwest::Client::new();
    let mut group = Group::create(&http, &cluster).await;
    let before = group.send_at_once(&http, &cluster, 1, "before").await;
    for socket in &mut group.sockets {
        assert_eq!(receive(socket, &group.id, before.len()).await, before);
    }

    cluster.kill(WORKER);
    let queued = group.send_at_once(&http, &cluster, 2, "queued").await;
    for socket in &mut group.sockets {
        assert_nothing_more(socket, &group.id, Duration::from_millis(1_500)).await;
    }

    let worker = cluster.start_node(Spec::worker());
    cluster.wait_node_ready(worker).await;
    let started = Instant::now();
    let mut duplicates = 0;
    for (n, socket) in group.sockets.iter_mut().enumerate() {
        let mut seqs = receive(socket, &group.id, queued.len()).await;
        let in_order = seqs.windows(2).all(|pair| pair[0] < pair[1]);
        seqs.sort_unstable();
        seqs.dedup();
        duplicates += queued.len() - seqs.len();
        // A duplicate takes the place of an entry: read on until every entry came.
        while seqs.len() < queued.len() {
            seqs.extend(receive(socket, &group.id, queued.len() - seqs.len()).await);
            seqs.sort_unstable();
            seqs.dedup();
        }
        assert_eq!(seqs, queued, "member {n}: every entry queued while no worker ran");
        println!("member {n}: all {} entries, in seq order: {in_order}", queued.len());
    }
    println!("queued entries delivered within {:?} of the new worker being ready", started.elapsed());
    let jobs = fanout_of(&http, &cluster.nodes[worker]).await;
    println!("new worker: {jobs:?}; duplicate pushes: {duplicates}");
    // The killed worker may have published a `before` entry and died before its ack reached
    // JetStream: the new worker gets that job again, finds it published and sends nothing.
    assert!(jobs.repeats <= before.len() as f64, "only jobs of entries already delivered repeat");
    assert_eq!(jobs.jobs - jobs.repeats, queued.len() as f64, "the new worker ran the queued jobs");
    assert_eq!(duplicates, 0, "no job was in hand when the worker died");
    drop(cluster);
    drop(database);
}

/// A fresh database and the split topology with worker fan-out, ready; `None` (skip) without
/// PostgreSQL, NATS and Redis.
async fn start() -> Option<(TestDatabase, Cluster)> {
    natter::install_crypto_provider();
    let env = ClusterEnv::from_env()?;
    if env.redis_url.is_none() {
        println!("skipping: worker fan-out needs targeted delivery, so NATTER_TEST_REDIS_URL");
        return None;
    }
    let database = TestDatabase::create(&env.postgres_url, "natter_fanout").await;
    let cluster = Cluster::start_split_with(&database.url, &env, &SETTINGS);
    cluster.wait_ready().await;
    Some((database, cluster))
}

/// A group of [`MEMBERS`] users, registered and connected alternately on the two gateways.
struct Group {
    id: String,
    members: Vec<(AuthResponse, usize)>,
    sockets: Vec<Socket>,
}

impl Group {
    async fn create(http: &reqwest::Client, cluster: &Cluster) -> Self {
        let mut members = Vec::new();
        for n in 0..MEMBERS {
            let gateway = GATEWAYS[n % 2];
            members.push((register(http, &cluster.nodes[gateway], &format!("member{n}")).await, gateway));
        }
        let (owner, gateway) = &members[0];
        let others: Vec<&str> = members[1..].iter().map(|(user, _)| user.user.id.as_str()).collect();
        let body = json!({ "kind": "group", "name": "large", "member_ids": others });
        let group: Value = post(http, &cluster.nodes[*gateway], owner, "/conversations", body).await;
        let id = group["id"].as_str().expect("a group id").to_owned();
        let mut sockets = Vec::new();
        for (user, gateway) in &members {
            sockets.push(connect_ws(&cluster.nodes[*gateway], user).await);
        }
        // The group's first entry goes through the worker too: let it finish, so that what
        // the tests count starts after it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while fanout(http, cluster).await.jobs < 1.0 {
            assert!(Instant::now() < deadline, "the worker never ran the group's first fan-out");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { id, members, sockets }
    }

    /// Every member sends `each` messages through their own gateway, all members at once;
    /// returns the acknowledged seqs in order.
    async fn send_at_once(&self, http: &reqwest::Client, cluster: &Cluster, each: usize, tag: &str) -> Vec<i64> {
        let mut senders = Vec::new();
        for (n, (user, gateway)) in self.members.iter().enumerate() {
            let url = format!("{}/api/v1/conversations/{}/messages", cluster.nodes[*gateway].base_url, self.id);
            let (http, token, tag) = (http.clone(), user.access_token.clone(), tag.to_owned());
            senders.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                for k in 0..each {
                    let body = json!({ "client_msg_id": format!("{tag}-{n}-{k}"), "kind": "text", "text": format!("{tag} {n}.{k}") });
                    let response = http.post(&url).bearer_auth(&token).json(&body).send().await.expect("POST");
                    let message: MessageView = client::decode(response, &url).await;
                    seqs.push(message.seq);
                }
                seqs
            }));
        }
        let mut seqs = Vec::new();
        for sender in senders {
            seqs.extend(sender.await.expect("a sender"));
        }
        seqs.sort_unstable();
        seqs
    }
}

/// Whether `frame` is a push of a message sent to `group` (the group's first entry, its
/// creation, may reach a socket connected in time, or not: it is not counted).
fn sent_to(frame: &Value, group: &str) -> bool {
    frame["type"] == "message"
        && frame["message"]["conversation_id"] == group
        && frame["message"]["seq"].as_i64() > Some(1)
}

/// The seqs of the next `count` pushes of messages sent to `group`, as they arrive.
async fn receive(socket: &mut Socket, group: &str, count: usize) -> Vec<i64> {
    let mut seqs = Vec::new();
    for _ in 0..count {
        let frame = next_frame(socket, "message", |frame| sent_to(frame, group)).await;
        seqs.push(frame["message"]["seq"].as_i64().expect("a seq"));
    }
    seqs
}

/// No `message` frame of `group` arrives within `quiet`.
async fn assert_nothing_more(socket: &mut Socket, group: &str, quiet: Duration) {
    let deadline = tokio::time::Instant::now() + quiet;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, socket.next()).await {
        let Message::Text(text) = frame else { continue };
        let frame: Value = serde_json::from_str(text.as_str()).expect("a JSON frame");
        assert!(!sent_to(&frame, group), "an unexpected push: {frame}");
    }
}

/// A gateway's bus counters, and its sequencer's: entries held for a predecessor, entries that
/// went out after a later one.
struct GatewayCounts {
    bus: client::BusCounts,
    held: f64,
    late: f64,
}

async fn gateway_counts(http: &reqwest::Client, cluster: &Cluster) -> Vec<GatewayCounts> {
    let mut counts = Vec::new();
    for index in GATEWAYS {
        let gateway = &cluster.nodes[index];
        counts.push(GatewayCounts {
            bus: metrics(http, gateway).await,
            held: metric(http, gateway, "natter_sequencer_held_total").await,
            late: metric(http, gateway, "natter_sequencer_late_total").await,
        });
    }
    counts
}

/// A worker's fan-out counters.
#[derive(Debug, Clone, Copy)]
struct FanOutCounts {
    jobs: f64,
    repeats: f64,
    recipients: f64,
    events: f64,
}

impl std::ops::Sub for FanOutCounts {
    type Output = Self;
    fn sub(self, before: Self) -> Self {
        Self {
            jobs: self.jobs - before.jobs,
            repeats: self.repeats - before.repeats,
            recipients: self.recipients - before.recipients,
            events: self.events - before.events,
        }
    }
}

async fn fanout(http: &reqwest::Client, cluster: &Cluster) -> FanOutCounts {
    fanout_of(http, &cluster.nodes[WORKER]).await
}

async fn fanout_of(http: &reqwest::Client, worker: &Node) -> FanOutCounts {
    FanOutCounts {
        jobs: metric(http, worker, "natter_fanout_jobs_total").await,
        repeats: metric(http, worker, "natter_fanout_repeats_total").await,
        recipients: metric(http, worker, "natter_fanout_recipients_total").await,
        events: metric(http, worker, "natter_fanout_events_total").await,
    }
}
