//! Checks of time and endings, for histories whose `time` field is real (simulated) time in
//! milliseconds and whose cluster stamps commands with clocks that may be skewed:
//! - [`check_effective_times`]: every acknowledged write took effect at an effective time within
//!   its operation's real-time window (invoke to completion, mapped to wall-clock time with
//!   [`TimingConfig::epoch_ms`]) widened on both sides by [`TimingConfig::skew_ms`]: a leader's
//!   stamp is its clock bounded by the majority's (`clock_skew_ms_max`), and a group's time never
//!   runs backwards, so no effective time can be further than that from when the write really
//!   happened (a retry answered by a replay carries the first attempt's time, so a write's
//!   window opens at the first invoke of its de-duplication identity);
//! - [`check_endings`]: replaying anti-sniping over each auction's final bid history from its
//!   original end gives, at every step, the end in force then: no step is at or after it, each
//!   acknowledged bid reported the end in force after its last step, and the replay ends at the
//!   auction's final end; a closed auction closed at or after that end (or by a purchase, at the
//!   purchase), no step is after the close, and its winner and price are those of the last step
//!   (sold only with a high bidder and the reserve met);
//! - [`check_closes_in_time`]: once the faults are healed, every auction closes within
//!   [`TimingConfig::close_within_ms`] of `max(end, heal)`.
//!
//! Not done yet: admin extensions and seller edits of the end time are not replayed (an auction
//! with either in the history is skipped by the replay); notifications are not compared with
//! closes.

use std::collections::BTreeMap;

use auction_statemachine::ids::{AuctionId, TimestampMs};
use auction_statemachine::outcome::Outcome;
use auction_statemachine::{Auction, BidStep, Phase};

use crate::checks::{end_changed, FinalAuction, FinalState};
use crate::history::{History, LogicalTime, OkValue, OpRecord, OpStatus, Operation};
use crate::model::dedup_identity;
use crate::report::CheckOutcome;

/// How a history's times relate to the cluster's clocks, and the bounds the timing checks use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimingConfig {
    /// The wall-clock time (ms since the Unix epoch, the unit of stamps) at history time 0.
    pub epoch_ms: TimestampMs,
    /// How far an effective time may be from the real time of its operation: the cluster's
    /// `clock_skew_ms_max` plus the error of its view of the majority's clocks.
    pub skew_ms: i64,
    /// History time at which the last fault was healed.
    pub healed_at: LogicalTime,
    /// History time at which the final state was read.
    pub observed_at: LogicalTime,
    /// Longest an auction may stay open after `max(end, heal)`.
    pub close_within_ms: i64,
}

impl TimingConfig {
    fn wall_ms(&self, time: LogicalTime) -> TimestampMs {
        self.epoch_ms
            .saturating_add(i64::try_from(time).unwrap_or(i64::MAX))
    }
}

/// Every acknowledged write's effective time lies in its real-time window widened by the skew.
pub fn check_effective_times(
    history: &History,
    records: &[OpRecord],
    config: &TimingConfig,
) -> CheckOutcome {
    let mut outcome = CheckOutcome::new("effective times in real time");
    let time_of = |index: usize| history.events().get(index).map(|event| event.time);
    // A retry may be answered with the first attempt's record (a replay), whose time is that
    // of the first attempt: a write's window opens at the first invoke of its identity.
    let mut first_invoked: BTreeMap<Vec<u8>, LogicalTime> = BTreeMap::new();
    for record in records {
        if let (Operation::Write(write), Some(time)) =
            (&record.operation, time_of(record.invoke_index))
        {
            first_invoked.entry(dedup_identity(write)).or_insert(time);
        }
    }
    for record in records {
        let (Operation::Write(write), OpStatus::Ok(OkValue::Write { effective_ts, .. })) =
            (&record.operation, &record.status)
        else {
            continue;
        };
        let (Some(invoked), Some(completed)) = (
            first_invoked.get(&dedup_identity(write)).copied(),
            record.complete_index.and_then(time_of),
        ) else {
            continue;
        };
        outcome.checked += 1;
        let earliest = config.wall_ms(invoked).saturating_sub(config.skew_ms);
        let latest = config.wall_ms(completed).saturating_add(config.skew_ms);
        if *effective_ts < earliest || *effective_ts > latest {
            outcome.fail(format!(
                "{}: effective time {effective_ts} is outside its real-time window {}..{} \
                 widened by {} ms ({} ms {})",
                record.describe(),
                config.wall_ms(invoked),
                config.wall_ms(completed),
                config.skew_ms,
                if *effective_ts < earliest {
                    earliest - effective_ts
                } else {
                    effective_ts - latest
                },
                if *effective_ts < earliest {
                    "early"
                } else {
                    "late"
                },
            ));
        }
    }
    outcome
}

/// Whether the last step of `stored` is a purchase that closed the auction.
fn bought(auction: &Auction, steps: &[BidStep]) -> bool {
    let Some(last) = steps.last() else {
        return false;
    };
    auction.phase == Phase::Sold
        && auction.closed_at == Some(last.created_at)
        && auction.buy_now_price == Some(last.amount)
        && last.created_at < auction.end_time
}

