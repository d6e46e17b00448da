//! What the measured phase records and how it is reported: per operation a latency histogram
//! (hdrhistogram, microseconds), counts by answer (`201 winning`, `400 BID_TOO_LOW`,
//! `connection error`, ...), and how each answer counts: done, an expected rejection (a bid
//! that lost a race: `BID_TOO_LOW`, `ALREADY_HIGH_BIDDER`) or an unexpected error. Each client
//! records into its own [`Stats`]; they are merged at the end, so recording takes no lock.
//!
//! The report ([`Report`]) is one row per operation plus a total: count, throughput,
//! p50/p95/p99/max latency in ms, the counts by answer; as a table or as JSON. In the open
//! loop each client also records how late its operations started against the schedule
//! ([`Lateness`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::mix::OpKind;

/// Latencies above this are recorded as this (a request times out well before).
const LATENCY_US_MAX: u64 = 120_000_000;
/// Significant figures of the latency histograms.
const LATENCY_SIGNIFICANT_FIGURES: u8 = 3;

/// How an answered operation counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The operation did what it asked (a bid accepted as winning or outbid, a read answered).
    Done,
    /// A refusal that is a normal outcome under concurrency (another bid got there first).
    Rejected,
    /// Anything else: unexpected error answers, time-outs, connection errors.
    Error,
}

/// The result of one operation, after its retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    /// `201 winning`, `200`, `400 BID_TOO_LOW`, `connection error`, ...
    pub label: String,
    pub class: Class,
    /// Attempts after the first one (503, 504, connection errors).
    pub retries: u32,
    /// A search's `searchLagMs`: how far the answering node's index was behind.
    pub search_lag_ms: Option<u64>,
}

/// The records of one operation kind.
#[derive(Debug, Clone)]
pub struct OpStats {
    latency_us: Histogram<u64>,
    labels: BTreeMap<String, u64>,
    done: u64,
    rejected: u64,
    errors: u64,
    retries: u64,
}

impl Default for OpStats {
    fn default() -> Self {
        OpStats {
            latency_us: Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGNIFICANT_FIGURES)
                .expect("constant histogram bounds are valid"),
            labels: BTreeMap::new(),
            done: 0,
            rejected: 0,
            errors: 0,
            retries: 0,
        }
    }
}

impl OpStats {
    pub fn record(&mut self, answered: &Answered, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.latency_us
            .saturating_record(micros.clamp(1, LATENCY_US_MAX));
        *self.labels.entry(answered.label.clone()).or_default() += 1;
        match answered.class {
            Class::Done => self.done += 1,
            Class::Rejected => self.rejected += 1,
            Class::Error => self.errors += 1,
        }
        self.retries += u64::from(answered.retries);
    }

    pub fn merge(&mut self, other: &OpStats) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        for (label, count) in &other.labels {
            *self.labels.entry(label.clone()).or_default() += count;
        }
        self.done += other.done;
        self.rejected += other.rejected;
        self.errors += other.errors;
        self.retries += other.retries;
    }

    pub fn count(&self) -> u64 {
        self.latency_us.len()
    }
}

/// A distribution of delays: how late operations started against the open loop's schedule,
/// or how far behind the search index answered.
#[derive(Debug, Clone)]
pub struct Lateness {
    late_us: Histogram<u64>,
}

impl Default for Lateness {
    fn default() -> Self {
        Lateness {
            late_us: Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGNIFICANT_FIGURES)
                .expect("constant histogram bounds are valid"),
        }
    }
}

/// A summary of [`Lateness`], in ms.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct LateMs {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Lateness {
    pub fn record(&mut self, late: Duration) {
        let micros = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
        self.late_us.saturating_record(micros.min(LATENCY_US_MAX));
    }

    pub fn merge(&mut self, other: &Lateness) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.late_us.add(&other.late_us);
    }

    pub fn count(&self) -> u64 {
        self.late_us.len()
    }

    pub fn summary(&self) -> LateMs {
        LateMs {
            p50: millis(self.late_us.value_at_quantile(0.50)),
            p99: millis(self.late_us.value_at_quantile(0.99)),
            max: millis(self.late_us.max()),
        }
    }
}

