//! Throwaway servers the benchmark needs beside the systems under test: PostgreSQL (for natter's
//! cluster shape and for Synapse) and nats-server (natter's bus, and the NATS baseline). Each
//! listens on loopback with its data under the run's work directory, and stops when dropped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::Command;

use crate::procs::{Proc, check_success, process_tree};

/// A free TCP port on 127.0.0.1 below the kernel's ephemeral range (32768+), so that the load
/// generator's own outgoing connections can never take it between the check and the bind.
pub fn free_port() -> anyhow::Result<u16> {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = 20_000 + (std::process::id() % 500) as u16 * 20;
    let _ = NEXT.compare_exchange(0, start, Ordering::Relaxed, Ordering::Relaxed);
    for _ in 0..2000 {
        let port = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = if port >= 32_000 { 20_000 + port % 12_000 } else { port };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port between 20000 and 32000")
}

/// A PostgreSQL cluster in `dir`, trust auth for `postgres` on 127.0.0.1, tuned for throwaway data.
pub struct Postgres {
    pub admin_url: String,
    data: PathBuf,
    bin: PathBuf,
    pub port: u16,
    /// The server's command-line options, for a restart.
    options: String,
    log: PathBuf,
}

impl Postgres {
    pub async fn start(dir: &Path) -> anyhow::Result<Postgres> {
        let bin = pg_bin_dir()?;
        let dir = if is_root() {
            // The server refuses to run as root; its directory must belong to `postgres`, and the
            // work directory may sit where that user cannot reach.
            let dir = PathBuf::from(format!("/tmp/natter-bench-pg-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            run(std::process::Command::new("chown").arg("postgres:").arg(&dir))?;
            dir
        } else {
            std::fs::create_dir_all(dir)?;
            dir.to_path_buf()
        };
        let data = dir.join("data");
        let port = free_port()?;
        run(as_postgres(&bin.join("initdb")).arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--no-locale",
        ]))
        .context("initdb failed")?;
        let options = format!(
            "-p {port} -k '' -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=256MB"
        );
        let postgres = Postgres {
            admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            data,
            bin,
            port,
            options,
            log: dir.join("postgres.log"),
        };
        postgres.start_again()?;
        Ok(postgres)
    }

    /// Starts the stopped server again on the same data and port (waits until it accepts).
    pub fn start_again(&self) -> anyhow::Result<()> {
        run(as_postgres(&self.bin.join("pg_ctl")).arg("-D").arg(&self.data).arg("-l").arg(&self.log).args([
            "-w",
            "-t",
            "60",
            "-o",
            &self.options,
            "start",
        ]))
        .context("PostgreSQL did not start")
    }

    /// `pg_ctl stop -m fast`: open transactions roll back, clients are disconnected.
    pub fn stop_fast(&self) -> anyhow::Result<()> {
        run(as_postgres(&self.bin.join("pg_ctl")).arg("-D").arg(&self.data).args(["-m", "fast", "-w", "stop"]))
            .context("PostgreSQL did not stop")
    }

    /// Runs `sql` in database `database` through `psql`; returns its unaligned, tab-separated
    /// output (no header).
    pub fn query(&self, database: &str, sql: &str) -> anyhow::Result<String> {
        let mut command = std::process::Command::new("psql");
        command.args(["-X", "-q", "-A", "-t", "-F", "\t", "-h", "127.0.0.1", "-p", &self.port.to_string()]);
        command.args(["-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-c", sql]);
        let output = command.output().with_context(|| format!("cannot run {command:?}"))?;
        check_success(&command, &output)?;
        Ok(String::from_utf8(output.stdout)?)
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates database `name` (through `psql`, so that the benchmark needs no SQL driver).
    pub fn create_database(&self, name: &str) -> anyhow::Result<()> {
        run(std::process::Command::new("psql").args([
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
            &format!("CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"),
        ]))
        .with_context(|| format!("cannot create database {name}"))
    }

    /// The postmaster and its backends, for CPU and memory accounting.
    pub fn pids(&self) -> Vec<u32> {
        let Ok(pid_file) = std::fs::read_to_string(self.data.join("postmaster.pid")) else { return Vec::new() };
        match pid_file.lines().next().and_then(|line| line.trim().parse().ok()) {
            Some(postmaster) => process_tree(postmaster),
            None => Vec::new(),
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// A nats-server on loopback, with a WebSocket listener when asked.
pub struct Nats {
    pub url: String,
    /// `ws://127.0.0.1:PORT` when started with a WebSocket listener.
    pub ws_url: Option<String>,
    pub process: Proc,
}

impl Nats {
    pub async fn start(dir: &Path, websocket: bool) -> anyhow::Result<Nats> {
        std::fs::create_dir_all(dir)?;
        let port = free_port()?;
        let ws_port = if websocket { Some(free_port()?) } else { None };
        let mut config = format!("listen: \"127.0.0.1:{port}\"\nmax_payload: 1048576\n");
        if let Some(ws_port) = ws_port {
            config.push_str(&format!("websocket {{\n  listen: \"127.0.0.1:{ws_port}\"\n  no_tls: true\n}}\n"));
        }
        let config_path = dir.join("nats.conf");
        std::fs::write(&config_path, config)?;
        let mut command = Command::new(nats_server()?);
        command.arg("-c").arg(&config_path);
        let mut process = Proc::spawn("nats-server", command, &dir.join("nats.log"))?;
        process.wait_for_port(port, Duration::from_secs(10)).await?;
        if let Some(ws_port) = ws_port {
            process.wait_for_port(ws_port, Duration::from_secs(10)).await?;
        }
        Ok(Nats {
            url: format!("nats://127.0.0.1:{port}"),
            ws_url: ws_port.map(|p| format!("ws://127.0.0.1:{p}")),
            process,
        })
    }
}

/// A throwaway Redis (route table, presence and shared limits of natter's split topology).
pub struct Redis {
    pub url: String,
    pub process: Proc,
}

impl Redis {
    pub async fn start(dir: &Path) -> anyhow::Result<Redis> {
        std::fs::create_dir_all(dir)?;
        let port = free_port()?;
        let binary = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
            .into_iter()
            .find(|candidate| Path::new(candidate).exists())
            .context("redis-server is not installed (apt-get install redis-server)")?;
        let mut command = Command::new(binary);
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir);
        let mut process = Proc::spawn("redis-server", command, &dir.join("redis.log"))?;
        process.wait_for_port(port, Duration::from_secs(10)).await?;
        Ok(Redis { url: format!("redis://127.0.0.1:{port}"), process })
    }
}

fn nats_server() -> anyhow::Result<PathBuf> {
    for candidate in ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"] {
        if Path::new(candidate).exists() {
            return Ok(PathBuf::from(candidate));
        }
    }
    bail!("nats-server is not installed (apt-get install nats-server)")
}

fn pg_bin_dir() -> anyhow::Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed (apt-get install postgresql)")?
        .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    dirs.sort_by_key(|bin| bin.parent().and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok()).unwrap_or_default());
    dirs.pop().context("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

fn as_postgres(program: &Path) -> std::process::Command {
    if is_root() {
        let mut command = std::process::Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        std::process::Command::new(program)
    }
}

fn run(command: &mut std::process::Command) -> anyhow::Result<()> {
    let output = command.output().with_context(|| format!("cannot run {command:?}"))?;
    check_success(command, &output)
}
