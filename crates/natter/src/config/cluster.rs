//! The `[cluster]` section: which roles this process runs, and how a gateway reaches chat nodes.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The roles a process runs (any subset; `all` is the single process with in-process calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// HTTP API, WebSocket, web client; holds sockets; no database.
    pub gateway: bool,
    /// Accounts, friends, conversations, messages, files, search queries; owns the database and
    /// serves the other roles over gRPC.
    pub chat: bool,
    /// Background work: the search indexer, transcriptions.
    pub worker: bool,
}

impl Roles {
    pub const ALL: Roles = Roles { gateway: true, chat: true, worker: true };

    pub fn is_all(self) -> bool {
        self == Self::ALL
    }

    /// The role names, in a fixed order.
    pub fn names(self) -> Vec<&'static str> {
        [(self.gateway, "gateway"), (self.chat, "chat"), (self.worker, "worker")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect()
    }
}

impl Default for Roles {
    fn default() -> Self {
        Self::ALL
    }
}

impl FromStr for Roles {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut roles = Roles { gateway: false, chat: false, worker: false };
        for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name {
                "all" => roles = Self::ALL,
                "gateway" => roles.gateway = true,
                "chat" => roles.chat = true,
                "worker" => roles.worker = true,
                other => return Err(format!("unknown role `{other}` (roles: all, gateway, chat, worker)")),
            }
        }
        if roles.names().is_empty() {
            return Err("no role given (roles: all, gateway, chat, worker)".into());
        }
        Ok(roles)
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() { f.write_str("all") } else { f.write_str(&self.names().join(",")) }
    }
}

impl Serialize for Roles {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Roles {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Spelled {
            List(Vec<String>),
            Csv(String),
        }
        let text = match Spelled::deserialize(deserializer)? {
            Spelled::List(list) => list.join(","),
            Spelled::Csv(csv) => csv,
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// `all`, or a comma-separated subset of `gateway`, `chat`, `worker` (also `--roles` and
    /// `NATTER_ROLES`).
    pub roles: Roles,
    /// Where the chat role's gRPC server listens, in a split deployment (roles other than `all`).
    pub grpc_listen: SocketAddr,
    /// The address other nodes reach this node's gRPC at. Empty: `grpc_listen` as bound.
    pub grpc_advertise: String,
    /// Chat nodes (`host:port` of their gRPC) a gateway without the chat role calls, when
    /// `[discovery]` is `none`; with a discovery backend the gateway follows its chat nodes.
    #[serde(deserialize_with = "super::list_or_csv")]
    pub chat_nodes: Vec<String>,
    /// Deadline of one call from a gateway to a chat node, in seconds.
    pub rpc_timeout_secs: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            roles: Roles::ALL,
            grpc_listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            grpc_advertise: String::new(),
            chat_nodes: Vec::new(),
            rpc_timeout_secs: 30,
        }
    }
}

impl ClusterConfig {
    /// Whether this process serves the chat services over gRPC: a chat node of a split
    /// deployment. The single process (`all`) calls them in-process and opens no port.
    pub fn serves_grpc(&self) -> bool {
        self.roles.chat && !self.roles.is_all()
    }
}

pub(crate) const EXAMPLE: &str = r#"
[cluster]
# The roles this process runs: "all" (one process, in-process calls), or a comma-separated subset
# of "gateway" (HTTP, WebSocket, web client; no database), "chat" (the services and the database,
# served to gateways over gRPC) and "worker" (search indexing, transcriptions). Also --roles and
# NATTER_ROLES.
roles = "all"
# Where a chat node of a split deployment serves gRPC.
grpc_listen = "127.0.0.1:7070"
# The address other nodes reach this node's gRPC at. Empty: grpc_listen as bound.
grpc_advertise = ""
# The chat nodes (host:port of their gRPC) a gateway without the chat role calls, when
# [discovery] is "none"; with a discovery backend the gateway follows the chat nodes it lists.
chat_nodes = []
# Deadline of one gateway -> chat call, in seconds.
rpc_timeout_secs = 30

[discovery]
# How nodes find each other: "none" (one process, or gateways with cluster.chat_nodes),
# "etcd" (endpoints, prefix, lease_ttl_secs), "static" (nodes) or "dns" (name, port); see
# docs/CONFIG.md.
backend = "none"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_print() {
        assert_eq!("all".parse::<Roles>(), Ok(Roles::ALL));
        assert_eq!("gateway,chat,worker".parse::<Roles>(), Ok(Roles::ALL));
        let gateway: Roles = " gateway ".parse().expect("one role");
        assert_eq!(gateway, Roles { gateway: true, chat: false, worker: false });
        assert_eq!(gateway.to_string(), "gateway");
        assert_eq!("chat,worker".parse::<Roles>().map(|r| r.to_string()), Ok("chat,worker".into()));
        assert!("gateway,mailer".parse::<Roles>().expect_err("no mailer role").contains("mailer"));
        assert!("".parse::<Roles>().is_err());
    }
}
