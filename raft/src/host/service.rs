//! The `ClientService` gRPC server every node runs for its peers, and the assembly of every
//! node-to-node service into one set of routes.
//!
//! - `ForwardBatch`: writes forwarded by peers (see [`super::forward`]). Each group's share is
//!   proposed in one batch if this node leads the group; otherwise each of its writes answers
//!   `not_leader` with the leader this node knows, so the sender re-routes at once. Each item
//!   gets a `raft.forwarded` span with the item's HTTP request id, a child of the sender's
//!   span when the item carries a trace context ([`crate::trace`]).
//! - `ReadBarrier`: on a group leader, the `ReadIndex` log id a reader elsewhere must have
//!   applied before a linearizable read ([`read_barrier`]); `not_leader` elsewhere.
//! - `TakeBudget`: one unit of a rate-limit budget this node owns, answered by the keeper the
//!   API registered ([`super::budget`]); `UNAVAILABLE` before one is registered.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use auction_proto::client::client_service_server::{ClientService, ClientServiceServer};
use auction_proto::client::{
    forward_outcome, read_barrier_reply, ForwardBatchReply, ForwardBatchRequest, ForwardItem,
    ForwardOutcome, NotLeader, ReadBarrierReply, ReadBarrierRequest, Refusal, TakeBudgetReply,
    TakeBudgetRequest,
};
use auction_proto::Bytes;
use openraft::alias::LogIdOf;
use openraft::error::{ForwardToLeader, LinearizableReadError, RaftError};
use openraft::storage::RaftStateMachine;
use openraft::{Raft, RaftTypeConfig, ReadPolicy};
use tonic::{Request, Response as GrpcResponse, Status};

use super::forward::FORWARD_BATCH_WRITES_MAX;
use super::propose::{propose_local_traced, WriteOrigin};
use super::route::{Leader, Routed};
use super::{ClientWrite, HostError, HostInner, NodeStorage};
use crate::codec;
use crate::network::{AdminGrpcService, PeerAddress, RaftGrpcService};
use crate::types::Response;

/// Serves forwarded writes and read barriers.
pub struct ClientGrpcService<S: NodeStorage> {
    host: Weak<HostInner<S>>,
}

fn status(error: HostError) -> Status {
    match error {
        HostError::UnknownGroup(_) => Status::not_found(error.to_string()),
        HostError::OutcomeUnknown { .. } => Status::deadline_exceeded(error.to_string()),
        _ => Status::unavailable(error.to_string()),
    }
}

impl<S: NodeStorage> ClientGrpcService<S> {
    fn host(&self) -> Result<Arc<HostInner<S>>, Status> {
        self.host
            .upgrade()
            .ok_or_else(|| Status::unavailable("the node is shutting down"))
    }
}

fn refused(kind: Refusal, reason: impl ToString) -> ForwardOutcome {
    ForwardOutcome {
        result: Some(forward_outcome::Result::Refused(kind as i32)),
        reason: reason.to_string(),
    }
}

fn outcome(routed: Routed<Response>) -> ForwardOutcome {
    match routed {
        Routed::Done(response) => match codec::encode("forwarded response", &response) {
            Ok(bytes) => ForwardOutcome {
                result: Some(forward_outcome::Result::Response(Bytes::from(bytes))),
                reason: String::new(),
            },
            Err(error) => refused(Refusal::Unknown, error),
        },
        Routed::NotLeader(hint) => ForwardOutcome {
            result: Some(forward_outcome::Result::NotLeader(not_leader(hint))),
            reason: String::new(),
        },
        // A proposal on this node never reports an unreachable leader; treat it as not leading.
        Routed::Unreachable { .. } => ForwardOutcome {
            result: Some(forward_outcome::Result::NotLeader(not_leader(None))),
            reason: String::new(),
        },
        Routed::Failed(error @ HostError::OutcomeUnknown { .. }) => {
            refused(Refusal::Unknown, error)
        }
        Routed::Failed(error) => refused(Refusal::Rejected, error),
    }
}

fn not_leader(hint: Option<Leader>) -> NotLeader {
    match hint {
        Some(leader) => NotLeader {
            leader_id: Some(leader.id),
            leader_addr: leader.addr,
        },
        None => NotLeader {
            leader_id: None,
            leader_addr: String::new(),
        },
    }
}

