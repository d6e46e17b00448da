//! The nemesis's hands for faults that need the cluster's cooperation: leader transfers and
//! membership changes, sent over the simulated network to the admin gRPC service of the nodes
//! like `auctionctl` would.
//!
//! The driver queues [`AdminAction`]s; the admin process (a turmoil client) carries them out one
//! at a time, group by group, following "not the leader" hints, and logs what happened. Every
//! action is bounded ([`ATTEMPTS_MAX`] per group); an action that cannot be done (no quorum
//! under a partition) is given up and logged. The process ends when the driver says stop and
//! the queue is empty.
//!
//! Membership: [`AdminAction::Demote`] keeps the node as a learner (it still receives the log);
//! [`AdminAction::Remove`] drops it from the group outright (it receives nothing, and may keep
//! campaigning with its stale view: a disruptive removed server is part of what the simulation
//! checks). [`AdminAction::Promote`] brings a node back from either: it adds the node as a
//! learner, waits (at most [`CATCH_UP_MS_MAX`]) until the leader reports that it has replicated
//! the log up to the leader's last index at the start of the wait, then makes every node a voter
//! again. A learner that has not caught up in time is promoted anyway (logged): that costs only
//! availability, and the run's end (see [`crate::run`]) checks that every node is a voter of
//! every group with the same state.
//!
//! Not done yet: actions on several groups at once (one group after the other today).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use auction_proto::admin::admin_service_client::AdminServiceClient;
use auction_proto::admin::{
    AddLearnerRequest, ChangeMembershipRequest, GroupResults, NodeAddress, ServerState,
    StatusRequest, TransferLeaderRequest,
};
use auction_raft::network::NetworkConfig;
use auction_raft::GroupId;

use crate::net::{channel_factory, SimClock};
use crate::node::node_addr;

/// Attempts of one action on one group.
pub const ATTEMPTS_MAX: u32 = 8;
/// Pause between two attempts.
pub const RETRY_PAUSE_MS: u64 = 250;
/// Time limit of one admin RPC.
pub const RPC_TIMEOUT_MS: u64 = 3_000;
/// Longest wait for a re-added learner to catch up before it is promoted.
pub const CATCH_UP_MS_MAX: u64 = 10_000;
/// Pause between two looks at a learner's progress.
pub const CATCH_UP_POLL_MS: u64 = 200;

/// What the admin process is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminAction {
    /// Hand `group`'s leadership from `from` (its leader when the fault started) to `to`.
    TransferLeader { group: GroupId, from: u64, to: u64 },
    /// Make `node` a learner of every group (a voter removed, its data kept).
    Demote { node: u64 },
    /// Drop `node` from every group: neither voter nor learner.
    Remove { node: u64 },
    /// Add `node` as a learner (a no-op if it is one), let it catch up, promote it: every
    /// node a voter.
    Promote { node: u64 },
}

/// The queue between the driver and the admin process, and its log.
#[derive(Default)]
pub struct AdminDesk {
    queue: RefCell<VecDeque<AdminAction>>,
    log: RefCell<Vec<String>>,
    stop: Cell<bool>,
    busy: Cell<bool>,
}

impl AdminDesk {
    pub fn submit(&self, action: AdminAction) {
        self.queue.borrow_mut().push_back(action);
    }

    /// No action queued or running.
    pub fn is_idle(&self) -> bool {
        self.queue.borrow().is_empty() && !self.busy.get()
    }

    pub fn stop(&self) {
        self.stop.set(true);
    }

    /// What the admin process did, one line per action and group.
    pub fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.borrow_mut())
    }

    fn note(&self, line: String) {
        let at = SimClock::elapsed_ms();
        self.log
            .borrow_mut()
            .push(format!("{at:>6} ms admin: {line}"));
    }
}

