//! The operations of the OpenAPI document, one documentation-only function per route (the
//! axum handlers are generic over the node's storage, which `#[utoipa::path]` does not need to
//! see). `openapi::tests` checks that this list and the router name the same routes.

#![allow(dead_code)]

use crate::openapi::schemas::*;
use crate::routes::admin::{AdminAuctionBody, BanBody, RoleBody};
use crate::routes::auctions::CreateBody;
use crate::routes::auth::{Login, Register};
use crate::routes::images::OrderBody;
use crate::routes::me::WatchBody;
use crate::views::{AuctionView, AuditView, BidOutcomeView, BidStepView, NotificationView, Page};
use crate::views::{UserView, WatchView};

// --- Auth ------------------------------------------------------------------------------------

/// Register a user
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth",
    params(IdempotencyHeader),
    request_body = Register,
    responses((status = 201, description = "Registered", body = UserEnvelope),
        (status = 200, description = "A replay of the same registration", body = UserEnvelope),
        (status = 400, body = ErrorBody),
        (status = 409, description = "EMAIL_TAKEN", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) fn register() {}

/// Log in: a bearer token and the HttpOnly `session` cookie
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = Login,
    responses((status = 200,
        description = "Logged in; also sets the `session` cookie", body = LoginAnswer),
        (status = 400, body = ErrorBody),
        (status = 401, description = "Wrong email or password", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 429, description = "Too many attempts on this account; see `Retry-After`",
            body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(super) fn login() {}

/// End this session
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204, description = "Logged out; the cookie is cleared"),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = []), ("cookie" = [])))]
pub(super) fn logout() {}

/// The current user
#[utoipa::path(get, path = "/api/v1/users/me", tag = "auth",
    responses((status = 200, body = UserEnvelope), (status = 401, body = ErrorBody)),
    security(("bearer" = []), ("cookie" = [])))]
pub(super) fn me() {}

// --- Auctions --------------------------------------------------------------------------------

/// List auctions: filters, sort, cursor
///
/// Served from this node's search index (may lag by a few hundred milliseconds); `q` matches
/// words as in `GET /search`.
#[utoipa::path(get, path = "/api/v1/auctions", tag = "auctions", params(ListingQuery),
    responses((status = 200, body = Page<AuctionView>), (status = 422, body = ErrorBody)))]
pub(super) fn list_auctions() {}

/// Search auctions: words (typo tolerant), filters, sort, facets, cursor
///
/// Served from this node's search index, at most `searchLagMs` behind its applied state.
#[utoipa::path(get, path = "/api/v1/search", tag = "auctions", params(SearchQuery),
    responses((status = 200, body = SearchAnswer), (status = 422, body = ErrorBody),
        (status = 503, description = "SEARCH_UNAVAILABLE: this node has no index",
            body = ErrorBody)))]
pub(super) fn search() {}

/// Create an auction
#[utoipa::path(post, path = "/api/v1/auctions", tag = "auctions",
    params(IdempotencyHeader),
    request_body = CreateBody,
    responses((status = 201, description = "Created", body = AuctionEnvelope),
        (status = 200, description = "A replay", body = AuctionEnvelope), WriteErrors),
    security(("bearer" = []), ("cookie" = [])))]
pub(super) fn create_auction() {}

/// One auction
///
/// Linearizable by default; `?consistency=local` reads this node's replica. `reservePrice` is
/// shown to the seller and admins only.
#[utoipa::path(get, path = "/api/v1/auctions/{id}", tag = "auctions",
    params(("id" = String, Path, format = Uuid, description = "The auction"), ConsistencyQuery),
    responses((status = 200, body = AuctionEnvelope), ReadErrors))]
pub(super) fn get_auction() {}

/// Edit an auction before its first bid (seller)
#[utoipa::path(put, path = "/api/v1/auctions/{id}", tag = "auctions",
    params(("id" = String, Path, format = Uuid, description = "The auction"),
        IdempotencyHeader),
    request_body = AuctionEdit,
    responses((status = 200, body = AuctionEnvelope), WriteErrors),
    security(("bearer" = []), ("cookie" = [])))]
pub(super) fn edit_auction() {}

/// Cancel an auction before its first bid (seller)
#[utoipa::path(delete, path = "/api/v1/auctions/{id}", tag = "auctions",
    params(("id" = String, Path, format = Uuid, description = "The auction"),
        IdempotencyHeader),
    responses((status = 200, body = AuctionEnvelope), WriteErrors),
    security(("bearer" = []), ("cookie" = [])))]
