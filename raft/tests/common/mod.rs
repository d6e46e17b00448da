//! A cluster of real nodes in one process: each node is a `RaftHost` on its own RocksDB in a
//! temporary directory, serving its gRPC services on a loopback TCP port. Nodes can be killed
//! (server and groups stopped, storage closed) and restarted from the same directory and port.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use auction_raft::host::{ClientWrite, HostConfig, RaftHost, RocksStorage, SystemClock};
use auction_raft::network::tcp_channel_factory;
use auction_raft::types::Response;
use auction_raft::GroupId;
use auction_statemachine::command::{NewAuction, Op};
use auction_statemachine::{AuctionId, KvRead, KvStore, MemKv, RequestId, UserId};
use openraft::async_runtime::WatchReceiver;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use uuid::Uuid;

pub const SHARDS: u32 = 8;

pub struct TestNode {
    pub id: u64,
    pub addr: String,
    dir: PathBuf,
    host: Option<RaftHost<RocksStorage>>,
    server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

pub struct TestCluster {
    pub nodes: BTreeMap<u64, TestNode>,
    _dir: TempDir,
    next_request: u128,
}

pub fn config(id: u64, addr: &str) -> HostConfig {
    let mut config = HostConfig::new(id, addr);
    config.shard_count = SHARDS;
    config.heartbeat_interval_ms = 50;
    config.election_timeout_min_ms = 300;
    config.election_timeout_max_ms = 600;
    config.request_timeout_ms = 8_000;
    config.leader_wait_ms = 4_000;
    config.route_attempts_max = 20;
    config
}

async fn free_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr").to_string()
}

impl TestNode {
    pub fn host(&self) -> &RaftHost<RocksStorage> {
        self.host.as_ref().expect("node is running")
    }

    pub fn is_running(&self) -> bool {
        self.host.is_some()
    }

    async fn start(&mut self) {
        let config = config(self.id, &self.addr);
        let storage = Arc::new(RocksStorage::open(&self.dir).expect("open storage"));
        let factory = tcp_channel_factory(&config.network);
        let host = RaftHost::start(config, storage, factory, Arc::new(SystemClock))
            .await
            .expect("start host");
        let listener = TcpListener::bind(&self.addr)
            .await
            .expect("bind node address");
        let routes = host.grpc_services();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let serve = tonic::transport::Server::builder()
                .add_routes(routes)
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                    let _ = stopped.await;
                });
            if let Err(error) = serve.await {
                eprintln!("grpc server stopped: {error}");
            }
        });
        self.host = Some(host);
        self.server = Some((stop, server));
    }

    /// Stops the server and the groups, then closes the storage.
    async fn stop(&mut self) {
        if let Some((stop, server)) = self.server.take() {
            if let Some(host) = &self.host {
                host.close_peer_streams();
            }
            let _ = stop.send(());
            let _ = server.await;
        }
        if let Some(host) = self.host.take() {
            let storage = host.storage().clone();
            host.shutdown().await;
            drop(host);
            for _ in 0..200 {
                if Arc::strong_count(&storage) == 1 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            match Arc::try_unwrap(storage) {
                Ok(storage) => tokio::task::spawn_blocking(move || storage.close())
                    .await
                    .expect("join")
                    .expect("close"),
                Err(_) => panic!("node {} storage still in use after shutdown", self.id),
            }
        }
    }
}

impl TestCluster {
    /// Starts `count` nodes (ids 1..=count); `voters` of them form the initial membership.
    pub async fn start(count: u64, voters: u64) -> TestCluster {
        let dir = TempDir::new().expect("temp dir");
        let mut nodes = BTreeMap::new();
        for id in 1..=count {
            let mut node = TestNode {
                id,
                addr: free_addr().await,
                dir: dir.path().join(format!("node-{id}")),
                host: None,
                server: None,
            };
            node.start().await;
            nodes.insert(id, node);
        }
        let mut cluster = TestCluster {
            nodes,
            _dir: dir,
            next_request: 1,
        };
        let members: BTreeMap<u64, String> = (1..=voters)
            .map(|id| (id, cluster.nodes[&id].addr.clone()))
            .collect();
        cluster
            .host(1)
            .initialize(members)
            .await
            .expect("initialize");
        for group in 0..=SHARDS {
            cluster.wait_for_leader(group).await;
        }
        cluster.next_request = 1;
        cluster
    }

    pub fn host(&self, id: u64) -> &RaftHost<RocksStorage> {
        self.nodes[&id].host()
    }

    pub fn running(&self) -> Vec<u64> {
        self.nodes
            .values()
            .filter(|node| node.is_running())
            .map(|node| node.id)
            .collect()
    }

