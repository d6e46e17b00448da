//! Tests of the group state machine on both backends: applying committed entries gives the
//! same state as the pure state machine, the applied state survives a reopen, and a snapshot
//! built on one replica installs on another with identical state.

use std::sync::Arc;

use auction_statemachine::command::{NewAuction, Op};
use auction_statemachine::ids::RequestId;
use auction_statemachine::{
    AuctionId, Command, KvRead, KvStore, MemKv, Outcome, StateMachine, UserId,
};
use futures_util::stream;
use openraft::alias::{EntryOf, LogIdOf};
use openraft::entry::RaftEntry;
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::vote::RaftLeaderIdExt;
use openraft::RaftTypeConfig;
use rocksdb::DB;
use tempfile::TempDir;
use tokio::sync::broadcast;
use uuid::Uuid;

use super::memory::{MemBackend, MemSnapshotStore};
use super::rocks::RocksBackend;
use super::*;
use crate::log_store::rocks::open_db_with_column_families;

const GROUP: GroupId = 3;
const T0: i64 = 1_767_225_600_000;

fn log_id(index: u64) -> LogIdOf<C> {
    LogIdOf::<C>::new(<C as RaftTypeConfig>::LeaderId::new_committed(1, 1), index)
}

fn command(n: u128, op: Op) -> Command {
    Command {
        ts_ms: T0 + n as i64,
        request_id: RequestId(Uuid::from_u128(n)),
        idempotency_key: None,
        op,
    }
}

/// An auction and a few bids, as log entries starting at index 1.
fn entries() -> Vec<Command> {
    let auction_id = AuctionId(Uuid::from_u128(77));
    let new = NewAuction::lasting(auction_id, UserId(Uuid::from_u128(1)), "Lot", "10", 3_600);
    let mut commands = vec![command(1, Op::CreateAuction(new))];
    for n in 2..20u128 {
        let bidder = UserId(Uuid::from_u128(100 + n % 3));
        commands.push(command(
            n,
            Op::PlaceProxyBid {
                auction_id,
                bidder,
                max_amount: format!("{}", 10 + n * 7),
            },
        ));
    }
    commands
}

fn open_db(dir: &TempDir) -> Arc<DB> {
    open_db_with_column_families(dir.path(), true).expect("open db")
}

async fn apply_all<B: Backend>(
    machine: &mut GroupStateMachine<B>,
    commands: &[Command],
    first_index: u64,
) {
    let items: Vec<Result<EntryResponder<C>, std::io::Error>> = commands
        .iter()
        .enumerate()
        .map(|(offset, command)| {
            Ok((
                EntryOf::<C>::new_normal(log_id(first_index + offset as u64), command.clone()),
                None,
            ))
        })
        .collect();
    machine.apply(stream::iter(items)).await.expect("apply");
}

/// The state the pure state machine reaches on the same commands.
fn expected_state(commands: &[Command]) -> MemKv {
    let machine = StateMachine::new(GROUP);
    let mut kv = MemKv::new();
    for command in commands {
        machine.apply(&mut kv, command).expect("memory store");
    }
    kv
}

fn dump(reader: &impl KvRead) -> MemKv {
    let mut kv = MemKv::new();
    for (key, value) in reader.scan(&[], None, usize::MAX).expect("scan") {
        kv.put(&key, &value).expect("put");
    }
    kv
}

#[tokio::test]
async fn rocks_apply_matches_the_pure_state_machine_and_survives_a_reopen() {
    let dir = TempDir::new().expect("temp dir");
    let commands = entries();
    let (events, mut subscriber) = broadcast::channel(EVENT_CHANNEL_CAPACITY);
    {
        let db = open_db(&dir);
        let backend = RocksBackend::new(db, GROUP, &dir.path().join("snapshots")).expect("backend");
        let mut machine = GroupStateMachine::open(GROUP, backend, events.clone()).expect("open");
        apply_all(&mut machine, &commands[..10], 1).await;
        apply_all(&mut machine, &commands[10..], 11).await;
        assert!(
            dump(&machine.backend().reader()) == expected_state(&commands),
            "same state as the pure machine"
        );
        let (applied, _) = machine.applied_state().await.expect("applied");
        assert_eq!(
            applied.map(|log_id| log_id.index),
            Some(commands.len() as u64)
        );
    }
    let event = subscriber.try_recv().expect("an event was published");
    assert_eq!(event.group, GROUP);
    let db = open_db(&dir);
    let backend = RocksBackend::new(db, GROUP, &dir.path().join("snapshots")).expect("backend");
    let mut reopened = GroupStateMachine::open(GROUP, backend, events).expect("open");
    let (applied, _) = reopened.applied_state().await.expect("applied");
    assert_eq!(
        applied.map(|log_id| log_id.index),
        Some(commands.len() as u64),
        "applied state is durable"
    );
    assert!(
        dump(&reopened.backend().reader()) == expected_state(&commands),
        "state survives a reopen"
    );
}

