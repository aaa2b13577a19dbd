//! Friend requests, friendships (one row each way) and blocks.

use std::sync::LazyLock;

use natter_core::ids::{ConversationId, FriendRequestId, UserId};
use natter_core::model::{Conversation, Friend, FriendRequest, FriendRequestStatus, Time, User};
use natter_core::store::{RequestDirection, StoreResult};
use sqlx::{Any, Transaction};

use crate::db::{Db, backend, conflict_on, millis, ordered_pair, time_from_millis};
use crate::rows::{self, Cols, FRIEND_REQUEST, USER, select_list};

static REQUEST_LIST: LazyLock<String> = LazyLock::new(|| select_list("r", "", FRIEND_REQUEST));
static REQUEST_BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {} FROM friend_requests r WHERE r.id = $1", *REQUEST_LIST));
static PENDING_BETWEEN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM friend_requests r WHERE r.user_low = $1 AND r.user_high = $2 AND r.status = 'pending'",
        *REQUEST_LIST
    )
});
static INCOMING: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM friend_requests r WHERE r.to_user = $1 ORDER BY r.created_at DESC, r.id DESC",
        *REQUEST_LIST
    )
});
static OUTGOING: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM friend_requests r WHERE r.from_user = $1 ORDER BY r.created_at DESC, r.id DESC",
        *REQUEST_LIST
    )
});
static CLOSE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE friend_requests SET status = $2, updated_at = $3 WHERE id = $1 AND status = 'pending' \
         RETURNING {}",
        FRIEND_REQUEST.join(", ")
    )
});
static FRIENDS_OF: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {}, f.since AS f_since, f.conversation_id AS f_conversation_id \
         FROM friendships f JOIN users u ON u.id = f.friend_id WHERE f.user_id = $1 ORDER BY lower(u.username)",
        select_list("u", "", USER)
    )
});
static BLOCKED_BY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM blocks b JOIN users u ON u.id = b.blocked_id WHERE b.blocker_id = $1 \
         ORDER BY b.created_at DESC, u.id",
        select_list("u", "", USER)
    )
});

