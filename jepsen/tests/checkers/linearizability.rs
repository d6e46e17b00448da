//! Hand-made histories for the per-auction linearizability checker.

use auction_jepsen::{check_history, AuctionCheck, LinearizabilityConfig, Verdict};
use auction_statemachine::command::Op;
use auction_statemachine::ids::AuctionId;

use crate::common::*;

fn verdicts(bench: &Bench) -> Vec<AuctionCheck> {
    check_history(&bench.history, &LinearizabilityConfig::default()).expect("well-formed history")
}

fn only_verdict(bench: &Bench) -> Verdict {
    let mut checks = verdicts(bench);
    assert_eq!(checks.len(), 1, "one auction in {checks:?}");
    checks.remove(0).verdict
}

fn assert_linearizable(bench: &Bench) {
    let verdict = only_verdict(bench);
    assert_eq!(verdict, Verdict::Linearizable, "{verdict:#?}");
}

/// Returns the culprit op id of a violation.
fn assert_not_linearizable(bench: &Bench) -> Option<usize> {
    match only_verdict(bench) {
        Verdict::NotLinearizable {
            window,
            explanation,
        } => {
            eprintln!("{window:#?}\n{explanation}");
            assert!(!explanation.is_empty());
            assert!(window
                .culprit
                .is_none_or(|culprit| window.ops.contains(&culprit)));
            window.culprit
        }
        other => panic!("expected a violation, got {other:#?}"),
    }
}

/// An auction with a few bids; returns its id.
fn started(bench: &mut Bench) -> AuctionId {
    let id = auction_id(1);
    bench.create(0, id);
    bench.advance(SECOND);
    id
}

#[test]
fn a_sequential_history_is_linearizable() {
    let mut bench = Bench::new();
    let id = started(&mut bench);
    bench.write(1, bid(id, ALICE, "20"));
    bench.read(3, id);
    bench.advance(SECOND);
    bench.write(2, bid(id, BOB, "25"));
    bench.write(1, proxy(id, ALICE, "40"));
    bench.read(3, id);
    assert_linearizable(&bench);
}

#[test]
fn concurrent_bids_are_linearized_in_the_only_order_that_explains_them() {
    let mut bench = Bench::new();
    let id = started(&mut bench);
    let alice = bench.request(bid(id, ALICE, "20"));
    let bob = bench.request(bid(id, BOB, "25"));
    bench.invoke_write(1, &alice);
    bench.invoke_write(2, &bob);
    // Bob's bid reaches the log first, so Alice's 20 is too low; Alice hears back first.
    let bob_answer = bench.apply(&bob);
    let alice_answer = bench.apply(&alice);
    assert!(alice_answer.result.is_err(), "{alice_answer:?}");
    bench.complete_ok(1, &alice_answer);
    bench.complete_ok(2, &bob_answer);
    bench.read(3, id);
    assert_linearizable(&bench);
}

#[test]
fn a_rejection_that_only_a_later_bid_explains_is_not_linearizable() {
    let mut bench = Bench::new();
    let id = started(&mut bench);
    let alice = bench.request(bid(id, ALICE, "20"));
    let bob = bench.request(bid(id, BOB, "25"));
    // Compute the answers in the order bob, alice, but record that Alice's rejection was
    // acknowledged before Bob's bid was even invoked.
    let bob_answer = bench.apply(&bob);
    let alice_answer = bench.apply(&alice);
    bench.invoke_write(1, &alice);
    bench.complete_ok(1, &alice_answer);
    bench.invoke_write(2, &bob);
    bench.complete_ok(2, &bob_answer);
    let culprit = assert_not_linearizable(&bench);
    assert_eq!(
        culprit,
        Some(1),
        "Alice's rejection (op 1) is the first thing unexplained"
    );
}

#[test]
fn a_stale_read_after_an_acknowledged_bid_is_not_linearizable() {
    let mut bench = Bench::new();
    let id = started(&mut bench);
    let stale = bench.observe(id);
    bench.write(1, bid(id, ALICE, "20"));
    // A read invoked after the bid was acknowledged returns the state from before it.
    bench.invoke_read(2, id);
    bench.complete_read(2, stale);
    let culprit = assert_not_linearizable(&bench);
    assert_eq!(culprit, Some(2));
}