pub(super) fn cancel_auction() {}

/// Place a bid
///
/// Answers after the bid is committed and applied: the outcome is final.
#[utoipa::path(post, path = "/api/v1/auctions/{id}/bids", tag = "auctions",
    params(("id" = String, Path, format = Uuid, description = "The auction"),
        IdempotencyHeader),
    request_body = BidBody,
    responses((status = 201, description = "Accepted", body = BidOutcomeView),
        (status = 200, description = "A replay of the first outcome", body = BidOutcomeView),
        WriteErrors),
    security(("bearer" = []), ("cookie" = [])))]
pub(super) fn place_bid() {}

/// Upload an image (the seller, before the first bid and the end)
///
/// The body is the raw image (`image/jpeg`, `image/png`, `image/webp` or
/// `application/octet-stream`), or `multipart/form-data` whose first file part is the image; at
/// most 5 MiB. JPEG, PNG and WebP are accepted by their content (the declared type does not
/// matter); the image is decoded under limits, re-encoded without its metadata (EXIF is
/// dropped, its orientation applied) and given a thumbnail of at most 320 pixels a side. At most
/// 12 images an auction. The same picture again answers 200 with the image already there.
#[utoipa::path(post, path = "/api/v1/auctions/{id}/images", tag = "images",
    params(("id" = String, Path, format = Uuid, description = "The auction"),
        IdempotencyHeader),
    request_body(content = Vec<u8>, description = "The image bytes",
        content_type = "application/octet-stream"),
    responses((status = 201, description = "Stored and recorded", body = ImageEnvelope),
        (status = 200, description = "The same picture was already there, or a replay",
            body = ImageEnvelope),
        (status = 413, description = "Larger than 5 MiB", body = ErrorBody),
        WriteErrors),
    security(("bearer" = []), ("cookie" = [])))]
pub(super) fn upload_image() {}

/// An auction's images in display order
#[utoipa::path(get, path = "/api/v1/auctions/{id}/images", tag = "images",
    params(("id" = String, Path, format = Uuid, description = "The auction"), ConsistencyQuery),
    responses((status = 200, body = ImageList), ReadErrors))]
pub(super) fn list_images() {}

/// Delete an image (the seller, before the first bid and the end)
#[utoipa::path(delete, path = "/api/v1/auctions/{id}/images/{image_id}", tag = "images",
    params(("id" = String, Path, format = Uuid, description = "The auction"),
        ("image_id" = String, Path, format = Uuid, description = "The image"),
        IdempotencyHeader),
    responses((status = 200, description = "The images left", body = ImageList), WriteErrors),
    security(("bearer" = []), ("cookie" = [])))]
pub(super) fn delete_image() {}

/// Put an auction's images in a new order
#[utoipa::path(put, path = "/api/v1/auctions/{id}/images/order", tag = "images",
    params(("id" = String, Path, format = Uuid, description = "The auction"),
        IdempotencyHeader),
    request_body = OrderBody,
    responses((status = 200, description = "The images in their new order", body = ImageList),
        WriteErrors),
    security(("bearer" = []), ("cookie" = [])))]
pub(super) fn order_images() {}

/// An image's bytes (an original or a thumbnail)
///
/// Immutable: cached for a year, with an `ETag`; `If-None-Match` answers 304.
#[utoipa::path(get, path = "/api/v1/images/{auction}/{file}", tag = "images",
    params(("auction" = String, Path, format = Uuid, description = "The auction"),
        ("file" = String, Path, description = "The object's file name, as the image URLs give it")),
    responses((status = 200, description = "The image", content_type = "image/*"),
        (status = 304, description = "Not modified"),
        (status = 404, description = "IMAGE_NOT_FOUND", body = ErrorBody),
        (status = 503, description = "IMAGE_STORE_UNAVAILABLE", body = ErrorBody)))]
pub(super) fn image_bytes() {}

/// Bid history, newest first
#[utoipa::path(get, path = "/api/v1/auctions/{id}/bids", tag = "auctions",
    params(("id" = String, Path, format = Uuid, description = "The auction"), HistoryQuery),
    responses((status = 200, body = Page<BidStepView>), ReadErrors))]
pub(super) fn bid_history() {}

