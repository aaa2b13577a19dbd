//! Real `natter serve` processes on one PostgreSQL database and one NATS (and, when the
//! environment has them, etcd for discovery and Redis for routes), for the cluster test crates:
//! two nodes with every role, or the split topology (chat nodes 0 and 1, a worker, gateways 3
//! and 4), plus nodes started or killed later.

#![allow(dead_code, reason = "each test crate that includes this module uses a part of it")]

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::client::Base;

pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The split topology's route TTL (with Redis): short, so a dead gateway's users go offline fast.
pub(crate) const ROUTE_TTL_SECS: u64 = 3;

#[derive(Clone)]
pub(crate) struct ClusterEnv {
    pub(crate) postgres_url: String,
    pub(crate) nats_url: String,
    /// etcd's client URL (`NATTER_TEST_ETCD_URL`): the split topology finds its chat nodes there.
    pub(crate) etcd_url: Option<String>,
    /// Redis (`NATTER_TEST_REDIS_URL`): the split topology's route table (presence, targeted
    /// delivery).
    pub(crate) redis_url: Option<String>,
}

impl ClusterEnv {
    /// `None` (the test skips) without PostgreSQL and NATS, unless `CI` is set: then it panics.
    pub(crate) fn from_env() -> Option<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        match (var("NATTER_TEST_POSTGRES_URL"), var("NATTER_TEST_NATS_URL")) {
            (Some(postgres_url), Some(nats_url)) => {
                let (etcd_url, redis_url) = (var("NATTER_TEST_ETCD_URL"), var("NATTER_TEST_REDIS_URL"));
                assert!(
                    (etcd_url.is_some() && redis_url.is_some()) || std::env::var_os("CI").is_none(),
                    "the cluster test needs NATTER_TEST_ETCD_URL and NATTER_TEST_REDIS_URL in CI: run scripts/test.sh"
                );
                Some(Self { postgres_url, nats_url, etcd_url, redis_url })
            }
            _ if std::env::var_os("CI").is_some() => {
                panic!(
                    "the cluster test needs NATTER_TEST_POSTGRES_URL and NATTER_TEST_NATS_URL in CI: run scripts/test.sh"
                )
            }
            _ => {
                println!(
                    "skipping the cluster test: set NATTER_TEST_POSTGRES_URL and NATTER_TEST_NATS_URL (scripts/test.sh --services-only)"
                );
                None
            }
        }
    }
}

pub(crate) struct Node {
    pub(crate) child: Child,
    pub(crate) base_url: String,
    pub(crate) data_dir: PathBuf,
    pub(crate) log: PathBuf,
    /// `host:port` of the node's gRPC, when it serves it (a chat node of a split deployment).
    pub(crate) grpc: Option<String>,
    /// Killed by [`Cluster::kill`]: its end is no news.
    killed: bool,
}

impl Base for Node {
    fn base_url(&self) -> &str {
        &self.base_url
    }
}

/// One process to start: its roles, and for a gateway alone the chat nodes it calls.
pub(crate) struct Spec {
    pub(crate) roles: &'static str,
    pub(crate) chat_nodes: Vec<String>,
}

impl Spec {
    pub(crate) fn worker() -> Self {
        Self { roles: "worker", chat_nodes: Vec::new() }
    }
}

/// What every node of one cluster shares.
struct Shared {
    database_url: String,
    env: ClusterEnv,
    run: String,
    /// More `NATTER_…` variables for every node (a test's settings).
    extra_env: Vec<(String, String)>,
}

/// The running nodes. Dropping it (also while a failed assertion unwinds) kills them, and after a
/// failure prints the end of their logs.
pub(crate) struct Cluster {
    pub(crate) nodes: Vec<Node>,
    shared: Shared,
}

impl Cluster {
    /// Two nodes with every role (the monolith, replicated).
    pub(crate) fn start(database_url: &str, env: &ClusterEnv) -> Self {
        let all = || Spec { roles: "all", chat_nodes: Vec::new() };
        // The replicated monolith on PostgreSQL and NATS alone: broadcast delivery.
        let env = ClusterEnv { etcd_url: None, redis_url: None, ..env.clone() };
        let mut cluster = Self::new(database_url, &env, &[]);
        cluster.start_node(all());
        cluster.start_node(all());
        cluster
    }

    /// The split topology: chat nodes 0 and 1, a worker (2), gateways 3 and 4 calling the chat
    /// nodes over gRPC: those etcd lists when the environment has etcd, else both, listed
    /// statically; with Redis, presence is shared and delivery targeted.
    pub(crate) fn start_split(database_url: &str, env: &ClusterEnv) -> Self {
        Self::start_split_with(database_url, env, &[])
    }

