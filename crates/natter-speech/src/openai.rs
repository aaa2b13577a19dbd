//! An OpenAI-compatible HTTP engine: `POST {base_url}/v1/audio/transcriptions` with a multipart
//! `file` (16 kHz mono WAV) and `model`, optional bearer key. whisper.cpp's server,
//! faster-whisper servers and hosted APIs speak it.

use std::time::Duration;

use async_trait::async_trait;
use natter_core::speech::{SAMPLE_RATE, SpeechError, Transcriber, Transcript};
use reqwest::multipart::{Form, Part};
use serde::Deserialize;

/// Where and how to reach the engine.
#[derive(Clone)]
pub struct OpenAiEngine {
    client: reqwest::Client,
    url: String,
    model: String,
    api_key: Option<String>,
}

#[derive(Deserialize)]
struct Response {
    text: String,
    #[serde(default)]
    language: Option<String>,
}

impl OpenAiEngine {
    /// `base_url` without the `/v1/...` path, e.g. `http://127.0.0.1:8080`.
    pub fn new(base_url: &str, model: &str, api_key: Option<String>, timeout: Duration) -> anyhow::Result<Self> {
        // reqwest has no crypto provider of its own (aws-lc-rs would need cmake) and panics when
        // it builds a client before one is installed; an error means the process has one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder().timeout(timeout).build()?;
        let url = format!("{}/v1/audio/transcriptions", base_url.trim_end_matches('/'));
        Ok(Self { client, url, model: model.to_owned(), api_key: api_key.filter(|k| !k.is_empty()) })
    }
}

#[async_trait]
impl Transcriber for OpenAiEngine {
    fn describe(&self) -> String {
        format!("openai-compatible ({}, model {})", self.url, self.model)
    }

    async fn transcribe(&self, samples: Vec<f32>, language: Option<String>) -> Result<Transcript, SpeechError> {
        let engine = |e: &dyn std::fmt::Display| SpeechError::Engine(format!("{}: {e}", self.url));
        let wav = crate::wav::encode_f32(SAMPLE_RATE, &samples);
        let file = Part::bytes(wav).file_name("audio.wav").mime_str("audio/wav").map_err(|e| engine(&e))?;
        let mut form = Form::new().part("file", file).text("model", self.model.clone()).text("response_format", "json");
        if let Some(language) = &language {
            form = form.text("language", language.clone());
        }
        let mut request = self.client.post(&self.url).multipart(form);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|e| engine(&e))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(engine(&format!("HTTP {status}: {}", body.chars().take(200).collect::<String>())));
        }
        let body: Response = response.json().await.map_err(|e| engine(&e))?;
        Ok(Transcript { text: body.text.trim().to_owned(), language: body.language.or(language) })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// The engine's client speaks TLS to an `https://` URL (a build without a crypto provider
    /// panics here instead): the server reads a TLS handshake record, then hangs up.
    #[tokio::test]
    async fn speaks_tls_to_an_https_engine() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
        let port = listener.local_addr().expect("the bound address").port();
        let server = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().expect("a connection");
            socket.set_read_timeout(Some(Duration::from_secs(10))).expect("a read timeout");
            let mut header = [0u8; 3];
            socket.read_exact(&mut header).expect("the first bytes");
            header
        });
        let engine =
            OpenAiEngine::new(&format!("https://127.0.0.1:{port}"), "whisper-1", None, Duration::from_secs(10))
                .expect("the engine builds");
        let result = engine.transcribe(vec![0.0; 1600], None).await;
        assert!(matches!(result, Err(SpeechError::Engine(_))), "{result:?}");
        // A TLS record of type handshake (22), protocol version 3.x: the ClientHello.
        assert_eq!(&server.join().expect("the server thread")[..2], &[22, 3]);
    }
}
