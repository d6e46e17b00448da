//! The sending side of the transport: one channel per peer, shared by every group.
//!
//! [`GrpcRouter`] is cheap to clone (one `Arc`) and implements openraft-multi's `GroupRouter`.
//! Peers are learned from membership: when openraft asks a group's [`GrpcNetworkFactory`] for a
//! client to a target, the factory records the target's address from its `Node` value, and the
//! router opens (lazily) a channel to it, or reopens one if the address changed.
//! `AppendEntries` (heartbeats included) of every group go on the peer's one append stream
//! ([`super::pipe`]); votes, leader transfers and snapshots are RPCs of their own.
//!
//! Not done yet: no eviction of channels to nodes that left every group.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use auction_proto::raft::raft_service_client::RaftServiceClient;
use auction_proto::raft::snapshot_chunk::Item;
use auction_proto::raft::{RaftReply, RaftRequest, SnapshotChunk, SnapshotHeader};
use auction_proto::Bytes;
use openraft::alias::{SnapshotOf, VoteOf};
use openraft::error::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{OptionalSend, RPCTypes, RaftNetworkFactory, RaftTypeConfig};
use openraft_multi::{GroupNetworkAdapter, GroupRouter};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use super::clock_sample::reply_clock_ms;
use super::pipe::{Pipe, PipeError};
use super::{NetworkConfig, PeerAddress, PeerClockSink, SnapshotPayload, TlsIdentity};
use crate::codec;
use crate::error::Error;
use crate::GroupId;

/// Makes a channel to `host:port`. Must not connect eagerly: channels are made on the hot path.
pub type ChannelFactory = Arc<dyn Fn(&str) -> Result<Channel, Error> + Send + Sync>;

/// Lazily connected TCP channels with the time-outs and keep-alives of `config`, over mutual
/// TLS when `config.tls` is set. Call it inside a tokio runtime: a lazy channel spawns its
/// worker task when it is made.
pub fn tcp_channel_factory(config: &NetworkConfig) -> ChannelFactory {
    let config = config.clone();
    // Built once: every channel of this node presents the same certificate.
    let tls = config.tls.as_ref().map(TlsIdentity::client_config);
    Arc::new(move |addr: &str| {
        let invalid = |reason: String| Error::InvalidPeerAddress {
            node: String::new(),
            addr: addr.to_string(),
            reason,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(|error| invalid(error.to_string()))?;
        if let Some(tls) = &tls {
            // The server's certificate is checked against the host of `addr`.
            endpoint = endpoint
                .tls_config(tls.clone())
                .map_err(|error| invalid(format!("TLS: {error}")))?;
        }
        Ok(endpoint
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_millis(config.keep_alive_interval_ms))
            .keep_alive_timeout(Duration::from_millis(config.keep_alive_timeout_ms))
            .keep_alive_while_idle(true)
            .connect_lazy())
    })
}

struct Peer {
    addr: String,
    channel: Channel,
    /// The append stream of every group to this peer, opened on first use.
    pipe: Mutex<Option<Arc<Pipe>>>,
}

struct RouterInner<C: RaftTypeConfig> {
    self_id: C::NodeId,
    config: NetworkConfig,
    channel_factory: ChannelFactory,
    peers: RwLock<HashMap<C::NodeId, Peer>>,
    /// Where the clocks that replies carry go (see [`super::clock_sample`]).
    peer_clock: OnceLock<Arc<dyn PeerClockSink<C::NodeId>>>,
}

/// Sends the Raft RPCs of every group of this node; one channel per peer node.
///
/// `SD` is the state machine's snapshot data type.
pub struct GrpcRouter<C: RaftTypeConfig, SD = Vec<u8>> {
    inner: Arc<RouterInner<C>>,
    _snapshot: PhantomData<fn() -> SD>,
}

impl<C: RaftTypeConfig, SD> Clone for GrpcRouter<C, SD> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            _snapshot: PhantomData,
        }
    }
}

impl<C: RaftTypeConfig, SD> GrpcRouter<C, SD> {
    /// A router for node `self_id` over TCP.
    pub fn new(self_id: C::NodeId, config: NetworkConfig) -> Self {
        let channel_factory = tcp_channel_factory(&config);
        Self::with_channel_factory(self_id, config, channel_factory)
    }

