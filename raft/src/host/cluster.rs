//! Cluster administration from any node: adding, promoting and removing a node in every group,
//! moving a group's leadership, snapshots, and the status of every member.
//!
//! Each action is sent over the `AdminService` gRPC to the node that can carry it out: a
//! membership change or a leader transfer to the group's leader (as this node knows it, tried
//! a bounded number of times while leadership moves), a snapshot to every member of
//! the group, a status request to every node named in any group's membership. Groups are
//! changed one after the other, so a node joins or leaves the groups in order and a failure is
//! reported for the group it happened in; the groups changed before it stay changed (every
//! action is idempotent, so the operator repeats the command).
//!
//! Membership changes are deltas computed on the leader (`ChangeMembers`), never a whole voter
//! set from this node's possibly stale view.
//!
//! Not done yet: waiting for a learner to catch up is the caller's loop over
//! [`RaftHost::member_statuses`] (the CLI shows it as a progress bar); there is no cluster-wide
//! lock, so two operators changing membership at once may see `in progress` refusals.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use auction_proto::admin::admin_service_client::AdminServiceClient;
use auction_proto::admin::{
    AddLearnerRequest, ChangeMembersRequest, GroupResult, GroupResults, GroupsRequest, NodeAddress,
    StatusRequest, TransferLeaderRequest,
};
use futures_util::future::join_all;
use openraft::async_runtime::WatchReceiver;
use serde::Serialize;
use tokio::time::Instant;
use tonic::transport::Channel;

use auction_statemachine::hash::Fnv1a64;
use auction_statemachine::KvRead;

use super::route::current_leader;
use super::{GroupStatus, HostError, HostInner, NodeStorage, RaftHost};
use crate::{GroupId, NodeId};

/// Attempts of one group action, each at the leader as this node knows it then.
const LEADER_ATTEMPTS_MAX: u32 = 4;
/// How long a member may take to answer a status request.
const STATUS_TIMEOUT_MS: u64 = 2_000;

/// Records read per page while digesting a replica.
const DIGEST_PAGE_RECORDS: usize = 1_024;

/// A replica's whole state at one applied index, hashed: equal digests at equal indexes mean
/// equal replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateDigest {
    pub group_id: GroupId,
    pub applied_index: Option<u64>,
    pub records: u64,
    /// FNV-1a 64 over every record in key order, each key and value prefixed by its length.
    pub digest: String,
}

/// How one group (on one node) answered an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupAction {
    pub group_id: GroupId,
    /// The node that carried the action out, or refused it last.
    pub node_id: Option<u64>,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Log index of the membership entry, when one was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_index: Option<u64>,
}

impl GroupAction {
    fn refused(group_id: GroupId, node_id: Option<u64>, error: impl ToString) -> Self {
        GroupAction {
            group_id,
            node_id,
            ok: false,
            error: Some(error.to_string()),
            log_index: None,
        }
    }
}

/// One member's own view of its groups, or why it could not be asked.
#[derive(Debug, Clone)]
pub struct MemberStatus {
    pub node_id: NodeId,
    pub rpc_addr: String,
    /// The member's view of each of its groups, or why it could not be asked.
    pub groups: Result<Vec<GroupStatus>, String>,
}

impl<S: NodeStorage> RaftHost<S> {
    /// Makes `node_id` (reachable at `rpc_addr`) a learner of every group. Does not wait for
    /// it to catch up.
    pub async fn add_learner(&self, node_id: u64, rpc_addr: &str) -> Vec<GroupAction> {
        let node = NodeAddress {
            node_id,
            rpc_addr: rpc_addr.to_owned(),
        };
        self.at_every_leader(|mut client, group| {
            let request = AddLearnerRequest {
                group_ids: vec![group],
                node: Some(node.clone()),
                blocking: false,
            };
            async move { client.add_learner(request).await }
        })
        .await
    }

    /// Makes the learner `node_id` a voter of every group.
    pub async fn promote(&self, node_id: u64) -> Vec<GroupAction> {
        self.change_members(vec![node_id], Vec::new()).await
    }