/// Every operation kind's records (of one client, or merged).
#[derive(Debug, Clone, Default)]
pub struct Stats {
    per_op: BTreeMap<OpKind, OpStats>,
    /// Open loop only: how late each operation started.
    pub started_late: Lateness,
    /// Searches only: the `searchLagMs` of each answer.
    pub search_lag: Lateness,
}

impl Stats {
    pub fn record(&mut self, kind: OpKind, answered: &Answered, elapsed: Duration) {
        self.per_op
            .entry(kind)
            .or_default()
            .record(answered, elapsed);
        if let Some(lag) = answered.search_lag_ms {
            self.search_lag.record(Duration::from_millis(lag));
        }
    }

    pub fn merge(&mut self, other: &Stats) {
        for (kind, stats) in &other.per_op {
            self.per_op.entry(*kind).or_default().merge(stats);
        }
        self.started_late.merge(&other.started_late);
        self.search_lag.merge(&other.search_lag);
    }

    pub fn count(&self) -> u64 {
        self.per_op.values().map(OpStats::count).sum()
    }
}

/// One line of the report.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub op: String,
    pub count: u64,
    pub done: u64,
    pub rejected: u64,
    pub errors: u64,
    pub retries: u64,
    pub ops_per_second: f64,
    pub latency_ms: Latency,
    /// Counts by answer.
    pub outcomes: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

fn millis(micros: u64) -> f64 {
    micros as f64 / 1_000.0
}

fn row(op: &str, stats: &OpStats, elapsed: Duration) -> Row {
    let histogram = &stats.latency_us;
    let seconds = elapsed.as_secs_f64().max(f64::EPSILON);
    Row {
        op: op.to_owned(),
        count: stats.count(),
        done: stats.done,
        rejected: stats.rejected,
        errors: stats.errors,
        retries: stats.retries,
        ops_per_second: stats.count() as f64 / seconds,
        latency_ms: Latency {
            p50: millis(histogram.value_at_quantile(0.50)),
            p95: millis(histogram.value_at_quantile(0.95)),
            p99: millis(histogram.value_at_quantile(0.99)),
            max: millis(histogram.max()),
        },
        outcomes: stats.labels.clone(),
    }
}

/// The measured phase, summarised.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub elapsed_seconds: f64,
    /// One row per operation kind that ran, in the order of [`OpKind::ALL`].
    pub operations: Vec<Row>,
    /// Every operation together.
    pub total: Row,
}

impl Report {
    pub fn new(stats: &Stats, elapsed: Duration) -> Report {
        let mut total = OpStats::default();
        let operations = stats
            .per_op
            .iter()
            .map(|(kind, op_stats)| {
                total.merge(op_stats);
                row(kind.name(), op_stats, elapsed)
            })
            .collect();
        Report {
            elapsed_seconds: elapsed.as_secs_f64(),
            operations,
            total: row("total", &total, elapsed),
        }
    }

