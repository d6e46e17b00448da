//! `GET /auctions/{id}/events`: the auction's events, resumable after `Last-Event-ID` (the
//! auction's event sequence number) from its event log in the shard.

use std::collections::VecDeque;

use auction_raft::host::{GroupReader, NodeStorage};
use auction_raft::state_machine::AppliedEvent;
use auction_raft::GroupId;
use auction_statemachine::{query, Auction, AuctionId, Event};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::Event as SseEvent;
use serde_json::json;
use tokio::sync::broadcast::Receiver;

use super::REPLAY_PAGE_MAX;
use super::{into_sse, last_event_id, malformed_id, named, resync, EventStream, Feed, Step};
use crate::error::{ApiError, ApiResult};
use crate::extract::Consistency;
use crate::routes::auctions::auction_id;
use crate::views::{self, Viewer};
use crate::{blocking, SharedApp};

pub async fn auction<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<EventStream> {
    let id = auction_id(&id)?;
    let resume_after = last_event_id(&headers)?
        .map(|text| {
            text.parse::<u64>()
                .map_err(|_| malformed_id("must be an event sequence number of this auction"))
        })
        .transpose()?;
    let group = app.shard_of(id);
    // Subscribe before reading, so no event falls between the read and the live events.
    let receiver = app.host.subscribe();
    let mut current = read_current(&app, group, id, Consistency::Local).await?;
    if current.is_missing() || resume_after.is_some_and(|after| after > current.head()) {
        // Created or advanced elsewhere a moment ago: catch this replica up (a linearizable read
        // waits until this node has applied the leader's commit index) before deciding.
        current = read_current(&app, group, id, Consistency::Linearizable).await?;
    }
    let Current::Found { head, auction } = current else {
        return Err(ApiError::auction_not_found());
    };
    let mut feed = AuctionFeed::<S> {
        app: app.clone(),
        reader: app.host.local_reader(group)?,
        group,
        auction: id,
        receiver,
        last_sent: head,
        catching_up: false,
        queue: VecDeque::new(),
    };
    match resume_after {
        // An id ahead of the whole cluster was never sent by it: start over from the state.
        Some(after) if after > head => {
            feed.queue.push_back(resync());
            feed.queue.push_back(feed.snapshot(&auction, head));
        }
        Some(after) => {
            feed.last_sent = after;
            feed.catching_up = true;
        }
        None => feed.queue.push_back(feed.snapshot(&auction, head)),
    }
    Ok(into_sse(&app, feed))
}

/// The auction and its latest event sequence number, read at one applied index.
enum Current {
    Found { head: u64, auction: Box<Auction> },
    Missing,
}

impl Current {
    fn is_missing(&self) -> bool {
        matches!(self, Current::Missing)
    }

    fn head(&self) -> u64 {
        match self {
            Current::Found { head, .. } => *head,
            Current::Missing => 0,
        }
    }
}

async fn read_current<S: NodeStorage>(
    app: &SharedApp<S>,
    group: GroupId,
    id: AuctionId,
    consistency: Consistency,
) -> ApiResult<Current> {
    if consistency == Consistency::Linearizable {
        app.reader(group, consistency).await?;
    }
    // On the state-machine task, between two applies: the snapshot and its id agree exactly.
    let (_, read) = app
        .host
        .read_at_applied(group, move |reader| read_both(reader, id))
        .await?;
    read.map_err(ApiError::from)
}

fn read_both(
    reader: &impl auction_statemachine::KvRead,
    id: AuctionId,
) -> Result<Current, auction_statemachine::StoreError> {
    let head = query::auction_event_head(reader, id)?;
    Ok(match query::auction(reader, id)? {
        Some(auction) => Current::Found {
            head,
            auction: Box::new(auction),
        },
        None => Current::Missing,
    })
}

struct AuctionFeed<S: NodeStorage> {
    app: SharedApp<S>,
    reader: GroupReader<S>,
    group: GroupId,
    auction: AuctionId,
    receiver: Receiver<AppliedEvent>,
    /// The sequence number of the last event sent (or covered by the snapshot sent).
    last_sent: u64,
    catching_up: bool,
    queue: VecDeque<SseEvent>,
}

impl<S: NodeStorage> AuctionFeed<S> {
    fn snapshot(&self, auction: &Auction, head: u64) -> SseEvent {
        let view = views::auction(auction, self.app.now_ms(), Viewer::GUEST);
        named("snapshot", &head.to_string(), &json!({ "auction": view }))
    }

    fn send(&mut self, event: &Event) -> Option<SseEvent> {
        let (name, seq, data) = views::auction_event(event)?;
        self.last_sent = seq;
        Some(named(name, &seq.to_string(), &data))
    }
}

impl<S: NodeStorage> Feed for AuctionFeed<S> {
    fn queue(&mut self) -> &mut VecDeque<SseEvent> {
        &mut self.queue
    }

    fn receiver(&mut self) -> &mut Receiver<AppliedEvent> {
        &mut self.receiver
    }

    fn catching_up(&self) -> bool {
        self.catching_up
    }

    async fn catch_up(&mut self) -> Step {
        let (reader, id, after) = (self.reader.clone(), self.auction, self.last_sent);
        let page = blocking(move || {
            let events = query::auction_events_after(&reader, id, after, REPLAY_PAGE_MAX)?;
            let current = match events {
                Some(_) => None,
                None => Some(read_both(&reader, id)?),
            };
            Ok((events, current))
        })
        .await;
        match page {
            Ok((Some(events), _)) => {
                self.catching_up = events.len() >= REPLAY_PAGE_MAX;
                for event in &events {
                    if let Some(sse) = self.send(event) {
                        self.queue.push_back(sse);
                    }
                }
                Step::Continue
            }
            Ok((None, Some(Current::Found { head, auction }))) => {
                // The log was pruned past the client's position: say so, then the state.
                self.catching_up = false;
                self.last_sent = head;
                self.queue.push_back(resync());
                let snapshot = self.snapshot(&auction, head);
                self.queue.push_back(snapshot);
                Step::Continue
            }
            Ok((None, _)) | Err(_) => Step::End,
        }
    }

    fn live(&mut self, applied: AppliedEvent) -> Option<SseEvent> {
        if applied.group != self.group {
            return None;
        }
        let (auction, seq) = applied.event.auction_seq()?;
        if auction != self.auction || seq <= self.last_sent {
            return None;
        }
        if seq > self.last_sent + 1 {
            // A gap (this stream lagged, or subscribed mid-batch): the store has every event
            // this node published, since it publishes only after committing.
            self.catching_up = true;
            return None;
        }
        self.send(&applied.event)
    }

    fn lagged(&mut self) {
        self.catching_up = true;
    }
}
