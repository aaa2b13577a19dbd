//! Blobs as files under a root directory: `<root>/<key>`. Writes go to a temporary file and are
//! renamed into place after an fsync, so a blob appears whole or not at all. Uploads are private
//! messages' attachments: directories are created 0700 and files 0600, whatever the umask.
//!
//! Each process writes its temporary files into a directory of its own, `<root>/.tmp/<id>/`, and
//! holds an exclusive lock (`flock`) on `<root>/.tmp/<id>.lock` while it lives; the kernel drops
//! the lock when the process dies, however it dies. Opening the store sweeps `.tmp`: a directory
//! whose lock nobody holds is a dead process's unfinished writes and is removed. Processes that
//! share a directory (a cluster on one file system) never remove each other's live writes.

use std::io::SeekFrom;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use natter_core::blob::{BlobError, BlobResult, BlobStore, ByteStream, check_key};
use tokio::fs;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

/// Read buffer per chunk served.
const CHUNK: usize = 64 * 1024;

/// A loose file in `.tmp` (not in a process's directory) this old is left over: an unfinished
/// write of a version that wrote straight into `.tmp`, or the lock of a process killed while it
/// started.
const STALE_LOOSE_FILE: Duration = Duration::from_secs(60 * 60);

#[derive(Debug, Clone)]
pub struct LocalBlobs {
    root: PathBuf,
    temp: Arc<TempDir>,
}

/// This process's directory for unfinished writes, and the lock that says it is in use.
#[derive(Debug)]
struct TempDir {
    dir: PathBuf,
    _lock: std::fs::File,
}

impl LocalBlobs {
    /// Blobs under `root` (created when missing). Removes what dead processes left unfinished.
    pub async fn open(root: impl Into<PathBuf>) -> BlobResult<Self> {
        let root = root.into();
        let tmp = root.join(".tmp");
        create_private_dir(&tmp).await.map_err(|e| io_error(&root, e))?;
        let sweep_dir = tmp.clone();
        let temp = tokio::task::spawn_blocking(move || {
            let swept = sweep_temp(&sweep_dir)?;
            if swept > 0 {
                tracing::info!(files = swept, dir = %sweep_dir.display(), "removed unfinished writes of processes that died");
            }
            claim_temp_dir(&sweep_dir)
        })
        .await
        .map_err(|e| BlobError::Backend(format!("sweeping {}: {e}", tmp.display())))?
        .map_err(|e| io_error(&tmp, e))?;
        Ok(Self { root, temp: Arc::new(temp) })
    }

    fn path(&self, key: &str) -> BlobResult<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }
}

fn io_error(path: &Path, error: std::io::Error) -> BlobError {
    if error.kind() == std::io::ErrorKind::NotFound {
        BlobError::NotFound
    } else {
        BlobError::Backend(format!("{}: {error}", path.display()))
    }
}

#[async_trait]
impl BlobStore for LocalBlobs {
    async fn put(&self, key: &str, mut data: ByteStream<'_>) -> BlobResult<u64> {
        let path = self.path(key)?;
        let temp = self.temp.dir.join(uuid::Uuid::new_v4().simple().to_string());
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        options.mode(0o600);
        let mut file = options.open(&temp).await.map_err(|e| io_error(&temp, e))?;
        let written: BlobResult<u64> = async {
            let mut written = 0u64;
            while let Some(chunk) = data.next().await {
                let chunk = chunk?;
                file.write_all(&chunk).await.map_err(|e| io_error(&temp, e))?;
                written += chunk.len() as u64;
            }
            file.sync_all().await.map_err(|e| io_error(&temp, e))?;
            Ok(written)
        }
        .await;
        drop(file);
        let finished = match written {
            Ok(written) => place(&temp, &path).await.map(|()| written),
            Err(error) => Err(error),
        };
        if finished.is_err() {
            let _ = fs::remove_file(&temp).await;
        }
        finished
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> BlobResult<ByteStream<'static>> {
        let path = self.path(key)?;
        let mut file = fs::File::open(&path).await.map_err(|e| io_error(&path, e))?;
        let stream_path = path.clone();
        let reader: Box<dyn tokio::io::AsyncRead + Send + Unpin> = match range {
            Some(range) => {
                file.seek(SeekFrom::Start(range.start)).await.map_err(|e| io_error(&path, e))?;
                Box::new(file.take(range.end.saturating_sub(range.start)))
            }
            None => Box::new(file),
        };
        Ok(ReaderStream::with_capacity(reader, CHUNK).map_err(move |e| io_error(&stream_path, e)).boxed())
    }

