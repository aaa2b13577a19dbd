//! Search results (`GET /api/v1/search/messages`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::MessageView;

/// One message that matched.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchHitView {
    pub conversation_id: String,
    pub seq: i64,
    /// The message as it is now (same view as history).
    pub message: MessageView,
    /// Part of the text around the first match, HTML-escaped, each match wrapped in
    /// `<mark>`…`</mark>`; `…` marks a cut end.
    pub snippet: String,
    /// Relevance score (higher is better) with `order=relevance`; `null` with `order=newest`.
    /// Scores are comparable within one search only.
    pub score: Option<f32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchResults {
    pub hits: Vec<SearchHitView>,
    /// Pass as `cursor` for the next page; `null` on the last page. A page may hold fewer than
    /// `limit` hits even when more follow.
    pub next_cursor: Option<String>,
}