    /// Removes `node_id` from every group, as a voter and as a learner.
    pub async fn remove_node(&self, node_id: u64) -> Vec<GroupAction> {
        self.change_members(Vec::new(), vec![node_id]).await
    }

    async fn change_members(&self, add: Vec<u64>, remove: Vec<u64>) -> Vec<GroupAction> {
        self.at_every_leader(|mut client, group| {
            let request = ChangeMembersRequest {
                group_ids: vec![group],
                add_voter_ids: add.clone(),
                remove_node_ids: remove.clone(),
            };
            async move { client.change_members(request).await }
        })
        .await
    }

    /// Asks the leader of `group` to hand leadership to `to`. Answers once the transfer has
    /// started; the new leader shows in the status when it has taken over.
    pub async fn transfer_leader(&self, group: GroupId, to: u64) -> GroupAction {
        self.at_leader(group, |mut client, group| {
            let request = TransferLeaderRequest {
                group_id: group,
                to_node_id: to,
            };
            async move { client.transfer_leader(request).await }
        })
        .await
    }

    /// Makes every member of `group` build a snapshot now.
    pub async fn snapshot(&self, group: GroupId) -> Vec<GroupAction> {
        let members = match self.inner.group(group) {
            Ok(local) => members_of(&self.inner, &[local]),
            Err(error) => return vec![GroupAction::refused(group, None, error)],
        };
        let asks = members.into_iter().map(|(node_id, addr)| async move {
            let request = GroupsRequest {
                group_ids: vec![group],
            };
            let answer = self
                .inner
                .admin_call(&addr, |mut client| async move {
                    client.trigger_snapshot(request).await
                })
                .await;
            group_answer(group, node_id, answer)
        });
        join_all(asks).await
    }

    /// The status of every node named in any group's membership (and of this node), asked
    /// at once, each within [`STATUS_TIMEOUT_MS`].
    pub async fn member_statuses(&self) -> Vec<MemberStatus> {
        let groups: Vec<_> = self.inner.groups.values().collect();
        let mut members = members_of(&self.inner, &groups);
        members
            .entry(self.node_id())
            .or_insert_with(|| self.inner.config.rpc_addr.clone());
        let asks = members.into_iter().map(|(node_id, rpc_addr)| async move {
            let call = self.inner.admin_call(&rpc_addr, |mut client| async move {
                client.status(StatusRequest::default()).await
            });
            let status =
                match tokio::time::timeout(Duration::from_millis(STATUS_TIMEOUT_MS), call).await {
                    Ok(answer) => answer,
                    Err(_) => Err("no answer in time".to_owned()),
                };
            let groups = status.map(|reply| {
                reply
                    .groups
                    .into_iter()
                    .map(GroupStatus::from_proto)
                    .collect()
            });
            MemberStatus {
                node_id,
                rpc_addr,
                groups,
            }
        });
        join_all(asks).await
    }

    /// This replica's digest of `group`, read between two applies. The read holds the group's
    /// applies for as long as it takes (milliseconds per ten thousand records): an operator's
    /// and a test's tool, not a request path.
    pub async fn state_digest(&self, group: GroupId) -> Result<StateDigest, HostError> {
        let (applied_index, digested) = self.read_at_applied(group, digest_all).await?;
        let (records, digest) =
            digested.map_err(|reason| HostError::Unavailable { group, reason })?;
        Ok(StateDigest {
            group_id: group,
            applied_index,
            records,
            digest: format!("{digest:016x}"),
        })
    }

    /// Runs `call` at the leader of every group, one group after the other.
    async fn at_every_leader<F, Fut>(&self, call: F) -> Vec<GroupAction>
    where
        F: Fn(AdminServiceClient<Channel>, GroupId) -> Fut,
        Fut: Future<Output = Result<tonic::Response<GroupResults>, tonic::Status>>,
    {
        let mut actions = Vec::new();
        for group in self.group_ids() {
            actions.push(self.at_leader(group, &call).await);
        }
        actions
    }

