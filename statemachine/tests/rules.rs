//! Scenario tests, one per rule of RULES.md, named after the rule.

mod common;

use auction_statemachine::command::{AntiSnipeSpec, AuctionChanges, Op};
use auction_statemachine::money::{Increment, Money};
use auction_statemachine::outcome::{Event, Outcome};
use auction_statemachine::{query, Command, Phase, Rejection, Status};
use common::*;

fn m(text: &str) -> Money {
    Money::parse(text).expect("valid money in test")
}

// --- Money ---------------------------------------------------------------------------------

#[test]
fn money_has_at_most_two_decimals_is_positive_and_capped() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    assert_eq!(code(w.bid(lot, ALICE, "10.001")), "INVALID_AMOUNT");
    assert_eq!(code(w.bid(lot, ALICE, "-10")), "INVALID_AMOUNT");
    assert_eq!(code(w.bid(lot, ALICE, "0")), "INVALID_AMOUNT");
    assert_eq!(code(w.bid(lot, ALICE, "1000000000.01")), "INVALID_AMOUNT");
    assert_eq!(code(w.bid(lot, ALICE, "ten")), "INVALID_AMOUNT");
    assert_eq!(
        w.bid(lot, ALICE, "10.5")
            .map(|bid| bid.current_price.to_string()),
        Ok("10.50".to_owned())
    );
    assert_eq!(
        w.auction(lot).bid_count,
        1,
        "only the valid bid is recorded"
    );
}

#[test]
fn bid_increment_defaults_to_one() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    assert_eq!(w.auction(lot).rules.increment, Increment::Fixed(m("1.00")));
    w.bid(lot, ALICE, "10.00").expect("accepted");
    assert_eq!(w.auction(lot).minimum_bid(), m("11.00"));
}

#[test]
fn ebay_ladder_bands_at_their_edges() {
    let bands = [
        ("0.01", "0.05"),
        ("0.99", "0.05"),
        ("1.00", "0.25"),
        ("4.99", "0.25"),
        ("5.00", "0.50"),
        ("24.99", "0.50"),
        ("25.00", "1.00"),
        ("99.99", "1.00"),
        ("100.00", "2.50"),
        ("249.99", "2.50"),
        ("250.00", "5.00"),
        ("499.99", "5.00"),
        ("500.00", "10.00"),
        ("999.99", "10.00"),
        ("1000.00", "25.00"),
        ("2499.99", "25.00"),
        ("2500.00", "50.00"),
        ("4999.99", "50.00"),
        ("5000.00", "100.00"),
        ("999999999.00", "100.00"),
    ];
    for (price, step) in bands {
        assert_eq!(
            Increment::Ebay.at(m(price)),
            m(step),
            "increment at {price}"
        );
    }
    let mut w = World::shard();
    let lot = w.create(|new| {
        new.bid_increment = Some("ebay".to_owned());
        new.starting_price = "4.99".to_owned();
    });
    w.bid(lot, ALICE, "4.99").expect("accepted");
    assert_eq!(
        w.auction(lot).minimum_bid(),
        m("5.24"),
        "4.99 is in the 0.25 band"
    );
    assert_eq!(code(w.bid(lot, BOB, "5.23")), "BID_TOO_LOW");
    w.bid(lot, BOB, "5.24").expect("accepted");
    assert_eq!(
        w.auction(lot).minimum_bid(),
        m("5.74"),
        "5.24 is in the 0.50 band"
    );
}

// --- Statuses and minimum bid ----------------------------------------------------------------

#[test]
fn status_is_scheduled_before_the_start_time_and_active_after() {
    let mut w = World::shard();
    let lot = w.create(|new| new.start_time = Some(T0 + HOUR));
    assert_eq!(w.auction(lot).status_at(w.now), Status::Scheduled);
    assert_eq!(code(w.bid(lot, ALICE, "10")), "AUCTION_NOT_STARTED");
    w.advance(HOUR);
    assert_eq!(w.auction(lot).status_at(w.now), Status::Active);
    assert!(w.bid(lot, ALICE, "10").is_ok());
}

#[test]
fn minimum_bid_is_starting_price_without_bids_else_price_plus_increment() {
    let mut w = World::shard();
    let lot = w.create(|new| new.bid_increment = Some("2.50".to_owned()));
    assert_eq!(w.auction(lot).minimum_bid(), m("10.00"));
    assert_eq!(
        w.auction(lot).pricing.price,
        None,
        "no current price before the first bid"
    );
    w.bid(lot, ALICE, "12.00").expect("accepted");
    assert_eq!(w.auction(lot).minimum_bid(), m("14.50"));
}

// --- Rejections, in order --------------------------------------------------------------------

#[test]
fn bid_on_unknown_auction_is_auction_not_found() {
    let mut w = World::shard();
    let missing = auction_statemachine::AuctionId(uuid::Uuid::from_u128(42));
    assert_eq!(
        code(w.bid(missing, ALICE, "not money")),
        "AUCTION_NOT_FOUND"
    );
}

#[test]
fn late_bid_is_rejected_before_the_close_is_applied() {
    let mut w = World::shard();
    let lot = w.create(|new| new.anti_snipe = no_anti_snipe());
    w.bid(lot, ALICE, "10").expect("accepted");
    w.advance(HOUR);
    assert_eq!(
        w.auction(lot).phase,
        Phase::Open,
        "no close has been applied yet"
    );
    assert_eq!(
        code(w.bid(lot, BOB, "50")),
        "AUCTION_ENDED",
        "a bid stamped at endTime is late"
    );
    assert_eq!(w.auction(lot).high_bidder(), Some(ALICE));
}

