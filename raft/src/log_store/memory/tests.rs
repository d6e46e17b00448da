//! Tests of the in-memory log: openraft's storage suite, group commit in manual mode, and
//! crash semantics (unsynced writes are lost, synced ones survive).

use std::sync::atomic::{AtomicU32, Ordering};

use openraft::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::alias::OneshotReceiverOf;
use openraft::type_config::TypeConfigExt;
use openraft::vote::RaftLeaderIdExt;
use openraft::{RaftLogReader, RaftTypeConfig, StorageError};

use super::*;
use crate::testing::{SuiteStateMachine, TestConfig};

type C = TestConfig;
type Flushed = OneshotReceiverOf<C, Result<(), io::Error>>;

fn log_id(term: u64, index: u64) -> LogIdOf<C> {
    LogIdOf::<C>::new(
        <C as RaftTypeConfig>::LeaderId::new_committed(term, 1),
        index,
    )
}

fn blank(term: u64, index: u64) -> EntryOf<C> {
    EntryOf::<C>::new_blank(log_id(term, index))
}

/// Appends without waiting for durability; returns the callback's receiver.
async fn append(store: &mut MemLogStore<C>, entries: Vec<EntryOf<C>>) -> Flushed {
    let (tx, rx) = C::oneshot();
    store
        .append(entries, IOFlushed::signal(tx))
        .await
        .expect("append");
    rx
}

async fn indexes(store: &mut MemLogStore<C>) -> Vec<u64> {
    let entries = store.try_get_log_entries(..).await.expect("read");
    entries.iter().map(RaftEntry::index).collect()
}

struct MemSuiteBuilder {
    log: MemLog<C>,
    next_group_id: AtomicU32,
}

impl StoreBuilder<C, MemLogStore<C>, SuiteStateMachine> for MemSuiteBuilder {
    async fn build(&self) -> Result<((), MemLogStore<C>, SuiteStateMachine), StorageError<C>> {
        let group_id = self.next_group_id.fetch_add(1, Ordering::Relaxed);
        Ok(((), self.log.group(group_id), SuiteStateMachine::default()))
    }
}

#[tokio::test]
async fn openraft_storage_suite() {
    let builder = MemSuiteBuilder {
        log: MemLog::new(MemLogLimits::default(), SyncMode::Background),
        next_group_id: AtomicU32::new(1),
    };
    Suite::test_all(builder)
        .await
        .expect("openraft storage suite");
}

#[tokio::test]
async fn one_sync_completes_the_appends_of_every_group() {
    let log: MemLog<C> = MemLog::new(MemLogLimits::default(), SyncMode::Manual);
    let mut callbacks = Vec::new();
    for group_id in 0..8 {
        let mut store = log.group(group_id);
        callbacks.push(append(&mut store, vec![blank(1, 1), blank(1, 2)]).await);
        assert_eq!(
            indexes(&mut store).await,
            vec![1, 2],
            "readable before the sync"
        );
    }
    assert_eq!(log.counters().syncs(), 0, "nothing syncs in manual mode");
    log.sync_now();
    for rx in callbacks {
        rx.await.expect("callback fired").expect("append durable");
    }
    let counters = log.counters();
    assert_eq!(counters.syncs(), 1);
    assert_eq!(counters.waiters_synced(), 8);
    assert_eq!(counters.entries_synced(), 16);
    assert_eq!(log.unsynced_ops(), 0);
}

#[tokio::test]
async fn crash_loses_exactly_the_unsynced_writes() {
    let log: MemLog<C> = MemLog::new(MemLogLimits::default(), SyncMode::Manual);
    let mut store = log.group(1);
    let synced = append(&mut store, (1..=3).map(|index| blank(1, index)).collect()).await;
    log.sync_now();
    synced.await.expect("callback fired").expect("durable");

    // Written and readable, never synced.
    let unsynced = append(&mut store, vec![blank(2, 4), blank(2, 5)]).await;
    store
        .save_committed(Some(log_id(2, 5)))
        .await
        .expect("save committed");
    store
        .truncate_after(Some(log_id(1, 2)))
        .await
        .expect("truncate");
    assert_eq!(indexes(&mut store).await, vec![1, 2]);

    log.crash();
    assert!(
        !matches!(unsynced.await, Ok(Ok(()))),
        "an append lost in a crash must never be reported durable"
    );
    assert_eq!(
        indexes(&mut store).await,
        vec![1, 2, 3],
        "the truncation was lost too"
    );
    assert_eq!(store.read_committed().await.expect("committed"), None);
    let state = store.get_log_state().await.expect("log state");
    assert_eq!(state.last_log_id, Some(log_id(1, 3)));
}

#[tokio::test]
async fn durable_state_reopens_like_a_restarted_process() {
    let vote = VoteOf::<C>::new(4, 1);
    let log: MemLog<C> = MemLog::new(MemLogLimits::default(), SyncMode::Manual);
    let mut store = log.group(3);
    let synced = append(&mut store, (1..=4).map(|index| blank(1, index)).collect()).await;
    // save_vote returns only once synced; `join!` polls it first, so it is queued before the
    // sync runs.
    let (saved, ()) = tokio::join!(store.save_vote(&vote), async { log.sync_now() });
    saved.expect("save vote");
    synced.await.expect("callback fired").expect("durable");
    store.purge(log_id(1, 1)).await.expect("purge");
    log.sync_now();
    let _lost = append(&mut store, vec![blank(1, 5)]).await;

    let durable = log.durable_state();
    drop(store);
    drop(log);
    let reopened: MemLog<C> = MemLog::reopen(durable, MemLogLimits::default(), SyncMode::Manual);
    let mut store = reopened.group(3);
    assert_eq!(store.read_vote().await.expect("vote"), Some(vote));
    assert_eq!(indexes(&mut store).await, vec![2, 3, 4]);
    let state = store.get_log_state().await.expect("log state");
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1)));
    assert_eq!(
        indexes(&mut reopened.group(4)).await,
        Vec::<u64>::new(),
        "other groups empty"
    );
}

#[tokio::test]
async fn unsynced_operations_are_bounded() {
    let limits = MemLogLimits {
        unsynced_ops_max: 2,
        ..MemLogLimits::default()
    };
    let log: MemLog<C> = MemLog::new(limits, SyncMode::Manual);
    let mut store = log.group(1);
    store.save_committed(None).await.expect("first");
    store.save_committed(None).await.expect("second");
    assert!(
        store.save_committed(None).await.is_err(),
        "third must be refused"
    );
    log.sync_now();
    store
        .save_committed(None)
        .await
        .expect("room again after a sync");
}
