//! Scale-out: two real `natter serve` processes share one PostgreSQL database and one NATS server.
//! A message sent on one node reaches a socket on the other live, and what a disconnected device
//! missed is all there, in order, when it syncs from the other node. A session ended on one node
//! closes its sockets on the other.
//!
//! Needs `NATTER_TEST_POSTGRES_URL` (an admin URL) and `NATTER_TEST_NATS_URL`; scripts/test.sh
//! starts both. Without them the test skips, unless `CI` is set: there it fails.
//! Self-contained on purpose (no `tests/common`): it drives the binary, not the library.

#[path = "support/client.rs"]
mod client;
#[path = "support/split.rs"]
mod split;

use std::time::{Duration, Instant};

use client::{FRAME_TIMEOUT, connect_ws, get, metric, metrics, next_frame, next_frame_within, post, register};
use futures_util::{SinkExt, StreamExt};
use natter_proto::{AcceptFriendResponse, AuthResponse, FriendRequestView, MessagePage, MessageView};
use natter_testkit::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use split::{Cluster, ClusterEnv, ROUTE_TTL_SECS};
use sqlx::{Connection, PgConnection};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_crosses_nodes_live_and_syncs_on_the_other_node() {
    let Some((database, cluster)) = start_cluster().await else {
        return;
    };
    let (node1, node2) = (&cluster.nodes[0], &cluster.nodes[1]);
    let http = reqwest::Client::new();

    let alice = register(&http, node1, "alice").await;
    let bob = register(&http, node1, "bob").await;

    // Friendship: asked on node 1, accepted on node 2 (both nodes trust one signing secret).
    let request: FriendRequestView =
        post(&http, node1, &alice, "/friend-requests", json!({ "user_id": bob.user.id })).await;
    let accepted: AcceptFriendResponse =
        post(&http, node2, &bob, &format!("/friend-requests/{}/accept", request.id), json!({})).await;
    let conversation_id = accepted.conversation.id;

    let mut alice_ws = connect_ws(node1, &alice).await;
    let mut bob_ws = connect_ws(node2, &bob).await;

    // Live: alice sends on node 1, bob's socket on node 2 gets it through NATS.
    let send = json!({
        "type": "send", "id": "r1", "conversation_id": conversation_id,
        "client_msg_id": "live-1", "kind": "text", "text": "hi",
    });
    alice_ws.send(Message::text(send.to_string())).await.expect("send the send frame");
    let sent = next_frame(&mut alice_ws, "sent", |frame| frame["id"] == "r1").await;
    let sent: MessageView = serde_json::from_value(sent["message"].clone()).expect("a sent frame carries the entry");
    assert_eq!((sent.text.as_deref(), sent.sender_id.as_str()), (Some("hi"), alice.user.id.as_str()));

    let live = next_frame(&mut bob_ws, "message", |frame| frame["message"]["id"] == sent.id.as_str()).await;
    let live: MessageView = serde_json::from_value(live["message"].clone()).expect("a message frame carries the entry");
    assert_eq!(live, sent, "bob gets on node 2 exactly what node 1 stored");
    let last_seen = live.seq;

    // Offline: bob goes away, alice sends 20 over HTTP on node 1.
    bob_ws.close(None).await.expect("close bob's socket");
    drop(bob_ws);
    let mut stored = Vec::new();
    for n in 1..=20 {
        let body = json!({ "client_msg_id": format!("offline-{n}"), "kind": "text", "text": format!("m{n}") });
        let message: MessageView =
            post(&http, node1, &alice, &format!("/conversations/{conversation_id}/messages"), body).await;
        stored.push(message);
    }

    // Sync on the other node: exactly the 20 node 1 acknowledged, consecutive from where bob
    // stopped.
    let path = format!("/conversations/{conversation_id}/messages?after_seq={last_seen}&limit=100");
    let page: MessagePage = get(&http, node2, &bob, &path).await;
    let summary = |messages: &[MessageView]| -> Vec<(i64, String, Option<String>)> {
        let summary = |m: &MessageView| (m.seq, m.id.clone(), m.text.clone());
        messages.iter().map(summary).collect()
    };
    let expected: Vec<(i64, Option<String>)> = (1..=20).map(|n| (last_seen + n, Some(format!("m{n}")))).collect();
    let acknowledged: Vec<(i64, Option<String>)> =
        summary(&stored).into_iter().map(|(seq, _, text)| (seq, text)).collect();
    assert_eq!(acknowledged, expected, "node 1 acknowledged 20 consecutive seqs");
    assert_eq!(summary(&page.messages), summary(&stored), "node 2 serves exactly those");
    assert!(!page.has_more);

    // Search: both nodes index every entry into the one PostgreSQL index, once per message.
    let deadline = Instant::now() + FRAME_TIMEOUT;
    loop {
        let found: natter_proto::SearchResults = get(&http, node2, &bob, "/search/messages?q=m20").await;
        if found.hits.iter().any(|hit| hit.message.id == stored[19].id) {
            break;
        }
        assert!(Instant::now() < deadline, "node 2 never found what node 1 stored: {found:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut connection = PgConnection::connect(&database.url).await.expect("connect to the cluster's database");
    let (documents,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM search_documents").fetch_one(&mut connection).await.expect("count");
    assert_eq!(documents, 21, "one document per message, however many nodes indexed it");
    connection.close().await.ok();

    alice_ws.close(None).await.ok();
    drop(cluster);
    drop(database);
}

/// Logging a session out on one node closes that session's socket on the other node at once
/// (the revocation crosses NATS), and leaves the account's other sockets open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_node_closes_the_sessions_socket_on_the_other() {
    let Some((database, cluster)) = start_cluster().await else {
        return;
    };
    let (node1, node2) = (&cluster.nodes[0], &cluster.nodes[1]);
    let http = reqwest::Client::new();

    let laptop = register(&http, node1, "alice").await;
    let login = json!({ "username": "alice", "password": "correct horse battery staple" });
    let response =
        http.post(format!("{}/api/v1/auth/login", node1.base_url)).json(&login).send().await.expect("log in");
    assert_eq!(response.status(), StatusCode::OK);
    let phone: AuthResponse = response.json().await.expect("an auth response");

    let mut phone_ws = connect_ws(node2, &phone).await;
    let mut laptop_ws = connect_ws(node2, &laptop).await;
    let logout = http
        .post(format!("{}/api/v1/auth/logout", node1.base_url))
        .bearer_auth(&phone.access_token)
        .send()
        .await
        .expect("log out");
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);

    let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
    let code = loop {
        match tokio::time::timeout_at(deadline, phone_ws.next()).await {
            Err(_) => panic!("the logged-out session's socket on node 2 stayed open"),
            Ok(Some(Ok(Message::Close(Some(frame))))) => break u16::from(frame.code),
            Ok(Some(Ok(_))) => continue,
            Ok(other) => panic!("the socket ended without a close frame: {other:?}"),
        }
    };
    assert_eq!(code, 4001, "closed as session ended");
    // The other session's socket on the same node is untouched.
    laptop_ws.send(Message::text(json!({ "type": "ping", "id": "p" }).to_string())).await.expect("ping");
    next_frame(&mut laptop_ws, "pong", |frame| frame["id"] == "p").await;

    drop(cluster);
    drop(database);
}

/// The split topology (2 chat nodes, 1 worker, 2 gateways as separate processes): direct and
/// group messages cross gateways live, the worker indexes them, and when a chat node is killed
/// (SIGKILL) the gateways carry on with the other: every send is acknowledged exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_split_topology_delivers_across_gateways_and_survives_a_chat_node_kill() {
    natter::install_crypto_provider();
    let Some(env) = ClusterEnv::from_env() else { return };
    let database = TestDatabase::create(&env.postgres_url, "natter_cluster").await;
    let mut cluster = Cluster::start_split(&database.url, &env);
    cluster.wait_ready().await;
    let (gateway1, gateway2) = (&cluster.nodes[3], &cluster.nodes[4]);
    let http = reqwest::Client::new();

    // A gateway answers /readyz with its roles and the chat side's health.
    let ready: Value =
        http.get(format!("{}/readyz", gateway1.base_url)).send().await.expect("readyz").json().await.expect("json");
    assert_eq!(ready["roles"], json!(["gateway"]));
    assert_eq!((ready["chat"].as_bool(), ready["database"].as_bool()), (Some(true), Some(true)));
    // And each shared dependency it uses: the route table, its discovery registration.
    let expected = |configured: bool| if configured { json!(true) } else { Value::Null };
    assert_eq!(ready["redis"], expected(env.redis_url.is_some()), "{ready}");
    assert_eq!(ready["discovery"], expected(env.etcd_url.is_some()), "{ready}");
    // A chat node serves no API, only its operational endpoints.
    let chat_api = http.get(format!("{}/api/v1/users/me", cluster.nodes[0].base_url)).send().await.expect("GET");
    assert_eq!(chat_api.status(), StatusCode::NOT_FOUND);

    let alice = register(&http, gateway1, "alice").await;
    let bob = register(&http, gateway2, "bob").await;
    let carol = register(&http, gateway1, "carol").await;
    let request: FriendRequestView =
        post(&http, gateway1, &alice, "/friend-requests", json!({ "user_id": bob.user.id })).await;
    let accepted: AcceptFriendResponse =
        post(&http, gateway2, &bob, &format!("/friend-requests/{}/accept", request.id), json!({})).await;
    let direct = accepted.conversation.id;

    let mut alice_ws = connect_ws(gateway1, &alice).await;
    let mut bob_ws = connect_ws(gateway2, &bob).await;
    let mut carol_ws = connect_ws(gateway1, &carol).await;

    // Direct, live across gateways.
    let send = json!({
        "type": "send", "id": "r1", "conversation_id": direct,
        "client_msg_id": "split-1", "kind": "text", "text": "across the split",
    });
    alice_ws.send(Message::text(send.to_string())).await.expect("send");
    let sent = next_frame(&mut alice_ws, "sent", |frame| frame["id"] == "r1").await;
    let sent: MessageView = serde_json::from_value(sent["message"].clone()).expect("an entry");
    let live = next_frame(&mut bob_ws, "message", |frame| frame["message"]["id"] == sent.id.as_str()).await;
    assert_eq!(serde_json::from_value::<MessageView>(live["message"].clone()).expect("an entry"), sent);

    // A group across both gateways.
    let group: Value = post(
        &http,
        gateway2,
        &bob,
        "/conversations",
        json!({ "kind": "group", "name": "split", "member_ids": [alice.user.id, carol.user.id] }),
    )
    .await;
    let group_id = group["id"].as_str().expect("a group id").to_owned();
    let in_group: MessageView = post(
        &http,
        gateway2,
        &bob,
        &format!("/conversations/{group_id}/messages"),
        json!({ "client_msg_id": "g-1", "kind": "text", "text": "hello group" }),
    )
    .await;
    for socket in [&mut alice_ws, &mut carol_ws] {
        next_frame(socket, "message", |frame| frame["message"]["id"] == in_group.id.as_str()).await;
    }

    // With Redis, delivery is targeted: each gateway received only events its own sockets
    // needed (carol's and alice's pushes go to gateway 1 alone, bob's to gateway 2).
    if env.redis_url.is_some() {
        for gateway in [gateway1, gateway2] {
            let counts = metrics(&http, gateway).await;
            println!("{}: bus events received {} / needed {}", gateway.base_url, counts.received, counts.needed);
            assert!(counts.needed > 0, "{}: no event reached it", gateway.base_url);
            assert!(
                counts.received as f64 <= 1.1 * counts.needed as f64,
                "{}: received {counts:?}: events its sockets did not need",
                gateway.base_url
            );
        }
    }

    // The worker indexes what the chat nodes stored; a gateway's search reads it back.
    let deadline = Instant::now() + FRAME_TIMEOUT;
    loop {
        let found: natter_proto::SearchResults = get(&http, gateway1, &alice, "/search/messages?q=split").await;
        if found.hits.iter().any(|hit| hit.message.id == sent.id) {
            break;
        }
        assert!(Instant::now() < deadline, "the worker never indexed the message: {found:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Alice and Bob keep sending, each through their own gateway, while chat node 0 is killed
    // outright: sends in flight to it are retried on chat node 1 (a send is idempotent by its
    // client_msg_id), so every one is acknowledged, and stored exactly once.
    const PER_SENDER: usize = 60;
    let mut senders = Vec::new();
    for (gateway, user, tag) in [(gateway1, &alice, "a"), (gateway2, &bob, "b")] {
        let (http, base, token) = (http.clone(), gateway.base_url.clone(), user.access_token.clone());
        let url = format!("{base}/api/v1/conversations/{direct}/messages");
        senders.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut slowest = Duration::ZERO;
            for n in 0..PER_SENDER {
                let body =
                    json!({ "client_msg_id": format!("kill-{tag}-{n}"), "kind": "text", "text": format!("{tag}{n}") });
                let started = Instant::now();
                let response = http.post(&url).bearer_auth(&token).json(&body).send().await.expect("POST a message");
                let status = response.status();
                let text = response.text().await.expect("a body");
                // 200: the killed node had stored it before it died, and the retry on the other
                // node was answered with that entry (each send goes to its conversation's node,
                // so all of this pair's sends were in flight on one of the two).
                assert!(
                    status == StatusCode::CREATED || status == StatusCode::OK,
                    "send {tag}{n} during the kill: {status} {text}"
                );
                slowest = slowest.max(started.elapsed());
                acknowledged.push(serde_json::from_str::<MessageView>(&text).expect("an entry"));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (acknowledged, slowest)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = &mut cluster.nodes[0];
    killed.child.kill().expect("SIGKILL chat node 0");
    let killed_at = Instant::now();
    let killed_at_wall = seconds_of_day(std::time::SystemTime::now());
    killed.child.wait().expect("reap chat node 0");
    let dead = killed.grpc.clone().expect("a chat node serves gRPC");
    let alive = cluster.nodes[1].grpc.clone().expect("a chat node serves gRPC");
    let mut acknowledged = Vec::new();
    let mut slowest = Duration::ZERO;
    for sender in senders {
        let (mine, slow) = sender.await.expect("a sender finished");
        acknowledged.extend(mine);
        slowest = slowest.max(slow);
    }
    println!(
        "killing a chat node mid-run: {} of {} sends acknowledged; slowest {slowest:?}",
        acknowledged.len(),
        2 * PER_SENDER
    );
    let gateway1 = &cluster.nodes[3];
    let page: MessagePage =
        get(&http, gateway1, &alice, &format!("/conversations/{direct}/messages?after_seq={}&limit=200", sent.seq))
            .await;
    let mut stored: Vec<(i64, String)> = page.messages.iter().map(|m| (m.seq, m.id.clone())).collect();
    let mut expected: Vec<(i64, String)> = acknowledged.iter().map(|m| (m.seq, m.id.clone())).collect();
    stored.sort();
    expected.sort();
    assert_eq!(stored, expected, "exactly the acknowledged entries, each once");
    let seqs: Vec<i64> = stored.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, (sent.seq + 1..=sent.seq + (2 * PER_SENDER) as i64).collect::<Vec<_>>(), "gap-free");
    assert!(slowest < Duration::from_secs(3), "a gateway took {slowest:?} to route around a dead chat node");

    // With etcd, each gateway's list of chat nodes loses the dead one when its lease expires
    // (each logs the list it follows).
    if env.etcd_url.is_some() {
        for gateway in &cluster.nodes[3..] {
            let deadline = killed_at + Duration::from_secs(10);
            loop {
                let log = std::fs::read_to_string(&gateway.log).unwrap_or_default();
                let last_list = log.lines().rev().find(|line| line.contains("chat nodes")).unwrap_or_default();
                if last_list.contains(&alive) && !last_list.contains(&dead) {
                    // When the gateway logged its new list, by the line's own timestamp.
                    let logged = logged_seconds_of_day(last_list).expect("a timestamped log line");
                    let after = logged - killed_at_wall;
                    println!("{}: dropped the dead chat node {after:.2} s after the kill", gateway.base_url);
                    assert!(after < 4.5, "the lease (3 s, renewed every 1 s) should have dropped it: {after:.2} s");
                    break;
                }
                assert!(Instant::now() < deadline, "{} still lists the dead chat node: {last_list}", gateway.base_url);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    drop(cluster);
    drop(database);
}

/// Two chat nodes appending to one conversation at once publish independently, so a gateway may
/// receive seq N before N-1. Each socket must still get every conversation's entries in `seq`
/// order, including a conversation's first entries on a gateway that never saw it before (the
/// case where a gateway cannot tell by itself whether N-1 is coming: the route table says).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_appended_by_two_chat_nodes_at_once_reach_every_socket_in_seq_order() {
    natter::install_crypto_provider();
    let Some(env) = ClusterEnv::from_env() else { return };
    if env.redis_url.is_none() {
        println!("skipping: ordering under targeted delivery needs NATTER_TEST_REDIS_URL");
        return;
    }
    let database = TestDatabase::create(&env.postgres_url, "natter_cluster").await;
    let cluster = Cluster::start_split(&database.url, &env);
    cluster.wait_ready().await;
    let http = reqwest::Client::new();
    let (gateway1, gateway2) = (&cluster.nodes[3], &cluster.nodes[4]);
    let mut users = Vec::new();
    for (n, gateway) in [gateway1, gateway2, gateway1, gateway2].into_iter().enumerate() {
        users.push((register(&http, gateway, &format!("orderly{n}")).await, gateway));
    }
    // The groups exist before anyone connects: no gateway has seen any of them.
    const GROUPS: usize = 30;
    let member_ids: Vec<&str> = users[1..].iter().map(|(user, _)| user.user.id.as_str()).collect();
    let mut groups = Vec::new();
    for n in 0..GROUPS {
        let group: Value = post(
            &http,
            users[0].1,
            &users[0].0,
            "/conversations",
            json!({ "kind": "group", "name": format!("order {n}"), "member_ids": member_ids }),
        )
        .await;
        groups.push(group["id"].as_str().expect("a group id").to_owned());
    }
    let mut sockets = Vec::new();
    for (user, gateway) in &users {
        sockets.push(connect_ws(*gateway, user).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Every member sends to every group at once, each through their own gateway; each gateway
    // spreads its calls over both chat nodes.
    let mut sends = Vec::new();
    for group in &groups {
        for (n, (user, gateway)) in users.iter().enumerate() {
            let url = format!("{}/api/v1/conversations/{group}/messages", gateway.base_url);
            let (http, token) = (http.clone(), user.access_token.clone());
            let body =
                json!({ "client_msg_id": format!("o-{group}-{n}"), "kind": "text", "text": format!("from {n}") });
            sends.push(tokio::spawn(async move {
                let response = http.post(&url).bearer_auth(&token).json(&body).send().await.expect("POST a message");
                assert_eq!(response.status(), StatusCode::CREATED);
            }));
        }
    }
    // Refused sends in the same burst: a gateway sends its queued sends to a chat node in one
    // batch, and each refusal must come back to its own sender, with its own status and code.
    for group in &groups {
        for (n, conversation, text, status, code) in [
            (0, format!("{group}-missing"), "lost", StatusCode::NOT_FOUND, "not_found"),
            (1, group.clone(), "", StatusCode::BAD_REQUEST, "empty_text"),
        ] {
            let (user, gateway) = &users[n];
            let url = format!("{}/api/v1/conversations/{conversation}/messages", gateway.base_url);
            let (http, token) = (http.clone(), user.access_token.clone());
            let body = json!({ "client_msg_id": format!("x-{conversation}-{n}"), "kind": "text", "text": text });
            sends.push(tokio::spawn(async move {
                let response = http.post(&url).bearer_auth(&token).json(&body).send().await.expect("POST a message");
                assert_eq!(response.status(), status);
                let error: Value = response.json().await.expect("an error body");
                assert_eq!(error["error"]["code"], code, "{error}");
            }));
        }
    }
    for send in sends {
        send.await.expect("a send");
    }
    // The burst went out in batches, and none failed (a failed batch is sent again one by one,
    // which would hide a batch that never works).
    let (mut batches, mut batched) = (0.0, 0.0);
    for gateway in [gateway1, gateway2] {
        assert_eq!(metric(&http, gateway, "natter_chat_send_batches_failed_total").await, 0.0);
        batches += metric(&http, gateway, "natter_chat_send_batches_total").await;
        batched += metric(&http, gateway, "natter_chat_sends_batched_total").await;
    }
    println!("{batched} of {} sends went in {batches} batches", GROUPS * (users.len() + 2));
    assert!(batches >= 1.0 && batched >= 2.0 * batches, "{batches} batches, {batched} sends in them");

    // Each socket gets each group's four entries, in seq order.
    let expected = GROUPS * users.len();
    for (socket, (user, _)) in sockets.iter_mut().zip(&users) {
        let mut seen: std::collections::HashMap<String, Vec<i64>> = std::collections::HashMap::new();
        for _ in 0..expected {
            let frame = next_frame(socket, "message", |frame| {
                frame["message"]["conversation_id"].as_str().is_some_and(|id| groups.iter().any(|g| g == id))
            })
            .await;
            let message: MessageView = serde_json::from_value(frame["message"].clone()).expect("an entry");
            seen.entry(message.conversation_id.clone()).or_default().push(message.seq);
        }
        for (group, seqs) in &seen {
            let in_order: Vec<i64> = (2..2 + users.len() as i64).collect();
            assert_eq!(seqs, &in_order, "{}: group {group}'s entries out of order", user.user.username);
        }
    }

    drop(cluster);
    drop(database);
}

/// The split topology with Redis: presence crosses gateways, and when a gateway is killed
/// (SIGKILL) its users go offline for their friends on the other gateway within the route TTL
/// and a sweep; a user who reconnects through the other gateway catches up by `seq`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_gateways_users_go_offline_and_catch_up_through_the_other() {
    natter::install_crypto_provider();
    let Some(env) = ClusterEnv::from_env() else { return };
    if env.redis_url.is_none() {
        println!("skipping: the gateway kill test needs NATTER_TEST_REDIS_URL");
        return;
    }
    let database = TestDatabase::create(&env.postgres_url, "natter_cluster").await;
    let mut cluster = Cluster::start_split(&database.url, &env);
    cluster.wait_ready().await;
    let http = reqwest::Client::new();
    let (gateway1, gateway2) = (&cluster.nodes[3], &cluster.nodes[4]);
    let alice = register(&http, gateway1, "alice").await;
    let bob = register(&http, gateway2, "bob").await;
    let request: FriendRequestView =
        post(&http, gateway1, &alice, "/friend-requests", json!({ "user_id": bob.user.id })).await;
    let accepted: AcceptFriendResponse =
        post(&http, gateway2, &bob, &format!("/friend-requests/{}/accept", request.id), json!({})).await;
    let direct = accepted.conversation.id;

    let mut bob_ws = connect_ws(gateway2, &bob).await;
    let _alice_ws = connect_ws(gateway1, &alice).await;
    // Bob, on gateway 2, sees alice (on gateway 1) come online.
    next_frame(&mut bob_ws, "presence", |f| f["user_id"] == alice.user.id.as_str() && f["online"] == true).await;
    let online: natter_proto::FriendList = get(&http, gateway2, &bob, "/friends").await;
    assert_eq!(
        online.friends.iter().map(|f| f.online).collect::<Vec<_>>(),
        [true],
        "alice is online, seen from gateway 2"
    );
    let first: MessageView = post(
        &http,
        gateway1,
        &alice,
        &format!("/conversations/{direct}/messages"),
        json!({ "client_msg_id": "before", "kind": "text", "text": "before the kill" }),
    )
    .await;

    // Kill alice's gateway: bob is told she went offline within the TTL and a sweep.
    cluster.nodes[3].child.kill().expect("SIGKILL gateway 1");
    let killed_at = Instant::now();
    cluster.nodes[3].child.wait().expect("reap gateway 1");
    let window = Duration::from_secs(ROUTE_TTL_SECS * 3);
    next_frame_within(&mut bob_ws, "presence", window, |f| {
        f["user_id"] == alice.user.id.as_str() && f["online"] == false
    })
    .await;
    println!("a killed gateway's user went offline for her friend after {:?}", killed_at.elapsed());
    assert!(killed_at.elapsed() < Duration::from_secs(ROUTE_TTL_SECS + ROUTE_TTL_SECS / 3 + 2));

    // Meanwhile bob writes; alice reconnects through gateway 2 and syncs from what she saw.
    let gateway2 = &cluster.nodes[4];
    let mut missed = Vec::new();
    for n in 0..5 {
        let message: MessageView = post(
            &http,
            gateway2,
            &bob,
            &format!("/conversations/{direct}/messages"),
            json!({ "client_msg_id": format!("missed-{n}"), "kind": "text", "text": format!("m{n}") }),
        )
        .await;
        missed.push((message.seq, message.id));
    }
    let mut alice_again = connect_ws(gateway2, &alice).await;
    next_frame(&mut bob_ws, "presence", |f| f["user_id"] == alice.user.id.as_str() && f["online"] == true).await;
    let page: MessagePage =
        get(&http, gateway2, &alice, &format!("/conversations/{direct}/messages?after_seq={}", first.seq)).await;
    let synced: Vec<(i64, String)> = page.messages.iter().map(|m| (m.seq, m.id.clone())).collect();
    assert_eq!(synced, missed, "alice catches up on exactly what she missed, in seq order");
    // And is live again on the other gateway.
    let live: MessageView = post(
        &http,
        gateway2,
        &bob,
        &format!("/conversations/{direct}/messages"),
        json!({ "client_msg_id": "after", "kind": "text", "text": "welcome back" }),
    )
    .await;
    next_frame(&mut alice_again, "message", |f| f["message"]["id"] == live.id.as_str()).await;

    drop(cluster);
    drop(database);
}

/// UTC seconds since midnight.
fn seconds_of_day(time: std::time::SystemTime) -> f64 {
    let since_epoch = time.duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs_f64();
    since_epoch % 86_400.0
}

/// The UTC time of day of a natter log line (`…2026-12-01T10:43:11.221222Z …`), in seconds.
fn logged_seconds_of_day(line: &str) -> Option<f64> {
    let at = line.find('T')?;
    let clock = line.get(at + 1..)?.split('Z').next()?;
    let mut parts = clock.split(':');
    let (hours, minutes, seconds) = (parts.next()?, parts.next()?, parts.next()?);
    Some(hours.parse::<f64>().ok()? * 3600.0 + minutes.parse::<f64>().ok()? * 60.0 + seconds.parse::<f64>().ok()?)
}

/// A fresh database and two ready nodes on it, or `None` when the environment has no
/// PostgreSQL and NATS (see [`ClusterEnv::from_env`]).
async fn start_cluster() -> Option<(TestDatabase, Cluster)> {
    // Before any reqwest client is built (reqwest has no crypto provider of its own).
    natter::install_crypto_provider();
    let env = ClusterEnv::from_env()?;
    let database = TestDatabase::create(&env.postgres_url, "natter_cluster").await;
    let cluster = Cluster::start(&database.url, &env);
    cluster.wait_ready().await;
    Some((database, cluster))
}