    /// Running nodes that are voters of `group` in their own view.
    pub fn members(&self, group: GroupId) -> Vec<u64> {
        self.running()
            .into_iter()
            .filter(|id| {
                let metrics = self
                    .host(*id)
                    .raft(group)
                    .expect("group")
                    .metrics()
                    .borrow_watched()
                    .clone();
                let is_voter = metrics
                    .membership_config
                    .membership()
                    .voter_ids()
                    .any(|voter| voter == *id);
                is_voter
            })
            .collect()
    }

    pub async fn kill(&mut self, id: u64) {
        self.nodes.get_mut(&id).expect("node exists").stop().await;
    }

    pub async fn restart(&mut self, id: u64) {
        self.nodes.get_mut(&id).expect("node exists").start().await;
    }

    pub async fn shutdown(mut self) {
        for node in self.nodes.values_mut() {
            node.stop().await;
        }
    }

    /// The leader of `group` as seen by the running nodes, once one is known and has a quorum.
    pub async fn wait_for_leader(&self, group: GroupId) -> u64 {
        for _ in 0..400 {
            for id in self.running() {
                let metrics = self
                    .host(id)
                    .raft(group)
                    .expect("group")
                    .metrics()
                    .borrow_watched()
                    .clone();
                if metrics.current_leader == Some(id) && metrics.last_quorum_acked.is_some() {
                    return id;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("group {group} elected no leader within 10 s");
    }

    pub fn request_id(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(Uuid::from_u128(0xbeef_0000_0000 + self.next_request))
    }

    pub async fn propose(&mut self, via: u64, group: GroupId, op: Op) -> Response {
        let request_id = self.request_id();
        self.propose_with(via, group, op, request_id).await
    }

    pub async fn propose_with(
        &self,
        via: u64,
        group: GroupId,
        op: Op,
        request_id: RequestId,
    ) -> Response {
        let write = ClientWrite {
            group,
            request_id,
            idempotency_key: None,
            op,
        };
        match self.host(via).propose(write).await {
            Ok(response) => response,
            Err(error) => panic!(
                "proposal through node {via} not answered: {error}\n{}",
                self.describe(group)
            ),
        }
    }

    /// Each running node's view of `group`, for failure messages.
    pub fn describe(&self, group: GroupId) -> String {
        let mut lines = Vec::new();
        for id in self.running() {
            let metrics = self
                .host(id)
                .raft(group)
                .expect("group")
                .metrics()
                .borrow_watched()
                .clone();
            let voters: Vec<u64> = metrics.membership_config.membership().voter_ids().collect();
            lines.push(format!(
                "node {id}: state {:?} term {} leader {:?} voters {voters:?} applied {:?}",
                metrics.state,
                metrics.current_term,
                metrics.current_leader,
                metrics.last_applied.map(|log_id| log_id.index)
            ));
        }
        lines.join("\n")
    }

    /// Waits until every running node has applied everything the leader of `group` has.
    pub async fn wait_converged(&self, group: GroupId) {
        let leader = self.wait_for_leader(group).await;
        let target = self
            .host(leader)
            .raft(group)
            .expect("group")
            .metrics()
            .borrow_watched()
            .last_applied
            .map(|id| id.index);
        for id in self.running() {
            self.host(id)
                .raft(group)
                .expect("group")
                .wait(Some(Duration::from_secs(15)))
                .applied_index_at_least(target, "converged")
                .await
                .unwrap_or_else(|error| {
                    panic!("node {id} did not catch up on group {group}: {error}")
                });
        }
    }

    /// Node `id`'s applied index of `group` and its whole state there, read between applies.
    pub async fn state_at_applied(&self, id: u64, group: GroupId) -> (Option<u64>, MemKv) {
        let read = |reader: &auction_raft::host::GroupReader<RocksStorage>| {
            let mut copy = MemKv::new();
            for (key, value) in reader.scan(&[], None, usize::MAX).expect("scan") {
                copy.put(&key, &value).expect("put");
            }
            copy
        };
        self.host(id)
            .read_at_applied(group, read)
            .await
            .expect("state machine answers")
    }

    /// Node `id`'s whole state of `group`.
    pub fn state(&self, id: u64, group: GroupId) -> MemKv {
        let reader = self.host(id).local_reader(group).expect("group");
        let mut copy = MemKv::new();
        for (key, value) in reader.scan(&[], None, usize::MAX).expect("scan") {
            copy.put(&key, &value).expect("put");
        }
        copy
    }
}

pub fn user(n: u128) -> UserId {
    UserId(Uuid::from_u128(0x5000 + n))
}

pub fn auction_id(n: u128) -> AuctionId {
    AuctionId(Uuid::from_u128(0xa000 + n))
}

pub fn create_auction(id: AuctionId) -> Op {
    Op::CreateAuction(NewAuction::lasting(id, user(0), "Lot", "1", 3_600))
}

pub fn bid(id: AuctionId, bidder: UserId, amount: u64) -> Op {
    Op::PlaceBid {
        auction_id: id,
        bidder,
        amount: amount.to_string(),
    }
}
