//! Auction listings: filters, sort orders and cursor pagination over every shard.
//!
//! A listing scatters over the local replica of every shard (listings may lag by the
//! replication delay, as `api/API.md` allows), gathers the auctions that pass the filter, orders
//! them and cuts one page. The cursor is the sort key and id of the last item of the previous
//! page, so a page never repeats or skips an auction whose key did not change in between.
//!
//! Bounds: at most [`SCAN_PER_SHARD_MAX`] auctions are read per shard per request. A per-node
//! derived index (by end time, price, category, seller) is the next step and removes the scan.

use std::collections::BTreeSet;

use auction_statemachine::{query, Auction, KvRead, Money, Status, StoreError, TimestampMs};
use auction_statemachine::{AuctionId, UserId};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

/// Auctions read from one shard for one listing, at most.
pub const SCAN_PER_SHARD_MAX: usize = 20_000;
pub const PAGE_SIZE_DEFAULT: usize = 20;
pub const PAGE_SIZE_MAX: usize = 100;

#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Empty: every status.
    pub statuses: BTreeSet<Status>,
    pub category: Option<String>,
    pub seller: Option<UserId>,
    pub min_price: Option<Money>,
    pub max_price: Option<Money>,
    /// A case-insensitive substring of the title.
    pub text: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    EndingSoon,
    Newest,
    PriceAsc,
    PriceDesc,
    MostBids,
}

impl Sort {
    pub fn parse(text: Option<&str>) -> ApiResult<Sort> {
        match text {
            None | Some("ending_soon") => Ok(Sort::EndingSoon),
            Some("newest") => Ok(Sort::Newest),
            Some("price_asc") => Ok(Sort::PriceAsc),
            Some("price_desc") => Ok(Sort::PriceDesc),
            Some("most_bids") => Ok(Sort::MostBids),
            Some(_) => Err(ApiError::validation(
                "sort",
                "must be one of ending_soon, newest, price_asc, price_desc, most_bids",
            )),
        }
    }
}

/// The price a listing shows and filters on: the current price, else the starting price.
pub fn display_price(auction: &Auction) -> Money {
    auction.pricing.price.unwrap_or(auction.rules.starting)
}

impl Filter {
    pub fn parse(params: &std::collections::HashMap<String, String>) -> ApiResult<Filter> {
        let mut filter = Filter::default();
        if let Some(text) = params.get("status") {
            for part in text
                .split(',')
                .map(str::trim)
                .filter(|part| !part.is_empty())
            {
                let status = Status::parse(part).ok_or_else(|| {
                    ApiError::validation(
                        "status",
                        "must be scheduled, active, sold, unsold or cancelled (comma-separated)",
                    )
                })?;
                filter.statuses.insert(status);
            }
        }
        filter.category = params
            .get("category")
            .map(|category| category.trim().to_owned());
        if let Some(text) = params.get("sellerId") {
            let id = Uuid::parse_str(text)
                .map_err(|_| ApiError::validation("sellerId", "must be a UUID"))?;
            filter.seller = Some(UserId(id));
        }
        let price = |field: &str| -> ApiResult<Option<Money>> {
            params
                .get(field)
                .map(|text| {
                    Money::parse(text.trim())
                        .map_err(|error| ApiError::validation(field, error.to_string()))
                })
                .transpose()
        };
        filter.min_price = price("minPrice")?;
        filter.max_price = price("maxPrice")?;
        filter.text = params
            .get("q")
            .map(|text| text.trim().to_lowercase())
            .filter(|text| !text.is_empty());
        Ok(filter)
    }

    pub fn matches(&self, auction: &Auction, now: TimestampMs) -> bool {
        let price = display_price(auction);
        (self.statuses.is_empty() || self.statuses.contains(&auction.status_at(now)))
            && self
                .category
                .as_ref()
                .is_none_or(|category| auction.category.as_deref() == Some(category.as_str()))
            && self.seller.is_none_or(|seller| auction.seller_id == seller)
            && self.min_price.is_none_or(|min| price >= min)
            && self.max_price.is_none_or(|max| price <= max)
            && self
                .text
                .as_ref()
                .is_none_or(|text| auction.title.to_lowercase().contains(text))
    }
}

/// Position of an auction in a sort order: ascending `(key, id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub key: i64,
    pub id: Uuid,
}

impl Cursor {
    pub fn of(auction: &Auction, sort: Sort) -> Cursor {
        let key = match sort {
            Sort::EndingSoon => auction.end_time,
            Sort::Newest => -auction.created_at,
            Sort::PriceAsc => display_price(auction).cents(),
            Sort::PriceDesc => -display_price(auction).cents(),
            Sort::MostBids => -i64::from(auction.bid_count),
        };
        Cursor {
            key,
            id: auction.id.0,
        }
    }

