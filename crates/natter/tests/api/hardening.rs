//! What an outside tester can do to the HTTP surface: grow the metrics with made-up methods and
//! paths, read sessions out of the debug log, send big bodies that get refused, send arrays
//! where objects belong, pick names that display as something else; and the headers every
//! answer carries.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite;

use crate::common::{TestApp, WsClient, spawn_app, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_series_stay_bounded_under_made_up_methods_and_paths() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let series = |text: &str| text.lines().filter(|line| line.starts_with("natter_http_requests_total{")).count();
    let before = series(&app.get_root("/metrics").await.text);

    for i in 0..300 {
        let method = Method::from_bytes(format!("X{i}Y").as_bytes()).expect("a method token");
        let path = match i % 4 {
            0 => "/healthz".to_owned(),
            1 => format!("/no/such/path/{i}"),
            2 => format!("/api/v1/users/{i}"),
            _ => format!("/api/v1/made-up-{i}"),
        };
        let response = app.http.request(method, app.root_url(&path)).send().await.expect("the request is answered");
        assert!(response.status().is_client_error(), "{path}: {}", response.status());
        let random_get = app.http.get(app.root_url(&format!("/api/v1/nothing/{i}"))).bearer_auth(&alice.access_token);
        random_get.send().await.expect("the request is answered");
    }

    let metrics = app.get_root("/metrics").await.text;
    let after = series(&metrics);
    assert!(after - before <= 12, "600 odd requests added {} series ({before} → {after}):\n{metrics}", after - before);
    assert!(!metrics.contains("X1Y") && !metrics.contains("/no/such"), "no made-up label values:\n{metrics}");
    assert!(metrics.contains("method=\"other\""), "made-up methods are counted as `other`:\n{metrics}");
    assert!(metrics.contains("route=\"unmatched\""), "unknown paths are counted as `unmatched`:\n{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_says_nosniff() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let token = alice.access_token.as_str();
    let requests = [
        ("JSON 200", app.http.get(app.api_url("/users/me")).bearer_auth(token)),
        ("401", app.http.get(app.api_url("/users/me"))),
        ("400", app.http.patch(app.api_url("/users/me")).bearer_auth(token).json(&json!({ "nickname": "" }))),
        ("404", app.http.get(app.api_url("/no-such-route")).bearer_auth(token)),
        ("405", app.http.delete(app.root_url("/healthz"))),
        ("healthz", app.http.get(app.root_url("/healthz"))),
        ("metrics", app.http.get(app.root_url("/metrics"))),
        ("openapi", app.http.get(app.root_url("/openapi.json"))),
    ];
    for (what, request) in requests {
        let response = request.send().await.expect("the request is answered");
        let header = response.headers().get("x-content-type-options").map(|v| v.to_str().unwrap_or_default());
        assert_eq!(header, Some("nosniff"), "{what} ({})", response.status());
    }
}

/// The process-wide log, at debug level, as the fmt subscriber writes it.
fn captured_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || LogWriter(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other test sets a global subscriber");
        log
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("the log lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_tokens_stay_out_of_the_log() {
    let log = captured_log();
    let app = spawn_app().await;
    let alice = app.register("alice").await;

    let mut ws = WsClient::connect(format!("{}?token={}", app.ws_url(), alice.access_token).as_str()).await;
    ws.expect_hello(&alice).await;
    ws.ping("logged").await;
    let refused = "refused-SECRET-9f2c41";
    match WsClient::try_connect(format!("{}?a=1&token={refused}", app.ws_url()).as_str()).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status().as_u16(), 401),
        Err(other) => panic!("expected a 401, got {other}"),
        Ok(_) => panic!("a made-up token was accepted"),
    }
    app.get_root("/healthz").await.expect_status(200);

    let text = String::from_utf8_lossy(&log.lock().expect("the log lock")).into_owned();
    assert!(text.contains("/api/v1/ws?token=[redacted]"), "the request is logged, its token masked");
    assert!(text.contains("/api/v1/ws?a=1&token=[redacted]"), "the refused request is logged, its token masked");
    assert!(!text.contains(&alice.access_token), "the access token is not in the log");
    assert!(!text.contains(refused), "the refused token is not in the log");
}

/// The `multipart/form-data` framing before and after the bytes of a part named `file`, and the
/// boundary.
fn multipart_head_and_tail() -> (String, String, &'static str) {
    let boundary = "natter-test-boundary-7d1f";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    (head, tail, boundary)
}

