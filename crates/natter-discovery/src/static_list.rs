//! A fixed node list from config.

use crate::Node;
use crate::config::StaticConfig;

/// The configured nodes, sorted by id.
pub(crate) fn static_nodes(config: &StaticConfig) -> Vec<Node> {
    let mut nodes: Vec<Node> = config
        .nodes
        .iter()
        .map(|entry| Node {
            id: entry.id.clone().unwrap_or_else(|| entry.grpc_addr.clone()),
            roles: entry.roles.clone(),
            grpc_addr: entry.grpc_addr.clone(),
            http_addr: entry.http_addr.clone(),
        })
        .collect();
    nodes.sort();
    nodes
}
