//! Input rules shared by the services, each answering with a stable error code.

use crate::error::{DomainError, DomainResult, ErrorCode};

pub const USERNAME_MIN: usize = 3;
pub const USERNAME_MAX: usize = 32;
pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 128;
pub const NICKNAME_MAX: usize = 64;
pub const BIO_MAX: usize = 512;
pub const GROUP_NAME_MAX: usize = 64;
pub const DEVICE_NAME_MAX: usize = 64;
pub const ANNOUNCEMENT_MAX: usize = 2048;
pub const FRIEND_MESSAGE_MAX: usize = 256;
pub const CLIENT_MSG_ID_MAX: usize = 64;
pub const MENTIONS_MAX: usize = 100;

/// 3–32 characters of ASCII letters, digits, `_`, `.` and `-`, starting with a letter or digit.
pub fn check_username(username: &str) -> DomainResult<()> {
    let length = username.chars().count();
    let valid_chars = username.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    let valid_start = username.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if (USERNAME_MIN..=USERNAME_MAX).contains(&length) && valid_chars && valid_start {
        Ok(())
    } else {
        Err(DomainError::invalid(
            ErrorCode::InvalidUsername,
            format!(
                "a username has {USERNAME_MIN}-{USERNAME_MAX} characters: letters, digits, '_', '.', '-', starting with a letter or digit"
            ),
        ))
    }
}

pub fn check_password(password: &str, username: &str) -> DomainResult<()> {
    let length = password.chars().count();
    if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&length) {
        return Err(DomainError::invalid(
            ErrorCode::WeakPassword,
            format!("a password has {PASSWORD_MIN}-{PASSWORD_MAX} characters"),
        ));
    }
    if password.eq_ignore_ascii_case(username) {
        return Err(DomainError::invalid(ErrorCode::WeakPassword, "the password must differ from the username"));
    }
    Ok(())
}

/// Whether `name` (already trimmed) can stand for someone or something on screen: 1–`max`
/// characters, no control characters, no bidirectional controls (which can make a name read as
/// another: `U+202E` reverses what follows), and something visible besides spaces and
/// zero-width characters.
fn is_display_name(name: &str, max: usize) -> bool {
    let length = name.chars().count();
    (1..=max).contains(&length)
        && !name.chars().any(|c| c.is_control() || is_bidi_control(c))
        && name.chars().any(|c| !is_invisible(c))
}

/// The explicit bidirectional formatting characters (Unicode UAX #9): embeddings, overrides,
/// isolates and the implicit marks.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// White space and the zero-width characters (space, non-joiner, joiner, word joiner, BOM).
/// Allowed inside a name (a joiner is part of many emoji), but not as all of it.
pub fn is_invisible(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}')
}

/// Trims; 1–64 characters, no control or bidirectional control characters, not only invisible
/// ones.
pub fn check_nickname(nickname: &str) -> DomainResult<String> {
    let nickname = nickname.trim();
    if !is_display_name(nickname, NICKNAME_MAX) {
        return Err(DomainError::invalid(
            ErrorCode::InvalidNickname,
            format!(
                "a nickname has 1-{NICKNAME_MAX} characters, something visible, and no control or bidirectional control characters"
            ),
        ));
    }
    Ok(nickname.to_owned())
}

pub fn check_bio(bio: &str) -> DomainResult<String> {
    if bio.chars().count() > BIO_MAX {
        return Err(DomainError::invalid(ErrorCode::InvalidBio, format!("a bio has at most {BIO_MAX} characters")));
    }
    Ok(bio.to_owned())
}

pub fn check_device_name(name: Option<&str>) -> DomainResult<Option<String>> {
    match name.map(str::trim) {
        None | Some("") => Ok(None),
        Some(name) if is_display_name(name, DEVICE_NAME_MAX) => Ok(Some(name.to_owned())),
        Some(_) => Err(DomainError::invalid(
            ErrorCode::InvalidDeviceName,
            format!(
                "a device name has at most {DEVICE_NAME_MAX} characters, something visible, and no control or bidirectional control characters"
            ),
        )),
    }
}

pub fn check_group_name(name: &str) -> DomainResult<String> {
    let name = name.trim();
    if !is_display_name(name, GROUP_NAME_MAX) {
        return Err(DomainError::invalid(
            ErrorCode::InvalidName,
            format!(
                "a group name has 1-{GROUP_NAME_MAX} characters, something visible, and no control or bidirectional control characters"
            ),
        ));
    }
    Ok(name.to_owned())
}

