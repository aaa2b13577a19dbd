//! Extractors that answer bad input in the API's error shape instead of axum's plain text.

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::error::ApiError;
use crate::state::AppState;
use natter_core::service::accounts::AuthContext;

/// A JSON body.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Json<T> {
    type Rejection = ApiError;

    // By hand rather than through `axum::Json`: serde reports the first error it meets, so a
    // truncated body like `[1, 2` comes back as a type error. Telling "not JSON" apart from
    // "JSON of the wrong shape" needs a second, syntax-only parse, done only on failure.
    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        if !has_json_content_type(request.headers()) {
            return Err(ApiError::request(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected Content-Type: application/json",
            ));
        }
        let body = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::request(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "request body is too large")
            } else {
                ApiError::request(StatusCode::BAD_REQUEST, "invalid_body", rejection.body_text())
            }
        })?;
        // Every request body is an object; serde would also fill a struct from an array of its
        // fields in order (`["Nick"]` as a profile change), which no client means.
        let is_object = body.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'{');
        match serde_json::from_slice::<T>(&body) {
            Ok(value) if is_object => Ok(Self(value)),
            Ok(_) => {
                Err(ApiError::request(StatusCode::BAD_REQUEST, "validation_failed", "the body must be a JSON object"))
            }
            Err(error) if serde_json::from_slice::<IgnoredAny>(&body).is_ok() => {
                Err(ApiError::request(StatusCode::BAD_REQUEST, "validation_failed", format!("invalid body: {error}")))
            }
            Err(error) => {
                Err(ApiError::request(StatusCode::BAD_REQUEST, "invalid_json", format!("body is not JSON: {error}")))
            }
        }
    }
}

/// `application/json`, or any `application/…+json`, with or without parameters.
fn has_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|value| value.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Path parameters.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|rejection: PathRejection| {
                ApiError::request(StatusCode::BAD_REQUEST, "invalid_path", rejection.body_text())
            })
    }
}

/// Query parameters.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|rejection: QueryRejection| {
                ApiError::request(StatusCode::BAD_REQUEST, "invalid_query", rejection.body_text())
            })
    }
}

/// The authenticated caller, from `Authorization: Bearer <access token>`.
pub struct Auth(pub AuthContext);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(&parts.headers)
            .ok_or_else(|| ApiError::request(StatusCode::UNAUTHORIZED, "unauthorized", "missing bearer token"))?;
        let context = state.api.accounts.authenticate(token).await?;
        Ok(Self(context))
    }
}

pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim()).filter(|t| !t.is_empty())
}
