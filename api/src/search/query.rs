//! A search request as a tantivy query: the words, then the filters, all required.
//!
//! Each word of `q` (at most [`QUERY_WORDS_MAX`], tokenized like the indexed text) must match
//! the title or the description: exactly (BM25, the title boosted by [`TITLE_BOOST`]), or
//! within the typo budget of its length, which only adds a small constant score, so an exact
//! match always ranks above a fuzzy one. The last word also matches as a prefix (as typed).
//! Filters (status at `now`, category, seller) are required clauses without score. The price
//! range is not here: it is checked on live prices by [`super::live::PriceFilter`].

use std::collections::BTreeSet;
use std::ops::Bound;

use auction_statemachine::{Phase, Status, TimestampMs};
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, FuzzyTermQuery, Occur, Query, RangeQuery,
    TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::Term;

use super::schema::{category_facet, phase_code, Fields};
use super::SearchRequest;

/// Words of `q` that are matched, at most; the rest are ignored.
pub const QUERY_WORDS_MAX: usize = 8;
/// A word of at least this many characters may have one typo.
pub const ONE_TYPO_CHARS_MIN: usize = 5;
/// A word of at least this many characters may have two typos.
pub const TWO_TYPOS_CHARS_MIN: usize = 9;
/// How much more a title match counts than a description match.
pub const TITLE_BOOST: f32 = 3.0;
/// The score a typo-tolerant or prefix match adds (an exact match adds its BM25 on top).
pub const FUZZY_SCORE: f32 = 0.1;

/// Typos allowed in a word of `chars` characters.
pub fn typos_allowed(chars: usize) -> u8 {
    if chars >= TWO_TYPOS_CHARS_MIN {
        2
    } else if chars >= ONE_TYPO_CHARS_MIN {
        1
    } else {
        0
    }
}

/// The words of `text` as the index's tokenizer cuts them, at most [`QUERY_WORDS_MAX`].
pub fn words(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut stream = analyzer.token_stream(text);
    while stream.advance() {
        if words.len() == QUERY_WORDS_MAX {
            break;
        }
        words.push(stream.token().text.clone());
    }
    words
}

fn word_in_field(field: Field, word: &str, last: bool, boost: f32) -> Vec<Box<dyn Query>> {
    let term = Term::from_field_text(field, word);
    let exact: Box<dyn Query> = Box::new(BoostQuery::new(
        Box::new(TermQuery::new(term.clone(), IndexRecordOption::WithFreqs)),
        boost,
    ));
    let mut clauses = vec![exact];
    let typos = typos_allowed(word.chars().count());
    if typos > 0 {
        let fuzzy = FuzzyTermQuery::new(term.clone(), typos, true);
        clauses.push(Box::new(ConstScoreQuery::new(Box::new(fuzzy), FUZZY_SCORE)));
    }
    if last {
        let prefix = FuzzyTermQuery::new_prefix(term, typos, true);
        clauses.push(Box::new(ConstScoreQuery::new(
            Box::new(prefix),
            FUZZY_SCORE,
        )));
    }
    clauses
}

/// One word: any of its forms in the title or the description.
fn word_query(fields: &Fields, word: &str, last: bool) -> Box<dyn Query> {
    let mut clauses = word_in_field(fields.title, word, last, TITLE_BOOST);
    clauses.extend(word_in_field(fields.description, word, last, 1.0));
    Box::new(BooleanQuery::new(
        clauses
            .into_iter()
            .map(|clause| (Occur::Should, clause))
            .collect(),
    ))
}

fn unscored(query: Box<dyn Query>) -> Box<dyn Query> {
    Box::new(ConstScoreQuery::new(query, 0.0))
}

fn term(term: Term) -> Box<dyn Query> {
    Box::new(TermQuery::new(term, IndexRecordOption::Basic))
}

fn phase_is(fields: &Fields, phase: Phase) -> Box<dyn Query> {
    term(Term::from_field_u64(fields.phase, phase_code(phase)))
}

/// Open auctions that started (`started`) or not yet, at `now`.
fn open_started(fields: &Fields, now: TimestampMs, started: bool) -> Box<dyn Query> {
    let range = if started {
        (
            Bound::Unbounded,
            Bound::Included(Term::from_field_i64(fields.start_time, now)),
        )
    } else {
        (
            Bound::Excluded(Term::from_field_i64(fields.start_time, now)),
            Bound::Unbounded,
        )
    };
    Box::new(BooleanQuery::new(vec![
        (Occur::Must, phase_is(fields, Phase::Open)),
        (Occur::Must, Box::new(RangeQuery::new(range.0, range.1))),
    ]))
}

fn status_query(fields: &Fields, statuses: &BTreeSet<Status>, now: TimestampMs) -> Box<dyn Query> {
    let clauses = statuses
        .iter()
        .map(|status| {
            let clause = match status {
                Status::Scheduled => open_started(fields, now, false),
                Status::Active => open_started(fields, now, true),
                Status::Sold => phase_is(fields, Phase::Sold),
                Status::Unsold => phase_is(fields, Phase::Unsold),
                Status::Cancelled => phase_is(fields, Phase::Cancelled),
            };
            (Occur::Should, clause)
        })
        .collect();
    Box::new(BooleanQuery::new(clauses))
}

/// The required filter clauses of `request`.
fn filters(fields: &Fields, request: &SearchRequest) -> Vec<Box<dyn Query>> {
    let filter = &request.filter;
    let mut clauses = Vec::new();
    if !filter.statuses.is_empty() {
        clauses.push(status_query(fields, &filter.statuses, request.now));
    }
    if let Some(category) = &filter.category {
        clauses.push(term(Term::from_facet(
            fields.category,
            &category_facet(category),
        )));
    }
    if let Some(seller) = filter.seller {
        let seller = seller.0.simple().to_string();
        clauses.push(term(Term::from_field_text(fields.seller, &seller)));
    }
    clauses
}

/// The whole query of `request`.
pub fn build(
    fields: &Fields,
    analyzer: &mut TextAnalyzer,
    request: &SearchRequest,
) -> Box<dyn Query> {
    let words = request
        .text
        .as_deref()
        .map(|text| words(analyzer, text))
        .unwrap_or_default();
    let count = words.len();
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = words
        .iter()
        .enumerate()
        .map(|(n, word)| (Occur::Must, word_query(fields, word, n + 1 == count)))
        .collect();
    clauses.extend(
        filters(fields, request)
            .into_iter()
            .map(|clause| (Occur::Must, unscored(clause))),
    );
    if clauses.is_empty() {
        // A text of only separators, or no text and no filter: every auction.
        if request.text.is_some() && count == 0 {
            return Box::new(BooleanQuery::new(Vec::new()));
        }
        return Box::new(AllQuery);
    }
    Box::new(BooleanQuery::new(clauses))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_typo_budget_follows_the_word_length() {
        assert_eq!(typos_allowed(4), 0);
        assert_eq!(typos_allowed(5), 1);
        assert_eq!(typos_allowed(8), 1);
        assert_eq!(typos_allowed(9), 2);
        assert_eq!(typos_allowed(30), 2);
    }
}
