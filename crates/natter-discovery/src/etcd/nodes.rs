//! The live node list under `<prefix>/nodes/`: a range, then a watch from the revision after
//! it; listed again whenever the watch breaks or is compacted away.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::watch;

use super::client::EtcdClient;
use super::watch::{WatchEvent, WatchUpdate};
use super::wire::KeyValue;
use crate::Node;

/// Pause between attempts while etcd does not answer.
const RETRY: Duration = Duration::from_millis(500);

pub(crate) struct NodeFollower {
    pub(crate) client: EtcdClient,
    /// `<prefix>/nodes/`
    pub(crate) nodes_prefix: String,
    pub(crate) nodes: watch::Sender<Vec<Node>>,
}

impl NodeFollower {
    /// Runs until every receiver is gone. While etcd is away the last list stays: the nodes
    /// in it are most likely still up, and an etcd outage must not stop traffic.
    pub(crate) async fn run(self) {
        let mut failing = false;
        loop {
            tokio::select! {
                () = self.nodes.closed() => return,
                outcome = self.follow(&mut failing) => match outcome {
                    Ok(reason) => tracing::debug!(reason, "listing nodes again"),
                    Err(error) if !failing => {
                        tracing::warn!(%error, "cannot follow nodes in etcd; retrying");
                        failing = true;
                    }
                    Err(error) => tracing::debug!(%error, "still cannot follow nodes in etcd"),
                }
            }
            tokio::select! {
                () = self.nodes.closed() => return,
                () = tokio::time::sleep(RETRY) => {}
            }
        }
    }

    /// Lists, then applies the watch until it ends. `Ok` says why it ended normally.
    /// `failing` is cleared once etcd answers, so the next outage is logged as a warning again.
    async fn follow(&self, failing: &mut bool) -> Result<&'static str, crate::EtcdError> {
        let (revision, kvs) = self.client.range_prefix(&self.nodes_prefix).await?;
        if std::mem::take(failing) {
            tracing::info!("following nodes in etcd again");
        }
        let mut live: BTreeMap<String, Node> = kvs.iter().filter_map(|kv| self.decode(kv)).collect();
        self.publish(&live);
        let mut stream = self.client.watch_prefix(&self.nodes_prefix, revision + 1).await?;
        tracing::debug!(revision, nodes = live.len(), "following nodes in etcd");
        loop {
            match stream.next().await? {
                None => return Ok("the watch ended"),
                Some(WatchUpdate::Canceled { compact_revision, reason }) => {
                    tracing::info!(compact_revision, reason, "etcd cancelled the node watch; listing again");
                    return Ok("the watch was cancelled");
                }
                Some(WatchUpdate::Events { events, .. }) => {
                    for event in events {
                        match event {
                            WatchEvent::Put(kv) => {
                                if let Some((key, node)) = self.decode(&kv) {
                                    live.insert(key, node);
                                }
                            }
                            WatchEvent::Delete(kv) => {
                                live.remove(&kv.key);
                            }
                        }
                    }
                    self.publish(&live);
                }
            }
        }
    }

    fn decode(&self, kv: &KeyValue) -> Option<(String, Node)> {
        match serde_json::from_slice::<Node>(&kv.value) {
            Ok(node) => Some((kv.key.clone(), node)),
            Err(error) => {
                tracing::warn!(key = %kv.key, %error, "ignoring a node key whose value is not a node");
                None
            }
        }
    }

    /// Sorted by id; receivers wake only on a real change.
    fn publish(&self, live: &BTreeMap<String, Node>) {
        let mut nodes: Vec<Node> = live.values().cloned().collect();
        nodes.sort();
        self.nodes.send_if_modified(|current| {
            let changed = *current != nodes;
            if changed {
                *current = nodes;
            }
            changed
        });
    }
}
