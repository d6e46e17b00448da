//! What applying a command produced: the outcome the client gets back (recorded for idempotent
//! retries) and the events every replica emits for live streams.
//!
//! Each node publishes the events of its own applies to its local subscribers, which is why a
//! stream on any node sees bids taken by any other node. The auction events are also kept, in a
//! bounded per-auction log numbered by `seq` (see `auction::event_log`), so a stream that
//! reconnects, to any node, can be replayed what it missed; notifications are stored anyway.

use serde::{Deserialize, Serialize};

use crate::error::Rejection;
use crate::ids::{AuctionId, RequestId, TimestampMs, UserId};
use crate::model::{Auction, AuctionImages, BidStep, Notification, Session, Status, User, Watch};
use crate::money::Money;

/// The answer to a bid, a proxy bid or a purchase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BidOutcome {
    pub bid_id: RequestId,
    pub auction_id: AuctionId,
    pub bidder_id: UserId,
    /// Whether the bidder is the high bidder after this bid.
    pub winning: bool,
    /// The amount or maximum the bidder sent.
    pub amount: Money,
    pub current_price: Money,
    pub high_bidder_id: UserId,
    pub end_time: TimestampMs,
    pub bid_count: u32,
    /// The history entries this bid recorded, oldest first.
    pub steps: Vec<BidStep>,
}

/// A successful command's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Created, updated, cancelled, extended or bought: the auction as it now is.
    Auction(Box<Auction>),
    Bid(BidOutcome),
    Watch(Watch),
    /// An auction's images after adding, removing or ordering them.
    Images(AuctionImages),
    Unwatched {
        auction_id: AuctionId,
    },
    Notification(Notification),
    User(Box<User>),
    Session(Session),
    /// Nothing to report (a logout, a ban copied into a shard).
    Done,
    Ticked {
        closed: u32,
        purged: u32,
    },
}

/// The result of applying one command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub result: Result<Outcome, Rejection>,
    /// True when this is the recorded result of an earlier identical request.
    pub replayed: bool,
    /// `max(command ts, last applied ts)`: the time the command took effect.
    pub effective_ts: TimestampMs,
    pub events: Vec<Event>,
}

/// Something subscribers may want to hear about.
///
/// `seq` numbers the events of one auction 1, 2, 3, ... in apply order; it is the same on every
/// replica, so it names an event across nodes (the SSE event id of the auction stream).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    BidPlaced {
        auction_id: AuctionId,
        seq: u64,
        bid: BidOutcome,
        ts: TimestampMs,
    },
    AuctionExtended {
        auction_id: AuctionId,
        seq: u64,
        end_time: TimestampMs,
        ts: TimestampMs,
    },
    AuctionEnded {
        auction_id: AuctionId,
        seq: u64,
        status: Status,
        winner_id: Option<UserId>,
        final_price: Option<Money>,
        ts: TimestampMs,
    },
    Notification(Notification),
}

impl Event {
    /// The auction and the sequence number of an auction event; `None` for a notification.
    pub fn auction_seq(&self) -> Option<(AuctionId, u64)> {
        match self {
            Event::BidPlaced {
                auction_id, seq, ..
            }
            | Event::AuctionExtended {
                auction_id, seq, ..
            }
            | Event::AuctionEnded {
                auction_id, seq, ..
            } => Some((*auction_id, *seq)),
            Event::Notification(_) => None,
        }
    }
}
