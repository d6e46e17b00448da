//! The simulator's backend: a group's state in a [`MemKv`], lost entirely on a simulated crash
//! (it is rebuilt by openraft from the last snapshot and the durable log), and its snapshots in
//! a [`MemSnapshotStore`] that the simulated disk keeps across crashes.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, RwLock};

use auction_statemachine::kv::{Pair, Write};
use auction_statemachine::{KvRead, KvStore, MemKv, StoreError};
use openraft::alias::SnapshotMetaOf;

use super::snapshot::SnapshotReader;
use super::{AppliedState, Backend, SnapshotSource, SnapshotStore, SourceItem};
use crate::types::AuctionRaft;

/// A shared handle on one group's in-memory state; each call takes the lock briefly, so no
/// guard is ever held across an `.await`.
#[derive(Clone, Default)]
pub struct MemGroupReader {
    kv: Arc<RwLock<MemKv>>,
}

fn poisoned() -> StoreError {
    StoreError("in-memory state lock poisoned".to_owned())
}

impl MemGroupReader {
    /// A copy of the whole state (tests and replica comparison).
    pub fn copy(&self) -> Result<MemKv, StoreError> {
        Ok(self.kv.read().map_err(|_| poisoned())?.clone())
    }
}

impl KvRead for MemGroupReader {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.kv.read().map_err(|_| poisoned())?.get(key)
    }

    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Pair>, StoreError> {
        self.kv
            .read()
            .map_err(|_| poisoned())?
            .scan(prefix, after, limit)
    }
}

/// One group's state in memory.
pub struct MemBackend {
    state: MemGroupReader,
    applied: AppliedState,
    snapshots: Arc<MemSnapshotStore>,
}

impl MemBackend {
    /// A fresh, empty state machine whose snapshots go to `snapshots` (which survives crashes).
    pub fn new(snapshots: Arc<MemSnapshotStore>) -> Self {
        MemBackend {
            state: MemGroupReader::default(),
            applied: AppliedState::default(),
            snapshots,
        }
    }

    /// A copy of the whole state.
    pub fn kv(&self) -> MemKv {
        self.state.copy().unwrap_or_default()
    }
}

fn store_io(error: StoreError) -> io::Error {
    io::Error::other(error.to_string())
}

impl Backend for MemBackend {
    type Reader = MemGroupReader;
    type Source = MemSnapshotSource;

    fn reader(&self) -> MemGroupReader {
        self.state.clone()
    }

    fn load_applied(&self) -> io::Result<AppliedState> {
        Ok(self.applied.clone())
    }

    fn commit(
        &mut self,
        writes: BTreeMap<Vec<u8>, Write>,
        applied: &AppliedState,
    ) -> io::Result<()> {
        let mut kv = self.state.kv.write().map_err(|_| store_io(poisoned()))?;
        for (key, write) in writes {
            match write {
                Some(value) => kv.put(&key, &value).map_err(store_io)?,
                None => kv.delete(&key).map_err(store_io)?,
            }
        }
        self.applied = applied.clone();
        Ok(())
    }

    fn replace(&mut self, snapshot: &[u8], applied: &AppliedState) -> io::Result<()> {
        let mut fresh = MemKv::new();
        let mut reader = SnapshotReader::new(snapshot)?;
        while let Some((key, value)) = reader.next_pair()? {
            fresh.put(&key, &value).map_err(store_io)?;
        }
        *self.state.kv.write().map_err(|_| store_io(poisoned()))? = fresh;
        self.applied = applied.clone();
        Ok(())
    }

    fn snapshot_source(&self) -> MemSnapshotSource {
        MemSnapshotSource {
            kv: self.kv(),
            applied: self.applied.clone(),
        }
    }

    fn snapshot_store(&self) -> Arc<dyn SnapshotStore> {
        self.snapshots.clone()
    }
}

/// A copy of the state taken on the apply task, exported later by the snapshot builder.
pub struct MemSnapshotSource {
    kv: MemKv,
    applied: AppliedState,
}

impl SnapshotSource for MemSnapshotSource {
    fn visit(&self, visitor: &mut dyn FnMut(SourceItem<'_>) -> io::Result<()>) -> io::Result<()> {
        visitor(SourceItem::Applied(&self.applied))?;
        for (key, value) in self.kv.iter() {
            visitor(SourceItem::Record(key, value))?;
        }
        Ok(())
    }
}

/// The current snapshot of one group, kept by the simulated disk.
#[derive(Default)]
pub struct MemSnapshotStore {
    current: Mutex<Option<(SnapshotMetaOf<AuctionRaft>, Vec<u8>)>>,
}

impl SnapshotStore for MemSnapshotStore {
    fn save(&self, meta: &SnapshotMetaOf<AuctionRaft>, data: &[u8]) -> io::Result<()> {
        let mut current = self
            .current
            .lock()
            .map_err(|_| io::Error::other("snapshot store poisoned"))?;
        *current = Some((meta.clone(), data.to_vec()));
        Ok(())
    }

    fn load(&self) -> io::Result<Option<(SnapshotMetaOf<AuctionRaft>, Vec<u8>)>> {
        let current = self
            .current
            .lock()
            .map_err(|_| io::Error::other("snapshot store poisoned"))?;
        Ok(current.clone())
    }
}
