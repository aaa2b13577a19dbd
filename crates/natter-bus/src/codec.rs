//! The byte encoding of an [`Event`] on the NATS subject.
//!
//! ```text
//! +---------+----------------------+-------------------------------+--------------------+
//! | version | recipients length N  | recipients                    | frame              |
//! | 1 byte  | u32, big-endian      | N bytes: JSON array of string | the rest, verbatim |
//! | = 1     |                      | user ids, e.g. ["a1","b2"]    | (a JSON frame)     |
//! +---------+----------------------+-------------------------------+--------------------+
//! ```
//!
//! The frame is carried untouched so that it is encoded once, by the publisher, and written to
//! every socket as is. The version byte lets a later encoding be rolled out while old and new
//! nodes share a subject: a node skips (and logs) what it cannot read.

use bytes::{BufMut, Bytes, BytesMut};
use natter_core::bus::Event;
use natter_core::ids::UserId;

/// The only encoding so far.
pub const VERSION: u8 = 1;

const HEADER_LEN: usize = 1 + 4;

/// Why a payload could not be decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the header or than the recipients length announces.
    Truncated,
    UnknownVersion(u8),
    /// The recipients are not a JSON array of strings.
    BadRecipients(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Truncated => f.write_str("payload truncated"),
            Self::UnknownVersion(version) => write!(f, "unknown encoding version {version}"),
            Self::BadRecipients(cause) => {
                write!(f, "recipients are not a JSON string array: {cause}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Encode an event for the wire.
pub fn encode_event(event: &Event) -> Bytes {
    // Serialising a slice of strings cannot fail; fall back to an empty array rather than panic.
    let recipients = serde_json::to_vec(&event.recipients).unwrap_or_else(|_| b"[]".to_vec());
    let mut out = BytesMut::with_capacity(HEADER_LEN + recipients.len() + event.frame.len());
    out.put_u8(VERSION);
    // Recipients of one event are bounded by a group's size, far below 4 GiB.
    out.put_u32(u32::try_from(recipients.len()).unwrap_or(u32::MAX));
    out.put_slice(&recipients);
    out.put_slice(&event.frame);
    out.freeze()
}

/// Decode a payload written by [`encode_event`]. The frame shares the payload's buffer.
pub fn decode_event(payload: &Bytes) -> Result<Event, DecodeError> {
    let Some((&version, rest)) = payload.split_first() else {
        return Err(DecodeError::Truncated);
    };
    if version != VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let Some((len, _)) = rest.split_first_chunk::<4>() else {
        return Err(DecodeError::Truncated);
    };
    let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|_| DecodeError::Truncated)?;
    let frame_start = HEADER_LEN.checked_add(len).ok_or(DecodeError::Truncated)?;
    if payload.len() < frame_start {
        return Err(DecodeError::Truncated);
    }
    let recipients: Vec<UserId> = serde_json::from_slice(&payload[HEADER_LEN..frame_start])
        .map_err(|error| DecodeError::BadRecipients(error.to_string()))?;
    Ok(Event { recipients, frame: payload.slice(frame_start..) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(recipients: &[&str], frame: &'static [u8]) -> Event {
        Event { recipients: recipients.iter().map(|id| UserId::from(*id)).collect(), frame: Bytes::from_static(frame) }
    }

    #[test]
    fn round_trips_recipients_and_frame() {
        let original = event(&["alice", "bob", "名字\"quoted\""], br#"{"type":"message"}"#);
        let decoded = decode_event(&encode_event(&original)).expect("decodes");
        assert_eq!(decoded, original);
    }

    #[test]
    fn round_trips_empty_recipients_and_empty_frame() {
        let original = event(&[], b"");
        let encoded = encode_event(&original);
        assert_eq!(&encoded[..], b"\x01\x00\x00\x00\x02[]");
        assert_eq!(decode_event(&encoded).expect("decodes"), original);
    }

    #[test]
    fn layout_is_version_length_recipients_frame() {
        let encoded = encode_event(&event(&["u1"], b"FRAME"));
        assert_eq!(&encoded[..], b"\x01\x00\x00\x00\x06[\"u1\"]FRAME");
    }

    #[test]
    fn rejects_truncated_payloads() {
        let encoded = encode_event(&event(&["u1"], b"x"));
        for cut in [0, 1, 4, 5, 10] {
            let short = encoded.slice(..cut);
            assert_eq!(decode_event(&short), Err(DecodeError::Truncated), "cut at {cut}");
        }
    }

    #[test]
    fn rejects_a_length_beyond_the_payload() {
        let payload = Bytes::from_static(b"\x01\xff\xff\xff\xff[]");
        assert_eq!(decode_event(&payload), Err(DecodeError::Truncated));
    }

    #[test]
    fn rejects_unknown_versions() {
        let payload = Bytes::from_static(b"\x02\x00\x00\x00\x02[]");
        assert_eq!(decode_event(&payload), Err(DecodeError::UnknownVersion(2)));
    }

    #[test]
    fn rejects_recipients_that_are_not_strings() {
        let payload = Bytes::from_static(b"\x01\x00\x00\x00\x03[1]");
        assert!(matches!(decode_event(&payload), Err(DecodeError::BadRecipients(_))));
    }
}
