//! The gRPC admin service (`auction.admin.v1`).
//!
//! [`AdminGrpcService`] acts on the groups of a [`GroupRegistry`]: an empty `group_ids` list
//! means every registered group, and each group answers on its own in a `GroupResult`, so the
//! caller sees which groups moved and which one to retry on which leader. Groups are handled one
//! after the other: membership changes of different groups never race each other on a node.
//!
//! These need node ids and terms that are `u64` (the protobuf messages carry them as such) and a
//! node type that is built from an address ([`PeerAddress`]). The client service (forwarded
//! writes, read barriers) is the host's: `crate::host::service`.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::sync::Arc;

use auction_proto::admin::admin_service_server::{AdminService, AdminServiceServer};
use auction_proto::admin::{
    AddLearnerRequest, ChangeMembersRequest, ChangeMembershipRequest, GroupResult, GroupResults,
    GroupsRequest, StatusReply, StatusRequest, TransferLeaderRequest,
};
use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::ClientWriteResponse;
use openraft::storage::RaftStateMachine;
use openraft::{ChangeMembers, Raft, RaftTypeConfig, ServerState};
use tonic::{Request, Response, Status};

use super::server::GroupRegistry;
use super::PeerAddress;
use crate::host::GroupStatus;
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
                let status = GroupStatus::from_metrics(group_id, &raft.metrics().borrow_watched());
                groups.push(status.to_proto());
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
