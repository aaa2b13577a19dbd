//! natter's blob-store adapters, implementing [`natter_core::blob::BlobStore`]:
//!
//! * [`LocalBlobs`]: files under a directory (the default: `<data_dir>/files`), written to a
//!   temporary file and renamed into place, so a reader never sees half a blob;
//! * [`S3Blobs`]: S3-compatible object storage through the `object_store` crate (AWS S3, MinIO,
//!   Ceph, moto, …), uploads buffered up to 10 MiB and multipart beyond.
//!
//! Both run the same conformance suite (`tests/conformance.rs`), S3 against a real server.

mod local;
mod s3;

pub use local::LocalBlobs;
pub use s3::{S3Blobs, S3Settings};
