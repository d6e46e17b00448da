//! Histories recorded from a real sequential run with random, overlapping invoke/complete
//! intervals around each operation's linearization point: always linearizable, and never once a
//! read is corrupted beyond what any state could show.

use auction_jepsen::{
    check_history, check_run, replica_digest, Completion, Event, EventKind, History,
    LinearizabilityConfig, ObservedAuction, OkValue, Operation, Verdict,
};
use auction_statemachine::command::{AntiSnipeSpec, Op};
use auction_statemachine::ids::{AuctionId, UserId};
use auction_statemachine::money::Money;
use proptest::prelude::*;
use uuid::Uuid;

use crate::common::*;

const AUCTIONS: usize = 2;
const BIDDERS: u128 = 4;
/// Distance between two linearization points on the history's clock.
const SPACING: u64 = 100;

fn bidder(index: u8) -> UserId {
    UserId(Uuid::from_u128(0xb1d0 + u128::from(index) % BIDDERS))
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
    Read {
        auction: usize,
    },
    Advance {
        seconds: i64,
    },
    Tick,
}

/// How the client heard of an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Ok,
    /// Applied, but the client timed out (the leader's stamp is known).
    Info,
    /// Applied, and the history ends before the client hears back.
    Pending,
    /// Refused before proposing: not applied.
    Fail,
}

fn fate(roll: u8) -> Fate {
    match roll {
        0 => Fate::Info,
        1 => Fate::Pending,
        2 => Fate::Fail,
        _ => Fate::Ok,
    }
}

fn action() -> impl Strategy<Value = Action> {
    let cents = prop_oneof![100i64..3_000, (1i64..80).prop_map(|whole| whole * 100)];
    prop_oneof![
        5 => (0..AUCTIONS, any::<u8>(), cents.clone()).prop_map(|(auction, bidder, cents)| Action::Bid { auction, bidder, cents }),
        4 => (0..AUCTIONS, any::<u8>(), cents).prop_map(|(auction, bidder, cents)| Action::Proxy { auction, bidder, cents }),
        1 => (0..AUCTIONS, any::<u8>()).prop_map(|(auction, bidder)| Action::BuyNow { auction, bidder }),
        1 => (0..AUCTIONS, any::<u8>()).prop_map(|(auction, bidder)| Action::Watch { auction, bidder }),
        4 => (0..AUCTIONS).prop_map(|auction| Action::Read { auction }),
        2 => (0i64..600).prop_map(|seconds| Action::Advance { seconds }),
        1 => Just(Action::Tick),
    ]
}

/// One recorded operation: its interval around its linearization point and its completion.
struct Planned {
    operation: Operation,
    invoke_at: u64,
    complete_at: u64,
    completion: Option<Completion>,
}

/// Runs the actions on a real replica and records each operation with the interval and fate
/// the test chose; returns the history and the replica.
fn record(anti_snipe: [bool; AUCTIONS], steps: &[(Action, u8, u64, u64)]) -> (History, Bench) {
    let mut bench = Bench::new();
    let mut planned: Vec<Planned> = Vec::new();
    let ids: Vec<AuctionId> = (0..AUCTIONS).map(|n| auction_id(n as u128)).collect();
    for (n, id) in ids.iter().enumerate() {
        let mut new = new_auction(*id);
        new.buy_now_price = Some("60.00".to_owned());
        new.duration_seconds = Some(1_800 + 600 * n as i64);
        if anti_snipe[n] {
            new.anti_snipe = Some(AntiSnipeSpec {
                window_seconds: 120,
                extension_seconds: 120,
            });
        }
        let write = bench.request(Op::CreateAuction(new));
        let answer = bench.apply(&write);
        assert!(answer.result.is_ok(), "{answer:?}");
        plan(
            &mut planned,
            Operation::write(write),
            Some(ok(&answer)),
            (0, 0),
        );
    }
    let mut part_clock = [T0; AUCTIONS];
    for (action, roll, early, late) in steps {
        let operation = match operation_of(&mut bench, &ids, action) {
            Some(operation) => operation,
            None => continue,
        };
        let mut fate = fate(*roll);
        let auction = match operation.scope() {
            auction_jepsen::Scope::Auction(id) => ids.iter().position(|known| *known == id),
            _ => None,
        };
        if fate == Fate::Pending && auction.is_none_or(|n| part_clock[n] != bench.now) {
            // Without a stamp the model applies an unknown write at the earliest time it could
            // have taken effect (the last time applied in its auction's part); its true time
            // can be observed later (a watch's or a step's time, an extension), so a write
            // that took effect later must record its stamp.
            fate = Fate::Info;
        }
        let completion = run(&mut bench, &operation, fate);
        if let (Some(n), false) = (auction, operation.is_read() || fate == Fate::Fail) {
            part_clock[n] = bench.now;
        }
        plan(&mut planned, operation, completion, (*early, *late));
    }
    (into_history(planned), bench)
}

