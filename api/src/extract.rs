//! Request parsing with the API's own errors: JSON bodies (bounded size, `400` for malformed
//! JSON, `422` naming the field for a wrong or missing field), the `X-Idempotency-Key` header,
//! `?consistency=`, money that arrives as a string or a number, RFC 3339 times, ids in paths.
//!
//! axum's stock extractors answer in plain text; these answer in the error shape of `api/API.md`.

use auction_statemachine::command::IDEMPOTENCY_KEY_BYTES_MAX;
use auction_statemachine::TimestampMs;
use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

/// Largest JSON body accepted, in bytes.
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// Longest a client may take to send a body once its headers arrived (`408` beyond it).
pub const BODY_READ_TIMEOUT_MS: u64 = 10_000;

/// A JSON body of type `T`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let timeout = std::time::Duration::from_millis(BODY_READ_TIMEOUT_MS);
        let read = axum::body::to_bytes(request.into_body(), BODY_BYTES_MAX);
        let bytes = tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| body_too_slow())?
            .map_err(|_| ApiError::payload_too_large(BODY_BYTES_MAX))?;
        parse_json(&bytes).map(ApiJson)
    }
}

fn body_too_slow() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        "REQUEST_TIMEOUT",
        format!("the body did not arrive within {BODY_READ_TIMEOUT_MS} ms; nothing was done"),
    )
}

/// Parses a body: syntax errors are `400`, shape errors are `422` with the field's path.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::malformed_body("a JSON body is required"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let inner = error.inner();
        match inner.classify() {
            serde_json::error::Category::Data => ApiError::validation(
                &field_of(&error.path().to_string(), inner),
                inner.to_string(),
            ),
            _ => ApiError::malformed_body(format!("malformed JSON: {inner}")),
        }
    })?;
    deserializer
        .end()
        .map_err(|error| ApiError::malformed_body(format!("malformed JSON: {error}")))?;
    Ok(value)
}

/// The camelCase name of the field a data error is about.
fn field_of(path: &str, error: &serde_json::Error) -> String {
    let message = error.to_string();
    if let Some(rest) = message.strip_prefix("missing field `") {
        if let Some((name, _)) = rest.split_once('`') {
            return if path == "." {
                name.to_owned()
            } else {
                format!("{path}.{name}")
            };
        }
    }
    if path == "." {
        "body".to_owned()
    } else {
        path.to_owned()
    }
}

/// Money as the client sent it: a JSON string or number, kept as text so the state machine
/// reports `INVALID_AMOUNT` / `VALIDATION_FAILED` in the order of `statemachine/RULES.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmountText(pub String);

/// In the OpenAPI document: a string such as `"55.00"`, or a number.
impl utoipa::PartialSchema for AmountText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .examples([serde_json::json!("55.00")]),
            )
            .item(ObjectBuilder::new().schema_type(Type::Number))
            .description(Some(
                "Money: at most 2 decimals, above 0, at most 1,000,000,000.00",
            ))
            .into()
    }
}

impl utoipa::ToSchema for AmountText {}

impl<'de> Deserialize<'de> for AmountText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(text) => Ok(AmountText(text)),
            Value::Number(number) => Ok(AmountText(number.to_string())),
            _ => Err(serde::de::Error::custom(
                "must be an amount as a string such as \"55.00\" or a number",
            )),
        }
    }
}

/// A bid amount: anything the client sent, as text; a missing or non-scalar amount becomes
/// text that the state machine rejects as `INVALID_AMOUNT` after the auction checks.
pub fn amount_text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// The `X-Idempotency-Key` header: 1 to 128 visible ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(value) = headers.get("x-idempotency-key") else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::validation(
            "X-Idempotency-Key",
            format!("must be 1 to {IDEMPOTENCY_KEY_BYTES_MAX} visible ASCII characters"),
        )
    };
    let text = value.to_str().map_err(|_| invalid())?;
    if text.is_empty()
        || text.len() > IDEMPOTENCY_KEY_BYTES_MAX
        || !text.bytes().all(|byte| byte.is_ascii_graphic())
    {
        return Err(invalid());
    }
    Ok(Some(text.to_owned()))
}

/// How a single-object read is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// Read index on the group leader (the default).
    Linearizable,
    /// This node's replica, which may lag a little.
    Local,
}

