//! The `ClientService` gRPC server every node runs for its peers: `Forward` proposes a write on
//! this node if it leads the group (answering `not_leader` with the leader it knows otherwise),
//! `ReadBarrier` answers the read index of a group it leads. Also assembles all node-to-node
//! services into one set of routes.

use std::sync::{Arc, Weak};

use tonic::{Request, Response as GrpcResponse, Status};

use auction_proto::client::client_service_server::{ClientService, ClientServiceServer};
use auction_proto::client::{
    forward_reply, ForwardReply, ForwardRequest, NotLeader, ReadBarrierReply, ReadBarrierRequest,
};

use super::propose::{propose_local, Routed};
use super::{ClientWrite, HostError, HostInner, NodeStorage};
use crate::codec;
use crate::network::{read_barrier, AdminGrpcService, RaftGrpcService};

/// Serves forwarded writes and read barriers.
pub struct ClientGrpcService<S: NodeStorage> {
    host: Weak<HostInner<S>>,
}

fn status(error: HostError) -> Status {
    match error {
        HostError::UnknownGroup(_) => Status::not_found(error.to_string()),
        HostError::Timeout { .. } => Status::deadline_exceeded(error.to_string()),
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

#[tonic::async_trait]
impl<S: NodeStorage> ClientService for ClientGrpcService<S> {
    async fn forward(
        &self,
        request: Request<ForwardRequest>,
    ) -> Result<GrpcResponse<ForwardReply>, Status> {
        let host = self.host()?;
        let request = request.into_inner();
        let write: ClientWrite = codec::decode("forwarded write", &request.command)?;
        if write.group != request.group_id {
            return Err(Status::invalid_argument("the write names another group"));
        }
        let deadline = tokio::time::Instant::now() + host.config.request_timeout();
        let result = match propose_local(&host, write.group, &write, deadline).await {
            Routed::Done(response) => forward_reply::Result::Response(
                codec::encode("forwarded response", &response)?.into(),
            ),
            Routed::NotLeader | Routed::Unreachable(_) => {
                forward_reply::Result::NotLeader(NotLeader {
                    leader_id: None,
                    leader_addr: String::new(),
                })
            }
            Routed::Failed(error) => return Err(status(error)),
        };
        Ok(GrpcResponse::new(ForwardReply {
            result: Some(result),
            log_index: 0,
        }))
    }

    async fn read_barrier(
        &self,
        request: Request<ReadBarrierRequest>,
    ) -> Result<GrpcResponse<ReadBarrierReply>, Status> {
        let host = self.host()?;
        let group = host.group(request.into_inner().group_id).map_err(status)?;
        read_barrier(&group.raft).await.map(GrpcResponse::new)
    }
}

/// Raft, client forwarding and admin services of one node.
pub(super) fn routes<S: NodeStorage>(inner: &Arc<HostInner<S>>) -> tonic::service::Routes {
    let raft =
        RaftGrpcService::new(inner.registry.clone(), inner.config.network.clone()).into_server();
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
