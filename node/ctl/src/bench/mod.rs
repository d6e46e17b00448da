//! `auctionctl bench`: a load generator through the HTTP API of one or more nodes.
//!
//! Setup ([`setup`]): registers and logs in `--users` users and creates `--auctions`
//! auctions (sellers among the users, a fixed increment of 1.00, long enough that none ends
//! during the run; `--no-anti-snipe` turns anti-sniping off). Measured phase ([`client`]):
//! `--clients` concurrent tasks, for `--duration-secs` or `--requests` operations, each
//! picking an operation from `--mix` ([`mix`]: manual bids, proxy bids, single-auction reads,
//! bid histories, listings) and an auction with `--hot-auctions`/`--hot-share` skew
//! ([`skew`]), sending it to the nodes in turn with bounded retries on 503/504/connection
//! errors ([`http`]; writes carry an `X-Idempotency-Key`). Bids are made from what earlier
//! answers said about the price ([`world`]), so most are valid; a bid refused because another
//! got there first is a normal outcome, counted by code. The report ([`stats`]): per
//! operation count, ops/s, p50/p95/p99/max latency and answers by status and code, as a table
//! or (`--json`) one JSON document on stdout. A progress bar goes to stderr when it is a
//! terminal.
//!
//! Everything is bounded (clients, users, auctions, time, requests, retries, body sizes).
//! Bids are rate-limited per user by the nodes (10 per minute in production; the local dev
//! cluster allows 6000): spread them over enough users, and look for `429 RATE_LIMITED` in
//! the answers.
//!
//! Not done yet: buy-now and watchlist operations, SSE subscribers as part of the load,
//! open-loop (fixed arrival rate) mode: clients are closed-loop, so latency under overload
//! shows as lower throughput rather than as queueing delay.

pub mod client;
pub mod http;
pub mod mix;
pub mod money;
pub mod setup;
pub mod skew;
pub mod stats;
pub mod world;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use self::client::{Client, Settings, Stop};
use self::http::Http;
use self::mix::Mix;
use self::setup::AuctionShape;
use self::skew::Skew;
use self::stats::{Report, Stats};
use self::world::World;

pub const CLIENTS_MAX: usize = 1_024;
pub const USERS_MAX: usize = 100_000;
pub const AUCTIONS_MAX: usize = 100_000;
pub const NODES_MAX: usize = 64;
pub const RUN_SECONDS_MAX: u64 = 3_600;
pub const REQUESTS_MAX: u64 = 100_000_000;
pub const SETUP_REQUESTS_IN_FLIGHT_MAX: usize = 256;
pub const REQUEST_TIMEOUT_MS_MAX: u64 = 120_000;
/// Auctions last at most 90 days (the state machine's limit).
pub const AUCTION_DURATION_SECONDS_MAX: u64 = 90 * 24 * 60 * 60;
/// The run's length without `--duration-secs` or `--requests`.
const RUN_SECONDS_DEFAULT: u64 = 10;
/// Every auction starts at 10.00 and moves by 1.00.
const STARTING_CENTS: u64 = 1_000;
const INCREMENT_CENTS: u64 = 100;
/// How often the progress bar is redrawn.
const PROGRESS_TICK_MS: u64 = 200;

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Base URL of a node's HTTP API; repeat or separate with commas. Requests go to the
    /// nodes in turn.
    // The id `node` makes this shadow `auctionctl`'s global `--node`: a value given there
    // (before `bench`, or by `AUCTION_NODE_URL`) is taken when none is given here.
    #[arg(
        long = "node",
        id = "node",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083"
    )]
    pub nodes: Vec<String>,
    /// Users to register and log in (bidders and sellers).
    #[arg(long, default_value_t = 100)]
    pub users: usize,
    /// Auctions to create (`--auctions 1`: one hot auction).
    #[arg(long, default_value_t = 1_000)]
    pub auctions: usize,
    /// Concurrent clients of the measured phase.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Length of the measured phase (default 10 s when --requests is not given either).
    #[arg(long)]
    pub duration_secs: Option<u64>,
    /// Number of operations of the measured phase (with --duration-secs: whichever first).
    #[arg(long)]
    pub requests: Option<u64>,
    /// Operation weights: bid, proxy, read, history, list.
    #[arg(long, default_value = "bid=60,proxy=20,read=15,history=5")]
    pub mix: String,
    /// The first K auctions are hot (0: every auction equally likely).
    #[arg(long, default_value_t = 0)]
    pub hot_auctions: usize,
    /// Share of the operations that go to the hot auctions.
    #[arg(long, default_value_t = 0.9)]
    pub hot_share: f64,
    /// Single-auction reads and histories with `?consistency=local` instead of linearizable.
    #[arg(long)]
    pub local_reads: bool,
    /// Create the auctions with anti-sniping off.
    #[arg(long)]
    pub no_anti_snipe: bool,
    /// How long the auctions last (they must not end during the run).
    #[arg(long, default_value_t = 86_400)]
    pub auction_duration_secs: u64,
    /// Seed of the clients' random choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Retries of a request answered 503/504 or failing to connect, each on the next node.
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
    /// Time-out of one request attempt.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// Setup requests in flight (registration hashes passwords: mind the nodes' CPUs).
    #[arg(long, default_value_t = 16)]
    pub setup_concurrency: usize,
    /// Print one JSON document on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// The validated form of the arguments.
