//! Raft log storage for many groups per node.
//!
//! Both stores hand out one cheap per-group handle ([`rocks::RocksLogStore`],
//! [`memory::MemLogStore`]) that implements openraft's `RaftLogStorage` and `RaftLogReader`,
//! while the node-wide part ([`rocks::RocksLog`], [`memory::MemLog`]) owns the storage and the
//! single sync worker of [`group_commit`]: writes land unsynced right away (readable at once),
//! and one sync completes the appends of every group that wrote since the previous sync.
//!
//! - [`rocks`]: production storage, all groups in one RocksDB (`raft_log` and `raft_meta`
//!   column families), one WAL `fsync` per group commit.
//! - [`memory`]: the simulator's storage, same shape, with a durable copy that only a sync
//!   updates, so a simulated crash loses exactly what a real one would.
//!
//! Use exactly one handle per group per node: openraft serializes the writes of one group
//! through its handle, and two handles of one group would interleave them.
//!
//! Not done yet: deleting a whole group's log when the group is removed from a node.

pub mod group_commit;
pub mod memory;
pub mod rocks;

pub use group_commit::{GroupCommitLimits, SyncCounters, SyncLatency, SYNC_LATENCY_BUCKETS_US};

use std::ops::{Bound, RangeBounds};

/// Turns a range of log indexes into `[start, end)`; `end` is `None` when unbounded.
pub(crate) fn index_range(range: &impl RangeBounds<u64>) -> (u64, Option<u64>) {
    let start = match range.start_bound() {
        Bound::Included(start) => *start,
        Bound::Excluded(start) => start.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(end) => end.checked_add(1),
        Bound::Excluded(end) => Some(*end),
        Bound::Unbounded => None,
    };
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::index_range;

    #[test]
    fn index_ranges_are_half_open() {
        assert_eq!(index_range(&(3..7)), (3, Some(7)));
        assert_eq!(index_range(&(3..=7)), (3, Some(8)));
        assert_eq!(index_range(&(3..)), (3, None));
        assert_eq!(index_range(&(..)), (0, None));
        assert_eq!(index_range(&(..=u64::MAX)), (0, None));
    }
}
