//! `/files`: multipart upload (streamed to the blob store), download with `Range` and `ETag`,
//! metadata, thumbnails.

mod http;

use axum::Router;
use axum::body::Body;
use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::{StreamExt, TryStreamExt};
use natter_core::blob::BlobError;
use natter_core::ids::FileId;
use natter_core::service::files::{Readable, Upload};
use natter_core::wire;
use natter_proto::{ErrorBody, FileView};

use self::http::{Ranged, content_disposition, parse_range};
use crate::error::ApiError;
use crate::extract::{Auth, Path};
use crate::state::AppState;

/// Room for the multipart framing around the file's bytes.
pub(crate) const MULTIPART_OVERHEAD: usize = 1024 * 1024;

/// The file routes, with a body limit of their own (`max_upload_bytes` plus framing) in place of
/// the gateway's JSON body limit.
pub(crate) fn router(max_upload_bytes: u64) -> Router<AppState> {
    let limit = usize::try_from(max_upload_bytes).unwrap_or(usize::MAX).saturating_add(MULTIPART_OVERHEAD);
    Router::new()
        .route("/files", post(upload).layer(DefaultBodyLimit::max(limit)))
        .route("/files/{id}", get(download))
        .route("/files/{id}/meta", get(meta))
        .route("/files/{id}/thumbnail", get(thumbnail))
}

/// `multipart/form-data` with a part named `file`; other parts are skipped. The bytes are
/// streamed to the blob store, never held whole in memory.
#[utoipa::path(post, path = "/api/v1/files", tag = "files",
    request_body(content_type = "multipart/form-data", description = "a part named `file`"),
    responses((status = 201, body = FileView), (status = 400, body = ErrorBody),
              (status = 413, body = ErrorBody, description = "`file_too_large` or `quota_exceeded`"),
              (status = 429, body = ErrorBody, description = "`too_many_uploads`; see `Retry-After`")))]
pub(crate) async fn upload(
    State(state): State<AppState>,
    Auth(me): Auth,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, axum::Json<FileView>), ApiError> {
    let mut multipart = multipart
        .map_err(|rejection| ApiError::request(StatusCode::BAD_REQUEST, "invalid_multipart", rejection.body_text()))?;
    loop {
        let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? else {
            return Err(ApiError::request(
                StatusCode::BAD_REQUEST,
                "file_required",
                "the body needs a part named `file`",
            ));
        };
        if field.name() != Some("file") {
            continue;
        }
        let name = field.file_name().unwrap_or("file").to_owned();
        let claimed_mime = field.content_type().map(str::to_owned);
        let data = (&mut field).map_err(|error| BlobError::Aborted(error.body_text())).boxed();
        let result = state.api.files.upload(&me.user_id, Upload { name, claimed_mime, data }).await;
        // What is left of a refused upload is read by the gateway's `drain` middleware, so the
        // client gets the 413 instead of a reset connection while it is still sending.
        let file = result?;
        return Ok((StatusCode::CREATED, axum::Json(wire::file_view(&file))));
    }
}

fn multipart_error(error: MultipartError) -> ApiError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::request(StatusCode::PAYLOAD_TOO_LARGE, "file_too_large", "the upload is larger than allowed")
    } else {
        ApiError::request(StatusCode::BAD_REQUEST, "invalid_multipart", error.body_text())
    }
}

/// The bytes. `Range: bytes=…` (one range) → 206 or 416; `If-None-Match` with the `ETag` → 304.
/// Images, audio and video are `inline`; everything else is an `attachment`.
#[utoipa::path(get, path = "/api/v1/files/{id}", tag = "files",
    params(("Range" = Option<String>, Header), ("If-None-Match" = Option<String>, Header)),
    responses((status = 200, description = "the bytes"), (status = 206, description = "the range asked"),
              (status = 304), (status = 404, body = ErrorBody), (status = 416, body = ErrorBody)))]
pub(crate) async fn download(
    State(state): State<AppState>,
    Auth(me): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let file = state.api.files.readable(&me.user_id, &FileId(id)).await?;
    serve(&state, &file, &headers).await
}

/// The thumbnail of an image (a JPEG at most 320 px on a side); 404 when it has none.
#[utoipa::path(get, path = "/api/v1/files/{id}/thumbnail", tag = "files",
    responses((status = 200, description = "JPEG bytes"), (status = 404, body = ErrorBody)))]
pub(crate) async fn thumbnail(
    State(state): State<AppState>,
    Auth(me): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let file = state.api.files.thumbnail(&me.user_id, &FileId(id)).await?;
    serve(&state, &file, &headers).await
}

#[utoipa::path(get, path = "/api/v1/files/{id}/meta", tag = "files",
    responses((status = 200, body = FileView), (status = 404, body = ErrorBody)))]
pub(crate) async fn meta(
    State(state): State<AppState>,
    Auth(me): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<FileView>, ApiError> {
    let file = state.api.files.readable(&me.user_id, &FileId(id)).await?;
    Ok(axum::Json(wire::file_view(file.record())))
}

async fn serve(state: &AppState, file: &Readable, headers: &HeaderMap) -> Result<Response, ApiError> {
    let record = file.record();
    let etag = format!("\"{}\"", record.sha256);
    let size = u64::try_from(record.size).unwrap_or(0);
    let mut common = HeaderMap::new();
    insert(&mut common, header::ETAG, &etag);
    insert(&mut common, header::ACCEPT_RANGES, "bytes");
    insert(&mut common, header::CACHE_CONTROL, "private, max-age=86400");
    insert(&mut common, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if if_none_match(headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, common).into_response());
    }
    let asked = headers.get(header::RANGE).and_then(|value| value.to_str().ok());
    let (status, range) = match parse_range(asked, size) {
        Ranged::Whole => (StatusCode::OK, None),
        Ranged::Part(range) => {
            let value = format!("bytes {}-{}/{size}", range.start, range.end - 1);
            insert(&mut common, header::CONTENT_RANGE, &value);
            (StatusCode::PARTIAL_CONTENT, Some(range))
        }
        Ranged::Unsatisfiable => {
            insert(&mut common, header::CONTENT_RANGE, &format!("bytes */{size}"));
            let body = ErrorBody::new("range_not_satisfiable", format!("the file has {size} bytes"));
            return Ok((StatusCode::RANGE_NOT_SATISFIABLE, common, axum::Json(body)).into_response());
        }
    };
    let length = range.as_ref().map_or(size, |r| r.end - r.start);
    let stream = state.api.files.stream(file, range).await?;
    insert(&mut common, header::CONTENT_TYPE, &record.mime);
    insert(&mut common, header::CONTENT_LENGTH, &length.to_string());
    insert(&mut common, header::CONTENT_DISPOSITION, &content_disposition(&record.name, &record.mime));
    // Served bytes are never a page of ours: no script, no plugins, even if opened directly.
    insert(&mut common, header::CONTENT_SECURITY_POLICY, "default-src 'none'; sandbox");
    Ok((status, common, Body::from_stream(stream)).into_response())
}

fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|value| value.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag))
}

/// Header values here are ASCII by construction (names are encoded by `content_disposition`).
fn insert(headers: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}