    /// Runs `call` for `group` at its leader, following "not the leader" hints.
    async fn at_leader<F, Fut>(&self, group: GroupId, call: F) -> GroupAction
    where
        F: Fn(AdminServiceClient<Channel>, GroupId) -> Fut,
        Fut: Future<Output = Result<tonic::Response<GroupResults>, tonic::Status>>,
    {
        let inner = &self.inner;
        let local = match inner.group(group) {
            Ok(local) => local,
            Err(error) => return GroupAction::refused(group, None, error),
        };
        let mut last = GroupAction::refused(group, None, "no attempt was made");
        for attempt in 0..LEADER_ATTEMPTS_MAX {
            if attempt > 0 {
                let pause = inner.config.heartbeat_interval_ms * u64::from(attempt);
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            let deadline = Instant::now() + inner.config.request_timeout();
            let leader = match current_leader(inner, group, local, deadline).await {
                Ok(leader) => leader,
                Err(error @ HostError::NoLeader { .. }) => {
                    last = GroupAction::refused(group, None, error);
                    continue;
                }
                Err(error) => return GroupAction::refused(group, None, error),
            };
            let answer = inner
                .admin_call(&leader.addr, |client| call(client, group))
                .await;
            last = group_answer(group, leader.id, answer);
            // Every action is idempotent, so a refusal is simply tried again: most are a
            // leadership in motion (a transfer or an election just happened) and pass at
            // the next attempt; a lasting one is reported after the last.
            if last.ok {
                return last;
            }
        }
        last
    }
}

impl<S: NodeStorage> HostInner<S> {
    /// One admin RPC to the node at `addr`, bounded by the request time-out.
    async fn admin_call<T, F, Fut>(&self, addr: &str, call: F) -> Result<T, String>
    where
        F: FnOnce(AdminServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let channel = self.peer_channel(addr)?;
        let client = AdminServiceClient::new(channel);
        match tokio::time::timeout(self.config.request_timeout(), call(client)).await {
            Ok(Ok(reply)) => Ok(reply.into_inner()),
            Ok(Err(status)) => Err(format!("{}: {}", addr, status.message())),
            Err(_) => Err(format!("{addr}: no answer in time")),
        }
    }
}

/// Hashes every record of a replica, a page at a time.
fn digest_all<R: KvRead>(reader: &R) -> Result<(u64, u64), String> {
    let mut hash = Fnv1a64::new();
    let mut records = 0u64;
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = reader
            .scan(&[], after.as_deref(), DIGEST_PAGE_RECORDS)
            .map_err(|error| error.to_string())?;
        for (key, value) in &page {
            hash.write_framed(key);
            hash.write_framed(value);
            records += 1;
        }
        match page.last() {
            Some((key, _)) if page.len() == DIGEST_PAGE_RECORDS => after = Some(key.clone()),
            _ => return Ok((records, hash.finish())),
        }
    }
}

/// Every node named in the membership of `groups`, with its address.
fn members_of<S: NodeStorage>(
    inner: &HostInner<S>,
    groups: &[&super::Group<S>],
) -> BTreeMap<u64, String> {
    let mut members = BTreeMap::new();
    for group in groups {
        let metrics = group.raft.metrics().borrow_watched().clone();
        for (node_id, node) in metrics.membership_config.membership().nodes() {
            members.insert(*node_id, node.addr.clone());
        }
    }
    if let Some(addr) = members.get_mut(&inner.node_id()) {
        addr.clone_from(&inner.config.rpc_addr);
    }
    members
}

/// The answer of `node_id` for `group`.
fn group_answer(group: GroupId, node_id: u64, answer: Result<GroupResults, String>) -> GroupAction {
    let result = match answer {
        Ok(results) => results
            .results
            .into_iter()
            .find(|result| result.group_id == group),
        Err(error) => return GroupAction::refused(group, Some(node_id), error),
    };
    match result {
        Some(GroupResult {
            ok: true,
            log_index,
            ..
        }) => GroupAction {
            group_id: group,
            node_id: Some(node_id),
            ok: true,
            error: None,
            log_index: (log_index > 0).then_some(log_index),
        },
        Some(result) => GroupAction::refused(group, Some(node_id), result.error),
        None => GroupAction::refused(group, Some(node_id), "the node does not host the group"),
    }
}
