//! Accounts and device sessions: register, login, refresh rotation, sessions, logout, password
//! change, token checks and login throttling.

use natter_proto::{AuthResponse, SessionList, UserView};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{PASSWORD, TestApp, TestUser, spawn_app, spawn_app_with, unknown_id};

async fn refresh(app: &TestApp, refresh_token: &str) -> crate::common::Resp {
    app.post_anonymous("/auth/refresh", json!({ "refresh_token": refresh_token })).await
}

async fn session_ids(app: &TestApp, user: &TestUser) -> Vec<String> {
    let list: SessionList = app.get(user, "/auth/sessions").await.expect(200);
    let mut ids: Vec<String> = list.sessions.into_iter().map(|session| session.id).collect();
    ids.sort();
    ids
}

fn sorted(ids: &[&str]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|id| (*id).to_owned()).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_returns_tokens_and_profile() {
    let app = spawn_app().await;
    let body = json!({ "username": "alice", "password": PASSWORD, "nickname": "Alice L." });
    let auth: AuthResponse = app.post_anonymous("/auth/register", body).await.expect(201);

    assert_eq!(auth.user.username, "alice");
    assert_eq!(auth.user.nickname, "Alice L.");
    assert_eq!(auth.user.role, "user");
    assert!(!auth.user.id.is_empty());
    assert!(!auth.access_token.is_empty() && !auth.refresh_token.is_empty());
    assert_ne!(auth.access_token, auth.refresh_token);
    assert!(auth.expires_in > 0, "expires_in is the access token lifetime");
    assert!(!auth.session_id.is_empty());

    let me: UserView = app.call(Method::GET, "/users/me", Some(&auth.access_token), None).await.expect(200);
    assert_eq!(me, auth.user, "GET /users/me returns the registered profile");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usernames_are_unique_case_insensitively() {
    let app = spawn_app().await;
    app.register("alice").await;
    for taken in ["alice", "ALICE", "Alice"] {
        let body = json!({ "username": taken, "password": PASSWORD });
        app.post_anonymous("/auth/register", body).await.expect_error(409, "username_taken");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn username_and_password_rules_are_enforced() {
    let app = spawn_app().await;
    let too_long = "x".repeat(200);
    for username in ["", "a b", "bad/name", "new\nline", too_long.as_str()] {
        let body = json!({ "username": username, "password": PASSWORD });
        app.post_anonymous("/auth/register", body).await.expect_error(400, "invalid_username");
    }
    for password in ["", "abc"] {
        let body = json!({ "username": "bob", "password": password });
        app.post_anonymous("/auth/register", body).await.expect_error(400, "weak_password");
    }
    // None of the refused attempts created the account.
    app.register("bob").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_opens_a_new_session_and_refuses_bad_credentials() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;

    let body = json!({ "username": "alice", "password": PASSWORD, "device_name": "laptop" });
    let auth: AuthResponse = app.post_anonymous("/auth/login", body).await.expect(200);
    assert_eq!(auth.user.id, alice.id);
    assert_ne!(auth.session_id, alice.session_id, "each login is its own device session");
    assert_ne!(auth.refresh_token, alice.refresh_token);

    let wrong = json!({ "username": "alice", "password": "not-the-password-1" });
    app.post_anonymous("/auth/login", wrong).await.expect_error(401, "invalid_credentials");
    // Unknown accounts look exactly like wrong passwords.
    let unknown = json!({ "username": "nobody", "password": PASSWORD });
    app.post_anonymous("/auth/login", unknown).await.expect_error(401, "invalid_credentials");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rotates_and_reuse_revokes_the_session() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let other_device = app.login(&alice).await;

    let second: AuthResponse = refresh(&app, &alice.refresh_token).await.expect(200);
    assert_ne!(second.refresh_token, alice.refresh_token, "the refresh token rotates");
    assert_eq!(second.session_id, alice.session_id, "rotation keeps the session");
    assert_eq!(second.user.id, alice.id);
    let rotated = TestUser::from_auth(second, PASSWORD);
    app.get(&rotated, "/users/me").await.expect_status(200);

    let third: AuthResponse = refresh(&app, &rotated.refresh_token).await.expect(200);
    assert_ne!(third.refresh_token, rotated.refresh_token);

    // Replaying a used token is refused and ends the whole session, newest token included.
    refresh(&app, &alice.refresh_token).await.expect_error(401, "refresh_token_reused");
    refresh(&app, &third.refresh_token).await.expect_error_in(401, &["invalid_refresh_token", "refresh_token_reused"]);
    assert_eq!(
        session_ids(&app, &other_device).await,
        sorted(&[&other_device.session_id]),
        "the revoked session is gone from the list"
    );

    refresh(&app, "not-a-refresh-token").await.expect_error(401, "invalid_refresh_token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_listed_and_revocable() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let laptop = app.login(&alice).await;
    let body = json!({ "username": "alice", "password": PASSWORD, "device_name": "phone" });
    let phone = TestUser::from_auth(app.post_anonymous("/auth/login", body).await.expect(200), PASSWORD);

    let list: SessionList = app.get(&alice, "/auth/sessions").await.expect(200);
    assert_eq!(list.sessions.len(), 3, "one session per login: {list:?}");
    let current: Vec<&str> = list.sessions.iter().filter(|s| s.current).map(|s| s.id.as_str()).collect();
    assert_eq!(current, [alice.session_id.as_str()], "only the asking session is current");
    let phone_view = list.sessions.iter().find(|s| s.id == phone.session_id);
    assert_eq!(phone_view.and_then(|s| s.device_name.as_deref()), Some("phone"));

    app.delete(&alice, &format!("/auth/sessions/{}", laptop.session_id)).await.expect_success();
    assert_eq!(session_ids(&app, &alice).await, sorted(&[&alice.session_id, &phone.session_id]));
    refresh(&app, &laptop.refresh_token).await.expect_error_in(401, &["invalid_refresh_token", "refresh_token_reused"]);

    app.delete(&alice, &format!("/auth/sessions/{}", unknown_id())).await.expect_error(404, "not_found");
    // Another account cannot see or end alice's sessions.
    let mallory = app.register("mallory").await;
    app.delete(&mallory, &format!("/auth/sessions/{}", phone.session_id)).await.expect_error(404, "not_found");
    assert_eq!(session_ids(&app, &mallory).await, sorted(&[&mallory.session_id]));
    assert!(session_ids(&app, &alice).await.contains(&phone.session_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_a_session() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let laptop = app.login(&alice).await;

    let body = json!({ "refresh_token": laptop.refresh_token });
    app.post(&laptop, "/auth/logout", body).await.expect_success();
    refresh(&app, &laptop.refresh_token).await.expect_error_in(401, &["invalid_refresh_token", "refresh_token_reused"]);
    assert_eq!(session_ids(&app, &alice).await, sorted(&[&alice.session_id]));

    // Without a refresh token, the session of the access token ends.
    app.post(&alice, "/auth/logout", json!({})).await.expect_success();
    refresh(&app, &alice.refresh_token).await.expect_error_in(401, &["invalid_refresh_token", "refresh_token_reused"]);
    let fresh = app.login(&alice).await;
    assert_eq!(session_ids(&app, &fresh).await, sorted(&[&fresh.session_id]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_needs_the_old_password() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let new_password = "a-new-password-42";

    let wrong_old = json!({ "old_password": "not-the-password-1", "new_password": new_password });
    app.put(&alice, "/users/me/password", wrong_old).await.expect_client_error("invalid_credentials");
    let weak = json!({ "old_password": PASSWORD, "new_password": "abc" });
    app.put(&alice, "/users/me/password", weak).await.expect_error(400, "weak_password");

    let good = json!({ "old_password": PASSWORD, "new_password": new_password });
    app.put(&alice, "/users/me/password", good).await.expect_success();

    let old = json!({ "username": "alice", "password": PASSWORD });
    app.post_anonymous("/auth/login", old).await.expect_error(401, "invalid_credentials");
    let new = json!({ "username": "alice", "password": new_password });
    let auth: AuthResponse = app.post_anonymous("/auth/login", new).await.expect(200);
    assert_eq!(auth.user.id, alice.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_unauthorized() {
    let app = spawn_app().await;
    let other_server = spawn_app().await;
    let stranger = other_server.register("alice").await;

    app.call(Method::GET, "/users/me", None, None).await.expect_error(401, "unauthorized");
    app.call(Method::GET, "/users/me", Some("garbage"), None).await.expect_error(401, "unauthorized");
    // Signed by another server's key.
    app.call(Method::GET, "/users/me", Some(&stranger.access_token), None).await.expect_error(401, "unauthorized");
    let basic = app.api(Method::GET, "/users/me").basic_auth("alice", Some(PASSWORD));
    app.send(basic).await.expect_error(401, "unauthorized");
    // A refresh token is not an access token.
    app.call(Method::GET, "/users/me", Some(&stranger.refresh_token), None).await.expect_error(401, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_access_token_is_unauthorized() {
    const SECRET: &str = "e2e-test-secret-that-is-long-enough-for-hmac-sha256-0123456789";
    let app = spawn_app_with(|config| config.auth.jwt_secret = SECRET.into()).await;
    let alice = app.register("alice").await;

    let header = jsonwebtoken::decode_header(&alice.access_token).expect("a JWT header");
    let claims: Value = jsonwebtoken::dangerous::insecure_decode_claims(&alice.access_token).expect("JWT claims");
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    let sign = |claims: &Value| jsonwebtoken::encode(&header, claims, &key).expect("sign a JWT");

    // Re-signing the claims unchanged must be accepted, or the next check would prove nothing.
    let same = sign(&claims);
    app.call(Method::GET, "/users/me", Some(&same), None).await.expect_status(200);

    let now = jsonwebtoken::get_current_timestamp() as i64;
    let mut expired = claims.clone();
    let exp = expired.get_mut("exp").expect("access tokens carry exp");
    *exp = json!(now - 3600);
    if let Some(iat) = expired.get_mut("iat") {
        *iat = json!(now - 7200);
    }
    if let Some(nbf) = expired.get_mut("nbf") {
        *nbf = json!(now - 7200);
    }
    app.call(Method::GET, "/users/me", Some(&sign(&expired)), None).await.expect_error(401, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_login_failures_are_throttled() {
    let app = spawn_app_with(|config| {
        config.auth.login_max_failures = 3;
        config.auth.login_window_secs = 600;
    })
    .await;
    app.register("alice").await;
    let wrong = json!({ "username": "alice", "password": "not-the-password-1" });
    for _ in 0..3 {
        app.post_anonymous("/auth/login", wrong.clone()).await.expect_error(401, "invalid_credentials");
    }
    app.post_anonymous("/auth/login", wrong).await.expect_error(429, "too_many_attempts");
    // Even the right password waits out the window: otherwise guessing could go on.
    let right = json!({ "username": "alice", "password": PASSWORD });
    app.post_anonymous("/auth/login", right).await.expect_error(429, "too_many_attempts");
}
