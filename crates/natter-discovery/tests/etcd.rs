//! Discovery against a real etcd: the one in `NATTER_TEST_ETCD_URL` (scripts/test.sh starts
//! it; without it these tests skip, unless `CI` is set), and for the restart test an etcd of the
//! test's own. Every test uses its own key prefix.

mod support;

use std::time::{Duration, Instant};

use natter_discovery::etcd::{self, EtcdClient, WatchUpdate, node_key};
use support::*;

#[tokio::test]
async fn two_nodes_see_each_other() {
    init_tracing();
    let Some(url) = etcd_url("two_nodes_see_each_other") else { return };
    let prefix = unique_prefix("see");
    let a = start(&url, &prefix, node("a", &["gateway"])).await;
    let b = start(&url, &prefix, node("b", &["chat", "worker"])).await;
    for discovery in [&a, &b] {
        let mut nodes = discovery.nodes();
        wait_nodes(&mut nodes, Duration::from_secs(5), "both nodes listed", |n| ids(n) == ["a", "b"]).await;
    }
    assert_eq!(a.nodes().borrow()[1], node("b", &["chat", "worker"]), "the value carries the whole node");
    assert_eq!(ids(&a.nodes_with_role("chat")), ["b"]);
    assert_eq!(ids(&b.nodes_with_role("gateway")), ["a"]);
    // The key can reach the watchers before the put's answer reaches its node.
    let mut state = a.registration().expect("etcd registers").watch_state();
    within(&mut state, "a's registration confirmed", |s| s.is_registered()).await;
    let registration = *state.borrow();

    // The key is attached to the lease the registration reports.
    let client = EtcdClient::new(&[url]).expect("client");
    let (_, kvs) = client.range_prefix(&node_key(&prefix, "a")).await.expect("range");
    assert_eq!(kvs.len(), 1);
    assert_eq!(Some(kvs[0].lease), registration.lease);
    a.stop().await;
    b.stop().await;
}

/// A node that stops renewing (its tasks aborted, nothing revoked: a crash) leaves the others'
/// lists when its 3 s lease expires, counted from its last renewal. etcd checks for expired
/// leases every 500 ms, so the bar is 3 s + 0.5 s, plus a little for the watch to deliver.
#[tokio::test]
async fn a_crashed_node_disappears_within_the_lease() {
    init_tracing();
    let Some(url) = etcd_url("a_crashed_node_disappears_within_the_lease") else { return };
    let prefix = unique_prefix("crash");
    let observer = start(&url, &prefix, node("observer", &["gateway"])).await;
    let victim = start(&url, &prefix, node("victim", &["chat"])).await;
    let mut nodes = observer.nodes();
    wait_nodes(&mut nodes, Duration::from_secs(5), "the victim listed", |n| ids(n).contains(&"victim".into())).await;

    // Crash right after a renewal, so the last renewal's time is exact.
    let mut state = victim.registration().expect("etcd registers").watch_state();
    state.borrow_and_update();
    state.changed().await.expect("a renewal");
    let last_renewed = state.borrow().last_renewed.expect("renewed");
    let crashed_at = Instant::now();
    drop(victim);

    let gone_at =
        wait_nodes(&mut nodes, Duration::from_secs(10), "the victim gone", |n| !ids(n).contains(&"victim".into()))
            .await;
    let since_renewal = gone_at - last_renewed.into_std();
    let since_crash = gone_at - crashed_at;
    println!(
        "crashed node gone {:.3} s after its last renewal ({:.3} s after the crash); lease 3 s",
        since_renewal.as_secs_f64(),
        since_crash.as_secs_f64()
    );
    assert!(since_renewal >= Duration::from_millis(2900), "gone before its lease ran out: {since_renewal:?}");
    assert!(since_renewal <= Duration::from_millis(3700), "gone too late: {since_renewal:?}");
    assert_eq!(ids(&nodes.borrow()), ["observer"]);
    observer.stop().await;
}

#[tokio::test]
async fn a_graceful_stop_removes_the_node_at_once() {
    init_tracing();
    let Some(url) = etcd_url("a_graceful_stop_removes_the_node_at_once") else { return };
    let prefix = unique_prefix("stop");
    let observer = start(&url, &prefix, node("observer", &["gateway"])).await;
    let leaving = start(&url, &prefix, node("leaving", &["chat"])).await;
    let mut nodes = observer.nodes();
    wait_nodes(&mut nodes, Duration::from_secs(5), "both listed", |n| n.len() == 2).await;

    let stopped_at = Instant::now();
    leaving.stop().await;
    let gone_at = wait_nodes(&mut nodes, Duration::from_secs(1), "the stopped node gone", |n| n.len() == 1).await;
    println!("stopped node gone {:.3} s after stop()", (gone_at - stopped_at).as_secs_f64());
    let client = EtcdClient::new(&[url]).expect("client");
    let (_, kvs) = client.range_prefix(&node_key(&prefix, "leaving")).await.expect("range");
    assert!(kvs.is_empty(), "the key is deleted, not left to expire");
    observer.stop().await;
}

