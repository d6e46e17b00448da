//! The one error shape of the API: `{"error": CODE, "message": "...", ...details}`.
//!
//! Every refusal, whatever its source, becomes an [`ApiError`]: a domain [`Rejection`] from the
//! state machine (mapped to the status codes of `api/API.md` with its details, such as
//! `currentBid` and `minimumBid` for `BID_TOO_LOW`), a [`HostError`] from the replication layer
//! (`503 NO_LEADER` with `Retry-After` when a group has no leader, `504 TIMEOUT` when the
//! outcome is unknown), or a refusal of the API itself (authentication, validation, body size,
//! unknown route).
//! Handlers return `Result<_, ApiError>` and never build error bodies by hand. Every body
//! also carries `requestId`, the request's `X-Request-Id` ([`crate::request_id`]), so a
//! refusal a client reports can be found in the node's logs.

use auction_raft::host::HostError;
use auction_statemachine::{Rejection, StoreError};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

/// A refusal as the client sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra top-level fields of the body (`field`, `currentBid`, ...).
    pub details: Map<String, Value>,
    /// Sent as the `Retry-After` header, in whole seconds.
    pub retry_after_seconds: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Map::new(),
            retry_after_seconds: None,
        }
    }

    /// Adds one detail field to the body.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> ApiError {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }

    /// A well-formed request whose field `field` is not acceptable (422).
    pub fn validation(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
            message,
        )
        .with("field", field)
    }

    /// A body that is not JSON at all (400).
    pub fn malformed_body(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "VALIDATION_FAILED", message).with("field", "body")
    }

    pub fn payload_too_large(limit_bytes: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!("the request body is larger than {limit_bytes} bytes"),
        )
        .with("limitBytes", limit_bytes)
    }

    pub fn auction_not_found() -> ApiError {
        ApiError::from(Rejection::AuctionNotFound)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", message)
    }

    /// Sets `Retry-After` (header, whole seconds, at least 1) and the `retryAfter` detail.
    pub fn retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after_seconds = Some(seconds.max(1));
        self.details
            .insert("retryAfter".to_owned(), seconds.max(1).into());
        self
    }
}

/// The HTTP status of each domain rejection (`statemachine/RULES.md`, `api/API.md` "Errors").
pub fn rejection_status(rejection: &Rejection) -> StatusCode {
    match rejection {
        Rejection::AuctionNotFound
        | Rejection::UserNotFound
        | Rejection::NotificationNotFound
        | Rejection::ImageNotFound => StatusCode::NOT_FOUND,
        Rejection::AuctionEnded
        | Rejection::AuctionNotStarted
        | Rejection::AuctionCancelled
        | Rejection::AlreadyHighBidder
        | Rejection::BuyNowUnavailable { .. }
        | Rejection::AuctionHasBids
        | Rejection::EmailTaken
        | Rejection::IdempotencyKeyReused => StatusCode::CONFLICT,
        Rejection::SellerCannotBid | Rejection::UserBanned | Rejection::Forbidden { .. } => {
            StatusCode::FORBIDDEN
        }
        Rejection::InvalidAmount { .. }
        | Rejection::BidTooLow { .. }
        | Rejection::MaximumNotRaised { .. } => StatusCode::BAD_REQUEST,
        Rejection::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        Rejection::WrongGroup => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> ApiError {
        let error = ApiError::new(
            rejection_status(&rejection),
            rejection.code(),
            rejection.to_string(),
        );
        match rejection {
            Rejection::BidTooLow {
                current_bid,
                minimum_bid,
            } => error
                .with("currentBid", current_bid.map(|bid| bid.to_string()))
                .with("minimumBid", minimum_bid.to_string()),
            Rejection::MaximumNotRaised { current_max } => {
                error.with("currentMax", current_max.to_string())
            }
            Rejection::Validation { field, message } => ApiError::validation(&field, message),
            _ => error,
        }
    }
}

impl From<HostError> for ApiError {
    fn from(error: HostError) -> ApiError {
        match error {
            HostError::NoLeader {
                group,
                retry_after_ms,
            } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "NO_LEADER",
                format!("group {group} has no leader right now; retry shortly"),
            )
            .with("group", group)
            .retry_after(retry_after_ms.div_ceil(1_000)),
            HostError::OutcomeUnknown { group, reason } => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "TIMEOUT",
                format!(
                    "the outcome is unknown ({reason}); retrying with the same \
                     X-Idempotency-Key is safe"
                ),
            )
            .with("group", group)
            .retry_after(1),
            HostError::Unavailable { group, reason } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                format!("group {group} is unavailable: {reason}"),
            )
            .with("group", group)
            .retry_after(1),
            HostError::ShuttingDown => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "this node is shutting down; use another node",
            )
            .retry_after(1),
            HostError::UnknownGroup(group) => {
                ApiError::internal(format!("group {group} does not exist on this node"))
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        tracing::error!(%error, "storage read failed");
        ApiError::internal("a storage read failed")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert("error".to_owned(), self.code.into());
        body.insert("message".to_owned(), self.message.into());
        for (key, value) in self.details {
            body.entry(key).or_insert(value);
        }
        if let Some(request_id) = auction_raft::trace::current_request_id() {
            body.insert("requestId".to_owned(), request_id.as_ref().into());
        }
        let mut response = (self.status, Json(Value::Object(body))).into_response();
        if let Some(seconds) = self.retry_after_seconds {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The answer to an unknown path.
pub async fn route_not_found() -> ApiError {
    ApiError::not_found("NOT_FOUND", "no such route")
}

/// The answer to a known path with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "this route does not accept this method",
    )
}

