//! Runs the rows against the server: builds each request from the world, compares the answer
//! with the expectation (and, where the expectation is "like an unknown id", with the answer to
//! the same request naming an unknown id).

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use reqwest::header::AUTHORIZATION;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::case::{Body, Case, Expect, Kind, Row, Subject, Transport};
use super::table::{Frame, OPS, frame_cases};
use super::world::{BadToken, Who, World};
use crate::common::{Resp, TestApp, WsClient, client_msg_id, png, unknown_id};

/// One case's result.
pub(super) struct Outcome {
    pub(super) kind: Kind,
    pub(super) what: String,
    /// `None`: as expected.
    pub(super) failure: Option<String>,
}

pub(super) async fn run_row(app: &TestApp, world: &World, row: &Row) -> Vec<Outcome> {
    if row.transport == Transport::WebSocket {
        return run_websocket(app, world, row).await;
    }
    let operation = format!("{} {}", row.method, row.path);
    let mut outcomes = Vec::new();
    for bad in BadToken::ALL {
        let answer = send(app, world, row, None, world.bad_token(bad), false).await;
        let (kind, expect) = match row.public {
            Some(status) => (Kind::Public, Expect::Status(status)),
            None => (Kind::BadToken, Expect::Error(401, "unauthorized")),
        };
        let failure = check(&expect, &answer, None);
        outcomes.push(Outcome { kind, what: format!("{operation}: {}", bad.label()), failure });
    }
    for case in &row.cases {
        let token = row.public.is_none().then(|| world.user(case.who).access_token.as_str());
        let answer = send(app, world, row, Some(case), token, false).await;
        let unknown = match case.expect {
            Expect::LikeUnknown(..) => Some(send(app, world, row, Some(case), token, true).await),
            _ => None,
        };
        let failure = check(&case.expect, &answer, unknown.as_ref());
        outcomes.push(Outcome { kind: case.kind, what: format!("{operation}: {}", case.describe()), failure });
    }
    outcomes
}

/// The root endpoints, with every bad credential: each answers 200.
pub(super) async fn run_ops(app: &TestApp, world: &World) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for path in OPS {
        for bad in BadToken::ALL {
            let mut request = app.http.get(app.root_url(path));
            if let Some(token) = world.bad_token(bad) {
                request = request.bearer_auth(token);
            }
            let answer = app.send(request).await;
            let failure = check(&Expect::Status(200), &answer, None);
            outcomes.push(Outcome { kind: Kind::Public, what: format!("GET {path}: {}", bad.label()), failure });
        }
    }
    outcomes
}

/// The request of `row` (with `case`'s parameters and body), its subject replaced by an unknown
/// id when `unknown_subject`.
async fn send(
    app: &TestApp,
    world: &World,
    row: &Row,
    case: Option<&Case>,
    token: Option<&str>,
    unknown_subject: bool,
) -> Resp {
    let mut params: Vec<(&str, String)> =
        row.params_for(case).into_iter().map(|(name, value)| (name, world.resolve(value))).collect();
    let body = case.and_then(|case| case.body).unwrap_or(row.body);
    let mut json = match body {
        Body::Json(make) => Some(make(world)),
        Body::Empty | Body::Upload => None,
    };
    if unknown_subject {
        let subject = case.and_then(|case| case.subject).or(row.subject);
        match subject.expect("a case with an unknown-id expectation has a subject") {
            Subject::Param(name) => {
                let slot = params.iter_mut().find(|(n, _)| *n == name).expect("the subject is a parameter");
                slot.1 = unknown_value(name);
            }
            Subject::BodyField(field) => {
                let body = json.as_mut().expect("the subject is a body field");
                body[field] = Value::String(unknown_id());
            }
        }
    }
    let (path, query) = fill(row.path, &params);
    let mut request = app.http.request(row.method.clone(), app.root_url(&path)).query(&query);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(json) = &json {
        request = request.json(json);
    }
    if let Body::Upload = body {
        let part = Part::bytes(png(8, 8)).file_name("matrix.png").mime_str("image/png").expect("a MIME type");
        request = request.multipart(Form::new().part("file", part));
    }
    app.send(request).await
}

