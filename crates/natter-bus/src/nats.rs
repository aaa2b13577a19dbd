//! The NATS bus. Subjects (see the crate docs): `<prefix>.events` to every node,
//! `<prefix>.gw.<node>` to one node's gateway, `<prefix>.log` to the every-entry consumers.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use natter_core::bus::{Bus, BusError, Event};
use natter_core::presence::NodeId;

use crate::codec::{decode_event, encode_event};

/// How long `subscribe` waits for the server to confirm the subscription.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Core NATS (no JetStream): at-most-once fan-out to every subscribed process, which is all the
/// bus promises. Events travel on `<prefix>.events` (to every node), `<prefix>.gw.<node>` (to one
/// node) and `<prefix>.log` (log entries for the indexer, when delivery is targeted), encoded as
/// described in [`crate::codec`].
///
/// Reconnecting after a broken connection is async-nats's job; events published meanwhile are
/// buffered by the client up to its capacity, and a publish that cannot be queued in time fails.
#[derive(Debug, Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    subject: String,
    prefix: String,
    publish_timeout: Duration,
}

impl NatsBus {
    /// How long a publish may wait for room in the client's outgoing buffer.
    pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

    /// Connect to `url` (e.g. `nats://127.0.0.1:4222`, or several comma-separated). Fails if the
    /// server cannot be reached now, so a misconfigured node does not start.
    pub async fn connect(url: &str, subject_prefix: &str) -> Result<Self, BusError> {
        let subject = events_subject(subject_prefix)?;
        let client = async_nats::ConnectOptions::new()
            .name("natter")
            .connection_timeout(Duration::from_secs(5))
            .event_callback(|event| async move { log_connection_event(event) })
            .connect(url)
            .await
            .map_err(|error| failed("connect", error))?;
        tracing::info!(%subject, "connected to NATS");
        let prefix = subject_prefix.to_owned();
        Ok(Self { client, subject, prefix, publish_timeout: Self::DEFAULT_PUBLISH_TIMEOUT })
    }

    /// Change how long a publish may wait while the connection is down and the buffer is full.
    pub fn with_publish_timeout(mut self, timeout: Duration) -> Self {
        self.publish_timeout = timeout;
        self
    }

    /// Returns once the server has registered every subscription this client made so far.
    ///
    /// `flush` only empties the client's write buffer; the server may still be reading the SUB
    /// when another node's PUB arrives. A server handles one connection's commands in order, so
    /// once a probe published after the SUB comes back, the SUB is in force.
    async fn await_server_subscriptions(&self) -> Result<(), BusError> {
        let inbox = self.client.new_inbox();
        let mut probe = self.client.subscribe(inbox.clone()).await.map_err(|error| failed("subscribe", error))?;
        self.client.publish(inbox, Bytes::new()).await.map_err(|error| failed("publish", error))?;
        match tokio::time::timeout(SUBSCRIBE_TIMEOUT, probe.next()).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(BusError::Unavailable("NATS connection closed".into())),
            Err(_) => Err(BusError::Unavailable("NATS subscribe timed out".into())),
        }
    }

    /// The subject events to every node travel on.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The subject of one node's gateway.
    pub fn node_subject(&self, node: &NodeId) -> String {
        format!("{}.gw.{node}", self.prefix)
    }

    /// The subject of log entries for the every-entry consumers.
    pub fn log_subject(&self) -> String {
        format!("{}.log", self.prefix)
    }

    async fn publish_on(&self, subject: String, event: &Event) -> Result<(), BusError> {
        let payload = encode_event(event);
        let publish = self.client.publish(subject, payload);
        match tokio::time::timeout(self.publish_timeout, publish).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(failed("publish", error)),
            Err(_) => Err(BusError::Unavailable("NATS publish timed out".into())),
        }
    }

    /// The decoded events of `subject`; call [`Self::await_server_subscriptions`] before relying
    /// on it.
    async fn events_of(&self, subject: String) -> Result<BoxStream<'static, Event>, BusError> {
        let subscriber = self.client.subscribe(subject.clone()).await.map_err(|error| failed("subscribe", error))?;
        let events = subscriber.filter_map(move |message| {
            let decoded = match decode_event(&message.payload) {
                Ok(event) => Some(event),
                Err(error) => {
                    tracing::warn!(%subject, %error, bytes = message.payload.len(), "skipping undecodable bus event");
                    None
                }
            };
            std::future::ready(decoded)
        });
        Ok(events.boxed())
    }
}

