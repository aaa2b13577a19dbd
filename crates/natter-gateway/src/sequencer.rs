//! Puts log entries back in `seq` order before they reach sockets.
//!
//! One process publishes a conversation's entries in `seq` order (natter-core's `ConversationLog`), but two
//! processes appending to the same conversation publish independently, so a gateway may receive
//! seq 8 before seq 7. The dispatcher runs every event through a [`Sequencer`]: an entry whose
//! predecessor has not arrived waits (at most [`GAP_WAIT`]) for it. The bus may lose events; if
//! the gap does not fill in time the held entries go out anyway and clients repair the gap by
//! sync, as always.
//!
//! With targeted delivery a node receives a conversation's entries only while it holds a socket
//! of a recipient, so a gap may be one that never fills: entries published while no recipient
//! was here. [`Sequencer::accept_targeted`] does not wait for those. The publisher tells whether
//! an entry's predecessor was published to this node (the route table records where each entry
//! went); when it cannot, a gap is waited for only if a local recipient socket was registered
//! before the conversation's last entry went out here.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use natter_core::bus::{Event, Predecessor};
use natter_core::ids::{ConversationId, Seq};
use tokio::time::Instant;

/// How long an entry waits for a missing predecessor. Only a lost event (or a process that
/// stalls between commit and publish for this long) costs this much; an entry whose predecessor
/// is merely on its way waits for that alone.
/// natter-bench's two-process run under saturation saw publishes trail their commits by more
/// than 250 ms; a second keeps order there and bounds what a real loss costs.
pub const GAP_WAIT: Duration = Duration::from_secs(1);
/// A conversation with no traffic for this long is forgotten (its next entry is taken as is).
const FORGET_AFTER: Duration = Duration::from_secs(600);

#[derive(Default)]
pub struct Sequencer {
    logs: HashMap<ConversationId, Log>,
    counts: Counts,
    /// Conversations holding entries, so deadlines are found without scanning every log.
    waiting: HashSet<ConversationId>,
    last_sweep: Option<Instant>,
}

/// What the sequencer did since [`Sequencer::take_counts`] was last called.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Entries held for a missing predecessor.
    pub held: u64,
    /// Gaps given up on after [`GAP_WAIT`] (their held entries went out anyway).
    pub given_up: u64,
    /// Entries that arrived after a later entry of their conversation went out: these reach
    /// sockets out of `seq` order.
    pub late: u64,
}

struct Log {
    /// The highest seq handed out.
    last: Seq,
    /// When an entry was last handed out.
    released_at: Instant,
    held: BTreeMap<Seq, Event>,
    /// Seqs the publisher said were not published here: the gap they leave does not fill.
    not_coming: BTreeSet<Seq>,
    /// Targeted delivery, a conversation first seen here through an entry whose predecessor is
    /// coming: where its entries here begin is not known yet (`last` means nothing). The held
    /// entries wait until the lowest one's own predecessor is not coming.
    start_unknown: bool,
    /// When the oldest held entry arrived.
    held_since: Option<Instant>,
    touched: Instant,
    /// The last gap skipped without waiting, and why (for the warning if its entry turns up).
    skipped: Option<(Seq, &'static str)>,
}

impl Log {
    fn new(last: Seq, now: Instant) -> Self {
        Log {
            last,
            released_at: now,
            held: BTreeMap::new(),
            not_coming: BTreeSet::new(),
            start_unknown: false,
            held_since: None,
            touched: now,
            skipped: None,
        }
    }

