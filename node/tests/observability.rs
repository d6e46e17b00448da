//! Black-box test of what an operator sees of a running 3-node cluster: the spans of one bid
//! forwarded from a follower to its shard's leader reach an OTLP collector (a mock tonic
//! server here that decodes `ExportTraceServiceRequest`) as one trace with spans from both
//! nodes; `X-Request-Id` is echoed, in the spans, in the JSON log lines and in error bodies;
//! and every metric that `cluster/monitoring/alerts.yml` and `dashboard.json` name is exported
//! by a node's `/metrics`.
//!
//! The test prints the trace (span names, nodes, durations) and one JSON log line, which the
//! notes of the observability work quote.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use common::{free_port, Api, Cluster};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use reqwest::Method;
use serde_json::{json, Value};

/// How long the spans of a bid may take to reach the collector (the nodes export every 200 ms).
const EXPORT_WAIT_MS_MAX: u64 = 15_000;

/// One span as the collector received it.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    node: String,
    start_ns: u64,
    end_ns: u64,
    attributes: BTreeMap<String, String>,
}

#[derive(Default, Clone)]
struct MockCollector {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn text(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    attributes
        .iter()
        .map(|attribute| {
            let value = match attribute
                .value
                .as_ref()
                .and_then(|value| value.value.as_ref())
            {
                Some(any_value::Value::StringValue(text)) => text.clone(),
                Some(any_value::Value::IntValue(number)) => number.to_string(),
                Some(any_value::Value::BoolValue(flag)) => flag.to_string(),
                Some(other) => format!("{other:?}"),
                None => String::new(),
            };
            (attribute.key.clone(), value)
        })
        .collect()
}

#[tonic::async_trait]
impl TraceService for MockCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let resource = resource_spans
                .resource
                .map(|resource| text(&resource.attributes))
                .unwrap_or_default();
            let node = resource
                .get("service.instance.id")
                .cloned()
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    received.push(ReceivedSpan {
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        name: span.name,
                        node: node.clone(),
                        start_ns: span.start_time_unix_nano,
                        end_ns: span.end_time_unix_nano,
                        attributes: text(&span.attributes),
                    });
                }
            }
        }
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(received);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl MockCollector {
    /// Serves OTLP/gRPC on `127.0.0.1:port` until the test ends.
    fn start(&self, port: u16) {
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(async move {
            let address = ([127, 0, 0, 1], port).into();
            let served = tonic::transport::Server::builder()
                .add_service(service)
                .serve(address)
                .await;
            if let Err(error) = served {
                eprintln!("mock collector stopped: {error}");
            }
        });
    }

    fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The spans of the trace whose `http.request` span has `request_id`, once that trace has
    /// spans from two nodes including the leader's apply.
    async fn forwarded_trace(&self, request_id: &str) -> Option<Vec<ReceivedSpan>> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(EXPORT_WAIT_MS_MAX);
        while tokio::time::Instant::now() < deadline {
            let spans = self.spans();
            let trace_id = spans
                .iter()
                .find(|span| {
                    span.name == "http.request"
                        && span.attributes.get("request_id").map(String::as_str) == Some(request_id)
                })
                .map(|span| span.trace_id.clone());
            if let Some(trace_id) = trace_id {
                let trace: Vec<ReceivedSpan> = spans
                    .into_iter()
                    .filter(|span| span.trace_id == trace_id)
                    .collect();
                let nodes: BTreeSet<&str> = trace.iter().map(|span| span.node.as_str()).collect();
                let applied = trace.iter().any(|span| span.name == "raft.apply");
                if nodes.len() >= 2 && applied {
                    return Some(trace);
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        None
    }
}

/// The trace as an indented tree, ordered by start, with each span's node and duration.
fn render_trace(trace: &[ReceivedSpan]) -> String {
    let start = trace.iter().map(|span| span.start_ns).min().unwrap_or(0);
    let mut out = String::new();
    let ids: BTreeSet<&str> = trace.iter().map(|span| span.span_id.as_str()).collect();
    let mut roots: Vec<&ReceivedSpan> = trace
        .iter()
        .filter(|span| !ids.contains(span.parent_span_id.as_str()))
        .collect();
    roots.sort_by_key(|span| span.start_ns);
    for root in roots {
        render_span(trace, root, 0, start, &mut out);
    }
    out
}

fn render_span(
    trace: &[ReceivedSpan],
    span: &ReceivedSpan,
    depth: usize,
    start: u64,
    out: &mut String,
) {
    let offset_ms = span.start_ns.saturating_sub(start) as f64 / 1e6;
    let duration_ms = span.end_ns.saturating_sub(span.start_ns) as f64 / 1e6;
    out.push_str(&format!(
        "{:indent$}{} [node {}] +{offset_ms:.2} ms, {duration_ms:.2} ms\n",
        "",
        span.name,
        span.node,
        indent = depth * 2
    ));
    let mut children: Vec<&ReceivedSpan> = trace
        .iter()
        .filter(|child| child.parent_span_id == span.span_id)
        .collect();
    children.sort_by_key(|child| child.start_ns);
    for child in children {
        render_span(trace, child, depth + 1, start, out);
    }
}

/// The metric names a monitoring file uses: words that start like this project's metrics.
fn metric_names(text: &str) -> BTreeSet<String> {
    const PREFIXES: [&str; 4] = ["auction_", "raft_", "http_", "search_"];
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| PREFIXES.iter().any(|prefix| word.starts_with(prefix)))
        .map(str::to_owned)
        .collect()
}

/// Whether `/metrics` text declares `name` (a histogram's `_bucket`, `_sum` and `_count` count
/// as the histogram).
fn is_exported(metrics: &str, name: &str) -> bool {
    let declared = |base: &str| metrics.contains(&format!("# TYPE {base} "));
    declared(name)
        || ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| name.strip_suffix(suffix))
            .any(declared)
}

