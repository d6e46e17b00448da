//! Creating an auction, and the seller's edit and cancel (allowed only before the first bid).
//! A banned user can do none of these (`403 USER_BANNED`, RULES.md rule 35).

use crate::command::{AuctionChanges, NewAuction};
use crate::ctx::{Ctx, OpResult};
use crate::error::{Error, Rejection};
use crate::ids::{AuctionId, UserId};
use crate::keys;
use crate::kv::KvStore;
use crate::model::{Auction, Phase};
use crate::outcome::Outcome;
use crate::pricing::Pricing;

use super::listing;

pub(crate) fn create<S: KvStore>(ctx: &mut Ctx<'_, S>, new: &NewAuction) -> OpResult {
    super::ensure_not_banned(ctx, new.seller_id)?;
    if ctx.kv.get(&keys::auction(new.auction_id))?.is_some() {
        return Err(Rejection::validation("id", "an auction with this id already exists").into());
    }
    let listing = listing::new_listing(new, ctx.now)?;
    let auction = Auction {
        id: new.auction_id,
        seller_id: new.seller_id,
        title: listing.title,
        description: listing.description,
        category: listing.category,
        rules: listing.rules,
        buy_now_price: listing.buy_now_price,
        start_time: listing.start_time,
        end_time: listing.end_time,
        original_end_time: listing.end_time,
        anti_snipe: listing.anti_snipe,
        phase: Phase::Open,
        pricing: Pricing::default(),
        bid_count: 0,
        created_at: ctx.now,
        closed_at: None,
    };
    super::save(ctx, &auction)?;
    ctx.kv
        .put(&keys::end_index(auction.end_time, auction.id), &[])?;
    ctx.kv
        .put(&keys::seller_auction(auction.seller_id, auction.id), &[])?;
    Ok(Outcome::Auction(Box::new(auction)))
}

/// Loads an auction its seller wants to change: it must be theirs, the seller not banned, open,
/// and without bids.
pub(super) fn load_for_seller<S: KvStore>(
    ctx: &Ctx<'_, S>,
    auction_id: AuctionId,
    actor: UserId,
) -> Result<Auction, Error> {
    let auction = super::load(ctx, auction_id)?;
    if auction.seller_id != actor {
        return Err(Rejection::forbidden("only the seller can change this auction").into());
    }
    super::ensure_not_banned(ctx, actor)?;
    match auction.phase {
        Phase::Cancelled => return Err(Rejection::AuctionCancelled.into()),
        Phase::Sold | Phase::Unsold => return Err(Rejection::AuctionEnded.into()),
        Phase::Open if ctx.now >= auction.end_time => return Err(Rejection::AuctionEnded.into()),
        Phase::Open => {}
    }
    if auction.bid_count > 0 {
        return Err(Rejection::AuctionHasBids.into());
    }
    Ok(auction)
}

pub(crate) fn update<S: KvStore>(
    ctx: &mut Ctx<'_, S>,
    auction_id: AuctionId,
    actor: UserId,
    changes: &AuctionChanges,
) -> OpResult {
    let mut auction = load_for_seller(ctx, auction_id, actor)?;
    let edited = listing::edited(&auction, changes, ctx.now)?;
    if edited.end_time != auction.end_time {
        super::set_end_time(ctx, &mut auction, edited.end_time)?;
    }
    super::save(ctx, &edited)?;
    Ok(Outcome::Auction(Box::new(edited)))
}

pub(crate) fn cancel<S: KvStore>(
    ctx: &mut Ctx<'_, S>,
    auction_id: AuctionId,
    actor: UserId,
) -> OpResult {
    let mut auction = load_for_seller(ctx, auction_id, actor)?;
    super::finish(ctx, &mut auction, Phase::Cancelled)?;
    Ok(Outcome::Auction(Box::new(auction)))
}
