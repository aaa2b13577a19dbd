//! Publishing committed changes: encode the frame once, hand it to the bus.

use std::sync::Arc;

use natter_proto::ServerFrame;

use crate::bus::{Bus, Event, LogPosition, SessionEnd};
use crate::ids::UserId;

#[derive(Clone)]
pub struct Notifier {
    bus: Arc<dyn Bus>,
}

impl Notifier {
    pub fn new(bus: Arc<dyn Bus>) -> Self {
        Self { bus }
    }

    /// Push a frame to every online device of `recipients`. Push may miss (sync repairs), so a
    /// bus failure is logged, not returned: the change it announces is already committed.
    pub async fn publish(&self, recipients: Vec<UserId>, frame: &ServerFrame) {
        self.publish_at(recipients, frame, None).await;
    }

    /// Like [`Notifier::publish`], for a frame that carries the log entry at `position`.
    pub async fn publish_entry(&self, recipients: Vec<UserId>, frame: &ServerFrame, position: LogPosition) {
        self.publish_at(recipients, frame, Some(position)).await;
    }

    async fn publish_at(&self, recipients: Vec<UserId>, frame: &ServerFrame, position: Option<LogPosition>) {
        if recipients.is_empty() {
            return;
        }
        let frame = match serde_json::to_vec(frame) {
            Ok(bytes) => bytes::Bytes::from(bytes),
            Err(error) => {
                tracing::error!(%error, "could not encode a server frame");
                return;
            }
        };
        if let Err(error) = self.bus.publish(Event { recipients, frame, position, ends: None }).await {
            tracing::warn!(%error, "bus publish failed; clients will catch up by sync");
        }
    }

    /// Closes `user`'s sockets of the ended sessions on every gateway. A lost event is bounded by
    /// the access token's lifetime: a socket also closes when its token expires.
    pub async fn end_sessions(&self, user: UserId, ends: SessionEnd) {
        if let Err(error) = self.bus.publish(Event::end_sessions(user, ends)).await {
            tracing::warn!(%error, "bus publish of a session revocation failed; sockets close at token expiry");
        }
    }
}
