//! Shared by the etcd tests: the server under test, nodes, waiting.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use natter_discovery::{Discovery, DiscoveryConfig, EtcdConfig, Node};
use tokio::process::{Child, Command};
use tokio::sync::watch;

pub(crate) const ETCD_URL_VAR: &str = "NATTER_TEST_ETCD_URL";

/// The etcd scripts/test.sh started, or `None` (with a skip line) outside CI.
pub(crate) fn etcd_url(test: &str) -> Option<String> {
    match std::env::var(ETCD_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => panic!("{ETCD_URL_VAR} is not set but CI is: run scripts/test.sh"),
        _ => {
            println!("skipping {test}: {ETCD_URL_VAR} is not set (scripts/test.sh sets it)");
            None
        }
    }
}

pub(crate) fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "natter_discovery=debug".into()))
        .with_test_writer()
        .try_init();
}

/// A key prefix no other test (or run) shares, so tests can share one etcd.
pub(crate) fn unique_prefix(test: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("/natter-test/{test}-{}-{nanos}", std::process::id())
}

pub(crate) fn node(id: &str, roles: &[&str]) -> Node {
    Node {
        id: id.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        grpc_addr: format!("127.0.0.1:{}", 50000 + id.len()),
        http_addr: Some("127.0.0.1:8080".into()),
    }
}

pub(crate) fn etcd_config(url: &str, prefix: &str) -> DiscoveryConfig {
    DiscoveryConfig::Etcd(EtcdConfig { endpoints: vec![url.into()], prefix: prefix.into(), lease_ttl_secs: 3 })
}

pub(crate) async fn start(url: &str, prefix: &str, this: Node) -> Discovery {
    Discovery::start(&etcd_config(url, prefix), this).await.expect("start discovery")
}

pub(crate) fn ids(nodes: &[Node]) -> Vec<String> {
    nodes.iter().map(|n| n.id.clone()).collect()
}

/// Waits (at most `limit`) until the list satisfies `check`; returns when it did.
pub(crate) async fn wait_nodes(
    nodes: &mut watch::Receiver<Vec<Node>>,
    limit: Duration,
    what: &str,
    check: impl FnMut(&Vec<Node>) -> bool,
) -> Instant {
    let outcome = tokio::time::timeout(limit, nodes.wait_for(check)).await.map(|r| r.is_ok());
    match outcome {
        Ok(true) => Instant::now(),
        Ok(false) => panic!("the node list closed while waiting for: {what}"),
        Err(_) => panic!("not within {limit:?}: {what}; the list is {:?}", ids(&nodes.borrow())),
    }
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// An etcd of the test's own, which it may kill and start again.
pub(crate) struct EtcdProcess {
    child: Option<Child>,
    pub(crate) client_port: u16,
    peer_port: u16,
    pub(crate) data_dir: PathBuf,
}

impl EtcdProcess {
    pub(crate) async fn start(data_dir: &Path, client_port: u16, peer_port: u16) -> EtcdProcess {
        let client = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.with_extension("log"))
            .expect("etcd log file");
        let child = Command::new("etcd")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("default={peer}")])
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("run etcd (Debian package etcd-server)");
        let etcd = EtcdProcess { child: Some(child), client_port, peer_port, data_dir: data_dir.to_owned() };
        etcd.wait_healthy().await;
        etcd
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    async fn wait_healthy(&self) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(response) = http.get(format!("{}/health", self.url())).send().await
                && response.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("etcd on {} did not become healthy", self.url());
    }

    /// SIGKILL, like a crash.
    pub(crate) async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill etcd");
        }
    }

    /// Starts again on the same ports; `wipe` starts from an empty data dir (a new cluster that
    /// knows no lease and no key).
    pub(crate) async fn restart(&mut self, wipe: bool) {
        self.kill().await;
        if wipe {
            std::fs::remove_dir_all(&self.data_dir).expect("wipe the data dir");
        }
        *self = EtcdProcess::start(&self.data_dir.clone(), self.client_port, self.peer_port).await;
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

pub(crate) fn etcd_binary_present(test: &str) -> bool {
    let found =
        std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("etcd").is_file()));
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("no etcd on PATH but CI is set: install etcd-server (scripts/test.sh does)");
        }
        println!("skipping {test}: no etcd on PATH (Debian package etcd-server)");
    }
    found
}
