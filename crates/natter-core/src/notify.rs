//! Publishing committed changes: encode the frame once, hand it to the bus.

use std::sync::Arc;

use natter_proto::ServerFrame;

use crate::bus::{Bus, Event};
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
        if let Err(error) = self.bus.publish(Event { recipients, frame }).await {
            tracing::warn!(%error, "bus publish failed; clients will catch up by sync");
        }
    }
}
