//! Friend requests, friendships and blocks.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{ConversationView, UserView};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateFriendRequest {
    pub user_id: String,
    #[serde(default)]
    #[schema(max_length = 256)]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FriendRequestView {
    pub id: String,
    pub from_user: UserView,
    pub to_user: UserView,
    pub message: String,
    /// `pending` | `accepted` | `rejected` | `cancelled`
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FriendRequestList {
    pub requests: Vec<FriendRequestView>,
}

/// Answer to `POST /friend-requests/{id}/accept`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AcceptFriendResponse {
    pub request: FriendRequestView,
    pub conversation: ConversationView,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FriendView {
    pub user: UserView,
    pub since: DateTime<Utc>,
    /// The direct conversation of the pair.
    pub conversation_id: String,
    pub online: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FriendList {
    pub friends: Vec<FriendView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BlockList {
    pub blocked: Vec<UserView>,
}
