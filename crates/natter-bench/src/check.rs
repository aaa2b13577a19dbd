//! The correctness count: every message must reach every intended device exactly once, in order.

use std::collections::HashSet;

use crate::measure::Correctness;

/// What one receiving device saw of one ordered stream (one publisher's indices, or one
/// conversation's `seq`s).
#[derive(Debug, Default)]
pub struct StreamCheck {
    seen: HashSet<u64>,
    highest: Option<u64>,
    duplicated: u64,
    reordered: u64,
}

impl StreamCheck {
    /// Records a receipt; returns true when it is the first receipt of `position`.
    pub fn receive(&mut self, position: u64) -> bool {
        if !self.seen.insert(position) {
            self.duplicated += 1;
            return false;
        }
        match self.highest {
            Some(highest) if position < highest => self.reordered += 1,
            _ => self.highest = Some(position),
        }
        true
    }

    pub fn received(&self) -> u64 {
        self.seen.len() as u64
    }

    pub fn contains(&self, position: u64) -> bool {
        self.seen.contains(&position)
    }

    /// The count for a stream that should have held exactly `expected` (e.g. positions 1..=n).
    pub fn finish(&self, expected: impl IntoIterator<Item = u64>) -> Correctness {
        let mut count =
            Correctness { duplicated: self.duplicated, reordered: self.reordered, ..Correctness::default() };
        for position in expected {
            count.expected += 1;
            if self.seen.contains(&position) {
                count.delivered += 1;
            } else {
                count.lost += 1;
            }
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_losses_duplicates_and_reorders() {
        let mut stream = StreamCheck::default();
        for position in [1, 2, 4, 3, 4, 6] {
            stream.receive(position);
        }
        let count = stream.finish(1..=6);
        assert_eq!(
            count,
            Correctness { expected: 6, delivered: 5, lost: 1, duplicated: 1, reordered: 1, failed_sends: 0 }
        );
        let mut clean = StreamCheck::default();
        (1..=3).for_each(|p| {
            clean.receive(p);
        });
        assert!(clean.finish(1..=3).is_clean());
    }
}
