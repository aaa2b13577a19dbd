//! The watch stream: one long HTTP response carrying newline-delimited JSON messages.

use super::client::decode_error;
use super::wire::{EventKind, KeyValue, WatchMessage};
use crate::error::EtcdError;

const PATH: &str = "/v3/watch";

/// A change to a watched key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    Put(KeyValue),
    Delete(KeyValue),
}

/// What the stream says next.
#[derive(Debug)]
pub enum WatchUpdate {
    /// Changes at one revision (or a run of them), in order.
    Events { revision: i64, events: Vec<WatchEvent> },
    /// The watch is gone: etcd compacted past the start revision, or cancelled it. List again.
    Canceled { compact_revision: i64, reason: String },
}

pub struct WatchStream {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl WatchStream {
    pub(crate) fn new(response: reqwest::Response) -> Self {
        WatchStream { response, buffer: Vec::new() }
    }

    /// The next update; `Ok(None)` when etcd ended the response. The `created` confirmation
    /// and empty progress messages are skipped.
    pub async fn next(&mut self) -> Result<Option<WatchUpdate>, EtcdError> {
        loop {
            while let Some(line) = self.take_line() {
                if let Some(update) = parse_line(&line)? {
                    return Ok(Some(update));
                }
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => self.buffer.extend_from_slice(&chunk),
                Ok(None) => return Ok(None),
                Err(source) => return Err(EtcdError::Unreachable { path: PATH, source }),
            }
        }
    }

    fn take_line(&mut self) -> Option<Vec<u8>> {
        let end = self.buffer.iter().position(|&b| b == b'\n')?;
        let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
        line.pop();
        Some(line)
    }
}

fn parse_line(line: &[u8]) -> Result<Option<WatchUpdate>, EtcdError> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let message: WatchMessage = serde_json::from_slice(line).map_err(|e| decode_error(PATH, e))?;
    if let Some(error) = message.error {
        return Err(error.into_error(PATH));
    }
    let Some(result) = message.result else {
        return Err(decode_error(PATH, "neither result nor error"));
    };
    if result.canceled || result.compact_revision != 0 {
        return Ok(Some(WatchUpdate::Canceled {
            compact_revision: result.compact_revision,
            reason: result.cancel_reason,
        }));
    }
    if result.created || result.events.is_empty() {
        return Ok(None);
    }
    let events = result
        .events
        .into_iter()
        .map(|event| match event.kind {
            EventKind::Put => WatchEvent::Put(event.kv),
            EventKind::Delete => WatchEvent::Delete(event.kv),
        })
        .collect();
    Ok(Some(WatchUpdate::Events { revision: result.header.revision, events }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_confirmations_and_reports_compaction() {
        let created = br#"{"result":{"header":{"revision":"2"},"created":true}}"#;
        assert!(parse_line(created).expect("created").is_none());
        let compacted = br#"{"result":{"header":{"revision":"9"},"canceled":true,"compact_revision":"5"}}"#;
        assert!(matches!(
            parse_line(compacted).expect("compacted"),
            Some(WatchUpdate::Canceled { compact_revision: 5, .. })
        ));
        let error = br#"{"error":{"grpc_code":14,"http_code":503,"message":"unavailable"}}"#;
        assert!(parse_line(error).is_err());
    }
}
