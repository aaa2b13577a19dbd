//! The crate's errors: one enum for starting discovery, one for a call to etcd.

/// Why discovery could not start.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The `[discovery]` section does not make sense (an empty endpoint list, a zero TTL, …).
    #[error("invalid discovery config: {0}")]
    Config(String),
    /// The HTTP client for etcd could not be built.
    #[error("cannot build the etcd HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// This node's description could not be encoded for etcd.
    #[error("cannot encode this node for etcd: {0}")]
    Encode(#[source] serde_json::Error),
}

/// Why one call to etcd failed. Callers retry; none of these is fatal to a running node.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// No endpoint could be reached (connection refused, timed out, reset).
    #[error("no etcd endpoint answered {path}: {source}")]
    Unreachable {
        path: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// etcd answered with an error (gRPC code and message, as the JSON gateway reports them).
    #[error("etcd answered {path} with code {code}: {message}")]
    Server { path: &'static str, code: i32, message: String },
    /// The answer was not what etcd's v3 JSON gateway sends.
    #[error("unexpected answer from etcd to {path}: {reason}")]
    Decode { path: &'static str, reason: String },
}

impl EtcdError {
    /// gRPC's NOT_FOUND, which etcd uses for an unknown lease.
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, EtcdError::Server { code: 5, .. })
    }
}
