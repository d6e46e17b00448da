//! `GET /cluster/groups/{group}/backup`: one group's whole state as a backup section
//! (`auction_statemachine::backup`), streamed while the group goes on serving writes.
//!
//! The state is read at an applied index at or above every write acknowledged before the
//! request (a read barrier first, then one RocksDB snapshot: `RaftHost::backup_source`), so
//! any node can serve it, leader or follower. The section header names the group, the shard
//! count, this node and the log position (term, leader, index) of the state; the records
//! follow with their count and digest, then the state digest, which equals this replica's
//! `GET /cluster/groups/{group}/digest` at that index.
//!
//! Bounds: the records are read on a blocking thread into chunks of [`CHUNK_BYTES`], at most
//! [`CHUNKS_IN_FLIGHT_MAX`] of them waiting for the client (so a stream holds about 1 MiB
//! plus one record, whatever the group's size); a client that takes no chunk for
//! [`CHUNK_SEND_TIMEOUT_MS`], or a stream older than [`STREAM_DURATION_MS_MAX`], ends the
//! stream early (the client sees a truncated section and refuses it); at most
//! [`STREAMS_MAX`] streams at once per process, beyond which the answer is `503 UNAVAILABLE`
//! with `Retry-After`. The RocksDB snapshot is held while the stream lasts.
//!
//! Callers prove themselves like every cluster operation (the cluster admin token or an admin
//! session, [`super::cluster`]). `auctionctl backup` strings the sections of every group into
//! a file.

use std::io;
use std::time::{Duration, Instant};

use auction_raft::host::NodeStorage;
use auction_raft::state_machine::{SnapshotSource, SourceItem};
use auction_statemachine::backup::{SectionHeader, SectionWriter};
use auction_statemachine::GroupId;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, Semaphore};
use tokio_stream::wrappers::ReceiverStream;

use super::cluster::{group_id, require_operator};
use crate::auth::MaybeUser;
use crate::error::{ApiError, ApiResult};
use crate::SharedApp;

/// Bytes of one chunk of the answer's body.
pub const CHUNK_BYTES: usize = 256 * 1024;
/// Chunks read ahead of the client.
pub const CHUNKS_IN_FLIGHT_MAX: usize = 4;
/// How long a chunk may wait for the client to take it before the stream ends.
pub const CHUNK_SEND_TIMEOUT_MS: u64 = 60_000;
/// The longest a stream may last.
pub const STREAM_DURATION_MS_MAX: u64 = 6 * 3_600_000;
/// Backup streams served at once by this process.
pub const STREAMS_MAX: usize = 2;

/// Process-wide: a node is one process, and the bound protects its disk and memory.
static STREAMS: Semaphore = Semaphore::const_new(STREAMS_MAX);

type Chunk = Result<Bytes, io::Error>;

/// One group's backup section.
pub async fn backup<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    Path(group): Path<String>,
    headers: HeaderMap,
    user: MaybeUser,
) -> ApiResult<Response> {
    require_operator(&app, &headers, &user).await?;
    let group = group_id(&app, &group)?;
    let permit = STREAMS.try_acquire().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            format!("this node serves {STREAMS_MAX} backup streams already; retry later"),
        )
        .retry_after(5)
    })?;
    let source = app.host.backup_source(group).await?;
    let section = SectionStart {
        group,
        shard_count: app.shard_count(),
        source_node: app.host.node_id(),
    };
    let (sender, receiver) = mpsc::channel::<Chunk>(CHUNKS_IN_FLIGHT_MAX);
    let runtime = Handle::current();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        stream_section(&source, section, ChunkSink::new(sender, runtime));
    });
    let mut response = Body::from_stream(ReceiverStream::new(receiver)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(response)
}

/// What the section header says besides the log position, known before the read starts.
#[derive(Clone, Copy)]
struct SectionStart {
    group: GroupId,
    shard_count: u32,
    source_node: u64,
}

/// Writes the section into `sink`; a failure ends the body with an error (the client's
/// connection breaks, and a section without its trailer is refused).
fn stream_section(source: &impl SnapshotSource, start: SectionStart, sink: ChunkSink) {
    let error_sink = sink.sender.clone();
    if let Err(error) = write_section(source, start, sink) {
        tracing::warn!(group = start.group, %error, "backup stream ended early");
        let _ = error_sink.blocking_send(Err(error));
    }
}

fn write_section(
    source: &impl SnapshotSource,
    start: SectionStart,
    sink: ChunkSink,
) -> io::Result<()> {
    let mut sink = Some(sink);
    let mut writer: Option<SectionWriter<ChunkSink>> = None;
    source.visit(&mut |item| match item {
        SourceItem::Applied(applied) => {
            let header = SectionHeader {
                group: start.group,
                shard_count: start.shard_count,
                source_node: start.source_node,
                position: applied.position(),
            };
            let out = sink
                .take()
                .ok_or_else(|| io::Error::other("two applied states"))?;
            writer = Some(SectionWriter::new(out, &header)?);
            Ok(())
        }
        SourceItem::Record(key, value) => match writer.as_mut() {
            Some(writer) => writer.push(key, value),
            None => Err(io::Error::other("a record before the applied state")),
        },
    })?;
    let writer = writer.ok_or_else(|| io::Error::other("the source named no applied state"))?;
    let (_sink, digest) = writer.finish()?;
    tracing::info!(group = start.group, digest = %format!("{digest:016x}"), "backup streamed");
    Ok(())
}

/// An `io::Write` that hands the body to the HTTP response in chunks, waiting (bounded) for
/// the client to take them.
struct ChunkSink {
    sender: mpsc::Sender<Chunk>,
    runtime: Handle,
    buffer: Vec<u8>,
    deadline: Instant,
}

impl ChunkSink {
    fn new(sender: mpsc::Sender<Chunk>, runtime: Handle) -> Self {
        ChunkSink {
            sender,
            runtime,
            buffer: Vec::with_capacity(CHUNK_BYTES),
            deadline: Instant::now() + Duration::from_millis(STREAM_DURATION_MS_MAX),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK_BYTES));
        let left = self.deadline.saturating_duration_since(Instant::now());
        let wait = left.min(Duration::from_millis(CHUNK_SEND_TIMEOUT_MS));
        self.runtime
            .block_on(self.sender.send_timeout(Ok(Bytes::from(chunk)), wait))
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client went away, stalled, or the stream ran out of time",
                )
            })
    }
}

impl io::Write for ChunkSink {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.send()
    }
}
