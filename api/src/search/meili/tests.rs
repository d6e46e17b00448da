//! The sink's pure parts: the inbox's bounds, leadership and resync bookkeeping, epochs,
//! the document of an auction, the backoff and the configuration checks. The HTTP side is
//! tested against a mock Meilisearch in `node/tests/meili.rs`.

use std::collections::BTreeSet;

use auction_statemachine::model::{AntiSnipe, Phase};
use auction_statemachine::pricing::{PriceRules, Pricing};
use auction_statemachine::{Auction, AuctionId, Increment, Money, UserId};
use uuid::Uuid;

use super::client::older_filter;
use super::document::Document;
use super::inbox::{SinkInbox, INBOX_AUCTIONS_PER_GROUP_MAX};
use super::sink::{backoff_ms, BACKOFF_MS_MAX, PUSH_INTERVAL_MS};
use super::state::{SyncState, EPOCHS_PER_TERM, PENDING_AUCTIONS_PER_GROUP_MAX};
use super::MeiliConfig;

fn id(n: u128) -> AuctionId {
    AuctionId(Uuid::from_u128(n))
}

fn ids(range: std::ops::Range<u128>) -> Vec<AuctionId> {
    range.map(id).collect()
}

#[test]
fn the_inbox_collects_per_group_and_turns_an_overflow_into_a_resync() {
    let inbox = SinkInbox::new();
    inbox.changed(1, &ids(0..3));
    inbox.changed(1, &ids(2..5));
    inbox.changed(2, &[]);
    let taken = inbox.take();
    assert_eq!(taken.changed.len(), 1, "an empty batch notes nothing");
    assert_eq!(taken.changed[&1].len(), 5);
    assert!(taken.resyncs.is_empty());
    assert_eq!(inbox.take(), Default::default(), "take empties the inbox");

    let many = ids(0..(INBOX_AUCTIONS_PER_GROUP_MAX as u128 + 1));
    inbox.changed(3, &many);
    inbox.changed(3, &ids(0..1));
    let taken = inbox.take();
    assert!(
        taken.changed.is_empty(),
        "an overflowing group keeps no ids"
    );
    assert_eq!(taken.resyncs, BTreeSet::from([3]));

    inbox.changed(4, &ids(0..2));
    inbox.request_resync(4);
    let taken = inbox.take();
    assert!(taken.changed.is_empty(), "a resync covers the ids");
    assert_eq!(taken.resyncs, BTreeSet::from([4]));
}

#[test]
fn gaining_leadership_resyncs_with_an_epoch_of_the_term_and_losing_it_drops_changes() {
    let mut state = SyncState::default();
    state.observe(1, Some(7));
    state.observe(2, None);
    assert_eq!(state.resyncs(), vec![(1, 7 * EPOCHS_PER_TERM)]);
    let inbox = SinkInbox::new();
    inbox.changed(1, &ids(0..2));
    inbox.changed(2, &ids(0..2));
    state.receive(inbox.take());
    assert_eq!(state.next_pending(1, 10), None, "the resync covers them");
    assert_eq!(state.next_pending(2, 10), None, "not the leader: dropped");
    state.resync_done(1, 7 * EPOCHS_PER_TERM);
    assert!(state.resyncs().is_empty());

    inbox.changed(1, &ids(0..3));
    state.observe(1, Some(7));
    state.receive(inbox.take());
    assert_eq!(state.resyncs(), vec![], "same term: no resync");
    let (batch, epoch) = state.next_pending(1, 2).expect("pending");
    assert_eq!(
        (batch.len(), epoch),
        (2, 7 * EPOCHS_PER_TERM),
        "bounded batch"
    );
    state.pushed(1, &batch);
    assert_eq!(state.next_pending(1, 10).map(|(b, _)| b.len()), Some(1));

    state.observe(1, None);
    assert_eq!(
        state.next_pending(1, 10),
        None,
        "losing leadership drops what was pending"
    );
    state.observe(1, Some(9));
    assert_eq!(
        state.resyncs(),
        vec![(1, 9 * EPOCHS_PER_TERM)],
        "regained: resync"
    );
}

