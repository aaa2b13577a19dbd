//! DNS discovery: every address a name resolves to is a node (a Kubernetes headless Service
//! answers with one A/AAAA record per ready pod). Resolved through the system resolver
//! (`getaddrinfo`, as `tokio::net::lookup_host` does), so `/etc/hosts` and search domains apply.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::watch;

use crate::Node;
use crate::config::DnsConfig;

/// Resolves `config.name` once: one node per distinct address, sorted by id (`ip:port`).
pub(crate) async fn resolve_nodes(config: &DnsConfig) -> std::io::Result<Vec<Node>> {
    let addresses: BTreeSet<SocketAddr> = tokio::net::lookup_host((config.name.as_str(), config.port)).await?.collect();
    let mut nodes: Vec<Node> = addresses
        .into_iter()
        .map(|address| Node {
            id: address.to_string(),
            roles: config.roles.clone(),
            grpc_addr: address.to_string(),
            http_addr: None,
        })
        .collect();
    nodes.sort();
    Ok(nodes)
}

/// Resolves again every `refresh_secs` until every receiver is gone. A failed lookup keeps the
/// last list (a resolver hiccup must not empty it); an answer with no address empties it.
pub(crate) async fn follow_dns(config: DnsConfig, nodes: watch::Sender<Vec<Node>>) {
    let interval = Duration::from_secs(config.refresh_secs);
    let mut failing = false;
    loop {
        tokio::select! {
            () = nodes.closed() => return,
            () = tokio::time::sleep(interval) => {}
        }
        match resolve_nodes(&config).await {
            Ok(resolved) => {
                failing = false;
                nodes.send_if_modified(|current| {
                    let changed = *current != resolved;
                    if changed {
                        tracing::info!(name = %config.name, nodes = resolved.len(), "DNS discovery: the node list changed");
                        *current = resolved;
                    }
                    changed
                });
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(name = %config.name, %error, "DNS discovery: cannot resolve; keeping the last list");
                }
                failing = true;
            }
        }
    }
}
