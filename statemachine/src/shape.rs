//! The shape rules of a command: every refusal apply makes from the command alone (and the
//! time), without reading the group's state. The API runs [`check`] before it proposes a client
//! write, so that nothing apply would refuse for its shape is replicated (DESIGN.md,
//! "Security"); apply runs the very same functions again, in its own order, so the two cannot
//! drift.
//!
//! Each rule lives with the operation it belongs to ([`crate::auction::listing`] for listings
//! and edits, [`crate::auction::bid::amount`], [`crate::auction::admin`], [`crate::meta`]);
//! this module only says which rules a command is subject to.
//!
//! Apply reports some state before the shape (RULES.md: a bid on an unknown auction is
//! `AUCTION_NOT_FOUND` whatever its amount), so a shape refusal here is not always the answer a
//! client gets: the API asks the state machine which refusal comes first (a dry run on a
//! linearizable read, never replicated). Not checked here: rules that compare with the state
//! (an edit's prices against the auction's other prices, an extension against the current end)
//! and the fields a node makes itself (session tokens, ids).

use crate::auction::{admin, bid, images, listing};
use crate::command::Op;
use crate::error::Rejection;
use crate::ids::TimestampMs;
use crate::meta;

/// The first shape rule `op` breaks at `now`, if any.
pub fn check(op: &Op, now: TimestampMs) -> Result<(), Rejection> {
    match op {
        Op::CreateAuction(new) => listing::new_listing(new, now).map(drop),
        Op::UpdateAuction { changes, .. } => listing::check_edit(changes, now),
        Op::PlaceBid { amount, .. } => bid::amount(amount).map(drop),
        Op::PlaceProxyBid { max_amount, .. } => bid::amount(max_amount).map(drop),
        Op::AdminCancelAuction { reason, .. } => admin::check_cancel_reason(reason),
        Op::AddImage {
            auction_id, image, ..
        } => images::check_new_image(*auction_id, image),
        Op::OrderImages { order, .. } => images::check_order(order),
        Op::RegisterUser(new) => meta::check_new_user(new).map(drop),
        Op::BanUser { reason, .. } => meta::check_ban_reason(reason.as_deref()).map(drop),
        Op::CancelAuction { .. }
        | Op::BuyNow { .. }
        | Op::Watch { .. }
        | Op::Unwatch { .. }
        | Op::MarkNotificationRead { .. }
        | Op::RemoveImage { .. }
        | Op::AdminExtendAuction { .. }
        | Op::SyncBan { .. }
        | Op::CreateSession { .. }
        | Op::DeleteSession { .. }
        | Op::SetRole { .. }
        | Op::InitCluster { .. }
        | Op::Tick => Ok(()),
    }
}
