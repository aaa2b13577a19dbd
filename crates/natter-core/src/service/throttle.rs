//! Sliding-window counters per key: failed logins (per account and address, per account, per
//! address, each with its own limit) and registrations (per address). Past a key's limit,
//! attempts are refused until enough of its events age out.
//! Hand-written because governor limits every attempt, while only failures should count for
//! logins, and because one check here spans several keys with different limits.
//!
//! [`Throttle`] is the port: [`MemoryThrottle`] counts in this process (one node); natter-redis
//! counts in Redis so that limits hold across the nodes of a cluster.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::time::Instant;

/// A key and the most events it may have within the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub key: String,
    pub max: usize,
}

impl Limit {
    pub fn new(key: impl Into<String>, max: u32) -> Self {
        Self { key: key.into(), max: max.max(1) as usize }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("throttle store unavailable: {0}")]
pub struct ThrottleError(pub String);

/// Sliding windows of events per key. A key is used with one window only.
#[async_trait]
pub trait Throttle: Send + Sync + 'static {
    /// `Ok(Err(retry_after))` when any key has reached its limit within `window`.
    async fn check(&self, limits: &[Limit], window: Duration) -> Result<Result<(), Duration>, ThrottleError>;

    /// Counts one event now for every key.
    async fn record(&self, limits: &[Limit], window: Duration) -> Result<(), ThrottleError>;

    /// Forgets a key's events.
    async fn clear(&self, key: &str) -> Result<(), ThrottleError>;
}

/// The windows of one process.
#[derive(Debug, Default)]
pub struct MemoryThrottle {
    /// key → (its window, its newest events).
    events: Mutex<HashMap<String, (Duration, VecDeque<Instant>)>>,
}

impl MemoryThrottle {
    fn check_now(&self, limits: &[Limit], window: Duration) -> Result<(), Duration> {
        let now = Instant::now();
        let mut events = self.events.lock();
        let mut wait = Duration::ZERO;
        for limit in limits {
            if let Some((_, times)) = events.get_mut(&limit.key) {
                prune(times, now, window);
                if times.len() >= limit.max {
                    // The limit lifts when enough of the oldest events have aged out.
                    if let Some(oldest) = times.get(times.len() - limit.max) {
                        wait = wait.max(window.saturating_sub(now - *oldest));
                    }
                }
            }
        }
        if wait.is_zero() { Ok(()) } else { Err(wait.max(Duration::from_secs(1))) }
    }

    fn record_now(&self, limits: &[Limit], window: Duration) {
        let now = Instant::now();
        let mut events = self.events.lock();
        // Bound memory under a flood of distinct keys: forget windows that have fully passed.
        if events.len() > 100_000 {
            events.retain(|_, (window, times)| times.back().is_some_and(|t| now - *t < *window));
        }
        for limit in limits {
            let (kept_window, times) = events.entry(limit.key.clone()).or_default();
            *kept_window = window;
            prune(times, now, window);
            times.push_back(now);
            // Only the newest `max` matter for `check`.
            while times.len() > limit.max {
                times.pop_front();
            }
        }
    }
}

#[async_trait]
impl Throttle for MemoryThrottle {
    async fn check(&self, limits: &[Limit], window: Duration) -> Result<Result<(), Duration>, ThrottleError> {
        Ok(self.check_now(limits, window))
    }

    async fn record(&self, limits: &[Limit], window: Duration) -> Result<(), ThrottleError> {
        self.record_now(limits, window);
        Ok(())
    }

    async fn clear(&self, key: &str) -> Result<(), ThrottleError> {
        self.events.lock().remove(key);
        Ok(())
    }
}

fn prune(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while times.front().is_some_and(|t| now - *t >= window) {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(pairs: &[(&str, u32)]) -> Vec<Limit> {
        pairs.iter().map(|(key, max)| Limit::new(*key, *max)).collect()
    }

    const WINDOW: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn refuses_after_limit_until_window_passes() {
        let throttle = MemoryThrottle::default();
        let keys = limits(&[("pair:alice|1.2.3.4", 3), ("user:alice", 10)]);
        for _ in 0..3 {
            assert!(throttle.check_now(&keys, WINDOW).is_ok());
            throttle.record_now(&keys, WINDOW);
        }
        let wait = throttle.check_now(&keys, WINDOW).expect_err("over the limit");
        assert!(wait <= Duration::from_secs(60));
        // The same account from another address is not refused: its own limit is looser.
        assert!(throttle.check_now(&limits(&[("pair:alice|5.6.7.8", 3), ("user:alice", 10)]), WINDOW).is_ok());
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(throttle.check_now(&keys, WINDOW).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn each_key_has_its_own_limit() {
        let throttle = MemoryThrottle::default();
        for i in 0..5 {
            throttle.record_now(&limits(&[(&format!("pair:u{i}|a"), 3), ("addr:a", 5)]), WINDOW);
        }
        assert!(throttle.check_now(&limits(&[("pair:u9|a", 3)]), WINDOW).is_ok());
        assert!(throttle.check_now(&limits(&[("pair:u9|a", 3), ("addr:a", 5)]), WINDOW).is_err());
        assert!(throttle.check_now(&limits(&[("addr:a", 6)]), WINDOW).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn clear_forgets_one_key() {
        let throttle = MemoryThrottle::default();
        let keys = limits(&[("pair:alice|a", 2), ("addr:a", 2)]);
        throttle.record_now(&keys, WINDOW);
        throttle.record_now(&keys, WINDOW);
        throttle.clear("pair:alice|a").await.expect("clear");
        assert!(throttle.check_now(&keys[..1], WINDOW).is_ok());
        assert!(throttle.check_now(&keys[1..], WINDOW).is_err());
    }
}
