//! Counts, hashes and limits an upload as it streams past, keeping its first bytes for the
//! sniffer; stops the stream (so the blob store stores nothing) as soon as a limit is crossed.

use std::sync::Arc;

use futures_util::StreamExt;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use super::sniff::HEAD_BYTES;
use crate::blob::{BlobError, ByteStream};

/// Which limit an upload crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Overrun {
    FileLimit,
    Quota,
}

/// What the stream carried.
pub(super) struct Counted {
    pub(super) size: u64,
    pub(super) sha256: String,
    pub(super) head: Vec<u8>,
    pub(super) overrun: Option<Overrun>,
}

struct State {
    size: u64,
    hasher: Sha256,
    head: Vec<u8>,
    overrun: Option<Overrun>,
}

pub(super) struct Tally {
    max_file: u64,
    quota_left: u64,
    state: Arc<Mutex<State>>,
}

impl Tally {
    pub(super) fn new(max_file: u64, quota_left: u64) -> Self {
        let state = State { size: 0, hasher: Sha256::new(), head: Vec::new(), overrun: None };
        Self { max_file, quota_left, state: Arc::new(Mutex::new(state)) }
    }

    /// `data`, counted; fails with `Aborted` at the first chunk that crosses a limit.
    pub(super) fn wrap<'a>(&self, data: ByteStream<'a>) -> ByteStream<'a> {
        let state = self.state.clone();
        let (max_file, quota_left) = (self.max_file, self.quota_left);
        data.map(move |chunk| {
            let chunk = chunk?;
            let mut state = state.lock();
            state.size = state.size.saturating_add(chunk.len() as u64);
            let overrun = if state.size > max_file {
                Some(Overrun::FileLimit)
            } else if state.size > quota_left {
                Some(Overrun::Quota)
            } else {
                None
            };
            if let Some(overrun) = overrun {
                state.overrun = Some(overrun);
                return Err(BlobError::Aborted("size limit reached".into()));
            }
            state.hasher.update(&chunk);
            let room = HEAD_BYTES.saturating_sub(state.head.len());
            state.head.extend_from_slice(&chunk[..room.min(chunk.len())]);
            Ok(chunk)
        })
        .boxed()
    }

    pub(super) fn finish(self) -> Counted {
        let mut state = self.state.lock();
        let hasher = std::mem::take(&mut state.hasher);
        Counted {
            size: state.size,
            sha256: hex::encode(hasher.finalize()),
            head: std::mem::take(&mut state.head),
            overrun: state.overrun,
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures_util::TryStreamExt;

    use super::*;

    fn chunks(parts: &[&'static [u8]]) -> ByteStream<'static> {
        futures_util::stream::iter(parts.iter().map(|p| Ok(Bytes::from_static(p))).collect::<Vec<_>>()).boxed()
    }

    #[tokio::test]
    async fn counts_and_hashes_what_passes() {
        let tally = Tally::new(100, 100);
        let out: Vec<Bytes> = tally.wrap(chunks(&[b"hello ", b"world"])).try_collect().await.expect("passes");
        assert_eq!(out.concat(), b"hello world");
        let counted = tally.finish();
        assert_eq!(counted.size, 11);
        assert_eq!(counted.head, b"hello world");
        assert_eq!(counted.sha256, "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
        assert_eq!(counted.overrun, None);
    }

    #[tokio::test]
    async fn stops_at_the_first_limit_crossed() {
        let tally = Tally::new(8, 100);
        assert!(tally.wrap(chunks(&[b"12345", b"6789"])).try_collect::<Vec<_>>().await.is_err());
        assert_eq!(tally.finish().overrun, Some(Overrun::FileLimit));
        let tally = Tally::new(100, 8);
        assert!(tally.wrap(chunks(&[b"12345", b"6789"])).try_collect::<Vec<_>>().await.is_err());
        assert_eq!(tally.finish().overrun, Some(Overrun::Quota));
        let tally = Tally::new(9, 9);
        assert!(tally.wrap(chunks(&[b"12345", b"6789"])).try_collect::<Vec<_>>().await.is_ok());
    }
}