fn ok(answer: &Answer) -> Completion {
    Completion::Ok(OkValue::Write {
        result: answer.result.clone(),
        effective_ts: answer.effective_ts,
    })
}

fn operation_of(bench: &mut Bench, ids: &[AuctionId], action: &Action) -> Option<Operation> {
    let amount = |cents: i64| Money::from_cents(cents).to_string();
    let op = match *action {
        Action::Advance { seconds } => {
            bench.advance(seconds * SECOND);
            return None;
        }
        Action::Tick => {
            bench.tick();
            return None;
        }
        Action::Read { auction } => {
            return Some(Operation::Read {
                auction_id: ids[auction],
            })
        }
        Action::Bid {
            auction,
            bidder: b,
            cents,
        } => bid(ids[auction], bidder(b), &amount(cents)),
        Action::Proxy {
            auction,
            bidder: b,
            cents,
        } => proxy(ids[auction], bidder(b), &amount(cents)),
        Action::BuyNow { auction, bidder: b } => Op::BuyNow {
            auction_id: ids[auction],
            buyer: bidder(b),
        },
        Action::Watch { auction, bidder: b } => Op::Watch {
            auction_id: ids[auction],
            user: bidder(b),
        },
    };
    Some(Operation::write(bench.request(op)))
}

/// Applies (or not) the operation at its linearization point and says how it completed.
fn run(bench: &mut Bench, operation: &Operation, fate: Fate) -> Option<Completion> {
    let fail = Completion::Fail {
        reason: "refused".to_owned(),
    };
    match (operation, fate) {
        (_, Fate::Fail) => Some(fail),
        (Operation::Read { auction_id }, Fate::Ok) => Some(Completion::Ok(OkValue::Read {
            auction: bench.observe(*auction_id),
        })),
        (Operation::Read { .. }, _) => None,
        (Operation::Write(write), fate) => {
            let answer = bench.apply(write);
            match fate {
                Fate::Ok => Some(ok(&answer)),
                Fate::Info => Some(Completion::Info {
                    reason: "timed out".to_owned(),
                    proposed_ts: Some(answer.effective_ts),
                }),
                _ => None,
            }
        }
    }
}

fn plan(
    planned: &mut Vec<Planned>,
    operation: Operation,
    completion: Option<Completion>,
    (early, late): (u64, u64),
) {
    let point = SPACING * (planned.len() as u64 + 2);
    planned.push(Planned {
        operation,
        invoke_at: point - early.min(point),
        complete_at: point + late,
        completion,
    });
}

/// Orders the events by clock; at equal times invokes go first (more overlap, still valid).
fn into_history(planned: Vec<Planned>) -> History {
    let mut timed: Vec<(u64, u8, usize, Event)> = Vec::new();
    for (process, op) in planned.into_iter().enumerate() {
        let process_id = process as u64;
        timed.push((
            op.invoke_at,
            0,
            process,
            Event {
                process: process_id,
                time: op.invoke_at,
                kind: EventKind::Invoke(op.operation),
            },
        ));
        if let Some(completion) = op.completion {
            timed.push((
                op.complete_at,
                1,
                process,
                Event {
                    process: process_id,
                    time: op.complete_at,
                    kind: EventKind::Complete(completion),
                },
            ));
        }
    }
    timed.sort_by_key(|(time, order, process, _)| (*time, *order, *process));
    History::from_events(timed.into_iter().map(|(.., event)| event).collect())
}

/// Replaces the value of the `nth` acknowledged read of a found auction with one no state can
/// have; returns that read's operation id (its process).
fn corrupt_a_read(history: &History, nth: usize) -> Option<(History, u64)> {
    let mut events = history.events().to_vec();
    let reads: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, event)| {
            matches!(
                &event.kind,
                EventKind::Complete(Completion::Ok(OkValue::Read { auction: Some(_) }))
            )
        })
        .map(|(index, _)| index)
        .collect();
    let index = *reads.get(nth % reads.len().max(1))?;
    let event = &mut events[index];
    let process = event.process;
    if let EventKind::Complete(Completion::Ok(OkValue::Read {
        auction: Some(seen),
    })) = &mut event.kind
    {
        *seen = ObservedAuction {
            bid_count: seen.bid_count + 10_000,
            ..seen.clone()
        };
    }
    Some((History::from_events(events), process))
}