/// An id that names nothing: a fresh one, or for a message a `seq` far beyond any log's end.
fn unknown_value(param: &str) -> String {
    if param == "seq" { "999999".to_owned() } else { unknown_id() }
}

/// `template` with its `{name}`s filled from `params`; the parameters it does not name.
fn fill<'a>(template: &str, params: &'a [(&str, String)]) -> (String, Vec<(&'a str, &'a str)>) {
    let mut path = template.to_owned();
    let mut query = Vec::new();
    for (name, value) in params {
        let placeholder = format!("{{{name}}}");
        if path.contains(&placeholder) {
            path = path.replace(&placeholder, value);
        } else {
            query.push((*name, value.as_str()));
        }
    }
    assert!(!path.contains('{'), "{template}: every path parameter has a value: {path}");
    (path, query)
}

fn check(expect: &Expect, answer: &Resp, unknown: Option<&Resp>) -> Option<String> {
    let got = format!("got {} {}", answer.status, answer.text.chars().take(200).collect::<String>());
    match *expect {
        Expect::Status(status) => (answer.status != status).then(|| format!("expected {status}, {got}")),
        Expect::Error(status, code) => {
            ((answer.status, answer.code()) != (status, Some(code))).then(|| format!("expected {status} {code}, {got}"))
        }
        Expect::LikeUnknown(status, code) => {
            let unknown = unknown.expect("an unknown-id answer to compare with");
            if (unknown.status, unknown.code()) != (status, Some(code)) {
                Some(format!("the unknown-id call answers {} {}, not {status} {code}", unknown.status, unknown.text))
            } else if (answer.status, &answer.body) != (unknown.status, &unknown.body) {
                Some(format!("differs from the unknown-id answer {} {}: {got}", unknown.status, unknown.text))
            } else {
                None
            }
        }
    }
}

/// The upgrade with each bad credential, in the header and in `?token=`; then a real one.
async fn run_websocket(app: &TestApp, world: &World, row: &Row) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for bad in BadToken::ALL {
        let mut attempts = vec![("header", app.ws_url().into_client_request().expect("a WebSocket request"))];
        if let Some(token) = world.bad_token(bad) {
            let bearer = format!("Bearer {token}").parse().expect("a header value");
            attempts[0].1.headers_mut().insert(AUTHORIZATION, bearer);
            let url = format!("{}?token={token}", app.ws_url());
            attempts.push(("?token=", url.into_client_request().expect("a WebSocket request")));
        }
        for (how, request) in attempts {
            let failure = match WsClient::try_connect(request).await {
                Err(tungstenite::Error::Http(response)) => {
                    let body: Value = response
                        .body()
                        .as_deref()
                        .and_then(|bytes| serde_json::from_slice(bytes).ok())
                        .unwrap_or_default();
                    let code = body.pointer("/error/code").and_then(Value::as_str);
                    ((response.status().as_u16(), code) != (401, Some("unauthorized")))
                        .then(|| format!("expected 401 unauthorized, got {} {body}", response.status()))
                }
                Err(other) => Some(format!("expected an HTTP 401 refusal, got {other}")),
                Ok(_) => Some("the upgrade succeeded".to_owned()),
            };
            let what = format!("GET {} ({how}): {}", row.path, bad.label());
            outcomes.push(Outcome { kind: Kind::BadToken, what, failure });
        }
    }
    for case in &row.cases {
        let user = world.user(case.who);
        let mut request = app.ws_url().into_client_request().expect("a WebSocket request");
        let bearer = format!("Bearer {}", user.access_token).parse().expect("a header value");
        request.headers_mut().insert(AUTHORIZATION, bearer);
        let failure = match WsClient::try_connect(request).await {
            Ok(mut socket) => {
                let hello = socket.next_frame().await;
                (hello["type"] != "hello" || hello["user_id"] != user.id.as_str())
                    .then(|| format!("expected {}'s hello, got {hello}", case.who))
            }
            Err(error) => Some(format!("the upgrade failed: {error}")),
        };
        outcomes.push(Outcome { kind: case.kind, what: format!("GET {}: {}", row.path, case.describe()), failure });
    }
    outcomes
}