#[test]
fn bid_on_cancelled_auction_is_auction_cancelled() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    assert!(w
        .run(Op::CancelAuction {
            auction_id: lot,
            actor: SELLER
        })
        .result
        .is_ok());
    assert_eq!(code(w.bid(lot, ALICE, "10")), "AUCTION_CANCELLED");
}

#[test]
fn seller_cannot_bid() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    assert_eq!(code(w.bid(lot, SELLER, "10")), "SELLER_CANNOT_BID");
    assert_eq!(code(w.proxy(lot, SELLER, "100")), "SELLER_CANNOT_BID");
}

#[test]
fn banned_bidder_is_refused() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    w.ban_in_shard(ALICE);
    assert_eq!(code(w.bid(lot, ALICE, "10")), "USER_BANNED");
    assert!(w
        .run(Op::SyncBan {
            user: ALICE,
            banned: false
        })
        .result
        .is_ok());
    assert!(w.bid(lot, ALICE, "10").is_ok());
}

#[test]
fn bid_below_minimum_is_bid_too_low_with_current_and_minimum() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    assert_eq!(
        w.bid(lot, ALICE, "9.99"),
        Err(Rejection::BidTooLow {
            current_bid: None,
            minimum_bid: m("10.00")
        })
    );
    w.bid(lot, ALICE, "20").expect("accepted");
    assert_eq!(
        w.bid(lot, BOB, "20.99"),
        Err(Rejection::BidTooLow {
            current_bid: Some(m("20.00")),
            minimum_bid: m("21.00")
        })
    );
}

#[test]
fn manual_bid_by_the_high_bidder_is_already_high_bidder() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    w.bid(lot, ALICE, "10").expect("accepted");
    assert_eq!(code(w.bid(lot, ALICE, "30")), "ALREADY_HIGH_BIDDER");
    assert_eq!(
        code(w.bid(lot, ALICE, "10.50")),
        "BID_TOO_LOW",
        "too low is checked first"
    );
}

#[test]
fn rejections_are_checked_in_the_design_order() {
    let mut w = World::shard();
    let lot = w.create(|new| new.anti_snipe = no_anti_snipe());
    w.ban_in_shard(SELLER);
    assert_eq!(
        code(w.bid(lot, SELLER, "garbage")),
        "SELLER_CANNOT_BID",
        "seller before banned and amount"
    );
    w.ban_in_shard(BOB);
    assert_eq!(
        code(w.bid(lot, BOB, "garbage")),
        "USER_BANNED",
        "banned before amount"
    );
    assert_eq!(
        code(w.bid(lot, ALICE, "garbage")),
        "INVALID_AMOUNT",
        "amount before minimum"
    );
    w.advance(HOUR);
    assert_eq!(
        code(w.bid(lot, SELLER, "garbage")),
        "AUCTION_ENDED",
        "activity before seller"
    );
}

// --- Manual bids -----------------------------------------------------------------------------

#[test]
fn first_manual_bid_sets_the_price_to_its_amount() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    let bid = w.bid(lot, ALICE, "25").expect("accepted");
    assert!(bid.winning);
    assert_eq!(w.price(lot), "25.00");
    assert_eq!(w.history(lot), vec![("25.00".to_owned(), ALICE, false)]);
}

#[test]
fn manual_bid_above_high_max_steps_holder_to_max_then_bidder_to_amount() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    w.proxy(lot, ALICE, "40").expect("accepted");
    let bid = w.bid(lot, BOB, "50").expect("accepted");
    assert!(bid.winning);
    assert_eq!((bid.current_price, bid.high_bidder_id), (m("50.00"), BOB));
    assert_eq!(
        w.history(lot),
        vec![
            ("10.00".to_owned(), ALICE, true),
            ("40.00".to_owned(), ALICE, true),
            ("50.00".to_owned(), BOB, false)
        ]
    );
    assert_eq!(
        w.auction(lot).pricing.high.map(|high| high.max),
        Some(m("50.00"))
    );
}

#[test]
fn manual_bid_above_an_exhausted_holder_adds_no_holder_step() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    w.bid(lot, ALICE, "20").expect("accepted");
    w.bid(lot, BOB, "30").expect("accepted");
    assert_eq!(
        w.history(lot),
        vec![
            ("20.00".to_owned(), ALICE, false),
            ("30.00".to_owned(), BOB, false)
        ]
    );
}

#[test]
fn manual_bid_below_high_max_is_answered_by_the_holder_proxy() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    w.proxy(lot, ALICE, "100").expect("accepted");
    let bid = w.bid(lot, BOB, "55").expect("accepted");
    assert!(!bid.winning, "bob is outbid at once");
    assert_eq!((bid.current_price, bid.high_bidder_id), (m("56.00"), ALICE));
    assert_eq!(
        &w.history(lot)[1..],
        &[
            ("55.00".to_owned(), BOB, false),
            ("56.00".to_owned(), ALICE, true)
        ]
    );
}

#[test]
fn manual_bid_just_below_high_max_is_answered_at_the_max() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    w.proxy(lot, ALICE, "60.50").expect("accepted");
    let bid = w.bid(lot, BOB, "60").expect("accepted");
    assert_eq!(bid.current_price, m("60.50"), "min(highMax, A + increment)");
}

#[test]
fn manual_bid_equal_to_high_max_loses_to_the_earlier_maximum() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    w.proxy(lot, ALICE, "70").expect("accepted");
    let bid = w.bid(lot, BOB, "70").expect("accepted");
    assert!(!bid.winning);
    assert_eq!((bid.current_price, bid.high_bidder_id), (m("70.00"), ALICE));
    assert_eq!(
        w.history(lot).last(),
        Some(&("70.00".to_owned(), ALICE, true)),
        "only the holder's step at 70"
    );
}

