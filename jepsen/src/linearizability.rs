//! Linearizability of each auction's sub-history against the state machine.
//!
//! Operations on different auctions touch disjoint state, so, like Jepsen's `independent`
//! checker, we split the history by auction ([`partition`]) and check each part alone; an
//! operation that affects every auction of a shard (a ban copied into it) joins every part.
//!
//! The search is Wing & Gong's, with Lowe's memoization: a search state is the set of operations
//! linearized so far plus the model state they produced. From a state, an operation may be
//! linearized next when it is invoked before the earliest completion among the acknowledged
//! operations not yet linearized (real-time order). Linearizing applies the operation to the
//! [`Model`]:
//! - an `ok` write must reproduce the cluster's answer exactly (same outcome or rejection, same
//!   effective time);
//! - an unknown write may be applied (once, anywhere after its invoke) or never; applying one
//!   that the model rejects is skipped (it would change only the clock and a de-duplication
//!   record) unless another write of the part shares its request id or idempotency key;
//! - a failed operation is never applied, an unknown read is ignored;
//! - an `ok` read must equal the model's auction at that point. A read changes nothing, so one
//!   that matches is linearized at once without branching (linearizing it later never helps);
//! - the leader's close of the auction is an extra step the search may take once, only in parts
//!   where something can observe it (a read that saw the auction sold or unsold, an admin
//!   cancel).
//!
//! A (linearized set, state hash) pair seen before is not explored again. The search explores
//! at most `search_states_max` model steps, then answers [`Verdict::Unknown`]. When a part is
//! not linearizable, the checker looks for the shortest prefix of the history that is already
//! not linearizable (binary search over completion events: a failing prefix stays failing when
//! extended), and reports the operation whose completion made it fail, the operations
//! concurrent with it and why each candidate could not be placed.
//!
//! Not done yet: a shard-wide operation joins the part of every auction of every shard (the
//! checker does not know which shard an auction lives in), which is lenient when a ban is
//! copied into several shards at different times; parts are checked one after another; the window minimisation
//! costs up to `1 + log2(completions)` more searches, each with the full bound; a search state
//! is a (compacted) `MemKv` clone per depth-first frame, so memory grows with the depth times
//! the state size.

use std::collections::{BTreeMap, HashMap, HashSet};

use auction_statemachine::ids::{AuctionId, TimestampMs};
use auction_statemachine::outcome::Outcome;
use auction_statemachine::{MemKv, Op, Phase, Rejection};
use serde::{Deserialize, Serialize};

use crate::history::{
    History, HistoryError, ObservedAuction, OkValue, OpId, OpRecord, OpStatus, Operation, Scope,
    WriteRequest,
};
use crate::model::{state_hash, Model};

/// Default bound on model steps per search.
pub const SEARCH_STATES_MAX_DEFAULT: u64 = 200_000;
/// Reasons kept per search state for the explanation of a failure.
const KEPT_MISMATCHES_MAX: usize = 8;
/// Operations of the longest linearization shown in an explanation (the last ones).
const EXPLANATION_PATH_STEPS_MAX: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinearizabilityConfig {
    /// Most model steps one search may take before it answers `Unknown`.
    pub search_states_max: u64,
    /// Whether to look for the shortest failing prefix of a non-linearizable part.
    pub minimize_window: bool,
}

impl Default for LinearizabilityConfig {
    fn default() -> Self {
        LinearizabilityConfig {
            search_states_max: SEARCH_STATES_MAX_DEFAULT,
            minimize_window: true,
        }
    }
}

/// The smallest part of a history that shows a violation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// The history up to and including this event is already not linearizable.
    pub prefix_end_index: usize,
    /// The operation whose completion at `prefix_end_index` made it so.
    pub culprit: Option<OpId>,
    /// The culprit and the operations concurrent with it.
    pub ops: Vec<OpId>,
    /// One line per operation of `ops`.
    pub described: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    Linearizable,
    NotLinearizable { window: Window, explanation: String },
    Unknown { reason: String },
}

/// The result for one auction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionCheck {
    pub auction_id: AuctionId,
    /// Operations in this part (failed ones included).
    pub ops: usize,
    /// Model steps taken by all searches of this part.
    pub states_explored: u64,
    pub verdict: Verdict,
}

/// Pairs the history and checks every auction.
pub fn check_history(
    history: &History,
    config: &LinearizabilityConfig,
) -> Result<Vec<AuctionCheck>, HistoryError> {
    Ok(check_records(&history.operations()?, config))
}

