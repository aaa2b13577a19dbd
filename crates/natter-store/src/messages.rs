//! The message log: append (seq assignment, idempotency, effects), reads, read markers.

use std::sync::LazyLock;

use natter_core::ids::{ConversationId, Seq, UserId};
use natter_core::model::Message;
use natter_core::store::{AppendOutcome, Effect, NewEntry, StoreError, StoreResult};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Transaction};

use crate::db::{Db, backend, flag, is_unique_violation, millis, stored_time};
use crate::effects;
use crate::rows::{self, Cols, MESSAGE, mentions_json, select_list, system_json};

static MESSAGE_LIST: LazyLock<String> = LazyLock::new(|| select_list("m", "", MESSAGE));
static BY_CLIENT_ID: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {} FROM messages m WHERE m.sender_id = $1 AND m.client_msg_id = $2", *MESSAGE_LIST)
});
static AT: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {} FROM messages m WHERE m.conversation_id = $1 AND m.seq = $2", *MESSAGE_LIST));
static AFTER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM messages m WHERE m.conversation_id = $1 AND m.seq > $2 AND m.seq >= $3 \
         ORDER BY m.seq LIMIT $4",
        *MESSAGE_LIST
    )
});
static BEFORE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM messages m WHERE m.conversation_id = $1 AND m.seq < $2 AND m.seq >= $3 \
         ORDER BY m.seq DESC LIMIT $4",
        *MESSAGE_LIST
    )
});
const UNREAD: &str = "SELECT COUNT(*) FROM messages WHERE conversation_id = $1 AND seq > $2 AND sender_id <> $3 \
     AND kind IN ('text', 'image', 'file', 'voice') AND recalled = 0";

const ENTRY_COLUMNS: &str = "conversation_id, seq, id, sender_id, kind, client_msg_id, text, file_id, reply_to, \
     mentions, target_seq, emoji, op, system, edited_at, recalled, created_at";
static INSERT_AT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO messages ({ENTRY_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
    )
});
/// SQLite: the seq is last_seq + $2 (= 1), read inside the INSERT; the `messages_appended`
/// trigger then moves last_seq, updated_at and the sender's read marker.
static INSERT_NEXT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO messages ({ENTRY_COLUMNS}) \
         SELECT $1, c.last_seq + $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17 \
         FROM conversations c WHERE c.id = $1 AND c.dissolved = 0 RETURNING seq"
    )
});

/// PostgreSQL's plain append (no effect) as one statement: take the seq, insert the entry, move
/// the sender's read marker. One statement is one transaction, so a unique violation (a racing
/// resend) undoes the seq it took and no seq is skipped; and it costs one round trip instead of
/// five (BEGIN, three statements, COMMIT), inside the conversation's lock. `$2` is 1 (the step),
/// `$17` the entry's time (also the conversation's `updated_at`).
static APPEND_PLAIN_PG: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH next AS (UPDATE conversations SET last_seq = last_seq + $2, updated_at = $17 \
         WHERE id = $1 AND dissolved = 0 RETURNING last_seq), \
         entry AS (INSERT INTO messages ({ENTRY_COLUMNS}) \
         SELECT $1, next.last_seq, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17 FROM next \
         RETURNING seq), \
         marker AS (UPDATE members SET read_seq = entry.seq FROM entry \
         WHERE members.conversation_id = $1 AND members.user_id = $4 AND members.read_seq < entry.seq) \
         SELECT seq FROM entry"
    )
});

/// `message` as it reads back once stored at `seq` (times at millisecond precision, no reactions).
pub(crate) fn as_stored(message: &Message, seq: Seq) -> Result<Message, sqlx::Error> {
    let mut stored = message.clone();
    stored.seq = seq;
    stored.reactions.clear();
    stored.created_at = stored_time(message.created_at).map_err(|e| sqlx::Error::Encode(e.into()))?;
    stored.edited_at = message.edited_at.map(stored_time).transpose().map_err(|e| sqlx::Error::Encode(e.into()))?;
    Ok(stored)
}

