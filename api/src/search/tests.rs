//! The index against a model: relevance and typo cases, every filter and sort, cursors while
//! prices change, and reopening, rebuilding and positions on disk.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use auction_statemachine::model::{AntiSnipe, Phase};
use auction_statemachine::pricing::{PriceRules, Pricing};
use auction_statemachine::{Auction, AuctionId, Increment, Money, Status, UserId};
use uuid::Uuid;

use super::params::{self, SearchSort};
use super::tantivy_index::{Opened, TantivyIndex};
use super::{SearchIndex, SearchPage, SearchRequest};
use crate::listing::{display_price, Filter};

const NOW: i64 = 1_000_000;

/// An open auction numbered `n` (its id a scramble of `n`), for the index's tests.
pub(crate) fn sample_auction(n: u128, title: &str, description: &str) -> Auction {
    auction(n, title, description)
}

fn auction(n: u128, title: &str, description: &str) -> Auction {
    Auction {
        id: AuctionId(Uuid::from_u128(
            n.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835),
        )),
        seller_id: UserId(Uuid::from_u128(1_000 + n % 3)),
        title: title.to_owned(),
        description: description.to_owned(),
        category: None,
        rules: PriceRules {
            starting: Money::from_cents(100),
            reserve: None,
            increment: Increment::default(),
        },
        buy_now_price: None,
        start_time: 0,
        end_time: NOW + 10_000,
        original_end_time: NOW + 10_000,
        anti_snipe: AntiSnipe::default(),
        phase: Phase::Open,
        pricing: Pricing::default(),
        bid_count: 0,
        created_at: n as i64,
        closed_at: None,
    }
}

fn index_of(auctions: &[Auction]) -> TantivyIndex {
    let index = TantivyIndex::in_memory().expect("index");
    let mut batch = index.begin();
    for auction in auctions {
        batch.upsert(1, auction, None).expect("upsert");
    }
    batch.set_position(1, 1);
    batch.commit().expect("commit");
    index
}

fn request(pairs: &[(&str, &str)], facets: bool) -> SearchRequest {
    let query: HashMap<String, String> = pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect();
    params::request(&query, NOW, facets).expect("a valid request")
}

fn titles(page: &SearchPage) -> Vec<&str> {
    page.auctions.iter().map(|a| a.title.as_str()).collect()
}

fn search(index: &TantivyIndex, q: &str) -> SearchPage {
    index.search(&request(&[("q", q)], true)).expect("search")
}

#[test]
fn exact_beats_fuzzy_and_title_beats_description() {
    let index = index_of(&[
        auction(1, "Vintaje watch", ""),
        auction(2, "Vintage watch", ""),
        auction(3, "Pocket watch", "a vintage piece"),
        auction(4, "Garden chair", ""),
    ]);
    let page = search(&index, "vintage");
    assert_eq!(
        titles(&page),
        ["Vintage watch", "Pocket watch", "Vintaje watch"],
        "exact title, exact description, then the typo"
    );
    assert_eq!(page.total, 3);
}

