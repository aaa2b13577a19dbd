//! A `SearchRequest` as a tantivy query: every term must match (a word as its token, a CJK term
//! as the phrase of its bigrams), inside one of the scopes, not newer than `created_until`.
//! Scopes and the time bound are filters: they do not change scores.

use std::ops::Bound;

use natter_core::ids::Seq;
use natter_core::search::{QueryTerm, SearchRequest};
use tantivy::Term;
use tantivy::query::{BooleanQuery, ConstScoreQuery, Occur, PhraseQuery, Query, RangeQuery, TermQuery, TermSetQuery};
use tantivy::schema::IndexRecordOption;

use crate::Fields;

pub(crate) fn build(f: &Fields, request: &SearchRequest) -> BooleanQuery {
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    for term in &request.query.terms {
        let query: Box<dyn Query> = match term {
            QueryTerm::Word(word) => {
                Box::new(TermQuery::new(Term::from_field_text(f.text, word), IndexRecordOption::WithFreqs))
            }
            QueryTerm::Cjk { bigrams, .. } if bigrams.len() == 1 => {
                Box::new(TermQuery::new(Term::from_field_text(f.text, &bigrams[0]), IndexRecordOption::WithFreqs))
            }
            QueryTerm::Cjk { bigrams, .. } => {
                Box::new(PhraseQuery::new(bigrams.iter().map(|b| Term::from_field_text(f.text, b)).collect()))
            }
        };
        clauses.push((Occur::Must, query));
    }
    clauses.push((Occur::Must, Box::new(ConstScoreQuery::new(scopes(f, request), 0.0))));
    if let Some(until) = request.created_until {
        let bound = Term::from_field_i64(f.created_at, until.timestamp_millis());
        let range = RangeQuery::new(Bound::Unbounded, Bound::Included(bound));
        clauses.push((Occur::Must, Box::new(ConstScoreQuery::new(Box::new(range), 0.0))));
    }
    BooleanQuery::new(clauses)
}

/// Conversations the caller sees whole (`min_seq <= 1`) as one term set; each other one as its
/// conversation term and a `seq` range.
fn scopes(f: &Fields, request: &SearchRequest) -> Box<dyn Query> {
    let (whole, partial): (Vec<_>, Vec<_>) = request.scopes.iter().partition(|scope| scope.min_seq <= Seq::FIRST);
    let mut any: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    if !whole.is_empty() {
        let terms = whole.iter().map(|scope| Term::from_field_text(f.conversation, scope.conversation_id.as_str()));
        any.push((Occur::Should, Box::new(TermSetQuery::new(terms))));
    }
    for scope in partial {
        let conversation = Term::from_field_text(f.conversation, scope.conversation_id.as_str());
        let from = Term::from_field_i64(f.seq, scope.min_seq.get());
        let both: Vec<(Occur, Box<dyn Query>)> = vec![
            (Occur::Must, Box::new(TermQuery::new(conversation, IndexRecordOption::Basic))),
            (Occur::Must, Box::new(RangeQuery::new(Bound::Included(from), Bound::Unbounded))),
        ];
        any.push((Occur::Should, Box::new(BooleanQuery::new(both))));
    }
    Box::new(BooleanQuery::new(any))
}
