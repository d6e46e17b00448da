//! The node's logs and trace export, set up once at start.
//!
//! Logs go to stderr, filtered by `RUST_LOG` (default `info,openraft=error`). Their format is
//! `--log-format` (`AUCTION_LOG_FORMAT`): `text` (human, coloured on a terminal), `json` (one
//! JSON object a line), or `auto` (the default: text on a terminal, JSON otherwise, so
//! container and file logs are machine-readable). A JSON line is flat: `timestamp` (RFC 3339,
//! UTC, ms), `level`, `node`, `target`, `span` (the innermost span's name), the fields of every
//! span the event is in (`request_id`, `user_id`, `action`, `auction_id`, `route`, `method`,
//! `group`…; an inner span's value wins) and the event's own (`message`, `status`,
//! `duration_ms`…). For example:
//!
//! ```text
//! {"timestamp":"2026-12-04T19:40:01.123Z","level":"INFO","node":2,"target":"auction_api::request_id","span":"http.request","request_id":"2-19aeb-17","method":"POST","route":"/api/v1/auctions/{id}/bids","user_id":"…","action":"bid","auction_id":"…","status":201,"duration_ms":14,"message":"request completed"}
//! ```
//!
//! Spans are exported over OTLP/gRPC only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the
//! exporter also reads the other standard `OTEL_EXPORTER_OTLP_*` and `OTEL_BSP_*` variables):
//! then an OpenTelemetry layer is installed with its own filter (`AUCTION_TRACE_FILTER`,
//! default `info` for this project's crates only), the W3C trace-context propagator is set and
//! [`auction_raft::trace::set_exporting`] turns on propagation between nodes. Without the
//! variable no layer, propagator or exporter exists at all. `service.name` is
//! `OTEL_SERVICE_NAME` or `auction-node`, `service.instance.id` the node id.
//!
//! Not done yet: OTLP over HTTP, metrics and logs over OTLP (metrics are scraped from
//! `/metrics`), sampling other than "everything the filter lets through".

use std::fmt;
use std::io::IsTerminal;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The log filter when `RUST_LOG` is not set.
const DEFAULT_FILTER: &str = "info,openraft=error";
/// What is exported as spans when `AUCTION_TRACE_FILTER` is not set: this project's spans, not
/// those of the libraries under it (openraft's own are many and per entry).
const DEFAULT_TRACE_FILTER: &str =
    "off,auction_api=info,auction_raft=info,auction_node=info,auction_statemachine=info";
/// The variable whose presence turns trace export on.
pub const OTLP_ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Text on a terminal, JSON otherwise.
    #[default]
    Auto,
    Json,
    Text,
}

/// Keeps the trace exporter alive; [`Logging::shutdown`] flushes the spans still queued.
pub struct Logging {
    provider: Option<SdkTracerProvider>,
}

impl Logging {
    /// Flushes and stops the trace exporter, if there is one (bounded by the SDK's export
    /// time-out). On the blocking pool: the SDK waits for its export thread, whose gRPC calls
    /// need the runtime's workers free.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        let stopped = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(error)) = stopped {
            eprintln!("trace export did not shut down cleanly: {error}");
        }
    }
}

/// Installs the logger (and the trace exporter when [`OTLP_ENDPOINT_VAR`] is set) for this
/// process; `node` is the node id the lines and spans carry, if this process is one node.
/// Must run inside the tokio runtime (the exporter's gRPC channel lives on it).
pub fn init(format: LogFormat, node: Option<u64>) -> anyhow::Result<Logging> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let terminal = std::io::stderr().is_terminal();
    let json = match format {
        LogFormat::Auto => !terminal,
        LogFormat::Json => true,
        LogFormat::Text => false,
    };
    let logs = if json {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson { node })
            .with_filter(filter)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            // Colours only on a terminal: container logs and log files stay plain text.
            .with_ansi(terminal)
            .with_filter(filter)
            .boxed()
    };
    let mut layers = vec![logs];
    let mut provider = None;
    if exporter_wanted() {
        let (layer, traces) = trace_layer(node)?;
        layers.push(layer);
        provider = Some(traces);
    }
    tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .context("installing the logger")?;
    if provider.is_some() {
        auction_raft::trace::set_exporting(true);
    }
    Ok(Logging { provider })
}

