//! This node's key under a lease kept alive: put once, renewed every third of the TTL, revoked
//! on a graceful stop, and put again under a new lease whenever etcd has lost the old one.

use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::client::{EtcdClient, LeaseId};

/// Where the registration stands; see [`Registration::state`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegistrationState {
    /// The lease the key is attached to, while etcd is known to hold it.
    pub lease: Option<LeaseId>,
    /// When etcd last confirmed the lease (the put, or a renewal).
    pub last_renewed: Option<Instant>,
}

impl RegistrationState {
    pub fn is_registered(&self) -> bool {
        self.lease.is_some()
    }
}

/// Keeps this node's key alive until [`stop`](Self::stop) (which revokes the lease: the key
/// vanishes at once) or drop (which only stops renewing, like a crash: the key expires with its
/// lease).
#[derive(Debug)]
pub struct Registration {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    state: watch::Receiver<RegistrationState>,
}

impl Registration {
    pub(crate) fn start(client: EtcdClient, key: String, value: Vec<u8>, ttl: Duration) -> Self {
        let (stop, stopped) = oneshot::channel();
        let (state_tx, state) = watch::channel(RegistrationState::default());
        let keeper = Keeper { client, key, value, ttl, state: state_tx };
        let task = tokio::spawn(keeper.run(stopped));
        Registration { stop: Some(stop), task, state }
    }

    pub fn state(&self) -> RegistrationState {
        *self.state.borrow()
    }

    /// Changes whenever the key is put or the lease renewed or lost.
    pub fn watch_state(&self) -> watch::Receiver<RegistrationState> {
        self.state.clone()
    }

    /// Revokes the lease (waiting at most about a second for etcd) and stops.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Err(error) = (&mut self.task).await {
            tracing::warn!(%error, "the etcd registration task failed");
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Keeper {
    client: EtcdClient,
    key: String,
    value: Vec<u8>,
    ttl: Duration,
    state: watch::Sender<RegistrationState>,
}

impl Keeper {
    async fn run(self, mut stopped: oneshot::Receiver<()>) {
        let interval = self.ttl / 3;
        let mut lease: Option<LeaseId> = None;
        let mut last_renewed = Instant::now();
        let mut failing = false;
        loop {
            // A step is never cut short by a stop, so a lease granted is a lease known, and
            // revoked below. Each call gives up within a second.
            let result = match lease {
                None => self.register().await.map(Some),
                Some(id) => self.renew(id).await,
            };
            match result {
                Ok(Some(id)) => {
                    if lease.is_none() {
                        tracing::info!(key = %self.key, lease = id, "registered in etcd");
                    } else if failing {
                        tracing::info!(key = %self.key, lease = id, "etcd answers again; the lease held");
                    }
                    lease = Some(id);
                    last_renewed = Instant::now();
                    failing = false;
                    self.state.send_replace(RegistrationState { lease, last_renewed: Some(last_renewed) });
                }
                Ok(None) => {
                    tracing::warn!(key = %self.key, "etcd lost this node's lease; registering again");
                    lease = None;
                    self.state.send_modify(|s| s.lease = None);
                    continue;
                }
                Err(error) => {
                    if !failing {
                        tracing::warn!(key = %self.key, %error, "etcd registration failing; retrying");
                    }
                    failing = true;
                    // Past the TTL etcd has dropped the lease (or will when it comes back, unless
                    // it restores it): start over with a new one rather than renew a dead id.
                    if lease.is_some() && last_renewed.elapsed() >= self.ttl {
                        lease = None;
                        self.state.send_modify(|s| s.lease = None);
                    }
                }
            }
            tokio::select! {
                _ = &mut stopped => break,
                () = tokio::time::sleep(if failing { interval.min(Duration::from_millis(500)) } else { interval }) => {}
            }
        }
        if let Some(id) = lease {
            match self.client.revoke(id).await {
                Ok(()) => tracing::info!(key = %self.key, "deregistered from etcd"),
                Err(error) => {
                    tracing::warn!(key = %self.key, %error, "could not revoke the lease; the key expires with it")
                }
            }
        }
        self.state.send_replace(RegistrationState::default());
    }

    async fn register(&self) -> Result<LeaseId, crate::EtcdError> {
        let lease = self.client.grant(self.ttl).await?;
        if let Err(error) = self.client.put(&self.key, &self.value, Some(lease)).await {
            // Nothing is attached to it; it would expire anyway.
            let _ = self.client.revoke(lease).await;
            return Err(error);
        }
        Ok(lease)
    }

    async fn renew(&self, lease: LeaseId) -> Result<Option<LeaseId>, crate::EtcdError> {
        Ok(self.client.keep_alive(lease).await?.map(|_| lease))
    }
}
