//! The one way a request reaches its group's leader, for writes and reads alike.
//!
//! [`route`] asks the group who leads (this node's metrics, waiting a bounded time for a
//! leader to be known) and runs one attempt there. An attempt answers with [`Routed`]:
//! done, failed, "not the leader" (with the leader the asked node knows, if any: the next
//! attempt goes there at once, without waiting), or "unreachable" (wait until the group knows
//! another leader). Every attempt and every wait ends by the request's deadline.
//!
//! Whether a failure may be retried by the client depends on what the attempts did: once an
//! attempt may have put the request into a log (a leader that stopped answering, a reply that
//! never came), the request ends as [`HostError::OutcomeUnknown`] (HTTP 504), never as a
//! retryable "no leader" (503), because a client without an idempotency key must not repeat
//! a bid that may be committed.

use std::time::Duration;

use futures_util::future::BoxFuture;

use openraft::async_runtime::WatchReceiver;
use tokio::time::Instant;

use super::{Group, HostError, HostInner, NodeStorage};
use crate::types::AuctionRaft;
use crate::{GroupId, NodeId};

/// The leader a request is routed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Leader {
    pub id: NodeId,
    pub addr: String,
}

/// What one attempt gave.
pub(super) enum Routed<T> {
    Done(T),
    /// The node asked is not the leader; it names the leader it knows, if any. The request
    /// certainly did not enter that node's log.
    NotLeader(Option<Leader>),
    /// The leader could not be reached or stopped answering: route again once the group knows
    /// another leader. `maybe_sent`: the request may have reached it.
    Unreachable {
        leader: NodeId,
        maybe_sent: bool,
    },
    Failed(HostError),
}

/// Runs `attempt` at the group's leader until one answers, within `deadline`. (The attempt's
/// future is boxed: a closure returning a borrowing future defeats the compiler's `Send`
/// analysis.)
pub(super) async fn route<'a, S, T, F>(
    inner: &'a HostInner<S>,
    group_id: GroupId,
    deadline: Instant,
    mut attempt: F,
) -> Result<T, HostError>
where
    S: NodeStorage,
    F: FnMut(Leader) -> BoxFuture<'a, Routed<T>>,
{
    let group = inner.group(group_id)?;
    let mut hint: Option<Leader> = None;
    let mut maybe_sent = false;
    let unknown_if_sent = |error: HostError, maybe_sent: bool| match error {
        HostError::NoLeader { group, .. } | HostError::Unavailable { group, .. } if maybe_sent => {
            HostError::OutcomeUnknown {
                group,
                reason: "the leader changed while the request was in flight".to_owned(),
            }
        }
        other => other,
    };
    for _ in 0..inner.config.route_attempts_max {
        let leader = match hint.take() {
            Some(leader) => leader,
            None => current_leader(inner, group_id, group, deadline)
                .await
                .map_err(|error| unknown_if_sent(error, maybe_sent))?,
        };
        let tried = leader.id;
        let waited = match attempt(leader).await {
            Routed::Done(value) => return Ok(value),
            Routed::Failed(error) => return Err(unknown_if_sent(error, maybe_sent)),
            Routed::NotLeader(Some(next)) if next.id != tried => {
                hint = Some(next);
                Ok(())
            }
            Routed::NotLeader(_) => pause_before_rerouting(inner, group_id, deadline).await,
            Routed::Unreachable {
                leader,
                maybe_sent: sent,
            } => {
                maybe_sent |= sent;
                wait_for_other_leader(inner, group_id, group, leader, deadline).await
            }
        };
        waited.map_err(|error| unknown_if_sent(error, maybe_sent))?;
    }
    Err(unknown_if_sent(no_leader(inner, group_id), maybe_sent))
}

pub(super) fn no_leader<S: NodeStorage>(inner: &HostInner<S>, group: GroupId) -> HostError {
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
        return Err(HostError::OutcomeUnknown {
            group,
            reason: "no leader answered in time".to_owned(),
        });
    }
    tokio::time::sleep_until(pause).await;
    Ok(())
}

async fn wait_for_other_leader<S: NodeStorage>(
    inner: &HostInner<S>,
    group_id: GroupId,
    group: &Group<S>,
    gone: NodeId,
    deadline: Instant,
) -> Result<(), HostError> {
    let wait = deadline
        .min(Instant::now() + inner.config.leader_wait())
        .saturating_duration_since(Instant::now());
    let other = move |metrics: &openraft::RaftMetrics<AuctionRaft>| {
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

/// The leader of `group` as this node's metrics name it, if one is known.
pub(super) fn known_leader<S: NodeStorage>(
    inner: &HostInner<S>,
    group: &Group<S>,
) -> Option<Leader> {
    let metrics = group.raft.metrics();
    let metrics = metrics.borrow_watched();
    let id = metrics.current_leader?;
    let addr = match metrics.membership_config.membership().get_node(&id) {
        Some(node) => node.addr.clone(),
        None if id == inner.node_id() => inner.config.rpc_addr.clone(),
        None => return None,
    };
    Some(Leader { id, addr })
}

/// The group's leader as this node knows it, waiting a bounded time for one to be known.
pub(super) async fn current_leader<S: NodeStorage>(
    inner: &HostInner<S>,
    group_id: GroupId,
    group: &Group<S>,
    deadline: Instant,
) -> Result<Leader, HostError> {
    if let Some(leader) = known_leader(inner, group) {
        return Ok(leader);
    }
    let wait = deadline
        .min(Instant::now() + inner.config.leader_wait())
        .saturating_duration_since(Instant::now());
    let known = |metrics: &openraft::RaftMetrics<AuctionRaft>| metrics.current_leader.is_some();
    group
        .raft
        .wait(Some(wait))
        .metrics(known, "a leader is known")
        .await
        .map_err(|_| no_leader(inner, group_id))?;
    known_leader(inner, group).ok_or_else(|| no_leader(inner, group_id))
}
