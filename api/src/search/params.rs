//! The query string of `GET /search` and of the listings, parsed and bounded.
//!
//! Bad input is a 422 `VALIDATION_FAILED` naming the field, like every other request.

use std::collections::HashMap;

use auction_statemachine::TimestampMs;
use uuid::Uuid;

use super::{SearchRequest, PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX};
use crate::error::{ApiError, ApiResult};
use crate::listing::Filter;

/// The longest `q`, in characters.
pub const QUERY_CHARS_MAX: usize = 200;

/// The order of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchSort {
    /// Best match first (with no words: newest first).
    Relevance,
    EndingSoon,
    Newest,
    PriceAsc,
    PriceDesc,
    MostBids,
}

impl SearchSort {
    const NAMES: &'static str = "relevance, ending_soon, newest, price_asc, price_desc, most_bids";

    pub fn parse(text: Option<&str>, default: SearchSort) -> ApiResult<SearchSort> {
        match text {
            None => Ok(default),
            Some("relevance") => Ok(SearchSort::Relevance),
            Some("ending_soon") => Ok(SearchSort::EndingSoon),
            Some("newest") => Ok(SearchSort::Newest),
            Some("price_asc") => Ok(SearchSort::PriceAsc),
            Some("price_desc") => Ok(SearchSort::PriceDesc),
            Some("most_bids") => Ok(SearchSort::MostBids),
            Some(_) => Err(ApiError::validation(
                "sort",
                format!("must be one of {}", SearchSort::NAMES),
            )),
        }
    }

    fn tag(self) -> char {
        match self {
            SearchSort::Relevance => 'r',
            SearchSort::EndingSoon => 'e',
            SearchSort::Newest => 'n',
            SearchSort::PriceAsc => 'a',
            SearchSort::PriceDesc => 'd',
            SearchSort::MostBids => 'b',
        }
    }
}

/// Where the next page starts: after `(key, id)` in ascending order, in the index snapshot
/// `generation` if it is still pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchCursor {
    pub sort: SearchSort,
    pub generation: u64,
    pub key: i64,
    pub id: u128,
}

impl SearchCursor {
    /// Opaque to clients: `<sort tag><generation>_<key>_<id hex>`.
    pub fn encode(&self) -> String {
        format!(
            "{}{}_{}_{:032x}",
            self.sort.tag(),
            self.generation,
            self.key,
            self.id
        )
    }

    /// A cursor this API returned for the same sort.
    pub fn decode(text: &str, sort: SearchSort) -> ApiResult<SearchCursor> {
        let invalid = || ApiError::validation("cursor", "not a cursor this listing returned");
        let rest = text.strip_prefix(sort.tag()).ok_or_else(invalid)?;
        let mut parts = rest.splitn(3, '_');
        let generation = parts.next().ok_or_else(invalid)?;
        let key = parts.next().ok_or_else(invalid)?;
        let id = parts.next().ok_or_else(invalid)?;
        if id.len() != 32 {
            return Err(invalid());
        }
        Ok(SearchCursor {
            sort,
            generation: generation.parse().map_err(|_| invalid())?,
            key: key.parse().map_err(|_| invalid())?,
            id: u128::from_str_radix(id, 16).map_err(|_| invalid())?,
        })
    }
}

/// `limit`: 1..=[`PAGE_SIZE_MAX`], default [`PAGE_SIZE_DEFAULT`].
fn limit(text: Option<&str>) -> ApiResult<usize> {
    let Some(text) = text else {
        return Ok(PAGE_SIZE_DEFAULT);
    };
    match text.trim().parse::<usize>() {
        Ok(limit) if (1..=PAGE_SIZE_MAX).contains(&limit) => Ok(limit),
        _ => Err(ApiError::validation(
            "limit",
            format!("must be an integer from 1 to {PAGE_SIZE_MAX}"),
        )),
    }
}

/// The words of `q`, trimmed; `None` when there are none.
fn text(params: &HashMap<String, String>) -> ApiResult<Option<String>> {
    let Some(text) = params.get("q") else {
        return Ok(None);
    };
    if text.chars().count() > QUERY_CHARS_MAX {
        return Err(ApiError::validation(
            "q",
            format!("at most {QUERY_CHARS_MAX} characters"),
        ));
    }
    let text = text.trim();
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

/// A search request (`facets` on, relevance by default) or a listing one (ending soon by
/// default), from a query string.
pub fn request(
    params: &HashMap<String, String>,
    now: TimestampMs,
    facets: bool,
) -> ApiResult<SearchRequest> {
    let mut filter = Filter::parse(params)?;
    // The words are matched by the index, not by the listing's substring filter.
    filter.text = None;
    let text = text(params)?;
    let default = if facets && text.is_some() {
        SearchSort::Relevance
    } else {
        SearchSort::EndingSoon
    };
    let sort = SearchSort::parse(params.get("sort").map(String::as_str), default)?;
    let cursor = params
        .get("cursor")
        .map(|cursor| SearchCursor::decode(cursor, sort))
        .transpose()?;
    Ok(SearchRequest {
        text,
        filter,
        sort,
        cursor,
        limit: limit(params.get("limit").map(String::as_str))?,
        now,
        facets,
    })
}

/// The id of an auction as the index orders it.
pub fn id_key(id: Uuid) -> u128 {
    id.as_u128()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn cursors_round_trip_and_refuse_another_sort_or_garbage() {
        let cursor = SearchCursor {
            sort: SearchSort::PriceDesc,
            generation: 7,
            key: -1_250,
            id: 0xabc,
        };
        let text = cursor.encode();
        assert_eq!(
            SearchCursor::decode(&text, SearchSort::PriceDesc),
            Ok(cursor)
        );
        assert!(SearchCursor::decode(&text, SearchSort::PriceAsc).is_err());
        for bad in [
            "",
            "d",
            "d1_2",
            "d1_2_xyz",
            "dx_2_00000000000000000000000000000abc",
        ] {
            assert!(
                SearchCursor::decode(bad, SearchSort::PriceDesc).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn requests_are_bounded_and_refused_with_the_field() {
        let request = request(&params(&[("q", " lamp ")]), 0, true).expect("valid");
        assert_eq!(request.text.as_deref(), Some("lamp"));
        assert_eq!(request.sort, SearchSort::Relevance);
        assert_eq!(request.limit, PAGE_SIZE_DEFAULT);
        let listing = super::request(&params(&[]), 0, false).expect("valid");
        assert_eq!(listing.sort, SearchSort::EndingSoon);
        let long = "x".repeat(QUERY_CHARS_MAX + 1);
        for (key, value) in [
            ("limit", "0"),
            ("limit", "101"),
            ("limit", "ten"),
            ("sort", "random"),
            ("q", long.as_str()),
            ("minPrice", "abc"),
            ("status", "gone"),
            ("cursor", "nonsense"),
        ] {
            let error = super::request(&params(&[(key, value)]), 0, true).expect_err(key);
            assert_eq!(error.code, "VALIDATION_FAILED");
            assert_eq!(error.details["field"], key);
        }
    }
}
