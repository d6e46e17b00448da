//! Writes: route a client write to its group's leader, stamp it there, wait for the applied
//! result.
//!
//! Each attempt goes to the leader as this node knows it ([`super::route`]): itself (stamp with
//! the local clock and propose) or a peer (through the per-peer batching forwarder of
//! [`super::forward`], where the peer does the same). The request keeps its id across
//! attempts, so a write appended by a leader that then lost its leadership is applied at most
//! once even if the retry is appended too.
//!
//! A leader proposes many writes of one group at once ([`propose_local_many`]: one message to
//! openraft's core for the whole batch), which is how forwarded batches enter the log.

use auction_statemachine::Command;
use futures_util::StreamExt;
use openraft::error::{ClientWriteError, ForwardToLeader};
use openraft::raft::WriteResult;
use tokio::time::{timeout_at, Instant};

use super::route::{route, Leader, Routed};
use super::{forward, ClientWrite, HostError, HostInner, NodeStorage};
use crate::types::{AuctionRaft, Response};
use crate::GroupId;

pub(super) async fn propose<S: NodeStorage>(
    inner: &HostInner<S>,
    write: ClientWrite,
) -> Result<Response, HostError> {
    let deadline = Instant::now() + inner.config.request_timeout();
    let write = &write;
    let response = route(inner, write.group, deadline, |leader| {
        Box::pin(async move {
            if leader.id == inner.node_id() {
                let mut answers =
                    propose_local_many(inner, write.group, vec![write], deadline).await;
                answers
                    .pop()
                    .unwrap_or_else(|| Routed::Failed(lost_answer(write.group)))
            } else {
                forward::forward(inner, &leader, write, deadline).await
            }
        })
    })
    .await?;
    Ok(for_client(response, write))
}

fn lost_answer(group: GroupId) -> HostError {
    HostError::OutcomeUnknown {
        group,
        reason: "the group stopped before answering".to_owned(),
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

/// Proposes `writes` of `group` on this node, which believes it leads the group, stamped with
/// this node's clock; one answer per write, in order.
pub(super) async fn propose_local_many<S: NodeStorage>(
    inner: &HostInner<S>,
    group_id: GroupId,
    writes: Vec<&ClientWrite>,
    deadline: Instant,
) -> Vec<Routed<Response>> {
    let count = writes.len();
    let group = match inner.group(group_id) {
        Ok(group) => group,
        Err(error) => return (0..count).map(|_| Routed::Failed(error.clone())).collect(),
    };
    let Some(ts_ms) = inner.stamp_ms(group_id) else {
        let error = HostError::Unavailable {
            group: group_id,
            reason: "the clocks heard give no majority view of time (clock_skew_ms_max)".to_owned(),
        };
        return (0..count).map(|_| Routed::Failed(error.clone())).collect();
    };
    let commands: Vec<Command> = writes
        .iter()
        .map(|write| Command {
            ts_ms,
            request_id: write.request_id,
            idempotency_key: write.idempotency_key.clone(),
            op: write.op.clone(),
        })
        .collect();
    let mut answers = Vec::with_capacity(count);
    let early = super::planted::early_answers::<S>(group_id, &group.reader, &commands);
    let written = timeout_at(deadline, async {
        let mut results = match group.raft.client_write_many(commands).await {
            Ok(results) => results,
            // The core stopped before taking the batch: nothing of it entered the log.
            Err(fatal) => {
                let error = HostError::Unavailable {
                    group: group_id,
                    reason: fatal.to_string(),
                };
                answers.extend((0..count).map(|_| Routed::Failed(error.clone())));
                return;
            }
        };
        if let Some(early) = early {
            answers.extend(early.into_iter().map(Routed::Done));
            return;
        }
        while let Some(result) = results.next().await {
            answers.push(match result {
                Ok(result) => routed(inner, group_id, result),
                // The core stopped while the write was in flight: it may be committed.
                Err(fatal) => Routed::Failed(HostError::OutcomeUnknown {
                    group: group_id,
                    reason: fatal.to_string(),
                }),
            });
        }
    })
    .await;
    if written.is_err() || answers.len() < count {
        let error = HostError::OutcomeUnknown {
            group: group_id,
            reason: "no answer within the time limit".to_owned(),
        };
        answers.extend((answers.len()..count).map(|_| Routed::Failed(error.clone())));
    }
    answers
}

fn routed<S: NodeStorage>(
    inner: &HostInner<S>,
    group: GroupId,
    result: WriteResult<AuctionRaft>,
) -> Routed<Response> {
    match result {
        Ok(written) => Routed::Done(written.response),
        Err(ClientWriteError::ForwardToLeader(forward))
        | Err(ClientWriteError::LogEntryDiscarded(forward)) => {
            Routed::NotLeader(leader_hint(inner, &forward))
        }
        // Not produced for normal writes (openraft's contract), but an unexpected refusal must
        // not be retried as if it were certainly outside the log.
        Err(error) => Routed::Failed(HostError::OutcomeUnknown {
            group,
            reason: error.to_string(),
        }),
    }
}

/// The leader an openraft "forward to leader" names, with its address.
pub(super) fn leader_hint<S: NodeStorage>(
    inner: &HostInner<S>,
    forward: &ForwardToLeader<AuctionRaft>,
) -> Option<Leader> {
    let id = forward.leader_id?;
    let addr = match &forward.leader_node {
        Some(node) => node.addr.clone(),
        None if id == inner.node_id() => inner.config.rpc_addr.clone(),
        None => return None,
    };
    Some(Leader { id, addr })
}