#[derive(Clone)]
struct Plan {
    mix: Mix,
    skew: Skew,
    run_for: Duration,
    budget: Option<u64>,
}

fn check_range<T: PartialOrd + std::fmt::Display>(
    name: &str,
    value: T,
    low: T,
    high: T,
) -> anyhow::Result<()> {
    ensure!(
        value >= low && value <= high,
        "{name} must be between {low} and {high}, not {value}"
    );
    Ok(())
}

fn plan(args: &BenchArgs) -> anyhow::Result<Plan> {
    check_range("--node (count)", args.nodes.len(), 1, NODES_MAX)?;
    check_range("--clients", args.clients, 1, CLIENTS_MAX)?;
    check_range("--users", args.users, 2, USERS_MAX)?;
    check_range("--auctions", args.auctions, 1, AUCTIONS_MAX)?;
    check_range("--retries", args.retries, 0, http::RETRIES_MAX)?;
    check_range("--timeout-ms", args.timeout_ms, 100, REQUEST_TIMEOUT_MS_MAX)?;
    check_range(
        "--setup-concurrency",
        args.setup_concurrency,
        1,
        SETUP_REQUESTS_IN_FLIGHT_MAX,
    )?;
    check_range(
        "--auction-duration-secs",
        args.auction_duration_secs,
        60,
        AUCTION_DURATION_SECONDS_MAX,
    )?;
    if let Some(seconds) = args.duration_secs {
        check_range("--duration-secs", seconds, 1, RUN_SECONDS_MAX)?;
        ensure!(
            seconds < args.auction_duration_secs,
            "--auction-duration-secs must be longer than the run"
        );
    }
    if let Some(requests) = args.requests {
        check_range("--requests", requests, 1, REQUESTS_MAX)?;
    }
    let seconds = match (args.duration_secs, args.requests) {
        (Some(seconds), _) => seconds,
        (None, Some(_)) => RUN_SECONDS_MAX.min(args.auction_duration_secs),
        (None, None) => RUN_SECONDS_DEFAULT,
    };
    Ok(Plan {
        mix: Mix::parse(&args.mix)?,
        skew: Skew::new(args.auctions, args.hot_auctions, args.hot_share)?,
        run_for: Duration::from_secs(seconds),
        budget: args.requests,
    })
}

/// A bar on stderr (hidden when stderr is not a terminal).
fn bar(length: u64, message: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(length).with_message(message);
    let style = ProgressStyle::with_template("{msg:>14} [{bar:40}] {pos}/{len} {elapsed}")
        .map(|style| style.progress_chars("=> "));
    if let Ok(style) = style {
        bar.set_style(style);
    }
    bar
}

