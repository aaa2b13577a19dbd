//! The chaos test's cluster, every part a real process on loopback that the fault schedule can
//! kill, freeze or restart: PostgreSQL, NATS (JetStream), Redis and etcd; natter's split topology
//! (two chat nodes, a worker, two gateways); and nginx in front of the gateways, with TLS from a
//! certificate authority made for the run, proxying the WebSocket upgrade.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::Command;

use crate::procs::{Proc, check_success};
use crate::services::{Postgres, free_port};

/// How long a (re)started process has to accept connections and, for natter, answer `/readyz`.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The natter processes, in [`Cluster::nodes`] order.
pub const NODE_NAMES: [&str; 5] = ["chat0", "chat1", "worker", "gateway0", "gateway1"];
/// Indexes of the gateways in [`Cluster::nodes`].
pub const GATEWAYS: [usize; 2] = [3, 4];

/// A server process that can be started again on the same port, data and settings.
pub struct Daemon {
    pub name: String,
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    dir: PathBuf,
    pub port: u16,
    /// natter's own processes: checked with `/readyz`, and started without the caller's
    /// `NATTER_*` variables (natter refuses ones it does not know).
    natter: bool,
    process: Option<Proc>,
    starts: u32,
}

impl Daemon {
    fn new(name: &str, program: impl Into<PathBuf>, args: Vec<OsString>, dir: &Path, port: u16) -> Daemon {
        Daemon {
            name: name.to_owned(),
            program: program.into(),
            args,
            env: Vec::new(),
            dir: dir.to_path_buf(),
            port,
            natter: false,
            process: None,
            starts: 0,
        }
    }

