//! Bids, proxy bids and buy now on one auction.
//!
//! The checks run in the order of RULES.md, rule 14 (auction found, active at the effective
//! time, bidder not the seller, bidder not banned, amount well-formed, then the price rules of
//! `pricing`). An accepted bid records its steps in the history, may extend the end
//! (anti-sniping), indexes the bidder and notifies the outbid bidder and the watchers.

use std::collections::BTreeSet;

use crate::ctx::{Ctx, OpResult};
use crate::error::Rejection;
use crate::ids::{AuctionId, UserId};
use crate::keys;
use crate::kv::{KvStore, StoreError};
use crate::model::{Auction, BidStep, NotificationKind, Phase};
use crate::money::Money;
use crate::outcome::{BidOutcome, Event, Outcome};
use crate::pricing::{self, BidKind, HighBid, Pricing, Step};

pub(crate) fn place<S: KvStore>(
    ctx: &mut Ctx<'_, S>,
    auction_id: AuctionId,
    bidder: UserId,
    kind: BidKind,
    amount_text: &str,
) -> OpResult {
    let mut auction = super::load(ctx, auction_id)?;
    ensure_can_buy(ctx, &auction, bidder)?;
    let amount = amount(amount_text)?;
    let previous_high = auction.high_bidder();
    let placed = pricing::place(&auction.pricing, &auction.rules, bidder, kind, amount)?;
    auction.pricing = placed.pricing;
    let steps = record_steps(ctx, &mut auction, &placed.steps)?;
    let extended = !steps.is_empty() && maybe_extend(ctx, &mut auction)?;
    index_bidder(ctx, &auction, bidder)?;
    super::save(ctx, &auction)?;
    let outcome = bid_outcome(ctx, &auction, bidder, amount, steps);
    if !outcome.steps.is_empty() {
        let bid = outcome.clone();
        super::event_log::record(ctx, auction_id, |seq, ts| Event::BidPlaced {
            auction_id,
            seq,
            bid,
            ts,
        })?;
        notify_bid(ctx, &auction, bidder, previous_high, extended)?;
    }
    Ok(Outcome::Bid(outcome))
}

/// A bid's amount or maximum as the client sent it; refused as `INVALID_AMOUNT`. This is the
/// only rule of a bid that needs no state (`crate::shape` checks it before proposing).
pub fn amount(text: &str) -> Result<Money, Rejection> {
    Money::parse(text).map_err(|error| Rejection::InvalidAmount {
        reason: error.to_string(),
    })
}

/// Buy now: allowed while there is no bid or while the reserve is not met.
pub(crate) fn buy_now<S: KvStore>(
    ctx: &mut Ctx<'_, S>,
    auction_id: AuctionId,
    buyer: UserId,
) -> OpResult {
    let mut auction = super::load(ctx, auction_id)?;
    ensure_can_buy(ctx, &auction, buyer)?;
    let Some(price) = auction.buy_now_price else {
        return Err(unavailable("this auction has no buy-now price"));
    };
    if auction.bid_count > 0 && auction.reserve_met() {
        return Err(unavailable("bidding has met the reserve"));
    }
    if auction
        .pricing
        .price
        .is_some_and(|current| current >= price)
    {
        return Err(unavailable(
            "the current price has reached the buy-now price",
        ));
    }
    auction.pricing = Pricing {
        price: Some(price),
        high: Some(HighBid {
            bidder: buyer,
            max: price,
        }),
    };
    let step = Step {
        bidder: buyer,
        amount: price,
        is_proxy: false,
    };
    let steps = record_steps(ctx, &mut auction, &[step])?;
    index_bidder(ctx, &auction, buyer)?;
    let outcome = bid_outcome(ctx, &auction, buyer, price, steps);
    let bid = outcome.clone();
    super::event_log::record(ctx, auction_id, |seq, ts| Event::BidPlaced {
        auction_id,
        seq,
        bid,
        ts,
    })?;
    super::finish(ctx, &mut auction, Phase::Sold)?;
    Ok(Outcome::Bid(outcome))
}

fn unavailable(reason: &str) -> crate::error::Error {
    Rejection::BuyNowUnavailable {
        reason: reason.to_owned(),
    }
    .into()
}

