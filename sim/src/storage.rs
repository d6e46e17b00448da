//! A node's simulated disk and the [`NodeStorage`] the host runs on.
//!
//! [`SimDisk`] outlives the node's software: it holds the in-memory Raft log of the running
//! incarnation and every group's snapshot store. A crash (turmoil drops the node's runtime and
//! every task on it) leaves in the log only what was synced; the next incarnation
//! [`SimDisk::open`]s a fresh [`MemLog`] from that durable state, with fresh (empty) state
//! machines that openraft rebuilds from the kept snapshot and the durable log. So a crash loses
//! exactly what a real crash could: unsynced appends and votes, and all applied state. A disk
//! fault slows its syncs ([`SimDisk::set_sync_delay_ms`]), so unsynced appends stay unsynced
//! long enough for a crash to catch them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use auction_raft::host::NodeStorage;
use auction_raft::log_store::memory::{MemLog, MemLogLimits, MemLogStore, SyncDelay};
use auction_raft::state_machine::memory::{MemBackend, MemSnapshotStore};
use auction_raft::types::AuctionRaft;
use auction_raft::{Error, GroupId};

/// What a node keeps across crashes.
pub struct SimDisk {
    snapshots: BTreeMap<GroupId, Arc<MemSnapshotStore>>,
    /// The log of the current (or last) incarnation; its durable part survives a crash.
    log: Mutex<Option<Arc<MemLog<AuctionRaft>>>>,
    /// Incarnations started so far (each [`SimDisk::open`] is one).
    incarnations: AtomicU64,
    /// How long each sync waits (a slow disk), for every incarnation.
    sync_delay: SyncDelay,
}

impl SimDisk {
    pub fn new(groups: impl IntoIterator<Item = GroupId>) -> SimDisk {
        SimDisk {
            snapshots: groups
                .into_iter()
                .map(|group| (group, Arc::new(MemSnapshotStore::default())))
                .collect(),
            log: Mutex::new(None),
            incarnations: AtomicU64::new(0),
            sync_delay: SyncDelay::default(),
        }
    }

    /// Makes every sync of the log wait `ms` of simulated time first (0: sync at once).
    pub fn set_sync_delay_ms(&self, ms: u64) {
        self.sync_delay.set_ms(ms);
    }

    /// How many incarnations of the node have started (1 for the first, after its open).
    pub fn incarnations(&self) -> u64 {
        self.incarnations.load(Ordering::Relaxed)
    }

    /// Storage for a new incarnation of the node: the durable log of the previous one (if
    /// any), the kept snapshots, empty state machines. Call inside the node's runtime: the log
    /// spawns its sync task there.
    pub fn open(&self) -> Arc<SimStorage> {
        self.incarnations.fetch_add(1, Ordering::Relaxed);
        let mut current = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let durable = current
            .as_ref()
            .map(|log| log.durable_state())
            .unwrap_or_default();
        let log = Arc::new(MemLog::reopen_delayed(
            durable,
            MemLogLimits::default(),
            self.sync_delay.clone(),
        ));
        *current = Some(log.clone());
        Arc::new(SimStorage {
            log,
            snapshots: self.snapshots.clone(),
        })
    }
}

impl SimDisk {
    /// The log ids of `group`'s entries `from..=to` in the current incarnation's log (see
    /// [`MemLog::live_log_ids`]).
    pub fn live_log_ids(
        &self,
        group: GroupId,
        from: u64,
        to: u64,
    ) -> Vec<openraft::alias::LogIdOf<AuctionRaft>> {
        let current = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        current
            .as_ref()
            .map(|log| log.live_log_ids(group, from, to))
            .unwrap_or_default()
    }
}

/// The storage of one incarnation of a node.
pub struct SimStorage {
    log: Arc<MemLog<AuctionRaft>>,
    snapshots: BTreeMap<GroupId, Arc<MemSnapshotStore>>,
}

impl NodeStorage for SimStorage {
    type Log = MemLogStore<AuctionRaft>;
    type Backend = MemBackend;

    fn open_group(&self, group: GroupId) -> Result<(Self::Log, Self::Backend), Error> {
        let snapshots =
            self.snapshots.get(&group).cloned().ok_or_else(|| {
                Error::Protocol(format!("the simulated disk has no group {group}"))
            })?;
        Ok((self.log.group(group), MemBackend::new(snapshots)))
    }
}
