//! `/users/me/...`: my bids (winning / outbid / won / lost), my auctions, my watchlist (add,
//! remove), my notifications (list, mark read).
//!
//! These gather over every shard through linearizable readers (obtained concurrently), so a
//! user sees their own bid or watch at once on any node. Each shard contributes at most
//! [`PER_SHARD_MAX`] records per request; pages are ordered by auction id (bids, auctions,
//! watchlist) or newest first (notifications), with the last item as the cursor.

use std::collections::HashMap;

use auction_raft::host::NodeStorage;
use auction_statemachine::ids::{parse_minted_uuid, MintedKind};
use auction_statemachine::{
    query, Auction, AuctionId, Notification, NotificationId, Op, Outcome, Phase, RequestId,
    TimestampMs, UserId,
};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult};
use crate::extract::{idempotency_key, limit, path_uuid, ApiJson, Consistency};
use crate::views::{self, Viewer};
use crate::{blocking, new_uuid, SharedApp};

/// Records read from one shard for one request, at most.
pub const PER_SHARD_MAX: usize = 2_000;
const PAGE_DEFAULT: usize = 20;
const PAGE_MAX: usize = 100;

/// How a bidder stands in an auction they bid on.
pub fn my_status(auction: &Auction, user: UserId) -> &'static str {
    let high = auction.high_bidder() == Some(user);
    match auction.phase {
        Phase::Open if high => "winning",
        Phase::Open => "outbid",
        Phase::Sold if high => "won",
        _ => "lost",
    }
}

fn id_cursor(params: &HashMap<String, String>) -> ApiResult<Option<AuctionId>> {
    params
        .get("cursor")
        .map(|text| {
            path_uuid(text)
                .map(AuctionId)
                .ok_or_else(|| ApiError::validation("cursor", "not a cursor this list returned"))
        })
        .transpose()
}

fn page_limit(params: &HashMap<String, String>) -> ApiResult<usize> {
    limit(
        params.get("limit").map(String::as_str),
        PAGE_DEFAULT,
        PAGE_MAX,
    )
}

/// Auctions named by a per-shard id index, merged in id order after `after`, filtered.
async fn auctions_by_index<S: NodeStorage>(
    app: &SharedApp<S>,
    user: UserId,
    after: Option<AuctionId>,
    index: fn(&auction_raft::host::GroupReader<S>, UserId, Option<AuctionId>) -> IndexResult,
) -> ApiResult<Vec<Auction>> {
    let readers = app.shard_readers(Consistency::Linearizable).await?;
    blocking(move || {
        let mut found = Vec::new();
        for reader in &readers {
            for id in index(reader, user, after)? {
                if let Some(auction) = query::auction(reader, id)? {
                    found.push(auction);
                }
            }
        }
        found.sort_by_key(|auction| auction.id);
        Ok(found)
    })
    .await
}

type IndexResult = Result<Vec<AuctionId>, auction_statemachine::StoreError>;

fn bid_index<S: NodeStorage>(
    reader: &auction_raft::host::GroupReader<S>,
    user: UserId,
    after: Option<AuctionId>,
) -> IndexResult {
    query::user_bid_auctions(reader, user, after, PER_SHARD_MAX)
}

fn seller_index<S: NodeStorage>(
    reader: &auction_raft::host::GroupReader<S>,
    user: UserId,
    after: Option<AuctionId>,
) -> IndexResult {
    query::seller_auctions(reader, user, after, PER_SHARD_MAX)
}

/// Cuts a page from id-ordered items; the cursor is the last id.
fn id_page<T>(
    mut items: Vec<T>,
    limit: usize,
    id: impl Fn(&T) -> Uuid,
) -> (Vec<T>, Option<String>) {
    let more = items.len() > limit;
    items.truncate(limit);
    let next = more
        .then(|| items.last().map(|item| id(item).to_string()))
        .flatten();
    (items, next)
}

pub async fn bids<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    current: CurrentUser,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let wanted = params.get("status").cloned();
    if let Some(status) = wanted.as_deref() {
        if !["winning", "outbid", "won", "lost"].contains(&status) {
            return Err(ApiError::validation(
                "status",
                "must be winning, outbid, won or lost",
            ));
        }
    }
    let limit = page_limit(&params)?;
    let user = current.user.id;
    let mut found = auctions_by_index(&app, user, id_cursor(&params)?, bid_index::<S>).await?;
    found.retain(|auction| {
        wanted
            .as_deref()
            .is_none_or(|wanted| my_status(auction, user) == wanted)
    });
    let (found, next) = id_page(found, limit, |auction| auction.id.0);
    let now = app.now_ms();
    let viewer = Viewer::of(&current.user);
    let items = found
        .iter()
        .map(|auction| {
            json!({
                "auctionId": auction.id.to_string(),
                "myStatus": my_status(auction, user),
                "myMaximum": auction.pricing.high.filter(|high| high.bidder == user)
                    .map(|high| high.max.to_string()),
                "auction": views::auction(auction, now, viewer),
            })
        })
        .collect();
    Ok(Json(views::list(items, next)))
}

