//! Documentation-only types of the OpenAPI document: the envelopes handlers wrap views in, the
//! error shape, request bodies that handlers read as loose JSON (bids, edits), the bodies of the
//! cluster routes, and the query parameters of each list.
//!
//! The views themselves ([`crate::views`]) and most request bodies (in [`crate::routes`]) are
//! the real types; these mirror the few answers that handlers build with `json!`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, IntoResponses, ToSchema};

use crate::extract::AmountText;
use crate::views::{AuctionView, NotificationView, UserView, WatchView};

/// Every refusal: `{error, message, ...details}`. Details depend on the code: `field`
/// (VALIDATION_FAILED), `currentBid` and `minimumBid` (BID_TOO_LOW), `retryAfter` (RATE_LIMITED,
/// NO_LEADER, with a `Retry-After` header), `limitBytes` (PAYLOAD_TOO_LARGE), `results`
/// (CLUSTER_CHANGE_REFUSED).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// A stable code, e.g. `BID_TOO_LOW`, `AUCTION_ENDED`, `VALIDATION_FAILED`.
    #[schema(example = "BID_TOO_LOW")]
    pub error: String,
    pub message: String,
    /// The field a validation failure is about (camelCase; a header name for headers).
    pub field: Option<String>,
    /// BID_TOO_LOW: the current price (null before the first bid).
    pub current_bid: Option<String>,
    /// BID_TOO_LOW: the lowest acceptable amount.
    pub minimum_bid: Option<String>,
    /// RATE_LIMITED, NO_LEADER: seconds to wait (also the `Retry-After` header).
    pub retry_after: Option<u64>,
    /// The request's id (also the `X-Request-Id` response header), for the node's logs.
    pub request_id: Option<String>,
    /// Other details of the code.
    #[serde(flatten)]
    pub details: BTreeMap<String, serde_json::Value>,
}

