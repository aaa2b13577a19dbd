//! Group commit: plain appends (no effect) queue up and are stored in batches, then each
//! caller is answered.
//!
//! **SQLite**: one task stores everything queued so far, one statement per round (a round takes
//! each conversation's first waiting entry; callers hold their conversations' log locks, so a
//! batch is normally one round).
//!
//! SQLite has one writer, and every statement is a round trip to the connection's thread (sqlx
//! runs each SQLite connection on a thread of its own), so a transaction per message spent most
//! of its time in BEGIN, INSERT and COMMIT hops. A round is one multi-row INSERT
//! ([`append_many_sqlite`]) that is its own transaction: one hop for the whole batch. Each row
//! takes its seq inside the statement and the `messages_appended` trigger moves `last_seq` and the
//! read marker. If the statement fails (a racing resend's unique violation), nothing of it is
//! stored and the round is appended again entry by entry in one transaction, where a failed
//! INSERT undoes only itself, so one bad entry does not spoil the others and no seq is skipped.
//! An acknowledgement comes only after the commit.
//!
//! **PostgreSQL**: up to [`PG_IN_FLIGHT`] batches run at once, each one statement ([`APPEND_MANY_PG`])
//! on its own connection, so an append costs its share of one round trip instead of a round trip
//! of its own. Its callers hold their conversations' log locks, so a batch never holds two entries
//! of one conversation. Any failure of a batch (a racing resend's unique violation, a deadlock
//! between nodes) undoes the whole statement, and its entries are then appended one by one, which
//! sorts each out as a single append would.

use std::collections::HashMap;
use std::sync::Arc;

use natter_core::ids::Seq;
use natter_core::model::Message;
use natter_core::store::{AppendOutcome, StoreError, StoreResult};
use sqlx::PgPool;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::db::{Db, backend, flag, is_unique_violation, millis};
use crate::messages::{append_plain_pg, as_stored, insert_next_entry, resent};
use crate::rows::{mentions_json, system_json};

/// Most entries one transaction takes.
const MAX_BATCH: usize = 256;
/// Appends waiting for the writer; senders wait beyond this (backpressure).
const QUEUE: usize = 4096;

struct Queued {
    message: Message,
    reply: oneshot::Sender<StoreResult<AppendOutcome>>,
}

/// The handle appends are queued through. Cheap to clone.
#[derive(Clone)]
pub(crate) struct AppendQueue {
    sender: mpsc::Sender<Queued>,
}

impl AppendQueue {
    /// SQLite: starts the writer task over `db`'s pools (`db` must not hold a queue itself).
    pub(crate) fn start(db: Db) -> AppendQueue {
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(run(db, receiver));
        AppendQueue { sender }
    }

    /// PostgreSQL: starts the batching task; batches run on `pool` (`db` must not hold a queue
    /// itself: a failed batch's entries are appended one by one through it).
    pub(crate) fn start_pg(db: Db, pool: PgPool) -> AppendQueue {
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(run_pg(db, pool, receiver));
        AppendQueue { sender }
    }

    pub(crate) async fn append(&self, message: Message) -> StoreResult<AppendOutcome> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Queued { message, reply })
            .await
            .map_err(|_| StoreError::Backend("the append queue has stopped".into()))?;
        answer.await.map_err(|_| StoreError::Backend("the append queue dropped an append".into()))?
    }
}

async fn run(db: Db, mut queue: mpsc::Receiver<Queued>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        for round in rounds(std::mem::take(&mut batch)) {
            commit_round_sqlite(&db, round).await;
        }
    }
}

/// Splits `batch` into rounds that each take every conversation's first waiting entry, in queue
/// order: one statement never holds two entries of one conversation.
fn rounds(mut batch: Vec<Queued>) -> Vec<Vec<Queued>> {
    let mut rounds = Vec::with_capacity(1);
    while !batch.is_empty() {
        let mut seen = std::collections::HashSet::with_capacity(batch.len());
        let (round, rest): (Vec<_>, Vec<_>) =
            batch.into_iter().partition(|queued| seen.insert(queued.message.conversation_id.clone()));
        rounds.push(round);
        batch = rest;
    }
    rounds
}

