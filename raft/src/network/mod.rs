//! The tonic transport between nodes, shared by every Raft group.
//!
//! Client side ([`client`]): [`GrpcRouter`] implements openraft-multi's
//! [`GroupRouter`](openraft_multi::GroupRouter). It keeps one tonic `Channel` (one HTTP/2
//! connection) per peer node, shared by all groups, and sends every Raft RPC as a protobuf
//! envelope (`auction.raft.v1`) holding the group id and the postcard-encoded openraft message.
//! A per-group [`GrpcNetworkFactory`] hands openraft a `GroupNetworkAdapter` bound to
//! (target, group). Every RPC is bounded in time (see [`NetworkConfig`]): simulated TCP does not
//! retransmit, and a lost reply must not wedge a replication stream forever.
//!
//! Server side ([`server`]): [`RaftGrpcService`] decodes an incoming RPC and hands it to the
//! group's `Raft` found in a [`GroupRegistry`]; an unknown group is `NOT_FOUND`, a stopped group
//! `UNAVAILABLE`, an undecodable payload `INVALID_ARGUMENT`. [`admin`] serves the admin service
//! over the same registry and answers read barriers on a leader.
//!
//! Error mapping on the client: a time-out is openraft's `Timeout`; `UNAVAILABLE` (connection
//! refused or reset, group stopped) and `NOT_FOUND` (the peer does not host the group yet) are
//! `Unreachable`, which makes openraft back off; anything else is a `NetworkError`.
//!
//! Wiring on one node (`C` the type config, `SM` the state machine, snapshots as `Vec<u8>`):
//!
//! ```ignore
//! let router = GrpcRouter::<C, Vec<u8>>::new(node_id, NetworkConfig::default());
//! let registry = Arc::new(GroupRegistry::<C, SM>::new());
//! let log = RocksLog::<C>::start(db.clone(), RocksLogLimits::default())?;
//! for group_id in groups {
//!     let raft = Raft::new(node_id, config.clone(), router.network_factory(group_id),
//!                          log.group(group_id), state_machine_for(group_id)).await?;
//!     registry.insert(group_id, raft);
//! }
//! tonic::transport::Server::builder()
//!     .add_service(RaftGrpcService::new(registry.clone(), NetworkConfig::default()).into_server())
//!     .add_service(AdminGrpcService::new(node_id, registry.clone()).into_server())
//!     .serve(listen_addr).await?;
//! ```
//!
//! Clocks ([`clock_sample`]): every vote, pre-vote and `AppendEntries` reply carries the
//! replying node's wall clock, which the sender hands to its [`PeerClockSink`] (set with
//! [`GrpcRouter::set_peer_clock`] and [`RaftGrpcService::with_peer_clock`]); the host bounds
//! its stamps with them.
//!
//! Authentication ([`tls`], [`certs`]): with [`NetworkConfig::tls`] set, the channels of
//! [`tcp_channel_factory`] speak mutual TLS (the node's certificate, the cluster CA as the only
//! trust root) and a server built with [`tls::TlsIdentity::server_config`] refuses a client
//! without a certificate of the cluster CA at the handshake. Without it the transport is
//! plaintext: the simulator's choice, and the node's only with an explicit opt-out.
//!
//! Appends ([`pipe`]): every group's `AppendEntries` to a peer travel as messages of one
//! long-lived bidirectional stream per peer (`AppendStream`), answered in completion order; the
//! unary `AppendEntries` RPC is still served, for peers that do not stream yet. The server ends
//! the streams it serves when told to close ([`RaftGrpcService::with_closing`]), since a
//! graceful server stop waits for every open stream.
//!
//! Not done yet: no pipelining within one group (openraft's default `stream_append` sends a
//! group's appends to a target one at a time); snapshots are sent from one in-memory buffer
//! ([`SnapshotPayload`]).

pub mod admin;
pub mod certs;
pub mod client;
pub mod clock_sample;
pub mod pipe;
pub mod probe;
pub mod server;
pub mod tls;

