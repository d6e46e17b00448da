//! JSON views of the stored records: camelCase, money as strings with two decimals, times as
//! RFC 3339 UTC, ids as UUID strings. The reserve amount is shown to its seller and to admins
//! only; everyone sees `reserveMet`.
//!
//! Each view is a typed struct that is both what is serialized and, through `utoipa`, the
//! schema in the OpenAPI document, so the document cannot describe fields the API does not send.
//! The functions return `serde_json::Value` so handlers can wrap views in their envelopes.

use auction_statemachine::model::AuditEntry;
use auction_statemachine::{
    Auction, BidOutcome, BidStep, Event, Image, ImageFile, Increment, Notification, Role,
    TimestampMs, User, UserId, Watch,
};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::extract::{format_time, hex};

/// Who is looking, for the fields only some may see.
#[derive(Debug, Clone, Copy)]
pub struct Viewer {
    pub user_id: Option<UserId>,
    pub is_admin: bool,
}

impl Viewer {
    pub const GUEST: Viewer = Viewer {
        user_id: None,
        is_admin: false,
    };

    pub fn of(user: &User) -> Viewer {
        Viewer {
            user_id: Some(user.id),
            is_admin: user.role == Role::Admin,
        }
    }
}

/// A view as JSON. Our views are plain structs with string keys, which always serialize.
fn value(view: impl Serialize) -> Value {
    serde_json::to_value(view).expect("a view serializes to JSON")
}

fn increment(increment: Increment) -> String {
    match increment {
        Increment::Fixed(step) => step.to_string(),
        Increment::Ebay => "ebay".to_owned(),
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AntiSnipeView {
    pub window_seconds: i64,
    pub extension_seconds: i64,
}

/// An auction. Money is a string with two decimals; `currentPrice` is null before the first bid.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuctionView {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(format = Uuid)]
    pub seller_id: String,
    pub title: String,
    pub description: String,
    pub category: Option<String>,
    /// scheduled, active, sold, unsold or cancelled, at `serverTime`.
    pub status: &'static str,
    #[schema(example = "10.00")]
    pub starting_price: String,
    /// An amount, or `ebay` for the eBay price bands.
    #[schema(example = "1.00")]
    pub bid_increment: String,
    pub current_price: Option<String>,
    #[schema(format = Uuid)]
    pub high_bidder_id: Option<String>,
    pub minimum_bid: String,
    pub bid_count: u32,
    pub has_reserve: bool,
    pub reserve_met: bool,
    pub buy_now_price: Option<String>,
    #[schema(format = DateTime)]
    pub start_time: String,
    #[schema(format = DateTime)]
    pub end_time: String,
    #[schema(format = DateTime)]
    pub original_end_time: String,
    pub anti_snipe: AntiSnipeView,
    #[schema(format = Uuid)]
    pub winner_id: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub server_time: String,
    /// Present for the seller and admins only (null when there is no reserve).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub reserve_price: Option<Option<String>>,
    /// The auction's images in display order. In the answers about one auction (read,
    /// create, edit); listings and search leave it out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<ImageView>>,
    /// In listings and search: the thumbnail of the first image, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cover: Option<CoverView>,
}

/// The thumbnail a listing shows for an auction.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CoverView {
    pub url: String,
    pub width: u32,
    pub height: u32,
}

/// An auction as a listing shows it: with the thumbnail of its first image.
pub fn listed(
    auction: &Auction,
    cover: Option<&ImageFile>,
    now: TimestampMs,
    viewer: Viewer,
) -> Value {
    let mut view = auction_view(auction, now, viewer);
    view.cover = cover.map(|file| CoverView {
        url: image_url(&file.key),
        width: file.width,
        height: file.height,
    });
    value(view)
}

