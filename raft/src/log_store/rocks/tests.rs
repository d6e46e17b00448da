//! Tests of the RocksDB log: openraft's storage suite, group commit, per-group isolation of
//! truncation and purge, and durability across a reopen of the database.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};

use openraft::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::vote::RaftLeaderIdExt;
use openraft::{RaftLogReader, RaftTypeConfig, StorageError};
use tempfile::TempDir;

use super::*;
use crate::testing::{SuiteStateMachine, TestConfig};
use crate::GroupId;

type C = TestConfig;

fn log_id(term: u64, index: u64) -> LogIdOf<C> {
    LogIdOf::<C>::new(
        <C as RaftTypeConfig>::LeaderId::new_committed(term, 1),
        index,
    )
}

fn blank(term: u64, index: u64) -> EntryOf<C> {
    EntryOf::<C>::new_blank(log_id(term, index))
}

fn open_log(dir: &TempDir) -> (Arc<DB>, RocksLog<C>) {
    let db = open_db(dir.path()).expect("open db");
    let log = RocksLog::start(db.clone(), RocksLogLimits::default()).expect("start log");
    (db, log)
}

/// Appends and waits until the entries are durable.
async fn append_durable(store: &mut RocksLogStore<C>, entries: Vec<EntryOf<C>>) {
    let (tx, rx) = C::oneshot();
    store
        .append(entries, IOFlushed::signal(tx))
        .await
        .expect("append");
    rx.await.expect("callback fired").expect("append durable");
}

async fn indexes(store: &mut RocksLogStore<C>) -> Vec<u64> {
    let entries = store.try_get_log_entries(..).await.expect("read");
    entries.iter().map(RaftEntry::index).collect()
}

/// Every suite run gets a fresh group of one shared database: the suite then also checks that
/// groups do not see each other.
struct RocksSuiteBuilder {
    log: RocksLog<C>,
    next_group_id: AtomicU32,
}

impl StoreBuilder<C, RocksLogStore<C>, SuiteStateMachine> for RocksSuiteBuilder {
    async fn build(&self) -> Result<((), RocksLogStore<C>, SuiteStateMachine), StorageError<C>> {
        let group_id = self.next_group_id.fetch_add(1, Ordering::Relaxed);
        Ok(((), self.log.group(group_id), SuiteStateMachine::default()))
    }
}

#[tokio::test]
async fn openraft_storage_suite() {
    let dir = TempDir::new().expect("temp dir");
    let (_db, log) = open_log(&dir);
    let builder = RocksSuiteBuilder {
        log,
        next_group_id: AtomicU32::new(1),
    };
    Suite::test_all(builder)
        .await
        .expect("openraft storage suite");
}

/// Blocks the first sync until the test opens the gate, so that appends pile up behind it.
struct GatedSync {
    inner: WalSync,
    gate: Mutex<Option<std_mpsc::Receiver<()>>>,
}

impl Durability for GatedSync {
    fn sync(&self) -> Result<(), String> {
        let gate = self.gate.lock().expect("gate lock").take();
        if let Some(gate) = gate {
            gate.recv().map_err(|error| error.to_string())?;
        }
        self.inner.sync()
    }
}

