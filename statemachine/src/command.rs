//! Commands: what a Raft log entry asks a group's state machine to do.
//!
//! A [`Command`] is stamped by the group leader with its wall-clock time (`ts_ms`) before it is
//! proposed; apply never reads a clock. Every client write carries the `request_id` chosen by
//! the node that took the request (the bid id, for bids) and, when the client sent one, its
//! idempotency key; the state machine de-duplicates on them so a retried proposal is never
//! applied twice. Amounts arrive as the client's text so that the rejection order of RULES.md
//! (a malformed amount is reported only after the auction and bidder checks) holds exactly.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::hash::fnv1a_64;
use crate::ids::{AuctionId, GroupId, ImageId, NotificationId, RequestId, TimestampMs, UserId};
use crate::model::{ImageFile, Role};

/// Longest idempotency key accepted, in bytes.
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 128;

/// One log entry's worth of work.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The proposing leader's wall clock, in ms since the epoch.
    pub ts_ms: TimestampMs,
    pub request_id: RequestId,
    /// The client's `X-Idempotency-Key`, scoped to the acting user.
    pub idempotency_key: Option<String>,
    pub op: Op,
}

/// A new auction as a client described it; validated on apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAuction {
    pub auction_id: AuctionId,
    pub seller_id: UserId,
    pub title: String,
    pub description: Option<String>,
    pub category: Option<String>,
    pub starting_price: String,
    pub reserve_price: Option<String>,
    /// An amount or `"ebay"`; `None` means the default `1.00`.
    pub bid_increment: Option<String>,
    pub buy_now_price: Option<String>,
    pub start_time: Option<TimestampMs>,
    pub end_time: Option<TimestampMs>,
    pub duration_seconds: Option<i64>,
    pub anti_snipe: Option<AntiSnipeSpec>,
}

impl NewAuction {
    /// An auction that starts now and runs `duration_seconds`, with every optional field unset
    /// (default increment and anti-sniping, no reserve, no buy-now price).
    pub fn lasting(
        auction_id: AuctionId,
        seller_id: UserId,
        title: &str,
        starting_price: &str,
        duration_seconds: i64,
    ) -> NewAuction {
        NewAuction {
            auction_id,
            seller_id,
            title: title.to_owned(),
            description: None,
            category: None,
            starting_price: starting_price.to_owned(),
            reserve_price: None,
            bid_increment: None,
            buy_now_price: None,
            start_time: None,
            end_time: None,
            duration_seconds: Some(duration_seconds),
            anti_snipe: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AntiSnipeSpec {
    pub window_seconds: i64,
    pub extension_seconds: i64,
}

/// A seller's edit: any subset of the editable fields. `Some(None)` clears an optional field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionChanges {
    pub title: Option<String>,
    pub description: Option<String>,
    pub category: Option<Option<String>>,
    pub starting_price: Option<String>,
    pub reserve_price: Option<Option<String>>,
    pub bid_increment: Option<String>,
    pub buy_now_price: Option<Option<String>>,
    pub end_time: Option<TimestampMs>,
}

/// An image whose renditions are already in the object store, as the node that took the upload
/// measured them; checked on apply (`auction::images::check_new_image`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewImage {
    pub image_id: ImageId,
    pub sha256: [u8; 32],
    pub original: ImageFile,
    pub thumbnail: ImageFile,
}

/// A new user; the password is hashed by the proposing node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewUser {
    pub user_id: UserId,
    pub email: String,
    pub display_name: String,
    pub password_hash: String,
}

/// Every operation. The first block belongs to auction shards, the second to the meta group;
/// `Tick` (close due auctions, purge expired records) to both.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    CreateAuction(NewAuction),
    UpdateAuction {
        auction_id: AuctionId,
        actor: UserId,
        changes: AuctionChanges,
    },
    CancelAuction {
        auction_id: AuctionId,
        actor: UserId,
    },
    PlaceBid {
        auction_id: AuctionId,
        bidder: UserId,
        amount: String,
    },
    PlaceProxyBid {
        auction_id: AuctionId,
        bidder: UserId,
        max_amount: String,
    },
    BuyNow {
        auction_id: AuctionId,
        buyer: UserId,
    },
    Watch {
        auction_id: AuctionId,
        user: UserId,
    },
    Unwatch {
        auction_id: AuctionId,
        user: UserId,
    },
    MarkNotificationRead {
        user: UserId,
        notification_id: NotificationId,
    },
    /// Records an uploaded image (the seller, before the first bid and the end).
    AddImage {
        auction_id: AuctionId,
        actor: UserId,
        image: NewImage,
    },
    RemoveImage {
        auction_id: AuctionId,
        actor: UserId,
        image_id: ImageId,
    },
    /// Puts the images in this order: every image of the auction, each once.
    OrderImages {
        auction_id: AuctionId,
        actor: UserId,
        order: Vec<ImageId>,
    },
    AdminCancelAuction {
        auction_id: AuctionId,
        admin: UserId,
        reason: String,
    },
    AdminExtendAuction {
        auction_id: AuctionId,
        admin: UserId,
        end_time: TimestampMs,
    },
    /// Copies a ban decided in the meta group into a shard, where bids are checked.
    SyncBan {
        user: UserId,
        banned: bool,
    },

    RegisterUser(NewUser),
    CreateSession {
        token_hash: Vec<u8>,
        user_id: UserId,
        expires_at: TimestampMs,
    },
    DeleteSession {
        token_hash: Vec<u8>,
    },
    SetRole {
        user_id: UserId,
        role: Role,
        actor: Option<UserId>,
    },
    BanUser {
        user_id: UserId,
        banned: bool,
        reason: Option<String>,
        admin: UserId,
    },

    /// Leader housekeeping: close every due auction (bounded) and purge expired records.
    Tick,

    /// Records the settings the cluster is initialised with (meta group); proposed by the node
    /// that bootstraps the cluster, refused if the stored settings differ.
    InitCluster {
        shard_count: u32,
    },
}

