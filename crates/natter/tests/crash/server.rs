//! One `natter serve` process on the embedded defaults, on a given data dir and a free port, its
//! output appended to a log file that every round of the test shares.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::client::Base;

pub(crate) struct Server {
    child: Child,
    base_url: String,
}

impl Base for Server {
    fn base_url(&self) -> &str {
        &self.base_url
    }
}

impl Server {
    /// Starts `natter serve` on `data_dir` (SQLite, the embedded index, local files, the in-process
    /// bus and memory jobs: nothing configured) and returns once it listens. With `model`, the
    /// embedded Whisper transcribes voice messages (two threads: only whether a transcript comes matters here).
    pub(crate) fn start(data_dir: &Path, model: Option<&Path>, log: &Path) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_natter"));
        // The test's own NATTER_TEST_* variables are no configuration of the server.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("NATTER_") {
                command.env_remove(name);
            }
        }
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("NATTER_AUTH__ARGON2_MEMORY_KIB", "256")
            .env("NATTER_AUTH__ARGON2_ITERATIONS", "1")
            // The load is the point here, not the abuse limits (tests/api/abuse.rs has those).
            .env("NATTER_LIMITS__MESSAGES_PER_USER", "0")
            .env("NATTER_LIMITS__UPLOADS_PER_USER", "0")
            .env("NATTER_LIMITS__WS_CONNECTS_PER_ADDRESS", "0")
            .env("NATTER_LIMITS__WS_FRAMES_PER_SEC", "0")
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1");
        if let Some(model) = model {
            command
                .env("NATTER_SPEECH__ENGINE", "whisper")
                .env("NATTER_SPEECH__MODEL_DIR", model)
                .env("NATTER_SPEECH__THREADS", "2");
        } else {
            command.env("NATTER_SPEECH__ENGINE", "none");
        }
        let mut log_file = append(log);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(append(log))
            .spawn()
            .expect("start natter serve");
        let mut reader = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut line = String::new();
        let base_url = loop {
            line.clear();
            let read = reader.read_line(&mut line).expect("read natter's output");
            if let Some(base) = line.trim().strip_prefix("natter listening on ") {
                break base.to_owned();
            }
            let _ = log_file.write_all(line.as_bytes());
            if read == 0 {
                let status = child.wait().expect("natter exited");
                panic!("natter serve did not start ({status}); see {}", log.display());
            }
        };
        // Keep draining, so the server's later log lines never meet a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut log_file));
        Server { child, base_url }
    }

    /// kill -9, and reap it.
    pub(crate) fn kill(&mut self) {
        self.child.kill().expect("SIGKILL natter");
        self.child.wait().expect("reap natter");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn append(path: &Path) -> File {
    OpenOptions::new().create(true).append(true).open(path).expect("open the log file")
}

/// A fresh data dir under the system's temp dir.
pub(crate) fn fresh_data_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("natter-crash-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("create the data dir");
    dir
}
