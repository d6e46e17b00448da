//! The receiving side of the transport: dispatch an RPC to the group's `Raft`.
//!
//! [`GroupRegistry`] maps group ids to the node's `Raft` handles; the node registers each group
//! when it starts it. [`RaftGrpcService`] implements the generated `RaftService` over a registry.
//! A snapshot stream must be a header followed by non-empty data chunks that add up to exactly
//! the announced size (at most [`NetworkConfig::snapshot_bytes_max`]), so a misbehaving peer can
//! neither exhaust memory nor keep the handler looping. An append stream (`AppendStream`)
//! carries the appends of every group from one peer; each is handed to its group as it arrives
//! (at most [`APPEND_STREAM_IN_FLIGHT_MAX`] at once) and answered as it finishes, tagged with its
//! sequence number; a failed append is answered with its status and the stream goes on.
//!
//! Not done yet: no limit on concurrent snapshot installs per node.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};

use auction_proto::raft::raft_service_server::{RaftService, RaftServiceServer};
use auction_proto::raft::snapshot_chunk::Item;
use auction_proto::raft::{
    AppendStreamReply, AppendStreamRequest, RaftReply, RaftRequest, SnapshotChunk, SnapshotHeader,
};
use auction_proto::Bytes;
use openraft::alias::{SnapshotMetaOf, VoteOf};
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use openraft::storage::RaftStateMachine;
use openraft::{Raft, RaftTypeConfig, Snapshot};
use serde::Serialize;
use tokio::sync::{mpsc, watch, Semaphore};
use tonic::{Request, Response, Status, Streaming};

use super::{NetworkConfig, PeerClockSink, SnapshotPayload};
use crate::codec;
use crate::error::Error;
use crate::GroupId;

/// A header alone must not make the node allocate a whole snapshot up front: past this, the
/// buffer grows with the data that actually arrives.
const SNAPSHOT_PREALLOCATE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Appends of one append stream being handled at once at most; past it the stream is not read
/// (HTTP/2 flow control holds the sender back).
pub const APPEND_STREAM_IN_FLIGHT_MAX: usize = 1_024;

/// The replies of an append stream.
pub type AppendReplies =
    Pin<Box<dyn futures_util::Stream<Item = Result<AppendStreamReply, Status>> + Send + 'static>>;

/// The `Raft` handle of every group this node hosts.
pub struct GroupRegistry<C: RaftTypeConfig, SM: RaftStateMachine<C>> {
    groups: RwLock<HashMap<GroupId, Raft<C, SM>>>,
}

impl<C: RaftTypeConfig, SM: RaftStateMachine<C>> Default for GroupRegistry<C, SM> {
    fn default() -> Self {
        Self {
            groups: RwLock::new(HashMap::new()),
        }
    }
}

impl<C: RaftTypeConfig, SM: RaftStateMachine<C>> GroupRegistry<C, SM> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a group's `Raft`; returns the one it replaces, if any.
    pub fn insert(&self, group_id: GroupId, raft: Raft<C, SM>) -> Option<Raft<C, SM>> {
        let mut groups = self.groups.write().unwrap_or_else(PoisonError::into_inner);
        groups.insert(group_id, raft)
    }

    pub fn remove(&self, group_id: GroupId) -> Option<Raft<C, SM>> {
        let mut groups = self.groups.write().unwrap_or_else(PoisonError::into_inner);
        groups.remove(&group_id)
    }

    pub fn get(&self, group_id: GroupId) -> Result<Raft<C, SM>, Error> {
        let groups = self.groups.read().unwrap_or_else(PoisonError::into_inner);
        groups
            .get(&group_id)
            .cloned()
            .ok_or(Error::UnknownGroup(group_id))
    }

    /// The ids of every registered group, ascending.
    pub fn group_ids(&self) -> Vec<GroupId> {
        let groups = self.groups.read().unwrap_or_else(PoisonError::into_inner);
        let mut ids: Vec<GroupId> = groups.keys().copied().collect();
        ids.sort_unstable();
        ids
    }
}

/// The gRPC `RaftService` of a node.
pub struct RaftGrpcService<C: RaftTypeConfig, SM: RaftStateMachine<C>> {
    registry: Arc<GroupRegistry<C, SM>>,
    config: NetworkConfig,
    /// Whose clock the replies carry (see [`super::clock_sample`]); none without it.
    clock: Option<Arc<dyn PeerClockSink<C::NodeId>>>,
    /// Turns true when the append streams must end (the server is about to stop).
    closing: Option<watch::Receiver<bool>>,
}

impl<C: RaftTypeConfig, SM: RaftStateMachine<C>> RaftGrpcService<C, SM> {
    pub fn new(registry: Arc<GroupRegistry<C, SM>>, config: NetworkConfig) -> Self {
        Self {
            registry,
            config,
            clock: None,
            closing: None,
        }
    }

    /// Append streams stop taking appends and end, once those taken are answered, when
    /// `closing` turns true; new ones are refused from then on. Without it a stream lasts as
    /// long as its sender keeps it open, and a graceful server stop waits for that.
    pub fn with_closing(mut self, closing: watch::Receiver<bool>) -> Self {
        self.closing = Some(closing);
        self
    }

