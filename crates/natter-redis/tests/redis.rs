//! The Redis adapters against a real Redis: route transitions with several devices and nodes,
//! racing connects, TTL expiry, the sweep of a dead node, the record of where each log entry
//! went (looked up inline, or recorded by a fan-out worker), and throttle windows shared by two
//! clients.
//!
//! Needs `NATTER_TEST_REDIS_URL` (scripts/test.sh starts a Redis). Without it the tests skip,
//! unless `CI` is set: there they fail. Every test uses its own key prefix.

use std::sync::Arc;
use std::time::Duration;

use natter_core::bus::{LogPosition, Predecessor};
use natter_core::ids::{ConversationId, Seq, UserId};
use natter_core::presence::{EntryRecord, NodeId, PredecessorRoutes, Route, RouteTable};
use natter_core::service::throttle::{Limit, Throttle};
use natter_redis::{Redis, RedisRoutes, RedisThrottle};

async fn redis() -> Option<Redis> {
    let Some(url) = std::env::var("NATTER_TEST_REDIS_URL").ok().filter(|url| !url.is_empty()) else {
        assert!(std::env::var_os("CI").is_none(), "NATTER_TEST_REDIS_URL is required in CI: run scripts/test.sh");
        println!("skipping: set NATTER_TEST_REDIS_URL (scripts/test.sh --services-only)");
        return None;
    };
    let prefix = format!("natter-test-{}", uuid::Uuid::new_v4().simple());
    Some(Redis::connect(&url, &prefix).await.expect("connect to NATTER_TEST_REDIS_URL"))
}

fn node(id: &str) -> NodeId {
    NodeId::parse(id).expect("a node id")
}

fn route(user: &str, node_id: &str, device: &str) -> Route {
    Route { user: UserId::from(user), node: node(node_id), device: device.to_owned() }
}

fn users(ids: &[&str]) -> Vec<UserId> {
    ids.iter().map(|id| UserId::from(*id)).collect()
}

#[tokio::test]
async fn a_user_is_online_while_any_device_on_any_node_has_a_route() {
    let Some(redis) = redis().await else { return };
    let table = RedisRoutes::new(redis, Duration::from_secs(30));
    assert!(table.connect(&route("alice", "gw1", "s1:1")).await.expect("connect"), "first device: online");
    assert!(!table.connect(&route("alice", "gw2", "s2:1")).await.expect("connect"), "second device: no transition");
    assert!(!table.connect(&route("alice", "gw2", "s2:1")).await.expect("connect"), "the same device again");
    assert_eq!(table.online(&users(&["alice", "bob"])).await.expect("online"), vec![true, false]);

    let mut nodes = table.nodes_of(&users(&["bob", "alice"])).await.expect("nodes_of");
    nodes.sort();
    assert_eq!(nodes, vec![(node("gw1"), users(&["alice"])), (node("gw2"), users(&["alice"]))]);

    assert!(!table.disconnect(&route("alice", "gw1", "s1:1")).await.expect("disconnect"), "one device left");
    assert!(table.disconnect(&route("alice", "gw2", "s2:1")).await.expect("disconnect"), "last device: offline");
    assert!(!table.disconnect(&route("alice", "gw2", "s2:1")).await.expect("disconnect"), "gone already");
    assert_eq!(table.online(&users(&["alice"])).await.expect("online"), vec![false]);
    assert!(table.nodes_of(&users(&["alice"])).await.expect("nodes_of").is_empty());
}

/// Many devices of one user connecting at once from two nodes: exactly one sees the user come
/// online; disconnecting them all at once: exactly one sees them go.
#[tokio::test]
async fn racing_connects_and_disconnects_give_exactly_one_transition_each() {
    let Some(redis) = redis().await else { return };
    let table = Arc::new(RedisRoutes::new(redis, Duration::from_secs(30)));
    for round in 0..5 {
        let routes: Vec<Route> =
            (0..20).map(|i| route("carol", if i % 2 == 0 { "gw1" } else { "gw2" }, &format!("r{round}d{i}"))).collect();
        let connects = routes.iter().cloned().map(|route| {
            let table = table.clone();
            tokio::spawn(async move { table.connect(&route).await.expect("connect") })
        });
        let firsts = futures_count(connects).await;
        assert_eq!(firsts, 1, "round {round}: one online transition");
        let disconnects = routes.iter().cloned().map(|route| {
            let table = table.clone();
            tokio::spawn(async move { table.disconnect(&route).await.expect("disconnect") })
        });
        assert_eq!(futures_count(disconnects).await, 1, "round {round}: one offline transition");
    }
}

