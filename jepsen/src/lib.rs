//! # auction-jepsen
//!
//! Judges histories of client operations against an auction cluster, Jepsen style. The
//! deterministic simulator (`sim/`) and the Jepsen harness record what their clients invoked
//! and saw as a [`History`]; at the end of a run they read the final state of one replica per
//! shard into a [`FinalState`] and digest every replica of every group ([`replica_digest`]);
//! [`check_run`] then runs every checker and returns a [`Report`].
//!
//! A simulator's run, in short:
//!
//! ```text
//! history.invoke(client, clock, Operation::write(WriteRequest { request_id, idempotency_key, op }));
//! ... later, for the same client:
//! history.complete(client, clock, Completion::Ok(OkValue::Write { result, effective_ts }));
//!   or Completion::Fail { reason } (never proposed) or Completion::Info { reason, proposed_ts }
//! history.invoke(client, clock, Operation::Read { auction_id });
//! history.complete(client, clock, Completion::Ok(OkValue::Read { auction: Some(ObservedAuction::of(&a)) }));
//! ... at the end, after the cluster is quiet:
//! final_state.read_all(&one_replica_store_of_each_shard)?;          (once per shard)
//! digests.push(replica_digest(group, "n1", store.iter()));           (per replica and group)
//! let report = check_run(&history, &final_state, &digests, &LinearizabilityConfig::default())?;
//! assert!(report.is_valid(), "{report}");   // report.to_json() for machines
//! ```
//!
//! Module map: [`history`] (the record: events, operations, JSON lines), [`model`] (the state
//! machine as the sequential model of one auction), [`linearizability`] (WGL search with
//! memoization, per auction), [`checks`] (lost bids, duplicate applies, replica agreement,
//! invariants), [`timing`] (effective times against real time, endings and anti-sniping,
//! closes after healing), [`report`] (the summary).
//!
//! The model is the production state machine itself, so the checker judges the cluster
//! (replication, leader changes, retries, de-duplication, reads) and not the auction rules,
//! which `auction-statemachine`'s own tests cover.
//!
//! Not done yet: the harness half of the crate (HTTP clients, nemesis, run loop) and its
//! binary; checks of list reads (my bids, watchlists, search) and of the meta group (users,
//! sessions, bans); a projection mode for clients that see less than the full outcome (an
//! HTTP bid response has no steps and no effective time).

pub mod checks;
pub mod history;
pub mod linearizability;
pub mod model;
pub mod report;
pub mod timing;

pub use checks::{
    check_acknowledged_bids, check_invariants, check_no_duplicate_apply, check_replicas_agree,
    replica_digest, FinalAuction, FinalState, ReplicaDigest,
};
pub use history::{
    Completion, Event, EventKind, History, HistoryError, ObservedAuction, OkValue, OpCounts, OpId,
    OpRecord, OpStatus, Operation, ProcessId, Scope, WriteRequest,
};
pub use linearizability::{
    check_auction, check_history, check_records, partition, AuctionCheck, LinearizabilityConfig,
    Verdict, Window, SEARCH_STATES_MAX_DEFAULT,
};
pub use report::{CheckOutcome, CheckStatus, Report};
pub use timing::{check_closes_in_time, check_effective_times, check_endings, TimingConfig};

/// Runs every check on a run: linearizability per auction, no lost bids, no duplicate applies,
/// replica agreement, invariants and endings.
pub fn check_run(
    history: &History,
    final_state: &FinalState,
    replicas: &[ReplicaDigest],
    config: &LinearizabilityConfig,
) -> Result<Report, HistoryError> {
    check_run_timed(history, final_state, replicas, config, None)
}

/// [`check_run`], plus the real-time checks of [`timing`] when the history's times are real
/// milliseconds and `timing` says how they map to the cluster's clocks.
pub fn check_run_timed(
    history: &History,
    final_state: &FinalState,
    replicas: &[ReplicaDigest],
    config: &LinearizabilityConfig,
    timing: Option<&TimingConfig>,
) -> Result<Report, HistoryError> {
    let records = history.operations()?;
    let auctions = check_records(&records, config);
    let mut checks = vec![
        report::linearizability_outcome(&auctions),
        check_acknowledged_bids(&records, final_state),
        check_no_duplicate_apply(&records, final_state),
        check_replicas_agree(replicas),
        check_invariants(&records, final_state),
        check_endings(&records, final_state),
    ];
    if let Some(timing) = timing {
        checks.push(check_effective_times(history, &records, timing));
        checks.push(check_closes_in_time(final_state, timing));
    }
    Ok(Report {
        counts: OpCounts::of(&records),
        checks,
        auctions,
    })
}
