//! The natter binary's library: configuration and the composition root.
//!
//! This is the only crate that names concrete adapters (SQLite/PostgreSQL store, in-process/NATS
//! bus, local/S3 blob store, the media inspector). It builds one [`Application`] and passes handles down; there is no global state.

pub mod config;
pub mod data_dir;
pub mod jobs;
pub mod search;
mod secret;
pub mod speech;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use natter_bus::{MemoryBus, NatsBus};
use natter_core::blob::BlobStore;
use natter_core::bus::Bus;
use natter_core::clock::SystemClock;
use natter_core::service::accounts::AuthSettings;
use natter_core::service::files::{FileLimits, FilePorts};
use natter_core::service::{Deps, Limits, Services};
use natter_gateway::{AppState, GatewaySettings};
use natter_store::SqlStore;
use tokio::net::TcpListener;

pub use config::Config;

/// Makes ring rustls's process-wide crypto provider, unless one is installed already. reqwest
/// (S3 through object_store, the speech engines, model fetching) is built without a provider of
/// its own, which would be aws-lc-rs and need cmake, and panics when it builds a client before
/// one is installed: `main` and the test harnesses call this first.
pub fn install_crypto_provider() {
    // An error means that a provider is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A built server: bound to its port, connected to its database and bus, not yet serving.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    config: Config,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        data_dir::prepare(&config.server.data_dir)?;
        let store = SqlStore::connect(&config.database_url(), config.database.max_connections)
            .await
            .context("cannot open the database")?;
        let bus = connect_bus(&config).await?;
        let jwt_secret = secret::jwt_secret(&config).await?;
        let limits =
            Limits { max_text_bytes: config.limits.max_text_bytes, max_group_members: config.limits.max_group_members };
        let store: Arc<dyn natter_core::store::Store> = Arc::new(store);
        let search_index = search::open_index(&config, 1).await?;
        let deps =
            Deps::new(store.clone(), bus.clone(), Arc::new(SystemClock), limits).with_search(search_index.clone());
        let auth = AuthSettings {
            jwt_secret,
            access_token_ttl: Duration::from_secs(config.auth.access_token_ttl_secs),
            refresh_token_ttl: Duration::from_secs(config.auth.refresh_token_ttl_secs),
            argon2_memory_kib: config.auth.argon2_memory_kib,
            argon2_iterations: config.auth.argon2_iterations,
            hash_workers: config.auth.hash_workers,
            login_max_failures: config.auth.login_max_failures,
            login_max_failures_per_account: config.auth.login_max_failures_per_account,
            login_max_failures_per_address: config.auth.login_max_failures_per_address,
            login_window: Duration::from_secs(config.auth.login_window_secs),
            register_max_per_address: config.auth.register_max_per_address,
            register_window: Duration::from_secs(config.auth.register_window_secs),
        };
        let file_ports = FilePorts {
            blobs: open_blobs(&config).await?,
            media: Arc::new(speech::MediaWithAudio(natter_media::Media::with_max_pixels(
                config.files.max_image_pixels,
            ))),
            limits: FileLimits {
                max_upload_bytes: config.files.max_upload_bytes,
                quota_bytes: config.files.quota_bytes,
                ..FileLimits::default()
            },
        };
        let speech = speech::build(&config.speech, &config.server.data_dir)?;
        let job_queue = jobs::open_queue(&config).await?;
        let services = Arc::new(Services::new(deps, auth, file_ports).with_speech(speech).with_jobs(job_queue.clone()));
        let settings = GatewaySettings {
            max_body_bytes: config.limits.max_body_bytes,
            ws_queue_frames: config.limits.ws_queue_frames,
            ws_ping_interval: Duration::from_secs(config.limits.ws_ping_interval_secs),
            ws_idle_timeout: Duration::from_secs(config.limits.ws_idle_timeout_secs),
            ws_max_frame_bytes: config.limits.ws_max_frame_bytes,
            trusted_proxies: config.server.trusted_proxy_nets()?,
        };
        let state = natter_gateway::build_state(services.clone(), bus.clone(), settings);
        // Subscribe before serving so that no event published after start-up is missed.
        let events = bus.subscribe().await.context("cannot subscribe to the bus")?;
        tokio::spawn(state.hub.clone().run_dispatcher(events));
        search::start_indexer(store, search_index, &bus, &config.search).await?;
        // Every process runs jobs for now; with roles, only workers will.
        jobs::start_consumers(&config.jobs, &job_queue, &services).await?;
        let listener = TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.server.listen))?;
        Ok(Self { listener, state, config })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.server.listen)
    }

    /// Serves until SIGINT or SIGTERM.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_with_shutdown(shutdown_signal()).await
    }

    /// Serves until `signal` completes, then closes every WebSocket with a close frame and lets
    /// HTTP requests in flight finish.
    pub async fn run_with_shutdown(self, signal: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let state = self.state.clone();
        let grace = Duration::from_secs(self.config.server.shutdown_grace_secs);
        let router = natter_gateway::router(self.state);
        tracing::info!(address = %self.listener.local_addr()?, "natter is serving");
        let shutdown = async move {
            signal.await;
            tracing::info!("shutting down: closing WebSockets");
            natter_gateway::close_sockets(&state, grace).await;
        };
        natter_gateway::serve(self.listener, router, shutdown).await.context("server failed")
    }
}

async fn connect_bus(config: &Config) -> anyhow::Result<Arc<dyn Bus>> {
    Ok(match config.bus.kind.as_str() {
        "nats" => Arc::new(
            NatsBus::connect(&config.bus.nats_url, &config.bus.subject_prefix)
                .await
                .with_context(|| format!("cannot connect to NATS at {}", config.bus.nats_url))?,
        ),
        _ => Arc::new(MemoryBus::new(65_536)),
    })
}

async fn open_blobs(config: &Config) -> anyhow::Result<Arc<dyn BlobStore>> {
    Ok(match config.files.backend.as_str() {
        "s3" => {
            let s3 = &config.files.s3;
            let settings = natter_blob::S3Settings {
                endpoint: s3.endpoint.clone(),
                bucket: s3.bucket.clone(),
                region: s3.region.clone(),
                access_key: s3.access_key.clone(),
                secret_key: s3.secret_key.clone(),
                path_style: s3.path_style,
                allow_http: s3.allow_http,
            };
            Arc::new(natter_blob::S3Blobs::new(&settings).context("cannot configure S3 file storage")?)
        }
        _ => {
            let dir = config.files_dir();
            Arc::new(
                natter_blob::LocalBlobs::open(&dir)
                    .await
                    .with_context(|| format!("cannot open the file directory {}", dir.display()))?,
            )
        }
    })
}

async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
