//! The bidding rules of RULES.md (rules 11 to 19) as one pure function over an auction's price
//! state.
//!
//! [`place`] takes the price state (current price, high bidder and the high bidder's maximum),
//! the auction's price rules and one bid, and returns the new price state plus the *steps* the
//! bid caused, each one entry of the bid history. It knows nothing of time, storage, sellers or
//! bans: the caller checks those first (see `auction::bid`). Keeping this pure makes the rules
//! easy to read against the spec and to test exhaustively.
//!
//! Invariant kept here: only the high bidder may hold a maximum above the current price, so the
//! state is three values however many bids an auction has.

use serde::{Deserialize, Serialize};

use crate::error::Rejection;
use crate::ids::UserId;
use crate::money::{Increment, Money};

/// The high bidder and the most they are willing to pay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HighBid {
    pub bidder: UserId,
    pub max: Money,
}

/// The price state of one auction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pricing {
    /// `None` before the first bid.
    pub price: Option<Money>,
    pub high: Option<HighBid>,
}

/// The seller's price rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceRules {
    pub starting: Money,
    pub reserve: Option<Money>,
    pub increment: Increment,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BidKind {
    /// Bid exactly this amount.
    Manual,
    /// Bid as little as needed, up to this maximum.
    Proxy,
}

/// One entry of the bid history, before it gets its sequence number and time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    pub bidder: UserId,
    pub amount: Money,
    pub is_proxy: bool,
}

/// What one accepted bid did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    pub pricing: Pricing,
    /// In strictly increasing amount order; empty when the high bidder only raised a maximum.
    pub steps: Vec<Step>,
}

impl PriceRules {
    /// `startingPrice` with no bids, else `currentPrice + increment(currentPrice)`.
    pub fn minimum_bid(&self, price: Option<Money>) -> Money {
        match price {
            None => self.starting,
            Some(price) => price.plus(self.increment.at(price)),
        }
    }

    /// The reserve is met when there is no reserve or the price has reached it.
    pub fn reserve_met(&self, price: Option<Money>) -> bool {
        match (self.reserve, price) {
            (None, _) => true,
            (Some(reserve), Some(price)) => price >= reserve,
            (Some(_), None) => false,
        }
    }

    fn above(&self, amount: Money) -> Money {
        amount.plus(self.increment.at(amount))
    }
}

/// Applies one bid of `amount` by `bidder`.
pub fn place(
    state: &Pricing,
    rules: &PriceRules,
    bidder: UserId,
    kind: BidKind,
    amount: Money,
) -> Result<Placed, Rejection> {
    let minimum = rules.minimum_bid(state.price);
    if amount < minimum {
        return Err(Rejection::BidTooLow {
            current_bid: state.price,
            minimum_bid: minimum,
        });
    }
    let mut steps = Vec::with_capacity(3);
    let high = match (kind, state.high) {
        (BidKind::Manual, Some(high)) if high.bidder == bidder => {
            return Err(Rejection::AlreadyHighBidder);
        }
        (BidKind::Proxy, Some(high)) if high.bidder == bidder => {
            if amount <= high.max {
                return Err(Rejection::MaximumNotRaised {
                    current_max: high.max,
                });
            }
            HighBid {
                bidder,
                max: amount,
            }
        }
        (BidKind::Manual, None) => {
            steps.push(Step {
                bidder,
                amount,
                is_proxy: false,
            });
            HighBid {
                bidder,
                max: amount,
            }
        }
        (BidKind::Proxy, None) => {
            steps.push(Step {
                bidder,
                amount: rules.starting,
                is_proxy: true,
            });
            HighBid {
                bidder,
                max: amount,
            }
        }
        (kind, Some(holder)) => challenge(state, rules, holder, bidder, kind, amount, &mut steps),
    };
    let mut price = steps.last().map(|step| step.amount).or(state.price);
    maybe_jump_to_reserve(rules, high, &mut price, &mut steps);
    assert_steps_increase(state.price, &steps);
    Ok(Placed {
        pricing: Pricing {
            price,
            high: Some(high),
        },
        steps,
    })
}

/// A bid by someone other than the high bidder `holder`; returns the new high bid.
fn challenge(
    state: &Pricing,
    rules: &PriceRules,
    holder: HighBid,
    bidder: UserId,
    kind: BidKind,
    amount: Money,
    steps: &mut Vec<Step>,
) -> HighBid {
    let is_proxy = kind == BidKind::Proxy;
    let holder_has_headroom = state.price.is_none_or(|price| holder.max > price);
    if amount > holder.max {
        if holder_has_headroom {
            steps.push(Step {
                bidder: holder.bidder,
                amount: holder.max,
                is_proxy: true,
            });
        }
        let step_to = match kind {
            BidKind::Manual => amount,
            BidKind::Proxy => rules
                .minimum_bid(state.price)
                .max(amount.min(rules.above(holder.max))),
        };
        steps.push(Step {
            bidder,
            amount: step_to,
            is_proxy,
        });
        HighBid {
            bidder,
            max: amount,
        }
    } else if amount < holder.max {
        steps.push(Step {
            bidder,
            amount,
            is_proxy,
        });
        let answer = holder.max.min(rules.above(amount));
        steps.push(Step {
            bidder: holder.bidder,
            amount: answer,
            is_proxy: true,
        });
        holder
    } else {
        // A tie goes to the earlier maximum: the holder's proxy meets the amount.
        steps.push(Step {
            bidder: holder.bidder,
            amount,
            is_proxy: true,
        });
        holder
    }
}

/// After any accepted bid, a maximum at or above the reserve lifts the price to the reserve.
fn maybe_jump_to_reserve(
    rules: &PriceRules,
    high: HighBid,
    price: &mut Option<Money>,
    steps: &mut Vec<Step>,
) {
    let Some(reserve) = rules.reserve else { return };
    let below_reserve = price.is_some_and(|price| price < reserve);
    if high.max >= reserve && below_reserve {
        steps.push(Step {
            bidder: high.bidder,
            amount: reserve,
            is_proxy: true,
        });
        *price = Some(reserve);
    }
}

fn assert_steps_increase(previous: Option<Money>, steps: &[Step]) {
    let mut last = previous;
    for step in steps {
        assert!(
            last.is_none_or(|last| step.amount > last),
            "bid history amounts must strictly increase: {last:?} then {:?}",
            step.amount
        );
        last = Some(step.amount);
    }
}
