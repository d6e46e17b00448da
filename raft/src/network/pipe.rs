//! Every group's `AppendEntries` to one peer over one long-lived bidirectional gRPC stream.
//!
//! A unary RPC per append costs an HTTP/2 stream, request and response headers, trailers and a
//! trip through tonic's buffer task on both sides. With many groups each replicating one or two
//! entries per append, those per-message costs were most of the node-to-node CPU. A [`Pipe`]
//! sends each append as one message on the peer's stream, tagged with a sequence number, and
//! hands each reply to the caller waiting for that number. The peer answers in completion
//! order, so one slow group does not hold back the others.
//!
//! Bounds: at most [`PIPE_QUEUE_MAX`] messages wait to be written and at most
//! [`PIPE_PENDING_MAX`] appends await replies; a caller waits for room, then for its reply,
//! within its own deadline. A stream that breaks fails every waiting call with its status and
//! is not used again; the next call opens a new one. A call that times out on a stream that has
//! answered nothing since the call was sent retires the stream too, so a wedged connection is
//! not reused.
//!
//! Not done yet: votes, snapshots and leader transfers stay unary RPCs (they are rare).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use auction_proto::raft::raft_service_client::RaftServiceClient;
use auction_proto::raft::{AppendStreamReply, AppendStreamRequest};
use auction_proto::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{timeout_at, Instant};
use tonic::transport::Channel;
use tonic::Status;

use crate::GroupId;

/// Appends queued for writing on one stream at most.
pub const PIPE_QUEUE_MAX: usize = 1_024;
/// Appends of one stream awaiting their replies at most.
pub const PIPE_PENDING_MAX: usize = 4_096;

type Answer = oneshot::Sender<Result<AppendStreamReply, Status>>;

/// Why a call on a pipe got no reply.
#[derive(Debug)]
pub(super) enum PipeError {
    /// The stream could not be opened, broke, or was closed by the peer.
    Broken(Status),
    /// Too many appends await replies on this stream.
    Full,
    /// No reply by the deadline.
    TimedOut,
}

/// What the stream's reader and the callers share.
struct Shared {
    state: Mutex<State>,
    /// Replies received so far: a time-out with no reply since its send means a wedged stream.
    replies: AtomicU64,
}

#[derive(Default)]
struct State {
    pending: HashMap<u64, Answer>,
    /// Set once the stream has ended; no call waits on it after that.
    ended: Option<Status>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn deliver(&self, reply: AppendStreamReply) {
        self.replies.fetch_add(1, Ordering::Relaxed);
        let answer = self.lock().pending.remove(&reply.seq);
        if let Some(answer) = answer {
            // The caller may have timed out; nobody is left to tell.
            let _ = answer.send(Ok(reply));
        }
    }

    fn end(&self, status: Status) {
        let pending = {
            let mut state = self.lock();
            state.ended = Some(status.clone());
            std::mem::take(&mut state.pending)
        };
        for answer in pending.into_values() {
            let _ = answer.send(Err(status.clone()));
        }
    }

    fn forget(&self, seq: u64) {
        self.lock().pending.remove(&seq);
    }
}

/// One open append stream to one peer. Dropping the last handle ends the stream once the peer
/// has answered what was sent.
pub(super) struct Pipe {
    outgoing: mpsc::Sender<AppendStreamRequest>,
    shared: Arc<Shared>,
    next_seq: AtomicU64,
    retired: AtomicBool,
}

impl Pipe {
    /// Opens a stream on `client`'s channel. Call it inside a tokio runtime: the stream's
    /// reader is a task.
    pub(super) fn open(client: RaftServiceClient<Channel>) -> Arc<Pipe> {
        let (outgoing, queued) = mpsc::channel(PIPE_QUEUE_MAX);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            replies: AtomicU64::new(0),
        });
        tokio::spawn(read_replies(client, queued, shared.clone()));
        Arc::new(Pipe {
            outgoing,
            shared,
            next_seq: AtomicU64::new(0),
            retired: AtomicBool::new(false),
        })
    }

    /// Whether new calls may use this stream.
    pub(super) fn is_usable(&self) -> bool {
        !self.retired.load(Ordering::Relaxed)
            && !self.outgoing.is_closed()
            && self.shared.lock().ended.is_none()
    }

    /// Sends one append of `group_id` and waits for its reply until `deadline`.
    pub(super) async fn call(
        &self,
        group_id: GroupId,
        payload: Bytes,
        deadline: Instant,
    ) -> Result<AppendStreamReply, PipeError> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let (answer, answered) = oneshot::channel();
        {
            let mut state = self.shared.lock();
            if let Some(status) = &state.ended {
                return Err(PipeError::Broken(status.clone()));
            }
            if state.pending.len() >= PIPE_PENDING_MAX {
                return Err(PipeError::Full);
            }
            state.pending.insert(seq, answer);
        }
        let replies_before = self.shared.replies.load(Ordering::Relaxed);
        let request = AppendStreamRequest {
            seq,
            group_id,
            payload,
        };
        match timeout_at(deadline, self.outgoing.send(request)).await {
            Ok(Ok(())) => {}
            Ok(Err(_closed)) => {
                self.shared.forget(seq);
                return Err(PipeError::Broken(Status::unavailable(
                    "the append stream has ended",
                )));
            }
            Err(_elapsed) => {
                self.shared.forget(seq);
                self.retired.store(true, Ordering::Relaxed);
                return Err(PipeError::TimedOut);
            }
        }
        match timeout_at(deadline, answered).await {
            Ok(Ok(result)) => result.map_err(PipeError::Broken),
            Ok(Err(_dropped)) => Err(PipeError::Broken(Status::unavailable(
                "the append stream has ended",
            ))),
            Err(_elapsed) => {
                self.shared.forget(seq);
                if self.shared.replies.load(Ordering::Relaxed) == replies_before {
                    self.retired.store(true, Ordering::Relaxed);
                }
                Err(PipeError::TimedOut)
            }
        }
    }
}

/// Opens the stream, then hands every reply to its caller until the stream ends.
async fn read_replies(
    mut client: RaftServiceClient<Channel>,
    queued: mpsc::Receiver<AppendStreamRequest>,
    shared: Arc<Shared>,
) {
    let requests = futures_util::stream::unfold(queued, |mut queued| async move {
        queued.recv().await.map(|request| (request, queued))
    });
    let status = match client.append_stream(requests).await {
        Err(status) => status,
        Ok(response) => {
            let mut replies = response.into_inner();
            loop {
                match replies.message().await {
                    Ok(Some(reply)) => shared.deliver(reply),
                    Ok(None) => break Status::unavailable("the peer ended the append stream"),
                    Err(status) => break status,
                }
            }
        }
    };
    shared.end(status);
}