    /// Vote and `AppendEntries` replies carry this clock's reading.
    pub fn with_peer_clock(mut self, clock: Arc<dyn PeerClockSink<C::NodeId>>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// A reply with this node's clock on it.
    fn clocked<T: Serialize>(
        &self,
        what: &'static str,
        value: &T,
    ) -> Result<Response<RaftReply>, Status> {
        let mut answer = reply(what, value)?;
        super::clock_sample::stamp_reply(&mut answer, self.clock.as_deref());
        Ok(answer)
    }

    /// The tonic service to add to a `tonic::transport::Server`.
    pub fn into_server(self) -> RaftServiceServer<Self>
    where
        SM::SnapshotData: SnapshotPayload,
    {
        let message_bytes_max = self.config.message_bytes_max;
        RaftServiceServer::new(self)
            .max_decoding_message_size(message_bytes_max)
            .max_encoding_message_size(message_bytes_max)
    }

    fn raft(&self, group_id: GroupId) -> Result<Raft<C, SM>, Status> {
        Ok(self.registry.get(group_id)?)
    }

    /// Receives the data chunks that follow `header`, checking the announced size.
    async fn receive_snapshot_data(
        &self,
        header: &SnapshotHeader,
        stream: &mut Streaming<SnapshotChunk>,
    ) -> Result<Vec<u8>, Error> {
        let snapshot_bytes = header.snapshot_bytes;
        if snapshot_bytes > self.config.snapshot_bytes_max {
            return Err(Error::SnapshotTooLarge {
                bytes: snapshot_bytes,
                bytes_max: self.config.snapshot_bytes_max,
            });
        }
        let capacity = usize::try_from(snapshot_bytes.min(SNAPSHOT_PREALLOCATE_BYTES_MAX))
            .map_err(|_| Error::Protocol("snapshot size does not fit in memory".to_string()))?;
        let mut data = Vec::with_capacity(capacity);
        // Bounded: every chunk is non-empty and the total may not pass `snapshot_bytes`.
        while let Some(chunk) = stream
            .message()
            .await
            .map_err(|status| Error::Protocol(format!("snapshot stream broke: {status}")))?
        {
            let Some(Item::Data(bytes)) = chunk.item else {
                return Err(Error::Protocol(
                    "snapshot stream has a second header".to_string(),
                ));
            };
            if bytes.is_empty() || (data.len() + bytes.len()) as u64 > snapshot_bytes {
                return Err(Error::Protocol(
                    "snapshot chunk is empty or too long".to_string(),
                ));
            }
            data.extend_from_slice(&bytes);
        }
        if data.len() as u64 != snapshot_bytes {
            return Err(Error::Protocol(format!(
                "snapshot stream ended after {} of {snapshot_bytes} bytes",
                data.len()
            )));
        }
        Ok(data)
    }
}

fn reply<T: Serialize>(what: &'static str, value: &T) -> Result<Response<RaftReply>, Status> {
    let payload = codec::encode(what, value)?;
    Ok(Response::new(RaftReply {
        payload: Bytes::from(payload),
    }))
}

fn raft_failed(group_id: GroupId, error: impl std::fmt::Display) -> Status {
    Error::Raft {
        group_id,
        reason: error.to_string(),
    }
    .into()
}

/// Resolves once `closing` is true; never without a signal.
async fn closed(closing: &mut Option<watch::Receiver<bool>>) {
    match closing {
        Some(closing) => {
            let sender_gone = closing.wait_for(|closing| *closing).await.is_err();
            if sender_gone {
                // The sender is gone: nobody can ask to close any more.
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// Reads an append stream and answers each append as it finishes, at most
/// [`APPEND_STREAM_IN_FLIGHT_MAX`] at once.
async fn serve_append_stream<C, SM>(
    registry: Arc<GroupRegistry<C, SM>>,
    clock: Option<Arc<dyn PeerClockSink<C::NodeId>>>,
    mut incoming: Streaming<AppendStreamRequest>,
    replies: mpsc::Sender<Result<AppendStreamReply, Status>>,
    mut closing: Option<watch::Receiver<bool>>,
) where
    C: RaftTypeConfig,
    SM: RaftStateMachine<C>,
{
    let in_flight = Arc::new(Semaphore::new(APPEND_STREAM_IN_FLIGHT_MAX));
    loop {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let next = tokio::select! {
            next = incoming.message() => next,
            () = closed(&mut closing) => return,
        };
        let request = match next {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(status) => {
                let _ = replies.send(Err(status)).await;
                return;
            }
        };
        let (registry, clock, replies) = (registry.clone(), clock.clone(), replies.clone());
        tokio::spawn(async move {
            let reply = append_one(&registry, clock.as_deref(), request).await;
            // The sender may have gone; nobody is left to tell.
            let _ = replies.send(Ok(reply)).await;
            drop(permit);
        });
    }
}

/// Hands one encoded `AppendEntries` (unary or streamed) to its group.
async fn append<C, SM>(
    registry: &GroupRegistry<C, SM>,
    group_id: GroupId,
    payload: &[u8],
) -> Result<openraft::raft::AppendEntriesResponse<C>, Status>
where
    C: RaftTypeConfig,
    SM: RaftStateMachine<C>,
{
    let raft = registry.get(group_id)?;
    let rpc: AppendEntriesRequest<C> = codec::decode("append entries request", payload)?;
    raft.append_entries(rpc)
        .await
        .map_err(|error| raft_failed(group_id, error))
}

/// Hands one streamed append to its group and makes its reply.
async fn append_one<C, SM>(
    registry: &GroupRegistry<C, SM>,
    clock: Option<&dyn PeerClockSink<C::NodeId>>,
    request: AppendStreamRequest,
) -> AppendStreamReply
where
    C: RaftTypeConfig,
    SM: RaftStateMachine<C>,
{
    let AppendStreamRequest {
        seq,
        group_id,
        payload,
    } = request;
    let answered = match append(registry, group_id, &payload).await {
        Ok(response) => codec::encode("append entries response", &response).map_err(Status::from),
        Err(status) => Err(status),
    };
    match answered {
        Ok(payload) => AppendStreamReply {
            seq,
            payload: Bytes::from(payload),
            code: 0,
            message: String::new(),
            clock_ms: clock.map(|clock| clock.now_ms()),
        },
        Err(status) => AppendStreamReply {
            seq,
            payload: Bytes::new(),
            // A status is never OK here; a zero would read as success.
            code: u32::try_from(i32::from(status.code())).unwrap_or(0).max(1),
            message: status.message().to_owned(),
            clock_ms: None,
        },
    }
}

#[tonic::async_trait]
impl<C, SM> RaftService for RaftGrpcService<C, SM>
where
    C: RaftTypeConfig,
    SM: RaftStateMachine<C>,
    SM::SnapshotData: SnapshotPayload,
{
    type AppendStreamStream = AppendReplies;

    async fn append_stream(
        &self,
        request: Request<Streaming<AppendStreamRequest>>,
    ) -> Result<Response<AppendReplies>, Status> {
        if self
            .closing
            .as_ref()
            .is_some_and(|closing| *closing.borrow())
        {
            return Err(Status::unavailable("this node is stopping"));
        }
        let (replies, answered) = mpsc::channel(APPEND_STREAM_IN_FLIGHT_MAX);
        tokio::spawn(serve_append_stream(
            self.registry.clone(),
            self.clock.clone(),
            request.into_inner(),
            replies,
            self.closing.clone(),
        ));
        let answers = futures_util::stream::unfold(answered, |mut answered| async move {
            answered.recv().await.map(|reply| (reply, answered))
        });
        Ok(Response::new(Box::pin(answers)))
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let RaftRequest { group_id, payload } = request.into_inner();
        let raft = self.raft(group_id)?;
        let rpc: VoteRequest<C> = codec::decode("vote request", &payload)?;
        let response = raft
            .vote(rpc)
            .await
            .map_err(|error| raft_failed(group_id, error))?;
        self.clocked("vote response", &response)
    }

    async fn pre_vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let RaftRequest { group_id, payload } = request.into_inner();
        let raft = self.raft(group_id)?;
        let rpc: VoteRequest<C> = codec::decode("pre-vote request", &payload)?;
        let response = raft
            .pre_vote(rpc)
            .await
            .map_err(|error| raft_failed(group_id, error))?;
        self.clocked("pre-vote response", &response)
    }

    async fn append_entries(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let RaftRequest { group_id, payload } = request.into_inner();
        let response = append(&self.registry, group_id, &payload).await?;
        self.clocked("append entries response", &response)
    }

    async fn transfer_leader(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let RaftRequest { group_id, payload } = request.into_inner();
        let raft = self.raft(group_id)?;
        let rpc: TransferLeaderRequest<C> = codec::decode("transfer leader request", &payload)?;
        let response = raft
            .handle_transfer_leader(rpc)
            .await
            .map_err(|error| raft_failed(group_id, error))?;
        reply("transfer leader response", &response)
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftReply>, Status> {
        let mut stream = request.into_inner();
        let header = match stream.message().await? {
            Some(SnapshotChunk {
                item: Some(Item::Header(header)),
            }) => header,
            _ => {
                return Err(Status::invalid_argument(
                    "snapshot stream must start with a header",
                ))
            }
        };
        let group_id = header.group_id;
        let raft = self.raft(group_id)?;
        let (vote, meta): (VoteOf<C>, SnapshotMetaOf<C>) =
            codec::decode("snapshot header", &header.payload)?;
        let data = self.receive_snapshot_data(&header, &mut stream).await?;
        let snapshot = Snapshot {
            meta,
            snapshot: SM::SnapshotData::from_bytes(data),
        };
        let response = raft
            .install_full_snapshot(vote, snapshot)
            .await
            .map_err(|error| raft_failed(group_id, error))?;
        reply("snapshot response", &response)
    }
}
