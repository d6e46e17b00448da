//! `/auctions`: create, read (linearizable by default, `?consistency=local`), edit, cancel,
//! bid, proxy bid, buy now, bid history, listings.
//!
//! Writes go to the auction's shard. A write with `X-Idempotency-Key` that repeats an earlier
//! one returns the recorded outcome with `200` instead of `201`, on any node.

use std::collections::HashMap;

use auction_raft::host::NodeStorage;
use auction_statemachine::{
    query, AntiSnipeSpec, AuctionChanges, AuctionId, NewAuction, Op, Outcome, RequestId, UserId,
};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::Digest;

use crate::auth::{CurrentUser, MaybeUser};
use crate::error::{ApiError, ApiResult};
use crate::extract::{
    amount_text, consistency, idempotency_key, limit, parse_time, path_uuid, AmountText, ApiJson,
    Consistency,
};
use crate::listing::{self, Cursor, Filter, Sort};
use crate::views::{self, Viewer};
use crate::{limits, metrics};
use crate::{new_uuid, SharedApp, Written};

/// The id in the path; a text that is not a UUID names no auction.
pub fn auction_id(text: &str) -> ApiResult<AuctionId> {
    path_uuid(text)
        .map(AuctionId)
        .ok_or_else(ApiError::auction_not_found)
}

fn created_status(written: &Written) -> StatusCode {
    if written.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    }
}

/// Answers with `{auction}` for an outcome that is an auction.
fn auction_answer<S: NodeStorage>(
    app: &SharedApp<S>,
    written: Written,
    status: StatusCode,
    viewer: Viewer,
) -> ApiResult<Response> {
    let Outcome::Auction(auction) = written.outcome else {
        return Err(ApiError::internal("expected an auction outcome"));
    };
    let now = app.now_ms().max(written.effective_ts);
    // From this node's replica: an answer about the auction's fields does not wait for a read
    // index, and images change only through their own commands (a follower may show an image
    // added a moment ago one replication delay late).
    let images = match app.host.local_reader(app.shard_of(auction.id)) {
        Ok(reader) => query::auction_images(&reader, auction.id)?,
        Err(_) => Vec::new(),
    };
    let body = json!({ "auction": views::auction_with_images(&auction, &images, now, viewer) });
    Ok((status, Json(body)).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AntiSnipeBody {
    #[schema(minimum = 0, maximum = 86_400)]
    window_seconds: i64,
    #[schema(minimum = 0, maximum = 86_400)]
    extension_seconds: i64,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateBody {
    /// 1 to 200 characters (`listing::TITLE_CHARS_MAX`; `openapi::tests` checks the bounds).
    #[schema(min_length = 1, max_length = 200)]
    title: String,
    #[schema(max_length = 10_000)]
    description: Option<String>,
    #[schema(max_length = 64)]
    category: Option<String>,
    starting_price: AmountText,
    reserve_price: Option<AmountText>,
    /// An amount or `"ebay"`.
    bid_increment: Option<AmountText>,
    buy_now_price: Option<AmountText>,
    #[schema(format = DateTime)]
    start_time: Option<String>,
    /// Give `endTime` or `durationSeconds`, not both.
    #[schema(format = DateTime)]
    end_time: Option<String>,
    #[schema(minimum = 1, maximum = 7_776_000)]
    duration_seconds: Option<i64>,
    anti_snipe: Option<AntiSnipeBody>,
}

pub async fn create<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    current: CurrentUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateBody>,
) -> ApiResult<Response> {
    let key = idempotency_key(&headers)?;
    let new = NewAuction {
        auction_id: new_auction_id(current.user.id, key.as_deref()),
        seller_id: current.user.id,
        title: body.title,
        description: body.description,
        category: body.category,
        starting_price: body.starting_price.0,
        reserve_price: body.reserve_price.map(|amount| amount.0),
        bid_increment: body.bid_increment.map(|amount| amount.0),
        buy_now_price: body.buy_now_price.map(|amount| amount.0),
        start_time: body
            .start_time
            .map(|text| parse_time("startTime", &text))
            .transpose()?,
        end_time: body
            .end_time
            .map(|text| parse_time("endTime", &text))
            .transpose()?,
        duration_seconds: body.duration_seconds,
        anti_snipe: body.anti_snipe.map(|spec| AntiSnipeSpec {
            window_seconds: spec.window_seconds,
            extension_seconds: spec.extension_seconds,
        }),
    };
    let group = app.shard_of(new.auction_id);
    crate::request_id::record_action("create_auction");
    crate::request_id::record_auction(&new.auction_id);
    let written = app
        .write(group, RequestId(new_uuid()), key, Op::CreateAuction(new))
        .await?;
    let status = created_status(&written);
    if status == StatusCode::CREATED {
        app.metrics.record_auction_created();
    }
    auction_answer(&app, written, status, Viewer::of(&current.user))
}

/// A new auction's id: random, or, for a request with an idempotency key, derived from the
/// seller and the key (a version 8 UUID of their SHA-256), so a retry names the same auction
/// and so reaches the same shard, where the key's recorded outcome answers it. (A random id
/// would send the retry to another shard, which knows nothing of the key, and create the
/// auction twice.)
fn new_auction_id(seller: UserId, key: Option<&str>) -> AuctionId {
    let Some(key) = key else {
        return AuctionId(new_uuid());
    };
    let mut digest = sha2::Sha256::new();
    digest.update(b"auction-id\0");
    digest.update(seller.0.as_bytes());
    digest.update(key.as_bytes());
    let digest = digest.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    AuctionId(uuid::Builder::from_custom_bytes(bytes).into_uuid())
}

fn viewer(user: &MaybeUser) -> Viewer {
    user.0
        .as_ref()
        .map_or(Viewer::GUEST, |current| Viewer::of(&current.user))
}

pub async fn get_one<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    user: MaybeUser,
) -> ApiResult<Json<Value>> {
    let id = auction_id(&id)?;
    let consistency = consistency(params.get("consistency").map(String::as_str))?;
    let reader = app.reader(app.shard_of(id), consistency).await?;
    let auction = query::auction(&reader, id)?.ok_or_else(ApiError::auction_not_found)?;
    let images = query::auction_images(&reader, id)?;
    let body = json!({ "auction": views::auction_with_images(&auction, &images, app.now_ms(), viewer(&user)) });
    Ok(Json(body))
}

/// A string field of an edit: absent, or a string (`null` is refused: it cannot be cleared).
fn edit_text(body: &Map<String, Value>, field: &str) -> ApiResult<Option<String>> {
    match body.get(field) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(ApiError::validation(field, "must be a string")),
    }
}

