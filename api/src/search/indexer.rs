//! The indexer: applied changes in, index commits out, about every [`COMMIT_INTERVAL_MS`].
//!
//! One task per node. It receives the change feed's batches as they come (so the bounded feed
//! channel drains even while a commit is being written). A live change (a bid: only the price
//! and the bid count moved, [`super::live`]) goes straight into the index's live overlay and
//! is searchable at once. For every other change it keeps, per group, the changed auction ids
//! (at most [`PENDING_AUCTIONS_MAX`]; more turns into a rescan of the group), the highest
//! applied index seen, and when the oldest change was applied. A tick commits when there is
//! such a change or a rescan, when the overlay is full, or when a batch has waited
//! [`super::live::FOLD_AFTER_MS`] (so positions and the overlay reach the index even under bids
//! only). A commit takes the groups marked for a rescan, then writes one [`Batch`] on the
//! blocking pool: a rescanned group is cleared and re-read page by page from the local
//! replica, every other changed or overlaid auction is re-read with a point read (deleted when
//! it is gone), and the commit records each group's position; the overlaid auctions it read
//! are then dropped from the overlay unless a newer bid came meanwhile. Positions only move
//! forward; a rescan records the applied index read before its scan, so the documents are at
//! least that fresh.
//!
//! At start every auction shard whose stored position is not its applied index, or that was
//! never indexed, is rescanned (a clean stop ends with a final commit, so a restart after one
//! rescans nothing; after a crash, only the groups that moved since the last commit are
//! rescanned).
//!
//! With a Meilisearch sink ([`super::meili`]) the indexer also notes each batch's changed ids
//! in the sink's inbox and asks it to resync every group it rescans; noting is a short,
//! bounded update of a set, so the indexer never waits on the sink.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use auction_raft::host::{GroupReader, NodeStorage, RaftHost};
use auction_raft::state_machine::feed::{ChangeBatch, ChangeReceiver};
use auction_raft::GroupId;
use auction_statemachine::{codec, query, Auction, AuctionId, ImageFile, META_GROUP};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::live::{FOLD_AFTER_MS, LIVE_AUCTIONS_MAX};
use super::meili::SinkInbox;
use super::tantivy_index::{Batch, TantivyIndex};
use crate::error::{ApiError, ApiResult};

/// How often pending changes are committed (they become searchable then). Each commit costs a
/// fixed amount whatever it holds: tantivy finishes a segment and walks its term table of 2^19
/// slots, and merges the small segments later. At 150 ms the indexer took about 12% of a
/// node's CPU under a bid load (issue 10's profile); 300 ms halves that and keeps listings
/// within DESIGN.md's "a few hundred milliseconds".
pub const COMMIT_INTERVAL_MS: u64 = 300;
/// Changed auctions remembered per group between commits; past that the group is rescanned.
pub const PENDING_AUCTIONS_MAX: usize = 50_000;

/// Changes of one group since the last commit.
#[derive(Debug, Default)]
struct Pending {
    auctions: BTreeSet<AuctionId>,
    applied_index: u64,
    since: Option<Instant>,
}

/// What one commit does.
#[derive(Debug, Default)]
struct Work {
    /// Groups to re-read whole, with the applied index read before the scan.
    rescans: BTreeMap<GroupId, u64>,
    changes: BTreeMap<GroupId, Pending>,
}

impl Work {
    fn is_empty(&self) -> bool {
        self.rescans.is_empty() && self.changes.is_empty()
    }
}