/// Checks every auction of already paired operations.
pub fn check_records(records: &[OpRecord], config: &LinearizabilityConfig) -> Vec<AuctionCheck> {
    partition(records)
        .into_iter()
        .map(|(auction_id, ops)| check_auction(auction_id, &ops, config))
        .collect()
}

/// Splits operations by auction; shard-wide operations join every auction's part.
pub fn partition(records: &[OpRecord]) -> BTreeMap<AuctionId, Vec<&OpRecord>> {
    let mut parts: BTreeMap<AuctionId, Vec<&OpRecord>> = BTreeMap::new();
    for record in records {
        if let Scope::Auction(auction_id) = record.operation.scope() {
            parts.entry(auction_id).or_default();
        }
    }
    for record in records {
        match record.operation.scope() {
            Scope::Auction(auction_id) => parts.entry(auction_id).or_default().push(record),
            Scope::EveryAuction => parts.values_mut().for_each(|ops| ops.push(record)),
            Scope::Unchecked => {}
        }
    }
    parts
}

/// Checks one auction's operations (in invoke order).
pub fn check_auction(
    auction_id: AuctionId,
    ops: &[&OpRecord],
    config: &LinearizabilityConfig,
) -> AuctionCheck {
    let full = search(auction_id, ops, None, config.search_states_max);
    let mut states_explored = full.states;
    let verdict = match full.result {
        SearchResult::Found => Verdict::Linearizable,
        SearchResult::LimitHit => Verdict::Unknown {
            reason: format!(
                "search bound hit: explored {} states (search_states_max = {})",
                full.states, config.search_states_max
            ),
        },
        SearchResult::Exhausted => {
            let (failing, extra_states) = if config.minimize_window {
                shortest_failing_prefix(auction_id, ops, config.search_states_max)
            } else {
                (None, 0)
            };
            states_explored += extra_states;
            let (cut, run) = failing.unwrap_or((None, full));
            violation(ops, cut, &run)
        }
    };
    AuctionCheck {
        auction_id,
        ops: ops.len(),
        states_explored,
        verdict,
    }
}

/// Binary search for the first completion event whose prefix is not linearizable.
fn shortest_failing_prefix(
    auction_id: AuctionId,
    ops: &[&OpRecord],
    limit: u64,
) -> (Option<(Option<usize>, SearchRun)>, u64) {
    let mut cuts: Vec<usize> = ops.iter().filter_map(|op| op.returns_at()).collect();
    cuts.sort_unstable();
    let mut states = 0;
    let mut failing: Option<(usize, SearchRun)> = None;
    let (mut low, mut high) = (0, cuts.len());
    // Invariant: every cut below `low` passes (or is unknown); `high` is the first known failure.
    while low < high {
        let middle = low + (high - low) / 2;
        let run = search(auction_id, ops, Some(cuts[middle]), limit);
        states += run.states;
        if run.result == SearchResult::Exhausted {
            high = middle;
            failing = Some((middle, run));
        } else {
            low = middle + 1;
        }
    }
    let found = failing
        .filter(|(index, _)| *index == high)
        .map(|(index, run)| (Some(cuts[index]), run));
    (found, states)
}

fn violation(ops: &[&OpRecord], cut: Option<usize>, run: &SearchRun) -> Verdict {
    let culprit = cut.and_then(|cut| ops.iter().find(|op| op.returns_at() == Some(cut)));
    let prefix_end_index = cut.unwrap_or_else(|| {
        ops.iter()
            .filter_map(|op| op.complete_index.or(Some(op.invoke_index)))
            .max()
            .unwrap_or(0)
    });
    let concurrent: Vec<&&OpRecord> = match culprit {
        Some(culprit) => {
            let end = culprit.returns_at().unwrap_or(culprit.invoke_index);
            ops.iter()
                .filter(|op| op.status != OpStatus::Failed)
                .filter(|op| {
                    op.invoke_index <= end
                        && op
                            .returns_at()
                            .is_none_or(|done| done >= culprit.invoke_index)
                })
                .collect()
        }
        None => Vec::new(),
    };
    let window = Window {
        prefix_end_index,
        culprit: culprit.map(|op| op.id),
        ops: concurrent.iter().map(|op| op.id).collect(),
        described: concurrent.iter().map(|op| op.describe()).collect(),
    };
    Verdict::NotLinearizable {
        window,
        explanation: run.explanation.clone(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SearchResult {
    Found,
    Exhausted,
    LimitHit,
}

#[derive(Clone, Debug)]
struct SearchRun {
    result: SearchResult,
    states: u64,
    explanation: String,
}

/// How one operation enters the search.
enum Kind<'a> {
    OkWrite {
        write: &'a WriteRequest,
        result: &'a Result<Outcome, Rejection>,
        effective_ts: TimestampMs,
    },
    UnknownWrite {
        write: &'a WriteRequest,
        proposed_ts: Option<TimestampMs>,
        /// Another operation of the part has its request id or idempotency key, so even a
        /// rejection it recorded could be replayed later.
        shared: bool,
    },
    Read {
        observed: Option<&'a ObservedAuction>,
    },
    Close,
}

struct SearchOp<'a> {
    /// `None` for the leader's close.
    record: Option<&'a OpRecord>,
    invoke: usize,
    /// Known completion: the operation must be linearized before anything invoked later.
    returns: Option<usize>,
    kind: Kind<'a>,
}

/// The operations of the history cut after event `cut` (all of it when `None`): operations
/// invoked later are left out, acknowledged ones completing later become unknown.
fn search_ops<'a>(ops: &[&'a OpRecord], cut: Option<usize>) -> Vec<SearchOp<'a>> {
    let limit = cut.unwrap_or(usize::MAX);
    let mut out: Vec<SearchOp<'a>> = ops
        .iter()
        .filter(|op| op.invoke_index <= limit)
        .filter_map(|op| search_op(op, limit))
        .collect();
    mark_shared(&mut out);
    if needs_close(&out) {
        out.push(SearchOp {
            record: None,
            invoke: 0,
            returns: None,
            kind: Kind::Close,
        });
    }
    out
}

