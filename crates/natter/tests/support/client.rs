//! A client of real `natter serve` processes, shared by the cluster test crates (each uses a
//! part of it): register, HTTP calls that must succeed, WebSockets and their frames.

#![allow(dead_code, reason = "each test crate that includes this module uses a part of it")]

use std::time::Duration;

use futures_util::StreamExt;
use natter_proto::AuthResponse;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a frame may take to arrive.
pub(crate) const FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// The password every test account gets.
pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// A node the client can reach: `http://127.0.0.1:PORT`.
pub(crate) trait Base {
    fn base_url(&self) -> &str;
}

pub(crate) async fn register(http: &reqwest::Client, node: &impl Base, username: &str) -> AuthResponse {
    let body = json!({ "username": username, "password": PASSWORD, "nickname": username });
    let response =
        http.post(format!("{}/api/v1/auth/register", node.base_url())).json(&body).send().await.expect("register");
    assert_eq!(response.status(), StatusCode::CREATED, "register {username}");
    response.json().await.expect("an auth response")
}

pub(crate) async fn post<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    node: &impl Base,
    user: &AuthResponse,
    path: &str,
    body: Value,
) -> T {
    let url = format!("{}/api/v1{path}", node.base_url());
    let response = http.post(&url).bearer_auth(&user.access_token).json(&body).send().await.expect("POST");
    decode(response, &url).await
}

pub(crate) async fn get<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    node: &impl Base,
    user: &AuthResponse,
    path: &str,
) -> T {
    let url = format!("{}/api/v1{path}", node.base_url());
    let response = http.get(&url).bearer_auth(&user.access_token).send().await.expect("GET");
    decode(response, &url).await
}

/// The body of a successful answer, or a panic naming the URL, status and body.
pub(crate) async fn decode<T: serde::de::DeserializeOwned>(response: reqwest::Response, url: &str) -> T {
    let status = response.status();
    let body = response.text().await.expect("a response body");
    assert!(status.is_success(), "{url}: {status} {body}");
    serde_json::from_str(&body).unwrap_or_else(|error| panic!("{url}: unexpected body ({error}): {body}"))
}

/// A socket of `user` on `node`, past its `hello`.
pub(crate) async fn connect_ws(node: &impl Base, user: &AuthResponse) -> Socket {
    let url = format!("{}/api/v1/ws?token={}", node.base_url().replacen("http", "ws", 1), user.access_token);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("WebSocket upgrade");
    let hello = next_frame(&mut socket, "hello", |_| true).await;
    assert_eq!(hello["user_id"], user.user.id.as_str());
    socket
}

/// The next frame of type `kind` that `matches`, skipping any other (presence, typing, …).
pub(crate) async fn next_frame(socket: &mut Socket, kind: &str, matches: impl Fn(&Value) -> bool) -> Value {
    next_frame_within(socket, kind, FRAME_TIMEOUT, matches).await
}

/// The next frame of type `kind` that `matches` within `timeout`, skipping any other.
pub(crate) async fn next_frame_within(
    socket: &mut Socket,
    kind: &str,
    timeout: Duration,
    matches: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let text = match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => panic!("no `{kind}` frame within {timeout:?}"),
            Ok(None) => panic!("socket closed before a `{kind}` frame"),
            Ok(Some(Err(error))) => panic!("WebSocket error before a `{kind}` frame: {error}"),
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(_))) => continue,
        };
        let frame: Value = serde_json::from_str(text.as_str()).expect("a JSON frame");
        if frame["type"] == kind && matches(&frame) {
            return frame;
        }
    }
}

/// A gateway's bus counters: events it received, and those with a recipient socket of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BusCounts {
    pub(crate) received: u64,
    pub(crate) needed: u64,
}

pub(crate) async fn metrics(http: &reqwest::Client, node: &impl Base) -> BusCounts {
    let text = metrics_text(http, node).await;
    BusCounts {
        received: metric_in(&text, "natter_bus_events_received_total") as u64,
        needed: metric_in(&text, "natter_bus_events_needed_total") as u64,
    }
}

/// One unlabelled metric of `node`'s `/metrics`.
pub(crate) async fn metric(http: &reqwest::Client, node: &impl Base, name: &str) -> f64 {
    metric_in(&metrics_text(http, node).await, name)
}

async fn metrics_text(http: &reqwest::Client, node: &impl Base) -> String {
    http.get(format!("{}/metrics", node.base_url())).send().await.expect("metrics").text().await.expect("text")
}

fn metric_in(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("{name} is not in the metrics"))
}
