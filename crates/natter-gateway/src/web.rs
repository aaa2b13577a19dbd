//! The web client: the files under `web/` at the repository root, embedded in the binary with
//! rust-embed (release builds; debug builds read them from disk so edits show without a rebuild),
//! served at `/`.
//!
//! * Assets are addressed as `/assets/<version>/<path>`, where `<version>` is a hash over every
//!   embedded file: a changed file changes every asset URL, so assets are cached for a year as
//!   `immutable`. ES modules import each other by relative path, so they stay under one version.
//! * `index.html` (served for `/` and for every client route such as `/c/<id>`) names the current
//!   version; it is revalidated on every load (`Cache-Control: no-cache` + `ETag`).
//! * Bodies are gzip-compressed once, when the client is built, and sent compressed to clients
//!   that accept it.
//! * Every answer carries a strict Content-Security-Policy: scripts, styles and connections
//!   (WebSocket included) only from the page's own origin, images and media also from `blob:`.
//!
//! Paths under `/api`, and the operational endpoints, are never answered with the client.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use sha2::{Digest, Sha256};

/// The embedded `web/` directory.
#[derive(rust_embed::Embed)]
#[folder = "../../web"]
struct WebFiles;

/// The Content-Security-Policy of every web client answer.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; font-src 'self'; \
     manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";
/// Files smaller than this are not worth compressing.
const MIN_COMPRESS_BYTES: usize = 512;

struct Asset {
    mime: HeaderValue,
    etag: HeaderValue,
    raw: Bytes,
    gzip: Option<Bytes>,
}

/// The web client's files, loaded and compressed once.
pub struct WebClient {
    version: String,
    assets: HashMap<String, Asset>,
    index: Option<Asset>,
}

impl WebClient {
    /// Loads every embedded file, computes the version and renders `index.html` for it.
    pub fn load() -> Arc<Self> {
        let mut files: Vec<(String, rust_embed::EmbeddedFile)> =
            WebFiles::iter().filter_map(|path| WebFiles::get(&path).map(|file| (path.into_owned(), file))).collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let version = version_of(files.iter().map(|(path, file)| (path.as_str(), file.metadata.sha256_hash())));
        let mut assets = HashMap::new();
        let mut index = None;
        for (path, file) in files {
            let mime = file.metadata.mimetype().to_owned();
            if path == "index.html" {
                let html = String::from_utf8_lossy(&file.data).replace("%ASSETS%", &format!("/assets/{version}"));
                let etag = hex::encode(&Sha256::digest(html.as_bytes())[..12]);
                index = Some(Asset::new(&mime, &etag, Bytes::from(html)));
            } else {
                let etag = hex::encode(&file.metadata.sha256_hash()[..12]);
                assets.insert(path, Asset::new(&mime, &etag, Bytes::from(file.data.into_owned())));
            }
        }
        if index.is_none() {
            tracing::warn!("web/index.html is not embedded: the web client is unavailable");
        }
        Arc::new(Self { version, assets, index })
    }

    /// The hash that names the current set of assets.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Answers `GET /assets/{version}/{*path}`.
    pub fn asset(&self, version: &str, path: &str, headers: &HeaderMap) -> Response {
        match self.assets.get(path) {
            // An old page asking for an old version gets today's file, but must not keep it.
            Some(asset) => asset.respond(headers, if version == self.version { IMMUTABLE } else { REVALIDATE }),
            None => not_found(),
        }
    }

