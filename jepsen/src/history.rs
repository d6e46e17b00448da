//! Histories: what clients did and saw, recorded the way Jepsen records it.
//!
//! A history is a sequence of [`Event`]s. Each client operation is an *invoke* event followed,
//! later and possibly after other processes' events, by one *completion* event of the same
//! process:
//! - `ok`: the operation took effect (or, for a read, returned) with the observed result; for a
//!   write that is the state machine's `Result<Outcome, Rejection>` and its `effective_ts`;
//! - `fail`: it definitely did not take effect (refused before it was proposed);
//! - `info`: unknown, typically a time-out: it may take effect at any later time, or never.
//!   A process may invoke again after an `info`; the unknown operation stays in flight.
//!
//! The position of an event in the history is its real-time order: operation A precedes B when
//! A's completion comes before B's invoke. The `time` field (a logical or simulated clock) is
//! kept for humans and must not decrease. A history is saved as JSON lines, one event a line,
//! so a failing run can be stored and re-checked.
//!
//! [`History::operations`] pairs invokes with completions into [`OpRecord`]s; an operation
//! without a completion is unknown. [`Scope`] says which auction an operation belongs to, for
//! the per-auction ("independent") checks.
//!
//! Not done yet: reads of lists (my bids, watchlists, search) and meta-group operations are
//! recorded but not modelled; an observed read carries only what the HTTP API shows plus the
//! high bidder's maximum when the observer (the simulator) can see it.

use auction_statemachine::command::Op;
use auction_statemachine::ids::{AuctionId, RequestId, TimestampMs, UserId};
use auction_statemachine::money::Money;
use auction_statemachine::outcome::Outcome;
use auction_statemachine::{Auction, Command, Phase, Rejection};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A client process (one logical client thread); it has at most one operation outstanding.
pub type ProcessId = u64;
/// A logical or simulated clock reading, for humans; order comes from event positions.
pub type LogicalTime = u64;
/// An operation's position in [`History::operations`].
pub type OpId = usize;

/// A client write: a command as the client and its node chose it, before the leader stamps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteRequest {
    pub request_id: RequestId,
    pub idempotency_key: Option<String>,
    pub op: Op,
}

impl WriteRequest {
    /// The command a leader would propose when stamping it with `ts_ms`.
    pub fn command(&self, ts_ms: TimestampMs) -> Command {
        Command {
            ts_ms,
            request_id: self.request_id,
            idempotency_key: self.idempotency_key.clone(),
            op: self.op.clone(),
        }
    }
}

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operation {
    /// Boxed: a command is much larger than a read.
    Write(Box<WriteRequest>),
    /// A linearizable read of one auction.
    Read { auction_id: AuctionId },
}

/// The part of an auction a read observes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedAuction {
    pub phase: Phase,
    pub current_price: Option<Money>,
    pub high_bidder: Option<UserId>,
    /// The high bidder's maximum: `None` when the observer cannot see it (the HTTP API).
    pub high_max: Option<Money>,
    pub bid_count: u32,
    pub end_time: TimestampMs,
}

impl ObservedAuction {
    /// Everything a simulator can see of a stored auction.
    pub fn of(auction: &Auction) -> ObservedAuction {
        ObservedAuction {
            phase: auction.phase,
            current_price: auction.pricing.price,
            high_bidder: auction.high_bidder(),
            high_max: auction.pricing.high.map(|high| high.max),
            bid_count: auction.bid_count,
            end_time: auction.end_time,
        }
    }

    /// Whether this observation agrees with `model` (the full view the checker computed); a
    /// maximum the observer could not see is not compared.
    pub fn agrees_with(&self, model: &ObservedAuction) -> bool {
        let max_agrees = self.high_max.is_none() || self.high_max == model.high_max;
        max_agrees
            && self.phase == model.phase
            && self.current_price == model.current_price
            && self.high_bidder == model.high_bidder
            && self.bid_count == model.bid_count
            && self.end_time == model.end_time
    }
}

