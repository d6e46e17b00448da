//! The sequential model: the real state machine over a small in-memory store that holds one
//! auction (plus the shard-wide bans that affect it).
//!
//! A model state is a [`MemKv`]; a step clones it and applies one command with
//! [`StateMachine::apply`], so the model *is* the production rules, not a re-implementation.
//! The time of a step is the `effective_ts` the cluster reported for an `ok` write (the model
//! must then report the same effective time, which also forces effective times to be
//! non-decreasing along a linearization, as in a Raft log), the leader's stamp for an unknown
//! write when it was recorded, and otherwise the model's last applied time (the earliest time
//! the write could have taken effect).
//!
//! A model state keeps only what a later command reads: the auction, its end-index entry, the
//! clock, bans, the watch records and the de-duplication records of the request ids and
//! idempotency keys that recur in the part (a record is read only by a later command with the
//! same identity; keeping every record made states grow with the history and the search
//! quadratic). Bid history steps, notifications and listing indexes are written
//! and then dropped: no command reads them, and an outcome carries its own steps.
//!
//! Closing an auction is leader housekeeping (a `Tick`) that clients never invoke; the model
//! offers it as [`close`], a step the search may take once, at the earliest time it could have
//! happened (`max(end time, last applied time)`).
//!
//! Not done yet: an unknown write without a recorded stamp is tried at one time only (the last
//! time applied in its part, the earliest possible); if it really took effect later and a later
//! answer shows that time (a watch's `created_at`, an anti-sniping extension), the checker
//! reports a false violation, so harnesses should record the leader's stamp (`proposed_ts`)
//! whenever they can. The model's notification ids differ from the cluster's (they are minted
//! from a group-wide sequence), so outcomes that contain them are not modelled.

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeSet;
use std::hash::Hasher;

use auction_statemachine::ids::{AuctionId, TimestampMs};
use auction_statemachine::outcome::{Applied, Outcome};
use auction_statemachine::{
    keys, query, Command, KvRead, KvStore, MemKv, Op, Phase, Rejection, StateMachine, StoreError,
};

use crate::history::{describe_result, ObservedAuction, WriteRequest};

/// The group number the model runs as: any auction shard behaves the same.
pub const MODEL_GROUP: u32 = 1;

/// Records no later command reads, so the model drops them after every step: the bid history,
/// notifications, the audit log, and the user, seller, bidder and watcher indexes (read only to
/// list things or to address notifications).
const WRITE_ONLY_TAGS: [u8; 7] = [
    keys::HISTORY,
    keys::NOTIFICATION,
    keys::AUDIT,
    keys::USER_BID,
    keys::SELLER_AUCTION,
    keys::AUCTION_BIDDER,
    keys::AUCTION_WATCHER,
];
/// De-duplication records: read only when a request id or idempotency key comes back.
const DEDUP_TAGS: [u8; 2] = [keys::DEDUP, keys::DEDUP_EXPIRY];
/// Most records of one kind a model state holds; far above what one auction's history makes.
const MODEL_RECORDS_MAX: usize = 1 << 20;

/// Which de-duplication records a model keeps.
#[derive(Clone, Debug)]
enum DedupKept {
    All,
    /// The records of these identities ([`dedup_identity`]) only.
    Only(BTreeSet<Vec<u8>>),
}

/// The identity the state machine de-duplicates a write under: `[1] actor key` with an
/// idempotency key, `[2] request id` without. It mirrors the state machine's private
/// `DedupKey`; if that changes, a model keeps the wrong records and replays show up as false
/// violations (never as missed bugs), which the replay tests of this crate catch.
pub fn dedup_identity(write: &WriteRequest) -> Vec<u8> {
    match &write.idempotency_key {
        Some(key) => {
            let actor = write.op.actor().map(|user| user.0).unwrap_or_default();
            let mut bytes = vec![1u8];
            bytes.extend_from_slice(actor.as_bytes());
            bytes.extend_from_slice(key.as_bytes());
            bytes
        }
        None => {
            let mut bytes = vec![2u8];
            bytes.extend_from_slice(write.request_id.as_bytes());
            bytes
        }
    }
}

/// Offset of the identity in a de-duplication expiry key: the tag, then an 8-byte time.
const DEDUP_EXPIRY_IDENTITY_AT: usize = 9;

/// The model of one auction's shard.
#[derive(Clone, Debug)]
pub struct Model {
    machine: StateMachine,
    auction_id: AuctionId,
    dedup: DedupKept,
}

/// Why a step does not reproduce what the cluster answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch(pub String);

impl Model {
    /// A model that keeps de-duplication records (always sound).
    pub fn new(auction_id: AuctionId) -> Model {
        Model::with_dedup(auction_id, true)
    }

    /// A model that drops de-duplication records unless `keep_dedup`: sound when no two
    /// writes of the part share a request id or an idempotency key, and much smaller.
    pub fn with_dedup(auction_id: AuctionId, keep_dedup: bool) -> Model {
        let dedup = if keep_dedup {
            DedupKept::All
        } else {
            DedupKept::Only(BTreeSet::new())
        };
        Model {
            machine: StateMachine::new(MODEL_GROUP),
            auction_id,
            dedup,
        }
    }

