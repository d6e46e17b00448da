//! Planted-bug proofs: with one known bug switched on (test-only switches behind the
//! `planted-bugs` features of `auction-statemachine` and `auction-raft`), the simulator must
//! find a violation within [`SEEDS_MAX`] seeds, and the first seed that fails must pass without
//! the bug. Each test prints the number of seeds it took; the counts measured are in the
//! README.
//!
//! The switches are process-wide, so the tests of this binary take one lock and run one at a
//! time, and no other test binary shares their process.

use std::sync::Mutex;

use auction_sim::{run, PlantedBug, RunOutcome, SimConfig};

/// Seeds the simulator may take to find a planted bug.
const SEEDS_MAX: u64 = 100;

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs seeds from `first` with `bug` on until one fails; checks that one of `checks` caught
/// it and that the seed passes without the bug. Returns the number of seeds it took.
fn find(bug: PlantedBug, base: SimConfig, first: u64, checks: &[&str]) -> u64 {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut found: Option<(u64, RunOutcome)> = None;
    for seed in first..first + SEEDS_MAX {
        let outcome = run(&SimConfig {
            seed,
            planted: Some(bug),
            ..base.clone()
        });
        if !outcome.passed() {
            found = Some((seed, outcome));
            break;
        }
    }
    let Some((seed, outcome)) = found else {
        panic!(
            "the planted bug {} went unnoticed for {SEEDS_MAX} seeds",
            bug.name()
        );
    };
    let caught_by = |name: &str| {
        outcome
            .report
            .as_ref()
            .and_then(|report| report.check(name))
            .is_some_and(|check| check.is_failed())
    };
    let problems = outcome
        .problems
        .iter()
        .any(|problem| checks.iter().any(|check| problem.0.contains(check)));
    assert!(
        checks.iter().any(|check| caught_by(check)) || problems,
        "seed {seed} must fail one of {checks:?}:\n{outcome}"
    );
    let seeds = seed - first + 1;
    println!(
        "planted bug {} found at seed {seed} ({seeds} of at most {SEEDS_MAX} seeds):\n{outcome}",
        bug.name()
    );
    let control = run(&SimConfig {
        seed,
        ..base.clone()
    });
    assert!(
        control.passed(),
        "seed {seed} must pass without the planted bug:\n{control}"
    );
    seeds
}

#[test]
fn skipping_deduplication_is_found_within_100_seeds() {
    let seeds = find(
        PlantedBug::SkipDedup,
        SimConfig::new(0),
        0,
        &["no duplicate applies", "linearizability"],
    );
    assert!(seeds <= SEEDS_MAX);
}

#[test]
fn acknowledging_before_commit_is_found_within_100_seeds() {
    let seeds = find(
        PlantedBug::AcknowledgeBeforeCommit,
        SimConfig::new(0),
        0,
        &["linearizability", "no lost bids", "took effect"],
    );
    assert!(seeds <= SEEDS_MAX);
}

/// The seed-42 scenario needs a leader that crashes with appends its followers committed but
/// it had not synced, and comes back before anyone else leads: the disk fault's slow syncs and
/// bounces make exactly that.
#[test]
fn restoring_leadership_on_restart_is_found_within_100_seeds() {
    let base = SimConfig {
        faults: "disk".parse().expect("fault mix"),
        ..SimConfig::new(0)
    };
    let seeds = find(
        PlantedBug::RestoreLeadership,
        base,
        0,
        &[
            "linearizability",
            "no lost bids",
            "invariants",
            "replicas agree",
        ],
    );
    assert!(seeds <= SEEDS_MAX);
}

/// The seed that found the restore-leadership bug (see the README) passes with the fix.
#[test]
fn seed_42_passes() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let outcome = run(&SimConfig::new(42));
    assert!(outcome.passed(), "{outcome}");
}

#[test]
fn linearizable_reads_from_the_local_replica_are_found_within_100_seeds() {
    let seeds = find(
        PlantedBug::LocalLinearizableRead,
        SimConfig::new(0),
        0,
        &["linearizability", "invariants"],
    );
    assert!(seeds <= SEEDS_MAX);
}

#[test]
fn stamps_without_the_skew_bound_are_found_within_100_seeds() {
    let base = SimConfig {
        faults: "clock".parse().expect("fault mix"),
        ..SimConfig::new(0)
    };
    let seeds = find(
        PlantedBug::UnboundedStamps,
        base,
        0,
        &["effective times in real time", "auctions close in time"],
    );
    assert!(seeds <= SEEDS_MAX);
}
