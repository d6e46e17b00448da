//! Tests of the transport: snapshot chunking, and a real three-node cluster of two groups over
//! loopback gRPC, mixing RocksDB and in-memory logs (election, replication, read barriers,
//! admin status, snapshot catch-up of a new learner, and the reply to an unknown group).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::host::service::{decode_read_log_id, read_barrier};
use auction_proto::admin::admin_service_client::AdminServiceClient;
use auction_proto::admin::StatusRequest;
use auction_proto::client::read_barrier_reply;
use auction_proto::raft::raft_service_client::RaftServiceClient;
use auction_proto::raft::snapshot_chunk::Item;
use auction_proto::raft::{SnapshotChunk, SnapshotHeader};
use auction_proto::Bytes;
use openraft::error::RPCError;
use openraft::network::RPCOption;
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::{BasicNode, Config, Raft};
use openraft_multi::GroupRouter;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use super::client::GrpcRouter;
use super::*;
use crate::log_store::memory::{MemLog, MemLogLimits, SyncMode};
use crate::log_store::rocks::{open_db, RocksLog, RocksLogLimits};
use crate::testing::{SuiteStateMachine, TestCommand, TestConfig};
use crate::GroupId;

type C = TestConfig;
type TestRaft = Raft<C, SuiteStateMachine>;

/// Waits in these tests are bounded by this: a cluster that does not converge fails the test.
const CONVERGE_TIMEOUT_MS: u64 = 10_000;

#[test]
fn snapshot_chunks_cover_the_data_in_order() {
    let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let chunks: Vec<_> =
        client::snapshot_chunks(9, vec![1, 2], Bytes::from(data.clone()), 300).collect();
    assert_eq!(chunks.len(), 1 + 4, "a header and ceil(1000 / 300) chunks");
    let Some(Item::Header(header)) = &chunks[0].item else {
        panic!("the first chunk must be the header");
    };
    assert_eq!((header.group_id, header.snapshot_bytes), (9, 1000));
    let mut joined = Vec::new();
    for chunk in &chunks[1..] {
        let Some(Item::Data(bytes)) = &chunk.item else {
            panic!("only data after the header");
        };
        assert!(!bytes.is_empty() && bytes.len() <= 300);
        joined.extend_from_slice(bytes);
    }
    assert_eq!(joined, data);
}

enum NodeLog {
    Memory(MemLog<C>),
    /// The directory lives as long as the node.
    Rocks {
        log: RocksLog<C>,
        _dir: TempDir,
    },
}

struct TestNode {
    id: u64,
    addr: String,
    registry: Arc<GroupRegistry<C, SuiteStateMachine>>,
    router: GrpcRouter<C, Vec<u8>>,
    log: NodeLog,
    server: tokio::task::JoinHandle<()>,
}

fn raft_config() -> Arc<Config> {
    // Generous election time-outs: a loaded CI machine must not cause spurious elections.
    let config = Config {
        heartbeat_interval: 100,
        election_timeout_min: 1_000,
        election_timeout_max: 2_000,
        ..Config::default()
    };
    Arc::new(config.validate().expect("valid raft config"))
}

async fn start_node(id: u64, rocks: bool) -> TestNode {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr").to_string();
    let registry = Arc::new(GroupRegistry::new());
    let raft_service =
        RaftGrpcService::new(registry.clone(), NetworkConfig::default()).into_server();
    let admin_service = AdminGrpcService::new(id, registry.clone()).into_server();
    let server = tokio::spawn(async move {
        let incoming = TcpIncoming::from(listener);
        let _ = tonic::transport::Server::builder()
            .add_service(raft_service)
            .add_service(admin_service)
            .serve_with_incoming(incoming)
            .await;
    });
    let log = if rocks {
        let dir = TempDir::new().expect("temp dir");
        let db = open_db(dir.path()).expect("open db");
        NodeLog::Rocks {
            log: RocksLog::start(db, RocksLogLimits::default()).expect("log"),
            _dir: dir,
        }
    } else {
        NodeLog::Memory(MemLog::new(MemLogLimits::default(), SyncMode::Background))
    };
    TestNode {
        id,
        addr,
        registry,
        router: GrpcRouter::new(id, NetworkConfig::default()),
        log,
        server,
    }
}

