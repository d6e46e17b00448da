//! gRPC messages and services for node-to-node traffic, generated from `proto/*.proto`.
//!
//! - [`raft`]: the Raft transport. Every request names its group and carries an opaque openraft
//!   message encoded by `auction-raft`; snapshots stream as a header followed by data chunks.
//! - [`client`]: forwarding a client command, or asking for a linearizable read barrier, to the
//!   leader of a group.
//! - [`admin`]: membership changes, per-group status, snapshots and leadership transfer.
//!
//! Bytes fields are `bytes::Bytes` (re-exported as [`Bytes`]) so that payloads are sliced and
//! forwarded without copies.
//!
//! Peers are authenticated below these services, by mutual TLS on the connection
//! (`auction-raft`'s `network::tls`).
//!
//! Not done yet: no versioning of the opaque payloads beyond the package names (`v1`).

pub use prost::bytes::Bytes;

/// The Raft transport: vote, pre-vote, append entries, transfer leader, snapshots.
pub mod raft {
    tonic::include_proto!("auction.raft.v1");
}

/// Forwarding client commands and read barriers to a group leader.
pub mod client {
    tonic::include_proto!("auction.client.v1");
}

/// Cluster administration per group.
pub mod admin {
    tonic::include_proto!("auction.admin.v1");
}
