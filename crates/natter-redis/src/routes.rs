//! The route table on Redis.
//!
//! ```text
//! <prefix>:routes:<user>   hash  "<node>|<device>" → expiry (ms, Redis clock); the key expires
//!                                with its longest route, so a user of dead nodes leaves nothing
//! <prefix>:node:<node>     set   users with a route on the node (what a sweep must look at)
//! <prefix>:nodes           set   nodes known alive
//! <prefix>:alive:<node>    string, expires one TTL after the node's last refresh (its heartbeat)
//! <prefix>:published:<conversation>
//!                          string "<seq>|<ms>|<node>,<node>…": the highest entry published,
//!                          when (Redis clock) and the nodes it went to; expires after a day
//! <prefix>:fanout:<conversation>:<seq>
//!                          string: a fan-out worker's claim on an entry, "<state>|<nodes>" (the
//!                          answer its first run got) until a run published it, then
//!                          "published"; expires after ten minutes
//! ```
//!
//! A route counts as live until its expiry, whether or not anything removed it yet; writes prune
//! expired routes of the hash they touch.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use natter_core::bus::LogPosition;
use natter_core::ids::UserId;
use natter_core::presence::{EntryRecord, EntryRoutes, NodeId, PredecessorRoutes, PresenceError, Route, RouteTable};
use redis::Script;

use crate::Redis;

const COMMON: &str = include_str!("lua/common.lua");
/// How long the record of where a conversation's last entry went is kept: a day. An entry that
/// finds no record is told its predecessor is still to come (its lookup runs behind this one's),
/// so the record must outlive any pause in a conversation that is not to cost its next entry the
/// gateways' wait (a second, and only on a gateway that has forgotten the conversation). One
/// short string per conversation with an entry in the last day.
const PUBLISHED_RECORD_MS: u64 = 86_400_000;
/// How long a fan-out worker's claim on an entry lives: beyond the redeliveries of its job (ack
/// wait × deliveries: 2.5 min by default).
const FANOUT_CLAIM_MS: u64 = 600_000;
/// Routes per refresh script: one call stays short however many sockets a node holds.
const REFRESH_CHUNK: usize = 500;

struct Scripts {
    connect: Script,
    disconnect: Script,
    refresh: Script,
    online: Script,
    nodes_of: Script,
    nodes_of_entry: Script,
    record_entry: Script,
    sweep: Script,
}

impl Scripts {
    fn new() -> Self {
        let script = |body: &str| Script::new(&format!("{COMMON}\n{body}"));
        Self {
            connect: script(include_str!("lua/connect.lua")),
            disconnect: script(include_str!("lua/disconnect.lua")),
            refresh: script(include_str!("lua/refresh.lua")),
            online: script(include_str!("lua/online.lua")),
            nodes_of: script(include_str!("lua/nodes_of.lua")),
            nodes_of_entry: script(include_str!("lua/nodes_of_entry.lua")),
            record_entry: script(include_str!("lua/record_entry.lua")),
            sweep: script(include_str!("lua/sweep.lua")),
        }
    }
}

/// The shared route table. `ttl`: how long a route and a node's heartbeat live without a refresh.
pub struct RedisRoutes {
    redis: Redis,
    ttl_ms: u64,
    scripts: Scripts,
}

impl RedisRoutes {
    pub fn new(redis: Redis, ttl: Duration) -> Self {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        Self { redis, ttl_ms, scripts: Scripts::new() }
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}:{kind}:{id}", self.redis.prefix)
    }

    fn nodes_key(&self) -> String {
        format!("{}:nodes", self.redis.prefix)
    }
}

/// Groups the (user position, node) pairs a lookup script returns by node.
fn by_node(users: &[UserId], pairs: &[redis::Value]) -> Result<Vec<(NodeId, Vec<UserId>)>, PresenceError> {
    let mut by_node: HashMap<String, Vec<UserId>> = HashMap::new();
    for pair in pairs.chunks_exact(2) {
        let (redis::Value::Int(position), redis::Value::BulkString(node)) = (&pair[0], &pair[1]) else {
            return Err(PresenceError::Unavailable("unexpected reply from the route lookup".into()));
        };
        let Some(user) = usize::try_from(*position).ok().and_then(|p| p.checked_sub(1)).and_then(|p| users.get(p))
        else {
            continue;
        };
        by_node.entry(String::from_utf8_lossy(node).into_owned()).or_default().push(user.clone());
    }
    // A node id that is not valid was not written by natter: skip it rather than publish to it.
    Ok(by_node.into_iter().filter_map(|(node, users)| Some((NodeId::parse(&node)?, users))).collect())
}

/// The predecessor's state as the scripts answer it (see `record_published` in common.lua).
fn predecessor(state: i64, nodes: &[u8]) -> PredecessorRoutes {
    match state {
        1 => PredecessorRoutes::Pending,
        2 => PredecessorRoutes::SentTo(String::from_utf8_lossy(nodes).split(',').filter_map(NodeId::parse).collect()),
        3 => PredecessorRoutes::Late,
        5 => PredecessorRoutes::LongAgo,
        _ => PredecessorRoutes::Unknown,
    }
}

/// `<prefix>:fanout:<conversation>:<seq>`.
fn claim_key(routes: &RedisRoutes, position: &LogPosition) -> String {
    routes.key("fanout", &format!("{}:{}", position.conversation, position.seq))
}

fn field(route: &Route) -> String {
    format!("{}|{}", route.node, route.device)
}

fn unavailable(error: redis::RedisError) -> PresenceError {
    PresenceError::Unavailable(error.to_string())
}

