//! Search and listings from a per-node derived index of every auction this node hosts.
//!
//! DESIGN.md "Search": every node keeps a full-text index of the auctions of every group it
//! hosts, fed from applied changes, and serves `GET /api/v1/search` and the auction listings
//! (`GET /api/v1/auctions`, `GET /api/v1/admin/auctions`) from it, so a listing costs one
//! index query however many auctions there are.
//!
//! - [`SearchIndex`] is what the handlers see: one query (text, filters, sort, cursor, limit)
//!   in, one bounded page (auctions, next cursor, total, category counts, lag) out. Production
//!   and tests use [`tantivy_index::TantivyIndex`] (on disk under the node's data directory,
//!   or in a RAM directory for tests and the simulator).
//! - [`indexer`] feeds the index: the raft crate's change feed
//!   (`auction_raft::state_machine::feed`) names the auctions each applied batch wrote; the
//!   indexer re-reads them from the local replica and commits about every
//!   [`indexer::COMMIT_INTERVAL_MS`], with each group's indexed log index in the commit
//!   payload. A group whose feed lost batches, whose state a snapshot replaced, or whose
//!   stored position does not match its applied index at start is rescanned whole from the
//!   local state machine; a missing or unreadable index is rebuilt the same way.
//! - [`live`]: a change that only moves an auction's price and bid count (a bid) is not
//!   re-indexed: the feed hands it over with the record, it shows at once through an overlay
//!   that searches read over the index, and a commit at most every [`live::FOLD_AFTER_MS`]
//!   folds the overlay into the documents.
//! - [`query`] turns the request into a tantivy query: every word must match the title or the
//!   description, exactly or with typos (one from [`query::ONE_TYPO_CHARS_MIN`] letters, two
//!   from [`query::TWO_TYPOS_CHARS_MIN`]), the last word also as a prefix; exact matches and
//!   title matches rank first.
//! - [`params`] parses and bounds the query string.
//! - [`meili`]: the optional Meilisearch sink (`AUCTION_MEILI_URL`): each shard's leader also
//!   pushes its changed auctions to an external Meilisearch about once a second, fed by the
//!   indexer through a [`meili::SinkInbox`]; off without a URL, never on the request path.
//!
//! Paging: a cursor is the sort key and id of the last item plus the snapshot it was cut from
//! (the index generation and the live overlay of its first page). While that snapshot is
//! still pinned (a bounded number, for a bounded time) the next page reads it, so paging never repeats or skips an auction even while
//! bids change prices; past that it continues from the key in the current index, which never
//! repeats or skips an auction whose sort key did not change in between.
//!
//! Not done yet: catching up after a restart replays nothing: a group whose stored position is
//! behind is rescanned (cheap for a clean stop, whose last commit leaves every position
//! current); category counts are over the whole result, the category filter included (not
//! disjunctive facets); the simulator does not wire an index yet (its nodes list auctions by
//! scanning the replicas, [`crate::listing`]).

pub mod indexer;
pub mod live;
pub mod meili;
pub mod params;
pub mod query;
pub mod schema;
pub mod tantivy_index;

use auction_raft::GroupId;
use auction_statemachine::{Auction, ImageFile, TimestampMs};

use crate::error::ApiResult;
use crate::listing::Filter;

pub use params::{SearchCursor, SearchSort};

/// Items of one page, at most (and the default).
pub const PAGE_SIZE_MAX: usize = 100;
pub const PAGE_SIZE_DEFAULT: usize = 20;
/// Categories reported in `facets.category`, at most (the most frequent first).
pub const FACET_VALUES_MAX: usize = 100;

/// One search or listing request, validated.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    /// Words to match (`q`); `None` lists everything that passes the filter.
    pub text: Option<String>,
    pub filter: Filter,
    pub sort: SearchSort,
    pub cursor: Option<SearchCursor>,
    /// 1..=[`PAGE_SIZE_MAX`].
    pub limit: usize,
    /// The time statuses are judged at (scheduled vs active).
    pub now: TimestampMs,
    /// Whether to count categories (search does, listings do not).
    pub facets: bool,
}

/// One page of results.
#[derive(Debug, Clone, Default)]
pub struct SearchPage {
    pub auctions: Vec<Auction>,
    /// The thumbnail of each auction's first image, in the same order (`None`: no image).
    pub covers: Vec<Option<ImageFile>>,
    pub next_cursor: Option<SearchCursor>,
    /// Every auction that matches, over all pages.
    pub total: u64,
    /// Matching auctions per category, most frequent first, at most [`FACET_VALUES_MAX`].
    pub categories: Vec<(String, u64)>,
    /// How far the index was behind the applied state when the page was read.
    pub lag_ms: u64,
}

/// How far the index is behind one group's applied state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupLag {
    pub group: GroupId,
    /// The group's log index the index reflects (0 before the first commit).
    pub indexed_index: u64,
    /// Milliseconds since the oldest applied change that is not searchable yet (0 when none).
    pub lag_ms: u64,
}

/// What the index holds and costs, for `/metrics`. Its memory is the writer's budget plus the
/// part of its memory-mapped files the kernel keeps resident (at most `disk_bytes`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexUsage {
    /// Documents searchable now (one per auction).
    pub documents: u64,
    /// Bytes of the index's files; `None` for an index in RAM.
    pub disk_bytes: Option<u64>,
    /// The indexing memory budget of the writer.
    pub writer_memory_bytes: u64,
    /// Auctions whose bids wait in the live overlay, newer than their documents.
    pub live_auctions: u64,
}

/// The derived index the search and listing handlers read.
pub trait SearchIndex: Send + Sync + 'static {
    /// One page of auctions for `request`. Blocking (it reads the index): call it off the
    /// async runtime, see [`crate::blocking`].
    fn search(&self, request: &SearchRequest) -> ApiResult<SearchPage>;
    /// Per group: what the index reflects and how far behind it is.
    fn lag(&self) -> Vec<GroupLag>;
    /// Documents, disk and memory of the index.
    fn usage(&self) -> IndexUsage;
}

#[cfg(test)]
mod tests;