async fn commit_round_sqlite(db: &Db, round: Vec<Queued>) {
    let stored = match round.iter().map(|queued| as_stored(&queued.message, Seq::ZERO)).collect::<Result<Vec<_>, _>>() {
        Ok(stored) => stored,
        Err(error) => return fail_all(round, &error),
    };
    match append_many_sqlite(db, &stored).await {
        Ok(seqs) => answer(round, stored, &seqs),
        Err(error) => {
            if !is_unique_violation(&error) {
                tracing::warn!(%error, entries = round.len(), "a batch of appends failed; appending them one by one");
            }
            commit(db, round).await;
        }
    }
}

/// Answers each append of a batch stored by one statement: `seqs` maps the ids of the entries
/// stored to their seqs; an entry missing from it found its conversation gone or dissolved.
fn answer(batch: Vec<Queued>, stored: Vec<Message>, seqs: &HashMap<String, i64>) {
    for (queued, message) in batch.into_iter().zip(stored) {
        let outcome = match seqs.get(message.id.as_str()) {
            Some(seq) => AppendOutcome::Appended(Message { seq: Seq::new(*seq), ..message }),
            None => AppendOutcome::ConversationGone,
        };
        let _ = queued.reply.send(Ok(outcome));
    }
}

/// The columns of one entry in [`append_many_sqlite`]'s `VALUES` rows, in bind order.
const SQLITE_ROW_COLUMNS: usize = 16;

/// SQLite: the multi-row INSERT of `rows` entries (each of another conversation), cached per size.
fn append_many_sqlite_sql(rows: usize) -> String {
    let values = (0..rows)
        .map(|row| format!("({})", crate::db::placeholders(row * SQLITE_ROW_COLUMNS + 1, SQLITE_ROW_COLUMNS)))
        .collect::<Vec<_>>()
        .join(", ");
    // VALUES names its columns column1, column2, …: conversation_id, id, sender_id, kind,
    // client_msg_id, text, file_id, reply_to, mentions, target_seq, emoji, op, system, edited_at,
    // recalled, created_at.
    format!(
        "INSERT INTO messages (conversation_id, seq, id, sender_id, kind, client_msg_id, text, file_id, reply_to, \
         mentions, target_seq, emoji, op, system, edited_at, recalled, created_at) \
         SELECT v.column1, c.last_seq + 1, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7, \
         v.column8, v.column9, v.column10, v.column11, v.column12, v.column13, v.column14, v.column15, v.column16 \
         FROM (VALUES {values}) AS v JOIN conversations c ON c.id = v.column1 AND c.dissolved = 0 \
         RETURNING id, seq"
    )
}

/// Appends entries of distinct conversations in one statement (its own transaction); returns
/// `(id, seq)` of each entry stored.
async fn append_many_sqlite(db: &Db, batch: &[Message]) -> Result<HashMap<String, i64>, sqlx::Error> {
    let encode = |error: serde_json::Error| sqlx::Error::Encode(Box::new(error));
    let sql = append_many_sqlite_sql(batch.len());
    let mut query = sqlx::query_as::<_, (String, i64)>(&sql);
    for m in batch {
        query = query
            .bind(m.conversation_id.as_str().to_owned())
            .bind(m.id.as_str().to_owned())
            .bind(m.sender_id.as_str().to_owned())
            .bind(m.kind.as_str().to_owned())
            .bind(m.client_msg_id.clone())
            .bind(m.text.clone())
            .bind(m.file_id.clone())
            .bind(m.reply_to.map(Seq::get))
            .bind(mentions_json(&m.mentions).map_err(encode)?)
            .bind(m.target_seq.map(Seq::get))
            .bind(m.emoji.clone())
            .bind(m.op.clone())
            .bind(system_json(m.system.as_ref()).map_err(encode)?)
            .bind(m.edited_at.map(millis))
            .bind(flag(m.recalled))
            .bind(millis(m.created_at));
    }
    let rows = query.fetch_all(&db.write).await?;
    Ok(rows.into_iter().collect())
}

