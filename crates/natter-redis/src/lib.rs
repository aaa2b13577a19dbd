//! natter's adapters on Redis, for a cluster: the route table (which gateway node holds which
//! device of which user: presence and targeted delivery) and the login throttle, both shared by
//! every node.
//!
//! Every operation is one Lua script, so it is atomic: two nodes racing to connect a user's
//! first devices still see exactly one "came online"; of several nodes sweeping a dead gateway,
//! exactly one claims it. Scripts read Redis's own clock (`TIME`), so nodes need not agree on
//! the time. Keys are `<prefix>:…`, so several clusters (or test runs) can share one Redis.
//! Scripts build some keys themselves: a single Redis (or a primary with replicas), not Redis
//! Cluster.
//!
//! Architecture invariant: depends on `natter-core` (the ports) and nothing else of natter's.

mod routes;
mod throttle;

use std::time::Duration;

pub use redis::RedisError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
pub use routes::RedisRoutes;
pub use throttle::RedisThrottle;

/// A connection to Redis that reconnects by itself. Fails if Redis cannot be reached now, so a
/// misconfigured node does not start.
#[derive(Clone)]
pub struct Redis {
    connection: ConnectionManager,
    prefix: String,
}

impl Redis {
    /// `url`: `redis://host:port[/db]`. `prefix`: the first part of every key.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            // Delivery waits for a route lookup: a stalled Redis must not stall pushes for long
            // (a failed lookup falls back to broadcast).
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2);
        let connection = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self { connection, prefix: prefix.to_owned() })
    }

    /// The first part of every key.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether Redis answers a PING.
    pub async fn healthy(&self) -> bool {
        let mut connection = self.connection.clone();
        redis::cmd("PING").query_async::<String>(&mut connection).await.is_ok()
    }
}
