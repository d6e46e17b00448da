//! Properties over random command sequences: the invariants of RULES.md hold after every
//! command, apply is deterministic, and proxy-only auctions end at the second-price rule
//! computed by an independent reference.

mod common;

use std::collections::BTreeMap;

use auction_statemachine::command::{AntiSnipeSpec, Op};
use auction_statemachine::money::{Increment, Money};
use auction_statemachine::outcome::Outcome;
use auction_statemachine::{AuctionId, MemKv, Phase, StateMachine, UserId};
use common::*;
use proptest::prelude::*;
use uuid::Uuid;

const BIDDERS: u128 = 4;
const AUCTIONS: usize = 2;

fn bidder(index: u8) -> UserId {
    UserId(Uuid::from_u128(0xb1d0 + u128::from(index) % BIDDERS))
}

#[derive(Clone, Debug)]
struct Listing {
    starting_cents: i64,
    reserve_extra_cents: Option<i64>,
    ebay: bool,
    buy_now_extra_cents: Option<i64>,
    anti_snipe: bool,
    duration_minutes: i64,
}

#[derive(Clone, Debug)]
enum Action {
    Bid {
        auction: usize,
        bidder: u8,
        cents: i64,
    },
    Proxy {
        auction: usize,
        bidder: u8,
        cents: i64,
    },
    BuyNow {
        auction: usize,
        bidder: u8,
    },
    Watch {
        auction: usize,
        bidder: u8,
    },
    Advance {
        seconds: i64,
    },
    Tick,
}

fn listing() -> impl Strategy<Value = Listing> {
    (
        100i64..5_000,
        prop::option::of(0i64..10_000),
        any::<bool>(),
        prop::option::of(1i64..20_000),
        any::<bool>(),
        5i64..120,
    )
        .prop_map(
            |(
                starting_cents,
                reserve_extra_cents,
                ebay,
                buy_now_extra_cents,
                anti_snipe,
                duration_minutes,
            )| {
                Listing {
                    starting_cents,
                    reserve_extra_cents,
                    ebay,
                    buy_now_extra_cents,
                    anti_snipe,
                    duration_minutes,
                }
            },
        )
}

/// Amounts cluster around typical prices but reach both below-minimum and large values.
fn cents() -> impl Strategy<Value = i64> {
    prop_oneof![
        100i64..3_000,
        1_000i64..20_000,
        (1i64..400).prop_map(|whole| whole * 100)
    ]
}

fn action(proxy_only: bool) -> BoxedStrategy<Action> {
    let auction = 0..AUCTIONS;
    let proxy = (auction.clone(), any::<u8>(), cents()).prop_map(|(auction, bidder, cents)| {
        Action::Proxy {
            auction,
            bidder,
            cents,
        }
    });
    let advance = (0i64..900).prop_map(|seconds| Action::Advance { seconds });
    if proxy_only {
        return prop_oneof![6 => proxy, 1 => advance].boxed();
    }
    prop_oneof![
        5 => (auction.clone(), any::<u8>(), cents()).prop_map(|(auction, bidder, cents)| Action::Bid { auction, bidder, cents }),
        5 => proxy,
        1 => (auction.clone(), any::<u8>()).prop_map(|(auction, bidder)| Action::BuyNow { auction, bidder }),
        1 => (auction, any::<u8>()).prop_map(|(auction, bidder)| Action::Watch { auction, bidder }),
        2 => advance,
        1 => Just(Action::Tick),
    ]
    .boxed()
}

fn create(world: &mut World, listing: &Listing) -> AuctionId {
    world.create(|new| {
        let starting = Money::from_cents(listing.starting_cents);
        new.starting_price = starting.to_string();
        let reserve = listing
            .reserve_extra_cents
            .map(|extra| Money::from_cents(listing.starting_cents + extra));
        new.reserve_price = reserve.map(|reserve| reserve.to_string());
        new.bid_increment = listing.ebay.then(|| "ebay".to_owned());
        let floor = reserve.unwrap_or(starting).cents();
        new.buy_now_price = listing
            .buy_now_extra_cents
            .map(|extra| Money::from_cents(floor + extra).to_string());
        if !listing.anti_snipe {
            new.anti_snipe = Some(AntiSnipeSpec {
                window_seconds: 0,
                extension_seconds: 0,
            });
        }
        new.duration_seconds = Some(listing.duration_minutes * 60);
    })
}

