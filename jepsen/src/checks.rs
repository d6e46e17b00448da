//! Checks over the final cluster state and the reads of a run, besides linearizability:
//! - [`check_acknowledged_bids`]: no acknowledged bid is lost: every step an `ok` bid, proxy bid
//!   or purchase reported is in the final bid history, unchanged, at its position;
//! - [`check_no_duplicate_apply`]: no command is applied twice: one request's steps form one
//!   contiguous run with one timestamp, no more steps than its acknowledgement reported, and
//!   requests sharing an idempotency key leave steps from at most one of them;
//! - [`check_replicas_agree`]: the replicas of each group have the same key/value digest
//!   ([`replica_digest`], FNV-1a 64 over length-framed pairs, [`Fnv1a64::write_framed`]);
//! - [`check_invariants`]: history amounts strictly increase with positions 1..n, the price is
//!   the last amount and at most the high bidder's maximum, the bid count is the history length;
//!   reads ordered in real time never see the bid count or end time go down nor a closed auction
//!   reopen.
//!
//! The final state is read once into a [`FinalState`] (from one replica's store per shard) so
//! checks do not depend on a storage type.
//!
//! Not done yet: the digest depends on pair order (give dumps in key order, as `MemKv` and
//! RocksDB iterate), and replicas must have applied the same log prefix before they are compared;
//! end-time monotonicity is skipped for auctions whose seller edited the end time; the final
//! bid history is read up to [`BID_HISTORY_STEPS_MAX`] steps per auction.

use std::collections::{BTreeMap, BTreeSet};

use auction_statemachine::hash::Fnv1a64;
use auction_statemachine::ids::{AuctionId, GroupId, RequestId, TimestampMs, UserId};
use auction_statemachine::kv::KvRead;
use auction_statemachine::outcome::Outcome;
use auction_statemachine::query::{self, PAGE_ITEMS_MAX};
use auction_statemachine::{Auction, BidStep, Op, Phase, StoreError};

use crate::history::{OkValue, OpId, OpRecord, OpStatus, Operation};
use crate::report::CheckOutcome;

/// Most bid-history steps read per auction.
pub const BID_HISTORY_STEPS_MAX: usize = 100_000;
/// Most auctions [`FinalState::read_all`] reads from one store.
pub const AUCTIONS_MAX: usize = 100_000;

/// The digest of one replica's state of one Raft group.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplicaDigest {
    pub group: GroupId,
    pub replica: String,
    pub digest: u64,
    pub pairs: u64,
}

/// Digests a replica's key/value pairs of one group, given in key order.
pub fn replica_digest<K, V>(
    group: GroupId,
    replica: &str,
    pairs: impl IntoIterator<Item = (K, V)>,
) -> ReplicaDigest
where
    K: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    let mut hash = Fnv1a64::new();
    let mut count = 0u64;
    for (key, value) in pairs {
        hash.write_framed(key.as_ref());
        hash.write_framed(value.as_ref());
        count += 1;
    }
    ReplicaDigest {
        group,
        replica: replica.to_owned(),
        digest: hash.finish(),
        pairs: count,
    }
}

/// Within each group, replicas agree when all digests are equal; the replicas outside the
/// group's most common digest are named.
pub fn check_replicas_agree(digests: &[ReplicaDigest]) -> CheckOutcome {
    let mut outcome = CheckOutcome::new("replicas agree");
    outcome.checked = digests.len() as u64;
    let mut groups: BTreeMap<GroupId, BTreeMap<u64, Vec<&ReplicaDigest>>> = BTreeMap::new();
    for digest in digests {
        groups
            .entry(digest.group)
            .or_default()
            .entry(digest.digest)
            .or_default()
            .push(digest);
    }
    for (group, by_digest) in &groups {
        let Some(majority) = by_digest
            .iter()
            .max_by_key(|(_, members)| members.len())
            .map(|(digest, _)| *digest)
        else {
            continue;
        };
        let outliers = by_digest
            .iter()
            .filter(|(digest, _)| **digest != majority)
            .flat_map(|(_, members)| members.iter());
        for member in outliers {
            outcome.fail(format!(
                "group {group}: replica {} has digest {:016x} over {} pairs; the majority has \
                 {majority:016x}",
                member.replica, member.digest, member.pairs
            ));
        }
    }
    outcome
}

