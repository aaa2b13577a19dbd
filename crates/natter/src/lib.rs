//! The natter binary's library: configuration and the composition root.
//!
//! This is the only crate that names concrete adapters (SQLite/PostgreSQL store, in-process/NATS
//! bus, local/S3 blob store, the media inspector, Redis for routes and the login throttle). It builds one [`Application`] and passes handles down; there is no global state.

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
use natter_core::api::Api;
use natter_core::blob::BlobStore;
use natter_core::bus::Bus;
use natter_core::clock::SystemClock;
use natter_core::notify::{Notifier, WorkerFanOut};
use natter_core::presence::{MemoryRoutes, NodeId, RouteTable};
use natter_core::service::accounts::AuthSettings;
use natter_core::service::files::{FileLimits, FilePorts};
use natter_core::service::presence::PresenceService;
use natter_core::service::throttle::{MemoryThrottle, RateLimit, Throttle};
use natter_core::service::{Deps, Limits, Services};
use natter_gateway::{AppState, GatewaySettings, Probe, SharedThrottle};
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

/// A built server: bound to its port(s), connected to what its roles need, not yet serving.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    config: Config,
    /// The chat role's gRPC listener, in a split deployment.
    grpc: Option<TcpListener>,
    /// The chat services this process runs (what its gRPC server serves).
    local_api: Option<Api>,
    /// This node in discovery, and the other nodes.
    discovery: natter_discovery::Discovery,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        let roles = config.cluster.roles;
        let bus = connect_bus(&config).await?;
        let node = config.server.node_id()?;
        let shared = SharedState::open(&config, &bus).await?;
        tracing::info!(%node, shared = shared.is_shared, targeted = shared.targeted, "node identity and delivery");
        // The chat and worker roles run the services on the database; a gateway alone has none.
        let services =
            if roles.chat || roles.worker { Some(build_services(&config, &bus, &shared).await?) } else { None };
        let local_api = services.clone().map(Api::local);
        let listener = TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.server.listen))?;
        let grpc = if config.cluster.serves_grpc() {
            let address = config.cluster.grpc_listen;
            Some(TcpListener::bind(address).await.with_context(|| format!("cannot listen for gRPC on {address}"))?)
        } else {
            None
        };
        let discovery = start_discovery(&config, &node, &listener, grpc.as_ref()).await?;
        let mut chat_client_handle = None;
        let api = match &local_api {
            Some(api) if roles.chat => api.clone(),
            _ if roles.gateway => {
                let client = Arc::new(chat_client(&config, &discovery)?);
                chat_client_handle = Some(client.clone());
                Api::from_one(client)
            }
            // A worker alone serves only its health, from its own services.
            _ => local_api.clone().context("a worker needs its services")?,
        };
        let settings = GatewaySettings {
            max_body_bytes: config.limits.max_body_bytes,
            ws_queue_frames: config.limits.ws_queue_frames,
            ws_ping_interval: Duration::from_secs(config.limits.ws_ping_interval_secs),
            ws_idle_timeout: Duration::from_secs(config.limits.ws_idle_timeout_secs),
            ws_max_frame_bytes: config.limits.ws_max_frame_bytes,
            trusted_proxies: config.server.trusted_proxy_nets()?,
            roles: roles.names(),
            probes: probes(&shared, &discovery, &config),
            ws_frames_per_sec: config.limits.ws_frames_per_sec,
            ws_frames_burst: config.limits.ws_frames_burst,
            ws_connects: RateLimit::per(config.limits.ws_connects_per_address, config.limits.ws_connects_window_secs),
            throttle: SharedThrottle(shared.throttle.clone()),
        };
        // Presence is the gateway's: its sockets' routes, announced to friends it asks the chat
        // services for, through the same route table the services read online flags from.
        let presence_notifier = shared.notifier(&bus);
        let presence = Arc::new(PresenceService::new(
            shared.routes.clone(),
            api.friends.clone(),
            presence_notifier,
            node.clone(),
            route_ttl(&config),
        ));
        let state = natter_gateway::build_state(api, presence.clone(), bus.clone(), settings);
        if roles.gateway {
            // Subscribe before serving so that no event published after start-up is missed.
            let events = bus.subscribe_node(&node).await.context("cannot subscribe to the bus")?;
            tokio::spawn(state.hub.clone().run_dispatcher(events, shared.targeted));
            if shared.is_shared {
                // Beats this node's heartbeat right away, then every TTL/3 with the sweep.
                tokio::spawn(presence.run_maintenance());
            }
        }
        if roles.worker
            && let Some(services) = &services
        {
            let deps = &services.deps;
            if let Some(index) = &deps.search {
                search::start_indexer(deps.store.clone(), index.clone(), &bus, &config.search, shared.targeted).await?;
            }
        }
        if let Some(client) = &chat_client_handle {
            client.report_to(state.metrics.clone());
        }
        // Workers run the jobs; a memory queue is seen only by its own process, so there the
        // chat role (which queues them) runs them too.
        let runs_jobs = roles.worker || (roles.chat && config.jobs.backend == jobs::JobsBackend::Memory);
        if runs_jobs
            && let Some(services) = &services
            && let Some(queue) = &services.jobs
        {
            let metrics: Arc<dyn natter_core::fan_out::FanOutMetrics> = state.metrics.clone();
            jobs::start_consumers(&config, queue, services, metrics).await?;
            jobs::requeue_lost_transcriptions(services.clone());
        }
        tracing::info!(roles = %roles, "natter built");
        Ok(Self { listener, state, config, grpc, local_api, discovery })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.server.listen)
    }

    /// Where the chat role serves gRPC, in a split deployment.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc.as_ref().and_then(|listener| listener.local_addr().ok())
    }

    /// Serves until SIGINT or SIGTERM.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_with_shutdown(shutdown_signal()).await
    }

    /// Serves until `signal` completes, then closes every WebSocket with a close frame and lets
    /// HTTP requests (and gRPC calls) in flight finish.
    pub async fn run_with_shutdown(self, signal: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let state = self.state.clone();
        let grace = Duration::from_secs(self.config.server.shutdown_grace_secs);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let grpc = match (self.grpc, self.local_api) {
            (Some(listener), Some(api)) => {
                tracing::info!(address = %listener.local_addr()?, "serving the chat services over gRPC");
                let mut stopped = stopped.clone();
                let shutdown = async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                };
                Some(tokio::spawn(natter_rpc::server::serve(api, listener, shutdown)))
            }
            _ => None,
        };
        let router = if self.config.cluster.roles.gateway {
            natter_gateway::router(self.state)
        } else {
            natter_gateway::ops_router(self.state)
        };
        tracing::info!(address = %self.listener.local_addr()?, "natter is serving");
        let shutdown = async move {
            signal.await;
            tracing::info!("shutting down: closing WebSockets");
            natter_gateway::close_sockets(&state, grace).await;
            let _ = stop.send(true);
        };
        let served = natter_gateway::serve(self.listener, router, shutdown).await.context("server failed");
        // Leave discovery at once (a crashed node's entry expires with its lease instead).
        self.discovery.stop().await;
        if let Some(grpc) = grpc {
            grpc.await.context("the gRPC server panicked")?.context("the gRPC server failed")?;
        }
        served
    }
}

