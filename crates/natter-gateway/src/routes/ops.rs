//! `/healthz`, `/readyz`, `/metrics`, `/openapi.json` (at the root, not under `/api/v1`).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use natter_proto::ErrorBody;
use utoipa::OpenApi;

use crate::openapi::ApiDoc;
use crate::state::AppState;

/// The process is up.
pub(crate) async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

/// The process can serve: the chat services answer (in this process, or a chat node over gRPC),
/// and so do their database, the bus and each configured shared dependency (`redis`, the route
/// table; `discovery`, this node's etcd registration). The body names the process's roles and
/// each dependency; one that is not configured is not listed.
pub(crate) async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let probes = &state.settings.probes;
    let (health, bus, probed) = tokio::join!(
        state.api.health.health(),
        state.bus.healthy(),
        futures_util::future::join_all(probes.iter().map(|probe| probe.ready())),
    );
    let chat = health.is_ok();
    let database = health.is_ok_and(|health| health.database);
    let ready = chat && database && bus && probed.iter().all(|ready| *ready);
    let mut body = serde_json::json!({
        "status": if ready { "ready" } else { "unavailable" },
        "roles": state.settings.roles,
        "chat": chat,
        "database": database,
        "bus": bus,
    });
    for (probe, ready) in probes.iter().zip(probed) {
        body[probe.name] = serde_json::Value::Bool(ready);
    }
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(body))
}

pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render())
}

pub(crate) async fn openapi() -> impl IntoResponse {
    axum::Json(ApiDoc::openapi())
}

/// Unknown paths get the API's error shape.
pub(crate) fn not_found() -> impl IntoResponse {
    (StatusCode::NOT_FOUND, axum::Json(ErrorBody::new("not_found", "no such route")))
}

pub(crate) async fn method_not_allowed() -> impl IntoResponse {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        axum::Json(ErrorBody::new("method_not_allowed", "method not allowed on this route")),
    )
}
