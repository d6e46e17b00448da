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
//! Not here yet: forwarding counters from the Raft host; bid refusals that happen before the
//! bid handler runs (no session, unparsable body or path) are in `http_requests_total` only.

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

    fn label(self) -> &'static str {
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

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<String, Latency>,
    bids: BTreeMap<(BidKind, &'static str), u64>,
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
        let latency = inner.latency.entry(route.to_owned()).or_default();
        for (bucket, bound) in latency.buckets.iter_mut().zip(LATENCY_BUCKETS_MS) {
            if elapsed_ms <= bound {
                *bucket += 1;
            }
        }
        latency.count += 1;
        latency.sum_ms += elapsed_ms;
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
    ];
    for (name, help, value) in lines {
        let Some(value) = value else { continue };
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
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
    for status in app.host.local_statuses() {
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
