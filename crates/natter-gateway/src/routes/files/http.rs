//! The HTTP details of serving a file: `Range` (one range; RFC 9110 §14) and a safe
//! `Content-Disposition` (RFC 6266 with an RFC 5987 `filename*`).

use std::ops::Range;

/// What a `Range` header asks of a representation of `size` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ranged {
    /// Serve everything (no header, a unit other than bytes, several ranges, or a malformed one:
    /// a server may ignore those).
    Whole,
    /// Serve this half-open range with 206.
    Part(Range<u64>),
    /// 416: no byte of the range exists.
    Unsatisfiable,
}

pub(crate) fn parse_range(header: Option<&str>, size: u64) -> Ranged {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ranged::Whole;
    };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ranged::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let parse = |text: &str| text.parse::<u64>().ok();
    match (first.is_empty(), last.is_empty()) {
        // `-N`: the last N bytes.
        (true, false) => match parse(last) {
            Some(0) => Ranged::Unsatisfiable,
            Some(_) if size == 0 => Ranged::Unsatisfiable,
            Some(n) => Ranged::Part(size.saturating_sub(n)..size),
            None => Ranged::Whole,
        },
        // `N-` or `N-M`.
        (false, _) => {
            let Some(start) = parse(first) else { return Ranged::Whole };
            let end = if last.is_empty() {
                size
            } else {
                match parse(last) {
                    Some(last) if last >= start => last.saturating_add(1).min(size),
                    _ => return Ranged::Whole,
                }
            };
            if start >= size { Ranged::Unsatisfiable } else { Ranged::Part(start..end) }
        }
        (true, true) => Ranged::Whole,
    }
}

/// Types a browser may show in place: raster images, audio and video. Everything else (HTML,
/// SVG, PDF, text, …) is an attachment, so an upload can never run script in our origin.
pub(crate) fn is_inline_safe(mime: &str) -> bool {
    matches!(mime, "image/png" | "image/jpeg" | "image/gif" | "image/webp" | "image/bmp" | "image/avif")
        || mime.starts_with("audio/")
        || mime.starts_with("video/")
}

/// `inline` or `attachment`, with an ASCII `filename` fallback and the exact name in
/// `filename*` (UTF-8, percent-encoded).
pub(crate) fn content_disposition(name: &str, mime: &str) -> String {
    let kind = if is_inline_safe(mime) { "inline" } else { "attachment" };
    let fallback: String = name
        .chars()
        .map(|c| if c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '%' | ';') || c == ' ' { c } else { '_' })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ranges_are_served_and_the_rest_is_whole_or_416() {
        assert_eq!(parse_range(None, 100), Ranged::Whole);
        assert_eq!(parse_range(Some("bytes=0-9"), 100), Ranged::Part(0..10));
        assert_eq!(parse_range(Some("bytes=90-"), 100), Ranged::Part(90..100));
        assert_eq!(parse_range(Some("bytes=90-500"), 100), Ranged::Part(90..100));
        assert_eq!(parse_range(Some("bytes=-10"), 100), Ranged::Part(90..100));
        assert_eq!(parse_range(Some("bytes=-500"), 100), Ranged::Part(0..100));
        assert_eq!(parse_range(Some("bytes=100-"), 100), Ranged::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 100), Ranged::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Ranged::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Ranged::Whole);
        assert_eq!(parse_range(Some("bytes=9-3"), 100), Ranged::Whole);
        assert_eq!(parse_range(Some("items=0-1"), 100), Ranged::Whole);
        assert_eq!(parse_range(Some("bytes=x-1"), 100), Ranged::Whole);
    }

    #[test]
    fn dispositions_are_inline_only_for_media_and_names_are_encoded() {
        assert_eq!(
            content_disposition("cat.png", "image/png"),
            "inline; filename=\"cat.png\"; filename*=UTF-8''cat.png"
        );
        assert_eq!(
            content_disposition("页 \"x\".html", "text/html"),
            "attachment; filename=\"_ _x_.html\"; filename*=UTF-8''%E9%A1%B5%20%22x%22.html"
        );
        assert!(content_disposition("a.svg", "image/svg+xml").starts_with("attachment"));
        assert!(content_disposition("a.ogg", "audio/ogg").starts_with("inline"));
        assert!(content_disposition("a.txt", "text/plain").starts_with("attachment"));
    }
}
