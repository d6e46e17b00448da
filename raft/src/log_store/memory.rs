//! The Raft log of every group of a node in memory, with honest crash semantics, for the
//! deterministic simulator and for tests.
//!
//! It has the shape of the RocksDB log ([`super::rocks`]): writes are visible at once in a
//! *live* copy and recorded in an ordered list of unsynced operations (the stand-in for the
//! WAL); the node's single sync worker ([`super::group_commit`]) applies that list to a
//! *durable* copy and only then fires the appends' callbacks. A simulated crash keeps the
//! durable copy and nothing else, so a crash loses exactly the writes a real crash could lose:
//! those whose callback has not fired (and perhaps some newer ones, never older ones).
//!
//! Two sync modes:
//! - [`SyncMode::Background`]: a tokio task syncs as soon as a waiter is queued, like the
//!   RocksDB worker. Under a simulator the task runs on the simulated host's runtime.
//! - [`SyncMode::Manual`]: nothing syncs until [`MemLog::sync_now`] is called; a simulator uses
//!   it to model a slow disk or a crash with writes in flight. Appends and votes wait (the
//!   queue is bounded) until the simulator syncs.
//!
//! A crash: stop the node's `Raft` instances, then either take [`MemLog::durable_state`] and
//! [`MemLog::reopen`] it (a fresh node process), or call [`MemLog::crash`] on the same value.
//!
//! A [`SyncDelay`] ([`MemLog::reopen_delayed`]) makes every background sync wait first, in
//! tokio time (simulated time under a simulator): a slow disk, whose unsynced appends stay
//! unsynced long enough for a crash to catch them while followers already committed them.
//!
//! Not done yet: no injected I/O errors or torn writes.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use openraft::alias::{LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, RaftTypeConfig};
use tokio::sync::mpsc;

use super::group_commit::{
    drain_batch, spawn_sync_task, sync_batch, Durability, GroupCommitLimits, SyncCounters,
    SyncQueue, SyncWaiter,
};
use super::index_range;
use crate::error::Error;
use crate::GroupId;

/// When the in-memory log syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// A background task syncs whenever a waiter is queued.
    Background,
    /// Only [`MemLog::sync_now`] syncs.
    Manual,
}

/// How long each background sync of a [`MemLog`] waits before it syncs, in ms; shared with
/// whoever slows the disk (0, the default, syncs at once).
#[derive(Debug, Clone, Default)]
pub struct SyncDelay(Arc<AtomicU64>);

impl SyncDelay {
    pub fn set_ms(&self, ms: u64) {
        self.0.store(ms, Ordering::Relaxed);
    }

    pub fn ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Bounds of the in-memory log of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemLogLimits {
    pub group_commit: GroupCommitLimits,
    /// Unsynced operations kept at most; past it, writes fail (in manual mode: sync sooner).
    pub unsynced_ops_max: usize,
    /// Entries returned by one `limited_get_log_entries` call at most.
    pub read_batch_entries_max: usize,
}

impl Default for MemLogLimits {
    fn default() -> Self {
        Self {
            group_commit: GroupCommitLimits::default(),
            unsynced_ops_max: 65_536,
            read_batch_entries_max: 4096,
        }
    }
}

/// One group's log, live or durable.
struct GroupLog<C: RaftTypeConfig> {
    entries: BTreeMap<u64, C::Entry>,
    vote: Option<VoteOf<C>>,
    committed: Option<LogIdOf<C>>,
    last_purged: Option<LogIdOf<C>>,
}

impl<C: RaftTypeConfig> Default for GroupLog<C> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
            vote: None,
            committed: None,
            last_purged: None,
        }
    }
}

impl<C: RaftTypeConfig> Clone for GroupLog<C>
where
    C::Entry: Clone,
{
    fn clone(&self) -> Self {
        Self {
            entries: self.entries.clone(),
            vote: self.vote.clone(),
            committed: self.committed.clone(),
            last_purged: self.last_purged.clone(),
        }
    }
}

/// One write, as recorded in the unsynced list (the stand-in for the WAL).
enum MemOp<C: RaftTypeConfig> {
    Append(Vec<C::Entry>),
    /// Removes every entry with an index at or above this one.
    TruncateFrom(u64),
    Purge(LogIdOf<C>),
    Vote(VoteOf<C>),
    Committed(Option<LogIdOf<C>>),
}

