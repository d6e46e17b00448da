//! Real nodes over loopback TCP with RocksDB: replication of every group, leader failure,
//! catch-up from the log and by snapshot, membership changes, linearizable reads across leader
//! changes, and leader balance. The scenarios run one at a time (each starts its own cluster).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use auction_raft::host::{ClientWrite, HostError};
use auction_statemachine::command::{NewUser, Op};
use auction_statemachine::outcome::{Event, Outcome};
use auction_statemachine::{query, GroupId, RequestId};
use common::*;
use openraft::async_runtime::WatchReceiver;
use openraft::BasicNode;
use tokio::sync::Mutex;

/// One cluster at a time: two cores cannot run several clusters' elections on time. (An async
/// mutex: it works across the tests' separate runtimes and does not poison.)
static SERIAL: Mutex<()> = Mutex::const_new(());

fn is_winning(outcome: &Result<Outcome, auction_statemachine::Rejection>) -> bool {
    matches!(outcome, Ok(Outcome::Bid(bid)) if bid.winning)
}

/// Places `count` alternating, always-winning bids on `lot` through the running members of the
/// group in turn; returns the request ids of the acknowledged ones.
async fn bid_rounds(
    cluster: &mut TestCluster,
    group: GroupId,
    lot: auction_statemachine::AuctionId,
    first: u64,
    count: u64,
) -> Vec<RequestId> {
    let mut acknowledged = Vec::new();
    for round in first..first + count {
        let members = cluster.members(group);
        let via = members[(round as usize) % members.len()];
        let request_id = cluster.request_id();
        let response = cluster
            .propose_with(
                via,
                group,
                bid(lot, user(1 + round as u128 % 2), 10 + round * 10),
                request_id,
            )
            .await;
        assert!(
            is_winning(&response.result),
            "bid {round} through node {via}: {:?}",
            response.result
        );
        acknowledged.push(request_id);
    }
    acknowledged
}

