//! Auction shard operations: lifecycle (create, edit, cancel), images, bidding and buy now, watches and
//! notifications, admin actions, the per-auction event log, and the shared helpers they use to load, index and finish
//! auctions and to fan notifications out.
//!
//! Not done yet: notifications fan out to at most [`NOTIFY_RECIPIENTS_MAX`] watchers and as many
//! bidders per event; an auction with more is notified partially (listing order by user id).

pub mod admin;
pub mod bid;
pub mod event_log;
pub mod images;
pub mod lifecycle;
pub mod listing;
pub mod watch;

use std::collections::BTreeSet;

use crate::ctx::Ctx;
use crate::error::{Error, Rejection};
use crate::ids::{AuctionId, TimestampMs, UserId};
use crate::keys;
use crate::kv::{KvStore, StoreError};
use crate::model::{Auction, NotificationKind, Phase};
use crate::outcome::Event;
use crate::time::format_rfc3339;

/// Most recipients of one kind (watchers or bidders) one event is fanned out to.
pub const NOTIFY_RECIPIENTS_MAX: usize = 1_000;

pub(crate) fn load<S: KvStore>(ctx: &Ctx<'_, S>, id: AuctionId) -> Result<Auction, Error> {
    ctx.load(&keys::auction(id))?
        .ok_or(Error::Rejected(Rejection::AuctionNotFound))
}

pub(crate) fn save<S: KvStore>(ctx: &mut Ctx<'_, S>, auction: &Auction) -> Result<(), StoreError> {
    ctx.save(&keys::auction(auction.id), auction)
}

/// Moves the end time and its index entry.
pub(crate) fn set_end_time<S: KvStore>(
    ctx: &mut Ctx<'_, S>,
    auction: &mut Auction,
    end_time: TimestampMs,
) -> Result<(), StoreError> {
    ctx.kv
        .delete(&keys::end_index(auction.end_time, auction.id))?;
    auction.end_time = end_time;
    ctx.kv.put(&keys::end_index(end_time, auction.id), &[])
}

/// Distinct users under a `[tag][auction id][user id]` prefix, at most [`NOTIFY_RECIPIENTS_MAX`].
fn users_under<S: KvStore>(
    ctx: &Ctx<'_, S>,
    prefix: &[u8],
) -> Result<BTreeSet<UserId>, StoreError> {
    let pairs = ctx.kv.scan(prefix, None, NOTIFY_RECIPIENTS_MAX)?;
    Ok(pairs
        .iter()
        .filter_map(|(key, _)| keys::trailing_uuid(key))
        .map(UserId)
        .collect())
}

pub(crate) fn watchers<S: KvStore>(
    ctx: &Ctx<'_, S>,
    id: AuctionId,
) -> Result<BTreeSet<UserId>, StoreError> {
    if watch_count(ctx, id)? == 0 {
        return Ok(BTreeSet::new());
    }
    users_under(ctx, &keys::auction_watchers_prefix(id))
}

/// How many users watch the auction (0 when none ever did).
pub(crate) fn watch_count<S: KvStore>(ctx: &Ctx<'_, S>, id: AuctionId) -> Result<u64, StoreError> {
    Ok(ctx.load(&keys::auction_watch_count(id))?.unwrap_or(0))
}

pub(crate) fn bidders<S: KvStore>(
    ctx: &Ctx<'_, S>,
    id: AuctionId,
) -> Result<BTreeSet<UserId>, StoreError> {
    users_under(ctx, &keys::auction_bidders_prefix(id))
}

pub(crate) fn ensure_not_banned<S: KvStore>(ctx: &Ctx<'_, S>, user: UserId) -> Result<(), Error> {
    match ctx.kv.get(&keys::shard_ban(user))? {
        Some(_) => Err(Rejection::UserBanned.into()),
        None => Ok(()),
    }
}

