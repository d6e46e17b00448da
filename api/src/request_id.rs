//! Request ids and the request span: every HTTP request gets an `X-Request-Id` (the client's,
//! when it is 1 to 128 visible ASCII characters, else one made here), echoed in the response
//! header, in the `requestId` field of every error body ([`crate::error`]), and a field of the
//! `http.request` span around everything the request does, so every log line of the request
//! carries it. The Raft host carries it to the group leader with a forwarded write and into
//! the apply span ([`auction_raft::trace`]).
//!
//! The span also gets `route` (the matched template, set by [`crate::metrics::track`]),
//! `user_id` (set by authentication), `action` and `auction_id` (set by the handlers that have
//! them). When the request is answered one `request completed` line is logged with the status
//! and `duration_ms` (at debug level for `/health`, `/ready` and `/metrics`, which scrapers and
//! probes call every few seconds). A W3C `traceparent` header from the client makes the span a
//! child of the client's when spans are exported.
//!
//! Made ids are `<node>-<start ms, hex>-<sequence>`: unique per node and start, with no
//! randomness (the simulator's runs stay a function of their seed).
//!
//! Not done yet: the completion line of an SSE stream is logged when its head is sent, not
//! when the stream ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use auction_raft::host::NodeStorage;
use auction_raft::trace;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::SharedApp;

/// The header a request id travels in, both ways.
pub static REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Paths whose completion is logged at debug level only (probes and scrapes).
const QUIET_PATHS: [&str; 3] = ["/health", "/ready", "/metrics"];

/// Makes this node's request ids.
pub struct RequestIds {
    prefix: String,
    next: AtomicU64,
}

impl RequestIds {
    pub fn new(node_id: u64, start_ms: u64) -> Self {
        RequestIds {
            prefix: format!("{node_id}-{start_ms:x}"),
            next: AtomicU64::new(1),
        }
    }

    fn make(&self) -> Arc<str> {
        let sequence = self.next.fetch_add(1, Ordering::Relaxed);
        Arc::from(format!("{}-{sequence}", self.prefix))
    }

    /// The client's id when it is sane, else a new one.
    pub fn of(&self, header: Option<&HeaderValue>) -> Arc<str> {
        header
            .and_then(|value| value.to_str().ok())
            .filter(|text| trace::is_sane_request_id(text))
            .map_or_else(|| self.make(), Arc::from)
    }
}

/// Middleware (the outermost): the request id, the request span and the completion line.
pub async fn scope<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    request: Request,
    next: Next,
) -> Response {
    let request_id = app
        .request_ids
        .of(request.headers().get(&REQUEST_ID_HEADER));
    let span = tracing::info_span!(
        "http.request",
        request_id = &*request_id,
        method = %request.method(),
        route = tracing::field::Empty,
        user_id = tracing::field::Empty,
        action = tracing::field::Empty,
        auction_id = tracing::field::Empty,
    );
    if let Some(parent) = request
        .headers()
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
    {
        trace::set_remote_parent(&span, parent);
    }
    let quiet = QUIET_PATHS.contains(&request.uri().path());
    let started = Instant::now();
    let answered = trace::with_request_id(request_id.clone(), next.run(request));
    let mut response = answered.instrument(span.clone()).await;
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let status = response.status().as_u16();
    span.in_scope(|| {
        if quiet {
            tracing::debug!(status, duration_ms, "request completed");
        } else {
            tracing::info!(status, duration_ms, "request completed");
        }
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(REQUEST_ID_HEADER.clone(), value);
    }
    response
}

/// Names what the current request does (`bid`, `create_auction`…) on its span, for the logs.
pub fn record_action(action: &'static str) {
    tracing::Span::current().record("action", action);
}

/// Names the auction the current request is about on its span, for the logs.
pub fn record_auction(auction_id: &impl std::fmt::Display) {
    tracing::Span::current().record("auction_id", tracing::field::display(auction_id));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_client_id_is_kept_and_others_are_replaced() {
        let ids = RequestIds::new(3, 0xabc);
        let kept = HeaderValue::from_static("client-id-1");
        assert_eq!(&*ids.of(Some(&kept)), "client-id-1");
        assert_eq!(&*ids.of(None), "3-abc-1");
        let spaced = HeaderValue::from_static("has space");
        assert_eq!(&*ids.of(Some(&spaced)), "3-abc-2");
        let long = HeaderValue::from_str(&"x".repeat(129)).expect("header");
        assert_eq!(&*ids.of(Some(&long)), "3-abc-3");
    }
}
