//! An upload's first bytes and the client's claimed type and file name: the sniffer and the name
//! cleaner take anything, and the name they keep is a single, bounded, control-free segment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use natter_core::service::files::{clean_name, sniff_mime};

fuzz_target!(|input: (&[u8], Option<&str>, &str)| {
    let (head, claimed, name) = input;
    let mime = sniff_mime(head, claimed);
    assert!(!mime.is_empty());
    let cleaned = clean_name(name);
    assert!(!cleaned.is_empty() && cleaned.len() <= 255);
    assert!(!cleaned.contains(['/', '\\']) && !cleaned.chars().any(char::is_control));
});
