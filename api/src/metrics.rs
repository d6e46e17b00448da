//! `GET /metrics` in the Prometheus text format: HTTP requests by route, method and status,
//! request latency histograms by route, bids answered by kind and outcome code
//! (`auction_bids_total`), open SSE streams by route, and per Raft group: term, known leader,
//! whether this node leads, last log and applied indexes, and the cluster-wide rate limits:
//! checks by who answered (`auction_rate_limit_checks_total`: the key's owner, its runner-up,
//! or this node's fallback share), asks sent to other nodes by result
//! (`auction_rate_limit_peer_asks_total`) and refusals (`auction_rate_limit_refusals_total`).
//!
//! Labels come from the matched route template (`/api/v1/auctions/{id}`), never from the raw
//! path, and from static codes, so the number of series is bounded by the routes and codes.
//! The counters are in-process and start at zero when the node starts. An SSE stream is
//! counted open from its response head until its body is dropped (the client went away or
//! the node stops), without touching the stream's handler.
//!
//! For the dashboards and alerts of `cluster/monitoring/`: bid latency by kind and outcome
//! class (`auction_bid_duration_seconds`: winning, outbid, replayed, rejected, error),
//! auctions created through this node (`auction_auctions_created_total`) and ended as this
//! node's replica applied it (`auction_auctions_ended_total` by sold, unsold, cancelled), and
//! per group the leader changes seen, the commit index and the commit / apply / replication
//! lags in entries, proposal latency on the leader (`raft_proposal_duration_seconds`), and
//! snapshots built and installed with their bytes ([`auction_raft::stats`]); search lag in
//! seconds too (`search_index_lag_seconds`). Hot-path recording is a short map update under a
//! std mutex (HTTP) or relaxed atomics (Raft).
//!
//! Not here yet: forwarding counters from the Raft host; append latency per follower; bid
//! refusals that happen before the bid handler runs (no session, unparsable body or path) are
//! in `http_requests_total` only.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use auction_raft::host::NodeStorage;
use auction_raft::log_store::{SyncCounters, SYNC_LATENCY_BUCKETS_US};
use auction_raft::GroupId;
use auction_statemachine::outcome::BidOutcome;
use auction_statemachine::Op;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use crate::limits::{Checked, Counters, Via};
use crate::SharedApp;

/// Upper bounds of the latency buckets, in ms.
const LATENCY_BUCKETS_MS: [u64; 11] = [5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000];

#[derive(Default)]
struct Latency {
    /// Cumulative counts per bucket, as Prometheus wants them.
    buckets: [u64; LATENCY_BUCKETS_MS.len()],
    count: u64,
    sum_ms: u64,
}

/// The bid-like commands, the `kind` label of `auction_bids_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BidKind {
    Bid,
    Proxy,
    BuyNow,
}

impl BidKind {
    /// The kind of a bid-like command; `None` for any other command.
    pub fn of(op: &Op) -> Option<BidKind> {
        match op {
            Op::PlaceBid { .. } => Some(BidKind::Bid),
            Op::PlaceProxyBid { .. } => Some(BidKind::Proxy),
            Op::BuyNow { .. } => Some(BidKind::BuyNow),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            BidKind::Bid => "bid",
            BidKind::Proxy => "proxy",
            BidKind::BuyNow => "buy_now",
        }
    }
}

/// The `code` of an accepted bid: `winning` or `outbid`; `replayed` for a retry answered with
/// the recorded outcome, which is not a new bid and must not count as one twice.
pub fn accepted_code(replayed: bool, outcome: &BidOutcome) -> &'static str {
    match (replayed, outcome.winning) {
        (true, _) => "replayed",
        (false, true) => "winning",
        (false, false) => "outbid",
    }
}

