//! Leader housekeeping: closing due auctions and purging expired records, both bounded per
//! command so one log entry never does unbounded work. The leader proposes another tick while
//! work remains (see `query::next_due_end_time`).

use crate::ctx::{Ctx, OpResult};
use crate::error::Error;
use crate::ids::{AuctionId, TimestampMs};
use crate::keys;
use crate::kv::{KvStore, StoreError};
use crate::model::{Auction, Phase};
use crate::outcome::Outcome;

/// Most auctions one tick closes.
pub const CLOSE_BATCH_AUCTIONS_MAX: usize = 64;
/// Most expired records of each kind one tick purges.
pub const PURGE_BATCH_RECORDS_MAX: usize = 1_024;

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

/// Deletes up to `max` sessions that expired at or before `now`.
pub fn purge_expired_sessions(
    kv: &mut impl KvStore,
    now: TimestampMs,
    max: usize,
) -> Result<u32, StoreError> {
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
    const RECORD_ID_OFFSET: usize = 1 + 8;
    let expired = kv.scan(&[expiry_tag], None, max)?;
    let mut purged = 0;
    for (key, _) in expired {
        match keys::time_at(&key, 1) {
            Some(expires_at) if expires_at <= now => {}
            _ => break,
        }
        kv.delete(&record_key(&key[RECORD_ID_OFFSET..]))?;
        kv.delete(&key)?;
        purged += 1;
    }
    Ok(purged)
}