/// Place or raise a proxy maximum
#[utoipa::path(post, path = "/api/v1/auctions/{id}/proxy", tag = "auctions",
    params(("id" = String, Path, format = Uuid, description = "The auction"),
        IdempotencyHeader),
    request_body = ProxyBody,
    responses((status = 201, description = "Accepted", body = BidOutcomeView),
        (status = 200, description = "A replay of the first outcome", body = BidOutcomeView),
        WriteErrors),
    security(("bearer" = []), ("cookie" = [])))]
pub(super) fn place_proxy() {}

/// Buy at the buy-now price
#[utoipa::path(post, path = "/api/v1/auctions/{id}/buy-now", tag = "auctions",
    params(("id" = String, Path, format = Uuid, description = "The auction"),
        IdempotencyHeader),
    responses((status = 201, description = "Bought: the auction is sold", body = BidOutcomeView),
        (status = 200, description = "A replay of the first outcome", body = BidOutcomeView),
        WriteErrors),
    security(("bearer" = []), ("cookie" = [])))]
pub(super) fn buy_now() {}

/// Live events of an auction (SSE)
///
/// `text/event-stream` from any node. A fresh stream starts with `snapshot` (`{auction}`), then
/// `bid_placed` (BidPlacedEvent), `auction_extended` (AuctionExtendedEvent), `auction_ended`
/// (AuctionEndedEvent); comments `: heartbeat` keep it open. Each event's id is the auction's
/// event sequence number, the same on every node: reconnect to any node with `Last-Event-ID`
/// to get exactly the events missed (the latest 1000 are kept), then live ones. An id older
/// than that, or one never sent, gets `resync` and then a fresh `snapshot`.
#[utoipa::path(get, path = "/api/v1/auctions/{id}/events", tag = "events",
    params(("id" = String, Path, format = Uuid, description = "The auction"),
        LastEventIdHeader),
    responses((status = 200,
        description = "An event stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "Malformed Last-Event-ID", body = ErrorBody), ReadErrors))]
pub(super) fn auction_events() {}

// --- Me --------------------------------------------------------------------------------------

/// My bids: winning, outbid, won, lost
#[utoipa::path(get, path = "/api/v1/users/me/bids", tag = "me", params(MyBidsQuery),
    responses((status = 200, body = Page<MyBid>), MineErrors),
    security(("bearer" = []), ("cookie" = [])))]
pub(super) fn my_bids() {}

/// Auctions I sell
#[utoipa::path(get, path = "/api/v1/users/me/auctions", tag = "me", params(PageQuery),
    responses((status = 200, body = Page<AuctionView>), MineErrors),
    security(("bearer" = []), ("cookie" = [])))]
pub(super) fn my_auctions() {}

/// My watchlist
#[utoipa::path(get, path = "/api/v1/users/me/watchlist", tag = "me", params(PageQuery),
    responses((status = 200, body = Page<WatchView>), MineErrors),
    security(("bearer" = []), ("cookie" = [])))]
pub(super) fn my_watchlist() {}

/// Watch an auction
#[utoipa::path(post, path = "/api/v1/users/me/watchlist", tag = "me",
    params(IdempotencyHeader),
    request_body = WatchBody,
    responses((status = 201, description = "Now watching", body = WatchEnvelope),
        (status = 200, description = "Already watching", body = WatchEnvelope), WriteErrors),
    security(("bearer" = []), ("cookie" = [])))]
pub(super) fn watch() {}

/// Stop watching
#[utoipa::path(delete, path = "/api/v1/users/me/watchlist/{auctionId}", tag = "me",
    params(("auctionId" = String, Path, format = Uuid, description = "The auction")),
    responses((status = 204, description = "Not watching (any more)"), WriteErrors),
    security(("bearer" = []), ("cookie" = [])))]
pub(super) fn unwatch() {}

/// My notifications, newest first
#[utoipa::path(get, path = "/api/v1/users/me/notifications", tag = "me", params(NotificationsQuery),
    responses((status = 200, body = Page<NotificationView>), MineErrors),
    security(("bearer" = []), ("cookie" = [])))]
pub(super) fn my_notifications() {}

/// Mark a notification read
#[utoipa::path(post, path = "/api/v1/users/me/notifications/{id}/read", tag = "me",
    params(("id" = String, Path, format = Uuid, description = "The notification")),
    responses((status = 200, body = NotificationEnvelope), WriteErrors),
    security(("bearer" = []), ("cookie" = [])))]
