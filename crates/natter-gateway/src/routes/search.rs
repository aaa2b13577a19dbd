//! `/search/*`: full-text message search.

use axum::extract::State;
use natter_core::error::{DomainError, ErrorCode};
use natter_core::service::search::SearchInput;
use natter_core::wire;
use natter_proto::{ErrorBody, SearchHitView, SearchResults};
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::{Auth, Query};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub(crate) struct SearchMessagesParams {
    #[serde(default)]
    q: String,
    conversation_id: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    order: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/search/messages", tag = "search",
    params(
        ("q" = String, Query, description = "words (matched as word prefixes, case-insensitively) and CJK terms (matched as substrings, at least two characters); every term must match; at most 200 characters"),
        ("conversation_id" = Option<String>, Query, description = "search one conversation only (404 if the caller is not a member)"),
        ("limit" = Option<u32>, Query, description = "1-100, default 20"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
        ("order" = Option<String>, Query, description = "newest (default) or relevance"),
    ),
    responses((status = 200, body = SearchResults), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn search_messages(
    State(state): State<AppState>,
    Auth(me): Auth,
    Query(params): Query<SearchMessagesParams>,
) -> Result<axum::Json<SearchResults>, ApiError> {
    let limit = match params.limit.as_deref() {
        None => None,
        Some(text) => Some(
            text.parse::<u32>().map_err(|_| DomainError::invalid(ErrorCode::InvalidLimit, "limit must be 1-100"))?,
        ),
    };
    let input = SearchInput {
        q: params.q,
        conversation_id: params.conversation_id.filter(|id| !id.is_empty()),
        limit,
        cursor: params.cursor,
        order: params.order,
    };
    let found = state.api.search.messages(&me.user_id, input).await?;
    let hits = found
        .hits
        .into_iter()
        .map(|hit| SearchHitView {
            conversation_id: hit.message.conversation_id.0.clone(),
            seq: hit.message.seq.get(),
            message: wire::message_view(&hit.message),
            snippet: hit.snippet,
            score: hit.score,
        })
        .collect();
    Ok(axum::Json(SearchResults { hits, next_cursor: found.next_cursor }))
}