/// An amount field of an edit: absent, an amount, or `null` to clear it when `clearable`.
fn edit_amount(
    body: &Map<String, Value>,
    field: &str,
    clearable: bool,
) -> ApiResult<Option<Option<String>>> {
    match body.get(field) {
        None => Ok(None),
        Some(Value::Null) if clearable => Ok(Some(None)),
        Some(Value::String(text)) => Ok(Some(Some(text.clone()))),
        Some(Value::Number(number)) => Ok(Some(Some(number.to_string()))),
        Some(_) => Err(ApiError::validation(
            field,
            "must be an amount as a string such as \"55.00\" or a number",
        )),
    }
}

const EDITABLE_FIELDS: [&str; 8] = [
    "title",
    "description",
    "category",
    "startingPrice",
    "reservePrice",
    "bidIncrement",
    "buyNowPrice",
    "endTime",
];

fn parse_changes(body: &Map<String, Value>) -> ApiResult<AuctionChanges> {
    if let Some(unknown) = body
        .keys()
        .find(|key| !EDITABLE_FIELDS.contains(&key.as_str()))
    {
        return Err(ApiError::validation(unknown, "this field cannot be edited"));
    }
    let category = match body.get("category") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(text)) => Some(Some(text.clone())),
        Some(_) => return Err(ApiError::validation("category", "must be a string or null")),
    };
    Ok(AuctionChanges {
        title: edit_text(body, "title")?,
        description: edit_text(body, "description")?,
        category,
        starting_price: edit_amount(body, "startingPrice", false)?.flatten(),
        reserve_price: edit_amount(body, "reservePrice", true)?,
        bid_increment: edit_amount(body, "bidIncrement", false)?.flatten(),
        buy_now_price: edit_amount(body, "buyNowPrice", true)?,
        end_time: edit_text(body, "endTime")?
            .map(|text| parse_time("endTime", &text))
            .transpose()?,
    })
}

