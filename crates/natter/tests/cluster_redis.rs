//! Two real `natter serve` processes on one PostgreSQL, one NATS and one Redis: presence seen
//! across nodes, targeted delivery (a node receives only the events its own sockets need,
//! checked by its metrics), a node killed with SIGKILL whose users go offline for their friends
//! on the other node within the route TTL and a sweep, and the login throttle shared by both.
//!
//! Needs `NATTER_TEST_POSTGRES_URL`, `NATTER_TEST_NATS_URL` and `NATTER_TEST_REDIS_URL`
//! (scripts/test.sh starts them). Without them the tests skip, unless `CI` is set: there they
//! fail. Self-contained like cluster.rs: it drives the binary, not the library.

#[path = "support/client.rs"]
mod client;

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use client::{
    Base, FRAME_TIMEOUT, PASSWORD, Socket, connect_ws, get, metrics, next_frame, next_frame_within, post, register,
};
use futures_util::{SinkExt, StreamExt};
use natter_proto::{AcceptFriendResponse, AuthResponse, FriendList, FriendRequestView};
use natter_testkit::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Short, so the kill test is quick: routes refresh and dead nodes are swept every second.
const ROUTE_TTL_SECS: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_crosses_nodes_and_each_node_receives_only_its_sockets_events() {
    let Some((database, cluster)) = start_cluster(&[]).await else { return };
    let (node1, node2) = (&cluster.nodes[0], &cluster.nodes[1]);
    let http = reqwest::Client::new();
    let alice = register(&http, node1, "alice").await;
    let bob = register(&http, node2, "bob").await;
    let carol = register(&http, node1, "carol").await;
    let dave = register(&http, node1, "dave").await;
    let alice_bob = befriend(&http, node1, &alice, node2, &bob).await;
    let carol_dave = befriend(&http, node1, &carol, node1, &dave).await;

    // bob on node 2 sees alice come online on node 1, and node 2 lists her online.
    let mut bob_ws = connect_ws(node2, &bob).await;
    let mut alice_ws = connect_ws(node1, &alice).await;
    let online = next_frame(&mut bob_ws, "presence", |f| f["user_id"] == alice.user.id.as_str()).await;
    assert_eq!(online["online"], true);
    assert_eq!(friend_online(&http, node2, &bob, &alice).await, Some(true));
    // alice, on node 1, sees bob (connected on node 2 first) online too.
    assert_eq!(friend_online(&http, node1, &alice, &bob).await, Some(true));

    // Targeted delivery: carol and dave (both on node 1) talk; node 2 holds neither and must
    // receive none of it. alice and bob talk across nodes; each node receives what it needs.
    let mut carol_ws = connect_ws(node1, &carol).await;
    let mut dave_ws = connect_ws(node1, &dave).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = [metrics(&http, node1).await, metrics(&http, node2).await];
    for n in 0..20 {
        send(&mut carol_ws, &carol_dave, &format!("cd-{n}")).await;
        next_frame(&mut dave_ws, "message", |f| f["message"]["text"] == format!("cd-{n}").as_str()).await;
    }
    for n in 0..10 {
        let sent = Instant::now();
        send(&mut alice_ws, &alice_bob, &format!("ab-{n}")).await;
        next_frame(&mut bob_ws, "message", |f| f["message"]["text"] == format!("ab-{n}").as_str()).await;
        if n == 0 {
            // Node 2 never received this conversation's earlier entries (nobody of it was
            // connected there): its sequencer must not hold the first one for the missing
            // predecessor (that wait is a whole second).
            let took = sent.elapsed();
            println!("first message of a conversation new to node 2 arrived in {:.0} ms", took.as_secs_f64() * 1e3);
            assert!(took < Duration::from_millis(900), "held for a predecessor that never comes: {took:?}");
        }
    }
    let after = [metrics(&http, node1).await, metrics(&http, node2).await];
    for (index, (before, after)) in before.iter().zip(&after).enumerate() {
        let received = after.received - before.received;
        let needed = after.needed - before.needed;
        println!("node {}: received {received} bus events, {needed} with a local recipient", index + 1);
        assert!(received as f64 <= 1.1 * needed as f64, "node {}: {received} received, {needed} needed", index + 1);
    }
    let node2_received = after[1].received - before[1].received;
    assert_eq!(node2_received, 10, "node 2 receives alice's 10 messages to bob and nothing of carol and dave's");

    // The indexers follow the log subject: carol and dave's entries, never published to a
    // gateway subject of node 2, are searchable (the index is shared; the start-up catch-up ran
    // before they were sent, the next is a minute away).
    let deadline = Instant::now() + FRAME_TIMEOUT;
    loop {
        let found: Value = get(&http, node2, &dave, "/search/messages?q=cd-19").await;
        if found["hits"].as_array().is_some_and(|hits| !hits.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "cd-19 never indexed: {found}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // alice leaves: bob on node 2 sees her go offline, and node 2 lists her offline.
    alice_ws.close(None).await.ok();
    drop(alice_ws);
    let offline = next_frame(&mut bob_ws, "presence", |f| f["user_id"] == alice.user.id.as_str()).await;
    assert_eq!(offline["online"], false);
    assert_eq!(friend_online(&http, node2, &bob, &alice).await, Some(false));

    drop(cluster);
    drop(database);
}

/// alice's only socket is on node 1; node 1 is killed with SIGKILL (no clean disconnect). bob on
/// node 2 sees her go offline within the route TTL plus a sweep interval, and node 2 lists her
/// offline. She reconnects to node 2 and catches up by `seq`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_users_go_offline_for_friends_on_the_other_node() {
    let Some((database, mut cluster)) = start_cluster(&[]).await else { return };
    let http = reqwest::Client::new();
    let alice = register(&http, &cluster.nodes[0], "alice").await;
    let bob = register(&http, &cluster.nodes[1], "bob").await;
    let conversation = befriend(&http, &cluster.nodes[0], &alice, &cluster.nodes[1], &bob).await;
    let mut bob_ws = connect_ws(&cluster.nodes[1], &bob).await;
    let alice_ws = connect_ws(&cluster.nodes[0], &alice).await;
    let online = next_frame(&mut bob_ws, "presence", |f| f["user_id"] == alice.user.id.as_str()).await;
    assert_eq!(online["online"], true);

    let killed = Instant::now();
    cluster.kill(0);
    let bound = Duration::from_secs(ROUTE_TTL_SECS + ROUTE_TTL_SECS / 3 + 3);
    let offline = next_frame_within(&mut bob_ws, "presence", bound, |f| f["user_id"] == alice.user.id.as_str()).await;
    let took = killed.elapsed();
    println!(
        "alice offline for bob {:.2} s after node 1 was killed (route TTL {ROUTE_TTL_SECS} s)",
        took.as_secs_f64()
    );
    assert_eq!(offline["online"], false);
    assert_eq!(friend_online(&http, &cluster.nodes[1], &bob, &alice).await, Some(false));
    drop(alice_ws);

    // What bob sends meanwhile reaches alice when she comes back, on node 2, by seq.
    let message: Value = post(
        &http,
        &cluster.nodes[1],
        &bob,
        &format!("/conversations/{conversation}/messages"),
        json!({ "client_msg_id": "while-away", "kind": "text", "text": "are you there?" }),
    )
    .await;
    let mut alice_ws = connect_ws(&cluster.nodes[1], &alice).await;
    let back = next_frame(&mut bob_ws, "presence", |f| f["user_id"] == alice.user.id.as_str()).await;
    assert_eq!(back["online"], true);
    let seq = message["seq"].as_i64().expect("a seq");
    let page: Value =
        get(&http, &cluster.nodes[1], &alice, &format!("/conversations/{conversation}/messages?after_seq={}", seq - 1))
            .await;
    assert_eq!(page["messages"][0]["text"], "are you there?");
    alice_ws.close(None).await.ok();

    drop(cluster);
    drop(database);
}

/// Failed logins counted on one node refuse the next attempt on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_throttle_is_shared_across_nodes() {
    let Some((database, cluster)) = start_cluster(&[("NATTER_AUTH__LOGIN_MAX_FAILURES", "3")]).await else { return };
    let (node1, node2) = (&cluster.nodes[0], &cluster.nodes[1]);
    let http = reqwest::Client::new();
    register(&http, node1, "erin").await;
    for node in [node1, node2, node1] {
        assert_eq!(login(&http, node, "erin", "wrong password").await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(login(&http, node2, "erin", "wrong password").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(login(&http, node2, "erin", PASSWORD).await, StatusCode::TOO_MANY_REQUESTS, "even the right one");
    assert_eq!(login(&http, node1, "erin", PASSWORD).await, StatusCode::TOO_MANY_REQUESTS, "on either node");
    drop(cluster);
    drop(database);
}

/// Sends counted on one node count on the other: the send limit is the cluster's (Redis).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_send_limit_is_shared_across_nodes() {
    let env = [("NATTER_LIMITS__MESSAGES_PER_USER", "4"), ("NATTER_LIMITS__MESSAGES_WINDOW_SECS", "60")];
    let Some((database, cluster)) = start_cluster(&env).await else { return };
    let (node1, node2) = (&cluster.nodes[0], &cluster.nodes[1]);
    let http = reqwest::Client::new();
    let alice = register(&http, node1, "alice").await;
    let bob = register(&http, node2, "bob").await;
    let conversation = befriend(&http, node1, &alice, node2, &bob).await;
    let send_on = |node: &Node, n: usize| {
        let body = json!({ "client_msg_id": format!("m{n}"), "kind": "text", "text": format!("m{n}") });
        http.post(format!("{}/api/v1/conversations/{conversation}/messages", node.base_url))
            .bearer_auth(&alice.access_token)
            .json(&body)
            .send()
    };
    for (n, node) in [node1, node2, node1, node2].into_iter().enumerate() {
        assert_eq!(send_on(node, n).await.expect("send").status(), StatusCode::CREATED, "send {n}");
    }
    for node in [node1, node2] {
        let refused = send_on(node, 9).await.expect("send");
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "the fifth, on either node");
        let body: Value = refused.json().await.expect("an error body");
        assert_eq!(body["error"]["code"], "too_many_messages");
    }
    drop(cluster);
    drop(database);
}

/// A careless client: 40 sockets of one account opened at once on both nodes, then half closed
/// properly and half dropped mid-stream (no close frame), all at once. Her friend sees exactly
/// one `online` and one `offline`, and both nodes list her offline afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_sockets_on_both_nodes_gives_one_online_and_one_offline() {
    let Some((database, cluster)) = start_cluster(&[]).await else { return };
    let (node1, node2) = (&cluster.nodes[0], &cluster.nodes[1]);
    let http = reqwest::Client::new();
    let alice = register(&http, node1, "alice").await;
    let bob = register(&http, node2, "bob").await;
    befriend(&http, node1, &alice, node2, &bob).await;
    let mut bob_ws = connect_ws(node2, &bob).await;

    let opening = (0..40).map(|n| {
        let node = if n % 2 == 0 { node1 } else { node2 };
        connect_ws(node, &alice)
    });
    let sockets = futures_util::future::join_all(opening).await;
    let mut closing = Vec::new();
    for (n, mut socket) in sockets.into_iter().enumerate() {
        if n % 2 == 0 {
            closing.push(tokio::spawn(async move { socket.close(None).await.ok() }));
        } else {
            drop(socket);
        }
    }
    for task in closing {
        task.await.ok();
    }

    let mut seen = Vec::new();
    let quiet = Duration::from_secs(2);
    while let Ok(Some(Ok(message))) = tokio::time::timeout(quiet, bob_ws.next()).await {
        let Message::Text(text) = message else { continue };
        let frame: Value = serde_json::from_str(text.as_str()).expect("a JSON frame");
        if frame["type"] == "presence" && frame["user_id"] == alice.user.id.as_str() {
            seen.push(frame["online"].as_bool().expect("a flag"));
        }
    }
    assert_eq!(seen, vec![true, false], "one online, then one offline");
    assert_eq!(friend_online(&http, node1, &bob, &alice).await, Some(false));
    assert_eq!(friend_online(&http, node2, &bob, &alice).await, Some(false));
    drop(cluster);
    drop(database);
}