    /// Hands out what follows `last` without a gap (held entries, and seqs not coming here).
    fn drain(&mut self, now: Instant) -> Vec<Event> {
        let mut ready = Vec::new();
        loop {
            let next = self.last.next();
            if let Some(entry) = self.held.first_entry()
                && *entry.key() == next
            {
                self.last = next;
                ready.push(entry.remove());
            } else if self.not_coming.remove(&next) {
                self.last = next;
            } else {
                break;
            }
        }
        self.not_coming = self.not_coming.split_off(&self.last.next());
        if !ready.is_empty() {
            self.released_at = now;
        }
        ready
    }
}

impl Sequencer {
    /// Takes an event; returns those now ready, in order.
    pub fn accept(&mut self, event: Event, now: Instant) -> Vec<Event> {
        let Some(position) = event.position.clone() else { return vec![event] };
        if !self.logs.contains_key(&position.conversation) {
            // The first entry this process sees of a conversation, past its start: its
            // predecessor may be a moment behind (from another process), or long delivered
            // (before this process started). Wait for it as for any gap: taking the last seq out
            // as two behind makes this entry wait for the one before it.
            let last = if position.seq <= Seq::FIRST { position.seq.prev() } else { position.seq.prev().prev() };
            self.logs.insert(position.conversation.clone(), Log::new(last, now));
        }
        self.place(&position.conversation, position.seq, event, now)
    }

    /// Puts an entry of a conversation that has a log in its place: out now with whatever it
    /// unblocks, or held.
    fn place(&mut self, conversation: &ConversationId, seq: Seq, event: Event, now: Instant) -> Vec<Event> {
        let Some(log) = self.logs.get_mut(conversation) else { return vec![event] };
        log.touched = now;
        if !log.start_unknown && seq <= log.last {
            // Older than what already went out (its gap was given up on): late beats never.
            self.counts.late += 1;
            tracing::warn!(
                conversation = %conversation, seq = %seq, last = %log.last,
                skipped = ?log.skipped, "a log entry arrived after a later one went out"
            );
            return vec![event];
        }
        log.held.insert(seq, event);
        // Where a conversation first seen here begins: at the lowest held entry, once that
        // one's own predecessor is not coming.
        if log.start_unknown
            && let Some((lowest, first)) = log.held.first_key_value()
            && first.position.as_ref().is_none_or(|p| p.predecessor != Predecessor::Coming)
        {
            log.last = lowest.prev();
            log.start_unknown = false;
        }
        let ready = if log.start_unknown { Vec::new() } else { log.drain(now) };
        if log.held.contains_key(&seq) {
            self.counts.held += 1;
        }
        if log.held.is_empty() {
            log.held_since = None;
            self.waiting.remove(conversation);
        } else {
            log.held_since.get_or_insert(now);
            self.waiting.insert(conversation.clone());
        }
        ready
    }

    /// [`Sequencer::accept`] for targeted delivery, where a gap may be one that never fills. The
    /// publisher says whether the previous entry was published here ([`Predecessor`]): a gap
    /// is waited for when it is coming; when it is not, only that one seq is passed over (other
    /// gaps are still waited for). Without that word, `followed_since` (since when the earliest
    /// local socket of the event's recipients has been registered; `None`: none is here)
    /// decides: the gap is waited for only if such a socket was here when the conversation's
    /// last entry went out (then the missing entries were published to this node too and may be
    /// on their way); otherwise everything held before this entry goes out, then this one.
    pub fn accept_targeted(
        &mut self,
        event: Event,
        now: Instant,
        followed_since: impl FnOnce(&Event) -> Option<Instant>,
    ) -> Vec<Event> {
        let Some(position) = event.position.clone() else { return vec![event] };
        let conversation = &position.conversation;
        match self.logs.get_mut(conversation) {
            Some(log) if log.start_unknown || position.seq <= log.last.next() => {}
            None if position.seq <= Seq::FIRST => return self.accept(event, now),
            None => match position.predecessor {
                Predecessor::Coming => {
                    let mut log = Log::new(Seq::ZERO, now);
                    log.start_unknown = true;
                    self.logs.insert(conversation.clone(), log);
                }
                // Nothing of this conversation went out here, and the entry before this one
                // did not come here: nobody here followed it.
                Predecessor::NotComing | Predecessor::Unknown => {
                    let mut log = Log::new(position.seq.prev(), now);
                    log.skipped = Some((position.seq, "the first entry seen here of the conversation"));
                    self.logs.insert(conversation.clone(), log);
                }
            },
            Some(log) => match position.predecessor {
                Predecessor::Coming => {}
                Predecessor::NotComing => {
                    log.not_coming.insert(position.seq.prev());
                    log.skipped = Some((position.seq, "the previous entry was not published here"));
                }
                Predecessor::Unknown if followed_since(&event).is_some_and(|since| since <= log.released_at) => {}
                Predecessor::Unknown => {
                    // Skip the gap: what waited before this entry goes out first, in order.
                    log.skipped = Some((position.seq, "no recipient socket here followed the conversation"));
                    let later = log.held.split_off(&position.seq);
                    let mut ready: Vec<Event> = std::mem::replace(&mut log.held, later).into_values().collect();
                    log.last = position.seq.prev();
                    log.not_coming.clear();
                    ready.extend(self.place(conversation, position.seq, event, now));
                    return ready;
                }
            },
        }
        self.place(conversation, position.seq, event, now)
    }

