//! The RocksDB backend: every group's state in the `sm_data` column family of the node's one
//! RocksDB, keys prefixed by the group id (8 bytes, big-endian); the applied state in `sm_meta`.
//!
//! State writes are not synced on their own: they share the WAL with the Raft log, whose group
//! commit syncs it. After a crash, the applied state and the data it describes come back
//! together (one atomic batch), and openraft re-applies the committed entries after it.
//! Snapshots are kept as one file per group (`group-<id>.snap`), replaced atomically by rename.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use auction_statemachine::kv::{Pair, Write};
use auction_statemachine::{KvRead, StoreError};
use openraft::alias::SnapshotMetaOf;
use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, Direction, IteratorMode, WriteBatch, DB};

use super::snapshot::SnapshotReader;
use super::{AppliedState, Backend, SnapshotSource, SnapshotStore, SourceItem};
use crate::types::AuctionRaft;
use crate::{codec, GroupId};

pub const SM_DATA_CF: &str = "sm_data";
pub const SM_META_CF: &str = "sm_meta";
const APPLIED_KEY: &[u8] = b"applied";

/// The column families the state machines need; open the node's RocksDB with these too.
pub fn state_machine_column_families(cache: &rocksdb::Cache) -> Vec<ColumnFamilyDescriptor> {
    crate::rocks_options::column_families(&[SM_DATA_CF, SM_META_CF], cache)
}

fn missing(name: &str) -> io::Error {
    io::Error::other(format!("column family {name} is missing"))
}

fn group_prefix(group: GroupId) -> [u8; 8] {
    crate::group_key_prefix(group)
}

fn prefixed(group: GroupId, key: &[u8]) -> Vec<u8> {
    let mut full = Vec::with_capacity(8 + key.len());
    full.extend_from_slice(&group_prefix(group));
    full.extend_from_slice(key);
    full
}

/// One group's state machine data in the node's RocksDB.
pub struct RocksBackend {
    db: Arc<DB>,
    group: GroupId,
    snapshots: Arc<FileSnapshotStore>,
}

impl RocksBackend {
    pub fn new(db: Arc<DB>, group: GroupId, snapshot_dir: &Path) -> io::Result<Self> {
        for name in [SM_DATA_CF, SM_META_CF] {
            db.cf_handle(name).ok_or_else(|| missing(name))?;
        }
        let snapshots = Arc::new(FileSnapshotStore::new(snapshot_dir, group)?);
        Ok(RocksBackend {
            db,
            group,
            snapshots,
        })
    }

    /// A reader of this group's state for the API (local reads), cheap to clone.
    pub fn group_reader(&self) -> RocksGroupReader {
        RocksGroupReader {
            db: self.db.clone(),
            group: self.group,
        }
    }

    /// The file that holds this group's current snapshot.
    pub fn file_snapshots(&self) -> &FileSnapshotStore {
        &self.snapshots
    }

    fn cf(&self, name: &str) -> io::Result<&ColumnFamily> {
        self.db.cf_handle(name).ok_or_else(|| missing(name))
    }
}

/// Reads one group's state from the live database.
#[derive(Clone)]
pub struct RocksGroupReader {
    db: Arc<DB>,
    group: GroupId,
}

impl RocksGroupReader {
    pub fn new(db: Arc<DB>, group: GroupId) -> Self {
        RocksGroupReader { db, group }
    }
}

fn store_error(error: impl std::fmt::Display) -> StoreError {
    StoreError(error.to_string())
}

impl KvRead for RocksGroupReader {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let cf = self
            .db
            .cf_handle(SM_DATA_CF)
            .ok_or_else(|| StoreError(format!("missing {SM_DATA_CF}")))?;
        self.db
            .get_cf(&cf, prefixed(self.group, key))
            .map_err(store_error)
    }

    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Pair>, StoreError> {
        let cf = self
            .db
            .cf_handle(SM_DATA_CF)
            .ok_or_else(|| StoreError(format!("missing {SM_DATA_CF}")))?;
        let full_prefix = prefixed(self.group, prefix);
        let start = match after {
            Some(after) if after >= prefix => prefixed(self.group, after),
            _ => full_prefix.clone(),
        };
        let mut pairs = Vec::new();
        for item in self
            .db
            .iterator_cf(&cf, IteratorMode::From(&start, Direction::Forward))
        {
            let (key, value) = item.map_err(store_error)?;
            if !key.starts_with(&full_prefix) || pairs.len() >= limit {
                break;
            }
            if after.is_some() && *key == *start {
                continue;
            }
            pairs.push((key[8..].to_vec(), value.to_vec()));
        }
        Ok(pairs)
    }
}

impl Backend for RocksBackend {
    type Reader = RocksGroupReader;
    type Source = RocksGroupReader;

    fn reader(&self) -> RocksGroupReader {
        self.group_reader()
    }

    fn load_applied(&self) -> io::Result<AppliedState> {
        let cf = self.cf(SM_META_CF)?;
        match self
            .db
            .get_cf(&cf, prefixed(self.group, APPLIED_KEY))
            .map_err(io::Error::other)?
        {
            Some(bytes) => Ok(codec::decode("applied state", &bytes)?),
            None => Ok(AppliedState::default()),
        }
    }

