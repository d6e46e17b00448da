//! The sink's bookkeeping, without I/O: per auction shard, whether this node leads it (and
//! in which term), whether it needs a resync, its sync epoch and the changed auctions still
//! to push.
//!
//! Sync epochs: every document carries the epoch of the resync generation it was written in;
//! after a resync has pushed every auction of a group with epoch `E`, the documents of that
//! group with an epoch below `E` are stale (their auctions are gone) and are deleted. Epochs
//! must grow across leaders and restarts, so they are built from the Raft term the leader
//! leads in: `term * EPOCHS_PER_TERM + n`, `n` counting this node's resyncs of the group in
//! that term (one leader per term, so no two nodes ever pick the same epoch).

use std::collections::{BTreeMap, BTreeSet};

use auction_raft::GroupId;
use auction_statemachine::AuctionId;

use super::inbox::InboxContents;

/// Resyncs of one group by one leader in one term that get an epoch of their own; later ones
/// reuse the last (they then delete nothing a previous one of the same term left).
pub const EPOCHS_PER_TERM: u64 = 1 << 20;
/// Changed auctions kept per group while Meilisearch is unreachable; more turns into a resync.
pub const PENDING_AUCTIONS_PER_GROUP_MAX: usize = 50_000;

/// One auction shard as the sink sees it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GroupSync {
    /// The term this node led the group in at the last look; `None` when it did not lead.
    pub led_term: Option<u64>,
    /// Resyncs started in `led_term`.
    pub resyncs_in_term: u64,
    /// The epoch documents are written with now.
    pub sync_epoch: u64,
    /// Every auction must be pushed again (then older documents deleted).
    pub resync: bool,
    /// Changed auctions not pushed yet (empty while `resync` is set: the resync covers them).
    pub pending: BTreeSet<AuctionId>,
}

impl GroupSync {
    fn start_resync(&mut self, term: u64) {
        let n = self.resyncs_in_term.min(EPOCHS_PER_TERM - 1);
        self.sync_epoch = term.saturating_mul(EPOCHS_PER_TERM).saturating_add(n);
        self.resyncs_in_term = self.resyncs_in_term.saturating_add(1);
        self.resync = true;
        self.pending.clear();
    }
}

/// Every auction shard of this node.
#[derive(Debug, Default)]
pub struct SyncState {
    groups: BTreeMap<GroupId, GroupSync>,
}

impl SyncState {
    pub fn group(&self, group: GroupId) -> Option<&GroupSync> {
        self.groups.get(&group)
    }

    /// Applies one look at leadership: `leader_term` is the term this node leads `group` in,
    /// `None` when it does not lead it. Gaining leadership (or a new term) starts a resync;
    /// losing it drops what was pending (the next leader resyncs).
    pub fn observe(&mut self, group: GroupId, leader_term: Option<u64>) {
        let sync = self.groups.entry(group).or_default();
        match leader_term {
            None => *sync = GroupSync::default(),
            Some(term) if sync.led_term != Some(term) => {
                sync.led_term = Some(term);
                sync.resyncs_in_term = 0;
                sync.start_resync(term);
            }
            Some(_) => {}
        }
    }

    /// Forgets the groups this node no longer hosts.
    pub fn retain(&mut self, hosted: &BTreeSet<GroupId>) {
        self.groups.retain(|group, _| hosted.contains(group));
    }

    /// Folds in what the indexer noted; changes of groups this node does not lead are
    /// dropped (call it after [`SyncState::observe`]).
    pub fn receive(&mut self, inbox: InboxContents) {
        for group in inbox.resyncs {
            if let Some(sync) = self.groups.get_mut(&group) {
                if let (Some(term), false) = (sync.led_term, sync.resync) {
                    sync.start_resync(term);
                }
            }
        }
        for (group, auctions) in inbox.changed {
            let Some(sync) = self.groups.get_mut(&group) else {
                continue;
            };
            let Some(term) = sync.led_term else {
                continue;
            };
            if sync.resync {
                continue;
            }
            sync.pending.extend(auctions);
            if sync.pending.len() > PENDING_AUCTIONS_PER_GROUP_MAX {
                sync.start_resync(term);
            }
        }
    }

    /// Groups that need a resync, with the epoch to write.
    pub fn resyncs(&self) -> Vec<(GroupId, u64)> {
        self.groups
            .iter()
            .filter(|(_, sync)| sync.resync && sync.led_term.is_some())
            .map(|(group, sync)| (*group, sync.sync_epoch))
            .collect()
    }

    /// The resync of `group` at `sync_epoch` is done (ignored when a newer one started).
    pub fn resync_done(&mut self, group: GroupId, sync_epoch: u64) {
        if let Some(sync) = self.groups.get_mut(&group) {
            if sync.sync_epoch == sync_epoch {
                sync.resync = false;
            }
        }
    }

    /// Up to `count` changed auctions of `group` to push, with the epoch to write them with.
    pub fn next_pending(&self, group: GroupId, count: usize) -> Option<(Vec<AuctionId>, u64)> {
        let sync = self.groups.get(&group)?;
        if sync.resync || sync.led_term.is_none() || sync.pending.is_empty() {
            return None;
        }
        let ids = sync.pending.iter().take(count).copied().collect();
        Some((ids, sync.sync_epoch))
    }

    /// `pushed` reached Meilisearch.
    pub fn pushed(&mut self, group: GroupId, pushed: &[AuctionId]) {
        if let Some(sync) = self.groups.get_mut(&group) {
            for id in pushed {
                sync.pending.remove(id);
            }
        }
    }

    /// Groups with changed auctions to push.
    pub fn groups_pending(&self) -> Vec<GroupId> {
        self.groups
            .iter()
            .filter(|(_, sync)| !sync.pending.is_empty() && !sync.resync)
            .map(|(group, _)| *group)
            .collect()
    }

    /// Whether anything is to be written.
    pub fn has_work(&self) -> bool {
        self.groups
            .values()
            .any(|sync| sync.led_term.is_some() && (sync.resync || !sync.pending.is_empty()))
    }
}