/// etcd killed and started again, first with its data (the lease survives), then empty (a new
/// cluster: lease and key are gone) — each time the node's key comes back, and the watch too,
/// without restarting the node.
#[tokio::test]
async fn registration_and_watch_survive_an_etcd_restart() {
    init_tracing();
    if !etcd_binary_present("registration_and_watch_survive_an_etcd_restart") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut etcd = EtcdProcess::start(&dir.path().join("etcd"), free_port(), free_port()).await;
    let url = etcd.url();
    let prefix = "/natter";
    let a = start(&url, prefix, node("a", &["chat"])).await;
    let mut nodes = a.nodes();
    let mut state = a.registration().expect("etcd registers").watch_state();
    wait_nodes(&mut nodes, Duration::from_secs(5), "a lists itself", |n| ids(n) == ["a"]).await;
    let seen = record(a.nodes());

    // 1. Restart with the data dir: within the TTL the old lease is still good.
    etcd.restart(false).await;
    let restarted = tokio::time::Instant::now();
    within(&mut state, "a renewal after the restart", |s| s.last_renewed.is_some_and(|t| t > restarted)).await;
    assert_listed(&etcd.url(), prefix, "a").await;

    // 2. Kill it, let the lease run out on the node's side, start an empty etcd.
    let old_lease = state.borrow().lease;
    etcd.kill().await;
    within(&mut state, "the node counts its lease lost", |s| !s.is_registered()).await;
    etcd.restart(true).await;
    within(&mut state, "registered again", |s| s.is_registered()).await;
    assert_ne!(state.borrow().lease, old_lease, "a new lease");
    assert_listed(&etcd.url(), prefix, "a").await;
    // The empty etcd's first list lacked a's key: a, live, was kept until it registered again.
    let seen = seen.lock().expect("the record").clone();
    assert!(seen.iter().all(|list| list == &["a"]), "a stayed listed throughout: {seen:?}");

    // The watch follows the new etcd: a node that joins now is seen.
    let b = start(&url, prefix, node("b", &["chat"])).await;
    wait_nodes(&mut nodes, Duration::from_secs(5), "b joins after the restart", |n| ids(n) == ["a", "b"]).await;
    b.stop().await;
    wait_nodes(&mut nodes, Duration::from_secs(2), "b leaves", |n| ids(n) == ["a"]).await;
    a.stop().await;
}

async fn within(
    state: &mut tokio::sync::watch::Receiver<natter_discovery::etcd::RegistrationState>,
    what: &str,
    check: impl FnMut(&natter_discovery::etcd::RegistrationState) -> bool,
) {
    let outcome = tokio::time::timeout(Duration::from_secs(10), state.wait_for(check)).await.map(|r| r.is_ok());
    match outcome {
        Ok(true) => {}
        Ok(false) => panic!("the registration ended while waiting for: {what}"),
        Err(_) => panic!("not within 10 s: {what}; state {:?}", *state.borrow()),
    }
}

async fn assert_listed(url: &str, prefix: &str, id: &str) {
    let client = EtcdClient::new(&[url.to_owned()]).expect("client");
    let (_, kvs) = client.range_prefix(&node_key(prefix, id)).await.expect("range");
    assert_eq!(kvs.len(), 1, "{id}'s key is in etcd");
    assert_ne!(kvs[0].lease, 0, "attached to a lease");
}

/// An endpoint that refuses connections is skipped for the next one.
#[tokio::test]
async fn a_dead_endpoint_is_skipped() {
    init_tracing();
    let Some(url) = etcd_url("a_dead_endpoint_is_skipped") else { return };
    let prefix = unique_prefix("failover");
    let dead = format!("http://127.0.0.1:{}", free_port());
    let config = natter_discovery::DiscoveryConfig::Etcd(natter_discovery::EtcdConfig {
        endpoints: vec![dead, url],
        prefix: prefix.clone(),
        lease_ttl_secs: 3,
    });
    let a = natter_discovery::Discovery::start(&config, node("a", &["chat"])).await.expect("start");
    let mut nodes = a.nodes();
    wait_nodes(&mut nodes, Duration::from_secs(5), "a listed through the live endpoint", |n| ids(n) == ["a"]).await;
    a.stop().await;
}