async fn start_group(node: &TestNode, group_id: GroupId) -> TestRaft {
    let network = node.router.network_factory(group_id);
    let state_machine = SuiteStateMachine::default();
    let config = raft_config();
    let raft = match &node.log {
        NodeLog::Memory(log) => {
            Raft::new(node.id, config, network, log.group(group_id), state_machine).await
        }
        NodeLog::Rocks { log, .. } => {
            Raft::new(node.id, config, network, log.group(group_id), state_machine).await
        }
    }
    .expect("start raft");
    node.registry.insert(group_id, raft.clone());
    raft
}

async fn wait_applied(raft: &TestRaft, index: u64, what: &str) {
    raft.wait(Some(Duration::from_millis(CONVERGE_TIMEOUT_MS)))
        .applied_index_at_least(Some(index), what)
        .await
        .expect(what);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_two_groups_over_grpc() {
    const GROUPS: [GroupId; 2] = [1, 2];
    let mut nodes = Vec::new();
    for id in 1..=3 {
        // Node 1 keeps its log in RocksDB, the others in memory.
        nodes.push(start_node(id, id == 1).await);
    }
    let members: BTreeMap<u64, BasicNode> = nodes
        .iter()
        .map(|node| (node.id, BasicNode::new(&node.addr)))
        .collect();
    // rafts[node][group]
    let mut rafts: Vec<Vec<TestRaft>> = Vec::new();
    for node in &nodes {
        let mut groups = Vec::new();
        for group_id in GROUPS {
            groups.push(start_group(node, group_id).await);
        }
        rafts.push(groups);
    }
    for (slot, _group_id) in GROUPS.iter().enumerate() {
        rafts[0][slot]
            .initialize(members.clone())
            .await
            .expect("initialize");
    }

    for (slot, group_id) in GROUPS.iter().enumerate() {
        let metrics = rafts[0][slot]
            .wait(Some(Duration::from_millis(CONVERGE_TIMEOUT_MS)))
            .metrics(|m| m.current_leader.is_some(), "a leader is elected")
            .await
            .expect("leader elected");
        let leader_id = metrics.current_leader.expect("leader");
        let leader = &rafts[(leader_id - 1) as usize][slot];
        // A new leader refuses writes (`ForwardToLeader`, reason `LeaseExpired`, no leader id)
        // until a quorum has acknowledged it once.
        leader
            .wait(Some(Duration::from_millis(CONVERGE_TIMEOUT_MS)))
            .metrics(
                |m| m.last_quorum_acked.is_some(),
                "the leader holds a lease",
            )
            .await
            .expect("leader lease");
        let mut last_index = 0;
        for id in 0..5 {
            let command = TestCommand {
                id,
                note: format!("group {group_id}"),
            };
            let response = leader.client_write(command).await.expect("client write");
            last_index = response.log_id.index;
        }
        for node_rafts in &rafts {
            wait_applied(
                &node_rafts[slot],
                last_index,
                "every node applies the writes",
            )
            .await;
        }
    }

    // Read barriers: the leader answers with its read index, a follower points at the leader.
    let slot = 1;
    let leader_id = rafts[0][slot].current_leader().await.expect("leader");
    let barrier = read_barrier(&rafts[(leader_id - 1) as usize][slot])
        .await
        .expect("barrier");
    let Some(read_barrier_reply::Result::ReadLogId(bytes)) = &barrier.result else {
        panic!("the leader must answer with a read log id: {barrier:?}");
    };
    let read_log_id = decode_read_log_id::<C>(bytes).expect("decode read log id");
    assert_eq!(read_log_id.index, barrier.read_index);
    assert!(
        barrier.read_index >= 5,
        "the barrier covers the writes: {barrier:?}"
    );
    let follower = if leader_id == 1 { 1 } else { 0 };
    let barrier = read_barrier(&rafts[follower][slot]).await.expect("barrier");
    let Some(read_barrier_reply::Result::NotLeader(not_leader)) = &barrier.result else {
        panic!("a follower must point at the leader: {barrier:?}");
    };
    assert_eq!(not_leader.leader_id, Some(leader_id));
    assert_eq!(not_leader.leader_addr, nodes[(leader_id - 1) as usize].addr);

    // Admin status over gRPC: every group, with its leader and applied index.
    let mut admin = AdminServiceClient::connect(format!("http://{}", nodes[0].addr))
        .await
        .expect("connect admin");
    let status = admin
        .status(StatusRequest { group_ids: vec![] })
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status.node_id, 1);
    assert_eq!(
        status.groups.iter().map(|g| g.group_id).collect::<Vec<_>>(),
        GROUPS.to_vec()
    );
    for group in &status.groups {
        assert!(
            group.leader_id.is_some(),
            "group {} has a leader",
            group.group_id
        );
        assert!(group.applied_index.is_some_and(|index| index >= 5));
        assert_eq!(group.voter_ids, vec![1, 2, 3]);
    }

    // Catch-up by snapshot: compact group 1 on its leader, then add a learner.
    let slot = 0;
    let leader_id = rafts[0][slot].current_leader().await.expect("leader");
    let leader = rafts[(leader_id - 1) as usize][slot].clone();
    leader.trigger().snapshot().await.expect("trigger snapshot");
    let metrics = leader
        .wait(Some(Duration::from_millis(CONVERGE_TIMEOUT_MS)))
        .metrics(|m| m.snapshot.is_some(), "snapshot built")
        .await
        .expect("snapshot built");
    let snapshot_index = metrics.snapshot.expect("snapshot").index;
    leader
        .trigger()
        .purge_log(snapshot_index)
        .await
        .expect("purge");
    leader
        .wait(Some(Duration::from_millis(CONVERGE_TIMEOUT_MS)))
        .metrics(
            |m| m.purged.is_some_and(|p| p.index >= snapshot_index),
            "log purged",
        )
        .await
        .expect("log purged");

    let learner = start_node(4, true).await;
    let learner_raft = start_group(&learner, GROUPS[slot]).await;
    leader
        .add_learner(4, BasicNode::new(&learner.addr), true)
        .await
        .expect("add learner");
    let metrics = learner_raft
        .wait(Some(Duration::from_millis(CONVERGE_TIMEOUT_MS)))
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= snapshot_index),
            "snapshot installed",
        )
        .await
        .expect("learner installed the snapshot");
    assert!(metrics
        .last_applied
        .is_some_and(|a| a.index >= snapshot_index));

    // A group the peer does not host: NOT_FOUND, seen by openraft as unreachable.
    let vote = openraft::alias::VoteOf::<C>::new(1, 1);
    let result = nodes[0]
        .router
        .vote(
            2,
            99,
            VoteRequest::new(vote, None),
            RPCOption::new(Duration::from_secs(1)),
        )
        .await;
    assert!(
        matches!(result, Err(RPCError::Unreachable(_))),
        "got {result:?}"
    );

    // Appends travel on the peer's one append stream: an append to a group the peer does not
    // host fails alone (NOT_FOUND, seen as unreachable) and the same stream keeps answering.
    let stale_heartbeat = || AppendEntriesRequest::<C> {
        vote: openraft::alias::VoteOf::<C>::new(0, 1),
        prev_log_id: None,
        entries: Vec::new(),
        leader_commit: None,
    };
    let option = RPCOption::new(Duration::from_secs(1));
    let result = nodes[0]
        .router
        .append_entries(2, 99, stale_heartbeat(), option.clone())
        .await;
    assert!(
        matches!(result, Err(RPCError::Unreachable(_))),
        "unknown group on the stream: {result:?}"
    );
    for group_id in GROUPS {
        let answer = nodes[0]
            .router
            .append_entries(2, group_id, stale_heartbeat(), option.clone())
            .await
            .expect("the stream still answers");
        assert!(
            !answer.is_success(),
            "a heartbeat of a stale term is refused: {answer:?}"
        );
    }
    // Unary appends (`--raft-unary-appends`, for peers without the stream) are still served.
    let unary: GrpcRouter<C, Vec<u8>> = GrpcRouter::new(
        1,
        NetworkConfig {
            append_stream: false,
            ..NetworkConfig::default()
        },
    );
    unary.set_peer(2, &nodes[1].addr).expect("set peer");
    let answer = unary
        .append_entries(2, GROUPS[0], stale_heartbeat(), option.clone())
        .await
        .expect("a unary append is answered");
    assert!(!answer.is_success(), "unary: {answer:?}");
    let result = unary
        .append_entries(2, 99, stale_heartbeat(), option.clone())
        .await;
    assert!(
        matches!(result, Err(RPCError::Unreachable(_))),
        "unknown group, unary: {result:?}"
    );

    // Malformed snapshot streams are refused before they reach the group's `Raft`.
    let refused = send_snapshot_stream(&nodes[1].addr, 1, 10, &[vec![1, 2, 3, 4, 5]]).await;
    assert_eq!(
        refused.code(),
        tonic::Code::InvalidArgument,
        "short stream: {refused}"
    );
    let refused = send_snapshot_stream(&nodes[1].addr, 1, 3, &[vec![1, 2], vec![3, 4]]).await;
    assert_eq!(
        refused.code(),
        tonic::Code::InvalidArgument,
        "long stream: {refused}"
    );
    let too_large = NetworkConfig::default().snapshot_bytes_max + 1;
    let refused = send_snapshot_stream(&nodes[1].addr, 1, too_large, &[]).await;
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "oversized: {refused}"
    );
    let refused = send_snapshot_stream(&nodes[1].addr, 99, 1, &[vec![1]]).await;
    assert_eq!(
        refused.code(),
        tonic::Code::NotFound,
        "unknown group: {refused}"
    );

    for node_rafts in rafts.iter().chain(std::iter::once(&vec![learner_raft])) {
        for raft in node_rafts {
            raft.shutdown().await.expect("shutdown");
        }
    }
    for node in nodes.iter().chain(std::iter::once(&learner)) {
        node.server.abort();
    }
}

