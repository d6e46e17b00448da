//! `sim`: runs deterministic simulations of the auction cluster.
//!
//! ```text
//! sim --seed 42                       one run, seed 42
//! sim --seed 1000 --seeds 200         seeds 1000..1200, stops at the first failure
//! sim --seeds 50 --nodes 5 --faults partition,crash --duration 60
//! ```
//!
//! On a failure it prints the report, the seed and the command that reproduces the run, and
//! exits with status 1.

use std::process::ExitCode;
use std::time::Instant;

use auction_sim::{replay_in_fresh_process, run_seeds, FaultMix, SimConfig};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "sim",
    about = "Deterministic simulation of the auction cluster"
)]
struct Args {
    /// The first seed (the only one unless --seeds is given).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// How many consecutive seeds to run.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// Simulated seconds of workload and faults per run.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Nodes in the cluster (3 or 5).
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Auction shards.
    #[arg(long, default_value_t = 2)]
    shards: u32,
    /// Concurrent client processes.
    #[arg(long, default_value_t = 5)]
    clients: u64,
    /// Hot auctions.
    #[arg(long, default_value_t = 4)]
    auctions: u64,
    /// Fault kinds: all, none, or a comma list of partition, crash, hold, latency,
    /// membership, transfer, clock, disk.
    #[arg(long, default_value = "all")]
    faults: FaultMix,
    /// PLANTED BUG, for reproducing a planted-bug test: skip-dedup, ack-before-commit,
    /// restore-leadership, local-linearizable-read or unbounded-stamps.
    #[arg(long, hide = true)]
    planted: Option<auction_sim::PlantedBug>,
    /// Keep going after a failure.
    #[arg(long)]
    keep_going: bool,
    /// Write each run's history (JSON lines) to DIR/seed-N.jsonl, to re-check or compare.
    #[arg(long, value_name = "DIR")]
    history_dir: Option<std::path::PathBuf>,
    /// Print the fault schedule of every run.
    #[arg(long)]
    verbose: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Logs go to stderr, without wall-clock times, so two runs of one seed can be compared.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .without_time()
        .with_writer(std::io::stderr)
        .init();
    if !(1..=9).contains(&args.nodes) {
        eprintln!("--nodes must be between 1 and 9");
        return ExitCode::FAILURE;
    }
    let base = SimConfig {
        seed: args.seed,
        duration_ms: args.duration.saturating_mul(1_000),
        nodes: args.nodes,
        shards: args.shards.max(1),
        clients: args.clients.max(1),
        auctions: args.auctions.max(1),
        faults: args.faults.clone(),
        planted: args.planted,
        ..SimConfig::new(args.seed)
    };
    let started = Instant::now();
    let summary = run_seeds(&base, args.seed, args.seeds, !args.keep_going, |outcome| {
        print!("{outcome}");
        if args.verbose {
            for line in &outcome.faults {
                println!("    {line}");
            }
        }
        if let Some(dir) = &args.history_dir {
            let path = dir.join(format!("seed-{}.jsonl", outcome.config.seed));
            let written = outcome
                .history
                .to_json_lines()
                .map_err(|error| error.to_string())
                .and_then(|lines| std::fs::write(&path, lines).map_err(|error| error.to_string()));
            if let Err(error) = written {
                eprintln!("cannot write {}: {error}", path.display());
            }
        }
        if !outcome.passed() {
            println!(
                "FAILED seed {}; reproduce with:\n  {}",
                outcome.config.seed,
                outcome.config.reproduce_command()
            );
            if args.seeds > 1 {
                println!(
                    "  replay in a fresh process: {}",
                    std::env::current_exe().map_or_else(
                        |error| format!("cannot find this program: {error}"),
                        |exe| replay_in_fresh_process(&exe, &outcome.config)
                    )
                );
            }
        }
    });
    let elapsed = started.elapsed();
    let runs = summary.passed.len() + summary.failed.len();
    println!(
        "{} passed, {} failed of {runs} runs in {:.1} s ({:.2} s per run)",
        summary.passed.len(),
        summary.failed.len(),
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() / runs.max(1) as f64
    );
    if summary.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        for (seed, _) in &summary.failed {
            let config = SimConfig {
                seed: *seed,
                ..base.clone()
            };
            println!("failing seed {seed}: {}", config.reproduce_command());
        }
        ExitCode::FAILURE
    }
}