/// One auction as a replica stores it at the end of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinalAuction {
    pub auction: Option<Auction>,
    /// The bid history, oldest first.
    pub steps: Vec<BidStep>,
    /// True when the history was longer than [`BID_HISTORY_STEPS_MAX`] and was cut.
    pub truncated: bool,
}

/// The final state of the auctions of a run, gathered from one replica of each shard.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FinalState {
    pub auctions: BTreeMap<AuctionId, FinalAuction>,
}

impl FinalState {
    pub fn new() -> FinalState {
        FinalState::default()
    }

    /// Reads the named auctions that exist in `kv` (a shard's store).
    pub fn read_auctions(
        &mut self,
        kv: &impl KvRead,
        ids: impl IntoIterator<Item = AuctionId>,
    ) -> Result<(), StoreError> {
        for id in ids {
            let auction = query::auction(kv, id)?;
            let (steps, truncated) = read_history(kv, id)?;
            if auction.is_some() || !steps.is_empty() {
                self.auctions.insert(
                    id,
                    FinalAuction {
                        auction,
                        steps,
                        truncated,
                    },
                );
            }
        }
        Ok(())
    }

    /// Reads every auction in `kv` (up to [`AUCTIONS_MAX`]).
    pub fn read_all(&mut self, kv: &impl KvRead) -> Result<(), StoreError> {
        let mut ids = Vec::new();
        let mut after = None;
        // Each page holds at least one auction, so this ends within AUCTIONS_MAX pages.
        while ids.len() < AUCTIONS_MAX {
            let page = query::auctions(kv, after, PAGE_ITEMS_MAX)?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            ids.extend(page.iter().map(|auction| auction.id));
        }
        self.read_auctions(kv, ids)
    }
}

/// The bid history oldest first, and whether it was cut at [`BID_HISTORY_STEPS_MAX`].
fn read_history(kv: &impl KvRead, id: AuctionId) -> Result<(Vec<BidStep>, bool), StoreError> {
    let mut steps: Vec<BidStep> = Vec::new();
    let mut before = None;
    // Each page is newest first and non-empty, so this ends within the step bound.
    while steps.len() < BID_HISTORY_STEPS_MAX {
        let page = query::bid_history(kv, id, before, PAGE_ITEMS_MAX)?;
        let Some(last) = page.last() else {
            steps.reverse();
            return Ok((steps, false));
        };
        before = Some(last.sequence);
        steps.extend(page);
    }
    steps.reverse();
    Ok((steps, true))
}

/// The bid outcome of an acknowledged write, if it is one.
fn acknowledged_bid(record: &OpRecord) -> Option<&auction_statemachine::BidOutcome> {
    match &record.status {
        OpStatus::Ok(OkValue::Write {
            result: Ok(Outcome::Bid(bid)),
            ..
        }) => Some(bid),
        _ => None,
    }
}

