//! Sending: live delivery to every device, idempotent resends, edit/recall/reaction rules, text
//! limits, typing, and what a removed member still gets.

use natter_proto::{MessageView, SendMessageRequest};
use serde_json::json;

use crate::common::{Backend, TestApp, on_both_backends, spawn_app, spawn_app_on, spawn_app_with};

on_both_backends!(live_delivery_reaches_every_device, resend_is_idempotent);

fn entry(history: &[MessageView], seq: i64) -> &MessageView {
    history.iter().find(|entry| entry.seq == seq).unwrap_or_else(|| panic!("no entry {seq}"))
}

fn message_of(frame: &serde_json::Value) -> MessageView {
    serde_json::from_value(frame["message"].clone()).expect("a frame carrying a message")
}

async fn live_delivery_reaches_every_device(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let conversation = app.make_friends(&alice, &bob).await;
    let alice_phone = app.login(&alice).await;
    let bob_phone = app.login(&bob).await;
    let mut alice_ws = app.connect_ws(&alice).await;
    let mut alice_phone_ws = app.connect_ws(&alice_phone).await;
    let mut bob_ws = app.connect_ws(&bob).await;
    let mut bob_phone_ws = app.connect_ws(&bob_phone).await;

    // Sent over the WebSocket: acknowledged, and pushed to the sending device as well.
    let request = SendMessageRequest {
        client_msg_id: "ws-1".into(),
        kind: "text".into(),
        text: Some("over the socket".into()),
        file_id: None,
        reply_to: None,
        mentions: vec![],
    };
    let mut frame = serde_json::to_value(&request).expect("serialize");
    frame["type"] = json!("send");
    frame["id"] = json!("req-1");
    frame["conversation_id"] = json!(conversation);
    alice_ws.send_json(frame).await;
    let [sent, pushed] = <[_; 2]>::try_from(alice_ws.expect_types(&["sent", "message"]).await).expect("two frames");
    assert_eq!(sent["id"], "req-1", "the ack carries the request id");
    let stored = message_of(&sent);
    assert_eq!(stored.text.as_deref(), Some("over the socket"));
    assert_eq!((stored.sender_id.as_str(), stored.kind.as_str()), (alice.id.as_str(), "text"));
    assert_eq!(stored.client_msg_id.as_deref(), Some("ws-1"));
    assert_eq!(message_of(&pushed), stored, "the sending device gets the push too");
    assert_eq!(alice_phone_ws.next_message().await, stored, "the sender's other device");
    assert_eq!(bob_ws.next_message().await, stored, "the recipient's first device");
    assert_eq!(bob_phone_ws.next_message().await, stored, "the recipient's second device");

    // Sent over HTTP: every online device of both, the sender's included.
    let reply = app.send_text(&bob, &conversation, "over http").await;
    assert_eq!(reply.seq, stored.seq + 1);
    for ws in [&mut alice_ws, &mut alice_phone_ws, &mut bob_ws, &mut bob_phone_ws] {
        assert_eq!(ws.next_message().await, reply);
    }
    assert_eq!(app.full_history(&alice, &conversation).await.last(), Some(&reply));
}

