//! The `[files]` section: where uploaded bytes go (local directory or S3) and the upload limits.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilesConfig {
    /// `local` (a directory) or `s3` (S3-compatible object storage, see `[files.s3]`).
    pub backend: super::FilesBackend,
    /// For `local`: the directory. Empty: `<data_dir>/files`.
    pub dir: PathBuf,
    /// Largest single upload in bytes (beyond it: 413 `file_too_large`).
    pub max_upload_bytes: u64,
    /// Bytes one user may store in all, thumbnails included (beyond it: 413 `quota_exceeded`).
    pub quota_bytes: u64,
    /// Largest image (width × height) decoded for its size and thumbnail; larger ones are stored
    /// as plain files.
    pub max_image_pixels: u64,
    pub s3: S3Config,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self {
            backend: super::FilesBackend::Local,
            dir: PathBuf::new(),
            max_upload_bytes: 100 * 1024 * 1024,
            quota_bytes: 1024 * 1024 * 1024,
            max_image_pixels: 50_000_000,
            s3: S3Config::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// E.g. `http://127.0.0.1:9000`; empty: AWS's endpoint for the region.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key: String,
    /// Never printed (`natter config show` shows `<hidden>`).
    pub secret_key: super::Secret,
    /// Path-style URLs (`host/bucket/key`), as MinIO, Ceph and moto want.
    pub path_style: bool,
    /// Allow an `http://` endpoint.
    pub allow_http: bool,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            bucket: String::new(),
            region: "us-east-1".into(),
            access_key: String::new(),
            secret_key: super::Secret::default(),
            path_style: false,
            allow_http: false,
        }
    }
}

impl FilesConfig {
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        if self.backend == super::FilesBackend::S3 && self.s3.bucket.is_empty() {
            anyhow::bail!("files.s3.bucket is required when files.backend = \"s3\"")
        }
        if self.max_upload_bytes == 0 || self.quota_bytes == 0 {
            anyhow::bail!("files.max_upload_bytes and files.quota_bytes must be positive");
        }
        Ok(())
    }
}

pub(crate) const EXAMPLE: &str = r#"
[files]
# Where uploaded bytes go: "local" (a directory) or "s3" (S3-compatible storage, below).
backend = "local"
# For "local": the directory. Empty: <data_dir>/files.
dir = ""
# Largest upload in bytes (beyond it: 413 file_too_large). Default 100 MiB.
max_upload_bytes = 104857600
# Bytes one user may store in all, thumbnails included (beyond it: 413 quota_exceeded). 1 GiB.
quota_bytes = 1073741824
# Largest image (width x height) decoded for its size and thumbnail (a guard against
# decompression bombs); larger images are stored as plain files.
max_image_pixels = 50000000

[files.s3]
# E.g. "http://127.0.0.1:9000" (MinIO). Empty: AWS's endpoint for the region.
endpoint = ""
bucket = ""
region = "us-east-1"
access_key = ""
# Hidden by `natter config show`.
secret_key = ""
# Path-style URLs (host/bucket/key), as MinIO, Ceph and moto want.
path_style = false
# Allow an http:// endpoint.
allow_http = false
"#;