/// Which groups may apply an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    Meta,
    Shard,
    Any,
}

pub const META_GROUP: GroupId = 0;

impl Op {
    pub fn placement(&self) -> Placement {
        match self {
            Op::RegisterUser(_)
            | Op::CreateSession { .. }
            | Op::DeleteSession { .. }
            | Op::SetRole { .. }
            | Op::BanUser { .. }
            | Op::InitCluster { .. } => Placement::Meta,
            Op::Tick => Placement::Any,
            _ => Placement::Shard,
        }
    }

    pub fn fits_group(&self, group: GroupId) -> bool {
        match self.placement() {
            Placement::Meta => group == META_GROUP,
            Placement::Shard => group != META_GROUP,
            Placement::Any => true,
        }
    }

    /// The user on whose behalf the operation runs; idempotency keys are scoped to it.
    pub fn actor(&self) -> Option<UserId> {
        match self {
            Op::CreateAuction(new) => Some(new.seller_id),
            Op::UpdateAuction { actor, .. } | Op::CancelAuction { actor, .. } => Some(*actor),
            Op::PlaceBid { bidder, .. } | Op::PlaceProxyBid { bidder, .. } => Some(*bidder),
            Op::BuyNow { buyer, .. } => Some(*buyer),
            Op::Watch { user, .. } | Op::Unwatch { user, .. } => Some(*user),
            Op::MarkNotificationRead { user, .. } => Some(*user),
            Op::AddImage { actor, .. }
            | Op::RemoveImage { actor, .. }
            | Op::OrderImages { actor, .. } => Some(*actor),
            Op::AdminCancelAuction { admin, .. } | Op::AdminExtendAuction { admin, .. } => {
                Some(*admin)
            }
            Op::BanUser { admin, .. } => Some(*admin),
            Op::SetRole { actor, .. } => *actor,
            Op::CreateSession { user_id, .. } => Some(*user_id),
            Op::SyncBan { .. }
            | Op::RegisterUser(_)
            | Op::DeleteSession { .. }
            | Op::Tick
            | Op::InitCluster { .. } => None,
        }
    }

    /// A short stable name, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Op::CreateAuction(_) => "create_auction",
            Op::UpdateAuction { .. } => "update_auction",
            Op::CancelAuction { .. } => "cancel_auction",
            Op::PlaceBid { .. } => "place_bid",
            Op::PlaceProxyBid { .. } => "place_proxy_bid",
            Op::BuyNow { .. } => "buy_now",
            Op::Watch { .. } => "watch",
            Op::Unwatch { .. } => "unwatch",
            Op::MarkNotificationRead { .. } => "mark_notification_read",
            Op::AddImage { .. } => "add_image",
            Op::RemoveImage { .. } => "remove_image",
            Op::OrderImages { .. } => "order_images",
            Op::AdminCancelAuction { .. } => "admin_cancel_auction",
            Op::AdminExtendAuction { .. } => "admin_extend_auction",
            Op::SyncBan { .. } => "sync_ban",
            Op::RegisterUser(_) => "register_user",
            Op::CreateSession { .. } => "create_session",
            Op::DeleteSession { .. } => "delete_session",
            Op::SetRole { .. } => "set_role",
            Op::BanUser { .. } => "ban_user",
            Op::Tick => "tick",
            Op::InitCluster { .. } => "init_cluster",
        }
    }

    /// Whether the operation is de-duplicated by request id / idempotency key.
    pub fn is_client_write(&self) -> bool {
        !matches!(self, Op::Tick)
    }

    /// A stable digest of what the client asked for, ignoring the values the proposing node
    /// chose per attempt (new ids, password salt, session token), so that a retry of the same
    /// request matches and a different request under the same key does not.
    pub fn fingerprint(&self) -> u64 {
        let mut canonical = self.clone();
        match &mut canonical {
            Op::CreateAuction(new) => new.auction_id = AuctionId(uuid::Uuid::nil()),
            Op::RegisterUser(new) => {
                new.user_id = UserId(uuid::Uuid::nil());
                new.password_hash.clear();
            }
            Op::CreateSession {
                token_hash,
                expires_at,
                ..
            } => {
                token_hash.clear();
                *expires_at = 0;
            }
            _ => {}
        }
        fnv1a_64(&codec::encode(&canonical))
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} request={} ts={}",
            self.op.name(),
            self.request_id,
            self.ts_ms
        )
    }
}
