//! natter's tokenization (`natter_core::search::tokens`) as a tantivy tokenizer, registered as
//! [`TOKENIZER`] for the text field.

use natter_core::search::tokens::index_tokens;
use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// The name the tokenizer is registered under.
pub const TOKENIZER: &str = "natter";

/// Reuses one token buffer per tokenizer (tantivy clones one per indexing thread).
#[derive(Clone, Default)]
pub struct NatterTokenizer {
    tokens: Vec<Token>,
}

pub struct NatterTokenStream<'a> {
    tokens: &'a mut [Token],
    /// Index of the current token + 1 (0: before the first).
    next: usize,
}

impl Tokenizer for NatterTokenizer {
    type TokenStream<'a> = NatterTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> NatterTokenStream<'a> {
        self.tokens.clear();
        index_tokens(text, |token| {
            self.tokens.push(Token {
                offset_from: token.from,
                offset_to: token.to,
                position: token.position as usize,
                text: token.text,
                position_length: 1,
            });
        });
        NatterTokenStream { tokens: &mut self.tokens, next: 0 }
    }
}

impl TokenStream for NatterTokenStream<'_> {
    fn advance(&mut self) -> bool {
        if self.next < self.tokens.len() {
            self.next += 1;
            true
        } else {
            false
        }
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next.saturating_sub(1)]
    }

    fn token_mut(&mut self) -> &mut Token {
        let current = self.next.saturating_sub(1);
        &mut self.tokens[current]
    }
}
