//! SQLite only: the member ids of recently pushed-to conversations, kept in memory.
//!
//! Every push to a group reads its member list, which costs a 1,000-member group more than the
//! append itself (natter-bench's fan-out: 101k → 179k deliveries/s with a cache). On SQLite one
//! process owns the database, so it sees every membership change: `SqlStore` invalidates an
//! entry after committing any change of membership (an append with a membership effect, an
//! accepted friend request). A read that races a change must not put the old list back: every
//! invalidation bumps a generation, and a list read from the database is kept only if no
//! invalidation happened since the read began.
//!
//! PostgreSQL is shared by several processes, so no process sees every change: there each
//! conversation's `members_version` (moved by triggers on `members`, in the transaction of the
//! change) says whether a remembered list is current ([`VersionedMembers`]): one primary-key read
//! instead of the whole member list.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use natter_core::ids::{ConversationId, UserId};

/// Conversations remembered at most; past it the cache starts over.
const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
pub(crate) struct MemberCache {
    entries: Mutex<HashMap<ConversationId, Vec<UserId>>>,
    generation: AtomicU64,
}

impl MemberCache {
    pub(crate) fn get(&self, conversation: &ConversationId) -> Option<Vec<UserId>> {
        self.lock().get(conversation).cloned()
    }

    /// Read before the database query; pass to [`MemberCache::insert`].
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Keeps `members`, read after `generation` was taken, unless membership changed since.
    pub(crate) fn insert(&self, conversation: &ConversationId, members: &[UserId], generation: u64) {
        let mut entries = self.lock();
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(conversation.clone(), members.to_vec());
    }

    /// After a membership change of `conversation` has committed.
    pub(crate) fn invalidate(&self, conversation: &ConversationId) {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.remove(conversation);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ConversationId, Vec<UserId>>> {
        // The map is always whole between statements; a panic elsewhere cannot corrupt it.
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// PostgreSQL: member ids remembered with the `members_version` they were read at.
#[derive(Default)]
pub(crate) struct VersionedMembers {
    entries: Mutex<HashMap<ConversationId, (i64, Vec<UserId>)>>,
}

impl VersionedMembers {
    /// The remembered list, if it was read at `version`.
    pub(crate) fn get(&self, conversation: &ConversationId, version: i64) -> Option<Vec<UserId>> {
        let entries = self.lock();
        entries.get(conversation).filter(|(at, _)| *at == version).map(|(_, members)| members.clone())
    }

    /// Keeps `members`, read after `version` was (so they are at least that new: a later check
    /// against a newer version reads them again).
    pub(crate) fn insert(&self, conversation: &ConversationId, version: i64, members: &[UserId]) {
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(conversation.clone(), (version, members.to_vec()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ConversationId, (i64, Vec<UserId>)>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_read_across_an_invalidation_is_not_kept() {
        let cache = MemberCache::default();
        let id = ConversationId::from("c");
        let (a, b) = (UserId::from("a"), UserId::from("b"));
        let before = cache.generation();
        cache.insert(&id, std::slice::from_ref(&a), before);
        assert_eq!(cache.get(&id), Some(vec![a.clone()]));

        let racing = cache.generation();
        cache.invalidate(&id);
        cache.insert(&id, std::slice::from_ref(&a), racing);
        assert_eq!(cache.get(&id), None, "the stale list read before the change stays out");
        cache.insert(&id, &[a.clone(), b.clone()], cache.generation());
        assert_eq!(cache.get(&id), Some(vec![a, b]));
    }
}