#[async_trait]
impl RouteTable for RedisRoutes {
    async fn connect(&self, route: &Route) -> Result<bool, PresenceError> {
        let mut connection = self.redis.connection.clone();
        let first: i64 = self
            .scripts
            .connect
            .key(self.key("routes", &route.user.0))
            .key(self.key("node", route.node.as_str()))
            .key(self.nodes_key())
            .key(self.key("alive", route.node.as_str()))
            .arg(&route.user.0)
            .arg(field(route))
            .arg(self.ttl_ms)
            .arg(route.node.as_str())
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(first == 1)
    }

    async fn disconnect(&self, route: &Route) -> Result<bool, PresenceError> {
        let mut connection = self.redis.connection.clone();
        let last: i64 = self
            .scripts
            .disconnect
            .key(self.key("routes", &route.user.0))
            .key(self.key("node", route.node.as_str()))
            .arg(&route.user.0)
            .arg(field(route))
            .arg(route.node.as_str())
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(last == 1)
    }

    async fn refresh(&self, node: &NodeId, routes: &[Route]) -> Result<Vec<UserId>, PresenceError> {
        let mut back = Vec::new();
        // An empty node still beats its heartbeat: one call with no routes.
        let chunks: Vec<&[Route]> = if routes.is_empty() { vec![&[]] } else { routes.chunks(REFRESH_CHUNK).collect() };
        for chunk in chunks {
            let mut connection = self.redis.connection.clone();
            let mut invocation = self.scripts.refresh.key(self.nodes_key());
            invocation
                .key(self.key("alive", node.as_str()))
                .key(self.key("node", node.as_str()))
                .arg(&self.redis.prefix)
                .arg(node.as_str())
                .arg(self.ttl_ms);
            for route in chunk {
                invocation.arg(&route.user.0).arg(field(route));
            }
            let users: Vec<String> = invocation.invoke_async(&mut connection).await.map_err(unavailable)?;
            back.extend(users.into_iter().map(UserId));
        }
        back.sort();
        back.dedup();
        Ok(back)
    }

    async fn online(&self, users: &[UserId]) -> Result<Vec<bool>, PresenceError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut connection = self.redis.connection.clone();
        let mut invocation = self.scripts.online.arg(&self.redis.prefix);
        for user in users {
            invocation.arg(&user.0);
        }
        let flags: Vec<i64> = invocation.invoke_async(&mut connection).await.map_err(unavailable)?;
        Ok(flags.into_iter().map(|flag| flag == 1).collect())
    }

    async fn nodes_of(&self, users: &[UserId]) -> Result<Vec<(NodeId, Vec<UserId>)>, PresenceError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut connection = self.redis.connection.clone();
        let mut invocation = self.scripts.nodes_of.arg(&self.redis.prefix);
        for user in users {
            invocation.arg(&user.0);
        }
        let pairs: Vec<redis::Value> = invocation.invoke_async(&mut connection).await.map_err(unavailable)?;
        by_node(users, &pairs)
    }

    async fn nodes_of_entry(&self, users: &[UserId], position: &LogPosition) -> Result<EntryRoutes, PresenceError> {
        if users.is_empty() {
            return Ok(EntryRoutes { nodes: Vec::new(), predecessor: PredecessorRoutes::Unknown });
        }
        let mut connection = self.redis.connection.clone();
        let mut invocation = self.scripts.nodes_of_entry.key(self.key("published", position.conversation.as_str()));
        invocation.arg(&self.redis.prefix).arg(position.seq.get()).arg(PUBLISHED_RECORD_MS);
        for user in users {
            invocation.arg(&user.0);
        }
        let reply: Vec<redis::Value> = invocation.invoke_async(&mut connection).await.map_err(unavailable)?;
        let (Some(redis::Value::Int(state)), Some(redis::Value::BulkString(list))) = (reply.first(), reply.get(1))
        else {
            return Err(PresenceError::Unavailable("unexpected reply from the route lookup".into()));
        };
        Ok(EntryRoutes { nodes: by_node(users, &reply[2..])?, predecessor: predecessor(*state, list) })
    }

    async fn record_entry(&self, position: &LogPosition, nodes: &[NodeId]) -> Result<EntryRecord, PresenceError> {
        let mut connection = self.redis.connection.clone();
        let mut invocation = self.scripts.record_entry.key(self.key("published", position.conversation.as_str()));
        invocation.key(claim_key(self, position)).arg(position.seq.get()).arg(PUBLISHED_RECORD_MS).arg(FANOUT_CLAIM_MS);
        for node in nodes {
            invocation.arg(node.as_str());
        }
        let (state, list): (i64, Vec<u8>) = invocation.invoke_async(&mut connection).await.map_err(unavailable)?;
        Ok(match state {
            4 => EntryRecord::Published,
            state => EntryRecord::Publish(predecessor(state, &list)),
        })
    }

    async fn entry_published(&self, position: &LogPosition) -> Result<(), PresenceError> {
        let mut connection = self.redis.connection.clone();
        redis::cmd("SET")
            .arg(claim_key(self, position))
            .arg("published")
            .arg("PX")
            .arg(FANOUT_CLAIM_MS)
            .query_async::<()>(&mut connection)
            .await
            .map_err(unavailable)
    }

    async fn sweep(&self) -> Result<Vec<UserId>, PresenceError> {
        let mut connection = self.redis.connection.clone();
        let gone: Vec<String> = self
            .scripts
            .sweep
            .key(self.nodes_key())
            .arg(&self.redis.prefix)
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(gone.into_iter().map(UserId).collect())
    }
}