enum Step {
    Appended(Box<Message>),
    Gone,
    Resent,
    Failed(StoreError),
}

/// SQLite, after a failed batch statement: the entries one INSERT each in one transaction, so
/// each one's failure (a resend) is its own.
async fn commit(db: &Db, batch: Vec<Queued>) {
    let mut tx = match db.write.begin().await {
        Ok(tx) => tx,
        Err(error) => return fail_all(batch, &error),
    };
    let mut steps = Vec::with_capacity(batch.len());
    for queued in &batch {
        steps.push(match insert_next_entry(&mut tx, &queued.message).await {
            Ok(Some(stored)) => Step::Appended(Box::new(stored)),
            Ok(None) => Step::Gone,
            Err(error) if is_unique_violation(&error) => Step::Resent,
            Err(error) => Step::Failed(backend(error)),
        });
    }
    let committed = tx.commit().await.map_err(|error| error.to_string());
    for (queued, step) in batch.into_iter().zip(steps) {
        let outcome = match (&committed, step) {
            (Err(error), _) => Err(StoreError::Backend(error.clone())),
            (Ok(()), Step::Appended(stored)) => Ok(AppendOutcome::Appended(*stored)),
            (Ok(()), Step::Gone) => Ok(AppendOutcome::ConversationGone),
            (Ok(()), Step::Resent) => resent(db, &queued.message).await,
            (Ok(()), Step::Failed(error)) => Err(error),
        };
        let _ = queued.reply.send(outcome);
    }
}

/// Batches of PostgreSQL appends running at once (each on its own connection of the pool). Fewer
/// batches in flight make bigger ones: on the 2-core bench machine direct throughput was best
/// with 1–2 (4 cost the split topology about a tenth; docs/BENCHMARKS.md), and 2 keeps one batch
/// filling while another waits on a row lock.
pub(crate) const PG_IN_FLIGHT: usize = 2;

/// Appends a batch of entries to their conversations in one statement; returns `(id, seq)` of
/// each entry stored (an entry whose conversation is gone or dissolved is missing).
///
/// `locked` takes the conversations' row locks in id order, so two nodes' batches that share
/// conversations wait for each other instead of deadlocking. The rest is the single append's
/// statement (see `messages::APPEND_PLAIN_PG`) over arrays.
const APPEND_MANY_PG: &str = "WITH input AS (SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], \
     $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::text[], $10::bigint[], $11::text[], \
     $12::text[], $13::text[], $14::bigint[], $15::bigint[], $16::bigint[]) AS i(conversation_id, id, sender_id, \
     kind, client_msg_id, text, file_id, reply_to, mentions, target_seq, emoji, op, system, edited_at, recalled, \
     created_at)), \
     locked AS (SELECT c.id FROM conversations c WHERE c.id IN (SELECT conversation_id FROM input) \
     ORDER BY c.id FOR UPDATE), \
     next AS (UPDATE conversations c SET last_seq = c.last_seq + 1, updated_at = i.created_at \
     FROM input i, locked l WHERE c.id = l.id AND i.conversation_id = c.id AND c.dissolved = 0 \
     RETURNING c.id, c.last_seq), \
     entry AS (INSERT INTO messages (conversation_id, seq, id, sender_id, kind, client_msg_id, text, file_id, \
     reply_to, mentions, target_seq, emoji, op, system, edited_at, recalled, created_at) \
     SELECT i.conversation_id, next.last_seq, i.id, i.sender_id, i.kind, i.client_msg_id, i.text, i.file_id, \
     i.reply_to, i.mentions, i.target_seq, i.emoji, i.op, i.system, i.edited_at, i.recalled, i.created_at \
     FROM input i JOIN next ON next.id = i.conversation_id RETURNING id, seq, conversation_id, sender_id), \
     marker AS (UPDATE members SET read_seq = entry.seq FROM entry \
     WHERE members.conversation_id = entry.conversation_id AND members.user_id = entry.sender_id \
     AND members.read_seq < entry.seq) \
     SELECT id, seq FROM entry";

