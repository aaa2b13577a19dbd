//! Message search: validates the query, limits it to what the caller may read (conversations they
//! are a member of, entries from their `joined_seq` on), asks the search index, and reads every
//! hit back from the store so that what is shown is the message's current state.

use super::Deps;
use crate::error::{DomainError, DomainResult, ErrorCode};
use crate::ids::{ConversationId, UserId};
use crate::model::{Message, Time};
use crate::search::snippet::snippet;
use crate::search::tokens::{MAX_QUERY_TERMS, QueryProblem};
use crate::search::{ParsedQuery, Scope, SearchOrder, SearchRequest};

/// Longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;
/// Deepest a cursor may page (hits skipped).
pub const MAX_OFFSET: u32 = 10_000;

pub struct SearchService {
    deps: Deps,
}

/// A search as asked by a client.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SearchInput {
    pub q: String,
    pub conversation_id: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    /// `newest` (default) or `relevance`.
    pub order: Option<String>,
}

/// One hit: the message as it is now, its highlighted snippet, and (in relevance order) its score.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FoundMessage {
    pub message: Message,
    pub snippet: String,
    pub score: Option<f32>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Found {
    pub hits: Vec<FoundMessage>,
    pub next_cursor: Option<String>,
}

/// Where the next page starts: hits to skip, and the time bound of the first page (so that
/// messages sent meanwhile do not shift the pages). Opaque to clients: hex of `v1:OFFSET:MILLIS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    offset: u32,
    until_millis: i64,
}

impl Cursor {
    fn encode(self) -> String {
        hex::encode(format!("v1:{}:{}", self.offset, self.until_millis))
    }

    fn decode(text: &str) -> Option<Cursor> {
        let raw = String::from_utf8(hex::decode(text).ok()?).ok()?;
        let mut parts = raw.split(':');
        let (Some("v1"), Some(offset), Some(until), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let cursor = Cursor { offset: offset.parse().ok()?, until_millis: until.parse().ok()? };
        (cursor.offset <= MAX_OFFSET).then_some(cursor)
    }
}

fn invalid_cursor() -> DomainError {
    DomainError::invalid(ErrorCode::InvalidCursor, "cursor is not one this server handed out")
}

impl SearchService {
    pub fn new(deps: Deps) -> Self {
        Self { deps }
    }

    pub async fn messages(&self, me: &UserId, input: SearchInput) -> DomainResult<Found> {
        let query = parse_query(&input.q)?;
        let limit = input.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(DomainError::invalid(ErrorCode::InvalidLimit, format!("limit must be 1-{MAX_LIMIT}")));
        }
        let order = match input.order.as_deref() {
            None | Some("newest") => SearchOrder::Newest,
            Some("relevance") => SearchOrder::Relevance,
            Some(_) => return Err(DomainError::invalid(ErrorCode::InvalidOrder, "order must be newest or relevance")),
        };
        let cursor = match input.cursor.as_deref() {
            None | Some("") => None,
            Some(text) => Some(Cursor::decode(text).ok_or_else(invalid_cursor)?),
        };
        let Some(index) = self.deps.search.clone() else {
            return Err(DomainError::unavailable(ErrorCode::SearchUnavailable, "this server has no search index"));
        };
        let scopes = match input.conversation_id {
            Some(id) => {
                let (_, member) = self.deps.membership(me, &ConversationId(id)).await?;
                vec![Scope { conversation_id: member.conversation_id, min_seq: member.joined_seq }]
            }
            None => {
                let memberships = self.deps.store.memberships_of(me).await?;
                memberships.into_iter().map(|(conversation_id, min_seq)| Scope { conversation_id, min_seq }).collect()
            }
        };
        let until_millis = cursor.map_or_else(|| self.deps.clock.now().timestamp_millis(), |c| c.until_millis);
        let offset = cursor.map_or(0, |c| c.offset);
        let request = SearchRequest {
            query,
            scopes,
            order,
            offset,
            limit,
            created_until: Some(Time::from_timestamp_millis(until_millis).ok_or_else(invalid_cursor)?),
        };
        let page = index.search(&request).await?;
        let mut hits = Vec::with_capacity(page.hits.len());
        let mut stale = Vec::new();
        for hit in &page.hits {
            // The index may lag behind the log (an edit or recall not yet applied, or applied
            // out of order by another process): show the message as it is now, and skip it
            // when it no longer has text.
            let message = self.deps.store.message_at(&hit.conversation_id, hit.seq).await?;
            let Some(message) = message.filter(|m| m.id == hit.message_id && !m.recalled && m.text.is_some()) else {
                stale.push(hit.message_id.clone());
                continue;
            };
            let Some(text) = message.text.as_deref() else { continue };
            let snippet = snippet(text, &request.query);
            let score = (order == SearchOrder::Relevance).then_some(hit.score);
            hits.push(FoundMessage { message, snippet, score });
        }
        if !stale.is_empty() {
            // Repair as we go; the next flush (the indexer's) makes it visible.
            if let Err(error) = index.remove(stale).await {
                tracing::warn!(%error, "could not remove stale search documents");
            }
        }
        let next_offset = offset + limit;
        let next_cursor =
            (page.more && next_offset <= MAX_OFFSET).then(|| Cursor { offset: next_offset, until_millis }.encode());
        Ok(Found { hits, next_cursor })
    }
}

/// Checks and parses `q`: 1–[`MAX_QUERY_CHARS`] characters, at least one searchable term.
pub fn parse_query(q: &str) -> DomainResult<ParsedQuery> {
    let q = q.trim();
    if q.is_empty() {
        return Err(DomainError::invalid(ErrorCode::InvalidQuery, "q must not be empty"));
    }
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(DomainError::invalid(
            ErrorCode::QueryTooLong,
            format!("q has at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    ParsedQuery::parse(q).map_err(|problem| match problem {
        QueryProblem::NoTerms => {
            DomainError::invalid(ErrorCode::InvalidQuery, "q must contain a letter, digit or CJK character")
        }
        QueryProblem::CjkTooShort => DomainError::invalid(
            ErrorCode::QueryTooShort,
            "Chinese, Japanese and Korean terms need at least two characters",
        ),
        QueryProblem::TooManyTerms => {
            DomainError::invalid(ErrorCode::QueryTooLong, format!("q has at most {MAX_QUERY_TERMS} terms"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let cursor = Cursor { offset: 40, until_millis: 1_767_225_600_000 };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(Cursor::decode("zz"), None);
        assert_eq!(Cursor::decode(&hex::encode("v1:99999999:0")), None);
        assert_eq!(Cursor::decode(&hex::encode("v2:1:0")), None);
    }

    #[test]
    fn queries_are_checked() {
        assert!(parse_query("北京").is_ok());
        let code = |q: &str| match parse_query(q) {
            Err(DomainError::Invalid { code, .. }) => code.as_str(),
            other => panic!("expected an invalid query, got {other:?}"),
        };
        assert_eq!(code("   "), "invalid_query");
        assert_eq!(code("!!"), "invalid_query");
        assert_eq!(code("北"), "query_too_short");
        assert_eq!(code(&"a".repeat(201)), "query_too_long");
    }
}
