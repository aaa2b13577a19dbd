//! The blob-store port: where file bytes live (a local directory, S3-compatible storage).
//!
//! Keys are chosen by core (`files/<file id>`), never by clients: ASCII letters, digits, `/`,
//! `-`, `_` and `.`, no empty or dot-only segments. Adapters store bytes and nothing else; the
//! metadata (name, type, size, hash) is in the [`crate::store::Store`]. Every adapter runs the
//! same conformance suite (natter-blob's tests).

use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;

/// A stream of chunks going into or coming out of a blob store.
pub type ByteStream<'a> = BoxStream<'a, Result<Bytes, BlobError>>;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("no blob under that key")]
    NotFound,
    /// The key is not one core would choose.
    #[error("invalid blob key {0:?}")]
    InvalidKey(String),
    /// The input stream of a `put` failed (or its producer gave up, e.g. a size limit): the put
    /// stored nothing.
    #[error("upload aborted: {0}")]
    Aborted(String),
    /// The storage failed or could not be reached. The text is for logs only.
    #[error("blob storage error: {0}")]
    Backend(String),
}

pub type BlobResult<T> = Result<T, BlobError>;

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores the stream's bytes under `key` (replacing what was there) and returns how many
    /// were written. All or nothing: if the stream yields an error, or the write fails, nothing
    /// is left under `key` and readers never see a partial blob.
    async fn put(&self, key: &str, data: ByteStream<'_>) -> BlobResult<u64>;
    /// The bytes in `range` (half-open, already clamped by the caller to the blob's size), or all
    /// of them. `NotFound` when there is no such blob.
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> BlobResult<ByteStream<'static>>;
    /// The blob's size, `None` when there is no such blob.
    async fn head(&self, key: &str) -> BlobResult<Option<u64>>;
    /// Removes the blob; removing a missing one is not an error.
    async fn delete(&self, key: &str) -> BlobResult<()>;
}

/// Checks that `key` is one core would choose (see the module docs); adapters call this first.
pub fn check_key(key: &str) -> BlobResult<()> {
    let chars_ok = key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'));
    let segments_ok = key.split('/').all(|segment| !segment.is_empty() && segment.chars().any(|c| c != '.'));
    if key.is_empty() || key.len() > 512 || !chars_ok || !segments_ok {
        return Err(BlobError::InvalidKey(key.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_key;

    #[test]
    fn keys_core_would_choose_pass_and_others_fail() {
        assert!(check_key("files/0192ab").is_ok());
        assert!(check_key("files/a.b-c_d").is_ok());
        for bad in ["", "/abs", "a//b", "a/../b", "..", "a/./b", "a b", "a\\b", "ключ", "a/"] {
            assert!(check_key(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