/// (a) Every step an acknowledged bid reported is in the final history, unchanged.
pub fn check_acknowledged_bids(records: &[OpRecord], final_state: &FinalState) -> CheckOutcome {
    let mut outcome = CheckOutcome::new("no lost bids");
    for record in records {
        let Some(bid) = acknowledged_bid(record).filter(|bid| !bid.steps.is_empty()) else {
            continue;
        };
        outcome.checked += 1;
        let Some(stored) = final_state.auctions.get(&bid.auction_id) else {
            outcome.fail(format!(
                "op {}: acknowledged bid {} on auction {} but the auction is not in the final state",
                record.id, bid.bid_id, bid.auction_id
            ));
            continue;
        };
        for step in &bid.steps {
            let position = usize::try_from(step.sequence).unwrap_or(usize::MAX);
            let found = position.checked_sub(1).and_then(|i| stored.steps.get(i));
            if found == Some(step) {
                continue;
            }
            if stored.truncated {
                outcome.undecided(format!(
                    "auction {}: final history truncated; step #{} not checked",
                    bid.auction_id, step.sequence
                ));
                continue;
            }
            outcome.fail(format!(
                "op {}: acknowledged bid {} step #{} ({} by {}) is {} in the final history of {}",
                record.id,
                bid.bid_id,
                step.sequence,
                step.amount,
                step.bidder_id,
                found.map_or_else(
                    || "missing".to_owned(),
                    |other| format!(
                        "replaced by {} from request {}",
                        other.amount, other.request_id
                    )
                ),
                bid.auction_id
            ));
        }
    }
    outcome
}

/// (b) No command applied twice.
pub fn check_no_duplicate_apply(records: &[OpRecord], final_state: &FinalState) -> CheckOutcome {
    let mut outcome = CheckOutcome::new("no duplicate applies");
    let mut placed: BTreeMap<RequestId, BTreeSet<AuctionId>> = BTreeMap::new();
    for (auction_id, stored) in &final_state.auctions {
        outcome.checked += 1;
        let mut runs: BTreeMap<RequestId, Vec<&BidStep>> = BTreeMap::new();
        for step in &stored.steps {
            runs.entry(step.request_id).or_default().push(step);
        }
        for (request_id, steps) in &runs {
            placed.entry(*request_id).or_default().insert(*auction_id);
            check_run(&mut outcome, *auction_id, *request_id, steps);
        }
    }
    for (request_id, auctions) in &placed {
        if auctions.len() > 1 {
            outcome.fail(format!(
                "request {request_id} left bid steps in auctions {auctions:?}"
            ));
        }
    }
    check_acknowledged_step_counts(&mut outcome, records, final_state);
    check_idempotency_groups(&mut outcome, records, &placed);
    outcome
}

/// One request's steps: contiguous positions, one timestamp.
fn check_run(
    outcome: &mut CheckOutcome,
    auction_id: AuctionId,
    request_id: RequestId,
    steps: &[&BidStep],
) {
    let sequences: Vec<u32> = steps.iter().map(|step| step.sequence).collect();
    let contiguous = sequences.windows(2).all(|pair| pair[1] == pair[0] + 1);
    if !contiguous {
        outcome.fail(format!(
            "auction {auction_id}: request {request_id} appears at separate positions {sequences:?}: applied twice"
        ));
    }
    let times: BTreeSet<TimestampMs> = steps.iter().map(|step| step.created_at).collect();
    if times.len() > 1 {
        outcome.fail(format!(
            "auction {auction_id}: request {request_id} has steps at times {times:?}: applied twice"
        ));
    }
}

/// An acknowledged request has exactly the steps its acknowledgement reported.
fn check_acknowledged_step_counts(
    outcome: &mut CheckOutcome,
    records: &[OpRecord],
    final_state: &FinalState,
) {
    for record in records {
        let Some(bid) = acknowledged_bid(record) else {
            continue;
        };
        let Some(stored) = final_state.auctions.get(&bid.auction_id) else {
            continue;
        };
        let count = stored
            .steps
            .iter()
            .filter(|step| step.request_id == bid.bid_id)
            .count();
        if count > bid.steps.len() {
            outcome.fail(format!(
                "op {}: bid {} reported {} steps but the final history of {} has {count}: applied twice",
                record.id,
                bid.bid_id,
                bid.steps.len(),
                bid.auction_id
            ));
        }
    }
}

