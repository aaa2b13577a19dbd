//! Friend requests, friendships, the direct conversation they create, and blocks.

use natter_proto::{AcceptFriendResponse, BlockList, FriendList, FriendRequestList, FriendRequestView};
use serde_json::{Value, json};

use crate::common::{Backend, TestApp, TestUser, on_both_backends, spawn_app, spawn_app_on, unknown_id};

on_both_backends!(request_and_accept_create_a_direct_conversation);

/// Ids of `user`'s pending requests in `direction` (`incoming` | `outgoing`).
async fn pending(app: &TestApp, user: &TestUser, direction: &str) -> Vec<String> {
    let list: FriendRequestList =
        app.get_query(user, "/friend-requests", &[("direction", direction)]).await.expect(200);
    for request in &list.requests {
        let own_side = if direction == "incoming" { &request.to_user } else { &request.from_user };
        assert_eq!(own_side.id, user.id, "{direction} lists only the caller's side: {request:?}");
    }
    list.requests.into_iter().filter(|r| r.status == "pending").map(|r| r.id).collect()
}

async fn friend_ids(app: &TestApp, user: &TestUser) -> Vec<String> {
    let list: FriendList = app.get(user, "/friends").await.expect(200);
    list.friends.into_iter().map(|friend| friend.user.id).collect()
}

