//! Blobs as objects in an S3-compatible bucket, through `object_store`.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use natter_core::blob::{BlobError, BlobResult, BlobStore, ByteStream, check_key};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use tokio::io::AsyncWriteExt;

/// Bytes buffered before an upload becomes multipart (and the part size after that).
const PART_BYTES: usize = 10 * 1024 * 1024;

/// Where the bucket is and how to reach it.
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    /// E.g. `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:9000`; empty: AWS's default.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    /// `http://host/bucket/key` rather than `http://bucket.host/key` (MinIO, moto, Ceph).
    pub path_style: bool,
    /// Allow an `http://` endpoint.
    pub allow_http: bool,
}

#[derive(Debug, Clone)]
pub struct S3Blobs {
    store: Arc<dyn ObjectStore>,
}

impl S3Blobs {
    /// Configures the client; nothing is contacted until the first call.
    pub fn new(settings: &S3Settings) -> BlobResult<Self> {
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_access_key_id(&settings.access_key)
            .with_secret_access_key(&settings.secret_key)
            .with_virtual_hosted_style_request(!settings.path_style)
            .with_allow_http(settings.allow_http);
        if !settings.endpoint.is_empty() {
            builder = builder.with_endpoint(&settings.endpoint);
        }
        let store = builder.build().map_err(|e| BlobError::Backend(format!("S3 configuration: {e}")))?;
        Ok(Self { store: Arc::new(store) })
    }

    fn path(key: &str) -> BlobResult<Path> {
        check_key(key)?;
        Path::parse(key).map_err(|_| BlobError::InvalidKey(key.to_owned()))
    }
}

fn s3_error(error: object_store::Error) -> BlobError {
    match error {
        object_store::Error::NotFound { .. } => BlobError::NotFound,
        other => BlobError::Backend(other.to_string()),
    }
}

#[async_trait]
impl BlobStore for S3Blobs {
    async fn put(&self, key: &str, mut data: ByteStream<'_>) -> BlobResult<u64> {
        let path = Self::path(key)?;
        let mut writer = BufWriter::with_capacity(self.store.clone(), path, PART_BYTES);
        let written: BlobResult<u64> = async {
            let mut written = 0u64;
            while let Some(chunk) = data.next().await {
                let chunk = chunk?;
                written += chunk.len() as u64;
                writer.put(chunk).await.map_err(s3_error)?;
            }
            Ok(written)
        }
        .await;
        match written {
            Ok(written) => {
                writer.shutdown().await.map_err(|e| BlobError::Backend(format!("S3 upload: {e}")))?;
                Ok(written)
            }
            Err(error) => {
                // Nothing was stored unless a multipart upload began; abort that one.
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(error = %abort, key, "cannot abort a multipart upload");
                }
                Err(error)
            }
        }
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> BlobResult<ByteStream<'static>> {
        let path = Self::path(key)?;
        if range.as_ref().is_some_and(|r| r.is_empty()) {
            // S3 cannot serve an empty range; the blob must still exist.
            self.store.head(&path).await.map_err(s3_error)?;
            return Ok(futures_util::stream::empty().boxed());
        }
        let options = GetOptions { range: range.map(GetRange::Bounded), ..GetOptions::default() };
        let result = self.store.get_opts(&path, options).await.map_err(s3_error)?;
        Ok(result.into_stream().map_err(s3_error).boxed())
    }

    async fn head(&self, key: &str) -> BlobResult<Option<u64>> {
        match self.store.head(&Self::path(key)?).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(s3_error(error)),
        }
    }

    async fn delete(&self, key: &str) -> BlobResult<()> {
        match self.store.delete(&Self::path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(s3_error(error)),
        }
    }
}