#[test]
fn typo_budget_grows_with_the_word_and_the_last_word_is_a_prefix() {
    let index = index_of(&[
        auction(1, "Camera bag", ""),
        auction(2, "Telescope mount", ""),
        auction(3, "Lamp", ""),
    ]);
    let found = |q: &str| {
        titles(&search(&index, q))
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(found("camara"), ["Camera bag"], "one typo from 5 letters");
    assert!(
        found("kamara").is_empty(),
        "two typos in 6 letters are too many"
    );
    assert_eq!(
        found("telezkope"),
        ["Telescope mount"],
        "two typos from 9 letters"
    );
    assert!(
        found("lamb bag").is_empty(),
        "no typo under 5 letters, and every word must match"
    );
    assert_eq!(found("lamp"), ["Lamp"]);
    assert_eq!(
        found("tele"),
        ["Telescope mount"],
        "prefix of the last word"
    );
    assert_eq!(
        found("bag came"),
        ["Camera bag"],
        "the last word as a prefix"
    );
    assert!(
        found("came bag").is_empty(),
        "only the last word is a prefix"
    );
    assert_eq!(
        found("TELESCOPE"),
        ["Telescope mount"],
        "case does not matter"
    );
    assert!(found("?!").is_empty(), "no words: nothing");
}

/// A deterministic mix of auctions for the model tests.
fn mixed(count: u128) -> Vec<Auction> {
    let categories = ["art", "toys", "lamps", "a/b"];
    let words = ["red", "blue", "green", "lamp", "chair", "clock"];
    (0..count)
        .map(|n| {
            let mut a = auction(
                n,
                &format!(
                    "{} {}",
                    words[(n % 6) as usize],
                    words[(n / 6 % 6) as usize]
                ),
                "",
            );
            a.category = (n % 5 != 4).then(|| categories[(n % 4) as usize].to_owned());
            a.rules.starting = Money::from_cents(100 + (n * 37 % 500) as i64);
            if n % 3 == 0 {
                a.pricing.price = Some(Money::from_cents(200 + (n * 53 % 900) as i64));
                a.bid_count = (n % 7) as u32;
            }
            a.end_time = NOW + (n * 7_919 % 1_000) as i64;
            a.start_time = if n % 11 == 0 { NOW + 5 } else { 0 };
            a.phase = match n % 13 {
                1 => Phase::Sold,
                2 => Phase::Unsold,
                3 => Phase::Cancelled,
                _ => Phase::Open,
            };
            a
        })
        .collect()
}

fn model_key(auction: &Auction, sort: SearchSort) -> i64 {
    match sort {
        SearchSort::EndingSoon => auction.end_time,
        SearchSort::Newest | SearchSort::Relevance => -auction.created_at,
        SearchSort::PriceAsc => display_price(auction).cents(),
        SearchSort::PriceDesc => -display_price(auction).cents(),
        SearchSort::MostBids => -i64::from(auction.bid_count),
    }
}

fn all_pages(index: &TantivyIndex, pairs: &[(&str, &str)]) -> (Vec<AuctionId>, u64) {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1_000 {
        let mut with_cursor: Vec<(&str, &str)> = pairs.to_vec();
        if let Some(cursor) = &cursor {
            with_cursor.push(("cursor", cursor.as_str()));
        }
        let page = index.search(&request(&with_cursor, false)).expect("page");
        ids.extend(page.auctions.iter().map(|a| a.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next.encode()),
            None => return (ids, page.total),
        }
    }
    panic!("paging did not end");
}

#[test]
fn every_filter_and_sort_matches_the_model() {
    let auctions = mixed(240);
    let index = index_of(&auctions);
    matches_the_model(&index, &auctions);
}

/// Bids on a third of `auctions` (new prices and counts), as the model and the live overlay
/// see them; the documents keep the old values.
fn live_bids(index: &TantivyIndex, auctions: &mut [Auction], round: u128) {
    let mut changed = Vec::new();
    for (n, auction) in auctions.iter_mut().enumerate() {
        if (n as u128 + round).is_multiple_of(3) && auction.phase == Phase::Open {
            let cents = 100 + ((n as u128 * 7_919 + round * 104_723) % 1_200) as i64;
            auction.pricing.price = Some(Money::from_cents(cents));
            auction.bid_count += 1 + (n % 4) as u32;
            changed.push(auction.clone());
        }
    }
    assert!(index.live().put(1, changed).is_empty(), "room for all");
}

#[test]
fn live_bids_filter_sort_and_render_before_any_commit() {
    let mut auctions = mixed(240);
    let index = index_of(&auctions);
    live_bids(&index, &mut auctions, 1);
    assert!(!index.live().is_empty());
    matches_the_model(&index, &auctions);
    let page = index
        .search(&request(&[("sort", "price_desc"), ("limit", "100")], false))
        .expect("page");
    for shown in &page.auctions {
        let model = auctions.iter().find(|a| a.id == shown.id).expect("known");
        assert_eq!(shown, model, "a page shows the live state");
    }
    // A commit that reads the overlaid auctions back folds them; the model still holds.
    let fold = index.live().fold();
    let mut batch = index.begin();
    for auction in &auctions {
        batch.upsert(1, auction, None).expect("upsert");
    }
    batch.commit().expect("commit");
    index.live().folded(&fold);
    assert!(index.live().is_empty());
    matches_the_model(&index, &auctions);
}

fn matches_the_model(index: &TantivyIndex, auctions: &[Auction]) {
    let sorts = [
        ("ending_soon", SearchSort::EndingSoon),
        ("newest", SearchSort::Newest),
        ("price_asc", SearchSort::PriceAsc),
        ("price_desc", SearchSort::PriceDesc),
        ("most_bids", SearchSort::MostBids),
    ];
    let filters: [&[(&str, &str)]; 9] = [
        &[],
        &[("status", "active")],
        &[("status", "scheduled")],
        &[("status", "sold,unsold")],
        &[("status", "cancelled")],
        &[("category", "lamps")],
        &[("category", "a/b"), ("minPrice", "3.00")],
        &[("minPrice", "2.50"), ("maxPrice", "6")],
        &[
            ("sellerId", "00000000-0000-0000-0000-0000000003e9"),
            ("status", "active"),
        ],
    ];
    for filter_pairs in filters {
        let query: HashMap<String, String> = filter_pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let filter = Filter::parse(&query).expect("filter");
        for (name, sort) in sorts {
            let mut expected: Vec<&Auction> =
                auctions.iter().filter(|a| filter.matches(a, NOW)).collect();
            expected.sort_by_key(|a| (model_key(a, sort), a.id.0.as_u128()));
            let expected: Vec<AuctionId> = expected.iter().map(|a| a.id).collect();
            let mut pairs = filter_pairs.to_vec();
            pairs.push(("sort", name));
            pairs.push(("limit", "7"));
            let (found, total) = all_pages(index, &pairs);
            assert_eq!(found, expected, "filter {filter_pairs:?}, sort {name}");
            assert_eq!(total, expected.len() as u64, "total of {filter_pairs:?}");
        }
    }
}

#[test]
fn category_counts_match_the_model() {
    let auctions = mixed(120);
    let index = index_of(&auctions);
    let page = index
        .search(&request(&[("status", "active")], true))
        .expect("search");
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for auction in auctions
        .iter()
        .filter(|a| a.status_at(NOW) == Status::Active)
    {
        if let Some(category) = &auction.category {
            *expected.entry(category.clone()).or_default() += 1;
        }
    }
    let found: BTreeMap<String, u64> = page.categories.into_iter().collect();
    assert_eq!(found, expected);
    assert!(found.contains_key("a/b"), "a slash stays inside the name");
}

fn reprice(index: &TantivyIndex, auctions: &mut [Auction], round: u128) {
    let mut batch = index.begin();
    for (n, auction) in auctions.iter_mut().enumerate() {
        if (n as u128 + round).is_multiple_of(3) {
            let cents = 100 + ((n as u128 * 7_907 + round * 104_729) % 5_000) as i64;
            auction.pricing.price = Some(Money::from_cents(cents));
            auction.bid_count += 1;
            batch.upsert(1, auction, None).expect("upsert");
        }
    }
    batch.commit().expect("commit");
}

#[test]
fn cursor_paging_has_no_duplicates_or_gaps_while_prices_change() {
    paging_holds_while_prices_change(reprice);
}

#[test]
fn cursor_paging_has_no_duplicates_or_gaps_while_live_bids_change_prices() {
    paging_holds_while_prices_change(live_bids);
}

fn paging_holds_while_prices_change(bids: fn(&TantivyIndex, &mut [Auction], u128)) {
    let mut auctions = mixed(150);
    let index = index_of(&auctions);
    for sort in ["price_asc", "price_desc", "most_bids"] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        for round in 0..100 {
            let mut pairs = vec![("sort", sort), ("limit", "9")];
            if let Some(cursor) = &cursor {
                pairs.push(("cursor", cursor.as_str()));
            }
            let page = index.search(&request(&pairs, false)).expect("page");
            seen.extend(page.auctions.iter().map(|a| a.id));
            // Bids between pages move prices across the cursor.
            bids(&index, &mut auctions, round);
            match page.next_cursor {
                Some(next) => cursor = Some(next.encode()),
                None => break,
            }
        }
        let unique: BTreeSet<_> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "{sort}: no auction twice");
        assert_eq!(seen.len(), auctions.len(), "{sort}: every auction once");
    }
}

