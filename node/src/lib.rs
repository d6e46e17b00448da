//! # auction-node
//!
//! One node of the auction cluster as a process: its configuration ([`config`]), the runtime
//! that opens its storage, starts every Raft group, serves node-to-node gRPC and the HTTP API
//! of `auction-api`, and shuts down gracefully ([`runtime`]); the local 3-node cluster
//! launcher ([`local_cluster`]).
//!
//! Binaries: `auction-node` (a node, or `auction-node local-cluster`), `auctionctl` and
//! `raft-bench` (bids through Raft on a 3-node loopback cluster).
//!
//! `auctionctl` (`src/bin/auctionctl.rs`): `user grant-admin EMAIL` (the first admin, with
//! the cluster admin token) and `status`, over any node's HTTP API.
//!
//! Not done yet: `auctionctl` membership commands and the load generator (`auctionctl bench`).

pub mod config;
pub mod local_cluster;
pub mod runtime;