/// Binds an entry's 17 columns in [`ENTRY_COLUMNS`] order, `second` as `$2`: the seq itself for
/// [`INSERT_AT`], the step from `last_seq` for [`INSERT_NEXT`] and [`APPEND_PLAIN_PG`].
fn bind_entry<'q>(
    sql: &'q str,
    m: &'q Message,
    second: i64,
) -> Result<sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>, sqlx::Error> {
    let encode = |error: serde_json::Error| sqlx::Error::Encode(Box::new(error));
    Ok(sqlx::query(sql)
        .bind(m.conversation_id.as_str())
        .bind(second)
        .bind(m.id.as_str())
        .bind(m.sender_id.as_str())
        .bind(m.kind.as_str())
        .bind(m.client_msg_id.as_deref())
        .bind(m.text.as_deref())
        .bind(m.file_id.as_deref())
        .bind(m.reply_to.map(Seq::get))
        .bind(mentions_json(&m.mentions).map_err(encode)?)
        .bind(m.target_seq.map(Seq::get))
        .bind(m.emoji.as_deref())
        .bind(m.op.as_deref())
        .bind(system_json(m.system.as_ref()).map_err(encode)?)
        .bind(m.edited_at.map(millis))
        .bind(flag(m.recalled))
        .bind(millis(m.created_at)))
}

/// Inserts `message` as the entry `seq` of its conversation and returns it as stored. The raw
/// sqlx error is kept so that `append` can tell a unique violation (a racing resend) apart.
pub(crate) async fn insert_entry(
    tx: &mut Transaction<'static, Any>,
    message: &Message,
    seq: Seq,
) -> Result<Message, sqlx::Error> {
    let stored = as_stored(message, seq)?;
    bind_entry(&INSERT_AT, &stored, seq.get())?.execute(&mut **tx).await?;
    Ok(stored)
}

/// SQLite: inserts `message` as its conversation's next entry in one statement; `None` when the
/// conversation does not exist or is dissolved. A failed INSERT changes nothing (SQLite undoes
/// just that statement), so no seq is ever skipped.
pub(crate) async fn insert_next_entry(
    tx: &mut Transaction<'static, Any>,
    message: &Message,
) -> Result<Option<Message>, sqlx::Error> {
    let stored = as_stored(message, Seq::ZERO)?;
    let seq: Option<Seq> = bind_entry(&INSERT_NEXT, &stored, 1)?.fetch_optional(&mut **tx).await?.map(|row| {
        use sqlx::Row;
        Seq::new(row.get::<i64, _>(0))
    });
    Ok(seq.map(|seq| Message { seq, ..stored }))
}

/// SQLite's append: one INSERT (plus the effect's statements) in one transaction.
async fn append_sqlite(db: &Db, message: Message, effect: Effect) -> StoreResult<AppendOutcome> {
    let mut tx = db.write.begin().await.map_err(backend)?;
    let stored = match insert_next_entry(&mut tx, &message).await {
        Ok(Some(stored)) => stored,
        Ok(None) => {
            tx.rollback().await.map_err(backend)?;
            return Ok(AppendOutcome::ConversationGone);
        }
        Err(error) if is_unique_violation(&error) => {
            tx.rollback().await.map_err(backend)?;
            return resent(db, &message).await;
        }
        Err(error) => return Err(backend(error)),
    };
    effects::apply(&mut tx, &stored, &effect).await?;
    tx.commit().await.map_err(backend)?;
    Ok(AppendOutcome::Appended(stored))
}

/// The answer to an append that hit the (sender, client_msg_id) index: the entry stored first.
pub(crate) async fn resent(db: &Db, message: &Message) -> StoreResult<AppendOutcome> {
    match existing_resend(db, message).await? {
        Some(existing) => Ok(AppendOutcome::Duplicate(existing)),
        None => Err(StoreError::Conflict("message")),
    }
}