pub async fn update<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    Path(id): Path<String>,
    current: CurrentUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult<Response> {
    let id = auction_id(&id)?;
    let changes = parse_changes(&body)?;
    let op = Op::UpdateAuction {
        auction_id: id,
        actor: current.user.id,
        changes,
    };
    let key = idempotency_key(&headers)?;
    let written = app
        .write(app.shard_of(id), RequestId(new_uuid()), key, op)
        .await?;
    auction_answer(&app, written, StatusCode::OK, Viewer::of(&current.user))
}

pub async fn cancel<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    Path(id): Path<String>,
    current: CurrentUser,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = auction_id(&id)?;
    let op = Op::CancelAuction {
        auction_id: id,
        actor: current.user.id,
    };
    let key = idempotency_key(&headers)?;
    // A cancel drops the auction's images: their objects go once it is committed.
    let images = crate::routes::images::committed_images(&app, id).await;
    let written = app
        .write(app.shard_of(id), RequestId(new_uuid()), key, op)
        .await?;
    crate::routes::images::delete_objects(&app, &images).await;
    auction_answer(&app, written, StatusCode::OK, Viewer::of(&current.user))
}

/// Proposes a bid-like command and answers with the bid outcome (201, or 200 on a replay),
/// in a `handler.place_bid` span; counts the answer by code and its latency by outcome.
async fn place<S: NodeStorage>(
    app: &SharedApp<S>,
    id: AuctionId,
    headers: &HeaderMap,
    op: Op,
) -> ApiResult<Response> {
    use tracing::Instrument;
    let kind = metrics::BidKind::of(&op);
    let action = kind.map_or("bid", metrics::BidKind::label);
    crate::request_id::record_action(action);
    crate::request_id::record_auction(&id);
    let started = std::time::Instant::now();
    let span = tracing::info_span!("handler.place_bid", kind = action, auction_id = %id);
    let answered = place_counted(app, id, headers, op).instrument(span).await;
    let code = match &answered {
        Ok((code, _)) => *code,
        Err(error) => error.code,
    };
    app.metrics.record_bid_answer(kind, code, started.elapsed());
    answered.map(|(_, response)| response)
}

/// [`place`]'s work: the answer and its code ([`metrics::accepted_code`] when accepted).
async fn place_counted<S: NodeStorage>(
    app: &SharedApp<S>,
    id: AuctionId,
    headers: &HeaderMap,
    op: Op,
) -> ApiResult<(&'static str, Response)> {
    let key = idempotency_key(headers)?;
    let group = app.shard_of(id);
    // The limit comes after the key: a retry with a recorded outcome gets it, never 429.
    let recorded = limits::bid_or_recorded(app, group, &op, key.as_deref()).await?;
    let written = match recorded {
        Some(written) => written,
        // The request id is the bid id; a replay answers with the first bid's id.
        None => app.write(group, RequestId(new_uuid()), key, op).await?,
    };
    let status = created_status(&written);
    let now = app.now_ms().max(written.effective_ts);
    match written.outcome {
        Outcome::Bid(outcome) => {
            let code = metrics::accepted_code(written.replayed, &outcome);
            let response = (status, Json(views::bid_outcome(&outcome, now))).into_response();
            Ok((code, response))
        }
        _ => Err(ApiError::internal("expected a bid outcome")),
    }
}

/// A bid body: the amount is kept as the client's text whatever its JSON type, so a malformed
/// amount is reported as `INVALID_AMOUNT` in the order of `statemachine/RULES.md`.
fn body_amount(body: &Value, field: &str) -> String {
    amount_text(body.get(field))
}

pub async fn bid<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    Path(id): Path<String>,
    current: CurrentUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Response> {
    let id = auction_id(&id)?;
    let op = Op::PlaceBid {
        auction_id: id,
        bidder: current.user.id,
        amount: body_amount(&body, "amount"),
    };
    place(&app, id, &headers, op).await
}

pub async fn proxy<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    Path(id): Path<String>,
    current: CurrentUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Response> {
    let id = auction_id(&id)?;
    let op = Op::PlaceProxyBid {
        auction_id: id,
        bidder: current.user.id,
        max_amount: body_amount(&body, "maxAmount"),
    };
    place(&app, id, &headers, op).await
}