#[test]
fn resync_requests_and_overflows_get_growing_epochs_within_a_term() {
    let mut state = SyncState::default();
    state.observe(1, Some(3));
    state.resync_done(1, 3 * EPOCHS_PER_TERM);
    let inbox = SinkInbox::new();
    inbox.request_resync(1);
    state.receive(inbox.take());
    assert_eq!(state.resyncs(), vec![(1, 3 * EPOCHS_PER_TERM + 1)]);
    state.resync_done(1, 3 * EPOCHS_PER_TERM);
    assert_eq!(
        state.resyncs().len(),
        1,
        "an older resync's end does not clear a newer"
    );
    state.resync_done(1, 3 * EPOCHS_PER_TERM + 1);

    // Pending ids over the cap (Meilisearch down for long) become a resync.
    let chunk = INBOX_AUCTIONS_PER_GROUP_MAX as u128;
    let mut start = 0;
    while state.resyncs().is_empty() {
        inbox.changed(1, &ids(start..start + chunk));
        state.receive(inbox.take());
        start += chunk;
        assert!(start <= 2 * PENDING_AUCTIONS_PER_GROUP_MAX as u128 + chunk);
    }
    assert_eq!(state.resyncs(), vec![(1, 3 * EPOCHS_PER_TERM + 2)]);
    assert_eq!(state.next_pending(1, 10), None);

    // The next leader (a later term) writes larger epochs than any of this term.
    state.observe(1, None);
    state.observe(1, Some(4));
    let (_, next_term_epoch) = state.resyncs()[0];
    assert!(next_term_epoch > 3 * EPOCHS_PER_TERM + (EPOCHS_PER_TERM - 1));
    assert_eq!(older_filter(1, 5), "group = 1 AND syncEpoch < 5");
}

#[test]
fn a_document_carries_the_listing_fields() {
    let auction = Auction {
        id: id(42),
        seller_id: UserId(Uuid::from_u128(7)),
        title: "Brass lamp".to_owned(),
        description: "Works".to_owned(),
        category: Some("home".to_owned()),
        rules: PriceRules {
            starting: Money::from_cents(1_200),
            reserve: None,
            increment: Increment::default(),
        },
        buy_now_price: None,
        start_time: 10,
        end_time: 20,
        original_end_time: 20,
        anti_snipe: AntiSnipe::default(),
        phase: Phase::Open,
        pricing: Pricing::default(),
        bid_count: 0,
        created_at: 5,
        closed_at: None,
    };
    let json = serde_json::to_value(Document::new(3, &auction, 99)).expect("json");
    assert_eq!(json["id"], auction.id.to_string());
    assert_eq!(json["group"], 3);
    assert_eq!(json["phase"], "open");
    assert_eq!(
        json["currentPriceCents"], 1_200,
        "no bid: the starting price"
    );
    assert_eq!(json["currentPrice"], "12.00");
    assert_eq!(json["startingPriceCents"], 1_200);
    assert_eq!(
        (&json["startsAt"], &json["endsAt"], &json["createdAt"]),
        (&10.into(), &20.into(), &5.into())
    );
    assert_eq!(json["sellerId"], auction.seller_id.to_string());
    assert_eq!(json["syncEpoch"], 99);
}

#[test]
fn the_backoff_doubles_and_is_bounded() {
    assert_eq!(backoff_ms(1), 2 * PUSH_INTERVAL_MS);
    assert!(backoff_ms(3) > backoff_ms(2));
    assert_eq!(backoff_ms(u32::MAX), BACKOFF_MS_MAX);
}

#[test]
fn without_a_url_there_is_no_sink_and_bad_settings_are_refused() {
    assert_eq!(MeiliConfig::new(None, Some("key"), "auctions"), Ok(None));
    assert_eq!(MeiliConfig::new(Some("  "), None, "auctions"), Ok(None));
    let config = MeiliConfig::new(Some("http://127.0.0.1:7700/"), Some("k"), "auctions")
        .expect("valid")
        .expect("on");
    assert_eq!(config.url, "http://127.0.0.1:7700", "no trailing slash");
    assert!(
        !format!("{config:?}").contains("\"k\""),
        "the key is not logged"
    );
    assert!(MeiliConfig::new(Some("127.0.0.1:7700"), None, "auctions").is_err());
    assert!(MeiliConfig::new(Some("http://m"), Some("a\nb"), "auctions").is_err());
    assert!(MeiliConfig::new(Some("http://m"), None, "auc tions").is_err());
    assert!(MeiliConfig::new(Some("http://m"), None, "").is_err());
}