/// The admin process of a run.
pub async fn run_admin(desk: Rc<AdminDesk>, nodes: u64, shards: u32) -> turmoil::Result {
    let factory = channel_factory(&NetworkConfig::default());
    let mut clients = Vec::new();
    for id in 1..=nodes {
        let channel = factory(&node_addr(id))?;
        clients.push(AdminServiceClient::new(channel));
    }
    let groups: Vec<GroupId> = (0..=shards).collect();
    loop {
        let next = desk.queue.borrow_mut().pop_front();
        let Some(action) = next else {
            if desk.stop.get() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        desk.busy.set(true);
        let targets: Vec<GroupId> = match action {
            AdminAction::TransferLeader { group, .. } => vec![group],
            _ => groups.clone(),
        };
        for group in targets {
            let outcome = on_leader(&mut clients, nodes, group, &action).await;
            desk.note(format!("{action:?} on group {group}: {outcome}"));
        }
        desk.busy.set(false);
    }
}

/// Runs `action` on `group`'s leader, following leader hints; says how it went.
async fn on_leader(
    clients: &mut [AdminServiceClient<tonic::transport::Channel>],
    nodes: u64,
    group: GroupId,
    action: &AdminAction,
) -> String {
    let mut via = match action {
        AdminAction::TransferLeader { from, .. } if (1..=nodes).contains(from) => *from,
        _ => 1,
    };
    let mut last_error = String::from("not tried");
    for _ in 0..ATTEMPTS_MAX {
        let Some(client) = usize::try_from(via - 1)
            .ok()
            .and_then(|i| clients.get_mut(i))
        else {
            return format!("no client for n{via}");
        };
        match call(client, group, action, nodes).await {
            Ok(results) => {
                let Some(result) = results.results.iter().find(|r| r.group_id == group) else {
                    last_error = "no result for the group".to_owned();
                    via = via % nodes + 1;
                    continue;
                };
                if result.ok && result.error.is_empty() {
                    return format!("done via n{via}");
                }
                if result.ok {
                    return format!("done via n{via} ({})", result.error);
                }
                last_error = result.error.clone();
                via = match result.leader_id {
                    Some(leader) if (1..=nodes).contains(&leader) && leader != via => leader,
                    _ => via % nodes + 1,
                };
            }
            Err(error) => {
                last_error = error;
                via = via % nodes + 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS)).await;
    }
    format!("given up after {ATTEMPTS_MAX} attempts: {last_error}")
}

async fn call(
    client: &mut AdminServiceClient<tonic::transport::Channel>,
    group: GroupId,
    action: &AdminAction,
    nodes: u64,
) -> Result<GroupResults, String> {
    match action {
        AdminAction::TransferLeader { to, .. } => {
            let request = TransferLeaderRequest {
                group_id: group,
                to_node_id: *to,
            };
            bounded(client.transfer_leader(request)).await
        }
        AdminAction::Demote { node } => {
            let voters = (1..=nodes).filter(|id| id != node).collect();
            change_voters(client, group, voters, true).await
        }
        AdminAction::Remove { node } => {
            let voters = (1..=nodes).filter(|id| id != node).collect();
            change_voters(client, group, voters, false).await
        }
        AdminAction::Promote { node } => {
            let learner = AddLearnerRequest {
                group_ids: vec![group],
                node: Some(NodeAddress {
                    node_id: *node,
                    rpc_addr: node_addr(*node),
                }),
                blocking: false,
            };
            let added = bounded(client.add_learner(learner)).await?;
            if !added.results.iter().all(|result| result.ok) {
                return Ok(added);
            }
            let caught_up = caught_up(client, group, *node).await;
            let mut promoted = change_voters(client, group, (1..=nodes).collect(), true).await?;
            for result in &mut promoted.results {
                if result.ok && !caught_up {
                    result.error = format!("n{node} promoted before it caught up");
                }
            }
            Ok(promoted)
        }
    }
}

/// An admin RPC bounded by [`RPC_TIMEOUT_MS`].
async fn bounded(
    rpc: impl std::future::Future<Output = Result<tonic::Response<GroupResults>, tonic::Status>>,
) -> Result<GroupResults, String> {
    match tokio::time::timeout(Duration::from_millis(RPC_TIMEOUT_MS), rpc).await {
        Ok(Ok(reply)) => Ok(reply.into_inner()),
        Ok(Err(status)) => Err(status.message().to_owned()),
        Err(_) => Err("timed out".to_owned()),
    }
}

async fn change_voters(
    client: &mut AdminServiceClient<tonic::transport::Channel>,
    group: GroupId,
    voter_ids: Vec<u64>,
    retain_removed: bool,
) -> Result<GroupResults, String> {
    let request = ChangeMembershipRequest {
        group_ids: vec![group],
        voter_ids,
        retain_removed,
    };
    bounded(client.change_membership(request)).await
}

/// Waits (at most [`CATCH_UP_MS_MAX`]) until the leader this client reaches reports that
/// `node` has replicated its log up to the leader's last index when the wait began. False when
/// the time ran out or the node stopped being the leader.
async fn caught_up(
    client: &mut AdminServiceClient<tonic::transport::Channel>,
    group: GroupId,
    node: u64,
) -> bool {
    let deadline = SimClock::elapsed_ms().saturating_add(CATCH_UP_MS_MAX as i64);
    let mut target = None;
    while SimClock::elapsed_ms() < deadline {
        let request = StatusRequest {
            group_ids: vec![group],
        };
        let reply = tokio::time::timeout(
            Duration::from_millis(RPC_TIMEOUT_MS),
            client.status(request),
        )
        .await;
        let Ok(Ok(reply)) = reply else {
            return false;
        };
        let Some(status) = reply
            .into_inner()
            .groups
            .into_iter()
            .find(|g| g.group_id == group)
        else {
            return false;
        };
        if status.state != ServerState::Leader as i32 {
            return false;
        }
        let target = *target.get_or_insert(status.last_log_index.unwrap_or(0));
        let matched = status
            .replication
            .iter()
            .find(|progress| progress.node_id == node)
            .and_then(|progress| progress.matched_index);
        if matched.is_some_and(|matched| matched >= target) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(CATCH_UP_POLL_MS)).await;
    }
    false
}
