//! Configuration: defaults, then a TOML file (`--config`), then `NATTER_SECTION__KEY` environment
//! variables, then command-line flags. Validated once at start-up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use natter_core::presence::NodeId;
use serde::{Deserialize, Serialize};

mod choices;
mod cluster;
mod delivery;
mod files;
pub use choices::{BusKind, FilesBackend, LogFormat, SearchBackend, Secret};
pub use cluster::{ClusterConfig, Roles};
pub use delivery::DeliveryConfig;
pub use files::{FilesConfig, S3Config};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub bus: BusConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub log: LogConfig,
    pub files: FilesConfig,
    pub search: SearchConfig,
    pub speech: crate::speech::SpeechConfig,
    pub cluster: ClusterConfig,
    /// How nodes find each other (etcd, DNS, a static list); see natter-discovery.
    pub discovery: natter_discovery::DiscoveryConfig,
    pub redis: RedisConfig,
    pub presence: PresenceConfig,
    pub jobs: crate::jobs::JobsConfig,
    /// When large groups are fanned out by a worker.
    pub delivery: DeliveryConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the HTTP and WebSocket listener binds.
    pub listen: SocketAddr,
    /// Where embedded data lives (SQLite database, signing key).
    pub data_dir: PathBuf,
    /// Seconds to let requests finish on shutdown.
    pub shutdown_grace_secs: u64,
    /// Proxies (addresses or CIDR networks) whose `X-Forwarded-For` / `X-Real-IP` headers name
    /// the client, e.g. `["127.0.0.1", "10.0.0.0/8"]` behind nginx. Empty: the TCP peer is the
    /// client and forwarding headers are ignored. In the environment: a comma-separated list.
    #[serde(deserialize_with = "list_or_csv")]
    pub trusted_proxies: Vec<String>,
    /// This node's identity in a cluster (its gateway's routes and NATS subject): 1–64 of
    /// `[A-Za-z0-9_-]`. Empty: the host name and a random suffix, new at every start.
    pub node_id: String,
}

impl ServerConfig {
    /// `node_id`, or a new one from the host name and a random suffix.
    pub fn node_id(&self) -> anyhow::Result<NodeId> {
        if self.node_id.is_empty() {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .or_else(|_| std::env::var("HOSTNAME"))
                .unwrap_or_default();
            let suffix: u32 = rand::random();
            return Ok(NodeId::generate(host.trim(), &format!("{suffix:08x}")));
        }
        NodeId::parse(&self.node_id)
            .with_context(|| format!("server.node_id {:?}: use 1-64 of A-Z a-z 0-9 _ -", self.node_id))
    }

    /// `trusted_proxies` parsed; a bare address is a /32 (/128) network.
    pub fn trusted_proxy_nets(&self) -> anyhow::Result<Vec<ipnet::IpNet>> {
        self.trusted_proxies
            .iter()
            .map(|entry| {
                let entry = entry.trim();
                entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .with_context(|| format!("server.trusted_proxies: {entry:?} is not an address or CIDR network"))
            })
            .collect()
    }
}

