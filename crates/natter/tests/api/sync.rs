//! The log's guarantees: gap-free seqs under concurrency, paging both ways, read markers and
//! unread counts, and complete catch-up after a disconnect. All on both backends.

use std::collections::HashSet;

use natter_proto::{MessagePage, MessageView, ReadResponse};
use serde_json::json;

use crate::common::{Backend, TestApp, TestUser, on_both_backends, spawn_app_on};

on_both_backends!(
    concurrent_sends_get_gapless_seqs,
    history_pages_both_ways,
    unread_counts_follow_read_markers,
    catch_up_after_disconnect_is_complete,
);

fn seqs(entries: &[MessageView]) -> Vec<i64> {
    entries.iter().map(|entry| entry.seq).collect()
}

async fn friends(app: &TestApp) -> (TestUser, TestUser, String) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let conversation = app.make_friends(&alice, &bob).await;
    (alice, bob, conversation)
}

async fn concurrent_sends_get_gapless_seqs(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let (alice, bob, conversation) = friends(&app).await;
    let base = app.conversation(&alice, &conversation).await.last_seq;

    let sends = (0..100).map(|i| {
        let sender = if i % 2 == 0 { &alice } else { &bob };
        let text = format!("message {i}");
        let conversation = conversation.as_str();
        let app = &app;
        async move { app.try_send_text(sender, conversation, &text).await }
    });
    let answers = futures_util::future::join_all(sends).await;
    let acks: Vec<MessageView> = answers.into_iter().map(|answer| answer.expect(201)).collect();

    let mut acked_seqs = seqs(&acks);
    acked_seqs.sort_unstable();
    assert_eq!(acked_seqs, (base + 1..=base + 100).collect::<Vec<_>>(), "seqs are gap-free and unique");
    let ids: HashSet<&str> = acks.iter().map(|ack| ack.id.as_str()).collect();
    assert_eq!(ids.len(), 100, "every send stored its own entry");

    let stored = app.history_since(&bob, &conversation, base).await;
    assert_eq!(seqs(&stored), (base + 1..=base + 100).collect::<Vec<_>>());
    let mut by_seq = acks.clone();
    by_seq.sort_by_key(|ack| ack.seq);
    assert_eq!(stored, by_seq, "the log holds exactly what was acknowledged, in seq order");
    assert_eq!(app.conversation(&bob, &conversation).await.last_seq, base + 100);
}

async fn history_pages_both_ways(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let (alice, bob, conversation) = friends(&app).await;
    let base = app.conversation(&alice, &conversation).await.last_seq;
    let mut sent = Vec::new();
    for i in 0..25 {
        let sender = if i % 3 == 0 { &bob } else { &alice };
        sent.push(app.send_text(sender, &conversation, &format!("page me {i}")).await);
    }
    let last = base + 25;

    let full = app.full_history(&alice, &conversation).await;
    assert_eq!(seqs(&full), (1..=last).collect::<Vec<_>>());
    assert_eq!(&full[base as usize..], sent.as_slice());

    let expect_after = |after: i64, limit: usize| {
        let newer: Vec<MessageView> = full.iter().filter(|e| e.seq > after).cloned().collect();
        let has_more = newer.len() > limit;
        (newer.into_iter().take(limit).collect::<Vec<_>>(), has_more)
    };
    for (after, limit) in [(0, 10), (base, 10), (base + 10, 10), (base + 20, 10), (last - 1, 1), (last, 10)] {
        let page: MessagePage = app.history_after(&bob, &conversation, after, limit as u32).await;
        let (messages, has_more) = expect_after(after, limit);
        assert_eq!(seqs(&page.messages), seqs(&messages), "after_seq={after} limit={limit}");
        assert_eq!(page.messages, messages);
        assert_eq!(page.has_more, has_more, "has_more for after_seq={after} limit={limit}");
    }

    let expect_before = |before: i64, limit: usize| {
        let older: Vec<MessageView> = full.iter().rev().filter(|e| e.seq < before).cloned().collect();
        let has_more = older.len() > limit;
        (older.into_iter().take(limit).collect::<Vec<_>>(), has_more)
    };
    for (before, limit) in [(last + 1, 10), (last - 9, 10), (base + 6, 10), (2, 1), (2, 10), (1, 10)] {
        let page: MessagePage = app.history_before(&bob, &conversation, before, limit as u32).await;
        let (messages, has_more) = expect_before(before, limit);
        assert_eq!(seqs(&page.messages), seqs(&messages), "before_seq={before} limit={limit}");
        assert_eq!(page.messages, messages);
        assert_eq!(page.has_more, has_more, "has_more for before_seq={before} limit={limit}");
    }
}