/// What the test remembers about each auction to check the state machine against.
#[derive(Default)]
struct Tracked {
    /// Each bidder's largest accepted bid or maximum.
    declared: BTreeMap<UserId, Money>,
    last_end_time: i64,
    history_len: usize,
    /// Accepted proxy bids in order, for the reference price.
    accepted_proxies: Vec<(UserId, Money)>,
}

fn run_action(world: &mut World, ids: &[AuctionId], action: &Action, tracked: &mut [Tracked]) {
    let (index, user, amount, op) = match *action {
        Action::Advance { seconds } => return world.advance(seconds * SECOND),
        Action::Tick => {
            world.tick();
            return;
        }
        Action::Watch { auction, bidder: b } => {
            world.run(Op::Watch {
                auction_id: ids[auction],
                user: bidder(b),
            });
            return;
        }
        Action::Bid {
            auction,
            bidder: b,
            cents,
        } => {
            let amount = Money::from_cents(cents);
            let op = Op::PlaceBid {
                auction_id: ids[auction],
                bidder: bidder(b),
                amount: amount.to_string(),
            };
            (auction, bidder(b), Some(amount), op)
        }
        Action::Proxy {
            auction,
            bidder: b,
            cents,
        } => {
            let amount = Money::from_cents(cents);
            let op = Op::PlaceProxyBid {
                auction_id: ids[auction],
                bidder: bidder(b),
                max_amount: amount.to_string(),
            };
            (auction, bidder(b), Some(amount), op)
        }
        Action::BuyNow { auction, bidder: b } => (
            auction,
            bidder(b),
            None,
            Op::BuyNow {
                auction_id: ids[auction],
                buyer: bidder(b),
            },
        ),
    };
    let is_proxy = matches!(op, Op::PlaceProxyBid { .. });
    if let Ok(Outcome::Bid(outcome)) = world.run(op).result {
        let declared = amount.unwrap_or(outcome.current_price);
        tracked[index].declared.insert(user, declared);
        if is_proxy {
            tracked[index].accepted_proxies.push((user, declared));
        }
    }
}

fn check_invariants(
    world: &World,
    ids: &[AuctionId],
    tracked: &mut [Tracked],
) -> Result<(), TestCaseError> {
    for (id, tracked) in ids.iter().zip(tracked.iter_mut()) {
        let auction = world.auction(*id);
        let history = world.history(*id);
        let amounts: Vec<Money> = history
            .iter()
            .map(|(amount, _, _)| Money::parse(amount).expect("stored money"))
            .collect();
        prop_assert!(
            amounts.windows(2).all(|pair| pair[0] < pair[1]),
            "history amounts strictly increase: {amounts:?}"
        );
        prop_assert_eq!(
            auction.bid_count as usize,
            history.len(),
            "bid count is the history length"
        );
        prop_assert!(history.len() >= tracked.history_len, "history only grows");
        tracked.history_len = history.len();
        prop_assert_eq!(
            auction.pricing.price,
            amounts.last().copied(),
            "the price is the last step"
        );
        if let (Some(price), Some(high)) = (auction.pricing.price, auction.pricing.high) {
            prop_assert!(price <= high.max, "currentPrice <= highMax");
            prop_assert_ne!(high.bidder, SELLER);
            for (user, declared) in &tracked.declared {
                if *user != high.bidder {
                    prop_assert!(
                        *declared <= price,
                        "only the high bidder's maximum exceeds the price"
                    );
                }
            }
        }
        prop_assert!(
            auction.end_time >= tracked.last_end_time,
            "end time never decreases"
        );
        tracked.last_end_time = auction.end_time;
        if auction.phase == Phase::Unsold {
            prop_assert!(
                auction
                    .closed_at
                    .is_some_and(|closed| closed >= auction.end_time),
                "unsold only after the end"
            );
        }
    }
    Ok(())
}

