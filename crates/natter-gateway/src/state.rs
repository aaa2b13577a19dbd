//! What every handler can reach.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use natter_core::api::Api;
use natter_core::bus::Bus;
use natter_core::service::presence::PresenceService;

use crate::hub::Hub;
use crate::metrics::Metrics;

/// Gateway settings from the configuration.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    pub max_body_bytes: usize,
    pub ws_queue_frames: usize,
    pub ws_ping_interval: Duration,
    pub ws_idle_timeout: Duration,
    pub ws_max_frame_bytes: usize,
    /// Proxies whose `X-Forwarded-For` / `X-Real-IP` name the client (see `client_addr`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The process's roles, as `/readyz` reports them.
    pub roles: Vec<&'static str>,
    /// What else `/readyz` checks (the shared route table, discovery), each under its name.
    pub probes: Vec<Probe>,
    /// Frames a socket's client may send per second, and in a burst (0: no limit); past them the
    /// socket is not read until the budget refills.
    pub ws_frames_per_sec: u32,
    pub ws_frames_burst: u32,
    /// WebSocket connections opened per client address (`too_many_connections`).
    pub ws_connects: Option<natter_core::service::throttle::RateLimit>,
    /// Where `ws_connects` is counted: the cluster's, through Redis, when one is configured.
    pub throttle: SharedThrottle,
}

/// The rate-limit counters, shown by name in `Debug`.
#[derive(Clone)]
pub struct SharedThrottle(pub Arc<dyn natter_core::service::throttle::Throttle>);

impl std::fmt::Debug for SharedThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedThrottle")
    }
}

/// A dependency `/readyz` checks besides the chat services and the bus.
#[derive(Clone)]
pub struct Probe {
    pub name: &'static str,
    check: Arc<dyn Fn() -> BoxFuture<'static, bool> + Send + Sync>,
}

impl Probe {
    pub fn new<F, Fut>(name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        Self { name, check: Arc::new(move || Box::pin(check())) }
    }

    /// Whether the dependency answers now.
    pub async fn ready(&self) -> bool {
        (self.check)().await
    }
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe").field("name", &self.name).finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct AppState {
    /// The chat services: in this process, or over gRPC on a chat node.
    pub api: Api,
    /// This node's devices in the route table; announces presence transitions.
    pub presence: Arc<PresenceService>,
    pub bus: Arc<dyn Bus>,
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
    pub settings: Arc<GatewaySettings>,
}