pub(super) fn mark_read() {}

/// My live notifications (SSE)
///
/// `text/event-stream` from any node. A fresh stream starts with `ready`, then `notification`
/// events (Notification). The id is a position in every shard, `"1:17,2:5,3:0,4:9"`: reconnect to
/// any node with `Last-Event-ID` to get exactly the notifications missed (at most 1000), oldest
/// first, then live ones; further behind, or an id never sent, gets `resync` and then `ready`.
#[utoipa::path(get, path = "/api/v1/users/me/events", tag = "events",
    params(LastEventIdHeader),
    responses((status = 200,
        description = "An event stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "Malformed Last-Event-ID", body = ErrorBody), MineErrors),
    security(("bearer" = []), ("cookie" = [])))]
pub(super) fn my_events() {}

// --- Admin -----------------------------------------------------------------------------------

/// List every auction (with reserve prices)
#[utoipa::path(get, path = "/api/v1/admin/auctions", tag = "admin", params(ListingQuery),
    responses((status = 200, body = Page<AuctionView>), AdminErrors),
    security(("bearer" = []), ("cookie" = [])))]
pub(super) fn admin_auctions() {}

/// Cancel or extend any auction (audited)
#[utoipa::path(put, path = "/api/v1/admin/auctions/{id}", tag = "admin",
    params(("id" = String, Path, format = Uuid, description = "The auction"),
        IdempotencyHeader),
    request_body = AdminAuctionBody,
    responses((status = 200, body = AuctionEnvelope), AdminErrors),
    security(("bearer" = []), ("cookie" = [])))]
pub(super) fn admin_update_auction() {}

/// List users
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin", params(AdminUsersQuery),
    responses((status = 200, body = Page<UserView>), AdminErrors),
    security(("bearer" = []), ("cookie" = [])))]
pub(super) fn admin_users() {}

/// Ban or unban a user (audited; bids are refused in every shard)
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/ban", tag = "admin",
    params(("id" = String, Path, format = Uuid, description = "The user")),
    request_body = BanBody,
    responses((status = 200, body = UserEnvelope), AdminErrors),
    security(("bearer" = []), ("cookie" = [])))]
pub(super) fn ban_user() {}

/// Grant a role; the user may be named by email (admin or the cluster admin token)
#[utoipa::path(put, path = "/api/v1/admin/users/{id}/role", tag = "admin",
    params(("id" = String, Path, description = "The user's id or email")),
    request_body = RoleBody,
    responses((status = 200, body = UserEnvelope), AdminErrors),
    security(("bearer" = []), ("cookie" = []), ("adminToken" = [])))]
pub(super) fn set_role() {}

/// The audit log, newest first
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "admin", params(AuditQuery),
    responses((status = 200, body = Page<AuditView>), AdminErrors),
    security(("bearer" = []), ("cookie" = [])))]
pub(super) fn audit() {}

// --- Cluster and operations ------------------------------------------------------------------

/// Raft groups of this node: role, term, leader, log, commit and apply indexes, membership
#[utoipa::path(get, path = "/api/v1/cluster/status", tag = "cluster",
    responses((status = 200,
        description = "`{nodeId, shardCount, groups, serverTime}`", body = OpsObject)))]
pub(super) fn cluster_status() {}

/// Every member's own view of its groups, asked over gRPC
#[utoipa::path(get, path = "/api/v1/cluster/members", tag = "cluster",
    responses((status = 200,
        description = "`{askedNode, shardCount, members: [{nodeId, rpcAddr, reachable, groups}]}`",
        body = OpsObject), AdminErrors),
    security(("adminToken" = []), ("bearer" = []), ("cookie" = [])))]
pub(super) fn cluster_members() {}

/// Add a node to every group as a learner
#[utoipa::path(post, path = "/api/v1/cluster/nodes", tag = "cluster", request_body = AddNode,
    responses((status = 200, body = ClusterResults), AdminErrors),
    security(("adminToken" = []), ("bearer" = []), ("cookie" = [])))]
pub(super) fn cluster_add_node() {}

/// Make a learner a voter of every group
#[utoipa::path(post, path = "/api/v1/cluster/nodes/{id}/promote", tag = "cluster",
    params(("id" = u64, Path, description = "The node id")),
    responses((status = 200, body = ClusterResults), AdminErrors),
    security(("adminToken" = []), ("bearer" = []), ("cookie" = [])))]