async fn run_pg(db: Db, pool: PgPool, mut queue: mpsc::Receiver<Queued>) {
    let slots = Arc::new(Semaphore::new(PG_IN_FLIGHT));
    loop {
        // A slot first: while every slot is busy, appends keep queueing and the next batch grows.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let mut batch = Vec::with_capacity(MAX_BATCH);
        if queue.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let (db, pool) = (db.clone(), pool.clone());
        tokio::spawn(async move {
            commit_pg(&db, &pool, batch).await;
            drop(slot);
        });
    }
}

/// Commits `batch` in [`rounds`], so that a caller that appends without the conversation's log
/// lock (a test, a tool) still gets one statement per round instead of a failed batch.
async fn commit_pg(db: &Db, pool: &PgPool, batch: Vec<Queued>) {
    for round in rounds(batch) {
        commit_round_pg(db, pool, round).await;
    }
}

async fn commit_round_pg(db: &Db, pool: &PgPool, batch: Vec<Queued>) {
    // One entry: the single append's statement is as cheap and needs no arrays.
    if batch.len() == 1 {
        for queued in batch {
            let _ = queued.reply.send(append_plain_pg(db, queued.message).await);
        }
        return;
    }
    let stored = match batch.iter().map(|queued| as_stored(&queued.message, Seq::ZERO)).collect::<Result<Vec<_>, _>>() {
        Ok(stored) => stored,
        Err(error) => return fail_all(batch, &error),
    };
    match append_many_pg(pool, &stored).await {
        Ok(seqs) => answer(batch, stored, &seqs),
        Err(error) => {
            if !is_unique_violation(&error) {
                tracing::warn!(%error, entries = batch.len(), "a batch of appends failed; appending them one by one");
            }
            for queued in batch {
                let _ = queued.reply.send(append_plain_pg(db, queued.message).await);
            }
        }
    }
}

async fn append_many_pg(pool: &PgPool, batch: &[Message]) -> Result<HashMap<String, i64>, sqlx::Error> {
    let encode = |error: serde_json::Error| sqlx::Error::Encode(Box::new(error));
    let column = |get: fn(&Message) -> Option<String>| batch.iter().map(get).collect::<Vec<_>>();
    let mut mentions = Vec::with_capacity(batch.len());
    let mut systems = Vec::with_capacity(batch.len());
    for message in batch {
        mentions.push(mentions_json(&message.mentions).map_err(encode)?);
        systems.push(system_json(message.system.as_ref()).map_err(encode)?);
    }
    let rows: Vec<(String, i64)> = sqlx::query_as(APPEND_MANY_PG)
        .bind(batch.iter().map(|m| m.conversation_id.as_str().to_owned()).collect::<Vec<_>>())
        .bind(batch.iter().map(|m| m.id.as_str().to_owned()).collect::<Vec<_>>())
        .bind(batch.iter().map(|m| m.sender_id.as_str().to_owned()).collect::<Vec<_>>())
        .bind(batch.iter().map(|m| m.kind.as_str().to_owned()).collect::<Vec<_>>())
        .bind(column(|m| m.client_msg_id.clone()))
        .bind(column(|m| m.text.clone()))
        .bind(column(|m| m.file_id.clone()))
        .bind(batch.iter().map(|m| m.reply_to.map(Seq::get)).collect::<Vec<_>>())
        .bind(mentions)
        .bind(batch.iter().map(|m| m.target_seq.map(Seq::get)).collect::<Vec<_>>())
        .bind(column(|m| m.emoji.clone()))
        .bind(column(|m| m.op.clone()))
        .bind(systems)
        .bind(batch.iter().map(|m| m.edited_at.map(millis)).collect::<Vec<_>>())
        .bind(batch.iter().map(|m| flag(m.recalled)).collect::<Vec<_>>())
        .bind(batch.iter().map(|m| millis(m.created_at)).collect::<Vec<_>>())
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Answers every append of `batch` with `error`.
fn fail_all(batch: Vec<Queued>, error: &impl std::fmt::Display) {
    let message = error.to_string();
    for queued in batch {
        let _ = queued.reply.send(Err(StoreError::Backend(message.clone())));
    }
}
