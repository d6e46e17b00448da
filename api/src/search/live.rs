//! Live fields: a bid shows in listings and search at once, without rewriting its document.
//!
//! Most applied changes are bids, and a bid moves only an auction's price and bid count. A
//! tantivy commit has a fixed cost whatever it holds (issue 10's profile: ≈ 15–20% of a node's
//! CPU under a bid load went to re-indexing auctions whose text had not changed), so such a
//! change does not go through the index. The change feed asks [`is_live_change`] for every
//! auction record a batch writes; a *live* change (nothing the index matches on moved: the
//! text, the category, the seller, the phase, the times) reaches the indexer with the record,
//! which puts it in the [`LiveOverlay`] at once. Searches read the overlay over the index:
//! the price and bid count of an overlaid auction come from it when filtering by price,
//! sorting by price or bids and rendering the page. A later commit (due after
//! [`FOLD_AFTER_MS`], or when the overlay holds [`LIVE_AUCTIONS_MAX`], or with any other
//! change) re-reads the overlaid auctions into their documents and drops what it folded.
//!
//! The overlay is copied on write ([`Arc::make_mut`]): a search takes the current map in O(1)
//! and keeps it (a cursor pins it with its index snapshot, so later pages see the prices of
//! the first one); the indexer's next update after that copies the map once.
//!
//! Not done yet: the Meilisearch sink pushes whole documents for live changes too.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use auction_raft::state_machine::feed::LiveTest;
use auction_raft::GroupId;
use auction_statemachine::{codec, Auction, AuctionId, Money};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

use super::params::id_key;
use super::schema;
use crate::listing::display_price;

/// Auctions the overlay holds, at most (bids on others are re-indexed as before); reaching it
/// makes the next commit fold them.
pub const LIVE_AUCTIONS_MAX: usize = 4_096;
/// How long a live change stays out of its document, at most (a crash loses the overlay; the
/// indexer then rescans the groups whose position is behind, so this only bounds how much
/// of a restart is a rescan).
pub const FOLD_AFTER_MS: u64 = 10_000;

/// Whether a record change (old and new encodings of an [`Auction`]) is live: everything the
/// index matches, filters or sorts on is as it was, except the price and the bid count.
/// Anything undecodable is not live, so it is read back like any other change.
pub fn is_live_change(old: &[u8], new: &[u8]) -> bool {
    let (Ok(old), Ok(new)) = (codec::decode::<Auction>(old), codec::decode::<Auction>(new)) else {
        return false;
    };
    old.id == new.id
        && old.seller_id == new.seller_id
        && old.title == new.title
        && old.description == new.description
        && old.category == new.category
        && old.phase == new.phase
        && old.start_time == new.start_time
        && old.end_time == new.end_time
        && old.created_at == new.created_at
}

/// [`is_live_change`] as the change feed takes it.
pub fn live_test() -> LiveTest {
    Arc::new(is_live_change)
}

/// An auction's live state, newer than its document.
#[derive(Debug, Clone)]
pub struct LiveDoc {
    pub group: GroupId,
    /// The indexer's count of live changes when this one came: what a fold compares.
    pub seq: u64,
    pub price_cents: i64,
    pub bid_count: u64,
    pub auction: Arc<Auction>,
}

/// The overlay as one search reads it: keyed like the documents' ids ([`id_key`]).
pub type LiveView = Arc<HashMap<u128, LiveDoc>>;

/// The overlaid auctions of one fold, by group, and the count of changes it covers.
#[derive(Debug, Default)]
pub struct Fold {
    pub auctions: BTreeMap<GroupId, Vec<AuctionId>>,
    pub through_seq: u64,
}