pub(crate) async fn create_friend_request(db: &Db, request: &FriendRequest) -> StoreResult<()> {
    let (low, high) = ordered_pair(request.from_user.as_str(), request.to_user.as_str());
    sqlx::query(
        "INSERT INTO friend_requests (id, from_user, to_user, user_low, user_high, message, status, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(request.id.as_str())
    .bind(request.from_user.as_str())
    .bind(request.to_user.as_str())
    .bind(low)
    .bind(high)
    .bind(&request.message)
    .bind(request.status.as_str())
    .bind(millis(request.created_at))
    .bind(millis(request.updated_at))
    .execute(&db.write)
    .await
    .map_err(conflict_on("friend_request"))?;
    Ok(())
}

pub(crate) async fn friend_request(db: &Db, id: &FriendRequestId) -> StoreResult<Option<FriendRequest>> {
    let row = sqlx::query(&REQUEST_BY_ID).bind(id.as_str()).fetch_optional(&db.read).await.map_err(backend)?;
    row.map(|row| rows::friend_request(Cols::new(&row, ""))).transpose()
}

pub(crate) async fn pending_request_between(db: &Db, a: &UserId, b: &UserId) -> StoreResult<Option<FriendRequest>> {
    let (low, high) = ordered_pair(a.as_str(), b.as_str());
    let row = sqlx::query(&PENDING_BETWEEN).bind(low).bind(high).fetch_optional(&db.read).await.map_err(backend)?;
    row.map(|row| rows::friend_request(Cols::new(&row, ""))).transpose()
}

pub(crate) async fn friend_requests_of(
    db: &Db,
    user: &UserId,
    direction: RequestDirection,
) -> StoreResult<Vec<FriendRequest>> {
    let sql = match direction {
        RequestDirection::Incoming => &*INCOMING,
        RequestDirection::Outgoing => &*OUTGOING,
    };
    let rows = sqlx::query(sql).bind(user.as_str()).fetch_all(&db.read).await.map_err(backend)?;
    rows.iter().map(|row| rows::friend_request(Cols::new(row, ""))).collect()
}

pub(crate) async fn close_friend_request(
    db: &Db,
    id: &FriendRequestId,
    status: FriendRequestStatus,
    now: Time,
) -> StoreResult<Option<FriendRequest>> {
    let row = sqlx::query(&CLOSE)
        .bind(id.as_str())
        .bind(status.as_str())
        .bind(millis(now))
        .fetch_optional(&db.write)
        .await
        .map_err(backend)?;
    row.map(|row| rows::friend_request(Cols::new(&row, ""))).transpose()
}

pub(crate) async fn accept_friend_request(
    db: &Db,
    id: &FriendRequestId,
    new_conversation: &Conversation,
    now: Time,
) -> StoreResult<Option<(FriendRequest, ConversationId)>> {
    let mut tx = db.write.begin().await.map_err(backend)?;
    let row = sqlx::query(&CLOSE)
        .bind(id.as_str())
        .bind(FriendRequestStatus::Accepted.as_str())
        .bind(millis(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
    let Some(row) = row else {
        tx.rollback().await.map_err(backend)?;
        return Ok(None);
    };
    let request = rows::friend_request(Cols::new(&row, ""))?;
    let conversation_id = open_direct_conversation(&mut tx, &request, new_conversation, now).await?;
    for (user, friend) in [(&request.from_user, &request.to_user), (&request.to_user, &request.from_user)] {
        sqlx::query(
            "INSERT INTO friendships (user_id, friend_id, since, conversation_id) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, friend_id) DO UPDATE SET conversation_id = excluded.conversation_id",
        )
        .bind(user.as_str())
        .bind(friend.as_str())
        .bind(millis(now))
        .bind(conversation_id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    }
    tx.commit().await.map_err(backend)?;
    Ok(Some((request, conversation_id)))
}

/// Creates the pair's direct conversation, or revives the one they had: not dissolved, both
/// members again. A member who comes back starts with everything read.
async fn open_direct_conversation(
    tx: &mut Transaction<'static, Any>,
    request: &FriendRequest,
    new_conversation: &Conversation,
    now: Time,
) -> StoreResult<ConversationId> {
    let (low, high) = ordered_pair(request.from_user.as_str(), request.to_user.as_str());
    let existing: Option<String> =
        sqlx::query_scalar("SELECT id FROM conversations WHERE direct_low = $1 AND direct_high = $2")
            .bind(low)
            .bind(high)
            .fetch_optional(&mut **tx)
            .await
            .map_err(backend)?;
    let (id, read_seq) = match existing {
        Some(id) => {
            let last_seq: i64 =
                sqlx::query_scalar("UPDATE conversations SET dissolved = 0 WHERE id = $1 RETURNING last_seq")
                    .bind(&id)
                    .fetch_one(&mut **tx)
                    .await
                    .map_err(backend)?;
            (ConversationId(id), last_seq)
        }
        None => {
            let c = new_conversation;
            sqlx::query(
                "INSERT INTO conversations (id, kind, name, avatar, owner_id, announcement, last_seq, created_at, \
                 updated_at, dissolved, direct_low, direct_high) VALUES ($1, 'direct', '', NULL, NULL, NULL, 0, $2, \
                 $3, 0, $4, $5)",
            )
            .bind(c.id.as_str())
            .bind(millis(c.created_at))
            .bind(millis(c.updated_at))
            .bind(low)
            .bind(high)
            .execute(&mut **tx)
            .await
            .map_err(conflict_on("direct_conversation"))?;
            (c.id.clone(), 0)
        }
    };
    for user in [&request.from_user, &request.to_user] {
        sqlx::query(
            "INSERT INTO members (conversation_id, user_id, role, joined_at, joined_seq, read_seq, muted) \
             VALUES ($1, $2, 'member', $3, 0, $4, 0) ON CONFLICT (conversation_id, user_id) DO NOTHING",
        )
        .bind(id.as_str())
        .bind(user.as_str())
        .bind(millis(now))
        .bind(read_seq)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    }
    Ok(id)
}

pub(crate) async fn are_friends(db: &Db, a: &UserId, b: &UserId) -> StoreResult<bool> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM friendships WHERE user_id = $1 AND friend_id = $2")
        .bind(a.as_str())
        .bind(b.as_str())
        .fetch_optional(&db.read)
        .await
        .map_err(backend)?;
    Ok(found.is_some())
}

pub(crate) async fn friends_of(db: &Db, user: &UserId) -> StoreResult<Vec<Friend>> {
    let rows = sqlx::query(&FRIENDS_OF).bind(user.as_str()).fetch_all(&db.read).await.map_err(backend)?;
    rows.iter()
        .map(|row| {
            let cols = Cols::new(row, "");
            Ok(Friend {
                user: rows::user(cols)?,
                since: time_from_millis(cols.get("f_since")?)?,
                conversation_id: ConversationId(cols.get("f_conversation_id")?),
            })
        })
        .collect()
}

pub(crate) async fn remove_friendship(db: &Db, a: &UserId, b: &UserId) -> StoreResult<bool> {
    let result = sqlx::query(
        "DELETE FROM friendships WHERE (user_id = $1 AND friend_id = $2) OR (user_id = $2 AND friend_id = $1)",
    )
    .bind(a.as_str())
    .bind(b.as_str())
    .execute(&db.write)
    .await
    .map_err(backend)?;
    Ok(result.rows_affected() > 0)
}

pub(crate) async fn block_user(db: &Db, blocker: &UserId, blocked: &UserId, now: Time) -> StoreResult<()> {
    let mut tx = db.write.begin().await.map_err(backend)?;
    sqlx::query(
        "INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (blocker_id, blocked_id) DO NOTHING",
    )
    .bind(blocker.as_str())
    .bind(blocked.as_str())
    .bind(millis(now))
    .execute(&mut *tx)
    .await
    .map_err(backend)?;
    sqlx::query("DELETE FROM friendships WHERE (user_id = $1 AND friend_id = $2) OR (user_id = $2 AND friend_id = $1)")
        .bind(blocker.as_str())
        .bind(blocked.as_str())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    let (low, high) = ordered_pair(blocker.as_str(), blocked.as_str());
    sqlx::query(
        "UPDATE friend_requests SET status = 'cancelled', updated_at = $3 \
         WHERE user_low = $1 AND user_high = $2 AND status = 'pending'",
    )
    .bind(low)
    .bind(high)
    .bind(millis(now))
    .execute(&mut *tx)
    .await
    .map_err(backend)?;
    tx.commit().await.map_err(backend)
}

pub(crate) async fn unblock_user(db: &Db, blocker: &UserId, blocked: &UserId) -> StoreResult<bool> {
    let result = sqlx::query("DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2")
        .bind(blocker.as_str())
        .bind(blocked.as_str())
        .execute(&db.write)
        .await
        .map_err(backend)?;
    Ok(result.rows_affected() > 0)
}

pub(crate) async fn is_blocked_between(db: &Db, a: &UserId, b: &UserId) -> StoreResult<bool> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM blocks WHERE (blocker_id = $1 AND blocked_id = $2) OR (blocker_id = $2 AND blocked_id = $1) \
         LIMIT 1",
    )
    .bind(a.as_str())
    .bind(b.as_str())
    .fetch_optional(&db.read)
    .await
    .map_err(backend)?;
    Ok(found.is_some())
}

pub(crate) async fn blocked_by(db: &Db, blocker: &UserId) -> StoreResult<Vec<User>> {
    let rows = sqlx::query(&BLOCKED_BY).bind(blocker.as_str()).fetch_all(&db.read).await.map_err(backend)?;
    rows.iter().map(|row| rows::user(Cols::new(row, ""))).collect()
}
