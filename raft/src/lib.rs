//! Replication for the auction cluster: openraft groups on one shared log store per node, and a
//! tonic transport that multiplexes every group over one connection per peer.
//!
//! A node hosts many Raft groups (group 0 is the meta group, groups 1..=S are auction shards).
//! The storage and transport layers are generic over an openraft
//! [`RaftTypeConfig`](openraft::RaftTypeConfig); [`types`], [`state_machine`] and [`host`] plug
//! the auction state machine into them.
//!
//! Layers, bottom up:
//!
//! - [`codec`]: the one binary encoding (postcard) for log entries on disk and for openraft
//!   messages on the wire.
//! - [`log_store`]: Raft log storage for many groups. [`log_store::rocks`] keeps every group in
//!   one RocksDB per node and group-commits: one WAL sync makes the appends of many groups
//!   durable at once. [`log_store::memory`] has the same shape in memory, with honest crash
//!   semantics for the simulator (anything not synced is lost on a crash).
//! - [`network`]: the tonic transport. The client side implements openraft-multi's
//!   [`GroupRouter`](openraft_multi::GroupRouter) on one channel per peer node; the server side
//!   dispatches an incoming RPC to the right group's [`Raft`](openraft::Raft) through a
//!   [`network::GroupRegistry`]. The admin service and the leader side of read barriers are
//!   served over the same registry.
//! - [`error`]: the crate's error type.
//! - [`types`]: the auction type config (`AuctionRaft`: entries carry an auction `Command`).
//! - [`state_machine`]: the auction state machine of one group on RocksDB or in memory, its
//!   atomic apply and its snapshots.
//! - [`host`]: every group of one node: start, bootstrap, proposing with the leader's clock and
//!   forwarding to the leader, linearizable reads, leader duties (closing due auctions,
//!   balancing leaders), and the client-forwarding gRPC service.
//! - [`trace`]: the HTTP request id and the trace context of a write, carried to the leader
//!   and into the apply; [`stats`]: per-group counters (leader changes, proposal latency,
//!   snapshots) for `/metrics`.
//!
//! Not done yet:
//! - Snapshots travel as one in-memory buffer ([`network::SnapshotPayload`]); streaming from a
//!   file on disk is the next step for large shards.

pub mod codec;
pub mod error;
pub mod host;
pub mod log_store;
pub mod network;
pub mod rocks_options;
pub mod state_machine;
pub mod stats;
pub mod trace;
pub mod types;

#[cfg(test)]
mod testing;

pub use error::Error;

pub use auction_statemachine::{GroupId, NodeId};

/// The prefix of a group's keys in the node's RocksDB: its id as 8 big-endian bytes (the on-disk
/// format predates the 32-bit group id, and keeps sorting groups in order).
pub(crate) fn group_key_prefix(group: GroupId) -> [u8; 8] {
    u64::from(group).to_be_bytes()
}