/// The running indexer; [`IndexerHandle::stop`] commits what is pending and ends it.
pub struct IndexerHandle {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl IndexerHandle {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Starts the indexer of `host` over `feed`; groups whose stored position does not match
/// their applied index are rescanned first. With `sink`, the changes are also noted there.
pub fn spawn<S: NodeStorage>(
    host: Arc<RaftHost<S>>,
    index: Arc<TantivyIndex>,
    feed: ChangeReceiver,
    sink: Option<Arc<SinkInbox>>,
) -> IndexerHandle {
    let positions = index.positions();
    for status in host.local_statuses() {
        let group = status.group_id;
        let applied = status.applied_index.unwrap_or(0);
        // A group never indexed (position 0) is rescanned whatever its applied index says:
        // right after start a group's metrics may not show what its replica holds yet.
        let position = positions.get(&group).copied().unwrap_or(0);
        if group != META_GROUP && (position == 0 || position != applied) {
            feed.request_rescan(group);
        }
    }
    let (stop, stopped) = oneshot::channel();
    let indexer = Indexer {
        host,
        index,
        feed,
        pending: BTreeMap::new(),
        uncommitted_since: None,
        rescanning: BTreeSet::new(),
        sink,
    };
    IndexerHandle {
        stop,
        task: tokio::spawn(indexer.run(stopped)),
    }
}

struct Indexer<S: NodeStorage> {
    host: Arc<RaftHost<S>>,
    index: Arc<TantivyIndex>,
    feed: ChangeReceiver,
    pending: BTreeMap<GroupId, Pending>,
    /// When the oldest batch that no commit covers yet came (any kind, live ones included).
    uncommitted_since: Option<Instant>,
    /// The groups the commit being written rescans.
    rescanning: BTreeSet<GroupId>,
    /// The Meilisearch sink's inbox, when one runs.
    sink: Option<Arc<SinkInbox>>,
}

impl<S: NodeStorage> Indexer<S> {
    async fn run(mut self, mut stopped: oneshot::Receiver<()>) {
        let mut tick = tokio::time::interval(Duration::from_millis(COMMIT_INTERVAL_MS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                batch = self.feed.recv() => match batch {
                    Some(batch) => self.add(batch),
                    None => break,
                },
                _ = tick.tick() => self.commit(false).await,
            }
        }
        // The groups have stopped applying: one last commit leaves every position current.
        self.commit(true).await;
    }

    fn add(&mut self, batch: ChangeBatch) {
        if let Some(sink) = &self.sink {
            sink.changed(batch.group, &batch.auctions);
            let live: Vec<AuctionId> = batch.live.iter().map(|(id, _)| *id).collect();
            sink.changed(batch.group, &live);
        }
        self.uncommitted_since.get_or_insert_with(Instant::now);
        let pending = self.pending.entry(batch.group).or_default();
        pending.applied_index = pending.applied_index.max(batch.applied_index);
        let mut live = Vec::with_capacity(batch.live.len());
        let mut read_back = batch.auctions;
        for (id, record) in batch.live {
            match codec::decode::<Auction>(&record) {
                Ok(auction) => live.push(auction),
                Err(_) => read_back.push(id),
            }
        }
        read_back.extend(self.index.live().put(batch.group, live));
        if !read_back.is_empty() {
            pending.since.get_or_insert(batch.committed_at);
        }
        pending.auctions.extend(read_back);
        let all_searchable = pending.auctions.is_empty()
            && !self.rescanning.contains(&batch.group)
            && !self.feed.pending_rescans().contains(&batch.group);
        if all_searchable {
            self.index
                .set_searchable(batch.group, pending.applied_index);
        }
        if pending.auctions.len() > PENDING_AUCTIONS_MAX {
            pending.auctions.clear();
            self.feed.request_rescan(batch.group);
        }
    }

    fn publish_unindexed(&self, in_flight: &BTreeMap<GroupId, Instant>) {
        let mut since = in_flight.clone();
        for (group, pending) in &self.pending {
            if let Some(at) = pending.since {
                let entry = since.entry(*group).or_insert(at);
                *entry = (*entry).min(at);
            }
        }
        self.index.set_unindexed(since);
    }

    /// Whether a tick should commit (see the module doc); `marked` are the groups to rescan.
    fn commit_due(&self, marked: &BTreeMap<GroupId, Instant>) -> bool {
        let waited = self.uncommitted_since.is_some_and(|since| {
            Instant::now().saturating_duration_since(since) >= Duration::from_millis(FOLD_AFTER_MS)
        });
        !marked.is_empty()
            || waited
            || self.index.live().len() >= LIVE_AUCTIONS_MAX
            || self
                .pending
                .values()
                .any(|pending| !pending.auctions.is_empty())
    }