async fn unread_counts_follow_read_markers(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let (alice, bob, conversation) = friends(&app).await;
    let bob_phone = app.login(&bob).await;
    let mut bob_ws = app.connect_ws(&bob).await;
    let mut bob_phone_ws = app.connect_ws(&bob_phone).await;
    let read_path = format!("/conversations/{conversation}/read");

    let base = app.conversation(&bob, &conversation).await.last_seq;
    if base > 0 {
        app.post(&bob, &read_path, json!({ "seq": base })).await.expect_status(200);
    }
    let mut sent = Vec::new();
    for text in ["one", "two", "three"] {
        sent.push(app.send_text(&alice, &conversation, text).await);
    }
    let last = sent[2].seq;

    let listed = app.conversations(&bob).await;
    let view = listed.iter().find(|c| c.id == conversation).expect("bob lists the conversation");
    assert_eq!((view.last_seq, view.unread_count), (last, 3));
    assert_eq!(view.last_message.as_ref().map(|m| m.id.as_str()), Some(sent[2].id.as_str()));
    assert_eq!(app.conversation(&alice, &conversation).await.unread_count, 0, "own messages are read");

    let read: ReadResponse = app.post(&bob, &read_path, json!({ "seq": sent[1].seq })).await.expect(200);
    assert_eq!(read.conversation_id, conversation);
    assert_eq!((read.read_seq, read.unread_count), (sent[1].seq, 1));
    let frame = bob_phone_ws.next_of_type("read").await;
    assert_eq!(frame["conversation_id"], conversation.as_str(), "bob's other device follows");
    assert_eq!((frame["user_id"].as_str(), frame["seq"].as_i64()), (Some(bob.id.as_str()), Some(sent[1].seq)));
    let view = app.conversation(&bob_phone, &conversation).await;
    assert_eq!((view.read_seq, view.unread_count), (sent[1].seq, 1));

    // The marker never moves back.
    let back: ReadResponse = app.post(&bob, &read_path, json!({ "seq": sent[0].seq })).await.expect(200);
    assert_eq!((back.read_seq, back.unread_count), (sent[1].seq, 1));

    // Reading over the WebSocket works the same and reaches the other device.
    let read_frame = json!({ "type": "read", "conversation_id": conversation, "seq": last });
    bob_phone_ws.send_json(read_frame).await;
    let frame = bob_ws.frames_until(|f| f["type"] == "read" && f["seq"] == last).await;
    assert_eq!(frame.last().map(|f| f["user_id"].clone()), Some(json!(bob.id)));
    let view = app.conversation(&bob, &conversation).await;
    assert_eq!((view.read_seq, view.unread_count), (last, 0));
    let members = app.members(&alice, &conversation).await;
    let bob_member = members.iter().find(|m| m.user.id == bob.id).expect("bob is a member");
    assert_eq!(bob_member.read_seq, last, "the member list shows read markers");

    app.send_text(&alice, &conversation, "four").await;
    assert_eq!(app.conversation(&bob, &conversation).await.unread_count, 1);
}

async fn catch_up_after_disconnect_is_complete(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let (alice, bob, conversation) = friends(&app).await;
    let mut bob_ws = app.connect_ws(&bob).await;
    let seen = app.send_text(&alice, &conversation, "seen live").await;
    assert_eq!(bob_ws.next_message().await, seen);
    bob_ws.close().await;

    // While bob is away: texts, and events that change them.
    let mut missed_acks = Vec::new();
    for i in 0..5 {
        missed_acks.push(app.send_text(&alice, &conversation, &format!("missed {i}")).await);
    }
    let path = |seq: i64| format!("/conversations/{conversation}/messages/{seq}");
    let (edited, reacted, recalled) = (missed_acks[0].seq, missed_acks[1].seq, missed_acks[2].seq);
    let edit: MessageView = app.patch(&alice, &path(edited), json!({ "text": "missed 0, edited" })).await.expect_ok();
    let reaction: MessageView = app.put_empty(&alice, &format!("{}/reactions/🎉", path(reacted))).await.expect_ok();
    let recall: MessageView = app.delete(&alice, &path(recalled)).await.expect_ok();
    missed_acks.extend([edit, reaction, recall]);

    let mut bob_ws = app.connect_ws(&bob).await;
    let missed = app.history_since(&bob, &conversation, seen.seq).await;
    assert_eq!(seqs(&missed), (seen.seq + 1..=seen.seq + 8).collect::<Vec<_>>(), "nothing missing");
    let summary = |entries: &[MessageView]| -> Vec<(String, i64, String)> {
        entries.iter().map(|e| (e.id.clone(), e.seq, e.kind.clone())).collect()
    };
    assert_eq!(summary(&missed), summary(&missed_acks));
    let kinds: Vec<&str> = missed.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["text", "text", "text", "text", "text", "edit", "reaction", "recall"]);

    // The texts come with the events folded in.
    assert_eq!(missed[0].text.as_deref(), Some("missed 0, edited"));
    assert!(missed[0].edited_at.is_some());
    assert_eq!(missed[1].reactions.iter().map(|r| (r.emoji.as_str(), r.count)).collect::<Vec<_>>(), [("🎉", 1)]);
    assert!(missed[2].recalled && missed[2].text.is_none());
    assert_eq!(missed[3].text.as_deref(), Some("missed 3"));

    let live = app.send_text(&alice, &conversation, "welcome back").await;
    assert_eq!(live.seq, seen.seq + 9);
    // A push of a missed entry may still reach the new socket if it registered before the
    // dispatcher handed that entry out (the client dedupes by seq); then comes the live one.
    let pushed = loop {
        let message = bob_ws.next_message().await;
        if message.seq < live.seq {
            assert!(message.seq > seen.seq, "only missed entries come before it: {message:?}");
            continue;
        }
        break message;
    };
    assert_eq!(pushed, live, "the new socket gets live pushes");
}