#[test]
fn an_unpinned_cursor_continues_from_its_key_in_the_current_index() {
    let auctions = mixed(60);
    let index = index_of(&auctions);
    let first = index
        .search(&request(&[("sort", "ending_soon"), ("limit", "10")], false))
        .expect("page");
    let mut cursor = first.next_cursor.expect("more");
    cursor.generation = u64::MAX;
    let text = cursor.encode();
    let (rest, _) = all_pages(
        &index,
        &[("sort", "ending_soon"), ("limit", "10"), ("cursor", &text)],
    );
    let mut all: Vec<AuctionId> = first.auctions.iter().map(|a| a.id).collect();
    all.extend(rest);
    let unique: BTreeSet<_> = all.iter().collect();
    assert_eq!(unique.len(), 60, "no gap and no repeat when no key changed");
    assert_eq!(all.len(), 60);
}

#[test]
fn changes_and_removals_replace_documents() {
    let mut lamp = auction(1, "Brass lamp", "");
    let index = index_of(&[lamp.clone(), auction(2, "Oak chair", "")]);
    lamp.title = "Copper lamp".to_owned();
    let mut batch = index.begin();
    batch.upsert(1, &lamp, None).expect("upsert");
    batch.remove(auction(2, "", "").id);
    batch.set_position(1, 9);
    batch.commit().expect("commit");
    assert_eq!(titles(&search(&index, "lamp")), ["Copper lamp"]);
    assert!(search(&index, "brass").auctions.is_empty());
    assert!(search(&index, "chair").auctions.is_empty());
    assert_eq!(index.document_count(), 1);
    assert_eq!(index.positions().get(&1), Some(&9));
    let mut batch = index.begin();
    batch.clear_group(1);
    batch.commit().expect("commit");
    assert_eq!(
        index.document_count(),
        0,
        "a cleared group has no documents"
    );
}

#[test]
fn positions_survive_a_reopen_and_a_damaged_index_is_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("search");
    {
        let (index, opened) = TantivyIndex::open(&path).expect("open");
        assert_eq!(opened, Opened::Rebuilt, "nothing there yet");
        let mut batch = index.begin();
        batch
            .upsert(3, &auction(1, "Brass lamp", ""), None)
            .expect("upsert");
        batch.set_position(3, 42);
        batch.commit().expect("commit");
    }
    {
        let (index, opened) = TantivyIndex::open(&path).expect("reopen");
        assert_eq!(opened, Opened::Existing);
        assert_eq!(index.positions().get(&3), Some(&42));
        assert_eq!(titles(&search(&index, "lamp")), ["Brass lamp"]);
    }
    std::fs::write(path.join("meta.json"), b"{ not json").expect("damage");
    let (index, opened) = TantivyIndex::open(&path).expect("rebuild");
    assert_eq!(opened, Opened::Rebuilt);
    assert!(index.positions().is_empty());
    assert_eq!(index.document_count(), 0);
    drop(index);
    std::fs::remove_dir_all(&path).expect("delete");
    let (_, opened) = TantivyIndex::open(&path).expect("recreate");
    assert_eq!(opened, Opened::Rebuilt);
}
