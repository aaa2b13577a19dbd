//! `/conversations` and their members.

use axum::extract::State;
use axum::http::StatusCode;
use natter_core::ids::{ConversationId, UserId};
use natter_core::model::{Member, MemberRole, User};
use natter_core::service::conversations::{ConversationChange, NewGroup};
use natter_core::wire;
use natter_proto::{
    AddMembersRequest, ConversationList, ConversationView, CreateConversationRequest, ErrorBody, MemberList,
    UpdateConversationRequest, UpdateMemberRequest,
};

use crate::error::ApiError;
use crate::extract::{Auth, Json, Path};
use crate::state::AppState;

fn member_list(members: &[(Member, User)]) -> MemberList {
    MemberList { members: members.iter().map(|(m, u)| wire::member_view(m, u)).collect() }
}

#[utoipa::path(get, path = "/api/v1/conversations", tag = "conversations", responses((status = 200, body = ConversationList)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Auth(me): Auth,
) -> Result<axum::Json<ConversationList>, ApiError> {
    let list = state.api.conversations.list(&me.user_id).await?;
    Ok(axum::Json(ConversationList { conversations: list.iter().map(wire::conversation_view).collect() }))
}

#[utoipa::path(post, path = "/api/v1/conversations", tag = "conversations", request_body = CreateConversationRequest,
    responses((status = 201, body = ConversationView), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody, description = "`blocked`: one of you blocked the other"),
              (status = 404, body = ErrorBody, description = "`not_found`: an unknown member id"),
              (status = 409, body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    Auth(me): Auth,
    Json(body): Json<CreateConversationRequest>,
) -> Result<(StatusCode, axum::Json<ConversationView>), ApiError> {
    if body.kind != "group" {
        return Err(ApiError::request(
            StatusCode::BAD_REQUEST,
            "invalid_kind",
            "only groups are created here; direct conversations come from accepted friend requests",
        ));
    }
    let group = NewGroup {
        name: body.name,
        member_ids: body.member_ids.into_iter().map(UserId).collect(),
        avatar: body.avatar,
        announcement: body.announcement,
    };
    let summary = state.api.conversations.create_group(&me.user_id, group).await?;
    Ok((StatusCode::CREATED, axum::Json(wire::conversation_view(&summary))))
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "conversations",
    responses((status = 200, body = ConversationView), (status = 404, body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    Auth(me): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<ConversationView>, ApiError> {
    let summary = state.api.conversations.get(&me.user_id, &ConversationId(id)).await?;
    Ok(axum::Json(wire::conversation_view(&summary)))
}

#[utoipa::path(patch, path = "/api/v1/conversations/{id}", tag = "conversations", request_body = UpdateConversationRequest,
    responses((status = 200, body = ConversationView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn update(
    State(state): State<AppState>,
    Auth(me): Auth,
    Path(id): Path<String>,
    Json(body): Json<UpdateConversationRequest>,
) -> Result<axum::Json<ConversationView>, ApiError> {
    let change =
        ConversationChange { name: body.name, announcement: body.announcement, avatar: body.avatar, muted: body.muted };
    let summary = state.api.conversations.update(&me.user_id, &ConversationId(id), change).await?;
    Ok(axum::Json(wire::conversation_view(&summary)))
}

#[utoipa::path(delete, path = "/api/v1/conversations/{id}", tag = "conversations",
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn dissolve(
    State(state): State<AppState>,
    Auth(me): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.api.conversations.dissolve(&me.user_id, &ConversationId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}/members", tag = "conversations",
    responses((status = 200, body = MemberList), (status = 404, body = ErrorBody)))]
pub(crate) async fn members(
    State(state): State<AppState>,
    Auth(me): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<MemberList>, ApiError> {
    let members = state.api.conversations.members(&me.user_id, &ConversationId(id)).await?;
    Ok(axum::Json(member_list(&members)))
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/members", tag = "conversations", request_body = AddMembersRequest,
    responses((status = 200, body = MemberList), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn add_members(
    State(state): State<AppState>,
    Auth(me): Auth,
    Path(id): Path<String>,
    Json(body): Json<AddMembersRequest>,
) -> Result<axum::Json<MemberList>, ApiError> {
    let users = body.user_ids.into_iter().map(UserId).collect();
    let members = state.api.conversations.add_members(&me.user_id, &ConversationId(id), users).await?;
    Ok(axum::Json(member_list(&members)))
}

#[utoipa::path(patch, path = "/api/v1/conversations/{id}/members/{user_id}", tag = "conversations", request_body = UpdateMemberRequest,
    responses((status = 200, body = MemberList), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn update_member(
    State(state): State<AppState>,
    Auth(me): Auth,
    Path((id, user_id)): Path<(String, String)>,
    Json(body): Json<UpdateMemberRequest>,
) -> Result<axum::Json<MemberList>, ApiError> {
    let role = MemberRole::parse(&body.role)
        .ok_or_else(|| ApiError::request(StatusCode::BAD_REQUEST, "invalid_role", "role is owner, admin or member"))?;
    let conversation = ConversationId(id);
    let conversations = &state.api.conversations;
    conversations.set_role(&me.user_id, &conversation, &UserId(user_id), role).await?;
    let members = conversations.members(&me.user_id, &conversation).await?;
    Ok(axum::Json(member_list(&members)))
}

#[utoipa::path(delete, path = "/api/v1/conversations/{id}/members/{user_id}", tag = "conversations",
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn remove_member(
    State(state): State<AppState>,
    Auth(me): Auth,
    Path((id, user_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.api.conversations.remove_member(&me.user_id, &ConversationId(id), &UserId(user_id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