/// A JSON body for a successful answer that is not an object of its own.
pub fn ok_json(status: StatusCode, value: Value) -> Response {
    (status, Json(value)).into_response()
}

/// `{"status": "ok"}`-style small bodies.
pub fn status_body(status: &str) -> Value {
    json!({ "status": status })
}

#[cfg(test)]
mod tests {
    use super::*;
    use auction_statemachine::Money;

    #[test]
    fn rejections_get_design_status_codes_and_details() {
        let low = ApiError::from(Rejection::BidTooLow {
            current_bid: Some(Money::from_cents(5_000)),
            minimum_bid: Money::from_cents(5_100),
        });
        assert_eq!(low.status, StatusCode::BAD_REQUEST);
        assert_eq!(low.code, "BID_TOO_LOW");
        assert_eq!(low.details["currentBid"], "50.00");
        assert_eq!(low.details["minimumBid"], "51.00");
        let first = ApiError::from(Rejection::BidTooLow {
            current_bid: None,
            minimum_bid: Money::from_cents(100),
        });
        assert_eq!(first.details["currentBid"], Value::Null);

        let cases = [
            (Rejection::AuctionNotFound, 404, "AUCTION_NOT_FOUND"),
            (Rejection::AuctionEnded, 409, "AUCTION_ENDED"),
            (Rejection::AuctionNotStarted, 409, "AUCTION_NOT_STARTED"),
            (Rejection::AuctionCancelled, 409, "AUCTION_CANCELLED"),
            (Rejection::AlreadyHighBidder, 409, "ALREADY_HIGH_BIDDER"),
            (Rejection::SellerCannotBid, 403, "SELLER_CANNOT_BID"),
            (Rejection::UserBanned, 403, "USER_BANNED"),
            (Rejection::forbidden("no"), 403, "FORBIDDEN"),
            (
                Rejection::InvalidAmount { reason: "x".into() },
                400,
                "INVALID_AMOUNT",
            ),
            (
                Rejection::validation("title", "empty"),
                422,
                "VALIDATION_FAILED",
            ),
        ];
        for (rejection, status, code) in cases {
            let error = ApiError::from(rejection);
            assert_eq!(error.status.as_u16(), status, "{code}");
            assert_eq!(error.code, code);
        }
        let validation = ApiError::from(Rejection::validation("title", "must not be empty"));
        assert_eq!(validation.details["field"], "title");
    }

    #[test]
    fn no_leader_is_503_with_retry_after_in_seconds() {
        let error = ApiError::from(HostError::NoLeader {
            group: 3,
            retry_after_ms: 1_200,
        });
        assert_eq!(error.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error.code, "NO_LEADER");
        assert_eq!(error.retry_after_seconds, Some(2));
        let response = error.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }
}