    /// A model that keeps the de-duplication records of the identities that more than one of
    /// `writes` (the part's writes) have: sound, and as small as the part allows.
    pub fn for_writes<'w>(
        auction_id: AuctionId,
        writes: impl IntoIterator<Item = &'w WriteRequest>,
    ) -> Model {
        let mut seen = BTreeSet::new();
        let mut recurring = BTreeSet::new();
        for write in writes {
            let identity = dedup_identity(write);
            if !seen.insert(identity.clone()) {
                recurring.insert(identity);
            }
        }
        Model {
            machine: StateMachine::new(MODEL_GROUP),
            auction_id,
            dedup: DedupKept::Only(recurring),
        }
    }

    pub fn auction_id(&self) -> AuctionId {
        self.auction_id
    }

    fn apply(&self, state: &MemKv, command: &Command) -> Result<(MemKv, Applied), Mismatch> {
        let mut next = state.clone();
        let applied = self
            .machine
            .apply(&mut next, command)
            .map_err(store_mismatch)?;
        self.compact(&mut next).map_err(store_mismatch)?;
        Ok((next, applied))
    }

    /// Drops the records no later step reads, so states stay small and equal states compare
    /// equal however they were reached.
    fn compact(&self, state: &mut MemKv) -> Result<(), StoreError> {
        for tag in WRITE_ONLY_TAGS {
            for (key, _) in state.scan(&[tag], None, MODEL_RECORDS_MAX)? {
                state.delete(&key)?;
            }
        }
        let DedupKept::Only(kept) = &self.dedup else {
            return Ok(());
        };
        let identity_at = [1, DEDUP_EXPIRY_IDENTITY_AT];
        for (tag, at) in DEDUP_TAGS.into_iter().zip(identity_at) {
            for (key, _) in state.scan(&[tag], None, MODEL_RECORDS_MAX)? {
                let keep = key
                    .get(at..)
                    .is_some_and(|identity| kept.contains(identity));
                if !keep {
                    state.delete(&key)?;
                }
            }
        }
        Ok(())
    }

    /// Applies a write the cluster acknowledged; the model must give the same answer at the
    /// same effective time.
    pub fn apply_ok(
        &self,
        state: &MemKv,
        write: &WriteRequest,
        result: &Result<Outcome, Rejection>,
        effective_ts: TimestampMs,
    ) -> Result<MemKv, Mismatch> {
        let (next, applied) = self.apply(state, &write.command(effective_ts))?;
        if applied.effective_ts != effective_ts {
            return Err(Mismatch(format!(
                "the model's clock is already at {} > observed effective time {effective_ts}",
                applied.effective_ts
            )));
        }
        if &applied.result != result {
            return Err(Mismatch(format!(
                "model answered {} but the cluster answered {}",
                describe_result(&applied.result),
                describe_result(result)
            )));
        }
        Ok(next)
    }

    /// Applies a write whose fate is unknown, at its stamp or the earliest possible time; also
    /// says whether the model rejected it (then only the clock and de-duplication changed).
    pub fn apply_unknown(
        &self,
        state: &MemKv,
        write: &WriteRequest,
        proposed_ts: Option<TimestampMs>,
    ) -> Result<(MemKv, bool), Mismatch> {
        let ts_ms = match proposed_ts {
            Some(ts_ms) => ts_ms,
            None => last_applied_ts(state)?,
        };
        let (next, applied) = self.apply(state, &write.command(ts_ms))?;
        Ok((next, applied.result.is_err()))
    }

    /// Closes the auction as the leader's tick would, if it is still open.
    pub fn close(&self, state: &MemKv) -> Result<Option<MemKv>, Mismatch> {
        let Some(auction) = query::auction(state, self.auction_id).map_err(store_mismatch)? else {
            return Ok(None);
        };
        if auction.phase != Phase::Open {
            return Ok(None);
        }
        let ts_ms = auction.end_time.max(last_applied_ts(state)?);
        let tick = Command {
            ts_ms,
            request_id: auction_statemachine::RequestId(Default::default()),
            idempotency_key: None,
            op: Op::Tick,
        };
        Ok(Some(self.apply(state, &tick)?.0))
    }

    /// What a read at this state returns.
    pub fn observe(&self, state: &MemKv) -> Result<Option<ObservedAuction>, Mismatch> {
        let auction = query::auction(state, self.auction_id).map_err(store_mismatch)?;
        Ok(auction.as_ref().map(ObservedAuction::of))
    }

    /// Checks a read against this state.
    pub fn check_read(
        &self,
        state: &MemKv,
        observed: Option<&ObservedAuction>,
    ) -> Result<(), Mismatch> {
        let model = self.observe(state)?;
        let agrees = match (observed, model.as_ref()) {
            (None, None) => true,
            (Some(seen), Some(model)) => seen.agrees_with(model),
            _ => false,
        };
        if agrees {
            return Ok(());
        }
        Err(Mismatch(format!(
            "the read saw {} but the model holds {}",
            crate::history::describe_observed(observed),
            crate::history::describe_observed(model.as_ref())
        )))
    }
}

fn store_mismatch(error: StoreError) -> Mismatch {
    Mismatch(format!("the model's store failed: {error}"))
}

fn last_applied_ts(state: &MemKv) -> Result<TimestampMs, Mismatch> {
    Ok(query::machine_meta(state)
        .map_err(store_mismatch)?
        .last_applied_ts)
}

/// A 128-bit digest of a model state for memoization within one process: two SipHash digests
/// started from different prefixes (a false match needs both to collide). SipHash, not FNV:
/// hashing states is the search's hottest loop, and FNV goes a byte at a time.
pub fn state_hash(state: &MemKv) -> u128 {
    let mut one = DefaultHasher::new();
    let mut two = DefaultHasher::new();
    two.write_u64(0x9e37_79b9_7f4a_7c15);
    for (key, value) in state.iter() {
        for sip in [&mut one, &mut two] {
            sip.write_usize(key.len());
            sip.write(key);
            sip.write_usize(value.len());
            sip.write(value);
        }
    }
    (u128::from(one.finish()) << 64) | u128::from(two.finish())
}
