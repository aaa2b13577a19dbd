//! Conversations and their members.

use std::sync::LazyLock;

use natter_core::ids::{ConversationId, Seq, UserId};
use natter_core::model::{Conversation, Member, Message};
use natter_core::store::{DirectPeer, StoreError, StoreResult};
use sqlx::{Any, Transaction};

use crate::db::{Db, backend, conflict_on, flag, millis, ordered_pair, placeholders};
use crate::messages::insert_entry;
use crate::rows::{self, CONVERSATION, Cols, MEMBER, select_list};

static CONVERSATION_LIST: LazyLock<String> = LazyLock::new(|| select_list("c", "", CONVERSATION));
static BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {} FROM conversations c WHERE c.id = $1", *CONVERSATION_LIST));
static DIRECT: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {} FROM conversations c WHERE c.direct_low = $1 AND c.direct_high = $2", *CONVERSATION_LIST)
});
static MEMBER_LIST: LazyLock<String> = LazyLock::new(|| select_list("m", "", MEMBER));
static MEMBER_BY_KEY: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {} FROM members m WHERE m.conversation_id = $1 AND m.user_id = $2", *MEMBER_LIST));
static MEMBERSHIP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {}, {} FROM members m JOIN conversations c ON c.id = m.conversation_id \
         WHERE m.conversation_id = $1 AND m.user_id = $2",
        select_list("c", "c_", CONVERSATION),
        select_list("m", "m_", MEMBER)
    )
});
static MEMBERS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM members m WHERE m.conversation_id = $1 \
         ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END, m.joined_at, m.user_id",
        *MEMBER_LIST
    )
});

pub(crate) async fn membership(
    db: &Db,
    conversation: &ConversationId,
    user: &UserId,
) -> StoreResult<Option<(Conversation, Member)>> {
    let row = sqlx::query(&MEMBERSHIP)
        .bind(conversation.as_str())
        .bind(user.as_str())
        .fetch_optional(&db.read)
        .await
        .map_err(backend)?;
    row.map(|row| Ok((rows::conversation(Cols::new(&row, "c_"))?, rows::member(Cols::new(&row, "m_"))?))).transpose()
}

/// [`MEMBERSHIP`] and, in a direct conversation, [`DIRECT_PEER`]'s columns (`p_`), in one query.
static SEND_CONTEXT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {}, {}, p.user_id AS p_user_id, \
         CAST(CASE WHEN EXISTS (SELECT 1 FROM friendships f WHERE f.user_id = $2 AND f.friend_id = p.user_id) \
              THEN 1 ELSE 0 END AS BIGINT) AS p_friends, \
         CAST(CASE WHEN EXISTS (SELECT 1 FROM blocks b WHERE (b.blocker_id = $2 AND b.blocked_id = p.user_id) \
              OR (b.blocker_id = p.user_id AND b.blocked_id = $2)) THEN 1 ELSE 0 END AS BIGINT) AS p_blocked \
         FROM members m JOIN conversations c ON c.id = m.conversation_id \
         LEFT JOIN members p ON c.kind = 'direct' AND p.conversation_id = c.id AND p.user_id <> $2 \
         WHERE m.conversation_id = $1 AND m.user_id = $2 LIMIT 1",
        select_list("c", "c_", CONVERSATION),
        select_list("m", "m_", MEMBER)
    )
});

pub(crate) async fn send_context(
    db: &Db,
    conversation: &ConversationId,
    me: &UserId,
) -> StoreResult<Option<(Conversation, Member, Option<DirectPeer>)>> {
    let row = sqlx::query(&SEND_CONTEXT)
        .bind(conversation.as_str())
        .bind(me.as_str())
        .fetch_optional(&db.read)
        .await
        .map_err(backend)?;
    let Some(row) = row else { return Ok(None) };
    let found = rows::conversation(Cols::new(&row, "c_"))?;
    let member = rows::member(Cols::new(&row, "m_"))?;
    let cols = Cols::new(&row, "p_");
    let peer = match cols.get::<Option<String>>("user_id")? {
        Some(user) => Some(DirectPeer {
            user: UserId(user),
            friends: cols.get::<i64>("friends")? != 0,
            blocked: cols.get::<i64>("blocked")? != 0,
        }),
        None => None,
    };
    Ok(Some((found, member, peer)))
}

const DIRECT_PEER: &str = "SELECT m.user_id AS user_id, \
     CAST(CASE WHEN EXISTS (SELECT 1 FROM friendships f WHERE f.user_id = $2 AND f.friend_id = m.user_id) \
          THEN 1 ELSE 0 END AS BIGINT) AS friends, \
     CAST(CASE WHEN EXISTS (SELECT 1 FROM blocks b WHERE (b.blocker_id = $2 AND b.blocked_id = m.user_id) \
          OR (b.blocker_id = m.user_id AND b.blocked_id = $2)) THEN 1 ELSE 0 END AS BIGINT) AS blocked \
     FROM members m WHERE m.conversation_id = $1 AND m.user_id <> $2 LIMIT 1";

pub(crate) async fn direct_peer(
    db: &Db,
    conversation: &ConversationId,
    me: &UserId,
) -> StoreResult<Option<DirectPeer>> {
    let row = sqlx::query(DIRECT_PEER)
        .bind(conversation.as_str())
        .bind(me.as_str())
        .fetch_optional(&db.read)
        .await
        .map_err(backend)?;
    row.map(|row| {
        let cols = Cols::new(&row, "");
        Ok(DirectPeer {
            user: UserId(cols.get("user_id")?),
            friends: cols.get::<i64>("friends")? != 0,
            blocked: cols.get::<i64>("blocked")? != 0,
        })
    })
    .transpose()
}

