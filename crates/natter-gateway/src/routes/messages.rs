//! `/conversations/{id}/messages`, read markers, edits, recalls, reactions.

use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use natter_core::ids::{ConversationId, Seq, UserId};
use natter_core::service::messages::{Page, SendInput};
use natter_core::wire;
use natter_proto::{
    EditMessageRequest, ErrorBody, MessagePage, MessageView, ReadRequest, ReadResponse, SendMessageRequest,
};
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::{Auth, Json, Path, Query};
use crate::state::AppState;

/// 201 with the stored entry; 200 with the original entry for an idempotent resend.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages", tag = "messages", request_body = SendMessageRequest,
    responses((status = 201, body = MessageView), (status = 200, body = MessageView, description = "idempotent resend"),
              (status = 403, body = ErrorBody, description = "`blocked`, `not_friends`, `forbidden`"),
              (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "`client_msg_id_reused`, `message_recalled`"),
              (status = 413, body = ErrorBody),
              (status = 429, body = ErrorBody, description = "`too_many_messages`; see `Retry-After`")))]
pub(crate) async fn send(
    State(state): State<AppState>,
    Auth(me): Auth,
    Path(id): Path<String>,
    Json(body): Json<SendMessageRequest>,
) -> Result<(StatusCode, axum::Json<MessageView>), ApiError> {
    let started = Instant::now();
    let input = SendInput {
        client_msg_id: body.client_msg_id,
        kind: body.kind,
        text: body.text,
        file_id: body.file_id,
        reply_to: body.reply_to.map(Seq::new),
        mentions: body.mentions.into_iter().map(UserId).collect(),
    };
    let sent = state.api.messages.send(&me.user_id, &ConversationId(id), input).await?;
    let status = if sent.created {
        state.metrics.messages_sent.inc();
        state.metrics.send_latency.observe(started.elapsed().as_secs_f64());
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(wire::message_view(&sent.message))))
}

#[derive(Debug, Deserialize)]
pub(crate) struct HistoryParams {
    after_seq: Option<Seq>,
    before_seq: Option<Seq>,
    limit: Option<u32>,
}

/// `after_seq` pages forward (ascending); otherwise backward from `before_seq` (or the newest),
/// newest first.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", tag = "messages",
    params(("after_seq" = Option<i64>, Query), ("before_seq" = Option<i64>, Query), ("limit" = Option<u32>, Query, description = "1-200, default 50")),
    responses((status = 200, body = MessagePage), (status = 404, body = ErrorBody)))]
pub(crate) async fn history(
    State(state): State<AppState>,
    Auth(me): Auth,
    Path(id): Path<String>,
    Query(params): Query<HistoryParams>,
) -> Result<axum::Json<MessagePage>, ApiError> {
    let page = match (params.after_seq, params.before_seq) {
        (Some(_), Some(_)) => {
            return Err(ApiError::request(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "give after_seq or before_seq, not both",
            ));
        }
        (Some(after), None) => Page::After(after),
        (None, before) => Page::Before(before),
    };
    let (messages, has_more) = state.api.messages.history(&me.user_id, &ConversationId(id), page, params.limit).await?;
    Ok(axum::Json(MessagePage { messages: messages.iter().map(wire::message_view).collect(), has_more }))
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/read", tag = "messages", request_body = ReadRequest,
    responses((status = 200, body = ReadResponse), (status = 404, body = ErrorBody)))]
pub(crate) async fn mark_read(
    State(state): State<AppState>,
    Auth(me): Auth,
    Path(id): Path<String>,
    Json(body): Json<ReadRequest>,
) -> Result<axum::Json<ReadResponse>, ApiError> {
    let conversation = ConversationId(id);
    let (read_seq, unread_count) = state.api.messages.mark_read(&me.user_id, &conversation, Seq::new(body.seq)).await?;
    Ok(axum::Json(ReadResponse { conversation_id: conversation.0, read_seq: read_seq.get(), unread_count }))
}

#[utoipa::path(patch, path = "/api/v1/conversations/{id}/messages/{seq}", tag = "messages", request_body = EditMessageRequest,
    params(("id" = String, Path, description = "conversation id"), ("seq" = i64, Path, description = "the message's `seq`")),
    responses((status = 200, body = MessageView, description = "the `edit` entry"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn edit(
    State(state): State<AppState>,
    Auth(me): Auth,
    Path((id, seq)): Path<(String, Seq)>,
    Json(body): Json<EditMessageRequest>,
) -> Result<axum::Json<MessageView>, ApiError> {
    let entry = state.api.messages.edit(&me.user_id, &ConversationId(id), seq, &body.text).await?;
    Ok(axum::Json(wire::message_view(&entry)))
}

#[utoipa::path(delete, path = "/api/v1/conversations/{id}/messages/{seq}", tag = "messages",
    params(("id" = String, Path, description = "conversation id"), ("seq" = i64, Path, description = "the message's `seq`")),
    responses((status = 200, body = MessageView, description = "the `recall` entry"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn recall(
    State(state): State<AppState>,
    Auth(me): Auth,
    Path((id, seq)): Path<(String, Seq)>,
) -> Result<axum::Json<MessageView>, ApiError> {
    let entry = state.api.messages.recall(&me.user_id, &ConversationId(id), seq).await?;
    Ok(axum::Json(wire::message_view(&entry)))
}

#[utoipa::path(put, path = "/api/v1/conversations/{id}/messages/{seq}/reactions/{emoji}", tag = "messages",
    params(("id" = String, Path, description = "conversation id"), ("seq" = i64, Path, description = "the message's `seq`"), ("emoji" = String, Path)),
    responses((status = 200, body = MessageView, description = "the `reaction` entry, or the message itself when nothing changed"), (status = 404, body = ErrorBody)))]
pub(crate) async fn add_reaction(
    State(state): State<AppState>,
    Auth(me): Auth,
    Path((id, seq, emoji)): Path<(String, Seq, String)>,
) -> Result<axum::Json<MessageView>, ApiError> {
    let entry = state.api.messages.react(&me.user_id, &ConversationId(id), seq, &emoji, true).await?;
    Ok(axum::Json(wire::message_view(&entry)))
}

#[utoipa::path(delete, path = "/api/v1/conversations/{id}/messages/{seq}/reactions/{emoji}", tag = "messages",
    params(("id" = String, Path, description = "conversation id"), ("seq" = i64, Path, description = "the message's `seq`"), ("emoji" = String, Path)),
    responses((status = 200, body = MessageView, description = "the `reaction` entry, or the message itself when nothing changed"), (status = 404, body = ErrorBody)))]
pub(crate) async fn remove_reaction(
    State(state): State<AppState>,
    Auth(me): Auth,
    Path((id, seq, emoji)): Path<(String, Seq, String)>,
) -> Result<axum::Json<MessageView>, ApiError> {
    let entry = state.api.messages.react(&me.user_id, &ConversationId(id), seq, &emoji, false).await?;
    Ok(axum::Json(wire::message_view(&entry)))
}
