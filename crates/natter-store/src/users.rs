//! Accounts: create, look up, profile, password hash, search.

use std::collections::HashMap;
use std::sync::LazyLock;

use natter_core::ids::UserId;
use natter_core::model::User;
use natter_core::store::{NewUser, ProfileUpdate, StoreResult};

use crate::db::{Db, backend, conflict_on, flag, millis, placeholders, stored_time};
use crate::rows::{self, Cols, USER, select_list};

static USER_LIST: LazyLock<String> = LazyLock::new(|| select_list("u", "", USER));
static BY_ID: LazyLock<String> = LazyLock::new(|| format!("SELECT {} FROM users u WHERE u.id = $1", *USER_LIST));
static BY_USERNAME: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {}, u.password_hash FROM users u WHERE lower(u.username) = lower($1)", *USER_LIST)
});
static UPDATE_PROFILE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE users SET nickname = COALESCE($2, nickname), nickname_lower = COALESCE($3, nickname_lower), \
         bio = COALESCE($4, bio), avatar = CASE WHEN $5 = 1 THEN $6 ELSE avatar END \
         WHERE id = $1 RETURNING {}",
        USER.join(", ")
    )
});
static SEARCH: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM users u WHERE u.disabled = 0 \
         AND (lower(u.username) LIKE $1 ESCAPE '\\' OR u.nickname_lower LIKE $1 ESCAPE '\\') \
         ORDER BY CASE WHEN lower(u.username) LIKE $2 ESCAPE '\\' THEN 0 ELSE 1 END, lower(u.username) \
         LIMIT $3",
        *USER_LIST
    )
});

/// Ids per `IN (…)` list: far below every database's bound-parameter limit.
const IN_CHUNK: usize = 500;

pub(crate) async fn create_user(db: &Db, new: NewUser) -> StoreResult<User> {
    let mut user = new.user;
    user.created_at = stored_time(user.created_at)?;
    sqlx::query(
        "INSERT INTO users (id, username, nickname, nickname_lower, bio, avatar, role, password_hash, \
         created_at, disabled) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(user.id.as_str())
    .bind(&user.username)
    .bind(&user.nickname)
    .bind(user.nickname.to_lowercase())
    .bind(&user.bio)
    .bind(user.avatar.as_deref())
    .bind(user.role.as_str())
    .bind(&new.password_hash)
    .bind(millis(user.created_at))
    .bind(flag(user.disabled))
    .execute(&db.write)
    .await
    .map_err(conflict_on("username"))?;
    Ok(user)
}

pub(crate) async fn user(db: &Db, id: &UserId) -> StoreResult<Option<User>> {
    let row = sqlx::query(&BY_ID).bind(id.as_str()).fetch_optional(&db.read).await.map_err(backend)?;
    row.map(|row| rows::user(Cols::new(&row, ""))).transpose()
}

pub(crate) async fn user_by_username(db: &Db, username: &str) -> StoreResult<Option<(User, String)>> {
    let row = sqlx::query(&BY_USERNAME).bind(username).fetch_optional(&db.read).await.map_err(backend)?;
    row.map(|row| {
        let cols = Cols::new(&row, "");
        Ok((rows::user(cols)?, cols.get::<String>("password_hash")?))
    })
    .transpose()
}

/// The users among `ids` that exist, in the order asked.
pub(crate) async fn users(db: &Db, ids: &[UserId]) -> StoreResult<Vec<User>> {
    let mut found = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IN_CHUNK) {
        let sql = format!("SELECT {} FROM users u WHERE u.id IN ({})", *USER_LIST, placeholders(1, chunk.len()));
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(id.as_str());
        }
        for row in query.fetch_all(&db.read).await.map_err(backend)? {
            found.push(rows::user(Cols::new(&row, ""))?);
        }
    }
    let position: HashMap<&UserId, usize> = ids.iter().enumerate().rev().map(|(i, id)| (id, i)).collect();
    found.sort_by_key(|user| position.get(&user.id).copied());
    found.dedup_by(|a, b| a.id == b.id);
    Ok(found)
}

pub(crate) async fn password_hash(db: &Db, id: &UserId) -> StoreResult<Option<String>> {
    sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(&db.read)
        .await
        .map_err(backend)
}

pub(crate) async fn update_profile(db: &Db, id: &UserId, update: ProfileUpdate) -> StoreResult<Option<User>> {
    let nickname_lower = update.nickname.as_ref().map(|n| n.to_lowercase());
    let (set_avatar, avatar) = match update.avatar {
        Some(avatar) => (1_i64, avatar),
        None => (0, None),
    };
    let row = sqlx::query(&UPDATE_PROFILE)
        .bind(id.as_str())
        .bind(update.nickname)
        .bind(nickname_lower)
        .bind(update.bio)
        .bind(set_avatar)
        .bind(avatar)
        .fetch_optional(&db.write)
        .await
        .map_err(backend)?;
    row.map(|row| rows::user(Cols::new(&row, ""))).transpose()
}

pub(crate) async fn set_password_hash(db: &Db, id: &UserId, hash: &str) -> StoreResult<()> {
    sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(id.as_str())
        .bind(hash)
        .execute(&db.write)
        .await
        .map_err(backend)?;
    Ok(())
}

pub(crate) async fn search_users(db: &Db, query: &str, limit: u32) -> StoreResult<Vec<User>> {
    let needle = escape_like(&query.to_lowercase());
    let rows = sqlx::query(&SEARCH)
        .bind(format!("%{needle}%"))
        .bind(format!("{needle}%"))
        .bind(i64::from(limit))
        .fetch_all(&db.read)
        .await
        .map_err(backend)?;
    rows.iter().map(|row| rows::user(Cols::new(row, ""))).collect()
}

/// `%`, `_` and the escape character itself match literally.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::escape_like;

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(escape_like("a_b%c\\d"), "a\\_b\\%c\\\\d");
        assert_eq!(escape_like("张伟"), "张伟");
    }
}
