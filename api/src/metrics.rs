//! `GET /metrics` in the Prometheus text format: HTTP requests by route, method and status,
//! request latency histograms by route, and per Raft group: term, known leader, whether this
//! node leads, last log and applied indexes.
//!
//! Labels come from the matched route template (`/api/v1/auctions/{id}`), never from the raw
//! path, so the number of series is bounded by the routes. The counters are in-process and
//! start at zero when the node starts. Not here yet: bid outcomes by code, SSE stream gauges,
//! forwarding counters from the Raft host.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use auction_raft::host::NodeStorage;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use openraft::async_runtime::WatchReceiver;

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

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<String, Latency>,
}

/// The HTTP metrics of one node.
#[derive(Default)]
pub struct HttpMetrics {
    inner: Mutex<Inner>,
}

impl HttpMetrics {
    pub fn record(&self, route: &str, method: &str, status: u16, elapsed_ms: u64) {
        // A std mutex: the critical section is a few map updates, never held across an await.
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
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
        let inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
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
    response
}

fn gauge(out: &mut String, name: &str, help: &str, values: &[(u64, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (group, value) in values {
        let _ = writeln!(out, "{name}{{group=\"{group}\"}} {value}");
    }
}

/// `GET /metrics`.
pub async fn render<S: NodeStorage>(State(app): State<SharedApp<S>>) -> Response {
    let mut out = String::new();
    app.metrics.render(&mut out);
    let node = app.host.node_id();
    let (mut term, mut leader, mut leading, mut last_log, mut applied) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for group in app.host.group_ids() {
        let Ok(raft) = app.host.raft(group) else {
            continue;
        };
        let metrics = raft.metrics().borrow_watched().clone();
        term.push((group, metrics.current_term));
        leader.push((group, u64::from(metrics.current_leader.is_some())));
        leading.push((group, u64::from(metrics.current_leader == Some(node))));
        last_log.push((group, metrics.last_log_index.unwrap_or(0)));
        applied.push((group, metrics.last_applied.map_or(0, |log_id| log_id.index)));
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
}