use std::io::Cursor;

pub use admin::AdminGrpcService;
pub use client::{tcp_channel_factory, ChannelFactory, GrpcNetworkFactory, GrpcRouter};
pub use clock_sample::{PeerClockSink, CLOCK_HEADER};
pub use server::{GroupRegistry, RaftGrpcService};
pub use tls::TlsIdentity;

/// Limits and time-outs of the transport. Every time is in milliseconds, every size in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Establishing a connection to a peer.
    pub connect_timeout_ms: u64,
    /// Shortest time-out of a unary Raft RPC. openraft asks for 3/4 of its own TTL (derived
    /// from the heartbeat interval); this floor keeps a tiny TTL from failing every RPC.
    pub rpc_timeout_ms_min: u64,
    /// Longest time-out of a unary Raft RPC, whatever openraft asks for.
    pub rpc_timeout_ms_max: u64,
    /// Sending one whole snapshot, all chunks included.
    pub snapshot_timeout_ms: u64,
    /// Data bytes per snapshot chunk message.
    pub snapshot_chunk_bytes: usize,
    /// Largest snapshot a node sends or accepts.
    pub snapshot_bytes_max: u64,
    /// Largest gRPC message either way (an `AppendEntries` with its entries, a reply).
    pub message_bytes_max: usize,
    /// HTTP/2 keep-alive ping interval, to notice a dead peer on an idle connection.
    pub keep_alive_interval_ms: u64,
    /// How long a keep-alive ping may go unanswered before the connection is dropped.
    pub keep_alive_timeout_ms: u64,
    /// Mutual TLS of the channels [`tcp_channel_factory`] makes; `None` is plaintext (the
    /// simulator, whose channels come from its own factory, and an explicitly insecure node).
    pub tls: Option<TlsIdentity>,
    /// `AppendEntries` on one append stream per peer ([`pipe`]); off, one unary RPC each (for
    /// peers that do not serve the stream, and for A/B benchmarks).
    pub append_stream: bool,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 500,
            rpc_timeout_ms_min: 50,
            rpc_timeout_ms_max: 2_000,
            snapshot_timeout_ms: 60_000,
            snapshot_chunk_bytes: 1024 * 1024,
            snapshot_bytes_max: 1024 * 1024 * 1024,
            message_bytes_max: 64 * 1024 * 1024,
            keep_alive_interval_ms: 5_000,
            keep_alive_timeout_ms: 5_000,
            tls: None,
            append_stream: true,
        }
    }
}

/// How to reach a node: the address of its node-to-node gRPC server (`host:port`). The Raft
/// type config's `Node` implements it; [`openraft::BasicNode`] does.
pub trait PeerAddress {
    fn rpc_addr(&self) -> &str;

    /// The node value for a node known only by its address (admin requests carry addresses).
    fn from_rpc_addr(addr: &str) -> Self
    where
        Self: Sized;
}

impl PeerAddress for openraft::BasicNode {
    fn rpc_addr(&self) -> &str {
        &self.addr
    }

    fn from_rpc_addr(addr: &str) -> Self {
        openraft::BasicNode::new(addr)
    }
}

/// A state machine's snapshot data as the transport moves it: one byte buffer.
pub trait SnapshotPayload: Sized + Send + 'static {
    fn into_bytes(self) -> Vec<u8>;
    fn from_bytes(bytes: Vec<u8>) -> Self;
}

impl SnapshotPayload for Vec<u8> {
    fn into_bytes(self) -> Vec<u8> {
        self
    }

    fn from_bytes(bytes: Vec<u8>) -> Self {
        bytes
    }
}

impl SnapshotPayload for Cursor<Vec<u8>> {
    fn into_bytes(self) -> Vec<u8> {
        self.into_inner()
    }

    fn from_bytes(bytes: Vec<u8>) -> Self {
        Cursor::new(bytes)
    }
}

#[cfg(test)]
mod tests;
