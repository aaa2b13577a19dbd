//! Process control for tests that run `natter serve` as real processes sharing PostgreSQL, NATS
//! (JetStream) and one file directory, driven over HTTP like any client.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use natter_proto::{AcceptFriendResponse, AuthResponse, FileView, FriendRequestView, MessagePage, MessageView};
use reqwest::multipart::{Form, Part};
use reqwest::{StatusCode, Url};
use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection};

const START_TIMEOUT: Duration = Duration::from_secs(60);

/// What the environment provides: PostgreSQL (admin URL), NATS with JetStream, the Whisper model.
pub(crate) struct Env {
    postgres_url: String,
    nats_url: String,
    model: String,
}

impl Env {
    /// `None` (the test skips) when something is missing, unless `CI` is set: then it panics.
    pub(crate) fn from_env(test: &str) -> Option<Self> {
        natter::install_crypto_provider();
        let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        match (var("NATTER_TEST_POSTGRES_URL"), var("NATTER_TEST_NATS_URL"), var("NATTER_TEST_WHISPER_MODEL")) {
            (Some(postgres_url), Some(nats_url), Some(model)) => Some(Self { postgres_url, nats_url, model }),
            _ if std::env::var_os("CI").is_some() => panic!(
                "{test} needs NATTER_TEST_POSTGRES_URL, NATTER_TEST_NATS_URL and NATTER_TEST_WHISPER_MODEL in CI: run scripts/test.sh"
            ),
            _ => {
                println!(
                    "skipping {test}: set NATTER_TEST_POSTGRES_URL, NATTER_TEST_NATS_URL and NATTER_TEST_WHISPER_MODEL"
                );
                None
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct NodeOptions {
    /// `jobs.workers` (0: this node queues jobs and runs none).
    pub(crate) workers: usize,
    pub(crate) ack_wait_secs: u64,
    pub(crate) max_pending: usize,
    /// `--roles` (`all`, or e.g. `gateway,chat`, `worker`).
    pub(crate) roles: &'static str,
}

struct Node {
    child: Child,
    base_url: String,
    log: PathBuf,
}

/// Nodes of one test on a fresh database. Dropping it (also while a failed assertion unwinds)
/// kills them and, after a failure, prints the end of their logs.
pub(crate) struct Cluster {
    env: Env,
    run: String,
    database: String,
    database_url: String,
    dir: PathBuf,
    nodes: Vec<Node>,
    http: reqwest::Client,
}

impl Cluster {
    pub(crate) async fn new(env: Env) -> Self {
        let run = uuid::Uuid::new_v4().simple().to_string();
        let database = format!("natter_jobs_{run}");
        let mut admin = PgConnection::connect(&env.postgres_url).await.expect("connect to NATTER_TEST_POSTGRES_URL");
        admin.execute(format!("CREATE DATABASE {database}").as_str()).await.expect("create the database");
        admin.close().await.ok();
        let mut url = Url::parse(&env.postgres_url).expect("NATTER_TEST_POSTGRES_URL is a URL");
        url.set_path(&format!("/{database}"));
        let dir = std::env::temp_dir().join(format!("natter-jobs-{run}"));
        std::fs::create_dir_all(dir.join("files")).expect("create the shared file directory");
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("an HTTP client");
        Self { env, run, database, database_url: url.to_string(), dir, nodes: Vec::new(), http }
    }

    /// Starts a node (not waiting for it); returns its index.
    pub(crate) fn start_node(&mut self, options: NodeOptions) -> usize {
        let index = self.nodes.len();
        let data_dir = self.dir.join(format!("node{}", index + 1));
        std::fs::create_dir_all(&data_dir).expect("create the data dir");
        let log = data_dir.join("natter.log");
        let output = File::create(&log).expect("create the log file");
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_natter"));
        // The test's own NATTER_TEST_* variables are no configuration of the server.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("NATTER_") {
                command.env_remove(name);
            }
        }
        if options.roles != "all" && options.roles.contains("chat") {
            command.env("NATTER_CLUSTER__GRPC_LISTEN", format!("127.0.0.1:{}", free_port()));
        }
        command
            .args(["serve", "--roles", options.roles, "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(&data_dir)
            .env("NATTER_DATABASE__URL", &self.database_url)
            .env("NATTER_BUS__KIND", "nats")
            .env("NATTER_BUS__NATS_URL", &self.env.nats_url)
            .env("NATTER_BUS__SUBJECT_PREFIX", format!("natter-jobs-test.{}", self.run))
            .env("NATTER_SEARCH__BACKEND", "postgres")
            .env("NATTER_FILES__DIR", self.dir.join("files"))
            .env("NATTER_AUTH__JWT_SECRET", format!("jobs-test-secret-{}", self.run))
            .env("NATTER_AUTH__ARGON2_MEMORY_KIB", "256")
            .env("NATTER_AUTH__ARGON2_ITERATIONS", "1")
            .env("NATTER_SPEECH__ENGINE", "whisper")
            .env("NATTER_SPEECH__MODEL_DIR", &self.env.model)
            .env("NATTER_SPEECH__THREADS", "1")
            .env("NATTER_JOBS__BACKEND", "jetstream")
            .env("NATTER_JOBS__WORKERS", options.workers.to_string())
            .env("NATTER_JOBS__ACK_WAIT_SECS", options.ack_wait_secs.to_string())
            .env("NATTER_JOBS__MAX_PENDING", options.max_pending.to_string())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("clone the log file"))
            .stderr(output);
        let child = command.spawn().expect("start `natter serve`");
        self.nodes.push(Node { child, base_url: format!("http://127.0.0.1:{port}"), log });
        index
    }

    pub(crate) async fn wait_ready(&self, nodes: &[usize]) {
        for &index in nodes {
            let node = &self.nodes[index];
            let started = Instant::now();
            loop {
                let response = self.http.get(format!("{}/readyz", node.base_url)).send().await;
                if response.is_ok_and(|response| response.status() == StatusCode::OK) {
                    break;
                }
                assert!(started.elapsed() < START_TIMEOUT, "{} not ready within {START_TIMEOUT:?}", node.base_url);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// kill -9.
    pub(crate) fn kill(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        node.child.kill().expect("kill the node");
        node.child.wait().expect("reap the node");
    }

    /// alice and bob, friends (registered on `node`): alice and their conversation.
    pub(crate) async fn two_friends(&self, node: usize) -> (AuthResponse, String) {
        let alice = self.register(node, "alice").await;
        let bob = self.register(node, "bob").await;
        let request: FriendRequestView =
            self.post(node, &alice, "/friend-requests", json!({ "user_id": bob.user.id })).await;
        let accepted: AcceptFriendResponse =
            self.post(node, &bob, &format!("/friend-requests/{}/accept", request.id), json!({})).await;
        (alice, accepted.conversation.id)
    }

    /// Uploads `wav` and sends it as a voice message; the entry as acknowledged (201).
    pub(crate) async fn send_voice(
        &self,
        node: usize,
        user: &AuthResponse,
        conversation: &str,
        wav: Vec<u8>,
        client_msg_id: &str,
    ) -> MessageView {
        let part = Part::bytes(wav).file_name("voice.wav").mime_str("audio/wav").expect("mime");
        let url = format!("{}/api/v1/files", self.nodes[node].base_url);
        let request = self.http.post(&url).bearer_auth(&user.access_token).multipart(Form::new().part("file", part));
        let file: FileView = decode(request.send().await.expect("upload"), &url).await;
        assert!(file.duration_ms.is_some(), "the upload is timed audio: {file:?}");
        let body = json!({ "client_msg_id": client_msg_id, "kind": "voice", "file_id": file.id });
        self.post(node, user, &format!("/conversations/{conversation}/messages"), body).await
    }

    pub(crate) async fn recall(&self, node: usize, user: &AuthResponse, conversation: &str, seq: i64) {
        let url = format!("{}/api/v1/conversations/{conversation}/messages/{seq}", self.nodes[node].base_url);
        let response = self.http.delete(&url).bearer_auth(&user.access_token).send().await.expect("recall");
        let _: Value = decode(response, &url).await;
    }

    pub(crate) async fn history(&self, node: usize, user: &AuthResponse, conversation: &str) -> Vec<MessageView> {
        let url =
            format!("{}/api/v1/conversations/{conversation}/messages?after_seq=0&limit=100", self.nodes[node].base_url);
        let response = self.http.get(&url).bearer_auth(&user.access_token).send().await.expect("history");
        let page: MessagePage = decode(response, &url).await;
        page.messages
    }

    /// The transcript entries of the voice message at `seq`.
    pub(crate) async fn transcripts(
        &self,
        node: usize,
        user: &AuthResponse,
        conversation: &str,
        seq: i64,
    ) -> Vec<MessageView> {
        let history = self.history(node, user, conversation).await;
        history.into_iter().filter(|m| m.kind == "transcript" && m.target_seq == Some(seq)).collect()
    }

    pub(crate) async fn wait_for_transcript(
        &self,
        node: usize,
        user: &AuthResponse,
        conversation: &str,
        seq: i64,
        within: Duration,
    ) -> MessageView {
        let deadline = Instant::now() + within;
        loop {
            if let Some(transcript) = self.transcripts(node, user, conversation, seq).await.into_iter().next() {
                return transcript;
            }
            assert!(Instant::now() < deadline, "no transcript of seq {seq} within {within:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether a line of `node`'s log contains both `a` and `b`.
    pub(crate) fn log_has(&self, node: usize, a: &str, b: &str) -> bool {
        let log = std::fs::read_to_string(&self.nodes[node].log).unwrap_or_default();
        strip_ansi(&log).lines().any(|line| line.contains(a) && line.contains(b))
    }

    /// The first of `nodes` whose log gets a line with both `a` and `b`.
    pub(crate) async fn wait_for_log(&self, nodes: &[usize], a: &str, b: &str, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            if let Some(&node) = nodes.iter().find(|&&node| self.log_has(node, a, b)) {
                return node;
            }
            assert!(Instant::now() < deadline, "no log line with {a:?} and {b:?} within {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the nodes and drops the database.
    pub(crate) async fn finish(mut self) {
        self.stop_nodes();
        if let Ok(mut admin) = PgConnection::connect(&self.env.postgres_url).await {
            let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database);
            let _ = admin.execute(drop.as_str()).await;
            admin.close().await.ok();
        }
    }

    fn stop_nodes(&mut self) {
        for node in &mut self.nodes {
            let _ = node.child.kill();
            let _ = node.child.wait();
            if std::thread::panicking() {
                let log = std::fs::read_to_string(&node.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("---- last lines of {} ({}) ----", node.base_url, node.log.display());
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    async fn register(&self, node: usize, username: &str) -> AuthResponse {
        let body = json!({ "username": username, "password": "correct horse battery staple", "nickname": username });
        let url = format!("{}/api/v1/auth/register", self.nodes[node].base_url);
        let response = self.http.post(&url).json(&body).send().await.expect("register");
        decode(response, &url).await
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        node: usize,
        user: &AuthResponse,
        path: &str,
        body: Value,
    ) -> T {
        let url = format!("{}/api/v1{path}", self.nodes[node].base_url);
        let response = self.http.post(&url).bearer_auth(&user.access_token).json(&body).send().await.expect("POST");
        decode(response, &url).await
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_nodes();
    }
}

/// espeak-ng's WAV of `text`.
pub(crate) fn speech_wav(text: &str) -> Vec<u8> {
    let path = std::env::temp_dir().join(format!("natter-jobs-{}.wav", uuid::Uuid::new_v4().simple()));
    let status = Command::new("espeak-ng")
        .args(["-v", "en-us+m3", "-s", "140", "-w"])
        .arg(&path)
        .arg(text)
        .status()
        .expect("run espeak-ng");
    assert!(status.success(), "espeak-ng: {status}");
    let wav = std::fs::read(&path).expect("the WAV");
    let _ = std::fs::remove_file(Path::new(&path));
    wav
}

/// The text without terminal colour sequences (`ESC [ … m`).
fn strip_ansi(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

async fn decode<T: serde::de::DeserializeOwned>(response: reqwest::Response, url: &str) -> T {
    let status = response.status();
    let body = response.text().await.expect("a response body");
    assert!(status.is_success(), "{url}: {status} {body}");
    serde_json::from_str(&body).unwrap_or_else(|error| panic!("{url}: unexpected body ({error}): {body}"))
}
