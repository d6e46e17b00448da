//! The Raft log of every group of a node in one RocksDB, made durable by group commit.
//!
//! Layout (all integers big-endian, so keys sort by group, then index):
//!
//! | column family | key | value |
//! |---|---|---|
//! | `raft_log` | group id (8 bytes) ++ log index (8 bytes) | encoded entry |
//! | `raft_meta` | group id (8 bytes) ++ tag (1 byte) | encoded vote / committed / last purged log id |
//!
//! Write path: `append` writes its entries in one `WriteBatch` with `sync = false`, so they are
//! in the memtable and readable when `append` returns, then queues openraft's completion
//! callback for the node's single sync worker ([`super::group_commit`]), which calls
//! `flush_wal(sync = true)` once for every waiter queued meanwhile, from any group, and fires
//! their callbacks. Concurrent writers are also merged by RocksDB's own write groups, so each
//! append costs a memtable insert and a buffered WAL write; only the shared sync costs an
//! `fsync`. [`SyncCounters`] count syncs and synced entries for benchmarks.
//!
//! `save_vote` goes through the same queue and returns only after the sync. Truncation, purge
//! and the committed log id are written unsynced: the WAL is sequential, so the next sync
//! persists them before anything written after them, and losing them in a crash is harmless
//! (an unsynced truncation or purge simply has not happened yet).
//!
//! The database is opened elsewhere (the state machine shares it); [`open_db`] opens one with
//! the column families this module needs. The WAL must stay enabled for these writes.
//!
//! Not done yet: reads and unsynced writes run on the calling async task (they do not `fsync`,
//! but a slow disk can still stall it); no per-group deletion of the whole log; no compaction
//! tuning for the log column family.

use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::{Arc, Weak};

use openraft::alias::{LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, RaftTypeConfig};
use rocksdb::{
    Cache, ColumnFamily, ColumnFamilyDescriptor, Direction, IteratorMode, ReadOptions, WriteBatch,
    WriteOptions, DB,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::group_commit::{
    spawn_sync_thread, Durability, GroupCommitLimits, SyncCounters, SyncQueue,
};
use super::index_range;
use crate::codec;
use crate::error::Error;
use crate::GroupId;

/// Column family of log entries.
pub const RAFT_LOG_CF: &str = "raft_log";
/// Column family of per-group vote, committed and last-purged log ids.
pub const RAFT_META_CF: &str = "raft_meta";

const META_VOTE: u8 = 1;
const META_COMMITTED: u8 = 2;
const META_LAST_PURGED: u8 = 3;

/// Bounds of the RocksDB log of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RocksLogLimits {
    pub group_commit: GroupCommitLimits,
    /// Entries returned by one `limited_get_log_entries` call at most (one replication batch).
    pub read_batch_entries_max: usize,
}

impl Default for RocksLogLimits {
    fn default() -> Self {
        Self {
            group_commit: GroupCommitLimits::default(),
            read_batch_entries_max: 4096,
        }
    }
}

/// The column families this module needs, for callers that open the database themselves.
pub fn raft_column_families(cache: &Cache) -> Vec<ColumnFamilyDescriptor> {
    crate::rocks_options::column_families(&[RAFT_LOG_CF, RAFT_META_CF], cache)
}

/// Opens (creating if needed) a RocksDB at `path` with the Raft column families.
pub fn open_db(path: impl AsRef<Path>) -> Result<Arc<DB>, Error> {
    open_db_with_column_families(path, false)
}

/// Opens (creating if needed) a RocksDB at `path` with the Raft column families and the state
/// machine's, so that one database and one WAL serve the whole node; tuned as
/// [`crate::rocks_options`] says.
pub fn open_db_with_column_families(
    path: impl AsRef<Path>,
    with_state: bool,
) -> Result<Arc<DB>, Error> {
    let path = path.as_ref();
    std::fs::create_dir_all(path)?;
    let cache = crate::rocks_options::block_cache();
    let mut families = raft_column_families(&cache);
    if with_state {
        families.extend(crate::state_machine::rocks::state_machine_column_families(
            &cache,
        ));
    }
    let options = crate::rocks_options::db_options(path);
    let db = DB::open_cf_descriptors(&options, path, families)?;
    Ok(Arc::new(db))
}

