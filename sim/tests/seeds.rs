//! Many seeds of 30 simulated seconds with every fault kind must pass: the CI-sized sweep.
//!
//! 200 seeds on 3 nodes (two tests of 100, so the test harness runs them on two threads) and
//! 20 seeds on 5 nodes. Measured on the 2-core CI machine: about 1.0 s of wall time per 3-node
//! seed and 1.4 s per 5-node seed. A failure names the seed and the command that reproduces it.
//! `cargo test --release -p auction-sim --test seeds -- --ignored` runs them all, with the
//! 2,000-seed sweep.
//!
//! The workspace builds with `--cfg tokio_unstable` (`cluster/bin/env.sh`), so every seed is
//! reproducible and these sweeps run in CI. Seed 42 found a real bug this way: a crashed leader
//! restored its leadership at restart with a log behind the cluster's and served a stale read;
//! fixed with `enable_leader_restore: Some(false)` in `raft/src/host/config.rs`.

use auction_sim::{run_seeds, SimConfig};

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
            format!("{report}reproduce with: {}", config.reproduce_command())
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

#[test]
fn twenty_seeds_pass_on_five_nodes() {
    let base = SimConfig {
        nodes: 5,
        ..SimConfig::new(0)
    };
    assert_seeds_pass(&base, 500, 20);
}

#[test]
#[ignore = "the 2,000-seed sweep: about 35 minutes on one core"]
fn two_thousand_seeds_pass() {
    assert_seeds_pass(&SimConfig::new(0), 1_000, 2_000);
}
