//! Writes: route a client write to its group's leader, stamp it there, wait for the applied
//! result.
//!
//! Each attempt goes to the leader as this node currently knows it: itself (stamp with the
//! local clock, `client_write`) or a peer (the `ClientService.Forward` RPC, where the peer does
//! the same). A "not the leader" answer re-routes; every other failure ends the request. The
//! request keeps its id across attempts, so a write that was appended by a leader that then
//! lost its leadership is applied at most once even if the retry is appended too.

use std::time::Duration;

use auction_statemachine::Command;
use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, RaftError};
use tokio::time::{timeout_at, Instant};

use auction_proto::client::client_service_client::ClientServiceClient;
use auction_proto::client::{forward_reply, ForwardRequest};

use super::{ClientWrite, Group, HostError, HostInner, NodeStorage};
use crate::types::Response;
use crate::{codec, GroupId};

/// The leader a request is routed to.
pub(super) struct Leader {
    pub id: u64,
    pub addr: String,
}

/// What one routing attempt gave.
pub(super) enum Routed<T> {
    Done(T),
    /// The node asked is not (or no longer) the leader: route again.
    NotLeader,
    /// The leader could not be reached (down or restarting): route again once the group
    /// knows another leader.
    Unreachable(u64),
    Failed(HostError),
}

/// Waits between attempts: briefly after "not the leader" (a new leader announces itself with
/// its first heartbeat), until another leader is known after an unreachable one.
pub(super) async fn before_rerouting<T, S: NodeStorage>(
    inner: &HostInner<S>,
    group: GroupId,
    routed: &Routed<T>,
    deadline: Instant,
) -> Result<(), HostError> {
    match routed {
        Routed::Unreachable(gone) => wait_for_other_leader(inner, group, *gone, deadline).await,
        _ => pause_before_rerouting(inner, group, deadline).await,
    }
}

async fn wait_for_other_leader<S: NodeStorage>(
    inner: &HostInner<S>,
    group_id: GroupId,
    gone: u64,
    deadline: Instant,
) -> Result<(), HostError> {
    let group = inner.group(group_id)?;
    let wait = deadline
        .min(Instant::now() + inner.config.leader_wait())
        .saturating_duration_since(Instant::now());
    let other = move |metrics: &openraft::RaftMetrics<crate::types::AuctionRaft>| {
        metrics.current_leader.is_some_and(|leader| leader != gone)
    };
    group
        .raft
        .wait(Some(wait))
        .metrics(other, "another leader is known")
        .await
        .map(|_| ())
        .map_err(|_| no_leader(inner, group_id))
}

pub(super) async fn propose<S: NodeStorage>(
    inner: &HostInner<S>,
    write: ClientWrite,
) -> Result<Response, HostError> {
    let group_id = write.group;
    let group = inner.group(group_id)?;
    let deadline = Instant::now() + inner.config.request_timeout();
    for _ in 0..inner.config.route_attempts_max {
        let leader = current_leader(inner, group_id, group, deadline).await?;
        let routed = if leader.id == inner.node_id() {
            propose_local(inner, group_id, &write, deadline).await
        } else {
            forward(inner, &leader, &write, deadline).await
        };
        match routed {
            Routed::Done(response) => return Ok(response),
            Routed::Failed(error) => return Err(error),
            other => before_rerouting(inner, group_id, &other, deadline).await?,
        }
    }
    Err(no_leader(inner, group_id))
}

fn no_leader<S: NodeStorage>(inner: &HostInner<S>, group: GroupId) -> HostError {
    HostError::NoLeader {
        group,
        retry_after_ms: inner.config.election_timeout_max_ms,
    }
}

/// Gives a new leader a heartbeat to make itself known, within the deadline.
async fn pause_before_rerouting<S: NodeStorage>(
    inner: &HostInner<S>,
    group: GroupId,
    deadline: Instant,
) -> Result<(), HostError> {
    let pause = Instant::now() + Duration::from_millis(inner.config.heartbeat_interval_ms);
    if pause >= deadline {
        return Err(HostError::Timeout { group });
    }
    tokio::time::sleep_until(pause).await;
    Ok(())
}