fn search_op(op: &OpRecord, limit: usize) -> Option<SearchOp<'_>> {
    let returned = op.returns_at().filter(|done| *done <= limit);
    let kind = match (&op.operation, &op.status) {
        (_, OpStatus::Failed) => return None,
        (Operation::Read { .. }, OpStatus::Ok(OkValue::Read { auction })) => {
            returned?;
            Kind::Read {
                observed: auction.as_ref(),
            }
        }
        (Operation::Read { .. }, _) => return None,
        (
            Operation::Write(write),
            OpStatus::Ok(OkValue::Write {
                result,
                effective_ts,
            }),
        ) => match returned {
            Some(_) => Kind::OkWrite {
                write,
                result,
                effective_ts: *effective_ts,
            },
            None => Kind::UnknownWrite {
                write,
                proposed_ts: Some(*effective_ts),
                shared: false,
            },
        },
        (Operation::Write(write), OpStatus::Unknown { proposed_ts }) => Kind::UnknownWrite {
            write,
            proposed_ts: *proposed_ts,
            shared: false,
        },
        (Operation::Write(_), OpStatus::Ok(OkValue::Read { .. })) => return None,
    };
    Some(SearchOp {
        record: Some(op),
        invoke: op.invoke_index,
        returns: returned,
        kind,
    })
}

/// Marks unknown writes whose request id or (actor, idempotency key) another write shares.
fn mark_shared(ops: &mut [SearchOp<'_>]) {
    let mut seen: HashMap<Identity, usize> = HashMap::new();
    for op in ops.iter() {
        for identity in identities(op) {
            *seen.entry(identity).or_default() += 1;
        }
    }
    for op in ops.iter_mut() {
        let is_shared = identities(op).any(|identity| seen.get(&identity) > Some(&1));
        if let Kind::UnknownWrite { shared, .. } = &mut op.kind {
            *shared = is_shared;
        }
    }
}

/// What a write is de-duplicated under: its request id, and its actor's idempotency key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Identity {
    Request(auction_statemachine::RequestId),
    Key(Option<auction_statemachine::UserId>, String),
}

fn identities(op: &SearchOp<'_>) -> impl Iterator<Item = Identity> {
    let write = match &op.kind {
        Kind::OkWrite { write, .. } | Kind::UnknownWrite { write, .. } => Some(*write),
        Kind::Read { .. } | Kind::Close => None,
    };
    let request = write.map(|write| Identity::Request(write.request_id));
    let key = write.and_then(|write| {
        let key = write.idempotency_key.clone()?;
        Some(Identity::Key(write.op.actor(), key))
    });
    request.into_iter().chain(key)
}

/// Whether anything in the part can tell a closed auction from an open one past its end.
fn needs_close(ops: &[SearchOp<'_>]) -> bool {
    ops.iter().any(|op| match &op.kind {
        Kind::Read {
            observed: Some(seen),
        } => matches!(seen.phase, Phase::Sold | Phase::Unsold),
        Kind::OkWrite { write, .. } | Kind::UnknownWrite { write, .. } => {
            matches!(write.op, Op::AdminCancelAuction { .. })
        }
        _ => false,
    })
}

/// A set of operation indexes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(len: usize) -> Bits {
        Bits(vec![0; len.div_ceil(64)])
    }

    fn contains(&self, index: usize) -> bool {
        self.0
            .get(index / 64)
            .is_some_and(|word| word & (1 << (index % 64)) != 0)
    }

    fn insert(&mut self, index: usize) {
        if let Some(word) = self.0.get_mut(index / 64) {
            *word |= 1 << (index % 64);
        }
    }
}