/// Refusals of a write.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum WriteErrors {
    /// Malformed JSON or amount, bid too low, idempotency key invalid.
    #[response(status = 400)]
    BadRequest(#[to_schema] ErrorBody),
    /// No valid session.
    #[response(status = 401)]
    Unauthorized(#[to_schema] ErrorBody),
    /// Not allowed: the seller bidding, a banned user, not the seller.
    #[response(status = 403)]
    Forbidden(#[to_schema] ErrorBody),
    /// The auction (or other object) does not exist.
    #[response(status = 404)]
    NotFound(#[to_schema] ErrorBody),
    /// The auction has ended, not started, been cancelled; already the high bidder; key reused.
    #[response(status = 409)]
    Conflict(#[to_schema] ErrorBody),
    /// A field is missing or not acceptable (`field` names it).
    #[response(status = 422)]
    Validation(#[to_schema] ErrorBody),
    /// Too many requests; see `Retry-After`.
    #[response(status = 429)]
    RateLimited(#[to_schema] ErrorBody),
    /// The group has no leader right now; see `Retry-After`.
    #[response(status = 503)]
    NoLeader(#[to_schema] ErrorBody),
    /// The outcome is unknown (timed out); retry with the same `X-Idempotency-Key`.
    #[response(status = 504)]
    Timeout(#[to_schema] ErrorBody),
}

/// Refusals of a public read.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum ReadErrors {
    #[response(status = 404)]
    NotFound(#[to_schema] ErrorBody),
    /// A query parameter is not acceptable (`field` names it).
    #[response(status = 422)]
    Validation(#[to_schema] ErrorBody),
    #[response(status = 503)]
    NoLeader(#[to_schema] ErrorBody),
    #[response(status = 504)]
    Timeout(#[to_schema] ErrorBody),
}

/// Refusals of a read of one's own data.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum MineErrors {
    #[response(status = 401)]
    Unauthorized(#[to_schema] ErrorBody),
    #[response(status = 422)]
    Validation(#[to_schema] ErrorBody),
    #[response(status = 503)]
    NoLeader(#[to_schema] ErrorBody),
    #[response(status = 504)]
    Timeout(#[to_schema] ErrorBody),
}

/// Refusals of an admin or operator route.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum AdminErrors {
    /// The body is not JSON.
    #[response(status = 400)]
    BadRequest(#[to_schema] ErrorBody),
    #[response(status = 401)]
    Unauthorized(#[to_schema] ErrorBody),
    /// Not an admin (or a wrong cluster admin token).
    #[response(status = 403)]
    Forbidden(#[to_schema] ErrorBody),
    #[response(status = 404)]
    NotFound(#[to_schema] ErrorBody),
    /// The change was refused (CLUSTER_CHANGE_REFUSED carries per-group `results`).
    #[response(status = 409)]
    Conflict(#[to_schema] ErrorBody),
    #[response(status = 422)]
    Validation(#[to_schema] ErrorBody),
    #[response(status = 503)]
    NoLeader(#[to_schema] ErrorBody),
    #[response(status = 504)]
    Timeout(#[to_schema] ErrorBody),
}

#[derive(Serialize, ToSchema)]
pub struct UserEnvelope {
    pub user: UserView,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginAnswer {
    /// Send as `Authorization: Bearer <token>`; the same token is set as the `session` cookie.
    pub token: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    pub user: UserView,
}

#[derive(Serialize, ToSchema)]
pub struct AuctionEnvelope {
    pub auction: AuctionView,
}

#[derive(Serialize, ToSchema)]
pub struct WatchEnvelope {
    pub item: WatchView,
}

#[derive(Serialize, ToSchema)]
pub struct NotificationEnvelope {
    pub notification: NotificationView,
}

/// An auction I bid on, with where I stand.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MyBid {
    #[schema(format = Uuid)]
    pub auction_id: String,
    /// winning, outbid, won or lost.
    pub my_status: String,
    /// My proxy maximum while I am the high bidder.
    pub my_maximum: Option<String>,
    pub auction: AuctionView,
}

/// `POST /auctions/{id}/bids`.
#[derive(Deserialize, ToSchema)]
pub struct BidBody {
    pub amount: AmountText,
}

/// `POST /auctions/{id}/proxy`: the most the bidder will pay; the price moves only as far as
/// competition needs.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProxyBody {
    pub max_amount: AmountText,
}

/// `PUT /auctions/{id}`: any subset of the editable fields; `null` clears `reservePrice`,
/// `buyNowPrice` or `category`. Any other field is refused.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuctionEdit {
    pub title: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub starting_price: Option<AmountText>,
    pub reserve_price: Option<AmountText>,
    /// An amount or `"ebay"`.
    pub bid_increment: Option<AmountText>,
    pub buy_now_price: Option<AmountText>,
    #[schema(format = DateTime)]
    pub end_time: Option<String>,
}

/// `POST /cluster/nodes`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddNode {
    pub node_id: u64,
    /// `host:port` of the node's gRPC server.
    pub rpc_addr: String,
}

/// `POST /cluster/groups/{group}/leader`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MoveLeader {
    pub node_id: u64,
}

/// One group's part of a cluster change.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupActionResult {
    pub group_id: u64,
    pub node_id: u64,
    pub ok: bool,
    pub error: Option<String>,
    pub log_index: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct ClusterResults {
    pub results: Vec<GroupActionResult>,
}

/// An operations answer whose fields are described in the route's text.
#[derive(Serialize, ToSchema)]
pub struct OpsObject {
    #[serde(flatten)]
    pub fields: BTreeMap<String, serde_json::Value>,
}

/// `GET /auctions` and `GET /admin/auctions`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListingQuery {
    /// Comma-separated statuses: scheduled, active, sold, unsold, cancelled.
    status: Option<String>,
    category: Option<String>,
    #[param(rename = "sellerId", format = Uuid)]
    seller_id: Option<String>,
    /// Filters on the current price (the starting price before the first bid).
    #[param(rename = "minPrice")]
    min_price: Option<String>,
    #[param(rename = "maxPrice")]
    max_price: Option<String>,
    /// Words to find in the title or the description, typo tolerant (as in `GET /search`).
    q: Option<String>,
    /// ending_soon (default), newest, price_asc, price_desc, most_bids.
    sort: Option<String>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
    /// 1 to 100, default 20.
    limit: Option<u32>,
}

/// `?consistency=`: `linearizable` (default, read index on the group leader) or `local`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ConsistencyQuery {
    consistency: Option<String>,
}

/// Bid history: newest first.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct HistoryQuery {
    consistency: Option<String>,
    /// `nextCursor` of the previous page (a bid sequence number).
    cursor: Option<String>,
    /// 1 to 500, default 50.
    limit: Option<u32>,
}

/// A page of one's own lists.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageQuery {
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
    /// 1 to 100, default 20.
    limit: Option<u32>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct MyBidsQuery {
    /// winning, outbid, won or lost.
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct NotificationsQuery {
    /// `true`: unread ones only.
    unread: Option<bool>,
    cursor: Option<String>,
    limit: Option<u32>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AdminUsersQuery {
    banned: Option<bool>,
    /// user or admin.
    role: Option<String>,
    /// A part of the email.
    email: Option<String>,
    cursor: Option<String>,
    /// 1 to 500, default 50.
    limit: Option<u32>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AuditQuery {
    /// 1 to 500, default 50.
    limit: Option<u32>,
}

/// `X-Idempotency-Key`: 1 to 128 visible ASCII characters. A retry with the same key and user
/// returns the first outcome (200 instead of 201) and changes nothing, on any node; keys are kept
/// at least 24 hours.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IdempotencyHeader {
    #[param(rename = "X-Idempotency-Key")]
    idempotency_key: Option<String>,
}

/// `Last-Event-ID`: the id of the last event received, to resume after it on any node; a
/// malformed one is refused with 400.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct LastEventIdHeader {
    #[param(rename = "Last-Event-ID")]
    last_event_id: Option<String>,
}

/// `GET /search`: words, filters, sort, cursor.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct SearchQuery {
    /// Words to find in the title or the description (at most 200 characters); typo tolerant:
    /// one typo from 5 letters, two from 9; the last word also matches as a prefix.
    q: Option<String>,
    /// Only this category.
    category: Option<String>,
    /// Comma-separated statuses: scheduled, active, sold, unsold, cancelled.
    status: Option<String>,
    /// Filters on the current price (the starting price before the first bid).
    #[param(rename = "minPrice")]
    min_price: Option<String>,
    #[param(rename = "maxPrice")]
    max_price: Option<String>,
    #[param(rename = "sellerId", format = Uuid)]
    seller_id: Option<String>,
    /// relevance (default with `q`), ending_soon (default without), newest, price_asc,
    /// price_desc, most_bids.
    sort: Option<String>,
    /// `nextCursor` of the previous page (same sort).
    cursor: Option<String>,
    /// 1 to 100, default 20.
    limit: Option<u32>,
}

/// Matching auctions per facet value.
#[derive(Serialize, ToSchema)]
pub struct SearchFacets {
    /// Category name → number of matching auctions (the most frequent 100).
    pub category: std::collections::BTreeMap<String, u64>,
}

/// One page of search results.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchAnswer {
    pub items: Vec<AuctionView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
    /// Every matching auction, over all pages.
    pub total: u64,
    pub facets: SearchFacets,
    /// How far this node's index was behind its applied state, in milliseconds.
    pub search_lag_ms: u64,
    #[schema(format = DateTime)]
    pub server_time: String,
}

#[derive(Serialize, ToSchema)]
pub struct ImageEnvelope {
    pub image: crate::views::ImageView,
}

#[derive(Serialize, ToSchema)]
pub struct ImageList {
    pub items: Vec<crate::views::ImageView>,
}
