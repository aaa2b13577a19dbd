//! Files in tests: uploads and downloads over HTTP, media made on the spot (PNG with the `image`
//! crate, WAV by hand), and pointing a server at S3 (`NATTER_TEST_S3_URL`, the moto server that
//! `scripts/test.sh` starts; e.g. `http://127.0.0.1:25900/natter-test`).

use std::io::Cursor;

use natter::config::Config;
use reqwest::header::HeaderMap;
use reqwest::multipart::{Form, Part};
use sha2::{Digest, Sha256};

use super::{Resp, TestApp, TestUser};

const S3_URL_VAR: &str = "NATTER_TEST_S3_URL";

/// Where a test server keeps file bytes.
#[derive(Debug, Clone)]
pub(crate) enum BlobBackend {
    Local,
    /// The bucket URL, `http://host:port/bucket`.
    S3(String),
}

impl BlobBackend {
    /// S3 when `NATTER_TEST_S3_URL` is set; otherwise `None` after a skip line, or a panic under
    /// CI, where a silently skipped backend would hide failures.
    pub(crate) fn s3_or_skip(test: &str) -> Option<BlobBackend> {
        match std::env::var(S3_URL_VAR) {
            Ok(url) if !url.is_empty() => Some(BlobBackend::S3(url)),
            _ if std::env::var_os("CI").is_some() => {
                panic!("{test}: {S3_URL_VAR} is not set, and CI requires S3 tests")
            }
            _ => {
                eprintln!("skipping {test}: set {S3_URL_VAR} to run it on S3");
                None
            }
        }
    }

    /// Points `config` at this backend.
    pub(crate) fn apply(&self, config: &mut Config) {
        if let BlobBackend::S3(url) = self {
            let (endpoint, bucket) = url.rsplit_once('/').expect("NATTER_TEST_S3_URL is http://host:port/bucket");
            config.files.backend = natter::config::FilesBackend::S3;
            config.files.s3.endpoint = endpoint.to_owned();
            config.files.s3.bucket = bucket.to_owned();
            config.files.s3.region = "us-east-1".into();
            config.files.s3.access_key = "test".into();
            config.files.s3.secret_key = "test".into();
            config.files.s3.path_style = true;
            config.files.s3.allow_http = true;
        }
    }
}

/// Defines, for each named `async fn(BlobBackend)`, a module with `local` and `s3` tests.
macro_rules! on_both_blob_stores {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn local() {
                super::$name($crate::common::BlobBackend::Local).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3() {
                if let Some(backend) = $crate::common::BlobBackend::s3_or_skip(module_path!()) {
                    super::$name(backend).await;
                }
            }
        }
    )+};
}
pub(crate) use on_both_blob_stores;

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A PNG of `width` × `height` with a gradient (so it is not trivially compressible).
pub(crate) fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).expect("encode a PNG");
    out.into_inner()
}

/// A mono 16-bit PCM WAV of `millis` ms at 16 kHz (a 440 Hz tone).
pub(crate) fn wav(millis: u32) -> Vec<u8> {
    let samples = 16 * millis;
    let data_len = samples * 2;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&16_000u32.to_le_bytes());
    out.extend_from_slice(&32_000u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for n in 0..samples {
        let sample = ((n as f32 * 440.0 * std::f32::consts::TAU / 16_000.0).sin() * 8000.0) as i16;
        out.extend_from_slice(&sample.to_le_bytes());
    }
    out
}

/// Deterministic bytes that are not text and not any known format.
pub(crate) fn binary(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 131 + i / 7) % 251) as u8 | 0x80).collect()
}

impl TestApp {
    /// `POST /files` with one part `file` named `name`, claimed to be `mime`.
    pub(crate) async fn upload(&self, user: &TestUser, name: &str, mime: &str, bytes: Vec<u8>) -> Resp {
        let part = Part::bytes(bytes).file_name(name.to_owned()).mime_str(mime).expect("a valid MIME type");
        let request = self.http.post(self.api_url("/files")).bearer_auth(&user.access_token);
        self.send(request.multipart(Form::new().part("file", part))).await
    }

    /// Uploads and returns the file view (201 expected).
    pub(crate) async fn upload_ok(
        &self,
        user: &TestUser,
        name: &str,
        mime: &str,
        bytes: Vec<u8>,
    ) -> natter_proto::FileView {
        self.upload(user, name, mime, bytes).await.expect(201)
    }

    /// `GET path` with extra headers; status, headers and the raw body.
    pub(crate) async fn fetch(&self, user: &TestUser, path: &str, headers: &[(&str, &str)]) -> Fetched {
        let mut request = self.http.get(self.api_url(path)).bearer_auth(&user.access_token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap_or_else(|e| panic!("GET {path}: body: {e}")).to_vec();
        Fetched { status, headers, body }
    }
}

/// A raw HTTP answer (file bytes are not JSON).
pub(crate) struct Fetched {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Fetched {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The error code of a JSON error body.
    pub(crate) fn code(&self) -> Option<String> {
        let body: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        body["error"]["code"].as_str().map(str::to_owned)
    }
}
