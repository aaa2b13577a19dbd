//! A search query and a message text, split by the index's rules (`natter_core::search::tokens`):
//! any text gives terms or a problem, never a panic; a parsed query has 1..=MAX_QUERY_TERMS terms,
//! and every indexed token spans characters of the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use natter_core::search::ParsedQuery;
use natter_core::search::tokens::{MAX_QUERY_TERMS, index_tokens};

fuzz_target!(|text: &str| {
    if let Ok(query) = ParsedQuery::parse(text) {
        assert!(!query.terms.is_empty() && query.terms.len() <= MAX_QUERY_TERMS);
    }
    index_tokens(text, |token| {
        assert!(token.from < token.to && token.to <= text.len(), "a token spans part of the text");
        assert!(text.is_char_boundary(token.from) && text.is_char_boundary(token.to));
    });
});