    /// Entries that waited [`GAP_WAIT`] for a predecessor go out, in order.
    pub fn expire(&mut self, now: Instant) -> Vec<Event> {
        let mut ready = Vec::new();
        let due: Vec<ConversationId> = self
            .waiting
            .iter()
            .filter(|id| self.logs.get(*id).and_then(|log| log.held_since).is_some_and(|since| since + GAP_WAIT <= now))
            .cloned()
            .collect();
        for id in due {
            if let Some(log) = self.logs.get_mut(&id) {
                self.counts.given_up += 1;
                for (seq, event) in std::mem::take(&mut log.held) {
                    log.last = seq;
                    ready.push(event);
                }
                log.not_coming.clear();
                log.start_unknown = false;
                log.released_at = now;
                log.held_since = None;
            }
            self.waiting.remove(&id);
        }
        if self.last_sweep.is_none_or(|sweep| sweep + FORGET_AFTER <= now) {
            self.logs.retain(|_, log| !log.held.is_empty() || log.touched + FORGET_AFTER > now);
            self.last_sweep = Some(now);
        }
        ready
    }

    /// The counts since the last call, which starts them over.
    pub fn take_counts(&mut self) -> Counts {
        std::mem::take(&mut self.counts)
    }

    /// When [`Sequencer::expire`] next has something to release.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.waiting.iter().filter_map(|id| self.logs.get(id)?.held_since).min().map(|since| since + GAP_WAIT)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use natter_core::bus::LogPosition;

    use super::*;

    fn entry(conversation: &str, seq: i64) -> Event {
        let mut event = Event::new(vec![], Bytes::from(format!("{conversation}:{seq}")));
        event.position = Some(LogPosition::new(ConversationId::from(conversation), Seq::new(seq)));
        event
    }

    fn entry_after(conversation: &str, seq: i64, predecessor: Predecessor) -> Event {
        let mut event = entry(conversation, seq);
        if let Some(position) = event.position.as_mut() {
            position.predecessor = predecessor;
        }
        event
    }

    fn seqs(events: &[Event]) -> Vec<i64> {
        events.iter().map(|e| e.position.as_ref().map_or(-1, |p| p.seq.get())).collect()
    }

    #[test]
    fn in_order_entries_and_other_events_pass_straight_through() {
        let mut sequencer = Sequencer::default();
        let now = Instant::now();
        assert_eq!(seqs(&sequencer.accept(entry("c", 1), now)), [1]);
        assert_eq!(seqs(&sequencer.accept(entry("c", 2), now)), [2]);
        assert_eq!(seqs(&sequencer.accept(Event::new(vec![], Bytes::new()), now)), [-1]);
        assert_eq!(sequencer.next_deadline(), None);
    }

    #[test]
    fn an_early_entry_waits_for_its_predecessor() {
        let mut sequencer = Sequencer::default();
        let now = Instant::now();
        sequencer.accept(entry("c", 1), now);
        assert!(sequencer.accept(entry("c", 3), now).is_empty());
        assert!(sequencer.accept(entry("c", 4), now).is_empty());
        assert_eq!(seqs(&sequencer.accept(entry("d", 1), now)), [1], "other conversations are not held up");
        assert_eq!(sequencer.next_deadline(), Some(now + GAP_WAIT));
        assert_eq!(seqs(&sequencer.accept(entry("c", 2), now)), [2, 3, 4]);
        assert_eq!(sequencer.next_deadline(), None);
    }

