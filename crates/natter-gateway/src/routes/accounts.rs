//! `/auth/*`: register, login, refresh, logout, sessions.

use axum::extract::State;
use axum::http::StatusCode;
use natter_core::ids::SessionId;
use natter_core::service::accounts::Tokens;
use natter_core::wire;
use natter_proto::{AuthResponse, ErrorBody, LoginRequest, RefreshRequest, RegisterRequest, SessionList};

use crate::client_addr::ClientIp;
use crate::error::ApiError;
use crate::extract::{Auth, Json, Path};
use crate::state::AppState;

fn auth_response(tokens: Tokens) -> AuthResponse {
    AuthResponse {
        user: wire::user_view(&tokens.user),
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        expires_in: tokens.expires_in,
        session_id: tokens.session_id.0,
    }
}

#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = AuthResponse), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
               (status = 429, body = ErrorBody, description = "too many registrations from this address")))]
pub(crate) async fn register(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    Json(body): Json<RegisterRequest>,
) -> Result<(StatusCode, axum::Json<AuthResponse>), ApiError> {
    let tokens = state
        .api
        .accounts
        .register(&body.username, &body.password, body.nickname.as_deref(), body.device_name.as_deref(), client)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(auth_response(tokens))))
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = AuthResponse), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(crate) async fn login(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    Json(body): Json<LoginRequest>,
) -> Result<axum::Json<AuthResponse>, ApiError> {
    let tokens = state.api.accounts.login(&body.username, &body.password, body.device_name.as_deref(), client).await?;
    Ok(axum::Json(auth_response(tokens)))
}

#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = AuthResponse), (status = 401, body = ErrorBody)))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    Json(body): Json<RefreshRequest>,
) -> Result<axum::Json<AuthResponse>, ApiError> {
    let tokens = state.api.accounts.refresh(&body.refresh_token).await?;
    Ok(axum::Json(auth_response(tokens)))
}

/// Ends the session of the access token. A body (`LogoutRequest`) may be sent but is not needed:
/// the access token already names the session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub(crate) async fn logout(State(state): State<AppState>, Auth(me): Auth) -> Result<StatusCode, ApiError> {
    state.api.accounts.logout(&me).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/auth/sessions", tag = "auth", responses((status = 200, body = SessionList)))]
pub(crate) async fn sessions(
    State(state): State<AppState>,
    Auth(me): Auth,
) -> Result<axum::Json<SessionList>, ApiError> {
    let sessions = state.api.accounts.sessions(&me).await?;
    Ok(axum::Json(SessionList { sessions: sessions.iter().map(|s| wire::session_view(s, &me.session_id)).collect() }))
}

#[utoipa::path(delete, path = "/api/v1/auth/sessions/{id}", tag = "auth",
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub(crate) async fn revoke_session(
    State(state): State<AppState>,
    Auth(me): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.api.accounts.revoke_session(&me, &SessionId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