pub async fn auctions<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    current: CurrentUser,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let limit = page_limit(&params)?;
    let found = auctions_by_index(
        &app,
        current.user.id,
        id_cursor(&params)?,
        seller_index::<S>,
    )
    .await?;
    let (found, next) = id_page(found, limit, |auction| auction.id.0);
    let now = app.now_ms();
    let viewer = Viewer::of(&current.user);
    let items = found
        .iter()
        .map(|auction| views::auction(auction, now, viewer))
        .collect();
    Ok(Json(views::list(items, next)))
}

pub async fn watchlist<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    current: CurrentUser,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let limit = page_limit(&params)?;
    let after = id_cursor(&params)?;
    let user = current.user.id;
    let readers = app.shard_readers(Consistency::Linearizable).await?;
    let mut found = blocking(move || {
        let mut found = Vec::new();
        for reader in &readers {
            for watch in query::watchlist(reader, user, after, PER_SHARD_MAX)? {
                let auction = query::auction(reader, watch.auction_id)?;
                found.push((watch, auction));
            }
        }
        Ok(found)
    })
    .await?;
    found.sort_by_key(|(watch, _)| watch.auction_id);
    let (found, next) = id_page(found, limit, |(watch, _)| watch.auction_id.0);
    let now = app.now_ms();
    let viewer = Viewer::of(&current.user);
    let items = found
        .iter()
        .map(|(watch, auction)| {
            let summary = auction
                .as_ref()
                .map(|auction| views::auction(auction, now, viewer));
            views::watch(watch, summary)
        })
        .collect();
    Ok(Json(views::list(items, next)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WatchBody {
    auction_id: String,
}

pub async fn watch<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    current: CurrentUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<WatchBody>,
) -> ApiResult<Response> {
    let id = path_uuid(&body.auction_id)
        .map(AuctionId)
        .ok_or_else(|| ApiError::validation("auctionId", "must be a UUID"))?;
    let op = Op::Watch {
        auction_id: id,
        user: current.user.id,
    };
    let key = idempotency_key(&headers)?;
    let written = app
        .write(app.shard_of(id), RequestId(new_uuid()), key, op)
        .await?;
    let Outcome::Watch(watch) = written.outcome else {
        return Err(ApiError::internal("expected a watch outcome"));
    };
    // Watching twice is not an error: the existing watch (older than this write) answers 200.
    let status = if written.replayed || watch.created_at < written.effective_ts {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(json!({ "item": views::watch(&watch, None) }))).into_response())
}

pub async fn unwatch<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    current: CurrentUser,
    Path(auction_id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = crate::routes::auctions::auction_id(&auction_id)?;
    let op = Op::Unwatch {
        auction_id: id,
        user: current.user.id,
    };
    app.write(app.shard_of(id), RequestId(new_uuid()), None, op)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Newest first, then by id: the order and the cursor of the notification list.
fn notification_key(
    notification: &Notification,
) -> (std::cmp::Reverse<TimestampMs>, std::cmp::Reverse<Uuid>) {
    (
        std::cmp::Reverse(notification.created_at),
        std::cmp::Reverse(notification.id.0),
    )
}

fn notification_cursor(text: &str) -> ApiResult<(TimestampMs, Uuid)> {
    let invalid = || ApiError::validation("cursor", "not a cursor this list returned");
    let (at, id) = text.split_once('_').ok_or_else(invalid)?;
    Ok((
        at.parse().map_err(|_| invalid())?,
        Uuid::parse_str(id).map_err(|_| invalid())?,
    ))
}

pub async fn notifications<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    current: CurrentUser,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let limit = page_limit(&params)?;
    let unread_only = params.get("unread").is_some_and(|value| value == "true");
    let cursor = params
        .get("cursor")
        .map(|text| notification_cursor(text))
        .transpose()?;
    let user = current.user.id;
    let readers = app.shard_readers(Consistency::Linearizable).await?;
    let mut found = blocking(move || {
        let mut found = Vec::new();
        for reader in &readers {
            found.extend(query::notifications(reader, user, None, PER_SHARD_MAX)?);
        }
        Ok(found)
    })
    .await?;
    found.retain(|notification| {
        (!unread_only || notification.read_at.is_none())
            && cursor.is_none_or(|(at, id)| {
                notification_key(notification) > (std::cmp::Reverse(at), std::cmp::Reverse(id))
            })
    });
    found.sort_by_key(notification_key);
    let more = found.len() > limit;
    found.truncate(limit);
    let next = more
        .then(|| {
            found
                .last()
                .map(|last| format!("{}_{}", last.created_at, last.id.0.simple()))
        })
        .flatten();
    let items = found.iter().map(views::notification).collect();
    Ok(Json(views::list(items, next)))
}

pub async fn mark_read<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    current: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let not_found = || ApiError::from(auction_statemachine::Rejection::NotificationNotFound);
    let id = path_uuid(&id).ok_or_else(not_found)?;
    // A notification id names the shard that minted it.
    let (group, _) = parse_minted_uuid(id, MintedKind::Notification).ok_or_else(not_found)?;
    if group == 0 || group > app.shard_count() {
        return Err(not_found());
    }
    let op = Op::MarkNotificationRead {
        user: current.user.id,
        notification_id: NotificationId(id),
    };
    let written = app.write(group, RequestId(new_uuid()), None, op).await?;
    let Outcome::Notification(notification) = written.outcome else {
        return Err(ApiError::internal("expected a notification outcome"));
    };
    Ok(Json(
        json!({ "notification": views::notification(&notification) }),
    ))
}
