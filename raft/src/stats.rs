//! Counters of one node's Raft groups that openraft's own metrics do not keep: leader changes,
//! how long proposals take to be committed and applied, and snapshots built and installed with
//! their sizes. The API renders them in `/metrics` (Prometheus text); indexes and terms come
//! from openraft's metrics ([`crate::host::RaftHost::local_statuses`]).
//!
//! Everything is an atomic: recording a value is a few relaxed additions, never a lock on the
//! write path. A histogram's buckets are counted apart (not cumulatively); the renderer sums
//! them, as Prometheus wants cumulative buckets.
//!
//! Not done yet: append latency per follower (the transport does not time its RPCs by group).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::GroupId;

/// Upper bounds of the proposal latency buckets, in microseconds (1 ms to 10 s).
pub const PROPOSAL_LATENCY_BUCKETS_US: [u64; 13] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
];

/// A latency histogram of atomics: per-bucket counts (the last slot is +Inf) and the sum.
#[derive(Debug, Default)]
pub struct AtomicHistogram {
    buckets: [AtomicU64; PROPOSAL_LATENCY_BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

/// A copy of an [`AtomicHistogram`] for rendering.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Per-bucket counts, not cumulative; the last one is above every bound.
    pub buckets: Vec<u64>,
    pub sum_us: u64,
}

impl AtomicHistogram {
    pub fn record(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let slot = PROPOSAL_LATENCY_BUCKETS_US
            .iter()
            .position(|bound| micros <= *bound)
            .unwrap_or(PROPOSAL_LATENCY_BUCKETS_US.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: self
                .buckets
                .iter()
                .map(|bucket| bucket.load(Ordering::Relaxed))
                .collect(),
            sum_us: self.sum_us.load(Ordering::Relaxed),
        }
    }
}

/// The counters of one group on this node.
#[derive(Debug, Default)]
pub struct GroupStats {
    /// Times this node saw the group's leader become a different node (or a first one).
    pub leader_changes: AtomicU64,
    /// From a proposal on this node (the leader) to its applied answer.
    pub proposals: AtomicHistogram,
    pub snapshots_built: AtomicU64,
    pub snapshot_built_bytes_total: AtomicU64,
    pub snapshot_last_bytes: AtomicU64,
    pub snapshots_installed: AtomicU64,
    pub snapshot_installed_bytes_total: AtomicU64,
    /// Auctions this replica saw end, by how: sold, unsold, cancelled (every replica applies
    /// every end once, so each node counts the whole cluster's).
    pub auctions_sold: AtomicU64,
    pub auctions_unsold: AtomicU64,
    pub auctions_cancelled: AtomicU64,
}

impl GroupStats {
    pub fn snapshot_built(&self, bytes: usize) {
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        self.snapshots_built.fetch_add(1, Ordering::Relaxed);
        self.snapshot_built_bytes_total
            .fetch_add(bytes, Ordering::Relaxed);
        self.snapshot_last_bytes.store(bytes, Ordering::Relaxed);
    }

    pub fn snapshot_installed(&self, bytes: usize) {
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        self.snapshots_installed.fetch_add(1, Ordering::Relaxed);
        self.snapshot_installed_bytes_total
            .fetch_add(bytes, Ordering::Relaxed);
        self.snapshot_last_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Counts the auction ends among `events` of one applied batch.
    pub fn count_ends<'a>(
        &self,
        events: impl IntoIterator<Item = &'a auction_statemachine::Event>,
    ) {
        use auction_statemachine::{Event, Status};
        for event in events {
            let counter = match event {
                Event::AuctionEnded {
                    status: Status::Sold,
                    ..
                } => &self.auctions_sold,
                Event::AuctionEnded {
                    status: Status::Unsold,
                    ..
                } => &self.auctions_unsold,
                Event::AuctionEnded {
                    status: Status::Cancelled,
                    ..
                } => &self.auctions_cancelled,
                _ => continue,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// The counters of every group of a node.
#[derive(Debug, Default)]
pub struct NodeStats {
    groups: BTreeMap<GroupId, std::sync::Arc<GroupStats>>,
}

impl NodeStats {
    pub fn new(groups: impl IntoIterator<Item = GroupId>) -> Self {
        NodeStats {
            groups: groups
                .into_iter()
                .map(|group| (group, std::sync::Arc::default()))
                .collect(),
        }
    }

    pub fn group(&self, group: GroupId) -> Option<&std::sync::Arc<GroupStats>> {
        self.groups.get(&group)
    }

    pub fn iter(&self) -> impl Iterator<Item = (GroupId, &GroupStats)> {
        self.groups
            .iter()
            .map(|(group, stats)| (*group, stats.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_land_in_their_bucket() {
        let histogram = AtomicHistogram::default();
        histogram.record(Duration::from_micros(900));
        histogram.record(Duration::from_millis(3));
        histogram.record(Duration::from_secs(60));
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.buckets[0], 1, "{snapshot:?}");
        assert_eq!(snapshot.buckets[2], 1, "{snapshot:?}");
        assert_eq!(snapshot.buckets[PROPOSAL_LATENCY_BUCKETS_US.len()], 1);
        assert_eq!(snapshot.sum_us, 900 + 3_000 + 60_000_000);
    }
}