/// The value of an `ok` completion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OkValue {
    Write {
        result: Result<Outcome, Rejection>,
        effective_ts: TimestampMs,
    },
    /// `None`: the auction was not found.
    Read { auction: Option<ObservedAuction> },
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Completion {
    Ok(OkValue),
    /// Definitely not applied.
    Fail {
        reason: String,
    },
    /// May or may not be applied. `proposed_ts` is the leader's stamp when the node saw it.
    Info {
        reason: String,
        proposed_ts: Option<TimestampMs>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Invoke(Operation),
    Complete(Completion),
}

/// One line of a history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub process: ProcessId,
    pub time: LogicalTime,
    pub kind: EventKind,
}

/// Why a history cannot be read or paired.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HistoryError {
    #[error("event {index}: process {process} completes an operation it never invoked")]
    CompletionWithoutInvoke { index: usize, process: ProcessId },
    #[error("event {index}: process {process} invokes while its previous operation is open")]
    InvokeWhileOpen { index: usize, process: ProcessId },
    #[error("event {index}: time {time} is before the previous event's time {previous}")]
    TimeWentBackwards {
        index: usize,
        time: LogicalTime,
        previous: LogicalTime,
    },
    #[error("event {index}: a read completed with a write's value, or the reverse")]
    MismatchedValue { index: usize },
    #[error("line {line}: {message}")]
    Json { line: usize, message: String },
}

/// Which partition of the history an operation belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Auction(AuctionId),
    /// Changes what every auction of a shard accepts (a ban copied into the shard).
    EveryAuction,
    /// Not modelled per auction: meta-group operations, notifications, housekeeping.
    Unchecked,
}

impl Operation {
    pub fn write(request: WriteRequest) -> Operation {
        Operation::Write(Box::new(request))
    }

    pub fn scope(&self) -> Scope {
        match self {
            Operation::Read { auction_id } => Scope::Auction(*auction_id),
            Operation::Write(write) => op_scope(&write.op),
        }
    }

    pub fn is_read(&self) -> bool {
        matches!(self, Operation::Read { .. })
    }

    /// A one-line description for reports.
    pub fn describe(&self) -> String {
        match self {
            Operation::Read { auction_id } => format!("read {auction_id}"),
            Operation::Write(write) => {
                let key = write
                    .idempotency_key
                    .as_deref()
                    .map(|key| format!(" key {key:?}"))
                    .unwrap_or_default();
                format!(
                    "{} (request {}{key})",
                    describe_op(&write.op),
                    write.request_id
                )
            }
        }
    }
}

fn op_scope(op: &Op) -> Scope {
    match op {
        Op::CreateAuction(new) => Scope::Auction(new.auction_id),
        Op::UpdateAuction { auction_id, .. }
        | Op::CancelAuction { auction_id, .. }
        | Op::PlaceBid { auction_id, .. }
        | Op::PlaceProxyBid { auction_id, .. }
        | Op::BuyNow { auction_id, .. }
        | Op::Watch { auction_id, .. }
        | Op::Unwatch { auction_id, .. }
        | Op::AddImage { auction_id, .. }
        | Op::RemoveImage { auction_id, .. }
        | Op::OrderImages { auction_id, .. }
        | Op::AdminCancelAuction { auction_id, .. }
        | Op::AdminExtendAuction { auction_id, .. } => Scope::Auction(*auction_id),
        Op::SyncBan { .. } => Scope::EveryAuction,
        _ => Scope::Unchecked,
    }
}

