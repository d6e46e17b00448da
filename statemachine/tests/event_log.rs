//! Scenario tests of the per-auction event log that SSE streams resume from: events are
//! numbered per auction and stored as they are emitted, the log keeps exactly the latest
//! `AUCTION_LOG_EVENTS_MAX`, a reader resumes after any kept sequence number, and the log is
//! ordinary state (a replica restored from a copy of the store replays the same events).

mod common;

use auction_statemachine::auction::event_log::AUCTION_LOG_EVENTS_MAX;
use auction_statemachine::outcome::{Applied, Event};
use auction_statemachine::{query, AuctionId, MemKv, Status};
use common::*;

/// The auction events an apply emitted, as `(seq, kind)`.
fn emitted(applied: &Applied) -> Vec<(u64, &'static str)> {
    applied
        .events
        .iter()
        .filter_map(|event| {
            let (_, seq) = event.auction_seq()?;
            Some((seq, kind(event)))
        })
        .collect()
}

fn kind(event: &Event) -> &'static str {
    match event {
        Event::BidPlaced { .. } => "bid_placed",
        Event::AuctionExtended { .. } => "auction_extended",
        Event::AuctionEnded { .. } => "auction_ended",
        Event::Notification(_) => "notification",
    }
}

fn stored_after(kv: &MemKv, lot: AuctionId, after: u64) -> Option<Vec<Event>> {
    query::auction_events_after(kv, lot, after, 500).expect("read")
}

fn seqs(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|event| event.auction_seq().map(|(_, seq)| seq))
        .collect()
}

#[test]
fn events_are_numbered_per_auction_and_stored_as_emitted() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    let other = w.create(|_| {});
    assert_eq!(query::auction_event_head(&w.kv, lot).expect("read"), 0);
    let first = w.run(bid_op(lot, ALICE, "10"));
    assert_eq!(emitted(&first), vec![(1, "bid_placed")]);
    let elsewhere = w.run(bid_op(other, BOB, "10"));
    assert_eq!(
        emitted(&elsewhere),
        vec![(1, "bid_placed")],
        "each auction counts its own events"
    );
    // A rejected bid records nothing and uses no number.
    assert_eq!(code(w.bid(lot, BOB, "10")), "BID_TOO_LOW");
    // A bid in the anti-sniping window emits the bid, then the extension.
    w.advance(HOUR - 30 * SECOND);
    let late = w.run(bid_op(lot, BOB, "20"));
    assert_eq!(
        emitted(&late),
        vec![(2, "bid_placed"), (3, "auction_extended")]
    );
    let stored = stored_after(&w.kv, lot, 0).expect("nothing pruned");
    let live: Vec<Event> = [first, late]
        .iter()
        .flat_map(|applied| applied.events.clone())
        .filter(|event| event.auction_seq().is_some_and(|(id, _)| id == lot))
        .collect();
    assert_eq!(stored, live, "the log holds exactly the emitted events");
    assert_eq!(query::auction_event_head(&w.kv, lot).expect("read"), 3);
}

#[test]
fn buy_now_and_closing_record_the_end() {
    let mut w = World::shard();
    let bought = w.create(|new| new.buy_now_price = Some("50.00".to_owned()));
    let applied = w.run(auction_statemachine::command::Op::BuyNow {
        auction_id: bought,
        buyer: ALICE,
    });
    assert_eq!(
        emitted(&applied),
        vec![(1, "bid_placed"), (2, "auction_ended")]
    );
    let closing = w.create(|new| new.anti_snipe = no_anti_snipe());
    w.bid(closing, BOB, "12").expect("accepted");
    w.advance(2 * HOUR);
    let tick = w.tick();
    assert_eq!(emitted(&tick), vec![(2, "auction_ended")]);
    let stored = stored_after(&w.kv, closing, 1).expect("kept");
    assert!(matches!(
        stored.as_slice(),
        [Event::AuctionEnded {
            seq: 2,
            status: Status::Sold,
            ..
        }]
    ));
}