/// The chat services on the configured database, bus, search index, files and speech engine.
async fn build_services(config: &Config, bus: &Arc<dyn Bus>, shared: &SharedState) -> anyhow::Result<Arc<Services>> {
    data_dir::prepare(&config.server.data_dir)?;
    let store = SqlStore::connect(&config.database_url(), config.database.max_connections)
        .await
        .context("cannot open the database")?;
    let jwt_secret = secret::jwt_secret(config).await?;
    let limits = Limits {
        max_text_bytes: config.limits.max_text_bytes,
        max_group_members: config.limits.max_group_members,
        messages: RateLimit::per(config.limits.messages_per_user, config.limits.messages_window_secs),
        uploads: RateLimit::per(config.limits.uploads_per_user, config.limits.uploads_window_secs),
    };
    let store: Arc<dyn natter_core::store::Store> = Arc::new(store);
    let search_index = search::open_index(config, 1).await?;
    // Jobs are queued by chat nodes (transcriptions, large groups' fan-out) and run by workers.
    let job_queue = jobs::open_queue(config).await?;
    let fan_out = WorkerFanOut { jobs: job_queue.clone(), above: config.delivery.worker_fanout_above };
    let deps = Deps::new(store, bus.clone(), Arc::new(SystemClock), limits);
    let deps = match search_index {
        Some(index) => deps.with_search(index),
        None => deps,
    };
    let deps = deps
        .with_shared_state(shared.routes.clone(), shared.throttle.clone(), shared.targeted)
        .with_worker_fan_out(fan_out);
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
        blobs: open_blobs(config).await?,
        media: Arc::new(speech::MediaWithAudio(natter_media::Media::with_max_pixels(config.files.max_image_pixels))),
        limits: file_limits(config),
    };
    let speech = speech::build(&config.speech, &config.server.data_dir)?;
    Ok(Arc::new(Services::new(deps, auth, file_ports).with_speech(speech).with_jobs(job_queue)))
}

