//! The simulated network and clock as the host sees them.
//!
//! - [`SimClock`]: the leader's wall clock is turmoil's simulated time since a fixed epoch, so
//!   every command's timestamp is a function of the seed; [`NodeClock`] is one node's clock,
//!   which clock faults set off or make drift.
//! - [`channel_factory`]: tonic channels that dial [`turmoil::net::TcpStream`] (lazily, like the
//!   production factory), so every node-to-node RPC crosses the simulated network and suffers
//!   its partitions, holds and latencies.
//! - [`incoming`]: a turmoil listener as the stream of connections a tonic server accepts.
//! - The framed client protocol ([`ClientRequest`], [`ClientReply`]): what a node answers on
//!   [`CLIENT_PORT`]; one request per connection, a `u32` length and a postcard body each way.
//!   It calls the host methods the HTTP API calls (`propose`, with routing and forwarding to
//!   the leader, and `linearizable_reader`) without the API around them, so its clients can
//!   write without idempotency keys and record the full answer (steps, effective time). The
//!   real API is served next to it ([`crate::http`]).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use auction_jepsen::ObservedAuction;
use auction_raft::host::{ClientWrite, Clock};
use auction_raft::network::{ChannelFactory, NetworkConfig};
use auction_raft::types::Response;
use auction_raft::GroupId;
use auction_statemachine::AuctionId;
use futures_util::Stream;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tonic::transport::{Endpoint, Uri};
use turmoil::net::{TcpListener, TcpStream};

/// Where every node serves node-to-node gRPC.
pub const RAFT_PORT: u16 = 7000;
/// Where every node serves simulated clients.
pub const CLIENT_PORT: u16 = 8000;
/// Largest client protocol frame either way.
pub const FRAME_BYTES_MAX: u32 = 1024 * 1024;
/// The simulated wall clock's epoch: 2026-01-01T00:00:00Z, fixed so timestamps are seeded.
pub const EPOCH_MS: i64 = 1_767_225_600_000;

/// Simulated wall-clock time: the fixed epoch plus turmoil's elapsed simulated time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimClock;

impl SimClock {
    /// Milliseconds since the start of the simulation (0 outside a simulation).
    pub fn elapsed_ms() -> i64 {
        turmoil::sim_elapsed()
            .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

impl Clock for SimClock {
    fn now_ms(&self) -> i64 {
        EPOCH_MS.saturating_add(Self::elapsed_ms())
    }
}

/// One node's wall clock: simulated time, plus the offset and drift a clock fault sets (the
/// nemesis's `Fault::Clock`). It outlives the node's crashes, as a machine's clock does.
#[derive(Debug, Default)]
pub struct NodeClock {
    offset_ms: AtomicI64,
    drift_ppm: AtomicI64,
    /// Simulated ms since which the drift runs.
    drift_from_ms: AtomicI64,
}

impl NodeClock {
    /// Jumps the clock by `offset_ms` (from right) and lets it drift `drift_ppm` from now on.
    pub fn set_fault(&self, offset_ms: i64, drift_ppm: i64) {
        self.drift_from_ms
            .store(SimClock::elapsed_ms(), Ordering::SeqCst);
        self.drift_ppm.store(drift_ppm, Ordering::SeqCst);
        self.offset_ms.store(offset_ms, Ordering::SeqCst);
    }

    /// Sets the clock right again.
    pub fn heal(&self) {
        self.set_fault(0, 0);
    }
}

impl Clock for NodeClock {
    fn now_ms(&self) -> i64 {
        let elapsed = SimClock::elapsed_ms();
        let drifting = elapsed.saturating_sub(self.drift_from_ms.load(Ordering::SeqCst));
        let drift = drifting.saturating_mul(self.drift_ppm.load(Ordering::SeqCst)) / 1_000_000;
        EPOCH_MS
            .saturating_add(elapsed)
            .saturating_add(self.offset_ms.load(Ordering::SeqCst))
            .saturating_add(drift)
    }
}

/// The connector of a channel: a turmoil TCP connection to the URI's host and port.
#[derive(Clone, Copy, Debug, Default)]
pub struct TurmoilConnector;

impl tower_service::Service<Uri> for TurmoilConnector {
    type Response = TokioIo<TcpStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| io::Error::other(format!("no host in {uri}")))?
                .to_owned();
            let port = uri.port_u16().unwrap_or(RAFT_PORT);
            let stream = TcpStream::connect((host.as_str(), port)).await?;
            Ok(TokioIo::new(stream))
        })
    }
}

