//! The change feed: which auctions each applied batch wrote, for derived indexes (search).
//!
//! [`FeedStorage`] wraps a node's [`NodeStorage`] so that every auction shard's backend is a
//! [`FeedBackend`]. Right after a batch's atomic [`Backend::commit`] succeeds, the backend
//! collects the ids of the written keys tagged [`keys::AUCTION`] (one range of the sorted
//! write map) and hands `(group, applied index, ids)` to the indexer with one non-blocking
//! `try_send` on a bounded channel. That is the whole cost on the apply path: a lagging or
//! stopped indexer never slows or blocks apply. When the channel is full or closed, or when a
//! snapshot replaces the group's state ([`Backend::replace`]), the group's *rescan* flag is set
//! instead, and the indexer re-reads that group's auctions from the local state machine.
//!
//! The wrapper sits around the backend rather than inside `GroupStateMachine::apply` because
//! the host builds the state machines; wrapping the storage keeps the host untouched, and the
//! commit it wraps is exactly the one apply makes.
//!
//! With a [`LiveTest`] (the search index gives one), a change of an auction record that the
//! test calls *live* (only the price and the bid count moved, nothing the index matches on) is
//! handed over with the record's new encoding instead of its id, so the indexer can show it at
//! once without rewriting the document. The test compares the record before and after: the
//! old value is one point read of a key the batch just wrote, before the commit replaces it.
//!
//! Not done yet: other changes carry ids only; the indexer reads each back from the local
//! replica (a point read per auction).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::{Arc, Mutex};

use auction_statemachine::kv::Write;
use auction_statemachine::{keys, AuctionId, KvRead, META_GROUP};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::host::NodeStorage;
use crate::state_machine::{AppliedState, Backend};
use crate::{Error, GroupId};

/// Batches waiting for the indexer, at most; a batch that finds the channel full sets the
/// group's rescan flag instead.
pub const FEED_BATCHES_MAX: usize = 8_192;
/// Changed auctions one batch carries, at most; a larger batch (a close of very many
/// auctions) asks for a rescan of its group instead.
pub const FEED_AUCTIONS_PER_BATCH_MAX: usize = 4_096;

/// Tells, from an auction record's encoding before and after a change, whether the change is
/// *live*: it left everything a derived index matches, filters and sorts on as it was, except
/// the fields it keeps live (the price and the bid count).
pub type LiveTest = Arc<dyn Fn(&[u8], &[u8]) -> bool + Send + Sync>;

/// The auctions one applied batch of one group wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeBatch {
    pub group: GroupId,
    /// The group's applied log index after the batch.
    pub applied_index: u64,
    /// Auctions created or changed by the batch that must be read back (empty when it touched
    /// none).
    pub auctions: Vec<AuctionId>,
    /// Auctions whose change the feed's [`LiveTest`] called live, with the record's new
    /// encoding.
    pub live: Vec<(AuctionId, Vec<u8>)>,
    /// When the batch was committed (tokio's clock: simulated time in the simulator).
    pub committed_at: Instant,
}

/// Groups whose feed lost batches or whose state was replaced, with when that happened.
#[derive(Debug, Default)]
struct RescanFlags {
    groups: Mutex<BTreeMap<GroupId, Instant>>,
}

impl RescanFlags {
    fn set(&self, group: GroupId) {
        if let Ok(mut groups) = self.groups.lock() {
            groups.entry(group).or_insert_with(Instant::now);
        }
    }

    fn take(&self) -> BTreeMap<GroupId, Instant> {
        match self.groups.lock() {
            Ok(mut groups) => std::mem::take(&mut *groups),
            Err(_) => BTreeMap::new(),
        }
    }

    fn pending(&self) -> BTreeSet<GroupId> {
        match self.groups.lock() {
            Ok(groups) => groups.keys().copied().collect(),
            Err(_) => BTreeSet::new(),
        }
    }
}

/// The sending side, shared by every group's backend.
#[derive(Clone)]
pub struct ChangeFeed {
    sender: mpsc::Sender<ChangeBatch>,
    rescan: Arc<RescanFlags>,
    live_test: Option<LiveTest>,
}

impl std::fmt::Debug for ChangeFeed {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ChangeFeed")
            .field("live_test", &self.live_test.is_some())
            .finish_non_exhaustive()
    }
}

/// The indexer's side of the feed.
#[derive(Debug)]
pub struct ChangeReceiver {
    receiver: mpsc::Receiver<ChangeBatch>,
    rescan: Arc<RescanFlags>,
}

/// A new feed and its receiver; every change is a read-back change.
pub fn change_feed() -> (ChangeFeed, ChangeReceiver) {
    change_feed_with(None)
}

/// A new feed whose changes `live_test` calls live are handed over with their records.
pub fn change_feed_with(live_test: Option<LiveTest>) -> (ChangeFeed, ChangeReceiver) {
    let (sender, receiver) = mpsc::channel(FEED_BATCHES_MAX);
    let rescan = Arc::new(RescanFlags::default());
    (
        ChangeFeed {
            sender,
            rescan: rescan.clone(),
            live_test,
        },
        ChangeReceiver { receiver, rescan },
    )
}

