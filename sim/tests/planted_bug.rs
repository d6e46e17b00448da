//! Planted-bug proof: with the state machine's de-duplication switched off (a test-only switch
//! behind the `planted-bugs` feature of `auction-statemachine`), retried writes apply twice and
//! the simulator must find a violation within 100 seeds; the same seed without the bug passes.
//!
//! One test in its own binary: the switch is process-wide, and no other test may run while it
//! is on.

use auction_sim::{run, SimConfig};

/// Seeds the simulator may take to find the planted bug.
const SEEDS_MAX: u64 = 100;

#[test]
fn skipping_deduplication_is_found_within_100_seeds() {
    let mut found = None;
    for seed in 0..SEEDS_MAX {
        let config = SimConfig {
            planted_skip_dedup: true,
            ..SimConfig::new(seed)
        };
        let outcome = run(&config);
        if !outcome.passed() {
            found = Some((seed, outcome));
            break;
        }
    }
    let Some((seed, outcome)) = found else {
        panic!("the planted bug (no de-duplication) went unnoticed for {SEEDS_MAX} seeds");
    };
    let report = outcome
        .report
        .as_ref()
        .unwrap_or_else(|| panic!("seed {seed} failed without a report: {outcome}"));
    let caught_by = |name: &str| report.check(name).is_some_and(|check| check.is_failed());
    assert!(
        caught_by("no duplicate applies") || caught_by("linearizability"),
        "seed {seed} must fail a duplicate or linearizability check:\n{outcome}"
    );
    println!("planted bug found at seed {seed} (of {SEEDS_MAX}):\n{outcome}");
    let control = run(&SimConfig::new(seed));
    assert!(
        control.passed(),
        "seed {seed} must pass without the planted bug:\n{control}"
    );
}
