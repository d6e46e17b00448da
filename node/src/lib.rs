//! # auction-node
//!
//! One node of the auction cluster as a process: its configuration ([`config`]), the runtime
//! that opens its storage, starts every Raft group, serves node-to-node gRPC and the operations
//! HTTP endpoints, and shuts down gracefully ([`runtime`]); the local 3-node cluster launcher
//! ([`local_cluster`]).
//!
//! Binaries: `auction-node` (a node, or `auction-node local-cluster`) and `raft-bench` (bids
//! through Raft on a 3-node loopback cluster).
//!
//! Not done yet: the HTTP API of DESIGN.md (the `api/` crate) — a node serves only `/health`,
//! `/ready` and `/api/v1/cluster/status` so far; `auctionctl`.

pub mod config;
pub mod local_cluster;
pub mod ops;
pub mod runtime;