impl ChangeFeed {
    /// Hands one committed batch to the indexer without waiting; marks the group for a rescan
    /// when that is not possible.
    fn publish(&self, group: GroupId, applied_index: u64, changes: Changes) {
        let batch = ChangeBatch {
            group,
            applied_index,
            auctions: changes.read_back,
            live: changes.live,
            committed_at: Instant::now(),
        };
        if self.sender.try_send(batch).is_err() {
            self.rescan.set(group);
        }
    }

    /// Asks the indexer to re-read a whole group from the local state machine.
    pub fn request_rescan(&self, group: GroupId) {
        self.rescan.set(group);
    }
}

impl ChangeReceiver {
    /// The next batch; `None` once every sender is gone (the storage was dropped).
    pub async fn recv(&mut self) -> Option<ChangeBatch> {
        self.receiver.recv().await
    }

    /// A batch if one is waiting.
    pub fn try_recv(&mut self) -> Option<ChangeBatch> {
        self.receiver.try_recv().ok()
    }

    /// Takes the groups to rescan and when each was marked; call it after draining the
    /// channel, so that every batch lost before the call is covered by the rescan after it.
    pub fn take_rescans(&self) -> BTreeMap<GroupId, Instant> {
        self.rescan.take()
    }

    /// Groups marked for a rescan right now (for lag reports).
    pub fn pending_rescans(&self) -> BTreeSet<GroupId> {
        self.rescan.pending()
    }

    /// Marks a group for a rescan (the indexer's own start and rebuilds).
    pub fn request_rescan(&self, group: GroupId) {
        self.rescan.set(group);
    }
}

/// What one batch changed, split by how the indexer takes it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub read_back: Vec<AuctionId>,
    pub live: Vec<(AuctionId, Vec<u8>)>,
}

fn auction_of(key: &[u8]) -> Option<AuctionId> {
    let id = key.get(1..17)?;
    (key.len() == 17).then_some(())?;
    uuid::Uuid::from_slice(id).ok().map(AuctionId)
}

/// The auctions whose record or images a batch wrote: the `[A][auction id]` and
/// `[J][auction id]` keys, two ranges of the map; `None` past [`FEED_AUCTIONS_PER_BATCH_MAX`].
/// A record change `live` calls live, given the record as it was (`old`), is handed over with
/// its new encoding; every other change (a new, removed or re-imaged auction) is read back.
pub fn written_auctions(
    writes: &BTreeMap<Vec<u8>, Write>,
    old: &dyn Fn(&[u8]) -> Option<Vec<u8>>,
    live: Option<&LiveTest>,
) -> Option<Changes> {
    let range = |tag: u8| writes.range(vec![tag]..vec![tag + 1]);
    let imaged: BTreeSet<AuctionId> = range(keys::AUCTION_IMAGES)
        .filter_map(|(key, _)| auction_of(key))
        .collect();
    let mut read_back = imaged.clone();
    let mut live_changes = Vec::new();
    for (key, value) in range(keys::AUCTION) {
        let Some(id) = auction_of(key) else {
            continue;
        };
        let is_live = match (live, value) {
            (Some(test), Some(new)) if !imaged.contains(&id) => {
                old(key).is_some_and(|before| test(&before, new))
            }
            _ => false,
        };
        match (is_live, value) {
            (true, Some(new)) => live_changes.push((id, new.clone())),
            _ => {
                read_back.insert(id);
            }
        }
        if read_back.len() + live_changes.len() > FEED_AUCTIONS_PER_BATCH_MAX {
            return None;
        }
    }
    if read_back.len() > FEED_AUCTIONS_PER_BATCH_MAX {
        return None;
    }
    Some(Changes {
        read_back: read_back.into_iter().collect(),
        live: live_changes,
    })
}

/// A backend that reports every committed batch of an auction shard to a [`ChangeFeed`].
pub struct FeedBackend<B: Backend> {
    inner: B,
    group: GroupId,
    /// `None` for the meta group, which holds no auctions.
    feed: Option<ChangeFeed>,
}

impl<B: Backend> Backend for FeedBackend<B> {
    type Reader = B::Reader;
    type Source = B::Source;

    fn reader(&self) -> Self::Reader {
        self.inner.reader()
    }

    fn load_applied(&self) -> io::Result<AppliedState> {
        self.inner.load_applied()
    }

    fn commit(
        &mut self,
        writes: BTreeMap<Vec<u8>, Write>,
        applied: &AppliedState,
    ) -> io::Result<()> {
        let Some(feed) = &self.feed else {
            return self.inner.commit(writes, applied);
        };
        let changes = match &feed.live_test {
            Some(test) => {
                let reader = self.inner.reader();
                let old = |key: &[u8]| reader.get(key).ok().flatten();
                written_auctions(&writes, &old, Some(test))
            }
            None => written_auctions(&writes, &|_| None, None),
        };
        self.inner.commit(writes, applied)?;
        match (changes, applied.last_applied) {
            (Some(changes), Some(log_id)) => feed.publish(self.group, log_id.index, changes),
            _ => feed.request_rescan(self.group),
        }
        Ok(())
    }

