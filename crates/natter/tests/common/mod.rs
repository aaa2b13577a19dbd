//! The end-to-end harness: every test gets its own server on port 0, its own data directory and
//! its own database, and talks to it over real HTTP and WebSocket.
//!
//! * [`spawn_app`] / [`spawn_app_with`] start a server on the backend named by
//!   `NATTER_TEST_BACKEND` (`sqlite`, the default, or `postgres`).
//! * [`spawn_app_on`] / [`spawn_app_on_with`] start one on an explicit [`Backend`]; the
//!   [`on_both_backends!`] macro uses them to run one scenario on SQLite and on PostgreSQL.
//! * [`TestApp`] has typed helpers (`register`, `make_friends`, `send_text`, …) and raw JSON
//!   helpers returning a [`Resp`]; [`WsClient`] wraps one WebSocket connection.

mod backend;
mod files;
mod fixtures;
mod http;
mod ws;

use std::net::SocketAddr;
use std::path::PathBuf;

use natter::config::Config;

pub(crate) use backend::Backend;
pub(crate) use files::{BlobBackend, binary, on_both_blob_stores, png, sha256_hex, wav};
pub(crate) use fixtures::TestUser;
pub(crate) use http::Resp;
pub(crate) use ws::WsClient;

/// The password every fixture user gets.
pub(crate) const PASSWORD: &str = "correct-horse-battery-7";

/// A running server and an HTTP client for it. Dropping it stops the server and removes its data.
pub(crate) struct TestApp {
    pub(crate) addr: SocketAddr,
    pub(crate) http: reqwest::Client,
    data_dir: PathBuf,
    server: tokio::task::JoinHandle<()>,
    /// The split backend's chat node (the gateway is `server`).
    chat_server: Option<tokio::task::JoinHandle<()>>,
    _database: Option<backend::TestDatabase>,
}

/// A server on the backend named by `NATTER_TEST_BACKEND`, with test defaults.
pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_on_with(Backend::from_env(), |_| {}).await
}

/// Like [`spawn_app`], with the configuration adjusted by `adjust` before the server starts.
pub(crate) async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_on_with(Backend::from_env(), adjust).await
}

pub(crate) async fn spawn_app_on(backend: Backend) -> TestApp {
    spawn_app_on_with(backend, |_| {}).await
}

pub(crate) async fn spawn_app_on_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let data_dir = std::env::temp_dir().join(format!("natter-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&data_dir).expect("create the test data dir");

    let mut config = Config::default();
    config.server.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.server.data_dir = data_dir.clone();
    config.server.shutdown_grace_secs = 1;
    // Cheap hashing: the tests register and log in hundreds of times.
    config.auth.argon2_memory_kib = 256;
    config.auth.argon2_iterations = 1;
    // Every test client registers from 127.0.0.1; the registration limit has its own tests.
    config.auth.register_max_per_address = 0;
    // Likewise every socket opens from 127.0.0.1; the connection limit has its own test.
    config.limits.ws_connects_per_address = 0;
    // And some tests flood a socket on purpose (the typing flood); the frame budget has its own.
    config.limits.ws_frames_per_sec = 0;
    let database = backend.create_database().await;
    if let Some(database) = &database {
        config.database.url = database.url.clone();
        config.search.backend = natter::config::SearchBackend::Postgres;
    }
    adjust(&mut config);

    // Before any reqwest client is built (reqwest has no crypto provider of its own).
    natter::install_crypto_provider();
    let mut chat_server = None;
    if let Backend::Split { nats_url, .. } = &backend {
        // A chat + worker node, then the gateway below calls it over gRPC; events go over NATS.
        config.bus.kind = natter::config::BusKind::Nats;
        config.bus.nats_url = nats_url.clone();
        config.bus.subject_prefix = format!("natter-split-test.{}", uuid::Uuid::new_v4().simple());
        let mut chat = config.clone();
        chat.cluster.roles = "chat,worker".parse().expect("roles");
        chat.cluster.grpc_listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let chat = natter::Application::build(chat).await.expect("the chat node builds");
        let grpc = chat.grpc_addr().expect("a chat node of a split deployment serves gRPC");
        chat_server = Some(tokio::spawn(async move {
            if let Err(error) = chat.run_until_stopped().await {
                eprintln!("natter test chat node stopped with an error: {error:#}");
            }
        }));
        config.cluster.roles = "gateway".parse().expect("roles");
        config.cluster.chat_nodes = vec![grpc.to_string()];
    }
    let app = natter::Application::build(config).await.expect("the application builds");
    let addr = app.local_addr();
    let server = tokio::spawn(async move {
        if let Err(error) = app.run_until_stopped().await {
            eprintln!("natter test server stopped with an error: {error:#}");
        }
    });
    TestApp {
        addr,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("build the HTTP client"),
        data_dir,
        server,
        chat_server,
        _database: database,
    }
}

impl TestApp {
    /// `http://127.0.0.1:PORT` + `path` (ops endpoints live at the root).
    pub(crate) fn root_url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `http://127.0.0.1:PORT/api/v1` + `path`.
    pub(crate) fn api_url(&self, path: &str) -> String {
        format!("http://{}/api/v1{}", self.addr, path)
    }

    /// The server's data directory (SQLite database, local file blobs).
    pub(crate) fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// The WebSocket URL, without a token.
    pub(crate) fn ws_url(&self) -> String {
        format!("ws://{}/api/v1/ws", self.addr)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
        if let Some(chat) = &self.chat_server {
            chat.abort();
        }
        // Best effort: a leftover directory in the temp dir is harmless.
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Defines, for each named `async fn(Backend)` in the current module, a test module of the same
/// name with two tests: `NAME::sqlite` and `NAME::postgres`. The PostgreSQL variant needs
/// `NATTER_TEST_POSTGRES_URL`; without it, it is skipped (and fails when `CI` is set).
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(backend) = $crate::common::Backend::postgres_or_skip(module_path!()) {
                    super::$name(backend).await;
                }
            }
        }
    )+};
}
pub(crate) use on_both_backends;

/// A fresh random id in the server's format that names nothing.
pub(crate) fn unknown_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// A fresh idempotency key.
pub(crate) fn client_msg_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