async fn resend_is_idempotent(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let conversation = app.make_friends(&alice, &bob).await;
    let mut bob_ws = app.connect_ws(&bob).await;
    let mut alice_ws = app.connect_ws(&alice).await;

    let body = json!({ "client_msg_id": "c-1", "kind": "text", "text": "only once" });
    let first: MessageView = app.send_message(&alice, &conversation, body).await.expect(201);
    let retry = json!({ "client_msg_id": "c-1", "kind": "text", "text": "a different text" });
    let again: MessageView = app.send_message(&alice, &conversation, retry).await.expect(200);
    assert_eq!(again, first, "a resend returns the original entry: same id, seq and text");

    let over_ws = alice_ws.send_message(&conversation, "c-1", "only once").await;
    assert_eq!(over_ws["type"], "sent", "a resend over the socket is acknowledged: {over_ws}");
    assert_eq!(message_of(&over_ws), first);

    // The key belongs to its sender: bob may use the same one.
    let body = json!({ "client_msg_id": "c-1", "kind": "text", "text": "bob's own" });
    let bobs: MessageView = app.send_message(&bob, &conversation, body).await.expect(201);
    assert_ne!(bobs.id, first.id);
    assert_eq!(bobs.seq, first.seq + 1, "the resends took no seq");

    // Pushed once: the resends produced no second push before bob's entry.
    assert_eq!(bob_ws.next_message().await, first);
    assert_eq!(bob_ws.next_message().await, bobs);

    let history = app.full_history(&bob, &conversation).await;
    let keyed: Vec<&MessageView> = history.iter().filter(|e| e.client_msg_id.as_deref() == Some("c-1")).collect();
    assert_eq!(keyed, [&first, &bobs]);

    // The key used again for another conversation is refused, whether or not that send would
    // pass its checks.
    let group = app.create_group(&alice, "Team", &[&bob]).await;
    let elsewhere = json!({ "client_msg_id": "c-1", "kind": "text", "text": "in the group" });
    app.send_message(&alice, &group.id, elsewhere.clone()).await.expect_error(409, "client_msg_id_reused");
    let carol = app.register("carol").await;
    let carols = app.create_group(&carol, "Carol's", &[]).await;
    app.send_message(&alice, &carols.id, elsewhere).await.expect_error(409, "client_msg_id_reused");

    // A resend still gets its original after the peer blocked the sender (a retry after a lost
    // ack must work), while a new send is refused.
    app.put_empty(&bob, &format!("/blocks/{}", alice.id)).await.expect_success();
    let retry = json!({ "client_msg_id": "c-1", "kind": "text", "text": "only once" });
    let after_block: MessageView = app.send_message(&alice, &conversation, retry).await.expect(200);
    assert_eq!(after_block, first);
    let new = json!({ "client_msg_id": "c-2", "kind": "text", "text": "new" });
    app.send_message(&alice, &conversation, new).await.expect_error(403, "blocked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_member_gets_nothing_new() {
    let app = spawn_app().await;
    let olga = app.register("olga").await;
    let adam = app.register("adam").await;
    let mia = app.register("mia").await;
    let group = app.create_group(&olga, "Team", &[&adam, &mia]).await;
    let other = app.create_group(&olga, "Other", &[&mia]).await;
    let before = app.send_text(&adam, &group.id, "before").await;
    let mut mia_ws = app.connect_ws(&mia).await;

    app.remove_member(&olga, &group.id, &mia).await.expect_success();
    let removal_seq = before.seq + 1;
    let history = app.full_history(&olga, &group.id).await;
    let removal = entry(&history, removal_seq).system.clone().expect("a system entry");
    assert_eq!((removal.event.as_str(), removal.user_ids.as_slice()), ("member_removed", [mia.id.clone()].as_slice()));

    app.send_text(&adam, &group.id, "after").await;
    let sentinel = app.send_text(&olga, &other.id, "sentinel").await;
    let frames = mia_ws.frames_until(|f| f["type"] == "message" && f["message"]["id"] == sentinel.id.as_str()).await;
    for frame in &frames {
        if frame["type"] == "message" && frame["message"]["conversation_id"] == group.id.as_str() {
            let seq = frame["message"]["seq"].as_i64();
            assert!(seq <= Some(removal_seq), "pushed to a removed member: {frame}");
        }
    }
    assert!(
        frames.iter().any(|f| f["type"] == "conversation"
            && f["event"] == "member_removed"
            && f["conversation"]["id"] == group.id.as_str()),
        "mia is told she was removed: {frames:?}"
    );

    let base = format!("/conversations/{}", group.id);
    app.get(&mia, &base).await.expect_error(404, "not_found");
    app.get(&mia, &format!("{base}/messages?after_seq=0")).await.expect_error(404, "not_found");
    app.try_send_text(&mia, &group.id, "let me back").await.expect_error(404, "not_found");
    let reply = mia_ws.send_message(&group.id, "m-1", "let me back").await;
    assert_eq!((reply["type"].as_str(), reply["code"].as_str()), (Some("error"), Some("not_found")));
    assert!(app.conversations(&mia).await.iter().all(|c| c.id != group.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_recall_and_reactions_follow_the_rules() {
    let app = spawn_app().await;
    let olga = app.register("olga").await;
    let adam = app.register("adam").await;
    let mia = app.register("mia").await;
    let max = app.register("max").await;
    let group = app.create_group(&olga, "Team", &[&adam, &mia, &max]).await;
    app.set_role(&olga, &group.id, &adam, "admin").await.expect_success();
    let mut max_ws = app.connect_ws(&max).await;
    let base = format!("/conversations/{}/messages", group.id);

    let original = app.send_text(&mia, &group.id, "original").await;
    let path = format!("{base}/{}", original.seq);
    for other in [&max, &adam, &olga] {
        app.patch(other, &path, json!({ "text": "hijacked" })).await.expect_error(403, "forbidden");
    }
    let edit: MessageView = app.patch(&mia, &path, json!({ "text": "edited" })).await.expect_ok();
    assert_eq!((edit.kind.as_str(), edit.target_seq), ("edit", Some(original.seq)));
    assert!(edit.seq > original.seq);
    let frames = max_ws.frames_until(|f| f["type"] == "message" && f["message"]["kind"] == "edit").await;
    assert_eq!(frames.last().map(message_of), Some(edit.clone()), "members get the edit live");
    app.patch(&mia, &format!("{base}/9999"), json!({ "text": "x" })).await.expect_error(404, "not_found");
    app.patch(&olga, &format!("{base}/1"), json!({ "text": "x" })).await.expect_any_client_error();

    let history = app.full_history(&max, &group.id).await;
    let folded = entry(&history, original.seq);
    assert_eq!((folded.kind.as_str(), folded.text.as_deref()), ("text", Some("edited")));
    assert!(folded.edited_at.is_some() && !folded.recalled);

    // Reactions: one entry per change, summarised on the target.
    let reaction = |emoji: &str| format!("{path}/reactions/{emoji}");
    let added: MessageView = app.put_empty(&max, &reaction("👍")).await.expect_ok();
    assert_eq!((added.kind.as_str(), added.op.as_deref()), ("reaction", Some("add")));
    assert_eq!((added.emoji.as_deref(), added.target_seq), (Some("👍"), Some(original.seq)));
    app.put_empty(&adam, &reaction("👍")).await.expect_success();
    app.put_empty(&olga, &reaction("❤️")).await.expect_success();
    app.put_empty(&max, &format!("{base}/9999/reactions/👍")).await.expect_error(404, "not_found");
    let history = app.full_history(&mia, &group.id).await;
    let mut summary: Vec<(String, u64, Vec<String>)> = entry(&history, original.seq)
        .reactions
        .iter()
        .map(|r| {
            let mut users = r.user_ids.clone();
            users.sort();
            (r.emoji.clone(), r.count, users)
        })
        .collect();
    summary.sort();
    let mut thumbs = vec![max.id.clone(), adam.id.clone()];
    thumbs.sort();
    let mut expected = vec![("❤️".to_owned(), 1, vec![olga.id.clone()]), ("👍".to_owned(), 2, thumbs)];
    expected.sort();
    assert_eq!(summary, expected);

    let removed: MessageView = app.delete(&max, &reaction("👍")).await.expect_ok();
    assert_eq!((removed.op.as_deref(), removed.target_seq), (Some("remove"), Some(original.seq)));
    let history = app.full_history(&mia, &group.id).await;
    let thumbs = entry(&history, original.seq).reactions.iter().find(|r| r.emoji == "👍").cloned();
    assert_eq!(thumbs.map(|r| (r.count, r.user_ids)), Some((1, vec![adam.id.clone()])));

    // Recall: the sender, or an admin or owner of the group.
    app.delete(&max, &path).await.expect_error(403, "forbidden");
    let recall: MessageView = app.delete(&mia, &path).await.expect_ok();
    assert_eq!((recall.kind.as_str(), recall.target_seq), ("recall", Some(original.seq)));
    let history = app.full_history(&max, &group.id).await;
    let folded = entry(&history, original.seq);
    assert!(folded.recalled);
    assert_eq!(folded.text, None, "a recalled text is gone");
    app.patch(&mia, &path, json!({ "text": "again" })).await.expect_any_client_error();

    let by_max = app.send_text(&max, &group.id, "by max").await;
    app.delete(&adam, &format!("{base}/{}", by_max.seq)).await.expect_success();
    let by_adam = app.send_text(&adam, &group.id, "by adam").await;
    app.delete(&mia, &format!("{base}/{}", by_adam.seq)).await.expect_error(403, "forbidden");
    app.delete(&olga, &format!("{base}/{}", by_adam.seq)).await.expect_success();
    let history = app.full_history(&mia, &group.id).await;
    assert!(entry(&history, by_max.seq).recalled && entry(&history, by_adam.seq).recalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_peer_cannot_recall_or_edit_the_other_side() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let conversation = app.make_friends(&alice, &bob).await;
    let sent = app.send_text(&alice, &conversation, "mine").await;
    let path = format!("/conversations/{conversation}/messages/{}", sent.seq);
    app.delete(&bob, &path).await.expect_error(403, "forbidden");
    app.patch(&bob, &path, json!({ "text": "yours" })).await.expect_error(403, "forbidden");
    let history = app.full_history(&alice, &conversation).await;
    assert_eq!(entry(&history, sent.seq), &sent, "unchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_size_and_shape_are_checked() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let conversation = app.make_friends(&alice, &bob).await;

    let at_limit = "a".repeat(16 * 1024);
    app.send_text(&alice, &conversation, &at_limit).await;
    // The limit is in bytes: 5,462 three-byte characters are 16,386 bytes.
    let over = "中".repeat(5462);
    app.try_send_text(&alice, &conversation, &over).await.expect_error(413, "text_too_long");
    let mut alice_ws = app.connect_ws(&alice).await;
    let reply = alice_ws.send_message(&conversation, "too-long", &over).await;
    assert_eq!((reply["type"].as_str(), reply["code"].as_str()), (Some("error"), Some("text_too_long")));

    let empty = json!({ "client_msg_id": "e-1", "kind": "text", "text": "" });
    app.send_message(&alice, &conversation, empty).await.expect_bad_request();
    let bogus = json!({ "client_msg_id": "e-2", "kind": "bogus", "text": "x" });
    app.send_message(&alice, &conversation, bogus).await.expect_bad_request();
    let no_key = json!({ "kind": "text", "text": "x" });
    app.send_message(&alice, &conversation, no_key).await.expect_error_in(400, &["validation_failed", "invalid_json"]);

    let history = app.full_history(&bob, &conversation).await;
    let texts: Vec<usize> = history.iter().filter_map(|e| e.text.as_ref()).map(String::len).collect();
    assert_eq!(texts, [16 * 1024], "only the message at the limit was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_limit_follows_the_configuration() {
    let app: TestApp = spawn_app_with(|config| config.limits.max_text_bytes = 100).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let conversation = app.make_friends(&alice, &bob).await;
    app.send_text(&alice, &conversation, &"b".repeat(100)).await;
    app.try_send_text(&alice, &conversation, &"b".repeat(101)).await.expect_error(413, "text_too_long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_is_relayed_to_the_other_member() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let conversation = app.make_friends(&alice, &bob).await;
    let mut alice_ws = app.connect_ws(&alice).await;
    let mut bob_ws = app.connect_ws(&bob).await;

    alice_ws.send_json(json!({ "type": "typing", "conversation_id": conversation })).await;
    let typing = bob_ws.next_of_type("typing").await;
    assert_eq!(typing["conversation_id"], conversation.as_str());
    assert_eq!(typing["user_id"], alice.id.as_str());
}