/// An id that keeps this run's names apart from earlier runs' on the same cluster.
fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    format!(
        "{:x}",
        (nanos as u64) ^ u64::from(std::process::id()).rotate_left(40)
    )
}

async fn set_up(args: &BenchArgs, http: &Arc<Http>, run: &Arc<str>) -> anyhow::Result<World> {
    let progress = bar(args.users as u64, "users");
    let users = setup::users(
        http.clone(),
        run.clone(),
        args.users,
        args.setup_concurrency,
        progress.clone(),
    )
    .await?;
    progress.finish_and_clear();
    let users = Arc::new(users);
    let shape = AuctionShape {
        starting_cents: STARTING_CENTS,
        increment_cents: INCREMENT_CENTS,
        duration_seconds: args.auction_duration_secs,
        anti_snipe: !args.no_anti_snipe,
    };
    let progress = bar(args.auctions as u64, "auctions");
    let auctions = setup::auctions(
        http.clone(),
        run.clone(),
        users.clone(),
        args.auctions,
        shape,
        args.setup_concurrency,
        progress.clone(),
    )
    .await?;
    progress.finish_and_clear();
    let users = Arc::try_unwrap(users).unwrap_or_else(|shared| shared.as_ref().clone());
    Ok(World::new(users, auctions, INCREMENT_CENTS))
}

/// A bar redrawn every [`PROGRESS_TICK_MS`] by a task that runs until it is aborted.
fn progress_ticker(
    plan: &Plan,
    completed: Arc<AtomicU64>,
) -> (ProgressBar, tokio::task::JoinHandle<()>) {
    let by_count = plan.budget.is_some();
    let length = plan.budget.unwrap_or(plan.run_for.as_millis() as u64);
    let progress = bar(length, if by_count { "operations" } else { "ms" });
    let (ticking, started) = (progress.clone(), Instant::now());
    let ticker = tokio::spawn(async move {
        loop {
            let done = completed.load(Ordering::Relaxed);
            let position = if by_count {
                done
            } else {
                started.elapsed().as_millis() as u64
            };
            ticking.set_position(position.min(length));
            tokio::time::sleep(Duration::from_millis(PROGRESS_TICK_MS)).await;
        }
    });
    (progress, ticker)
}

async fn measure(
    args: &BenchArgs,
    plan: Plan,
    http: Arc<Http>,
    world: Arc<World>,
    run: Arc<str>,
) -> anyhow::Result<(Stats, Duration)> {
    let settings = Arc::new(Settings {
        mix: plan.mix.clone(),
        skew: plan.skew.clone(),
        local_reads: args.local_reads,
        run,
    });
    let completed = Arc::new(AtomicU64::new(0));
    let (progress, ticker) = progress_ticker(&plan, completed.clone());
    let started = Instant::now();
    let stop = Arc::new(Stop::new(started + plan.run_for, plan.budget));
    let mut clients = tokio::task::JoinSet::new();
    for index in 0..args.clients {
        let client = Client::new(
            index,
            args.seed,
            http.clone(),
            world.clone(),
            settings.clone(),
        );
        clients.spawn(client.run(stop.clone(), completed.clone()));
    }
    let mut stats = Stats::default();
    while let Some(joined) = clients.join_next().await {
        stats.merge(&joined.context("a client panicked")?);
    }
    let elapsed = started.elapsed();
    ticker.abort();
    progress.finish_and_clear();
    Ok((stats, elapsed))
}

fn document(
    args: &BenchArgs,
    plan: &Plan,
    setup_seconds: f64,
    report: &Report,
) -> serde_json::Value {
    json!({
        "config": {
            "nodes": args.nodes,
            "clients": args.clients,
            "users": args.users,
            "auctions": args.auctions,
            "hotAuctions": args.hot_auctions,
            "hotShare": args.hot_share,
            "mix": plan.mix.to_string(),
            "localReads": args.local_reads,
            "antiSnipe": !args.no_anti_snipe,
            "seed": args.seed,
            "durationSecs": plan.run_for.as_secs(),
            "requests": plan.budget,
            "retries": args.retries,
        },
        "setupSeconds": setup_seconds,
        "elapsedSeconds": report.elapsed_seconds,
        "operations": report.operations,
        "total": report.total,
        "unexpectedErrors": report.total.errors,
    })
}