    /// Starts the process (each start logs to a file of its own) and waits until it is ready.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let mut command = Command::new(&self.program);
        if self.natter {
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("NATTER_") {
                    command.env_remove(key);
                }
            }
        }
        command.args(&self.args).envs(self.env.iter().map(|(k, v)| (k, v)));
        let log = self.dir.join(format!("{}.{}.log", self.name, self.starts));
        self.starts += 1;
        let mut process = Proc::spawn(&self.name, command, &log)?;
        process.wait_for_port(self.port, START_TIMEOUT).await?;
        self.process = Some(process);
        if self.natter {
            self.wait_ready().await?;
        }
        Ok(())
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
        let started = Instant::now();
        loop {
            let url = format!("http://127.0.0.1:{}/readyz", self.port);
            if http.get(url).send().await.is_ok_and(|response| response.status().is_success()) {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                bail!("{} did not answer /readyz with 200 within {START_TIMEOUT:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `kill -9`, as a crash.
    pub async fn kill9(&mut self) {
        if let Some(process) = self.process.take() {
            process.kill9().await;
        }
    }

    /// SIGTERM (SIGKILL after 10 s): an orderly restart's first half.
    pub async fn stop(&mut self) {
        if let Some(process) = self.process.take() {
            process.stop(Duration::from_secs(10)).await;
        }
    }

    pub fn freeze(&self, frozen: bool) {
        if let Some(process) = &self.process {
            process.freeze(frozen);
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Proc::pid)
    }
}

/// The running cluster.
pub struct Cluster {
    pub postgres: Postgres,
    pub database: String,
    pub nats: Daemon,
    pub redis: Daemon,
    pub etcd: Daemon,
    /// [`NODE_NAMES`] order.
    pub nodes: Vec<Daemon>,
    pub nginx: Daemon,
    /// `https://127.0.0.1:PORT` (nginx).
    pub url: String,
    /// The run's certificate authority (PEM), which signed nginx's certificate.
    pub ca_pem: Vec<u8>,
}

impl Cluster {
    pub async fn start(natter_binary: &Path, dir: &Path) -> anyhow::Result<Cluster> {
        std::fs::create_dir_all(dir)?;
        let postgres = Postgres::start(&dir.join("postgres")).await?;
        let database = "natter_chaos".to_owned();
        postgres.create_database(&database)?;

        let nats_dir = dir.join("nats");
        std::fs::create_dir_all(&nats_dir)?;
        let nats_port = free_port()?;
        let nats_config = nats_dir.join("nats.conf");
        std::fs::write(
            &nats_config,
            format!(
                "listen: \"127.0.0.1:{nats_port}\"\nmax_payload: 1048576\njetstream {{\n  store_dir: \"{}\"\n}}\n",
                nats_dir.join("jetstream").display()
            ),
        )?;
        let mut nats = Daemon::new("nats", "nats-server", vec!["-c".into(), nats_config.into()], &nats_dir, nats_port);
        nats.program = find(&["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"])?;
        nats.start().await?;

        let redis_port = free_port()?;
        let redis_dir = dir.join("redis");
        let args = ["--port", &redis_port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
        let mut args: Vec<OsString> = args.iter().map(OsString::from).collect();
        args.extend(["--dir".into(), redis_dir.clone().into()]);
        let redis_bin = find(&["/usr/bin/redis-server", "/usr/local/bin/redis-server"])?;
        let mut redis = Daemon::new("redis", redis_bin, args, &redis_dir, redis_port);
        redis.start().await?;

        let (etcd_port, etcd_peer) = (free_port()?, free_port()?);
        let etcd_dir = dir.join("etcd");
        let client = format!("http://127.0.0.1:{etcd_port}");
        let peer = format!("http://127.0.0.1:{etcd_peer}");
        let args: Vec<OsString> = vec![
            "--data-dir".into(),
            etcd_dir.join("data").into(),
            "--listen-client-urls".into(),
            client.clone().into(),
            "--advertise-client-urls".into(),
            client.clone().into(),
            "--listen-peer-urls".into(),
            peer.clone().into(),
            "--initial-advertise-peer-urls".into(),
            peer.clone().into(),
            "--initial-cluster".into(),
            format!("default={peer}").into(),
        ];
        let etcd_bin = find(&["/usr/bin/etcd", "/usr/local/bin/etcd"])?;
        let mut etcd = Daemon::new("etcd", etcd_bin, args, &etcd_dir, etcd_port);
        etcd.start().await?;

        let grpc: Vec<String> =
            (0..2).map(|_| free_port().map(|p| format!("127.0.0.1:{p}"))).collect::<Result<_, _>>()?;
        let secret = uuid::Uuid::new_v4().simple().to_string();
        let common: Vec<(String, String)> = [
            ("NATTER_DATABASE__URL", postgres.url(&database)),
            ("NATTER_DATABASE__MAX_CONNECTIONS", "16".into()),
            ("NATTER_BUS__KIND", "nats".into()),
            ("NATTER_BUS__NATS_URL", format!("nats://127.0.0.1:{nats_port}")),
            ("NATTER_SEARCH__BACKEND", "postgres".into()),
            ("NATTER_AUTH__JWT_SECRET", secret),
            // Cheap hashing: registering a thousand members is set-up, not what is tested.
            ("NATTER_AUTH__ARGON2_MEMORY_KIB", "64".into()),
            ("NATTER_AUTH__ARGON2_ITERATIONS", "1".into()),
            ("NATTER_AUTH__ACCESS_TOKEN_TTL_SECS", "86400".into()),
            ("NATTER_AUTH__REGISTER_MAX_PER_ADDRESS", "0".into()),
            ("NATTER_SERVER__TRUSTED_PROXIES", "127.0.0.1".into()),
            // Every simulated device connects from 127.0.0.1 and reconnects after each fault.
            ("NATTER_LIMITS__WS_CONNECTS_PER_ADDRESS", "0".into()),
            ("NATTER_CLUSTER__CHAT_NODES", grpc.join(",")),
            ("NATTER_CLUSTER__RPC_TIMEOUT_SECS", "60".into()),
            ("NATTER_REDIS__URL", format!("redis://127.0.0.1:{redis_port}")),
            // As the split-topology tests: a dead gateway's routes go within seconds.
            ("NATTER_PRESENCE__ROUTE_TTL_SECS", "3".into()),
            ("NATTER_DISCOVERY__BACKEND", "etcd".into()),
            ("NATTER_DISCOVERY__ENDPOINTS", format!("[\"{client}\"]")),
            ("NATTER_JOBS__BACKEND", "jetstream".into()),
            // A killed worker's fan-out job goes to the restarted one after this long.
            ("NATTER_JOBS__ACK_WAIT_SECS", "5".into()),
            // The 1,000-member group's entries go through the worker; smaller ones do not.
            ("NATTER_DELIVERY__WORKER_FANOUT_ABOVE", "300".into()),
            ("NATTER_LOG__LEVEL", "warn,natter_gateway=info".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut nodes = Vec::new();
        for (index, name) in NODE_NAMES.iter().enumerate() {
            let port = free_port()?;
            let node_dir = dir.join(name);
            let roles = match index {
                0 | 1 => "chat",
                2 => "worker",
                _ => "gateway",
            };
            let args: Vec<OsString> = vec![
                "serve".into(),
                "--listen".into(),
                format!("127.0.0.1:{port}").into(),
                "--data-dir".into(),
                node_dir.join("data").into(),
                "--roles".into(),
                roles.into(),
            ];
            let mut node = Daemon::new(name, natter_binary, args, &node_dir, port);
            node.natter = true;
            node.env = common.clone();
            if index < 2 {
                node.env.push(("NATTER_CLUSTER__GRPC_LISTEN".into(), grpc[index].clone()));
            }
            nodes.push(node);
        }
        for node in &mut nodes {
            node.start().await.with_context(|| format!("cannot start {}", node.name))?;
        }

        let nginx_dir = dir.join("nginx");
        std::fs::create_dir_all(nginx_dir.join("tmp"))?;
        let ca_pem = make_certificates(&nginx_dir)?;
        let nginx_port = free_port()?;
        let upstreams: String = GATEWAYS
            .iter()
            .map(|&g| format!("    server 127.0.0.1:{} max_fails=1 fail_timeout=2s;\n", nodes[g].port))
            .collect();
        let user = if is_root() { "user root;\n" } else { "" };
        let d = nginx_dir.display();
        let config = format!(
            "{user}worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n\
             fastcgi_temp_path {d}/tmp/fastcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n\
             map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}\n\
             upstream gateways {{\n{upstreams}    keepalive 32;\n  }}\n\
             server {{\n    listen 127.0.0.1:{nginx_port} ssl;\n    ssl_certificate {d}/server.pem;\n\
             ssl_certificate_key {d}/server.key;\n    client_max_body_size 8m;\n\
             location / {{\n      proxy_pass http://gateways;\n      proxy_http_version 1.1;\n\
             proxy_set_header Upgrade $http_upgrade;\n      proxy_set_header Connection $connection_upgrade;\n\
             proxy_set_header X-Forwarded-For $remote_addr;\n      proxy_connect_timeout 2s;\n\
             proxy_read_timeout 120s;\n      proxy_send_timeout 30s;\n      proxy_buffering off;\n    }}\n  }}\n}}\n"
        );
        let config_path = nginx_dir.join("nginx.conf");
        std::fs::write(&config_path, config)?;
        let args: Vec<OsString> = vec![
            "-p".into(),
            nginx_dir.clone().into(),
            "-c".into(),
            config_path.into(),
            "-g".into(),
            "daemon off;".into(),
        ];
        let nginx_bin = find(&["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"])?;
        let mut nginx = Daemon::new("nginx", nginx_bin, args, &nginx_dir, nginx_port);
        nginx.start().await?;

        Ok(Cluster {
            postgres,
            database,
            nats,
            redis,
            etcd,
            nodes,
            nginx,
            url: format!("https://127.0.0.1:{nginx_port}"),
            ca_pem,
        })
    }

    /// Every natter node's PID (for the report), by name.
    pub fn node_pids(&self) -> Vec<(String, Option<u32>)> {
        self.nodes.iter().map(|node| (node.name.clone(), node.pid())).collect()
    }

    pub async fn stop(mut self) {
        self.nginx.stop().await;
        for node in self.nodes.iter_mut().rev() {
            node.stop().await;
        }
        self.etcd.stop().await;
        self.redis.stop().await;
        self.nats.stop().await;
    }
}

/// A certificate authority and a certificate for 127.0.0.1 signed by it (the client trusts the
/// authority, as an app trusts a public one), made with the openssl command line. Returns the
/// authority's PEM.
fn make_certificates(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let openssl = |args: &[&str]| -> anyhow::Result<()> {
        let mut command = std::process::Command::new("openssl");
        command.args(args).current_dir(dir);
        let output = command.output().context("cannot run openssl (apt-get install openssl)")?;
        check_success(&command, &output)
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=natter chaos test CA",
    ])?;
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ])?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ])?;
    Ok(std::fs::read(dir.join("ca.pem"))?)
}

fn find(candidates: &[&str]) -> anyhow::Result<PathBuf> {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .with_context(|| format!("none of {candidates:?} is installed"))
}

fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}