pub async fn buy_now<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    Path(id): Path<String>,
    current: CurrentUser,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = auction_id(&id)?;
    let op = Op::BuyNow {
        auction_id: id,
        buyer: current.user.id,
    };
    place(&app, id, &headers, op).await
}

/// `GET /auctions/{id}/bids`: newest first; the cursor is the sequence of the last item.
pub async fn history<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let id = auction_id(&id)?;
    let consistency = consistency(params.get("consistency").map(String::as_str))?;
    let limit = limit(params.get("limit").map(String::as_str), 50, 500)?;
    let before = params
        .get("cursor")
        .map(|text| {
            text.parse::<u32>()
                .map_err(|_| ApiError::validation("cursor", "not a cursor this list returned"))
        })
        .transpose()?;
    let reader = app.reader(app.shard_of(id), consistency).await?;
    if query::auction(&reader, id)?.is_none() {
        return Err(ApiError::auction_not_found());
    }
    let mut steps = query::bid_history(&reader, id, before, limit + 1)?;
    let more = steps.len() > limit;
    steps.truncate(limit);
    let next = more
        .then(|| steps.last().map(|step| step.sequence.to_string()))
        .flatten();
    let items = steps.iter().map(views::bid_step).collect();
    Ok(Json(views::list(items, next)))
}

/// `GET /auctions`: this node's search index (or every shard's local replica without one),
/// filtered, sorted, one page.
pub async fn list<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    Query(params): Query<HashMap<String, String>>,
    user: MaybeUser,
) -> ApiResult<Json<Value>> {
    listing_page(&app, &params, viewer(&user)).await.map(Json)
}

/// One listing page; shared with the admin listing.
pub async fn listing_page<S: NodeStorage>(
    app: &SharedApp<S>,
    params: &HashMap<String, String>,
    viewer: Viewer,
) -> ApiResult<Value> {
    if let Some(index) = app.search.clone() {
        return crate::routes::search::listing(index, params, app.now_ms(), viewer).await;
    }
    let filter = Filter::parse(params)?;
    let sort = Sort::parse(params.get("sort").map(String::as_str))?;
    let cursor = params
        .get("cursor")
        .map(|text| Cursor::decode(text))
        .transpose()?;
    let limit = limit(
        params.get("limit").map(String::as_str),
        listing::PAGE_SIZE_DEFAULT,
        listing::PAGE_SIZE_MAX,
    )?;
    let now = app.now_ms();
    let local = app.shard_readers(Consistency::Local).await?;
    let gathered = crate::blocking(move || {
        let mut all = Vec::new();
        for reader in &local {
            all.extend(listing::gather(reader, &filter, now)?);
        }
        Ok(all)
    })
    .await?;
    let (items, next) = listing::page(gathered, sort, cursor, limit);
    let items = items
        .iter()
        .map(|auction| views::auction(auction, now, viewer))
        .collect();
    Ok(views::list(items, next.map(|cursor| cursor.encode())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_parse_clearable_fields_and_refuse_unknown_ones() {
        let body: Map<String, Value> = serde_json::from_str(
            r#"{"title": "New", "reservePrice": null, "buyNowPrice": 99.5, "category": null}"#,
        )
        .expect("json");
        let changes = parse_changes(&body).expect("valid");
        assert_eq!(changes.title.as_deref(), Some("New"));
        assert_eq!(changes.reserve_price, Some(None));
        assert_eq!(changes.buy_now_price, Some(Some("99.5".to_owned())));
        assert_eq!(changes.category, Some(None));
        let unknown: Map<String, Value> =
            serde_json::from_str(r#"{"sellerId": "x"}"#).expect("json");
        let error = parse_changes(&unknown).expect_err("unknown field");
        assert_eq!(error.details["field"], "sellerId");
        let bad: Map<String, Value> =
            serde_json::from_str(r#"{"startingPrice": null}"#).expect("json");
        assert!(
            parse_changes(&bad).is_err(),
            "the starting price cannot be cleared"
        );
    }

    #[test]
    fn a_path_id_that_is_not_a_uuid_is_an_unknown_auction() {
        let error = auction_id("not-a-uuid").expect_err("404");
        assert_eq!(error.code, "AUCTION_NOT_FOUND");
        assert_eq!(error.status, StatusCode::NOT_FOUND);
    }
}