/// Redis stalls (SIGSTOP) while alice's last socket closes: node 1's route removal times out.
/// Redis resumes and runs the buffered removal anyway (its reply is lost); node 1 retries with its
/// next refresh, finds alice offline and tells bob. Nobody is left online by a Redis hiccup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_lost_to_a_stalled_redis_is_announced_after_it_recovers() {
    if std::env::var_os("NATTER_TEST_REDIS_URL").is_none() {
        return start_cluster(&[]).await.map_or((), |_| ());
    }
    let redis = OwnRedis::start();
    let env = [("NATTER_REDIS__URL", redis.url.as_str()), ("NATTER_PRESENCE__ROUTE_TTL_SECS", "10")];
    let Some((database, cluster)) = start_cluster(&env).await else { return };
    let (node1, node2) = (&cluster.nodes[0], &cluster.nodes[1]);
    let http = reqwest::Client::new();
    let alice = register(&http, node1, "alice").await;
    let bob = register(&http, node2, "bob").await;
    befriend(&http, node1, &alice, node2, &bob).await;
    let mut bob_ws = connect_ws(node2, &bob).await;
    let mut alice_ws = connect_ws(node1, &alice).await;
    let online = next_frame(&mut bob_ws, "presence", |f| f["user_id"] == alice.user.id.as_str()).await;
    assert_eq!(online["online"], true);

    let ready = |http: reqwest::Client, url: String| async move {
        let response = http.get(format!("{url}/readyz")).send().await.expect("GET /readyz");
        (response.status(), response.json::<Value>().await.expect("json"))
    };
    let (status, body) = ready(http.clone(), node1.base_url.clone()).await;
    assert_eq!((status, &body["redis"]), (StatusCode::OK, &json!(true)), "{body}");

    redis.signal("-STOP");
    alice_ws.close(None).await.ok();
    drop(alice_ws);
    // While Redis does not answer, /readyz says which dependency is missing (after its 2 s
    // probe timeout).
    let (status, body) = ready(http.clone(), node1.base_url.clone()).await;
    assert_eq!(
        (status, &body["redis"], &body["database"]),
        (StatusCode::SERVICE_UNAVAILABLE, &json!(false), &json!(true))
    );
    // With the probe, longer than the client's 2 s response timeout, well within the 10 s TTL.
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.signal("-CONT");
    let (status, body) = ready(http.clone(), node1.base_url.clone()).await;
    assert_eq!((status, &body["redis"]), (StatusCode::OK, &json!(true)), "{body}");
    let offline =
        next_frame_within(&mut bob_ws, "presence", Duration::from_secs(10), |f| f["user_id"] == alice.user.id.as_str())
            .await;
    assert_eq!(offline["online"], false);
    assert_eq!(friend_online(&http, node2, &bob, &alice).await, Some(false));
    drop(cluster);
    drop(database);
}

