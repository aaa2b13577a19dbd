//! The one tokenization both index adapters use, so that they find exactly the same messages.
//!
//! Text splits into runs of three classes of characters:
//!
//! * **CJK** (Han, Hiragana, Katakana, Hangul): a run of n ≥ 2 characters is indexed as its n − 1
//!   overlapping bigrams at consecutive positions. A query run of n ≥ 2 characters becomes the
//!   phrase of its bigrams, so it matches exactly the texts that contain it as a substring. A
//!   single CJK character cannot be looked up (there are no unigram tokens): such a query term
//!   is refused with `query_too_short`.
//! * **Word** characters (any other letter or digit): a run is one word, lowercased. It is
//!   indexed as its prefixes of 2 to [`MAX_PREFIX_CHARS`] characters (the whole word among them
//!   when it is not longer; a one-character word as itself), all at the word's position. A query word matches every word that starts with it (a query word of
//!   one character matches that one-character word only; one longer than `MAX_PREFIX_CHARS` is
//!   cut to that length).
//! * Everything else separates runs. Positions jump by one between runs, so a CJK phrase never
//!   spans two runs.

/// Longest prefix indexed for a word; longer query words are cut to this.
pub const MAX_PREFIX_CHARS: usize = 16;
/// At most this many terms in one query.
pub const MAX_QUERY_TERMS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Cjk,
    Word,
    Separator,
}

/// Whether `c` is written without spaces between words (Chinese, Japanese, Korean).
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x11FF        // Hangul Jamo
        | 0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3130..=0x318F      // Hangul compatibility Jamo
        | 0x31F0..=0x31FF      // Katakana phonetic extensions
        | 0x3400..=0x4DBF      // CJK extension A
        | 0x4E00..=0x9FFF      // CJK unified ideographs
        | 0xAC00..=0xD7AF      // Hangul syllables
        | 0xF900..=0xFAFF      // CJK compatibility ideographs
        | 0xFF66..=0xFF9F      // half-width Katakana
        | 0x20000..=0x323AF) // CJK extensions B–H
}

fn class(c: char) -> Class {
    if is_cjk(c) {
        Class::Cjk
    } else if c.is_alphanumeric() {
        Class::Word
    } else {
        Class::Separator
    }
}

/// One indexed token: its text, its position, and the byte range of the text it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    pub position: u32,
    pub from: usize,
    pub to: usize,
}

/// A run of one class: its byte range in the text.
#[derive(Debug, Clone, Copy)]
struct Run {
    class: Class,
    from: usize,
    to: usize,
}

fn runs(text: &str) -> impl Iterator<Item = Run> + '_ {
    let mut chars = text.char_indices().peekable();
    std::iter::from_fn(move || {
        loop {
            let (from, first) = chars.next()?;
            let class = class(first);
            let mut to = from + first.len_utf8();
            while let Some(&(at, next)) = chars.peek() {
                if self::class(next) != class {
                    break;
                }
                to = at + next.len_utf8();
                chars.next();
            }
            if class != Class::Separator {
                return Some(Run { class, from, to });
            }
        }
    })
}

/// Calls `emit` with every token of `text`, in order.
pub fn index_tokens(text: &str, mut emit: impl FnMut(Token)) {
    let mut position = 0u32;
    for run in runs(text) {
        let slice = &text[run.from..run.to];
        match run.class {
            Class::Cjk => {
                let chars: Vec<(usize, char)> = slice.char_indices().collect();
                for pair in chars.windows(2) {
                    let (start, first) = pair[0];
                    let (second_at, second) = pair[1];
                    emit(Token {
                        text: [first, second].iter().collect(),
                        position,
                        from: run.from + start,
                        to: run.from + second_at + second.len_utf8(),
                    });
                    position += 1;
                }
                if chars.len() < 2 {
                    continue;
                }
            }
            Class::Word => {
                // The word's prefixes of 2..=MAX_PREFIX_CHARS characters; the word itself is one of
                // them unless it is longer (then its MAX_PREFIX_CHARS prefix finds it, as query
                // words are cut to that length) or a single character (emitted alone).
                let word = slice.to_lowercase();
                let count = word.chars().count();
                let mut prefix = String::new();
                for (index, c) in word.chars().take(MAX_PREFIX_CHARS).enumerate() {
                    prefix.push(c);
                    if index >= 1 || count == 1 {
                        emit(Token { text: prefix.clone(), position, from: run.from, to: run.to });
                    }
                }
            }
            Class::Separator => continue,
        }
        position += 1;
    }
}