#[tonic::async_trait]
impl<S: NodeStorage> ClientService for ClientGrpcService<S> {
    async fn forward_batch(
        &self,
        request: Request<ForwardBatchRequest>,
    ) -> Result<GrpcResponse<ForwardBatchReply>, Status> {
        let host = self.host()?;
        let items = request.into_inner().items;
        if items.len() > FORWARD_BATCH_WRITES_MAX {
            return Err(Status::invalid_argument(format!(
                "at most {FORWARD_BATCH_WRITES_MAX} writes per batch"
            )));
        }
        let mut outcomes: Vec<Option<ForwardOutcome>> = vec![None; items.len()];
        let mut by_group: BTreeMap<_, Vec<(usize, ClientWrite, WriteOrigin)>> = BTreeMap::new();
        for (position, item) in items.into_iter().enumerate() {
            match codec::decode::<ClientWrite>("forwarded write", &item.write) {
                Ok(write) if write.group == item.group_id => {
                    let origin = forwarded_origin(&item);
                    by_group
                        .entry(write.group)
                        .or_default()
                        .push((position, write, origin));
                }
                Ok(_) => {
                    outcomes[position] =
                        Some(refused(Refusal::Rejected, "the write names another group"))
                }
                Err(error) => outcomes[position] = Some(refused(Refusal::Rejected, error)),
            }
        }
        let deadline = tokio::time::Instant::now() + host.config.request_timeout();
        let proposals = by_group.iter().map(|(group, writes)| {
            let host = &host;
            async move {
                let traced = writes
                    .iter()
                    .map(|(_, write, origin)| (write, origin.clone()))
                    .collect();
                propose_local_traced(host, *group, traced, deadline).await
            }
        });
        let answers = futures_util::future::join_all(proposals).await;
        for (writes, answers) in by_group.values().zip(answers) {
            for ((position, _, _), routed) in writes.iter().zip(answers) {
                outcomes[*position] = Some(outcome(routed));
            }
        }
        let outcomes = outcomes
            .into_iter()
            .map(|outcome| outcome.unwrap_or_else(|| refused(Refusal::Unknown, "no answer")))
            .collect();
        Ok(GrpcResponse::new(ForwardBatchReply { outcomes }))
    }

    async fn read_barrier(
        &self,
        request: Request<ReadBarrierRequest>,
    ) -> Result<GrpcResponse<ReadBarrierReply>, Status> {
        let host = self.host()?;
        let group = host.group(request.into_inner().group_id).map_err(status)?;
        read_barrier(&group.raft).await.map(GrpcResponse::new)
    }

    async fn take_budget(
        &self,
        request: Request<TakeBudgetRequest>,
    ) -> Result<GrpcResponse<TakeBudgetReply>, Status> {
        let host = self.host()?;
        super::budget::serve(&host.budgets, host.node_id(), request.into_inner())
            .map(GrpcResponse::new)
    }
}

/// The span of one forwarded write on the leader, with the sender's HTTP request id (when
/// sane) and its trace context as the parent.
fn forwarded_origin(item: &ForwardItem) -> WriteOrigin {
    let request_id: Option<Arc<str>> = Some(item.request_id.as_str())
        .filter(|id| crate::trace::is_sane_request_id(id))
        .map(Arc::from);
    let span = tracing::info_span!(
        "raft.forwarded",
        group = item.group_id,
        request_id = request_id.as_deref().unwrap_or(""),
    );
    crate::trace::set_remote_parent(&span, &item.traceparent);
    WriteOrigin {
        parent: span,
        request_id,
    }
}

fn forward_hint<C>(forward: ForwardToLeader<C>) -> NotLeader
where
    C: RaftTypeConfig<NodeId = u64>,
    C::Node: PeerAddress,
{
    NotLeader {
        leader_id: forward.leader_id,
        leader_addr: forward
            .leader_node
            .as_ref()
            .map(|node| node.rpc_addr().to_string())
            .unwrap_or_default(),
    }
}

/// The leader's side of a linearizable read barrier (`ReadIndex`): confirms leadership with a
/// quorum and returns the log id a reader must have applied. Not being the leader is an answer
/// (`not_leader`); losing the quorum or a stopped group is `UNAVAILABLE`.
pub async fn read_barrier<C, SM>(raft: &Raft<C, SM>) -> Result<ReadBarrierReply, Status>
where
    C: RaftTypeConfig<NodeId = u64>,
    C::Node: PeerAddress,
    SM: RaftStateMachine<C>,
{
    match raft.get_read_linearizer(ReadPolicy::ReadIndex).await {
        Ok(linearizer) => {
            let read_log_id = linearizer.read_log_id().log_id().clone();
            let encoded = codec::encode("read log id", &read_log_id)?;
            Ok(ReadBarrierReply {
                result: Some(read_barrier_reply::Result::ReadLogId(Bytes::from(encoded))),
                read_index: read_log_id.index,
                applied_index: linearizer.applied().map_or(0, |applied| applied.index),
            })
        }
        Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(forward))) => {
            Ok(ReadBarrierReply {
                result: Some(read_barrier_reply::Result::NotLeader(forward_hint(forward))),
                ..ReadBarrierReply::default()
            })
        }
        Err(error) => Err(Status::unavailable(format!("no read barrier: {error}"))),
    }
}

/// Decodes the `read_log_id` of a [`ReadBarrierReply`] on the reading node.
pub fn decode_read_log_id<C: RaftTypeConfig>(bytes: &[u8]) -> Result<LogIdOf<C>, Status> {
    Ok(codec::decode("read log id", bytes)?)
}

/// Raft, client forwarding and admin services of one node.
pub(super) fn routes<S: NodeStorage>(inner: &Arc<HostInner<S>>) -> tonic::service::Routes {
    let raft = RaftGrpcService::new(inner.registry.clone(), inner.config.network.clone())
        .with_peer_clock(inner.clocks.clone())
        .with_closing(inner.streams_closing.subscribe())
        .into_server();
    let admin = AdminGrpcService::new(inner.config.node_id, inner.registry.clone()).into_server();
    let client = ClientServiceServer::new(ClientGrpcService {
        host: Arc::downgrade(inner),
    })
    .max_decoding_message_size(inner.config.network.message_bytes_max)
    .max_encoding_message_size(inner.config.network.message_bytes_max);
    tonic::service::Routes::new(raft)
        .add_service(admin)
        .add_service(client)
}