/// etcd's real answer to a watch from a compacted revision is understood as "list again".
#[tokio::test]
async fn a_watch_from_a_compacted_revision_is_cancelled() {
    init_tracing();
    if !etcd_binary_present("a_watch_from_a_compacted_revision_is_cancelled") {
        return;
    }
    // Compaction is global: an etcd of the test's own, not the shared one.
    let dir = tempfile::tempdir().expect("temp dir");
    let etcd = EtcdProcess::start(&dir.path().join("etcd"), free_port(), free_port()).await;
    let client = EtcdClient::new(&[etcd.url()]).expect("client");
    for value in [b"1", b"2", b"3"] {
        client.put("/natter/nodes/x", value, None).await.expect("put");
    }
    let (revision, _) = client.range_prefix("/natter/nodes/").await.expect("range");
    let http = reqwest::Client::new();
    let compacted = http
        .post(format!("{}/v3/kv/compaction", etcd.url()))
        .body(format!(r#"{{"revision":"{revision}"}}"#))
        .send()
        .await
        .expect("compact");
    assert!(compacted.status().is_success(), "compaction: {}", compacted.status());

    let mut stream = client.watch_prefix("/natter/nodes/", 1).await.expect("watch");
    let update = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("an answer within 5 s");
    match update.expect("no error") {
        Some(WatchUpdate::Canceled { compact_revision, .. }) => assert_eq!(compact_revision, revision),
        other => panic!("expected a cancellation, got {other:?}"),
    }
}

/// etcd on its way down (what a graceful stop of etcd 3.4 does for seconds): it refuses every
/// call, so no node can renew its lease, but its lessor still runs and its open watches still
/// deliver — every lease expires and every watcher is told every node is gone. A follower must
/// keep the nodes it cannot confirm gone (chaos test: gateways answered 503 "no chat node is
/// known" for 5 s while etcd restarted), and once etcd answers again, keep the ones that come
/// back and drop, one lease TTL later, the one that really died meanwhile.
#[tokio::test]
async fn nodes_deleted_while_etcd_does_not_answer_are_kept() {
    init_tracing();
    let Some(url) = etcd_url("nodes_deleted_while_etcd_does_not_answer_are_kept") else { return };
    let prefix = unique_prefix("halfdown");
    let proxy = HalfDownProxy::start(&url).await;
    let gateway = start(&proxy.url(), &prefix, node("gateway", &["gateway"])).await;
    let chat = start(&proxy.url(), &prefix, node("chat", &["chat"])).await;
    let doomed = start(&proxy.url(), &prefix, node("doomed", &["chat"])).await;
    let mut nodes = gateway.nodes();
    wait_nodes(&mut nodes, Duration::from_secs(5), "all three listed", |n| n.len() == 3).await;
    let mut state = chat.registration().expect("etcd registers").watch_state();
    within(&mut state, "chat registered", |s| s.is_registered()).await;
    let seen = record(gateway.nodes());

    proxy.set_down(true);
    drop(doomed);
    // etcd itself (reached directly) lets the leases expire: the keys go, the watch says so.
    let direct = EtcdClient::new(std::slice::from_ref(&url)).expect("client");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, kvs) = direct.range_prefix(&etcd::nodes_prefix(&prefix)).await.expect("range");
        if kvs.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the leases did not expire within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ids(&gateway.nodes().borrow()), ["chat", "doomed", "gateway"], "kept while etcd does not answer");

    proxy.set_down(false);
    let back = Instant::now();
    within(&mut state, "chat registered again", |s| s.is_registered()).await;
    let gone_at =
        wait_nodes(&mut nodes, Duration::from_secs(8), "doomed dropped", |n| ids(n) == ["chat", "gateway"]).await;
    let after = gone_at - back;
    println!("a node that died during the outage dropped {:.3} s after etcd answered again", after.as_secs_f64());
    assert!(after >= Duration::from_millis(2500), "dropped before its grace of one TTL: {after:?}");
    let seen = seen.lock().expect("the record").clone();
    assert!(
        seen.iter().all(|list| list.contains(&"chat".to_owned())),
        "the live chat node was never missing from the list: {seen:?}"
    );

    // With etcd answering, a crash is still noticed within the lease (see the test above) and
    // a graceful stop at once.
    chat.stop().await;
    wait_nodes(&mut nodes, Duration::from_secs(1), "a stopped node goes at once", |n| ids(n) == ["gateway"]).await;
    gateway.stop().await;
}
