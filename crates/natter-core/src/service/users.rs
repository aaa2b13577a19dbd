//! Profiles and user search.

use super::{Deps, rules};
use crate::error::{DomainError, DomainResult, ErrorCode, Thing};
use crate::ids::UserId;
use crate::model::User;
use crate::store::ProfileUpdate;

pub struct UserService {
    deps: Deps,
}

/// A profile change as asked: `None` leaves a field alone; an empty avatar clears it.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ProfileChange {
    pub nickname: Option<String>,
    pub bio: Option<String>,
    pub avatar: Option<String>,
}

impl UserService {
    pub fn new(deps: Deps) -> Self {
        Self { deps }
    }

    pub async fn get(&self, id: &UserId) -> DomainResult<User> {
        self.deps.store.user(id).await?.filter(|u| !u.disabled).ok_or(DomainError::not_found(Thing::User))
    }

    pub async fn update_profile(&self, id: &UserId, change: ProfileChange) -> DomainResult<User> {
        let update = ProfileUpdate {
            nickname: change.nickname.as_deref().map(rules::check_nickname).transpose()?,
            bio: change.bio.as_deref().map(rules::check_bio).transpose()?,
            avatar: change.avatar.map(|a| if a.is_empty() { None } else { Some(a) }),
        };
        if let Some(Some(avatar)) = &update.avatar {
            super::files::check_avatar(&self.deps, id, avatar).await?;
        }
        self.deps.store.update_profile(id, update).await?.ok_or(DomainError::not_found(Thing::User))
    }

    /// Users whose username or nickname contains `query`; 1–64 characters.
    pub async fn search(&self, query: &str, limit: Option<u32>) -> DomainResult<Vec<User>> {
        let query = query.trim();
        if query.is_empty() || query.chars().count() > 64 {
            return Err(DomainError::invalid(ErrorCode::InvalidQuery, "query has 1-64 characters"));
        }
        let limit = limit.unwrap_or(20).clamp(1, 100);
        Ok(self.deps.store.search_users(query, limit).await?)
    }

    pub async fn is_online(&self, id: &UserId) -> bool {
        super::presence::online_flags(self.deps.routes.as_ref(), std::slice::from_ref(id))
            .await
            .first()
            .copied()
            .unwrap_or(false)
    }
}