/// The first line of the table: what ran.
fn headline(args: &BenchArgs, plan: &Plan, elapsed_seconds: f64) -> String {
    let hot = if args.hot_auctions == 0 || args.hot_auctions == args.auctions {
        "no hot set".to_owned()
    } else {
        format!(
            "{} hot with {:.0}% of the operations",
            args.hot_auctions,
            args.hot_share * 100.0
        )
    };
    format!(
        "{} nodes, {} clients, {} users, {} auctions ({hot}), mix {}, {elapsed_seconds:.1} s, seed {}",
        args.nodes.len(),
        args.clients,
        args.users,
        args.auctions,
        plan.mix,
        args.seed
    )
}

/// Runs the whole benchmark and prints its report.
pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let plan = plan(args)?;
    let http = Arc::new(Http::new(
        args.nodes.clone(),
        Duration::from_millis(args.timeout_ms),
        args.retries,
    )?);
    let run: Arc<str> = run_id().into();
    let setup_started = Instant::now();
    let world = Arc::new(set_up(args, &http, &run).await.context("setup failed")?);
    let setup_seconds = setup_started.elapsed().as_secs_f64();
    eprintln!(
        "setup: {} users and {} auctions in {setup_seconds:.1} s; running {} clients, mix {}",
        args.users, args.auctions, args.clients, plan.mix
    );
    let (stats, elapsed) = measure(args, plan.clone(), http, world, run).await?;
    let report = Report::new(&stats, elapsed);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&document(args, &plan, setup_seconds, &report))?
        );
    } else {
        println!("{}\n", headline(args, &plan, report.elapsed_seconds));
        print!("{}", report.table());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn args(line: &[&str]) -> BenchArgs {
        Cli::try_parse_from(std::iter::once("bench").chain(line.iter().copied()))
            .expect("parses")
            .bench
    }

    #[test]
    fn nodes_are_repeatable_or_comma_separated() {
        let parsed = args(&["--node", "http://a:1,http://b:2", "--node", "http://c:3"]);
        assert_eq!(parsed.nodes, ["http://a:1", "http://b:2", "http://c:3"]);
        assert_eq!(args(&[]).nodes.len(), 3, "the local cluster by default");
    }

    #[test]
    fn the_run_lasts_a_duration_or_a_count() {
        let default = plan(&args(&[])).expect("valid");
        assert_eq!(
            (default.run_for, default.budget),
            (Duration::from_secs(10), None)
        );
        let counted = plan(&args(&["--requests", "500"])).expect("valid");
        assert_eq!(
            (counted.run_for, counted.budget),
            (Duration::from_secs(RUN_SECONDS_MAX), Some(500))
        );
        let both = plan(&args(&["--requests", "500", "--duration-secs", "5"])).expect("valid");
        assert_eq!(
            (both.run_for, both.budget),
            (Duration::from_secs(5), Some(500))
        );
    }

    #[test]
    fn everything_is_bounded() {
        for line in [
            &["--clients", "0"][..],
            &["--clients", "1025"],
            &["--users", "1"],
            &["--users", "100001"],
            &["--auctions", "0"],
            &["--duration-secs", "0"],
            &["--duration-secs", "3601"],
            &["--requests", "0"],
            &["--retries", "11"],
            &["--hot-auctions", "2", "--auctions", "1"],
            &["--hot-share", "1.5"],
            &["--mix", "bid=0"],
            &["--duration-secs", "100", "--auction-duration-secs", "60"],
        ] {
            assert!(plan(&args(line)).is_err(), "{line:?} should be refused");
        }
    }
}
