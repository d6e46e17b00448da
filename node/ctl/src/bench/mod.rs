//! `auctionctl bench`: a load generator through the HTTP API of one or more nodes.
//!
//! Setup ([`setup`]): registers and logs in `--users` users and creates `--auctions`
//! auctions (sellers among the users, a fixed increment of 1.00, long enough that none ends
//! during the run; `--no-anti-snipe` turns anti-sniping off), then has every node read every
//! auction linearizably, so that local reads afterwards find them. Measured phase
//! ([`measure`], [`client`]): `--clients` concurrent tasks, for `--duration-secs` or
//! `--requests` operations, closed loop or (`--rate N`) open loop at N operations a second
//! with latency counted from each operation's intended start ([`pace`]), each
//! picking an operation from `--mix` ([`mix`]: manual bids, proxy bids, single-auction reads,
//! bid histories, listings, searches of the generated titles: [`catalog`]) and an auction with
//! `--hot-auctions`/`--hot-share` skew
//! ([`skew`]), sending it to the nodes in turn with bounded retries on 503/504/connection
//! errors ([`http`]; writes carry an `X-Idempotency-Key`). Bids are made from what earlier
//! answers said about the price ([`world`]), so most are valid; a bid refused because another
//! got there first is a normal outcome, counted by code. The report ([`stats`],
//! [`document`]): per operation count, ops/s, p50/p95/p99/max latency and answers by status
//! and code; the CPU seconds of the `--cpu-pids` processes and of the load generator over the
//! measured phase and their RSS ([`resources`], [`procfs`]); the WAL syncs the nodes made
//! ([`metrics`]); as a table or (`--json`) one JSON document on stdout. A progress bar goes to
//! stderr when it is a terminal.
//!
//! Everything is bounded (clients, users, auctions, time, requests, retries, body sizes).
//! Bids are rate-limited per user by the nodes (10 per minute in production; the local dev
//! cluster allows 6000): spread them over enough users, and look for `429 RATE_LIMITED` in
//! the answers.
//!
//! Not done yet: buy-now and watchlist operations, SSE subscribers as part of the load,
//! randomised (Poisson) open-loop arrivals, a warm-up before the measured phase.

pub mod catalog;
pub mod client;
mod document;
pub mod http;
mod measure;
pub mod metrics;
pub mod mix;
pub mod money;
pub mod pace;
pub mod procfs;
pub mod resources;
pub mod setup;
pub mod skew;
pub mod stats;
pub mod world;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use self::http::Http;
use self::mix::Mix;
use self::resources::Watch;
use self::setup::AuctionShape;
use self::skew::Skew;
use self::stats::Report;
use self::world::World;

pub const CLIENTS_MAX: usize = 1_024;
pub const USERS_MAX: usize = 100_000;
pub const AUCTIONS_MAX: usize = 100_000;
pub const NODES_MAX: usize = 64;
/// Most processes named by `--cpu-pids`.
pub const CPU_PIDS_MAX: usize = 64;
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
    /// Operation weights: bid, proxy, read, history, list, search.
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
    /// Open loop: offer this many operations per second, evenly spaced, with latency counted
    /// from each one's intended start; --clients bounds the operations in flight. Without
    /// it, closed loop.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Process ids (the nodes; comma-separated) whose CPU seconds over the measured phase
    /// and whose RSS at its end are reported, from /proc.
    #[arg(long, value_delimiter = ',')]
    pub cpu_pids: Vec<procfs::Pid>,
}

/// The validated form of the arguments.
#[derive(Clone)]
struct Plan {
    mix: Mix,
    skew: Skew,
    run_for: Duration,
    budget: Option<u64>,
    /// Open loop's operations per second; `None`: closed loop.
    rate_per_second: Option<u64>,
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
    if let Some(rate) = args.rate {
        check_range("--rate", rate, 1, pace::RATE_PER_SECOND_MAX)?;
    }
    check_range("--cpu-pids (count)", args.cpu_pids.len(), 0, CPU_PIDS_MAX)?;
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
        rate_per_second: args.rate,
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
    let ids: Vec<String> = auctions.iter().map(|auction| auction.id.clone()).collect();
    let progress = bar((ids.len() * http.node_count()) as u64, "settling");
    setup::settle(
        http.clone(),
        Arc::new(ids),
        args.setup_concurrency,
        progress.clone(),
    )
    .await?;
    progress.finish_and_clear();
    let users = Arc::try_unwrap(users).unwrap_or_else(|shared| shared.as_ref().clone());
    Ok(World::new(users, auctions, INCREMENT_CENTS))
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
    let pace = plan.rate_per_second.map_or_else(
        || "closed loop".to_owned(),
        |rate| format!("open loop at {rate}/s"),
    );
    format!(
        "{} nodes, {} clients ({pace}), {} users, {} auctions ({hot}), mix {}, {elapsed_seconds:.1} s, seed {}",
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
    let watch = Watch::new(args.cpu_pids.clone())?;
    let run: Arc<str> = run_id().into();
    let setup_started = Instant::now();
    let world = Arc::new(set_up(args, &http, &run).await.context("setup failed")?);
    let setup_seconds = setup_started.elapsed().as_secs_f64();
    eprintln!(
        "setup: {} users and {} auctions in {setup_seconds:.1} s; running {} clients, mix {}",
        args.users, args.auctions, args.clients, plan.mix
    );
    let measured = measure::measure(args, plan.clone(), http, world, run, &watch).await?;
    let report = Report::new(&measured.stats, measured.elapsed);
    if args.json {
        let json = document::document(args, &plan, setup_seconds, &report, &measured);
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!("{}\n", headline(args, &plan, report.elapsed_seconds));
        print!("{}", report.table());
        print!("\n{}", document::footer(&report, &measured));
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
    fn rate_and_cpu_pids_are_optional() {
        let closed = args(&[]);
        assert_eq!((closed.rate, closed.cpu_pids.len()), (None, 0));
        assert_eq!(plan(&closed).expect("valid").rate_per_second, None);
        let open = args(&["--rate", "250", "--cpu-pids", "11,12", "--cpu-pids", "13"]);
        assert_eq!(open.cpu_pids, [11, 12, 13]);
        assert_eq!(plan(&open).expect("valid").rate_per_second, Some(250));
        let listed = (1..=65)
            .map(|pid| pid.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert!(plan(&args(&["--cpu-pids", &listed])).is_err(), "65 pids");
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
            &["--rate", "0"],
            &["--rate", "1000001"],
        ] {
            assert!(plan(&args(line)).is_err(), "{line:?} should be refused");
        }
    }
}