/// Sends a hand-made snapshot stream (a valid header announcing `snapshot_bytes`, then `chunks`)
/// and returns the status it is refused with.
async fn send_snapshot_stream(
    addr: &str,
    group_id: GroupId,
    snapshot_bytes: u64,
    chunks: &[Vec<u8>],
) -> tonic::Status {
    let header_payload = crate::codec::encode(
        "snapshot header",
        &(
            openraft::alias::VoteOf::<C>::new(1, 1),
            openraft::alias::SnapshotMetaOf::<C> {
                last_log_id: None,
                last_membership: openraft::StoredMembership::default(),
            },
        ),
    )
    .expect("encode header");
    let mut messages = vec![SnapshotChunk {
        item: Some(Item::Header(SnapshotHeader {
            group_id,
            payload: Bytes::from(header_payload),
            snapshot_bytes,
        })),
    }];
    messages.extend(chunks.iter().map(|chunk| SnapshotChunk {
        item: Some(Item::Data(Bytes::from(chunk.clone()))),
    }));
    let mut client = RaftServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    match client
        .install_snapshot(futures_util::stream::iter(messages))
        .await
    {
        Ok(reply) => panic!("a malformed snapshot was accepted: {reply:?}"),
        Err(status) => status,
    }
}

#[tokio::test]
async fn rpc_failures_map_to_openraft_errors() {
    let router: GrpcRouter<C, Vec<u8>> = GrpcRouter::new(1, NetworkConfig::default());
    let vote = openraft::alias::VoteOf::<C>::new(1, 1);
    let option = RPCOption::new(Duration::from_millis(100));

    // No address known at all.
    let result = router
        .vote(7, 1, VoteRequest::new(vote, None), option.clone())
        .await;
    assert!(
        matches!(result, Err(RPCError::Unreachable(_))),
        "unknown peer: {result:?}"
    );

    // Nothing listens there: the connection is refused.
    router.set_peer(8, &closed_addr().await).expect("set peer");
    let result = router
        .vote(8, 1, VoteRequest::new(vote, None), option.clone())
        .await;
    assert!(
        matches!(result, Err(RPCError::Unreachable(_))),
        "refused: {result:?}"
    );

    // A peer that accepts connections and never answers: the RPC is bounded by its time-out.
    let (silent_addr, holder) = silent_peer().await;
    router.set_peer(9, &silent_addr).expect("set peer");
    let result = router
        .vote(9, 1, VoteRequest::new(vote, None), option)
        .await;
    assert!(
        matches!(result, Err(RPCError::Timeout(_))),
        "silent: {result:?}"
    );
    holder.abort();

    // An address that is not one.
    assert!(router.set_peer(10, "not an address with spaces").is_err());
}