fn log_key(group_id: GroupId, index: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&crate::group_key_prefix(group_id));
    key[8..].copy_from_slice(&index.to_be_bytes());
    key
}

/// A key after every log key of `group_id` and before any key of the next group.
fn log_key_group_end(group_id: GroupId) -> [u8; 17] {
    let mut key = [0xffu8; 17];
    key[..8].copy_from_slice(&crate::group_key_prefix(group_id));
    key[16] = 0;
    key
}

/// The exclusive upper key of log indexes `< end` (`None`: all of the group).
fn log_key_upper(group_id: GroupId, end: Option<u64>) -> Vec<u8> {
    match end {
        Some(end) => log_key(group_id, end).to_vec(),
        None => log_key_group_end(group_id).to_vec(),
    }
}

fn parse_log_key(key: &[u8]) -> Option<(GroupId, u64)> {
    let group: [u8; 8] = key.get(..8)?.try_into().ok()?;
    let index: [u8; 8] = key.get(8..16)?.try_into().ok()?;
    let group = GroupId::try_from(u64::from_be_bytes(group)).ok()?;
    (key.len() == 16).then(|| (group, u64::from_be_bytes(index)))
}

fn meta_key(group_id: GroupId, tag: u8) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[..8].copy_from_slice(&crate::group_key_prefix(group_id));
    key[8] = tag;
    key
}

fn unsynced_write_options() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.set_sync(false);
    options.disable_wal(false);
    options
}

/// Syncs the WAL. Holds the database weakly: the database closes when its owners drop it, on
/// their thread, not whenever this worker happens to exit (RocksDB must not be torn down by a
/// detached thread racing the process exit).
pub(crate) struct WalSync {
    db: Weak<DB>,
}

impl WalSync {
    pub(crate) fn new(db: &Arc<DB>) -> Self {
        Self {
            db: Arc::downgrade(db),
        }
    }
}

impl Durability for WalSync {
    fn sync(&self) -> Result<(), String> {
        let Some(db) = self.db.upgrade() else {
            return Err("the database is closed".to_string());
        };
        db.flush_wal(true).map_err(|error| error.to_string())
    }
}

/// The node-wide RocksDB log: owns the sync worker and hands out per-group handles.
pub struct RocksLog<C: RaftTypeConfig> {
    db: Arc<DB>,
    queue: SyncQueue<C>,
    counters: Arc<SyncCounters>,
    limits: RocksLogLimits,
    sync_thread: std::thread::JoinHandle<()>,
}

impl<C: RaftTypeConfig> RocksLog<C> {
    /// Starts the sync worker (a dedicated thread) over `db`, which must have been opened with
    /// [`raft_column_families`]. The worker stops when this value and every handle are dropped.
    pub fn start(db: Arc<DB>, limits: RocksLogLimits) -> Result<Self, Error> {
        let durability = Arc::new(WalSync::new(&db));
        Self::start_with_durability(db, limits, durability)
    }

    /// [`Self::start`] with another durability action (tests gate the sync with it).
    pub(crate) fn start_with_durability(
        db: Arc<DB>,
        limits: RocksLogLimits,
        durability: Arc<dyn Durability>,
    ) -> Result<Self, Error> {
        for name in [RAFT_LOG_CF, RAFT_META_CF] {
            if db.cf_handle(name).is_none() {
                return Err(Error::MissingColumnFamily(name));
            }
        }
        assert!(
            limits.read_batch_entries_max > 0,
            "a read batch must hold one entry"
        );
        let (queue, rx) = SyncQueue::new(limits.group_commit);
        let counters = Arc::new(SyncCounters::default());
        let sync_thread = spawn_sync_thread(
            "raft-log-sync",
            durability,
            counters.clone(),
            rx,
            limits.group_commit,
        )?;
        Ok(Self {
            db,
            queue,
            counters,
            limits,
            sync_thread,
        })
    }