// --- Proxy bids ------------------------------------------------------------------------------

#[test]
fn seed_proxy_flow_max_100_at_price_50_then_rivals() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    w.bid(lot, CAROL, "50").expect("accepted");
    let proxy = w.proxy(lot, ALICE, "100").expect("accepted");
    assert_eq!(
        (proxy.current_price, proxy.winning),
        (m("51.00"), true),
        "max 100 at price 50 -> 51"
    );
    let rival = w.bid(lot, BOB, "55").expect("accepted");
    assert_eq!(
        (rival.current_price, rival.high_bidder_id),
        (m("56.00"), ALICE),
        "rival 55 -> 56"
    );
    let rival = w.bid(lot, BOB, "101").expect("accepted");
    assert_eq!(
        (rival.current_price, rival.high_bidder_id, rival.winning),
        (m("101.00"), BOB, true)
    );
    let amounts: Vec<String> = w
        .history(lot)
        .into_iter()
        .map(|(amount, _, _)| amount)
        .collect();
    assert_eq!(
        amounts,
        ["50.00", "51.00", "55.00", "56.00", "100.00", "101.00"]
    );
}

#[test]
fn first_proxy_bid_steps_to_the_starting_price() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    let proxy = w.proxy(lot, ALICE, "80").expect("accepted");
    assert_eq!((proxy.current_price, proxy.winning), (m("10.00"), true));
    assert_eq!(w.history(lot), vec![("10.00".to_owned(), ALICE, true)]);
}

#[test]
fn proxy_by_the_high_bidder_must_exceed_the_max_and_leaves_the_price() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    w.proxy(lot, ALICE, "80").expect("accepted");
    w.bid(lot, BOB, "30").expect("accepted");
    assert_eq!(w.bid(lot, BOB, "80").map(|bid| bid.winning), Ok(false));
    assert_eq!(w.price(lot), "80.00");
    w.bid(lot, BOB, "90").expect("accepted");
    assert_eq!(
        code(w.proxy(lot, BOB, "90")),
        "BID_TOO_LOW",
        "must exceed the current maximum"
    );
    let raised = w.proxy(lot, BOB, "150").expect("accepted");
    assert!(raised.winning);
    assert!(raised.steps.is_empty(), "raising a maximum records no step");
    assert_eq!(w.price(lot), "90.00");
    assert_eq!(
        w.auction(lot).pricing.high.map(|high| high.max),
        Some(m("150.00"))
    );
}

#[test]
fn proxy_above_holder_max_steps_holder_to_max_then_one_increment_above() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    w.proxy(lot, ALICE, "40").expect("accepted");
    let proxy = w.proxy(lot, BOB, "90").expect("accepted");
    assert_eq!((proxy.current_price, proxy.winning), (m("41.00"), true));
    assert_eq!(
        &w.history(lot)[1..],
        &[
            ("40.00".to_owned(), ALICE, true),
            ("41.00".to_owned(), BOB, true)
        ]
    );
}

#[test]
fn proxy_just_above_holder_max_steps_to_its_own_max() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    w.proxy(lot, ALICE, "40").expect("accepted");
    let proxy = w.proxy(lot, BOB, "40.50").expect("accepted");
    assert_eq!(proxy.current_price, m("40.50"), "min(M, Hm + increment)");
}

#[test]
fn proxy_below_holder_max_is_answered_by_the_holder() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    w.proxy(lot, ALICE, "100").expect("accepted");
    let proxy = w.proxy(lot, BOB, "60").expect("accepted");
    assert_eq!((proxy.current_price, proxy.winning), (m("61.00"), false));
    assert_eq!(
        &w.history(lot)[1..],
        &[
            ("60.00".to_owned(), BOB, true),
            ("61.00".to_owned(), ALICE, true)
        ]
    );
}

#[test]
fn proxy_tie_goes_to_the_earlier_maximum() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    w.proxy(lot, ALICE, "75").expect("accepted");
    let proxy = w.proxy(lot, BOB, "75").expect("accepted");
    assert_eq!(
        (proxy.current_price, proxy.high_bidder_id, proxy.winning),
        (m("75.00"), ALICE, false)
    );
}

// --- Reserve ---------------------------------------------------------------------------------

#[test]
fn reserve_jump_lifts_the_price_to_the_reserve_when_the_max_reaches_it() {
    let mut w = World::shard();
    let lot = w.create(|new| new.reserve_price = Some("50".to_owned()));
    let proxy = w.proxy(lot, ALICE, "80").expect("accepted");
    assert_eq!(proxy.current_price, m("50.00"));
    assert!(w.auction(lot).reserve_met());
    assert_eq!(
        w.history(lot),
        vec![
            ("10.00".to_owned(), ALICE, true),
            ("50.00".to_owned(), ALICE, true)
        ]
    );
}

#[test]
fn reserve_jump_does_not_happen_below_the_reserve() {
    let mut w = World::shard();
    let lot = w.create(|new| new.reserve_price = Some("50".to_owned()));
    w.proxy(lot, ALICE, "49.99").expect("accepted");
    assert_eq!(w.price(lot), "10.00");
    assert!(!w.auction(lot).reserve_met());
}

#[test]
fn reserve_jump_follows_a_raised_maximum() {
    let mut w = World::shard();
    let lot = w.create(|new| new.reserve_price = Some("50".to_owned()));
    w.proxy(lot, ALICE, "30").expect("accepted");
    w.proxy(lot, ALICE, "60").expect("accepted");
    assert_eq!(w.price(lot), "50.00");
}

