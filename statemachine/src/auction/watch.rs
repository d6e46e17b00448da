//! Watchlists and reading notifications.
//!
//! A watch is stored twice, under the auction (to fan notifications out) and under the user
//! (for "my watchlist"); both keys change in the same command so they never disagree. The
//! auction also keeps its number of watchers, so that a bid on an unwatched auction (the common
//! case) reads one key instead of scanning the watcher range.

use crate::ctx::{Ctx, OpResult};
use crate::error::Rejection;
use crate::ids::{parse_minted_uuid, AuctionId, MintedKind, NotificationId, UserId};
use crate::keys;
use crate::kv::KvStore;
use crate::model::{Notification, Watch};
use crate::outcome::Outcome;

/// Watching twice keeps the first watch.
pub(crate) fn watch<S: KvStore>(
    ctx: &mut Ctx<'_, S>,
    auction_id: AuctionId,
    user: UserId,
) -> OpResult {
    super::load(ctx, auction_id)?;
    if let Some(existing) = ctx.load::<Watch>(&keys::user_watch(user, auction_id))? {
        return Ok(Outcome::Watch(existing));
    }
    let watch = Watch {
        auction_id,
        user_id: user,
        created_at: ctx.now,
    };
    ctx.save(&keys::user_watch(user, auction_id), &watch)?;
    ctx.kv.put(&keys::auction_watcher(auction_id, user), &[])?;
    let count = super::watch_count(ctx, auction_id)?;
    ctx.save(&keys::auction_watch_count(auction_id), &(count + 1))?;
    Ok(Outcome::Watch(watch))
}

/// Unwatching an auction that is not watched succeeds and changes nothing.
pub(crate) fn unwatch<S: KvStore>(
    ctx: &mut Ctx<'_, S>,
    auction_id: AuctionId,
    user: UserId,
) -> OpResult {
    if ctx.kv.get(&keys::user_watch(user, auction_id))?.is_none() {
        return Ok(Outcome::Unwatched { auction_id });
    }
    ctx.kv.delete(&keys::user_watch(user, auction_id))?;
    ctx.kv.delete(&keys::auction_watcher(auction_id, user))?;
    let count = super::watch_count(ctx, auction_id)?;
    ctx.save(
        &keys::auction_watch_count(auction_id),
        &count.saturating_sub(1),
    )?;
    Ok(Outcome::Unwatched { auction_id })
}

/// Marks one of the user's notifications read; reading it again keeps the first time.
pub(crate) fn mark_read<S: KvStore>(
    ctx: &mut Ctx<'_, S>,
    user: UserId,
    id: NotificationId,
) -> OpResult {
    let not_found = || Rejection::NotificationNotFound;
    let (group, sequence) =
        parse_minted_uuid(id.0, MintedKind::Notification).ok_or_else(not_found)?;
    if group != ctx.group {
        return Err(not_found().into());
    }
    let key = keys::notification(user, sequence);
    let mut notification: Notification = ctx.load(&key)?.ok_or_else(not_found)?;
    if notification.read_at.is_none() {
        notification.read_at = Some(ctx.now);
        ctx.save(&key, &notification)?;
    }
    Ok(Outcome::Notification(notification))
}
