//! A small etcd v3 client over etcd's JSON gateway (grpc-gateway, served on the client port).
//!
//! Hand-written on purpose: the `etcd-client` crate (0.21) compiles etcd's `.proto` files in its
//! build script with `tonic-prost-build`, which runs `protoc`, and natter's build must not need
//! protoc (nor cmake) on a fresh machine. Discovery needs six calls — lease grant, keepalive and
//! revoke, put, range, watch — and the gateway serves them all as JSON over plain HTTP/1.1 (keys
//! and values base64, 64-bit integers as strings). Checked against etcd 3.4 (Debian's
//! `etcd-server`), whose gateway lives under `/v3/`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::DeserializeOwned;

use super::watch::WatchStream;
use super::wire::{self, GatewayError, KeyValue};
use crate::error::{DiscoveryError, EtcdError};

/// A lease's id as etcd gives it.
pub type LeaseId = i64;

/// How long one unary call may take. Renewals run every second for a 3 s lease, so a hung call
/// must give up well within the lease.
const CALL_TIMEOUT: Duration = Duration::from_secs(1);

/// Cheap to clone; clones share the HTTP connection pool and the current endpoint.
#[derive(Clone, Debug)]
pub struct EtcdClient {
    http: reqwest::Client,
    endpoints: Arc<[String]>,
    /// The endpoint that answered last; calls start there and move on when it does not answer.
    current: Arc<AtomicUsize>,
}

impl EtcdClient {
    /// `endpoints` are client URLs such as `http://127.0.0.1:2379`.
    pub fn new(endpoints: &[String]) -> Result<Self, DiscoveryError> {
        if endpoints.is_empty() {
            return Err(DiscoveryError::Config("etcd: no endpoints".into()));
        }
        // reqwest is built without a TLS provider of its own (see the workspace Cargo.toml).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(500))
            // A watch is one long response: without probes, a silently dead peer would leave it
            // hanging forever instead of erroring into a re-list.
            .tcp_keepalive(Duration::from_secs(5))
            .tcp_keepalive_interval(Duration::from_secs(2))
            .tcp_keepalive_retries(3)
            .build()
            .map_err(DiscoveryError::Client)?;
        let endpoints = endpoints.iter().map(|e| e.trim_end_matches('/').to_owned()).collect();
        Ok(EtcdClient { http, endpoints, current: Arc::new(AtomicUsize::new(0)) })
    }

    /// Grants a lease of `ttl` (whole seconds).
    pub async fn grant(&self, ttl: Duration) -> Result<LeaseId, EtcdError> {
        let body = serde_json::json!({ "TTL": ttl.as_secs().to_string() });
        let answer: wire::LeaseGrant = self.call("/v3/lease/grant", &body).await?;
        if !answer.error.is_empty() {
            return Err(server_error("/v3/lease/grant", 0, answer.error));
        }
        Ok(answer.id)
    }

    /// Renews a lease once. `Ok(None)`: etcd no longer knows it (it expired or was revoked).
    pub async fn keep_alive(&self, lease: LeaseId) -> Result<Option<Duration>, EtcdError> {
        let body = serde_json::json!({ "ID": lease.to_string() });
        let answer: wire::KeepAlive = self.call("/v3/lease/keepalive", &body).await?;
        if let Some(error) = answer.error {
            return Err(error.into_error("/v3/lease/keepalive"));
        }
        let result = answer.result.ok_or_else(|| decode_error("/v3/lease/keepalive", "no result"))?;
        Ok((result.ttl > 0).then(|| Duration::from_secs(result.ttl.unsigned_abs())))
    }

    /// Revokes a lease, deleting its keys at once. An unknown lease is not an error.
    pub async fn revoke(&self, lease: LeaseId) -> Result<(), EtcdError> {
        let body = serde_json::json!({ "ID": lease.to_string() });
        match self.call::<serde_json::Value>("/v3/lease/revoke", &body).await {
            Err(error) if error.is_not_found() => Ok(()),
            other => other.map(drop),
        }
    }