#[test]
fn unmet_reserve_ends_unsold() {
    let mut w = World::shard();
    let lot = w.create(|new| new.reserve_price = Some("50".to_owned()));
    w.bid(lot, ALICE, "40").expect("accepted");
    w.advance(HOUR);
    w.tick();
    assert_eq!(w.auction(lot).phase, Phase::Unsold);
    assert_eq!(w.notification_kinds(SELLER), ["auction_unsold"]);
    assert_eq!(w.notification_kinds(ALICE), ["auction_lost"]);
}

// --- History and responses -------------------------------------------------------------------

#[test]
fn every_step_is_a_history_entry_with_strictly_increasing_amounts_newest_first() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    w.proxy(lot, ALICE, "100").expect("accepted");
    w.bid(lot, BOB, "20").expect("accepted");
    w.bid(lot, CAROL, "150").expect("accepted");
    let newest_first = query::bid_history(&w.kv, lot, None, 10).expect("read");
    let amounts: Vec<String> = newest_first
        .iter()
        .map(|step| step.amount.to_string())
        .collect();
    assert_eq!(amounts, ["150.00", "100.00", "21.00", "20.00", "10.00"]);
    let page = query::bid_history(&w.kv, lot, Some(newest_first[1].sequence), 2).expect("read");
    assert_eq!(
        page.iter().map(|step| step.sequence).collect::<Vec<_>>(),
        [3, 2],
        "cursor pages go older"
    );
    assert_eq!(w.auction(lot).bid_count, 5);
}

// --- Anti-sniping ----------------------------------------------------------------------------

#[test]
fn a_step_inside_the_window_extends_the_end_time() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    w.run(Op::Watch {
        auction_id: lot,
        user: CAROL,
    });
    w.bid(lot, ALICE, "10").expect("accepted");
    w.advance(HOUR - 60 * SECOND);
    let bid = w.bid(lot, BOB, "20").expect("accepted");
    assert_eq!(bid.end_time, w.now + 120 * SECOND);
    let auction = w.auction(lot);
    assert_eq!(
        (auction.end_time, auction.original_end_time),
        (w.now + 120 * SECOND, T0 + HOUR)
    );
    assert!(
        w.notification_kinds(CAROL).contains(&"auction_extended"),
        "watchers hear of it"
    );
    assert!(
        w.notification_kinds(ALICE).contains(&"auction_extended"),
        "bidders hear of it"
    );
    w.advance(100 * SECOND);
    assert!(
        w.bid(lot, ALICE, "30").is_ok(),
        "the auction runs on past its original end"
    );
}

#[test]
fn a_step_outside_the_window_does_not_extend() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    w.advance(HOUR - 121 * SECOND);
    w.bid(lot, BOB, "20").expect("accepted");
    assert_eq!(w.auction(lot).end_time, T0 + HOUR);
}

#[test]
fn rejected_bids_never_extend() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    w.bid(lot, ALICE, "20").expect("accepted");
    w.advance(HOUR - 10 * SECOND);
    assert_eq!(code(w.bid(lot, BOB, "20.50")), "BID_TOO_LOW");
    assert_eq!(code(w.bid(lot, ALICE, "40")), "ALREADY_HIGH_BIDDER");
    assert_eq!(w.auction(lot).end_time, T0 + HOUR);
}

#[test]
fn raising_a_maximum_without_a_step_does_not_extend() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    w.proxy(lot, ALICE, "20").expect("accepted");
    w.advance(HOUR - 10 * SECOND);
    w.proxy(lot, ALICE, "40").expect("accepted");
    assert_eq!(w.auction(lot).end_time, T0 + HOUR);
}

#[test]
fn anti_sniping_zero_disables_it_and_custom_values_apply() {
    let mut w = World::shard();
    let off = w.create(|new| new.anti_snipe = no_anti_snipe());
    let custom = w.create(|new| {
        new.anti_snipe = Some(AntiSnipeSpec {
            window_seconds: 30,
            extension_seconds: 60,
        })
    });
    w.advance(HOUR - 20 * SECOND);
    w.bid(off, ALICE, "10").expect("accepted");
    w.bid(custom, ALICE, "10").expect("accepted");
    assert_eq!(w.auction(off).end_time, T0 + HOUR);
    assert_eq!(w.auction(custom).end_time, w.now + 60 * SECOND);
}

// --- Buy now ---------------------------------------------------------------------------------

#[test]
fn buy_now_without_bids_ends_the_auction_sold_at_the_buy_now_price() {
    let mut w = World::shard();
    let lot = w.create(|new| new.buy_now_price = Some("200".to_owned()));
    let bought = w.buy_now(lot, ALICE).expect("bought");
    assert_eq!(
        (bought.current_price, bought.high_bidder_id, bought.winning),
        (m("200.00"), ALICE, true)
    );
    let auction = w.auction(lot);
    assert_eq!(
        (auction.phase, auction.winner()),
        (Phase::Sold, Some(ALICE))
    );
    assert_eq!(code(w.bid(lot, BOB, "300")), "AUCTION_ENDED");
    assert_eq!(w.notification_kinds(ALICE), ["auction_won"]);
    assert_eq!(w.notification_kinds(SELLER), ["auction_sold"]);
    assert_eq!(
        query::next_due_end_time(&w.kv).expect("read"),
        None,
        "no close is pending"
    );
}

