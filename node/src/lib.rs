//! # auction-node
//!
//! One node of the auction cluster as a process: its configuration ([`config`]), the
//! node-to-node certificates (`auction-node certs`, [`certs`]), the runtime
//! that opens its storage, starts every Raft group, serves node-to-node gRPC and the HTTP API
//! of `auction-api`, and shuts down gracefully ([`runtime`]); the check that the node's shard
//! count is the cluster's ([`shards`]); the local 3-node cluster launcher ([`local_cluster`]);
//! logs (JSON lines or text) and the optional OTLP trace export ([`logging`]); seeding a new
//! node's data directory from a backup (`auction-node restore`, [`restore`]).
//!
//! Binaries: `auction-node` (a node, or `auction-node local-cluster`) and `raft-bench` (bids
//! through Raft on a 3-node loopback cluster). The HTTP tools (`auctionctl`, its load
//! generator, the `cluster-e2e` driver) are the crate `auction-ctl` in `node/ctl/`, which
//! depends on no part of the node.
//!
//! Node-to-node gRPC is mutual TLS with a cluster CA (see `auction-raft`'s `network::tls`);
//! `--insecure-grpc` is the explicit, logged opt-out.

pub mod allocator;
pub mod certs;
pub mod config;
pub mod local_cluster;
pub mod logging;
pub mod restore;
pub mod runtime;
pub mod shards;