#[test]
fn replay_after_a_sequence_number_gives_the_rest_in_order() {
    let mut w = World::shard();
    let lot = w.create(|new| new.anti_snipe = no_anti_snipe());
    for step in 0..10 {
        let bidder = if step % 2 == 0 { ALICE } else { BOB };
        w.bid(lot, bidder, &(10 + step).to_string())
            .expect("accepted");
    }
    assert_eq!(
        seqs(&stored_after(&w.kv, lot, 6).expect("kept")),
        vec![7, 8, 9, 10]
    );
    assert_eq!(stored_after(&w.kv, lot, 10), Some(Vec::new()), "caught up");
    assert_eq!(
        stored_after(&w.kv, lot, 99),
        Some(Vec::new()),
        "ahead of this replica"
    );
    let page = query::auction_events_after(&w.kv, lot, 2, 3)
        .expect("read")
        .expect("kept");
    assert_eq!(seqs(&page), vec![3, 4, 5], "a bounded page, oldest first");
}

#[test]
fn the_log_keeps_exactly_the_latest_events_and_prunes_as_it_records() {
    let mut w = World::shard();
    let lot = w.create(|new| new.anti_snipe = no_anti_snipe());
    let total = AUCTION_LOG_EVENTS_MAX + 5;
    for step in 0..total {
        let bidder = if step % 2 == 0 { ALICE } else { BOB };
        w.bid(lot, bidder, &(10 + step).to_string())
            .expect("accepted");
    }
    let kept = w
        .kv
        .iter()
        .filter(|(key, _)| key.starts_with(&auction_statemachine::keys::auction_events_prefix(lot)))
        .count();
    assert_eq!(u64::try_from(kept).expect("small"), AUCTION_LOG_EVENTS_MAX);
    assert_eq!(query::auction_event_head(&w.kv, lot).expect("read"), total);
    let oldest_kept = total - AUCTION_LOG_EVENTS_MAX + 1;
    assert_eq!(
        stored_after(&w.kv, lot, oldest_kept - 2),
        None,
        "the event after the cursor was pruned: the reader must resync"
    );
    assert_eq!(stored_after(&w.kv, lot, 0), None);
    let resumed = stored_after(&w.kv, lot, oldest_kept - 1).expect("the whole window");
    assert_eq!(seqs(&resumed).first(), Some(&oldest_kept));
    assert_eq!(resumed.len(), 500, "one page of the window");
}

#[test]
fn the_log_is_state_a_restored_replica_replays_the_same_events() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    w.bid(lot, ALICE, "10").expect("accepted");
    w.bid(lot, BOB, "11").expect("accepted");
    // A snapshot is a copy of the group's store; a replica installs it and applies the rest.
    let snapshot = w.kv.clone();
    let mut restored = World::shard();
    restored.kv = snapshot;
    let tail_start = w.log.len();
    w.bid(lot, ALICE, "15").expect("accepted");
    w.advance(HOUR - 10 * SECOND);
    w.bid(lot, BOB, "20").expect("accepted");
    for command in w.log[tail_start..].iter().cloned() {
        restored.apply(command);
    }
    let mut fresh = World::shard();
    for command in w.log.clone() {
        fresh.apply(command);
    }
    assert_eq!(restored.kv, w.kv, "snapshot + tail gives the same state");
    assert_eq!(
        fresh.kv, w.kv,
        "applying the whole log gives the same state"
    );
    assert_eq!(
        stored_after(&restored.kv, lot, 1),
        stored_after(&w.kv, lot, 1)
    );
    assert_eq!(
        seqs(&stored_after(&restored.kv, lot, 1).expect("kept")),
        vec![2, 3, 4, 5]
    );
}

fn bid_op(
    auction: AuctionId,
    bidder: auction_statemachine::UserId,
    amount: &str,
) -> auction_statemachine::command::Op {
    auction_statemachine::command::Op::PlaceBid {
        auction_id: auction,
        bidder,
        amount: amount.to_owned(),
    }
}
