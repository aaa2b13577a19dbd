//! The bus port: how a committed change reaches every gateway that holds a socket of a recipient.
//!
//! Storage is the source of truth; the bus only notifies, after commit, and is allowed to miss.
//! Devices repair gaps from storage by `seq`.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;

use serde::{Deserialize, Serialize};

use crate::ids::{ConversationId, Seq, SessionId, UserId};
use crate::model::Message;
use crate::presence::NodeId;

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
    /// The log entry itself, as domain data, for consumers of every entry (the search indexer):
    /// they read it rather than parse the client frame back. Carried on the events those
    /// consumers receive (broadcast, or the log subject); gateways write `frame` and ignore it.
    pub entry: Option<Arc<Message>>,
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
    /// On a copy published to one gateway (targeted delivery): whether the conversation's
    /// previous entry went to that gateway too.
    pub predecessor: Predecessor,
}

impl LogPosition {
    pub fn new(conversation: ConversationId, seq: Seq) -> Self {
        Self { conversation, seq, predecessor: Predecessor::Unknown }
    }
}

/// Whether the entry before this one (`seq - 1`) was published to the gateway receiving this
/// copy, as the route table recorded when each was published. It tells a gateway whether a gap
/// before this entry will fill (wait for it, to hand entries out in order) or never will (no
/// recipient of the previous entry was connected there: the sockets there sync past it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Predecessor {
    /// Not known (broadcast delivery, or the record is gone): the gateway judges by itself.
    #[default]
    Unknown,
    /// Published there, or not published yet (its publisher is a moment behind): worth waiting for.
    Coming,
    /// Published, and not there.
    NotComing,
}

impl Event {
    /// An event that is not a log entry.
    pub fn new(recipients: Vec<UserId>, frame: Bytes) -> Self {
        Self { recipients, frame, position: None, ends: None, entry: None }
    }

    /// A revocation: `user`'s sockets of the sessions in `ends` are closed on every gateway.
    pub fn end_sessions(user: UserId, ends: SessionEnd) -> Self {
        Self { recipients: vec![user], frame: Bytes::new(), position: None, ends: Some(ends), entry: None }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("bus unavailable: {0}")]
    Unavailable(String),
}

/// Delivery is either broadcast (every node gets every event and keeps what its sockets need: one
/// process, or a cluster without a route table) or targeted (the publisher looks recipients up in
/// the route table and sends each node only its share; see `notify`). A bus with per-node
/// subjects supports both; the defaults below make a bus without them broadcast-only.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Hand an event to every node (of every process sharing this bus).
    async fn publish(&self, event: Event) -> Result<(), BusError>;

    /// A stream of every event published with [`Bus::publish`] from now on, by this process or
    /// any other.
    async fn subscribe(&self) -> Result<BoxStream<'static, Event>, BusError>;

    /// Hand an event to one node's gateway only. Default: to every node.
    async fn publish_to(&self, node: &NodeId, event: Event) -> Result<(), BusError> {
        let _ = node;
        self.publish(event).await
    }

    /// What `node`'s gateway receives: the events published to every node and those published
    /// to it. Default: [`Bus::subscribe`].
    async fn subscribe_node(&self, node: &NodeId) -> Result<BoxStream<'static, Event>, BusError> {
        let _ = node;
        self.subscribe().await
    }

    /// Hand a log entry, once, to the consumers of every entry (the search indexer) when
    /// delivery is targeted. Default: nothing (a broadcast-only bus already gave it to them).
    async fn publish_log(&self, event: Event) -> Result<(), BusError> {
        let _ = event;
        Ok(())
    }

    /// Every log entry published with [`Bus::publish_log`]. Default: [`Bus::subscribe`].
    async fn subscribe_log(&self) -> Result<BoxStream<'static, Event>, BusError> {
        self.subscribe().await
    }

    /// Whether [`Bus::publish_to`] reaches one node only (so delivery may be targeted).
    fn has_node_subjects(&self) -> bool {
        false
    }

    /// Whether the bus is reachable (for `/readyz`).
    async fn healthy(&self) -> bool {
        true
    }
}