    fn replace(&mut self, snapshot: &[u8], applied: &AppliedState) -> io::Result<()> {
        self.inner.replace(snapshot, applied)?;
        if let Some(feed) = &self.feed {
            feed.request_rescan(self.group);
        }
        Ok(())
    }

    fn snapshot_source(&self) -> Self::Source {
        self.inner.snapshot_source()
    }

    fn snapshot_store(&self) -> Arc<dyn crate::state_machine::SnapshotStore> {
        self.inner.snapshot_store()
    }
}

/// A node's storage whose auction shards report their commits to a [`ChangeFeed`].
pub struct FeedStorage<S: NodeStorage> {
    inner: S,
    feed: ChangeFeed,
}

impl<S: NodeStorage> FeedStorage<S> {
    pub fn new(inner: S, feed: ChangeFeed) -> Self {
        FeedStorage { inner, feed }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The wrapped storage (to close it after the groups stopped).
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: NodeStorage> NodeStorage for FeedStorage<S> {
    type Log = S::Log;
    type Backend = FeedBackend<S::Backend>;

    fn open_group(&self, group: GroupId) -> Result<(Self::Log, Self::Backend), Error> {
        let (log, inner) = self.inner.open_group(group)?;
        let feed = (group != META_GROUP).then(|| self.feed.clone());
        Ok((log, FeedBackend { inner, group, feed }))
    }

    fn sync_counters(&self) -> Option<Arc<crate::log_store::SyncCounters>> {
        self.inner.sync_counters()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> AuctionId {
        AuctionId(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn only_auction_records_are_reported() {
        let mut writes: BTreeMap<Vec<u8>, Write> = BTreeMap::new();
        writes.insert(keys::auction(id(7)), None);
        writes.insert(keys::auction(id(3)), None);
        writes.insert(keys::history(id(9), 1), None);
        writes.insert(keys::end_index(5, id(11)), None);
        writes.insert(
            keys::seller_auction(
                auction_statemachine::UserId(uuid::Uuid::from_u128(1)),
                id(12),
            ),
            None,
        );
        let changes = written_auctions(&writes, &|_| None, None).expect("small");
        assert_eq!(changes.read_back, vec![id(3), id(7)]);
        assert!(changes.live.is_empty());
    }

    #[test]
    fn a_live_change_carries_its_record_and_anything_else_is_read_back() {
        let mut writes: BTreeMap<Vec<u8>, Write> = BTreeMap::new();
        // Bytes stand in for records: the test calls a change live when the first byte held.
        writes.insert(keys::auction(id(1)), Some(vec![7, 2]));
        writes.insert(keys::auction(id(2)), Some(vec![8, 2]));
        writes.insert(keys::auction(id(3)), Some(vec![9]));
        writes.insert(keys::auction(id(4)), None);
        writes.insert(keys::auction(id(5)), Some(vec![5, 1]));
        writes.insert(keys::auction_images(id(5)), None);
        let old = |key: &[u8]| -> Option<Vec<u8>> {
            let before = [
                (keys::auction(id(1)), vec![7, 1]),
                (keys::auction(id(2)), vec![7, 1]),
                (keys::auction(id(4)), vec![4]),
                (keys::auction(id(5)), vec![5, 0]),
            ];
            before
                .into_iter()
                .find(|(stored, _)| stored.as_slice() == key)
                .map(|(_, value)| value)
        };
        let test: LiveTest = Arc::new(|before: &[u8], after: &[u8]| before[0] == after[0]);
        let changes = written_auctions(&writes, &old, Some(&test)).expect("small");
        assert_eq!(
            changes.live,
            vec![(id(1), vec![7, 2])],
            "only the first held"
        );
        // 2 failed the test, 3 is new, 4 is removed, 5 changed its images.
        assert_eq!(changes.read_back, vec![id(2), id(3), id(4), id(5)]);
    }

    #[test]
    fn a_huge_batch_asks_for_a_rescan() {
        let writes: BTreeMap<_, _> = (0..=FEED_AUCTIONS_PER_BATCH_MAX as u128)
            .map(|n| (keys::auction(id(n)), None))
            .collect();
        assert_eq!(written_auctions(&writes, &|_| None, None), None);
    }

    #[tokio::test]
    async fn a_full_channel_sets_the_rescan_flag_and_never_blocks() {
        let (feed, mut receiver) = change_feed();
        for index in 0..FEED_BATCHES_MAX as u64 + 5 {
            let changes = Changes {
                read_back: vec![id(1)],
                live: Vec::new(),
            };
            feed.publish(3, index, changes);
        }
        assert!(
            receiver.pending_rescans().contains(&3),
            "overflow marks the group"
        );
        assert_eq!(
            receiver.try_recv().map(|batch| batch.applied_index),
            Some(0)
        );
        let taken = receiver.take_rescans();
        assert!(taken.contains_key(&3));
        assert!(
            receiver.pending_rescans().is_empty(),
            "taking clears the flags"
        );
    }
}