    async fn head(&self, key: &str) -> BlobResult<Option<u64>> {
        let path = self.path(key)?;
        match fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Ok(None),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(io_error(&path, error)),
        }
    }

    async fn delete(&self, key: &str) -> BlobResult<()> {
        let path = self.path(key)?;
        match fs::remove_file(&path).await {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(io_error(&path, error)),
            _ => Ok(()),
        }
    }
}

/// `mkdir -p -m 0700`.
async fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder.create(dir).await
}

/// Makes this process's `<tmp>/<id>/` and locks `<tmp>/<id>.lock`. The lock file is locked
/// under another name first, so no sweep ever sees it unlocked.
fn claim_temp_dir(tmp: &Path) -> std::io::Result<TempDir> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let fresh = tmp.join(format!("{id}.lock.new"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let lock = options.open(&fresh)?;
    lock.try_lock().map_err(|error| std::io::Error::other(format!("cannot lock {}: {error}", fresh.display())))?;
    std::fs::rename(&fresh, tmp.join(format!("{id}.lock")))?;
    let dir = tmp.join(&id);
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&dir)?;
    Ok(TempDir { dir, _lock: lock })
}

/// Removes from `tmp` the directories of processes that died (their lock is free) and loose
/// files older than [`STALE_LOOSE_FILE`]; returns how many unfinished writes went.
fn sweep_temp(tmp: &Path) -> std::io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(tmp)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(id) = name.strip_suffix(".lock") {
            let Ok(lock) = std::fs::OpenOptions::new().write(true).open(&path) else { continue };
            // Held: a live process's. (An error other than "held" leaves it alone too.)
            if lock.try_lock().is_err() {
                continue;
            }
            let dir = tmp.join(id);
            removed += std::fs::read_dir(&dir).map(Iterator::count).unwrap_or(0);
            ignore_not_found(std::fs::remove_dir_all(&dir))?;
            ignore_not_found(std::fs::remove_file(&path))?;
        } else if entry.file_type()?.is_file() {
            let age = entry.metadata()?.modified()?.elapsed().unwrap_or_default();
            if age >= STALE_LOOSE_FILE {
                ignore_not_found(std::fs::remove_file(&path))?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Another process sweeping at the same time may have removed it first.
fn ignore_not_found(result: std::io::Result<()>) -> std::io::Result<()> {
    match result {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Renames the finished temporary file to `path`, creating its directory.
async fn place(temp: &Path, path: &Path) -> BlobResult<()> {
    if let Some(parent) = path.parent() {
        create_private_dir(parent).await.map_err(|e| io_error(parent, e))?;
    }
    fs::rename(temp, path).await.map_err(|e| io_error(path, e))
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).expect("exists").permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn blobs_and_their_directories_are_private() {
        let root = std::env::temp_dir().join(format!("natter-blob-modes-{}", uuid::Uuid::new_v4().simple()));
        let blobs = LocalBlobs::open(root.join("files")).await.expect("open");
        let data: ByteStream<'static> =
            Box::pin(futures_util::stream::iter([Ok(bytes::Bytes::from_static(b"secret"))]));
        blobs.put("files/abc", data).await.expect("put");
        for dir in [root.join("files"), root.join("files/.tmp"), root.join("files/files")] {
            assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        }
        assert_eq!(mode(&root.join("files/files/abc")), 0o600);
        std::fs::remove_dir_all(&root).expect("clean up");
    }

    #[tokio::test]
    async fn opening_removes_what_dead_processes_left_and_keeps_live_writes() {
        let root = std::env::temp_dir().join(format!("natter-blob-sweep-{}", uuid::Uuid::new_v4().simple()));
        let live = LocalBlobs::open(&root).await.expect("open");
        let live_write = live.temp.dir.join("in-flight");
        std::fs::write(&live_write, b"half").expect("a live process's unfinished write");
        // A process killed mid-write: its directory and its (no longer held) lock.
        let tmp = root.join(".tmp");
        std::fs::create_dir(tmp.join("dead")).expect("dead dir");
        std::fs::write(tmp.join("dead/upload"), b"half").expect("dead write");
        std::fs::write(tmp.join("dead.lock"), b"").expect("dead lock");

        let second = LocalBlobs::open(&root).await.expect("open again");
        assert!(!tmp.join("dead").exists() && !tmp.join("dead.lock").exists(), "the dead process's writes are gone");
        assert!(live_write.exists(), "a live process's write is kept");
        let locks = std::fs::read_dir(&tmp)
            .expect("tmp")
            .filter(|entry| entry.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".lock")))
            .count();
        assert_eq!(locks, 2, "one lock per live store");

        drop(live);
        drop(second);
        let _third = LocalBlobs::open(&root).await.expect("open after both closed");
        assert!(!live_write.exists(), "the writes of a store that went away are swept");
        std::fs::remove_dir_all(&root).expect("clean up");
    }
}