fn describe_op(op: &Op) -> String {
    match op {
        Op::CreateAuction(new) => format!("create {}", new.auction_id),
        Op::PlaceBid { bidder, amount, .. } => format!("bid {amount} by {bidder}"),
        Op::PlaceProxyBid {
            bidder, max_amount, ..
        } => format!("proxy bid max {max_amount} by {bidder}"),
        Op::BuyNow { buyer, .. } => format!("buy now by {buyer}"),
        Op::SyncBan { user, banned } => format!("sync ban {user} banned={banned}"),
        Op::Watch { user, .. } => format!("watch by {user}"),
        Op::Unwatch { user, .. } => format!("unwatch by {user}"),
        Op::UpdateAuction { actor, .. } => format!("edit by {actor}"),
        Op::CancelAuction { actor, .. } => format!("cancel by {actor}"),
        Op::AdminCancelAuction { admin, .. } => format!("admin cancel by {admin}"),
        Op::AdminExtendAuction {
            admin, end_time, ..
        } => format!("admin extend to {end_time} by {admin}"),
        other => {
            let text = format!("{other:?}");
            text.chars().take(80).collect()
        }
    }
}

/// One operation with its completion, as the checkers use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpRecord {
    pub id: OpId,
    pub process: ProcessId,
    pub operation: Operation,
    /// Position of the invoke event in the history.
    pub invoke_index: usize,
    /// Position of the completion event, if any.
    pub complete_index: Option<usize>,
    pub status: OpStatus,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpStatus {
    Ok(OkValue),
    Failed,
    /// Timed out or never completed: may take effect at any time after its invoke, or never.
    Unknown {
        proposed_ts: Option<TimestampMs>,
    },
}

impl OpRecord {
    /// The position at which the operation is known to have taken effect, if it is known to.
    pub fn returns_at(&self) -> Option<usize> {
        match self.status {
            OpStatus::Ok(_) => self.complete_index,
            _ => None,
        }
    }

    pub fn describe(&self) -> String {
        let status = match &self.status {
            OpStatus::Ok(OkValue::Write { result, .. }) => describe_result(result),
            OpStatus::Ok(OkValue::Read { auction }) => describe_observed(auction.as_ref()),
            OpStatus::Failed => "fail".to_owned(),
            OpStatus::Unknown { .. } => "unknown".to_owned(),
        };
        format!(
            "op {} (process {}, events {}..{}): {} -> {status}",
            self.id,
            self.process,
            self.invoke_index,
            self.complete_index
                .map_or_else(|| "open".to_owned(), |index| index.to_string()),
            self.operation.describe(),
        )
    }
}

/// A short description of a write's result for explanations.
pub fn describe_result(result: &Result<Outcome, Rejection>) -> String {
    match result {
        Ok(Outcome::Bid(bid)) => format!(
            "ok bid {} winning={} price={} high={} count={} end={} steps={}",
            bid.bid_id,
            bid.winning,
            bid.current_price,
            bid.high_bidder_id,
            bid.bid_count,
            bid.end_time,
            bid.steps.len()
        ),
        Ok(Outcome::Auction(auction)) => format!(
            "ok auction {:?} count={} end={}",
            auction.phase, auction.bid_count, auction.end_time
        ),
        Ok(Outcome::Watch(watch)) => {
            format!("ok watch by {} since {}", watch.user_id, watch.created_at)
        }
        Ok(other) => {
            let text = format!("ok {other:?}");
            text.chars().take(120).collect()
        }
        Err(rejection) => format!("rejected {}", rejection.code()),
    }
}

/// A short description of a read's observation.
pub fn describe_observed(auction: Option<&ObservedAuction>) -> String {
    match auction {
        None => "not found".to_owned(),
        Some(seen) => format!(
            "{:?} price={} high={} max={} count={} end={}",
            seen.phase,
            seen.current_price
                .map_or_else(|| "none".to_owned(), |price| price.to_string()),
            seen.high_bidder
                .map_or_else(|| "none".to_owned(), |bidder| bidder.to_string()),
            seen.high_max
                .map_or_else(|| "?".to_owned(), |max| max.to_string()),
            seen.bid_count,
            seen.end_time
        ),
    }
}

/// A recorded history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    events: Vec<Event>,
}

impl History {
    pub fn new() -> History {
        History::default()
    }

