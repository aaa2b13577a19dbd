//! What a node says about itself, and what discovery hands to consumers.

use serde::{Deserialize, Serialize};

/// A natter node as discovery knows it. Under etcd this is the JSON value of
/// `<prefix>/nodes/<id>`; the static and DNS backends build it from config and addresses.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Node {
    /// Unique per running node (the etcd key's last segment; `ip:port` for DNS and by default
    /// for static entries).
    pub id: String,
    /// The roles it serves, e.g. `["gateway", "chat", "worker"]`.
    pub roles: Vec<String>,
    /// Where its gRPC services listen, `host:port`.
    pub grpc_addr: String,
    /// Where its HTTP API listens, `host:port`, when known (DNS cannot tell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_addr: Option<String>,
}

impl Node {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// The nodes of `nodes` that serve `role`, in the list's order (sorted by id).
pub fn nodes_with_role<'a>(nodes: &'a [Node], role: &'a str) -> impl Iterator<Item = &'a Node> {
    nodes.iter().filter(move |node| node.has_role(role))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, roles: &[&str]) -> Node {
        Node {
            id: id.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            grpc_addr: format!("{id}:50051"),
            http_addr: None,
        }
    }

    #[test]
    fn picks_nodes_by_role() {
        let nodes = [node("a", &["gateway"]), node("b", &["chat", "worker"]), node("c", &["chat"])];
        let chat: Vec<_> = nodes_with_role(&nodes, "chat").map(|n| n.id.as_str()).collect();
        assert_eq!(chat, ["b", "c"]);
        assert_eq!(nodes_with_role(&nodes, "search").count(), 0);
    }

    #[test]
    fn json_round_trip_omits_unknown_http_addr() {
        let n = node("a", &["chat"]);
        let json = serde_json::to_string(&n).expect("encode");
        assert!(!json.contains("http_addr"), "{json}");
        assert_eq!(serde_json::from_str::<Node>(&json).expect("decode"), n);
    }
}
