//! Blobs as files under a root directory: `<root>/<key>`. Writes go to `<root>/.tmp/` and are
//! renamed into place after an fsync, so a blob appears whole or not at all. Uploads are private
//! messages' attachments: directories are created 0700 and files 0600, whatever the umask.

use std::io::SeekFrom;
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use natter_core::blob::{BlobError, BlobResult, BlobStore, ByteStream, check_key};
use tokio::fs;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

/// Read buffer per chunk served.
const CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct LocalBlobs {
    root: PathBuf,
}

impl LocalBlobs {
    /// Blobs under `root` (created when missing).
    pub async fn open(root: impl Into<PathBuf>) -> BlobResult<Self> {
        let root = root.into();
        create_private_dir(&root.join(".tmp")).await.map_err(|e| io_error(&root, e))?;
        Ok(Self { root })
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
        let temp = self.root.join(".tmp").join(uuid::Uuid::new_v4().simple().to_string());
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
}
