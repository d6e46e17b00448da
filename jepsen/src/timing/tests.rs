//! Each timing check passes a clean short auction with anti-sniping and fails a history or a
//! final state that breaks it.

use auction_statemachine::command::{AntiSnipeSpec, NewAuction, Op};
use auction_statemachine::ids::{AuctionId, RequestId, TimestampMs, UserId};
use auction_statemachine::{MemKv, Phase, StateMachine};
use uuid::Uuid;

use super::*;
use crate::history::{Completion, WriteRequest};

const EPOCH: TimestampMs = 1_767_225_600_000;
const SELLER: UserId = UserId(Uuid::from_u128(0x5e11e4));
const ALICE: UserId = UserId(Uuid::from_u128(0xa11ce));
const BOB: UserId = UserId(Uuid::from_u128(0xb0b));

fn auction() -> AuctionId {
    AuctionId(Uuid::from_u128(0xa0c7))
}

/// One replica whose clock is the history's clock plus `EPOCH`, and the history.
struct Lab {
    machine: StateMachine,
    kv: MemKv,
    history: History,
    requests: u128,
}

impl Lab {
    fn new() -> Lab {
        Lab {
            machine: StateMachine::new(1),
            kv: MemKv::new(),
            history: History::new(),
            requests: 0,
        }
    }

    /// A write invoked at `invoked`, stamped `stamp` ms after it, answered at `completed`.
    fn write(&mut self, invoked: u64, stamp: i64, completed: u64, op: Op) {
        self.requests += 1;
        let write = WriteRequest {
            request_id: RequestId(Uuid::from_u128(self.requests)),
            idempotency_key: None,
            op,
        };
        self.history
            .invoke(1, invoked, Operation::write(write.clone()));
        let ts = EPOCH + i64::try_from(invoked).expect("small") + stamp;
        let applied = self
            .machine
            .apply(&mut self.kv, &write.command(ts))
            .expect("memory store");
        self.history.complete(
            1,
            completed,
            Completion::Ok(OkValue::Write {
                result: applied.result,
                effective_ts: applied.effective_ts,
            }),
        );
    }

    fn bid(&mut self, at: u64, bidder: UserId, amount: &str) {
        let op = Op::PlaceBid {
            auction_id: auction(),
            bidder,
            amount: amount.to_owned(),
        };
        self.write(at, 1, at + 5, op);
    }

    fn tick(&mut self, at: u64) {
        let command = auction_statemachine::Command {
            ts_ms: EPOCH + i64::try_from(at).expect("small"),
            request_id: RequestId(Uuid::nil()),
            idempotency_key: None,
            op: Op::Tick,
        };
        self.machine.apply(&mut self.kv, &command).expect("tick");
    }

    fn records(&self) -> Vec<OpRecord> {
        self.history.operations().expect("well-formed")
    }

    fn final_state(&self) -> FinalState {
        let mut state = FinalState::new();
        state.read_all(&self.kv).expect("read");
        state
    }
}

fn config(healed_at: u64, observed_at: u64) -> TimingConfig {
    TimingConfig {
        epoch_ms: EPOCH,
        skew_ms: 600,
        healed_at,
        observed_at,
        close_within_ms: 5_000,
    }
}

/// A 10-second auction (window 2 s, extension 3 s) with a bid at 3 s, a snipe at 9.5 s that
/// extends it to 12.5 s, a bid at 12 s that extends it to 15 s, and the close at 15.1 s.
fn sniped() -> Lab {
    let mut lab = Lab::new();
    let mut new = NewAuction::lasting(auction(), SELLER, "short lot", "1", 10);
    new.anti_snipe = Some(AntiSnipeSpec {
        window_seconds: 2,
        extension_seconds: 3,
    });
    lab.write(0, 0, 5, Op::CreateAuction(new));
    lab.bid(3_000, ALICE, "5");
    lab.bid(9_499, BOB, "7");
    lab.bid(11_999, ALICE, "9");
    lab.tick(15_100);
    lab
}

fn stored(state: &mut FinalState) -> &mut FinalAuction {
    state.auctions.get_mut(&auction()).expect("the auction")
}

#[test]
fn a_sniped_auction_that_closes_in_time_passes() {
    let lab = sniped();
    let records = lab.records();
    let state = lab.final_state();
    let auction = stored(&mut state.clone()).auction.clone().expect("auction");
    assert_eq!(auction.phase, Phase::Sold);
    assert_eq!(auction.end_time, EPOCH + 15_000);
    for outcome in [
        check_effective_times(&lab.history, &records, &config(0, 16_000)),
        check_endings(&records, &state),
        check_closes_in_time(&state, &config(0, 30_000)),
    ] {
        assert_eq!(outcome.status, crate::CheckStatus::Passed, "{outcome:?}");
        assert!(outcome.checked > 0, "{outcome:?}");
    }
}

