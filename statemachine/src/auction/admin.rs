//! Admin actions on auctions (cancel or extend any open auction) and the shard copy of bans.
//!
//! The caller (the API) has checked that the actor is an admin: roles live in the meta group.
//! A banned admin is refused here too (`USER_BANNED`), from this shard's copy of the ban.
//! Each action is written to this shard's audit log in the same command, so an action can never
//! happen without its audit entry.

use std::collections::BTreeSet;

use crate::ctx::{Ctx, OpResult};
use crate::error::Rejection;
use crate::ids::{AuctionId, TimestampMs, UserId};
use crate::keys;
use crate::kv::KvStore;
use crate::model::Phase;
use crate::outcome::Outcome;
use crate::time::format_rfc3339;

use super::listing::AUCTION_DURATION_MS_MAX;

pub const CANCEL_REASON_CHARS_MAX: usize = 500;

/// The reason an admin gives for a cancellation: at most [`CANCEL_REASON_CHARS_MAX`].
pub fn check_cancel_reason(reason: &str) -> Result<(), Rejection> {
    if reason.chars().count() > CANCEL_REASON_CHARS_MAX {
        return Err(Rejection::validation(
            "reason",
            format!("must be at most {CANCEL_REASON_CHARS_MAX} characters"),
        ));
    }
    Ok(())
}

pub(crate) fn cancel<S: KvStore>(
    ctx: &mut Ctx<'_, S>,
    auction_id: AuctionId,
    admin: UserId,
    reason: &str,
) -> OpResult {
    check_cancel_reason(reason)?;
    super::ensure_not_banned(ctx, admin)?;
    let mut auction = super::load(ctx, auction_id)?;
    match auction.phase {
        Phase::Cancelled => return Err(Rejection::AuctionCancelled.into()),
        Phase::Sold | Phase::Unsold => return Err(Rejection::AuctionEnded.into()),
        Phase::Open => {}
    }
    super::finish(ctx, &mut auction, Phase::Cancelled)?;
    ctx.audit(
        admin,
        "auction.cancel",
        auction_id.to_string(),
        reason.trim().to_owned(),
    )?;
    Ok(Outcome::Auction(Box::new(auction)))
}

/// Moves the end of an open, not yet ended auction later (the original end is kept).
pub(crate) fn extend<S: KvStore>(
    ctx: &mut Ctx<'_, S>,
    auction_id: AuctionId,
    admin: UserId,
    end_time: TimestampMs,
) -> OpResult {
    super::ensure_not_banned(ctx, admin)?;
    let mut auction = super::load(ctx, auction_id)?;
    auction
        .ensure_active(ctx.now)
        .or_else(|rejection| match rejection {
            Rejection::AuctionNotStarted => Ok(()),
            other => Err(other),
        })?;
    if end_time <= auction.end_time {
        return Err(
            Rejection::validation("endTime", "must be later than the current end time").into(),
        );
    }
    if end_time - auction.start_time > AUCTION_DURATION_MS_MAX {
        return Err(Rejection::validation("endTime", "the auction may run at most 90 days").into());
    }
    let previous = auction.end_time;
    super::set_end_time(ctx, &mut auction, end_time)?;
    super::save(ctx, &auction)?;
    super::notify_extended(ctx, &auction, &BTreeSet::new())?;
    let detail = format!(
        "end time {} -> {}",
        format_rfc3339(previous),
        format_rfc3339(end_time)
    );
    ctx.audit(admin, "auction.extend", auction_id.to_string(), detail)?;
    Ok(Outcome::Auction(Box::new(auction)))
}

pub(crate) fn sync_ban<S: KvStore>(ctx: &mut Ctx<'_, S>, user: UserId, banned: bool) -> OpResult {
    let key = keys::shard_ban(user);
    if banned {
        ctx.kv.put(&key, &[])?;
    } else {
        ctx.kv.delete(&key)?;
    }
    Ok(Outcome::Done)
}