/// Compares the running replicas of `group` at one applied index. Entries keep arriving (the
/// leader's ticks), so each node's state is read on its state-machine task together with its
/// applied index; only states at the same index are compared, and any difference there is a
/// divergence.
async fn assert_replicas_agree(cluster: &TestCluster, group: GroupId) {
    for _ in 0..200 {
        let mut views = Vec::new();
        for id in cluster.running() {
            views.push((id, cluster.state_at_applied(id, group).await));
        }
        let (first_id, (first_index, first_state)) = &views[0];
        if views.iter().all(|(_, (index, _))| index == first_index) {
            for (id, (_, state)) in &views[1..] {
                assert!(state == first_state, "node {id} differs from node {first_id} in group {group} at index {first_index:?}");
            }
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!(
        "the replicas of group {group} never reached the same applied index\n{}",
        cluster.describe(group)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_commit_in_every_group_and_every_node_hears_the_events() {
    let _serial = SERIAL.lock().await;
    let mut cluster = TestCluster::start(3, 3).await;
    let mut events = cluster.host(3).subscribe();
    let register = Op::RegisterUser(NewUser {
        user_id: user(1),
        email: "alice@example.com".to_owned(),
        display_name: "Alice".to_owned(),
        password_hash: "$argon2id$stand-in".to_owned(),
    });
    assert!(
        cluster.propose(1, 0, register).await.result.is_ok(),
        "meta group write"
    );
    for group in 1..=SHARDS {
        let lot = auction_id(u128::from(group));
        let created = cluster
            .propose(1 + u64::from(group) % 3, group, create_auction(lot))
            .await;
        assert!(
            created.result.is_ok(),
            "group {group}: {:?}",
            created.result
        );
        assert!(is_winning(
            &cluster
                .propose(1, group, bid(lot, user(1), 10))
                .await
                .result
        ));
        assert!(is_winning(
            &cluster
                .propose(2, group, bid(lot, user(2), 20))
                .await
                .result
        ));
    }
    for group in 0..=SHARDS {
        cluster.wait_converged(group).await;
        assert_replicas_agree(&cluster, group).await;
    }
    let mut bids_heard = 0;
    while let Ok(applied) = events.try_recv() {
        if matches!(applied.event, Event::BidPlaced { .. }) {
            bids_heard += 1;
        }
    }
    assert_eq!(
        bids_heard,
        2 * SHARDS,
        "node 3 publishes the bids every node took"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_serves_after_the_leader_is_killed_and_no_acknowledged_bid_is_lost() {
    let _serial = SERIAL.lock().await;
    let mut cluster = TestCluster::start(3, 3).await;
    let (group, lot) = (1, auction_id(1));
    assert!(cluster
        .propose(1, group, create_auction(lot))
        .await
        .result
        .is_ok());
    let mut acknowledged = bid_rounds(&mut cluster, group, lot, 0, 10).await;
    let leader = cluster.wait_for_leader(group).await;
    cluster.kill(leader).await;
    let killed_at = Instant::now();
    acknowledged.extend(bid_rounds(&mut cluster, group, lot, 10, 1).await);
    eprintln!(
        "first write after killing the leader of group {group} took {:?}",
        killed_at.elapsed()
    );
    acknowledged.extend(bid_rounds(&mut cluster, group, lot, 11, 9).await);
    let survivor = cluster.running()[0];
    let reader = cluster
        .host(survivor)
        .linearizable_reader(group)
        .await
        .expect("read");
    let history = query::bid_history(&reader, lot, None, 500).expect("history");
    for request_id in &acknowledged {
        assert!(
            history.iter().any(|step| step.request_id == *request_id),
            "acknowledged bid {request_id} is in the history"
        );
    }
    cluster.restart(leader).await;
    cluster.wait_converged(group).await;
    assert_replicas_agree(&cluster, group).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_catches_up_from_the_log_and_after_a_purge_by_snapshot() {
    let _serial = SERIAL.lock().await;
    let mut cluster = TestCluster::start(3, 3).await;
    let (group, lot) = (2, auction_id(2));
    assert!(cluster
        .propose(1, group, create_auction(lot))
        .await
        .result
        .is_ok());
    cluster.kill(3).await;
    bid_rounds(&mut cluster, group, lot, 0, 20).await;
    cluster.restart(3).await;
    cluster.wait_converged(group).await;
    assert_replicas_agree(&cluster, group).await;

    cluster.kill(3).await;
    bid_rounds(&mut cluster, group, lot, 20, 30).await;
    let leader = cluster.wait_for_leader(group).await;
    let last_applied = cluster
        .host(leader)
        .raft(group)
        .expect("group")
        .metrics()
        .borrow_watched()
        .last_applied
        .map(|id| id.index);
    for id in cluster.running() {
        let raft = cluster.host(id).raft(group).expect("group");
        raft.trigger().snapshot().await.expect("snapshot");
        let built = raft
            .wait(Some(Duration::from_secs(10)))
            .metrics(
                |metrics| metrics.snapshot.map(|id| id.index) >= last_applied,
                "snapshot built",
            )
            .await
            .expect("snapshot built");
        let snapshot = built.snapshot.map(|id| id.index).unwrap_or(0);
        raft.trigger().purge_log(snapshot).await.expect("purge");
        raft.wait(Some(Duration::from_secs(10)))
            .metrics(
                |metrics| {
                    metrics
                        .purged
                        .is_some_and(|purged| purged.index >= snapshot)
                },
                "log purged",
            )
            .await
            .expect("log purged");
    }
    cluster.restart(3).await;
    cluster.wait_converged(group).await;
    let installed = cluster
        .host(3)
        .raft(group)
        .expect("group")
        .metrics()
        .borrow_watched()
        .snapshot
        .map(|id| id.index);
    assert!(
        installed >= last_applied,
        "node 3 caught up by installing a snapshot: {installed:?} < {last_applied:?}"
    );
    assert_replicas_agree(&cluster, group).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_is_promoted_in_every_group_and_a_voter_is_removed() {
    let _serial = SERIAL.lock().await;
    let mut cluster = TestCluster::start(4, 3).await;
    let lot = auction_id(3);
    assert!(cluster
        .propose(1, 3, create_auction(lot))
        .await
        .result
        .is_ok());
    bid_rounds(&mut cluster, 3, lot, 0, 5).await;
    let newcomer = BasicNode::new(cluster.nodes[&4].addr.clone());
    for group in 0..=SHARDS {
        let leader = cluster.wait_for_leader(group).await;
        let raft = cluster.host(leader).raft(group).expect("group");
        raft.add_learner(4, newcomer.clone(), true)
            .await
            .expect("add learner");
        raft.change_membership([1, 2, 3, 4], false)
            .await
            .expect("promote");
    }
    for group in 0..=SHARDS {
        let leader = cluster.wait_for_leader(group).await;
        let raft = cluster.host(leader).raft(group).expect("group");
        raft.change_membership([1, 3, 4], false)
            .await
            .expect("remove node 2");
        let voters: Vec<u64> = raft
            .metrics()
            .borrow_watched()
            .membership_config
            .membership()
            .voter_ids()
            .collect();
        assert_eq!(voters, [1, 3, 4], "group {group} voters");
    }
    cluster.kill(2).await;
    bid_rounds(&mut cluster, 3, lot, 5, 5).await;
    cluster.wait_converged(3).await;
    assert_replicas_agree(&cluster, 3).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linearizable_reads_after_a_leader_change_never_return_older_state() {
    let _serial = SERIAL.lock().await;
    let mut cluster = TestCluster::start(3, 3).await;
    let (group, lot) = (4, auction_id(4));
    assert!(cluster
        .propose(1, group, create_auction(lot))
        .await
        .result
        .is_ok());
    let mut killed = None;
    for round in 0..3u64 {
        if let Some(id) = killed.take() {
            cluster.restart(id).await;
        }
        bid_rounds(&mut cluster, group, lot, round * 2, 2).await;
        let expected = (round + 1) * 2;
        let leader = cluster.wait_for_leader(group).await;
        cluster.kill(leader).await;
        killed = Some(leader);
        for reader_node in cluster.running() {
            let reader = cluster
                .host(reader_node)
                .linearizable_reader(group)
                .await
                .expect("linearizable read");
            let auction = query::auction(&reader, lot)
                .expect("read")
                .expect("auction");
            assert_eq!(
                u64::from(auction.bid_count),
                expected,
                "round {round}: node {reader_node} read stale state"
            );
        }
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_leaders_spread_across_the_nodes() {
    let _serial = SERIAL.lock().await;
    let cluster = TestCluster::start(3, 3).await;
    let mut leaders = BTreeMap::new();
    for _ in 0..100 {
        leaders.clear();
        for group in 0..=SHARDS {
            *leaders
                .entry(cluster.wait_for_leader(group).await)
                .or_insert(0) += 1;
        }
        if leaders.len() == 3 && leaders.values().all(|count| *count == 3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        leaders,
        BTreeMap::from([(1, 3), (2, 3), (3, 3)]),
        "groups led per node"
    );
    cluster.shutdown().await;
}

/// Polls `probe` until it holds, for at most `wait`.
async fn eventually(wait: Duration, what: &str, mut probe: impl FnMut() -> bool) {
    let deadline = Instant::now() + wait;
    while !probe() {
        assert!(Instant::now() < deadline, "{what} within {wait:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_may_be_in_a_log_is_unknown_and_one_that_certainly_is_not_is_no_leader() {
    let _serial = SERIAL.lock().await;
    let mut cluster = TestCluster::start(3, 3).await;
    let (group, lot) = (1, auction_id(1));
    assert!(cluster
        .propose(1, group, create_auction(lot))
        .await
        .result
        .is_ok());
    let leader = cluster.wait_for_leader(group).await;
    let followers: Vec<u64> = cluster
        .running()
        .into_iter()
        .filter(|id| *id != leader)
        .collect();

    // The leader appends the bid but has no majority to commit it: the outcome is unknown.
    for follower in &followers {
        cluster.kill(*follower).await;
    }
    let request_id = cluster.request_id();
    let write = ClientWrite {
        group,
        request_id,
        idempotency_key: None,
        op: bid(lot, user(7), 20),
    };
    let error = cluster
        .host(leader)
        .propose(write)
        .await
        .expect_err("no majority, no commit");
    assert!(
        matches!(error, HostError::OutcomeUnknown { .. }),
        "a write a leader took into its log is unknown, never retryable: {error}"
    );

    // It was in the log: with the majority back it commits, and is applied once.
    for follower in &followers {
        cluster.restart(*follower).await;
    }
    cluster.wait_converged(group).await;
    let mut reader = None;
    for _ in 0..50 {
        let now_leading = cluster.wait_for_leader(group).await;
        match cluster.host(now_leading).linearizable_reader(group).await {
            Ok(read) => {
                reader = Some(read);
                break;
            }
            // Leadership may still move after the restarts.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let reader = reader.expect("a linearizable read once the group has settled");
    let history = query::bid_history(&reader, lot, None, 500).expect("history");
    let applied = history
        .iter()
        .filter(|step| step.request_id == request_id)
        .count();
    assert_eq!(applied, 1, "the unknown write was committed once");

    // A node that knows no leader refuses before anything reaches a log: retryable.
    let leader = cluster.wait_for_leader(group).await;
    let survivor = cluster
        .running()
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");
    for id in cluster.running() {
        if id != survivor {
            cluster.kill(id).await;
        }
    }
    let host = cluster.host(survivor);
    eventually(
        Duration::from_secs(20),
        "the survivor knows no leader",
        || host.leader_of(group).is_none(),
    )
    .await;
    let write = ClientWrite {
        group,
        request_id: RequestId(uuid::Uuid::from_u128(0xdead)),
        idempotency_key: None,
        op: bid(lot, user(8), 30),
    };
    let error = host.propose(write).await.expect_err("no leader, no commit");
    assert!(
        matches!(error, HostError::NoLeader { .. }),
        "a write that reached no leader is retryable: {error}"
    );
    cluster.shutdown().await;
}
