//! # auction-ctl
//!
//! The HTTP tools of the cluster, each a client of any node's HTTP API and nothing else: the
//! `auctionctl` admin command line ([`admin`]: users, the status of every member, membership,
//! leader transfer, snapshots, backups), its load generator (`auctionctl bench`, [`bench`]), and
//! `cluster-e2e`, the driver of the docker cluster's end-to-end test ([`e2e`]).
//!
//! The crate depends on no part of the node (no `auction-raft`, `auction-api` or RocksDB): it
//! speaks the JSON of the HTTP API through its own small serde types and `serde_json` values,
//! so it builds in seconds and runs from any machine that reaches a node. The one shared
//! crate is the pure `auction-statemachine`, for the backup file format that `auctionctl
//! backup` writes and verifies ([`admin::backup`]).
//!
//! Not done yet: TLS to the nodes; `e2e` moves into `jepsen/` with the harness (issue 16).

pub mod admin;
pub mod bench;
pub mod e2e;
