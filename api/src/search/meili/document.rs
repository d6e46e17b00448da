//! What the sink writes to Meilisearch: one document per auction, and the index settings.
//!
//! The document mirrors what the tantivy index stores ([`crate::search::schema`]): the text
//! (`title`, `description`), the filters and sorts (`category`, `phase`, the price the
//! listings filter on, the times, `bidCount`, `sellerId`) and the owning shard (`group`).
//! Prices are integer cents for filters and sorts, and also the API's decimal strings.
//!
//! `phase` (`open`, `sold`, `unsold`, `cancelled`) is stored rather than the API's `status`:
//! `scheduled` and `active` are both `open`, told apart by the time a reader asks at
//! (`startsAt > now`), and no write happens when an auction starts, so a stored status would
//! go stale. `syncEpoch` tells a resync's documents from older ones (see [`super::sink`]).

use auction_raft::GroupId;
use auction_statemachine::{Auction, Phase};
use meilisearch_sdk::settings::Settings;
use serde::Serialize;

use crate::listing::display_price;

/// The primary key of the documents.
pub const PRIMARY_KEY: &str = "id";

/// One auction as a Meilisearch document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    /// The auction id as the API writes it (hyphenated UUID).
    pub id: String,
    /// The shard that owns the auction.
    pub group: GroupId,
    pub title: String,
    pub description: String,
    pub category: Option<String>,
    pub phase: &'static str,
    pub starts_at: i64,
    pub ends_at: i64,
    pub created_at: i64,
    /// The current bid, else the starting price (what listings filter and sort on), in cents.
    pub current_price_cents: i64,
    /// The same amount as the API writes money (`"12.50"`).
    pub current_price: String,
    pub starting_price_cents: i64,
    pub starting_price: String,
    pub bid_count: u32,
    pub seller_id: String,
    /// The resync generation that wrote it, see [`super::sink`].
    pub sync_epoch: u64,
}

impl Document {
    pub fn new(group: GroupId, auction: &Auction, sync_epoch: u64) -> Document {
        let price = display_price(auction);
        Document {
            id: auction.id.to_string(),
            group,
            title: auction.title.clone(),
            description: auction.description.clone(),
            category: auction.category.clone(),
            phase: phase_name(auction.phase),
            starts_at: auction.start_time,
            ends_at: auction.end_time,
            created_at: auction.created_at,
            current_price_cents: price.cents(),
            current_price: price.to_string(),
            starting_price_cents: auction.rules.starting.cents(),
            starting_price: auction.rules.starting.to_string(),
            bid_count: auction.bid_count,
            seller_id: auction.seller_id.to_string(),
            sync_epoch,
        }
    }
}

/// The phase as documents spell it.
pub fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Open => "open",
        Phase::Sold => "sold",
        Phase::Unsold => "unsold",
        Phase::Cancelled => "cancelled",
    }
}

/// Words are matched in these, the title first.
pub const SEARCHABLE_ATTRIBUTES: [&str; 2] = ["title", "description"];
/// `group` and `syncEpoch` are the sink's own (a resync deletes by them).
pub const FILTERABLE_ATTRIBUTES: [&str; 11] = [
    "category",
    "phase",
    "currentPriceCents",
    "startingPriceCents",
    "startsAt",
    "endsAt",
    "createdAt",
    "bidCount",
    "sellerId",
    "group",
    "syncEpoch",
];
pub const SORTABLE_ATTRIBUTES: [&str; 4] = ["endsAt", "createdAt", "currentPriceCents", "bidCount"];

/// The settings written once per process start, before the first documents.
pub fn settings() -> Settings {
    Settings::new()
        .with_searchable_attributes(SEARCHABLE_ATTRIBUTES)
        .with_filterable_attributes(FILTERABLE_ATTRIBUTES)
        .with_sortable_attributes(SORTABLE_ATTRIBUTES)
}
