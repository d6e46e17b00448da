//! # auction-node
//!
//! One node of the auction cluster as a process: its configuration ([`config`]), the runtime
//! that opens its storage, starts every Raft group, serves node-to-node gRPC and the HTTP API
//! of `auction-api`, and shuts down gracefully ([`runtime`]); the local 3-node cluster
//! launcher ([`local_cluster`]).
//!
//! Binaries: `auction-node` (a node, or `auction-node local-cluster`), `auctionctl` (the admin
//! CLI over any node's HTTP API: users, status, membership, leader transfer, snapshots, the
//! load generator; commands in [`ctl`] and [`bench`]), `raft-bench` (bids through Raft on a
//! 3-node loopback cluster) and `cluster-e2e` (the docker cluster's end-to-end test, [`e2e`]).

pub mod bench;
pub mod config;
pub mod ctl;
pub mod e2e;
pub mod local_cluster;
pub mod runtime;
