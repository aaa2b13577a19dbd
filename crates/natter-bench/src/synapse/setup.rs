//! Installing, configuring and starting Synapse: a virtualenv under the cargo target directory,
//! a `homeserver.yaml` with every rate limit lifted, and its first start's background updates.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use tokio::process::Command;

use super::{SYNAPSE_VERSION, TIMELINE_LIMIT};

/// A prebuilt psycopg2 (Synapse's PostgreSQL driver): no libpq headers or compiler needed.
const PSYCOPG2_VERSION: &str = "2.9.13";
const SERVER_NAME: &str = "bench.local";

/// Every rate limit of Synapse's configuration (`a.b` for key `b` under `a`).
const RATE_LIMITS: &[&str] = &[
    "rc_message",
    "rc_registration",
    "rc_registration_token_validity",
    "rc_login.address",
    "rc_login.account",
    "rc_login.failed_attempts",
    "rc_admin_redaction",
    "rc_joins.local",
    "rc_joins.remote",
    "rc_joins_per_room",
    "rc_key_requests",
    "rc_3pid_validation",
    "rc_invites.per_room",
    "rc_invites.per_user",
    "rc_invites.per_issuer",
    "rc_third_party_invite",
    "rc_media_create",
    "rc_presence.per_user",
    "rc_delayed_event_mgmt",
    "rc_room_creation",
    "rc_reports",
    "rc_user_directory",
    "rc_profile",
];

/// Writes `homeserver.yaml` (as JSON, which YAML reads) and its logging config into `dir`.
pub(super) fn write_config(dir: &Path, port: u16, postgres_port: u16) -> anyhow::Result<PathBuf> {
    let dir = std::path::absolute(dir)?;
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let secret = || uuid::Uuid::new_v4().simple().to_string();
    let mut config = json!({
        "server_name": SERVER_NAME,
        "public_baseurl": format!("http://127.0.0.1:{port}/"),
        "pid_file": path("homeserver.pid"),
        "listeners": [{
            "port": port,
            "bind_addresses": ["127.0.0.1"],
            "type": "http",
            "tls": false,
            "x_forwarded": false,
            "resources": [{ "names": ["client"], "compress": false }],
        }],
        "database": {
            "name": "psycopg2",
            "args": {
                "user": "postgres",
                "host": "127.0.0.1",
                "port": postgres_port,
                "dbname": "synapse",
                "cp_min": 5,
                "cp_max": 10,
            },
        },
        "log_config": path("log.yaml"),
        "media_store_path": path("media_store"),
        "signing_key_path": path("signing.key"),
        "macaroon_secret_key": secret(),
        "form_secret": secret(),
        "registration_shared_secret": secret(),
        "report_stats": false,
        "enable_metrics": false,
        "trusted_key_servers": [],
        "suppress_key_server_warning": true,
        "presence": { "enabled": false },
        "url_preview_enabled": false,
        "enable_registration": true,
        "enable_registration_without_verification": true,
        // Registration is set-up, not what is measured.
        "bcrypt_rounds": 4,
        "filter_timeline_limit": TIMELINE_LIMIT,
        // A fresh schema still queues background updates; run them flat out so that they are
        // done before the first measurement (see `wait_for_background_updates`).
        "background_updates": { "sleep_enabled": false, "background_update_duration_ms": 1000 },
        "rc_federation": { "window_size": 1000, "sleep_limit": 1_000_000, "reject_limit": 1_000_000, "concurrent": 1_000 },
    });
    // Far beyond anything the benchmark sends: the baseline is measured, not throttled.
    let unlimited = json!({ "per_second": 1_000_000, "burst_count": 1_000_000 });
    for limit in RATE_LIMITS {
        let slot = limit.split('.').fold(&mut config, |slot, key| &mut slot[key]);
        *slot = unlimited.clone();
    }
    // Warnings to stderr (the process log): natter runs at warn level too, and Synapse's info
    // level writes lines per request and per event.
    let logging = json!({
        "version": 1,
        "formatters": { "precise": { "format": "%(asctime)s - %(name)s - %(levelname)s - %(message)s" } },
        "handlers": { "console": { "class": "logging.StreamHandler", "formatter": "precise" } },
        "root": { "level": "WARNING", "handlers": ["console"] },
        "disable_existing_loggers": false,
    });
    std::fs::write(dir.join("log.yaml"), serde_json::to_string_pretty(&logging)?)?;
    let config_path = dir.join("homeserver.yaml");
    std::fs::write(&config_path, serde_json::to_string_pretty(&config)?)?;
    Ok(config_path)
}