/// A redis-server of this test's own, to stall.
struct OwnRedis {
    child: Child,
    url: String,
    dir: PathBuf,
}

impl OwnRedis {
    fn start() -> Self {
        let port = natter_testkit::free_port();
        let dir = std::env::temp_dir().join(format!("natter-test-redis-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a directory for redis");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (scripts/test.sh installs it)");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < START_TIMEOUT, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, url: format!("redis://127.0.0.1:{port}"), dir }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(signal).arg(self.child.id().to_string()).status().expect("kill");
        assert!(status.success(), "kill {signal}");
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-CONT").arg(self.child.id().to_string()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn login(http: &reqwest::Client, node: &Node, username: &str, password: &str) -> StatusCode {
    let body = json!({ "username": username, "password": password });
    http.post(format!("{}/api/v1/auth/login", node.base_url)).json(&body).send().await.expect("log in").status()
}

/// `user` sends `text` over the socket and waits for the ack.
async fn send(socket: &mut Socket, conversation: &str, text: &str) {
    let frame = json!({
        "type": "send", "id": text, "conversation_id": conversation,
        "client_msg_id": text, "kind": "text", "text": text,
    });
    socket.send(Message::text(frame.to_string())).await.expect("send a frame");
    next_frame(socket, "sent", |f| f["id"] == text).await;
}

/// Friends, asked on one node and accepted on another; their direct conversation's id.
async fn befriend(http: &reqwest::Client, at: &Node, from: &AuthResponse, to_at: &Node, to: &AuthResponse) -> String {
    let request: FriendRequestView = post(http, at, from, "/friend-requests", json!({ "user_id": to.user.id })).await;
    let accepted: AcceptFriendResponse =
        post(http, to_at, to, &format!("/friend-requests/{}/accept", request.id), json!({})).await;
    accepted.conversation.id
}

async fn friend_online(http: &reqwest::Client, node: &Node, me: &AuthResponse, friend: &AuthResponse) -> Option<bool> {
    let list: FriendList = get(http, node, me, "/friends").await;
    list.friends.iter().find(|f| f.user.id == friend.user.id).map(|f| f.online)
}

/// A fresh database and two ready nodes on it, or `None` without the services.
async fn start_cluster(extra_env: &[(&str, &str)]) -> Option<(TestDatabase, Cluster)> {
    natter::install_crypto_provider();
    let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let (Some(postgres), Some(nats), Some(redis)) =
        (var("NATTER_TEST_POSTGRES_URL"), var("NATTER_TEST_NATS_URL"), var("NATTER_TEST_REDIS_URL"))
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "the Redis cluster tests need NATTER_TEST_POSTGRES_URL, NATTER_TEST_NATS_URL and NATTER_TEST_REDIS_URL in CI"
        );
        println!("skipping: set NATTER_TEST_POSTGRES_URL, NATTER_TEST_NATS_URL and NATTER_TEST_REDIS_URL");
        return None;
    };
    let database = TestDatabase::create(&postgres, "natter_cluster").await;
    let cluster = Cluster::start(&database.url, &nats, &redis, extra_env);
    cluster.wait_ready().await;
    Some((database, cluster))
}