/// Tells watchers and bidders (except `skip`) that the end moved.
pub(crate) fn notify_extended<S: KvStore>(
    ctx: &mut Ctx<'_, S>,
    auction: &Auction,
    skip: &BTreeSet<UserId>,
) -> Result<(), StoreError> {
    let mut recipients = watchers(ctx, auction.id)?;
    recipients.extend(bidders(ctx, auction.id)?);
    let message = format!(
        "\"{}\" was extended and now ends at {}",
        auction.title,
        format_rfc3339(auction.end_time)
    );
    for user in recipients.difference(skip) {
        ctx.notify(
            *user,
            NotificationKind::AuctionExtended,
            auction.id,
            message.clone(),
        )?;
    }
    let end_time = auction.end_time;
    event_log::record(ctx, auction.id, |seq, ts| Event::AuctionExtended {
        auction_id: auction.id,
        seq,
        end_time,
        ts,
    })
}

/// Ends an open auction as sold, unsold or cancelled; notifies everyone concerned.
pub(crate) fn finish<S: KvStore>(
    ctx: &mut Ctx<'_, S>,
    auction: &mut Auction,
    phase: Phase,
) -> Result<(), StoreError> {
    assert_eq!(
        auction.phase,
        Phase::Open,
        "only an open auction can finish"
    );
    assert_ne!(phase, Phase::Open, "finishing must leave the open phase");
    ctx.kv
        .delete(&keys::end_index(auction.end_time, auction.id))?;
    if phase == Phase::Cancelled {
        // A cancelled auction keeps no images; the API's sweep then deletes their objects.
        ctx.kv.delete(&keys::auction_images(auction.id))?;
    }
    auction.phase = phase;
    auction.closed_at = Some(ctx.now);
    save(ctx, auction)?;
    notify_finished(ctx, auction)?;
    let status = auction.status_at(ctx.now);
    let winner_id = auction.winner();
    let final_price = winner_id.and(auction.pricing.price);
    event_log::record(ctx, auction.id, |seq, ts| Event::AuctionEnded {
        auction_id: auction.id,
        seq,
        status,
        winner_id,
        final_price,
        ts,
    })
}

fn notify_finished<S: KvStore>(ctx: &mut Ctx<'_, S>, auction: &Auction) -> Result<(), StoreError> {
    let title = &auction.title;
    let price = auction
        .pricing
        .price
        .map(|price| price.to_string())
        .unwrap_or_default();
    let bidders = bidders(ctx, auction.id)?;
    match (auction.phase, auction.winner()) {
        (Phase::Sold, Some(winner)) => {
            let won = format!("You won \"{title}\" for {price}");
            ctx.notify(winner, NotificationKind::AuctionWon, auction.id, won)?;
            let sold = format!("\"{title}\" sold for {price}");
            ctx.notify(
                auction.seller_id,
                NotificationKind::AuctionSold,
                auction.id,
                sold,
            )?;
            let lost = format!("\"{title}\" ended; it sold to another bidder for {price}");
            for user in bidders.iter().filter(|user| **user != winner) {
                ctx.notify(
                    *user,
                    NotificationKind::AuctionLost,
                    auction.id,
                    lost.clone(),
                )?;
            }
        }
        (Phase::Cancelled, _) => {
            let mut recipients = watchers(ctx, auction.id)?;
            recipients.extend(bidders);
            recipients.insert(auction.seller_id);
            let cancelled = format!("\"{title}\" was cancelled");
            for user in recipients {
                ctx.notify(
                    user,
                    NotificationKind::AuctionCancelled,
                    auction.id,
                    cancelled.clone(),
                )?;
            }
        }
        _ => {
            let unsold = format!("\"{title}\" ended without a sale");
            ctx.notify(
                auction.seller_id,
                NotificationKind::AuctionUnsold,
                auction.id,
                unsold,
            )?;
            let lost = format!("\"{title}\" ended without a sale (reserve not met)");
            for user in bidders {
                ctx.notify(
                    user,
                    NotificationKind::AuctionLost,
                    auction.id,
                    lost.clone(),
                )?;
            }
        }
    }
    Ok(())
}
