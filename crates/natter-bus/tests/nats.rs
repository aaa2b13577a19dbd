//! `NatsBus` against a real nats-server, named by `NATTER_TEST_NATS_URL` (scripts/test.sh starts
//! one). Without it the tests skip, unless `CI` is set: there a missing server is a failure.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use natter_bus::NatsBus;
use natter_core::bus::{Bus, Event};
use natter_core::ids::UserId;

fn nats_url(test: &str) -> Option<String> {
    match std::env::var("NATTER_TEST_NATS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("NATTER_TEST_NATS_URL is not set but CI is: run scripts/test.sh")
        }
        _ => {
            println!("skipping {test}: NATTER_TEST_NATS_URL is not set (scripts/test.sh sets it)");
            None
        }
    }
}

/// A subject prefix no other test run shares, so parallel runs on one server do not cross.
fn unique_prefix() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("natter-test.{}-{nanos}", std::process::id())
}

async fn next(events: &mut BoxStream<'static, Event>) -> Event {
    tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("an event within 5 s")
        .expect("the stream is still open")
}

fn event(recipients: &[&str], frame: &[u8]) -> Event {
    Event::new(recipients.iter().map(|id| UserId::from(*id)).collect(), Bytes::copy_from_slice(frame))
}

#[tokio::test]
async fn an_event_published_on_one_node_reaches_every_subscriber_of_every_node() {
    let Some(url) = nats_url("an_event_published_on_one_node_reaches_every_subscriber_of_every_node") else {
        return;
    };
    let prefix = unique_prefix();
    let node_a = NatsBus::connect(&url, &prefix).await.expect("node a connects");
    let node_b = NatsBus::connect(&url, &prefix).await.expect("node b connects");
    assert!(node_a.healthy().await && node_b.healthy().await);
    assert_eq!(node_a.subject(), format!("{prefix}.events"));

    let mut on_a = node_a.subscribe().await.expect("subscribe on a");
    let mut on_b = node_b.subscribe().await.expect("subscribe on b");

    let sent = event(&["alice", "bob", "ユーザー"], b"{\"type\":\"message\",\"bytes\":\"\x00\xff\"}");
    node_a.publish(sent.clone()).await.expect("publish on a");
    assert_eq!(next(&mut on_b).await, sent, "the other node gets it, recipients and bytes intact");
    assert_eq!(next(&mut on_a).await, sent, "the publishing node's own subscribers get it too");

    // Order from one publisher is kept, and an empty recipient list or frame survives.
    let batch: Vec<Event> = (0..50).map(|n| event(&[], format!("{n}").as_bytes())).collect();
    for sent in &batch {
        node_b.publish(sent.clone()).await.expect("publish on b");
    }
    node_b.publish(event(&["x"], b"")).await.expect("publish on b");
    for sent in &batch {
        assert_eq!(&next(&mut on_a).await, sent);
    }
    assert_eq!(next(&mut on_a).await, event(&["x"], b""));
}

#[tokio::test]
async fn clusters_with_different_prefixes_do_not_see_each_other() {
    let Some(url) = nats_url("clusters_with_different_prefixes_do_not_see_each_other") else {
        return;
    };
    let ours = NatsBus::connect(&url, &unique_prefix()).await.expect("connect");
    let theirs = NatsBus::connect(&url, &format!("{}-other", unique_prefix())).await.expect("connect");
    let mut events = ours.subscribe().await.expect("subscribe");

    theirs.publish(event(&["eve"], b"not for us")).await.expect("publish");
    ours.publish(event(&["bob"], b"for us")).await.expect("publish");
    assert_eq!(next(&mut events).await, event(&["bob"], b"for us"));
}

#[tokio::test]
async fn undecodable_payloads_are_skipped_and_the_stream_goes_on() {
    let Some(url) = nats_url("undecodable_payloads_are_skipped_and_the_stream_goes_on") else {
        return;
    };
    let bus = NatsBus::connect(&url, &unique_prefix()).await.expect("connect");
    let mut events = bus.subscribe().await.expect("subscribe");

    let raw = async_nats::connect(&url).await.expect("raw client connects");
    for garbage in [&b""[..], b"\x09whatever", b"\x01\x00\x00\x00\x09not json!"] {
        raw.publish(bus.subject().to_owned(), Bytes::copy_from_slice(garbage)).await.expect("raw publish");
    }
    raw.flush().await.expect("flush");
    bus.publish(event(&["bob"], b"good")).await.expect("publish");
    assert_eq!(next(&mut events).await, event(&["bob"], b"good"));
}

/// Targeted delivery: an event for one node reaches that node's gateway subscription only; an
/// event for every node reaches both; a log entry reaches the log subscribers only.
#[tokio::test]
async fn node_subjects_reach_one_node_and_the_log_subject_its_own_subscribers() {
    let Some(url) = nats_url("node_subjects_reach_one_node_and_the_log_subject_its_own_subscribers") else {
        return;
    };
    use natter_core::presence::NodeId;
    let prefix = unique_prefix();
    let bus_a = NatsBus::connect(&url, &prefix).await.expect("node a connects");
    let bus_b = NatsBus::connect(&url, &prefix).await.expect("node b connects");
    assert!(bus_a.has_node_subjects());
    let (a, b) = (NodeId::parse("gw-a").expect("id"), NodeId::parse("gw-b").expect("id"));
    assert_eq!(bus_a.node_subject(&a), format!("{prefix}.gw.gw-a"));
    let mut gateway_a = bus_a.subscribe_node(&a).await.expect("subscribe a");
    let mut gateway_b = bus_b.subscribe_node(&b).await.expect("subscribe b");
    let mut log = bus_b.subscribe_log().await.expect("subscribe to the log");

    let for_a = event(&["alice"], b"for a");
    bus_b.publish_to(&a, for_a.clone()).await.expect("publish to a");
    let entry = event(&[], b"entry");
    bus_a.publish_log(entry.clone()).await.expect("publish a log entry");
    let everyone = event(&["alice", "bob"], b"everyone");
    bus_a.publish(everyone.clone()).await.expect("publish to every node");

    // Two publishers on two connections: either may arrive first.
    let mut got = vec![next(&mut gateway_a).await, next(&mut gateway_a).await];
    got.sort_by(|x, y| x.frame.cmp(&y.frame));
    assert_eq!(got, vec![everyone.clone(), for_a]);
    assert_eq!(next(&mut gateway_b).await, everyone, "b never got a's event");
    assert_eq!(next(&mut log).await, entry, "the log subject carries log entries only");
    let nothing = tokio::time::timeout(Duration::from_millis(200), gateway_b.next()).await;
    assert!(nothing.is_err(), "nothing more for b: {nothing:?}");
}
