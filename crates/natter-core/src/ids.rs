//! Newtype ids. On the wire they are strings; here they cannot be mixed up.

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

/// Position of an entry in its conversation's log: 1, 2, 3, … with no gaps.
pub type Seq = i64;