async fn futures_count(tasks: impl Iterator<Item = tokio::task::JoinHandle<bool>>) -> usize {
    let mut count = 0;
    for task in tasks.collect::<Vec<_>>() {
        if task.await.expect("the task ran") {
            count += 1;
        }
    }
    count
}

#[tokio::test]
async fn routes_expire_without_refresh_and_a_refresh_brings_them_back() {
    let Some(redis) = redis().await else { return };
    let table = RedisRoutes::new(redis, Duration::from_millis(300));
    let dave = route("dave", "gw1", "s:1");
    assert!(table.connect(&dave).await.expect("connect"));
    // Refreshed in time: still online past the first TTL.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(table.refresh(&node("gw1"), std::slice::from_ref(&dave)).await.expect("refresh").is_empty());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(table.online(&users(&["dave"])).await.expect("online"), vec![true]);
    // Not refreshed: gone after the TTL, from presence and from delivery.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(table.online(&users(&["dave"])).await.expect("online"), vec![false]);
    assert!(table.nodes_of(&users(&["dave"])).await.expect("nodes_of").is_empty());
    // The node wakes up and refreshes: dave is reported back online, once.
    assert_eq!(table.refresh(&node("gw1"), std::slice::from_ref(&dave)).await.expect("refresh"), users(&["dave"]));
    assert!(table.refresh(&node("gw1"), std::slice::from_ref(&dave)).await.expect("refresh").is_empty());
    assert_eq!(table.online(&users(&["dave"])).await.expect("online"), vec![true]);
}

/// gw1 dies (stops refreshing) holding erin and frank's only devices and one of grace's two;
/// gw2 lives. Three sweepers race once gw1's heartbeat expired: exactly one gets erin and
/// frank (grace stays online through gw2), and gw2 is never swept.
#[tokio::test]
async fn exactly_one_sweeper_claims_a_dead_node_and_reports_its_users_offline() {
    let Some(redis) = redis().await else { return };
    let ttl = Duration::from_millis(400);
    let table = Arc::new(RedisRoutes::new(redis, ttl));
    let on_gw1 = [route("erin", "gw1", "a"), route("frank", "gw1", "b"), route("grace", "gw1", "c")];
    let on_gw2 = [route("grace", "gw2", "d"), route("heidi", "gw2", "e")];
    for route in on_gw1.iter().chain(&on_gw2) {
        table.connect(route).await.expect("connect");
    }
    // erin's second device on gw1 closed cleanly: still one left on gw1.
    table.connect(&route("erin", "gw1", "a2")).await.expect("connect");
    table.disconnect(&route("erin", "gw1", "a2")).await.expect("disconnect");
    assert!(table.sweep().await.expect("sweep").is_empty(), "nobody is dead yet");

    // gw2 keeps refreshing; gw1 does not.
    for _ in 0..6 {
        tokio::time::sleep(ttl / 4).await;
        table.refresh(&node("gw2"), &on_gw2).await.expect("refresh");
    }
    let sweeps = (0..3).map(|_| {
        let table = table.clone();
        tokio::spawn(async move { table.sweep().await.expect("sweep") })
    });
    let mut results = Vec::new();
    for sweep in sweeps.collect::<Vec<_>>() {
        results.push(sweep.await.expect("the sweep ran"));
    }
    let mut claimed: Vec<Vec<UserId>> = results.into_iter().filter(|gone| !gone.is_empty()).collect();
    assert_eq!(claimed.len(), 1, "exactly one sweeper claimed gw1: {claimed:?}");
    let mut gone = claimed.remove(0);
    gone.sort();
    assert_eq!(gone, users(&["erin", "frank"]), "grace is still on gw2");
    assert_eq!(
        table.online(&users(&["erin", "frank", "grace", "heidi"])).await.expect("online"),
        vec![false, false, true, true]
    );
    let nodes = table.nodes_of(&users(&["grace"])).await.expect("nodes_of");
    assert_eq!(nodes, vec![(node("gw2"), users(&["grace"]))], "nothing is delivered to gw1 any more");
    assert!(table.sweep().await.expect("sweep").is_empty(), "gw1 is claimed once");
}

