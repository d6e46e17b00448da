//! The final-state checks, replica agreement, invariants and the report.

use auction_jepsen::{
    check_acknowledged_bids, check_invariants, check_no_duplicate_apply, check_replicas_agree,
    check_run, replica_digest, CheckStatus, LinearizabilityConfig, Report, WriteRequest,
};
use auction_statemachine::command::{AuctionChanges, Op};
use auction_statemachine::ids::AuctionId;
use auction_statemachine::money::Money;

use crate::common::*;

/// An auction with bids by Alice (20), Bob (25) and Alice (30).
fn three_bids() -> (Bench, AuctionId) {
    let mut bench = Bench::new();
    let id = auction_id(1);
    bench.create(0, id);
    bench.advance(SECOND);
    bench.write(1, bid(id, ALICE, "20"));
    bench.advance(SECOND);
    bench.write(2, bid(id, BOB, "25"));
    bench.advance(SECOND);
    bench.write(1, bid(id, ALICE, "30"));
    (bench, id)
}

fn records(bench: &Bench) -> Vec<auction_jepsen::OpRecord> {
    bench.history.operations().expect("well-formed")
}

#[test]
fn a_clean_run_passes_every_check() {
    let (mut bench, id) = three_bids();
    bench.read(3, id);
    let digests = [
        replica_digest(1, "a", bench.kv.iter()),
        replica_digest(1, "b", bench.kv.clone().iter()),
    ];
    let report = check_run(
        &bench.history,
        &bench.final_state(),
        &digests,
        &LinearizabilityConfig::default(),
    )
    .expect("well-formed");
    assert!(report.is_valid() && !report.has_unknown(), "{report}");
    assert_eq!(report.counts.ok, 5);
    let text = report.to_string();
    assert!(text.contains("result: VALID"), "{text}");
    let json = report.to_json().expect("serializable");
    let back: Report = serde_json::from_str(&json).expect("parses");
    assert_eq!(back, report);
}

#[test]
fn a_lost_acknowledged_bid_is_reported() {
    let (mut bench, id) = three_bids();
    let lagging = bench.kv.clone();
    bench.advance(SECOND);
    bench.write(2, bid(id, BOB, "40"));
    let complete = check_acknowledged_bids(&records(&bench), &bench.final_state());
    assert_eq!(complete.status, CheckStatus::Passed, "{complete:?}");
    assert_eq!(complete.checked, 4);

    let mut stale = auction_jepsen::FinalState::new();
    stale.read_all(&lagging).expect("read");
    let lost = check_acknowledged_bids(&records(&bench), &stale);
    assert_eq!(lost.status, CheckStatus::Failed);
    assert!(
        lost.details
            .iter()
            .any(|detail| detail.contains("op 4") && detail.contains("missing")),
        "{lost:?}"
    );
}

#[test]
fn a_bid_applied_twice_is_reported() {
    let (bench, id) = three_bids();
    let records = records(&bench);
    let clean = check_no_duplicate_apply(&records, &bench.final_state());
    assert_eq!(clean.status, CheckStatus::Passed, "{clean:?}");

    // A retry of Alice's first request applied again at the end of the history.
    let mut duplicated = bench.final_state();
    let stored = duplicated.auctions.get_mut(&id).expect("auction");
    let mut again = stored.steps[0];
    again.sequence = 4;
    again.amount = Money::from_cents(3_100);
    again.created_at += 5 * SECOND;
    stored.steps.push(again);
    let failed = check_no_duplicate_apply(&records, &duplicated);
    assert_eq!(failed.status, CheckStatus::Failed);
    let text = failed.details.join("\n");
    assert!(text.contains("separate positions"), "{text}");
    assert!(text.contains("reported 1 steps"), "{text}");
}

#[test]
fn a_bid_applied_twice_in_a_row_is_reported() {
    let (bench, id) = three_bids();
    let mut duplicated = bench.final_state();
    let stored = duplicated.auctions.get_mut(&id).expect("auction");
    let mut again = *stored.steps.last().expect("a step");
    again.sequence += 1;
    again.amount = Money::from_cents(3_100);
    again.created_at += SECOND;
    stored.steps.push(again);
    let failed = check_no_duplicate_apply(&records(&bench), &duplicated);
    assert_eq!(failed.status, CheckStatus::Failed, "{failed:?}");
    assert!(failed.details.join("\n").contains("at times"));
}

fn keyed(bench: &mut Bench, op: Op, key: &str) -> WriteRequest {
    let mut write = bench.request(op);
    write.idempotency_key = Some(key.to_owned());
    write
}

#[test]
fn a_retry_with_the_same_key_is_answered_once() {
    let mut bench = Bench::new();
    let id = auction_id(1);
    bench.create(0, id);
    bench.advance(SECOND);
    let first = keyed(&mut bench, bid(id, ALICE, "20"), "k1");
    bench.invoke_write(1, &first);
    bench.complete_info(1, Some(bench.now));
    bench.apply(&first);
    // The client retries under a new request id with the same key: the first result comes back.
    let retry = keyed(&mut bench, bid(id, ALICE, "20"), "k1");
    bench.invoke_write(2, &retry);
    let answer = bench.apply(&retry);
    bench.complete_ok(2, &answer);
    bench.read(3, id);
    let report = check_run(
        &bench.history,
        &bench.final_state(),
        &[],
        &LinearizabilityConfig::default(),
    )
    .expect("well-formed");
    assert!(report.is_valid(), "{report}");
}

