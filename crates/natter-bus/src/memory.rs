//! The in-process bus: one `natter serve`, no network.

use async_trait::async_trait;
use futures_util::stream::{self, BoxStream, StreamExt};
use natter_core::bus::{Bus, BusError, Event};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

/// A tokio broadcast channel. Every subscriber sees every event published after it subscribed.
///
/// A subscriber that falls more than `capacity` events behind loses the oldest ones (a warning
/// says how many) and carries on with the rest; its clients repair the gap from storage.
#[derive(Debug, Clone)]
pub struct MemoryBus {
    sender: broadcast::Sender<Event>,
}

impl MemoryBus {
    /// Events a subscriber may fall behind before it starts losing them.
    pub const DEFAULT_CAPACITY: usize = 65_536;

    /// A bus whose subscribers may each fall `capacity` events behind (at least 1).
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self { sender }
    }
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, event: Event) -> Result<(), BusError> {
        // An error only means nobody subscribes right now: nobody to notify is not a failure.
        let _ = self.sender.send(event);
        Ok(())
    }

    async fn subscribe(&self) -> Result<BoxStream<'static, Event>, BusError> {
        let receiver = self.sender.subscribe();
        let events = stream::unfold(receiver, |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(event) => return Some((event, receiver)),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "memory bus subscriber lagged; events dropped");
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        });
        Ok(events.boxed())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use futures_util::StreamExt;
    use natter_core::ids::UserId;

    use super::*;

    fn event(n: u32) -> Event {
        Event::new(vec![UserId::from(format!("u{n}"))], Bytes::from(n.to_string()))
    }

    async fn next(events: &mut BoxStream<'static, Event>) -> Option<Event> {
        tokio::time::timeout(Duration::from_secs(5), events.next()).await.expect("an event in time")
    }

    #[tokio::test]
    async fn every_subscriber_gets_every_event_in_order() {
        let bus = MemoryBus::default();
        let mut first = bus.subscribe().await.expect("subscribe");
        let mut second = bus.subscribe().await.expect("subscribe");
        for n in 0..3 {
            bus.publish(event(n)).await.expect("publish");
        }
        for events in [&mut first, &mut second] {
            for n in 0..3 {
                assert_eq!(next(events).await, Some(event(n)));
            }
        }
    }

    #[tokio::test]
    async fn a_subscriber_sees_only_events_after_it_subscribed() {
        let bus = MemoryBus::default();
        bus.publish(event(1)).await.expect("publish without subscribers succeeds");
        let mut events = bus.subscribe().await.expect("subscribe");
        bus.publish(event(2)).await.expect("publish");
        assert_eq!(next(&mut events).await, Some(event(2)));
    }

    #[tokio::test]
    async fn a_lagging_subscriber_loses_the_oldest_events_and_keeps_going() {
        let bus = MemoryBus::new(4);
        let mut events = bus.subscribe().await.expect("subscribe");
        for n in 0..10 {
            bus.publish(event(n)).await.expect("publish");
        }
        // The channel kept the newest 4; the 6 before them are lost, the stream does not end.
        for n in 6..10 {
            assert_eq!(next(&mut events).await, Some(event(n)));
        }
        bus.publish(event(10)).await.expect("publish");
        assert_eq!(next(&mut events).await, Some(event(10)));
    }

    #[tokio::test]
    async fn clones_share_one_channel() {
        let bus = MemoryBus::default();
        let mut events = bus.subscribe().await.expect("subscribe");
        bus.clone().publish(event(7)).await.expect("publish");
        assert_eq!(next(&mut events).await, Some(event(7)));
    }

    #[tokio::test]
    async fn the_stream_ends_when_the_bus_is_gone() {
        let bus = MemoryBus::default();
        let mut events = bus.subscribe().await.expect("subscribe");
        bus.publish(event(1)).await.expect("publish");
        drop(bus);
        assert_eq!(next(&mut events).await, Some(event(1)));
        assert_eq!(next(&mut events).await, None);
    }

    #[tokio::test]
    async fn is_healthy() {
        assert!(MemoryBus::new(0).healthy().await);
    }
}
