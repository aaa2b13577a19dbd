//! The login throttle on Redis: one sorted set per key (`<prefix>:throttle:<key>`), events
//! scored by Redis's clock in ms, trimmed to the window and to the newest `limit` events, expiring
//! with the window. Check and record are one script each, so nodes count into one window.

use std::time::Duration;

use async_trait::async_trait;
use natter_core::service::throttle::{Limit, Throttle, ThrottleError};
use redis::Script;

use crate::Redis;

pub struct RedisThrottle {
    redis: Redis,
    check: Script,
    record: Script,
}

impl RedisThrottle {
    pub fn new(redis: Redis) -> Self {
        Self {
            redis,
            check: Script::new(include_str!("lua/throttle_check.lua")),
            record: Script::new(include_str!("lua/throttle_record.lua")),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}:throttle:{key}", self.redis.prefix)
    }
}

fn millis(window: Duration) -> u64 {
    u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn unavailable(error: redis::RedisError) -> ThrottleError {
    ThrottleError(error.to_string())
}

#[async_trait]
impl Throttle for RedisThrottle {
    async fn check(&self, limits: &[Limit], window: Duration) -> Result<Result<(), Duration>, ThrottleError> {
        if limits.is_empty() {
            return Ok(Ok(()));
        }
        let mut invocation = self.check.arg(millis(window));
        for limit in limits {
            invocation.key(self.key(&limit.key)).arg(limit.max);
        }
        let mut connection = self.redis.connection.clone();
        let wait_ms: i64 = invocation.invoke_async(&mut connection).await.map_err(unavailable)?;
        if wait_ms <= 0 {
            return Ok(Ok(()));
        }
        let wait = Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0));
        Ok(Err(wait.max(Duration::from_secs(1))))
    }

    async fn record(&self, limits: &[Limit], window: Duration) -> Result<(), ThrottleError> {
        if limits.is_empty() {
            return Ok(());
        }
        let event: u64 = rand::random();
        let mut invocation = self.record.arg(millis(window));
        invocation.arg(event);
        for limit in limits {
            invocation.key(self.key(&limit.key)).arg(limit.max);
        }
        let mut connection = self.redis.connection.clone();
        let _: i64 = invocation.invoke_async(&mut connection).await.map_err(unavailable)?;
        Ok(())
    }

    async fn clear(&self, key: &str) -> Result<(), ThrottleError> {
        let mut connection = self.redis.connection.clone();
        let _: i64 = redis::cmd("DEL").arg(self.key(key)).query_async(&mut connection).await.map_err(unavailable)?;
        Ok(())
    }
}