#[test]
fn a_stamp_from_a_clock_far_ahead_is_reported() {
    let mut lab = sniped();
    // A leader 2 s ahead stamps a bid invoked at 13 s: the bid is refused as ended at 15 s, an
    // effective time no real time of the operation explains.
    lab.write(
        13_000,
        2_000,
        13_010,
        Op::PlaceBid {
            auction_id: auction(),
            bidder: BOB,
            amount: "20".to_owned(),
        },
    );
    let outcome = check_effective_times(&lab.history, &lab.records(), &config(0, 20_000));
    assert!(outcome.is_failed(), "{outcome:?}");
    assert!(outcome.details[0].contains("late"), "{outcome:?}");
}

#[test]
fn a_stamp_from_a_clock_far_behind_is_reported() {
    let mut lab = Lab::new();
    let new = NewAuction::lasting(auction(), SELLER, "lot", "1", 60);
    lab.write(5_000, -3_000, 5_010, Op::CreateAuction(new));
    let outcome = check_effective_times(&lab.history, &lab.records(), &config(0, 6_000));
    assert!(outcome.is_failed(), "{outcome:?}");
    assert!(outcome.details[0].contains("early"), "{outcome:?}");
}

#[test]
fn a_step_after_the_end_in_force_is_reported() {
    let lab = sniped();
    let mut state = lab.final_state();
    // Without the first extension the step at 12 s would be after the end (12.5 s is kept).
    let steps = &mut stored(&mut state).steps;
    steps[2].created_at = EPOCH + 12_600;
    let outcome = check_endings(&lab.records(), &state);
    assert!(outcome.is_failed(), "{outcome:?}");
    assert!(
        outcome
            .details
            .iter()
            .any(|detail| detail.contains("at or after the end in force")),
        "{outcome:?}"
    );
}

#[test]
fn an_end_that_the_replay_does_not_give_is_reported() {
    let lab = sniped();
    let mut state = lab.final_state();
    if let Some(auction) = stored(&mut state).auction.as_mut() {
        auction.end_time = EPOCH + 14_000;
    }
    let outcome = check_endings(&lab.records(), &state);
    assert!(outcome.is_failed(), "{outcome:?}");
    assert!(
        outcome
            .details
            .iter()
            .any(|detail| detail.contains("replaying anti-sniping")),
        "{outcome:?}"
    );
}

#[test]
fn a_reported_end_that_is_not_the_end_in_force_is_reported() {
    let mut lab = sniped();
    let mut events = lab.history.events().to_vec();
    for event in &mut events {
        if let crate::EventKind::Complete(Completion::Ok(OkValue::Write {
            result: Ok(Outcome::Bid(bid)),
            ..
        })) = &mut event.kind
        {
            bid.end_time += 1;
        }
    }
    lab.history = History::from_events(events);
    let outcome = check_endings(&lab.records(), &lab.final_state());
    assert!(outcome.is_failed(), "{outcome:?}");
    assert!(
        outcome.details[0].contains("reported the end"),
        "{outcome:?}"
    );
}

#[test]
fn a_close_before_the_end_or_to_the_wrong_winner_is_reported() {
    let lab = sniped();
    let mut early = lab.final_state();
    if let Some(auction) = stored(&mut early).auction.as_mut() {
        auction.closed_at = Some(EPOCH + 14_000);
    }
    let outcome = check_endings(&lab.records(), &early);
    assert!(outcome.is_failed(), "{outcome:?}");
    assert!(outcome.details[0].contains("before its end"), "{outcome:?}");

    let mut unsold = lab.final_state();
    if let Some(auction) = stored(&mut unsold).auction.as_mut() {
        auction.phase = Phase::Unsold;
    }
    assert!(check_endings(&lab.records(), &unsold).is_failed());

    let mut wrong_winner = lab.final_state();
    if let Some(high) = stored(&mut wrong_winner)
        .auction
        .as_mut()
        .and_then(|auction| auction.pricing.high.as_mut())
    {
        high.bidder = BOB;
    }
    let outcome = check_endings(&lab.records(), &wrong_winner);
    assert!(outcome.is_failed(), "{outcome:?}");
    assert!(outcome.details[0].contains("sold to"), "{outcome:?}");
}

#[test]
fn an_auction_left_open_after_healing_is_reported() {
    let mut lab = Lab::new();
    let new = NewAuction::lasting(auction(), SELLER, "lot", "1", 10);
    lab.write(0, 0, 5, Op::CreateAuction(new));
    let state = lab.final_state();
    // Ended at 10 s, healed at 12 s: open at 16 s is fine, open at 18 s is not.
    let fine = check_closes_in_time(&state, &config(12_000, 16_000));
    assert_eq!(fine.status, crate::CheckStatus::Passed, "{fine:?}");
    let late = check_closes_in_time(&state, &config(12_000, 18_000));
    assert!(late.is_failed(), "{late:?}");

    lab.tick(25_000);
    let closed_late = check_closes_in_time(&lab.final_state(), &config(12_000, 30_000));
    assert!(closed_late.is_failed(), "{closed_late:?}");
}