    /// Puts `key = value`, attached to `lease` when given (the key goes when the lease goes).
    pub async fn put(&self, key: &str, value: &[u8], lease: Option<LeaseId>) -> Result<(), EtcdError> {
        let mut body = serde_json::json!({ "key": BASE64.encode(key), "value": BASE64.encode(value) });
        if let Some(lease) = lease {
            body["lease"] = lease.to_string().into();
        }
        self.call::<serde_json::Value>("/v3/kv/put", &body).await.map(drop)
    }

    /// Every key under `prefix`, with the store revision the answer reflects.
    pub async fn range_prefix(&self, prefix: &str) -> Result<(i64, Vec<KeyValue>), EtcdError> {
        let body = serde_json::json!({
            "key": BASE64.encode(prefix),
            "range_end": BASE64.encode(prefix_end(prefix)),
        });
        let answer: wire::Range = self.call("/v3/kv/range", &body).await?;
        Ok((answer.header.revision, answer.kvs))
    }

    /// Watches every key under `prefix` from `start_revision` on. The answer is one streamed
    /// HTTP response; it ends (or errors) when etcd goes away.
    pub async fn watch_prefix(&self, prefix: &str, start_revision: i64) -> Result<WatchStream, EtcdError> {
        const PATH: &str = "/v3/watch";
        let body = serde_json::json!({ "create_request": {
            "key": BASE64.encode(prefix),
            "range_end": BASE64.encode(prefix_end(prefix)),
            "start_revision": start_revision.to_string(),
        }});
        // No overall timeout: the response lasts as long as the watch.
        let response = self.send(PATH, &body, None).await?;
        Ok(WatchStream::new(response))
    }

    async fn call<T: DeserializeOwned>(&self, path: &'static str, body: &serde_json::Value) -> Result<T, EtcdError> {
        let response = self.send(path, body, Some(CALL_TIMEOUT)).await?;
        let bytes = response.bytes().await.map_err(|source| EtcdError::Unreachable { path, source })?;
        serde_json::from_slice(&bytes).map_err(|e| decode_error(path, e))
    }

    /// Posts `body` to the current endpoint, then to each other one while they do not answer.
    /// A non-2xx answer is etcd's error and is returned as such, not retried elsewhere.
    async fn send(
        &self,
        path: &'static str,
        body: &serde_json::Value,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, EtcdError> {
        let first = self.current.load(Ordering::Relaxed);
        let mut last_error = None;
        for step in 0..self.endpoints.len() {
            let index = (first + step) % self.endpoints.len();
            let mut request = self.http.post(format!("{}{path}", self.endpoints[index])).json(body);
            if let Some(timeout) = timeout {
                request = request.timeout(timeout);
            }
            match request.send().await {
                Ok(response) => {
                    self.current.store(index, Ordering::Relaxed);
                    if response.status().is_success() {
                        return Ok(response);
                    }
                    let status = response.status();
                    let bytes = response.bytes().await.unwrap_or_default();
                    return Err(match serde_json::from_slice::<GatewayError>(&bytes) {
                        Ok(error) => error.into_error(path),
                        Err(_) => decode_error(path, format!("HTTP {status}")),
                    });
                }
                Err(source) => last_error = Some(source),
            }
        }
        match last_error {
            Some(source) => Err(EtcdError::Unreachable { path, source }),
            None => Err(decode_error(path, "no endpoint")),
        }
    }
}

/// The range end that selects every key starting with `prefix`: the prefix with its last byte
/// incremented (etcd's `clientv3.GetPrefixRangeEnd`).
pub(crate) fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Only 0xff bytes (or nothing): `\0` means "to the end of the keyspace".
    vec![0]
}

pub(crate) fn decode_error(path: &'static str, reason: impl ToString) -> EtcdError {
    EtcdError::Decode { path, reason: reason.to_string() }
}

fn server_error(path: &'static str, code: i32, message: String) -> EtcdError {
    EtcdError::Server { path, code, message }
}

impl GatewayError {
    pub(crate) fn into_error(self, path: &'static str) -> EtcdError {
        server_error(path, self.code, if self.message.is_empty() { self.error } else { self.message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end("/natter/nodes/"), b"/natter/nodes0");
        assert_eq!(prefix_end("/a"), b"/b");
        assert_eq!(prefix_end(""), b"\0");
    }
}