/// Requests sharing (actor, idempotency key) leave steps from one of them and answer one bid id.
fn check_idempotency_groups(
    outcome: &mut CheckOutcome,
    records: &[OpRecord],
    placed: &BTreeMap<RequestId, BTreeSet<AuctionId>>,
) {
    let mut groups: BTreeMap<(Option<UserId>, &str), Vec<&OpRecord>> = BTreeMap::new();
    for record in records {
        if let Operation::Write(write) = &record.operation {
            if let Some(key) = write.idempotency_key.as_deref() {
                groups
                    .entry((write.op.actor(), key))
                    .or_default()
                    .push(record);
            }
        }
    }
    for ((actor, key), members) in &groups {
        let applied: BTreeSet<RequestId> = members
            .iter()
            .filter_map(|record| match &record.operation {
                Operation::Write(write) => Some(write.request_id),
                Operation::Read { .. } => None,
            })
            .filter(|request_id| placed.contains_key(request_id))
            .collect();
        if applied.len() > 1 {
            outcome.fail(format!(
                "idempotency key {key:?} of {actor:?}: requests {applied:?} all left bid steps"
            ));
        }
        let answered: BTreeSet<RequestId> = members
            .iter()
            .filter_map(|record| acknowledged_bid(record).map(|bid| bid.bid_id))
            .collect();
        if answered.len() > 1 {
            outcome.fail(format!(
                "idempotency key {key:?} of {actor:?}: retries were answered with different bids {answered:?}"
            ));
        }
    }
}

/// (d) Invariants of the final state and of the reads.
pub fn check_invariants(records: &[OpRecord], final_state: &FinalState) -> CheckOutcome {
    let mut outcome = CheckOutcome::new("invariants");
    for (auction_id, stored) in &final_state.auctions {
        outcome.checked += 1;
        check_final_auction(&mut outcome, *auction_id, stored);
    }
    check_reads(&mut outcome, records);
    outcome
}

fn check_final_auction(outcome: &mut CheckOutcome, auction_id: AuctionId, stored: &FinalAuction) {
    let positions_ok =
        stored.steps.iter().enumerate().all(|(i, step)| {
            usize::try_from(step.sequence).is_ok_and(|sequence| sequence == i + 1)
        });
    if !positions_ok {
        outcome.fail(format!(
            "auction {auction_id}: history positions are not 1..n"
        ));
    }
    if let Some(pair) = stored
        .steps
        .windows(2)
        .find(|pair| pair[0].amount >= pair[1].amount)
    {
        outcome.fail(format!(
            "auction {auction_id}: history amounts do not increase: #{} {} then #{} {}",
            pair[0].sequence, pair[0].amount, pair[1].sequence, pair[1].amount
        ));
    }
    let Some(auction) = &stored.auction else {
        outcome.fail(format!(
            "auction {auction_id}: bid history without an auction record"
        ));
        return;
    };
    if !stored.truncated && auction.bid_count as usize != stored.steps.len() {
        outcome.fail(format!(
            "auction {auction_id}: bid count {} but the history has {} steps",
            auction.bid_count,
            stored.steps.len()
        ));
    }
    let last_amount = stored.steps.last().map(|step| step.amount);
    if !stored.truncated && auction.pricing.price != last_amount {
        outcome.fail(format!(
            "auction {auction_id}: current price {:?} is not the last history amount {last_amount:?}",
            auction.pricing.price
        ));
    }
    if let (Some(price), Some(high)) = (auction.pricing.price, auction.pricing.high) {
        if price > high.max {
            outcome.fail(format!(
                "auction {auction_id}: current price {price} is above the high bidder's maximum {}",
                high.max
            ));
        }
    }
}

/// The auctions with an accepted or unknown seller edit of the end time in `records` (the end
/// may then move earlier) and, with `admin_extensions`, an admin extension too.
pub(crate) fn end_changed(records: &[OpRecord], admin_extensions: bool) -> BTreeSet<AuctionId> {
    records
        .iter()
        .filter(|record| record.status != OpStatus::Failed)
        .filter_map(|record| match &record.operation {
            Operation::Write(write) => match &write.op {
                Op::UpdateAuction {
                    auction_id,
                    changes,
                    ..
                } if changes.end_time.is_some() => Some(*auction_id),
                Op::AdminExtendAuction { auction_id, .. } if admin_extensions => Some(*auction_id),
                _ => None,
            },
            Operation::Read { .. } => None,
        })
        .collect()
}

