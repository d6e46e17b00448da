//! Where a node keeps its groups: the log store and the state machine backend of each group.
//!
//! [`RocksStorage`] is production: one RocksDB per node under `<data dir>/db` holding every
//! group's log (group-committed) and state, and snapshots under `<data dir>/snapshots`. The
//! simulator implements [`NodeStorage`] over the in-memory stores.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::RaftLogStorage;
use rocksdb::DB;

use crate::log_store::rocks::{
    open_db_with_column_families, RocksLog, RocksLogLimits, RocksLogStore,
};
use crate::log_store::SyncCounters;
use crate::state_machine::rocks::RocksBackend;
use crate::state_machine::Backend;
use crate::types::AuctionRaft;
use crate::{Error, GroupId};

/// Opens the storage of one group.
pub trait NodeStorage: Send + Sync + 'static {
    type Log: RaftLogStorage<AuctionRaft>;
    type Backend: Backend;

    fn open_group(&self, group: GroupId) -> Result<(Self::Log, Self::Backend), Error>;

    /// Log syncs performed so far (group commit makes this far smaller than entries appended).
    fn sync_counters(&self) -> Option<Arc<SyncCounters>> {
        None
    }
}

/// Every group of a node in one RocksDB.
pub struct RocksStorage {
    db: Arc<DB>,
    log: RocksLog<AuctionRaft>,
    snapshot_dir: PathBuf,
}

impl RocksStorage {
    pub fn open(data_dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(data_dir)?;
        let db = open_db_with_column_families(data_dir.join("db"), true)?;
        let log = RocksLog::start(db.clone(), RocksLogLimits::default())?;
        Ok(RocksStorage {
            db,
            log,
            snapshot_dir: data_dir.join("snapshots"),
        })
    }

    pub fn db(&self) -> &Arc<DB> {
        &self.db
    }

    /// Stops the log writer after the groups have shut down.
    pub fn close(self) -> Result<(), Error> {
        self.log.close()
    }
}

impl NodeStorage for RocksStorage {
    type Log = RocksLogStore<AuctionRaft>;
    type Backend = RocksBackend;

    fn open_group(&self, group: GroupId) -> Result<(Self::Log, Self::Backend), Error> {
        let backend = RocksBackend::new(self.db.clone(), group, &self.snapshot_dir)?;
        Ok((self.log.group(group), backend))
    }

    fn sync_counters(&self) -> Option<Arc<SyncCounters>> {
        Some(self.log.counters())
    }
}
