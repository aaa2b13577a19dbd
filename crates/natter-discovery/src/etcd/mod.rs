//! Discovery through etcd: [`Registration`] keeps this node's key alive, `nodes.rs` follows the
//! others, [`EtcdClient`] is the small JSON-gateway client both use.

mod client;
mod nodes;
mod registration;
mod watch;
mod wire;

pub use client::{EtcdClient, LeaseId};
pub use registration::{Registration, RegistrationState};
pub use watch::{WatchEvent, WatchStream, WatchUpdate};
pub use wire::KeyValue;

pub(crate) use nodes::NodeFollower;

/// `<prefix>/nodes/`, under which every node's key lives.
pub fn nodes_prefix(prefix: &str) -> String {
    format!("{}/nodes/", prefix.trim_end_matches('/'))
}

/// The key of node `id`.
pub fn node_key(prefix: &str, id: &str) -> String {
    format!("{}{id}", nodes_prefix(prefix))
}
