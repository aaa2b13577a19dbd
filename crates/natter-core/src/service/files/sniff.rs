//! What an upload really is: its content type from its first bytes (never only the client's
//! claim), and a file name safe to store and echo back.

/// How many leading bytes the sniffer looks at.
pub(super) const HEAD_BYTES: usize = 8192;

/// The content type of a file whose first bytes are `head`. The client's `claimed` type is used
/// only to tell apart containers that hold audio or video (`video/webm` recorded as audio), never
/// to make bytes more trusted than they look. Unknown bytes that are UTF-8 text are `text/plain`,
/// anything else `application/octet-stream`.
pub fn sniff_mime(head: &[u8], claimed: Option<&str>) -> String {
    let claimed = claimed.map(|c| c.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
    if let Some(kind) = infer::get(head) {
        let sniffed = kind.mime_type();
        if let Some(claimed) = claimed.as_deref()
            && claimed.starts_with("audio/")
            && same_container(sniffed, claimed)
        {
            return claimed.to_owned();
        }
        return sniffed.to_owned();
    }
    if looks_like_text(head) { "text/plain".to_owned() } else { "application/octet-stream".to_owned() }
}

/// `video/webm` holding audio is `audio/webm`, and so on for the containers browsers record in.
fn same_container(sniffed: &str, claimed: &str) -> bool {
    let container = |mime: &str| match mime.split('/').nth(1).unwrap_or_default() {
        "webm" | "x-matroska" => "webm",
        "ogg" | "opus" => "ogg",
        "mp4" | "m4a" | "x-m4a" => "mp4",
        _ => "",
    };
    let sniffed_container = container(sniffed);
    !sniffed_container.is_empty() && sniffed_container == container(claimed)
}

/// UTF-8 (a character cut off at the end of `head` allowed) without NUL bytes.
fn looks_like_text(head: &[u8]) -> bool {
    if head.is_empty() || head.contains(&0) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(error) => error.error_len().is_none() && head.len() == HEAD_BYTES,
    }
}

/// The client's file name reduced to its last path segment, without control characters, at most
/// 255 bytes; `file` when nothing is left.
pub fn clean_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut cleaned: String = last.chars().filter(|c| !c.is_control()).collect::<String>().trim().to_owned();
    if cleaned.len() > 255 {
        let mut end = 255;
        while !cleaned.is_char_boundary(end) {
            end -= 1;
        }
        cleaned.truncate(end);
    }
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." { "file".to_owned() } else { cleaned }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    #[test]
    fn bytes_win_over_the_claim() {
        assert_eq!(sniff_mime(PNG, Some("text/plain")), "image/png");
        assert_eq!(sniff_mime(b"just words", Some("image/png")), "text/plain");
        assert_eq!(sniff_mime(b"<!DOCTYPE html><html><script>", Some("text/plain")), "text/html");
        assert_eq!(sniff_mime(&[0, 1, 2, 3], None), "application/octet-stream");
        assert_eq!(sniff_mime(b"", Some("text/plain")), "application/octet-stream");
    }

    #[test]
    fn an_audio_claim_names_the_contents_of_a_container() {
        // An EBML header naming the `webm` doc type (the sniffer wants more than 256 bytes).
        let mut webm =
            b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82\x84webm"
                .to_vec();
        webm.resize(300, 0);
        let webm = webm.as_slice();
        assert_eq!(sniff_mime(webm, Some("audio/webm;codecs=opus")), "audio/webm");
        assert_eq!(sniff_mime(webm, None), "video/webm");
        assert_eq!(sniff_mime(PNG, Some("audio/webm")), "image/png");
    }

    #[test]
    fn names_lose_paths_and_control_characters() {
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("C:\\Users\\me\\cat.png"), "cat.png");
        assert_eq!(clean_name("a\r\nb.txt"), "ab.txt");
        assert_eq!(clean_name(""), "file");
        assert_eq!(clean_name(".."), "file");
        assert_eq!(clean_name(&"é".repeat(200)).len(), 254);
    }
}