/// An image of an auction. Both URLs are served by every node (`GET /api/v1/images/...`),
/// immutable and cacheable for a year: a changed image is a new image with new URLs.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageView {
    #[schema(format = Uuid)]
    pub id: String,
    pub url: String,
    pub thumbnail_url: String,
    pub width: u32,
    pub height: u32,
    pub thumbnail_width: u32,
    pub thumbnail_height: u32,
    /// image/jpeg, image/png or image/webp.
    pub content_type: &'static str,
    pub size_bytes: u64,
    /// Hex SHA-256 of the stored original (also its `ETag`).
    pub sha256: String,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// Where every node serves an object of the image bucket.
pub fn image_url(key: &str) -> String {
    format!("/api/v1/images/{key}")
}

pub fn image_view(image: &Image) -> ImageView {
    ImageView {
        id: image.id.to_string(),
        url: image_url(&image.original.key),
        thumbnail_url: image_url(&image.thumbnail.key),
        width: image.original.width,
        height: image.original.height,
        thumbnail_width: image.thumbnail.width,
        thumbnail_height: image.thumbnail.height,
        content_type: image.original.format.content_type(),
        size_bytes: image.original.size_bytes,
        sha256: hex(&image.sha256),
        created_at: format_time(image.added_at),
    }
}

/// An auction with its images (the answers about one auction).
pub fn auction_with_images(
    auction: &Auction,
    images: &[Image],
    now: TimestampMs,
    viewer: Viewer,
) -> Value {
    let mut view = auction_view(auction, now, viewer);
    view.images = Some(images.iter().map(image_view).collect());
    value(view)
}

/// A list of images, as `{items}`.
pub fn images(images: &[Image]) -> Value {
    serde_json::json!({ "items": images.iter().map(|image| value(image_view(image))).collect::<Vec<_>>() })
}

pub fn auction_view(auction: &Auction, now: TimestampMs, viewer: Viewer) -> AuctionView {
    let sees_reserve = viewer.is_admin || viewer.user_id == Some(auction.seller_id);
    let money = |amount: Option<auction_statemachine::Money>| amount.map(|a| a.to_string());
    AuctionView {
        id: auction.id.to_string(),
        seller_id: auction.seller_id.to_string(),
        title: auction.title.clone(),
        description: auction.description.clone(),
        category: auction.category.clone(),
        status: auction.status_at(now).as_str(),
        starting_price: auction.rules.starting.to_string(),
        bid_increment: increment(auction.rules.increment),
        current_price: money(auction.pricing.price),
        high_bidder_id: auction.high_bidder().map(|id| id.to_string()),
        minimum_bid: auction.minimum_bid().to_string(),
        bid_count: auction.bid_count,
        has_reserve: auction.rules.reserve.is_some(),
        reserve_met: auction.reserve_met(),
        buy_now_price: money(auction.buy_now_price),
        start_time: format_time(auction.start_time),
        end_time: format_time(auction.end_time),
        original_end_time: format_time(auction.original_end_time),
        anti_snipe: AntiSnipeView {
            window_seconds: auction.anti_snipe.window_ms / 1_000,
            extension_seconds: auction.anti_snipe.extension_ms / 1_000,
        },
        winner_id: auction.winner().map(|id| id.to_string()),
        created_at: format_time(auction.created_at),
        server_time: format_time(now),
        reserve_price: sees_reserve.then(|| money(auction.rules.reserve)),
        images: None,
        cover: None,
    }
}

pub fn auction(auction: &Auction, now: TimestampMs, viewer: Viewer) -> Value {
    value(auction_view(auction, now, viewer))
}

/// The answer to a bid, a proxy bid or a purchase.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BidOutcomeView {
    /// The id of the request that placed the bid; a replay answers with the first one's.
    #[schema(format = Uuid)]
    pub bid_id: String,
    #[schema(format = Uuid)]
    pub auction_id: String,
    #[schema(format = Uuid)]
    pub bidder_id: String,
    /// `winning` or `outbid`: whether the bidder is the high bidder after this bid.
    pub status: &'static str,
    /// The amount (or proxy maximum) the bidder sent.
    pub amount: String,
    pub current_price: String,
    #[schema(format = Uuid)]
    pub high_bidder_id: String,
    #[schema(format = DateTime)]
    pub end_time: String,
    pub bid_count: u32,
    #[schema(format = DateTime)]
    pub server_time: String,
}

