//! The span every HTTP request is traced in. Like tower-http's default span, but the URI's
//! query has its credentials masked: the WebSocket takes its access token as `?token=…`, and a
//! debug log must not hand out sessions.

use axum::http::{Request, Uri};
use tracing::Span;

const REDACTED: &str = "[redacted]";

/// `make_span_with` for the trace layer.
pub fn make_span<B>(request: &Request<B>) -> Span {
    tracing::debug_span!(
        "request",
        method = %request.method(),
        uri = %redacted_uri(request.uri()),
        version = ?request.version(),
    )
}

/// The path and query of `uri`, with the value of every query parameter whose (decoded) name
/// ends in `token` (`token`, `access_token`, `refresh_token`, …) replaced by `[redacted]`.
pub fn redacted_uri(uri: &Uri) -> String {
    let path = uri.path();
    let Some(query) = uri.query() else { return path.to_owned() };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| {
            let key = pair.split_once('=').map_or(pair, |(key, _)| key);
            if is_secret(key) { format!("{key}={REDACTED}") } else { pair.to_owned() }
        })
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

fn is_secret(raw_key: &str) -> bool {
    percent_decode(raw_key).to_ascii_lowercase().ends_with("token")
}

/// Decodes `%XX` escapes and `+` (a key could be spelled `%74oken` to slip past a plain match).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|b| char::from(*b).to_digit(16));
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(uri: &str) -> String {
        redacted_uri(&uri.parse::<Uri>().expect("a valid URI"))
    }

    #[test]
    fn token_values_are_masked_and_the_rest_kept() {
        assert_eq!(redact("/api/v1/ws?token=SECRET"), "/api/v1/ws?token=[redacted]");
        assert_eq!(redact("/api/v1/ws?a=1&token=SECRET&b=2"), "/api/v1/ws?a=1&token=[redacted]&b=2");
        assert_eq!(
            redact("/x?access_token=S1&Refresh_Token=S2"),
            "/x?access_token=[redacted]&Refresh_Token=[redacted]"
        );
        assert_eq!(redact("/x?%74oken=SECRET"), "/x?%74oken=[redacted]");
        assert_eq!(redact("/x?token"), "/x?token=[redacted]");
        assert_eq!(redact("/x?token=a&token=b"), "/x?token=[redacted]&token=[redacted]");
        assert_eq!(redact("/api/v1/users?query=tok&limit=5"), "/api/v1/users?query=tok&limit=5");
        assert_eq!(redact("/healthz"), "/healthz");
        assert_eq!(redact("http://host:1/api/v1/ws?token=SECRET"), "/api/v1/ws?token=[redacted]");
    }

    #[test]
    fn malformed_escapes_do_not_panic() {
        assert_eq!(redact("/x?%zz=1&%=2&%7=3"), "/x?%zz=1&%=2&%7=3");
    }
}