/// The outcome class of a bid answer, the `outcome` label of `auction_bid_duration_seconds`
/// (five values, so the histogram's series stay few): the accepted codes as they are, a
/// refusal the cluster could not help (`error`: no leader, unavailable, time-out, internal),
/// or any other refusal (`rejected`: the rules, validation, rate limits).
pub fn outcome_class(code: &'static str) -> &'static str {
    match code {
        "winning" | "outbid" | "replayed" => code,
        "NO_LEADER" | "UNAVAILABLE" | "TIMEOUT" | "INTERNAL" => "error",
        _ => "rejected",
    }
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<String, Latency>,
    bids: BTreeMap<(BidKind, &'static str), u64>,
    bid_latency: BTreeMap<(BidKind, &'static str), Latency>,
}

impl Latency {
    fn record(&mut self, elapsed_ms: u64) {
        for (bucket, bound) in self.buckets.iter_mut().zip(LATENCY_BUCKETS_MS) {
            if elapsed_ms <= bound {
                *bucket += 1;
            }
        }
        self.count += 1;
        self.sum_ms += elapsed_ms;
    }

    /// Writes the histogram's lines; `labels` are the series' labels before `le`, each
    /// followed by a comma (empty for none).
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (count, bound) in self.buckets.iter().zip(LATENCY_BUCKETS_MS) {
            let le = bound as f64 / 1_000.0;
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{le}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {}", self.count);
        let labels = labels.trim_end_matches(',');
        let sum = self.sum_ms as f64 / 1_000.0;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// Open SSE streams by route template; shared with the guards inside the streams' bodies.
#[derive(Default)]
struct SseStreams {
    open: Mutex<BTreeMap<String, u64>>,
}

impl SseStreams {
    fn open(&self) -> MutexGuard<'_, BTreeMap<String, u64>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Counts one stream as open until it is dropped with the response body.
struct OpenStream {
    streams: Arc<SseStreams>,
    route: String,
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        if let Some(count) = self.streams.open().get_mut(&self.route) {
            *count = count.saturating_sub(1);
        }
    }
}

/// The HTTP metrics of one node.
#[derive(Default)]
pub struct HttpMetrics {
    inner: Mutex<Inner>,
    sse: Arc<SseStreams>,
    auctions_created: std::sync::atomic::AtomicU64,
}

impl HttpMetrics {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        // A std mutex: the critical section is a few map updates, never held across an await.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one answer to a bid-like command: `code` is [`accepted_code`] or the error code.
    /// Nothing is counted without a kind (the command was not a bid).
    pub fn record_bid(&self, kind: Option<BidKind>, code: &'static str) {
        if let Some(kind) = kind {
            *self.inner().bids.entry((kind, code)).or_default() += 1;
        }
    }

    /// Counts one bid-like answer ([`HttpMetrics::record_bid`]) and its latency from the
    /// handler's start, by kind and [`outcome_class`].
    pub fn record_bid_answer(
        &self,
        kind: Option<BidKind>,
        code: &'static str,
        elapsed: std::time::Duration,
    ) {
        let Some(kind) = kind else { return };
        let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let mut inner = self.inner();
        *inner.bids.entry((kind, code)).or_default() += 1;
        inner
            .bid_latency
            .entry((kind, outcome_class(code)))
            .or_default()
            .record(elapsed_ms);
    }

    /// Counts one auction created through this node (not a replayed creation).
    pub fn record_auction_created(&self) {
        self.auctions_created
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts `response` as an open SSE stream of `route` until its body is dropped.
    fn hold_stream(&self, route: String, response: Response) -> Response {
        *self.sse.open().entry(route.clone()).or_default() += 1;
        let guard = OpenStream {
            streams: self.sse.clone(),
            route,
        };
        let (parts, body) = response.into_parts();
        // The guard lives in the stream's closure, so it is dropped with the body.
        let body = body.into_data_stream().map(move |chunk| {
            let _open = &guard;
            chunk
        });
        Response::from_parts(parts, Body::from_stream(body))
    }

    pub fn record(&self, route: &str, method: &str, status: u16, elapsed_ms: u64) {
        let mut inner = self.inner();
        *inner
            .requests
            .entry((route.to_owned(), method.to_owned(), status))
            .or_default() += 1;
        inner
            .latency
            .entry(route.to_owned())
            .or_default()
            .record(elapsed_ms);
    }

    fn render(&self, out: &mut String) {
        self.render_requests(out);
        self.render_bids(out);
        self.render_streams(out);
    }

    fn render_bids(&self, out: &mut String) {
        let inner = self.inner();
        out.push_str("# HELP auction_bids_total Bids, proxy bids and purchases answered by this node, by kind and code (winning, outbid, replayed, or the error code).\n");
        out.push_str("# TYPE auction_bids_total counter\n");
        for ((kind, code), count) in &inner.bids {
            let kind = kind.label();
            let _ = writeln!(
                out,
                "auction_bids_total{{kind=\"{kind}\",code=\"{code}\"}} {count}"
            );
        }
        let name = "auction_bid_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from the bid handler's start to its answer, by kind and outcome (winning, outbid, replayed, rejected, error).\n# TYPE {name} histogram"
        );
        for ((kind, outcome), latency) in &inner.bid_latency {
            let labels = format!("kind=\"{}\",outcome=\"{outcome}\",", kind.label());
            latency.render(out, name, &labels);
        }
        let name = "auction_auctions_created_total";
        let _ = writeln!(
            out,
            "# HELP {name} Auctions created through this node.\n# TYPE {name} counter\n{name} {}",
            self.auctions_created
                .load(std::sync::atomic::Ordering::Relaxed)
        );
    }

    fn render_streams(&self, out: &mut String) {
        out.push_str(
            "# HELP http_sse_streams_open SSE streams open on this node, by route template.\n",
        );
        out.push_str("# TYPE http_sse_streams_open gauge\n");
        for (route, count) in self.sse.open().iter() {
            let _ = writeln!(out, "http_sse_streams_open{{route=\"{route}\"}} {count}");
        }
    }

    fn render_requests(&self, out: &mut String) {
        let inner = self.inner();
        out.push_str("# HELP http_requests_total HTTP requests answered, by route template, method and status.\n");
        out.push_str("# TYPE http_requests_total counter\n");
        for ((route, method, status), count) in &inner.requests {
            let _ = writeln!(
                out,
                "http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {count}"
            );
        }
        out.push_str(
            "# HELP http_request_duration_seconds Time to the response head, by route template.\n",
        );
        out.push_str("# TYPE http_request_duration_seconds histogram\n");
        for (route, latency) in &inner.latency {
            for (count, bound) in latency.buckets.iter().zip(LATENCY_BUCKETS_MS) {
                let le = bound as f64 / 1_000.0;
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                latency.count
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                latency.sum_ms as f64 / 1_000.0
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                latency.count
            );
        }
    }
}

/// Middleware: counts every answer under its route template.
pub async fn track<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    // The request span ([`crate::request_id`]) learns its route here, where it is known.
    tracing::Span::current().record("route", route.as_str());
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    app.metrics
        .record(&route, &method, response.status().as_u16(), elapsed_ms);
    if is_event_stream(&response) {
        return app.metrics.hold_stream(route, response);
    }
    response
}

fn is_event_stream(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/event-stream"))
}

fn gauge(out: &mut String, name: &str, help: &str, values: &[(GroupId, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (group, value) in values {
        let _ = writeln!(out, "{name}{{group=\"{group}\"}} {value}");
    }
}

/// The node's WAL syncs (group commit): how many, how many log entries they made durable, and
/// how long they took.
fn render_wal_syncs(out: &mut String, counters: &SyncCounters) {
    let _ = writeln!(
        out,
        "# HELP auction_wal_syncs_total WAL syncs (one makes the appends of every group durable).\n\
         # TYPE auction_wal_syncs_total counter\nauction_wal_syncs_total {}",
        counters.syncs()
    );
    let _ = writeln!(
        out,
        "# HELP auction_wal_synced_entries_total Log entries made durable by WAL syncs.\n\
         # TYPE auction_wal_synced_entries_total counter\nauction_wal_synced_entries_total {}",
        counters.entries_synced()
    );
    let latency = counters.latency();
    let name = "auction_wal_sync_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} How long one WAL sync took.\n# TYPE {name} histogram"
    );
    let mut cumulative = 0;
    for (bound_us, count) in SYNC_LATENCY_BUCKETS_US.iter().zip(&latency.buckets) {
        cumulative += count;
        let bound = *bound_us as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let total: u64 = latency.buckets.iter().sum();
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
    let _ = writeln!(out, "{name}_sum {}", latency.sum_us as f64 / 1e6);
    let _ = writeln!(out, "{name}_count {total}");
}

/// The checks of the cluster-wide limits by how they were answered, and the refusals.
fn render_rate_limits(out: &mut String, counters: &Counters) {
    let name = "auction_rate_limit_checks_total";
    let _ = writeln!(
        out,
        "# HELP {name} Checks of the cluster-wide rate limits, by limit and by who answered: the key's owner, its runner-up, or this node's fallback share.\n# TYPE {name} counter"
    );
    for checked in Checked::ALL {
        for via in Via::ALL {
            let _ = writeln!(
                out,
                "{name}{{limit=\"{}\",via=\"{}\"}} {}",
                checked.label(),
                via.label(),
                counters.checks(checked, via)
            );
        }
    }
    let (answered, failed) = counters.peer_asks();
    let name = "auction_rate_limit_peer_asks_total";
    let _ = writeln!(
        out,
        "# HELP {name} Budget asks this node sent to a key's owner (or runner-up) on another node, by result.\n# TYPE {name} counter\n{name}{{result=\"answered\"}} {answered}\n{name}{{result=\"failed\"}} {failed}"
    );
    let name = "auction_rate_limit_refusals_total";
    let _ = writeln!(
        out,
        "# HELP {name} Requests refused by a cluster-wide rate limit, by limit.\n# TYPE {name} counter"
    );
    for checked in Checked::ALL {
        let _ = writeln!(
            out,
            "{name}{{limit=\"{}\"}} {}",
            checked.label(),
            counters.refused(checked)
        );
    }
}

/// How far the search index is behind each auction shard: in log entries (applied − indexed)
/// and in milliseconds since the oldest change that is not searchable yet.
fn render_search_lag(
    out: &mut String,
    applied: &[(GroupId, u64)],
    lags: &[crate::search::GroupLag],
) {
    let indexed: std::collections::BTreeMap<GroupId, &crate::search::GroupLag> =
        lags.iter().map(|lag| (lag.group, lag)).collect();
    let shards = applied
        .iter()
        .filter(|(group, _)| *group != auction_statemachine::META_GROUP);
    let (mut entries, mut millis) = (Vec::new(), Vec::new());
    for (group, applied_index) in shards {
        let lag = indexed.get(group);
        let indexed_index = lag.map_or(0, |lag| lag.indexed_index);
        entries.push((*group, applied_index.saturating_sub(indexed_index)));
        millis.push((*group, lag.map_or(0, |lag| lag.lag_ms)));
    }
    gauge(
        out,
        "search_index_lag_entries",
        "Applied log entries of the group not yet reflected by this node's search index.",
        &entries,
    );
    gauge(
        out,
        "search_index_lag_ms",
        "Milliseconds since the oldest applied change of the group that is not searchable yet.",
        &millis,
    );
    // The same in seconds, the unit Prometheus users expect (the ms gauge stays for the
    // benchmark scripts that read it).
    let name = "search_index_lag_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Seconds since the oldest applied change of the group that is not searchable yet.\n# TYPE {name} gauge"
    );
    for (group, lag_ms) in &millis {
        let _ = writeln!(out, "{name}{{group=\"{group}\"}} {}", *lag_ms as f64 / 1e3);
    }
}

/// What this node's search index holds and takes (the disk line only for an index on disk).
fn render_search_usage(out: &mut String, usage: crate::search::IndexUsage) {
    let lines = [
        (
            "search_index_documents",
            "Auctions searchable in this node's index.",
            Some(usage.documents),
        ),
        (
            "search_index_disk_bytes",
            "Bytes of this node's search index files (memory-mapped: their resident part counts in the process RSS).",
            usage.disk_bytes,
        ),
        (
            "search_index_writer_memory_bytes",
            "The indexing memory budget of this node's search index writer.",
            Some(usage.writer_memory_bytes),
        ),
        (
            "search_index_live_auctions",
            "Auctions whose latest bids this node's search shows from its live overlay, ahead of their documents.",
            Some(usage.live_auctions),
        ),
    ];
    for (name, help, value) in lines {
        let Some(value) = value else { continue };
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    }
}

/// One value per group, as a gauge renders them.
type GroupValues<'a> = &'a [(GroupId, u64)];
/// Picks one counter of a group's [`auction_raft::stats::GroupStats`].
type GroupCounter = fn(&auction_raft::stats::GroupStats) -> &std::sync::atomic::AtomicU64;

/// Indexes and lags per group from this node's statuses: the commit index, how far the log
/// runs ahead of the commit (entries not yet committed), how far apply trails the commit, and
/// on a leader how far its slowest follower trails its log (0 elsewhere).
fn render_raft_lags(out: &mut String, statuses: &[auction_raft::host::GroupStatus]) {
    let (mut committed, mut commit_lag, mut apply_lag, mut replication_lag, mut snapshot) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for status in statuses {
        let group = status.group_id;
        let last = status.last_log_index.unwrap_or(0);
        let commit = status.committed_index.unwrap_or(0);
        let applied = status.applied_index.unwrap_or(0);
        committed.push((group, commit));
        commit_lag.push((group, last.saturating_sub(commit)));
        apply_lag.push((group, commit.saturating_sub(applied)));
        let slowest = status
            .replication
            .iter()
            .map(|replica| last.saturating_sub(replica.matched_index.unwrap_or(0)))
            .max()
            .unwrap_or(0);
        replication_lag.push((group, slowest));
        snapshot.push((group, status.snapshot_index.unwrap_or(0)));
    }
    let lines: [(&str, &str, GroupValues); 5] = [
        (
            "raft_commit_index",
            "Last committed index this node knows of.",
            &committed,
        ),
        (
            "raft_commit_lag_entries",
            "Entries in this node's log not yet known committed.",
            &commit_lag,
        ),
        (
            "raft_apply_lag_entries",
            "Committed entries this node has not applied yet.",
            &apply_lag,
        ),
        (
            "raft_replication_lag_entries",
            "On the leader: entries its slowest follower is behind its log (0 on other nodes).",
            &replication_lag,
        ),
        (
            "raft_snapshot_index",
            "Last log index of this node's current snapshot of the group.",
            &snapshot,
        ),
    ];
    for (name, help, values) in lines {
        gauge(out, name, help, values);
    }
}

/// The per-group counters of [`auction_raft::stats`]: leader changes, proposal latency,
/// snapshots, and the auctions ended by outcome (summed over groups).
fn render_raft_stats(out: &mut String, stats: &auction_raft::stats::NodeStats) {
    use auction_raft::stats::{GroupStats, PROPOSAL_LATENCY_BUCKETS_US};
    let counters: [(&str, &str, GroupCounter); 5] = [
        (
            "raft_leader_changes_total",
            "Times this node saw the group's leader change (the first leader it learns counts).",
            |group| &group.leader_changes,
        ),
        (
            "raft_snapshots_built_total",
            "Snapshots of the group this node built.",
            |group| &group.snapshots_built,
        ),
        (
            "raft_snapshot_built_bytes_total",
            "Bytes of the snapshots of the group this node built.",
            |group| &group.snapshot_built_bytes_total,
        ),
        (
            "raft_snapshots_installed_total",
            "Snapshots of the group this node installed from its leader.",
            |group| &group.snapshots_installed,
        ),
        (
            "raft_snapshot_installed_bytes_total",
            "Bytes of the snapshots of the group this node installed.",
            |group| &group.snapshot_installed_bytes_total,
        ),
    ];
    for (name, help, counter) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (group, group_stats) in stats.iter() {
            let value = GroupStats::get(counter(group_stats));
            let _ = writeln!(out, "{name}{{group=\"{group}\"}} {value}");
        }
    }
    let last: Vec<(GroupId, u64)> = stats
        .iter()
        .map(|(group, stats)| (group, GroupStats::get(&stats.snapshot_last_bytes)))
        .collect();
    gauge(
        out,
        "raft_snapshot_last_bytes",
        "Size of the last snapshot of the group this node built or installed.",
        &last,
    );
    let name = "raft_proposal_duration_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} From a proposal on this node (the group's leader) to its applied answer.\n# TYPE {name} histogram"
    );
    for (group, group_stats) in stats.iter() {
        let snapshot = group_stats.proposals.snapshot();
        let mut cumulative = 0;
        for (bound_us, count) in PROPOSAL_LATENCY_BUCKETS_US.iter().zip(&snapshot.buckets) {
            cumulative += count;
            let le = *bound_us as f64 / 1e6;
            let _ = writeln!(
                out,
                "{name}_bucket{{group=\"{group}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let total: u64 = snapshot.buckets.iter().sum();
        let _ = writeln!(
            out,
            "{name}_bucket{{group=\"{group}\",le=\"+Inf\"}} {total}"
        );
        let _ = writeln!(
            out,
            "{name}_sum{{group=\"{group}\"}} {}",
            snapshot.sum_us as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{{group=\"{group}\"}} {total}");
    }
    let name = "auction_auctions_ended_total";
    let _ = writeln!(
        out,
        "# HELP {name} Auctions ended as this node's replicas applied it, by outcome (every node counts the whole cluster's).\n# TYPE {name} counter"
    );
    let outcomes: [(&str, GroupCounter); 3] = [
        ("sold", |group| &group.auctions_sold),
        ("unsold", |group| &group.auctions_unsold),
        ("cancelled", |group| &group.auctions_cancelled),
    ];
    for (outcome, counter) in outcomes {
        let total: u64 = stats
            .iter()
            .map(|(_, group)| GroupStats::get(counter(group)))
            .sum();
        let _ = writeln!(out, "{name}{{outcome=\"{outcome}\"}} {total}");
    }
}

/// `GET /metrics`.
pub async fn render<S: NodeStorage>(State(app): State<SharedApp<S>>) -> Response {
    let mut out = String::new();
    app.metrics.render(&mut out);
    render_rate_limits(&mut out, app.limits.counters());
    let node = app.host.node_id();
    let (mut term, mut leader, mut leading, mut last_log, mut applied) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let statuses = app.host.local_statuses();
    render_raft_lags(&mut out, &statuses);
    render_raft_stats(&mut out, app.host.stats());
    for status in statuses {
        let group = status.group_id;
        term.push((group, status.term));
        leader.push((group, u64::from(status.leader_id.is_some())));
        leading.push((group, u64::from(status.leader_id == Some(node))));
        last_log.push((group, status.last_log_index.unwrap_or(0)));
        applied.push((group, status.applied_index.unwrap_or(0)));
    }
    if let Some(counters) = app.host.sync_counters() {
        render_wal_syncs(&mut out, &counters);
    }
    if let Some(index) = &app.search {
        render_search_lag(&mut out, &applied, &index.lag());
        render_search_usage(&mut out, index.usage());
    }
    gauge(
        &mut out,
        "raft_term",
        "Current term of the group on this node.",
        &term,
    );
    gauge(
        &mut out,
        "raft_has_leader",
        "1 when the group knows a leader.",
        &leader,
    );
    gauge(
        &mut out,
        "raft_is_leader",
        "1 when this node leads the group.",
        &leading,
    );
    gauge(
        &mut out,
        "raft_last_log_index",
        "Last log index on this node.",
        &last_log,
    );
    gauge(
        &mut out,
        "raft_applied_index",
        "Last applied index on this node.",
        &applied,
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_render_as_prometheus_text() {
        let metrics = HttpMetrics::default();
        metrics.record("/api/v1/auctions/{id}", "GET", 200, 7);
        metrics.record("/api/v1/auctions/{id}", "GET", 200, 700);
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(out.contains(
            "http_requests_total{route=\"/api/v1/auctions/{id}\",method=\"GET\",status=\"200\"} 2"
        ));
        assert!(out.contains(
            "http_request_duration_seconds_bucket{route=\"/api/v1/auctions/{id}\",le=\"0.01\"} 1"
        ));
        assert!(
            out.contains("http_request_duration_seconds_count{route=\"/api/v1/auctions/{id}\"} 2")
        );
    }

    #[test]
    fn bid_outcomes_are_counted_by_kind_and_code() {
        let metrics = HttpMetrics::default();
        metrics.record_bid(Some(BidKind::Bid), "winning");
        metrics.record_bid(Some(BidKind::Bid), "winning");
        metrics.record_bid(Some(BidKind::Proxy), "BID_TOO_LOW");
        metrics.record_bid(Some(BidKind::BuyNow), "replayed");
        metrics.record_bid(None, "winning");
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(out.contains("auction_bids_total{kind=\"bid\",code=\"winning\"} 2"));
        assert!(out.contains("auction_bids_total{kind=\"proxy\",code=\"BID_TOO_LOW\"} 1"));
        assert!(out.contains("auction_bids_total{kind=\"buy_now\",code=\"replayed\"} 1"));
        assert_eq!(out.matches("auction_bids_total{").count(), 3, "{out}");
    }

    #[test]
    fn bid_latency_renders_by_kind_and_outcome_class() {
        use std::time::Duration;
        let metrics = HttpMetrics::default();
        metrics.record_bid_answer(Some(BidKind::Bid), "winning", Duration::from_millis(7));
        metrics.record_bid_answer(Some(BidKind::Bid), "NO_LEADER", Duration::from_millis(70));
        metrics.record_bid_answer(Some(BidKind::Bid), "BID_TOO_LOW", Duration::from_millis(3));
        metrics.record_bid_answer(None, "winning", Duration::from_millis(3));
        metrics.record_auction_created();
        let mut out = String::new();
        metrics.render(&mut out);
        let name = "auction_bid_duration_seconds";
        assert!(out.contains(&format!(
            "{name}_bucket{{kind=\"bid\",outcome=\"winning\",le=\"0.005\"}} 0"
        )));
        assert!(out.contains(&format!(
            "{name}_bucket{{kind=\"bid\",outcome=\"winning\",le=\"0.01\"}} 1"
        )));
        assert!(out.contains(&format!("{name}_count{{kind=\"bid\",outcome=\"error\"}} 1")));
        assert!(out.contains(&format!(
            "{name}_sum{{kind=\"bid\",outcome=\"rejected\"}} 0.003"
        )));
        assert!(out.contains("auction_bids_total{kind=\"bid\",code=\"NO_LEADER\"} 1"));
        assert!(out.contains("auction_auctions_created_total 1"));
        assert_eq!(out.matches(&format!("{name}_count{{")).count(), 3, "{out}");
    }

    #[test]
    fn raft_counters_and_lags_render_per_group() {
        use auction_raft::host::{GroupStatus, ReplicaProgress, Role};
        let stats = auction_raft::stats::NodeStats::new([0, 1]);
        let group = stats.group(1).expect("group 1");
        group
            .leader_changes
            .fetch_add(2, std::sync::atomic::Ordering::Relaxed);
        group.snapshot_built(1_000);
        group.proposals.record(std::time::Duration::from_millis(3));
        let mut out = String::new();
        render_raft_stats(&mut out, &stats);
        assert!(
            out.contains("raft_leader_changes_total{group=\"1\"} 2"),
            "{out}"
        );
        assert!(out.contains("raft_leader_changes_total{group=\"0\"} 0"));
        assert!(out.contains("raft_snapshot_built_bytes_total{group=\"1\"} 1000"));
        assert!(out.contains("raft_proposal_duration_seconds_bucket{group=\"1\",le=\"0.0025\"} 0"));
        assert!(out.contains("raft_proposal_duration_seconds_bucket{group=\"1\",le=\"0.005\"} 1"));
        assert!(out.contains("raft_proposal_duration_seconds_count{group=\"1\"} 1"));
        assert!(out.contains("auction_auctions_ended_total{outcome=\"sold\"} 0"));
        let status = GroupStatus {
            group_id: 1,
            role: Role::Leader,
            term: 3,
            leader_id: Some(1),
            last_log_index: Some(100),
            committed_index: Some(90),
            applied_index: Some(85),
            snapshot_index: Some(40),
            purged_index: None,
            voters: vec![1, 2, 3],
            learners: Vec::new(),
            replication: vec![
                ReplicaProgress {
                    node_id: 2,
                    matched_index: Some(95),
                },
                ReplicaProgress {
                    node_id: 3,
                    matched_index: Some(70),
                },
            ],
        };
        let mut out = String::new();
        render_raft_lags(&mut out, &[status]);
        assert!(out.contains("raft_commit_index{group=\"1\"} 90"));
        assert!(out.contains("raft_commit_lag_entries{group=\"1\"} 10"));
        assert!(out.contains("raft_apply_lag_entries{group=\"1\"} 5"));
        assert!(out.contains("raft_replication_lag_entries{group=\"1\"} 30"));
        assert!(out.contains("raft_snapshot_index{group=\"1\"} 40"));
    }

    #[test]
    fn bid_kinds_and_accepted_codes() {
        use auction_statemachine::money::Money;
        use auction_statemachine::{AuctionId, RequestId, UserId};
        let (auction_id, user) = (AuctionId(uuid::Uuid::nil()), UserId(uuid::Uuid::nil()));
        let bid = Op::PlaceBid {
            auction_id,
            bidder: user,
            amount: "1.00".to_owned(),
        };
        assert_eq!(BidKind::of(&bid), Some(BidKind::Bid));
        assert_eq!(
            BidKind::of(&Op::BuyNow {
                auction_id,
                buyer: user
            }),
            Some(BidKind::BuyNow)
        );
        assert_eq!(BidKind::of(&Op::Tick), None);
        let mut outcome = BidOutcome {
            bid_id: RequestId(uuid::Uuid::nil()),
            auction_id,
            bidder_id: user,
            winning: true,
            amount: Money::parse("1.00").expect("money"),
            current_price: Money::parse("1.00").expect("money"),
            high_bidder_id: user,
            end_time: 0,
            bid_count: 1,
            steps: Vec::new(),
        };
        assert_eq!(accepted_code(false, &outcome), "winning");
        assert_eq!(accepted_code(true, &outcome), "replayed");
        outcome.winning = false;
        assert_eq!(accepted_code(false, &outcome), "outbid");
    }

    #[test]
    fn rate_limit_checks_render_by_limit_and_answerer() {
        let counters = Counters::default();
        counters.count(Checked::Bid, Via::Owner, false);
        counters.count(Checked::Bid, Via::Owner, true);
        counters.count(Checked::Login, Via::Fallback, false);
        counters.count_peer_ask(true);
        let mut out = String::new();
        render_rate_limits(&mut out, &counters);
        assert!(out.contains("auction_rate_limit_checks_total{limit=\"bid\",via=\"owner\"} 2"));
        assert!(out.contains("auction_rate_limit_checks_total{limit=\"bid\",via=\"runner_up\"} 0"));
        assert!(out.contains("auction_rate_limit_peer_asks_total{result=\"answered\"} 1"));
        assert!(out.contains("auction_rate_limit_checks_total{limit=\"login\",via=\"fallback\"} 1"));
        assert!(out.contains("auction_rate_limit_refusals_total{limit=\"bid\"} 1"));
        assert!(out.contains("auction_rate_limit_refusals_total{limit=\"login\"} 0"));
    }

    fn stream_response() -> Response {
        ([(header::CONTENT_TYPE, "text/event-stream")], "data: x\n\n").into_response()
    }

    #[test]
    fn an_sse_stream_is_open_until_its_body_is_dropped() {
        let metrics = HttpMetrics::default();
        let route = "/api/v1/auctions/{id}/events";
        assert!(is_event_stream(&stream_response()));
        assert!(!is_event_stream(&"plain".into_response()));
        let first = metrics.hold_stream(route.to_owned(), stream_response());
        let second = metrics.hold_stream(route.to_owned(), stream_response());
        let gauge = |metrics: &HttpMetrics| {
            let mut out = String::new();
            metrics.render(&mut out);
            out.lines()
                .find(|line| line.starts_with("http_sse_streams_open{"))
                .map(str::to_owned)
        };
        let open = |count: u32| {
            Some(format!(
                "http_sse_streams_open{{route=\"{route}\"}} {count}"
            ))
        };
        assert_eq!(gauge(&metrics), open(2));
        drop(first);
        assert_eq!(gauge(&metrics), open(1));
        drop(second);
        assert_eq!(gauge(&metrics), open(0));
    }
}
