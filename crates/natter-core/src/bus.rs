//! The bus port: how a committed change reaches every gateway that holds a socket of a recipient.
//!
//! Storage is the source of truth; the bus only notifies, after commit, and is allowed to miss.
//! Devices repair gaps from storage by `seq`.

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;

use crate::ids::{ConversationId, Seq, UserId};

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
        Self { recipients, frame, position: None }
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
