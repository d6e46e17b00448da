//! Forwarding writes to a leader on another node, batched per peer.
//!
//! Each peer has one bounded queue and one worker task. The worker takes the first queued
//! write, drains whatever else is queued (up to [`FORWARD_BATCH_WRITES_MAX`]) and sends them in
//! one `ForwardBatch` RPC, with at most [`FORWARD_RPCS_IN_FLIGHT_MAX`] RPCs outstanding per
//! peer. There are no timers: an idle node sends a write the moment it arrives, and under load
//! writes pile up while RPCs are in flight, so the next RPC carries all of them. The leader
//! proposes each group's share of a batch to openraft in one message, and the batch answers
//! item by item, in order.
//!
//! A caller waits for its own answer until its own deadline; a batch's RPC is bounded by the
//! latest deadline in it. Answers keep the routing information the caller needs: "not the
//! leader" with a hint, "unreachable" (the write may have been sent), or an outcome.
//!
//! Each item carries the HTTP request id of its request and, when spans are exported, the
//! `traceparent` of its `raft.forward` span, so the leader's spans of the write join the
//! sender's trace ([`crate::trace`]).
//!
//! Not done yet: queues of peers that left the cluster are only dropped at shutdown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use auction_proto::client::client_service_client::ClientServiceClient;
use auction_proto::client::{forward_outcome, ForwardBatchRequest, ForwardItem, Refusal};
use auction_proto::Bytes;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::time::{timeout_at, Instant};
use tonic::transport::Channel;
use tracing::Instrument;

use super::route::{Leader, Routed};
use super::{ClientWrite, HostError, HostInner, NodeStorage};
use crate::types::Response;
use crate::{codec, GroupId, NodeId};

/// Writes one forwarding RPC carries at most.
pub const FORWARD_BATCH_WRITES_MAX: usize = 512;
/// Forwarding RPCs outstanding per peer at most; further writes wait in the queue.
pub const FORWARD_RPCS_IN_FLIGHT_MAX: usize = 4;
/// Writes waiting per peer at most; a caller beyond it waits for room (within its deadline).
pub const FORWARD_QUEUE_WRITES_MAX: usize = 8_192;

/// A write waiting to be forwarded.
struct Pending {
    group: GroupId,
    leader: NodeId,
    write: Bytes,
    deadline: Instant,
    answer: oneshot::Sender<Routed<Response>>,
    /// The HTTP request id, empty when there is none.
    request_id: String,
    /// The trace context of the `raft.forward` span, empty when spans are not exported.
    traceparent: String,
}

/// The forwarding queues of one node, one per peer address.
#[derive(Default)]
pub(super) struct Forwarders {
    queues: Mutex<HashMap<String, mpsc::Sender<Pending>>>,
}

impl Forwarders {
    fn queue(
        &self,
        addr: &str,
        channel: impl FnOnce() -> Result<Channel, String>,
        message_bytes_max: usize,
    ) -> Result<mpsc::Sender<Pending>, String> {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(queue) = queues.get(addr).filter(|queue| !queue.is_closed()) {
            return Ok(queue.clone());
        }
        let client = ClientServiceClient::new(channel()?)
            .max_decoding_message_size(message_bytes_max)
            .max_encoding_message_size(message_bytes_max);
        let (sender, receiver) = mpsc::channel(FORWARD_QUEUE_WRITES_MAX);
        tokio::spawn(run_queue(client, receiver));
        queues.insert(addr.to_owned(), sender.clone());
        Ok(sender)
    }

