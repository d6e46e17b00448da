//! The report of a run as one JSON document (`--json`), or the lines printed under the table:
//! what ran (`config`), the rows of [`Report`], what the phase cost (`cpu`, `rssBytes`,
//! `walSyncs`, `walSyncedEntries`), each node's search index at the end (`searchIndex`), the
//! index lag the searches reported (`searchLagMs`) and, in the open loop, how the schedule was
//! kept (`openLoop`). `cluster/bin/bench-table` reads these names: change both together.
//!
//! Unknown values are `null`, never zero: a missing figure must not read as a free one.

use serde_json::{json, Value};

use super::measure::{Arrivals, Measured};
use super::stats::{LateMs, Report};
use super::{BenchArgs, Plan};

/// Bytes in a MiB, for the table.
const BYTES_PER_MIB: f64 = 1_048_576.0;

/// Manual bids decided (accepted, or refused because another got there first).
pub fn bid_decisions(report: &Report) -> u64 {
    report
        .operations
        .iter()
        .find(|row| row.op == "bid")
        .map_or(0, |row| row.done + row.rejected)
}

fn open_loop(arrivals: Arrivals, late: LateMs) -> Value {
    json!({
        "ratePerSecond": arrivals.rate_per_second,
        "offered": arrivals.offered,
        "started": arrivals.started,
        "missed": arrivals.offered.saturating_sub(arrivals.started),
        "startedLateMs": late,
    })
}

pub fn document(
    args: &BenchArgs,
    plan: &Plan,
    setup_seconds: f64,
    report: &Report,
    measured: &Measured,
) -> Value {
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
            "ratePerSecond": plan.rate_per_second,
            "cpuPids": args.cpu_pids,
        },
        "setupSeconds": setup_seconds,
        "elapsedSeconds": report.elapsed_seconds,
        "operations": report.operations,
        "total": report.total,
        "unexpectedErrors": report.total.errors,
        "cpu": measured.cpu.to_json(bid_decisions(report)),
        "rssBytes": measured.rss_bytes,
        "walSyncs": measured.wal_syncs,
        "walSyncedEntries": measured.wal_synced_entries,
        "searchIndex": measured.search_index,
        "searchLagMs": search_lag(measured),
        "openLoop": measured
            .arrivals
            .map(|arrivals| open_loop(arrivals, measured.stats.started_late.summary())),
    })
}

/// The `searchLagMs` the searches were answered with; `None` without searches.
fn search_lag(measured: &Measured) -> Option<LateMs> {
    let lag = &measured.stats.search_lag;
    (lag.count() > 0).then(|| lag.summary())
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("unknown".to_owned(), |bytes| {
        format!("{:.0}", bytes as f64 / BYTES_PER_MIB)
    })
}

fn seconds(value: Option<f64>) -> String {
    value.map_or_else(|| "unknown".to_owned(), |value| format!("{value:.2} s"))
}

fn count(value: Option<u64>) -> String {
    value.map_or_else(|| "unknown".to_owned(), |value| value.to_string())
}

