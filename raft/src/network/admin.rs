//! The gRPC admin service (`auction.admin.v1`) and the leader side of a read barrier.
//!
//! [`AdminGrpcService`] acts on the groups of a [`GroupRegistry`]: an empty `group_ids` list
//! means every registered group, and each group answers on its own in a `GroupResult`, so the
//! caller sees which groups moved and which one to retry on which leader. Groups are handled one
//! after the other: membership changes of different groups never race each other on a node.
//!
//! [`read_barrier`] is what the client service's `ReadBarrier` answers on a group leader: the
//! `ReadIndex` log id a follower must have applied before a linearizable read. A follower
//! decodes it with [`decode_read_log_id`] and waits with
//! `Linearizer::new(my_id, ReadLogId::from_log_id(log_id), None).try_await_ready(&raft, timeout)`.
//!
//! These need node ids and terms that are `u64` (the protobuf messages carry them as such) and a
//! node type that is built from an address ([`PeerAddress`]).
//!
//! Not done yet: the `Forward` half of the client service: proposing a forwarded command is the
//! application layer's job (it stamps the leader's clock), so it lives there.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::sync::Arc;

use auction_proto::admin::admin_service_server::{AdminService, AdminServiceServer};
use auction_proto::admin::{
    AddLearnerRequest, ChangeMembersRequest, ChangeMembershipRequest, GroupResult, GroupResults,
    GroupStatus, GroupsRequest, ReplicationStatus, ServerState as ProtoServerState, StatusReply,
    StatusRequest, TransferLeaderRequest,
};
use auction_proto::client::{read_barrier_reply, NotLeader, ReadBarrierReply};
use auction_proto::Bytes;
use openraft::alias::LogIdOf;
use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, ForwardToLeader, LinearizableReadError, RaftError};
use openraft::raft::ClientWriteResponse;
use openraft::storage::RaftStateMachine;
use openraft::{ChangeMembers, Raft, RaftMetrics, RaftTypeConfig, ReadPolicy, ServerState};
use tonic::{Request, Response, Status};

use super::server::GroupRegistry;
use super::PeerAddress;
use crate::codec;
use crate::GroupId;

/// The gRPC `AdminService` of a node.
pub struct AdminGrpcService<C: RaftTypeConfig, SM: RaftStateMachine<C>> {
    node_id: u64,
    registry: Arc<GroupRegistry<C, SM>>,
}

impl<C, SM> AdminGrpcService<C, SM>
where
    C: RaftTypeConfig<NodeId = u64, Term = u64>,
    C::Node: PeerAddress,
    SM: RaftStateMachine<C>,
{
    pub fn new(node_id: u64, registry: Arc<GroupRegistry<C, SM>>) -> Self {
        Self { node_id, registry }
    }

    pub fn into_server(self) -> AdminServiceServer<Self> {
        AdminServiceServer::new(self)
    }

    /// The listed groups, each once, ascending; all registered groups when none is listed.
    fn selected_groups(&self, group_ids: &[GroupId]) -> Vec<GroupId> {
        if group_ids.is_empty() {
            return self.registry.group_ids();
        }
        let unique: BTreeSet<GroupId> = group_ids.iter().copied().collect();
        unique.into_iter().collect()
    }

    /// Runs `action` on each selected group, one at a time.
    async fn for_each_group<F, Fut>(&self, group_ids: &[GroupId], action: F) -> GroupResults
    where
        F: Fn(Raft<C, SM>) -> Fut,
        Fut: std::future::Future<Output = GroupResult>,
    {
        let mut results = Vec::new();
        for group_id in self.selected_groups(group_ids) {
            let result = match self.registry.get(group_id) {
                Ok(raft) => GroupResult {
                    group_id,
                    ..action(raft).await
                },
                Err(error) => failed(group_id, error, None),
            };
            results.push(result);
        }
        GroupResults { results }
    }
}

fn failed(group_id: GroupId, error: impl Display, leader_id: Option<u64>) -> GroupResult {
    GroupResult {
        group_id,
        ok: false,
        error: error.to_string(),
        leader_id,
        log_index: 0,
    }
}

fn write_result<C>(
    result: Result<ClientWriteResponse<C>, RaftError<C, ClientWriteError<C>>>,
) -> GroupResult
where
    C: RaftTypeConfig<NodeId = u64>,
{
    match result {
        Ok(response) => GroupResult {
            ok: true,
            log_index: response.log_id.index,
            ..GroupResult::default()
        },
        Err(error) => {
            let leader_id = error
                .forward_to_leader()
                .and_then(|forward| forward.leader_id);
            failed(0, error, leader_id)
        }
    }
}

