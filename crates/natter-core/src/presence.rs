//! The route table port: which gateway node holds which device (one registered WebSocket) of
//! which user. A user is online while any of their devices has a route.
//!
//! Routes live as long as their node keeps refreshing them (a TTL in a shared store); a node that
//! dies stops refreshing, and the first node to find its heartbeat gone claims it and removes its
//! routes ([`RouteTable::sweep`]). Transitions (first route of a user, last route gone) are decided
//! by the table atomically, so two nodes racing still report exactly one.
//!
//! [`MemoryRoutes`] is the one-process table `natter serve` uses by default; natter-redis holds the
//! shared one. The service that announces transitions is `service::presence`.

use std::collections::HashMap;

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::bus::{LogPosition, Predecessor};
use crate::ids::UserId;

/// A gateway node's identity: a NATS subject token and a key part, so only `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(String);

impl NodeId {
    /// `None` unless `id` is 1–64 characters of `[A-Za-z0-9_-]`.
    pub fn parse(id: &str) -> Option<Self> {
        let valid =
            !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        valid.then(|| Self(id.to_owned()))
    }

    /// `<name>-<suffix>` with every character outside `[A-Za-z0-9_-]` of `name` made `-`.
    pub fn generate(name: &str, suffix: &str) -> Self {
        let clean = |s: &str| -> String {
            s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' }).take(40).collect()
        };
        let name = clean(name);
        let name = if name.is_empty() { "node".to_owned() } else { name };
        Self(format!("{name}-{}", clean(suffix)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One device of a user held by one node. `device` is unique per node (the gateway uses the
/// session id and the socket's registration number).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    pub user: UserId,
    pub node: NodeId,
    pub device: String,
}

/// Where an entry's event goes ([`RouteTable::nodes_of_entry`]), and where the conversation's
/// previous entry went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRoutes {
    pub nodes: Vec<(NodeId, Vec<UserId>)>,
    pub predecessor: PredecessorRoutes,
}

/// What the table recorded of the previous entry's publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PredecessorRoutes {
    /// Nothing to say: the table keeps no record, or this is the first entry.
    Unknown,
    /// Its routes were not looked up yet: its publisher is a moment behind this one's (or its
    /// record expired: a day without entries).
    Pending,
    /// Published long enough ago (seconds) to have reached every node it went to, or been lost.
    LongAgo,
    /// Published to these nodes.
    SentTo(Vec<NodeId>),
    /// A later entry was published already: this one is the late one.
    Late,
}

impl PredecessorRoutes {
    /// What a gateway `node` is told about the previous entry.
    pub fn for_node(&self, node: &NodeId) -> Predecessor {
        match self {
            Self::Unknown | Self::Late => Predecessor::Unknown,
            Self::Pending => Predecessor::Coming,
            Self::LongAgo => Predecessor::NotComing,
            Self::SentTo(nodes) if nodes.contains(node) => Predecessor::Coming,
            Self::SentTo(_) => Predecessor::NotComing,
        }
    }
}

/// What the table answers a fan-out worker recording where an entry goes
/// ([`RouteTable::record_entry`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryRecord {
    /// Publish it: where the conversation's previous entry went. A job delivered again gets the
    /// answer its first run got, until a run has published.
    Publish(PredecessorRoutes),
    /// A run of this entry's job has published it already ([`RouteTable::entry_published`]).
    Published,
}

#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    #[error("route table unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait RouteTable: Send + Sync + 'static {
    /// Adds a route; true when the user had no live route before (they just came online).
    async fn connect(&self, route: &Route) -> Result<bool, PresenceError>;

    /// Removes a route; true when it was the user's last live route (they just went offline).
    /// Removing a route that is not there (expired, swept) is no transition.
    async fn disconnect(&self, route: &Route) -> Result<bool, PresenceError>;

    /// Re-asserts `node`'s heartbeat and its `routes` (all of them) for another TTL. Returns the
    /// users who had no live route before (their routes had expired or been swept while this
    /// node stalled): they are online again.
    async fn refresh(&self, node: &NodeId, routes: &[Route]) -> Result<Vec<UserId>, PresenceError>;

    /// Whether each of `users` has a live route, in the same order.
    async fn online(&self, users: &[UserId]) -> Result<Vec<bool>, PresenceError>;

    /// The nodes holding a live route of any of `users`, each with those of `users` it holds.
    /// Users without a route appear nowhere.
    async fn nodes_of(&self, users: &[UserId]) -> Result<Vec<(NodeId, Vec<UserId>)>, PresenceError>;

    /// [`RouteTable::nodes_of`] for a log entry at `position`, recording where it goes and
    /// reporting where the conversation's previous entry went (so that a gateway knows whether
    /// a gap before this entry will fill). A table without such records reports `Unknown`.
    async fn nodes_of_entry(&self, users: &[UserId], _position: &LogPosition) -> Result<EntryRoutes, PresenceError> {
        Ok(EntryRoutes { nodes: self.nodes_of(users).await?, predecessor: PredecessorRoutes::Unknown })
    }

