//! The live node list under `<prefix>/nodes/`: a range, then a watch from the revision after
//! it; listed again whenever the watch breaks or is compacted away.
//!
//! An etcd that goes away can delete live nodes' keys on its way out: during a graceful stop
//! etcd 3.4 refuses new calls (so no node can renew its lease) for seconds while its lessor
//! still runs and its open watches still deliver, so every lease expires and every watcher is
//! told every node is gone. A delete is therefore applied only once etcd answers a range right
//! after it; while it does not, the node stays (held). Once etcd answers again, a node held, or
//! missing from the first list after an outage, stays one lease TTL more: a live node registers
//! again well within it (its registration retries every half second), a dead one does not and
//! goes — as it would have after the same outage had etcd kept its lease (etcd restarts every
//! lease's full TTL when it comes back).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

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
    /// The lease TTL: how long a node etcd lost during an outage is kept after etcd answers again.
    pub(crate) grace: Duration,
}

/// What the follower knows: the keys etcd lists, and the keys held through an outage.
#[derive(Default)]
struct View {
    live: BTreeMap<String, Node>,
    /// Keys etcd deleted or lost while it could not be reached, with when they go unless they
    /// come back; `None` until etcd answers again.
    held: BTreeMap<String, (Node, Option<Instant>)>,
}

impl View {
    fn next_release(&self) -> Option<Instant> {
        self.held.values().filter_map(|(_, until)| *until).min()
    }

    /// Drops the held nodes whose time is up; whether any went.
    fn release_due(&mut self, now: Instant) -> bool {
        let before = self.held.len();
        self.held.retain(|key, (_, until)| {
            let keep = until.is_none_or(|until| until > now);
            if !keep {
                tracing::info!(key = %key, "a node lost in an etcd outage did not register again; dropping it");
            }
            keep
        });
        self.held.len() != before
    }

    /// Takes a fresh list from etcd. After an outage, nodes it lacks are held until `release`.
    fn relist(&mut self, listed: BTreeMap<String, Node>, outage: bool, release: Instant) {
        let previous = std::mem::replace(&mut self.live, listed);
        if outage {
            for (key, node) in previous {
                if !self.live.contains_key(&key) {
                    self.held.insert(key, (node, Some(release)));
                }
            }
        }
        let live = &self.live;
        self.held.retain(|key, _| !live.contains_key(key));
        for (_, until) in self.held.values_mut() {
            if until.is_none() || outage {
                *until = Some(release);
            }
        }
    }

    fn put(&mut self, key: String, node: Node) {
        self.held.remove(&key);
        self.live.insert(key, node);
    }

    /// A delete etcd confirmed (it answered right after) goes at once; an unconfirmed one is held.
    fn delete(&mut self, key: &str, confirmed: bool) {
        let node = self.live.remove(key);
        if confirmed {
            self.held.remove(key);
        } else if let Some(node) = node {
            self.held.insert(key.to_owned(), (node, None));
        }
    }

    fn nodes(&self) -> Vec<Node> {
        let mut nodes: Vec<Node> =
            self.live.values().chain(self.held.values().map(|(node, _)| node)).cloned().collect();
        nodes.sort();
        nodes
    }
}

impl NodeFollower {
    /// Runs until every receiver is gone. While etcd is away the last list stays: the nodes
    /// in it are most likely still up, and an etcd outage must not stop traffic.
    pub(crate) async fn run(self) {
        let mut failing = false;
        let mut view = View::default();
        // Whether etcd was away since the last list: the first list after it may lack live nodes.
        let mut outage = false;
        loop {
            tokio::select! {
                () = self.nodes.closed() => return,
                outcome = self.follow(&mut view, &mut failing, &mut outage) => match outcome {
                    Ok(reason) => tracing::debug!(reason, "listing nodes again"),
                    Err(error) if !failing => {
                        tracing::warn!(%error, "cannot follow nodes in etcd; retrying");
                        failing = true;
                        outage = true;
                    }
                    Err(error) => {
                        tracing::debug!(%error, "still cannot follow nodes in etcd");
                        outage = true;
                    }
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
    async fn follow(
        &self,
        view: &mut View,
        failing: &mut bool,
        outage: &mut bool,
    ) -> Result<&'static str, crate::EtcdError> {
        let (revision, kvs) = self.client.range_prefix(&self.nodes_prefix).await?;
        if std::mem::take(failing) {
            tracing::info!("following nodes in etcd again");
        }
        let listed: BTreeMap<String, Node> = kvs.iter().filter_map(|kv| self.decode(kv)).collect();
        view.relist(listed, std::mem::take(outage), Instant::now() + self.grace);
        self.publish(view);
        let mut stream = self.client.watch_prefix(&self.nodes_prefix, revision + 1).await?;
        tracing::debug!(revision, nodes = view.live.len(), held = view.held.len(), "following nodes in etcd");
        loop {
            let release = view.next_release();
            let update = tokio::select! {
                update = stream.next() => update,
                () = sleep_until(release) => {
                    if view.release_due(Instant::now()) {
                        self.publish(view);
                    }
                    continue;
                }
            };
            match update {
                Err(error) => {
                    *outage = true;
                    return Err(error);
                }
                Ok(None) => {
                    // etcd ends a watch only when it goes away.
                    *outage = true;
                    return Ok("the watch ended");
                }
                Ok(Some(WatchUpdate::Canceled { compact_revision, reason })) => {
                    tracing::info!(compact_revision, reason, "etcd cancelled the node watch; listing again");
                    return Ok("the watch was cancelled");
                }
                Ok(Some(WatchUpdate::Events { events, .. })) => {
                    let confirmed = if events.iter().any(|event| matches!(event, WatchEvent::Delete(_))) {
                        self.etcd_answers().await
                    } else {
                        true
                    };
                    for event in events {
                        match event {
                            WatchEvent::Put(kv) => {
                                if let Some((key, node)) = self.decode(&kv) {
                                    view.put(key, node);
                                }
                            }
                            WatchEvent::Delete(kv) => view.delete(&kv.key, confirmed),
                        }
                    }
                    self.publish(view);
                    if !confirmed {
                        // Listed again once etcd answers, which starts the held nodes' grace.
                        *outage = true;
                        return Ok("etcd does not answer");
                    }
                }
            }
        }
    }

    /// Whether etcd answers a call now. A delete it sends while it does not is most likely a
    /// lease it let expire because nobody could renew it (etcd on its way down).
    async fn etcd_answers(&self) -> bool {
        match self.client.range_prefix(&self.nodes_prefix).await {
            Ok(_) => true,
            Err(error) => {
                tracing::warn!(%error, "etcd deleted node keys but does not answer; keeping those nodes until it does");
                false
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
    fn publish(&self, view: &View) {
        let nodes = view.nodes();
        self.nodes.send_if_modified(|current| {
            let changed = *current != nodes;
            if changed {
                *current = nodes;
            }
            changed
        });
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
