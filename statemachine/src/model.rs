//! The stored records of both kinds of group.
//!
//! Auction shards store [`Auction`] (O(1) to load: the bid history is a separate key range of
//! [`BidStep`]s), watches and notifications. The meta group stores users, sessions and the
//! audit log. Every record is encoded with `codec` (versioned binary). The idempotency records
//! of client writes belong to de-duplication ([`crate::machine::DedupRecord`]).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::Rejection;
use crate::ids::{AuctionId, NotificationId, RequestId, TimestampMs, UserId};
use crate::money::Money;
use crate::pricing::{PriceRules, Pricing};

/// Anti-sniping: a step recorded less than `window_ms` before the end moves the end to
/// `step time + extension_ms`. Either value 0 disables it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AntiSnipe {
    pub window_ms: i64,
    pub extension_ms: i64,
}

impl Default for AntiSnipe {
    fn default() -> Self {
        AntiSnipe {
            window_ms: 120_000,
            extension_ms: 120_000,
        }
    }
}

impl AntiSnipe {
    pub fn is_enabled(&self) -> bool {
        self.window_ms > 0 && self.extension_ms > 0
    }
}

/// What the stored record says; `scheduled` and `active` are both `Open` and told apart by time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Open,
    Sold,
    Unsold,
    Cancelled,
}

/// The status a client sees at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Status {
    Scheduled,
    Active,
    Sold,
    Unsold,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Scheduled => "scheduled",
            Status::Active => "active",
            Status::Sold => "sold",
            Status::Unsold => "unsold",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        [
            Status::Scheduled,
            Status::Active,
            Status::Sold,
            Status::Unsold,
            Status::Cancelled,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// One auction. The bid history lives in its own key range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Auction {
    pub id: AuctionId,
    pub seller_id: UserId,
    pub title: String,
    pub description: String,
    pub category: Option<String>,
    pub rules: PriceRules,
    pub buy_now_price: Option<Money>,
    pub start_time: TimestampMs,
    pub end_time: TimestampMs,
    pub original_end_time: TimestampMs,
    pub anti_snipe: AntiSnipe,
    pub phase: Phase,
    pub pricing: Pricing,
    /// Number of entries in the bid history.
    pub bid_count: u32,
    pub created_at: TimestampMs,
    pub closed_at: Option<TimestampMs>,
}

impl Auction {
    pub fn status_at(&self, now: TimestampMs) -> Status {
        match self.phase {
            Phase::Open if now < self.start_time => Status::Scheduled,
            Phase::Open => Status::Active,
            Phase::Sold => Status::Sold,
            Phase::Unsold => Status::Unsold,
            Phase::Cancelled => Status::Cancelled,
        }
    }

    pub fn minimum_bid(&self) -> Money {
        self.rules.minimum_bid(self.pricing.price)
    }

    pub fn reserve_met(&self) -> bool {
        self.rules.reserve_met(self.pricing.price)
    }

    pub fn high_bidder(&self) -> Option<UserId> {
        self.pricing.high.map(|high| high.bidder)
    }

    /// The buyer of a sold auction.
    pub fn winner(&self) -> Option<UserId> {
        match self.phase {
            Phase::Sold => self.high_bidder(),
            _ => None,
        }
    }

    /// Checks that bids and purchases are possible at `now`, in the order of RULES.md (rule 14).
    pub fn ensure_active(&self, now: TimestampMs) -> Result<(), Rejection> {
        match self.phase {
            Phase::Cancelled => Err(Rejection::AuctionCancelled),
            Phase::Sold | Phase::Unsold => Err(Rejection::AuctionEnded),
            Phase::Open if now >= self.end_time => Err(Rejection::AuctionEnded),
            Phase::Open if now < self.start_time => Err(Rejection::AuctionNotStarted),
            Phase::Open => Ok(()),
        }
    }
}

/// One entry of the bid history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BidStep {
    /// 1-based position in the history.
    pub sequence: u32,
    pub amount: Money,
    pub bidder_id: UserId,
    pub is_proxy: bool,
    pub created_at: TimestampMs,
    /// The request whose bid caused this step.
    pub request_id: RequestId,
}