#[test]
fn buy_now_is_allowed_while_the_reserve_is_not_met() {
    let mut w = World::shard();
    let lot = w.create(|new| {
        new.reserve_price = Some("100".to_owned());
        new.buy_now_price = Some("150".to_owned());
    });
    w.bid(lot, ALICE, "50").expect("accepted");
    w.buy_now(lot, BOB)
        .expect("bought while the reserve is unmet");
    assert_eq!(w.auction(lot).winner(), Some(BOB));
    assert_eq!(w.notification_kinds(ALICE), ["auction_lost"]);
}

#[test]
fn buy_now_is_refused_once_the_reserve_is_met_or_without_a_price() {
    let mut w = World::shard();
    let lot = w.create(|new| {
        new.reserve_price = Some("100".to_owned());
        new.buy_now_price = Some("150".to_owned());
    });
    w.bid(lot, ALICE, "100").expect("accepted");
    assert_eq!(code(w.buy_now(lot, BOB)), "BUY_NOW_UNAVAILABLE");
    let plain = w.create(|_| {});
    assert_eq!(code(w.buy_now(plain, BOB)), "BUY_NOW_UNAVAILABLE");
    let no_reserve = w.create(|new| new.buy_now_price = Some("150".to_owned()));
    w.bid(no_reserve, ALICE, "20").expect("accepted");
    assert_eq!(
        code(w.buy_now(no_reserve, BOB)),
        "BUY_NOW_UNAVAILABLE",
        "a bid exists and no reserve"
    );
    assert_eq!(code(w.buy_now(lot, SELLER)), "SELLER_CANNOT_BID");
}

// --- Ending ----------------------------------------------------------------------------------

#[test]
fn close_sells_to_the_high_bidder_at_the_current_price_and_notifies_everyone() {
    let mut w = World::shard();
    let lot = w.create(|new| new.anti_snipe = no_anti_snipe());
    w.bid(lot, ALICE, "20").expect("accepted");
    w.proxy(lot, BOB, "60").expect("accepted");
    w.run(Op::Watch {
        auction_id: lot,
        user: CAROL,
    });
    w.advance(HOUR - 1);
    assert!(
        matches!(w.tick().result, Ok(Outcome::Ticked { closed: 0, .. })),
        "not due yet"
    );
    w.advance(1);
    let tick = w.tick();
    assert!(matches!(tick.result, Ok(Outcome::Ticked { closed: 1, .. })));
    assert!(tick.events.iter().any(|event| matches!(
        event,
        Event::AuctionEnded {
            status: Status::Sold,
            ..
        }
    )));
    let auction = w.auction(lot);
    assert_eq!(
        (auction.phase, auction.winner(), w.price(lot)),
        (Phase::Sold, Some(BOB), "21.00".to_owned())
    );
    assert!(w.notification_kinds(BOB).contains(&"auction_won"));
    assert!(w.notification_kinds(ALICE).contains(&"auction_lost"));
    assert!(w.notification_kinds(SELLER).contains(&"auction_sold"));
    assert!(
        matches!(w.tick().result, Ok(Outcome::Ticked { closed: 0, .. })),
        "closing is done once"
    );
}

#[test]
fn close_without_bids_is_unsold() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    w.advance(2 * HOUR);
    w.tick();
    assert_eq!(w.auction(lot).status_at(w.now), Status::Unsold);
    assert_eq!(w.notification_kinds(SELLER), ["auction_unsold"]);
}

#[test]
fn close_applies_to_every_due_auction_and_to_no_other() {
    let mut w = World::shard();
    let early = w.create(|new| new.duration_seconds = Some(60));
    let also_early = w.create(|new| new.duration_seconds = Some(120));
    let later = w.create(|new| new.duration_seconds = Some(3_600));
    assert_eq!(
        query::next_due_end_time(&w.kv).expect("read"),
        Some(T0 + MINUTE)
    );
    w.advance(10 * MINUTE);
    assert!(matches!(
        w.tick().result,
        Ok(Outcome::Ticked { closed: 2, .. })
    ));
    assert_eq!(w.auction(early).phase, Phase::Unsold);
    assert_eq!(w.auction(also_early).phase, Phase::Unsold);
    assert_eq!(w.auction(later).phase, Phase::Open);
    assert_eq!(
        query::next_due_end_time(&w.kv).expect("read"),
        Some(T0 + HOUR)
    );
}

#[test]
fn time_never_runs_backwards_across_commands() {
    let mut w = World::shard();
    let lot = w.create(|new| new.anti_snipe = no_anti_snipe());
    w.advance(HOUR);
    w.tick();
    w.now = T0;
    let applied = w.run(Op::PlaceBid {
        auction_id: lot,
        bidder: ALICE,
        amount: "10".to_owned(),
    });
    assert_eq!(
        applied.effective_ts,
        T0 + HOUR,
        "a stale leader clock does not reopen the auction"
    );
    assert_eq!(applied.result.map(|_| ()), Err(Rejection::AuctionEnded));
}

// --- Seller edits and cancellation -----------------------------------------------------------