/// The route table and limits a node shares with the others (Redis), or this process's own.
struct SharedState {
    routes: Arc<dyn RouteTable>,
    throttle: Arc<dyn Throttle>,
    /// A Redis is configured: routes and limits are the cluster's.
    is_shared: bool,
    /// Events go only to the nodes holding a recipient's device (Redis + per-node subjects).
    targeted: bool,
    redis: Option<natter_redis::Redis>,
}

impl SharedState {
    async fn open(config: &Config, bus: &Arc<dyn Bus>) -> anyhow::Result<Self> {
        if config.redis.url.is_empty() {
            return Ok(Self {
                routes: Arc::new(MemoryRoutes::default()),
                throttle: Arc::new(MemoryThrottle::default()),
                is_shared: false,
                targeted: false,
                redis: None,
            });
        }
        let redis = natter_redis::Redis::connect(&config.redis.url, &config.redis.key_prefix)
            .await
            .with_context(|| format!("cannot connect to Redis at {}", config.redis.url))?;
        Ok(Self {
            routes: Arc::new(natter_redis::RedisRoutes::new(redis.clone(), route_ttl(config))),
            throttle: Arc::new(natter_redis::RedisThrottle::new(redis.clone())),
            is_shared: true,
            // Targeted only with both a shared route table and per-node subjects; else broadcast.
            targeted: bus.has_node_subjects(),
            redis: Some(redis),
        })
    }

    /// A notifier for what the gateway publishes itself (presence), delivered like the rest.
    fn notifier(&self, bus: &Arc<dyn Bus>) -> Notifier {
        let notifier = Notifier::new(bus.clone());
        if self.targeted { notifier.targeted(self.routes.clone()) } else { notifier }
    }
}

/// What `/readyz` checks besides the chat services and the bus: Redis (the route table) when
/// configured, and this node's etcd registration (held, and renewed within the lease's TTL).
fn probes(shared: &SharedState, discovery: &natter_discovery::Discovery, config: &Config) -> Vec<Probe> {
    let mut probes = Vec::new();
    if let Some(redis) = &shared.redis {
        let redis = redis.clone();
        probes.push(Probe::new("redis", move || {
            let redis = redis.clone();
            async move { tokio::time::timeout(PROBE_TIMEOUT, redis.healthy()).await.unwrap_or(false) }
        }));
    }
    if let (Some(registration), natter_discovery::DiscoveryConfig::Etcd(etcd)) =
        (discovery.registration(), &config.discovery)
    {
        let state = registration.watch_state();
        let ttl = etcd.lease_ttl();
        probes.push(Probe::new("discovery", move || {
            let state = *state.borrow();
            async move { state.is_registered() && state.last_renewed.is_some_and(|at| at.elapsed() < ttl) }
        }));
    }
    probes
}

/// How long `/readyz` waits for one dependency.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

fn route_ttl(config: &Config) -> Duration {
    Duration::from_secs(config.presence.route_ttl_secs)
}

