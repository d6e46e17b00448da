//! The per-auction event log: every `bid_placed`, `auction_extended` and `auction_ended` of an
//! auction is stored under `[V][auction][!seq]` with a per-auction sequence number 1, 2, 3, ...,
//! and only the latest [`AUCTION_LOG_EVENTS_MAX`] are kept. The log is ordinary group state:
//! replicated by the same commands, identical on every replica, part of every snapshot. It is
//! what lets an SSE stream resume after `Last-Event-ID` on any node.
//!
//! Why a log and not the data already stored: the bid history has the steps but neither the
//! bid's outcome (who sent it, whether they were winning, the end time it left) nor the
//! extensions (the end time is overwritten), so it cannot reproduce the events exactly.
//!
//! Bounded work: recording an event is one point read and one write of the auction's event head
//! (the latest sequence, kept under its own key so no scan is needed), one put and at most one
//! delete (the event that falls out of the window), so the window is always exactly the latest
//! [`AUCTION_LOG_EVENTS_MAX`] events.
//!
//! Not done yet: the log of a finished auction is kept as long as the auction (auctions are
//! never purged yet either).

use crate::ctx::{load, Ctx};
use crate::ids::{AuctionId, TimestampMs};
use crate::keys;
use crate::kv::{KvRead, KvStore, StoreError};
use crate::outcome::Event;

/// Events kept per auction; older ones are deleted as new ones are recorded.
pub const AUCTION_LOG_EVENTS_MAX: u64 = 1_000;

/// The sequence number of the latest event of `auction`, 0 before the first.
pub fn latest_seq(kv: &impl KvRead, auction: AuctionId) -> Result<u64, StoreError> {
    Ok(load(kv, &keys::auction_event_head(auction))?.unwrap_or(0))
}

/// Numbers, stores and emits an event of `auction`: `make` gets the new sequence number and the
/// effective time. Deletes the event that falls out of the kept window.
pub(crate) fn record<S: KvStore>(
    ctx: &mut Ctx<'_, S>,
    auction: AuctionId,
    make: impl FnOnce(u64, TimestampMs) -> Event,
) -> Result<(), StoreError> {
    let seq = latest_seq(&*ctx.kv, auction)? + 1;
    let event = make(seq, ctx.now);
    debug_assert_eq!(event.auction_seq(), Some((auction, seq)));
    ctx.save(&keys::auction_event(auction, seq), &event)?;
    ctx.save(&keys::auction_event_head(auction), &seq)?;
    if let Some(dropped) = seq.checked_sub(AUCTION_LOG_EVENTS_MAX) {
        if dropped > 0 {
            ctx.kv.delete(&keys::auction_event(auction, dropped))?;
        }
    }
    ctx.events.push(event);
    Ok(())
}