    /// A router whose channels come from `channel_factory` (e.g. over a simulated network).
    pub fn with_channel_factory(
        self_id: C::NodeId,
        config: NetworkConfig,
        channel_factory: ChannelFactory,
    ) -> Self {
        Self {
            inner: Arc::new(RouterInner {
                self_id,
                config,
                channel_factory,
                peers: RwLock::new(HashMap::new()),
                peer_clock: OnceLock::new(),
            }),
            _snapshot: PhantomData,
        }
    }

    /// Hands the clocks that peers' replies carry to `sink` from now on (set once; a second
    /// sink is ignored).
    pub fn set_peer_clock(&self, sink: Arc<dyn PeerClockSink<C::NodeId>>) {
        let _ = self.inner.peer_clock.set(sink);
    }

    /// Records where `node_id` listens; reconnects only if the address changed.
    pub fn set_peer(&self, node_id: C::NodeId, addr: &str) -> Result<(), Error> {
        {
            let peers = self
                .inner
                .peers
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if peers.get(&node_id).is_some_and(|peer| peer.addr == addr) {
                return Ok(());
            }
        }
        let channel = (self.inner.channel_factory)(addr).map_err(|error| match error {
            Error::InvalidPeerAddress { addr, reason, .. } => Error::InvalidPeerAddress {
                node: node_id.to_string(),
                addr,
                reason,
            },
            other => other,
        })?;
        let peer = Peer {
            addr: addr.to_string(),
            channel,
            pipe: Mutex::new(None),
        };
        let mut peers = self
            .inner
            .peers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        peers.insert(node_id, peer);
        Ok(())
    }

    /// Forgets a peer and closes its channel once in-flight RPCs finish.
    pub fn remove_peer(&self, node_id: &C::NodeId) {
        let mut peers = self
            .inner
            .peers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        peers.remove(node_id);
    }

    /// The network factory to pass to `Raft::new` for `group_id`.
    pub fn network_factory(&self, group_id: GroupId) -> GrpcNetworkFactory<C, SD> {
        GrpcNetworkFactory {
            router: self.clone(),
            group_id,
        }
    }

    pub fn config(&self) -> &NetworkConfig {
        &self.inner.config
    }

    /// Runs `f` on `target`'s peer entry; unreachable when no address is known for it.
    fn with_peer<T>(
        &self,
        target: &C::NodeId,
        f: impl FnOnce(&Peer) -> T,
    ) -> Result<T, Unreachable<C>> {
        let peers = self
            .inner
            .peers
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let peer = peers.get(target).ok_or_else(|| {
            Unreachable::from_string(format!("no address known for node {target}"))
        })?;
        Ok(f(peer))
    }

    /// A client on `peer`'s channel with this router's message size limits.
    fn service_client(&self, peer: &Peer) -> RaftServiceClient<Channel> {
        let message_bytes_max = self.inner.config.message_bytes_max;
        RaftServiceClient::new(peer.channel.clone())
            .max_decoding_message_size(message_bytes_max)
            .max_encoding_message_size(message_bytes_max)
    }

    fn client(&self, target: &C::NodeId) -> Result<RaftServiceClient<Channel>, Unreachable<C>> {
        self.with_peer(target, |peer| self.service_client(peer))
    }

    /// The append stream to `target`: the open one, or a new one if it has none usable.
    fn pipe(&self, target: &C::NodeId) -> Result<Arc<Pipe>, Unreachable<C>> {
        self.with_peer(target, |peer| {
            let mut pipe = peer.pipe.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(open) = pipe.as_ref().filter(|open| open.is_usable()) {
                return open.clone();
            }
            let opened = Pipe::open(self.service_client(peer));
            *pipe = Some(opened.clone());
            opened
        })
    }

    /// Ends every append stream once what was sent on it is answered (at shutdown).
    pub fn close_pipes(&self) {
        let peers = self
            .inner
            .peers
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        for peer in peers.values() {
            peer.pipe
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
        }
    }