    pub fn from_events(events: Vec<Event>) -> History {
        History { events }
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn push(&mut self, event: Event) {
        self.events.push(event);
    }

    pub fn invoke(&mut self, process: ProcessId, time: LogicalTime, operation: Operation) {
        self.push(Event {
            process,
            time,
            kind: EventKind::Invoke(operation),
        });
    }

    pub fn complete(&mut self, process: ProcessId, time: LogicalTime, completion: Completion) {
        self.push(Event {
            process,
            time,
            kind: EventKind::Complete(completion),
        });
    }

    /// One JSON object per line.
    pub fn to_json_lines(&self) -> Result<String, HistoryError> {
        let mut text = String::new();
        for (index, event) in self.events.iter().enumerate() {
            let line = serde_json::to_string(event).map_err(|error| HistoryError::Json {
                line: index + 1,
                message: error.to_string(),
            })?;
            text.push_str(&line);
            text.push('\n');
        }
        Ok(text)
    }

    /// Reads what [`History::to_json_lines`] wrote; blank lines are skipped.
    pub fn from_json_lines(text: &str) -> Result<History, HistoryError> {
        let mut events = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let event = serde_json::from_str(line).map_err(|error| HistoryError::Json {
                line: index + 1,
                message: error.to_string(),
            })?;
            events.push(event);
        }
        Ok(History { events })
    }

    /// Pairs every invoke with its process's next completion, in invoke order.
    pub fn operations(&self) -> Result<Vec<OpRecord>, HistoryError> {
        let mut records: Vec<OpRecord> = Vec::new();
        let mut open: std::collections::HashMap<ProcessId, OpId> = Default::default();
        let mut previous_time = 0;
        for (index, event) in self.events.iter().enumerate() {
            if event.time < previous_time {
                return Err(HistoryError::TimeWentBackwards {
                    index,
                    time: event.time,
                    previous: previous_time,
                });
            }
            previous_time = event.time;
            match &event.kind {
                EventKind::Invoke(operation) => {
                    if open.contains_key(&event.process) {
                        return Err(HistoryError::InvokeWhileOpen {
                            index,
                            process: event.process,
                        });
                    }
                    open.insert(event.process, records.len());
                    records.push(OpRecord {
                        id: records.len(),
                        process: event.process,
                        operation: operation.clone(),
                        invoke_index: index,
                        complete_index: None,
                        status: OpStatus::Unknown { proposed_ts: None },
                    });
                }
                EventKind::Complete(completion) => {
                    let record = open
                        .remove(&event.process)
                        .and_then(|id| records.get_mut(id))
                        .ok_or(HistoryError::CompletionWithoutInvoke {
                            index,
                            process: event.process,
                        })?;
                    record.complete_index = Some(index);
                    record.status = status_of(&record.operation, completion, index)?;
                }
            }
        }
        Ok(records)
    }
}

fn status_of(
    operation: &Operation,
    completion: &Completion,
    index: usize,
) -> Result<OpStatus, HistoryError> {
    Ok(match completion {
        Completion::Ok(value) => {
            if operation.is_read() != matches!(value, OkValue::Read { .. }) {
                return Err(HistoryError::MismatchedValue { index });
            }
            OpStatus::Ok(value.clone())
        }
        Completion::Fail { .. } => OpStatus::Failed,
        Completion::Info { proposed_ts, .. } => OpStatus::Unknown {
            proposed_ts: *proposed_ts,
        },
    })
}

/// How many operations ended which way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpCounts {
    pub ok: u64,
    pub fail: u64,
    pub unknown: u64,
    /// Of all the above, how many were reads.
    pub reads: u64,
    /// Operations outside the per-auction model (meta group, notifications, ticks).
    pub unchecked: u64,
}

impl OpCounts {
    pub fn of(records: &[OpRecord]) -> OpCounts {
        let mut counts = OpCounts::default();
        for record in records {
            match record.status {
                OpStatus::Ok(_) => counts.ok += 1,
                OpStatus::Failed => counts.fail += 1,
                OpStatus::Unknown { .. } => counts.unknown += 1,
            }
            counts.reads += u64::from(record.operation.is_read());
            counts.unchecked += u64::from(record.operation.scope() == Scope::Unchecked);
        }
        counts
    }
}
