//! Server-sent events, from any node: `GET /auctions/{id}/events` (`bid_placed`,
//! `auction_extended`, `auction_ended`) and `GET /users/me/events` (`notification`).
//!
//! Every node applies every committed entry of every group and publishes the events of its own
//! applies ([`RaftHost::subscribe`](auction_raft::host::RaftHost::subscribe)), so a stream on
//! one node sees bids taken by any other node. A stream starts with a `snapshot` event (the
//! auction as this replica has it), subscribes before reading it so no event falls in between,
//! and sends a heartbeat comment every `sse_heartbeat`. An event's id is the log index that
//! produced it.
//!
//! Not done yet: replay after `Last-Event-ID` (events are not stored; a resumed stream starts
//! with a fresh snapshot, from which a client can reconcile); a client too slow for the
//! node's event buffer gets a `resync` event instead of the events it missed.

use std::convert::Infallible;

use auction_raft::host::NodeStorage;
use auction_raft::state_machine::AppliedEvent;
use auction_statemachine::{query, Event};
use axum::extract::{Path, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use serde_json::json;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult};
use crate::extract::{format_time, Consistency};
use crate::routes::auctions::auction_id;
use crate::views::{self, Viewer};
use crate::SharedApp;

type EventStream = Sse<
    axum::response::sse::KeepAliveStream<
        std::pin::Pin<Box<dyn Stream<Item = Result<SseEvent, Infallible>> + Send>>,
    >,
>;

fn sse_event(name: &str, id: u64, data: serde_json::Value) -> SseEvent {
    SseEvent::default()
        .event(name)
        .id(id.to_string())
        .data(data.to_string())
}

fn resync() -> SseEvent {
    SseEvent::default()
        .event("resync")
        .data(r#"{"message":"events were missed; read the current state again"}"#)
}

/// The SSE form of an auction event, when it concerns `auction`.
fn auction_event(
    applied: &AppliedEvent,
    auction: auction_statemachine::AuctionId,
) -> Option<SseEvent> {
    let index = applied.log_index;
    match &applied.event {
        Event::BidPlaced {
            auction_id,
            bid,
            ts,
        } if *auction_id == auction => {
            let mut data = views::bid_outcome(bid, *ts);
            data["steps"] = bid
                .steps
                .iter()
                .map(views::bid_step)
                .collect::<Vec<_>>()
                .into();
            Some(sse_event("bid_placed", index, data))
        }
        Event::AuctionExtended {
            auction_id,
            end_time,
            ts,
        } if *auction_id == auction => Some(sse_event(
            "auction_extended",
            index,
            json!({
                "auctionId": auction_id.to_string(),
                "endTime": format_time(*end_time),
                "serverTime": format_time(*ts),
            }),
        )),
        Event::AuctionEnded {
            auction_id,
            status,
            winner_id,
            final_price,
            ts,
        } if *auction_id == auction => Some(sse_event(
            "auction_ended",
            index,
            json!({
                "auctionId": auction_id.to_string(),
                "status": status.as_str(),
                "winnerId": winner_id.map(|id| id.to_string()),
                "finalPrice": final_price.map(|price| price.to_string()),
                "serverTime": format_time(*ts),
            }),
        )),
        _ => None,
    }
}

fn keep_alive<S: NodeStorage>(app: &SharedApp<S>) -> KeepAlive {
    KeepAlive::new()
        .interval(app.config.sse_heartbeat)
        .text("heartbeat")
}

pub async fn auction<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    Path(id): Path<String>,
) -> ApiResult<EventStream> {
    let id = auction_id(&id)?;
    let group = app.shard_of(id);
    let receiver = app.host.subscribe();
    // The local replica first; an auction created a moment ago elsewhere may not be applied
    // here yet, so "not found" is confirmed with a linearizable read.
    let local = app.reader(group, Consistency::Local).await?;
    let current = match query::auction(&local, id)? {
        Some(auction) => auction,
        None => {
            let reader = app.reader(group, Consistency::Linearizable).await?;
            query::auction(&reader, id)?.ok_or_else(ApiError::auction_not_found)?
        }
    };
    let snapshot = SseEvent::default().event("snapshot").data(
        json!({ "auction": views::auction(&current, app.now_ms(), Viewer::GUEST) }).to_string(),
    );
    let live = BroadcastStream::new(receiver).filter_map(move |item| {
        let event = match item {
            Ok(applied) if applied.group == group => auction_event(&applied, id),
            Ok(_) => None,
            Err(BroadcastStreamRecvError::Lagged(_)) => Some(resync()),
        };
        std::future::ready(event.map(Ok))
    });
    let stream = stream::once(std::future::ready(Ok(snapshot))).chain(live);
    Ok(Sse::new(stream.boxed()).keep_alive(keep_alive(&app)))
}

pub async fn user<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    current: CurrentUser,
) -> ApiResult<EventStream> {
    let user = current.user.id;
    let receiver = app.host.subscribe();
    let hello = SseEvent::default()
        .event("ready")
        .data(json!({ "userId": user.to_string() }).to_string());
    let live = BroadcastStream::new(receiver).filter_map(move |item| {
        let event = match item {
            Ok(AppliedEvent {
                log_index,
                event: Event::Notification(notification),
                ..
            }) if notification.user_id == user => Some(sse_event(
                "notification",
                log_index,
                views::notification(&notification),
            )),
            Ok(_) => None,
            Err(BroadcastStreamRecvError::Lagged(_)) => Some(resync()),
        };
        std::future::ready(event.map(Ok))
    });
    let stream = stream::once(std::future::ready(Ok(hello))).chain(live);
    Ok(Sse::new(stream.boxed()).keep_alive(keep_alive(&app)))
}
