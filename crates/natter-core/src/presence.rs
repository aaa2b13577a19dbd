//! Which users have at least one open socket on this node.
//!
//! Counting is per process: in a cluster a user connected to two gateways looks offline to the
//! friends of one of them when they leave it. A shared presence store is a later step.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::ids::UserId;

#[derive(Debug, Default)]
pub struct Presence {
    sockets: Mutex<HashMap<UserId, usize>>,
}

impl Presence {
    /// Records a new socket; true when it is the user's first (they just came online).
    pub fn connect(&self, user: &UserId) -> bool {
        let mut sockets = self.sockets.lock();
        let count = sockets.entry(user.clone()).or_insert(0);
        *count += 1;
        *count == 1
    }

    /// Records a closed socket; true when it was the user's last (they just went offline).
    pub fn disconnect(&self, user: &UserId) -> bool {
        let mut sockets = self.sockets.lock();
        match sockets.get_mut(user) {
            Some(count) if *count > 1 => {
                *count -= 1;
                false
            }
            Some(_) => {
                sockets.remove(user);
                true
            }
            None => false,
        }
    }

    pub fn is_online(&self, user: &UserId) -> bool {
        self.sockets.lock().contains_key(user)
    }

    pub fn online_users(&self) -> usize {
        self.sockets.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_until_last_socket_closes() {
        let presence = Presence::default();
        let alice = UserId::from("alice");
        assert!(presence.connect(&alice));
        assert!(!presence.connect(&alice));
        assert!(!presence.disconnect(&alice));
        assert!(presence.is_online(&alice));
        assert!(presence.disconnect(&alice));
        assert!(!presence.is_online(&alice));
        assert!(!presence.disconnect(&alice));
    }
}
