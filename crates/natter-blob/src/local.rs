//! Blobs as files under a root directory: `<root>/<key>`. Writes go to `<root>/.tmp/` and are
//! renamed into place after an fsync, so a blob appears whole or not at all.

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
        fs::create_dir_all(root.join(".tmp")).await.map_err(|e| io_error(&root, e))?;
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
        let mut file = fs::File::create(&temp).await.map_err(|e| io_error(&temp, e))?;
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

/// Renames the finished temporary file to `path`, creating its directory.
async fn place(temp: &Path, path: &Path) -> BlobResult<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).await.map_err(|e| io_error(parent, e))?;
    }
    fs::rename(temp, path).await.map_err(|e| io_error(path, e))
}