/// The second-price rule, written independently of the state machine: the highest maximum
/// wins (ties to the earlier one) and pays one increment above the runner-up's maximum, capped
/// at its own maximum; never below the starting price; lifted to the reserve when the winner's
/// maximum reaches it.
fn reference_price(
    starting: Money,
    reserve: Option<Money>,
    increment: Increment,
    bids: &[(UserId, Money)],
) -> Option<(UserId, Money)> {
    let mut latest: BTreeMap<UserId, (Money, usize)> = BTreeMap::new();
    for (order, (user, max)) in bids.iter().enumerate() {
        latest.insert(*user, (*max, order));
    }
    let mut ranked: Vec<(UserId, Money, usize)> = latest
        .into_iter()
        .map(|(user, (max, order))| (user, max, order))
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)));
    let (winner, winner_max, _) = *ranked.first()?;
    let mut price = match ranked.get(1) {
        None => starting,
        Some((_, second, _)) if *second == winner_max => winner_max,
        Some((_, second, _)) => winner_max.min(second.plus(increment.at(*second))),
    };
    if let Some(reserve) = reserve {
        if winner_max >= reserve && price < reserve {
            price = reserve;
        }
    }
    Some((winner, price))
}

/// RULES.md, rule 17: a high bidder who raises their own maximum does not move the price (only
/// later challengers meet the new maximum). The classic second-price rule re-prices at once, so the
/// reference comparison leaves such raises out; `proxy_by_the_high_bidder_must_exceed_the_max_and
/// _leaves_the_price` in `rules.rs` covers them.
fn raises_own_maximum(world: &World, ids: &[AuctionId], action: &Action) -> bool {
    match *action {
        Action::Proxy {
            auction, bidder: b, ..
        } => world.auction(ids[auction]).high_bidder() == Some(bidder(b)),
        _ => false,
    }
}

fn replay_is_identical(world: &World) -> Result<(), TestCaseError> {
    let machine = StateMachine::new(world.machine.group());
    let mut replica = MemKv::new();
    for command in &world.log {
        machine
            .apply(&mut replica, command)
            .expect("memory store never fails");
    }
    prop_assert!(
        replica == world.kv,
        "the same log applied twice gives byte-identical state"
    );
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(400)
}

proptest! {
    // 400 cases by default; `PROPTEST_CASES=20000` for a longer search.
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_after_every_command_and_replay_is_identical(
        listings in prop::collection::vec(listing(), AUCTIONS),
        actions in prop::collection::vec(action(false), 1..80),
    ) {
        let mut world = World::shard();
        let ids: Vec<AuctionId> = listings.iter().map(|listing| create(&mut world, listing)).collect();
        let mut tracked: Vec<Tracked> = ids.iter().map(|_| Tracked::default()).collect();
        for action in &actions {
            run_action(&mut world, &ids, action, &mut tracked);
            check_invariants(&world, &ids, &mut tracked)?;
        }
        replay_is_identical(&world)?;
    }

    #[test]
    fn proxy_only_auctions_end_at_the_second_price(
        listings in prop::collection::vec(listing(), AUCTIONS),
        actions in prop::collection::vec(action(true), 1..40),
    ) {
        let mut world = World::shard();
        let ids: Vec<AuctionId> = listings.iter().map(|listing| create(&mut world, listing)).collect();
        let mut tracked: Vec<Tracked> = ids.iter().map(|_| Tracked::default()).collect();
        for action in &actions {
            if raises_own_maximum(&world, &ids, action) {
                continue;
            }
            run_action(&mut world, &ids, action, &mut tracked);
        }
        for (id, tracked) in ids.iter().zip(&tracked) {
            let auction = world.auction(*id);
            let expected = reference_price(auction.rules.starting, auction.rules.reserve, auction.rules.increment, &tracked.accepted_proxies);
            let actual = auction.pricing.high.map(|high| high.bidder).zip(auction.pricing.price);
            prop_assert_eq!(actual, expected, "proxies {:?}", tracked.accepted_proxies);
        }
    }
}
