//! Device sessions and their rotating refresh tokens.

use std::sync::LazyLock;

use natter_core::ids::{SessionId, UserId};
use natter_core::model::{Session, Time};
use natter_core::store::{RefreshOutcome, StoreResult};
use sqlx::AnyConnection;

use crate::db::{Db, backend, conflict_on, flag, millis, stored_time};
use crate::rows::{self, Cols, SESSION, select_list};

static BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {} FROM sessions s WHERE s.id = $1", select_list("s", "", SESSION)));
static LIVE_OF_USER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM sessions s WHERE s.user_id = $1 AND s.revoked = 0 AND s.expires_at > $2 \
         ORDER BY s.created_at DESC, s.id DESC",
        select_list("s", "", SESSION)
    )
});

pub(crate) async fn create_session(db: &Db, session: &Session, refresh_hash: &str) -> StoreResult<()> {
    let mut tx = db.write.begin().await.map_err(backend)?;
    sqlx::query(
        "INSERT INTO sessions (id, user_id, device_name, created_at, last_used_at, expires_at, revoked) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(session.id.as_str())
    .bind(session.user_id.as_str())
    .bind(session.device_name.as_deref())
    .bind(millis(session.created_at))
    .bind(millis(session.last_used_at))
    .bind(millis(session.expires_at))
    .bind(flag(session.revoked))
    .execute(&mut *tx)
    .await
    .map_err(conflict_on("session"))?;
    insert_refresh_token(&mut tx, refresh_hash, &session.id, session.created_at).await?;
    tx.commit().await.map_err(backend)
}

async fn insert_refresh_token(
    connection: &mut AnyConnection,
    hash: &str,
    session: &SessionId,
    now: Time,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO refresh_tokens (hash, session_id, spent, created_at) VALUES ($1, $2, 0, $3)")
        .bind(hash)
        .bind(session.as_str())
        .bind(millis(now))
        .execute(connection)
        .await
        .map_err(conflict_on("refresh_token"))?;
    Ok(())
}

pub(crate) async fn session(db: &Db, id: &SessionId) -> StoreResult<Option<Session>> {
    let row = sqlx::query(&BY_ID).bind(id.as_str()).fetch_optional(&db.read).await.map_err(backend)?;
    row.map(|row| rows::session(Cols::new(&row, ""))).transpose()
}

pub(crate) async fn sessions_of(db: &Db, user: &UserId, now: Time) -> StoreResult<Vec<Session>> {
    let rows =
        sqlx::query(&LIVE_OF_USER).bind(user.as_str()).bind(millis(now)).fetch_all(&db.read).await.map_err(backend)?;
    rows.iter().map(|row| rows::session(Cols::new(row, ""))).collect()
}

/// The conditional `UPDATE … spent = 1 WHERE spent = 0` is the whole race: of two requests
/// presenting the same token, exactly one sees a row; the other takes the reuse path.
pub(crate) async fn rotate_refresh_token(
    db: &Db,
    old_hash: &str,
    new_hash: &str,
    now: Time,
) -> StoreResult<RefreshOutcome> {
    let mut tx = db.write.begin().await.map_err(backend)?;
    let spent: Option<String> =
        sqlx::query_scalar("UPDATE refresh_tokens SET spent = 1 WHERE hash = $1 AND spent = 0 RETURNING session_id")
            .bind(old_hash)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
    if let Some(session_id) = spent {
        let row = sqlx::query(&BY_ID).bind(&session_id).fetch_optional(&mut *tx).await.map_err(backend)?;
        let session = row.map(|row| rows::session(Cols::new(&row, ""))).transpose()?;
        let Some(mut session) = session.filter(|s| !s.revoked && s.expires_at > now) else {
            tx.rollback().await.map_err(backend)?;
            return Ok(RefreshOutcome::Invalid);
        };
        insert_refresh_token(&mut tx, new_hash, &session.id, now).await?;
        sqlx::query("UPDATE sessions SET last_used_at = $2 WHERE id = $1")
            .bind(&session_id)
            .bind(millis(now))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        session.last_used_at = stored_time(now)?;
        return Ok(RefreshOutcome::Rotated(session));
    }
    let reused: Option<String> = sqlx::query_scalar("SELECT session_id FROM refresh_tokens WHERE hash = $1")
        .bind(old_hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
    let Some(session_id) = reused else {
        tx.rollback().await.map_err(backend)?;
        return Ok(RefreshOutcome::Invalid);
    };
    sqlx::query("UPDATE sessions SET revoked = 1 WHERE id = $1")
        .bind(&session_id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    tx.commit().await.map_err(backend)?;
    Ok(RefreshOutcome::Reused(SessionId(session_id)))
}

pub(crate) async fn revoke_session(db: &Db, user: &UserId, id: &SessionId) -> StoreResult<bool> {
    let result = sqlx::query("UPDATE sessions SET revoked = 1 WHERE id = $1 AND user_id = $2 AND revoked = 0")
        .bind(id.as_str())
        .bind(user.as_str())
        .execute(&db.write)
        .await
        .map_err(backend)?;
    Ok(result.rows_affected() > 0)
}

pub(crate) async fn revoke_other_sessions(db: &Db, user: &UserId, keep: Option<&SessionId>) -> StoreResult<()> {
    let query = match keep {
        Some(keep) => sqlx::query("UPDATE sessions SET revoked = 1 WHERE user_id = $1 AND revoked = 0 AND id <> $2")
            .bind(user.as_str())
            .bind(keep.as_str()),
        None => sqlx::query("UPDATE sessions SET revoked = 1 WHERE user_id = $1 AND revoked = 0").bind(user.as_str()),
    };
    query.execute(&db.write).await.map_err(backend)?;
    Ok(())
}