/// One search state on the depth-first stack.
struct Frame {
    linearized: Bits,
    state: MemKv,
    /// Operations linearized on entering this state (the step, then reads that matched).
    entered: Vec<usize>,
    candidates: Vec<usize>,
    cursor: usize,
    mismatches: Vec<String>,
    done: bool,
}

/// The deepest point the search reached, for explanations.
#[derive(Default)]
struct Deepest {
    recorded: bool,
    acknowledged: usize,
    path: Vec<usize>,
    blocker: Option<usize>,
    mismatches: Vec<String>,
}

struct Searcher<'a> {
    model: Model,
    ops: Vec<SearchOp<'a>>,
    /// Indexes of operations with a known completion, earliest completion first.
    by_return: Vec<usize>,
    limit: u64,
    states: u64,
    visited: HashSet<(Bits, u128)>,
    deepest: Deepest,
}

fn search(
    auction_id: AuctionId,
    records: &[&OpRecord],
    cut: Option<usize>,
    limit: u64,
) -> SearchRun {
    let ops = search_ops(records, cut);
    let writes = ops.iter().filter_map(|op| match &op.kind {
        Kind::OkWrite { write, .. } | Kind::UnknownWrite { write, .. } => Some(*write),
        Kind::Read { .. } | Kind::Close => None,
    });
    let model = Model::for_writes(auction_id, writes);
    let mut by_return: Vec<usize> = (0..ops.len())
        .filter(|i| ops[*i].returns.is_some())
        .collect();
    by_return.sort_by_key(|i| ops[*i].returns);
    let mut searcher = Searcher {
        model,
        ops,
        by_return,
        limit,
        states: 0,
        visited: HashSet::new(),
        deepest: Deepest::default(),
    };
    let result = searcher.run();
    SearchRun {
        result,
        states: searcher.states,
        explanation: searcher.explain(),
    }
}