#[test]
fn a_read_concurrent_with_a_bid_may_see_either_state() {
    let mut bench = Bench::new();
    let id = started(&mut bench);
    let before = bench.observe(id);
    let alice = bench.request(bid(id, ALICE, "20"));
    bench.invoke_write(1, &alice);
    bench.invoke_read(2, id);
    let answer = bench.apply(&alice);
    bench.complete_read(2, before);
    bench.complete_ok(1, &answer);
    assert_linearizable(&bench);
}

#[test]
fn an_unknown_bid_may_explain_a_later_read() {
    let mut bench = Bench::new();
    let id = started(&mut bench);
    let alice = bench.request(bid(id, ALICE, "20"));
    bench.invoke_write(1, &alice);
    let stamp = bench.now;
    bench.apply(&alice);
    bench.complete_info(1, Some(stamp));
    bench.read(2, id);
    assert_linearizable(&bench);
}

#[test]
fn an_unknown_bid_without_a_stamp_may_explain_a_later_read() {
    let mut bench = Bench::new();
    let id = started(&mut bench);
    let alice = bench.request(bid(id, ALICE, "20"));
    bench.invoke_write(1, &alice);
    bench.apply(&alice);
    bench.complete_info(1, None);
    bench.read(2, id);
    assert_linearizable(&bench);
}

#[test]
fn an_unknown_bid_may_also_never_happen() {
    let mut bench = Bench::new();
    let id = started(&mut bench);
    let alice = bench.request(bid(id, ALICE, "20"));
    bench.invoke_write(1, &alice);
    bench.complete_info(1, Some(bench.now));
    bench.read(2, id);
    bench.write(3, bid(id, BOB, "15"));
    assert_linearizable(&bench);
}

#[test]
fn a_failed_bid_that_a_read_shows_applied_is_not_linearizable() {
    let mut bench = Bench::new();
    let id = started(&mut bench);
    let alice = bench.request(bid(id, ALICE, "20"));
    bench.invoke_write(1, &alice);
    bench.apply(&alice);
    bench.complete_fail(1);
    bench.read(2, id);
    assert_eq!(assert_not_linearizable(&bench), Some(2));
}

#[test]
fn an_unknown_bid_is_applied_at_most_once() {
    let mut bench = Bench::new();
    let id = started(&mut bench);
    let alice = bench.request(proxy(id, ALICE, "20"));
    bench.invoke_write(1, &alice);
    bench.apply(&alice);
    bench.complete_info(1, Some(bench.now));
    // The read claims two history entries, as if the unknown bid had been applied twice.
    let mut seen = bench.observe(id).expect("auction exists");
    seen.bid_count += 1;
    bench.invoke_read(2, id);
    bench.complete_read(2, Some(seen));
    assert_not_linearizable(&bench);
}

#[test]
fn an_acknowledged_bid_with_a_different_answer_is_not_linearizable() {
    let mut bench = Bench::new();
    let id = started(&mut bench);
    let alice = bench.request(bid(id, ALICE, "20"));
    bench.invoke_write(1, &alice);
    let mut answer = bench.apply(&alice);
    if let Ok(auction_statemachine::outcome::Outcome::Bid(bid)) = &mut answer.result {
        bid.current_price = auction_statemachine::money::Money::from_cents(1_900);
    }
    bench.complete_ok(1, &answer);
    assert_eq!(assert_not_linearizable(&bench), Some(1));
}

#[test]
fn effective_times_must_not_run_backwards() {
    let mut bench = Bench::new();
    let id = started(&mut bench);
    bench.advance(10 * SECOND);
    let first = bench.write(1, bid(id, ALICE, "20"));
    let bob = bench.request(bid(id, BOB, "25"));
    bench.invoke_write(2, &bob);
    let mut answer = bench.apply(&bob);
    // The second bid claims to have taken effect before the first one.
    answer.effective_ts = first.effective_ts - SECOND;
    if let Ok(auction_statemachine::outcome::Outcome::Bid(bid)) = &mut answer.result {
        for step in &mut bid.steps {
            step.created_at = answer.effective_ts;
        }
    }
    bench.complete_ok(2, &answer);
    assert_eq!(assert_not_linearizable(&bench), Some(2));
}

