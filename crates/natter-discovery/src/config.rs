//! The `[discovery]` config section: which backend tells a node about the others.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::DiscoveryError;

/// How a node finds the others. Deserializes from a table tagged by `backend`:
///
/// ```toml
/// [discovery]
/// backend = "etcd"            # none | etcd | static | dns
/// endpoints = ["http://127.0.0.1:2379"]
/// prefix = "/natter"
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case")]
pub enum DiscoveryConfig {
    /// One process with every role: the node knows only itself.
    #[default]
    None,
    /// Nodes register under `<prefix>/nodes/<id>` with a lease and watch that prefix.
    Etcd(EtcdConfig),
    /// A fixed list from config; nothing registers, nothing expires.
    Static(StaticConfig),
    /// Every A/AAAA record of a name (a Kubernetes headless Service) is a node.
    Dns(DnsConfig),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdConfig {
    /// Client URLs (`http://host:2379`); tried in order, the next one when one does not answer.
    #[serde(default = "default_endpoints")]
    pub endpoints: Vec<String>,
    /// Key prefix shared by one natter cluster; nodes live under `<prefix>/nodes/`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Lease TTL in seconds: a node that stops renewing is gone this long after its last renewal
    /// (plus etcd's expiry check, every 0.5 s). Renewed every third of it.
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl_secs: u64,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        EtcdConfig { endpoints: default_endpoints(), prefix: default_prefix(), lease_ttl_secs: default_lease_ttl() }
    }
}

impl EtcdConfig {
    pub fn lease_ttl(&self) -> Duration {
        Duration::from_secs(self.lease_ttl_secs)
    }

    /// The prefix without a trailing `/`, so `"/natter/"` and `"/natter"` name the same keys.
    pub(crate) fn normalized_prefix(&self) -> &str {
        self.prefix.trim_end_matches('/')
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    pub nodes: Vec<StaticNode>,
}

/// One entry of a static list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticNode {
    /// Defaults to `grpc_addr`.
    #[serde(default)]
    pub id: Option<String>,
    pub grpc_addr: String,
    #[serde(default)]
    pub http_addr: Option<String>,
    /// Defaults to `["chat"]`, the role other nodes call.
    #[serde(default = "default_roles")]
    pub roles: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// The name to resolve, e.g. `natter-chat.natter.svc.cluster.local`.
    pub name: String,
    /// The gRPC port every resolved address listens on.
    pub port: u16,
    /// The roles of every resolved address (one name per role); defaults to `["chat"]`.
    #[serde(default = "default_roles")]
    pub roles: Vec<String>,
    /// How often the name is resolved again, in seconds.
    #[serde(default = "default_dns_interval")]
    pub refresh_secs: u64,
}

impl DiscoveryConfig {
    /// Start-up validation: what would otherwise fail later, or silently find no node.
    pub fn validate(&self) -> Result<(), DiscoveryError> {
        let invalid = |message: String| Err(DiscoveryError::Config(message));
        match self {
            DiscoveryConfig::None => Ok(()),
            DiscoveryConfig::Etcd(etcd) => {
                if etcd.endpoints.is_empty() {
                    return invalid("etcd: `endpoints` is empty".into());
                }
                if let Some(bad) =
                    etcd.endpoints.iter().find(|e| !(e.starts_with("http://") || e.starts_with("https://")))
                {
                    return invalid(format!("etcd: endpoint {bad:?} must start with http:// or https://"));
                }
                if etcd.lease_ttl_secs < 2 {
                    return invalid("etcd: `lease_ttl_secs` must be at least 2 (etcd's minimum TTL)".into());
                }
                if etcd.normalized_prefix().is_empty() {
                    return invalid("etcd: `prefix` is empty".into());
                }
                Ok(())
            }
            DiscoveryConfig::Static(list) => {
                if list.nodes.iter().any(|n| n.grpc_addr.is_empty()) {
                    return invalid("static: a node has an empty `grpc_addr`".into());
                }
                Ok(())
            }
            DiscoveryConfig::Dns(dns) => {
                if dns.name.is_empty() || dns.port == 0 {
                    return invalid("dns: `name` and a non-zero `port` are required".into());
                }
                if dns.refresh_secs == 0 {
                    return invalid("dns: `refresh_secs` must be at least 1".into());
                }
                Ok(())
            }
        }
    }
}