/// The lines printed under the table: CPU, memory, WAL syncs, the open loop's schedule.
pub fn footer(report: &Report, measured: &Measured) -> String {
    let cpu = measured.cpu;
    let mut lines = vec![format!(
        "cpu: servers {}, load generator {} ({} bid decisions)",
        seconds(cpu.servers_seconds),
        seconds(cpu.load_generator_seconds),
        bid_decisions(report)
    )];
    if !measured.rss_bytes.is_empty() {
        let rss: Vec<String> = measured.rss_bytes.iter().copied().map(mib).collect();
        lines.push(format!("rss MiB: {}", rss.join(", ")));
    }
    lines.push(format!(
        "wal: {} syncs of {} entries",
        count(measured.wal_syncs),
        count(measured.wal_synced_entries)
    ));
    if measured
        .search_index
        .iter()
        .any(|index| index.documents.is_some())
    {
        let nodes: Vec<String> = measured
            .search_index
            .iter()
            .map(|index| {
                format!(
                    "{} docs {} MiB",
                    count(index.documents),
                    mib(index.disk_bytes)
                )
            })
            .collect();
        lines.push(format!("search index per node: {}", nodes.join(", ")));
    }
    if let Some(lag) = search_lag(measured) {
        lines.push(format!(
            "search index lag (searchLagMs of {} answers): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            measured.stats.search_lag.count(),
            lag.p50,
            lag.p99,
            lag.max
        ));
    }
    if let Some(arrivals) = measured.arrivals {
        let late = measured.stats.started_late.summary();
        lines.push(format!(
            "open loop: {}/s offered, {} due, {} started; started late p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            arrivals.rate_per_second, arrivals.offered, arrivals.started, late.p50, late.p99, late.max
        ));
    }
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::*;
    use crate::bench::metrics::IndexGauges;
    use crate::bench::mix::OpKind;
    use crate::bench::resources::Cpu;
    use crate::bench::stats::{Answered, Class, Stats};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn measured(stats: Stats, arrivals: Option<Arrivals>) -> Measured {
        Measured {
            stats,
            elapsed: Duration::from_secs(2),
            cpu: Cpu {
                servers_seconds: Some(3.0),
                load_generator_seconds: Some(1.0),
            },
            rss_bytes: vec![Some(64 * 1_048_576), None],
            wal_syncs: Some(40),
            wal_synced_entries: None,
            search_index: vec![
                IndexGauges {
                    documents: Some(1_000),
                    disk_bytes: Some(3 * 1_048_576),
                },
                IndexGauges::default(),
            ],
            arrivals,
        }
    }

    fn stats() -> Stats {
        let mut stats = Stats::default();
        let won = Answered {
            label: "201 winning".to_owned(),
            class: Class::Done,
            retries: 0,
            search_lag_ms: None,
        };
        let low = Answered {
            label: "400 BID_TOO_LOW".to_owned(),
            class: Class::Rejected,
            ..won.clone()
        };
        for _ in 0..3 {
            stats.record(OpKind::Bid, &won, Duration::from_millis(4));
        }
        stats.record(OpKind::Bid, &low, Duration::from_millis(4));
        stats.record(OpKind::Read, &won, Duration::from_millis(1));
        stats.started_late.record(Duration::from_millis(2));
        let searched = Answered {
            label: "200".to_owned(),
            search_lag_ms: Some(120),
            ..won.clone()
        };
        stats.record(OpKind::Search, &searched, Duration::from_millis(9));
        stats
    }

    #[test]
    fn the_document_has_what_bench_table_reads() {
        let args = Cli::parse_from(["bench", "--cpu-pids", "7,8", "--rate", "500"]).bench;
        let plan = super::super::plan(&args).expect("valid");
        let arrivals = Arrivals {
            rate_per_second: 500,
            offered: 5_000,
            started: 4_990,
        };
        let measured = measured(stats(), Some(arrivals));
        let report = Report::new(&measured.stats, measured.elapsed);
        let json = document(&args, &plan, 1.5, &report, &measured);
        assert_eq!(json["config"]["ratePerSecond"], 500);
        assert_eq!(json["config"]["cpuPids"], json!([7, 8]));
        let bid = &json["operations"][0];
        assert_eq!(
            (bid["op"].as_str(), bid["done"].as_u64()),
            (Some("bid"), Some(3))
        );
        assert_eq!(bid["rejected"], 1);
        assert!(bid["latencyMs"]["p99"].is_f64());
        assert_eq!(json["elapsedSeconds"], 2.0);
        assert_eq!(json["cpu"]["serversSeconds"], 3.0);
        assert_eq!(json["cpu"]["loadGeneratorSeconds"], 1.0);
        assert_eq!(
            json["cpu"]["serversSecondsPer1kBids"], 750.0,
            "3 s over 4 decisions"
        );
        assert_eq!(json["cpu"]["loadGeneratorSecondsPer1kBids"], 250.0);
        assert_eq!(json["rssBytes"], json!([64 * 1_048_576, null]));
        assert_eq!(json["walSyncs"], 40);
        assert!(json["walSyncedEntries"].is_null());
        let open = &json["openLoop"];
        assert_eq!(
            (open["offered"].as_u64(), open["missed"].as_u64()),
            (Some(5_000), Some(10))
        );
        assert!((open["startedLateMs"]["max"].as_f64().expect("a number") - 2.0).abs() < 0.01);
        let footer = footer(&report, &measured);
        assert!(footer.contains("rss MiB: 64, unknown"), "{footer}");
        assert!(footer.contains("4990 started"), "{footer}");
        assert_eq!(json["searchIndex"][0]["diskBytes"], 3 * 1_048_576);
        assert!(json["searchIndex"][1]["documents"].is_null());
        assert!((json["searchLagMs"]["p99"].as_f64().expect("a number") - 120.0).abs() < 0.5);
        assert!(
            footer.contains("search index per node: 1000 docs 3 MiB, unknown docs unknown MiB"),
            "{footer}"
        );
        assert!(footer.contains("searchLagMs of 1 answers"), "{footer}");
    }

    #[test]
    fn the_closed_loop_has_no_rate_and_no_schedule() {
        let args = Cli::parse_from(["bench"]).bench;
        let plan = super::super::plan(&args).expect("valid");
        let measured = measured(Stats::default(), None);
        let report = Report::new(&measured.stats, measured.elapsed);
        let json = document(&args, &plan, 1.5, &report, &measured);
        assert!(json["config"]["ratePerSecond"].is_null());
        assert!(json["openLoop"].is_null());
        assert!(json["cpu"]["serversSecondsPer1kBids"].is_null(), "no bids");
        assert!(json["searchLagMs"].is_null(), "no searches");
        assert!(!footer(&report, &measured).contains("open loop"));
    }
}
