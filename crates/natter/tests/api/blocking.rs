//! A block silences a direct chat both ways: no sends (tested with friends), no edits, no
//! reactions, no typing and no read receipts reach the other side.

use serde_json::json;

use crate::common::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_stops_edits_reactions_typing_and_read_receipts_both_ways() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let conversation = app.make_friends(&alice, &bob).await;
    let from_alice = app.send_text(&alice, &conversation, "before the block").await;
    let from_bob = app.send_text(&bob, &conversation, "me too").await;
    let mut alice_ws = app.connect_ws(&alice).await;
    let mut bob_ws = app.connect_ws(&bob).await;

    app.put_empty(&bob, &format!("/blocks/{}", alice.id)).await.expect_success();

    let messages = format!("/conversations/{conversation}/messages");
    // The blocked side and the blocking side alike.
    app.patch(&alice, &format!("{messages}/{}", from_alice.seq), json!({ "text": "edited" }))
        .await
        .expect_error(403, "blocked");
    app.patch(&bob, &format!("{messages}/{}", from_bob.seq), json!({ "text": "edited" }))
        .await
        .expect_error(403, "blocked");
    app.put_empty(&alice, &format!("{messages}/{}/reactions/👍", from_bob.seq)).await.expect_error(403, "blocked");
    app.put_empty(&bob, &format!("{messages}/{}/reactions/👍", from_alice.seq)).await.expect_error(403, "blocked");
    alice_ws.send_json(json!({ "type": "typing", "conversation_id": conversation })).await;
    bob_ws.send_json(json!({ "type": "typing", "conversation_id": conversation })).await;
    // A socket handles its frames in order: after the pong, its typing was handled.
    alice_ws.ping("a").await;
    bob_ws.ping("b").await;
    // Each marks the chat read: their own marker moves, the other hears nothing.
    app.post(&alice, &format!("/conversations/{conversation}/read"), json!({ "seq": from_bob.seq }))
        .await
        .expect_success();
    app.post(&bob, &format!("/conversations/{conversation}/read"), json!({ "seq": from_bob.seq }))
        .await
        .expect_success();

    // Sentinels: each side's own read marker reaches its own socket; nothing from the other side
    // may arrive before it.
    let alice_frames = alice_ws.frames_until(|f| f["type"] == "read" && f["user_id"] == alice.id.as_str()).await;
    let bob_frames = bob_ws.frames_until(|f| f["type"] == "read" && f["user_id"] == bob.id.as_str()).await;
    for (frames, other) in [(&alice_frames, &bob.id), (&bob_frames, &alice.id)] {
        let leaked: Vec<_> = frames
            .iter()
            .filter(|f| f["user_id"] == other.as_str() || f["message"]["sender_id"] == other.as_str())
            .collect();
        assert!(leaked.is_empty(), "nothing of the other side arrives after a block: {leaked:?}");
    }
    // Nothing was appended to the log by the refused edits and reactions.
    let history = app.full_history(&alice, &conversation).await;
    assert!(history.iter().all(|m| m.kind != "edit" && m.kind != "reaction"), "{history:?}");
    // Withdrawing one's own message stays possible.
    app.delete(&alice, &format!("{messages}/{}", from_alice.seq)).await.expect_success();
}
