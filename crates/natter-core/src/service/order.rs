//! Keeps one process's pushes of a conversation in `seq` order.
//!
//! Two sends to one conversation may commit as seq 5 then 6 and yet publish 6 first, since
//! publishing happens after commit. Holding a per-conversation lock from the append until the
//! publish returns makes one process publish in `seq` order. Locks are striped (a fixed array
//! indexed by a hash of the id) so memory stays constant however many conversations exist; two
//! conversations sharing a stripe only wait for each other briefly. Across processes the
//! gateways' dispatchers restore the order (see natter-gateway's hub).

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::ids::ConversationId;

const STRIPES: usize = 1024;

pub struct LogLocks {
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
    pub async fn lock(&self, conversation: &ConversationId) -> OwnedMutexGuard<()> {
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