    #[test]
    fn the_first_entry_seen_past_the_start_waits_for_its_predecessor() {
        let mut sequencer = Sequencer::default();
        let now = Instant::now();
        // seq 8 arrives first; 7 is a moment behind.
        assert!(sequencer.accept(entry("c", 8), now).is_empty());
        assert_eq!(seqs(&sequencer.accept(entry("c", 7), now)), [7, 8]);
        // Here 4's predecessor was delivered before this process started: 4 goes out after the wait.
        assert!(sequencer.accept(entry("d", 4), now).is_empty());
        assert_eq!(seqs(&sequencer.expire(now + GAP_WAIT)), [4]);
        assert_eq!(seqs(&sequencer.accept(entry("d", 5), now + GAP_WAIT)), [5]);
    }

    #[test]
    fn a_gap_that_does_not_fill_is_given_up_after_the_wait() {
        let mut sequencer = Sequencer::default();
        let now = Instant::now();
        sequencer.accept(entry("c", 1), now);
        assert!(sequencer.accept(entry("c", 4), now).is_empty());
        assert!(sequencer.accept(entry("c", 3), now + Duration::from_millis(10)).is_empty());
        assert!(sequencer.expire(now + GAP_WAIT - Duration::from_millis(1)).is_empty());
        assert_eq!(seqs(&sequencer.expire(now + GAP_WAIT)), [3, 4]);
        // The lost entry turns up late: it still goes out; what follows is in order again.
        assert_eq!(seqs(&sequencer.accept(entry("c", 2), now + GAP_WAIT)), [2]);
        assert_eq!(seqs(&sequencer.accept(entry("c", 5), now + GAP_WAIT)), [5]);
        assert_eq!(sequencer.take_counts(), Counts { held: 2, given_up: 1, late: 1 });
        assert_eq!(sequencer.take_counts(), Counts::default(), "taking the counts starts them over");
    }

    #[test]
    fn targeted_gaps_nobody_here_followed_are_not_waited_for() {
        let mut sequencer = Sequencer::default();
        let start = Instant::now();
        let later = start + Duration::from_secs(5);
        let nobody = |_: &Event| None;
        // First entry seen, past the start: nothing here followed the conversation.
        assert_eq!(seqs(&sequencer.accept_targeted(entry("c", 8), start, nobody)), [8]);
        // A socket here since before seq 8 went out: 10 waits for 9, which is on its way.
        assert!(sequencer.accept_targeted(entry("c", 10), start, |_| Some(start)).is_empty());
        assert_eq!(seqs(&sequencer.accept_targeted(entry("c", 9), start, |_| Some(start))), [9, 10]);
        // The recipients left and came back (their socket is newer than seq 10 going out): entries
        // 11-14 were never published here; 15 goes out at once.
        assert_eq!(seqs(&sequencer.accept_targeted(entry("c", 15), later, |_| Some(later))), [15]);
        // Something held when the gap is skipped goes out first, in order.
        assert!(sequencer.accept_targeted(entry("c", 17), later, |_| Some(start)).is_empty());
        let after = later + Duration::from_millis(10);
        assert_eq!(seqs(&sequencer.accept_targeted(entry("c", 20), after, |_| Some(after))), [17, 20]);
        assert_eq!(sequencer.next_deadline(), None);
    }

