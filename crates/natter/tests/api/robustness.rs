//! Bad input and the operational endpoints: malformed and oversized bodies, unknown ids, missing
//! tokens, malformed WebSocket frames, health, readiness, metrics and the OpenAPI document.

use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::{WsClient, spawn_app, spawn_app_with, unknown_id};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_invalid_json() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let conversation = app.make_friends(&alice, &bob).await;

    let raw = |method: Method, path: &str, body: &'static str| {
        app.api(method, path).header(CONTENT_TYPE, "application/json").body(body)
    };
    app.send(raw(Method::POST, "/auth/register", "{not json")).await.expect_error(400, "invalid_json");
    let send =
        raw(Method::POST, &format!("/conversations/{conversation}/messages"), "[1, 2").bearer_auth(&alice.access_token);
    app.send(send).await.expect_error(400, "invalid_json");
    let wrong_types = json!({ "username": 5, "password": ["x"] });
    app.post_anonymous("/auth/register", wrong_types)
        .await
        .expect_error_in(400, &["invalid_json", "validation_failed"]);
    let history = app.full_history(&bob, &conversation).await;
    assert!(history.iter().all(|entry| entry.kind != "text"), "nothing was stored: {history:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused() {
    let app = spawn_app_with(|config| config.limits.max_body_bytes = 2048).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let conversation = app.make_friends(&alice, &bob).await;

    let big = json!({ "username": "carol", "password": "p".repeat(4096) });
    app.post_anonymous("/auth/register", big).await.expect_error(413, "payload_too_large");
    app.try_send_text(&alice, &conversation, &"t".repeat(4096)).await.expect_error(413, "payload_too_large");
    app.send_text(&alice, &conversation, &"t".repeat(1024)).await;
    let history = app.full_history(&bob, &conversation).await;
    let lengths: Vec<usize> = history.iter().filter_map(|e| e.text.as_ref()).map(String::len).collect();
    assert_eq!(lengths, [1024], "only the message under the limit was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_and_routes_are_not_found() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let id = unknown_id();
    for (method, path) in [
        (Method::GET, format!("/conversations/{id}")),
        (Method::GET, format!("/conversations/{id}/messages?after_seq=0")),
        (Method::GET, format!("/conversations/{id}/members")),
        (Method::POST, format!("/friend-requests/{id}/accept")),
        (Method::POST, format!("/friend-requests/{id}/reject")),
        (Method::POST, format!("/friend-requests/{id}/cancel")),
        (Method::DELETE, format!("/auth/sessions/{id}")),
        (Method::GET, "/no-such-route".to_owned()),
    ] {
        app.call(method, &path, Some(&alice.access_token), None).await.expect_error(404, "not_found");
    }
    app.get(&alice, &format!("/users/{id}")).await.expect_error_in(404, &["user_not_found", "not_found"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_tokens_are_unauthorized_everywhere() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let id = unknown_id();
    for (method, path, body) in [
        (Method::GET, "/users/me".to_owned(), None),
        (Method::GET, "/users?query=a".to_owned(), None),
        (Method::GET, "/conversations".to_owned(), None),
        (Method::GET, "/friends".to_owned(), None),
        (Method::GET, "/auth/sessions".to_owned(), None),
        (Method::POST, "/friend-requests".to_owned(), Some(json!({ "user_id": alice.id }))),
        (
            Method::POST,
            format!("/conversations/{id}/messages"),
            Some(json!({ "client_msg_id": "a", "kind": "text", "text": "x" })),
        ),
    ] {
        app.call(method.clone(), &path, None, body.as_ref()).await.expect_error(401, "unauthorized");
        app.call(method, &path, Some("not.a.jwt"), body.as_ref()).await.expect_error(401, "unauthorized");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_needs_a_valid_token() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    for url in [app.ws_url(), format!("{}?token=garbage", app.ws_url())] {
        match WsClient::try_connect(url.as_str()).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), 401, "{url}");
            }
            Err(other) => panic!("{url}: expected an HTTP 401 refusal, got {other}"),
            Ok(_) => panic!("{url}: the upgrade succeeded without a valid token"),
        }
    }

    let mut request = app.ws_url().into_client_request().expect("a WebSocket request");
    let bearer = format!("Bearer {}", alice.access_token);
    request.headers_mut().insert(AUTHORIZATION, bearer.parse().expect("a header value"));
    let mut ws = WsClient::connect(request).await;
    ws.expect_hello(&alice).await;
    ws.ping("after-header-auth").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_get_error_frames_and_the_socket_survives() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let conversation = app.make_friends(&alice, &bob).await;
    let mut ws = app.connect_ws(&alice).await;

    for bad in [
        "this is not json".to_owned(),
        json!({ "type": "launch_missiles" }).to_string(),
        json!({ "type": "send", "id": "incomplete" }).to_string(),
        json!(["an", "array"]).to_string(),
    ] {
        ws.send_text(&bad).await;
        let error = ws.next_of_type("error").await;
        let code = error["code"].as_str().unwrap_or_default();
        assert!(!code.is_empty(), "the error frame for {bad} has a code: {error}");
        ws.ping(&format!("alive-after-{}", bad.len())).await;
    }

    let reply = ws.send_message(&conversation, "after-errors", "still works").await;
    assert_eq!(reply["type"], "sent", "a valid send after errors works: {reply}");
    assert_eq!(reply["message"]["text"], "still works");
}

/// Sum of the samples of one metric in a Prometheus text exposition.
fn metric_total(exposition: &str, name: &str) -> Option<f64> {
    let samples: Vec<f64> = exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.strip_prefix(name).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' ')))
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
        .collect();
    (!samples.is_empty()).then(|| samples.iter().sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_endpoints_answer() {
    let app = spawn_app().await;
    app.get_root("/healthz").await.expect_status(200);
    app.get_root("/readyz").await.expect_status(200);

    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let conversation = app.make_friends(&alice, &bob).await;
    app.send_text(&alice, &conversation, "one").await;
    app.send_text(&bob, &conversation, "two").await;

    let metrics = app.get_root("/metrics").await;
    metrics.expect_status(200);
    assert!(
        metrics
            .content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("text/plain") || t.starts_with("application/openmetrics-text")),
        "Prometheus text format: {:?}",
        metrics.content_type
    );
    assert_eq!(
        metric_total(&metrics.text, "natter_messages_sent_total"),
        Some(2.0),
        "natter_messages_sent_total counts this server's two sends:\n{}",
        metrics.text
    );

    let openapi = app.get_root("/openapi.json").await;
    openapi.expect_status(200);
    let document: &Value = &openapi.body;
    assert!(document["openapi"].as_str().is_some_and(|v| v.starts_with('3')), "an OpenAPI 3 document");
    let paths = document["paths"].as_object().expect("the document has paths");
    for suffix in ["/auth/register", "/friend-requests", "/users/me"] {
        assert!(paths.keys().any(|path| path.ends_with(suffix)), "paths include …{suffix}: {:?}", paths.keys());
    }
    assert!(
        paths.keys().any(|path| path.contains("/conversations/") && path.ends_with("/messages")),
        "paths include the messages endpoint: {:?}",
        paths.keys()
    );
}