#[tokio::test]
async fn groups_sharing_one_database_do_not_see_each_other() {
    let dir = TempDir::new().expect("temp dir");
    let db = open_db(&dir);
    let (events, _) = broadcast::channel(16);
    let snapshots = dir.path().join("snapshots");
    let mut three = GroupStateMachine::open(
        3,
        RocksBackend::new(db.clone(), 3, &snapshots).expect("backend"),
        events.clone(),
    )
    .expect("open");
    let four = GroupStateMachine::open(
        4,
        RocksBackend::new(db, 4, &snapshots).expect("backend"),
        events,
    )
    .expect("open");
    apply_all(&mut three, &entries(), 1).await;
    assert!(dump(&four.backend().reader()).is_empty());
}

#[tokio::test]
async fn a_snapshot_built_on_rocks_installs_on_memory_with_identical_state() {
    let dir = TempDir::new().expect("temp dir");
    let commands = entries();
    let (events, _) = broadcast::channel(16);
    let backend =
        RocksBackend::new(open_db(&dir), GROUP, &dir.path().join("snapshots")).expect("backend");
    let mut leader = GroupStateMachine::open(GROUP, backend, events.clone()).expect("open");
    apply_all(&mut leader, &commands, 1).await;
    let mut builder = leader.get_snapshot_builder().await;
    let snapshot = builder.build_snapshot().await.expect("build");
    assert_eq!(
        snapshot.meta.last_log_id.map(|log_id| log_id.index),
        Some(commands.len() as u64)
    );
    let current = leader
        .get_current_snapshot()
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(
        current.snapshot, snapshot.snapshot,
        "the built snapshot is the current one"
    );

    let mut follower = GroupStateMachine::open(
        GROUP,
        MemBackend::new(Arc::new(MemSnapshotStore::default())),
        events,
    )
    .expect("open");
    follower
        .install_snapshot(&snapshot.meta, snapshot.snapshot.clone())
        .await
        .expect("install");
    assert!(
        follower.backend().kv() == expected_state(&commands),
        "installed state equals the source"
    );
    let (applied, _) = follower.applied_state().await.expect("applied");
    assert_eq!(applied, snapshot.meta.last_log_id);

    let mut corrupt = snapshot.snapshot.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    assert!(
        follower
            .install_snapshot(&snapshot.meta, corrupt)
            .await
            .is_err(),
        "a corrupt snapshot is refused"
    );
    assert!(
        follower.backend().kv() == expected_state(&commands),
        "a refused snapshot changes nothing"
    );
}

#[tokio::test]
async fn a_snapshot_installs_over_existing_rocks_state() {
    let dir = TempDir::new().expect("temp dir");
    let commands = entries();
    let (events, _) = broadcast::channel(16);
    let db = open_db(&dir);
    let snapshots = dir.path().join("snapshots");
    let mut source = GroupStateMachine::open(
        5,
        RocksBackend::new(db.clone(), 5, &snapshots).expect("backend"),
        events.clone(),
    )
    .expect("open");
    apply_all(&mut source, &commands, 1).await;
    let snapshot = source
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("build");
    let mut stale = GroupStateMachine::open(
        GROUP,
        RocksBackend::new(db, GROUP, &snapshots).expect("backend"),
        events,
    )
    .expect("open");
    apply_all(&mut stale, &commands[..3], 1).await;
    stale
        .backend_mut_for_tests()
        .commit(
            [(b"Zstale".to_vec(), Some(b"x".to_vec()))]
                .into_iter()
                .collect(),
            &AppliedState {
                last_applied: Some(log_id(3)),
                membership: Default::default(),
            },
        )
        .expect("commit");
    stale
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .expect("install");
    let installed = dump(&stale.backend().reader());
    assert!(
        installed == dump(&source.backend().reader()),
        "the installed state is the source's state"
    );
    assert_eq!(
        installed.get(b"Zstale").expect("read"),
        None,
        "stale keys are gone"
    );
}

#[tokio::test]
async fn proposers_get_the_outcome_of_their_command() {
    let (events, _) = broadcast::channel(16);
    let mut machine = GroupStateMachine::open(
        GROUP,
        MemBackend::new(Arc::new(MemSnapshotStore::default())),
        events,
    )
    .expect("open");
    let mut applied = AppliedState::default();
    let mut overlay = Overlay::new(machine.backend().reader());
    let mut published = Vec::new();
    let entry = EntryOf::<C>::new_normal(log_id(1), entries().remove(0));
    let response = machine
        .apply_entry(&mut overlay, &entry, &mut applied, &mut published)
        .expect("apply");
    assert!(matches!(response.result, Ok(Outcome::Auction(_))));
    assert_eq!(applied.last_applied, Some(log_id(1)));
    let writes = overlay.into_writes();
    machine
        .backend_mut_for_tests()
        .commit(writes, &applied)
        .expect("commit");
    assert!(!machine.backend().kv().is_empty());
}
