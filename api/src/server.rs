//! The HTTP server of a node: HTTP/1.1 connections accepted from a TCP listener and served by
//! hyper with the API's router, under the connection bounds of [`ServerLimits`].
//!
//! - At most [`ServerLimits::connections_max`] connections are served at once. A connection
//!   beyond that gets one `503 UNAVAILABLE` with `Retry-After` and is closed; at most
//!   [`REFUSALS_IN_FLIGHT_MAX`] such answers are in flight, and beyond those a connection is
//!   closed at once, so a flood costs an accept and a close, never piled-up work.
//! - Request headers must arrive within [`ServerLimits::header_read_timeout_ms`]; hyper runs
//!   the same timer while a kept-alive connection waits for its next request, so it also
//!   bounds idle connections. Slow-body and slow-handler bounds are the router's
//!   ([`crate::deadline`]).
//! - Every request carries the peer address as `ConnectInfo<SocketAddr>` (for the per-IP
//!   limits).
//! - A stop stops accepting, asks every connection to finish its request and close, and after
//!   [`ServerLimits::shutdown_wait_ms_max`] drops the ones still open (SSE streams never end
//!   by themselves).
//!
//! HTTP/2 is not served: browsers speak HTTP/1.1 to a plain-HTTP origin, one request per
//! connection at a time makes the connection bound a bound on concurrent requests, and h2c
//! would need its own stream and flow-control limits. Not done yet: TLS on the HTTP port (run
//! the node behind a TLS terminator).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::error::ApiError;

/// Answers of `503` to connections over the bound that may be in flight at once.
pub const REFUSALS_IN_FLIGHT_MAX: usize = 64;
/// How long a refused connection may take to send its request before it is closed.
pub const REFUSAL_HEADER_READ_TIMEOUT_MS: u64 = 1_000;
/// Pause after a failed accept (e.g. out of file descriptors), so the loop does not spin.
pub const ACCEPT_RETRY_PAUSE_MS: u64 = 50;

/// Bounds on the connections of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections served at once; SSE streams each hold one.
    pub connections_max: usize,
    /// How long a client may take to send a request's headers, and how long a kept-alive
    /// connection may sit idle.
    pub header_read_timeout_ms: u64,
    /// How long a stop waits for open connections before dropping them.
    pub shutdown_wait_ms_max: u64,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            connections_max: 4_096,
            header_read_timeout_ms: 10_000,
            shutdown_wait_ms_max: 3_000,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops as the module doc says.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) {
    let connections = Arc::new(Semaphore::new(limits.connections_max));
    let refusals = Arc::new(Semaphore::new(REFUSALS_IN_FLIGHT_MAX));
    let graceful = GracefulShutdown::new();
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(ACCEPT_RETRY_PAUSE_MS)).await;
                    continue;
                }
            },
        };
        while tasks.try_join_next().is_some() {}
        let _ = stream.set_nodelay(true);
        match connections.clone().try_acquire_owned() {
            Ok(permit) => {
                let connection = connection(stream, peer, router.clone(), &limits);
                let watched = graceful.watch(connection);
                tasks.spawn(finish(watched, permit));
            }
            Err(_) => match refusals.clone().try_acquire_owned() {
                Ok(permit) => {
                    tasks.spawn(finish(refuse(stream), permit));
                }
                // Dropping the stream closes it: the cheapest answer to a flood.
                Err(_) => drop(stream),
            },
        }
    }
    drop(listener);
    let wait = Duration::from_millis(limits.shutdown_wait_ms_max);
    if tokio::time::timeout(wait, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("HTTP connections still open at the stop are dropped");
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
}

fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: &ServerLimits,
) -> impl hyper_util::server::graceful::GracefulConnection<Error = hyper::Error> + Send {
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request.map(Body::new))
    });
    http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms))
        .serve_connection(TokioIo::new(stream), service)
}

/// One `503` to a connection over the bound, then the connection closes.
fn refuse(stream: TcpStream) -> impl Future<Output = Result<(), hyper::Error>> {
    let service = hyper::service::service_fn(|_request: Request<Incoming>| async {
        Ok::<Response, Infallible>(over_capacity())
    });
    http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(REFUSAL_HEADER_READ_TIMEOUT_MS))
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service)
}

fn over_capacity() -> Response {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "UNAVAILABLE",
        "this node serves as many connections as it may; retry, or use another node",
    )
    .retry_after(1)
    .into_response()
}

async fn finish<E: std::fmt::Display>(
    connection: impl Future<Output = Result<(), E>>,
    permit: OwnedSemaphorePermit,
) {
    if let Err(error) = connection.await {
        // Header timeouts and resets are the clients' business; keep them out of warnings.
        tracing::debug!(%error, "HTTP connection ended with an error");
    }
    drop(permit);
}