fn default_endpoints() -> Vec<String> {
    vec!["http://127.0.0.1:2379".into()]
}

fn default_prefix() -> String {
    "/natter".into()
}

fn default_lease_ttl() -> u64 {
    3
}

fn default_roles() -> Vec<String> {
    vec!["chat".into()]
}

fn default_dns_interval() -> u64 {
    2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        discovery: DiscoveryConfig,
    }

    fn parse(text: &str) -> Result<DiscoveryConfig, toml::de::Error> {
        toml::from_str::<File>(text).map(|f| f.discovery)
    }

    #[test]
    fn parses_every_backend() {
        assert_eq!(parse("[discovery]\nbackend = \"none\"").expect("none"), DiscoveryConfig::None);
        let etcd =
            parse("[discovery]\nbackend = \"etcd\"\nendpoints = [\"http://e:2379\"]\nprefix = \"/x\"").expect("etcd");
        assert_eq!(
            etcd,
            DiscoveryConfig::Etcd(EtcdConfig {
                endpoints: vec!["http://e:2379".into()],
                prefix: "/x".into(),
                lease_ttl_secs: 3,
            })
        );
        let list = parse(
            "[discovery]\nbackend = \"static\"\n[[discovery.nodes]]\ngrpc_addr = \"10.0.0.1:50051\"\n\
             [[discovery.nodes]]\nid = \"b\"\ngrpc_addr = \"10.0.0.2:50051\"\nroles = [\"chat\", \"worker\"]",
        )
        .expect("static");
        let DiscoveryConfig::Static(list) = list else { panic!("not static: {list:?}") };
        assert_eq!(list.nodes[0].roles, ["chat"]);
        assert_eq!(list.nodes[1].id.as_deref(), Some("b"));
        let dns = parse("[discovery]\nbackend = \"dns\"\nname = \"chat.svc\"\nport = 50051").expect("dns");
        assert_eq!(
            dns,
            DiscoveryConfig::Dns(DnsConfig {
                name: "chat.svc".into(),
                port: 50051,
                roles: vec!["chat".into()],
                refresh_secs: 2,
            })
        );
    }

    /// `natter config show` serializes the section and the file is read back the same way.
    #[test]
    fn every_backend_round_trips_through_toml() {
        #[derive(Serialize, Deserialize)]
        struct Section {
            discovery: DiscoveryConfig,
        }
        let backends = [
            DiscoveryConfig::None,
            DiscoveryConfig::Etcd(EtcdConfig::default()),
            DiscoveryConfig::Static(StaticConfig {
                nodes: vec![StaticNode {
                    id: None,
                    grpc_addr: "10.0.0.1:50051".into(),
                    http_addr: Some("10.0.0.1:8080".into()),
                    roles: default_roles(),
                }],
            }),
            DiscoveryConfig::Dns(DnsConfig { name: "n".into(), port: 1, roles: default_roles(), refresh_secs: 2 }),
        ];
        for discovery in backends {
            let text = toml::to_string(&Section { discovery: discovery.clone() }).expect("serialize");
            let back = toml::from_str::<Section>(&text).map(|s| s.discovery);
            assert_eq!(back.as_ref().ok(), Some(&discovery), "{text}");
        }
    }

    #[test]
    fn refuses_unknown_backends_and_keys() {
        assert!(parse("[discovery]\nbackend = \"zookeeper\"").is_err());
        assert!(parse("[discovery]\nbackend = \"etcd\"\nendpoint = \"http://e:2379\"").is_err());
    }

    #[test]
    fn validation_catches_what_would_fail_later() {
        let etcd = |f: fn(&mut EtcdConfig)| {
            let mut c = EtcdConfig::default();
            f(&mut c);
            DiscoveryConfig::Etcd(c).validate()
        };
        assert!(etcd(|_| {}).is_ok());
        assert!(etcd(|c| c.endpoints.clear()).is_err());
        assert!(etcd(|c| c.endpoints = vec!["127.0.0.1:2379".into()]).is_err());
        assert!(etcd(|c| c.lease_ttl_secs = 1).is_err());
        assert!(etcd(|c| c.prefix = "/".into()).is_err());
        let dns = DiscoveryConfig::Dns(DnsConfig { name: "x".into(), port: 0, roles: vec![], refresh_secs: 2 });
        assert!(dns.validate().is_err());
    }
}