    /// Stops the sync worker and waits for it, so the database can be closed and reopened.
    /// Blocks until every group handle is dropped too: drop the groups' `Raft`s first.
    pub fn close(self) -> Result<(), Error> {
        let Self {
            queue, sync_thread, ..
        } = self;
        drop(queue);
        sync_thread
            .join()
            .map_err(|_| Error::Io(io::Error::other("the log sync thread panicked")))
    }

    /// The log store of one group. Create one per group and hand it to that group's `Raft`.
    pub fn group(&self, group_id: GroupId) -> RocksLogStore<C> {
        RocksLogStore {
            group_id,
            db: self.db.clone(),
            queue: self.queue.clone(),
            read_batch_entries_max: self.limits.read_batch_entries_max,
        }
    }

    /// Sync counters, for reporting syncs per committed entry.
    pub fn counters(&self) -> Arc<SyncCounters> {
        self.counters.clone()
    }

    pub fn db(&self) -> &Arc<DB> {
        &self.db
    }
}

/// One group's log in the node's RocksDB; also its own log reader.
pub struct RocksLogStore<C: RaftTypeConfig> {
    group_id: GroupId,
    db: Arc<DB>,
    queue: SyncQueue<C>,
    read_batch_entries_max: usize,
}

impl<C: RaftTypeConfig> Clone for RocksLogStore<C> {
    fn clone(&self) -> Self {
        Self {
            group_id: self.group_id,
            db: self.db.clone(),
            queue: self.queue.clone(),
            read_batch_entries_max: self.read_batch_entries_max,
        }
    }
}

impl<C: RaftTypeConfig> RocksLogStore<C> {
    pub fn group_id(&self) -> GroupId {
        self.group_id
    }

    fn log_cf(&self) -> Result<&ColumnFamily, Error> {
        self.db
            .cf_handle(RAFT_LOG_CF)
            .ok_or(Error::MissingColumnFamily(RAFT_LOG_CF))
    }

    fn meta_cf(&self) -> Result<&ColumnFamily, Error> {
        self.db
            .cf_handle(RAFT_META_CF)
            .ok_or(Error::MissingColumnFamily(RAFT_META_CF))
    }

    fn read_meta<T: DeserializeOwned>(
        &self,
        tag: u8,
        what: &'static str,
    ) -> Result<Option<T>, Error> {
        let bytes = self
            .db
            .get_pinned_cf(self.meta_cf()?, meta_key(self.group_id, tag))?;
        bytes.map(|bytes| codec::decode(what, &bytes)).transpose()
    }

    fn put_meta<T: Serialize>(
        &self,
        batch: &mut WriteBatch,
        tag: u8,
        what: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        batch.put_cf(
            self.meta_cf()?,
            meta_key(self.group_id, tag),
            codec::encode(what, value)?,
        );
        Ok(())
    }

    fn write_unsynced(&self, batch: WriteBatch) -> Result<(), Error> {
        self.db.write_opt(batch, &unsynced_write_options())?;
        Ok(())
    }

    /// Reads entries with indexes in `[start, end)`, at most `entries_max`, from one consistent
    /// view (a RocksDB iterator reads from an implicit snapshot). A gap is corruption.
    fn read_entries(
        &self,
        start: u64,
        end: Option<u64>,
        entries_max: usize,
    ) -> Result<Vec<C::Entry>, Error> {
        if end.is_some_and(|end| start >= end) {
            return Ok(Vec::new());
        }
        let mut read_options = ReadOptions::default();
        read_options.set_iterate_upper_bound(log_key_upper(self.group_id, end));
        let start_key = log_key(self.group_id, start);
        let iterator = self.db.iterator_cf_opt(
            self.log_cf()?,
            read_options,
            IteratorMode::From(&start_key, Direction::Forward),
        );
        let mut entries: Vec<C::Entry> = Vec::new();
        for item in iterator {
            if entries.len() >= entries_max {
                break;
            }
            let (key, value) = item?;
            let (group_id, index) = parse_log_key(&key).ok_or_else(|| self.corrupt("bad key"))?;
            if group_id != self.group_id {
                return Err(self.corrupt("iterator left the group's key range"));
            }
            if let Some(previous) = entries.last() {
                if index != previous.index() + 1 {
                    return Err(self.corrupt(&format!("hole before index {index}")));
                }
            }
            let entry: C::Entry = codec::decode("log entry", &value)?;
            if entry.index() != index {
                return Err(self.corrupt(&format!("entry {} stored at {index}", entry.index())));
            }
            entries.push(entry);
        }
        Ok(entries)
    }

