//! Slows down password guessing: failed logins are counted per account and per client address in
//! a sliding window; past the limit, attempts are refused until the oldest failure ages out.
//! Hand-written because governor limits every attempt, while only failures should count here.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

#[derive(Debug)]
pub struct LoginThrottle {
    max_failures: usize,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginThrottle {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self { max_failures: max_failures.max(1) as usize, window, failures: Mutex::default() }
    }

    /// `Err(retry_after)` when any of `keys` is over the limit.
    pub fn check(&self, keys: &[String]) -> Result<(), Duration> {
        let now = Instant::now();
        let mut failures = self.failures.lock();
        let mut wait = Duration::ZERO;
        for key in keys {
            if let Some(times) = failures.get_mut(key) {
                prune(times, now, self.window);
                if times.len() >= self.max_failures
                    && let Some(oldest) = times.front()
                {
                    wait = wait.max(self.window.saturating_sub(now - *oldest));
                }
            }
        }
        if wait.is_zero() { Ok(()) } else { Err(wait.max(Duration::from_secs(1))) }
    }

    pub fn record_failure(&self, keys: &[String]) {
        let now = Instant::now();
        let mut failures = self.failures.lock();
        // Bound memory under a flood of distinct keys: forget windows that have fully passed.
        if failures.len() > 100_000 {
            failures.retain(|_, times| times.back().is_some_and(|t| now - *t < self.window));
        }
        for key in keys {
            let times = failures.entry(key.clone()).or_default();
            prune(times, now, self.window);
            times.push_back(now);
        }
    }

    pub fn record_success(&self, account_key: &str) {
        self.failures.lock().remove(account_key);
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

    #[tokio::test(start_paused = true)]
    async fn refuses_after_limit_until_window_passes() {
        let throttle = LoginThrottle::new(3, Duration::from_secs(60));
        let keys = vec!["user:alice".to_owned(), "addr:1.2.3.4".to_owned()];
        for _ in 0..3 {
            assert!(throttle.check(&keys).is_ok());
            throttle.record_failure(&keys);
        }
        let wait = throttle.check(&keys).expect_err("over the limit");
        assert!(wait <= Duration::from_secs(60));
        // Another account from the same address is refused too.
        assert!(throttle.check(&["user:bob".to_owned(), "addr:1.2.3.4".to_owned()]).is_err());
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(throttle.check(&keys).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn success_clears_the_account_but_not_the_address() {
        let throttle = LoginThrottle::new(2, Duration::from_secs(60));
        let keys = vec!["user:alice".to_owned(), "addr:a".to_owned()];
        throttle.record_failure(&keys);
        throttle.record_failure(&keys);
        throttle.record_success("user:alice");
        assert!(throttle.check(&["user:alice".to_owned()]).is_ok());
        assert!(throttle.check(&["addr:a".to_owned()]).is_err());
    }
}
