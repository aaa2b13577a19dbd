//! The JSON shapes of etcd's v3 gateway: 64-bit integers arrive as strings, fields at their
//! default value (0, false, PUT) are left out, keys and values are base64.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer};

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Header {
    #[serde(default, deserialize_with = "int64")]
    pub(crate) revision: i64,
}

/// An error as the gateway reports it: `{"error": "...", "message": "...", "code": 5}`.
#[derive(Debug, Deserialize)]
pub(crate) struct GatewayError {
    #[serde(default)]
    pub(crate) error: String,
    #[serde(default)]
    pub(crate) message: String,
    #[serde(default)]
    pub(crate) code: i32,
}

#[derive(Debug, Deserialize)]
pub(crate) struct LeaseGrant {
    #[serde(rename = "ID", deserialize_with = "int64")]
    pub(crate) id: i64,
    #[serde(default)]
    pub(crate) error: String,
}

/// One answer of the keepalive stream, wrapped as `{"result": …}` or `{"error": …}`.
#[derive(Debug, Deserialize)]
pub(crate) struct KeepAlive {
    pub(crate) result: Option<KeepAliveResult>,
    pub(crate) error: Option<GatewayError>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct KeepAliveResult {
    /// Missing (0) when the lease is unknown.
    #[serde(rename = "TTL", default, deserialize_with = "int64")]
    pub(crate) ttl: i64,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Range {
    #[serde(default)]
    pub(crate) header: Header,
    #[serde(default)]
    pub(crate) kvs: Vec<KeyValue>,
}

/// A key and its value, decoded from base64.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct KeyValue {
    #[serde(deserialize_with = "base64_string")]
    pub key: String,
    #[serde(default, deserialize_with = "base64_bytes")]
    pub value: Vec<u8>,
    #[serde(default, deserialize_with = "int64")]
    pub mod_revision: i64,
    #[serde(default, deserialize_with = "int64")]
    pub lease: i64,
}

/// One message of the watch stream.
#[derive(Debug, Deserialize)]
pub(crate) struct WatchMessage {
    pub(crate) result: Option<WatchResult>,
    pub(crate) error: Option<GatewayError>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WatchResult {
    #[serde(default)]
    pub(crate) header: Header,
    #[serde(default)]
    pub(crate) created: bool,
    #[serde(default)]
    pub(crate) canceled: bool,
    #[serde(default, deserialize_with = "int64")]
    pub(crate) compact_revision: i64,
    #[serde(default)]
    pub(crate) cancel_reason: String,
    #[serde(default)]
    pub(crate) events: Vec<Event>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Event {
    #[serde(rename = "type", default)]
    pub(crate) kind: EventKind,
    pub(crate) kv: KeyValue,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub(crate) enum EventKind {
    #[default]
    #[serde(rename = "PUT")]
    Put,
    #[serde(rename = "DELETE")]
    Delete,
}

/// etcd's gateway writes int64 as a JSON string; accept a number too.
fn int64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int64 {
        Number(i64),
        Text(String),
    }
    match Int64::deserialize(deserializer)? {
        Int64::Number(n) => Ok(n),
        Int64::Text(text) => text.parse().map_err(serde::de::Error::custom),
    }
}

fn base64_bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(deserializer)?;
    BASE64.decode(text).map_err(serde::de::Error::custom)
}

fn base64_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    String::from_utf8(base64_bytes(deserializer)?).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Copied from etcd 3.4.23's answers.
    #[test]
    fn decodes_a_range_answer() {
        let json = r#"{"header":{"cluster_id":"4696313804825311451","revision":"2","raft_term":"2"},
            "kvs":[{"key":"L24vbm9kZXMvYQ==","create_revision":"2","mod_revision":"2","version":"1",
            "value":"aGVsbG8=","lease":"297134431943752456"}],"count":"1"}"#;
        let range: Range = serde_json::from_str(json).expect("range");
        assert_eq!(range.header.revision, 2);
        assert_eq!(range.kvs[0].key, "/n/nodes/a");
        assert_eq!(range.kvs[0].value, b"hello");
        assert_eq!(range.kvs[0].lease, 297134431943752456);
    }

    #[test]
    fn decodes_watch_events_with_put_left_out() {
        let json = r#"{"result":{"header":{"revision":"4"},"events":[
            {"kv":{"key":"L24vbm9kZXMvYg==","mod_revision":"3","value":"eA=="}},
            {"type":"DELETE","kv":{"key":"L24vbm9kZXMvYQ==","mod_revision":"4"}}]}}"#;
        let message: WatchMessage = serde_json::from_str(json).expect("watch");
        let result = message.result.expect("result");
        assert_eq!(result.events[0].kind, EventKind::Put);
        assert_eq!(result.events[1].kind, EventKind::Delete);
        assert!(result.events[1].kv.value.is_empty());
    }

    #[test]
    fn keepalive_of_an_unknown_lease_has_no_ttl() {
        let json = r#"{"result":{"header":{"revision":"4"},"ID":"297134431943752456"}}"#;
        let answer: KeepAlive = serde_json::from_str(json).expect("keepalive");
        assert_eq!(answer.result.expect("result").ttl, 0);
    }
}
