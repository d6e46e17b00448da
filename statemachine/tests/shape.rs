//! The shape rules the API checks before proposing (`shape::check`) against apply itself:
//! for the rules that need no state, the edge accepts exactly what apply accepts and refuses
//! with the same rejection; where apply checks state first, a dry run on an overlay answers
//! what apply answers and changes nothing.

mod common;

use auction_statemachine::command::{AntiSnipeSpec, AuctionChanges, NewUser, Op};
use auction_statemachine::{shape, AuctionId, Overlay, Rejection, Role, UserId};
use common::*;
use proptest::prelude::*;
use uuid::Uuid;

/// Amount texts on both sides of every money rule.
fn amount() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("10.00".to_owned()),
        Just("0".to_owned()),
        Just("-5".to_owned()),
        Just("1.005".to_owned()),
        Just("1000000000.00".to_owned()),
        Just("1000000000.01".to_owned()),
        Just("{\"cents\":5}".to_owned()),
        Just(" 12.5 ".to_owned()),
        "[0-9]{1,11}(\\.[0-9]{0,3})?",
        ".{0,40}",
    ]
}

/// Texts around the length limits, with and without control characters.
fn text(chars_max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        (0..=chars_max + 3).prop_map(|length| "x".repeat(length)),
        Just(" \t ".to_owned()),
        Just("line\nnext".to_owned()),
        Just("bell\u{7}".to_owned()),
        ".{0,12}",
    ]
}

/// An offset from now in ms, around the time rules (past, now, a year, 90 days).
fn offset_ms() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(0),
        Just(-MINUTE),
        Just(HOUR),
        Just(90 * 24 * HOUR),
        Just(90 * 24 * HOUR + 1),
        Just(366 * 24 * HOUR),
        -HOUR..400 * 24 * HOUR,
    ]
}

fn anti_snipe() -> impl Strategy<Value = Option<AntiSnipeSpec>> {
    let seconds = prop_oneof![Just(-1i64), Just(0), Just(86_400), Just(86_401), 0i64..200];
    prop::option::of(
        (seconds.clone(), seconds).prop_map(|(window, extension)| AntiSnipeSpec {
            window_seconds: window,
            extension_seconds: extension,
        }),
    )
}

/// A shape of a new auction: which of the optional fields are given, and how.
#[derive(Clone, Debug)]
struct Listing {
    title: String,
    description: Option<String>,
    category: Option<String>,
    starting: String,
    reserve: Option<String>,
    increment: Option<String>,
    buy_now: Option<String>,
    start_ms: Option<i64>,
    end_ms: Option<i64>,
    duration_seconds: Option<i64>,
    anti_snipe: Option<AntiSnipeSpec>,
}

fn listing() -> impl Strategy<Value = Listing> {
    let increment = prop_oneof![Just("ebay".to_owned()), amount()];
    let duration = prop_oneof![Just(0i64), Just(7_776_000), Just(7_776_001), 1i64..100_000];
    (
        (
            text(200),
            prop::option::of(text(10_000)),
            prop::option::of(text(64)),
        ),
        (
            amount(),
            prop::option::of(amount()),
            prop::option::of(increment),
        ),
        prop::option::of(amount()),
        (prop::option::of(offset_ms()), prop::option::of(offset_ms())),
        prop::option::of(duration),
        anti_snipe(),
    )
        .prop_map(
            |(texts, prices, buy_now, (start_ms, end_ms), duration_seconds, anti_snipe)| Listing {
                title: texts.0,
                description: texts.1,
                category: texts.2,
                starting: prices.0,
                reserve: prices.1,
                increment: prices.2,
                buy_now,
                start_ms,
                end_ms,
                duration_seconds,
                anti_snipe,
            },
        )
}

fn create_op(listing: &Listing, id: AuctionId) -> Op {
    let mut new = new_auction(id);
    new.title = listing.title.clone();
    new.description = listing.description.clone();
    new.category = listing.category.clone();
    new.starting_price = listing.starting.clone();
    new.reserve_price = listing.reserve.clone();
    new.bid_increment = listing.increment.clone();
    new.buy_now_price = listing.buy_now.clone();
    new.start_time = listing.start_ms.map(|offset| T0 + offset);
    new.end_time = listing.end_ms.map(|offset| T0 + offset);
    new.duration_seconds = listing.duration_seconds;
    new.anti_snipe = listing.anti_snipe;
    Op::CreateAuction(new)
}

