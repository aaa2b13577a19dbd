//! `/friend-requests`, `/friends`, `/blocks`.

use axum::extract::State;
use axum::http::StatusCode;
use natter_core::ids::{FriendRequestId, UserId};
use natter_core::service::friends::FriendRequestDetail;
use natter_core::store::RequestDirection;
use natter_core::wire;
use natter_proto::{
    AcceptFriendResponse, BlockList, CreateFriendRequest, ErrorBody, FriendList, FriendRequestList, FriendRequestView,
    FriendView,
};
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::{Auth, Json, Path, Query};
use crate::state::AppState;

fn view(detail: &FriendRequestDetail) -> FriendRequestView {
    wire::friend_request_view(&detail.request, &detail.from, &detail.to)
}

#[utoipa::path(post, path = "/api/v1/friend-requests", tag = "friends", request_body = CreateFriendRequest,
    responses((status = 201, body = FriendRequestView), (status = 404, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn create_request(
    State(state): State<AppState>,
    Auth(me): Auth,
    Json(body): Json<CreateFriendRequest>,
) -> Result<(StatusCode, axum::Json<FriendRequestView>), ApiError> {
    let detail = state.api.friends.send_request(&me.user_id, &UserId(body.user_id), body.message.as_deref()).await?;
    Ok((StatusCode::CREATED, axum::Json(view(&detail))))
}

#[derive(Debug, Deserialize)]
pub(crate) struct DirectionParams {
    direction: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/friend-requests", tag = "friends",
    params(("direction" = Option<String>, Query, description = "incoming (default) or outgoing")),
    responses((status = 200, body = FriendRequestList)))]
pub(crate) async fn list_requests(
    State(state): State<AppState>,
    Auth(me): Auth,
    Query(params): Query<DirectionParams>,
) -> Result<axum::Json<FriendRequestList>, ApiError> {
    let direction = match params.direction.as_deref() {
        None | Some("incoming") => RequestDirection::Incoming,
        Some("outgoing") => RequestDirection::Outgoing,
        Some(_) => {
            return Err(ApiError::request(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "direction is incoming or outgoing",
            ));
        }
    };
    let requests = state.api.friends.requests(&me.user_id, direction).await?;
    Ok(axum::Json(FriendRequestList { requests: requests.iter().map(view).collect() }))
}

#[utoipa::path(post, path = "/api/v1/friend-requests/{id}/accept", tag = "friends",
    responses((status = 200, body = AcceptFriendResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn accept(
    State(state): State<AppState>,
    Auth(me): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<AcceptFriendResponse>, ApiError> {
    let (detail, conversation) = state.api.friends.accept(&me.user_id, &FriendRequestId(id)).await?;
    Ok(axum::Json(AcceptFriendResponse {
        request: view(&detail),
        conversation: wire::conversation_view(&conversation),
    }))
}

#[utoipa::path(post, path = "/api/v1/friend-requests/{id}/reject", tag = "friends",
    responses((status = 200, body = FriendRequestView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn reject(
    State(state): State<AppState>,
    Auth(me): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<FriendRequestView>, ApiError> {
    let detail = state.api.friends.reject(&me.user_id, &FriendRequestId(id)).await?;
    Ok(axum::Json(view(&detail)))
}

#[utoipa::path(post, path = "/api/v1/friend-requests/{id}/cancel", tag = "friends",
    responses((status = 200, body = FriendRequestView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Auth(me): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<FriendRequestView>, ApiError> {
    let detail = state.api.friends.cancel(&me.user_id, &FriendRequestId(id)).await?;
    Ok(axum::Json(view(&detail)))
}

#[utoipa::path(get, path = "/api/v1/friends", tag = "friends", responses((status = 200, body = FriendList)))]
pub(crate) async fn list_friends(
    State(state): State<AppState>,
    Auth(me): Auth,
) -> Result<axum::Json<FriendList>, ApiError> {
    let friends = state.api.friends.friends(&me.user_id).await?;
    let ids: Vec<UserId> = friends.iter().map(|friend| friend.user.id.clone()).collect();
    let online = state.presence.online(&ids).await;
    let friends = friends
        .into_iter()
        .zip(online)
        .map(|(friend, online)| FriendView {
            online,
            user: wire::user_view(&friend.user),
            since: friend.since,
            conversation_id: friend.conversation_id.0,
        })
        .collect();
    Ok(axum::Json(FriendList { friends }))
}

#[utoipa::path(delete, path = "/api/v1/friends/{user_id}", tag = "friends",
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub(crate) async fn remove_friend(
    State(state): State<AppState>,
    Auth(me): Auth,
    Path(user_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.api.friends.remove(&me.user_id, &UserId(user_id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(put, path = "/api/v1/blocks/{user_id}", tag = "friends",
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub(crate) async fn block(
    State(state): State<AppState>,
    Auth(me): Auth,
    Path(user_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.api.friends.block(&me.user_id, &UserId(user_id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/blocks/{user_id}", tag = "friends",
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub(crate) async fn unblock(
    State(state): State<AppState>,
    Auth(me): Auth,
    Path(user_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.api.friends.unblock(&me.user_id, &UserId(user_id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/blocks", tag = "friends", responses((status = 200, body = BlockList)))]
pub(crate) async fn list_blocks(
    State(state): State<AppState>,
    Auth(me): Auth,
) -> Result<axum::Json<BlockList>, ApiError> {
    let blocked = state.api.friends.blocked(&me.user_id).await?;
    Ok(axum::Json(BlockList { blocked: blocked.iter().map(wire::user_view).collect() }))
}
