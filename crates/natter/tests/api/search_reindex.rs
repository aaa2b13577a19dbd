//! `natter search reindex` on the real binary: a server indexes messages, the index is wiped,
//! the command rebuilds it from the log, and a restarted server finds the messages again (with
//! the edit applied and the recalled message absent). On SQLite with the embedded index and on
//! PostgreSQL with the PostgreSQL index.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection};

use crate::common::{Backend, on_both_backends};

const NATTER: &str = env!("CARGO_BIN_EXE_natter");

/// `natter` with the test's data dir, database and search backend.
pub(crate) fn natter(data_dir: &Path, database_url: Option<&str>) -> Command {
    let mut command = Command::new(NATTER);
    // The test's own NATTER_TEST_* variables are no configuration of the server.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("NATTER_") {
            command.env_remove(name);
        }
    }
    command.env("NATTER_DATA_DIR", data_dir).env("NATTER_AUTH__ARGON2_MEMORY_KIB", "256");
    command.env("NATTER_AUTH__ARGON2_ITERATIONS", "1").env("RUST_LOG", "warn");
    if let Some(url) = database_url {
        command.env("NATTER_DATABASE__URL", url).env("NATTER_SEARCH__BACKEND", "postgres");
    }
    command
}

/// A `natter serve` process on a free port; killed (SIGKILL) on drop.
pub(crate) struct Server {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Server {
    pub(crate) fn start(data_dir: &Path, database_url: Option<&str>) -> Server {
        Server::spawn(natter(data_dir, database_url))
    }

    /// Runs `natter serve` from `command` (see [`natter`]).
    pub(crate) fn spawn(mut command: Command) -> Server {
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start natter serve");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        reader.read_line(&mut line).expect("read the listening line");
        // Keep draining, so the server's later log lines never meet a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let Some(base) = line.trim().strip_prefix("natter listening on ").map(str::to_owned) else {
            let status = child.wait().expect("natter exited");
            panic!("natter serve did not start ({status}); its first line: {line:?}");
        };
        natter::install_crypto_provider();
        Server { child, base: format!("{base}/api/v1"), http: reqwest::Client::new() }
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.json().await.unwrap_or(Value::Null)
    }

    /// Hit seqs for `q`, polling until `want` holds (10 s at most).
    pub(crate) async fn search_until(&self, token: &str, q: &str, want: impl Fn(&[i64]) -> bool) -> Vec<i64> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let path = format!("/search/messages?q={}&limit=100", urlencode(q));
            let results = self.call(reqwest::Method::GET, &path, Some(token), None).await;
            let seqs: Vec<i64> =
                results["hits"].as_array().expect("hits").iter().filter_map(|hit| hit["seq"].as_i64()).collect();
            if want(&seqs) || Instant::now() > deadline {
                return seqs;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

on_both_backends!(reindex_rebuilds_the_index_from_the_log);

async fn reindex_rebuilds_the_index_from_the_log(backend: Backend) {
    let data_dir = std::env::temp_dir().join(format!("natter-reindex-{}", uuid::Uuid::new_v4().simple()));
    let database = backend.create_database().await;
    let url = database.as_ref().map(|database| database.url.clone());
    let server = Server::start(&data_dir, url.as_deref());
    let post = reqwest::Method::POST;
    let ann = server
        .call(post.clone(), "/auth/register", None, Some(json!({"username": "ann", "password": "correct-horse-9"})))
        .await;
    let token = ann["access_token"].as_str().expect("a token").to_owned();
    let group =
        server.call(post.clone(), "/conversations", Some(&token), Some(json!({"kind": "group", "name": "g"}))).await;
    let messages = format!("/conversations/{}/messages", group["id"].as_str().expect("an id"));
    let mut seqs = Vec::new();
    for (n, text) in ["我们明天去北京开会", "draft agenda", "to be recalled 撤回"].iter().enumerate() {
        let body = json!({"client_msg_id": format!("m{n}"), "kind": "text", "text": text});
        seqs.push(server.call(post.clone(), &messages, Some(&token), Some(body)).await["seq"].as_i64().expect("seq"));
    }
    let edit = json!({"text": "final agenda"});
    server.call(reqwest::Method::PATCH, &format!("{messages}/{}", seqs[1]), Some(&token), Some(edit)).await;
    server.call(reqwest::Method::DELETE, &format!("{messages}/{}", seqs[2]), Some(&token), None).await;
    assert_eq!(server.search_until(&token, "agenda", |s| s == [seqs[1]]).await, [seqs[1]]);
    if let Some(url) = &url {
        // The PostgreSQL index writes documents and checkpoints in separate statements: a kill
        // between them leaves an older checkpoint (harmless: catching up re-upserts). Wait for
        // the checkpoint to cover the recall, so the restart below has nothing to catch up.
        wait_for_checkpoint(url, group["id"].as_str().expect("an id"), seqs[2] + 2).await;
    }
    drop(server);

    // Lose the index.
    match &url {
        None => std::fs::remove_dir_all(data_dir.join("search")).expect("remove the embedded index"),
        Some(url) => {
            let mut connection = PgConnection::connect(url).await.expect("connect");
            connection.execute("TRUNCATE search_documents").await.expect("truncate");
            let _ = connection.close().await;
        }
    }
    // A server started now would rebuild a lost embedded index by itself (no checkpoints: it
    // catches up from the start of the log); the PostgreSQL checkpoints survived the TRUNCATE, so
    // there the loss shows until the rebuild. (The embedded index is one process's at a time.)
    let running = url.is_some().then(|| Server::start(&data_dir, url.as_deref()));
    if let Some(server) = &running {
        assert!(server.search_until(&token, "北京", |_| true).await.is_empty(), "the index was wiped");
    }

    let output = natter(&data_dir, url.as_deref()).args(["search", "reindex"]).output().expect("run reindex");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "reindex failed: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("reindexed 2 messages from 6 log entries"), "{stdout}");

    let server = Server::start(&data_dir, url.as_deref());
    assert_eq!(server.search_until(&token, "北京", |s| !s.is_empty()).await, [seqs[0]]);
    assert_eq!(server.search_until(&token, "agenda", |s| !s.is_empty()).await, [seqs[1]]);
    assert!(server.search_until(&token, "draft", |_| true).await.is_empty(), "the edit is in the rebuilt index");
    assert!(server.search_until(&token, "撤回", |_| true).await.is_empty(), "the recalled message is not");
    drop((server, running));
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// Polls `search_checkpoints` until `conversation`'s reaches `seq` (10 s at most).
async fn wait_for_checkpoint(url: &str, conversation: &str, seq: i64) {
    let mut connection = PgConnection::connect(url).await.expect("connect");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let checkpoint: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM search_checkpoints WHERE conversation_id = $1")
                .bind(conversation)
                .fetch_optional(&mut connection)
                .await
                .expect("read the checkpoint");
        if checkpoint >= Some(seq) {
            break;
        }
        assert!(Instant::now() < deadline, "the checkpoint stayed at {checkpoint:?}, short of {seq}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = connection.close().await;
}