    /// Answers whatever no route matched: the client for page navigations, a JSON 404 otherwise.
    pub fn fallback(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Response {
        let path = uri.path();
        if is_reserved(path) || (method != Method::GET && method != Method::HEAD) {
            return not_found();
        }
        let file = path.trim_start_matches('/');
        if let Some(asset) = self.assets.get(file).filter(|_| !file.contains('/')) {
            return asset.respond(headers, REVALIDATE);
        }
        let last = path.rsplit('/').next().unwrap_or_default();
        match &self.index {
            // `/c/123` is a client route; `/missing.png` is a missing file.
            Some(index) if !last.contains('.') => index.respond(headers, REVALIDATE),
            _ => not_found(),
        }
    }
}

impl Asset {
    fn new(mime: &str, etag: &str, raw: Bytes) -> Self {
        let compressible = mime.starts_with("text/")
            || mime.contains("javascript")
            || mime.contains("json")
            || mime.contains("svg")
            || mime.contains("xml");
        let gzip = (compressible && raw.len() >= MIN_COMPRESS_BYTES).then(|| gzip(&raw)).flatten();
        let mime = if mime.starts_with("text/") || mime.contains("javascript") {
            format!("{mime}; charset=utf-8")
        } else {
            mime.to_owned()
        };
        Self {
            mime: HeaderValue::from_str(&mime).unwrap_or(HeaderValue::from_static("application/octet-stream")),
            etag: HeaderValue::from_str(&format!("\"{etag}\"")).unwrap_or(HeaderValue::from_static("\"0\"")),
            raw,
            gzip,
        }
    }

    fn respond(&self, request: &HeaderMap, cache_control: &'static str) -> Response {
        let mut response = if request
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .any(|tag| tag.to_str().is_ok_and(|tags| tags.split(',').any(|t| t.trim() == self.etag)))
        {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            match self.gzip.as_ref().filter(|_| accepts_gzip(request)) {
                Some(gzip) => {
                    let mut response = Response::new(Body::from(gzip.clone()));
                    response.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                    response
                }
                None => Response::new(Body::from(self.raw.clone())),
            }
        };
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, self.mime.clone());
        headers.insert(header::ETAG, self.etag.clone());
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        security_headers(headers);
        response
    }
}

fn security_headers(headers: &mut HeaderMap) {
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// Paths that belong to the API or to operations, never to the client.
fn is_reserved(path: &str) -> bool {
    path == "/api"
        || path.starts_with("/api/")
        || path.starts_with("/assets/")
        || matches!(path, "/healthz" | "/readyz" | "/metrics" | "/openapi.json")
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT_ENCODING).iter().any(|value| {
        value.to_str().is_ok_and(|list| {
            list.split(',').any(|coding| {
                let mut parts = coding.split(';');
                let name = parts.next().unwrap_or_default().trim();
                let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
                (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
            })
        })
    })
}

fn gzip(raw: &[u8]) -> Option<Bytes> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(raw).ok()?;
    let compressed = encoder.finish().ok()?;
    (compressed.len() < raw.len()).then(|| Bytes::from(compressed))
}

fn not_found() -> Response {
    crate::routes::ops::not_found().into_response()
}

/// A short hex name for a set of `(path, content hash)` pairs.
fn version_of<'a>(files: impl IntoIterator<Item = (&'a str, [u8; 32])>) -> String {
    let mut hasher = Sha256::new();
    for (path, hash) in files {
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update(hash);
    }
    hex::encode(&hasher.finalize()[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_paths_are_never_the_client() {
        for path in ["/api", "/api/v1/nope", "/healthz", "/readyz", "/metrics", "/openapi.json", "/assets/x"] {
            assert!(is_reserved(path), "{path}");
        }
        for path in ["/", "/c/123", "/login", "/apis"] {
            assert!(!is_reserved(path), "{path}");
        }
    }

    #[test]
    fn gzip_is_negotiated() {
        let mut headers = HeaderMap::new();
        assert!(!accepts_gzip(&headers));
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("br, gzip;q=0.8"));
        assert!(accepts_gzip(&headers));
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip;q=0, br"));
        assert!(!accepts_gzip(&headers));
    }

    #[test]
    fn version_changes_with_content() {
        let a = version_of([("a.js", Sha256::digest(b"one").into())]);
        let b = version_of([("a.js", Sha256::digest(b"two").into())]);
        assert_ne!(a, b);
        assert_eq!(a.len(), 12);
    }
}
