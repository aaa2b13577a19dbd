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

/// Every list `nodes` publishes from now on, in order (the current one first).
pub(crate) fn record(mut nodes: watch::Receiver<Vec<Node>>) -> std::sync::Arc<std::sync::Mutex<Vec<Vec<String>>>> {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(vec![ids(&nodes.borrow_and_update())]));
    let log = seen.clone();
    tokio::spawn(async move {
        while nodes.changed().await.is_ok() {
            let now = ids(&nodes.borrow_and_update());
            log.lock().expect("the record").push(now);
        }
    });
    seen
}

/// Each open connection of a [`HalfDownProxy`]: whether it carries a watch, and its task.
type Connections =
    std::sync::Arc<std::sync::Mutex<Vec<(std::sync::Arc<std::sync::atomic::AtomicBool>, tokio::task::AbortHandle)>>>;

/// A TCP proxy in front of etcd that can play etcd on its way down (a graceful stop of etcd
/// 3.4): while `down`, new connections and calls fail, but the watches already open stay open
/// and keep delivering, while etcd itself goes on expiring the leases nobody can renew.
pub(crate) struct HalfDownProxy {
    pub(crate) port: u16,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    connections: Connections,
    accept: tokio::task::JoinHandle<()>,
}

impl HalfDownProxy {
    pub(crate) async fn start(upstream: &str) -> HalfDownProxy {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let down = Arc::new(AtomicBool::new(false));
        let connections = Connections::default();
        let (is_down, list) = (down.clone(), connections.clone());
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if is_down.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else { continue };
                let watch = Arc::new(AtomicBool::new(false));
                let is_watch = watch.clone();
                let task = tokio::spawn(async move {
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let upward = async {
                        let mut buffer = vec![0u8; 16 * 1024];
                        loop {
                            let n = client_read.read(&mut buffer).await?;
                            if n == 0 {
                                return server_write.shutdown().await;
                            }
                            // A connection that once carried a watch carries it until it ends.
                            if buffer[..n].windows(9).any(|w| w == b"/v3/watch") {
                                is_watch.store(true, Ordering::SeqCst);
                            }
                            server_write.write_all(&buffer[..n]).await?;
                        }
                    };
                    let downward = tokio::io::copy(&mut server_read, &mut client_write);
                    let _ = tokio::join!(upward, downward);
                });
                list.lock().expect("connections").push((watch, task.abort_handle()));
            }
        });
        HalfDownProxy { port, down, connections, accept }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// From now on every call fails (open connections other than watches are cut, new ones
    /// closed at once); `false` lets calls through again.
    pub(crate) fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
        if down {
            let mut connections = self.connections.lock().expect("connections");
            connections.retain(|(watch, task)| {
                let keep = watch.load(std::sync::atomic::Ordering::SeqCst);
                if !keep {
                    task.abort();
                }
                keep
            });
        }
    }
}

impl Drop for HalfDownProxy {
    fn drop(&mut self) {
        self.accept.abort();
        for (_, task) in self.connections.lock().expect("connections").iter() {
            task.abort();
        }
    }
}
