//! Newtype ids and log positions. On the wire ids are strings and a `Seq` is an integer; here
//! they cannot be mixed up.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// A fresh, time-ordered id (UUID v7 in its simple hex form).
            pub fn generate() -> Self {
                Self(uuid::Uuid::now_v7().simple().to_string())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }
    };
}

string_id!(
    /// A user account.
    UserId
);
string_id!(
    /// A device session (one per login).
    SessionId
);
string_id!(
    /// A direct or group conversation.
    ConversationId
);
string_id!(
    /// One entry of a conversation's log.
    MessageId
);
string_id!(
    /// A friend request.
    FriendRequestId
);
string_id!(
    /// An uploaded file (or a thumbnail the server made of one).
    FileId
);

/// Position of an entry in its conversation's log: 1, 2, 3, … with no gaps. `Seq::ZERO` is the
/// position before the first entry ("nothing yet": an empty log's head, a member who read
/// nothing). On the wire and in storage it is a bare integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seq(i64);

impl Seq {
    pub const ZERO: Self = Self(0);
    /// The first entry of every log.
    pub const FIRST: Self = Self(1);

    pub const fn new(value: i64) -> Self {
        Self(value)
    }

    pub const fn get(self) -> i64 {
        self.0
    }

    /// The position right after this one.
    pub const fn next(self) -> Self {
        Self(self.0 + 1)
    }

    /// The position right before this one (`ZERO` before the first entry).
    pub const fn prev(self) -> Self {
        Self(self.0 - 1)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seq_is_a_bare_integer_in_json() {
        assert_eq!(serde_json::to_string(&Seq::new(42)).expect("serializes"), "42");
        assert_eq!(serde_json::from_str::<Seq>("7").expect("deserializes"), Seq::new(7));
        assert_eq!(serde_json::from_str::<Option<Seq>>("null").expect("deserializes"), None);
    }

    #[test]
    fn positions_step_by_one_from_zero() {
        assert_eq!(Seq::default(), Seq::ZERO);
        assert_eq!(Seq::ZERO.next(), Seq::FIRST);
        assert_eq!(Seq::FIRST.prev(), Seq::ZERO);
        assert!(Seq::ZERO < Seq::FIRST);
    }
}