fn file_limits(config: &Config) -> FileLimits {
    FileLimits {
        max_upload_bytes: config.files.max_upload_bytes,
        quota_bytes: config.files.quota_bytes,
        ..FileLimits::default()
    }
}

/// Registers this node (its id, roles and addresses) and follows the others.
async fn start_discovery(
    config: &Config,
    node: &NodeId,
    listener: &TcpListener,
    grpc: Option<&TcpListener>,
) -> anyhow::Result<natter_discovery::Discovery> {
    let grpc_addr = match (config.cluster.grpc_advertise.as_str(), grpc) {
        ("", Some(grpc)) => grpc.local_addr()?.to_string(),
        (advertised, _) => advertised.to_owned(),
    };
    let this = natter_discovery::Node {
        id: node.to_string(),
        roles: config.cluster.roles.names().into_iter().map(str::to_owned).collect(),
        grpc_addr,
        http_addr: Some(listener.local_addr()?.to_string()),
    };
    tracing::info!(node = %this.id, "joining the cluster");
    natter_discovery::Discovery::start(&config.discovery, this).await.context("cannot start discovery")
}

/// A gateway's client of the chat nodes: those discovery lists, or `cluster.chat_nodes`.
fn chat_client(config: &Config, discovery: &natter_discovery::Discovery) -> anyhow::Result<natter_rpc::ChatClient> {
    let settings = natter_rpc::ClientSettings {
        timeout: Duration::from_secs(config.cluster.rpc_timeout_secs.max(1)),
        file_limits: file_limits(config),
        max_audio_bytes: config.speech.max_audio_bytes,
        ..natter_rpc::ClientSettings::default()
    };
    if config.discovery == natter_discovery::DiscoveryConfig::None {
        let nodes = config.cluster.chat_nodes.clone();
        if nodes.is_empty() {
            anyhow::bail!(
                "a gateway without the chat role needs chat nodes: set [discovery] or cluster.chat_nodes \
                 (NATTER_CLUSTER__CHAT_NODES)"
            );
        }
        return Ok(natter_rpc::ChatClient::fixed(nodes, settings));
    }
    // Follow discovery: the gRPC addresses of the live nodes with the chat role.
    let chat_addresses = |nodes: &[natter_discovery::Node]| -> Vec<String> {
        natter_discovery::nodes_with_role(nodes, "chat").map(|node| node.grpc_addr.clone()).collect()
    };
    let mut nodes = discovery.nodes();
    let (sender, receiver) = tokio::sync::watch::channel(chat_addresses(&nodes.borrow_and_update()));
    tokio::spawn(async move {
        while nodes.changed().await.is_ok() {
            let addresses = chat_addresses(&nodes.borrow_and_update());
            if sender.send(addresses).is_err() {
                break;
            }
        }
    });
    Ok(natter_rpc::ChatClient::new(receiver, settings))
}

async fn connect_bus(config: &Config) -> anyhow::Result<Arc<dyn Bus>> {
    Ok(match config.bus.kind {
        config::BusKind::Nats => Arc::new(
            NatsBus::connect(&config.bus.nats_url, &config.bus.subject_prefix)
                .await
                .with_context(|| format!("cannot connect to NATS at {}", config.bus.nats_url))?,
        ),
        config::BusKind::Memory => Arc::new(MemoryBus::new(65_536)),
    })
}

async fn open_blobs(config: &Config) -> anyhow::Result<Arc<dyn BlobStore>> {
    Ok(match config.files.backend {
        config::FilesBackend::S3 => {
            let s3 = &config.files.s3;
            let settings = natter_blob::S3Settings {
                endpoint: s3.endpoint.clone(),
                bucket: s3.bucket.clone(),
                region: s3.region.clone(),
                access_key: s3.access_key.clone(),
                secret_key: s3.secret_key.expose().to_owned(),
                path_style: s3.path_style,
                allow_http: s3.allow_http,
            };
            Arc::new(natter_blob::S3Blobs::new(&settings).context("cannot configure S3 file storage")?)
        }
        config::FilesBackend::Local => {
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