pub fn check_announcement(text: &str) -> DomainResult<String> {
    if text.chars().count() > ANNOUNCEMENT_MAX {
        return Err(DomainError::invalid(
            ErrorCode::InvalidAnnouncement,
            format!("an announcement has at most {ANNOUNCEMENT_MAX} characters"),
        ));
    }
    Ok(text.to_owned())
}

/// 1–64 printable characters.
pub fn check_client_msg_id(id: &str) -> DomainResult<()> {
    let length = id.chars().count();
    if length == 0 || length > CLIENT_MSG_ID_MAX || id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(DomainError::invalid(
            ErrorCode::InvalidClientMsgId,
            format!("client_msg_id has 1-{CLIENT_MSG_ID_MAX} characters without spaces"),
        ));
    }
    Ok(())
}

/// A message text: not blank, at most `max_bytes` UTF-8 bytes.
pub fn check_text(text: Option<&str>, max_bytes: usize) -> DomainResult<String> {
    let text = text.unwrap_or_default();
    if text.len() > max_bytes {
        return Err(DomainError::TooLarge {
            code: ErrorCode::TextTooLong,
            message: format!("message text is limited to {max_bytes} bytes"),
        });
    }
    if text.trim().is_empty() {
        return Err(DomainError::invalid(ErrorCode::EmptyText, "a text message needs text"));
    }
    Ok(text.to_owned())
}

/// An emoji reaction: 1–16 characters, no whitespace or control characters.
pub fn check_emoji(emoji: &str) -> DomainResult<()> {
    let length = emoji.chars().count();
    if length == 0 || length > 16 || emoji.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(DomainError::invalid(ErrorCode::InvalidEmoji, "a reaction is 1-16 characters without spaces"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(check_username("alice").is_ok());
        assert!(check_username("a.b-c_9").is_ok());
        for bad in ["ab", "_alice", "al ice", "张伟伟", &"x".repeat(33), ""] {
            assert!(check_username(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn passwords() {
        assert!(check_password("correct horse", "alice").is_ok());
        assert!(check_password("short", "alice").is_err());
        assert!(check_password("Alice123", "alice123").is_err());
        assert!(check_password(&"p".repeat(129), "alice").is_err());
    }

    #[test]
    fn texts() {
        assert!(check_text(Some("hi"), 16).is_ok());
        assert!(matches!(check_text(Some("   "), 16), Err(DomainError::Invalid { code: ErrorCode::EmptyText, .. })));
        assert!(matches!(check_text(Some("你好你好你好"), 16), Err(DomainError::TooLarge { .. })));
        assert!(check_text(None, 16).is_err());
    }

    #[test]
    fn nicknames_and_names() {
        assert_eq!(check_nickname("  张伟 ").ok().as_deref(), Some("张伟"));
        assert!(check_nickname("").is_err());
        assert!(check_nickname("a\u{0007}b").is_err());
        assert!(check_group_name(&"g".repeat(65)).is_err());
        assert!(check_emoji("👍").is_ok());
        assert!(check_emoji("a b").is_err());
        assert!(check_client_msg_id("abc-123").is_ok());
        assert!(check_client_msg_id("").is_err());
    }

    #[test]
    fn names_refuse_bidi_controls_and_invisible_only_values() {
        let bidi = ["\u{202E}gnp.exe", "a\u{202A}b", "a\u{2066}b\u{2069}", "a\u{200F}", "\u{061C}x", "x\u{200E}"];
        let invisible = ["\u{200B}", "\u{200B}\u{200C}\u{200D}", " \u{2060} ", "\u{FEFF}", "\u{3000}"];
        for bad in bidi.iter().chain(&invisible) {
            assert!(check_nickname(bad).is_err(), "nickname {bad:?}");
            assert!(check_group_name(bad).is_err(), "group name {bad:?}");
            assert!(!matches!(check_device_name(Some(bad)), Ok(Some(_))), "device name {bad:?}");
        }
        // A zero-width joiner inside an emoji sequence is part of a visible name.
        let family = "👨\u{200D}👩\u{200D}👧";
        assert_eq!(check_nickname(family).ok().as_deref(), Some(family));
        assert!(check_group_name("مرحبا").is_ok(), "right-to-left text itself is fine");
        assert_eq!(check_device_name(Some("  ")).ok(), Some(None), "a blank device name is no name");
    }
}
