//! A small world for scenario and property tests: one group on a `MemKv`, a settable clock and
//! helpers that read like the rules ("alice bids 55", "time passes").
#![allow(dead_code)]

use auction_statemachine::command::{AntiSnipeSpec, NewAuction, NewUser, Op};
use auction_statemachine::ids::RequestId;
use auction_statemachine::outcome::{Applied, BidOutcome, Outcome};
use auction_statemachine::{
    query, Auction, AuctionId, Command, MemKv, Notification, Rejection, StateMachine, UserId,
};
use uuid::Uuid;

/// 2026-01-01T00:00:00Z.
pub const T0: i64 = 1_767_225_600_000;
pub const SECOND: i64 = 1_000;
pub const MINUTE: i64 = 60 * SECOND;
pub const HOUR: i64 = 60 * MINUTE;

pub const SELLER: UserId = UserId(Uuid::from_u128(0x5e11e4));
pub const ALICE: UserId = UserId(Uuid::from_u128(0xa11ce));
pub const BOB: UserId = UserId(Uuid::from_u128(0xb0b));
pub const CAROL: UserId = UserId(Uuid::from_u128(0xca401));
pub const ADMIN: UserId = UserId(Uuid::from_u128(0xad814));

pub struct World {
    pub machine: StateMachine,
    pub kv: MemKv,
    pub now: i64,
    next_request: u128,
    pub log: Vec<Command>,
}

impl World {
    pub fn shard() -> World {
        World::group(1)
    }

    pub fn meta() -> World {
        World::group(0)
    }

    pub fn group(group: u32) -> World {
        World {
            machine: StateMachine::new(group),
            kv: MemKv::new(),
            now: T0,
            next_request: 1,
            log: Vec::new(),
        }
    }

    pub fn advance(&mut self, ms: i64) {
        self.now += ms;
    }

    pub fn command(&mut self, op: Op, key: Option<&str>) -> Command {
        self.next_request += 1;
        Command {
            ts_ms: self.now,
            request_id: RequestId(Uuid::from_u128(0x1000_0000 + self.next_request)),
            idempotency_key: key.map(str::to_owned),
            op,
        }
    }

    pub fn apply(&mut self, command: Command) -> Applied {
        self.log.push(command.clone());
        self.machine
            .apply(&mut self.kv, &command)
            .expect("memory store never fails")
    }

    pub fn run(&mut self, op: Op) -> Applied {
        let command = self.command(op, None);
        self.apply(command)
    }

    pub fn run_keyed(&mut self, op: Op, key: &str) -> Applied {
        let command = self.command(op, Some(key));
        self.apply(command)
    }

    /// Creates an auction by SELLER: starting 10.00, one hour, defaults otherwise.
    pub fn create(&mut self, edit: impl FnOnce(&mut NewAuction)) -> AuctionId {
        let id = AuctionId(Uuid::from_u128(0xa0c7_0000 + self.next_request));
        let mut new = new_auction(id);
        edit(&mut new);
        match self.run(Op::CreateAuction(new)).result {
            Ok(Outcome::Auction(auction)) => auction.id,
            other => panic!("auction creation failed: {other:?}"),
        }
    }

    pub fn try_create(&mut self, edit: impl FnOnce(&mut NewAuction)) -> Result<Outcome, Rejection> {
        let id = AuctionId(Uuid::from_u128(0xa0c7_0000 + self.next_request));
        let mut new = new_auction(id);
        edit(&mut new);
        self.run(Op::CreateAuction(new)).result
    }

    pub fn bid(
        &mut self,
        auction: AuctionId,
        bidder: UserId,
        amount: &str,
    ) -> Result<BidOutcome, Rejection> {
        bid_result(self.run(Op::PlaceBid {
            auction_id: auction,
            bidder,
            amount: amount.to_owned(),
        }))
    }

    pub fn proxy(
        &mut self,
        auction: AuctionId,
        bidder: UserId,
        max: &str,
    ) -> Result<BidOutcome, Rejection> {
        bid_result(self.run(Op::PlaceProxyBid {
            auction_id: auction,
            bidder,
            max_amount: max.to_owned(),
        }))
    }

    pub fn buy_now(&mut self, auction: AuctionId, buyer: UserId) -> Result<BidOutcome, Rejection> {
        bid_result(self.run(Op::BuyNow {
            auction_id: auction,
            buyer,
        }))
    }

    pub fn tick(&mut self) -> Applied {
        self.run(Op::Tick)
    }

    pub fn auction(&self, id: AuctionId) -> Auction {
        query::auction(&self.kv, id)
            .expect("read")
            .expect("auction exists")
    }

    pub fn price(&self, id: AuctionId) -> String {
        self.auction(id)
            .pricing
            .price
            .map(|price| price.to_string())
            .unwrap_or_default()
    }

    /// The bid history oldest first, as `(amount, bidder, is_proxy)`.
    pub fn history(&self, id: AuctionId) -> Vec<(String, UserId, bool)> {
        let mut steps = query::bid_history(&self.kv, id, None, 500).expect("read");
        steps.reverse();
        steps
            .into_iter()
            .map(|step| (step.amount.to_string(), step.bidder_id, step.is_proxy))
            .collect()
    }

    pub fn notifications(&self, user: UserId) -> Vec<Notification> {
        query::notifications(&self.kv, user, None, 500).expect("read")
    }

    pub fn notification_kinds(&self, user: UserId) -> Vec<&'static str> {
        let mut kinds: Vec<_> = self
            .notifications(user)
            .iter()
            .map(|n| n.kind.as_str())
            .collect();
        kinds.reverse();
        kinds
    }

    pub fn ban_in_shard(&mut self, user: UserId) {
        let applied = self.run(Op::SyncBan { user, banned: true });
        assert!(applied.result.is_ok(), "{applied:?}");
    }

    pub fn register(&mut self, id: UserId, email: &str) -> Result<Outcome, Rejection> {
        self.run(Op::RegisterUser(NewUser {
            user_id: id,
            email: email.to_owned(),
            display_name: "Someone".to_owned(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        }))
        .result
    }
}

pub fn new_auction(id: AuctionId) -> NewAuction {
    NewAuction::lasting(id, SELLER, "Vintage watch", "10.00", 3_600)
}

pub fn no_anti_snipe() -> Option<AntiSnipeSpec> {
    Some(AntiSnipeSpec {
        window_seconds: 0,
        extension_seconds: 0,
    })
}

pub fn bid_result(applied: Applied) -> Result<BidOutcome, Rejection> {
    match applied.result {
        Ok(Outcome::Bid(outcome)) => Ok(outcome),
        Ok(other) => panic!("a bid answered {other:?}"),
        Err(rejection) => Err(rejection),
    }
}

pub fn code<T: std::fmt::Debug>(result: Result<T, Rejection>) -> &'static str {
    match result {
        Ok(value) => panic!("expected a rejection, got {value:?}"),
        Err(rejection) => rejection.code(),
    }
}
