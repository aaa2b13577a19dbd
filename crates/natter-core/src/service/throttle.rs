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

    /// Counts one event for `limit`'s key unless it has reached its limit within `window`
    /// (then `Ok(Err(retry_after))`, nothing counted): a rate limit. This default checks, then
    /// records; two callers at the same moment may both pass the last free slot.
    async fn take(&self, limit: &Limit, window: Duration) -> Result<Result<(), Duration>, ThrottleError> {
        let limits = std::slice::from_ref(limit);
        if let Err(retry_after) = self.check(limits, window).await? {
            return Ok(Err(retry_after));
        }
        self.record(limits, window).await.map(Ok)
    }
}

/// A rate limit: at most `max` events per `window` for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub max: u32,
    pub window: Duration,
}

impl RateLimit {
    /// `max` events per `window_secs`; `None` (no limit) when either is 0.
    pub fn per(max: u32, window_secs: u64) -> Option<Self> {
        (max > 0 && window_secs > 0).then(|| Self { max, window: Duration::from_secs(window_secs) })
    }
}

/// Takes one event of `key` under `limit` (none: no limit): `RateLimited` with `code` past it.
/// A throttle store that cannot be reached lets the event through, so that a Redis outage does
/// not stop the chat; that is logged, at most once a minute.
pub async fn admit(
    throttle: &dyn Throttle,
    key: String,
    limit: Option<RateLimit>,
    code: crate::error::ErrorCode,
) -> crate::error::DomainResult<()> {
    let Some(RateLimit { max, window }) = limit else { return Ok(()) };
    match throttle.take(&Limit::new(key, max), window).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(retry_after)) => Err(crate::error::DomainError::RateLimited { code, retry_after }),
        Err(error) => {
            static LAST_WARNED: Mutex<Option<Instant>> = Mutex::new(None);
            let mut last = LAST_WARNED.lock();
            if last.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                *last = Some(Instant::now());
                tracing::warn!(%error, %code, "rate-limit store unavailable; events are not limited");
            }
            Ok(())
        }
    }
}

/// The windows of one process.
#[derive(Debug, Default)]
pub struct MemoryThrottle {
    /// key → (its window, its newest events).
    events: Mutex<HashMap<String, (Duration, VecDeque<Instant>)>>,
    /// Held across a `take`'s check and count (each takes `events` on its own).
    taking: Mutex<()>,
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

    /// Atomic here: the check and the count happen under one lock.
    async fn take(&self, limit: &Limit, window: Duration) -> Result<Result<(), Duration>, ThrottleError> {
        let limits = std::slice::from_ref(limit);
        let _one_at_a_time = self.taking.lock();
        if let Err(retry_after) = self.check_now(limits, window) {
            return Ok(Err(retry_after));
        }
        self.record_now(limits, window);
        Ok(Ok(()))
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
    async fn take_counts_up_to_the_limit_then_refuses_until_the_window_moves() {
        let throttle = MemoryThrottle::default();
        let limit = Limit::new("send:ann", 3);
        let window = Duration::from_secs(10);
        for _ in 0..3 {
            assert!(throttle.take(&limit, window).await.expect("memory").is_ok());
        }
        let wait = throttle.take(&limit, window).await.expect("memory").expect_err("the fourth is refused");
        assert!(wait <= window, "{wait:?}");
        assert!(throttle.take(&Limit::new("send:ben", 3), window).await.expect("memory").is_ok(), "keys are apart");
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(throttle.take(&limit, window).await.expect("memory").is_ok());
    }

    #[tokio::test]
    async fn admit_maps_a_refusal_to_its_code_and_no_limit_to_yes() {
        use crate::error::{DomainError, ErrorCode};
        let throttle = MemoryThrottle::default();
        let limit = RateLimit::per(1, 60);
        admit(&throttle, "k".into(), limit, ErrorCode::TooManyMessages).await.expect("first");
        let refused = admit(&throttle, "k".into(), limit, ErrorCode::TooManyMessages).await;
        assert!(matches!(refused, Err(DomainError::RateLimited { code: ErrorCode::TooManyMessages, .. })));
        assert_eq!(RateLimit::per(0, 60), None);
        admit(&throttle, "k".into(), None, ErrorCode::TooManyMessages).await.expect("no limit");
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