    /// Closes every queue; their workers stop once the RPCs in flight have answered.
    pub(super) fn close(&self) {
        self.queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// Sends `write` to the leader on another node and waits for its answer.
pub(super) async fn forward<S: NodeStorage>(
    inner: &HostInner<S>,
    leader: &Leader,
    write: &ClientWrite,
    deadline: Instant,
) -> Routed<Response> {
    let span = tracing::info_span!("raft.forward", group = write.group, leader = leader.id);
    let traceparent = crate::trace::traceparent_of(&span);
    forward_in_span(inner, leader, write, deadline, traceparent)
        .instrument(span)
        .await
}

async fn forward_in_span<S: NodeStorage>(
    inner: &HostInner<S>,
    leader: &Leader,
    write: &ClientWrite,
    deadline: Instant,
    traceparent: String,
) -> Routed<Response> {
    let group = write.group;
    let bytes = match codec::encode("forwarded write", write) {
        Ok(bytes) => Bytes::from(bytes),
        Err(error) => {
            return Routed::Failed(HostError::Unavailable {
                group,
                reason: error.to_string(),
            })
        }
    };
    let queue = inner.forwarders.queue(
        &leader.addr,
        || inner.peer_channel(&leader.addr),
        inner.config.network.message_bytes_max,
    );
    let Ok(queue) = queue else {
        return Routed::Unreachable {
            leader: leader.id,
            maybe_sent: false,
        };
    };
    let (answer, answered) = oneshot::channel();
    let pending = Pending {
        group,
        leader: leader.id,
        write: bytes,
        deadline,
        answer,
        request_id: crate::trace::current_request_id()
            .map(|id| id.to_string())
            .unwrap_or_default(),
        traceparent,
    };
    let unknown = |reason: &str| {
        Routed::Failed(HostError::OutcomeUnknown {
            group,
            reason: reason.to_owned(),
        })
    };
    match timeout_at(deadline, queue.send(pending)).await {
        Ok(Ok(())) => {}
        Ok(Err(_closed)) => {
            return Routed::Unreachable {
                leader: leader.id,
                maybe_sent: false,
            }
        }
        Err(_) => {
            return Routed::Failed(HostError::Unavailable {
                group,
                reason: "the forwarding queue stayed full".to_owned(),
            })
        }
    }
    match timeout_at(deadline, answered).await {
        Ok(Ok(routed)) => routed,
        Ok(Err(_dropped)) => unknown("the forwarding worker stopped"),
        Err(_) => unknown("no answer from the leader within the time limit"),
    }
}

async fn run_queue(client: ClientServiceClient<Channel>, mut queue: mpsc::Receiver<Pending>) {
    let in_flight = Arc::new(Semaphore::new(FORWARD_RPCS_IN_FLIGHT_MAX));
    loop {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = queue.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < FORWARD_BATCH_WRITES_MAX {
            match queue.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        tokio::spawn(send_batch(client.clone(), batch, permit));
    }
}

async fn send_batch(
    mut client: ClientServiceClient<Channel>,
    batch: Vec<Pending>,
    _permit: OwnedSemaphorePermit,
) {
    let deadline = batch
        .iter()
        .map(|pending| pending.deadline)
        .max()
        .unwrap_or_else(Instant::now);
    let request = ForwardBatchRequest {
        items: batch
            .iter()
            .map(|pending| ForwardItem {
                group_id: pending.group,
                write: pending.write.clone(),
                request_id: pending.request_id.clone(),
                traceparent: pending.traceparent.clone(),
            })
            .collect(),
    };
    let reply = timeout_at(deadline, client.forward_batch(request)).await;
    let outcomes = match reply {
        Ok(Ok(reply)) => reply.into_inner().outcomes,
        Ok(Err(status)) => {
            for pending in batch {
                let routed = failed_rpc(&status, pending.group, pending.leader);
                let _ = pending.answer.send(routed);
            }
            return;
        }
        Err(_) => Vec::new(),
    };
    let mut outcomes = outcomes.into_iter();
    for pending in batch {
        let routed = match outcomes.next() {
            Some(outcome) => answer(outcome, pending.group),
            None => Routed::Failed(HostError::OutcomeUnknown {
                group: pending.group,
                reason: "no answer from the leader within the time limit".to_owned(),
            }),
        };
        // The caller may have given up (its deadline passed); nobody is left to tell.
        let _ = pending.answer.send(routed);
    }
}

/// What a failed RPC means for one of its writes.
fn failed_rpc(status: &tonic::Status, group: GroupId, leader: NodeId) -> Routed<Response> {
    match status.code() {
        // Down, restarting or reset mid-call: the write may have been received.
        tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::Unknown => {
            Routed::Unreachable {
                leader,
                maybe_sent: true,
            }
        }
        tonic::Code::DeadlineExceeded => Routed::Failed(HostError::OutcomeUnknown {
            group,
            reason: status.message().to_owned(),
        }),
        // Refused as a whole before anything was proposed (too large, undecodable).
        _ => Routed::Failed(HostError::Unavailable {
            group,
            reason: status.message().to_owned(),
        }),
    }
}

fn answer(outcome: auction_proto::client::ForwardOutcome, group: GroupId) -> Routed<Response> {
    let reason = outcome.reason;
    match outcome.result {
        Some(forward_outcome::Result::Response(bytes)) => {
            match codec::decode::<Response>("forwarded response", &bytes) {
                Ok(response) => Routed::Done(response),
                Err(error) => Routed::Failed(HostError::OutcomeUnknown {
                    group,
                    reason: error.to_string(),
                }),
            }
        }
        Some(forward_outcome::Result::NotLeader(hint)) => Routed::NotLeader(
            hint.leader_id
                .filter(|_| !hint.leader_addr.is_empty())
                .map(|id| Leader {
                    id,
                    addr: hint.leader_addr,
                }),
        ),
        Some(forward_outcome::Result::Refused(kind)) if kind == Refusal::Rejected as i32 => {
            Routed::Failed(HostError::Unavailable { group, reason })
        }
        _ => Routed::Failed(HostError::OutcomeUnknown { group, reason }),
    }
}
