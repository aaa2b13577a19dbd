//! Highlighted snippets: the part of a message's text around its first match, HTML-escaped, with
//! every match wrapped in `<mark>`…`</mark>`.
//!
//! Built from the message's current text and the parsed query (not by an index adapter), so both
//! adapters give the same snippet. A word term highlights every whole word it is a prefix of; a
//! CJK term every occurrence of itself.

use super::tokens::{ParsedQuery, QueryTerm, is_cjk};

/// Longest snippet, in characters (not counting markup and the `…` at cut ends).
pub const SNIPPET_CHARS: usize = 160;
/// Characters kept before the first match when the text is cut.
const LEAD_CHARS: usize = 40;

/// Byte ranges of `text` that match a term of `query`, sorted, merged.
pub fn match_ranges(text: &str, query: &ParsedQuery) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    for term in &query.terms {
        match term {
            QueryTerm::Cjk { text: needle, .. } => {
                ranges.extend(text.match_indices(needle.as_str()).map(|(at, found)| (at, at + found.len())));
            }
            QueryTerm::Word(prefix) => {
                for (from, to) in words(text) {
                    if text[from..to].to_lowercase().starts_with(prefix.as_str()) {
                        ranges.push((from, to));
                    }
                }
            }
        }
    }
    ranges.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
    for (from, to) in ranges {
        match merged.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => merged.push((from, to)),
        }
    }
    merged
}

/// Byte ranges of the words (runs of non-CJK letters and digits) of `text`.
fn words(text: &str) -> Vec<(usize, usize)> {
    let mut words = Vec::new();
    let mut start = None;
    for (at, c) in text.char_indices() {
        let word_char = c.is_alphanumeric() && !is_cjk(c);
        match (word_char, start) {
            (true, None) => start = Some(at),
            (false, Some(from)) => {
                words.push((from, at));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(from) = start {
        words.push((from, text.len()));
    }
    words
}

/// The snippet of `text` for `query`; see the module docs.
pub fn snippet(text: &str, query: &ParsedQuery) -> String {
    let ranges = match_ranges(text, query);
    let boundaries: Vec<usize> = text.char_indices().map(|(at, _)| at).chain([text.len()]).collect();
    let total = boundaries.len() - 1;
    let (mut first, mut last) = (0, total);
    if total > SNIPPET_CHARS {
        let match_char = ranges.first().map_or(0, |&(from, _)| boundaries.partition_point(|&b| b < from));
        first = match_char.saturating_sub(LEAD_CHARS).min(total - SNIPPET_CHARS);
        last = first + SNIPPET_CHARS;
    }
    let (from, to) = (boundaries[first], boundaries[last]);
    let mut out = String::with_capacity((to - from) + 32);
    if first > 0 {
        out.push('…');
    }
    let mut at = from;
    for &(start, end) in &ranges {
        let (start, end) = (start.max(from), end.min(to));
        if start >= end {
            continue;
        }
        escape_into(&mut out, &text[at..start]);
        out.push_str("<mark>");
        escape_into(&mut out, &text[start..end]);
        out.push_str("</mark>");
        at = end;
    }
    escape_into(&mut out, &text[at.min(to)..to]);
    if last < total {
        out.push('…');
    }
    out
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(query: &str) -> ParsedQuery {
        ParsedQuery::parse(query).expect("parses")
    }

    #[test]
    fn marks_cjk_substrings_and_word_prefixes() {
        assert_eq!(snippet("我们明天去北京开会", &parsed("京开")), "我们明天去北<mark>京开</mark>会");
        assert_eq!(snippet("Hello <World> & co", &parsed("wor")), "Hello &lt;<mark>World</mark>&gt; &amp; co");
    }

    #[test]
    fn long_texts_are_cut_around_the_first_match() {
        let text = format!("{} needle {}", "x ".repeat(200), "y ".repeat(200));
        let cut = snippet(&text, &parsed("needle"));
        assert!(cut.starts_with('…') && cut.ends_with('…'));
        assert!(cut.contains("<mark>needle</mark>"));
        assert!(cut.chars().count() <= SNIPPET_CHARS + 2 + "<mark></mark>".len());
    }
}
