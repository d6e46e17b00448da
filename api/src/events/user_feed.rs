//! `GET /users/me/events`: the user's notifications, resumable after `Last-Event-ID`.
//!
//! Notifications are stored per user in the shard that raised them, numbered by that shard's
//! notification sequence (part of the notification's id). The event id is the stream's position
//! in every shard, `"1:17,2:5,3:0"` ([`Cursor`]); a resumed stream reads each shard's
//! notifications above its position, sends them oldest first, then the live ones. The stream
//! ends when its session does (see `session_check`).

use std::collections::{BTreeMap, VecDeque};

use auction_raft::host::{GroupReader, NodeStorage};
use auction_raft::state_machine::AppliedEvent;
use auction_raft::GroupId;
use auction_statemachine::ids::{parse_minted_uuid, MintedKind};
use auction_statemachine::{query, Event, KvRead, Notification, StoreError, UserId};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::Event as SseEvent;
use serde_json::json;
use tokio::sync::broadcast::Receiver;

use super::{
    into_sse, last_event_id, malformed_id, named, resync, EventStream, Feed, SessionCheck, Step,
};
use crate::auth::CurrentUser;
use crate::error::ApiResult;
use crate::extract::Consistency;
use crate::shard::shards;
use crate::{blocking, SharedApp};

/// Notifications a resumed stream replays, at most; a client further behind gets `resync`.
pub const USER_REPLAY_MAX: usize = 1_000;
/// Notifications read from one shard per store read.
const READ_PAGE: usize = 200;

/// A position in every shard's notification sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(BTreeMap<GroupId, u64>);

impl Cursor {
    /// `"1:17,2:5"`; shards left out are at 0 (nothing of theirs seen).
    pub fn parse(text: &str, shard_count: u32) -> ApiResult<Cursor> {
        let invalid = || malformed_id("must be \"shard:sequence,...\" as this stream sends it");
        let mut positions: BTreeMap<GroupId, u64> = shards(shard_count).map(|g| (g, 0)).collect();
        let mut seen = std::collections::BTreeSet::new();
        for part in text.split(',').filter(|part| !part.is_empty()) {
            let (group, seq) = part.split_once(':').ok_or_else(invalid)?;
            let group: GroupId = group.parse().map_err(|_| invalid())?;
            let seq: u64 = seq.parse().map_err(|_| invalid())?;
            if !positions.contains_key(&group) || !seen.insert(group) {
                return Err(invalid());
            }
            positions.insert(group, seq);
        }
        Ok(Cursor(positions))
    }

