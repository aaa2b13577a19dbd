//! The checker: reads every device's view (its pushes and syncs, the final sync included), the
//! sends and their answers, and the server's log at the end, and lists every violation of what
//! natter promises:
//!
//! * an acknowledged message is in the log at the `seq` it was acknowledged with, and on every
//!   device of every member;
//! * no message is at two `seq`s, no `client_msg_id` is stored twice (in particular none whose
//!   send got an error), and no device has a message twice or two messages at one `seq`;
//! * each device's view of a conversation is the log from the first entry it may see to the end,
//!   without a gap, and pushes on one connection come in `seq` order (a repeat of a `seq` the
//!   connection already had is allowed: clients dedupe by `seq`);
//! * a read marker never moves backwards: an answer to `POST …/read` is never lower than an
//!   answer the user had before sending it, and the final `read_seq` is at least every answer.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::history::{Event, FinalLog, Setup};

/// Violations of each kind are listed up to this many (all are counted).
const LIST_AT_MOST: usize = 20;

#[derive(Debug, Default, Serialize)]
pub struct Verdict {
    /// Counts per kind of violation (kinds with none are left out).
    pub violations: BTreeMap<String, u64>,
    /// The first few of each kind, described.
    pub examples: Vec<String>,
    pub stats: Stats,
}

#[derive(Debug, Default, Serialize)]
pub struct Stats {
    /// Distinct messages the devices tried to send.
    pub sends: u64,
    /// Send frames, retries included.
    pub attempts: u64,
    pub retries: u64,
    /// Distinct messages acknowledged.
    pub acked: u64,
    pub errors: u64,
    pub error_codes: BTreeMap<String, u64>,
    pub timeouts: u64,
    pub abandoned: u64,
    /// Sends never acknowledged that are in the log all the same (the answer was lost).
    pub stored_unacked: u64,
    pub connections: u64,
    pub disconnects: u64,
    pub pushes: u64,
    /// Pushes of a `seq` the connection had already had (allowed; see the module docs).
    pub repeated_pushes: u64,
    pub synced_entries: u64,
    pub read_answers: u64,
    pub log_entries: u64,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    fn violation(&mut self, kind: &str, description: String) {
        let count = self.violations.entry(kind.to_owned()).or_default();
        *count += 1;
        if *count as usize <= LIST_AT_MOST {
            self.examples.push(format!("{kind}: {description}"));
        }
    }
}

