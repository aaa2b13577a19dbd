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

/// The process can serve: its database and bus answer.
pub(crate) async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let database = state.services.deps.store.ping().await.is_ok();
    let bus = state.bus.healthy().await;
    let body = serde_json::json!({
        "status": if database && bus { "ready" } else { "unavailable" },
        "database": database,
        "bus": bus,
    });
    let status = if database && bus { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
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
