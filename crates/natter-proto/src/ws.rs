//! WebSocket frames: text frames carrying JSON objects with a `type` field.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{ConversationView, FriendRequestView, MessageView, SendMessageRequest};

/// Frames a client sends.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Append an entry; answered by `sent` (or `error`) carrying the same `id`.
    Send {
        id: String,
        conversation_id: String,
        #[serde(flatten)]
        message: SendMessageRequest,
    },
    /// Move the caller's read marker.
    Read {
        #[serde(default)]
        id: Option<String>,
        conversation_id: String,
        seq: i64,
    },
    /// The caller is typing in a conversation; relayed to the other online members.
    Typing { conversation_id: String },
    Ping {
        #[serde(default)]
        id: Option<String>,
    },
}

/// Frames the server sends.
#[expect(
    clippy::large_enum_variant,
    reason = "a frame is built once per event and encoded at once; never stored in bulk"
)]
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// First frame after the upgrade.
    Hello {
        user_id: String,
        session_id: String,
        heartbeat_secs: u64,
    },
    Sent {
        id: String,
        message: MessageView,
    },
    /// A new log entry of any kind.
    Message {
        message: MessageView,
    },
    /// A member's read marker moved.
    Read {
        conversation_id: String,
        user_id: String,
        seq: i64,
    },
    Typing {
        conversation_id: String,
        user_id: String,
    },
    Presence {
        user_id: String,
        online: bool,
    },
    /// A friend request was created or changed state.
    FriendRequest {
        request: FriendRequestView,
    },
    /// A friendship ended (`removed`) or began (`added`).
    Friend {
        user_id: String,
        event: String,
    },
    /// `event` is `created` | `updated` | `member_added` | `member_removed` | `left` | `dissolved`.
    /// After `left`, `member_removed` of oneself and `dissolved`, `conversation` may be stale.
    Conversation {
        event: String,
        conversation: ConversationView,
    },
    Pong {
        #[serde(default)]
        id: Option<String>,
    },
    Error {
        #[serde(default)]
        id: Option<String>,
        code: String,
        message: String,
    },
}