/// A user's watch of an auction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watch {
    pub auction_id: AuctionId,
    pub user_id: UserId,
    pub created_at: TimestampMs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotificationKind {
    Outbid,
    NewBid,
    AuctionExtended,
    AuctionWon,
    AuctionSold,
    AuctionUnsold,
    AuctionLost,
    AuctionCancelled,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Outbid => "outbid",
            NotificationKind::NewBid => "new_bid",
            NotificationKind::AuctionExtended => "auction_extended",
            NotificationKind::AuctionWon => "auction_won",
            NotificationKind::AuctionSold => "auction_sold",
            NotificationKind::AuctionUnsold => "auction_unsold",
            NotificationKind::AuctionLost => "auction_lost",
            NotificationKind::AuctionCancelled => "auction_cancelled",
        }
    }
}

/// A personal notification, stored in the shard of the auction it is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub id: NotificationId,
    pub user_id: UserId,
    pub kind: NotificationKind,
    pub auction_id: AuctionId,
    pub message: String,
    pub created_at: TimestampMs,
    pub read_at: Option<TimestampMs>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

/// A user account (meta group).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    /// Normalised: trimmed and lower-case.
    pub email: String,
    pub display_name: String,
    /// An argon2 PHC string computed by the proposing node (hashing needs randomness).
    pub password_hash: String,
    pub role: Role,
    pub banned: bool,
    pub ban_reason: Option<String>,
    pub created_at: TimestampMs,
}

/// A login session (meta group), keyed by the hash of its bearer token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub token_hash: Vec<u8>,
    pub user_id: UserId,
    pub created_at: TimestampMs,
    pub expires_at: TimestampMs,
}

/// One admin action, kept in the group where the action took effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: Uuid,
    pub actor_id: UserId,
    /// A dotted verb such as `auction.cancel` or `user.ban`.
    pub action: String,
    pub target: String,
    pub detail: String,
    pub created_at: TimestampMs,
}

/// Per-group bookkeeping of the state machine itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineMeta {
    /// The largest effective timestamp applied so far; time never runs backwards.
    pub last_applied_ts: TimestampMs,
    pub notification_sequence: u64,
    pub audit_sequence: u64,
}

/// The encodings an auction image may have (by content, not by the name a client gave it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ImageFormat {
    Jpeg,
    Png,
    Webp,
}

impl ImageFormat {
    pub const ALL: [ImageFormat; 3] = [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::Webp];

    pub fn content_type(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Png => "image/png",
            ImageFormat::Webp => "image/webp",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "jpg",
            ImageFormat::Png => "png",
            ImageFormat::Webp => "webp",
        }
    }

    pub fn from_content_type(text: &str) -> Option<ImageFormat> {
        let essence = text.split(';').next().unwrap_or("").trim();
        ImageFormat::ALL
            .into_iter()
            .find(|format| format.content_type().eq_ignore_ascii_case(essence))
    }

    pub fn from_extension(text: &str) -> Option<ImageFormat> {
        ImageFormat::ALL
            .into_iter()
            .find(|format| format.extension() == text)
    }
}

/// One stored rendition of an image: the object that holds it and what it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageFile {
    /// The object key in the image bucket; it starts with the auction's id (see
    /// `auction::images::object_prefix`), so one auction never refers to another's objects.
    pub key: String,
    pub format: ImageFormat,
    pub size_bytes: u64,
    pub width: u32,
    pub height: u32,
}

/// An image of an auction: the bytes live in the object store, only this is replicated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub id: crate::ids::ImageId,
    /// SHA-256 of the stored (re-encoded) original.
    pub sha256: [u8; 32],
    pub original: ImageFile,
    pub thumbnail: ImageFile,
    pub added_at: TimestampMs,
}

/// An auction's images in display order (at most `auction::images::IMAGES_PER_AUCTION_MAX`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionImages {
    pub auction_id: AuctionId,
    pub images: Vec<Image>,
}
