//! Apply throughput on the in-memory store, one core: how many bids per second the rules
//! themselves can take, before Raft and RocksDB. Run with `cargo bench -p auction-statemachine`.
//!
//! `manual_bid/fresh` and `manual_bid/after_100k_bids` should be about equal: an auction loads in
//! O(1) however long its history is.

use auction_statemachine::command::{Command, NewAuction, Op};
use auction_statemachine::ids::RequestId;
use auction_statemachine::{AuctionId, MemKv, Money, StateMachine, UserId};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use uuid::Uuid;

const T0: i64 = 1_767_225_600_000;
const SELLER: UserId = UserId(Uuid::from_u128(1));
const BIDDERS: [UserId; 2] = [UserId(Uuid::from_u128(2)), UserId(Uuid::from_u128(3))];

/// One shard with one long auction and a counter that makes every bid the next minimum.
struct Bench {
    machine: StateMachine,
    kv: MemKv,
    auction: AuctionId,
    bids: u64,
}

impl Bench {
    fn new() -> Bench {
        let mut bench = Bench {
            machine: StateMachine::new(1),
            kv: MemKv::new(),
            auction: AuctionId(Uuid::from_u128(9)),
            bids: 0,
        };
        let new = NewAuction {
            bid_increment: Some("0.01".to_owned()),
            ..NewAuction::lasting(
                bench.auction,
                SELLER,
                "Benchmark lot",
                "1.00",
                30 * 24 * 3_600,
            )
        };
        bench.apply(Op::CreateAuction(new));
        bench
    }

    fn apply(&mut self, op: Op) {
        self.bids += 1;
        let command = Command {
            ts_ms: T0 + self.bids as i64,
            request_id: RequestId(Uuid::from_u128(u128::from(self.bids) << 64)),
            idempotency_key: None,
            op,
        };
        let applied = self
            .machine
            .apply(&mut self.kv, &command)
            .expect("memory store never fails");
        assert!(
            applied.result.is_ok(),
            "benchmark bid refused: {:?}",
            applied.result
        );
    }

    fn next_manual_bid(&mut self) {
        let amount = Money::from_cents(100 + self.bids as i64).to_string();
        let bidder = BIDDERS[(self.bids % 2) as usize];
        self.apply(Op::PlaceBid {
            auction_id: self.auction,
            bidder,
            amount,
        });
    }

    fn next_proxy_bid(&mut self) {
        let max = Money::from_cents(100 + 3 * self.bids as i64).to_string();
        let bidder = BIDDERS[(self.bids % 2) as usize];
        self.apply(Op::PlaceProxyBid {
            auction_id: self.auction,
            bidder,
            max_amount: max,
        });
    }
}

fn manual_bids(c: &mut Criterion) {
    let mut group = c.benchmark_group("manual_bid");
    group.throughput(Throughput::Elements(1));
    let mut fresh = Bench::new();
    group.bench_function("fresh", |b| b.iter(|| fresh.next_manual_bid()));
    let mut deep = Bench::new();
    for _ in 0..100_000 {
        deep.next_manual_bid();
    }
    group.bench_function("after_100k_bids", |b| b.iter(|| deep.next_manual_bid()));
    group.finish();
}

fn proxy_bids(c: &mut Criterion) {
    let mut group = c.benchmark_group("proxy_bid");
    group.throughput(Throughput::Elements(1));
    let mut war = Bench::new();
    group.bench_function("alternating_maxima", |b| b.iter(|| war.next_proxy_bid()));
    group.finish();
}

criterion_group!(benches, manual_bids, proxy_bids);
criterion_main!(benches);
