//! The blob-store conformance suite: every test runs against `LocalBlobs` (a fresh directory)
//! and `S3Blobs` (the bucket in `NATTER_TEST_S3_URL`, e.g. `http://127.0.0.1:25900/natter-test`,
//! which `scripts/test.sh` serves with moto). Without that variable the S3 variants print a skip
//! line, or fail when `CI` is set.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use natter_blob::{LocalBlobs, S3Blobs, S3Settings};
use natter_core::blob::{BlobError, BlobStore, ByteStream};

const S3_URL_VAR: &str = "NATTER_TEST_S3_URL";

struct Blobs {
    store: Arc<dyn BlobStore>,
    /// Keys are unique per test, so tests can share a bucket.
    prefix: String,
    _dir: Option<TempDir>,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Blobs {
    async fn local() -> Blobs {
        let dir = std::env::temp_dir().join(format!("natter-blob-{}", uuid::Uuid::new_v4().simple()));
        let store = LocalBlobs::open(&dir).await.expect("open the directory");
        Blobs { store: Arc::new(store), prefix: "files".into(), _dir: Some(TempDir(dir)) }
    }

    fn s3(test: &str) -> Option<Blobs> {
        let url = match std::env::var(S3_URL_VAR) {
            Ok(url) if !url.is_empty() => url,
            _ if std::env::var_os("CI").is_some() => panic!("{test}: {S3_URL_VAR} is not set, and CI requires it"),
            _ => {
                eprintln!("skipping s3::{test}: set {S3_URL_VAR} to run it");
                return None;
            }
        };
        let (endpoint, bucket) = url.rsplit_once('/').expect("NATTER_TEST_S3_URL is http://host:port/bucket");
        let settings = S3Settings {
            endpoint: endpoint.to_owned(),
            bucket: bucket.to_owned(),
            region: "us-east-1".into(),
            access_key: "test".into(),
            secret_key: "test".into(),
            path_style: true,
            allow_http: true,
        };
        let store = S3Blobs::new(&settings).expect("configure S3");
        let prefix = format!("t/{}", uuid::Uuid::new_v4().simple());
        Some(Blobs { store: Arc::new(store), prefix, _dir: None })
    }

    fn key(&self, name: &str) -> String {
        format!("{}/{name}", self.prefix)
    }

    async fn read(&self, key: &str, range: Option<std::ops::Range<u64>>) -> Vec<u8> {
        let chunks: Vec<Bytes> = self.store.get(key, range).await.expect("get").try_collect().await.expect("read");
        chunks.concat()
    }
}

fn chunks(parts: Vec<Vec<u8>>) -> ByteStream<'static> {
    futures_util::stream::iter(parts.into_iter().map(|p| Ok(Bytes::from(p)))).boxed()
}

/// Deterministic bytes that differ at every offset of interest.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

macro_rules! conformance {
    ($($test:ident),+ $(,)?) => {
        mod local {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(&super::Blobs::local().await).await;
                }
            )+
        }
        mod s3 {
            $(
                #[tokio::test]
                async fn $test() {
                    if let Some(blobs) = super::Blobs::s3(stringify!($test)) {
                        super::$test(&blobs).await;
                    }
                }
            )+
        }
    };
}

conformance!(
    put_then_read_whole_and_ranges,
    put_replaces_and_delete_removes,
    missing_blobs_are_not_found,
    a_failed_stream_stores_nothing,
    large_blobs_stream_through,
    keys_core_would_not_choose_are_refused,
);