/// The live state of the auctions whose documents are behind (see the module doc).
#[derive(Debug, Default)]
pub struct LiveOverlay {
    docs: Mutex<LiveView>,
    seq: Mutex<u64>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data: a panic while holding the lock leaves it consistent.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LiveOverlay {
    /// The current overlay, in O(1).
    pub fn view(&self) -> LiveView {
        lock(&self.docs).clone()
    }

    pub fn len(&self) -> usize {
        lock(&self.docs).len()
    }

    pub fn is_empty(&self) -> bool {
        lock(&self.docs).is_empty()
    }

    /// Records the live state of `auctions` of `group`, newest last. An auction the overlay
    /// does not hold yet is only taken while it holds fewer than [`LIVE_AUCTIONS_MAX`]; the
    /// ones left out are returned (the indexer reads them back like any other change).
    pub fn put(&self, group: GroupId, auctions: Vec<Auction>) -> Vec<AuctionId> {
        let mut left_out = Vec::new();
        if auctions.is_empty() {
            return left_out;
        }
        let mut seq = lock(&self.seq);
        let mut docs = lock(&self.docs);
        let docs = Arc::make_mut(&mut docs);
        for auction in auctions {
            let key = id_key(auction.id.0);
            if docs.len() >= LIVE_AUCTIONS_MAX && !docs.contains_key(&key) {
                left_out.push(auction.id);
                continue;
            }
            *seq += 1;
            let doc = LiveDoc {
                group,
                seq: *seq,
                price_cents: display_price(&auction).cents(),
                bid_count: u64::from(auction.bid_count),
                auction: Arc::new(auction),
            };
            docs.insert(key, doc);
        }
        left_out
    }

    /// What a commit starting now folds: every overlaid auction, by group.
    pub fn fold(&self) -> Fold {
        let through_seq = *lock(&self.seq);
        let mut auctions: BTreeMap<GroupId, Vec<AuctionId>> = BTreeMap::new();
        for doc in lock(&self.docs).values() {
            auctions.entry(doc.group).or_default().push(doc.auction.id);
        }
        Fold {
            auctions,
            through_seq,
        }
    }

    /// After a commit that read every auction of `fold` back into its document: drops the
    /// ones that did not change since, keeps the newer ones.
    pub fn folded(&self, fold: &Fold) {
        let mut docs = lock(&self.docs);
        if docs.values().any(|doc| doc.seq <= fold.through_seq) {
            Arc::make_mut(&mut docs).retain(|_, doc| doc.seq > fold.through_seq);
        }
    }
}

/// The auction as the page shows it: the overlay's state when it is newer than the document.
pub fn rendered(view: &LiveView, id: u128, indexed: Auction) -> Auction {
    match view.get(&id) {
        Some(doc) => Auction::clone(&doc.auction),
        None => indexed,
    }
}

/// Passes to `inner` only the documents whose live price is within `[min, max]`.
pub struct PriceFilter<C> {
    pub inner: C,
    pub view: LiveView,
    pub min: Option<Money>,
    pub max: Option<Money>,
}

pub struct PriceFilterSegment<S> {
    inner: S,
    view: LiveView,
    min: i64,
    max: i64,
    price: Column<i64>,
    id_high: Column<u64>,
    id_low: Column<u64>,
}

impl<C: Collector> Collector for PriceFilter<C> {
    type Fruit = C::Fruit;
    type Child = PriceFilterSegment<C::Child>;

    fn for_segment(
        &self,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        let fast = reader.fast_fields();
        Ok(PriceFilterSegment {
            inner: self.inner.for_segment(segment, reader)?,
            view: self.view.clone(),
            min: self.min.map_or(i64::MIN, Money::cents),
            max: self.max.map_or(i64::MAX, Money::cents),
            price: fast.i64(schema::PRICE_CENTS)?,
            id_high: fast.u64(schema::ID_HIGH)?,
            id_low: fast.u64(schema::ID_LOW)?,
        })
    }

    fn requires_scoring(&self) -> bool {
        self.inner.requires_scoring()
    }