#[test]
fn a_read_may_see_the_leader_close_the_auction() {
    let mut bench = Bench::new();
    let id = started(&mut bench);
    bench.write(1, bid(id, ALICE, "20"));
    bench.advance(2 * 60 * MINUTE);
    bench.tick();
    let closed = bench.read(2, id).expect("auction exists");
    assert_eq!(closed.phase, auction_statemachine::Phase::Sold);
    bench.write(3, bid(id, BOB, "30"));
    bench.read(2, id);
    assert_linearizable(&bench);
}

#[test]
fn a_closed_auction_does_not_reopen() {
    let mut bench = Bench::new();
    let id = started(&mut bench);
    bench.write(1, bid(id, ALICE, "20"));
    let open = bench.observe(id);
    bench.advance(2 * 60 * MINUTE);
    bench.tick();
    bench.read(2, id);
    bench.invoke_read(2, id);
    bench.complete_read(2, open);
    assert_eq!(assert_not_linearizable(&bench), Some(3));
}

#[test]
fn auctions_are_checked_independently() {
    let mut bench = Bench::new();
    let first = auction_id(1);
    let second = auction_id(2);
    bench.create(0, first);
    bench.create(0, second);
    bench.advance(SECOND);
    bench.write(1, bid(first, ALICE, "20"));
    let stale = bench.observe(second);
    bench.write(2, bid(second, BOB, "20"));
    bench.invoke_read(3, second);
    bench.complete_read(3, stale);
    let checks = verdicts(&bench);
    assert_eq!(checks.len(), 2);
    let by_id = |id| {
        checks
            .iter()
            .find(|check| check.auction_id == id)
            .expect("checked")
    };
    assert_eq!(by_id(first).verdict, Verdict::Linearizable);
    assert!(matches!(
        by_id(second).verdict,
        Verdict::NotLinearizable { .. }
    ));
}

#[test]
fn a_ban_applies_to_every_auction_part() {
    let mut bench = Bench::new();
    let id = started(&mut bench);
    bench.write(
        5,
        Op::SyncBan {
            user: ALICE,
            banned: true,
        },
    );
    let answer = bench.write(1, bid(id, ALICE, "20"));
    assert!(answer.result.is_err(), "{answer:?}");
    assert_linearizable(&bench);
}

#[test]
fn the_search_bound_gives_unknown() {
    let mut bench = Bench::new();
    let id = started(&mut bench);
    for cents in 0..10 {
        bench.write(
            1,
            bid(
                id,
                if cents % 2 == 0 { ALICE } else { BOB },
                &format!("{}", 20 + cents),
            ),
        );
    }
    let config = LinearizabilityConfig {
        search_states_max: 5,
        minimize_window: true,
    };
    let checks = check_history(&bench.history, &config).expect("well-formed");
    match &checks[0].verdict {
        Verdict::Unknown { reason } => {
            assert!(reason.contains("search_states_max = 5"), "{reason}")
        }
        other => panic!("expected unknown, got {other:#?}"),
    }
    assert_eq!(checks[0].states_explored, 5);
    // A search that gave up is a failed check, never a pass.
    let outcome = auction_jepsen::report::linearizability_outcome(&checks);
    assert!(outcome.is_failed(), "{outcome:?}");
    assert!(outcome.details[0].contains("gave up"), "{outcome:?}");
}

#[test]
fn many_concurrent_bids_are_sorted_out() {
    // Eight bidders invoke at once; the log order is the reverse of the invoke order.
    let mut bench = Bench::new();
    let id = started(&mut bench);
    let bidders: Vec<_> = (0..8u128)
        .map(|n| auction_statemachine::UserId(uuid::Uuid::from_u128(0xb1d0 + n)))
        .collect();
    let writes: Vec<_> = bidders
        .iter()
        .enumerate()
        .map(|(n, bidder)| bench.request(bid(id, *bidder, &format!("{}", 20 + 5 * n))))
        .collect();
    for (process, write) in writes.iter().enumerate() {
        bench.invoke_write(process as u64 + 1, write);
    }
    let answers: Vec<_> = writes
        .iter()
        .rev()
        .map(|write| bench.apply(write))
        .collect();
    for (process, answer) in answers.iter().rev().enumerate() {
        bench.complete_ok(process as u64 + 1, answer);
    }
    bench.read(20, id);
    assert_linearizable(&bench);
}
