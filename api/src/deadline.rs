//! The backstop bound on one request's answer: a handler that has not answered within
//! [`ApiConfig::request_timeout_ms`](crate::ApiConfig::request_timeout_ms) of its headers gets
//! `504 TIMEOUT` (a write may have been proposed and its outcome is unknown, so a retry must
//! reuse its `Idempotency-Key`).
//!
//! Handlers bound their own waits well below this (a proposal, a read index, a password check,
//! reading the body: [`crate::extract::BODY_READ_TIMEOUT_MS`]); this keeps a stuck handler from
//! holding a connection forever. An SSE handler answers at once, so a stream's body is not
//! bounded here (the caps of [`crate::streams`] and the heartbeats are).

use std::time::Duration;

use auction_raft::host::NodeStorage;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::SharedApp;

/// Middleware: the answer timeout around every handler.
pub async fn bound<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    request: Request,
    next: Next,
) -> Response {
    let timeout_ms = app.config.request_timeout_ms;
    match tokio::time::timeout(Duration::from_millis(timeout_ms), next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "TIMEOUT",
            format!(
                "no answer within {timeout_ms} ms; a write may have been applied: retry with \
                 the same Idempotency-Key"
            ),
        )
        .into_response(),
    }
}