impl<C: RaftTypeConfig> GroupLog<C>
where
    C::Entry: Clone,
{
    fn apply(&mut self, op: &MemOp<C>) {
        match op {
            MemOp::Append(entries) => {
                for entry in entries {
                    self.entries.insert(entry.index(), entry.clone());
                }
            }
            MemOp::TruncateFrom(first_removed) => {
                self.entries.split_off(first_removed);
            }
            MemOp::Purge(log_id) => {
                self.entries = match log_id.index.checked_add(1) {
                    Some(first_kept) => self.entries.split_off(&first_kept),
                    None => BTreeMap::new(),
                };
                self.last_purged = Some(log_id.clone());
            }
            MemOp::Vote(vote) => self.vote = Some(vote.clone()),
            MemOp::Committed(committed) => self.committed = committed.clone(),
        }
    }
}

/// What survives a crash: every group's log as of the last sync.
pub struct MemDurableState<C: RaftTypeConfig> {
    groups: BTreeMap<GroupId, GroupLog<C>>,
}

impl<C: RaftTypeConfig> Clone for MemDurableState<C>
where
    C::Entry: Clone,
{
    fn clone(&self) -> Self {
        Self {
            groups: self.groups.clone(),
        }
    }
}

impl<C: RaftTypeConfig> Default for MemDurableState<C> {
    fn default() -> Self {
        Self {
            groups: BTreeMap::new(),
        }
    }
}

struct MemState<C: RaftTypeConfig> {
    live: BTreeMap<GroupId, GroupLog<C>>,
    durable: BTreeMap<GroupId, GroupLog<C>>,
    unsynced: Vec<(GroupId, MemOp<C>)>,
    /// Bumped by every crash; waiters queued before it must not be reported durable.
    epoch: u64,
}

struct MemShared<C: RaftTypeConfig> {
    state: Mutex<MemState<C>>,
    limits: MemLogLimits,
}

