//! Server-sent events, from any node: `GET /auctions/{id}/events` (`bid_placed`,
//! `auction_extended`, `auction_ended`) and `GET /users/me/events` (`notification`), with
//! heartbeats and `Last-Event-ID` resume.
//!
//! Every node applies every committed entry of every group and publishes the events of its own
//! applies ([`RaftHost::subscribe`](auction_raft::host::RaftHost::subscribe)), so a stream on
//! one node sees bids taken by any other node. What a stream missed is read back from replicated
//! state, so any node can resume a stream that another node started:
//!
//! - auction streams ([`auction`]): the event id is the auction's event sequence number, which
//!   is the same on every replica; the events are kept in the auction's event log in its shard
//!   (the latest `AUCTION_LOG_EVENTS_MAX`, see `auction_statemachine::auction::event_log`);
//! - user streams ([`user`]): notifications are stored per user in every shard, numbered by a
//!   per-shard sequence, so the event id is a cursor with one position per shard,
//!   `"1:17,2:5,3:0,4:9"` (shard:sequence, ascending shards, every shard listed). Notifications of
//!   different shards have no common order; each shard's own order is kept, so resuming from any
//!   id a stream sent gives every later notification exactly once.
//!
//! A fresh stream starts with the current state and its id (`snapshot` / `ready`). A resumed
//! stream subscribes to the live events, then reads the stored ones after the client's id and
//! sends them, then the live ones, skipping any it already sent; if the id is ahead of this
//! replica it first catches the replica up with a linearizable read. An id older than what is
//! kept, or one the cluster never sent, gets an explicit `resync` event and then the current
//! state with a fresh id. A malformed id is refused (400 `VALIDATION_FAILED`). A stream that
//! falls behind the node's event buffer reads back what it missed from the store the same way.
//!
//! A user stream belongs to a session and ends when the session does (a logout or a ban, taken
//! by any node): it re-checks the session in this node's meta replica every half session lease
//! ([`session_check`]). Auction streams are public and are not tied to a session.
//!
//! Not done yet: the id is taken from the `Last-Event-ID` header only (no query parameter for
//! clients that cannot set headers); a user stream replays at most
//! [`user_feed::USER_REPLAY_MAX`] notifications before it asks for a resync.

mod auction_feed;
mod session_check;
mod user_feed;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;

use auction_raft::host::NodeStorage;
use auction_raft::state_machine::AppliedEvent;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, KeepAliveStream, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;

use crate::error::{ApiError, ApiResult};
use crate::SharedApp;
use session_check::SessionCheck;

pub use auction_feed::auction;
pub use user_feed::user;

/// Longest `Last-Event-ID` accepted, in bytes (a user cursor names every shard).
pub const LAST_EVENT_ID_BYTES_MAX: usize = 4_096;
/// Stored events one catch-up step reads and queues, at most.
pub const REPLAY_PAGE_MAX: usize = 200;

type BoxedStream = Pin<Box<dyn Stream<Item = Result<SseEvent, Infallible>> + Send>>;
pub type EventStream = Sse<KeepAliveStream<BoxedStream>>;

/// The `Last-Event-ID` header, if the client sent one.
fn last_event_id(headers: &HeaderMap) -> ApiResult<Option<&str>> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| malformed_id("must be visible ASCII"))?;
    if text.len() > LAST_EVENT_ID_BYTES_MAX {
        return Err(malformed_id("is too long"));
    }
    Ok(Some(text.trim()))
}

/// `400 VALIDATION_FAILED` for a `Last-Event-ID` this API never sends.
fn malformed_id(reason: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "VALIDATION_FAILED",
        format!("Last-Event-ID {reason}; send back the id of an event this stream sent"),
    )
    .with("field", "Last-Event-ID")
}

fn named(name: &str, id: &str, data: &serde_json::Value) -> SseEvent {
    SseEvent::default()
        .event(name)
        .id(id)
        .data(data.to_string())
}

fn resync() -> SseEvent {
    SseEvent::default().event("resync").data(
        r#"{"message":"events were missed and are no longer kept; the current state follows"}"#,
    )
}

/// What a feed does next after one step.
enum Step {
    /// Queue these and carry on.
    Continue,
    /// The stream ends (the node is shutting down, or a read failed: the client reconnects).
    End,
}

/// A source of SSE events: queued ones first, a store catch-up when needed, then live events.
trait Feed: Send + 'static {
    fn queue(&mut self) -> &mut VecDeque<SseEvent>;
    fn receiver(&mut self) -> &mut Receiver<AppliedEvent>;
    fn catching_up(&self) -> bool;
    /// Reads what was missed from the store and queues it.
    fn catch_up(&mut self) -> impl std::future::Future<Output = Step> + Send;
    /// The SSE form of a live event, if it is for this stream and not sent yet.
    fn live(&mut self, applied: AppliedEvent) -> Option<SseEvent>;
    /// Called when the node's buffer dropped events for this stream.
    fn lagged(&mut self);
    /// The session of an authenticated stream, re-checked while it is open (`None`: a public
    /// stream).
    fn session(&mut self) -> Option<&mut SessionCheck> {
        None
    }

    fn next(&mut self) -> impl std::future::Future<Output = Option<SseEvent>> + Send {
        async move {
            loop {
                // Checked before anything is sent, so a busy stream cannot outrun its session.
                if let Some(session) = self.session().filter(|session| session.is_due()) {
                    if !session.still_live().await {
                        return None;
                    }
                }
                if let Some(event) = self.queue().pop_front() {
                    return Some(event);
                }
                if self.catching_up() {
                    match self.catch_up().await {
                        Step::Continue => continue,
                        Step::End => return None,
                    }
                }
                let check_due = self.session().map(|session| session.due());
                let received = match check_due {
                    None => self.receiver().recv().await,
                    // Waiting is cut short when the session check is due; `recv` loses nothing
                    // when it is cancelled.
                    Some(due) => tokio::select! {
                        received = self.receiver().recv() => received,
                        () = tokio::time::sleep_until(due) => continue,
                    },
                };
                match received {
                    Ok(applied) => {
                        if let Some(event) = self.live(applied) {
                            return Some(event);
                        }
                    }
                    Err(RecvError::Lagged(_)) => self.lagged(),
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    }
}

fn into_sse<S: NodeStorage, F: Feed>(app: &SharedApp<S>, feed: F) -> EventStream {
    let events = stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        Some((Ok::<_, Infallible>(event), feed))
    });
    let keep_alive = KeepAlive::new()
        .interval(app.config.sse_heartbeat)
        .text("heartbeat");
    Sse::new(events.boxed() as BoxedStream).keep_alive(keep_alive)
}
