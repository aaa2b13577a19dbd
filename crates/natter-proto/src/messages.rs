//! Message log entries and the requests that append to it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Body of `POST /conversations/{id}/messages` (and of the WebSocket `send` frame).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SendMessageRequest {
    /// Client-chosen idempotency key (1–64 chars); resending it returns the original entry.
    #[schema(min_length = 1, max_length = 64)]
    pub client_msg_id: String,
    /// `text` | `image` | `file` | `voice`
    #[schema(schema_with = send_kind)]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub file_id: Option<String>,
    /// `seq` of the entry this one replies to.
    #[serde(default)]
    pub reply_to: Option<i64>,
    /// User ids mentioned.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub mentions: Vec<String>,
}

fn send_kind() -> utoipa::openapi::Object {
    crate::string_enum(&["text", "image", "file", "voice"])
}

/// One entry of a conversation's log, with the current state of the message folded in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MessageView {
    pub id: String,
    pub conversation_id: String,
    pub seq: i64,
    pub sender_id: String,
    /// `text` | `image` | `file` | `voice` | `edit` | `recall` | `reaction` | `system` | `transcript`
    pub kind: String,
    pub client_msg_id: Option<String>,
    pub text: Option<String>,
    pub file_id: Option<String>,
    /// For `image`, `file` and `voice`: the file `file_id` names (absent once recalled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<crate::files::FileView>,
    pub reply_to: Option<i64>,
    pub mentions: Vec<String>,
    /// For `edit`, `recall`, `reaction` and `transcript`: the `seq` of the entry they change.
    pub target_seq: Option<i64>,
    /// For `reaction`: the emoji.
    pub emoji: Option<String>,
    /// For `reaction`: `add` | `remove`.
    pub op: Option<String>,
    /// For `system`: what happened.
    pub system: Option<SystemEvent>,
    /// Set when a later `edit` entry changed this message.
    pub edited_at: Option<DateTime<Utc>>,
    /// True when a later `recall` entry withdrew it (text and file are then gone).
    pub recalled: bool,
    pub reactions: Vec<ReactionSummary>,
    pub created_at: DateTime<Utc>,
    /// For `voice`: the speech-to-text transcript, once a `transcript` entry (whose `text` it
    /// is) has been appended. Absent until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReactionSummary {
    pub emoji: String,
    pub count: u64,
    pub user_ids: Vec<String>,
}

/// What a `system` entry records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SystemEvent {
    /// `group_created` | `members_added` | `member_removed` | `member_left` | `renamed` |
    /// `announcement_changed` | `role_changed` | `owner_transferred` | `dissolved`
    pub event: String,
    pub actor_id: String,
    #[serde(default)]
    pub user_ids: Vec<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MessagePage {
    pub messages: Vec<MessageView>,
    /// True when more entries exist in the direction asked.
    pub has_more: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReadRequest {
    pub seq: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReadResponse {
    pub conversation_id: String,
    pub read_seq: i64,
    pub unread_count: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EditMessageRequest {
    pub text: String,
}
