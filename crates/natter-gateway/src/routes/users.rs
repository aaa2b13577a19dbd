//! `/users/*`: profiles and search.

use axum::extract::State;
use axum::http::StatusCode;
use natter_core::ids::UserId;
use natter_core::service::users::ProfileChange;
use natter_core::wire;
use natter_proto::{ChangePasswordRequest, ErrorBody, UpdateProfileRequest, UserList, UserView};
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::{Auth, Json, Path, Query};
use crate::state::AppState;

#[utoipa::path(get, path = "/api/v1/users/me", tag = "users", responses((status = 200, body = UserView)))]
pub(crate) async fn me(State(state): State<AppState>, Auth(me): Auth) -> Result<axum::Json<UserView>, ApiError> {
    let user = state.api.users.get(&me.user_id).await?;
    Ok(axum::Json(wire::user_view(&user)))
}

#[utoipa::path(patch, path = "/api/v1/users/me", tag = "users", request_body = UpdateProfileRequest,
    responses((status = 200, body = UserView), (status = 400, body = ErrorBody)))]
pub(crate) async fn update_me(
    State(state): State<AppState>,
    Auth(me): Auth,
    Json(body): Json<UpdateProfileRequest>,
) -> Result<axum::Json<UserView>, ApiError> {
    let change = ProfileChange { nickname: body.nickname, bio: body.bio, avatar: body.avatar };
    let user = state.api.users.update_profile(&me.user_id, change).await?;
    Ok(axum::Json(wire::user_view(&user)))
}

#[utoipa::path(put, path = "/api/v1/users/me/password", tag = "users", request_body = ChangePasswordRequest,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn change_password(
    State(state): State<AppState>,
    Auth(me): Auth,
    Json(body): Json<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    state.api.accounts.change_password(&me, &body.old_password, &body.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users",
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_user(
    State(state): State<AppState>,
    Auth(_me): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<UserView>, ApiError> {
    let user = state.api.users.get(&UserId(id)).await?;
    Ok(axum::Json(wire::user_view(&user)))
}

#[derive(Debug, Deserialize)]
pub(crate) struct SearchParams {
    #[serde(default, alias = "q")]
    query: String,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    params(("query" = String, Query, description = "substring of username or nickname"), ("limit" = Option<u32>, Query)),
    responses((status = 200, body = UserList), (status = 400, body = ErrorBody)))]
pub(crate) async fn search(
    State(state): State<AppState>,
    Auth(_me): Auth,
    Query(params): Query<SearchParams>,
) -> Result<axum::Json<UserList>, ApiError> {
    let users = state.api.users.search(&params.query, params.limit).await?;
    Ok(axum::Json(UserList { users: users.iter().map(wire::user_view).collect() }))
}
