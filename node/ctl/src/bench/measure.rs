//! The measured phase: `--clients` [`Client`] tasks paced closed- or open-loop ([`pace`]),
//! bracketed by what it cost: the nodes' WAL counters are scraped first, then the CPU is
//! sampled right before the first operation; after the last one the CPU is sampled again,
//! then the counters are scraped and the nodes' RSS read. (Scrapes stay outside the CPU window
//! so that serving `/metrics` is not counted.)
//!
//! Not here: warm-up (the phase is measured from its first operation).
//!
//! [`pace`]: super::pace

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::ProgressBar;

use super::client::{Client, Settings};
use super::http::Http;
use super::metrics;
use super::pace::{Pace, Schedule, Stop};
use super::resources::{Cpu, Watch};
use super::stats::Stats;
use super::world::World;
use super::{bar, BenchArgs, Plan, PROGRESS_TICK_MS};

/// The open loop's counts: arrivals due, and taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrivals {
    pub rate_per_second: u64,
    pub offered: u64,
    pub started: u64,
}

/// What the measured phase recorded and cost.
pub struct Measured {
    pub stats: Stats,
    pub elapsed: Duration,
    pub cpu: Cpu,
    /// Per `--cpu-pids` process, at the end.
    pub rss_bytes: Vec<Option<u64>>,
    pub wal_syncs: Option<u64>,
    pub wal_synced_entries: Option<u64>,
    /// Per node, its search index at the end.
    pub search_index: Vec<metrics::IndexGauges>,
    /// `None` in the closed loop.
    pub arrivals: Option<Arrivals>,
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

fn pace(plan: &Plan, started: tokio::time::Instant) -> Pace {
    match plan.rate_per_second {
        None => Pace::Closed(Stop::new(started + plan.run_for, plan.budget)),
        Some(rate) => Pace::Open(Schedule::new(started, plan.run_for, rate, plan.budget)),
    }
}

pub async fn measure(
    args: &BenchArgs,
    plan: Plan,
    http: Arc<Http>,
    world: Arc<World>,
    run: Arc<str>,
    watch: &Watch,
) -> anyhow::Result<Measured> {
    let settings = Arc::new(Settings {
        mix: plan.mix.clone(),
        skew: plan.skew.clone(),
        local_reads: args.local_reads,
        run,
    });
    let wal_before = metrics::scrape(&http).await;
    let completed = Arc::new(AtomicU64::new(0));
    let (progress, ticker) = progress_ticker(&plan, completed.clone());
    let cpu_before = watch
        .sample()
        .context("before the measured phase: a --cpu-pids process is gone")?;
    let started = tokio::time::Instant::now();
    let pace = Arc::new(pace(&plan, started));
    let mut clients = tokio::task::JoinSet::new();
    for index in 0..args.clients {
        let client = Client::new(
            index,
            args.seed,
            http.clone(),
            world.clone(),
            settings.clone(),
        );
        clients.spawn(client.run(pace.clone(), completed.clone()));
    }
    let mut stats = Stats::default();
    while let Some(joined) = clients.join_next().await {
        stats.merge(&joined.context("a client panicked")?);
    }
    let elapsed = started.elapsed();
    let cpu_after = watch.sample_or_warn();
    ticker.abort();
    progress.finish_and_clear();
    let wal_after = metrics::scrape(&http).await;
    let (wal_syncs, wal_synced_entries) = metrics::deltas(&wal_before, &wal_after);
    let arrivals = match pace.as_ref() {
        Pace::Closed(_) => None,
        Pace::Open(schedule) => Some(Arrivals {
            rate_per_second: plan.rate_per_second.unwrap_or_default(),
            offered: schedule.offered(),
            started: schedule.started(),
        }),
    };
    Ok(Measured {
        stats,
        elapsed,
        cpu: Cpu::between(cpu_before, cpu_after, watch.ticks_per_second()),
        rss_bytes: watch.rss_bytes(),
        wal_syncs,
        wal_synced_entries,
        search_index: wal_after.iter().map(|scrape| scrape.index).collect(),
        arrivals,
    })
}