fn exporter_wanted() -> bool {
    std::env::var(OTLP_ENDPOINT_VAR).is_ok_and(|endpoint| !endpoint.trim().is_empty())
}

type BoxedLayer = Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>;

/// The OpenTelemetry layer over a batching OTLP/gRPC exporter, and its provider.
fn trace_layer(node: Option<u64>) -> anyhow::Result<(BoxedLayer, SdkTracerProvider)> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .context("building the OTLP span exporter")?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "auction-node".to_owned());
    let mut resource = opentelemetry_sdk::Resource::builder().with_service_name(service);
    if let Some(node) = node {
        resource = resource.with_attribute(opentelemetry::KeyValue::new(
            "service.instance.id",
            node.to_string(),
        ));
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let filter = std::env::var("AUCTION_TRACE_FILTER")
        .ok()
        .and_then(|text| EnvFilter::try_new(text).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_TRACE_FILTER));
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("auction-node"))
        .with_filter(filter)
        .boxed();
    Ok((layer, provider))
}

/// One flat JSON object per event (see the module documentation).
struct FlatJson {
    node: Option<u64>,
}

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Line::default();
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        line.insert("timestamp".to_owned(), now.into());
        line.insert("level".to_owned(), event.metadata().level().as_str().into());
        if let Some(node) = self.node {
            line.insert("node".to_owned(), node.into());
        }
        line.insert("target".to_owned(), event.metadata().target().into());
        if let Some(scope) = ctx.event_scope() {
            let mut innermost = None;
            for span in scope.from_root() {
                innermost = Some(span.name());
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>() {
                    merge_span_fields(&mut line, &fields.fields);
                }
            }
            if let Some(name) = innermost {
                line.insert("span".to_owned(), name.into());
            }
        }
        event.record(&mut JsonVisitor(&mut line));
        writeln!(writer, "{}", line.render())
    }
}

/// A log line's fields in the order they were first set (timestamp, level, node first), the
/// last value of a repeated name winning.
#[derive(Default)]
struct Line {
    fields: Vec<(String, Value)>,
}

impl Line {
    fn insert(&mut self, key: String, value: Value) {
        match self.fields.iter_mut().find(|(name, _)| *name == key) {
            Some((_, old)) => *old = value,
            None => self.fields.push((key, value)),
        }
    }

    fn render(&self) -> String {
        let mut out = String::from("{");
        for (position, (key, value)) in self.fields.iter().enumerate() {
            if position > 0 {
                out.push(',');
            }
            // A string and a JSON value always serialise.
            out.push_str(&serde_json::to_string(key).unwrap_or_default());
            out.push(':');
            out.push_str(&serde_json::to_string(value).unwrap_or_default());
        }
        out.push('}');
        out
    }
}

/// Adds a span's recorded fields (a JSON object written by [`JsonFields`]), skipping empty
/// strings so an inner span without a value does not hide an outer one's.
fn merge_span_fields(line: &mut Line, fields: &str) {
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(fields) else {
        return;
    };
    for (key, value) in fields {
        if value.as_str().is_some_and(str::is_empty) {
            continue;
        }
        line.insert(key, value);
    }
}

/// Records an event's fields into the line.
struct JsonVisitor<'a>(&'a mut Line);

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_owned(), value.to_string().into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_fields_merge_and_empty_values_do_not_hide_outer_ones() {
        let mut line = Line::default();
        line.insert("level".to_owned(), "INFO".into());
        merge_span_fields(&mut line, r#"{"request_id":"r-1","route":"/x"}"#);
        merge_span_fields(&mut line, r#"{"request_id":"","group":3,"route":"/y"}"#);
        merge_span_fields(&mut line, "not json");
        assert_eq!(
            line.render(),
            r#"{"level":"INFO","request_id":"r-1","route":"/y","group":3}"#
        );
    }
}
