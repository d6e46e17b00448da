//! The auction cluster's openraft type config: log entries carry an auction
//! [`Command`](auction_statemachine::Command), applying one answers a [`Response`].
//!
//! Node ids are `u64` and nodes are [`openraft::BasicNode`] (the node-to-node gRPC address),
//! openraft's defaults, on the tokio runtime.

use auction_statemachine::{Outcome, Rejection, TimestampMs};
use serde::{Deserialize, Serialize};

/// What a committed and applied entry answers to the proposer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub result: Result<Outcome, Rejection>,
    /// The recorded result of an earlier identical request (idempotent retry).
    pub replayed: bool,
    /// The time the command took effect: `max(command ts, last applied ts)`.
    pub effective_ts: TimestampMs,
}

impl Response {
    /// The answer to a blank or membership entry, which carry no command.
    pub fn no_command() -> Response {
        Response {
            result: Ok(Outcome::Done),
            replayed: false,
            effective_ts: 0,
        }
    }
}

openraft::declare_raft_types!(
    /// The type config of every Raft group of the auction cluster.
    pub AuctionRaft:
        D = auction_statemachine::Command,
        R = Response,
);