impl Searcher<'_> {
    fn run(&mut self) -> SearchResult {
        let root = Bits::new(self.ops.len());
        let mut frames: Vec<Frame> = self
            .enter(root, MemKv::new(), Vec::new())
            .into_iter()
            .collect();
        // Each iteration takes one model step or pops a frame; both are bounded by `limit`
        // and by the stack depth (at most one frame per operation).
        loop {
            let Some(frame) = frames.last_mut() else {
                return SearchResult::Exhausted;
            };
            if frame.done {
                return SearchResult::Found;
            }
            let Some(&next) = frame.candidates.get(frame.cursor) else {
                self.note_dead_end(&frames);
                frames.pop();
                continue;
            };
            frame.cursor += 1;
            if self.states >= self.limit {
                return SearchResult::LimitHit;
            }
            self.states += 1;
            match self.step(&frame.state, next) {
                Ok(Some(state)) => {
                    let mut linearized = frame.linearized.clone();
                    linearized.insert(next);
                    if let Some(child) = self.enter(linearized, state, vec![next]) {
                        frames.push(child);
                    }
                }
                Ok(None) => {}
                Err(reason) => {
                    if frame.mismatches.len() < KEPT_MISMATCHES_MAX {
                        frame
                            .mismatches
                            .push(format!("{}: {reason}", self.name(next)));
                    }
                }
            }
        }
    }

    /// Applies one operation to the model; `Ok(None)` when it is a no-op (closing twice).
    fn step(&self, state: &MemKv, index: usize) -> Result<Option<MemKv>, String> {
        let result = match &self.ops[index].kind {
            Kind::OkWrite {
                write,
                result,
                effective_ts,
            } => self
                .model
                .apply_ok(state, write, result, *effective_ts)
                .map(Some),
            Kind::UnknownWrite {
                write,
                proposed_ts,
                shared,
            } => self
                .model
                .apply_unknown(state, write, *proposed_ts)
                .map(|(next, rejected)| (!rejected || *shared).then_some(next)),
            Kind::Close => self.model.close(state),
            Kind::Read { observed } => self.model.check_read(state, *observed).map(|()| None),
        };
        result.map_err(|mismatch| mismatch.0)
    }

    /// Builds the frame for a new state, linearizing matching reads at once; `None` if the
    /// state was seen before.
    fn enter(
        &mut self,
        mut linearized: Bits,
        state: MemKv,
        mut entered: Vec<usize>,
    ) -> Option<Frame> {
        let mut mismatches = Vec::new();
        // Each pass linearizes at least one read or stops; at most one pass per operation.
        for _ in 0..=self.ops.len() {
            let candidates = self.candidates(&linearized);
            let reads: Vec<usize> = candidates
                .iter()
                .copied()
                .filter(|i| matches!(self.ops[*i].kind, Kind::Read { .. }))
                .collect();
            mismatches.clear();
            let mut progressed = false;
            for read in reads {
                match self.step(&state, read) {
                    Ok(_) => {
                        linearized.insert(read);
                        entered.push(read);
                        progressed = true;
                    }
                    Err(reason) if mismatches.len() < KEPT_MISMATCHES_MAX => {
                        mismatches.push(format!("{}: {reason}", self.name(read)));
                    }
                    Err(_) => {}
                }
            }
            if !progressed {
                break;
            }
        }
        let done = self.by_return.iter().all(|i| linearized.contains(*i));
        if !done
            && !self
                .visited
                .insert((linearized.clone(), state_hash(&state)))
        {
            return None;
        }
        let candidates = self
            .candidates(&linearized)
            .into_iter()
            .filter(|i| !matches!(self.ops[*i].kind, Kind::Read { .. }))
            .collect();
        Some(Frame {
            linearized,
            state,
            entered,
            candidates,
            cursor: 0,
            mismatches,
            done,
        })
    }

    /// Operations that may be linearized next: invoked before the earliest pending completion.
    /// Acknowledged writes come first, then unknown writes, then the close.
    fn candidates(&self, linearized: &Bits) -> Vec<usize> {
        let horizon = self
            .earliest_pending_return(linearized)
            .unwrap_or(usize::MAX);
        let mut candidates: Vec<usize> = (0..self.ops.len())
            .filter(|i| !linearized.contains(*i) && self.ops[*i].invoke < horizon)
            .collect();
        candidates.sort_by_key(|i| {
            let rank = match self.ops[*i].kind {
                Kind::Read { .. } | Kind::OkWrite { .. } => 0,
                Kind::UnknownWrite { .. } => 1,
                Kind::Close => 2,
            };
            (rank, self.ops[*i].invoke)
        });
        candidates
    }

    fn earliest_pending_return(&self, linearized: &Bits) -> Option<usize> {
        self.by_return
            .iter()
            .find(|i| !linearized.contains(**i))
            .and_then(|i| self.ops[*i].returns)
    }

    fn name(&self, index: usize) -> String {
        match self.ops[index].record {
            Some(record) => format!("op {} ({})", record.id, record.operation.describe()),
            None => "the leader's close of the auction".to_owned(),
        }
    }

    /// Remembers the exhausted frame if it got further than any before.
    fn note_dead_end(&mut self, frames: &[Frame]) {
        let Some(frame) = frames.last() else { return };
        let acknowledged = self
            .by_return
            .iter()
            .filter(|i| frame.linearized.contains(**i))
            .count();
        if self.deepest.recorded && acknowledged <= self.deepest.acknowledged {
            return;
        }
        self.deepest = Deepest {
            recorded: true,
            acknowledged,
            path: frames
                .iter()
                .flat_map(|f| f.entered.iter().copied())
                .collect(),
            blocker: self
                .by_return
                .iter()
                .copied()
                .find(|i| !frame.linearized.contains(*i)),
            mismatches: frame.mismatches.clone(),
        };
    }

    fn explain(&self) -> String {
        let deepest = &self.deepest;
        let skipped = deepest
            .path
            .len()
            .saturating_sub(EXPLANATION_PATH_STEPS_MAX);
        let mut path: Vec<String> = deepest
            .path
            .iter()
            .skip(skipped)
            .map(|i| match self.ops[*i].record {
                Some(record) => record.id.to_string(),
                None => "close".to_owned(),
            })
            .collect();
        if skipped > 0 {
            path.insert(0, format!("{skipped} earlier ops..."));
        }
        let blocker = deepest
            .blocker
            .map_or_else(|| "none".to_owned(), |i| self.name(i));
        let reasons = if deepest.mismatches.is_empty() {
            "no candidate was left to try".to_owned()
        } else {
            deepest.mismatches.join("; ")
        };
        format!(
            "longest linearization found: [{}] ({} of {} acknowledged operations); after it, \
             nothing could be placed before {} completed: {}",
            path.join(", "),
            deepest.acknowledged,
            self.by_return.len(),
            blocker,
            reasons
        )
    }
}