fn changes() -> impl Strategy<Value = AuctionChanges> {
    (
        (prop::option::of(text(200)), prop::option::of(text(10_000))),
        prop::option::of(prop::option::of(text(64))),
        (
            prop::option::of(amount()),
            prop::option::of(prop::option::of(amount())),
        ),
        prop::option::of(prop_oneof![Just("ebay".to_owned()), amount()]),
        prop::option::of(prop::option::of(amount())),
        prop::option::of(offset_ms()),
    )
        .prop_map(
            |((title, description), category, (starting, reserve), increment, buy_now, end)| {
                AuctionChanges {
                    title,
                    description,
                    category,
                    starting_price: starting,
                    reserve_price: reserve,
                    bid_increment: increment,
                    buy_now_price: buy_now,
                    end_time: end.map(|offset| T0 + offset),
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// A new listing reads no state: the edge and apply agree on every one, refusal included.
    #[test]
    fn the_edge_accepts_a_new_listing_exactly_when_apply_does(listing in listing()) {
        let mut world = World::shard();
        let op = create_op(&listing, AuctionId(Uuid::from_u128(0xa0c7)));
        let edge = shape::check(&op, world.now);
        let applied = world.run(op).result.map(drop);
        prop_assert_eq!(edge, applied);
    }

    /// An edit the edge refuses is refused by apply with the same rejection; one it lets
    /// through is refused by apply only for a rule that compares with the auction.
    #[test]
    fn an_edit_refused_at_the_edge_is_refused_by_apply_alike(changes in changes()) {
        let mut world = World::shard();
        let auction_id = world.create(|_| {});
        let op = Op::UpdateAuction { auction_id, actor: SELLER, changes };
        let edge = shape::check(&op, world.now);
        let applied = world.run(op).result.map(drop);
        match (edge, applied) {
            (Err(edge), applied) => prop_assert_eq!(Err(edge), applied),
            (Ok(()), Err(Rejection::Validation { field, .. })) => prop_assert!(
                ["reservePrice", "buyNowPrice", "endTime"].contains(&field.as_str()),
                "a shape-valid edit refused for {}", field
            ),
            (Ok(()), other) => prop_assert!(other.is_ok(), "{:?}", other),
        }
    }

    /// On an auction the bidder may bid on, the amount's shape alone decides `INVALID_AMOUNT`.
    #[test]
    fn the_edge_refuses_a_bid_amount_exactly_when_apply_finds_it_invalid(text in amount()) {
        let mut world = World::shard();
        let auction = world.create(|_| {});
        let op = Op::PlaceBid { auction_id: auction, bidder: ALICE, amount: text.clone() };
        let edge = shape::check(&op, world.now);
        let applied = bid_result(world.run(op)).map(drop);
        let invalid = matches!(applied, Err(Rejection::InvalidAmount { .. }));
        prop_assert_eq!(edge.is_err(), invalid, "{:?} -> {:?}", text, applied);
        if let Err(edge) = edge {
            prop_assert_eq!(Err(edge), applied);
        }
        let proxy = Op::PlaceProxyBid { auction_id: auction, bidder: BOB, max_amount: text };
        prop_assert_eq!(
            shape::check(&proxy, world.now).is_err(),
            matches!(world.run(proxy).result, Err(Rejection::InvalidAmount { .. }))
        );
    }

    /// A new user's shape is all of registration but the email being free.
    #[test]
    fn the_edge_accepts_a_registration_exactly_when_apply_does(
        email in prop_oneof![Just("a@example.com".to_owned()), Just(" A@Example.COM ".to_owned()),
            Just("no-at".to_owned()), Just("a@b@c".to_owned()), ".{0,20}@.{0,20}"],
        display_name in text(64),
    ) {
        let mut world = World::meta();
        let op = Op::RegisterUser(NewUser {
            user_id: UserId(Uuid::from_u128(0x0e)),
            email,
            display_name,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        });
        let edge = shape::check(&op, world.now);
        prop_assert_eq!(edge, world.run(op).result.map(drop));
    }

    /// Reasons of admin actions are bounded the same way at the edge and in apply.
    #[test]
    fn the_edge_bounds_admin_reasons_as_apply_does(reason in text(500)) {
        let mut meta = World::meta();
        meta.register(BOB, "bob@example.com").expect("registered");
        // Only an admin may ban (the meta group checks the actor's role after the reason).
        meta.register(ADMIN, "admin@example.com").expect("registered");
        let granted = meta.run(Op::SetRole { user_id: ADMIN, role: Role::Admin, actor: None });
        prop_assert!(granted.result.is_ok(), "the cluster token grants the admin");
        let ban = Op::BanUser { user_id: BOB, banned: true, reason: Some(reason.clone()), admin: ADMIN };
        let edge = shape::check(&ban, meta.now);
        prop_assert_eq!(edge, meta.run(ban).result.map(drop));

        let mut shard = World::shard();
        let auction_id = shard.create(|_| {});
        let cancel = Op::AdminCancelAuction { auction_id, admin: ADMIN, reason };
        let edge = shape::check(&cancel, shard.now);
        prop_assert_eq!(edge, shard.run(cancel).result.map(drop));
    }
}

/// RULES.md checks the auction before the amount, so the edge cannot answer a malformed
/// amount by itself: a dry run on an overlay answers as apply does and writes nothing.
#[test]
fn a_dry_run_answers_in_the_order_of_the_rules_and_changes_nothing() {
    let mut world = World::shard();
    let auction = world.create(|_| {});
    let unknown = AuctionId(Uuid::from_u128(0xdead));
    let cases = [
        (unknown, ALICE, "AUCTION_NOT_FOUND"),
        (auction, SELLER, "SELLER_CANNOT_BID"),
        (auction, ALICE, "INVALID_AMOUNT"),
    ];
    for (auction_id, bidder, expected) in cases {
        let op = Op::PlaceBid {
            auction_id,
            bidder,
            amount: "{\"cents\":5}".to_owned(),
        };
        assert!(shape::check(&op, world.now).is_err(), "malformed amount");
        let command = world.command(op, Some("key-1"));
        let before = world.kv.clone();
        let mut overlay = Overlay::new(&world.kv);
        let dry = world
            .machine
            .apply(&mut overlay, &command)
            .expect("memory store never fails");
        assert_eq!(code(dry.result), expected, "{bidder:?} on {auction_id:?}");
        assert_eq!(world.kv, before, "a dry run writes nothing");
    }
}