    /// The table printed without `--json`.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<8} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>7} {:>8}",
            "op",
            "count",
            "ops/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "done",
            "rejected",
            "errors",
            "retries"
        );
        for row in self.operations.iter().chain(std::iter::once(&self.total)) {
            let latency = row.latency_ms;
            let _ = writeln!(
                out,
                "{:<8} {:>9} {:>10.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9} {:>8} {:>7} {:>8}",
                row.op,
                row.count,
                row.ops_per_second,
                latency.p50,
                latency.p95,
                latency.p99,
                latency.max,
                row.done,
                row.rejected,
                row.errors,
                row.retries
            );
        }
        let _ = writeln!(out, "\nanswers by status and code:");
        for row in &self.operations {
            let answers: Vec<String> = row
                .outcomes
                .iter()
                .map(|(label, count)| format!("{label}: {count}"))
                .collect();
            let _ = writeln!(out, "  {:<8} {}", row.op, answers.join(", "));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(label: &str, class: Class, retries: u32) -> Answered {
        Answered {
            label: label.to_owned(),
            class,
            retries,
            search_lag_ms: None,
        }
    }

    #[test]
    fn percentiles_come_from_the_recorded_latencies() {
        let mut stats = Stats::default();
        let ok = answered("200", Class::Done, 0);
        for ms in 1..=100 {
            stats.record(OpKind::Read, &ok, Duration::from_millis(ms));
        }
        let report = Report::new(&stats, Duration::from_secs(4));
        let read = &report.operations[0];
        assert_eq!((read.op.as_str(), read.count), ("read", 100));
        assert!((read.ops_per_second - 25.0).abs() < 1e-9);
        // Three significant figures: within 0.1% of the exact ranks.
        let close = |value: f64, exact: f64| (value - exact).abs() <= exact * 0.001;
        let latency = read.latency_ms;
        assert!(close(latency.p50, 50.0), "{latency:?}");
        assert!(close(latency.p95, 95.0), "{latency:?}");
        assert!(close(latency.p99, 99.0), "{latency:?}");
        assert!(close(latency.max, 100.0), "{latency:?}");
    }

    #[test]
    fn counts_add_up_by_class_and_label_across_merged_clients() {
        let mut first = Stats::default();
        let mut second = Stats::default();
        let won = answered("201 winning", Class::Done, 0);
        let low = answered("400 BID_TOO_LOW", Class::Rejected, 0);
        let gone = answered("connection error", Class::Error, 3);
        first.record(OpKind::Bid, &won, Duration::from_millis(5));
        first.record(OpKind::Bid, &low, Duration::from_millis(6));
        second.record(OpKind::Bid, &won, Duration::from_millis(7));
        second.record(OpKind::Bid, &gone, Duration::from_millis(900));
        second.record(
            OpKind::History,
            &answered("200", Class::Done, 1),
            Duration::from_millis(2),
        );
        first.merge(&second);
        assert_eq!(first.count(), 5);
        let report = Report::new(&first, Duration::from_secs(1));
        let bid = &report.operations[0];
        assert_eq!(
            (bid.count, bid.done, bid.rejected, bid.errors, bid.retries),
            (4, 2, 1, 1, 3)
        );
        assert_eq!(bid.outcomes["201 winning"], 2);
        assert_eq!(bid.outcomes["connection error"], 1);
        assert!((bid.latency_ms.max - 900.0).abs() < 1.0);
        assert_eq!(report.operations[1].op, "history");
        let total = &report.total;
        assert_eq!((total.count, total.done, total.retries), (5, 3, 4));
        let table = report.table();
        assert!(table.contains("400 BID_TOO_LOW: 1"), "{table}");
        assert!(
            table.lines().any(|line| line.starts_with("total")),
            "{table}"
        );
        let json = serde_json::to_value(&report).expect("serializable");
        assert_eq!(
            json["operations"][0]["latencyMs"]["max"],
            bid.latency_ms.max
        );
        assert_eq!(json["total"]["opsPerSecond"], 5.0);
    }

    #[test]
    fn lateness_merges_and_starts_at_zero() {
        let (mut first, mut second) = (Stats::default(), Stats::default());
        for ms in 0..99 {
            first.started_late.record(Duration::from_millis(ms % 2));
        }
        second.started_late.record(Duration::from_millis(40));
        first.merge(&second);
        assert_eq!(first.started_late.count(), 100);
        let late = first.started_late.summary();
        assert_eq!(late.p50, 0.0, "{late:?}");
        assert!((late.p99 - 1.0).abs() < 0.01, "{late:?}");
        assert!((late.max - 40.0).abs() < 0.05, "{late:?}");
    }
}
