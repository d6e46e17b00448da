//! The auction cluster's openraft type config: log entries carry an auction
//! [`Command`](auction_statemachine::Command), applying one answers a [`Response`].
//!
//! Node ids are `u64` and nodes are [`openraft::BasicNode`] (the node-to-node gRPC address),
//! openraft's defaults, on the tokio runtime wrapped in openraft's [`SeededRuntime`]: every
//! random choice openraft makes (election time-outs) comes from a seed, so the simulator
//! reproduces a run from its seed. Each group's `Raft` must be created inside
//! [`SeededRuntime::scope`] (the host does it; production seeds from the OS, the simulator from
//! the run's seed); every task openraft spawns derives its own seed from there.

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

/// The async runtime of every group: tokio, with openraft's seeded RNG.
pub type SeededRuntime = openraft_rt::deterministic_rng::DeterministicRng<openraft::TokioRuntime>;

openraft::declare_raft_types!(
    /// The type config of every Raft group of the auction cluster.
    pub AuctionRaft:
        D = auction_statemachine::Command,
        R = Response,
        NodeId = crate::NodeId,
        AsyncRuntime = SeededRuntime,
);