    fn merge_fruits(
        &self,
        fruits: Vec<<Self::Child as SegmentCollector>::Fruit>,
    ) -> tantivy::Result<Self::Fruit> {
        self.inner.merge_fruits(fruits)
    }
}

/// The id of `doc` as [`id_key`] makes it, from the two id columns.
pub fn doc_id(high: &Column<u64>, low: &Column<u64>, doc: DocId) -> u128 {
    let high = u128::from(high.first(doc).unwrap_or(0));
    let low = u128::from(low.first(doc).unwrap_or(0));
    (high << 64) | low
}

impl<S: SegmentCollector> SegmentCollector for PriceFilterSegment<S> {
    type Fruit = S::Fruit;

    fn collect(&mut self, doc: DocId, score: Score) {
        let live = match self.view.is_empty() {
            true => None,
            false => self.view.get(&doc_id(&self.id_high, &self.id_low, doc)),
        };
        let price = match live {
            Some(live) => live.price_cents,
            None => self.price.first(doc).unwrap_or(0),
        };
        if (self.min..=self.max).contains(&price) {
            self.inner.collect(doc, score);
        }
    }

    fn harvest(self) -> Self::Fruit {
        self.inner.harvest()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auction() -> Auction {
        crate::search::tests::sample_auction(1, "Camera", "A film camera")
    }

    #[test]
    fn a_bid_is_live_and_a_text_phase_or_end_change_is_not() {
        let before = auction();
        let mut bid = before.clone();
        bid.pricing.price = Some(Money::from_cents(1_234));
        bid.bid_count += 1;
        let encode = codec::encode::<Auction>;
        assert!(is_live_change(&encode(&before), &encode(&bid)));
        let mut edited = bid.clone();
        edited.title = "Lens".into();
        let mut extended = bid.clone();
        extended.end_time += 60_000;
        let mut closed = bid.clone();
        closed.phase = auction_statemachine::Phase::Sold;
        for changed in [edited, extended, closed] {
            assert!(!is_live_change(&encode(&bid), &encode(&changed)));
        }
        assert!(!is_live_change(b"not a record", &encode(&bid)));
    }

    #[test]
    fn a_full_overlay_takes_no_new_auction_but_still_updates_its_own() {
        let overlay = LiveOverlay::default();
        let many: Vec<Auction> = (0..LIVE_AUCTIONS_MAX as u128)
            .map(|n| crate::search::tests::sample_auction(n, "Lamp", ""))
            .collect();
        assert!(overlay.put(1, many.clone()).is_empty());
        let newcomer = crate::search::tests::sample_auction(LIVE_AUCTIONS_MAX as u128, "Lamp", "");
        let mut known = many[7].clone();
        known.bid_count = 42;
        let left_out = overlay.put(1, vec![newcomer.clone(), known.clone()]);
        assert_eq!(left_out, vec![newcomer.id]);
        assert_eq!(overlay.len(), LIVE_AUCTIONS_MAX);
        let view = overlay.view();
        assert_eq!(
            view.get(&id_key(known.id.0)).map(|doc| doc.bid_count),
            Some(42)
        );
    }

    #[test]
    fn a_fold_drops_only_what_did_not_change_since() {
        let overlay = LiveOverlay::default();
        let mut first = auction();
        assert!(overlay.put(3, vec![first.clone()]).is_empty());
        let fold = overlay.fold();
        assert_eq!(fold.auctions.get(&3).map(Vec::len), Some(1));
        let pinned = overlay.view();
        // A newer bid while the commit runs stays in the overlay.
        first.bid_count = 9;
        assert!(overlay.put(3, vec![first.clone()]).is_empty());
        overlay.folded(&fold);
        assert_eq!(overlay.len(), 1);
        assert_eq!(
            overlay.view().values().next().map(|doc| doc.bid_count),
            Some(9)
        );
        assert_eq!(
            pinned.values().next().map(|doc| doc.bid_count),
            Some(u64::from(auction().bid_count)),
            "a view taken before keeps what it saw"
        );
        overlay.folded(&overlay.fold());
        assert!(overlay.is_empty());
    }
}