    fn last_entry_log_id(&self) -> Result<Option<LogIdOf<C>>, Error> {
        let end_key = log_key_group_end(self.group_id);
        let mut iterator = self.db.iterator_cf(
            self.log_cf()?,
            IteratorMode::From(&end_key, Direction::Reverse),
        );
        let Some(item) = iterator.next() else {
            return Ok(None);
        };
        let (key, value) = item?;
        match parse_log_key(&key) {
            Some((group_id, _)) if group_id == self.group_id => {
                let entry: C::Entry = codec::decode("log entry", &value)?;
                Ok(Some(entry.log_id()))
            }
            _ => Ok(None),
        }
    }

    fn corrupt(&self, reason: &str) -> Error {
        Error::CorruptLog {
            group_id: self.group_id,
            reason: reason.to_string(),
        }
    }

    fn append_unsynced(&self, entries: impl IntoIterator<Item = C::Entry>) -> Result<u64, Error> {
        let log_cf = self.log_cf()?;
        let mut batch = WriteBatch::default();
        let mut count: u64 = 0;
        let mut previous_index: Option<u64> = None;
        for entry in entries {
            let index = entry.index();
            if previous_index.is_some_and(|previous| index != previous + 1) {
                return Err(self.corrupt(&format!("append is not contiguous at index {index}")));
            }
            batch.put_cf(
                log_cf,
                log_key(self.group_id, index),
                codec::encode("log entry", &entry)?,
            );
            previous_index = Some(index);
            count += 1;
        }
        if count > 0 {
            self.write_unsynced(batch)?;
        }
        Ok(count)
    }
}

impl<C: RaftTypeConfig> RaftLogReader<C> for RocksLogStore<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, io::Error> {
        let (start, end) = index_range(&range);
        Ok(self.read_entries(start, end, usize::MAX)?)
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<C>>, io::Error> {
        Ok(self.read_meta(META_VOTE, "vote")?)
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<C::Entry>, io::Error> {
        Ok(self.read_entries(start, Some(end), self.read_batch_entries_max)?)
    }
}

impl<C: RaftTypeConfig> RaftLogStorage<C> for RocksLogStore<C> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        let last_purged_log_id: Option<LogIdOf<C>> =
            self.read_meta(META_LAST_PURGED, "last purged log id")?;
        let last_log_id = self
            .last_entry_log_id()?
            .or_else(|| last_purged_log_id.clone());
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> Result<(), io::Error> {
        let mut batch = WriteBatch::default();
        self.put_meta(&mut batch, META_VOTE, "vote", vote)?;
        self.write_unsynced(batch)?;
        self.queue.wait_synced(0).await?;
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        let mut batch = WriteBatch::default();
        match &committed {
            Some(log_id) => {
                self.put_meta(&mut batch, META_COMMITTED, "committed log id", log_id)?
            }
            None => batch.delete_cf(self.meta_cf()?, meta_key(self.group_id, META_COMMITTED)),
        }
        self.write_unsynced(batch)?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<C>>, io::Error> {
        Ok(self.read_meta(META_COMMITTED, "committed log id")?)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let count = self.append_unsynced(entries)?;
        self.queue.append_synced(callback, count, 0).await?;
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        let first_removed = last_log_id.map_or(0, |log_id| log_id.index + 1);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            self.log_cf()?,
            log_key(self.group_id, first_removed).to_vec(),
            log_key_group_end(self.group_id).to_vec(),
        );
        self.write_unsynced(batch)?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> Result<(), io::Error> {
        let mut batch = WriteBatch::default();
        self.put_meta(&mut batch, META_LAST_PURGED, "last purged log id", &log_id)?;
        batch.delete_range_cf(
            self.log_cf()?,
            log_key(self.group_id, 0).to_vec(),
            log_key_upper(self.group_id, log_id.index.checked_add(1)),
        );
        self.write_unsynced(batch)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