/// The most a read may not go below, from reads that completed before it was invoked.
#[derive(Clone, Copy, Debug, Default)]
struct Floor {
    bid_count: u32,
    end_time: Option<TimestampMs>,
    closed: bool,
}

/// Reads: each is internally consistent, and real-time ordered reads never go backwards.
fn check_reads(outcome: &mut CheckOutcome, records: &[OpRecord]) {
    let edited = end_changed(records, false);
    // (event index, is completion, op id) for every acknowledged read of a found auction.
    let mut events: Vec<(usize, bool, OpId)> = Vec::new();
    for record in records {
        if let (Some(_), Some(done)) = (read_of(record), record.returns_at()) {
            events.push((record.invoke_index, false, record.id));
            events.push((done, true, record.id));
        }
    }
    events.sort_unstable();
    let mut floors: BTreeMap<AuctionId, Floor> = BTreeMap::new();
    let mut snapshots: BTreeMap<OpId, Floor> = BTreeMap::new();
    for (_, is_completion, id) in events {
        let Some(record) = records.get(id) else {
            continue;
        };
        let Some((auction_id, seen)) = read_of(record) else {
            continue;
        };
        let floor = floors.entry(auction_id).or_default();
        if !is_completion {
            snapshots.insert(id, *floor);
            continue;
        }
        outcome.checked += 1;
        check_read_alone(outcome, record, auction_id, seen);
        let before = snapshots.remove(&id).unwrap_or_default();
        check_read_order(outcome, record, seen, &before, edited.contains(&auction_id));
        floor.bid_count = floor.bid_count.max(seen.bid_count);
        floor.end_time = floor.end_time.max(Some(seen.end_time));
        floor.closed |= seen.phase != Phase::Open;
    }
}

fn read_of(record: &OpRecord) -> Option<(AuctionId, &crate::history::ObservedAuction)> {
    match (&record.operation, &record.status) {
        (
            Operation::Read { auction_id },
            OpStatus::Ok(OkValue::Read {
                auction: Some(seen),
            }),
        ) => Some((*auction_id, seen)),
        _ => None,
    }
}

fn check_read_alone(
    outcome: &mut CheckOutcome,
    record: &OpRecord,
    auction_id: AuctionId,
    seen: &crate::history::ObservedAuction,
) {
    if seen.current_price.is_some() != (seen.bid_count > 0) {
        outcome.fail(format!(
            "op {}: read of {auction_id} shows price {:?} with {} bids",
            record.id, seen.current_price, seen.bid_count
        ));
    }
    if let (Some(price), Some(max)) = (seen.current_price, seen.high_max) {
        if price > max {
            outcome.fail(format!(
                "op {}: read of {auction_id} shows price {price} above the maximum {max}",
                record.id
            ));
        }
    }
}

fn check_read_order(
    outcome: &mut CheckOutcome,
    record: &OpRecord,
    seen: &crate::history::ObservedAuction,
    before: &Floor,
    end_time_edited: bool,
) {
    if seen.bid_count < before.bid_count {
        outcome.fail(format!(
            "op {}: read saw {} bids after an earlier read had seen {}",
            record.id, seen.bid_count, before.bid_count
        ));
    }
    if let Some(earlier) = before
        .end_time
        .filter(|end| !end_time_edited && seen.end_time < *end)
    {
        outcome.fail(format!(
            "op {}: read saw end time {} after an earlier read had seen {earlier}",
            record.id, seen.end_time
        ));
    }
    if before.closed && seen.phase == Phase::Open {
        outcome.fail(format!(
            "op {}: read saw the auction open after an earlier read had seen it closed",
            record.id
        ));
    }
}