pub fn bid_outcome(outcome: &BidOutcome, now: TimestampMs) -> Value {
    value(BidOutcomeView {
        bid_id: outcome.bid_id.to_string(),
        auction_id: outcome.auction_id.to_string(),
        bidder_id: outcome.bidder_id.to_string(),
        status: if outcome.winning { "winning" } else { "outbid" },
        amount: outcome.amount.to_string(),
        current_price: outcome.current_price.to_string(),
        high_bidder_id: outcome.high_bidder_id.to_string(),
        end_time: format_time(outcome.end_time),
        bid_count: outcome.bid_count,
        server_time: format_time(now),
    })
}

/// One entry of a bid history.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BidStepView {
    pub sequence: u32,
    pub amount: String,
    #[schema(format = Uuid)]
    pub bidder_id: String,
    pub is_proxy: bool,
    #[schema(format = DateTime)]
    pub created_at: String,
}

fn bid_step_view(step: &BidStep) -> BidStepView {
    BidStepView {
        sequence: step.sequence,
        amount: step.amount.to_string(),
        bidder_id: step.bidder_id.to_string(),
        is_proxy: step.is_proxy,
        created_at: format_time(step.created_at),
    }
}

pub fn bid_step(step: &BidStep) -> Value {
    value(bid_step_view(step))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    #[schema(format = Uuid)]
    pub id: String,
    pub email: String,
    pub display_name: String,
    /// `user` or `admin`.
    pub role: &'static str,
    pub banned: bool,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Admin views only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub ban_reason: Option<Option<String>>,
}

fn user_view(user: &User) -> UserView {
    UserView {
        id: user.id.to_string(),
        email: user.email.clone(),
        display_name: user.display_name.clone(),
        role: user.role.as_str(),
        banned: user.banned,
        created_at: format_time(user.created_at),
        ban_reason: None,
    }
}

pub fn user(user: &User) -> Value {
    value(user_view(user))
}