    /// [`Cluster::start_split`], every node with `extra_env` too.
    pub(crate) fn start_split_with(database_url: &str, env: &ClusterEnv, extra_env: &[(&str, &str)]) -> Self {
        let grpc = [natter_testkit::free_port(), natter_testkit::free_port()].map(|port| format!("127.0.0.1:{port}"));
        let gateway = || Spec { roles: "gateway", chat_nodes: grpc.to_vec() };
        let chat = |address: &str| Spec { roles: "chat", chat_nodes: vec![address.to_owned()] };
        let mut cluster = Self::new(database_url, env, extra_env);
        for spec in [chat(&grpc[0]), chat(&grpc[1]), Spec::worker(), gateway(), gateway()] {
            cluster.start_node(spec);
        }
        cluster
    }

    fn new(database_url: &str, env: &ClusterEnv, extra_env: &[(&str, &str)]) -> Self {
        let shared = Shared {
            database_url: database_url.to_owned(),
            env: env.clone(),
            run: uuid::Uuid::new_v4().simple().to_string(),
            extra_env: extra_env.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect(),
        };
        Cluster { nodes: Vec::new(), shared }
    }

    /// Starts a node of this cluster (not waiting for it); returns its index.
    pub(crate) fn start_node(&mut self, spec: Spec) -> usize {
        let Shared { database_url, env, run, extra_env } = &self.shared;
        let index = self.nodes.len();
        let data_dir = std::env::temp_dir().join(format!("natter-cluster-{run}-node{index}"));
        std::fs::create_dir_all(&data_dir).expect("create the data dir");
        let log = data_dir.join("natter.log");
        let output = File::create(&log).expect("create the log file");
        let port = natter_testkit::free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_natter"));
        // The test's own NATTER_TEST_* variables are no configuration of the server.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("NATTER_") {
                command.env_remove(name);
            }
        }
        // A chat node serves gRPC on the address its spec names for it.
        let grpc = (spec.roles == "chat").then(|| spec.chat_nodes[0].clone());
        command
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--roles")
            .arg(spec.roles)
            .env("NATTER_DATABASE__URL", database_url)
            .env("NATTER_BUS__KIND", "nats")
            .env("NATTER_BUS__NATS_URL", &env.nats_url)
            .env("NATTER_BUS__SUBJECT_PREFIX", format!("natter-cluster-test.{run}"))
            .env("NATTER_SEARCH__BACKEND", "postgres")
            .env("NATTER_AUTH__JWT_SECRET", format!("cluster-test-secret-{run}"))
            .env("NATTER_AUTH__ARGON2_MEMORY_KIB", "256")
            .env("NATTER_AUTH__ARGON2_ITERATIONS", "1")
            .env("NATTER_CLUSTER__CHAT_NODES", spec.chat_nodes.join(","))
            .envs(extra_env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("clone the log file"))
            .stderr(output);
        if let Some(address) = &grpc {
            command.env("NATTER_CLUSTER__GRPC_LISTEN", address);
        }
        if let Some(redis_url) = &env.redis_url {
            command
                .env("NATTER_REDIS__URL", redis_url)
                .env("NATTER_REDIS__KEY_PREFIX", format!("natter-cluster-test-{run}"))
                .env("NATTER_PRESENCE__ROUTE_TTL_SECS", ROUTE_TTL_SECS.to_string());
        }
        if let Some(etcd_url) = &env.etcd_url {
            command
                .env("NATTER_DISCOVERY__BACKEND", "etcd")
                .env("NATTER_DISCOVERY__ENDPOINTS", format!("[\"{etcd_url}\"]"))
                .env("NATTER_DISCOVERY__PREFIX", format!("/natter-cluster-test/{run}"));
        }
        let child = command.spawn().expect("start `natter serve`");
        self.nodes.push(Node {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            data_dir,
            log,
            grpc,
            killed: false,
        });
        index
    }

    /// kill -9, and reap.
    pub(crate) fn kill(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        node.child.kill().expect("SIGKILL the node");
        node.child.wait().expect("reap the node");
        node.killed = true;
    }

    /// Waits until every node answers `/readyz` with 200.
    pub(crate) async fn wait_ready(&self) {
        for index in 0..self.nodes.len() {
            self.wait_node_ready(index).await;
        }
    }

    /// Waits until node `index` answers `/readyz` with 200.
    pub(crate) async fn wait_node_ready(&self, index: usize) {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("an HTTP client");
        let node = &self.nodes[index];
        let started = Instant::now();
        loop {
            let response = http.get(format!("{}/readyz", node.base_url)).send().await;
            if response.is_ok_and(|response| response.status() == StatusCode::OK) {
                return;
            }
            assert!(started.elapsed() < START_TIMEOUT, "{} not ready within {START_TIMEOUT:?}", node.base_url);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let exited_early = !node.killed && matches!(node.child.try_wait(), Ok(Some(_)));
            let _ = node.child.kill();
            let _ = node.child.wait();
            if std::thread::panicking() || exited_early {
                let log = std::fs::read_to_string(&node.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                eprintln!("---- last lines of {} ({}) ----", node.base_url, node.log.display());
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
            let _ = std::fs::remove_dir_all(&node.data_dir);
        }
    }
}
