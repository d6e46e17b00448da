//! The sink's inbox: which auctions changed, per group, since the sink last looked.
//!
//! The indexer already receives every applied batch's changed auction ids (the raft crate's
//! change feed); when a sink runs it also hands each batch's ids to [`SinkInbox::changed`] and
//! each group it rescans to [`SinkInbox::request_resync`]. The sink takes everything at once
//! each tick ([`SinkInbox::take`]). A std mutex, not a channel: both sides hold it only to
//! extend or swap a set (never across an await or an HTTP request), so the indexer never waits
//! on the sink's work, and nothing is ever lost to a full channel. It is bounded: past
//! [`INBOX_AUCTIONS_PER_GROUP_MAX`] ids a group's set is dropped and the group marked for a
//! resync, which re-reads it whole.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use auction_raft::GroupId;
use auction_statemachine::AuctionId;

/// Changed auctions remembered per group until the sink takes them; more turns into a resync.
pub const INBOX_AUCTIONS_PER_GROUP_MAX: usize = 50_000;

/// What the sink takes from the inbox at once.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct InboxContents {
    pub changed: BTreeMap<GroupId, BTreeSet<AuctionId>>,
    pub resyncs: BTreeSet<GroupId>,
}

/// Changed auctions and resync requests, shared by the indexer and the sink.
#[derive(Debug, Default)]
pub struct SinkInbox {
    contents: Mutex<InboxContents>,
}

impl SinkInbox {
    pub fn new() -> SinkInbox {
        SinkInbox::default()
    }

    fn lock(&self) -> MutexGuard<'_, InboxContents> {
        // The contents are plain sets: a panic elsewhere cannot leave them half-updated.
        self.contents.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes the auctions one applied batch of `group` changed.
    pub fn changed(&self, group: GroupId, auctions: &[AuctionId]) {
        if auctions.is_empty() {
            return;
        }
        let mut contents = self.lock();
        if contents.resyncs.contains(&group) {
            // A resync re-reads every auction of the group anyway.
            return;
        }
        let set = contents.changed.entry(group).or_default();
        set.extend(auctions.iter().copied());
        if set.len() > INBOX_AUCTIONS_PER_GROUP_MAX {
            contents.changed.remove(&group);
            contents.resyncs.insert(group);
        }
    }

    /// Asks the sink to push every auction of `group` again (the indexer rescanned it: its
    /// feed lost batches, or a snapshot replaced its state).
    pub fn request_resync(&self, group: GroupId) {
        let mut contents = self.lock();
        contents.changed.remove(&group);
        contents.resyncs.insert(group);
    }

    /// Everything noted since the last call.
    pub fn take(&self) -> InboxContents {
        std::mem::take(&mut *self.lock())
    }
}