    pub fn encode(&self) -> String {
        format!("{}_{}", self.key, self.id.simple())
    }

    pub fn decode(text: &str) -> ApiResult<Cursor> {
        let invalid = || ApiError::validation("cursor", "not a cursor this listing returned");
        let (key, id) = text.split_once('_').ok_or_else(invalid)?;
        Ok(Cursor {
            key: key.parse().map_err(|_| invalid())?,
            id: Uuid::parse_str(id).map_err(|_| invalid())?,
        })
    }
}

/// Every auction of one shard's replica that passes `filter`, bounded.
pub fn gather(
    kv: &impl KvRead,
    filter: &Filter,
    now: TimestampMs,
) -> Result<Vec<Auction>, StoreError> {
    let mut found = Vec::new();
    let mut after: Option<AuctionId> = None;
    let mut scanned = 0;
    while scanned < SCAN_PER_SHARD_MAX {
        let batch = query::auctions(kv, after, query::PAGE_ITEMS_MAX)?;
        let Some(last) = batch.last() else { break };
        after = Some(last.id);
        scanned += batch.len();
        found.extend(
            batch
                .into_iter()
                .filter(|auction| filter.matches(auction, now)),
        );
    }
    Ok(found)
}

/// One page of `auctions` in `sort` order after `cursor`, and the cursor of the next page.
pub fn page(
    mut auctions: Vec<Auction>,
    sort: Sort,
    cursor: Option<Cursor>,
    limit: usize,
) -> (Vec<Auction>, Option<Cursor>) {
    auctions.retain(|auction| cursor.is_none_or(|cursor| Cursor::of(auction, sort) > cursor));
    auctions.sort_by_key(|auction| Cursor::of(auction, sort));
    let more = auctions.len() > limit;
    auctions.truncate(limit);
    let next = if more {
        auctions.last().map(|auction| Cursor::of(auction, sort))
    } else {
        None
    };
    (auctions, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use auction_statemachine::model::{AntiSnipe, Phase};
    use auction_statemachine::pricing::{PriceRules, Pricing};
    use auction_statemachine::Increment;

    fn auction(n: u128, end_time: i64, starting_cents: i64, category: &str) -> Auction {
        Auction {
            id: AuctionId(Uuid::from_u128(n)),
            seller_id: UserId(Uuid::from_u128(1_000 + n % 2)),
            title: format!("Item {n}"),
            description: String::new(),
            category: Some(category.to_owned()),
            rules: PriceRules {
                starting: Money::from_cents(starting_cents),
                reserve: None,
                increment: Increment::default(),
            },
            buy_now_price: None,
            start_time: 0,
            end_time,
            original_end_time: end_time,
            anti_snipe: AntiSnipe::default(),
            phase: Phase::Open,
            pricing: Pricing::default(),
            bid_count: 0,
            created_at: n as i64,
            closed_at: None,
        }
    }

    #[test]
    fn pages_follow_the_sort_and_the_cursor_never_repeats_or_skips() {
        let auctions: Vec<Auction> = (1..=25)
            .map(|n| auction(n, 1_000 + (n as i64 % 5), 100 * n as i64, "art"))
            .collect();
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let (items, next) = page(auctions.clone(), Sort::EndingSoon, cursor, 7);
            seen.extend(items.iter().map(|auction| auction.id));
            match next {
                Some(next) => cursor = Some(Cursor::decode(&next.encode()).expect("cursor")),
                None => break,
            }
        }
        assert_eq!(seen.len(), 25);
        let unique: BTreeSet<_> = seen.iter().collect();
        assert_eq!(unique.len(), 25, "no auction twice");
        let (items, _) = page(auctions, Sort::PriceDesc, None, 3);
        let prices: Vec<i64> = items.iter().map(|a| display_price(a).cents()).collect();
        assert_eq!(prices, vec![2_500, 2_400, 2_300]);
    }

    #[test]
    fn filters_combine() {
        let mut params = std::collections::HashMap::new();
        params.insert("category".to_owned(), "art".to_owned());
        params.insert("minPrice".to_owned(), "2.00".to_owned());
        params.insert("maxPrice".to_owned(), "5".to_owned());
        params.insert("status".to_owned(), "active".to_owned());
        let filter = Filter::parse(&params).expect("filter");
        assert!(filter.matches(&auction(3, 10, 300, "art"), 5));
        assert!(!filter.matches(&auction(3, 10, 300, "toys"), 5), "category");
        assert!(!filter.matches(&auction(9, 10, 900, "art"), 5), "price");
        params.insert("status".to_owned(), "bogus".to_owned());
        assert!(Filter::parse(&params).is_err());
        assert!(Cursor::decode("nonsense").is_err());
    }
}