pub fn check(setup: &Setup, events: &[Event], log: &FinalLog) -> Verdict {
    let mut verdict = Verdict::default();
    let conversations = setup.conversations.len();

    // The log itself: seq 1, 2, 3… without gaps; each (sender, client_msg_id) once.
    let mut by_cmid: HashMap<(&str, &str), Vec<(usize, i64)>> = HashMap::new();
    for (conv, entries) in log.entries.iter().enumerate() {
        verdict.stats.log_entries += entries.len() as u64;
        for (index, entry) in entries.iter().enumerate() {
            let expected = index as i64 + 1;
            if entry.seq != expected {
                verdict
                    .violation("log_gap", format!("conversation {conv}: seq {} where {expected} was due", entry.seq));
                break;
            }
        }
        for entry in entries {
            if let Some(cmid) = &entry.cmid {
                by_cmid.entry((entry.sender.as_str(), cmid.as_str())).or_default().push((conv, entry.seq));
            }
        }
    }
    for ((sender, cmid), places) in &by_cmid {
        if places.len() > 1 {
            verdict.violation("stored_twice", format!("client_msg_id {cmid} of {sender} is stored at {places:?}"));
        }
    }
    let log_at = |conv: u32, seq: i64| {
        let entries = log.entries.get(conv as usize)?;
        let index = usize::try_from(seq - 1).ok()?;
        entries.get(index).filter(|entry| entry.seq == seq)
    };

    // Sends and their answers.
    let mut first_attempt: HashMap<&str, (u32, u32)> = HashMap::new();
    let mut acks: HashMap<&str, (u32, i64, &str)> = HashMap::new();
    let mut errored: HashSet<&str> = HashSet::new();
    for event in events {
        match event {
            Event::Send { device, conv, cmid, attempt, .. } => {
                verdict.stats.attempts += 1;
                if *attempt == 0 {
                    verdict.stats.sends += 1;
                    first_attempt.insert(cmid, (*device, *conv));
                } else {
                    verdict.stats.retries += 1;
                }
            }
            Event::Ack { conv, cmid, seq, id, .. } => {
                if let Some((earlier_conv, earlier_seq, earlier_id)) = acks.get(cmid.as_str())
                    && (*earlier_seq != *seq || *earlier_id != id.as_str() || *earlier_conv != *conv)
                {
                    verdict.violation(
                        "acked_twice_differently",
                        format!("{cmid} acknowledged as seq {earlier_seq} ({earlier_id}) and as seq {seq} ({id})"),
                    );
                }
                acks.insert(cmid, (*conv, *seq, id));
            }
            Event::SendError { cmid, code, .. } => {
                verdict.stats.errors += 1;
                *verdict.stats.error_codes.entry(code.clone()).or_default() += 1;
                errored.insert(cmid);
            }
            Event::SendTimeout { .. } => verdict.stats.timeouts += 1,
            Event::SendAbandoned { .. } => verdict.stats.abandoned += 1,
            Event::Connected { .. } => verdict.stats.connections += 1,
            Event::Disconnected { .. } => verdict.stats.disconnects += 1,
            Event::Read { .. } => verdict.stats.read_answers += 1,
            _ => {}
        }
    }
    verdict.stats.acked = acks.len() as u64;
    for (cmid, (conv, seq, id)) in &acks {
        match log_at(*conv, *seq) {
            Some(entry) if entry.id == *id && entry.cmid.as_deref() == Some(cmid) => {}
            Some(entry) => verdict.violation(
                "acked_missing",
                format!("{cmid} was acknowledged as conversation {conv} seq {seq} ({id}); the log has {entry:?} there"),
            ),
            None => verdict.violation(
                "acked_missing",
                format!("{cmid} was acknowledged as conversation {conv} seq {seq} ({id}); the log has no such seq"),
            ),
        }
    }
    for (cmid, (device, _)) in &first_attempt {
        let Some((sender, _)) = setup.devices.get(*device as usize) else { continue };
        let stored = by_cmid.get(&(sender.as_str(), *cmid)).map_or(0, Vec::len);
        if stored > 1 && errored.contains(cmid) {
            verdict.violation("errored_stored_twice", format!("{cmid} got an error and is stored {stored} times"));
        }
        if stored >= 1 && !acks.contains_key(cmid) {
            verdict.stats.stored_unacked += 1;
        }
    }

    // Each device's view.
    let devices = setup.devices.len();
    let mut views: Vec<HashMap<u32, BTreeMap<i64, String>>> = vec![HashMap::new(); devices];
    let mut firsts: Vec<HashMap<u32, i64>> = vec![HashMap::new(); devices];
    // Per device, connection and conversation: the seqs pushed so far and the highest.
    let mut pushed: HashMap<(u32, u32, u32), (i64, HashSet<i64>)> = HashMap::new();
    for event in events {
        match event {
            Event::Seen { device, conn, conv, seq, id, .. } => {
                if *conn > 0 {
                    verdict.stats.pushes += 1;
                    let (highest, had) = pushed.entry((*device, *conn, *conv)).or_insert((0, HashSet::new()));
                    if had.contains(seq) {
                        verdict.stats.repeated_pushes += 1;
                    } else if *seq < *highest {
                        verdict.violation(
                            "pushed_out_of_order",
                            format!("device {device} connection {conn} conversation {conv}: seq {seq} after {highest}"),
                        );
                    }
                    *highest = (*highest).max(*seq);
                    had.insert(*seq);
                } else {
                    verdict.stats.synced_entries += 1;
                }
                let Some(view) = views.get_mut(*device as usize) else { continue };
                let view = view.entry(*conv).or_default();
                match view.get(seq) {
                    Some(existing) if existing != id => verdict.violation(
                        "two_messages_at_one_seq",
                        format!("device {device} conversation {conv} seq {seq}: {existing} and {id}"),
                    ),
                    Some(_) => {}
                    None => {
                        view.insert(*seq, id.clone());
                    }
                }
            }
            Event::FirstSeq { device, conv, first_seq } => {
                if let Some(firsts) = firsts.get_mut(*device as usize) {
                    firsts.insert(*conv, *first_seq);
                }
            }
            _ => {}
        }
    }
    for (device, (_, member_of)) in setup.devices.iter().enumerate() {
        for conv in member_of {
            let Some(entries) = log.entries.get(*conv as usize) else {
                verdict.violation("unknown_conversation", format!("device {device}: conversation {conv}"));
                continue;
            };
            let view = views[device].get(conv).cloned().unwrap_or_default();
            let Some(first) = firsts[device].get(conv).copied() else {
                verdict.violation("never_synced", format!("device {device} never synced conversation {conv}"));
                continue;
            };
            let mut ids_at: HashMap<&str, i64> = HashMap::new();
            for (seq, id) in &view {
                if let Some(other) = ids_at.insert(id, *seq) {
                    verdict.violation(
                        "twice_on_a_device",
                        format!("device {device} conversation {conv}: {id} at seq {other} and {seq}"),
                    );
                }
            }
            let mut missing = Vec::new();
            for entry in entries.iter().filter(|entry| entry.seq >= first) {
                match view.get(&entry.seq) {
                    None => missing.push(entry.seq),
                    Some(id) if *id != entry.id => verdict.violation(
                        "differs_from_log",
                        format!(
                            "device {device} conversation {conv} seq {}: {id}, the log has {}",
                            entry.seq, entry.id
                        ),
                    ),
                    Some(_) => {}
                }
            }
            if !missing.is_empty() {
                let shown: Vec<i64> = missing.iter().take(10).copied().collect();
                verdict.violation(
                    "gap_on_a_device",
                    format!("device {device} conversation {conv} lacks {} entries, e.g. seq {shown:?}", missing.len()),
                );
            }
            let last = entries.last().map_or(0, |entry| entry.seq);
            if let Some((seq, id)) = view.range(last + 1..).next() {
                verdict.violation("not_in_log", format!("device {device} conversation {conv} has seq {seq} ({id})"));
            }
        }
    }
    let _ = conversations;

    // Read markers, per user and conversation.
    // (sent, answered, read_seq) per (user, conversation).
    type Answers = Vec<(u64, u64, i64)>;
    let mut answers: HashMap<(&str, u32), Answers> = HashMap::new();
    for event in events {
        if let Event::Read { sent, t, device, conv, read_seq, .. } = event
            && let Some((user, _)) = setup.devices.get(*device as usize)
        {
            answers.entry((user.as_str(), *conv)).or_default().push((*sent, *t, *read_seq));
        }
    }
    for ((user, conv), mut list) in answers {
        list.sort_by_key(|(_, answered, _)| *answered);
        for (sent, _, read_seq) in &list {
            // The highest answer the user had before this request went out.
            let before = list.iter().filter(|(_, answered, _)| answered < sent).map(|(_, _, s)| *s).max();
            if let Some(before) = before
                && before > *read_seq
            {
                verdict.violation(
                    "read_marker_backwards",
                    format!("user {user} conversation {conv}: read_seq {read_seq} after {before}"),
                );
            }
        }
        let highest = list.iter().map(|(_, _, s)| *s).max().unwrap_or(0);
        let last = log.read_seq.get(conv as usize).and_then(|m| m.get(user)).copied().unwrap_or(0);
        if last < highest {
            verdict.violation(
                "read_marker_backwards",
                format!("user {user} conversation {conv}: final read_seq {last} below an answer of {highest}"),
            );
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::history::LogEntry;

    fn entry(seq: i64, cmid: &str) -> LogEntry {
        LogEntry { seq, id: format!("m{seq}"), sender: "u0".into(), cmid: Some(cmid.into()) }
    }

    fn setup() -> Setup {
        Setup {
            conversations: vec!["c0".into()],
            kinds: vec![("direct".into(), 2)],
            devices: vec![("u0".into(), vec![0]), ("u1".into(), vec![0])],
            ..Setup::default()
        }
    }

    fn seen(device: u32, conn: u32, seq: i64) -> Event {
        Event::Seen { t: 0, device, conn, conv: 0, seq, id: format!("m{seq}"), cmid: None }
    }

    fn base_events() -> Vec<Event> {
        vec![
            Event::FirstSeq { device: 0, conv: 0, first_seq: 1 },
            Event::FirstSeq { device: 1, conv: 0, first_seq: 1 },
            Event::Send { t: 1, device: 0, conv: 0, cmid: "a".into(), attempt: 0 },
            Event::Ack { t: 2, device: 0, conv: 0, cmid: "a".into(), seq: 1, id: "m1".into() },
            Event::Send { t: 3, device: 0, conv: 0, cmid: "b".into(), attempt: 0 },
            Event::Ack { t: 4, device: 0, conv: 0, cmid: "b".into(), seq: 2, id: "m2".into() },
            seen(0, 1, 1),
            seen(0, 1, 2),
            seen(1, 1, 1),
            seen(1, 1, 2),
        ]
    }

    fn log(entries: Vec<LogEntry>) -> FinalLog {
        FinalLog { entries: vec![entries], read_seq: vec![BTreeMap::new()] }
    }

    #[test]
    fn a_clean_run_passes() {
        let verdict = check(&setup(), &base_events(), &log(vec![entry(1, "a"), entry(2, "b")]));
        assert!(verdict.passed(), "{:?}", verdict.examples);
        assert_eq!((verdict.stats.sends, verdict.stats.acked, verdict.stats.pushes), (2, 2, 4));
    }

    #[test]
    fn finds_an_acknowledged_message_missing() {
        let verdict = check(&setup(), &base_events(), &log(vec![entry(1, "a")]));
        assert_eq!(verdict.violations.get("acked_missing"), Some(&1));
    }

    #[test]
    fn finds_a_gap_a_reorder_and_a_duplicate() {
        let mut events = base_events();
        events.retain(|e| !matches!(e, Event::Seen { device: 1, seq: 1, .. }));
        let verdict = check(&setup(), &events, &log(vec![entry(1, "a"), entry(2, "b")]));
        assert_eq!(verdict.violations.get("gap_on_a_device"), Some(&1));

        let mut events = base_events();
        events.push(seen(1, 2, 2));
        events.push(seen(1, 2, 1));
        let verdict = check(&setup(), &events, &log(vec![entry(1, "a"), entry(2, "b")]));
        assert_eq!(verdict.violations.get("pushed_out_of_order"), Some(&1));

        let mut events = base_events();
        events.push(Event::Seen { t: 9, device: 1, conn: 0, conv: 0, seq: 3, id: "m1".into(), cmid: None });
        let log3 = log(vec![entry(1, "a"), entry(2, "b"), LogEntry { seq: 3, ..entry(3, "c") }]);
        let verdict = check(&setup(), &events, &log3);
        assert_eq!(verdict.violations.get("twice_on_a_device"), Some(&1));

        let verdict = check(&setup(), &base_events(), &log(vec![entry(1, "a"), entry(2, "b"), entry(3, "a")]));
        assert_eq!(verdict.violations.get("stored_twice"), Some(&1));
    }

    #[test]
    fn finds_a_read_marker_moving_backwards() {
        let mut events = base_events();
        events.push(Event::Read { sent: 10, t: 11, device: 0, conv: 0, asked: 2, read_seq: 2 });
        events.push(Event::Read { sent: 12, t: 13, device: 0, conv: 0, asked: 1, read_seq: 1 });
        let verdict = check(&setup(), &events, &log(vec![entry(1, "a"), entry(2, "b")]));
        assert_eq!(verdict.violations.get("read_marker_backwards"), Some(&2), "{:?}", verdict.examples);
    }
}