/// Lazily connected channels over the simulated network, with the transport's time-outs.
pub fn channel_factory(config: &NetworkConfig) -> ChannelFactory {
    let config = config.clone();
    Arc::new(move |addr: &str| {
        let endpoint = Endpoint::from_shared(format!("http://{addr}")).map_err(|error| {
            auction_raft::Error::InvalidPeerAddress {
                node: String::new(),
                addr: addr.to_owned(),
                reason: error.to_string(),
            }
        })?;
        Ok(endpoint
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .http2_keep_alive_interval(Duration::from_millis(config.keep_alive_interval_ms))
            .keep_alive_timeout(Duration::from_millis(config.keep_alive_timeout_ms))
            .keep_alive_while_idle(true)
            .connect_with_connector_lazy(TurmoilConnector))
    })
}

/// An accepted turmoil connection as tonic's server wants it.
pub struct Accepted(pub TcpStream);

impl tonic::transport::server::Connected for Accepted {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Accepted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Accepted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The connections a listener accepts, as a stream (it ends when accepting fails).
pub fn incoming(listener: TcpListener) -> impl Stream<Item = io::Result<Accepted>> {
    futures_util::stream::unfold(Some(listener), |listener| async move {
        let listener = listener?;
        match listener.accept().await {
            Ok((stream, _)) => Some((Ok(Accepted(stream)), Some(listener))),
            Err(error) => Some((Err(error), None)),
        }
    })
}

/// What a simulated client asks an API node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ClientRequest {
    Write {
        /// Boxed: a write is much larger than a read.
        write: Box<ClientWrite>,
        /// The client's first attempt of this write (no earlier attempt shares its request id
        /// or idempotency key); see `node::original_effective_ts`.
        first_attempt: bool,
    },
    /// A linearizable read of one auction.
    Read {
        group: GroupId,
        auction_id: AuctionId,
    },
}

/// Why a node did not answer a request with a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// The node refused before proposing anything (unknown group, shutting down).
    NotProposed(String),
    /// The request may or may not take effect (time-out, leader lost, forwarding failed).
    Unknown(String),
}

/// A node's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ClientReply {
    Write(Result<Response, Refusal>),
    Read(Result<Option<ObservedAuction>, Refusal>),
}

/// Writes one frame: a big-endian `u32` length, then the postcard body.
pub async fn write_frame<T: Serialize>(
    stream: &mut (impl AsyncWrite + Unpin),
    value: &T,
) -> io::Result<()> {
    let body = postcard::to_allocvec(value).map_err(io::Error::other)?;
    let length = u32::try_from(body.len())
        .ok()
        .filter(|length| *length <= FRAME_BYTES_MAX)
        .ok_or_else(|| io::Error::other("frame too large"))?;
    stream.write_all(&length.to_be_bytes()).await?;
    stream.write_all(&body).await?;
    stream.flush().await
}

/// Reads one frame written by [`write_frame`].
pub async fn read_frame<T: for<'de> Deserialize<'de>>(
    stream: &mut (impl AsyncRead + Unpin),
) -> io::Result<T> {
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).await?;
    let length = u32::from_be_bytes(length);
    if length > FRAME_BYTES_MAX {
        return Err(io::Error::other(format!("frame of {length} bytes")));
    }
    let mut body = vec![0u8; length as usize];
    stream.read_exact(&mut body).await?;
    postcard::from_bytes(&body).map_err(io::Error::other)
}