/// The WebSocket request frames of [`frame_cases`], each on the caller's own socket.
pub(super) async fn run_frames(app: &TestApp, world: &World) -> Vec<Outcome> {
    let mut sockets: HashMap<Who, WsClient> = HashMap::new();
    let mut outcomes = Vec::new();
    for (frame, case) in frame_cases() {
        let what = format!("WebSocket {frame:?} frame: {}", case.describe());
        let socket = match sockets.entry(case.who) {
            Entry::Occupied(open) => open.into_mut(),
            Entry::Vacant(slot) => {
                let url = format!("{}?token={}", app.ws_url(), world.user(case.who).access_token);
                match WsClient::try_connect(url.as_str()).await {
                    Ok(mut socket) => {
                        socket.next_of_type("hello").await;
                        slot.insert(socket)
                    }
                    Err(error) => {
                        let failure = Some(format!("{}'s socket did not open: {error}", case.who));
                        outcomes.push(Outcome { kind: case.kind, what, failure });
                        continue;
                    }
                }
            }
        };
        let conversation = world.resolve(case.params_for_frame());
        let answers = frame_answers(socket, frame, &conversation).await;
        let failure = match case.expect {
            Expect::Status(_) => {
                let expected: &[&str] = if let Frame::Send = frame { &["sent"] } else { &[] };
                let types: Vec<&str> = answers.iter().filter_map(|a| a["type"].as_str()).collect();
                (types != expected).then(|| format!("expected {expected:?}, got {answers:?}"))
            }
            Expect::Error(_, code) => match answers.as_slice() {
                [answer] if answer["type"] == "error" && answer["code"] == code => None,
                _ => Some(format!("expected an error {code}, got {answers:?}")),
            },
            Expect::LikeUnknown(_, code) => {
                let unknown = frame_answers(socket, frame, &unknown_id()).await;
                match unknown.as_slice() {
                    [error] if error["type"] == "error" && error["code"] == code => (answers != unknown)
                        .then(|| format!("differs from the unknown-id answer {unknown:?}: {answers:?}")),
                    _ => Some(format!("the unknown-id frame is answered {unknown:?}, not an error {code}")),
                }
            }
        };
        outcomes.push(Outcome { kind: case.kind, what, failure });
    }
    for (_, socket) in sockets {
        socket.close().await;
    }
    outcomes
}

/// Sends `frame` about `conversation`, then a ping; the `sent` and `error` frames that come
/// before the pong (the socket handles one request at a time, so that is all of them), without
/// their request ids.
async fn frame_answers(socket: &mut WsClient, frame: Frame, conversation: &str) -> Vec<Value> {
    let id = "authz-request";
    let request = match frame {
        Frame::Send => json!({
            "type": "send", "id": id, "conversation_id": conversation,
            "client_msg_id": client_msg_id(), "kind": "text", "text": "matrix",
        }),
        Frame::Read => json!({ "type": "read", "id": id, "conversation_id": conversation, "seq": 1 }),
        Frame::Typing => json!({ "type": "typing", "conversation_id": conversation }),
    };
    socket.send_json(request).await;
    socket.send_json(json!({ "type": "ping", "id": "authz-ping" })).await;
    let frames = socket.frames_until(|frame| frame["type"] == "pong" && frame["id"] == "authz-ping").await;
    frames
        .into_iter()
        .filter(|frame| matches!(frame["type"].as_str(), Some("sent" | "error")))
        .map(|mut frame| {
            if let Some(object) = frame.as_object_mut() {
                object.remove("id");
            }
            frame
        })
        .collect()
}