    #[test]
    fn targeted_gaps_wait_exactly_when_the_publisher_says_the_predecessor_is_coming() {
        let mut sequencer = Sequencer::default();
        let now = Instant::now();
        // A socket here for long (the fallback would wait), but the predecessor never came here.
        let long_ago = |_: &Event| Some(now - Duration::from_secs(60));
        assert_eq!(seqs(&sequencer.accept_targeted(entry_after("c", 5, Predecessor::NotComing), now, long_ago)), [5]);
        // Two chat nodes appended 6 and 7; 7 was published first, and 6 is coming here.
        assert!(sequencer.accept_targeted(entry_after("c", 7, Predecessor::Coming), now, long_ago).is_empty());
        assert_eq!(seqs(&sequencer.accept_targeted(entry_after("c", 6, Predecessor::Coming), now, long_ago)), [6, 7]);
        // A conversation first seen here whose predecessor is coming: it waits, though no
        // socket here has seen anything of it (the fallback would let it go at once).
        let nobody = |_: &Event| None;
        assert!(sequencer.accept_targeted(entry_after("d", 3, Predecessor::Coming), now, nobody).is_empty());
        assert_eq!(sequencer.next_deadline(), Some(now + GAP_WAIT));
        assert_eq!(seqs(&sequencer.accept_targeted(entry_after("d", 2, Predecessor::NotComing), now, nobody)), [2, 3]);
        assert_eq!(sequencer.next_deadline(), None);
        // 10 waits for 9 (coming); 9 arrives saying 8 never came here: 9 then 10 go out.
        assert!(sequencer.accept_targeted(entry_after("c", 10, Predecessor::Coming), now, long_ago).is_empty());
        assert_eq!(
            seqs(&sequencer.accept_targeted(entry_after("c", 9, Predecessor::NotComing), now, long_ago)),
            [9, 10]
        );
        assert_eq!(sequencer.next_deadline(), None);
    }

    #[test]
    fn a_conversation_first_seen_waits_until_its_entries_here_begin() {
        let mut sequencer = Sequencer::default();
        let now = Instant::now();
        let nobody = |_: &Event| None;
        // 4 and 3 arrive first, each saying its predecessor is coming; 2 says nothing (its
        // publisher looked its routes up after 3's): the entries here begin at 2.
        assert!(sequencer.accept_targeted(entry_after("c", 4, Predecessor::Coming), now, nobody).is_empty());
        assert!(sequencer.accept_targeted(entry_after("c", 3, Predecessor::Coming), now, nobody).is_empty());
        assert_eq!(seqs(&sequencer.accept_targeted(entry_after("c", 2, Predecessor::Unknown), now, nobody)), [2, 3, 4]);
        assert_eq!(seqs(&sequencer.accept_targeted(entry_after("c", 5, Predecessor::Coming), now, nobody)), [5]);
        // Alone, it goes out after the wait.
        assert!(sequencer.accept_targeted(entry_after("d", 9, Predecessor::Coming), now, nobody).is_empty());
        assert_eq!(seqs(&sequencer.expire(now + GAP_WAIT)), [9]);
        assert_eq!(seqs(&sequencer.accept_targeted(entry_after("d", 10, Predecessor::Coming), now, nobody)), [10]);
        assert_eq!(sequencer.take_counts().late, 0);
    }

    #[test]
    fn a_predecessor_not_coming_passes_over_that_seq_alone() {
        let mut sequencer = Sequencer::default();
        let now = Instant::now();
        let long_ago = |_: &Event| Some(now - Duration::from_secs(60));
        assert_eq!(seqs(&sequencer.accept_targeted(entry_after("c", 5, Predecessor::NotComing), now, long_ago)), [5]);
        // 7 waits for 6 (coming); 9 says 8 never came here, but 6 still is.
        assert!(sequencer.accept_targeted(entry_after("c", 7, Predecessor::Coming), now, long_ago).is_empty());
        assert!(sequencer.accept_targeted(entry_after("c", 9, Predecessor::NotComing), now, long_ago).is_empty());
        assert_eq!(
            seqs(&sequencer.accept_targeted(entry_after("c", 6, Predecessor::Coming), now, long_ago)),
            [6, 7, 9]
        );
        assert_eq!(sequencer.next_deadline(), None);
        assert_eq!(sequencer.take_counts(), Counts { held: 2, given_up: 0, late: 0 });
    }
}
