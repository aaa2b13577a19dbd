//! Domain types: what the services reason about. Wire types (natter-proto) and row types (the
//! store adapters) are kept apart and converted explicitly.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{ConversationId, FileId, FriendRequestId, MessageId, Seq, SessionId, UserId};

pub type Time = DateTime<Utc>;

macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some(Self::$variant),)+ _ => None }
            }
        }
    };
}

string_enum!(
    /// Site-wide role of an account.
    UserRole { User => "user", Admin => "admin" }
);
string_enum!(
    /// State of a friend request.
    FriendRequestStatus {
        Pending => "pending",
        Accepted => "accepted",
        Rejected => "rejected",
        Cancelled => "cancelled",
    }
);
string_enum!(ConversationKind { Direct => "direct", Group => "group" });
string_enum!(
    /// Role of a member inside a conversation. Ordered by power: owner > admin > member.
    MemberRole { Owner => "owner", Admin => "admin", Member => "member" }
);
string_enum!(
    /// Kind of a log entry.
    MessageKind {
        Text => "text",
        Image => "image",
        File => "file",
        Voice => "voice",
        Edit => "edit",
        Recall => "recall",
        Reaction => "reaction",
        System => "system",
        Transcript => "transcript",
    }
);

impl MemberRole {
    pub fn rank(self) -> u8 {
        match self {
            Self::Owner => 3,
            Self::Admin => 2,
            Self::Member => 1,
        }
    }
}

impl MessageKind {
    /// Kinds a person wrote (as opposed to events about other entries or the conversation).
    pub fn is_content(self) -> bool {
        matches!(self, Self::Text | Self::Image | Self::File | Self::Voice)
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub nickname: String,
    pub bio: String,
    pub avatar: Option<String>,
    pub role: UserRole,
    pub created_at: Time,
    pub disabled: bool,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub device_name: Option<String>,
    pub created_at: Time,
    pub last_used_at: Time,
    pub expires_at: Time,
    pub revoked: bool,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FriendRequest {
    pub id: FriendRequestId,
    pub from_user: UserId,
    pub to_user: UserId,
    pub message: String,
    pub status: FriendRequestStatus,
    pub created_at: Time,
    pub updated_at: Time,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Friend {
    pub user: User,
    pub since: Time,
    pub conversation_id: ConversationId,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Conversation {
    pub id: ConversationId,
    pub kind: ConversationKind,
    /// Empty for direct conversations.
    pub name: String,
    pub avatar: Option<String>,
    pub owner_id: Option<UserId>,
    pub announcement: Option<String>,
    pub last_seq: Seq,
    pub created_at: Time,
    /// Time of the newest entry (or of creation): the list is ordered by it.
    pub updated_at: Time,
    pub dissolved: bool,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Member {
    pub conversation_id: ConversationId,
    pub user_id: UserId,
    pub role: MemberRole,
    pub joined_at: Time,
    /// Entries with a lower `seq` are not visible to this member (0: sees everything).
    pub joined_seq: Seq,
    pub read_seq: Seq,
    pub muted: bool,
}

/// What a `system` entry records (stored as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemEvent {
    pub event: String,
    pub actor_id: UserId,
    #[serde(default)]
    pub user_ids: Vec<UserId>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
}

/// One log entry with the current state of the message folded in.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub seq: Seq,
    pub sender_id: UserId,
    pub kind: MessageKind,
    pub client_msg_id: Option<String>,
    /// Current text: after edits; `None` once recalled.
    pub text: Option<String>,
    pub file_id: Option<String>,
    pub reply_to: Option<Seq>,
    pub mentions: Vec<UserId>,
    pub target_seq: Option<Seq>,
    pub emoji: Option<String>,
    /// For reactions: `add` or `remove`.
    pub op: Option<String>,
    pub system: Option<SystemEvent>,
    pub edited_at: Option<Time>,
    pub recalled: bool,
    /// For voice messages: the speech-to-text transcript, once a `transcript` entry set it.
    pub transcript: Option<String>,
    /// (emoji, user) pairs, in the order they were added. Filled by reads, empty on append.
    pub reactions: Vec<(String, UserId)>,
    /// The file `file_id` names, filled by reads (and by a send) so views can describe it.
    pub file: Option<FileRecord>,
    pub created_at: Time,
}

/// An uploaded file: its metadata; the bytes live in the blob store under `blob_key`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FileRecord {
    pub id: FileId,
    pub owner_id: UserId,
    /// The client's file name (cleaned), for `Content-Disposition`.
    pub name: String,
    /// Sniffed from the bytes, not the client's claim.
    pub mime: String,
    pub size: i64,
    /// Lowercase hex SHA-256 of the bytes (also the HTTP `ETag`).
    pub sha256: String,
    pub blob_key: String,
    /// Images only.
    pub width: Option<i64>,
    pub height: Option<i64>,
    /// Audio only, when the format's length could be read.
    pub duration_ms: Option<i64>,
    /// Images only: a small JPEG the server made, itself a file (readable by whoever may read
    /// this one).
    pub thumbnail_id: Option<FileId>,
    pub created_at: Time,
}

/// A conversation as one member sees it in their list.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConversationSummary {
    pub conversation: Conversation,
    pub me: Member,
    pub member_count: u64,
    pub unread_count: i64,
    pub last_message: Option<Message>,
    /// For direct conversations: the other member.
    pub peer: Option<User>,
}
