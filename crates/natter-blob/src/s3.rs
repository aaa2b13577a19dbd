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
        Self::from_builder(builder(settings))
    }

    fn from_builder(builder: AmazonS3Builder) -> BlobResult<Self> {
        // object_store's reqwest has no crypto provider of its own (aws-lc-rs would need cmake)
        // and panics when it builds its client before one is installed; an error here means
        // that the process installed one already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store = builder.build().map_err(|e| BlobError::Backend(format!("S3 configuration: {e}")))?;
        Ok(Self { store: Arc::new(store) })
    }

    fn path(key: &str) -> BlobResult<Path> {
        check_key(key)?;
        Path::parse(key).map_err(|_| BlobError::InvalidKey(key.to_owned()))
    }
}

/// The client `settings` describe (tests add to it).
fn builder(settings: &S3Settings) -> AmazonS3Builder {
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
    builder
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

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::thread::JoinHandle;
    use std::time::Duration;

    use object_store::{Certificate, ClientOptions, RetryConfig};
    use rustls::pki_types::PrivateKeyDer;

    use super::*;

    /// A one-connection HTTPS server on 127.0.0.1 with a self-signed certificate for `localhost`:
    /// it answers one request with a 404 and reports the request line, or how TLS failed.
    struct TlsServer {
        endpoint: String,
        certificate_pem: String,
        outcome: JoinHandle<Result<String, String>>,
    }

    fn tls_server() -> TlsServer {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("a certificate");
        // The server names its provider, so that only the client under test can install the
        // process-wide one.
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], PrivateKeyDer::Pkcs8(signing_key.serialize_der().into()))
            .expect("a server configuration");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
        let port = listener.local_addr().expect("the bound address").port();
        let outcome = std::thread::spawn(move || {
            let (socket, _) = listener.accept().map_err(|e| e.to_string())?;
            socket.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
            let connection = rustls::ServerConnection::new(Arc::new(config)).map_err(|e| e.to_string())?;
            let mut stream = rustls::StreamOwned::new(connection, socket);
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") {
                stream.read_exact(&mut byte).map_err(|e| e.to_string())?;
                request.push(byte[0]);
            }
            stream
                .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .and_then(|()| stream.flush())
                .map_err(|e| e.to_string())?;
            Ok(String::from_utf8_lossy(&request).lines().next().unwrap_or_default().to_owned())
        });
        TlsServer { endpoint: format!("https://localhost:{port}"), certificate_pem: cert.pem(), outcome }
    }

    fn settings(endpoint: &str) -> S3Settings {
        S3Settings {
            endpoint: endpoint.to_owned(),
            bucket: "bucket".into(),
            region: "us-east-1".into(),
            access_key: "key".into(),
            secret_key: "secret".into(),
            path_style: true,
            allow_http: false,
        }
    }

    /// One try: a failed handshake is otherwise retried for minutes.
    fn no_retries() -> RetryConfig {
        RetryConfig { max_retries: 0, ..RetryConfig::default() }
    }

    #[tokio::test]
    async fn talks_to_s3_over_tls_with_ring() {
        let server = tls_server();
        let certificate = Certificate::from_pem(server.certificate_pem.as_bytes()).expect("a PEM certificate");
        let builder = builder(&settings(&server.endpoint))
            .with_client_options(ClientOptions::new().with_root_certificate(certificate))
            .with_retry(no_retries());
        let store = S3Blobs::from_builder(builder).expect("configure S3");
        assert_eq!(store.head("files/missing").await.expect("a HEAD over TLS"), None);
        let request = server.outcome.join().expect("the server thread").expect("a request over TLS");
        assert_eq!(request, "HEAD /bucket/files/missing HTTP/1.1");
    }

    #[tokio::test]
    async fn refuses_an_untrusted_certificate() {
        let server = tls_server();
        let store =
            S3Blobs::from_builder(builder(&settings(&server.endpoint)).with_retry(no_retries())).expect("configure S3");
        let result = store.head("files/missing").await;
        assert!(matches!(result, Err(BlobError::Backend(_))), "{result:?}");
        // The client read the certificate and rejected it: the handshake ran.
        let outcome = server.outcome.join().expect("the server thread");
        assert!(outcome.as_ref().is_err_and(|e| e.contains("alert")), "{outcome:?}");
    }
}
