//! Recovering the time at which a write of unknown outcome took effect.
//!
//! The checker tries an unknown write at its leader's stamp when the history records one, and
//! otherwise at the earliest possible time only; a write that really took effect later shows
//! that later time in what it recorded (its bid steps' `createdAt`), which a retry's replay
//! then returns, and the checker would report a false violation. A client never sees the
//! leader's stamp of a request that timed out, but the simulator can see the cluster's state:
//! every applied client write leaves a de-duplication record with the time it took effect.
//! [`fill_unknown_stamps`] gives each unknown write of the history that time as its
//! `proposed_ts` (the model applies it at `max(stamp, last applied)`, which is that time in
//! any linearization where the write took effect then). A write that left no record never took
//! effect: it becomes `fail` (definitely not applied), so the search does not try it at every
//! later point. Of several unknown attempts of one write (one request id or idempotency key)
//! with one stamp, only the first stays unknown: whichever attempt applied, the state is the one
//! the first attempt applied at that stamp gives, and the first can be placed wherever a later
//! one can (it was invoked earlier); each extra optional attempt multiplied the search. A bid is
//! the exception: its answer carries the request id of the attempt that applied it (its bid
//! id), so every other attempt of it becomes `fail` (seed 273 of the 2,000-seed sweep: the
//! second attempt applied, the first was kept, and the replay's bid id disagreed with the
//! model's). If the cluster ever applied a write without leaving a record, the model could
//! not explain what the write did and the run fails: a false alarm at worst, never a missed
//! bug.
//!
//! The record's key is the state machine's private de-duplication identity as
//! [`auction_jepsen::model::dedup_identity`] mirrors it; if that ever changes, lookups miss and
//! unknown writes fall back to the earliest time (false alarms, never missed bugs).

use std::collections::{BTreeMap, BTreeSet};

use auction_jepsen::model::dedup_identity;
use auction_jepsen::{Completion, Event, EventKind, History, Operation, WriteRequest};
use auction_statemachine::machine::DedupRecord;
use auction_statemachine::{codec, keys, GroupId, KvRead, Outcome, RequestId, TimestampMs};

/// The shard's de-duplication record of the write, if it has one.
pub(crate) fn dedup_record(shard: &impl KvRead, write: &WriteRequest) -> Option<DedupRecord> {
    let bytes = shard.get(&keys::dedup(&dedup_identity(write))).ok()??;
    codec::decode(&bytes).ok()
}

/// Gives every unknown write without a stamp the time its record says it took effect, turns an
/// unknown write without a record into a failure, and keeps one of the unknown attempts of one
/// write (one de-duplication identity) that share a stamp, turning the later ones into failures.
/// `shard_of` names the group of a write; `shards` reads each group's final state.
pub fn fill_unknown_stamps<R: KvRead>(
    history: &History,
    shard_of: impl Fn(&WriteRequest) -> GroupId,
    shards: &BTreeMap<GroupId, R>,
) -> History {
    let mut open: BTreeMap<u64, Option<WriteRequest>> = BTreeMap::new();
    let mut unknown_at: BTreeSet<(Vec<u8>, TimestampMs)> = BTreeSet::new();
    let mut events = Vec::with_capacity(history.len());
    for event in history.events() {
        let mut event: Event = event.clone();
        match &mut event.kind {
            EventKind::Invoke(operation) => {
                let write = match operation {
                    Operation::Write(write) => Some((**write).clone()),
                    Operation::Read { .. } => None,
                };
                open.insert(event.process, write);
            }
            EventKind::Complete(Completion::Info { proposed_ts, .. }) => {
                let Some(Some(write)) = open.remove(&event.process) else {
                    events.push(event);
                    continue;
                };
                let Some(shard) = shards.get(&shard_of(&write)) else {
                    events.push(event);
                    continue;
                };
                let record = dedup_record(shard, &write);
                if proposed_ts.is_none() {
                    match &record {
                        Some(record) => *proposed_ts = Some(record.created_at),
                        // Every applied client write leaves a record the run outlives: none
                        // means it never took effect, and never will (the cluster is quiet).
                        // Left open, each such write could apply anywhere later, and a few of
                        // them made the search explode.
                        None => {
                            event.kind = failed("unknown, and left no de-duplication record");
                            events.push(event);
                            continue;
                        }
                    }
                }
                // A bid names the attempt that applied it (its bid id is that attempt's request
                // id): any other attempt of the same write did not take effect.
                let applied_by = record.as_ref().and_then(applying_request);
                if applied_by.is_some_and(|applied| applied != write.request_id) {
                    event.kind = failed("unknown, and another attempt of the same write applied");
                    events.push(event);
                    continue;
                }
                // A retry of an earlier unknown attempt of the same write (same request id or
                // idempotency key) with the same stamp changes nothing that attempt applied at
                // that stamp would not, and can be placed wherever it can: keep one.
                if let Some(stamp) = *proposed_ts {
                    if !unknown_at.insert((dedup_identity(&write), stamp)) {
                        event.kind =
                            failed("an unknown retry equivalent to an earlier unknown attempt");
                    }
                }
            }
            EventKind::Complete(_) => {
                open.remove(&event.process);
            }
        }
        events.push(event);
    }
    History::from_events(events)
}

/// The request whose attempt a recorded result names: a bid's id is its request id. Other
/// results look the same whichever attempt applied them.
fn applying_request(record: &DedupRecord) -> Option<RequestId> {
    match &record.result {
        Ok(Outcome::Bid(bid)) => Some(bid.bid_id),
        _ => None,
    }
}

/// A completion that says the operation did not take effect, and why the simulator knows.
fn failed(why: &str) -> EventKind {
    EventKind::Complete(Completion::Fail {
        reason: format!("{why}: never took effect (resolved by the simulator)"),
    })
}