/// One transaction: take the next seq (the row lock on the conversation serialises appenders
/// on PostgreSQL; SQLite has one writer), store the entry, apply its effect, move the sender's
/// read marker. A failure anywhere rolls all of it back, so no seq is ever skipped.
///
/// A resend is found by the unique index on (sender, client_msg_id), not by a lookup first: a
/// resend is rare, and every other send saves a query.
pub(crate) async fn append(db: &Db, entry: NewEntry) -> StoreResult<AppendOutcome> {
    let NewEntry { message, effect } = entry;
    if db.sqlite {
        return match (&db.appends, &effect) {
            (Some(queue), Effect::None) => queue.append(message).await,
            _ => append_sqlite(db, message, effect).await,
        };
    }
    if matches!(effect, Effect::None) {
        return match &db.appends {
            Some(queue) => queue.append(message).await,
            None => append_plain_pg(db, message).await,
        };
    }
    let mut tx = db.write.begin().await.map_err(backend)?;
    let seq: Option<i64> = sqlx::query_scalar(
        "UPDATE conversations SET last_seq = last_seq + 1, updated_at = $2 WHERE id = $1 AND dissolved = 0 \
         RETURNING last_seq",
    )
    .bind(message.conversation_id.as_str())
    .bind(millis(message.created_at))
    .fetch_optional(&mut *tx)
    .await
    .map_err(backend)?;
    let Some(seq) = seq.map(Seq::new) else {
        tx.rollback().await.map_err(backend)?;
        return Ok(AppendOutcome::ConversationGone);
    };
    let stored = match insert_entry(&mut tx, &message, seq).await {
        Ok(stored) => stored,
        Err(error) if is_unique_violation(&error) => {
            // A resend raced this one and committed first: answer with its entry.
            tx.rollback().await.map_err(backend)?;
            return resent(db, &message).await;
        }
        Err(error) => return Err(backend(error)),
    };
    effects::apply(&mut tx, &stored, &effect).await?;
    sqlx::query("UPDATE members SET read_seq = $3 WHERE conversation_id = $1 AND user_id = $2 AND read_seq < $3")
        .bind(stored.conversation_id.as_str())
        .bind(stored.sender_id.as_str())
        .bind(seq.get())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    tx.commit().await.map_err(backend)?;
    Ok(AppendOutcome::Appended(stored))
}

/// See [`APPEND_PLAIN_PG`].
pub(crate) async fn append_plain_pg(db: &Db, message: Message) -> StoreResult<AppendOutcome> {
    let stored = as_stored(&message, Seq::ZERO).map_err(backend)?;
    let appended = bind_entry(&APPEND_PLAIN_PG, &stored, 1).map_err(backend)?.fetch_optional(&db.write).await;
    match appended {
        Ok(Some(row)) => {
            use sqlx::Row;
            let seq: i64 = row.try_get(0).map_err(backend)?;
            Ok(AppendOutcome::Appended(Message { seq: Seq::new(seq), ..stored }))
        }
        Ok(None) => Ok(AppendOutcome::ConversationGone),
        // A resend raced this one and committed first: answer with its entry.
        Err(error) if is_unique_violation(&error) => resent(db, &message).await,
        Err(error) => Err(backend(error)),
    }
}

async fn existing_resend(db: &Db, message: &Message) -> StoreResult<Option<Message>> {
    match &message.client_msg_id {
        Some(client_msg_id) => message_by_client_id(db, &message.sender_id, client_msg_id).await,
        None => Ok(None),
    }
}

pub(crate) async fn message_by_client_id(
    db: &Db,
    sender: &UserId,
    client_msg_id: &str,
) -> StoreResult<Option<Message>> {
    let row = sqlx::query(&BY_CLIENT_ID)
        .bind(sender.as_str())
        .bind(client_msg_id)
        .fetch_optional(&db.read)
        .await
        .map_err(backend)?;
    one_with_reactions(db, row).await
}

pub(crate) async fn message_at(db: &Db, conversation: &ConversationId, seq: Seq) -> StoreResult<Option<Message>> {
    let row =
        sqlx::query(&AT).bind(conversation.as_str()).bind(seq.get()).fetch_optional(&db.read).await.map_err(backend)?;
    one_with_reactions(db, row).await
}

pub(crate) async fn messages_after(
    db: &Db,
    conversation: &ConversationId,
    after: Seq,
    min_seq: Seq,
    limit: u32,
) -> StoreResult<Vec<Message>> {
    page(db, &AFTER, conversation, after, min_seq, limit).await
}

