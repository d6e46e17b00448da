//! Many seeds of 30 simulated seconds with every fault kind must pass: the CI-sized sweep.
//!
//! 200 seeds on 3 nodes and 20 seeds on 5 nodes, as four tests (100, 100, 10, 10 seeds) so
//! the test harness keeps both threads busy to the end. Every fault kind, overlapping faults,
//! node removals and the HTTP API clients are in. Measured on the idle 2-core CI machine:
//! about 1.0 s of CPU per 3-node seed and 1.5 s per 5-node seed, 108 s of wall time for the
//! whole test (`time cargo test --release -p auction-sim --test seeds`). A failure names the
//! seed, the command that reproduces it and the verdict of that command run in a fresh
//! process.
//! `cargo test --release -p auction-sim --test seeds -- --ignored` runs them all, with the
//! 2,000-seed sweep.
//!
//! The workspace builds with `--cfg tokio_unstable` (`cluster/bin/env.sh`), so every seed is
//! reproducible and these sweeps run in CI. Seed 42 found a real bug this way: a crashed leader
//! restored its leadership at restart with a log behind the cluster's and served a stale read;
//! fixed with `enable_leader_restore: Some(false)` in `raft/src/host/config.rs`.

use auction_sim::{replay_in_fresh_process, run_seeds, SimConfig};

fn assert_seeds_pass(base: &SimConfig, first: u64, count: u64) {
    let summary = run_seeds(base, first, count, false, |_| {});
    let failures: Vec<String> = summary
        .failed
        .iter()
        .map(|(seed, report)| {
            let config = SimConfig {
                seed: *seed,
                ..base.clone()
            };
            format!(
                "{report}reproduce with: {}\nreplayed in a fresh process: {}",
                config.reproduce_command(),
                replay_in_fresh_process(std::path::Path::new(env!("CARGO_BIN_EXE_sim")), &config)
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {count} seeds failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(summary.passed.len() as u64, count, "every seed ran");
}

#[test]
fn seeds_0_to_99_pass_on_three_nodes() {
    assert_seeds_pass(&SimConfig::new(0), 0, 100);
}

#[test]
fn seeds_100_to_199_pass_on_three_nodes() {
    assert_seeds_pass(&SimConfig::new(0), 100, 100);
}

fn five_nodes() -> SimConfig {
    SimConfig {
        nodes: 5,
        ..SimConfig::new(0)
    }
}

#[test]
fn seeds_500_to_509_pass_on_five_nodes() {
    assert_seeds_pass(&five_nodes(), 500, 10);
}

#[test]
fn seeds_510_to_519_pass_on_five_nodes() {
    assert_seeds_pass(&five_nodes(), 510, 10);
}

#[test]
#[ignore = "the 2,000-seed sweep: about 35 minutes on one core"]
fn two_thousand_seeds_pass() {
    assert_seeds_pass(&SimConfig::new(0), 1_000, 2_000);
}