async fn put_then_read_whole_and_ranges(blobs: &Blobs) {
    let key = blobs.key("a");
    let data = pattern(1000);
    let written = blobs.store.put(&key, chunks(vec![data[..10].to_vec(), data[10..].to_vec()])).await.expect("put");
    assert_eq!(written, 1000);
    assert_eq!(blobs.store.head(&key).await.expect("head"), Some(1000));
    assert_eq!(blobs.read(&key, None).await, data);
    assert_eq!(blobs.read(&key, Some(3..10)).await, &data[3..10]);
    assert_eq!(blobs.read(&key, Some(990..1000)).await, &data[990..]);
    assert_eq!(blobs.read(&key, Some(0..1)).await, &data[..1]);
    assert!(blobs.read(&key, Some(5..5)).await.is_empty());

    let empty = blobs.key("empty");
    assert_eq!(blobs.store.put(&empty, chunks(vec![])).await.expect("put"), 0);
    assert_eq!(blobs.store.head(&empty).await.expect("head"), Some(0));
    assert!(blobs.read(&empty, None).await.is_empty());
}

async fn put_replaces_and_delete_removes(blobs: &Blobs) {
    let key = blobs.key("b");
    blobs.store.put(&key, chunks(vec![b"first version".to_vec()])).await.expect("put");
    blobs.store.put(&key, chunks(vec![b"second".to_vec()])).await.expect("put again");
    assert_eq!(blobs.read(&key, None).await, b"second");
    blobs.store.delete(&key).await.expect("delete");
    assert_eq!(blobs.store.head(&key).await.expect("head"), None);
    blobs.store.delete(&key).await.expect("deleting a missing blob is fine");
}

async fn missing_blobs_are_not_found(blobs: &Blobs) {
    let key = blobs.key("never");
    assert_eq!(blobs.store.head(&key).await.expect("head"), None);
    assert!(matches!(blobs.store.get(&key, None).await, Err(BlobError::NotFound)));
    assert!(matches!(blobs.store.get(&key, Some(0..4)).await, Err(BlobError::NotFound)));
}

async fn a_failed_stream_stores_nothing(blobs: &Blobs) {
    for size in [100, 11 * 1024 * 1024] {
        let key = blobs.key(&format!("broken-{size}"));
        let parts: Vec<Result<Bytes, BlobError>> = vec![
            Ok(Bytes::from(pattern(size))),
            Err(BlobError::Aborted("the client went away".into())),
            Ok(Bytes::from_static(b"never written")),
        ];
        let result = blobs.store.put(&key, futures_util::stream::iter(parts).boxed()).await;
        assert!(matches!(result, Err(BlobError::Aborted(_))), "{size}: the stream's error comes back: {result:?}");
        assert_eq!(blobs.store.head(&key).await.expect("head"), None, "{size}: nothing stored");
    }
}

async fn large_blobs_stream_through(blobs: &Blobs) {
    // Beyond the S3 adapter's 10 MiB buffer: a multipart upload.
    let key = blobs.key("large");
    let data = pattern(23 * 1024 * 1024 + 17);
    let parts: Vec<Vec<u8>> = data.chunks(256 * 1024).map(<[u8]>::to_vec).collect();
    assert_eq!(blobs.store.put(&key, chunks(parts)).await.expect("put"), data.len() as u64);
    assert_eq!(blobs.store.head(&key).await.expect("head"), Some(data.len() as u64));
    let back = blobs.read(&key, None).await;
    assert!(back == data, "the bytes come back unchanged");
    let start = 10 * 1024 * 1024 - 5;
    assert_eq!(blobs.read(&key, Some(start as u64..start as u64 + 10)).await, &data[start..start + 10]);
}

async fn keys_core_would_not_choose_are_refused(blobs: &Blobs) {
    for key in ["../escape", "/abs", "a//b", "with space"] {
        assert!(matches!(blobs.store.put(key, chunks(vec![b"x".to_vec()])).await, Err(BlobError::InvalidKey(_))));
        assert!(matches!(blobs.store.get(key, None).await, Err(BlobError::InvalidKey(_))));
        assert!(matches!(blobs.store.head(key).await, Err(BlobError::InvalidKey(_))));
        assert!(matches!(blobs.store.delete(key).await, Err(BlobError::InvalidKey(_))));
    }
}