    pub fn encode(&self) -> String {
        self.0
            .iter()
            .map(|(group, seq)| format!("{group}:{seq}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn at(&self, group: GroupId) -> u64 {
        self.0.get(&group).copied().unwrap_or(0)
    }

    /// Whether some shard's position is beyond `heads` (not applied here, or never issued).
    fn ahead_of(&self, heads: &Cursor) -> bool {
        self.0.iter().any(|(group, seq)| *seq > heads.at(*group))
    }
}

pub async fn user<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    current: CurrentUser,
    headers: HeaderMap,
) -> ApiResult<EventStream> {
    let user = current.user.id;
    let resume = last_event_id(&headers)?
        .map(|text| Cursor::parse(text, app.shard_count()))
        .transpose()?;
    // Subscribe before reading, so no notification falls between the read and the live ones.
    let receiver = app.host.subscribe();
    let mut heads = read_heads(&app, Consistency::Local).await?;
    if resume
        .as_ref()
        .is_some_and(|cursor| cursor.ahead_of(&heads))
    {
        // Raised elsewhere a moment ago: a linearizable read catches this replica up first.
        heads = read_heads(&app, Consistency::Linearizable).await?;
    }
    let readers = shards(app.shard_count())
        .map(|group| Ok((group, app.host.local_reader(group)?)))
        .collect::<ApiResult<Vec<_>>>()?;
    let mut feed = UserFeed::<S> {
        readers,
        session: SessionCheck::new(&app, current.token_hash),
        user,
        receiver,
        cursor: heads.clone(),
        catching_up: false,
        queue: VecDeque::new(),
    };
    match resume {
        Some(cursor) if cursor.ahead_of(&heads) => {
            feed.queue.push_back(resync());
            feed.queue.push_back(ready(user, &heads));
        }
        Some(cursor) => {
            // Like an auction stream, a resumed stream starts with what was missed.
            feed.cursor = cursor;
            feed.catching_up = true;
        }
        None => feed.queue.push_back(ready(user, &heads)),
    }
    Ok(into_sse(&app, feed))
}

fn ready(user: UserId, cursor: &Cursor) -> SseEvent {
    named(
        "ready",
        &cursor.encode(),
        &json!({ "userId": user.to_string() }),
    )
}

/// Every shard's latest notification sequence number.
async fn read_heads<S: NodeStorage>(
    app: &SharedApp<S>,
    consistency: Consistency,
) -> ApiResult<Cursor> {
    let groups = shards(app.shard_count());
    let readers = app.shard_readers(consistency).await?;
    blocking(move || heads_of(groups.zip(readers.iter()))).await
}

fn heads_of<'a, R: KvRead + 'a>(
    readers: impl Iterator<Item = (GroupId, &'a R)>,
) -> Result<Cursor, StoreError> {
    let mut heads = BTreeMap::new();
    for (group, reader) in readers {
        heads.insert(group, query::machine_meta(reader)?.notification_sequence);
    }
    Ok(Cursor(heads))
}

/// The shard and sequence number a notification's id carries.
fn position(notification: &Notification) -> Option<(GroupId, u64)> {
    parse_minted_uuid(notification.id.0, MintedKind::Notification)
}

/// What a catch-up found.
enum Missed {
    /// Oldest first, each with its shard and sequence number.
    Notifications(Vec<(GroupId, u64, Notification)>),
    /// More than [`USER_REPLAY_MAX`]: start over from these heads.
    TooMany(Cursor),
}

/// The user's notifications above `cursor` in every shard, or `TooMany`.
fn missed<R: KvRead>(
    readers: &[(GroupId, R)],
    user: UserId,
    cursor: &Cursor,
) -> Result<Missed, StoreError> {
    let mut found = Vec::new();
    for (group, reader) in readers {
        let after = cursor.at(*group);
        let mut before = None;
        'pages: loop {
            let page = query::notifications(reader, user, before, READ_PAGE)?;
            for notification in &page {
                let Some((_, seq)) = position(notification) else {
                    continue;
                };
                if seq <= after {
                    break 'pages;
                }
                if found.len() >= USER_REPLAY_MAX {
                    let heads = heads_of(readers.iter().map(|(group, reader)| (*group, reader)))?;
                    return Ok(Missed::TooMany(heads));
                }
                found.push((*group, seq, notification.clone()));
                before = Some(seq);
            }
            if page.len() < READ_PAGE {
                break;
            }
        }
    }
    // Each shard's own order is kept; shards are interleaved by time.
    found.sort_by_key(|(group, seq, notification)| (notification.created_at, *group, *seq));
    Ok(Missed::Notifications(found))
}

struct UserFeed<S: NodeStorage> {
    readers: Vec<(GroupId, GroupReader<S>)>,
    /// The stream ends with its session (a logout or a ban).
    session: SessionCheck,
    user: UserId,
    receiver: Receiver<AppliedEvent>,
    cursor: Cursor,
    catching_up: bool,
    queue: VecDeque<SseEvent>,
}

impl<S: NodeStorage> UserFeed<S> {
    fn send(&mut self, group: GroupId, seq: u64, notification: &Notification) -> SseEvent {
        self.cursor.0.insert(group, seq);
        named(
            "notification",
            &self.cursor.encode(),
            &crate::views::notification(notification),
        )
    }
}

impl<S: NodeStorage> Feed for UserFeed<S> {
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
        self.catching_up = false;
        let (readers, user, cursor) = (self.readers.clone(), self.user, self.cursor.clone());
        match blocking(move || missed(&readers, user, &cursor)).await {
            Ok(Missed::Notifications(found)) => {
                for (group, seq, notification) in &found {
                    let event = self.send(*group, *seq, notification);
                    self.queue.push_back(event);
                }
                Step::Continue
            }
            Ok(Missed::TooMany(heads)) => {
                self.queue.push_back(resync());
                self.queue.push_back(ready(self.user, &heads));
                self.cursor = heads;
                Step::Continue
            }
            Err(_) => Step::End,
        }
    }

    fn live(&mut self, applied: AppliedEvent) -> Option<SseEvent> {
        let Event::Notification(notification) = &applied.event else {
            return None;
        };
        if notification.user_id != self.user {
            return None;
        }
        let (group, seq) = position(notification)?;
        if seq <= self.cursor.at(group) {
            return None;
        }
        Some(self.send(group, seq, notification))
    }

    fn lagged(&mut self) {
        self.catching_up = true;
    }

    fn session(&mut self) -> Option<&mut SessionCheck> {
        Some(&mut self.session)
    }
}
