//! Users and profiles.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub nickname: String,
    pub bio: String,
    /// File id of the avatar, if any.
    pub avatar: Option<String>,
    /// `user` or `admin`.
    pub role: String,
    pub created_at: DateTime<Utc>,
}

/// `PATCH /users/me`: only the fields present change.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct UpdateProfileRequest {
    /// No control or bidirectional control characters; not only spaces or zero-width ones.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64)]
    pub nickname: Option<String>,
    #[serde(default)]
    #[schema(max_length = 512)]
    pub bio: Option<String>,
    /// A file id; `""` clears the avatar.
    #[serde(default)]
    pub avatar: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    pub old_password: String,
    /// Not the username.
    #[schema(min_length = 8, max_length = 128)]
    pub new_password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserList {
    pub users: Vec<UserView>,
}