struct Node {
    child: Child,
    base_url: String,
    data_dir: PathBuf,
    log: PathBuf,
}

impl Base for Node {
    fn base_url(&self) -> &str {
        &self.base_url
    }
}

/// The running nodes; dropping it kills them (and prints their logs' ends after a failure).
struct Cluster {
    nodes: Vec<Node>,
}

impl Cluster {
    fn start(database_url: &str, nats_url: &str, redis_url: &str, extra_env: &[(&str, &str)]) -> Self {
        let run = uuid::Uuid::new_v4().simple().to_string();
        let mut cluster = Cluster { nodes: Vec::new() };
        for index in 1..=2 {
            let data_dir = std::env::temp_dir().join(format!("natter-cluster-{run}-node{index}"));
            std::fs::create_dir_all(&data_dir).expect("create the data dir");
            let log = data_dir.join("natter.log");
            let output = File::create(&log).expect("create the log file");
            let port = natter_testkit::free_port();
            let mut command = Command::new(env!("CARGO_BIN_EXE_natter"));
            for (name, _) in std::env::vars_os() {
                if name.to_string_lossy().starts_with("NATTER_") {
                    command.env_remove(name);
                }
            }
            command
                .arg("serve")
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--data-dir")
                .arg(&data_dir)
                .env("NATTER_DATABASE__URL", database_url)
                .env("NATTER_BUS__KIND", "nats")
                .env("NATTER_BUS__NATS_URL", nats_url)
                .env("NATTER_BUS__SUBJECT_PREFIX", format!("natter-cluster-test.{run}"))
                .env("NATTER_REDIS__URL", redis_url)
                .env("NATTER_REDIS__KEY_PREFIX", format!("natter-cluster-test-{run}"))
                .env("NATTER_PRESENCE__ROUTE_TTL_SECS", ROUTE_TTL_SECS.to_string())
                .env("NATTER_SERVER__NODE_ID", format!("node{index}"))
                .env("NATTER_SEARCH__BACKEND", "postgres")
                .env("NATTER_AUTH__JWT_SECRET", format!("cluster-test-secret-{run}"))
                .env("NATTER_AUTH__ARGON2_MEMORY_KIB", "256")
                .env("NATTER_AUTH__ARGON2_ITERATIONS", "1")
                .envs(extra_env.iter().copied())
                .stdin(Stdio::null())
                .stdout(output.try_clone().expect("clone the log file"))
                .stderr(output);
            let child = command.spawn().expect("start `natter serve`");
            cluster.nodes.push(Node { child, base_url: format!("http://127.0.0.1:{port}"), data_dir, log });
        }
        cluster
    }

    /// SIGKILL: no socket is closed, no route removed.
    fn kill(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        node.child.kill().expect("kill the node");
        node.child.wait().expect("reap the node");
    }

    async fn wait_ready(&self) {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("an HTTP client");
        for node in &self.nodes {
            let started = Instant::now();
            loop {
                let response = http.get(format!("{}/readyz", node.base_url)).send().await;
                if response.is_ok_and(|response| response.status() == StatusCode::OK) {
                    break;
                }
                assert!(started.elapsed() < START_TIMEOUT, "{} not ready within {START_TIMEOUT:?}", node.base_url);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.child.kill();
            let _ = node.child.wait();
            if std::thread::panicking() {
                let log = std::fs::read_to_string(&node.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("---- last lines of {} ----", node.base_url);
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
            let _ = std::fs::remove_dir_all(&node.data_dir);
        }
    }
}
