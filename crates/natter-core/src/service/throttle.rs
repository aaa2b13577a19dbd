//! Sliding-window counters per key: failed logins (per account and address, per account, per
//! address, each with its own limit) and registrations (per address). Past a key's limit,
//! attempts are refused until enough of its events age out.
//! Hand-written because governor limits every attempt, while only failures should count for
//! logins, and because one check here spans several keys with different limits.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

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

#[derive(Debug)]
pub struct LoginThrottle {
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginThrottle {
    pub fn new(window: Duration) -> Self {
        Self { window, failures: Mutex::default() }
    }

    /// `Err(retry_after)` when any key has reached its limit.
    pub fn check(&self, limits: &[Limit]) -> Result<(), Duration> {
        let now = Instant::now();
        let mut failures = self.failures.lock();
        let mut wait = Duration::ZERO;
        for limit in limits {
            if let Some(times) = failures.get_mut(&limit.key) {
                prune(times, now, self.window);
                if times.len() >= limit.max {
                    // The limit lifts when enough of the oldest events have aged out.
                    if let Some(oldest) = times.get(times.len() - limit.max) {
                        wait = wait.max(self.window.saturating_sub(now - *oldest));
                    }
                }
            }
        }
        if wait.is_zero() { Ok(()) } else { Err(wait.max(Duration::from_secs(1))) }
    }

    pub fn record(&self, limits: &[Limit]) {
        let now = Instant::now();
        let mut failures = self.failures.lock();
        // Bound memory under a flood of distinct keys: forget windows that have fully passed.
        if failures.len() > 100_000 {
            failures.retain(|_, times| times.back().is_some_and(|t| now - *t < self.window));
        }
        for limit in limits {
            let times = failures.entry(limit.key.clone()).or_default();
            prune(times, now, self.window);
            times.push_back(now);
            // Only the newest `max` matter for `check`.
            while times.len() > limit.max {
                times.pop_front();
            }
        }
    }

    pub fn clear(&self, key: &str) {
        self.failures.lock().remove(key);
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

    #[tokio::test(start_paused = true)]
    async fn refuses_after_limit_until_window_passes() {
        let throttle = LoginThrottle::new(Duration::from_secs(60));
        let keys = limits(&[("pair:alice|1.2.3.4", 3), ("user:alice", 10)]);
        for _ in 0..3 {
            assert!(throttle.check(&keys).is_ok());
            throttle.record(&keys);
        }
        let wait = throttle.check(&keys).expect_err("over the limit");
        assert!(wait <= Duration::from_secs(60));
        // The same account from another address is not refused: its own limit is looser.
        assert!(throttle.check(&limits(&[("pair:alice|5.6.7.8", 3), ("user:alice", 10)])).is_ok());
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(throttle.check(&keys).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn each_key_has_its_own_limit() {
        let throttle = LoginThrottle::new(Duration::from_secs(60));
        for i in 0..5 {
            throttle.record(&limits(&[(&format!("pair:u{i}|a"), 3), ("addr:a", 5)]));
        }
        assert!(throttle.check(&limits(&[("pair:u9|a", 3)])).is_ok());
        assert!(throttle.check(&limits(&[("pair:u9|a", 3), ("addr:a", 5)])).is_err());
        assert!(throttle.check(&limits(&[("addr:a", 6)])).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn clear_forgets_one_key() {
        let throttle = LoginThrottle::new(Duration::from_secs(60));
        let keys = limits(&[("pair:alice|a", 2), ("addr:a", 2)]);
        throttle.record(&keys);
        throttle.record(&keys);
        throttle.clear("pair:alice|a");
        assert!(throttle.check(&keys[..1]).is_ok());
        assert!(throttle.check(&keys[1..]).is_err());
    }
}