    /// Takes what is pending, writes it on the blocking pool while still receiving batches;
    /// on a tick only when [`Self::commit_due`], always when `force`d (the last one).
    async fn commit(&mut self, force: bool) {
        while let Some(batch) = self.feed.try_recv() {
            self.add(batch);
        }
        let marked = self.feed.take_rescans();
        let nothing_to_do =
            self.pending.is_empty() && marked.is_empty() && self.index.live().is_empty();
        if nothing_to_do || !(force || self.commit_due(&marked)) {
            self.publish_unindexed(&BTreeMap::new());
            return;
        }
        self.uncommitted_since = None;
        let fold = self.index.live().fold();
        let mut work = Work {
            changes: std::mem::take(&mut self.pending),
            ..Work::default()
        };
        for (group, auctions) in &fold.auctions {
            work.changes
                .entry(*group)
                .or_default()
                .auctions
                .extend(auctions.iter().copied());
        }
        let mut in_flight: BTreeMap<GroupId, Instant> = BTreeMap::new();
        for (group, at) in marked {
            if let Some(sink) = &self.sink {
                sink.request_resync(group);
            }
            let applied = match self.host.group_status(group) {
                Ok(status) => status.applied_index.unwrap_or(0),
                Err(_) => continue,
            };
            work.rescans.insert(group, applied);
            in_flight.insert(group, at);
        }
        for (group, pending) in &work.changes {
            if let Some(at) = pending.since {
                let entry = in_flight.entry(*group).or_insert(at);
                *entry = (*entry).min(at);
            }
        }
        if work.is_empty() {
            self.publish_unindexed(&BTreeMap::new());
            return;
        }
        self.publish_unindexed(&in_flight);
        let readers = self.readers(&work);
        let index = self.index.clone();
        let touched: BTreeSet<GroupId> = work
            .rescans
            .keys()
            .chain(work.changes.keys())
            .copied()
            .collect();
        self.rescanning = work.rescans.keys().copied().collect();
        let mut write = tokio::task::spawn_blocking(move || write(&index, &readers, work));
        let result = loop {
            tokio::select! {
                result = &mut write => break result,
                batch = self.feed.recv() => match batch {
                    Some(batch) => self.add(batch),
                    None => break (&mut write).await,
                },
            }
        };
        self.rescanning.clear();
        match result {
            Ok(Ok(())) => self.index.live().folded(&fold),
            Ok(Err(error)) => {
                tracing::error!(error = %error.message, "search index commit failed; rescanning");
                for group in touched {
                    self.feed.request_rescan(group);
                }
            }
            Err(_) => tracing::error!("the search index commit was interrupted"),
        }
        self.publish_unindexed(&BTreeMap::new());
    }

    fn readers(&self, work: &Work) -> BTreeMap<GroupId, GroupReader<S>> {
        work.rescans
            .keys()
            .chain(work.changes.keys())
            .filter_map(|group| Some((*group, self.host.local_reader(*group).ok()?)))
            .collect()
    }
}

fn store_error(error: auction_statemachine::StoreError) -> ApiError {
    ApiError::from(error)
}

/// The thumbnail of an auction's first image (a point read; most auctions have none).
fn cover<R: auction_statemachine::KvRead>(
    reader: &R,
    id: AuctionId,
) -> ApiResult<Option<ImageFile>> {
    let images = query::auction_images(reader, id).map_err(store_error)?;
    Ok(images.into_iter().next().map(|image| image.thumbnail))
}

/// Re-reads every auction of `group` into the batch, page by page.
fn rescan<R: auction_statemachine::KvRead>(
    batch: &mut Batch<'_>,
    group: GroupId,
    reader: &R,
) -> ApiResult<()> {
    batch.clear_group(group);
    let mut after = None;
    loop {
        let page = query::auctions(reader, after, query::PAGE_ITEMS_MAX).map_err(store_error)?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = Some(last.id);
        for auction in &page {
            batch.upsert(group, auction, cover(reader, auction.id)?.as_ref())?;
        }
    }
}

/// One commit: rescans first, then the changed auctions, then the positions.
fn write<R: auction_statemachine::KvRead>(
    index: &TantivyIndex,
    readers: &BTreeMap<GroupId, R>,
    work: Work,
) -> ApiResult<()> {
    let mut batch = index.begin();
    let positions = index.positions();
    for (group, applied) in &work.rescans {
        let Some(reader) = readers.get(group) else {
            continue;
        };
        rescan(&mut batch, *group, reader)?;
        batch.set_position(*group, *applied);
    }
    for (group, pending) in work.changes {
        let Some(reader) = readers.get(&group) else {
            continue;
        };
        if !work.rescans.contains_key(&group) {
            for id in &pending.auctions {
                match query::auction(reader, *id).map_err(store_error)? {
                    Some(auction) => batch.upsert(group, &auction, cover(reader, *id)?.as_ref())?,
                    None => batch.remove(*id),
                }
            }
        }
        let known = positions.get(&group).copied().unwrap_or(0);
        let rescanned = work.rescans.get(&group).copied().unwrap_or(0);
        batch.set_position(group, known.max(rescanned).max(pending.applied_index));
    }
    batch.commit()
}
