//! Linearizable reads (read index): the leader confirms it still leads with a quorum and names
//! the log index every write acknowledged so far is at or below; the reading node waits until
//! its own replica has applied that index and then reads locally.
//!
//! On the leader this is openraft's `ensure_linearizable`; elsewhere the `ReadBarrier` RPC asks
//! the leader for the index. Either way the read never returns state older than a write that was
//! acknowledged before the read began.

use openraft::ReadPolicy;
use tokio::time::{timeout_at, Instant};

use auction_proto::client::client_service_client::ClientServiceClient;
use auction_proto::client::{read_barrier_reply, ReadBarrierRequest};

use super::propose::{before_rerouting, current_leader, Leader, Routed};
use super::{GroupReader, HostError, HostInner, NodeStorage};
use crate::GroupId;

pub(super) async fn linearizable_reader<S: NodeStorage>(
    inner: &HostInner<S>,
    group_id: GroupId,
) -> Result<GroupReader<S>, HostError> {
    let group = inner.group(group_id)?;
    let deadline = Instant::now() + inner.config.request_timeout();
    for _ in 0..inner.config.route_attempts_max {
        let leader = current_leader(inner, group_id, group, deadline).await?;
        let routed = if leader.id == inner.node_id() {
            read_on_leader(inner, group_id, deadline).await
        } else {
            read_through_leader(inner, group_id, &leader, deadline).await
        };
        match routed {
            Routed::Done(()) => return Ok(group.reader.clone()),
            Routed::Failed(error) => return Err(error),
            other => before_rerouting(inner, group_id, &other, deadline).await?,
        }
    }
    Err(HostError::NoLeader {
        group: group_id,
        retry_after_ms: inner.config.election_timeout_max_ms,
    })
}

async fn read_on_leader<S: NodeStorage>(
    inner: &HostInner<S>,
    group_id: GroupId,
    deadline: Instant,
) -> Routed<()> {
    let Ok(group) = inner.group(group_id) else {
        return Routed::Failed(HostError::UnknownGroup(group_id));
    };
    match timeout_at(
        deadline,
        group.raft.ensure_linearizable(ReadPolicy::ReadIndex),
    )
    .await
    {
        Err(_) => Routed::Failed(HostError::Timeout { group: group_id }),
        Ok(Ok(_)) => Routed::Done(()),
        Ok(Err(openraft::error::RaftError::APIError(_))) => Routed::NotLeader,
        Ok(Err(error)) => Routed::Failed(HostError::Unavailable {
            group: group_id,
            reason: error.to_string(),
        }),
    }
}

async fn read_through_leader<S: NodeStorage>(
    inner: &HostInner<S>,
    group_id: GroupId,
    leader: &Leader,
    deadline: Instant,
) -> Routed<()> {
    let unavailable = |reason: String| {
        Routed::Failed(HostError::Unavailable {
            group: group_id,
            reason,
        })
    };
    let channel = match inner.peer_channel(&leader.addr) {
        Ok(channel) => channel,
        Err(_) => return Routed::Unreachable(leader.id),
    };
    let request = ReadBarrierRequest { group_id };
    let reply = match timeout_at(
        deadline,
        ClientServiceClient::new(channel).read_barrier(request),
    )
    .await
    {
        Err(_) => return Routed::Failed(HostError::Timeout { group: group_id }),
        Ok(Err(status)) if status.code() == tonic::Code::Unavailable => {
            return Routed::Unreachable(leader.id)
        }
        Ok(Err(status)) => return unavailable(status.message().to_owned()),
        Ok(Ok(reply)) => reply.into_inner(),
    };
    match reply.result {
        Some(read_barrier_reply::Result::ReadLogId(_)) => {
            wait_applied(inner, group_id, reply.read_index, deadline).await
        }
        Some(read_barrier_reply::Result::NotLeader(_)) => Routed::NotLeader,
        None => unavailable("empty read barrier reply".to_owned()),
    }
}

/// Waits until the local replica has applied `index`.
async fn wait_applied<S: NodeStorage>(
    inner: &HostInner<S>,
    group_id: GroupId,
    index: u64,
    deadline: Instant,
) -> Routed<()> {
    let Ok(group) = inner.group(group_id) else {
        return Routed::Failed(HostError::UnknownGroup(group_id));
    };
    let wait = deadline.saturating_duration_since(Instant::now());
    match group
        .raft
        .wait(Some(wait))
        .applied_index_at_least(Some(index), "read index applied")
        .await
    {
        Ok(_) => Routed::Done(()),
        Err(_) => Routed::Failed(HostError::Timeout { group: group_id }),
    }
}
