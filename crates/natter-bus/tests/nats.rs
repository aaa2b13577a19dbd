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
