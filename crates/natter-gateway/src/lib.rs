//! natter's HTTP and WebSocket gateway (axum).
//!
//! Owns the routes, request parsing, the one error → HTTP mapping, authentication of requests,
//! the WebSocket protocol and the local socket hub. Calls services only; must not depend on a
//! store or bus adapter (it sees the ports, never sqlx or NATS).

pub mod client_addr;
mod drain;
pub mod error;
pub mod extract;
pub mod hub;
pub mod metrics;
pub mod openapi;
mod routes;
pub mod sequencer;
pub mod socket_queue;
pub mod state;
pub mod trace;
pub mod web;
pub mod ws;

use std::sync::Arc;
use std::time::Duration;

pub use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use natter_core::api::Api;
use natter_core::bus::Bus;
use natter_proto::ErrorBody;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

pub use state::{AppState, GatewaySettings, Probe, SharedThrottle};

use crate::hub::Hub;
use crate::metrics::Metrics;

/// Builds the state shared by every handler.
pub fn build_state(
    api: Api,
    presence: Arc<natter_core::service::presence::PresenceService>,
    bus: Arc<dyn Bus>,
    settings: GatewaySettings,
) -> AppState {
    let metrics = Arc::new(Metrics::default());
    let hub = Arc::new(Hub::new(settings.ws_queue_frames, metrics.clone()));
    AppState { api, presence, bus, hub, metrics, settings: Arc::new(settings) }
}

/// The whole HTTP surface: `/api/v1/…` plus the operational endpoints at the root.
pub fn router(state: AppState) -> Router {
    let max_body = state.settings.max_body_bytes;
    let max_upload = state.api.files.limits().max_upload_bytes;
    // A refused body is read up to the largest one a route accepts (an upload), for a while.
    let drain_limits = drain::DrainLimits {
        max_bytes: max_upload.saturating_add(routes::files::MULTIPART_OVERHEAD as u64),
        max_time: Duration::from_secs(30),
    };
    let web = web::WebClient::load();
    let assets = web.clone();
    Router::new()
        .nest("/api/v1", routes::api().merge(routes::files::router(max_upload)))
        .route("/healthz", get(routes::ops::healthz))
        .route("/readyz", get(routes::ops::readyz))
        .route("/metrics", get(routes::ops::metrics))
        .route("/openapi.json", get(routes::ops::openapi))
        .route(
            "/assets/{version}/{*path}",
            get(move |Path((version, path)): Path<(String, String)>, headers: HeaderMap| async move {
                assets.asset(&version, &path, &headers)
            }),
        )
        .fallback(
            move |method: Method, uri: Uri, headers: HeaderMap| async move { web.fallback(&method, &uri, &headers) },
        )
        .method_not_allowed_fallback(routes::ops::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track_http))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(drain_limits, drain::drain_unread_body))
        .layer(TraceLayer::new_for_http().make_span_with(trace::make_span))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(axum::middleware::map_response(no_sniff))
        .with_state(state)
}

/// Only the operational endpoints (`/healthz`, `/readyz`, `/metrics`): what a process without the
/// gateway role (a chat node, a worker) serves on its HTTP port.
pub fn ops_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(routes::ops::healthz))
        .route("/readyz", get(routes::ops::readyz))
        .route("/metrics", get(routes::ops::metrics))
        .fallback(|| async { routes::ops::not_found() })
        .with_state(state)
}

/// Every answer, JSON and errors included, is to be taken for its declared type: a browser must
/// not guess HTML or script into an API answer.
async fn no_sniff(mut response: Response) -> Response {
    response.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(ErrorBody::new("internal", "internal server error"))).into_response()
}

/// Closes every WebSocket with a "going away" frame and waits (up to `grace`) until they are gone.
pub async fn close_sockets(state: &AppState, grace: Duration) {
    state.hub.begin_shutdown();
    let deadline = tokio::time::Instant::now() + grace;
    while state.hub.socket_count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Serves `router` on `listener` (with the peer address available to handlers) until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Without TCP_NODELAY a small frame written while the previous one is unacknowledged waits
    // for that acknowledgement (Nagle's algorithm), which a client may delay by up to 40 ms:
    // pushes and acknowledgements are small frames, and their latency is the product.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY on a connection");
        }
    });
    axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}