#[test]
fn seller_edits_are_allowed_only_before_the_first_bid() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    let changes = AuctionChanges {
        title: Some("Vintage watch, boxed".to_owned()),
        starting_price: Some("15".to_owned()),
        end_time: Some(T0 + 2 * HOUR),
        ..AuctionChanges::default()
    };
    let edited = w.run(Op::UpdateAuction {
        auction_id: lot,
        actor: SELLER,
        changes: changes.clone(),
    });
    assert!(edited.result.is_ok(), "{edited:?}");
    let auction = w.auction(lot);
    assert_eq!(
        (auction.title.as_str(), auction.rules.starting),
        ("Vintage watch, boxed", m("15.00"))
    );
    assert_eq!(
        (auction.end_time, auction.original_end_time),
        (T0 + 2 * HOUR, T0 + 2 * HOUR)
    );
    assert_eq!(
        query::next_due_end_time(&w.kv).expect("read"),
        Some(T0 + 2 * HOUR),
        "end index moved"
    );
    let stranger = w.run(Op::UpdateAuction {
        auction_id: lot,
        actor: ALICE,
        changes: changes.clone(),
    });
    assert_eq!(
        stranger.result.map(|_| ()).map_err(|r| r.code()),
        Err("FORBIDDEN")
    );
    w.bid(lot, ALICE, "15").expect("accepted");
    let late = w.run(Op::UpdateAuction {
        auction_id: lot,
        actor: SELLER,
        changes,
    });
    assert_eq!(
        late.result.map(|_| ()).map_err(|r| r.code()),
        Err("AUCTION_HAS_BIDS")
    );
    let cancel = w.run(Op::CancelAuction {
        auction_id: lot,
        actor: SELLER,
    });
    assert_eq!(
        cancel.result.map(|_| ()).map_err(|r| r.code()),
        Err("AUCTION_HAS_BIDS")
    );
}

#[test]
fn seller_edit_is_validated_as_a_whole() {
    let mut w = World::shard();
    let lot = w.create(|new| new.reserve_price = Some("50".to_owned()));
    let changes = AuctionChanges {
        starting_price: Some("60".to_owned()),
        ..AuctionChanges::default()
    };
    let applied = w.run(Op::UpdateAuction {
        auction_id: lot,
        actor: SELLER,
        changes,
    });
    assert_eq!(
        applied.result.map(|_| ()),
        Err(Rejection::validation(
            "reservePrice",
            "must be at least the starting price"
        ))
    );
    assert_eq!(w.auction(lot).rules.starting, m("10.00"), "nothing changed");
}

#[test]
fn seller_cancel_before_the_first_bid_cancels() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    w.run(Op::Watch {
        auction_id: lot,
        user: CAROL,
    });
    assert!(w
        .run(Op::CancelAuction {
            auction_id: lot,
            actor: SELLER
        })
        .result
        .is_ok());
    assert_eq!(w.auction(lot).status_at(w.now), Status::Cancelled);
    assert_eq!(w.notification_kinds(CAROL), ["auction_cancelled"]);
    assert_eq!(query::next_due_end_time(&w.kv).expect("read"), None);
}

// --- Admin -----------------------------------------------------------------------------------

#[test]
fn admins_can_cancel_any_auction_and_it_is_audited() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    w.bid(lot, ALICE, "30").expect("accepted");
    let cancel = w.run(Op::AdminCancelAuction {
        auction_id: lot,
        admin: ADMIN,
        reason: "counterfeit".to_owned(),
    });
    assert!(cancel.result.is_ok(), "{cancel:?}");
    assert_eq!(w.auction(lot).phase, Phase::Cancelled);
    assert!(w.notification_kinds(ALICE).contains(&"auction_cancelled"));
    let audit = query::audit_log(&w.kv, None, 10).expect("read");
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (
            audit[0].actor_id,
            audit[0].action.as_str(),
            audit[0].detail.as_str()
        ),
        (ADMIN, "auction.cancel", "counterfeit")
    );
}

#[test]
fn admins_can_extend_an_auction_and_the_original_end_is_kept() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    w.bid(lot, ALICE, "30").expect("accepted");
    let extend = w.run(Op::AdminExtendAuction {
        auction_id: lot,
        admin: ADMIN,
        end_time: T0 + 3 * HOUR,
    });
    assert!(extend.result.is_ok(), "{extend:?}");
    let auction = w.auction(lot);
    assert_eq!(
        (auction.end_time, auction.original_end_time),
        (T0 + 3 * HOUR, T0 + HOUR)
    );
    let shorter = w.run(Op::AdminExtendAuction {
        auction_id: lot,
        admin: ADMIN,
        end_time: T0 + 2 * HOUR,
    });
    assert_eq!(
        shorter.result.map(|_| ()).map_err(|r| r.code()),
        Err("VALIDATION_FAILED")
    );
    assert_eq!(
        query::audit_log(&w.kv, None, 10).expect("read")[0].action,
        "auction.extend"
    );
}

// --- Idempotency -----------------------------------------------------------------------------

#[test]
fn idempotent_retry_returns_the_first_outcome_and_changes_nothing() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    let op = Op::PlaceBid {
        auction_id: lot,
        bidder: ALICE,
        amount: "25".to_owned(),
    };
    let first = w.run_keyed(op.clone(), "key-1");
    let state_after_first = w.kv.clone();
    w.advance(MINUTE);
    let retry = w.run_keyed(op, "key-1");
    assert!(!first.replayed && retry.replayed);
    assert_eq!(
        retry.result, first.result,
        "the same bid id, status and price"
    );
    assert_eq!(retry.effective_ts, first.effective_ts, "and the same time");
    assert!(retry.events.is_empty(), "a replay emits nothing");
    assert_eq!(w.auction(lot).bid_count, 1);
    assert_eq!(
        query::bid_history(&w.kv, lot, None, 10).expect("read"),
        query::bid_history(&state_after_first, lot, None, 10).expect("read")
    );
}

#[test]
fn idempotent_retry_of_a_rejection_returns_the_same_rejection() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    let op = Op::PlaceBid {
        auction_id: lot,
        bidder: ALICE,
        amount: "5".to_owned(),
    };
    let first = w.run_keyed(op.clone(), "low");
    assert_eq!(
        first.result.clone().map(|_| ()).map_err(|r| r.code()),
        Err("BID_TOO_LOW")
    );
    assert_eq!(w.run_keyed(op, "low").result, first.result);
}

