//! The byte encoding of an [`Event`] on the NATS subject.
//!
//! ```text
//! +---------+---------------+--------------------+---------------+----------------------+-----------+
//! | version | recipients    | recipients         | position      | position             | frame     |
//! | 1 byte  | length N: u32 | N bytes: JSON      | length P: u32 | P bytes: JSON        | the rest, |
//! | = 2     | big-endian    | array of user ids  | big-endian    | ["conv-id", seq],    | verbatim  |
//! |         |               | e.g. ["a1","b2"]   |               | ["conv-id", seq,     |           |
//! |         |               |                    |               | coming] or null      |           |
//! +---------+---------------+--------------------+---------------+----------------------+-----------+
//! ```
//!
//! Version 3 is version 2 followed by one more section before the frame: the session revocation
//! (`u32` length, JSON `{"session":"id"}` or `{"all_but":null|"id"}`). It is written only for
//! revocations, so ordinary events stay version 2 and a node that does not know version 3 still
//! reads them. Version 4 is version 2 followed by the log entry itself before the frame (`u32`
//! length, the domain `Message` as JSON): written only for events that carry a typed entry (see
//! `Event::entry`: broadcast entries and the log subject, never the per-gateway copies), read by
//! the search indexer. Version 1 (still read) had no position section. The position's third
//! element, a boolean, is written on per-gateway copies only: whether the previous entry is
//! coming to that gateway too (`Predecessor`); without it the predecessor is unknown. The frame is carried untouched so that it is
//! encoded once, by the publisher, and written to every socket as is. The version byte lets a
//! later encoding be rolled out while old and new nodes share a subject: a node skips (and logs)
//! what it cannot read.

use bytes::{BufMut, Bytes, BytesMut};
use natter_core::bus::{Event, LogPosition, Predecessor, SessionEnd};
use natter_core::ids::{ConversationId, Seq, UserId};

/// The encoding written for every event but a session revocation.
pub const VERSION: u8 = 2;
/// The encoding of a session revocation: version 2 plus the revocation's section.
pub const VERSION_3: u8 = 3;
/// The encoding of a log entry event that carries the entry itself: version 2 plus the entry.
pub const VERSION_4: u8 = 4;
/// The encoding before positions; still decoded.
const VERSION_1: u8 = 1;