fn proto_state(state: ServerState) -> ProtoServerState {
    match state {
        ServerState::Learner => ProtoServerState::Learner,
        ServerState::Follower => ProtoServerState::Follower,
        ServerState::Candidate => ProtoServerState::Candidate,
        ServerState::Leader => ProtoServerState::Leader,
        ServerState::Shutdown => ProtoServerState::Shutdown,
    }
}

fn index_of<C: RaftTypeConfig>(log_id: &Option<LogIdOf<C>>) -> Option<u64> {
    log_id.as_ref().map(|log_id| log_id.index)
}

/// A group's status as the admin service reports it, from its metrics.
pub fn group_status<C>(group_id: GroupId, metrics: &RaftMetrics<C>) -> GroupStatus
where
    C: RaftTypeConfig<NodeId = u64, Term = u64>,
{
    let membership = metrics.membership_config.membership();
    let replication = metrics
        .replication
        .iter()
        .flatten()
        .map(|(node_id, matched)| ReplicationStatus {
            node_id: *node_id,
            matched_index: index_of::<C>(matched),
        })
        .collect();
    GroupStatus {
        group_id,
        state: proto_state(metrics.state) as i32,
        current_term: metrics.current_term,
        leader_id: metrics.current_leader,
        last_log_index: metrics.last_log_index,
        committed_index: index_of::<C>(&metrics.local_committed),
        applied_index: index_of::<C>(&metrics.last_applied),
        snapshot_index: index_of::<C>(&metrics.snapshot),
        purged_index: index_of::<C>(&metrics.purged),
        voter_ids: membership.voter_ids().collect(),
        learner_ids: membership.learner_ids().collect(),
        replication,
    }
}