#[tokio::test]
async fn throttle_windows_are_shared_by_two_clients() {
    let Some(redis) = redis().await else { return };
    // Two nodes: two connections to the same keys.
    let url = std::env::var("NATTER_TEST_REDIS_URL").expect("set");
    let first = RedisThrottle::new(redis.clone());
    let second = RedisThrottle::new(redis_with_same_prefix(&url, &redis).await);
    let window = Duration::from_millis(1500);
    let keys = vec![Limit::new("login:pair:ann|1.2.3.4", 3), Limit::new("login:user:ann", 10)];
    for node in [&first, &second, &first] {
        assert_eq!(node.check(&keys, window).await.expect("check"), Ok(()));
        node.record(&keys, window).await.expect("record");
    }
    let wait = second.check(&keys, window).await.expect("check").expect_err("over the limit on either node");
    assert!(wait <= Duration::from_secs(2), "{wait:?}");
    assert!(first.check(&keys, window).await.expect("check").is_err());
    // Another address is under its own (pair) limit; the account-wide limit is looser.
    let other = vec![Limit::new("login:pair:ann|5.6.7.8", 3), Limit::new("login:user:ann", 10)];
    assert_eq!(second.check(&other, window).await.expect("check"), Ok(()));
    // Clearing the pair on one node lifts it on the other.
    first.clear("login:pair:ann|1.2.3.4").await.expect("clear");
    assert_eq!(second.check(&keys, window).await.expect("check"), Ok(()));
    // Events age out of the window.
    for _ in 0..3 {
        second.record(&keys, window).await.expect("record");
    }
    assert!(first.check(&keys, window).await.expect("check").is_err());
    tokio::time::sleep(window + Duration::from_millis(100)).await;
    assert_eq!(first.check(&keys, window).await.expect("check"), Ok(()));
}

async fn redis_with_same_prefix(url: &str, redis: &Redis) -> Redis {
    Redis::connect(url, redis.prefix()).await.expect("a second connection")
}

/// Two chat nodes publish seq 6 and 7 of one conversation: each lookup records where its entry
/// went and reports where the previous one went, including when 7 is looked up before 6.
#[tokio::test]
async fn an_entrys_lookup_reports_where_the_previous_entry_went() {
    let Some(redis) = redis().await else { return };
    let table = RedisRoutes::new(redis, Duration::from_secs(30));
    let at = |seq| LogPosition::new(ConversationId::from("c1"), Seq::new(seq));
    table.connect(&route("alice", "gw1", "s1:1")).await.expect("connect");

    let first = table.nodes_of_entry(&users(&["alice", "bob"]), &at(5)).await.expect("lookup");
    assert_eq!(first.nodes, vec![(node("gw1"), users(&["alice"]))]);
    assert_eq!(first.predecessor, PredecessorRoutes::Pending, "nothing recorded of 4: its lookup is behind");

    // bob connects on gw2 after 5 went out: 5 never went there.
    table.connect(&route("bob", "gw2", "s2:1")).await.expect("connect");
    let sixth = table.nodes_of_entry(&users(&["alice", "bob"]), &at(6)).await.expect("lookup");
    assert_eq!(sixth.predecessor, PredecessorRoutes::SentTo(vec![node("gw1")]));
    assert_eq!(sixth.predecessor.for_node(&node("gw1")), Predecessor::Coming);
    assert_eq!(sixth.predecessor.for_node(&node("gw2")), Predecessor::NotComing);

    // 8 is looked up before 7 (7's publisher is a moment behind): 7 is still to come.
    let eighth = table.nodes_of_entry(&users(&["alice", "bob"]), &at(8)).await.expect("lookup");
    assert_eq!(eighth.predecessor, PredecessorRoutes::Pending);
    assert_eq!(eighth.predecessor.for_node(&node("gw2")), Predecessor::Coming);
    let seventh = table.nodes_of_entry(&users(&["alice", "bob"]), &at(7)).await.expect("lookup");
    assert_eq!(seventh.predecessor, PredecessorRoutes::Late, "7 went out after 8");
    let mut nodes = seventh.nodes;
    nodes.sort();
    assert_eq!(nodes, vec![(node("gw1"), users(&["alice"])), (node("gw2"), users(&["bob"]))]);
    // The late 7 did not overwrite 8's record: 9 learns where 8 went (both gateways).
    let ninth = table.nodes_of_entry(&users(&["alice"]), &at(9)).await.expect("lookup");
    let PredecessorRoutes::SentTo(mut went) = ninth.predecessor else { panic!("8 was recorded: {ninth:?}") };
    went.sort();
    assert_eq!(went, vec![node("gw1"), node("gw2")]);
    // 10 after 9, which went to gw1 only; an entry with no one connected records no node.
    let tenth = table.nodes_of_entry(&users(&["carol"]), &at(10)).await.expect("lookup");
    assert!(tenth.nodes.is_empty());
    assert_eq!(tenth.predecessor, PredecessorRoutes::SentTo(vec![node("gw1")]));
    let eleventh = table.nodes_of_entry(&users(&["alice"]), &at(11)).await.expect("lookup");
    assert_eq!(eleventh.predecessor, PredecessorRoutes::SentTo(Vec::new()));
    assert_eq!(eleventh.predecessor.for_node(&node("gw1")), Predecessor::NotComing);

    // The first entry has no predecessor; an entry long after its predecessor (seconds) is told
    // it went out long ago, wherever it went: nobody waits for it.
    let start = LogPosition::new(ConversationId::from("c9"), Seq::FIRST);
    let first = table.nodes_of_entry(&users(&["alice"]), &start).await.expect("lookup");
    assert_eq!(first.predecessor, PredecessorRoutes::Unknown);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let later = table.nodes_of_entry(&users(&["alice"]), &at(12)).await.expect("lookup");
    assert_eq!(later.predecessor, PredecessorRoutes::LongAgo);
    assert_eq!(later.predecessor.for_node(&node("gw1")), Predecessor::NotComing);
}