/// Why a payload could not be decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the header or than a section's length announces.
    Truncated,
    UnknownVersion(u8),
    /// The recipients are not a JSON array of strings.
    BadRecipients(String),
    /// The position is neither null nor `[string, integer]`.
    BadPosition(String),
    /// The revocation section is not a session revocation.
    BadRevocation(String),
    /// The entry section of a version 4 payload is not a log entry.
    BadEntry(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Truncated => f.write_str("payload truncated"),
            Self::UnknownVersion(version) => write!(f, "unknown encoding version {version}"),
            Self::BadRecipients(cause) => write!(f, "recipients are not a JSON string array: {cause}"),
            Self::BadPosition(cause) => write!(f, "position is not [conversation, seq] or null: {cause}"),
            Self::BadRevocation(cause) => write!(f, "revocation is not a session revocation: {cause}"),
            Self::BadEntry(cause) => write!(f, "entry is not a log entry: {cause}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Encode an event for the wire.
pub fn encode_event(event: &Event) -> Bytes {
    // Serialising strings and integers cannot fail; fall back to empty sections rather than panic.
    let recipients = serde_json::to_vec(&event.recipients).unwrap_or_else(|_| b"[]".to_vec());
    let position = event.position.as_ref().map(|p| match p.predecessor {
        Predecessor::Unknown => WirePosition::Plain(p.conversation.0.clone(), p.seq),
        Predecessor::Coming => WirePosition::WithPredecessor(p.conversation.0.clone(), p.seq, true),
        Predecessor::NotComing => WirePosition::WithPredecessor(p.conversation.0.clone(), p.seq, false),
    });
    let position = serde_json::to_vec(&position).unwrap_or_else(|_| b"null".to_vec());
    let revocation = event.ends.as_ref().map(|ends| serde_json::to_vec(ends).unwrap_or_else(|_| b"null".to_vec()));
    // An entry that cannot be encoded is left out: consumers then read the frame instead.
    let entry = if revocation.is_none() {
        event.entry.as_ref().and_then(|m| serde_json::to_vec(m.as_ref()).ok())
    } else {
        None
    };
    let extra = revocation.as_ref().map_or(0, |r| 4 + r.len()) + entry.as_ref().map_or(0, |e| 4 + e.len());
    let mut out = BytesMut::with_capacity(1 + 4 + recipients.len() + 4 + position.len() + extra + event.frame.len());
    out.put_u8(match (&revocation, &entry) {
        (Some(_), _) => VERSION_3,
        (None, Some(_)) => VERSION_4,
        (None, None) => VERSION,
    });
    // Recipients of one event are bounded by a group's size, far below 4 GiB.
    out.put_u32(u32::try_from(recipients.len()).unwrap_or(u32::MAX));
    out.put_slice(&recipients);
    out.put_u32(u32::try_from(position.len()).unwrap_or(u32::MAX));
    out.put_slice(&position);
    if let Some(revocation) = &revocation {
        out.put_u32(u32::try_from(revocation.len()).unwrap_or(u32::MAX));
        out.put_slice(revocation);
    }
    if let Some(entry) = &entry {
        out.put_u32(u32::try_from(entry.len()).unwrap_or(u32::MAX));
        out.put_slice(entry);
    }
    out.put_slice(&event.frame);
    out.freeze()
}

/// A position section: `[conversation, seq]` or `[conversation, seq, predecessor coming]`.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum WirePosition {
    WithPredecessor(String, Seq, bool),
    Plain(String, Seq),
}

/// Decode a payload written by [`encode_event`] (or by a version 1 node). The frame shares the
/// payload's buffer.
pub fn decode_event(payload: &Bytes) -> Result<Event, DecodeError> {
    let Some(&version) = payload.first() else {
        return Err(DecodeError::Truncated);
    };
    if ![VERSION_1, VERSION, VERSION_3, VERSION_4].contains(&version) {
        return Err(DecodeError::UnknownVersion(version));
    }
    let (recipients, mut offset) = section(payload, 1)?;
    let recipients: Vec<UserId> =
        serde_json::from_slice(recipients).map_err(|error| DecodeError::BadRecipients(error.to_string()))?;
    let mut position = None;
    if version >= VERSION {
        let (encoded, next) = section(payload, offset)?;
        let decoded: Option<WirePosition> =
            serde_json::from_slice(encoded).map_err(|error| DecodeError::BadPosition(error.to_string()))?;
        position = decoded.map(|decoded| match decoded {
            WirePosition::Plain(conversation, seq) => LogPosition::new(ConversationId(conversation), seq),
            WirePosition::WithPredecessor(conversation, seq, coming) => LogPosition {
                conversation: ConversationId(conversation),
                seq,
                predecessor: if coming { Predecessor::Coming } else { Predecessor::NotComing },
            },
        });
        offset = next;
    }
    let mut ends = None;
    if version == VERSION_3 {
        let (encoded, next) = section(payload, offset)?;
        let decoded: SessionEnd =
            serde_json::from_slice(encoded).map_err(|error| DecodeError::BadRevocation(error.to_string()))?;
        ends = Some(decoded);
        offset = next;
    }
    let mut entry = None;
    if version == VERSION_4 {
        let (encoded, next) = section(payload, offset)?;
        let decoded: natter_core::model::Message =
            serde_json::from_slice(encoded).map_err(|error| DecodeError::BadEntry(error.to_string()))?;
        entry = Some(std::sync::Arc::new(decoded));
        offset = next;
    }
    Ok(Event { recipients, frame: payload.slice(offset..), position, ends, entry })
}

/// The length-prefixed section at `offset`, and the offset after it.
fn section(payload: &[u8], offset: usize) -> Result<(&[u8], usize), DecodeError> {
    let rest = payload.get(offset..).ok_or(DecodeError::Truncated)?;
    let Some((len, _)) = rest.split_first_chunk::<4>() else {
        return Err(DecodeError::Truncated);
    };
    let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|_| DecodeError::Truncated)?;
    let start = offset + 4;
    let end = start.checked_add(len).ok_or(DecodeError::Truncated)?;
    let bytes = payload.get(start..end).ok_or(DecodeError::Truncated)?;
    Ok((bytes, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(recipients: &[&str], frame: &'static [u8]) -> Event {
        Event::new(recipients.iter().map(|id| UserId::from(*id)).collect(), Bytes::from_static(frame))
    }

    #[test]
    fn round_trips_recipients_and_frame() {
        let original = event(&["alice", "bob", "名字\"quoted\""], br#"{"type":"message"}"#);
        let decoded = decode_event(&encode_event(&original)).expect("decodes");
        assert_eq!(decoded, original);
    }

    #[test]
    fn round_trips_a_log_position() {
        let mut original = event(&["u1"], b"{}");
        original.position = Some(LogPosition::new(ConversationId::from("c-9"), Seq::new(42)));
        assert_eq!(decode_event(&encode_event(&original)).expect("decodes"), original);
    }

    #[test]
    fn round_trips_whether_the_predecessor_is_coming() {
        for (predecessor, written) in [(Predecessor::Coming, "true"), (Predecessor::NotComing, "false")] {
            let mut original = event(&["u1"], b"{}");
            original.position =
                Some(LogPosition { predecessor, ..LogPosition::new(ConversationId::from("c"), Seq::new(7)) });
            let encoded = encode_event(&original);
            let expected = format!("[\"c\",7,{written}]");
            assert!(encoded.windows(expected.len()).any(|w| w == expected.as_bytes()), "{expected} in {encoded:?}");
            assert_eq!(decode_event(&encoded).expect("decodes"), original);
        }
    }

    #[test]
    fn a_typed_entry_travels_in_version_4_and_the_frame_stays_verbatim() {
        let message = natter_core::store::blank_message(
            ConversationId::from("c-1"),
            UserId::from("u1"),
            natter_core::model::MessageKind::Text,
            chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("a time"),
        );
        let mut original = event(&[], br#"{"type":"message"}"#);
        original.position = Some(LogPosition::new(ConversationId::from("c-1"), Seq::new(7)));
        original.entry = Some(std::sync::Arc::new(message));
        let payload = encode_event(&original);
        assert_eq!(payload[0], VERSION_4);
        let decoded = decode_event(&payload).expect("decodes");
        assert_eq!(decoded, original);
        assert_eq!(&decoded.frame[..], br#"{"type":"message"}"#);
        // Without an entry, version 2 as before (what every gateway's copy is).
        original.entry = None;
        assert_eq!(encode_event(&original)[0], VERSION);
    }

    #[test]
    fn round_trips_empty_recipients_and_empty_frame() {
        let original = event(&[], b"");
        let encoded = encode_event(&original);
        assert_eq!(&encoded[..], b"\x02\x00\x00\x00\x02[]\x00\x00\x00\x04null");
        assert_eq!(decode_event(&encoded).expect("decodes"), original);
    }

    #[test]
    fn layout_is_version_recipients_position_frame() {
        let mut positioned = event(&["u1"], b"FRAME");
        positioned.position = Some(LogPosition::new(ConversationId::from("c"), Seq::new(7)));
        assert_eq!(&encode_event(&positioned)[..], b"\x02\x00\x00\x00\x06[\"u1\"]\x00\x00\x00\x07[\"c\",7]FRAME");
    }

    #[test]
    fn reads_version_1_payloads() {
        let payload = Bytes::from_static(b"\x01\x00\x00\x00\x06[\"u1\"]FRAME");
        assert_eq!(decode_event(&payload).expect("decodes"), event(&["u1"], b"FRAME"));
    }

    #[test]
    fn rejects_truncated_payloads() {
        let encoded = encode_event(&event(&["u1"], b"x"));
        for cut in [0, 1, 4, 5, 10, 12, 14] {
            let short = encoded.slice(..cut);
            assert_eq!(decode_event(&short), Err(DecodeError::Truncated), "cut at {cut}");
        }
    }

    #[test]
    fn rejects_a_length_beyond_the_payload() {
        let payload = Bytes::from_static(b"\x02\xff\xff\xff\xff[]");
        assert_eq!(decode_event(&payload), Err(DecodeError::Truncated));
    }

    #[test]
    fn round_trips_session_revocations_as_version_3() {
        use natter_core::ids::SessionId;
        for ends in [
            SessionEnd::Session(SessionId::from("s1")),
            SessionEnd::AllBut(Some(SessionId::from("s2"))),
            SessionEnd::AllBut(None),
        ] {
            let original = Event::end_sessions(UserId::from("u1"), ends);
            let encoded = encode_event(&original);
            assert_eq!(encoded[0], VERSION_3);
            assert_eq!(decode_event(&encoded).expect("decodes"), original);
        }
        let one = Event::end_sessions(UserId::from("u"), SessionEnd::Session(SessionId::from("s")));
        assert_eq!(
            &encode_event(&one)[..],
            b"\x03\x00\x00\x00\x05[\"u\"]\x00\x00\x00\x04null\x00\x00\x00\x0f{\"session\":\"s\"}"
        );
    }

    #[test]
    fn rejects_a_malformed_revocation() {
        let payload = Bytes::from_static(b"\x03\x00\x00\x00\x02[]\x00\x00\x00\x04null\x00\x00\x00\x02[]");
        assert!(matches!(decode_event(&payload), Err(DecodeError::BadRevocation(_))));
    }

    #[test]
    fn rejects_unknown_versions() {
        let payload = Bytes::from_static(b"\x05\x00\x00\x00\x02[]");
        assert_eq!(decode_event(&payload), Err(DecodeError::UnknownVersion(5)));
    }

    #[test]
    fn rejects_recipients_that_are_not_strings() {
        let payload = Bytes::from_static(b"\x01\x00\x00\x00\x03[1]");
        assert!(matches!(decode_event(&payload), Err(DecodeError::BadRecipients(_))));
    }

    #[test]
    fn rejects_a_malformed_position() {
        let payload = Bytes::from_static(b"\x02\x00\x00\x00\x02[]\x00\x00\x00\x03[1]");
        assert!(matches!(decode_event(&payload), Err(DecodeError::BadPosition(_))));
    }
}
