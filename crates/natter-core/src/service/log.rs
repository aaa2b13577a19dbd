//! The conversation log: the one component that appends an entry to a conversation and pushes it
//! to the recipients. Sends, edits, recalls and reactions, system entries and transcripts all go
//! through [`ConversationLog::append`].
//!
//! It keeps one process's pushes of a conversation in `seq` order. Two sends to one conversation
//! may commit as seq 5 then 6 and yet publish 6 first, since publishing happens after commit.
//! Holding a per-conversation lock from the append until the publish returns makes one process
//! publish in `seq` order. Locks are striped (a fixed array indexed by a hash of the id) so memory
//! stays constant however many conversations exist; two conversations sharing a stripe only wait
//! for each other briefly. Across processes the gateways' dispatchers restore the order (see
//! natter-gateway's hub).

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use natter_proto::ServerFrame;
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::error::DomainResult;
use crate::ids::{ConversationId, UserId};
use crate::model::Message;
use crate::notify::Notifier;
use crate::store::{AppendOutcome, NewEntry, Store};
use crate::wire;

/// Who hears of a newly appended entry.
pub enum Recipients {
    /// The conversation's members once the entry is stored.
    Members,
    /// These users: members read before the append (an entry that removes members still reaches
    /// them), or a send's recipients as the sender's service decided them.
    These(Vec<UserId>),
}

/// Held while the caller sends more frames about an entry that must not be overtaken by the
/// conversation's next entry.
pub struct LogGuard {
    _held: OwnedMutexGuard<()>,
}

#[derive(Clone)]
pub struct ConversationLog {
    store: Arc<dyn Store>,
    notifier: Notifier,
    locks: Arc<LogLocks>,
}

impl ConversationLog {
    pub fn new(store: Arc<dyn Store>, notifier: Notifier) -> Self {
        Self { store, notifier, locks: Arc::default() }
    }

    /// Appends `entry` (the store assigns its `seq` in the same transaction) and, when it was
    /// stored anew, pushes it to `recipients`, all under the conversation's lock. A duplicate
    /// (same sender and `client_msg_id`) is not pushed again.
    pub async fn append(&self, entry: NewEntry, recipients: Recipients) -> DomainResult<AppendOutcome> {
        Ok(self.append_and_hold(entry, recipients).await?.0)
    }

    /// [`Self::append`], the lock still held by the returned guard.
    pub async fn append_and_hold(
        &self,
        entry: NewEntry,
        recipients: Recipients,
    ) -> DomainResult<(AppendOutcome, LogGuard)> {
        let guard = self.locks.lock(&entry.message.conversation_id).await;
        let outcome = self.store.append(entry).await?;
        if let AppendOutcome::Appended(message) = &outcome {
            let members = match recipients {
                Recipients::Members => self.store.member_ids(&message.conversation_id).await?,
                Recipients::These(users) => users,
            };
            self.push(members, message).await;
        }
        Ok((outcome, LogGuard { _held: guard }))
    }

    /// Pushes an entry that a store call other than `append` stored: a group's first entry,
    /// stored with the group (no entry can precede it, so no lock is needed).
    pub async fn push(&self, recipients: Vec<UserId>, entry: &Message) {
        let frame = ServerFrame::Message { message: wire::message_view(entry) };
        self.notifier.publish_entry(recipients, &frame, entry).await;
    }
}

const STRIPES: usize = 1024;

/// Striped per-conversation locks.
pub(crate) struct LogLocks {
    stripes: Vec<Arc<Mutex<()>>>,
    hasher: RandomState,
}

impl Default for LogLocks {
    fn default() -> Self {
        Self { stripes: (0..STRIPES).map(|_| Arc::default()).collect(), hasher: RandomState::new() }
    }
}

impl LogLocks {
    /// Held from before an append to its conversation until its publish has returned.
    pub(crate) async fn lock(&self, conversation: &ConversationId) -> OwnedMutexGuard<()> {
        let stripe = self.hasher.hash_one(conversation.as_str()) as usize % STRIPES;
        self.stripes[stripe].clone().lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_conversation_is_locked_other_stripes_are_not() {
        let locks = LogLocks::default();
        let id = ConversationId::from("c1");
        let held = locks.lock(&id).await;
        let again = tokio::time::timeout(std::time::Duration::from_millis(50), locks.lock(&id)).await;
        assert!(again.is_err(), "the same conversation waits while the lock is held");
        // Some other conversation lands on another stripe and goes ahead.
        let other = (0..100).map(|n| ConversationId::from(format!("other-{n}").as_str())).find(|other| {
            locks.hasher.hash_one(other.as_str()) as usize % STRIPES
                != locks.hasher.hash_one(id.as_str()) as usize % STRIPES
        });
        let other = other.expect("some id hashes elsewhere");
        let free = tokio::time::timeout(std::time::Duration::from_millis(50), locks.lock(&other)).await;
        assert!(free.is_ok());
        drop(held);
        assert!(tokio::time::timeout(std::time::Duration::from_millis(50), locks.lock(&id)).await.is_ok());
    }
}
