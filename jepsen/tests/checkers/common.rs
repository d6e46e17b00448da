//! A tiny stand-in for a cluster: one real state machine on a `MemKv` that applies commands in
//! the order a test decides, while the test records invokes and completions in any order.
#![allow(dead_code)]

use auction_jepsen::{
    Completion, FinalState, History, ObservedAuction, OkValue, Operation, ProcessId, WriteRequest,
};
use auction_statemachine::command::{AntiSnipeSpec, NewAuction, Op};
use auction_statemachine::ids::{AuctionId, RequestId, TimestampMs, UserId};
use auction_statemachine::outcome::Outcome;
use auction_statemachine::{query, MemKv, Rejection, StateMachine};
use uuid::Uuid;

/// 2026-01-01T00:00:00Z.
pub const T0: i64 = 1_767_225_600_000;
pub const SECOND: i64 = 1_000;
pub const MINUTE: i64 = 60 * SECOND;

pub const SELLER: UserId = UserId(Uuid::from_u128(0x5e11e4));
pub const ALICE: UserId = UserId(Uuid::from_u128(0xa11ce));
pub const BOB: UserId = UserId(Uuid::from_u128(0xb0b));
pub const CAROL: UserId = UserId(Uuid::from_u128(0xca401));

pub fn auction_id(n: u128) -> AuctionId {
    AuctionId(Uuid::from_u128(0xa0c7_0000 + n))
}

/// A cluster of one replica plus the history its clients record.
pub struct Bench {
    pub machine: StateMachine,
    pub kv: MemKv,
    pub now: TimestampMs,
    pub history: History,
    time: u64,
    next_request: u128,
}

/// What applying a write gave, to be completed later.
#[derive(Clone, Debug)]
pub struct Answer {
    pub result: Result<Outcome, Rejection>,
    pub effective_ts: TimestampMs,
}

impl Bench {
    pub fn new() -> Bench {
        Bench {
            machine: StateMachine::new(1),
            kv: MemKv::new(),
            now: T0,
            history: History::new(),
            time: 0,
            next_request: 0,
        }
    }

    pub fn advance(&mut self, ms: i64) {
        self.now += ms;
    }

    fn tick_clock(&mut self) -> u64 {
        self.time += 1;
        self.time
    }

    pub fn request(&mut self, op: Op) -> WriteRequest {
        self.next_request += 1;
        WriteRequest {
            request_id: RequestId(Uuid::from_u128(0x1000_0000 + self.next_request)),
            idempotency_key: None,
            op,
        }
    }

    pub fn invoke_write(&mut self, process: ProcessId, write: &WriteRequest) {
        let time = self.tick_clock();
        self.history
            .invoke(process, time, Operation::write(write.clone()));
    }

    pub fn invoke_read(&mut self, process: ProcessId, auction_id: AuctionId) {
        let time = self.tick_clock();
        self.history
            .invoke(process, time, Operation::Read { auction_id });
    }

    /// Applies a write to the replica now (its linearization point).
    pub fn apply(&mut self, write: &WriteRequest) -> Answer {
        let applied = self
            .machine
            .apply(&mut self.kv, &write.command(self.now))
            .expect("memory store never fails");
        Answer {
            result: applied.result,
            effective_ts: applied.effective_ts,
        }
    }

    /// Applies the leader's housekeeping (closing due auctions); not a client operation.
    pub fn tick(&mut self) {
        let write = self.request(Op::Tick);
        self.apply(&write);
    }

    pub fn observe(&self, auction_id: AuctionId) -> Option<ObservedAuction> {
        query::auction(&self.kv, auction_id)
            .expect("read")
            .as_ref()
            .map(ObservedAuction::of)
    }

    pub fn complete_ok(&mut self, process: ProcessId, answer: &Answer) {
        let time = self.tick_clock();
        self.history.complete(
            process,
            time,
            Completion::Ok(OkValue::Write {
                result: answer.result.clone(),
                effective_ts: answer.effective_ts,
            }),
        );
    }

    pub fn complete_read(&mut self, process: ProcessId, auction: Option<ObservedAuction>) {
        let time = self.tick_clock();
        self.history
            .complete(process, time, Completion::Ok(OkValue::Read { auction }));
    }

    pub fn complete_fail(&mut self, process: ProcessId) {
        let time = self.tick_clock();
        self.history.complete(
            process,
            time,
            Completion::Fail {
                reason: "refused".to_owned(),
            },
        );
    }

    pub fn complete_info(&mut self, process: ProcessId, proposed_ts: Option<TimestampMs>) {
        let time = self.tick_clock();
        self.history.complete(
            process,
            time,
            Completion::Info {
                reason: "timed out".to_owned(),
                proposed_ts,
            },
        );
    }

    /// Invokes, applies and completes a write with no concurrency.
    pub fn write(&mut self, process: ProcessId, op: Op) -> Answer {
        let write = self.request(op);
        self.invoke_write(process, &write);
        let answer = self.apply(&write);
        self.complete_ok(process, &answer);
        answer
    }

    /// Invokes and completes a read with no concurrency.
    pub fn read(&mut self, process: ProcessId, auction_id: AuctionId) -> Option<ObservedAuction> {
        self.invoke_read(process, auction_id);
        let seen = self.observe(auction_id);
        self.complete_read(process, seen.clone());
        seen
    }

    pub fn create(&mut self, process: ProcessId, auction_id: AuctionId) -> Answer {
        self.write(process, Op::CreateAuction(new_auction(auction_id)))
    }

    pub fn final_state(&self) -> FinalState {
        let mut state = FinalState::new();
        state.read_all(&self.kv).expect("read final state");
        state
    }
}

pub fn new_auction(auction_id: AuctionId) -> NewAuction {
    NewAuction {
        anti_snipe: Some(AntiSnipeSpec {
            window_seconds: 0,
            extension_seconds: 0,
        }),
        ..NewAuction::lasting(auction_id, SELLER, "Vintage watch", "10.00", 3_600)
    }
}

pub fn bid(auction_id: AuctionId, bidder: UserId, amount: &str) -> Op {
    Op::PlaceBid {
        auction_id,
        bidder,
        amount: amount.to_owned(),
    }
}

pub fn proxy(auction_id: AuctionId, bidder: UserId, max: &str) -> Op {
    Op::PlaceProxyBid {
        auction_id,
        bidder,
        max_amount: max.to_owned(),
    }
}