#[test]
fn the_same_key_for_a_different_request_is_refused() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    w.run_keyed(
        Op::PlaceBid {
            auction_id: lot,
            bidder: ALICE,
            amount: "25".to_owned(),
        },
        "key-1",
    );
    let other = w.run_keyed(
        Op::PlaceBid {
            auction_id: lot,
            bidder: ALICE,
            amount: "99".to_owned(),
        },
        "key-1",
    );
    assert_eq!(
        other.result.map(|_| ()),
        Err(Rejection::IdempotencyKeyReused)
    );
    let bob = w.run_keyed(
        Op::PlaceBid {
            auction_id: lot,
            bidder: BOB,
            amount: "99".to_owned(),
        },
        "key-1",
    );
    assert!(bob.result.is_ok(), "keys are scoped to the user");
}

#[test]
fn a_reader_finds_the_answer_a_keyed_retry_would_get_without_proposing_it() {
    use auction_statemachine::machine::recorded_answer;
    let mut w = World::shard();
    let lot = w.create(|_| {});
    let bid = |amount: &str| Op::PlaceBid {
        auction_id: lot,
        bidder: ALICE,
        amount: amount.to_owned(),
    };
    assert_eq!(
        recorded_answer(&w.kv, &bid("25"), "key-1").expect("read"),
        None,
        "nothing is recorded before the first application"
    );
    let first = w.run_keyed(bid("25"), "key-1");
    let found = recorded_answer(&w.kv, &bid("25"), "key-1")
        .expect("read")
        .expect("recorded");
    assert!(found.replayed);
    assert_eq!(found.result, first.result, "the first outcome");
    assert_eq!(found.effective_ts, first.effective_ts);
    let reused = recorded_answer(&w.kv, &bid("99"), "key-1")
        .expect("read")
        .expect("recorded");
    assert_eq!(
        reused.result.map(|_| ()),
        Err(Rejection::IdempotencyKeyReused)
    );
    assert_eq!(
        recorded_answer(&w.kv, &bid("25"), "key-2").expect("read"),
        None,
        "another key has no record"
    );
}

#[test]
fn the_same_request_applied_twice_is_applied_once() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    let command = w.command(
        Op::PlaceBid {
            auction_id: lot,
            bidder: ALICE,
            amount: "25".to_owned(),
        },
        None,
    );
    let first = w.apply(command.clone());
    w.advance(MINUTE);
    let retry = Command {
        ts_ms: w.now,
        ..command
    };
    let again = w.apply(retry);
    assert_eq!(again.result, first.result);
    assert!(again.replayed);
    assert_eq!(
        again.effective_ts, first.effective_ts,
        "a replay answers at the first application's time"
    );
    assert_eq!(w.auction(lot).bid_count, 1);
}

#[test]
fn idempotency_keys_are_kept_at_least_24_hours_then_purged() {
    let mut w = World::shard();
    let lot = w.create(|new| new.duration_seconds = Some(7 * 24 * 3_600));
    let op = Op::Watch {
        auction_id: lot,
        user: ALICE,
    };
    w.run_keyed(op.clone(), "watch-1");
    w.advance(24 * HOUR);
    assert!(
        w.run_keyed(op.clone(), "watch-1").replayed,
        "still remembered after 24 hours"
    );
    w.advance(2 * HOUR);
    w.tick();
    assert!(
        !w.run_keyed(op, "watch-1").replayed,
        "forgotten after the retention"
    );
}

#[test]
fn client_writes_purge_expired_request_records_without_a_tick() {
    use auction_statemachine::kv::KvRead;
    let expiry_entries = |w: &World| {
        w.kv.scan(&[auction_statemachine::keys::DEDUP_EXPIRY], None, 10_000)
            .expect("scan")
            .len()
    };
    let mut w = World::shard();
    let lot = w.create(|new| new.duration_seconds = Some(7 * 24 * 3_600));
    let watch = Op::Watch {
        auction_id: lot,
        user: ALICE,
    };
    for _ in 0..50 {
        w.run(watch.clone());
    }
    let before = expiry_entries(&w);
    assert!(before >= 50, "every write is remembered: {before}");
    // Past the request records' retention, writes arriving at least the purge interval apart
    // delete the expired records themselves.
    w.advance(16 * 60 * 1_000);
    for _ in 0..3 {
        w.run(watch.clone());
        w.advance(auction_statemachine::tick::DEDUP_PURGE_INTERVAL_MS);
    }
    let after = expiry_entries(&w);
    assert!(
        after <= 3 + 1,
        "expired records purged on the write path: {after} left of {before}"
    );
}

#[test]
fn a_watcher_who_left_hears_nothing_and_one_who_came_back_hears_once() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    for user in [CAROL, CAROL, ALICE] {
        w.run(Op::Watch {
            auction_id: lot,
            user,
        });
    }
    for _ in 0..2 {
        w.run(Op::Unwatch {
            auction_id: lot,
            user: ALICE,
        });
    }
    w.bid(lot, BOB, "20").expect("accepted");
    assert_eq!(w.notification_kinds(CAROL), ["new_bid"]);
    assert!(w.notification_kinds(ALICE).is_empty(), "unwatched");
    w.run(Op::Unwatch {
        auction_id: lot,
        user: CAROL,
    });
    w.bid(lot, ALICE, "30").expect("accepted");
    assert_eq!(w.notification_kinds(CAROL), ["new_bid"], "no watcher left");
    w.run(Op::Watch {
        auction_id: lot,
        user: CAROL,
    });
    w.bid(lot, BOB, "40").expect("accepted");
    assert_eq!(w.notification_kinds(CAROL), ["new_bid", "new_bid"]);
}

