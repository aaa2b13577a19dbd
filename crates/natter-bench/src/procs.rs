//! Processes the benchmark starts (killed with their process group when dropped) and what they
//! cost: CPU time and resident memory read from `/proc`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use crate::measure::Usage;

/// Linux reports CPU times in `/proc/*/stat` in USER_HZ ticks, which is 100 on every
/// architecture Linux supports (it is part of the user-space ABI, unlike the kernel's HZ).
const TICKS_PER_SEC: f64 = 100.0;

/// A child process in a process group of its own, so that stopping it also stops whatever it
/// started (Synapse's workers, a shell's children). Killed when dropped.
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `command` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> anyhow::Result<Proc> {
        let out = std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        command.stdin(Stdio::null()).stdout(out).stderr(err).process_group(0).kill_on_drop(true);
        let child = command.spawn().with_context(|| format!("cannot start {name}"))?;
        Ok(Proc { name: name.to_owned(), child, log: log.to_path_buf() })
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Fails if the process has already exited (e.g. it could not bind its port).
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early with {status}", self.name);
        }
        Ok(())
    }

    /// Waits until something accepts connections on `port`; fails at once, with the first lines
    /// of the process's log, if the process exits first.
    pub async fn wait_for_port(&mut self, port: u16, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if let Err(error) = self.check_running() {
                let output = std::fs::read_to_string(&self.log).unwrap_or_default();
                let first_lines: Vec<&str> = output.lines().take(5).collect();
                bail!("{error}: {}", first_lines.join(" / "));
            }
            if Instant::now() > deadline {
                bail!("{} did not listen on port {port} within {timeout:?} (see {})", self.name, self.log.display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// SIGTERM to the whole group, then SIGKILL after `grace`.
    pub async fn stop(mut self, grace: Duration) {
        let pid = self.pid();
        if pid != 0 {
            signal_group(pid, "TERM");
            if tokio::time::timeout(grace, self.child.wait()).await.is_err() {
                signal_group(pid, "KILL");
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            signal_group(pid, "KILL");
        }
    }
}

/// Sends `signal` to process group `pgid` with kill(1): `unsafe` is forbidden in this workspace,
/// and one exec per stopped server costs nothing here.
pub(crate) fn signal_group(pgid: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// An error, with what the command printed, unless it succeeded.
pub fn check_success(command: &dyn std::fmt::Debug, output: &std::process::Output) -> anyhow::Result<()> {
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// User + system CPU seconds of `pid` so far (its threads included, exited children not).
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it start past the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SEC)
}

/// Resident set size of `pid` in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl Proc {
    /// `kill -9` of the whole group, as a crash: no grace, nothing flushed. Waits for the exit.
    pub async fn kill9(mut self) {
        let pid = self.pid();
        if pid != 0 {
            signal_group(pid, "KILL");
            let _ = self.child.wait().await;
        }
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`) to the whole group: a process that hangs, then wakes.
    pub fn freeze(&self, frozen: bool) {
        let pid = self.pid();
        if pid != 0 {
            signal_group(pid, if frozen { "STOP" } else { "CONT" });
        }
    }
}

/// Every process whose parent chain leads to `root` (its workers), `root` included.
pub fn process_tree(root: u32) -> Vec<u32> {
    let mut tree = vec![root];
    let Ok(entries) = std::fs::read_dir("/proc") else { return tree };
    let parents: Vec<(u32, u32)> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let rest = &stat[stat.rfind(')')? + 2..];
            let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut index = 0;
    while index < tree.len() {
        let parent = tree[index];
        tree.extend(parents.iter().filter(|(_, ppid)| *ppid == parent).map(|(pid, _)| *pid));
        index += 1;
    }
    tree
}

/// Samples the CPU and memory of a set of processes during a run.
pub struct Monitor {
    pids: Vec<u32>,
    started: Instant,
    cpu_at_start: f64,
    peak_rss: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    sampler: tokio::task::JoinHandle<()>,
}

impl Monitor {
    pub fn start(pids: Vec<u32>) -> Monitor {
        let cpu_at_start = pids.iter().filter_map(|pid| cpu_secs(*pid)).sum();
        let peak_rss = Arc::new(AtomicU64::new(total_rss(&pids)));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = tokio::spawn({
            let (pids, peak_rss, stop) = (pids.clone(), peak_rss.clone(), stop.clone());
            async move {
                while !stop.load(Ordering::Relaxed) {
                    peak_rss.fetch_max(total_rss(&pids), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
        Monitor { pids, started: Instant::now(), cpu_at_start, peak_rss, stop, sampler }
    }

    /// This process alone.
    pub fn start_self() -> Monitor {
        Monitor::start(vec![std::process::id()])
    }

    pub async fn finish(self) -> Usage {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.sampler.await;
        let cpu_now: f64 = self.pids.iter().filter_map(|pid| cpu_secs(*pid)).sum();
        let wall = self.started.elapsed().as_secs_f64().max(1e-9);
        let cpu_secs = (cpu_now - self.cpu_at_start).max(0.0);
        let peak = self.peak_rss.load(Ordering::Relaxed).max(total_rss(&self.pids));
        Usage { cpu_secs, cpu_percent: 100.0 * cpu_secs / wall, peak_rss_bytes: peak }
    }
}

fn total_rss(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|pid| rss_bytes(*pid)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(rss_bytes(me).expect("own RSS") > 1024 * 1024);
        let before = cpu_secs(me).expect("own CPU time");
        let mut x = 0_u64;
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(120) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        assert!(cpu_secs(me).expect("own CPU time") > before, "spinning costs CPU time");
        assert!(process_tree(me).contains(&me));
    }
}
