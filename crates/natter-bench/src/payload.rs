//! Message bodies: every system under test carries the same text, which names its sender, its
//! index in that sender's stream, and when it was sent, padded to the payload size.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The instant every timestamp of this process counts from. One monotonic clock for senders and
/// receivers in this process; latencies are only ever computed within one process.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Microseconds since this process's epoch.
pub fn now_us() -> u64 {
    u64::try_from(epoch().elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Time since `sent_us` (a [`now_us`] value).
pub fn since(sent_us: u64) -> Duration {
    Duration::from_micros(now_us().saturating_sub(sent_us))
}

/// What a receiver reads back out of a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub sent_us: u64,
    pub sender: u32,
    pub index: u64,
}

/// `"<sent_us>:<sender>:<index>:"` then `x` up to `size` bytes (never shorter than the header).
pub fn make(sender: u32, index: u64, size: usize) -> String {
    let mut body = format!("{}:{sender}:{index}:", now_us());
    if body.len() < size {
        body.extend(std::iter::repeat_n('x', size - body.len()));
    }
    body
}

pub fn parse(body: &str) -> Option<Stamp> {
    let mut parts = body.splitn(4, ':');
    let sent_us = parts.next()?.parse().ok()?;
    let sender = parts.next()?.parse().ok()?;
    let index = parts.next()?.parse().ok()?;
    parts.next()?;
    Some(Stamp { sent_us, sender, index })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_and_have_the_asked_size() {
        let body = make(7, 42, 256);
        assert_eq!(body.len(), 256);
        let stamp = parse(&body).expect("parses");
        assert_eq!((stamp.sender, stamp.index), (7, 42));
        assert!(stamp.sent_us <= now_us());
        assert!(parse("not a stamp").is_none());
        assert!(make(1, 2, 0).len() > 4, "the header is never cut");
    }
}
