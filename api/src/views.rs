//! JSON views of the stored records: camelCase, money as strings with two decimals, times as
//! RFC 3339 UTC, ids as UUID strings. The reserve amount is shown to its seller and to admins
//! only; everyone sees `reserveMet`.

use auction_statemachine::model::AuditEntry;
use auction_statemachine::{
    Auction, BidOutcome, BidStep, Increment, Notification, Role, TimestampMs, User, UserId, Watch,
};
use serde_json::{json, Value};

use crate::extract::format_time;

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

fn increment(increment: Increment) -> String {
    match increment {
        Increment::Fixed(step) => step.to_string(),
        Increment::Ebay => "ebay".to_owned(),
    }
}

pub fn auction(auction: &Auction, now: TimestampMs, viewer: Viewer) -> Value {
    let sees_reserve = viewer.is_admin || viewer.user_id == Some(auction.seller_id);
    let mut view = json!({
        "id": auction.id.to_string(),
        "sellerId": auction.seller_id.to_string(),
        "title": auction.title,
        "description": auction.description,
        "category": auction.category,
        "status": auction.status_at(now).as_str(),
        "startingPrice": auction.rules.starting.to_string(),
        "bidIncrement": increment(auction.rules.increment),
        "currentPrice": auction.pricing.price.map(|price| price.to_string()),
        "highBidderId": auction.high_bidder().map(|id| id.to_string()),
        "minimumBid": auction.minimum_bid().to_string(),
        "bidCount": auction.bid_count,
        "hasReserve": auction.rules.reserve.is_some(),
        "reserveMet": auction.reserve_met(),
        "buyNowPrice": auction.buy_now_price.map(|price| price.to_string()),
        "startTime": format_time(auction.start_time),
        "endTime": format_time(auction.end_time),
        "originalEndTime": format_time(auction.original_end_time),
        "antiSnipe": {
            "windowSeconds": auction.anti_snipe.window_ms / 1_000,
            "extensionSeconds": auction.anti_snipe.extension_ms / 1_000,
        },
        "winnerId": auction.winner().map(|id| id.to_string()),
        "createdAt": format_time(auction.created_at),
        "serverTime": format_time(now),
    });
    if sees_reserve {
        view["reservePrice"] = json!(auction.rules.reserve.map(|price| price.to_string()));
    }
    view
}

/// The answer to a bid, a proxy bid or a purchase.
pub fn bid_outcome(outcome: &BidOutcome, now: TimestampMs) -> Value {
    json!({
        "bidId": outcome.bid_id.to_string(),
        "auctionId": outcome.auction_id.to_string(),
        "bidderId": outcome.bidder_id.to_string(),
        "status": if outcome.winning { "winning" } else { "outbid" },
        "amount": outcome.amount.to_string(),
        "currentPrice": outcome.current_price.to_string(),
        "highBidderId": outcome.high_bidder_id.to_string(),
        "endTime": format_time(outcome.end_time),
        "bidCount": outcome.bid_count,
        "serverTime": format_time(now),
    })
}

pub fn bid_step(step: &BidStep) -> Value {
    json!({
        "sequence": step.sequence,
        "amount": step.amount.to_string(),
        "bidderId": step.bidder_id.to_string(),
        "isProxy": step.is_proxy,
        "createdAt": format_time(step.created_at),
    })
}

pub fn user(user: &User) -> Value {
    json!({
        "id": user.id.to_string(),
        "email": user.email,
        "displayName": user.display_name,
        "role": user.role.as_str(),
        "banned": user.banned,
        "createdAt": format_time(user.created_at),
    })
}

/// A user as an admin sees it (with the ban reason).
pub fn user_for_admin(user: &User) -> Value {
    let mut view = self::user(user);
    view["banReason"] = json!(user.ban_reason);
    view
}

pub fn notification(notification: &Notification) -> Value {
    json!({
        "id": notification.id.to_string(),
        "type": notification.kind.as_str(),
        "auctionId": notification.auction_id.to_string(),
        "message": notification.message,
        "createdAt": format_time(notification.created_at),
        "readAt": notification.read_at.map(format_time),
    })
}

pub fn watch(watch: &Watch, auction: Option<Value>) -> Value {
    json!({
        "auctionId": watch.auction_id.to_string(),
        "watchedAt": format_time(watch.created_at),
        "auction": auction,
    })
}

pub fn audit(entry: &AuditEntry) -> Value {
    json!({
        "id": entry.id.to_string(),
        "actorId": entry.actor_id.to_string(),
        "action": entry.action,
        "target": entry.target,
        "detail": entry.detail,
        "createdAt": format_time(entry.created_at),
    })
}

/// `{items, nextCursor}`.
pub fn list(items: Vec<Value>, next_cursor: Option<String>) -> Value {
    json!({ "items": items, "nextCursor": next_cursor })
}