/// A user as an admin sees it (with the ban reason).
pub fn user_for_admin(user: &User) -> Value {
    value(UserView {
        ban_reason: Some(user.ban_reason.clone()),
        ..user_view(user)
    })
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationView {
    /// Names the shard that raised it (a deterministic UUID).
    #[schema(format = Uuid)]
    pub id: String,
    /// outbid, new_bid, auction_extended, auction_won, auction_lost, auction_sold,
    /// auction_unsold, auction_cancelled.
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[schema(format = Uuid)]
    pub auction_id: String,
    pub message: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub read_at: Option<String>,
}

pub fn notification(notification: &Notification) -> Value {
    value(NotificationView {
        id: notification.id.to_string(),
        kind: notification.kind.as_str(),
        auction_id: notification.auction_id.to_string(),
        message: notification.message.clone(),
        created_at: format_time(notification.created_at),
        read_at: notification.read_at.map(format_time),
    })
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WatchView {
    #[schema(format = Uuid)]
    pub auction_id: String,
    #[schema(format = DateTime)]
    pub watched_at: String,
    /// The auction's summary (null when it is given elsewhere in the answer).
    #[schema(value_type = Option<AuctionView>)]
    pub auction: Option<Value>,
}

pub fn watch(watch: &Watch, auction: Option<Value>) -> Value {
    value(WatchView {
        auction_id: watch.auction_id.to_string(),
        watched_at: format_time(watch.created_at),
        auction,
    })
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditView {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(format = Uuid)]
    pub actor_id: String,
    /// `auction.cancel`, `auction.extend`, `user.ban`, `user.role`, ...
    pub action: String,
    pub target: String,
    pub detail: String,
    #[schema(format = DateTime)]
    pub created_at: String,
}

pub fn audit(entry: &AuditEntry) -> Value {
    value(AuditView {
        id: entry.id.to_string(),
        actor_id: entry.actor_id.to_string(),
        action: entry.action.clone(),
        target: entry.target.clone(),
        detail: entry.detail.clone(),
        created_at: format_time(entry.created_at),
    })
}

/// `{items, nextCursor}`: one page; `nextCursor` is null on the last page.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

pub fn list(items: Vec<Value>, next_cursor: Option<String>) -> Value {
    value(Page { items, next_cursor })
}

/// `bid_placed` on an auction stream. It leaves out the amount the bidder sent, which for a
/// proxy bid is their secret maximum; the steps say what the bid did to the price.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BidPlacedEvent {
    #[schema(format = Uuid)]
    pub bid_id: String,
    #[schema(format = Uuid)]
    pub auction_id: String,
    #[schema(format = Uuid)]
    pub bidder_id: String,
    /// `winning` or `outbid`, for the bidder.
    pub status: &'static str,
    pub current_price: String,
    #[schema(format = Uuid)]
    pub high_bidder_id: String,
    #[schema(format = DateTime)]
    pub end_time: String,
    pub bid_count: u32,
    /// The history entries this bid recorded, oldest first.
    pub steps: Vec<BidStepView>,
    /// When the bid took effect.
    #[schema(format = DateTime)]
    pub server_time: String,
}

/// `auction_extended`: anti-sniping or an admin moved the end.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuctionExtendedEvent {
    #[schema(format = Uuid)]
    pub auction_id: String,
    #[schema(format = DateTime)]
    pub end_time: String,
    #[schema(format = DateTime)]
    pub server_time: String,
}

/// `auction_ended`: sold, unsold or cancelled.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuctionEndedEvent {
    #[schema(format = Uuid)]
    pub auction_id: String,
    pub status: &'static str,
    #[schema(format = Uuid)]
    pub winner_id: Option<String>,
    pub final_price: Option<String>,
    #[schema(format = DateTime)]
    pub server_time: String,
}

/// The SSE name, id (the auction's event sequence number) and data of an auction event.
pub fn auction_event(event: &Event) -> Option<(&'static str, u64, Value)> {
    match event {
        Event::BidPlaced { seq, bid, ts, .. } => Some((
            "bid_placed",
            *seq,
            value(BidPlacedEvent {
                bid_id: bid.bid_id.to_string(),
                auction_id: bid.auction_id.to_string(),
                bidder_id: bid.bidder_id.to_string(),
                status: if bid.winning { "winning" } else { "outbid" },
                current_price: bid.current_price.to_string(),
                high_bidder_id: bid.high_bidder_id.to_string(),
                end_time: format_time(bid.end_time),
                bid_count: bid.bid_count,
                steps: bid.steps.iter().map(bid_step_view).collect(),
                server_time: format_time(*ts),
            }),
        )),
        Event::AuctionExtended {
            auction_id,
            seq,
            end_time,
            ts,
        } => Some((
            "auction_extended",
            *seq,
            value(AuctionExtendedEvent {
                auction_id: auction_id.to_string(),
                end_time: format_time(*end_time),
                server_time: format_time(*ts),
            }),
        )),
        Event::AuctionEnded {
            auction_id,
            seq,
            status,
            winner_id,
            final_price,
            ts,
        } => Some((
            "auction_ended",
            *seq,
            value(AuctionEndedEvent {
                auction_id: auction_id.to_string(),
                status: status.as_str(),
                winner_id: winner_id.map(|id| id.to_string()),
                final_price: final_price.map(|price| price.to_string()),
                server_time: format_time(*ts),
            }),
        )),
        Event::Notification(_) => None,
    }
}
