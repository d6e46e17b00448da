//! Caps on open SSE streams: at most [`ApiConfig::sse_streams_max`](crate::ApiConfig) on a
//! node and [`ApiConfig::sse_streams_per_client_max`](crate::ApiConfig) per client address.
//!
//! A stream holds a [`StreamPermit`] for as long as its response body lives; the permit is
//! taken before the handler runs, so a refused stream costs no read and no subscription. Over
//! the client's cap the answer is `429 RATE_LIMITED`, over the node's `503 UNAVAILABLE`, both
//! with `Retry-After`. The client is the TCP peer's IP (behind a proxy, the proxy: forwarded
//! headers are not trusted yet), the same key as the per-IP request limit.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use auction_raft::host::NodeStorage;
use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use crate::error::{ApiError, ApiResult};
use crate::SharedApp;

/// The routes that answer with an event stream.
pub const STREAM_ROUTES: [&str; 2] = ["/api/v1/auctions/{id}/events", "/api/v1/users/me/events"];

/// Open streams of one node, in total and per client.
#[derive(Debug)]
pub struct StreamCaps {
    node_max: usize,
    client_max: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    /// Only clients with a stream open: an entry goes with its last stream.
    per_client: HashMap<IpAddr, usize>,
}

/// One open stream; dropping it frees its place.
#[derive(Debug)]
pub struct StreamPermit {
    caps: Arc<StreamCaps>,
    client: Option<IpAddr>,
}

impl StreamCaps {
    pub fn new(node_max: usize, client_max: usize) -> Arc<StreamCaps> {
        Arc::new(StreamCaps {
            node_max,
            client_max,
            open: Mutex::new(Open::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for one more stream of `client` (unknown clients share only the node's cap).
    pub fn open(self: &Arc<Self>, client: Option<IpAddr>) -> ApiResult<StreamPermit> {
        let mut open = self.lock();
        if open.total >= self.node_max {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                format!(
                    "this node serves {} event streams already; use another node",
                    self.node_max
                ),
            )
            .retry_after(5));
        }
        if let Some(ip) = client {
            let count = open.per_client.entry(ip).or_default();
            if *count >= self.client_max {
                return Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "RATE_LIMITED",
                    format!(
                        "at most {} event streams per client; close one first",
                        self.client_max
                    ),
                )
                .retry_after(5));
            }
            *count += 1;
        }
        open.total += 1;
        Ok(StreamPermit {
            caps: self.clone(),
            client,
        })
    }

    /// Streams open now on this node.
    pub fn open_streams(&self) -> usize {
        self.lock().total
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self.caps.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(ip) = self.client {
            if let Some(count) = open.per_client.get_mut(&ip) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    open.per_client.remove(&ip);
                }
            }
        }
    }
}

/// Middleware (a route layer, so the matched route is known): takes a permit for a stream
/// route and keeps it in the response body, which lives as long as the stream.
pub async fn cap<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    request: Request,
    next: Next,
) -> Response {
    let is_stream = request
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|path| STREAM_ROUTES.contains(&path.as_str()));
    if !is_stream {
        return next.run(request).await;
    }
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    let permit = match app.streams.open(client) {
        Ok(permit) => permit,
        Err(refused) => return refused.into_response(),
    };
    let response = next.run(request).await;
    if !response.status().is_success() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = body.into_data_stream().map(move |chunk| {
        let _held = &permit;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn a_client_over_its_cap_is_told_to_wait_and_others_still_open_streams() {
        let caps = StreamCaps::new(10, 2);
        let first = caps.open(ip(1)).expect("first");
        let _second = caps.open(ip(1)).expect("second");
        let refused = caps.open(ip(1)).expect_err("third of one client");
        assert_eq!(
            (refused.status, refused.code),
            (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED")
        );
        let _other = caps.open(ip(2)).expect("another client");
        drop(first);
        let _again = caps.open(ip(1)).expect("a place came free");
        assert_eq!(caps.open_streams(), 3);
    }

    #[test]
    fn a_full_node_refuses_every_client_until_a_stream_closes() {
        let caps = StreamCaps::new(2, 5);
        let first = caps.open(ip(1)).expect("first");
        let _second = caps
            .open(None)
            .expect("an unknown client counts for the node");
        let refused = caps.open(ip(3)).expect_err("node full");
        assert_eq!(
            (refused.status, refused.code),
            (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE")
        );
        drop(first);
        assert!(caps.open(ip(3)).is_ok());
    }

    #[test]
    fn closed_streams_leave_no_entry_behind() {
        let caps = StreamCaps::new(100, 100);
        let permits: Vec<_> = (0..50).map(|n| caps.open(ip(n)).expect("open")).collect();
        drop(permits);
        assert_eq!(caps.open_streams(), 0);
        assert!(caps.lock().per_client.is_empty());
    }
}