/// An address nothing listens on: connections to it are refused.
async fn closed_addr() -> String {
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = closed.local_addr().expect("addr").to_string();
    drop(closed);
    addr
}

/// A peer that accepts connections and never answers; abort the task to close it.
async fn silent_peer() -> (String, tokio::task::JoinHandle<()>) {
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = silent.local_addr().expect("addr").to_string();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        // Bounded: a test makes one connection at most a handful of times.
        for _ in 0..8 {
            match silent.accept().await {
                Ok((stream, _)) => held.push(stream),
                Err(_) => break,
            }
        }
    });
    (addr, holder)
}

/// An append with no entries from a leader of term 1 (nobody's real leader in these tests).
fn heartbeat() -> AppendEntriesRequest<C> {
    AppendEntriesRequest {
        vote: openraft::alias::VoteOf::<C>::new(1, 1),
        prev_log_id: None,
        entries: Vec::new(),
        leader_commit: None,
    }
}

#[tokio::test]
async fn append_stream_failures_map_to_openraft_errors() {
    let router: GrpcRouter<C, Vec<u8>> = GrpcRouter::new(1, NetworkConfig::default());
    let option = RPCOption::new(Duration::from_millis(100));

    let result = router
        .append_entries(7, 1, heartbeat(), option.clone())
        .await;
    assert!(
        matches!(result, Err(RPCError::Unreachable(_))),
        "unknown peer: {result:?}"
    );

    // Nothing listens there: the stream cannot open, and each later call tries a new one.
    router.set_peer(8, &closed_addr().await).expect("set peer");
    for attempt in 0..2 {
        let result = router
            .append_entries(8, 1, heartbeat(), option.clone())
            .await;
        assert!(
            matches!(result, Err(RPCError::Unreachable(_))),
            "refused, attempt {attempt}: {result:?}"
        );
    }

    // Accepts connections and never answers: bounded by the call's time-out.
    let (silent_addr, holder) = silent_peer().await;
    router.set_peer(9, &silent_addr).expect("set peer");
    let result = router.append_entries(9, 1, heartbeat(), option).await;
    assert!(
        matches!(result, Err(RPCError::Timeout(_))),
        "silent: {result:?}"
    );
    holder.abort();
}

