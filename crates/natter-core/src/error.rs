//! The domain's error: one enum that every service returns, so that the gateway has exactly one
//! mapping to HTTP (and later gRPC). Variants name what went wrong, never how it is stored.

use std::time::Duration;

use crate::blob::BlobError;
use crate::bus::BusError;
use crate::store::StoreError;

/// Declares a closed enum of stable snake_case names: the enum, `as_str`, `parse` and `ALL`.
macro_rules! closed_names {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The stable name clients see.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The value named `text`, if it is one.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("unknown {}: {text}", stringify!($name))))
            }
        }
    };
}

closed_names! {
    /// Every machine-readable error code a service can give (the `code` of the API's error body).
    /// Closed, so that an error crosses gRPC and comes back as the same value.
    ErrorCode {
        AccountDisabled => "account_disabled",
        AlreadyFriends => "already_friends",
        AudioTooLarge => "audio_too_large",
        AudioTooLong => "audio_too_long",
        Blocked => "blocked",
        CannotBefriendSelf => "cannot_befriend_self",
        CannotBlockSelf => "cannot_block_self",
        CannotChangeOwnRole => "cannot_change_own_role",
        ClientMsgIdReused => "client_msg_id_reused",
        EmptyText => "empty_text",
        FileKindMismatch => "file_kind_mismatch",
        FileNotFound => "file_not_found",
        FileRequired => "file_required",
        FileTooLarge => "file_too_large",
        Forbidden => "forbidden",
        GroupFull => "group_full",
        InvalidAnnouncement => "invalid_announcement",
        InvalidAvatar => "invalid_avatar",
        InvalidBio => "invalid_bio",
        InvalidClientMsgId => "invalid_client_msg_id",
        InvalidCredentials => "invalid_credentials",
        InvalidCursor => "invalid_cursor",
        InvalidDeviceName => "invalid_device_name",
        InvalidEmoji => "invalid_emoji",
        InvalidKind => "invalid_kind",
        InvalidLimit => "invalid_limit",
        InvalidMessage => "invalid_message",
        InvalidName => "invalid_name",
        InvalidNickname => "invalid_nickname",
        InvalidOrder => "invalid_order",
        InvalidQuery => "invalid_query",
        InvalidRefreshToken => "invalid_refresh_token",
        InvalidReplyTo => "invalid_reply_to",
        InvalidSeq => "invalid_seq",
        InvalidUsername => "invalid_username",
        MessageRecalled => "message_recalled",
        NotAGroup => "not_a_group",
        NotEditable => "not_editable",
        NotFriends => "not_friends",
        OwnerMustTransfer => "owner_must_transfer",
        QueryTooLong => "query_too_long",
        QueryTooShort => "query_too_short",
        QuotaExceeded => "quota_exceeded",
        RefreshTokenReused => "refresh_token_reused",
        RequestNotPending => "request_not_pending",
        RequestPending => "request_pending",
        SearchUnavailable => "search_unavailable",
        ServerBusy => "server_busy",
        ServiceUnavailable => "service_unavailable",
        SpeechBusy => "speech_busy",
        SpeechFailed => "speech_failed",
        SpeechUnavailable => "speech_unavailable",
        TextTooLong => "text_too_long",
        TooManyAttempts => "too_many_attempts",
        TooManyConnections => "too_many_connections",
        TooManyMentions => "too_many_mentions",
        TooManyMessages => "too_many_messages",
        TooManyUploads => "too_many_uploads",
        Unauthorized => "unauthorized",
        UnexpectedFileId => "unexpected_file_id",
        UnsupportedAudio => "unsupported_audio",
        UploadFailed => "upload_failed",
        UsernameTaken => "username_taken",
        ValidationFailed => "validation_failed",
        WeakPassword => "weak_password",
    }
}

closed_names! {
    /// What a `NotFound` error is about (`"<thing> not found"`).
    Thing {
        Block => "block",
        Conversation => "conversation",
        File => "file",
        Friend => "friend",
        FriendRequest => "friend_request",
        Member => "member",
        Message => "message",
        Session => "session",
        Thumbnail => "thumbnail",
        User => "user",
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// Input failed a rule; `code` is the stable machine-readable reason.
    #[error("{message}")]
    Invalid { code: ErrorCode, message: String },
    /// Unknown id, or something the caller may not know exists (a non-member's conversation).
    #[error("{what} not found")]
    NotFound { what: Thing },
    /// Missing, malformed, expired or revoked credentials.
    #[error("{message}")]
    Unauthenticated { code: ErrorCode, message: String },
    /// The caller is known and may see the thing, but lacks the right to do this.
    #[error("{message}")]
    Forbidden { code: ErrorCode, message: String },
    /// The request clashes with the current state.
    #[error("{message}")]
    Conflict { code: ErrorCode, message: String },
    /// A size limit was exceeded.
    #[error("{message}")]
    TooLarge { code: ErrorCode, message: String },
    /// A part the request needs is not configured or is overloaded (HTTP 503).
    #[error("{message}")]
    Unavailable { code: ErrorCode, message: String },
    /// Past a rate limit (`code` says which); try again after the given time.
    #[error("{code}: retry in {retry_after:?}")]
    RateLimited { code: ErrorCode, retry_after: Duration },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The blob store failed (a missing blob for a file that has a record is one such failure).
    #[error(transparent)]
    Blob(#[from] BlobError),
}

pub type DomainResult<T> = Result<T, DomainError>;

impl DomainError {
    pub fn invalid(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Invalid { code, message: message.into() }
    }
    pub fn forbidden(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Forbidden { code, message: message.into() }
    }
    pub fn conflict(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Conflict { code, message: message.into() }
    }
    pub fn unauthenticated(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Unauthenticated { code, message: message.into() }
    }
    pub fn unavailable(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Unavailable { code, message: message.into() }
    }
    pub fn not_found(what: Thing) -> Self {
        Self::NotFound { what }
    }
    pub fn too_large(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::TooLarge { code, message: message.into() }
    }
}
