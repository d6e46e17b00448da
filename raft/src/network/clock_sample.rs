//! Peers' clocks, learned from the Raft RPCs that run anyway: every reply of a vote, pre-vote
//! or `AppendEntries` carries the replying node's wall clock in the [`CLOCK_HEADER`] metadata
//! entry (an append answered on the append stream carries it in the reply's `clock_ms`, see
//! [`super::pipe`]), and the sender hands it, with the RPC's send and receive instants, to its
//! [`PeerClockSink`]. Heartbeats go out every heartbeat interval, so a leader hears every
//! reachable follower's clock that often, and a candidate hears a majority's clocks in the
//! votes that make it leader. No RPC is added, and nothing is done per client write.
//!
//! What is done with the readings (the `clock_skew_ms_max` bound on stamps) is the host's
//! business (`host::skew`); this module only carries them.

use tokio::time::Instant;
use tonic::metadata::MetadataValue;

/// The metadata entry of a reply that holds the replying node's clock (ms since the epoch).
pub const CLOCK_HEADER: &str = "x-auction-clock-ms";

/// A node's clock as the transport sees it: read on every reply it sends, told of every peer
/// reading it receives.
pub trait PeerClockSink<N>: Send + Sync + 'static {
    /// This node's wall clock, put on every reply.
    fn now_ms(&self) -> i64;
    /// `peer` read `peer_clock_ms` while answering an RPC sent at `sent` and answered at
    /// `received` (this node's monotonic clock).
    fn observe(&self, peer: &N, peer_clock_ms: i64, sent: Instant, received: Instant);
}

/// Puts this node's clock on a reply.
pub(crate) fn stamp_reply<T, N: 'static>(
    reply: &mut tonic::Response<T>,
    sink: Option<&dyn PeerClockSink<N>>,
) {
    if let Some(sink) = sink {
        if let Ok(value) = MetadataValue::try_from(sink.now_ms().to_string()) {
            reply.metadata_mut().insert(CLOCK_HEADER, value);
        }
    }
}

/// The replying peer's clock, if the reply carries a readable one.
pub(crate) fn reply_clock_ms<T>(reply: &tonic::Response<T>) -> Option<i64> {
    reply
        .metadata()
        .get(CLOCK_HEADER)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}