/// A fan-out worker records an entry's nodes (the union of its batched lookups) on the same
/// record as the inline lookup, once per entry: a run of the job again gets the first run's
/// answer until one has published, then `Published`.
#[tokio::test]
async fn a_fan_out_record_shares_the_inline_record_and_is_claimed_once_per_entry() {
    let Some(redis) = redis().await else { return };
    let table = RedisRoutes::new(redis, Duration::from_secs(30));
    let at = |seq| LogPosition::new(ConversationId::from("c1"), Seq::new(seq));
    table.connect(&route("alice", "gw1", "s1:1")).await.expect("connect");

    // 1 is published inline (a small group then), 2 by a worker to both gateways.
    table.nodes_of_entry(&users(&["alice"]), &at(1)).await.expect("lookup");
    let second = table.record_entry(&at(2), &[node("gw1"), node("gw2")]).await.expect("record");
    assert_eq!(second, EntryRecord::Publish(PredecessorRoutes::SentTo(vec![node("gw1")])));

    // Its job runs again before it published (its worker died): the same answer, not "late".
    let again = table.record_entry(&at(2), &[node("gw1")]).await.expect("record again");
    assert_eq!(again, second);
    table.entry_published(&at(2)).await.expect("mark");
    assert_eq!(table.record_entry(&at(2), &[node("gw1")]).await.expect("record"), EntryRecord::Published);

    // The record kept the first run's nodes: the inline lookup of 3 learns that 2 went to both.
    let third = table.nodes_of_entry(&users(&["alice"]), &at(3)).await.expect("lookup");
    let PredecessorRoutes::SentTo(mut went) = third.predecessor else { panic!("2 was recorded: {third:?}") };
    went.sort();
    assert_eq!(went, vec![node("gw1"), node("gw2")]);

    // Two workers finish 5 before 4: 5 waits for 4, 4 is the late one, and 6 learns 5's nodes.
    let fifth = table.record_entry(&at(5), &[node("gw2")]).await.expect("record");
    assert_eq!(fifth, EntryRecord::Publish(PredecessorRoutes::Pending));
    let fourth = table.record_entry(&at(4), &[node("gw1")]).await.expect("record");
    assert_eq!(fourth, EntryRecord::Publish(PredecessorRoutes::Late));
    let sixth = table.record_entry(&at(6), &[]).await.expect("record");
    assert_eq!(sixth, EntryRecord::Publish(PredecessorRoutes::SentTo(vec![node("gw2")])));
    let seventh = table.record_entry(&at(7), &[node("gw1")]).await.expect("record");
    assert_eq!(seventh, EntryRecord::Publish(PredecessorRoutes::SentTo(Vec::new())), "6 went nowhere");

    // Another conversation's entries are claimed apart.
    let other = LogPosition::new(ConversationId::from("c2"), Seq::new(2));
    assert_eq!(
        table.record_entry(&other, &[node("gw1")]).await.expect("record"),
        EntryRecord::Publish(PredecessorRoutes::Pending),
        "nothing recorded of c2's entry 1: its publisher is behind"
    );
}