    fn commit(
        &mut self,
        writes: BTreeMap<Vec<u8>, Write>,
        applied: &AppliedState,
    ) -> io::Result<()> {
        let data = self.cf(SM_DATA_CF)?;
        let meta = self.cf(SM_META_CF)?;
        let mut batch = WriteBatch::default();
        for (key, write) in writes {
            match write {
                Some(value) => batch.put_cf(&data, prefixed(self.group, &key), value),
                None => batch.delete_cf(&data, prefixed(self.group, &key)),
            }
        }
        batch.put_cf(
            &meta,
            prefixed(self.group, APPLIED_KEY),
            codec::encode("applied state", applied)?,
        );
        self.db.write(batch).map_err(io::Error::other)
    }

    fn replace(&mut self, snapshot: &[u8], applied: &AppliedState) -> io::Result<()> {
        let data = self.cf(SM_DATA_CF)?;
        let meta = self.cf(SM_META_CF)?;
        let mut batch = WriteBatch::default();
        let start = group_prefix(self.group);
        let end = group_prefix(self.group + 1);
        batch.delete_range_cf(&data, start, end);
        let mut reader = SnapshotReader::new(snapshot)?;
        while let Some((key, value)) = reader.next_pair()? {
            batch.put_cf(&data, prefixed(self.group, &key), value);
        }
        batch.put_cf(
            &meta,
            prefixed(self.group, APPLIED_KEY),
            codec::encode("applied state", applied)?,
        );
        self.db.write(batch).map_err(io::Error::other)
    }

    fn snapshot_source(&self) -> RocksGroupReader {
        self.group_reader()
    }

    fn snapshot_store(&self) -> Arc<dyn SnapshotStore> {
        self.snapshots.clone()
    }
}

impl SnapshotSource for RocksGroupReader {
    /// Reads the data and the applied state from one RocksDB snapshot, so they agree (apply
    /// writes both in one atomic batch). The view is held until the visit ends: RocksDB keeps
    /// what it needs meanwhile, so a long visit costs disk, never consistency.
    fn visit(&self, visitor: &mut dyn FnMut(SourceItem<'_>) -> io::Result<()>) -> io::Result<()> {
        let data = self
            .db
            .cf_handle(SM_DATA_CF)
            .ok_or_else(|| missing(SM_DATA_CF))?;
        let meta = self
            .db
            .cf_handle(SM_META_CF)
            .ok_or_else(|| missing(SM_META_CF))?;
        let view = self.db.snapshot();
        let applied = match view
            .get_cf(&meta, prefixed(self.group, APPLIED_KEY))
            .map_err(io::Error::other)?
        {
            Some(bytes) => codec::decode("applied state", &bytes)?,
            None => AppliedState::default(),
        };
        visitor(SourceItem::Applied(&applied))?;
        let prefix = group_prefix(self.group);
        for item in view.iterator_cf(&data, IteratorMode::From(&prefix, Direction::Forward)) {
            let (key, value) = item.map_err(io::Error::other)?;
            if !key.starts_with(&prefix) {
                break;
            }
            visitor(SourceItem::Record(&key[8..], &value))?;
        }
        Ok(())
    }
}

/// The current snapshot of one group as a file: `[meta length u32 LE][meta][snapshot bytes]`.
pub struct FileSnapshotStore {
    dir: PathBuf,
    path: PathBuf,
}

impl FileSnapshotStore {
    pub fn new(dir: &Path, group: GroupId) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        Ok(FileSnapshotStore {
            dir: dir.to_path_buf(),
            path: dir.join(format!("group-{group}.snap")),
        })
    }
}

impl FileSnapshotStore {
    /// Saves a snapshot whose bytes `write` produces into the file (buffered, so a snapshot
    /// that is streamed in is never held whole), replacing the current one atomically once
    /// `write` succeeds.
    pub fn save_with(
        &self,
        meta: &SnapshotMetaOf<AuctionRaft>,
        write: impl FnOnce(&mut dyn io::Write) -> io::Result<()>,
    ) -> io::Result<()> {
        let meta_bytes = codec::encode("snapshot meta", meta)?;
        let meta_len = u32::try_from(meta_bytes.len()).map_err(io::Error::other)?;
        let temporary = self.path.with_extension("snap.tmp");
        let mut file = io::BufWriter::new(fs::File::create(&temporary)?);
        file.write_all(&meta_len.to_le_bytes())?;
        file.write_all(&meta_bytes)?;
        write(&mut file)?;
        let file = file.into_inner().map_err(|error| error.into_error())?;
        file.sync_all()?;
        fs::rename(&temporary, &self.path)?;
        fs::File::open(&self.dir)?.sync_all()
    }
}

impl SnapshotStore for FileSnapshotStore {
    fn save(&self, meta: &SnapshotMetaOf<AuctionRaft>, data: &[u8]) -> io::Result<()> {
        self.save_with(meta, |out| out.write_all(data))
    }

    fn load(&self) -> io::Result<Option<(SnapshotMetaOf<AuctionRaft>, Vec<u8>)>> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error),
        };
        let (len_bytes, rest) = bytes
            .split_at_checked(4)
            .ok_or_else(|| io::Error::other("snapshot file too short"))?;
        let meta_len =
            u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
        let (meta_bytes, data) = rest
            .split_at_checked(meta_len)
            .ok_or_else(|| io::Error::other("snapshot file truncated"))?;
        Ok(Some((
            codec::decode("snapshot meta", meta_bytes)?,
            data.to_vec(),
        )))
    }
}
