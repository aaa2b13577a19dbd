//! Reads that search needs: a caller's memberships (the scopes of a search) and a scan of the
//! whole message log in a stable order (rebuilding the index), and each conversation's last seq
//! (the indexer's catch-up). And the voice messages still waiting for a transcript (the jobs
//! a crash may have lost).

use std::sync::LazyLock;

use natter_core::ids::{ConversationId, Seq, UserId};
use natter_core::model::{Message, Time};
use natter_core::store::StoreResult;
use sqlx::Row;

use crate::db::{Db, backend, millis};
use crate::rows::{self, Cols, MESSAGE, select_list};

static FIRST_PAGE: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {} FROM messages m ORDER BY m.conversation_id, m.seq LIMIT $1", select_list("m", "", MESSAGE))
});
static NEXT_PAGE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM messages m WHERE m.conversation_id > $1 OR (m.conversation_id = $1 AND m.seq > $2) \
         ORDER BY m.conversation_id, m.seq LIMIT $3",
        select_list("m", "", MESSAGE)
    )
});
// `id > ''` for the first page keeps one statement (and one plan) for both.
const HEADS: &str = "SELECT id, last_seq FROM conversations WHERE id > $1 AND last_seq > 0 ORDER BY id LIMIT $2";
/// `messages_untranscribed_voice` (a partial index) holds exactly these rows.
static UNTRANSCRIBED_VOICES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM messages m WHERE m.kind = 'voice' AND m.transcript IS NULL AND m.recalled = 0 \
         AND m.created_at >= $1 ORDER BY m.created_at LIMIT $2",
        select_list("m", "", MESSAGE)
    )
});
const MEMBERSHIPS: &str = "SELECT m.conversation_id, m.joined_seq FROM members m \
     JOIN conversations c ON c.id = m.conversation_id WHERE m.user_id = $1 AND c.dissolved = 0";

pub(crate) async fn memberships_of(db: &Db, user: &UserId) -> StoreResult<Vec<(ConversationId, Seq)>> {
    let rows = sqlx::query(MEMBERSHIPS).bind(user.as_str()).fetch_all(&db.read).await.map_err(backend)?;
    rows.iter()
        .map(|row| {
            let conversation: String = row.try_get(0).map_err(backend)?;
            let joined_seq: i64 = row.try_get(1).map_err(backend)?;
            Ok((ConversationId(conversation), Seq::new(joined_seq)))
        })
        .collect()
}

pub(crate) async fn entries_page(
    db: &Db,
    after: Option<(&ConversationId, Seq)>,
    limit: u32,
) -> StoreResult<Vec<Message>> {
    let query = match after {
        None => sqlx::query(&FIRST_PAGE).bind(i64::from(limit)),
        Some((conversation, seq)) => {
            sqlx::query(&NEXT_PAGE).bind(conversation.as_str().to_owned()).bind(seq.get()).bind(i64::from(limit))
        }
    };
    let rows = query.fetch_all(&db.read).await.map_err(backend)?;
    rows.iter().map(|row| rows::message(Cols::new(row, ""))).collect()
}

pub(crate) async fn entry_count(db: &Db) -> StoreResult<u64> {
    let row = sqlx::query("SELECT COUNT(*) FROM messages").fetch_one(&db.read).await.map_err(backend)?;
    let count: i64 = row.try_get(0).map_err(backend)?;
    Ok(u64::try_from(count).unwrap_or(0))
}

pub(crate) async fn conversation_heads(
    db: &Db,
    after: Option<&ConversationId>,
    limit: u32,
) -> StoreResult<Vec<(ConversationId, Seq)>> {
    let rows = sqlx::query(HEADS)
        .bind(after.map_or("", ConversationId::as_str).to_owned())
        .bind(i64::from(limit))
        .fetch_all(&db.read)
        .await
        .map_err(backend)?;
    rows.iter()
        .map(|row| {
            let conversation: String = row.try_get(0).map_err(backend)?;
            let last_seq: i64 = row.try_get(1).map_err(backend)?;
            Ok((ConversationId(conversation), Seq::new(last_seq)))
        })
        .collect()
}

pub(crate) async fn untranscribed_voices(db: &Db, since: Time, limit: u32) -> StoreResult<Vec<Message>> {
    let rows = sqlx::query(&UNTRANSCRIBED_VOICES)
        .bind(millis(since))
        .bind(i64::from(limit))
        .fetch_all(&db.read)
        .await
        .map_err(backend)?;
    rows.iter().map(|row| rows::message(Cols::new(row, ""))).collect()
}