/// Active at the effective time, not the seller, not banned.
fn ensure_can_buy<S: KvStore>(
    ctx: &Ctx<'_, S>,
    auction: &Auction,
    user: UserId,
) -> Result<(), crate::error::Error> {
    auction.ensure_active(ctx.now)?;
    if user == auction.seller_id {
        return Err(Rejection::SellerCannotBid.into());
    }
    super::ensure_not_banned(ctx, user)
}

/// Writes the steps into the history with their sequence numbers and time.
fn record_steps<S: KvStore>(
    ctx: &mut Ctx<'_, S>,
    auction: &mut Auction,
    steps: &[Step],
) -> Result<Vec<BidStep>, StoreError> {
    let mut recorded = Vec::with_capacity(steps.len());
    for step in steps {
        auction.bid_count += 1;
        let entry = BidStep {
            sequence: auction.bid_count,
            amount: step.amount,
            bidder_id: step.bidder,
            is_proxy: step.is_proxy,
            created_at: ctx.now,
            request_id: ctx.request_id,
        };
        ctx.save(&keys::history(auction.id, entry.sequence), &entry)?;
        recorded.push(entry);
    }
    Ok(recorded)
}

/// Anti-sniping: a step less than the window before the end moves the end to now + extension.
fn maybe_extend<S: KvStore>(
    ctx: &mut Ctx<'_, S>,
    auction: &mut Auction,
) -> Result<bool, StoreError> {
    let snipe = auction.anti_snipe;
    let extended_end = ctx.now.saturating_add(snipe.extension_ms);
    if !snipe.is_enabled()
        || auction.end_time - ctx.now >= snipe.window_ms
        || extended_end <= auction.end_time
    {
        return Ok(false);
    }
    super::set_end_time(ctx, auction, extended_end)?;
    Ok(true)
}

fn index_bidder<S: KvStore>(
    ctx: &mut Ctx<'_, S>,
    auction: &Auction,
    bidder: UserId,
) -> Result<(), StoreError> {
    ctx.kv.put(&keys::auction_bidder(auction.id, bidder), &[])?;
    ctx.kv.put(&keys::user_bid(bidder, auction.id), &[])
}

fn bid_outcome<S>(
    ctx: &Ctx<'_, S>,
    auction: &Auction,
    bidder: UserId,
    amount: Money,
    steps: Vec<BidStep>,
) -> BidOutcome {
    let high = auction
        .pricing
        .high
        .expect("an accepted bid leaves a high bidder");
    let current_price = auction
        .pricing
        .price
        .expect("an accepted bid leaves a price");
    BidOutcome {
        bid_id: ctx.request_id,
        auction_id: auction.id,
        bidder_id: bidder,
        winning: high.bidder == bidder,
        amount,
        current_price,
        high_bidder_id: high.bidder,
        end_time: auction.end_time,
        bid_count: auction.bid_count,
        steps,
    }
}

/// The previous high bidder hears they were outbid, watchers hear of the new bid, and everyone
/// concerned hears of an extension.
fn notify_bid<S: KvStore>(
    ctx: &mut Ctx<'_, S>,
    auction: &Auction,
    bidder: UserId,
    previous_high: Option<UserId>,
    extended: bool,
) -> Result<(), StoreError> {
    let price = auction
        .pricing
        .price
        .map(|price| price.to_string())
        .unwrap_or_default();
    let mut told = BTreeSet::from([bidder]);
    if let Some(previous) =
        previous_high.filter(|previous| Some(*previous) != auction.high_bidder())
    {
        if previous != bidder {
            let message = format!(
                "You were outbid on \"{}\"; the current price is {price}",
                auction.title
            );
            ctx.notify(previous, NotificationKind::Outbid, auction.id, message)?;
            told.insert(previous);
        }
    }
    let message = format!(
        "New bid on \"{}\"; the current price is {price}",
        auction.title
    );
    for watcher in super::watchers(ctx, auction.id)?.difference(&told) {
        ctx.notify(
            *watcher,
            NotificationKind::NewBid,
            auction.id,
            message.clone(),
        )?;
    }
    if extended {
        super::notify_extended(ctx, auction, &BTreeSet::new())?;
    }
    Ok(())
}