/// A server told to close ends the append streams it serves, so its graceful stop does not wait
/// for peers that keep theirs open; it refuses new streams from then on.
#[tokio::test]
async fn closing_ends_append_streams_and_lets_the_server_stop() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr").to_string();
    let registry = Arc::new(GroupRegistry::<C, SuiteStateMachine>::new());
    let (closing, closing_signal) = tokio::sync::watch::channel(false);
    let service = RaftGrpcService::new(registry, NetworkConfig::default())
        .with_closing(closing_signal)
        .into_server();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = stopped.await;
            })
            .await
    });
    let router: GrpcRouter<C, Vec<u8>> = GrpcRouter::new(1, NetworkConfig::default());
    router.set_peer(2, &addr).expect("set peer");
    let option = RPCOption::new(Duration::from_secs(1));
    // The stream is open and answers (the group is unknown there: NOT_FOUND, unreachable).
    let result = router
        .append_entries(2, 1, heartbeat(), option.clone())
        .await;
    assert!(
        matches!(result, Err(RPCError::Unreachable(_))),
        "open stream: {result:?}"
    );

    closing.send(true).expect("signal");
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server stops although the router keeps its stream")
        .expect("join")
        .expect("serve");
}

#[tokio::test]
async fn mutual_tls_serves_members_of_the_cluster_ca_only() {
    let dir = TempDir::new().expect("temp dir");
    let nodes = certs::ensure_cluster(dir.path(), &[(1, Vec::new()), (2, Vec::new())])
        .expect("certificates");
    let server_identity = TlsIdentity::load(&nodes[0]).expect("node 1");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr").to_string();
    let registry = Arc::new(GroupRegistry::<C, SuiteStateMachine>::new());
    let admin = AdminGrpcService::new(1, registry).into_server();
    let mut server = tonic::transport::Server::builder()
        .tls_config(server_identity.server_config())
        .expect("server TLS");
    let task = tokio::spawn(async move {
        let _ = server
            .add_service(admin)
            .serve_with_incoming(TcpIncoming::from(listener))
            .await;
    });

    let member = NetworkConfig {
        tls: Some(TlsIdentity::load(&nodes[1]).expect("node 2")),
        ..NetworkConfig::default()
    };
    let channel = tcp_channel_factory(&member)(&addr).expect("channel");
    let reply = AdminServiceClient::new(channel)
        .status(StatusRequest { group_ids: vec![] })
        .await
        .expect("a node of the cluster CA is served");
    assert_eq!(reply.into_inner().node_id, 1);

    let plaintext = tcp_channel_factory(&NetworkConfig::default())(&addr).expect("channel");
    let refused = AdminServiceClient::new(plaintext)
        .status(StatusRequest { group_ids: vec![] })
        .await;
    assert!(
        refused.is_err(),
        "a plaintext client is refused: {refused:?}"
    );
    task.abort();
}

/// A stream with [`pipe::PIPE_PENDING_MAX`] appends awaiting replies refuses the next one at
/// once instead of queueing it.
#[tokio::test]
async fn a_stream_with_too_many_appends_waiting_refuses_more_at_once() {
    let router: GrpcRouter<C, Vec<u8>> = GrpcRouter::new(1, NetworkConfig::default());
    let (silent_addr, holder) = silent_peer().await;
    router.set_peer(9, &silent_addr).expect("set peer");
    let option = RPCOption::new(Duration::from_secs(2));
    let waiting: Vec<_> = (0..pipe::PIPE_PENDING_MAX)
        .map(|_| {
            let (router, option) = (router.clone(), option.clone());
            tokio::spawn(async move { router.append_entries(9, 1, heartbeat(), option).await })
        })
        .collect();
    // Every waiting call registers before it blocks on the unread stream.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = tokio::time::Instant::now();
    let result = router.append_entries(9, 1, heartbeat(), option).await;
    assert!(
        matches!(result, Err(RPCError::Network(_))),
        "one too many: {result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused at once, not after the time-out"
    );
    for call in waiting {
        call.abort();
    }
    holder.abort();
}