fn config() -> LinearizabilityConfig {
    LinearizabilityConfig::default()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn recorded_sequential_runs_are_linearizable(
        anti_snipe in any::<[bool; AUCTIONS]>(),
        steps in prop::collection::vec((action(), 0u8..16, 0u64..250, 0u64..250), 1..60),
    ) {
        let (history, bench) = record(anti_snipe, &steps);
        let digests = [replica_digest(1, "a", bench.kv.iter()), replica_digest(1, "b", bench.kv.iter())];
        let report = check_run(&history, &bench.final_state(), &digests, &config())
            .expect("well-formed history");
        prop_assert!(report.is_valid() && !report.has_unknown(), "{}\n{}", report, history.to_json_lines().unwrap_or_default());
    }

    #[test]
    fn a_read_no_state_explains_is_caught_where_it_happens(
        anti_snipe in any::<[bool; AUCTIONS]>(),
        steps in prop::collection::vec((action(), 0u8..16, 0u64..250, 0u64..250), 1..40),
        nth in any::<usize>(),
    ) {
        let (history, _) = record(anti_snipe, &steps);
        let Some((corrupted, process)) = corrupt_a_read(&history, nth) else {
            return Ok(());
        };
        let checks = check_history(&corrupted, &config()).expect("well-formed history");
        let failures: Vec<_> = checks.iter().filter_map(|check| match &check.verdict {
            Verdict::NotLinearizable { window, .. } => Some(window.culprit),
            _ => None,
        }).collect();
        // Each operation has its own process, and operations are numbered in invoke order.
        let records = corrupted.operations().expect("pairs");
        let culprit = records.iter().find(|record| record.process == process).map(|record| record.id);
        prop_assert_eq!(failures, vec![culprit]);
    }
}

/// A deterministic history on one auction: `count` actions, intervals up to `spread` around
/// points `SPACING` apart (so about `2 * spread / SPACING` operations overlap).
fn long_history(count: usize, spread: u64) -> History {
    let mut seed: u64 = 0x5eed;
    let mut next = move |bound: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % bound
    };
    let mut steps = Vec::new();
    let mut cents = 1_000;
    for _ in 0..count {
        cents += next(300) as i64;
        let bidder = next(4) as u8;
        let action = match next(10) {
            0..=3 => Action::Bid {
                auction: 0,
                bidder,
                cents,
            },
            4..=5 => Action::Proxy {
                auction: 0,
                bidder,
                cents: cents + 500,
            },
            6..=8 => Action::Read { auction: 0 },
            _ => Action::Advance { seconds: 1 },
        };
        steps.push((action, next(16) as u8, next(spread), next(spread)));
    }
    record([true, false], &steps).0
}

fn measure(name: &str, history: &History) -> Vec<auction_jepsen::AuctionCheck> {
    let operations = history.operations().expect("pairs").len();
    let started = std::time::Instant::now();
    let checks = check_history(history, &config()).expect("well-formed");
    let elapsed = started.elapsed();
    for check in checks.iter().filter(|check| check.ops > 1) {
        let verdict = match &check.verdict {
            Verdict::Linearizable => "linearizable".to_owned(),
            Verdict::NotLinearizable { window, .. } => {
                format!("not linearizable (culprit {:?})", window.culprit)
            }
            Verdict::Unknown { reason } => format!("unknown: {reason}"),
        };
        println!(
            "{name}: {} ops on one auction, {} states, {verdict}",
            check.ops, check.states_explored
        );
    }
    println!(
        "{name}: {operations} operations ({} events) checked in {elapsed:?}",
        history.len()
    );
    checks
}

/// Run with `--ignored --nocapture` to see the time checks take; no timing is asserted.
#[test]
#[ignore = "a measurement, not a check"]
fn speed_of_long_and_concurrent_histories() {
    let long = long_history(2_000, 400);
    let checks = measure("long", &long);
    assert!(checks
        .iter()
        .all(|check| check.verdict == Verdict::Linearizable));

    let concurrent = long_history(500, 1_500);
    let checks = measure("concurrent", &concurrent);
    assert!(checks
        .iter()
        .all(|check| check.verdict == Verdict::Linearizable));

    let (corrupted, _) = corrupt_a_read(&concurrent, usize::MAX / 2).expect("has reads");
    let checks = measure("concurrent, one impossible read", &corrupted);
    assert!(checks.iter().any(|check| matches!(
        check.verdict,
        Verdict::NotLinearizable { .. } | Verdict::Unknown { .. }
    )));
}