/// Every token text of `text`, in order (duplicates kept).
pub fn token_texts(text: &str) -> Vec<(String, u32)> {
    let mut tokens = Vec::new();
    index_tokens(text, |token| tokens.push((token.text, token.position)));
    tokens
}

/// One term of a parsed query. Every term must match (AND).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryTerm {
    /// A lowercased word (cut to [`MAX_PREFIX_CHARS`]): matches the indexed token of that text,
    /// i.e. every word that starts with it.
    Word(String),
    /// A CJK run of two or more characters: `text` is the run, `bigrams` the phrase to match.
    Cjk { text: String, bigrams: Vec<String> },
}

/// Why a query cannot be run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryProblem {
    /// No letter, digit or CJK character in it.
    NoTerms,
    /// A CJK term of one character.
    CjkTooShort,
    /// More than [`MAX_QUERY_TERMS`] terms.
    TooManyTerms,
}

/// A query split into terms by the same rules as the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedQuery {
    pub terms: Vec<QueryTerm>,
}

impl ParsedQuery {
    pub fn parse(query: &str) -> Result<ParsedQuery, QueryProblem> {
        let mut terms = Vec::new();
        for run in runs(query) {
            let slice = &query[run.from..run.to];
            let term = match run.class {
                Class::Cjk => {
                    let chars: Vec<char> = slice.chars().collect();
                    if chars.len() < 2 {
                        return Err(QueryProblem::CjkTooShort);
                    }
                    QueryTerm::Cjk {
                        text: slice.to_owned(),
                        bigrams: chars.windows(2).map(|pair| pair.iter().collect()).collect(),
                    }
                }
                Class::Word => QueryTerm::Word(slice.to_lowercase().chars().take(MAX_PREFIX_CHARS).collect()),
                Class::Separator => continue,
            };
            if !terms.contains(&term) {
                terms.push(term);
            }
        }
        if terms.is_empty() {
            return Err(QueryProblem::NoTerms);
        }
        if terms.len() > MAX_QUERY_TERMS {
            return Err(QueryProblem::TooManyTerms);
        }
        Ok(ParsedQuery { terms })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Vec<String> {
        token_texts(text).into_iter().map(|(t, _)| t).collect()
    }

    #[test]
    fn cjk_runs_become_overlapping_bigrams() {
        assert_eq!(texts("北京开会"), ["北京", "京开", "开会"]);
        assert_eq!(token_texts("北京，开会").iter().map(|(_, p)| *p).collect::<Vec<_>>(), [0, 2]);
    }

    #[test]
    fn words_are_lowercased_with_prefixes() {
        assert_eq!(texts("Hello"), ["he", "hel", "hell", "hello"]);
        assert_eq!(texts("a I"), ["a", "i"]);
        assert!(texts("iPhone15与北京").contains(&"iphone15".to_owned()));
    }

    #[test]
    fn queries_parse_by_the_same_rules() {
        let parsed = ParsedQuery::parse("北京 HELLO").expect("parses");
        assert_eq!(
            parsed.terms,
            [QueryTerm::Cjk { text: "北京".into(), bigrams: vec!["北京".into()] }, QueryTerm::Word("hello".into())]
        );
        assert_eq!(ParsedQuery::parse("北"), Err(QueryProblem::CjkTooShort));
        assert_eq!(ParsedQuery::parse(" ,.!"), Err(QueryProblem::NoTerms));
        let long = ParsedQuery::parse("abcdefghijklmnopqrstuvwxyz").expect("parses");
        assert_eq!(long.terms, [QueryTerm::Word("abcdefghijklmnop".into())]);
    }
}
