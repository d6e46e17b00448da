//! Reads: linearizable (read index) and bounded-staleness (a lease on the local replica).
//!
//! Linearizable: the leader confirms it still leads with a quorum and names the log index every
//! write acknowledged so far is at or below; the reading node waits until its own replica has
//! applied that index and then reads locally. On the leader this is openraft's read index;
//! elsewhere the `ReadBarrier` RPC asks the leader for the index. Either way the read never
//! returns state older than a write acknowledged before the read began.
//!
//! Bounded staleness ([`bounded_reader`]): a replica that completed a read barrier started at
//! time `t` reflects every write committed before `t`, and only gets fresher. Each group keeps
//! the start of its latest completed barrier ([`Freshness`]); a read that accepts a staleness
//! of `bound` is served from the local replica while `now - fresh_at <= bound`, and otherwise
//! waits for a barrier of its own. A background duty ([`refresh`]) keeps the groups that serve
//! such reads fresh, so the read itself costs no round trip: this is how authentication reads
//! sessions without a Raft round trip per request while a logout or a ban still takes effect on
//! every node within the bound. Only real time on this node is compared; no clocks across nodes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openraft::ReadPolicy;
use tokio::time::{timeout_at, Instant};

use auction_proto::client::client_service_client::ClientServiceClient;
use auction_proto::client::{read_barrier_reply, ReadBarrierRequest};

use super::route::{route, Leader, Routed};
use super::{GroupReader, HostError, HostInner, NodeStorage};
use crate::GroupId;

/// When a group's local replica was last known fresh: the start of its latest completed read
/// barrier, in milliseconds since the host started (0: never).
#[derive(Debug, Default)]
pub(super) struct Freshness {
    fresh_at_ms: AtomicU64,
    /// Set by a bounded read, so the duty keeps the group fresh; cleared by the duty.
    wanted: std::sync::atomic::AtomicBool,
}

impl Freshness {
    fn record(&self, started_ms: u64) {
        self.fresh_at_ms.fetch_max(started_ms, Ordering::AcqRel);
    }

    fn age_ms(&self, now_ms: u64) -> Option<u64> {
        match self.fresh_at_ms.load(Ordering::Acquire) {
            0 => None,
            fresh_at => Some(now_ms.saturating_sub(fresh_at)),
        }
    }
}

pub(super) async fn linearizable_reader<S: NodeStorage>(
    inner: &HostInner<S>,
    group_id: GroupId,
) -> Result<GroupReader<S>, HostError> {
    let started_ms = inner.uptime_ms();
    if super::planted::local_linearizable_reads() {
        return Ok(inner.group(group_id)?.reader.clone());
    }
    let deadline = Instant::now() + inner.config.request_timeout();
    route(inner, group_id, deadline, |leader| {
        Box::pin(async move {
            if leader.id == inner.node_id() {
                read_on_leader(inner, group_id, deadline).await
            } else {
                read_through_leader(inner, group_id, &leader, deadline).await
            }
        })
    })
    .await?;
    let group = inner.group(group_id)?;
    group.freshness.record(started_ms.max(1));
    Ok(group.reader.clone())
}

/// A reader of the local replica if it is known to be at most `bound` stale, else one that
/// waited for a read barrier.
pub(super) async fn bounded_reader<S: NodeStorage>(
    inner: &HostInner<S>,
    group_id: GroupId,
    bound: Duration,
) -> Result<GroupReader<S>, HostError> {
    let group = inner.group(group_id)?;
    group.freshness.wanted.store(true, Ordering::Relaxed);
    let bound_ms = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX);
    match group.freshness.age_ms(inner.uptime_ms()) {
        Some(age) if age <= bound_ms => Ok(group.reader.clone()),
        _ => linearizable_reader(inner, group_id).await,
    }
}

/// One round of the freshness duty: a read barrier for every group that served bounded reads
/// since the last round. Errors only leave the group staler (its reads then wait for barriers
/// of their own, which report the error to their callers).
pub(super) async fn refresh<S: NodeStorage>(inner: &HostInner<S>) {
    let wanted: Vec<GroupId> = inner
        .groups
        .iter()
        .filter(|(_, group)| group.freshness.wanted.swap(false, Ordering::Relaxed))
        .map(|(id, _)| *id)
        .collect();
    let barriers = wanted
        .into_iter()
        .map(|group| async move { linearizable_reader(inner, group).await.map(|_| ()) });
    for result in futures_util::future::join_all(barriers).await {
        if let Err(error) = result {
            tracing::debug!(%error, "a freshness barrier failed");
        }
    }
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
        Err(_) => Routed::Failed(read_timeout(group_id)),
        Ok(Ok(_)) => Routed::Done(()),
        Ok(Err(openraft::error::RaftError::APIError(
            openraft::error::LinearizableReadError::ForwardToLeader(forward),
        ))) => Routed::NotLeader(super::propose::leader_hint(inner, &forward)),
        Ok(Err(openraft::error::RaftError::APIError(_))) => Routed::NotLeader(None),
        Ok(Err(error)) => Routed::Failed(HostError::Unavailable {
            group: group_id,
            reason: error.to_string(),
        }),
    }
}

fn read_timeout(group: GroupId) -> HostError {
    HostError::OutcomeUnknown {
        group,
        reason: "no read barrier within the time limit".to_owned(),
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
    // A read changes nothing: an unreachable leader never leaves an unknown outcome behind.
    let unreachable = Routed::Unreachable {
        leader: leader.id,
        maybe_sent: false,
    };
    let Ok(channel) = inner.peer_channel(&leader.addr) else {
        return unreachable;
    };
    let request = ReadBarrierRequest { group_id };
    let reply = match timeout_at(
        deadline,
        ClientServiceClient::new(channel).read_barrier(request),
    )
    .await
    {
        Err(_) => return Routed::Failed(read_timeout(group_id)),
        Ok(Err(status)) if status.code() == tonic::Code::Unavailable => return unreachable,
        Ok(Err(status)) => return unavailable(status.message().to_owned()),
        Ok(Ok(reply)) => reply.into_inner(),
    };
    match reply.result {
        Some(read_barrier_reply::Result::ReadLogId(_)) => {
            wait_applied(inner, group_id, reply.read_index, deadline).await
        }
        Some(read_barrier_reply::Result::NotLeader(hint)) => Routed::NotLeader(
            hint.leader_id
                .filter(|_| !hint.leader_addr.is_empty())
                .map(|id| Leader {
                    id,
                    addr: hint.leader_addr,
                }),
        ),
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
        Err(_) => Routed::Failed(read_timeout(group_id)),
    }
}