#[test]
fn two_requests_under_one_key_that_both_bid_are_reported() {
    let mut bench = Bench::new();
    let id = auction_id(1);
    bench.create(0, id);
    bench.advance(SECOND);
    let first = keyed(&mut bench, bid(id, ALICE, "20"), "k1");
    let second = keyed(&mut bench, bid(id, ALICE, "30"), "k1");
    // The cluster forgot the key and applied both.
    for (process, write) in [(1, &first), (2, &second)] {
        bench.invoke_write(process, write);
        let unkeyed = WriteRequest {
            idempotency_key: None,
            ..write.clone()
        };
        let answer = bench.apply(&unkeyed);
        bench.complete_ok(process, &answer);
        bench.write(3, bid(id, BOB, if process == 1 { "25" } else { "35" }));
    }
    let failed = check_no_duplicate_apply(&records(&bench), &bench.final_state());
    assert_eq!(failed.status, CheckStatus::Failed);
    let text = failed.details.join("\n");
    assert!(
        text.contains("\"k1\"") && text.contains("left bid steps"),
        "{text}"
    );
    assert!(text.contains("different bids"), "{text}");
}

#[test]
fn replicas_with_different_state_are_named() {
    let (bench, _) = three_bids();
    let mut diverged = bench.kv.clone();
    auction_statemachine::KvStore::put(&mut diverged, b"Zextra", b"1").expect("put");
    let same = check_replicas_agree(&[
        replica_digest(1, "a", bench.kv.iter()),
        replica_digest(1, "b", bench.kv.iter()),
    ]);
    assert_eq!(same.status, CheckStatus::Passed);
    let differ = check_replicas_agree(&[
        replica_digest(1, "a", bench.kv.iter()),
        replica_digest(1, "b", bench.kv.iter()),
        replica_digest(1, "c", diverged.iter()),
    ]);
    assert_eq!(differ.status, CheckStatus::Failed);
    assert_eq!(differ.details.len(), 1);
    assert!(
        differ.details[0].starts_with("group 1: replica c "),
        "{differ:?}"
    );
    // Different groups hold different state and are never compared with each other.
    let groups = check_replicas_agree(&[
        replica_digest(1, "a", bench.kv.iter()),
        replica_digest(2, "a", diverged.iter()),
    ]);
    assert_eq!(groups.status, CheckStatus::Passed);
}

#[test]
fn the_digest_is_fnv1a_over_framed_pairs() {
    let empty = replica_digest(1, "e", Vec::<(Vec<u8>, Vec<u8>)>::new());
    assert_eq!(empty.digest, 0xcbf2_9ce4_8422_2325);
    let split_one = replica_digest(1, "x", [(&b"ab"[..], &b"c"[..])]);
    let split_two = replica_digest(1, "y", [(&b"a"[..], &b"bc"[..])]);
    assert_ne!(split_one.digest, split_two.digest);
}

#[test]
fn broken_final_invariants_are_reported() {
    let (bench, id) = three_bids();
    let clean = check_invariants(&records(&bench), &bench.final_state());
    assert_eq!(clean.status, CheckStatus::Passed, "{clean:?}");

    let mut broken = bench.final_state();
    let stored = broken.auctions.get_mut(&id).expect("auction");
    stored.steps[1].amount = Money::from_cents(1_000);
    let auction = stored.auction.as_mut().expect("record");
    auction.bid_count += 1;
    if let Some(high) = auction.pricing.high.as_mut() {
        high.max = Money::from_cents(100);
    }
    let failed = check_invariants(&records(&bench), &broken);
    let text = failed.details.join("\n");
    assert_eq!(failed.status, CheckStatus::Failed);
    assert!(text.contains("do not increase"), "{text}");
    assert!(text.contains("bid count"), "{text}");
    assert!(text.contains("above the high bidder's maximum"), "{text}");
}

#[test]
fn reads_that_go_backwards_are_reported() {
    let (mut bench, id) = three_bids();
    let seen = bench.read(3, id).expect("found");
    let mut older = seen.clone();
    older.bid_count -= 1;
    older.end_time -= MINUTE;
    bench.invoke_read(4, id);
    bench.complete_read(4, Some(older));
    let failed = check_invariants(&records(&bench), &bench.final_state());
    let text = failed.details.join("\n");
    assert!(text.contains("bids after an earlier read"), "{text}");
    assert!(text.contains("end time"), "{text}");
}

#[test]
fn an_edited_end_time_may_move_earlier() {
    let mut bench = Bench::new();
    let id = auction_id(1);
    bench.create(0, id);
    let before = bench.read(3, id).expect("found");
    let edit = Op::UpdateAuction {
        auction_id: id,
        actor: SELLER,
        changes: AuctionChanges {
            end_time: Some(before.end_time - 10 * MINUTE),
            ..AuctionChanges::default()
        },
    };
    let answer = bench.write(0, edit);
    assert!(answer.result.is_ok(), "{answer:?}");
    let after = bench.read(3, id).expect("found");
    assert!(after.end_time < before.end_time);
    let outcome = check_invariants(&records(&bench), &bench.final_state());
    assert_eq!(outcome.status, CheckStatus::Passed, "{outcome:?}");
}