    /// Sends one `AppendEntries` on the target's append stream.
    async fn append(
        &self,
        target: C::NodeId,
        group_id: GroupId,
        rpc: &AppendEntriesRequest<C>,
        option: &RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        let payload = codec::encode("append entries request", rpc)
            .map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        let pipe = self.pipe(&target)?;
        let timeout = self.rpc_timeout(option);
        let sent = tokio::time::Instant::now();
        let reply = match pipe
            .call(group_id, Bytes::from(payload), sent + timeout)
            .await
        {
            Ok(reply) => reply,
            Err(PipeError::TimedOut) => {
                return Err(self
                    .timeout_error(RPCTypes::AppendEntries, target, timeout)
                    .into())
            }
            Err(PipeError::Broken(status)) => return Err(status_to_rpc_error(&status)),
            Err(PipeError::Full) => {
                return Err(RPCError::Network(NetworkError::from_string(format!(
                    "too many appends await replies from node {target}"
                ))))
            }
        };
        if reply.code != 0 {
            let code = Code::from(i32::try_from(reply.code).unwrap_or(i32::MAX));
            return Err(status_to_rpc_error(&tonic::Status::new(
                code,
                reply.message,
            )));
        }
        if let (Some(sink), Some(peer_ms)) = (self.inner.peer_clock.get(), reply.clock_ms) {
            sink.observe(&target, peer_ms, sent, tokio::time::Instant::now());
        }
        codec::decode("append entries reply", &reply.payload)
            .map_err(|error| RPCError::Network(NetworkError::new(&error)))
    }

    /// openraft's soft TTL, clamped to the configured bounds.
    fn rpc_timeout(&self, option: &RPCOption) -> Duration {
        let config = &self.inner.config;
        option.soft_ttl().clamp(
            Duration::from_millis(config.rpc_timeout_ms_min),
            Duration::from_millis(config.rpc_timeout_ms_max.max(config.rpc_timeout_ms_min)),
        )
    }

    fn timeout_error(&self, action: RPCTypes, target: C::NodeId, timeout: Duration) -> Timeout<C> {
        Timeout {
            action,
            id: self.inner.self_id.clone(),
            target,
            timeout,
        }
    }

    /// Sends one unary RPC: encode, call within the time-out, decode.
    async fn unary<Req, Resp, Call, Fut>(
        &self,
        target: C::NodeId,
        group_id: GroupId,
        action: RPCTypes,
        request: &Req,
        option: &RPCOption,
        call: Call,
    ) -> Result<Resp, RPCError<C>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        Call: FnOnce(RaftServiceClient<Channel>, RaftRequest) -> Fut,
        Fut: Future<Output = Result<tonic::Response<RaftReply>, tonic::Status>>,
    {
        let payload = codec::encode("raft request", request)
            .map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        let client = self.client(&target)?;
        let envelope = RaftRequest {
            group_id,
            payload: Bytes::from(payload),
        };
        let timeout = self.rpc_timeout(option);
        let sent = tokio::time::Instant::now();
        let reply = match tokio::time::timeout(timeout, call(client, envelope)).await {
            Err(_elapsed) => return Err(self.timeout_error(action, target, timeout).into()),
            Ok(Err(status)) => return Err(status_to_rpc_error(&status)),
            Ok(Ok(reply)) => reply,
        };
        if let (Some(sink), Some(peer_ms)) = (self.inner.peer_clock.get(), reply_clock_ms(&reply)) {
            sink.observe(&target, peer_ms, sent, tokio::time::Instant::now());
        }
        let reply = reply.into_inner();
        codec::decode("raft reply", &reply.payload)
            .map_err(|error| RPCError::Network(NetworkError::new(&error)))
    }
}

/// `UNAVAILABLE` and `NOT_FOUND` mean "not there now": openraft backs off. Anything else is a
/// network error, retried sooner.
fn status_to_rpc_error<C: RaftTypeConfig>(status: &tonic::Status) -> RPCError<C> {
    match status.code() {
        Code::Unavailable | Code::NotFound => RPCError::Unreachable(Unreachable::new(status)),
        _ => RPCError::Network(NetworkError::new(status)),
    }
}

pub(super) fn snapshot_chunks(
    group_id: GroupId,
    header_payload: Vec<u8>,
    data: Bytes,
    chunk_bytes: usize,
) -> impl Iterator<Item = SnapshotChunk> {
    let header = SnapshotChunk {
        item: Some(Item::Header(SnapshotHeader {
            group_id,
            payload: Bytes::from(header_payload),
            snapshot_bytes: data.len() as u64,
        })),
    };
    let chunk_bytes = chunk_bytes.max(1);
    let data_len = data.len();
    let chunks = (0..data_len)
        .step_by(chunk_bytes)
        .map(move |start| SnapshotChunk {
            item: Some(Item::Data(
                data.slice(start..(start + chunk_bytes).min(data_len)),
            )),
        });
    std::iter::once(header).chain(chunks)
}