pub(crate) async fn messages_before(
    db: &Db,
    conversation: &ConversationId,
    before: Seq,
    min_seq: Seq,
    limit: u32,
) -> StoreResult<Vec<Message>> {
    page(db, &BEFORE, conversation, before, min_seq, limit).await
}

async fn page(
    db: &Db,
    sql: &str,
    conversation: &ConversationId,
    bound: Seq,
    min_seq: Seq,
    limit: u32,
) -> StoreResult<Vec<Message>> {
    let rows = sqlx::query(sql)
        .bind(conversation.as_str())
        .bind(bound.get())
        .bind(min_seq.get())
        .bind(i64::from(limit))
        .fetch_all(&db.read)
        .await
        .map_err(backend)?;
    let mut messages = rows.iter().map(|row| rows::message(Cols::new(row, ""))).collect::<StoreResult<Vec<_>>>()?;
    fill_reactions(&db.read, conversation, &mut messages).await?;
    crate::files::attach(&db.read, messages.iter_mut()).await?;
    Ok(messages)
}

async fn one_with_reactions(db: &Db, row: Option<AnyRow>) -> StoreResult<Option<Message>> {
    let Some(row) = row else {
        return Ok(None);
    };
    let mut message = rows::message(Cols::new(&row, ""))?;
    let conversation = message.conversation_id.clone();
    fill_reactions(&db.read, &conversation, std::slice::from_mut(&mut message)).await?;
    crate::files::attach(&db.read, Some(&mut message)).await?;
    Ok(Some(message))
}

/// Loads the reactions of every content entry in `messages` (one conversation) with one range
/// query over the seqs they span.
async fn fill_reactions(pool: &AnyPool, conversation: &ConversationId, messages: &mut [Message]) -> StoreResult<()> {
    let seqs = messages.iter().filter(|m| m.kind.is_content()).map(|m| m.seq);
    let (Some(low), Some(high)) = (seqs.clone().min(), seqs.max()) else {
        return Ok(());
    };
    let rows = sqlx::query(
        "SELECT seq, emoji, user_id FROM reactions WHERE conversation_id = $1 AND seq >= $2 AND seq <= $3 \
         ORDER BY added_seq",
    )
    .bind(conversation.as_str())
    .bind(low.get())
    .bind(high.get())
    .fetch_all(pool)
    .await
    .map_err(backend)?;
    for row in &rows {
        let cols = Cols::new(row, "");
        let seq = Seq::new(cols.get("seq")?);
        if let Some(message) = messages.iter_mut().find(|m| m.seq == seq) {
            message.reactions.push((cols.get("emoji")?, UserId(cols.get("user_id")?)));
        }
    }
    Ok(())
}

pub(crate) async fn mark_read(
    db: &Db,
    conversation: &ConversationId,
    user: &UserId,
    seq: Seq,
) -> StoreResult<Option<(Seq, i64)>> {
    let mut tx = db.write.begin().await.map_err(backend)?;
    let last_seq: Option<Seq> = sqlx::query_scalar("SELECT last_seq FROM conversations WHERE id = $1")
        .bind(conversation.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?
        .map(Seq::new);
    let Some(last_seq) = last_seq else {
        tx.rollback().await.map_err(backend)?;
        return Ok(None);
    };
    sqlx::query("UPDATE members SET read_seq = $3 WHERE conversation_id = $1 AND user_id = $2 AND read_seq < $3")
        .bind(conversation.as_str())
        .bind(user.as_str())
        .bind(seq.min(last_seq).get())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    let read_seq: Option<Seq> =
        sqlx::query_scalar("SELECT read_seq FROM members WHERE conversation_id = $1 AND user_id = $2")
            .bind(conversation.as_str())
            .bind(user.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?
            .map(Seq::new);
    let Some(read_seq) = read_seq else {
        tx.rollback().await.map_err(backend)?;
        return Ok(None);
    };
    let unread: i64 = sqlx::query_scalar(UNREAD)
        .bind(conversation.as_str())
        .bind(read_seq.get())
        .bind(user.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
    tx.commit().await.map_err(backend)?;
    Ok(Some((read_seq, unread)))
}