/// The end in force after each step (by sequence), replaying anti-sniping from the original
/// end; reports steps at or after the end in force when they were recorded.
fn replay_ends(
    outcome: &mut CheckOutcome,
    auction_id: AuctionId,
    auction: &Auction,
    steps: &[BidStep],
) -> BTreeMap<u32, TimestampMs> {
    let purchase = bought(auction, steps).then_some(steps.len());
    let snipe = auction.anti_snipe;
    let mut end = auction.original_end_time;
    let mut ends = BTreeMap::new();
    for (position, step) in steps.iter().enumerate() {
        if step.created_at >= end {
            outcome.fail(format!(
                "auction {auction_id}: step #{} ({} by {}) recorded at {} is at or after the end \
                 in force then, {end}",
                step.sequence, step.amount, step.bidder_id, step.created_at
            ));
        }
        let is_purchase = purchase == Some(position + 1);
        if !is_purchase && snipe.is_enabled() && end - step.created_at < snipe.window_ms {
            end = end.max(step.created_at.saturating_add(snipe.extension_ms));
        }
        ends.insert(step.sequence, end);
    }
    if end != auction.end_time {
        outcome.fail(format!(
            "auction {auction_id}: replaying anti-sniping from the original end {} over {} steps \
             gives the end {end}, but the auction ends at {}",
            auction.original_end_time,
            steps.len(),
            auction.end_time
        ));
    }
    ends
}

/// A closed auction closed at or after its end (or by its purchase), after every step, with
/// the winner and price of its last step.
fn check_close(
    outcome: &mut CheckOutcome,
    auction_id: AuctionId,
    auction: &Auction,
    steps: &[BidStep],
) {
    if auction.phase == Phase::Open || auction.phase == Phase::Cancelled {
        return;
    }
    let Some(closed_at) = auction.closed_at else {
        outcome.fail(format!(
            "auction {auction_id}: {:?} without a close time",
            auction.phase
        ));
        return;
    };
    let purchase = bought(auction, steps);
    if closed_at < auction.end_time && !purchase {
        outcome.fail(format!(
            "auction {auction_id}: closed at {closed_at}, before its end {}",
            auction.end_time
        ));
    }
    if let Some(late) = steps.iter().find(|step| step.created_at > closed_at) {
        outcome.fail(format!(
            "auction {auction_id}: step #{} at {} is after the close at {closed_at}",
            late.sequence, late.created_at
        ));
    }
    let last = steps.last();
    let should_sell = purchase || (last.is_some() && auction.reserve_met());
    let sold = auction.phase == Phase::Sold;
    if sold != should_sell {
        outcome.fail(format!(
            "auction {auction_id}: closed {:?} with {} steps, last {:?}, reserve met {}",
            auction.phase,
            steps.len(),
            last.map(|step| step.amount),
            auction.reserve_met()
        ));
    }
    if sold {
        let winner = last.map(|step| step.bidder_id);
        let price = last.map(|step| step.amount);
        if auction.winner() != winner || auction.pricing.price != price {
            outcome.fail(format!(
                "auction {auction_id}: sold to {:?} at {:?}, but the last step is {:?} by {:?}",
                auction.winner(),
                auction.pricing.price,
                price,
                winner
            ));
        }
    }
}

/// Endings: the anti-sniping replay, steps before the end in force, the reported ends, closes.
pub fn check_endings(records: &[OpRecord], final_state: &FinalState) -> CheckOutcome {
    let mut outcome = CheckOutcome::new("endings");
    // A replay of anti-sniping cannot follow a seller's edit or an admin's extension.
    let skipped = end_changed(records, true);
    let mut replayed: BTreeMap<AuctionId, BTreeMap<u32, TimestampMs>> = BTreeMap::new();
    for (auction_id, stored) in &final_state.auctions {
        let FinalAuction {
            auction: Some(auction),
            steps,
            truncated: false,
        } = stored
        else {
            continue;
        };
        if skipped.contains(auction_id) {
            continue;
        }
        outcome.checked += 1;
        let ends = replay_ends(&mut outcome, *auction_id, auction, steps);
        check_close(&mut outcome, *auction_id, auction, steps);
        replayed.insert(*auction_id, ends);
    }
    for record in records {
        let OpStatus::Ok(OkValue::Write {
            result: Ok(Outcome::Bid(bid)),
            ..
        }) = &record.status
        else {
            continue;
        };
        let Some(last) = bid.steps.last() else {
            continue;
        };
        let Some(end) = replayed
            .get(&bid.auction_id)
            .and_then(|ends| ends.get(&last.sequence))
        else {
            continue;
        };
        if bid.end_time != *end {
            outcome.fail(format!(
                "{}: reported the end {} but the end in force after step #{} is {end}",
                record.describe(),
                bid.end_time,
                last.sequence
            ));
        }
    }
    outcome
}

/// Once healed, every auction closes within the bound after its end.
pub fn check_closes_in_time(final_state: &FinalState, config: &TimingConfig) -> CheckOutcome {
    let mut outcome = CheckOutcome::new("auctions close in time");
    let healed = config.wall_ms(config.healed_at);
    let observed = config.wall_ms(config.observed_at);
    for (auction_id, stored) in &final_state.auctions {
        let Some(auction) = &stored.auction else {
            continue;
        };
        let due = auction
            .end_time
            .max(healed)
            .saturating_add(config.close_within_ms);
        outcome.checked += 1;
        match (auction.phase, auction.closed_at) {
            (Phase::Open, _) if observed > due => outcome.fail(format!(
                "auction {auction_id}: still open at {observed}, though it ended at {} and the \
                 faults were healed at {healed} (due to close by {due})",
                auction.end_time
            )),
            // A stamp may be up to the skew ahead of the real time of the close.
            (Phase::Sold | Phase::Unsold, Some(closed_at))
                if closed_at > due.saturating_add(config.skew_ms) =>
            {
                outcome.fail(format!(
                    "auction {auction_id}: closed at {closed_at}, after {due}: it ended at {} \
                     and the faults were healed at {healed}",
                    auction.end_time
                ))
            }
            _ => {}
        }
    }
    outcome
}

#[cfg(test)]
mod tests;