impl<C: RaftTypeConfig> MemShared<C> {
    // A panic while holding the lock leaves the maps consistent (every update is one call), so
    // a poisoned lock is still usable.
    fn lock(&self) -> MutexGuard<'_, MemState<C>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<C: RaftTypeConfig> Durability for MemShared<C>
where
    C::Entry: Clone,
{
    fn sync(&self) -> Result<(), String> {
        let mut state = self.lock();
        let unsynced = std::mem::take(&mut state.unsynced);
        for (group_id, op) in &unsynced {
            state.durable.entry(*group_id).or_default().apply(op);
        }
        Ok(())
    }

    fn epoch(&self) -> u64 {
        self.lock().epoch
    }
}

/// The background sync worker of a slow disk: like the group-commit worker, but each round
/// first waits the delay in force (the writes queued meanwhile join the round).
fn spawn_delayed_sync_task<C: RaftTypeConfig>(
    shared: Arc<MemShared<C>>,
    counters: Arc<SyncCounters>,
    mut rx: mpsc::Receiver<SyncWaiter<C>>,
    limits: MemLogLimits,
    delay: SyncDelay,
) where
    C::Entry: Clone,
{
    tokio::spawn(async move {
        let mut failure = None;
        while let Some(first) = rx.recv().await {
            let ms = delay.ms();
            if ms > 0 {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            let batch = drain_batch(first, &mut rx, limits.group_commit.sync_batch_waiters_max);
            sync_batch(shared.as_ref(), &mut failure, &counters, batch);
        }
    });
}

/// The node-wide in-memory log: hands out per-group handles, syncs, crashes.
pub struct MemLog<C: RaftTypeConfig> {
    shared: Arc<MemShared<C>>,
    queue: SyncQueue<C>,
    counters: Arc<SyncCounters>,
    /// The sync queue's receiving side in manual mode; the background task owns it otherwise.
    manual_rx: Mutex<Option<mpsc::Receiver<SyncWaiter<C>>>>,
}

impl<C: RaftTypeConfig> MemLog<C>
where
    C::Entry: Clone,
{
    /// An empty log. [`SyncMode::Background`] must be called inside a tokio runtime.
    pub fn new(limits: MemLogLimits, mode: SyncMode) -> Self {
        Self::reopen(MemDurableState::default(), limits, mode)
    }

    /// A log that starts from what survived a crash.
    pub fn reopen(durable: MemDurableState<C>, limits: MemLogLimits, mode: SyncMode) -> Self {
        Self::open(durable, limits, mode, None)
    }

    /// [`Self::reopen`] in background mode, every sync waiting `delay` first (a slow disk).
    /// Must be called inside a tokio runtime.
    pub fn reopen_delayed(
        durable: MemDurableState<C>,
        limits: MemLogLimits,
        delay: SyncDelay,
    ) -> Self {
        Self::open(durable, limits, SyncMode::Background, Some(delay))
    }

    fn open(
        durable: MemDurableState<C>,
        limits: MemLogLimits,
        mode: SyncMode,
        delay: Option<SyncDelay>,
    ) -> Self {
        assert!(
            limits.unsynced_ops_max > 0,
            "must allow one unsynced operation"
        );
        assert!(
            limits.read_batch_entries_max > 0,
            "a read batch must hold one entry"
        );
        let shared = Arc::new(MemShared {
            state: Mutex::new(MemState {
                live: durable.groups.clone(),
                durable: durable.groups,
                unsynced: Vec::new(),
                epoch: 0,
            }),
            limits,
        });
        let (queue, rx) = SyncQueue::new(limits.group_commit);
        let counters = Arc::new(SyncCounters::default());
        let manual_rx = match (mode, delay) {
            (SyncMode::Background, None) => {
                spawn_sync_task(shared.clone(), counters.clone(), rx, limits.group_commit);
                None
            }
            (SyncMode::Background, Some(delay)) => {
                spawn_delayed_sync_task(shared.clone(), counters.clone(), rx, limits, delay);
                None
            }
            (SyncMode::Manual, _) => Some(rx),
        };
        Self {
            shared,
            queue,
            counters,
            manual_rx: Mutex::new(manual_rx),
        }
    }

    /// The log store of one group. Create one per group and hand it to that group's `Raft`.
    pub fn group(&self, group_id: GroupId) -> MemLogStore<C> {
        MemLogStore {
            group_id,
            shared: self.shared.clone(),
            queue: self.queue.clone(),
        }
    }

    /// Makes every write so far durable and, in manual mode, completes every queued waiter.
    pub fn sync_now(&self) {
        let mut manual_rx = self
            .manual_rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(rx) = manual_rx.as_mut() else {
            // Background mode: the worker completes the waiters; just persist the writes.
            let _ = self.shared.sync();
            return;
        };
        let limits = self.shared.limits.group_commit;
        let mut failure = None;
        let mut drained = 0;
        // Bounded: at most the queue's capacity is waiting.
        while drained < limits.sync_queue_waiters_max {
            let Ok(first) = rx.try_recv() else {
                break;
            };
            let batch = drain_batch(first, rx, limits.sync_batch_waiters_max);
            drained += batch.len();
            sync_batch(self.shared.as_ref(), &mut failure, &self.counters, batch);
        }
        if drained == 0 {
            let _ = self.shared.sync();
        }
    }

    /// Simulates a crash: every unsynced write is lost, every queued waiter fails. Stop the
    /// node's `Raft` instances first; handles created before the crash see the durable state.
    pub fn crash(&self) {
        {
            let mut state = self.shared.lock();
            state.unsynced.clear();
            state.live = state.durable.clone();
            state.epoch += 1;
        }
        let mut manual_rx = self
            .manual_rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(rx) = manual_rx.as_mut() {
            // Their callbacks are dropped unfired: the writes they wait for are gone.
            while rx.try_recv().is_ok() {}
        }
    }

    /// A copy of what would survive a crash now.
    pub fn durable_state(&self) -> MemDurableState<C> {
        MemDurableState {
            groups: self.shared.lock().durable.clone(),
        }
    }

    /// The log ids of `group_id`'s live entries with indexes in `from..=to` (those present: a
    /// purged or missing index is left out), for checkers that watch committed entries.
    pub fn live_log_ids(&self, group_id: GroupId, from: u64, to: u64) -> Vec<LogIdOf<C>> {
        let state = self.shared.lock();
        let Some(log) = state.live.get(&group_id) else {
            return Vec::new();
        };
        if from > to {
            return Vec::new();
        }
        log.entries
            .range(from..=to)
            .map(|(_, entry)| entry.log_id())
            .collect()
    }

    /// Writes recorded but not yet synced.
    pub fn unsynced_ops(&self) -> usize {
        self.shared.lock().unsynced.len()
    }

    /// Sync counters, for reporting syncs per committed entry.
    pub fn counters(&self) -> Arc<SyncCounters> {
        self.counters.clone()
    }
}

/// One group's log in the node's in-memory log; also its own log reader.
pub struct MemLogStore<C: RaftTypeConfig> {
    group_id: GroupId,
    shared: Arc<MemShared<C>>,
    queue: SyncQueue<C>,
}

impl<C: RaftTypeConfig> Clone for MemLogStore<C> {
    fn clone(&self) -> Self {
        Self {
            group_id: self.group_id,
            shared: self.shared.clone(),
            queue: self.queue.clone(),
        }
    }
}

impl<C: RaftTypeConfig> MemLogStore<C>
where
    C::Entry: Clone,
{
    pub fn group_id(&self) -> GroupId {
        self.group_id
    }

    /// Applies `op` to the live log and records it as unsynced; returns the current epoch.
    fn write(&self, op: MemOp<C>) -> Result<u64, Error> {
        let mut state = self.shared.lock();
        if state.unsynced.len() >= self.shared.limits.unsynced_ops_max {
            return Err(Error::Io(io::Error::other(format!(
                "{} unsynced log operations: nothing is syncing the in-memory log",
                state.unsynced.len()
            ))));
        }
        state.live.entry(self.group_id).or_default().apply(&op);
        state.unsynced.push((self.group_id, op));
        Ok(state.epoch)
    }

    fn read<T>(&self, read: impl FnOnce(&GroupLog<C>) -> T) -> T {
        let state = self.shared.lock();
        match state.live.get(&self.group_id) {
            Some(log) => read(log),
            None => read(&GroupLog::default()),
        }
    }

    fn read_entries(&self, start: u64, end: Option<u64>, entries_max: usize) -> Vec<C::Entry> {
        if end.is_some_and(|end| start >= end) {
            return Vec::new();
        }
        self.read(|log| {
            let range = match end {
                Some(end) => log.entries.range(start..end),
                None => log.entries.range(start..),
            };
            range
                .take(entries_max)
                .map(|(_, entry)| entry.clone())
                .collect()
        })
    }
}

impl<C: RaftTypeConfig> RaftLogReader<C> for MemLogStore<C>
where
    C::Entry: Clone,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, io::Error> {
        let (start, end) = index_range(&range);
        Ok(self.read_entries(start, end, usize::MAX))
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<C>>, io::Error> {
        Ok(self.read(|log| log.vote.clone()))
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<C::Entry>, io::Error> {
        let entries_max = self.shared.limits.read_batch_entries_max;
        Ok(self.read_entries(start, Some(end), entries_max))
    }
}

impl<C: RaftTypeConfig> RaftLogStorage<C> for MemLogStore<C>
where
    C::Entry: Clone,
{
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        Ok(self.read(|log| {
            let last_log_id = log.entries.values().next_back().map(RaftEntry::log_id);
            LogState {
                last_purged_log_id: log.last_purged.clone(),
                last_log_id: last_log_id.or_else(|| log.last_purged.clone()),
            }
        }))
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> Result<(), io::Error> {
        let epoch = self.write(MemOp::Vote(vote.clone()))?;
        self.queue.wait_synced(epoch).await?;
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        self.write(MemOp::Committed(committed))?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<C>>, io::Error> {
        Ok(self.read(|log| log.committed.clone()))
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<C::Entry> = entries.into_iter().collect();
        let count = entries.len() as u64;
        let epoch = self.write(MemOp::Append(entries))?;
        self.queue.append_synced(callback, count, epoch).await?;
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        let first_removed = last_log_id.map_or(0, |log_id| log_id.index + 1);
        self.write(MemOp::TruncateFrom(first_removed))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> Result<(), io::Error> {
        self.write(MemOp::Purge(log_id))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
