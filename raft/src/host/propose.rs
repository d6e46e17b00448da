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
//!
//! Spans: `raft.route` around the whole route-to-leader loop, `raft.client_write` per write on
//! the leader from the proposal to its applied answer (its apply, `raft.apply`, is a child when
//! spans are exported: [`crate::trace`]). Each answer's latency is counted in the group's
//! [`crate::stats::GroupStats::proposals`].

use std::collections::VecDeque;
use std::sync::Arc;

use auction_statemachine::Command;
use futures_util::StreamExt;
use openraft::error::{ClientWriteError, ForwardToLeader};
use openraft::raft::WriteResult;
use tokio::time::{timeout_at, Instant};
use tracing::{Instrument, Span};

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
    let span = tracing::info_span!("raft.route", group = write.group);
    let response = route(inner, write.group, deadline, |leader| {
        Box::pin(async move {
            if leader.id == inner.node_id() {
                let origin = WriteOrigin {
                    parent: Span::current(),
                    request_id: crate::trace::current_request_id(),
                };
                let mut answers =
                    propose_local_traced(inner, write.group, vec![(write, origin)], deadline).await;
                answers
                    .pop()
                    .unwrap_or_else(|| Routed::Failed(lost_answer(write.group)))
            } else {
                forward::forward(inner, &leader, write, deadline).await
            }
        })
    })
    .instrument(span)
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

/// Where a write proposed on this node comes from, for its spans: the span its
/// `raft.client_write` is a child of (the caller's, or a forwarded item's) and its HTTP
/// request id.
#[derive(Clone)]
pub(super) struct WriteOrigin {
    pub parent: Span,
    pub request_id: Option<Arc<str>>,
}

/// Proposes `writes` of `group` on this node, which believes it leads the group, stamped with
/// this node's clock; one answer per write, in order. Their spans are children of the
/// caller's span.
pub(super) async fn propose_local_many<S: NodeStorage>(
    inner: &HostInner<S>,
    group_id: GroupId,
    writes: Vec<&ClientWrite>,
    deadline: Instant,
) -> Vec<Routed<Response>> {
    let writes = writes
        .into_iter()
        .map(|write| {
            let origin = WriteOrigin {
                parent: Span::current(),
                request_id: crate::trace::current_request_id(),
            };
            (write, origin)
        })
        .collect();
    propose_local_traced(inner, group_id, writes, deadline).await
}

/// One `raft.client_write` span per write; registered for the apply when spans are exported.
fn client_write_spans<S: NodeStorage>(
    inner: &HostInner<S>,
    group_id: GroupId,
    writes: &[(&ClientWrite, WriteOrigin)],
) -> VecDeque<Span> {
    writes
        .iter()
        .map(|(write, origin)| {
            let span = tracing::info_span!(
                parent: &origin.parent,
                "raft.client_write",
                group = group_id,
                request_id = origin.request_id.as_deref().unwrap_or(""),
            );
            if crate::trace::exporting() {
                let trace = crate::trace::WriteTrace {
                    span: span.clone(),
                    request_id: origin.request_id.clone(),
                };
                inner.traces.register(write.request_id, trace);
            }
            span
        })
        .collect()
}

/// [`propose_local_many`] with each write's own origin.
pub(super) async fn propose_local_traced<S: NodeStorage>(
    inner: &HostInner<S>,
    group_id: GroupId,
    traced: Vec<(&ClientWrite, WriteOrigin)>,
    deadline: Instant,
) -> Vec<Routed<Response>> {
    // tokio's clock: simulated time in the simulator, like every other wait here.
    let started = Instant::now();
    let mut spans = client_write_spans(inner, group_id, &traced);
    let writes: Vec<&ClientWrite> = traced.iter().map(|(write, _)| *write).collect();
    let answers = propose_batch(inner, group_id, &writes, deadline, &mut spans).await;
    if crate::trace::exporting() {
        for write in &writes {
            inner.traces.forget(write.request_id);
        }
    }
    if let Some(stats) = inner.stats.group(group_id) {
        for _ in &answers {
            stats.proposals.record(started.elapsed());
        }
    }
    answers
}

/// The proposal itself; each span in `spans` ends as its write is answered.
async fn propose_batch<S: NodeStorage>(
    inner: &HostInner<S>,
    group_id: GroupId,
    writes: &[&ClientWrite],
    deadline: Instant,
    spans: &mut VecDeque<Span>,
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
            drop(spans.pop_front());
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
