//! `POST /speech/transcriptions`: transcribes an uploaded audio file (multipart field `file`), or
//! a file uploaded before (JSON `{file_id}`, readable by the caller).

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use natter_core::ids::FileId;
use natter_core::service::speech::Transcription;
use natter_proto::{ErrorBody, TranscriptionRequest, TranscriptionResponse};

use crate::error::ApiError;
use crate::extract::Auth;
use crate::state::AppState;

/// 200 with the text; 503 `speech_unavailable` when no engine is configured, `speech_busy` when
/// the queue is full; 400 `unsupported_audio`; 413 `audio_too_large` / `audio_too_long`.
#[utoipa::path(post, path = "/api/v1/speech/transcriptions", tag = "speech",
    request_body(content_type = "multipart/form-data",
        description = "field `file`: WAV, Ogg/Opus or WebM/Opus audio; or JSON `{\"file_id\"}` (TranscriptionRequest) for a file the caller may read"),
    responses((status = 200, body = TranscriptionResponse), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody, description = "`not_found`: a `file_id` that is unknown or not yours to read"),
              (status = 413, body = ErrorBody),
              (status = 415, body = ErrorBody, description = "`unsupported_media_type`: neither multipart/form-data nor JSON"),
              (status = 503, body = ErrorBody)))]
pub(crate) async fn transcribe(
    State(state): State<AppState>,
    Auth(me): Auth,
    request: Request,
) -> Result<axum::Json<TranscriptionResponse>, ApiError> {
    let speech = &state.api.speech;
    let content_type = request.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let content_type = content_type.to_ascii_lowercase();
    let max = speech.max_audio_bytes();
    if content_type.starts_with("application/json") {
        let crate::extract::Json(body) =
            crate::extract::Json::<TranscriptionRequest>::from_request(request, &state).await?;
        let Transcription { text, language, duration_ms } =
            speech.transcribe_file(&me.user_id, &FileId(body.file_id)).await?;
        return Ok(axum::Json(TranscriptionResponse { text, language, duration_ms }));
    }
    if !content_type.starts_with("multipart/form-data") {
        return Err(ApiError::request(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected multipart/form-data with a `file` field, or JSON {\"file_id\"}",
        ));
    }
    let mut form = Multipart::from_request(request, &state)
        .await
        .map_err(|e| ApiError::request(StatusCode::BAD_REQUEST, "invalid_body", e.body_text()))?;
    let mut audio = None;
    while let Some(mut field) = form.next_field().await.map_err(bad_form)? {
        if field.name() != Some("file") {
            continue;
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(bad_form)? {
            if bytes.len() + chunk.len() > max {
                return Err(ApiError::request(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "audio_too_large",
                    format!("audio must be at most {max} bytes"),
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        audio = Some(bytes);
    }
    let audio = audio
        .ok_or_else(|| ApiError::request(StatusCode::BAD_REQUEST, "missing_file", "the form has no `file` field"))?;
    let Transcription { text, language, duration_ms } = speech.transcribe(audio).await?;
    Ok(axum::Json(TranscriptionResponse { text, language, duration_ms }))
}

fn bad_form(error: axum::extract::multipart::MultipartError) -> ApiError {
    ApiError::request(StatusCode::BAD_REQUEST, "invalid_body", error.body_text())
}