/// The group's leader as this node knows it, waiting a bounded time for one to be known.
pub(super) async fn current_leader<S: NodeStorage>(
    inner: &HostInner<S>,
    group_id: GroupId,
    group: &Group<S>,
    deadline: Instant,
) -> Result<Leader, HostError> {
    let wait_until = deadline.min(Instant::now() + inner.config.leader_wait());
    let known = |metrics: &openraft::RaftMetrics<crate::types::AuctionRaft>| {
        metrics.current_leader.is_some()
    };
    let metrics = {
        let now = group.raft.metrics().borrow_watched().clone();
        if known(&now) {
            now
        } else {
            let wait = wait_until.saturating_duration_since(Instant::now());
            group
                .raft
                .wait(Some(wait))
                .metrics(known, "a leader is known")
                .await
                .map_err(|_| no_leader(inner, group_id))?
        }
    };
    let id = metrics
        .current_leader
        .ok_or_else(|| no_leader(inner, group_id))?;
    let addr = match metrics.membership_config.membership().get_node(&id) {
        Some(node) => node.addr.clone(),
        None if id == inner.node_id() => inner.config.rpc_addr.clone(),
        None => return Err(no_leader(inner, group_id)),
    };
    Ok(Leader { id, addr })
}

/// Proposes on this node, which believes it leads the group.
pub(super) async fn propose_local<S: NodeStorage>(
    inner: &HostInner<S>,
    group_id: GroupId,
    write: &ClientWrite,
    deadline: Instant,
) -> Routed<Response> {
    let group = match inner.group(group_id) {
        Ok(group) => group,
        Err(error) => return Routed::Failed(error),
    };
    let command = Command {
        ts_ms: inner.clock.now_ms(),
        request_id: write.request_id,
        idempotency_key: write.idempotency_key.clone(),
        op: write.op.clone(),
    };
    match timeout_at(deadline, group.raft.client_write(command)).await {
        Err(_) => Routed::Failed(HostError::Timeout { group: group_id }),
        Ok(Ok(written)) => Routed::Done(for_client(written.data, write)),
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))))
        | Ok(Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)))) => Routed::NotLeader,
        Ok(Err(error)) => Routed::Failed(HostError::Unavailable {
            group: group_id,
            reason: error.to_string(),
        }),
    }
}

/// A replay of our own retry (same request id, no client key) is the first answer, not a
/// client-visible replay.
fn for_client(mut response: Response, write: &ClientWrite) -> Response {
    if write.idempotency_key.is_none() {
        response.replayed = false;
    }
    response
}

/// Sends the write to the leader on another node.
async fn forward<S: NodeStorage>(
    inner: &HostInner<S>,
    leader: &Leader,
    write: &ClientWrite,
    deadline: Instant,
) -> Routed<Response> {
    let group = write.group;
    let unavailable = |reason: String| Routed::Failed(HostError::Unavailable { group, reason });
    let channel = match inner.peer_channel(&leader.addr) {
        Ok(channel) => channel,
        Err(_) => return Routed::Unreachable(leader.id),
    };
    let command = match codec::encode("forwarded write", write) {
        Ok(bytes) => bytes,
        Err(error) => return unavailable(error.to_string()),
    };
    let request = ForwardRequest {
        group_id: group,
        command: command.into(),
    };
    let reply = match timeout_at(deadline, ClientServiceClient::new(channel).forward(request)).await
    {
        Err(_) => return Routed::Failed(HostError::Timeout { group }),
        // The leader may be down or restarting: re-route once the group knows another leader.
        Ok(Err(status)) if status.code() == tonic::Code::Unavailable => {
            return Routed::Unreachable(leader.id)
        }
        Ok(Err(status)) => return unavailable(status.message().to_owned()),
        Ok(Ok(reply)) => reply.into_inner(),
    };
    match reply.result {
        Some(forward_reply::Result::Response(bytes)) => {
            match codec::decode::<Response>("forwarded response", &bytes) {
                Ok(response) => Routed::Done(for_client(response, write)),
                Err(error) => unavailable(error.to_string()),
            }
        }
        Some(forward_reply::Result::NotLeader(_)) => Routed::NotLeader,
        None => unavailable("empty forward reply".to_owned()),
    }
}