pub(super) fn cluster_promote_node() {}

/// Remove a node from every group
#[utoipa::path(delete, path = "/api/v1/cluster/nodes/{id}", tag = "cluster",
    params(("id" = u64, Path, description = "The node id")),
    responses((status = 200, body = ClusterResults), AdminErrors),
    security(("adminToken" = []), ("bearer" = []), ("cookie" = [])))]
pub(super) fn cluster_remove_node() {}

/// Move a group's leadership to a node
#[utoipa::path(post, path = "/api/v1/cluster/groups/{group}/leader", tag = "cluster",
    params(("group" = u64, Path, description = "The group id (0 is meta)")),
    request_body = MoveLeader,
    responses((status = 200, body = ClusterResults), AdminErrors),
    security(("adminToken" = []), ("bearer" = []), ("cookie" = [])))]
pub(super) fn cluster_transfer_leader() {}

/// Have every member of a group build a snapshot
#[utoipa::path(post, path = "/api/v1/cluster/groups/{group}/snapshot", tag = "cluster",
    params(("group" = u64, Path, description = "The group id (0 is meta)")),
    responses((status = 200, body = ClusterResults), AdminErrors),
    security(("adminToken" = []), ("bearer" = []), ("cookie" = [])))]
pub(super) fn cluster_snapshot() {}

/// A digest of this node's replica of a group at its applied index
#[utoipa::path(get, path = "/api/v1/cluster/groups/{group}/digest", tag = "cluster",
    params(("group" = u64, Path, description = "The group id (0 is meta)")),
    responses((status = 200,
        description = "`{nodeId, groupId, appliedIndex, records, digest}`",
        body = OpsObject), AdminErrors),
    security(("adminToken" = []), ("bearer" = []), ("cookie" = [])))]
pub(super) fn cluster_digest() {}

/// One group's whole state as a backup section, streamed at a consistent applied index
#[utoipa::path(get, path = "/api/v1/cluster/groups/{group}/backup", tag = "cluster",
    params(("group" = u64, Path, description = "The group id (0 is meta)")),
    responses((status = 200,
        description = "A backup section (`auction_statemachine::backup`): header with the \
            group, shard count, serving node and log position (term, leader, index), the \
            records with their count and digest, then the state digest. Read at an applied \
            index at or above every write acknowledged before the request. Busy with other \
            backups: 503 UNAVAILABLE with `Retry-After`.",
        content_type = "application/octet-stream", body = Vec<u8>),
        AdminErrors),
    security(("adminToken" = []), ("bearer" = []), ("cookie" = [])))]
pub(super) fn cluster_backup() {}

/// This document
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "ops",
    responses((status = 200, description = "OpenAPI 3.1", body = OpsObject)))]
pub(super) fn openapi_json() {}

/// The web page (the app's `index.html`)
#[utoipa::path(get, path = "/", tag = "web",
    responses((status = 200, description = "The page", content_type = "text/html"),
        (status = 304, description = "Not modified (`If-None-Match`)"),
        (status = 404, description = "FILE_NOT_FOUND", body = ErrorBody)))]
pub(super) fn web_index() {}

/// A file of the web page (script, style sheet, icon)
#[utoipa::path(get, path = "/assets/{path}", tag = "web",
    params(("path" = String, Path, description = "The file, e.g. `app.js`")),
    responses((status = 200, description = "The file, typed by its extension",
            content((String = "text/javascript"), (String = "text/css"), (String = "text/html"),
                (String = "image/svg+xml"), (String = "image/png"), (String = "application/json"),
                (String = "text/plain"), (String = "application/octet-stream"))),
        (status = 304, description = "Not modified (`If-None-Match`)"),
        (status = 404, description = "FILE_NOT_FOUND", body = ErrorBody)))]
pub(super) fn web_asset() {}

/// The process answers
#[utoipa::path(get, path = "/health", tag = "ops",
    responses((status = 200, description = "`{status: \"ok\"}`", body = OpsObject)))]
pub(super) fn health() {}

/// Every local group knows a leader
#[utoipa::path(get, path = "/ready", tag = "ops",
    responses((status = 200, description = "`{status: \"ready\"}`", body = OpsObject),
        (status = 503, description = "NO_LEADER with the leaderless `groups`", body = ErrorBody)))]
pub(super) fn ready() {}

/// Prometheus metrics
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200,
        description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub(super) fn metrics() {}
