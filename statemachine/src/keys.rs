//! The key layout of one group's state: a one-byte record tag, then fixed-width big-endian
//! fields, so that ordered scans give the orders the queries need.
//!
//! Newest-first ranges (bid history, auction events, notifications, audit log) store the bitwise
//! complement of their sequence number, so a forward scan yields the newest entry first. Times are stored as
//! `u64` of a non-negative millisecond timestamp (negative times are clamped to 0).

use crate::ids::{AuctionId, TimestampMs, UserId};

pub const MACHINE_META: &[u8] = b"M";
pub const AUCTION: u8 = b'A';
pub const HISTORY: u8 = b'H';
pub const END_INDEX: u8 = b'E';
pub const AUCTION_BIDDER: u8 = b'B';
pub const USER_BID: u8 = b'U';
pub const SELLER_AUCTION: u8 = b'S';
pub const AUCTION_WATCHER: u8 = b'W';
pub const USER_WATCH: u8 = b'w';
pub const NOTIFICATION: u8 = b'N';
pub const DEDUP: u8 = b'I';
pub const DEDUP_EXPIRY: u8 = b'i';
pub const SHARD_BAN: u8 = b'X';
pub const AUDIT: u8 = b'L';
pub const USER: u8 = b'P';
pub const USER_EMAIL: u8 = b'Q';
pub const SESSION: u8 = b'T';
pub const SESSION_EXPIRY: u8 = b't';
/// A user's sessions in creation order, `[R][user][created at][token hash]`: a ban ends them
/// all in one bounded scan (`meta::SESSIONS_PER_USER_MAX`).
pub const USER_SESSION: u8 = b'R';
/// The cluster settings fixed at init (`meta::ClusterSettings`), meta group only.
pub const CLUSTER_SETTINGS: &[u8] = b"G";
pub const AUCTION_EVENT: u8 = b'V';
/// The latest event sequence number of an auction (a point read instead of a scan per event).
pub const AUCTION_EVENT_HEAD: u8 = b'v';
/// The number of watchers of an auction (a bid on an unwatched auction scans no watcher range).
pub const AUCTION_WATCH_COUNT: u8 = b'c';
/// An auction's images in display order (`model::AuctionImages`), apart from the auction
/// record so that a bid does not load them.
pub const AUCTION_IMAGES: u8 = b'J';
/// When the next purge of expired de-duplication records is due (see `tick::DedupPurge`).
pub const DEDUP_PURGE: &[u8] = b"D";

fn time_bytes(ts: TimestampMs) -> [u8; 8] {
    u64::try_from(ts).unwrap_or(0).to_be_bytes()
}

/// Reads the timestamp at `offset` of a key written with [`time_bytes`].
pub fn time_at(key: &[u8], offset: usize) -> Option<TimestampMs> {
    let bytes: [u8; 8] = key.get(offset..offset + 8)?.try_into().ok()?;
    i64::try_from(u64::from_be_bytes(bytes)).ok()
}

fn key(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let length = 1 + parts.iter().map(|part| part.len()).sum::<usize>();
    let mut key = Vec::with_capacity(length);
    key.push(tag);
    for part in parts {
        key.extend_from_slice(part);
    }
    key
}

pub fn auction(id: AuctionId) -> Vec<u8> {
    key(AUCTION, &[id.as_bytes()])
}

pub fn auction_images(id: AuctionId) -> Vec<u8> {
    key(AUCTION_IMAGES, &[id.as_bytes()])
}

pub fn history_prefix(id: AuctionId) -> Vec<u8> {
    key(HISTORY, &[id.as_bytes()])
}

pub fn history(id: AuctionId, sequence: u32) -> Vec<u8> {
    key(HISTORY, &[id.as_bytes(), &(!sequence).to_be_bytes()])
}

pub fn auction_events_prefix(id: AuctionId) -> Vec<u8> {
    key(AUCTION_EVENT, &[id.as_bytes()])
}

/// Newest first, like the bid history: the first key under the prefix is the latest event.
pub fn auction_event(id: AuctionId, seq: u64) -> Vec<u8> {
    key(AUCTION_EVENT, &[id.as_bytes(), &(!seq).to_be_bytes()])
}

pub fn auction_event_head(id: AuctionId) -> Vec<u8> {
    key(AUCTION_EVENT_HEAD, &[id.as_bytes()])
}

