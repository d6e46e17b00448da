//! Leader housekeeping: closing due auctions and purging expired records, both bounded per
//! command so one log entry never does unbounded work. The leader proposes another tick while
//! work remains (see `query::next_due_end_time`).

use crate::ctx::{load, save, Ctx, OpResult};
use crate::error::Error;
use crate::ids::{AuctionId, TimestampMs};
use crate::keys;
use crate::kv::{KvStore, StoreError};
use crate::model::{Auction, Phase, Session};
use crate::outcome::Outcome;

/// Most auctions one tick closes.
pub const CLOSE_BATCH_AUCTIONS_MAX: usize = 64;
/// Most expired records of each kind one tick, or one purge on the write path, purges.
pub const PURGE_BATCH_RECORDS_MAX: usize = 1_024;
/// Least time between two purges of de-duplication records on the write path: a busy group
/// scans the expiry index at most ten times a second instead of once per write, and still
/// purges up to 10 k records a second.
pub const DEDUP_PURGE_INTERVAL_MS: TimestampMs = 100;

pub(crate) fn tick<S: KvStore>(ctx: &mut Ctx<'_, S>) -> OpResult {
    let closed = if ctx.group == crate::command::META_GROUP {
        0
    } else {
        close_due(ctx, CLOSE_BATCH_AUCTIONS_MAX)?
    };
    let mut purged = purge_expired_dedup(ctx.kv, ctx.now, PURGE_BATCH_RECORDS_MAX)?;
    purged += purge_expired_sessions(ctx.kv, ctx.now, PURGE_BATCH_RECORDS_MAX)?;
    Ok(Outcome::Ticked { closed, purged })
}

/// Closes up to `max` auctions whose end time is at or before now, earliest first.
fn close_due<S: KvStore>(ctx: &mut Ctx<'_, S>, max: usize) -> Result<u32, Error> {
    let due = ctx.kv.scan(&[keys::END_INDEX], None, max)?;
    let mut closed = 0;
    for (key, _) in due {
        let end =
            keys::time_at(&key, 1).ok_or_else(|| StoreError("corrupt end index key".to_owned()))?;
        if end > ctx.now {
            break;
        }
        let id = keys::trailing_uuid(&key)
            .ok_or_else(|| StoreError("corrupt end index key".to_owned()))?;
        let mut auction: Auction = ctx
            .load(&keys::auction(AuctionId(id)))?
            .ok_or_else(|| StoreError(format!("end index names missing auction {id}")))?;
        let phase = if auction.high_bidder().is_some() && auction.reserve_met() {
            Phase::Sold
        } else {
            Phase::Unsold
        };
        crate::auction::finish(ctx, &mut auction, phase)?;
        closed += 1;
    }
    Ok(closed)
}

/// Deletes up to `max` de-duplication records that expired at or before `now`.
pub fn purge_expired_dedup(
    kv: &mut impl KvStore,
    now: TimestampMs,
    max: usize,
) -> Result<u32, StoreError> {
    purge_expired(kv, keys::DEDUP_EXPIRY, keys::dedup, now, max)
}

/// The write path's purge, after a client write recorded a de-duplication record that expires
/// at `recorded_expiry`: when a purge is due, deletes up to [`PURGE_BATCH_RECORDS_MAX`]
/// expired records and stores when the next one is due (the earliest remaining expiry, but no
/// sooner than [`DEDUP_PURGE_INTERVAL_MS`] from now); otherwise only lowers the due time if the
/// new record expires before it. Records are kept at least their retention either way.
pub fn purge_dedup_when_due(
    kv: &mut impl KvStore,
    now: TimestampMs,
    recorded_expiry: TimestampMs,
) -> Result<u32, StoreError> {
    let due: Option<TimestampMs> = load(&*kv, keys::DEDUP_PURGE)?;
    if let Some(due) = due.filter(|due| now < *due) {
        if recorded_expiry < due {
            save(kv, keys::DEDUP_PURGE, &recorded_expiry)?;
        }
        return Ok(0);
    }
    let (purged, next_expiry) = purge_expired_upto(
        kv,
        keys::DEDUP_EXPIRY,
        keys::dedup,
        now,
        PURGE_BATCH_RECORDS_MAX,
    )?;
    let next_due = next_expiry.map_or(TimestampMs::MAX, |next| {
        next.max(now.saturating_add(DEDUP_PURGE_INTERVAL_MS))
    });
    save(kv, keys::DEDUP_PURGE, &next_due)?;
    Ok(purged)
}

/// Deletes up to `max` sessions that expired at or before `now`.
pub fn purge_expired_sessions(
    kv: &mut impl KvStore,
    now: TimestampMs,
    max: usize,
) -> Result<u32, StoreError> {
    // A session's per-user index entry is named by the session record: drop it first.
    for (key, _) in kv.scan(&[keys::SESSION_EXPIRY], None, max)? {
        let token_hash = key.get(1 + 8..).unwrap_or_default();
        if keys::time_at(&key, 1).is_none_or(|expires_at| expires_at > now) {
            break;
        }
        if let Some(session) = load::<Session>(&*kv, &keys::session(token_hash))? {
            let index = keys::user_session(session.user_id, session.created_at, token_hash);
            kv.delete(&index)?;
        }
    }
    purge_expired(kv, keys::SESSION_EXPIRY, keys::session, now, max)
}

/// Walks an expiry index `[tag][expires at][record id]` in time order and deletes, up to `max`,
/// each expired index entry with the record `record_key(record id)` it points to.
pub fn purge_expired(
    kv: &mut impl KvStore,
    expiry_tag: u8,
    record_key: fn(&[u8]) -> Vec<u8>,
    now: TimestampMs,
    max: usize,
) -> Result<u32, StoreError> {
    purge_expired_upto(kv, expiry_tag, record_key, now, max).map(|(purged, _)| purged)
}

/// [`purge_expired`], also returning the expiry of the first entry it left in the index (`None`
/// when the index is now empty).
fn purge_expired_upto(
    kv: &mut impl KvStore,
    expiry_tag: u8,
    record_key: fn(&[u8]) -> Vec<u8>,
    now: TimestampMs,
    max: usize,
) -> Result<(u32, Option<TimestampMs>), StoreError> {
    const RECORD_ID_OFFSET: usize = 1 + 8;
    let corrupt = || StoreError("corrupt expiry index key".to_owned());
    let entries = kv.scan(&[expiry_tag], None, max.saturating_add(1))?;
    let mut purged = 0;
    for (key, _) in entries {
        let expires_at = keys::time_at(&key, 1).ok_or_else(corrupt)?;
        if expires_at > now || purged as usize >= max {
            return Ok((purged, Some(expires_at)));
        }
        let record_id = key.get(RECORD_ID_OFFSET..).ok_or_else(corrupt)?;
        kv.delete(&record_key(record_id))?;
        kv.delete(&key)?;
        purged += 1;
    }
    Ok((purged, None))
}