async fn request_and_accept_create_a_direct_conversation(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let alice = app.register_with_nickname("alice", "Alice").await;
    let bob = app.register_with_nickname("bob", "Bob").await;
    let mut alice_ws = app.connect_ws(&alice).await;
    let mut bob_ws = app.connect_ws(&bob).await;

    let body = json!({ "user_id": bob.id, "message": "hi bob" });
    let request: FriendRequestView = app.post(&alice, "/friend-requests", body).await.expect(201);
    assert_eq!(request.status, "pending");
    assert_eq!((request.from_user.id.as_str(), request.to_user.id.as_str()), (alice.id.as_str(), bob.id.as_str()));
    assert_eq!(request.message, "hi bob");

    let pushed = bob_ws.next_of_type("friend_request").await;
    assert_eq!(pushed["request"]["id"], request.id.as_str(), "bob hears of the request live");
    assert_eq!(pushed["request"]["status"], "pending");

    assert_eq!(pending(&app, &bob, "incoming").await, [request.id.as_str()]);
    assert_eq!(pending(&app, &alice, "outgoing").await, [request.id.as_str()]);
    assert!(pending(&app, &alice, "incoming").await.is_empty());
    assert!(pending(&app, &bob, "outgoing").await.is_empty());

    let accepted: AcceptFriendResponse =
        app.post_empty(&bob, &format!("/friend-requests/{}/accept", request.id)).await.expect(200);
    assert_eq!(accepted.request.id, request.id);
    assert_eq!(accepted.request.status, "accepted");
    let conversation = accepted.conversation;
    assert_eq!(conversation.kind, "direct");
    assert_eq!(conversation.member_count, 2);
    assert_eq!(conversation.peer.as_ref().map(|peer| peer.id.as_str()), Some(alice.id.as_str()));

    // Alice already had the `pending` frame of her own request; wait for the `accepted` one.
    let accepted_frame = |f: &Value| f["type"] == "friend_request" && f["request"]["status"] == "accepted";
    let friend_frame = |f: &Value| f["type"] == "friend";
    let conversation_frame = |f: &Value| f["type"] == "conversation";
    let [request_frame, friend_frame, conversation_frame] =
        <[_; 3]>::try_from(alice_ws.expect_all(&[&accepted_frame, &friend_frame, &conversation_frame]).await)
            .expect("three frames");
    assert_eq!(request_frame["request"]["status"], "accepted", "alice hears of the acceptance");
    assert_eq!(friend_frame["user_id"], bob.id.as_str());
    assert_eq!(friend_frame["event"], "added");
    assert_eq!(conversation_frame["conversation"]["id"], conversation.id.as_str());
    let [friend_frame, conversation_frame] =
        <[_; 2]>::try_from(bob_ws.expect_types(&["friend", "conversation"]).await).expect("two frames");
    assert_eq!(friend_frame["user_id"], alice.id.as_str());
    assert_eq!(friend_frame["event"], "added");
    assert_eq!(conversation_frame["conversation"]["id"], conversation.id.as_str());

    let friends: FriendList = app.get(&alice, "/friends").await.expect(200);
    assert_eq!(friends.friends.len(), 1);
    assert_eq!(friends.friends[0].user.id, bob.id);
    assert_eq!(friends.friends[0].conversation_id, conversation.id);
    assert_eq!(friend_ids(&app, &bob).await, [alice.id.as_str()]);
    assert!(pending(&app, &bob, "incoming").await.is_empty(), "no longer pending");

    let listed = app.conversations(&alice).await;
    let direct = listed.iter().find(|c| c.id == conversation.id).expect("alice lists the conversation");
    assert_eq!(direct.kind, "direct");
    assert_eq!(direct.peer.as_ref().map(|peer| peer.id.as_str()), Some(bob.id.as_str()));

    let sent = app.send_text(&alice, &conversation.id, "hello bob").await;
    assert_eq!(bob_ws.next_message().await, sent, "bob receives the first message live");
    let history = app.full_history(&bob, &conversation.id).await;
    assert_eq!(history.last(), Some(&sent));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_self_and_unknown_requests_are_refused() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;

    let request = app.request_friend(&alice, &bob).await;
    app.post(&alice, "/friend-requests", json!({ "user_id": bob.id })).await.expect_error(409, "request_pending");
    app.post(&alice, "/friend-requests", json!({ "user_id": alice.id })).await.expect_any_client_error();
    app.post(&alice, "/friend-requests", json!({ "user_id": unknown_id() }))
        .await
        .expect_error_in(404, &["user_not_found", "not_found"]);
    assert_eq!(pending(&app, &alice, "outgoing").await, [request.id.as_str()]);

    app.post_empty(&bob, &format!("/friend-requests/{}/accept", request.id)).await.expect_status(200);
    for (from, to) in [(&alice, &bob), (&bob, &alice)] {
        app.post(from, "/friend-requests", json!({ "user_id": to.id })).await.expect_error(409, "already_friends");
    }
    app.post_empty(&bob, &format!("/friend-requests/{}/accept", unknown_id())).await.expect_error(404, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_request_makes_no_friendship() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let mut alice_ws = app.connect_ws(&alice).await;
    let request = app.request_friend(&alice, &bob).await;

    // Only the addressee decides.
    app.post_empty(&alice, &format!("/friend-requests/{}/accept", request.id)).await.expect_any_client_error();
    app.post_empty(&alice, &format!("/friend-requests/{}/reject", request.id)).await.expect_any_client_error();
    assert_eq!(pending(&app, &bob, "incoming").await, [request.id.as_str()]);

    app.post_empty(&bob, &format!("/friend-requests/{}/reject", request.id)).await.expect_success();
    let frames = alice_ws.frames_until(|f| f["type"] == "friend_request" && f["request"]["status"] == "rejected").await;
    assert_eq!(frames.last().map(|f| f["request"]["id"].clone()), Some(json!(request.id)));

    assert!(pending(&app, &bob, "incoming").await.is_empty());
    assert!(friend_ids(&app, &alice).await.is_empty());
    assert!(friend_ids(&app, &bob).await.is_empty());
    app.post_empty(&bob, &format!("/friend-requests/{}/accept", request.id)).await.expect_any_client_error();
    assert!(friend_ids(&app, &bob).await.is_empty(), "a rejected request cannot be accepted");

    // Asking again is allowed.
    let again = app.request_friend(&alice, &bob).await;
    assert_ne!(again.id, request.id);
    assert_eq!(pending(&app, &bob, "incoming").await, [again.id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_can_cancel_a_request() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let mut bob_ws = app.connect_ws(&bob).await;
    let request = app.request_friend(&alice, &bob).await;
    bob_ws.next_of_type("friend_request").await;

    app.post_empty(&bob, &format!("/friend-requests/{}/cancel", request.id)).await.expect_any_client_error();
    app.post_empty(&alice, &format!("/friend-requests/{}/cancel", request.id)).await.expect_success();
    let frame = bob_ws.next_of_type("friend_request").await;
    assert_eq!(frame["request"]["status"], "cancelled");

    assert!(pending(&app, &bob, "incoming").await.is_empty());
    assert!(pending(&app, &alice, "outgoing").await.is_empty());
    app.post_empty(&bob, &format!("/friend-requests/{}/accept", request.id)).await.expect_any_client_error();
    assert!(friend_ids(&app, &bob).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_friend_ends_it_and_refriending_revives_the_conversation() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let conversation = app.make_friends(&alice, &bob).await;
    let before = app.send_text(&alice, &conversation, "before the quarrel").await;
    let mut bob_ws = app.connect_ws(&bob).await;

    app.delete(&alice, &format!("/friends/{}", bob.id)).await.expect_success();
    let frame = bob_ws.next_of_type("friend").await;
    assert_eq!((frame["user_id"].as_str(), frame["event"].as_str()), (Some(alice.id.as_str()), Some("removed")));
    assert!(friend_ids(&app, &alice).await.is_empty());
    assert!(friend_ids(&app, &bob).await.is_empty());
    app.try_send_text(&alice, &conversation, "still there?").await.expect_client_error("not_friends");
    app.delete(&alice, &format!("/friends/{}", bob.id)).await.expect_any_client_error();

    let request = app.request_friend(&bob, &alice).await;
    let accepted: AcceptFriendResponse =
        app.post_empty(&alice, &format!("/friend-requests/{}/accept", request.id)).await.expect(200);
    assert_eq!(accepted.conversation.id, conversation, "the pair's conversation is revived");
    let history = app.full_history(&bob, &conversation).await;
    assert!(history.iter().any(|entry| entry.id == before.id), "old history is kept");
    app.send_text(&alice, &conversation, "friends again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_stops_requests_and_messages() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let conversation = app.make_friends(&alice, &bob).await;
    app.send_text(&alice, &conversation, "hi").await;

    app.put_empty(&bob, &format!("/blocks/{}", alice.id)).await.expect_success();
    app.put_empty(&bob, &format!("/blocks/{}", carol.id)).await.expect_success();
    let blocks: BlockList = app.get(&bob, "/blocks").await.expect(200);
    let mut blocked: Vec<&str> = blocks.blocked.iter().map(|user| user.id.as_str()).collect();
    blocked.sort();
    let mut expected = [alice.id.as_str(), carol.id.as_str()];
    expected.sort();
    assert_eq!(blocked, expected);

    app.try_send_text(&alice, &conversation, "are you there?").await.expect_error(403, "blocked");
    app.post(&carol, "/friend-requests", json!({ "user_id": bob.id })).await.expect_error(403, "blocked");
    assert!(pending(&app, &bob, "incoming").await.is_empty());
    let history = app.full_history(&bob, &conversation).await;
    assert!(history.iter().all(|entry| entry.text.as_deref() != Some("are you there?")));

    app.delete(&bob, &format!("/blocks/{}", alice.id)).await.expect_success();
    let blocks: BlockList = app.get(&bob, "/blocks").await.expect(200);
    let blocked: Vec<&str> = blocks.blocked.iter().map(|user| user.id.as_str()).collect();
    assert_eq!(blocked, [carol.id.as_str()]);
    // Whether a block also ended the friendship is the server's choice; either way the pair can
    // talk again once unblocked (re-befriending first if it did).
    if friend_ids(&app, &alice).await.is_empty() {
        let again = app.make_friends(&alice, &bob).await;
        assert_eq!(again, conversation, "the pair's conversation is revived");
    }
    app.send_text(&alice, &conversation, "unblocked").await;
    // Bob's block on carol still holds.
    app.post(&carol, "/friend-requests", json!({ "user_id": bob.id })).await.expect_error(403, "blocked");
}
