//! The bus port: how a committed change reaches every gateway that holds a socket of a recipient.
//!
//! Storage is the source of truth; the bus only notifies, after commit, and is allowed to miss.
//! Devices repair gaps from storage by `seq`.

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;

use serde::{Deserialize, Serialize};

use crate::ids::{ConversationId, Seq, SessionId, UserId};

/// One notification: an already-encoded server frame and the users whose devices should get it.
///
/// The frame is encoded once per event, not once per socket.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub recipients: Vec<UserId>,
    /// A JSON-encoded `natter_proto::ServerFrame`.
    pub frame: Bytes,
    /// For a log entry: where it sits in its conversation's log, so that a gateway can hand
    /// entries to sockets in `seq` order even when they reach it out of order (from two
    /// processes appending to one conversation). `None` for everything else (presence, typing…).
    pub position: Option<LogPosition>,
    /// Set on a session revocation: every gateway closes the sockets of `recipients` that belong
    /// to the sessions it names (their frame is empty and not written).
    pub ends: Option<SessionEnd>,
}

/// Which sessions of a user a revocation ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionEnd {
    /// One session (logout, a revoked device, a reused refresh token).
    Session(SessionId),
    /// Every session but the one given (a password change keeps the caller's own).
    AllBut(Option<SessionId>),
}

impl SessionEnd {
    /// Whether a socket of `session` is ended by this revocation.
    pub fn covers(&self, session: &SessionId) -> bool {
        match self {
            Self::Session(ended) => ended == session,
            Self::AllBut(keep) => keep.as_ref() != Some(session),
        }
    }
}

/// A log entry's place: its conversation and `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogPosition {
    pub conversation: ConversationId,
    pub seq: Seq,
}

impl Event {
    /// An event that is not a log entry.
    pub fn new(recipients: Vec<UserId>, frame: Bytes) -> Self {
        Self { recipients, frame, position: None, ends: None }
    }

    /// A revocation: `user`'s sockets of the sessions in `ends` are closed on every gateway.
    pub fn end_sessions(user: UserId, ends: SessionEnd) -> Self {
        Self { recipients: vec![user], frame: Bytes::new(), position: None, ends: Some(ends) }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("bus unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Hand an event to every subscriber (of every process sharing this bus).
    async fn publish(&self, event: Event) -> Result<(), BusError>;

    /// A stream of every event published from now on, by this process or any other.
    async fn subscribe(&self) -> Result<BoxStream<'static, Event>, BusError>;

    /// Whether the bus is reachable (for `/readyz`).
    async fn healthy(&self) -> bool {
        true
    }
}