impl<C, SD> GroupRouter<C, GroupId> for GrpcRouter<C, SD>
where
    C: RaftTypeConfig,
    SD: SnapshotPayload,
{
    type SnapshotData = SD;

    async fn append_entries(
        &self,
        target: C::NodeId,
        group_id: GroupId,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        if self.inner.config.append_stream {
            return self.append(target, group_id, &rpc, &option).await;
        }
        self.unary(
            target,
            group_id,
            RPCTypes::AppendEntries,
            &rpc,
            &option,
            |mut client, request| async move { client.append_entries(request).await },
        )
        .await
    }

    async fn vote(
        &self,
        target: C::NodeId,
        group_id: GroupId,
        rpc: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        self.unary(
            target,
            group_id,
            RPCTypes::Vote,
            &rpc,
            &option,
            |mut client, request| async move { client.vote(request).await },
        )
        .await
    }

    async fn pre_vote(
        &self,
        target: C::NodeId,
        group_id: GroupId,
        rpc: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        self.unary(
            target,
            group_id,
            RPCTypes::Vote,
            &rpc,
            &option,
            |mut client, request| async move { client.pre_vote(request).await },
        )
        .await
    }

    async fn full_snapshot(
        &self,
        target: C::NodeId,
        group_id: GroupId,
        vote: VoteOf<C>,
        snapshot: SnapshotOf<C, SD>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let config = &self.inner.config;
        let network_error = |error: &Error| StreamingError::Network(NetworkError::new(error));
        let data = Bytes::from(snapshot.snapshot.into_bytes());
        if data.len() as u64 > config.snapshot_bytes_max {
            return Err(network_error(&Error::SnapshotTooLarge {
                bytes: data.len() as u64,
                bytes_max: config.snapshot_bytes_max,
            }));
        }
        let header_payload = codec::encode("snapshot header", &(vote, snapshot.meta))
            .map_err(|error| network_error(&error))?;
        let mut client = self.client(&target)?;
        let chunks = snapshot_chunks(group_id, header_payload, data, config.snapshot_chunk_bytes);
        let timeout = Duration::from_millis(config.snapshot_timeout_ms);
        let send = tokio::time::timeout(
            timeout,
            client.install_snapshot(futures_util::stream::iter(chunks)),
        );
        let reply = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            result = send => match result {
                Err(_elapsed) => {
                    return Err(self.timeout_error(RPCTypes::InstallSnapshot, target, timeout).into())
                }
                Ok(Err(status)) => return Err(status_to_rpc_error(&status).into()),
                Ok(Ok(reply)) => reply.into_inner(),
            },
        };
        codec::decode("snapshot reply", &reply.payload).map_err(|error| network_error(&error))
    }

    async fn transfer_leader(
        &self,
        target: C::NodeId,
        group_id: GroupId,
        req: TransferLeaderRequest<C>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<C>, RPCError<C>> {
        self.unary(
            target,
            group_id,
            RPCTypes::TransferLeader,
            &req,
            &option,
            |mut client, request| async move { client.transfer_leader(request).await },
        )
        .await
    }
}

/// The network factory of one group: binds the shared router to the group's id.
pub struct GrpcNetworkFactory<C: RaftTypeConfig, SD = Vec<u8>> {
    router: GrpcRouter<C, SD>,
    group_id: GroupId,
}

impl<C: RaftTypeConfig, SD> GrpcNetworkFactory<C, SD> {
    pub fn group_id(&self) -> GroupId {
        self.group_id
    }
}

impl<C, SD> RaftNetworkFactory<C> for GrpcNetworkFactory<C, SD>
where
    C: RaftTypeConfig,
    C::Node: PeerAddress,
    SD: SnapshotPayload,
{
    type Network = GroupNetworkAdapter<C, GroupId, GrpcRouter<C, SD>>;

    async fn new_client(&mut self, target: C::NodeId, node: &C::Node) -> Self::Network {
        if let Err(error) = self.router.set_peer(target.clone(), node.rpc_addr()) {
            // The RPCs to this target fail as unreachable until membership has a good address.
            tracing::warn!(group_id = self.group_id, %target, %error, "cannot reach peer");
        }
        GroupNetworkAdapter::new(self.router.clone(), target, self.group_id)
    }
}