    /// The record half of [`RouteTable::nodes_of_entry`], for a fan-out worker that looked the
    /// recipients up itself (in batches, with [`RouteTable::nodes_of`]): records that the entry at
    /// `position` goes to `nodes` (all of them, the union of every batch) and reports where the
    /// conversation's previous entry went. Once per entry: a later run of the same job gets the
    /// first run's answer, or [`EntryRecord::Published`]. A table without records answers
    /// `Publish(Unknown)`.
    async fn record_entry(&self, _position: &LogPosition, _nodes: &[NodeId]) -> Result<EntryRecord, PresenceError> {
        Ok(EntryRecord::Publish(PredecessorRoutes::Unknown))
    }

    /// Marks the entry at `position` as published to every node [`RouteTable::record_entry`]
    /// recorded, so that a later run of its job publishes nothing.
    async fn entry_published(&self, _position: &LogPosition) -> Result<(), PresenceError> {
        Ok(())
    }

    /// Claims every node whose heartbeat has expired (exactly one caller wins each), removes its
    /// routes, and returns the users left with no live route: they went offline.
    async fn sweep(&self) -> Result<Vec<UserId>, PresenceError>;
}

/// The table of one process: no TTL, nothing to sweep (a process that dies takes its sockets and
/// its table with it). What `natter serve` uses without Redis.
#[derive(Debug, Default)]
pub struct MemoryRoutes {
    /// user → device → node.
    routes: Mutex<HashMap<UserId, HashMap<String, NodeId>>>,
}

#[async_trait]
impl RouteTable for MemoryRoutes {
    async fn connect(&self, route: &Route) -> Result<bool, PresenceError> {
        let mut routes = self.routes.lock();
        let devices = routes.entry(route.user.clone()).or_default();
        let first = devices.is_empty();
        devices.insert(route.device.clone(), route.node.clone());
        Ok(first)
    }

    async fn disconnect(&self, route: &Route) -> Result<bool, PresenceError> {
        let mut routes = self.routes.lock();
        let Some(devices) = routes.get_mut(&route.user) else { return Ok(false) };
        if devices.remove(&route.device).is_none() {
            return Ok(false);
        }
        if devices.is_empty() {
            routes.remove(&route.user);
            return Ok(true);
        }
        Ok(false)
    }

    async fn refresh(&self, _node: &NodeId, _routes: &[Route]) -> Result<Vec<UserId>, PresenceError> {
        Ok(Vec::new())
    }

    async fn online(&self, users: &[UserId]) -> Result<Vec<bool>, PresenceError> {
        let routes = self.routes.lock();
        Ok(users.iter().map(|user| routes.contains_key(user)).collect())
    }

    async fn nodes_of(&self, users: &[UserId]) -> Result<Vec<(NodeId, Vec<UserId>)>, PresenceError> {
        let routes = self.routes.lock();
        let mut by_node: HashMap<NodeId, Vec<UserId>> = HashMap::new();
        for user in users {
            let Some(devices) = routes.get(user) else { continue };
            let mut nodes: Vec<&NodeId> = devices.values().collect();
            nodes.sort();
            nodes.dedup();
            for node in nodes {
                by_node.entry(node.clone()).or_default().push(user.clone());
            }
        }
        Ok(by_node.into_iter().collect())
    }

    async fn sweep(&self) -> Result<Vec<UserId>, PresenceError> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(user: &str, node: &str, device: &str) -> Route {
        Route { user: UserId::from(user), node: NodeId::parse(node).expect("node id"), device: device.into() }
    }

    #[tokio::test]
    async fn online_until_last_device_goes() {
        let table = MemoryRoutes::default();
        let alice = UserId::from("alice");
        assert!(table.connect(&route("alice", "n1", "d1")).await.expect("connect"));
        assert!(!table.connect(&route("alice", "n2", "d2")).await.expect("connect"));
        assert!(!table.disconnect(&route("alice", "n1", "d1")).await.expect("disconnect"));
        assert_eq!(table.online(std::slice::from_ref(&alice)).await.expect("online"), vec![true]);
        assert!(table.disconnect(&route("alice", "n2", "d2")).await.expect("disconnect"));
        assert_eq!(table.online(&[alice]).await.expect("online"), vec![false]);
        assert!(!table.disconnect(&route("alice", "n2", "d2")).await.expect("a second disconnect"));
    }

    #[tokio::test]
    async fn nodes_of_groups_users_by_node() {
        let table = MemoryRoutes::default();
        for (user, node, device) in [("a", "n1", "1"), ("a", "n2", "2"), ("b", "n2", "3"), ("b", "n2", "4")] {
            table.connect(&route(user, node, device)).await.expect("connect");
        }
        let mut nodes =
            table.nodes_of(&[UserId::from("a"), UserId::from("b"), UserId::from("c")]).await.expect("nodes");
        nodes.sort();
        let n = |id: &str| NodeId::parse(id).expect("node id");
        assert_eq!(
            nodes,
            vec![(n("n1"), vec![UserId::from("a")]), (n("n2"), vec![UserId::from("a"), UserId::from("b")])]
        );
    }

    #[test]
    fn node_ids_are_subject_tokens() {
        assert!(NodeId::parse("gw-1_a").is_some());
        for bad in ["", "a.b", "a b", "a*", "a>", "a|b", &"x".repeat(65)] {
            assert!(NodeId::parse(bad).is_none(), "{bad:?}");
        }
        assert_eq!(NodeId::generate("host.example.com", "ab12").as_str(), "host-example-com-ab12");
        assert!(NodeId::parse(NodeId::generate("", "x").as_str()).is_some());
    }
}
