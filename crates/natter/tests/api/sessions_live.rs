//! A WebSocket lives only as long as its session and its access token: logout, a revoked
//! device, a password change and token expiry close it with a code the client can act on.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::common::{TestApp, TestUser, WsClient, spawn_app, spawn_app_with};

const SESSION_ENDED: u16 = 4001;
const TOKEN_EXPIRED: u16 = 4002;
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// Alice on two devices (`s1`, `s2`), friends with Bob, `s2` holding an open socket.
async fn two_devices(app: &TestApp) -> (TestUser, TestUser, TestUser, String, WsClient) {
    let s1 = app.register("alice").await;
    let s2 = app.login(&s1).await;
    let bob = app.register("bob").await;
    let conversation = app.make_friends(&s1, &bob).await;
    let mut socket = app.connect_ws(&s2).await;
    socket.ping("warm").await;
    (s1, s2, bob, conversation, socket)
}

#[tokio::test]
async fn logout_closes_the_sessions_socket() {
    let app = spawn_app().await;
    let (_s1, s2, _bob, _conversation, mut socket) = two_devices(&app).await;
    app.post_empty(&s2, "/auth/logout").await.expect_status(204);
    let (code, reason) = socket.expect_close(CLOSE_WITHIN).await;
    assert_eq!(code, SESSION_ENDED, "closed as session ended: {reason}");
}

#[tokio::test]
async fn revoking_a_device_closes_only_its_socket() {
    let app = spawn_app().await;
    let (s1, s2, bob, conversation, mut socket) = two_devices(&app).await;
    let mut s1_socket = app.connect_ws(&s1).await;
    app.delete(&s1, &format!("/auth/sessions/{}", s2.session_id)).await.expect_status(204);
    let (code, _) = socket.expect_close(CLOSE_WITHIN).await;
    assert_eq!(code, SESSION_ENDED);
    // The revoking device's own socket still gets messages.
    app.send_text(&bob, &conversation, "still here?").await;
    assert_eq!(s1_socket.next_message().await.text.as_deref(), Some("still here?"));
}

#[tokio::test]
async fn a_password_change_closes_every_other_sessions_socket() {
    let app = spawn_app().await;
    let (s1, s2, _bob, _conversation, mut socket) = two_devices(&app).await;
    let mut s1_socket = app.connect_ws(&s1).await;
    let change = json!({ "old_password": s1.password, "new_password": "another-horse-battery-8" });
    app.put(&s1, "/users/me/password", change).await.expect_success();
    let (code, _) = socket.expect_close(CLOSE_WITHIN).await;
    assert_eq!(code, SESSION_ENDED);
    // The session that changed the password keeps its socket.
    s1_socket.ping("after-change").await;
    // The old session's token is refused for a new socket too.
    let refused = WsClient::try_connect(format!("{}?token={}", app.ws_url(), s2.access_token)).await;
    assert!(refused.is_err(), "a revoked session cannot open a socket");
}

#[tokio::test]
async fn a_reused_refresh_token_closes_the_sessions_socket() {
    let app = spawn_app().await;
    let (_s1, s2, _bob, _conversation, mut socket) = two_devices(&app).await;
    let body = json!({ "refresh_token": s2.refresh_token });
    app.post_anonymous("/auth/refresh", body.clone()).await.expect_status(200);
    app.post_anonymous("/auth/refresh", body).await.expect_error(401, "refresh_token_reused");
    let (code, _) = socket.expect_close(CLOSE_WITHIN).await;
    assert_eq!(code, SESSION_ENDED);
}

#[tokio::test]
async fn a_closed_sessions_socket_gets_no_more_messages_and_sends_nothing() {
    let app = spawn_app().await;
    let (s1, s2, bob, conversation, mut socket) = two_devices(&app).await;
    app.post_empty(&s2, "/auth/logout").await.expect_status(204);
    socket.expect_close(CLOSE_WITHIN).await;
    app.send_text(&bob, &conversation, "after logout").await;
    // What the revoked device might have sent never reached the log.
    let history = app.full_history(&s1, &conversation).await;
    assert!(history.iter().all(|m| m.sender_id == bob.id || m.kind == "system"), "{history:?}");
    let response = app.send(app.api(Method::GET, "/users/me").bearer_auth(&s2.access_token)).await;
    response.expect_error(401, "unauthorized");
}

#[tokio::test]
async fn a_socket_closes_when_its_access_token_expires() {
    let app = spawn_app_with(|config| config.auth.access_token_ttl_secs = 2).await;
    let alice = app.register("alice").await;
    let mut socket = app.connect_ws(&alice).await;
    let started = std::time::Instant::now();
    let (code, reason) = socket.expect_close(Duration::from_secs(10)).await;
    assert_eq!(code, TOKEN_EXPIRED, "closed as token expired: {reason}");
    assert!(started.elapsed() <= Duration::from_secs(3), "closed at expiry, took {:?}", started.elapsed());
}