#[test]
fn a_full_history_page_still_says_more_steps_follow() {
    let mut w = World::shard();
    let lot = w.create(|new| new.duration_seconds = Some(7 * 24 * 3_600));
    let page = auction_statemachine::query::PAGE_ITEMS_MAX;
    for step in 0..=page {
        let bidder = if step % 2 == 0 { ALICE } else { BOB };
        w.bid(lot, bidder, &format!("{}", 10 + step))
            .expect("accepted");
    }
    // The API asks for one more than the page to know whether to hand out a cursor.
    let steps = auction_statemachine::query::bid_history(&w.kv, lot, None, page + 1).expect("read");
    assert_eq!(
        steps.len(),
        page + 1,
        "the step past a full page is visible"
    );
}

// --- Watchers and notifications --------------------------------------------------------------

#[test]
fn watchers_hear_of_new_bids_and_the_outbid_bidder_is_told() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    w.run(Op::Watch {
        auction_id: lot,
        user: CAROL,
    });
    w.run(Op::Watch {
        auction_id: lot,
        user: ALICE,
    });
    w.bid(lot, ALICE, "20").expect("accepted");
    let bob = w.bid(lot, BOB, "30").expect("accepted");
    assert!(bob.winning);
    assert_eq!(w.notification_kinds(CAROL), ["new_bid", "new_bid"]);
    assert_eq!(
        w.notification_kinds(ALICE),
        ["outbid"],
        "the outbid watcher gets one notification"
    );
    assert!(w.notification_kinds(BOB).is_empty());
    let watchlist = query::watchlist(&w.kv, CAROL, None, 10).expect("read");
    assert_eq!(
        watchlist
            .iter()
            .map(|watch| watch.auction_id)
            .collect::<Vec<_>>(),
        [lot]
    );
    w.run(Op::Unwatch {
        auction_id: lot,
        user: CAROL,
    });
    assert!(query::watchlist(&w.kv, CAROL, None, 10)
        .expect("read")
        .is_empty());
}

#[test]
fn notifications_can_be_marked_read() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    w.bid(lot, ALICE, "20").expect("accepted");
    w.bid(lot, BOB, "30").expect("accepted");
    let outbid = w.notifications(ALICE).remove(0);
    assert_eq!(outbid.read_at, None);
    let read = w.run(Op::MarkNotificationRead {
        user: ALICE,
        notification_id: outbid.id,
    });
    assert!(read.result.is_ok());
    assert_eq!(w.notifications(ALICE)[0].read_at, Some(w.now));
    let foreign = w.run(Op::MarkNotificationRead {
        user: BOB,
        notification_id: outbid.id,
    });
    assert_eq!(
        foreign.result.map(|_| ()).map_err(|r| r.code()),
        Err("NOTIFICATION_NOT_FOUND")
    );
}

// --- Creation validation ---------------------------------------------------------------------

#[test]
fn creation_is_validated_field_by_field() {
    let mut w = World::shard();
    let field_of = |result: Result<Outcome, Rejection>| match result {
        Err(Rejection::Validation { field, .. }) => field,
        other => panic!("expected a validation failure, got {other:?}"),
    };
    assert_eq!(
        field_of(w.try_create(|new| new.title = "   ".to_owned())),
        "title"
    );
    assert_eq!(
        field_of(w.try_create(|new| new.title = "x".repeat(201))),
        "title"
    );
    assert_eq!(
        field_of(w.try_create(|new| new.starting_price = "1.234".to_owned())),
        "startingPrice"
    );
    assert_eq!(
        field_of(w.try_create(|new| new.reserve_price = Some("5".to_owned()))),
        "reservePrice"
    );
    assert_eq!(
        field_of(w.try_create(|new| new.buy_now_price = Some("10".to_owned()))),
        "buyNowPrice"
    );
    assert_eq!(
        field_of(w.try_create(|new| new.bid_increment = Some("0".to_owned()))),
        "bidIncrement"
    );
    assert_eq!(
        field_of(w.try_create(|new| new.duration_seconds = Some(0))),
        "durationSeconds"
    );
    assert_eq!(
        field_of(w.try_create(|new| {
            new.duration_seconds = None;
            new.end_time = Some(T0 - 1);
        })),
        "endTime"
    );
    assert_eq!(
        field_of(w.try_create(|new| new.duration_seconds = None)),
        "endTime"
    );
    let snipe = Some(AntiSnipeSpec {
        window_seconds: -1,
        extension_seconds: 0,
    });
    assert_eq!(
        field_of(w.try_create(|new| new.anti_snipe = snipe)),
        "antiSnipe.windowSeconds"
    );
    assert!(
        query::auctions(&w.kv, None, 10).expect("read").is_empty(),
        "nothing was created"
    );
}

// --- Groups ----------------------------------------------------------------------------------

#[test]
fn commands_for_the_other_kind_of_group_are_refused() {
    let mut meta = World::meta();
    let lot = auction_statemachine::AuctionId(uuid::Uuid::from_u128(1));
    assert_eq!(code(meta.bid(lot, ALICE, "10")), "WRONG_GROUP");
    let mut shard = World::shard();
    assert_eq!(
        shard
            .register(ALICE, "alice@example.com")
            .map(|_| ())
            .map_err(|r| r.code()),
        Err("WRONG_GROUP")
    );
}