#[tokio::test]
async fn concurrent_appends_of_many_groups_share_syncs() {
    const GROUPS: GroupId = 16;
    const APPENDS_PER_GROUP: u64 = 8;
    let dir = TempDir::new().expect("temp dir");
    let db = open_db(dir.path()).expect("open db");
    let (open_gate, gate) = std_mpsc::channel();
    let durability = Arc::new(GatedSync {
        inner: WalSync::new(&db),
        gate: Mutex::new(Some(gate)),
    });
    let log: RocksLog<C> =
        RocksLog::start_with_durability(db, RocksLogLimits::default(), durability)
            .expect("start log");
    let mut stores: Vec<RocksLogStore<C>> =
        (0..GROUPS).map(|group_id| log.group(group_id)).collect();
    let mut callbacks = Vec::new();
    for index in 1..=APPENDS_PER_GROUP {
        for store in &mut stores {
            let (tx, rx) = C::oneshot();
            store
                .append([blank(1, index)], IOFlushed::signal(tx))
                .await
                .expect("append");
            callbacks.push(rx);
        }
    }
    open_gate.send(()).expect("open the gate");
    for rx in callbacks {
        rx.await.expect("callback fired").expect("append durable");
    }
    let counters = log.counters();
    let appends = u64::from(GROUPS) * APPENDS_PER_GROUP;
    assert_eq!(
        counters.entries_synced(),
        appends,
        "every entry is synced once"
    );
    assert_eq!(
        counters.waiters_synced(),
        appends,
        "every append is completed once"
    );
    // The first sync took at most the first append; everything else queued behind the gate
    // and fits one batch.
    assert!(
        counters.syncs() <= 2,
        "{} syncs for {appends} appends",
        counters.syncs()
    );
    for store in &mut stores {
        assert_eq!(
            indexes(store).await,
            (1..=APPENDS_PER_GROUP).collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn truncate_and_purge_touch_only_their_group() {
    let dir = TempDir::new().expect("temp dir");
    let (_db, log) = open_log(&dir);
    // The extreme group ids check the key-range boundaries.
    let group_ids = [0, 1, 2, GroupId::MAX];
    let mut stores: Vec<RocksLogStore<C>> = group_ids.iter().map(|id| log.group(*id)).collect();
    for store in &mut stores {
        append_durable(store, (1..=10).map(|index| blank(1, index)).collect()).await;
    }
    stores[1]
        .truncate_after(Some(log_id(1, 5)))
        .await
        .expect("truncate");
    stores[2].purge(log_id(1, 3)).await.expect("purge");
    stores[3].truncate_after(None).await.expect("truncate all");

    let all: Vec<u64> = (1..=10).collect();
    assert_eq!(indexes(&mut stores[0]).await, all, "group 0 untouched");
    assert_eq!(
        indexes(&mut stores[1]).await,
        vec![1, 2, 3, 4, 5],
        "group 1 truncated"
    );
    assert_eq!(
        indexes(&mut stores[2]).await,
        (4..=10).collect::<Vec<_>>(),
        "group 2 purged"
    );
    assert_eq!(
        indexes(&mut stores[3]).await,
        Vec::<u64>::new(),
        "group MAX emptied"
    );

    let state = stores[2].get_log_state().await.expect("log state");
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 3)));
    assert_eq!(state.last_log_id, Some(log_id(1, 10)));
    let state = stores[0].get_log_state().await.expect("log state");
    assert_eq!(
        state.last_purged_log_id, None,
        "purge of group 2 leaked into group 0"
    );
}

#[tokio::test]
async fn reopen_preserves_vote_log_and_committed() {
    let dir = TempDir::new().expect("temp dir");
    let vote = VoteOf::<C>::new(3, 2);
    {
        let (db, log) = open_log(&dir);
        let mut store = log.group(7);
        append_durable(&mut store, (1..=6).map(|index| blank(2, index)).collect()).await;
        store.save_vote(&vote).await.expect("save vote");
        store
            .save_committed(Some(log_id(2, 4)))
            .await
            .expect("save committed");
        store.purge(log_id(2, 2)).await.expect("purge");
        drop(store);
        tokio::task::spawn_blocking(move || log.close())
            .await
            .expect("join")
            .expect("close log");
        drop(db);
    }
    let (_db, log) = open_log(&dir);
    let mut store = log.group(7);
    assert_eq!(store.read_vote().await.expect("vote"), Some(vote));
    assert_eq!(
        store.read_committed().await.expect("committed"),
        Some(log_id(2, 4))
    );
    let state = store.get_log_state().await.expect("log state");
    assert_eq!(state.last_purged_log_id, Some(log_id(2, 2)));
    assert_eq!(state.last_log_id, Some(log_id(2, 6)));
    assert_eq!(indexes(&mut store).await, vec![3, 4, 5, 6]);
    let mut other = log.group(8);
    assert_eq!(
        other.read_vote().await.expect("vote"),
        None,
        "votes are per group"
    );
}

#[tokio::test]
async fn limited_reads_are_bounded_and_holes_are_errors() {
    let dir = TempDir::new().expect("temp dir");
    let db = open_db(dir.path()).expect("open db");
    let limits = RocksLogLimits {
        read_batch_entries_max: 3,
        ..RocksLogLimits::default()
    };
    let log: RocksLog<C> = RocksLog::start(db.clone(), limits).expect("start log");
    let mut store = log.group(1);
    append_durable(&mut store, (1..=10).map(|index| blank(1, index)).collect()).await;
    let limited = store.limited_get_log_entries(2, 10).await.expect("read");
    assert_eq!(
        limited.iter().map(RaftEntry::index).collect::<Vec<_>>(),
        vec![2, 3, 4]
    );

    // Punch a hole behind the store's back: reading across it must fail, not skip it.
    let cf = db.cf_handle(RAFT_LOG_CF).expect("log column family");
    db.delete_cf(cf, log_key(1, 5)).expect("delete");
    let result: Result<Vec<EntryOf<C>>, io::Error> = store.try_get_log_entries(1..=10).await;
    assert!(result.is_err(), "a hole must be reported");
}

#[test]
fn keys_sort_by_group_then_index() {
    assert!(log_key(1, u64::MAX).as_slice() < log_key(2, 0).as_slice());
    assert!(log_key(1, u64::MAX).as_slice() < log_key_group_end(1).as_slice());
    assert!(log_key_group_end(1).as_slice() < log_key(2, 0).as_slice());
    assert_eq!(parse_log_key(&log_key(9, 42)), Some((9, 42)));
    assert_eq!(parse_log_key(&[0u8; 15]), None);
}