pub fn consistency(value: Option<&str>) -> ApiResult<Consistency> {
    match value {
        None | Some("linearizable") => Ok(Consistency::Linearizable),
        Some("local") => Ok(Consistency::Local),
        Some(_) => Err(ApiError::validation(
            "consistency",
            "must be \"linearizable\" or \"local\"",
        )),
    }
}

/// An RFC 3339 time as ms since the epoch.
pub fn parse_time(field: &str, text: &str) -> ApiResult<TimestampMs> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|time| time.timestamp_millis())
        .map_err(|_| {
            ApiError::validation(
                field,
                "must be an RFC 3339 time such as 2030-01-31T12:00:00Z",
            )
        })
}

/// An RFC 3339 UTC string with milliseconds.
/// Lower-case hex of bytes (tokens, digests, entity tags).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut text, byte| {
            let _ = write!(text, "{byte:02x}");
            text
        })
}

/// Whether the request's `If-None-Match` names `etag` (a quoted tag) or is `*`: the client's
/// copy is current and the answer is `304`.
pub fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(axum::http::header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        })
}

pub fn format_time(ms: TimestampMs) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// An id in a path; an id that is not a UUID names nothing, so the caller answers 404.
pub fn path_uuid(text: &str) -> Option<Uuid> {
    Uuid::parse_str(text).ok()
}

/// A page size from `?limit=`: 1..=`max`, default `default`.
pub fn limit(value: Option<&str>, default: usize, max: usize) -> ApiResult<usize> {
    match value {
        None => Ok(default),
        Some(text) => match text.parse::<usize>() {
            Ok(limit) if (1..=max).contains(&limit) => Ok(limit),
            _ => Err(ApiError::validation(
                "limit",
                format!("must be a whole number from 1 to {max}"),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Body {
        title: String,
        starting_price: AmountText,
    }

    #[test]
    fn malformed_json_is_400_and_a_missing_field_is_422_with_its_name() {
        let malformed = parse_json::<Body>(b"{\"title\": ").expect_err("malformed");
        assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
        assert_eq!(malformed.details["field"], "body");
        let empty = parse_json::<Body>(b"  ").expect_err("empty");
        assert_eq!(empty.status, StatusCode::BAD_REQUEST);
        let missing = parse_json::<Body>(b"{\"startingPrice\": \"1.00\"}").expect_err("missing");
        assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(missing.details["field"], "title");
        let wrong = parse_json::<Body>(b"{\"title\": \"t\", \"startingPrice\": true}")
            .expect_err("wrong type");
        assert_eq!(wrong.details["field"], "startingPrice");
        let trailing = parse_json::<Body>(b"{\"title\": \"t\", \"startingPrice\": 1} x")
            .expect_err("trailing");
        assert_eq!(trailing.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn amounts_arrive_as_strings_or_numbers() {
        let body: Body =
            parse_json(b"{\"title\": \"t\", \"startingPrice\": 55.5}").expect("number");
        assert_eq!(body.starting_price.0, "55.5");
        let body: Body =
            parse_json(b"{\"title\": \"t\", \"startingPrice\": \"55.00\"}").expect("string");
        assert_eq!(body.starting_price.0, "55.00");
        assert_eq!(amount_text(None), "");
        assert_eq!(amount_text(Some(&Value::Bool(true))), "true");
    }

    #[test]
    fn idempotency_keys_are_bounded_visible_ascii() {
        let mut headers = HeaderMap::new();
        assert_eq!(idempotency_key(&headers).expect("none"), None);
        headers.insert("x-idempotency-key", "abc-123".parse().expect("header"));
        assert_eq!(
            idempotency_key(&headers).expect("valid").as_deref(),
            Some("abc-123")
        );
        headers.insert(
            "x-idempotency-key",
            "x".repeat(IDEMPOTENCY_KEY_BYTES_MAX + 1)
                .parse()
                .expect("header"),
        );
        assert!(idempotency_key(&headers).is_err());
    }

    #[test]
    fn times_round_trip_through_rfc3339() {
        let ms = parse_time("endTime", "2030-01-31T12:00:00.250Z").expect("valid");
        assert_eq!(format_time(ms), "2030-01-31T12:00:00.250Z");
        assert!(parse_time("endTime", "tomorrow").is_err());
    }
}
