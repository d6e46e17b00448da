//! Reads of one group's state, for the API and the simulator's checkers.
//!
//! Pure functions over [`KvRead`]; every list is a bounded page (at most [`PAGE_ITEMS_MAX`]
//! items) that resumes after a cursor taken from the last item of the previous page.

use serde::de::DeserializeOwned;

use crate::codec;
use crate::ctx::load;
use crate::ids::{AuctionId, TimestampMs, UserId};
use crate::keys;
use crate::kv::{KvRead, StoreError};
use crate::model::{
    Auction, AuctionImages, AuditEntry, BidStep, Image, MachineMeta, Notification, Session, User,
    Watch,
};
use crate::outcome::Event;

/// Largest page any list returns.
pub const PAGE_ITEMS_MAX: usize = 500;

fn page<T: DeserializeOwned>(
    kv: &impl KvRead,
    prefix: &[u8],
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<T>, StoreError> {
    // One more than a page, so that a caller asking for `page + 1` can tell whether more follow.
    let pairs = kv.scan(prefix, after, limit.min(PAGE_ITEMS_MAX + 1))?;
    pairs
        .iter()
        .map(|(_, value)| codec::decode(value))
        .collect()
}

fn ids_page(
    kv: &impl KvRead,
    prefix: &[u8],
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<uuid::Uuid>, StoreError> {
    let pairs = kv.scan(prefix, after, limit.min(PAGE_ITEMS_MAX))?;
    Ok(pairs
        .iter()
        .filter_map(|(key, _)| keys::trailing_uuid(key))
        .collect())
}

pub fn auction(kv: &impl KvRead, id: AuctionId) -> Result<Option<Auction>, StoreError> {
    load(kv, &keys::auction(id))
}

/// Auctions in id order, after `after`.
pub fn auctions(
    kv: &impl KvRead,
    after: Option<AuctionId>,
    limit: usize,
) -> Result<Vec<Auction>, StoreError> {
    let after = after.map(keys::auction);
    page(kv, &[keys::AUCTION], after.as_deref(), limit)
}

/// An auction's images in display order (empty when it has none).
pub fn auction_images(kv: &impl KvRead, id: AuctionId) -> Result<Vec<Image>, StoreError> {
    let images: Option<AuctionImages> = load(kv, &keys::auction_images(id))?;
    Ok(images.map(|images| images.images).unwrap_or_default())
}

/// Bid history newest first, continuing below sequence `before` when given.
pub fn bid_history(
    kv: &impl KvRead,
    id: AuctionId,
    before: Option<u32>,
    limit: usize,
) -> Result<Vec<BidStep>, StoreError> {
    let after = before.map(|sequence| keys::history(id, sequence));
    page(kv, &keys::history_prefix(id), after.as_deref(), limit)
}

/// The sequence number of the latest stored event of an auction, 0 before the first.
pub fn auction_event_head(kv: &impl KvRead, id: AuctionId) -> Result<u64, StoreError> {
    crate::auction::event_log::latest_seq(kv, id)
}

/// Up to `limit` stored events of an auction with a sequence number above `after`, oldest
/// first; `None` when the event right after `after` is no longer kept (the log was pruned
/// past it, so a reader resuming there has missed events it can no longer get).
pub fn auction_events_after(
    kv: &impl KvRead,
    id: AuctionId,
    after: u64,
    limit: usize,
) -> Result<Option<Vec<Event>>, StoreError> {
    let latest = auction_event_head(kv, id)?;
    if after >= latest {
        return Ok(Some(Vec::new()));
    }
    if kv.get(&keys::auction_event(id, after + 1))?.is_none() {
        return Ok(None);
    }
    let limit = limit.clamp(1, PAGE_ITEMS_MAX);
    let wanted = u64::try_from(limit).unwrap_or(u64::MAX);
    let upper = latest.min(after.saturating_add(wanted));
    // Keys run newest first: start just below `upper + 1` and walk down to `after + 1`.
    let start = upper
        .checked_add(1)
        .map(|above| keys::auction_event(id, above));
    let mut events: Vec<Event> = page(
        kv,
        &keys::auction_events_prefix(id),
        start.as_deref(),
        limit,
    )?;
    events.retain(|event| event.auction_seq().is_some_and(|(_, seq)| seq > after));
    events.reverse();
    Ok(Some(events))
}

/// Auctions the user has bid on in this group, in id order.
pub fn user_bid_auctions(
    kv: &impl KvRead,
    user: UserId,
    after: Option<AuctionId>,
    limit: usize,
) -> Result<Vec<AuctionId>, StoreError> {
    let after = after.map(|id| keys::user_bid(user, id));
    Ok(
        ids_page(kv, &keys::user_bids_prefix(user), after.as_deref(), limit)?
            .into_iter()
            .map(AuctionId)
            .collect(),
    )
}

/// Auctions the user sells in this group, in id order.
pub fn seller_auctions(
    kv: &impl KvRead,
    seller: UserId,
    after: Option<AuctionId>,
    limit: usize,
) -> Result<Vec<AuctionId>, StoreError> {
    let after = after.map(|id| keys::seller_auction(seller, id));
    let ids = ids_page(
        kv,
        &keys::seller_auctions_prefix(seller),
        after.as_deref(),
        limit,
    )?;
    Ok(ids.into_iter().map(AuctionId).collect())
}

pub fn watchlist(
    kv: &impl KvRead,
    user: UserId,
    after: Option<AuctionId>,
    limit: usize,
) -> Result<Vec<Watch>, StoreError> {
    let after = after.map(|id| keys::user_watch(user, id));
    page(
        kv,
        &keys::user_watches_prefix(user),
        after.as_deref(),
        limit,
    )
}

pub fn is_watching(kv: &impl KvRead, user: UserId, id: AuctionId) -> Result<bool, StoreError> {
    Ok(kv.get(&keys::user_watch(user, id))?.is_some())
}

/// Notifications newest first, continuing below sequence `before` when given.
pub fn notifications(
    kv: &impl KvRead,
    user: UserId,
    before: Option<u64>,
    limit: usize,
) -> Result<Vec<Notification>, StoreError> {
    let after = before.map(|sequence| keys::notification(user, sequence));
    page(
        kv,
        &keys::notifications_prefix(user),
        after.as_deref(),
        limit,
    )
}

pub fn is_banned_in_shard(kv: &impl KvRead, user: UserId) -> Result<bool, StoreError> {
    Ok(kv.get(&keys::shard_ban(user))?.is_some())
}

/// The earliest end time of an open auction: when the leader should propose the next tick.
pub fn next_due_end_time(kv: &impl KvRead) -> Result<Option<TimestampMs>, StoreError> {
    let first = kv.scan(&[keys::END_INDEX], None, 1)?;
    Ok(first.first().and_then(|(key, _)| keys::time_at(key, 1)))
}

pub fn machine_meta(kv: &impl KvRead) -> Result<MachineMeta, StoreError> {
    Ok(load(kv, keys::MACHINE_META)?.unwrap_or_default())
}

pub fn user(kv: &impl KvRead, id: UserId) -> Result<Option<User>, StoreError> {
    load(kv, &keys::user(id))
}

/// Looks a user up by email, normalised as at registration.
pub fn user_by_email(kv: &impl KvRead, email: &str) -> Result<Option<User>, StoreError> {
    let email = email.trim().to_lowercase();
    match load::<UserId>(kv, &keys::user_email(&email))? {
        Some(id) => user(kv, id),
        None => Ok(None),
    }
}

pub fn users(
    kv: &impl KvRead,
    after: Option<UserId>,
    limit: usize,
) -> Result<Vec<User>, StoreError> {
    let after = after.map(keys::user);
    page(kv, &[keys::USER], after.as_deref(), limit)
}

/// A session that has not expired at `now`.
pub fn session(
    kv: &impl KvRead,
    token_hash: &[u8],
    now: TimestampMs,
) -> Result<Option<Session>, StoreError> {
    let session: Option<Session> = load(kv, &keys::session(token_hash))?;
    Ok(session.filter(|session| session.expires_at > now))
}

/// This group's audit log, newest first, continuing below sequence `before`.
pub fn audit_log(
    kv: &impl KvRead,
    before: Option<u64>,
    limit: usize,
) -> Result<Vec<AuditEntry>, StoreError> {
    let after = before.map(keys::audit);
    page(kv, &[keys::AUDIT], after.as_deref(), limit)
}
