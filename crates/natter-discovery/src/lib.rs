//! How natter nodes find each other.
//!
//! A [`Discovery`] gives a [`tokio::sync::watch::Receiver`] of the live [`Node`]s (id, roles,
//! gRPC and HTTP addresses), sorted by id; consumers such as the gateway's gRPC client pick the
//! nodes with a role from it ([`nodes_with_role`]). Backends, chosen by [`DiscoveryConfig`]:
//!
//! * **etcd** — each node puts `<prefix>/nodes/<id>` under a lease (3 s by default) renewed
//!   every third of it; a graceful [`Discovery::stop`] revokes the lease, so the key vanishes at
//!   once; a crashed node's key expires with its lease. The list is a range plus a watch from
//!   the revision after it. Both survive etcd going away and coming back; a node etcd drops
//!   while it does not answer (etcd on its way down expires every lease) stays listed until
//!   etcd answers again and one lease TTL more (`etcd/nodes.rs` says why). etcd is reached over
//!   its v3 JSON gateway by a small hand-written client ([`etcd::EtcdClient`] says why).
//! * **static** — a list from config; **dns** — every address a name resolves to, resolved
//!   again periodically (a Kubernetes headless Service); **none** — only this node.
//!
//! Owns: node registration and the node list. Depends on no natter crate and must not: it
//! knows nothing of services or gRPC, only addresses and role names.

mod config;
mod dns;
mod error;
pub mod etcd;
mod node;
mod static_list;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{DiscoveryConfig, DnsConfig, EtcdConfig, StaticConfig, StaticNode};
pub use error::{DiscoveryError, EtcdError};
pub use node::{Node, nodes_with_role};

use etcd::{EtcdClient, NodeFollower, Registration};

/// A running discovery: the node list, and this node's registration where the backend has one.
///
/// Dropping it stops following and stops renewing without deregistering (the key expires with
/// its lease, as after a crash); [`stop`](Self::stop) is the graceful way out.
#[derive(Debug)]
pub struct Discovery {
    nodes: watch::Receiver<Vec<Node>>,
    registration: Option<Registration>,
    follower: Option<AbortOnDrop>,
    /// Held for the fixed lists, so that `changed()` waits forever instead of failing at once.
    fixed: Option<watch::Sender<Vec<Node>>>,
}

impl Discovery {
    /// Starts the configured backend for `this_node`. Only a bad config fails: an unreachable
    /// etcd is retried in the background (the list stays empty and [`Registration::state`]
    /// says unregistered until it answers), and so is a name that does not resolve yet.
    pub async fn start(config: &DiscoveryConfig, this_node: Node) -> Result<Self, DiscoveryError> {
        config.validate()?;
        match config {
            DiscoveryConfig::None => Ok(Self::fixed(vec![this_node])),
            DiscoveryConfig::Static(list) => Ok(Self::fixed(static_list::static_nodes(list))),
            DiscoveryConfig::Dns(dns) => {
                let initial = match dns::resolve_nodes(dns).await {
                    Ok(nodes) => nodes,
                    Err(error) => {
                        tracing::warn!(name = %dns.name, %error, "DNS discovery: cannot resolve yet; retrying");
                        Vec::new()
                    }
                };
                let (sender, nodes) = watch::channel(initial);
                let follower = AbortOnDrop(tokio::spawn(dns::follow_dns(dns.clone(), sender)));
                Ok(Discovery { nodes, registration: None, follower: Some(follower), fixed: None })
            }
            DiscoveryConfig::Etcd(etcd) => {
                if this_node.id.is_empty() || this_node.id.contains('/') {
                    return Err(DiscoveryError::Config(format!(
                        "etcd: node id {:?} must be one non-empty key segment (no '/')",
                        this_node.id
                    )));
                }
                let client = EtcdClient::new(&etcd.endpoints)?;
                let prefix = etcd.normalized_prefix();
                let value = serde_json::to_vec(&this_node).map_err(DiscoveryError::Encode)?;
                let key = etcd::node_key(prefix, &this_node.id);
                let registration = Registration::start(client.clone(), key, value, etcd.lease_ttl());
                let (sender, nodes) = watch::channel(Vec::new());
                let follower = NodeFollower {
                    client,
                    nodes_prefix: etcd::nodes_prefix(prefix),
                    nodes: sender,
                    grace: etcd.lease_ttl(),
                };
                let follower = AbortOnDrop(tokio::spawn(follower.run()));
                Ok(Discovery { nodes, registration: Some(registration), follower: Some(follower), fixed: None })
            }
        }
    }

    fn fixed(nodes: Vec<Node>) -> Self {
        let (sender, nodes) = watch::channel(nodes);
        Discovery { nodes, registration: None, follower: None, fixed: Some(sender) }
    }

    /// The live nodes, sorted by id; `changed()` wakes on every change.
    pub fn nodes(&self) -> watch::Receiver<Vec<Node>> {
        self.nodes.clone()
    }

    /// The live nodes serving `role`, now.
    pub fn nodes_with_role(&self, role: &str) -> Vec<Node> {
        nodes_with_role(&self.nodes.borrow(), role).cloned().collect()
    }

    /// This node's etcd registration (none for the other backends).
    pub fn registration(&self) -> Option<&Registration> {
        self.registration.as_ref()
    }

    /// Graceful stop: deregisters (the key vanishes at once) and stops following.
    pub async fn stop(mut self) {
        if let Some(registration) = self.registration.take() {
            registration.stop().await;
        }
        self.follower.take();
        self.fixed.take();
    }
}

#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