/// Waits (a while at most) until Synapse's database has no background update left to run, so
/// that they do not eat into the first measurement.
pub(super) async fn wait_for_background_updates(postgres_port: u16) {
    let started = Instant::now();
    let mut count = Command::new("psql");
    count
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "synapse", "-tA", "-p"])
        .arg(postgres_port.to_string())
        .args(["-c", "SELECT count(*) FROM background_updates"]);
    while started.elapsed() < Duration::from_secs(120) {
        let output = count.output().await;
        let pending = output.ok().and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse::<u64>().ok());
        if pending == Some(0) {
            tracing::info!("Synapse's background updates are done after {:.1} s", started.elapsed().as_secs_f64());
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tracing::warn!("Synapse still has background updates running; the first measurement may pay for them");
}

/// The virtualenv's Python with Synapse installed, installing it first unless an earlier run did.
pub(super) async fn ensure_venv(work_dir: &Path) -> anyhow::Result<PathBuf> {
    let venv = target_dir()?.join("bench-venv");
    let python = venv.join("bin").join("python");
    if installed_version(&python).await.as_deref() == Some(SYNAPSE_VERSION) {
        return Ok(python);
    }
    tracing::info!("installing Synapse {SYNAPSE_VERSION} into {} (takes a minute)", venv.display());
    let started = Instant::now();
    if venv.exists() {
        std::fs::remove_dir_all(&venv).with_context(|| format!("cannot remove the stale {}", venv.display()))?;
    }
    create_venv(&venv).await?;
    let log = work_dir.join("synapse-install.log");
    let out = std::fs::File::create(&log)?;
    let status = Command::new(&python)
        .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--progress-bar", "off"])
        .arg(format!("matrix-synapse=={SYNAPSE_VERSION}"))
        .arg(format!("psycopg2-binary=={PSYCOPG2_VERSION}"))
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .await?;
    if !status.success() {
        bail!("pip could not install Synapse ({status}); see {}:\n{}", log.display(), log_tail(&log));
    }
    match installed_version(&python).await {
        Some(version) if version == SYNAPSE_VERSION => {
            tracing::info!("Synapse installed in {:.0} s", started.elapsed().as_secs_f64());
            Ok(python)
        }
        other => bail!("after installing, the virtualenv has Synapse {other:?}, not {SYNAPSE_VERSION}"),
    }
}

/// Debian's own Python first (the distribution's optimised build, which Synapse's Debian packages
/// run too), else whichever `python3` is first on the path.
async fn create_venv(venv: &Path) -> anyhow::Result<()> {
    let mut failures = Vec::new();
    for python in ["/usr/bin/python3", "python3"] {
        match run(Command::new(python).args(["-m", "venv"]).arg(venv)).await {
            Ok(()) => return Ok(()),
            Err(error) => failures.push(format!("{error:#}")),
        }
        let _ = std::fs::remove_dir_all(venv);
    }
    bail!("cannot create a virtualenv (Debian: apt-get install python3-venv): {}", failures.join("; "))
}

/// The Synapse version importable (with its PostgreSQL driver) by `python`, if any.
async fn installed_version(python: &Path) -> Option<String> {
    // Not `synapse.__version__`: inside a git work tree (the venv is under `target/`) it appends
    // that tree's branch and commit.
    let script = "import importlib.metadata, psycopg2, synapse; print(importlib.metadata.version('matrix-synapse'))";
    let output = Command::new(python).args(["-c", script]).output().await.ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The workspace's cargo target directory: `CARGO_TARGET_DIR`, else the one this binary was
/// built into (the nearest ancestor holding cargo's `CACHEDIR.TAG`, e.g. `target/` for
/// `target/release/natter-bench`).
fn target_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return Ok(std::path::absolute(dir)?);
    }
    let exe = std::env::current_exe()?;
    let dir = exe.ancestors().skip(1).find(|dir| dir.join("CACHEDIR.TAG").exists());
    dir.or_else(|| exe.parent()?.parent())
        .map(Path::to_path_buf)
        .with_context(|| format!("cannot tell the target directory of {}", exe.display()))
}

pub(super) async fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command.output().await.with_context(|| format!("cannot run {command:?}"))?;
    crate::procs::check_success(command, &output)
}

/// The last lines of a log, for an error message.
pub(super) fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
