//! Conversations (direct and group) and their members.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{MessageView, UserView};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConversationView {
    pub id: String,
    /// `direct` | `group`
    pub kind: String,
    /// Group name; for a direct conversation the other member's nickname.
    pub name: String,
    pub avatar: Option<String>,
    pub owner_id: Option<String>,
    pub announcement: Option<String>,
    pub member_count: u64,
    pub last_seq: i64,
    pub read_seq: i64,
    pub unread_count: i64,
    pub last_message: Option<MessageView>,
    /// The caller's role: `owner` | `admin` | `member`.
    pub role: String,
    pub muted: bool,
    /// For a direct conversation: the other member.
    pub peer: Option<UserView>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConversationList {
    pub conversations: Vec<ConversationView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateConversationRequest {
    /// Only `group` can be created this way; direct conversations come from friendship.
    #[schema(schema_with = group_kind)]
    pub kind: String,
    /// No control or bidirectional control characters; not only spaces or zero-width ones.
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    #[serde(default)]
    pub member_ids: Vec<String>,
    #[serde(default)]
    pub avatar: Option<String>,
    #[serde(default)]
    #[schema(max_length = 2048)]
    pub announcement: Option<String>,
}

fn group_kind() -> utoipa::openapi::Object {
    crate::string_enum(&["group"])
}

/// `PATCH /conversations/{id}`: only the fields present change. `muted` is the caller's own setting;
/// the others need the admin or owner role.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct UpdateConversationRequest {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(max_length = 2048)]
    pub announcement: Option<String>,
    #[serde(default)]
    pub avatar: Option<String>,
    #[serde(default)]
    pub muted: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberView {
    pub user: UserView,
    /// `owner` | `admin` | `member`
    pub role: String,
    pub joined_at: DateTime<Utc>,
    pub read_seq: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberList {
    pub members: Vec<MemberView>,
}

/// `POST /conversations/{id}/members`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AddMembersRequest {
    pub user_ids: Vec<String>,
}

/// `PATCH /conversations/{id}/members/{user_id}`: set the role. Setting `owner` transfers ownership
/// (the previous owner becomes `admin`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UpdateMemberRequest {
    pub role: String,
}