/// Rows per multi-row `INSERT INTO members`: 7 parameters each, far below the limits.
const MEMBER_CHUNK: usize = 500;

pub(crate) async fn create_group(
    db: &Db,
    conversation: &Conversation,
    members: &[Member],
    first: &Message,
) -> StoreResult<Message> {
    let mut tx = db.write.begin().await.map_err(backend)?;
    let c = conversation;
    sqlx::query(
        "INSERT INTO conversations (id, kind, name, avatar, owner_id, announcement, last_seq, created_at, \
         updated_at, dissolved) VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, 0)",
    )
    .bind(c.id.as_str())
    .bind(c.kind.as_str())
    .bind(&c.name)
    .bind(c.avatar.as_deref())
    .bind(c.owner_id.as_ref().map(UserId::as_str))
    .bind(c.announcement.as_deref())
    .bind(millis(c.created_at))
    .bind(millis(c.updated_at))
    .execute(&mut *tx)
    .await
    .map_err(conflict_on("conversation"))?;
    insert_members(&mut tx, &c.id, members, Seq::ZERO, Seq::FIRST).await?;
    let mut first = first.clone();
    first.conversation_id = c.id.clone();
    let stored = insert_entry(&mut tx, &first, Seq::FIRST).await.map_err(conflict_on("message"))?;
    tx.commit().await.map_err(backend)?;
    Ok(stored)
}

/// Inserts `members` of `conversation` with the given markers; ones already there are kept.
pub(crate) async fn insert_members(
    tx: &mut Transaction<'static, Any>,
    conversation: &ConversationId,
    members: &[Member],
    joined_seq: Seq,
    read_seq: Seq,
) -> StoreResult<()> {
    for chunk in members.chunks(MEMBER_CHUNK) {
        let values: Vec<String> = (0..chunk.len()).map(|i| format!("({})", placeholders(i * 7 + 1, 7))).collect();
        let sql = format!(
            "INSERT INTO members (conversation_id, user_id, role, joined_at, joined_seq, read_seq, muted) \
             VALUES {} ON CONFLICT (conversation_id, user_id) DO NOTHING",
            values.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for member in chunk {
            query = query
                .bind(conversation.as_str())
                .bind(member.user_id.as_str())
                .bind(member.role.as_str())
                .bind(millis(member.joined_at))
                .bind(joined_seq.get())
                .bind(read_seq.get())
                .bind(flag(member.muted));
        }
        query.execute(&mut **tx).await.map_err(backend)?;
    }
    Ok(())
}

pub(crate) async fn conversation(db: &Db, id: &ConversationId) -> StoreResult<Option<Conversation>> {
    let row = sqlx::query(&BY_ID).bind(id.as_str()).fetch_optional(&db.read).await.map_err(backend)?;
    row.map(|row| rows::conversation(Cols::new(&row, ""))).transpose()
}

pub(crate) async fn direct_conversation(db: &Db, a: &UserId, b: &UserId) -> StoreResult<Option<Conversation>> {
    let (low, high) = ordered_pair(a.as_str(), b.as_str());
    let row = sqlx::query(&DIRECT).bind(low).bind(high).fetch_optional(&db.read).await.map_err(backend)?;
    row.map(|row| rows::conversation(Cols::new(&row, ""))).transpose()
}

pub(crate) async fn member(db: &Db, conversation: &ConversationId, user: &UserId) -> StoreResult<Option<Member>> {
    let row = sqlx::query(&MEMBER_BY_KEY)
        .bind(conversation.as_str())
        .bind(user.as_str())
        .fetch_optional(&db.read)
        .await
        .map_err(backend)?;
    row.map(|row| rows::member(Cols::new(&row, ""))).transpose()
}

pub(crate) async fn members(db: &Db, conversation: &ConversationId) -> StoreResult<Vec<Member>> {
    let rows = sqlx::query(&MEMBERS).bind(conversation.as_str()).fetch_all(&db.read).await.map_err(backend)?;
    rows.iter().map(|row| rows::member(Cols::new(row, ""))).collect()
}

pub(crate) async fn member_ids(db: &Db, conversation: &ConversationId) -> StoreResult<Vec<UserId>> {
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT user_id FROM members WHERE conversation_id = $1 ORDER BY joined_at, user_id")
            .bind(conversation.as_str())
            .fetch_all(&db.read)
            .await
            .map_err(backend)?;
    Ok(ids.into_iter().map(UserId).collect())
}

/// PostgreSQL: the version of the conversation's member set (`None`: no such conversation).
pub(crate) async fn members_version(db: &Db, conversation: &ConversationId) -> StoreResult<Option<i64>> {
    sqlx::query_scalar("SELECT members_version FROM conversations WHERE id = $1")
        .bind(conversation.as_str())
        .fetch_optional(&db.read)
        .await
        .map_err(backend)
}

pub(crate) async fn member_count(db: &Db, conversation: &ConversationId) -> StoreResult<u64> {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM members WHERE conversation_id = $1")
        .bind(conversation.as_str())
        .fetch_one(&db.read)
        .await
        .map_err(backend)?;
    u64::try_from(count).map_err(|_| StoreError::Backend(format!("negative count {count}")))
}

pub(crate) async fn set_muted(db: &Db, conversation: &ConversationId, user: &UserId, muted: bool) -> StoreResult<()> {
    sqlx::query("UPDATE members SET muted = $3 WHERE conversation_id = $1 AND user_id = $2")
        .bind(conversation.as_str())
        .bind(user.as_str())
        .bind(flag(muted))
        .execute(&db.write)
        .await
        .map_err(backend)?;
    Ok(())
}