#[async_trait]
impl Bus for NatsBus {
    async fn publish(&self, event: Event) -> Result<(), BusError> {
        self.publish_on(self.subject.clone(), &event).await
    }

    async fn subscribe(&self) -> Result<BoxStream<'static, Event>, BusError> {
        let events = self.events_of(self.subject.clone()).await?;
        self.await_server_subscriptions().await?;
        Ok(events)
    }

    async fn publish_to(&self, node: &NodeId, event: Event) -> Result<(), BusError> {
        self.publish_on(self.node_subject(node), &event).await
    }

    /// Two subscriptions, merged. Each subject keeps its publishers' order; the gateway's
    /// sequencer orders log entries across them.
    async fn subscribe_node(&self, node: &NodeId) -> Result<BoxStream<'static, Event>, BusError> {
        let everyone = self.events_of(self.subject.clone()).await?;
        let mine = self.events_of(self.node_subject(node)).await?;
        self.await_server_subscriptions().await?;
        Ok(futures_util::stream::select(everyone, mine).boxed())
    }

    async fn publish_log(&self, event: Event) -> Result<(), BusError> {
        self.publish_on(self.log_subject(), &event).await
    }

    async fn subscribe_log(&self) -> Result<BoxStream<'static, Event>, BusError> {
        let events = self.events_of(self.log_subject()).await?;
        self.await_server_subscriptions().await?;
        Ok(events)
    }

    fn has_node_subjects(&self) -> bool {
        true
    }

    async fn healthy(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }
}

/// `<prefix>.events`, refusing prefixes that are not plain NATS subject tokens (a wildcard would
/// let one cluster read another's events).
fn events_subject(prefix: &str) -> Result<String, BusError> {
    let valid_token = |token: &str| {
        !token.is_empty() && !token.chars().any(|c| c.is_whitespace() || c.is_control() || c == '*' || c == '>')
    };
    if !prefix.split('.').all(valid_token) {
        return Err(BusError::Unavailable(format!(
            "invalid NATS subject prefix {prefix:?}: use dot-separated tokens without spaces, `*` or `>`"
        )));
    }
    Ok(format!("{prefix}.events"))
}

fn failed(what: &str, error: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(format!("NATS {what} failed: {error}"))
}

fn log_connection_event(event: async_nats::Event) {
    match event {
        async_nats::Event::Connected => tracing::info!("NATS connection (re)established"),
        async_nats::Event::SlowConsumer(subscription) => {
            tracing::warn!(subscription, "NATS subscriber too slow; bus events dropped")
        }
        async_nats::Event::Disconnected
        | async_nats::Event::LameDuckMode
        | async_nats::Event::Draining
        | async_nats::Event::Closed
        | async_nats::Event::ServerError(_)
        | async_nats::Event::ClientError(_) => tracing::warn!(%event, "NATS connection event"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_is_prefix_dot_events() {
        assert_eq!(events_subject("natter").expect("valid"), "natter.events");
        assert_eq!(events_subject("prod.eu-1").expect("valid"), "prod.eu-1.events");
    }

    #[test]
    fn refuses_prefixes_that_are_not_plain_tokens() {
        for prefix in ["", "a..b", ".a", "a.", "a b", "a.*", ">", "a\tb"] {
            assert!(events_subject(prefix).is_err(), "{prefix:?} must be refused");
        }
    }

    #[tokio::test]
    async fn connecting_to_nothing_fails_instead_of_hanging() {
        // Port 1 on loopback refuses at once.
        let result = NatsBus::connect("nats://127.0.0.1:1", "natter").await;
        assert!(matches!(result, Err(BusError::Unavailable(_))));
    }
}
