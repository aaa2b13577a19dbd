//! File records: create, look up, quota, the read-access rule, and attaching records to the
//! entries that reference them.

use std::sync::LazyLock;

use natter_core::ids::{FileId, UserId};
use natter_core::model::{FileRecord, Message};
use natter_core::store::StoreResult;
use sqlx::AnyPool;

use crate::db::{Db, backend, conflict_on, millis, placeholders, stored_time};
use crate::rows::{self, Cols, FILE, select_list};

static FILE_LIST: LazyLock<String> = LazyLock::new(|| select_list("f", "", FILE));
static BY_ID: LazyLock<String> = LazyLock::new(|| format!("SELECT {} FROM files f WHERE f.id = $1", *FILE_LIST));
static INSERT: LazyLock<String> =
    LazyLock::new(|| format!("INSERT INTO files ({}) VALUES ({})", FILE.join(", "), placeholders(1, FILE.len())));

/// `$1` is the file, `$2` the reader. A file is readable when it, or the image it is the
/// thumbnail of, was uploaded by the reader, is referenced by an entry of a conversation the
/// reader is a member of from at or after their `joined_seq`, or is the avatar of a user or of a
/// conversation that is not dissolved.
const READABLE: &str = "SELECT COUNT(*) FROM files f WHERE (f.id = $1 OR f.thumbnail_id = $1) AND ( \
       f.owner_id = $2 \
       OR EXISTS (SELECT 1 FROM messages m JOIN members mb \
                  ON mb.conversation_id = m.conversation_id AND mb.user_id = $2 \
                  WHERE m.file_id = f.id AND m.seq >= mb.joined_seq) \
       OR EXISTS (SELECT 1 FROM users u WHERE u.avatar = f.id) \
       OR EXISTS (SELECT 1 FROM conversations c WHERE c.avatar = f.id AND c.dissolved = 0))";

/// Ids per `IN (…)` list.
const IN_CHUNK: usize = 500;

pub(crate) async fn create_file(db: &Db, file: &FileRecord) -> StoreResult<()> {
    let created_at = stored_time(file.created_at)?;
    sqlx::query(&INSERT)
        .bind(file.id.as_str())
        .bind(file.owner_id.as_str())
        .bind(&file.name)
        .bind(&file.mime)
        .bind(file.size)
        .bind(&file.sha256)
        .bind(&file.blob_key)
        .bind(file.width)
        .bind(file.height)
        .bind(file.duration_ms)
        .bind(file.thumbnail_id.as_ref().map(FileId::as_str))
        .bind(millis(created_at))
        .execute(&db.write)
        .await
        .map_err(conflict_on("file"))?;
    Ok(())
}

pub(crate) async fn file(db: &Db, id: &FileId) -> StoreResult<Option<FileRecord>> {
    let row = sqlx::query(&BY_ID).bind(id.as_str()).fetch_optional(&db.read).await.map_err(backend)?;
    row.as_ref().map(|row| rows::file(Cols::new(row, ""))).transpose()
}

pub(crate) async fn storage_used(db: &Db, owner: &UserId) -> StoreResult<i64> {
    let used: Option<i64> = sqlx::query_scalar("SELECT CAST(SUM(size) AS BIGINT) FROM files WHERE owner_id = $1")
        .bind(owner.as_str())
        .fetch_one(&db.read)
        .await
        .map_err(backend)?;
    Ok(used.unwrap_or(0))
}

pub(crate) async fn file_readable(db: &Db, id: &FileId, user: &UserId) -> StoreResult<bool> {
    let count: i64 = sqlx::query_scalar(READABLE)
        .bind(id.as_str())
        .bind(user.as_str())
        .fetch_one(&db.read)
        .await
        .map_err(backend)?;
    Ok(count > 0)
}

pub(crate) async fn delete_file(db: &Db, id: &FileId) -> StoreResult<bool> {
    let done = sqlx::query("DELETE FROM files WHERE id = $1").bind(id.as_str()).execute(&db.write).await;
    Ok(done.map_err(backend)?.rows_affected() > 0)
}

/// Fills `file` of every entry that references one, with one query per [`IN_CHUNK`] ids.
pub(crate) async fn attach<'m>(pool: &AnyPool, messages: impl IntoIterator<Item = &'m mut Message>) -> StoreResult<()> {
    let mut wanting: Vec<&mut Message> = messages.into_iter().filter(|m| m.file_id.is_some()).collect();
    if wanting.is_empty() {
        return Ok(());
    }
    let mut ids: Vec<String> = wanting.iter().filter_map(|m| m.file_id.clone()).collect();
    ids.sort();
    ids.dedup();
    let mut found: Vec<FileRecord> = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IN_CHUNK) {
        let sql = format!("SELECT {} FROM files f WHERE f.id IN ({})", *FILE_LIST, placeholders(1, chunk.len()));
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(id.as_str());
        }
        for row in query.fetch_all(pool).await.map_err(backend)? {
            found.push(rows::file(Cols::new(&row, ""))?);
        }
    }
    for message in &mut wanting {
        message.file = found.iter().find(|f| Some(f.id.as_str()) == message.file_id.as_deref()).cloned();
    }
    Ok(())
}