pub fn auction_watch_count(id: AuctionId) -> Vec<u8> {
    key(AUCTION_WATCH_COUNT, &[id.as_bytes()])
}

pub fn end_index(end_time: TimestampMs, id: AuctionId) -> Vec<u8> {
    key(END_INDEX, &[&time_bytes(end_time), id.as_bytes()])
}

pub fn auction_bidders_prefix(id: AuctionId) -> Vec<u8> {
    key(AUCTION_BIDDER, &[id.as_bytes()])
}

pub fn auction_bidder(id: AuctionId, user: UserId) -> Vec<u8> {
    key(AUCTION_BIDDER, &[id.as_bytes(), user.as_bytes()])
}

pub fn user_bids_prefix(user: UserId) -> Vec<u8> {
    key(USER_BID, &[user.as_bytes()])
}

pub fn user_bid(user: UserId, id: AuctionId) -> Vec<u8> {
    key(USER_BID, &[user.as_bytes(), id.as_bytes()])
}

pub fn seller_auctions_prefix(seller: UserId) -> Vec<u8> {
    key(SELLER_AUCTION, &[seller.as_bytes()])
}

pub fn seller_auction(seller: UserId, id: AuctionId) -> Vec<u8> {
    key(SELLER_AUCTION, &[seller.as_bytes(), id.as_bytes()])
}

pub fn auction_watchers_prefix(id: AuctionId) -> Vec<u8> {
    key(AUCTION_WATCHER, &[id.as_bytes()])
}

pub fn auction_watcher(id: AuctionId, user: UserId) -> Vec<u8> {
    key(AUCTION_WATCHER, &[id.as_bytes(), user.as_bytes()])
}

pub fn user_watches_prefix(user: UserId) -> Vec<u8> {
    key(USER_WATCH, &[user.as_bytes()])
}

pub fn user_watch(user: UserId, id: AuctionId) -> Vec<u8> {
    key(USER_WATCH, &[user.as_bytes(), id.as_bytes()])
}

pub fn notifications_prefix(user: UserId) -> Vec<u8> {
    key(NOTIFICATION, &[user.as_bytes()])
}

pub fn notification(user: UserId, sequence: u64) -> Vec<u8> {
    key(NOTIFICATION, &[user.as_bytes(), &(!sequence).to_be_bytes()])
}

pub fn dedup(dedup_key: &[u8]) -> Vec<u8> {
    key(DEDUP, &[dedup_key])
}

pub fn dedup_expiry(expires_at: TimestampMs, dedup_key: &[u8]) -> Vec<u8> {
    key(DEDUP_EXPIRY, &[&time_bytes(expires_at), dedup_key])
}

pub fn shard_ban(user: UserId) -> Vec<u8> {
    key(SHARD_BAN, &[user.as_bytes()])
}

pub fn audit(sequence: u64) -> Vec<u8> {
    key(AUDIT, &[&(!sequence).to_be_bytes()])
}

pub fn user(id: UserId) -> Vec<u8> {
    key(USER, &[id.as_bytes()])
}

pub fn user_email(email: &str) -> Vec<u8> {
    key(USER_EMAIL, &[email.as_bytes()])
}

pub fn session(token_hash: &[u8]) -> Vec<u8> {
    key(SESSION, &[token_hash])
}

pub fn session_expiry(expires_at: TimestampMs, token_hash: &[u8]) -> Vec<u8> {
    key(SESSION_EXPIRY, &[&time_bytes(expires_at), token_hash])
}

pub fn user_sessions_prefix(user: UserId) -> Vec<u8> {
    key(USER_SESSION, &[user.as_bytes()])
}

pub fn user_session(user: UserId, created_at: TimestampMs, token_hash: &[u8]) -> Vec<u8> {
    key(
        USER_SESSION,
        &[user.as_bytes(), &time_bytes(created_at), token_hash],
    )
}

/// The token hash at the end of a [`user_session`] key.
pub fn user_session_token(key: &[u8]) -> Option<&[u8]> {
    key.get(1 + 16 + 8..).filter(|token| !token.is_empty())
}

/// The trailing 16 bytes of a key as a UUID-based id (index keys end with the id they point to).
pub fn trailing_uuid(key: &[u8]) -> Option<uuid::Uuid> {
    let start = key.len().checked_sub(16)?;
    uuid::Uuid::from_slice(&key[start..]).ok()
}