/// A list from TOML, or a comma-separated string (how one environment variable spells a list).
fn list_or_csv<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrCsv {
        List(Vec<String>),
        Csv(String),
    }
    Ok(match ListOrCsv::deserialize(deserializer)? {
        ListOrCsv::List(list) => list,
        ListOrCsv::Csv(csv) => csv.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
    })
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./natter-data"),
            shutdown_grace_secs: 10,
            trusted_proxies: Vec::new(),
            node_id: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://…`. Empty: SQLite at `<data_dir>/natter.db`.
    pub url: String,
    /// Connection pool size (readers, for SQLite).
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: String::new(), max_connections: 8 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    /// `memory` (in-process, one node) or `nats`.
    pub kind: BusKind,
    /// NATS server URL, for `kind = "nats"`.
    pub nats_url: String,
    /// Subject prefix, so several natter clusters can share one NATS.
    pub subject_prefix: String,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self { kind: BusKind::Memory, nats_url: "nats://127.0.0.1:4222".into(), subject_prefix: "natter".into() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:port[/db]`: the route table (presence, targeted delivery) and the login
    /// throttle are shared through it. Empty: both are this process's own (one node).
    pub url: String,
    /// The first part of every key, so several clusters can share one Redis.
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self { url: String::new(), key_prefix: "natter".into() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PresenceConfig {
    /// Seconds a route (and a node's heartbeat) lives in Redis without a refresh. Nodes refresh
    /// and sweep dead nodes every third of it; a dead node's users go offline within about
    /// 1⅓ × this.
    pub route_ttl_secs: u64,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        Self { route_ttl_secs: 15 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HMAC secret for access tokens. Empty: generated once and kept in `<data_dir>/jwt.key`.
    /// Every node of a cluster must share one secret.
    pub jwt_secret: Secret,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    /// argon2id memory cost in KiB.
    pub argon2_memory_kib: u32,
    /// argon2id iterations.
    pub argon2_iterations: u32,
    /// Password hashes computed at once (each holds `argon2_memory_kib`); 0: one per core.
    pub hash_workers: usize,
    /// Failed logins allowed per (account, client address) within the window.
    pub login_max_failures: u32,
    /// Failed logins allowed per account from all addresses together within the window.
    pub login_max_failures_per_account: u32,
    /// Failed logins allowed per client address over all accounts within the window.
    pub login_max_failures_per_address: u32,
    pub login_window_secs: u64,
    /// Registrations allowed per client address within `register_window_secs` (0: no limit).
    pub register_max_per_address: u32,
    pub register_window_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: Secret::default(),
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            hash_workers: 0,
            login_max_failures: 5,
            login_max_failures_per_account: 50,
            login_max_failures_per_address: 100,
            login_window_secs: 300,
            register_max_per_address: 20,
            register_window_secs: 3600,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Maximum UTF-8 bytes of a message text.
    pub max_text_bytes: usize,
    /// Maximum bytes of a JSON request body.
    pub max_body_bytes: usize,
    /// Maximum members of a group.
    pub max_group_members: usize,
    /// Frames queued for one WebSocket before the server gives up on a slow client.
    pub ws_queue_frames: usize,
    /// Seconds between server pings.
    pub ws_ping_interval_secs: u64,
    /// Seconds without any frame from the client before the socket is closed.
    pub ws_idle_timeout_secs: u64,
    /// Maximum bytes of one incoming WebSocket frame.
    pub ws_max_frame_bytes: usize,
    /// Sends per user within `messages_window_secs` (HTTP and WebSocket alike; beyond it:
    /// 429 `too_many_messages`). 0: no limit.
    pub messages_per_user: u32,
    pub messages_window_secs: u64,
    /// Uploads per user within `uploads_window_secs` (beyond it: 429 `too_many_uploads`).
    pub uploads_per_user: u32,
    pub uploads_window_secs: u64,
    /// Frames one WebSocket's client may send per second and in a burst; past them the server
    /// stops reading that socket until the budget refills (0: no limit).
    pub ws_frames_per_sec: u32,
    pub ws_frames_burst: u32,
    /// WebSocket connections opened from one client address within `ws_connects_window_secs`
    /// (beyond it: 429 `too_many_connections`). 0: no limit.
    pub ws_connects_per_address: u32,
    pub ws_connects_window_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_text_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
            max_group_members: 2000,
            ws_queue_frames: 1024,
            ws_ping_interval_secs: 25,
            ws_idle_timeout_secs: 75,
            ws_max_frame_bytes: 64 * 1024,
            messages_per_user: 200,
            messages_window_secs: 10,
            uploads_per_user: 60,
            uploads_window_secs: 60,
            ws_frames_per_sec: 50,
            ws_frames_burst: 200,
            ws_connects_per_address: 300,
            ws_connects_window_secs: 60,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info,natter=debug`. `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Text, level: "info".into() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    /// `embedded` (tantivy, in `path`; one process), `postgres` (shared by a cluster) or `off`.
    pub backend: SearchBackend,
    /// Directory of the embedded index. Empty: `<data_dir>/search`.
    pub path: PathBuf,
    /// Database of the `postgres` index. Empty: `database.url` (which must then be PostgreSQL).
    pub postgres_url: String,
    /// The indexer makes its changes durable and searchable at most this often (0: after every
    /// batch of events). Whatever was not committed at a crash is caught up from the log.
    pub commit_interval_ms: u64,
}

/// The default `search.commit_interval_ms`: a message is searchable within half a second, and
/// the embedded index makes one segment per half second instead of one per message at chat rates
/// (each to be merged later), which took half of the server's CPU while sending.
pub const DEFAULT_COMMIT_INTERVAL_MS: u64 = 500;

impl SearchConfig {
    /// Whether messages are indexed and searchable at all.
    pub fn enabled(&self) -> bool {
        self.backend != SearchBackend::Off
    }
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            backend: SearchBackend::Embedded,
            path: PathBuf::new(),
            postgres_url: String::new(),
            commit_interval_ms: DEFAULT_COMMIT_INTERVAL_MS,
        }
    }
}

impl Config {
    /// Defaults, then the file (if any), then `NATTER_SECTION__KEY` variables.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                bail!("config file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file(file));
        }
        // Flags with their own variables (NATTER_CONFIG, NATTER_LISTEN, NATTER_DATA_DIR, NATTER_ROLES)
        // are not keys.
        figment =
            figment.merge(Env::prefixed("NATTER_").split("__").ignore(&["config", "listen", "data_dir", "roles"]));
        let config: Config = figment.extract().context("invalid configuration")?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let url = &self.database.url;
        if !(url.is_empty()
            || url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            bail!("database.url must be empty, sqlite:… or postgres://…");
        }
        if self.search.backend == SearchBackend::Postgres && !self.search_postgres_url().starts_with("postgres") {
            bail!("search.backend = \"postgres\" needs search.postgres_url or a postgres:// database.url");
        }
        if self.auth.access_token_ttl_secs == 0 || self.auth.refresh_token_ttl_secs == 0 {
            bail!("auth token lifetimes must be positive");
        }
        if argon2::Params::new(self.auth.argon2_memory_kib, self.auth.argon2_iterations, 1, None).is_err() {
            bail!("auth.argon2_memory_kib must be at least 8 and auth.argon2_iterations at least 1");
        }
        if self.auth.login_window_secs == 0 || self.auth.register_window_secs == 0 {
            bail!("auth.login_window_secs and auth.register_window_secs must be positive");
        }
        self.server.trusted_proxy_nets()?;
        if !self.server.node_id.is_empty() {
            self.server.node_id()?;
        }
        if !(self.redis.url.is_empty()
            || self.redis.url.starts_with("redis://")
            || self.redis.url.starts_with("unix://"))
        {
            bail!("redis.url must be empty, redis://… or unix://… (TLS is not built in)");
        }
        if self.redis.key_prefix.is_empty() || self.redis.key_prefix.contains(char::is_whitespace) {
            bail!("redis.key_prefix must be non-empty, without spaces");
        }
        if self.presence.route_ttl_secs == 0 {
            bail!("presence.route_ttl_secs must be positive");
        }
        if self.limits.max_group_members < 2 {
            bail!("limits.max_group_members must be at least 2");
        }
        if self.limits.ws_queue_frames == 0 {
            bail!("limits.ws_queue_frames must be positive");
        }
        self.files.validate()?;
        self.speech.validate()?;
        self.jobs.validate(self.bus.kind)?;
        self.delivery.validate(self.jobs.backend)?;
        Ok(())
    }

    /// The directory of the local blob store: `files.dir`, or `<data_dir>/files`.
    pub fn files_dir(&self) -> PathBuf {
        if self.files.dir.as_os_str().is_empty() { self.server.data_dir.join("files") } else { self.files.dir.clone() }
    }

    /// The commented example: [`EXAMPLE`] and the sections kept in their own modules.
    pub fn example() -> String {
        format!("{EXAMPLE}{}{}{}{}", files::EXAMPLE, cluster::EXAMPLE, crate::jobs::EXAMPLE, delivery::EXAMPLE)
    }

    /// The database URL in force: the configured one, or SQLite in the data dir.
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!("sqlite://{}", self.server.data_dir.join("natter.db").display())
        } else {
            self.database.url.clone()
        }
    }
}

impl Config {
    /// Directory of the embedded search index.
    pub fn search_path(&self) -> PathBuf {
        if self.search.path.as_os_str().is_empty() {
            self.server.data_dir.join("search")
        } else {
            self.search.path.clone()
        }
    }

    /// Database of the `postgres` search index.
    pub fn search_postgres_url(&self) -> String {
        if self.search.postgres_url.is_empty() { self.database.url.clone() } else { self.search.postgres_url.clone() }
    }
}

/// A commented config file with every key at its default (`natter config example`).
pub const EXAMPLE: &str = r#"# natter configuration. Every key can also be set from the environment as
# NATTER_<SECTION>__<KEY>, e.g. NATTER_DATABASE__URL or NATTER_LIMITS__MAX_TEXT_BYTES.
# Precedence: defaults < this file (--config) < environment < command-line flags.

[server]
# Address of the HTTP + WebSocket listener (also --listen / NATTER_LISTEN).
listen = "127.0.0.1:8080"
# Embedded data: SQLite database and the generated signing key (also --data-dir / NATTER_DATA_DIR).
data_dir = "./natter-data"
# Seconds given to open requests and sockets to finish on shutdown.
shutdown_grace_secs = 10
# Proxies (addresses or CIDR networks) whose X-Forwarded-For / X-Real-IP name the client, e.g.
# ["127.0.0.1", "10.0.0.0/8"] behind nginx. Empty: the TCP peer is the client. In the
# environment: a comma-separated list (NATTER_SERVER__TRUSTED_PROXIES=127.0.0.1,10.0.0.0/8).
trusted_proxies = []
# This node's identity in a cluster: its routes in Redis and its NATS subject <prefix>.gw.<id>.
# 1-64 of A-Z a-z 0-9 _ -. Empty: the host name and a random suffix, new at every start.
node_id = ""

[database]
# Empty: SQLite at <data_dir>/natter.db. Or sqlite://PATH, or postgres://user:pass@host:5432/db.
url = ""
# Connection pool size (for SQLite: readers; writes use one connection).
max_connections = 8

[bus]
# "memory" (one process) or "nats" (several processes share events).
kind = "memory"
nats_url = "nats://127.0.0.1:4222"
# Subject prefix, so several natter clusters can share one NATS server.
subject_prefix = "natter"

[redis]
# redis://host:port[/db]. Set: presence (which node holds which device of which user), the login
# throttle and, with bus.kind = "nats", targeted delivery (each event only to the nodes holding
# a recipient) are shared by every node. Empty: each process keeps its own (one node; a NATS
# cluster without Redis broadcasts every event to every node and presence is per node).
url = ""
# The first part of every key, so several clusters can share one Redis.
key_prefix = "natter"

[presence]
# Seconds a route and a node's heartbeat live in Redis without a refresh; nodes refresh and
# sweep dead nodes every third of it, so a dead node's users go offline within ~1.33 x this.
route_ttl_secs = 15

[auth]
# HMAC secret for access tokens. Empty: generated once into <data_dir>/jwt.key.
# Every process of a cluster must use the same secret.
jwt_secret = ""
access_token_ttl_secs = 900
refresh_token_ttl_secs = 2592000
# argon2id cost: memory in KiB and iterations.
argon2_memory_kib = 19456
argon2_iterations = 2
# Password hashes computed at once, each holding argon2_memory_kib (0: one per core); more wait.
hash_workers = 0
# Failed logins allowed within the window (then 429 rate_limited): per account and client
# address together, per account from all addresses, and per address over all accounts.
login_max_failures = 5
login_max_failures_per_account = 50
login_max_failures_per_address = 100
login_window_secs = 300
# Registrations allowed per client address within the window (0: no limit; then 429).
register_max_per_address = 20
register_window_secs = 3600

[limits]
# Largest message text in UTF-8 bytes (beyond it: 413 text_too_long).
max_text_bytes = 16384
# Largest JSON request body in bytes (beyond it: 413 payload_too_large).
max_body_bytes = 65536
# Largest group, owner included (beyond it: 409 group_full).
max_group_members = 2000
# Frames queued for one WebSocket; a client that falls this far behind is disconnected.
ws_queue_frames = 1024
# Seconds between server pings, and of client silence before the socket is closed.
ws_ping_interval_secs = 25
ws_idle_timeout_secs = 75
# Largest incoming WebSocket frame in bytes.
ws_max_frame_bytes = 65536
# Rate limits (0: none; shared by every node through Redis when one is configured). Sends per
# user per window, HTTP and WebSocket alike (beyond: 429 too_many_messages, with Retry-After).
messages_per_user = 200
messages_window_secs = 10
# Uploads per user per window (beyond: 429 too_many_uploads).
uploads_per_user = 60
uploads_window_secs = 60
# Frames one WebSocket's client may send per second, and in a burst; past them the server stops
# reading that socket until the budget refills (TCP holds the client back; nothing is lost).
ws_frames_per_sec = 50
ws_frames_burst = 200
# WebSocket connections opened from one client address per window (beyond: 429
# too_many_connections). Clients behind one NAT share an address: keep it generous.
ws_connects_per_address = 300
ws_connects_window_secs = 60

[log]
# "text" or "json". RUST_LOG overrides the level filter.
format = "text"
level = "info"

[search]
# Message search index: "embedded" (tantivy, files in `path`; one process only), "postgres"
# (table search_documents; every process of a cluster shares it) or "off" (no index: searches
# answer 503 search_unavailable). Rebuild with `natter search reindex`.
backend = "embedded"
# Directory of the embedded index. Empty: <data_dir>/search.
path = ""
# Database of the postgres index. Empty: database.url (which must then be postgres://…).
postgres_url = ""
# Commit indexing at most this often, in milliseconds (0: after every batch): how long a new
# message may take to become searchable. After a crash the index catches up from the message log
# past its last commit.
commit_interval_ms = 500
[speech]
# "auto" (whisper if the model below is in <data_dir>/models, else none), "none", "whisper"
# (embedded, pure Rust), "whisper-ctranslate2" (embedded CTranslate2, in a build with
# `--features ctranslate2`) or "openai" (an OpenAI-compatible /v1/audio/transcriptions server).
engine = "auto"
# Whisper model under <data_dir>/models/ (`natter models fetch tiny.en` or `base`).
model = "tiny.en"
# A model directory elsewhere (overrides model).
model_dir = ""
# Threads per transcription (0: one per core).
threads = 0
# Language hint (ISO 639-1) for multilingual models; empty: detected.
language = ""
# Transcriptions at once, and waiting (beyond it: 503 speech_busy; voice messages are skipped).
workers = 1
queue = 32
# Largest audio accepted (413 audio_too_large / audio_too_long).
max_audio_bytes = 26214400
max_audio_secs = 600
# For engine = "openai": base URL (without /v1/...), model name, bearer key (empty: none).
openai_base_url = ""
openai_model = "whisper-1"
openai_api_key = ""
openai_timeout_secs = 60
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_is_the_defaults() {
        let parsed: Config = toml::from_str(&Config::example()).expect("example parses");
        assert_eq!(toml::to_string(&parsed).ok(), toml::to_string(&Config::default()).ok());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(toml::from_str::<Config>("[server]\nlisten_on = \"x\"").is_err());
        assert!(toml::from_str::<Config>("[bus]\nkind = \"kafka\"").is_err());
        assert!(toml::from_str::<Config>("[files]\nbackend = \"ftp\"").is_err());
        assert!(toml::from_str::<Config>("[search]\nbackend = \"elastic\"").is_err());
    }

    #[test]
    fn files_backend_is_checked() {
        let mut config = Config::default();
        assert!(config.files_dir().ends_with("files"));
        config.files.backend = FilesBackend::S3;
        assert!(config.validate().is_err(), "s3 needs a bucket");
        config.files.s3.bucket = "b".into();
        assert!(config.validate().is_ok());
    }

    #[test]
    fn search_defaults_to_the_embedded_index_and_postgres_needs_a_url() {
        let mut config = Config::default();
        assert_eq!(config.search_path(), config.server.data_dir.join("search"));
        config.search.backend = SearchBackend::Postgres;
        assert!(config.validate().is_err(), "no postgres URL anywhere");
        config.database.url = "postgres://u@h/db".into();
        assert!(config.validate().is_ok());
        assert_eq!(config.search_postgres_url(), "postgres://u@h/db");
    }

    #[test]
    fn jobs_default_to_memory_and_jetstream_needs_nats() {
        let mut config = Config::default();
        assert_eq!(config.jobs.backend, crate::jobs::JobsBackend::Memory);
        let parsed: Config = toml::from_str("[jobs]\nbackend = \"jetstream\"").expect("parses");
        assert_eq!(parsed.jobs.backend, crate::jobs::JobsBackend::Jetstream);
        assert!(toml::from_str::<Config>("[jobs]\nbackend = \"kafka\"").is_err());
        config.jobs.backend = crate::jobs::JobsBackend::Jetstream;
        assert!(config.validate().is_err(), "no NATS bus");
        config.bus.kind = BusKind::Nats;
        assert!(config.validate().is_ok());
        config.jobs.ack_wait_secs = 0;
        assert!(config.validate().is_err());
    }

    #[test]
    fn sqlite_in_data_dir_by_default() {
        let config = Config::default();
        assert!(config.database_url().starts_with("sqlite://"));
        assert!(config.database_url().ends_with("natter.db"));
    }
}