/// POSTs a `size`-byte upload the way most clients do: the whole request first, the answer
/// after. Returns the status and the JSON body, or the I/O error that ended the exchange.
async fn upload_then_read(app: &TestApp, token: Option<&str>, size: usize) -> std::io::Result<(u16, Value)> {
    let (head, tail, boundary) = multipart_head_and_tail();
    let length = head.len() + size + tail.len();
    let auth = token.map(|token| format!("Authorization: Bearer {token}\r\n")).unwrap_or_default();
    let request = format!(
        "POST /api/v1/files HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: multipart/form-data; boundary={boundary}\r\n\
         Content-Length: {length}\r\n\r\n{head}",
        app.addr
    );
    let mut stream = tokio::net::TcpStream::connect(app.addr).await?;
    stream.write_all(request.as_bytes()).await?;
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    while sent < size {
        let n = chunk.len().min(size - sent);
        stream.write_all(&chunk[..n]).await?;
        sent += n;
    }
    stream.write_all(tail.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    assert!(head.to_ascii_lowercase().contains("connection: close"), "the refusal says it closes: {head}");
    Ok((status, serde_json::from_str(body).unwrap_or(Value::String(body.to_owned()))))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upload_is_answered_not_reset() {
    let app = spawn_app_with(|config| config.files.max_upload_bytes = 24 * 1024 * 1024).await;
    let alice = app.register("alice").await;
    let within = 20 * 1024 * 1024;
    let beyond = 40 * 1024 * 1024;
    let cases = [
        ("a made-up token", Some("not.a.token"), within, 401, "unauthorized"),
        ("no token", None, within, 401, "unauthorized"),
        ("a file beyond the limit", Some(alice.access_token.as_str()), beyond, 413, "file_too_large"),
    ];
    for (what, token, size, status, code) in cases {
        let exchange = tokio::time::timeout(Duration::from_secs(60), upload_then_read(&app, token, size)).await;
        let (got, body) = exchange
            .unwrap_or_else(|_| panic!("{what}: no answer within 60 s"))
            .unwrap_or_else(|error| panic!("{what}: the connection broke instead of answering: {error}"));
        assert_eq!((got, body.pointer("/error/code").and_then(Value::as_str)), (status, Some(code)), "{what}: {body}");
    }

    // Bodies read to the end keep the connection open.
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(vec![b'x'; 100_000]).file_name("small.bin"));
    let upload = app.http.post(app.api_url("/files")).bearer_auth(&alice.access_token).multipart(form);
    let patch = app.http.patch(app.api_url("/users/me")).bearer_auth(&alice.access_token).json(&json!({ "bio": "hi" }));
    for (what, request) in [("an upload", upload), ("a JSON body", patch)] {
        let response = request.send().await.expect("the request is answered");
        assert!(response.status().is_success(), "{what}: {}", response.status());
        assert_eq!(response.headers().get("connection"), None, "{what}: the connection stays open");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_must_be_objects() {
    let app = spawn_app().await;
    let alice = app.register_with_nickname("alice", "Alice").await;
    let raw = |method: Method, path: &str, body: &'static str| {
        app.api(method, path).header(reqwest::header::CONTENT_TYPE, "application/json").body(body)
    };
    let patch = raw(Method::PATCH, "/users/me", r#"["Nick"]"#).bearer_auth(&alice.access_token);
    app.send(patch).await.expect_error(400, "validation_failed");
    let register = raw(Method::POST, "/auth/register", r#"["mallory", "correct-horse-battery-7"]"#);
    app.send(register).await.expect_error(400, "validation_failed");
    for scalar in ["\"text\"", "42", "null", "true"] {
        let patch = raw(Method::PATCH, "/users/me", scalar).bearer_auth(&alice.access_token);
        app.send(patch).await.expect_error(400, "validation_failed");
    }
    let me: Value = app.get(&alice, "/users/me").await.expect(200);
    assert_eq!(me["nickname"], "Alice", "nothing changed: {me}");
    app.post_anonymous("/auth/login", json!({ "username": "mallory", "password": "correct-horse-battery-7" }))
        .await
        .expect_status(401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_refuse_bidi_controls_and_invisible_only_values() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    app.make_friends(&alice, &bob).await;
    let tricky =
        ["\u{202E}gnp.exe", "ad\u{2066}min\u{2069}", "x\u{200F}", "\u{200B}", "\u{200B}\u{200D}\u{FEFF}", " \u{2060} "];
    for (i, name) in tricky.into_iter().enumerate() {
        app.patch(&alice, "/users/me", json!({ "nickname": name })).await.expect_error(400, "invalid_nickname");
        let register =
            json!({ "username": format!("carol{i}"), "password": "correct-horse-battery-7", "nickname": name });
        app.post_anonymous("/auth/register", register).await.expect_error(400, "invalid_nickname");
        let group = json!({ "kind": "group", "name": name, "member_ids": [bob.id] });
        app.post(&alice, "/conversations", group).await.expect_error(400, "invalid_name");
        let login = json!({ "username": "alice", "password": crate::common::PASSWORD, "device_name": name });
        app.post_anonymous("/auth/login", login).await.expect_error(400, "invalid_device_name");
    }
    let family = "Team 👨\u{200D}👩\u{200D}👧";
    let me: Value = app.patch(&alice, "/users/me", json!({ "nickname": family })).await.expect(200);
    assert_eq!(me["nickname"], family, "a joiner inside an emoji is fine");
}

/// A client that goes away halfway through an upload leaves nothing stored: no file, no blob
/// (through the split topology, too, where the gateway streams the body to a chat node).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_off_halfway_stores_nothing() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let (head, tail, boundary) = multipart_head_and_tail();
    let size = 4 * 1024 * 1024;
    let request = format!(
        "POST /api/v1/files HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n{head}",
        app.addr,
        alice.access_token,
        head.len() + size + tail.len()
    );
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("send the head");
    stream.write_all(&vec![b'x'; size / 2]).await.expect("send half the file");
    // Let the server take what came, then go away without the rest.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(stream);
    tokio::time::sleep(Duration::from_millis(700)).await;

    // No blob is left behind.
    // Blobs live under <data_dir>/files/files/<id>.
    let blobs = || std::fs::read_dir(app.data_dir().join("files/files")).map(Iterator::count).unwrap_or(0);
    assert_eq!(blobs(), 0, "a cut-off upload left a blob");
    // A whole upload then works, and is the only blob.
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(vec![b'y'; 1000]).file_name("whole.bin"));
    let response = app
        .http
        .post(app.api_url("/files"))
        .bearer_auth(&alice.access_token)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), 201);
    assert_eq!(blobs(), 1, "only the whole upload is stored");
}