/// Bids on `auction` through every node in turn (bidder `i` through node `i`) with our own
/// request ids: at least two of them go through a node that is not the shard's leader.
/// Returns the request ids.
async fn bid_through_every_node(
    client: &Api,
    cluster: &Cluster,
    auction: &str,
    bidders: &[(String, String)],
) -> Vec<String> {
    let mut request_ids = Vec::new();
    for (node, amount) in [(0, "10.00"), (1, "11.00"), (2, "12.00")] {
        let token = bidders[node].1.as_str();
        let request_id = format!("trace-test-bid-{node}");
        let url = format!("{}/api/v1/auctions/{auction}/bids", cluster.url(node));
        let body = json!({ "amount": amount });
        let headers = [("x-request-id", request_id.as_str())];
        let reply = client
            .call(Method::POST, url, Some(token), Some(body), &headers)
            .await;
        assert_eq!(reply.status.as_u16(), 201, "{:?}", reply.body);
        assert_eq!(
            reply.headers["x-request-id"].to_str().ok(),
            Some(request_id.as_str()),
            "the request id is echoed"
        );
        request_ids.push(request_id);
    }
    request_ids
}

/// The first JSON line of `log` that is a completion line of `request_id`, as written and
/// parsed.
fn completion_line<'a>(log: &'a str, request_id: &str) -> Option<(&'a str, Value)> {
    log.lines()
        .filter_map(|raw| Some((raw, serde_json::from_str::<Value>(raw).ok()?)))
        .find(|(_, line)| {
            line["request_id"] == request_id && line["message"] == "request completed"
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_bid_is_one_trace_and_every_monitored_metric_is_exported() {
    let collector = MockCollector::default();
    let port = free_port();
    collector.start(port);
    let endpoint = format!("http://127.0.0.1:{port}");
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ("AUCTION_LOG_FORMAT", "json"),
        ("RUST_LOG", "info,openraft=error"),
    ];
    let extra = ["--bid-rate-per-minute", "6000", "--ip-rate-per-minute", "0"];
    let cluster = Cluster::start_with_env(3, &extra, &env).await;
    let client = Api::default();
    let (_, seller) = client.user(cluster.url(0), "trace-seller").await;
    let mut bidders = Vec::new();
    for node in 0..3 {
        let name = format!("trace-bidder-{node}");
        bidders.push(client.user(cluster.url(node), &name).await);
    }
    let created = client
        .post(
            format!("{}/api/v1/auctions", cluster.url(0)),
            Some(&seller),
            json!({ "title": "Traced lamp", "startingPrice": "10.00", "durationSeconds": 600 }),
        )
        .await
        .expect(201);
    let auction = created["auction"]["id"].as_str().expect("auction id");

    let request_ids = bid_through_every_node(&client, &cluster, auction, &bidders).await;
    let mut forwarded = None;
    for request_id in &request_ids {
        if let Some(trace) = collector.forwarded_trace(request_id).await {
            forwarded = Some((request_id.clone(), trace));
            break;
        }
    }
    let (request_id, trace) =
        forwarded.expect("a forwarded bid's spans from two nodes in one trace");
    println!(
        "one forwarded bid ({request_id}):\n{}",
        render_trace(&trace)
    );
    let names: BTreeSet<&str> = trace.iter().map(|span| span.name.as_str()).collect();
    for name in [
        "http.request",
        "auth.authenticate",
        "handler.place_bid",
        "raft.route",
        "raft.forward",
        "raft.forwarded",
        "raft.client_write",
        "raft.apply",
    ] {
        assert!(names.contains(name), "span {name} in the trace: {names:?}");
    }
    for span in trace.iter().filter(|span| {
        ["raft.forwarded", "raft.client_write", "raft.apply"].contains(&span.name.as_str())
    }) {
        assert_eq!(
            span.attributes.get("request_id"),
            Some(&request_id),
            "the leader's {} span carries the HTTP request id",
            span.name
        );
    }

    // The JSON completion line of that bid on the node that took it.
    let index = request_id
        .strip_prefix("trace-test-bid-")
        .and_then(|index| index.parse::<usize>().ok())
        .expect("node index");
    let node = index as u64 + 1;
    let log = cluster.node_log(node);
    let (raw, line) =
        completion_line(&log, &request_id).unwrap_or_else(|| panic!("no line in\n{log}"));
    println!("its JSON log line on node {node}:\n{raw}");
    assert!(raw.starts_with("{\"timestamp\":"), "timestamp first: {raw}");
    assert_eq!(line["node"], node);
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["user_id"], bidders[index].0.as_str());
    assert_eq!(line["action"], "bid");
    assert_eq!(line["auction_id"], auction);
    assert_eq!(line["status"], 201);
    assert!(
        line["duration_ms"].is_u64() && line["timestamp"].is_string(),
        "{line}"
    );

    // An error body names the request id too, the client's or a made one.
    let too_low = client
        .post(
            format!("{}/api/v1/auctions/{auction}/bids", cluster.url(2)),
            Some(&bidders[2].1),
            json!({ "amount": "1.00" }),
        )
        .await;
    assert_eq!(too_low.status.as_u16(), 400, "{:?}", too_low.body);
    let header = too_low.headers["x-request-id"].to_str().expect("ascii");
    assert_eq!(too_low.body["requestId"], header, "{:?}", too_low.body);

    // Every metric the alert rules and the dashboard use is exported.
    let metrics = reqwest::get(format!("{}/metrics", cluster.url(0)))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("metrics text");
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../cluster/monitoring");
    for file in ["alerts.yml", "dashboard.json"] {
        let text = std::fs::read_to_string(format!("{root}/{file}")).expect("monitoring file");
        let names = metric_names(&text);
        assert!(names.len() >= 5, "{file} names metrics: {names:?}");
        let missing: Vec<&String> = names
            .iter()
            .filter(|name| !is_exported(&metrics, name))
            .collect();
        assert!(
            missing.is_empty(),
            "{file} uses metrics no node exports: {missing:?}"
        );
    }
    cluster.stop();
}