#[tonic::async_trait]
impl<C, SM> AdminService for AdminGrpcService<C, SM>
where
    C: RaftTypeConfig<NodeId = u64, Term = u64>,
    C::Node: PeerAddress,
    SM: RaftStateMachine<C>,
{
    async fn add_learner(
        &self,
        request: Request<AddLearnerRequest>,
    ) -> Result<Response<GroupResults>, Status> {
        let request = request.into_inner();
        let Some(node) = request.node else {
            return Err(Status::invalid_argument("add learner needs a node"));
        };
        let blocking = request.blocking;
        let node_id = node.node_id;
        let results = self
            .for_each_group(&request.group_ids, |raft| {
                let learner = C::Node::from_rpc_addr(&node.rpc_addr);
                async move { write_result(raft.add_learner(node_id, learner, blocking).await) }
            })
            .await;
        Ok(Response::new(results))
    }

    async fn change_membership(
        &self,
        request: Request<ChangeMembershipRequest>,
    ) -> Result<Response<GroupResults>, Status> {
        let request = request.into_inner();
        let voters: BTreeSet<u64> = request.voter_ids.iter().copied().collect();
        if voters.is_empty() {
            return Err(Status::invalid_argument("a group needs at least one voter"));
        }
        let retain = request.retain_removed;
        let results = self
            .for_each_group(&request.group_ids, |raft| {
                let voters = voters.clone();
                async move { write_result(raft.change_membership(voters, retain).await) }
            })
            .await;
        Ok(Response::new(results))
    }

    async fn change_members(
        &self,
        request: Request<ChangeMembersRequest>,
    ) -> Result<Response<GroupResults>, Status> {
        let request = request.into_inner();
        let add: BTreeSet<u64> = request.add_voter_ids.iter().copied().collect();
        let remove: BTreeSet<u64> = request.remove_node_ids.iter().copied().collect();
        if add.is_empty() == remove.is_empty() {
            return Err(Status::invalid_argument(
                "name either voters to add or nodes to remove",
            ));
        }
        let results = self
            .for_each_group(&request.group_ids, |raft| {
                let (add, remove) = (add.clone(), remove.clone());
                async move {
                    if add.is_empty() {
                        remove_nodes(&raft, remove).await
                    } else {
                        let change = ChangeMembers::AddVoterIds(add);
                        write_result(raft.change_membership(change, true).await)
                    }
                }
            })
            .await;
        Ok(Response::new(results))
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusReply>, Status> {
        let request = request.into_inner();
        let mut groups = Vec::new();
        for group_id in self.selected_groups(&request.group_ids) {
            if let Ok(raft) = self.registry.get(group_id) {
                let metrics = raft.metrics().borrow_watched().clone();
                groups.push(group_status(group_id, &metrics));
            }
        }
        Ok(Response::new(StatusReply {
            node_id: self.node_id,
            groups,
        }))
    }

    async fn trigger_snapshot(
        &self,
        request: Request<GroupsRequest>,
    ) -> Result<Response<GroupResults>, Status> {
        let request = request.into_inner();
        let results = self
            .for_each_group(&request.group_ids, |raft| async move {
                match raft.trigger().snapshot().await {
                    Ok(()) => GroupResult {
                        ok: true,
                        ..GroupResult::default()
                    },
                    Err(error) => failed(0, error, None),
                }
            })
            .await;
        Ok(Response::new(results))
    }

    async fn transfer_leader(
        &self,
        request: Request<TransferLeaderRequest>,
    ) -> Result<Response<GroupResults>, Status> {
        let request = request.into_inner();
        let to = request.to_node_id;
        let results = self
            .for_each_group(&[request.group_id], |raft| async move {
                match raft.trigger().transfer_leader(to).await {
                    Ok(()) => GroupResult {
                        ok: true,
                        ..GroupResult::default()
                    },
                    Err(error) => failed(0, error, None),
                }
            })
            .await;
        Ok(Response::new(results))
    }
}

/// Drops `remove` from the group: voters leave through a (joint) membership change that does
/// not keep them as learners; learners are simply forgotten. Nodes the group does not know are
/// already gone, which is success (a retried removal answers the same).
async fn remove_nodes<C, SM>(raft: &Raft<C, SM>, remove: BTreeSet<u64>) -> GroupResult
where
    C: RaftTypeConfig<NodeId = u64>,
    SM: RaftStateMachine<C>,
{
    let metrics = raft.metrics().borrow_watched().clone();
    if metrics.state != ServerState::Leader {
        let leader_id = metrics.current_leader;
        return failed(0, "this node is not the group's leader", leader_id);
    }
    let membership = metrics.membership_config.membership().clone();
    let voters: BTreeSet<u64> = membership
        .voter_ids()
        .filter(|id| remove.contains(id))
        .collect();
    let learners: BTreeSet<u64> = membership
        .learner_ids()
        .filter(|id| remove.contains(id))
        .collect();
    let mut result = GroupResult {
        ok: true,
        ..GroupResult::default()
    };
    if !voters.is_empty() {
        result = write_result(
            raft.change_membership(ChangeMembers::RemoveVoters(voters), false)
                .await,
        );
    }
    if result.ok && !learners.is_empty() {
        result = write_result(
            raft.change_membership(ChangeMembers::RemoveNodes(learners), false)
                .await,
        );
    }
    result
}

fn not_leader<C>(forward: ForwardToLeader<C>) -> read_barrier_reply::Result
where
    C: RaftTypeConfig<NodeId = u64>,
    C::Node: PeerAddress,
{
    read_barrier_reply::Result::NotLeader(NotLeader {
        leader_id: forward.leader_id,
        leader_addr: forward
            .leader_node
            .as_ref()
            .map(|node| node.rpc_addr().to_string())
            .unwrap_or_default(),
    })
}

/// The leader's side of a linearizable read barrier (`ReadIndex`): confirms leadership with a
/// quorum and returns the log id a reader must have applied. Not being the leader is an answer
/// (`not_leader`); losing the quorum or a stopped group is `UNAVAILABLE`.
pub async fn read_barrier<C, SM>(raft: &Raft<C, SM>) -> Result<ReadBarrierReply, Status>
where
    C: RaftTypeConfig<NodeId = u64>,
    C::Node: PeerAddress,
    SM: RaftStateMachine<C>,
{
    match raft.get_read_linearizer(ReadPolicy::ReadIndex).await {
        Ok(linearizer) => {
            let read_log_id = linearizer.read_log_id().log_id().clone();
            let encoded = codec::encode("read log id", &read_log_id)?;
            Ok(ReadBarrierReply {
                result: Some(read_barrier_reply::Result::ReadLogId(Bytes::from(encoded))),
                read_index: read_log_id.index,
                applied_index: linearizer.applied().map_or(0, |applied| applied.index),
            })
        }
        Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(forward))) => {
            Ok(ReadBarrierReply {
                result: Some(not_leader(forward)),
                ..ReadBarrierReply::default()
            })
        }
        Err(error) => Err(Status::unavailable(format!("no read barrier: {error}"))),
    }
}

/// Decodes the `read_log_id` of a [`ReadBarrierReply`] on the reading node.
pub fn decode_read_log_id<C: RaftTypeConfig>(bytes: &[u8]) -> Result<LogIdOf<C>, Status> {
    Ok(codec::decode("read log id", bytes)?)
}
