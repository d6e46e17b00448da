//! The load generator's HTTP client: JSON requests to one of the nodes, retried a bounded
//! number of times on `503` (no leader, node unavailable), `504` (outcome unknown) and
//! connection errors, each retry on the next node. Writes carry an `X-Idempotency-Key` that
//! stays the same across the retries, so a retry can never apply a bid twice.
//!
//! [`Http::send_pinned`] retries on the same node instead (the setup's settling reads must
//! reach the node they are meant for), and [`Http::get_text`] reads one plain-text page (the
//! nodes' `/metrics`) from one node without retries.
//!
//! Not here: retries of anything else (a `429` is reported, not hidden).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Most retries of one request.
pub const RETRIES_MAX: u32 = 10;
/// Longest wait before a retry, whatever `Retry-After` says.
const RETRY_WAIT_MS_MAX: u64 = 2_000;
/// Wait before retrying after a connection error or a `5xx` without `Retry-After`.
const RETRY_WAIT_MS_DEFAULT: u64 = 100;
/// Largest response body read; bigger ones are cut (a listing page is far smaller).
const RESPONSE_BYTES_MAX: usize = 4 * 1024 * 1024;

/// An answer: status and JSON body (`Null` when empty or not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    /// The `error` code of an error body.
    pub fn code(&self) -> Option<&str> {
        self.body["error"].as_str()
    }
}

/// What a request came to after its retries.
#[derive(Debug)]
pub struct Sent {
    /// The last answer, or what went wrong without one (`timeout`, `connection error`).
    pub reply: Result<Reply, &'static str>,
    pub retries: u32,
}

/// One request, to be sent (and perhaps re-sent).
pub struct Request<'a> {
    pub method: Method,
    /// Path and query, from `/api/v1/...`.
    pub path: &'a str,
    pub token: Option<&'a str>,
    pub body: Option<&'a Value>,
    pub idempotency_key: Option<&'a str>,
}

impl<'a> Request<'a> {
    /// An anonymous `GET` of `path`.
    pub fn get(path: &'a str) -> Request<'a> {
        Request {
            method: Method::GET,
            path,
            token: None,
            body: None,
            idempotency_key: None,
        }
    }
}

pub struct Http {
    client: reqwest::Client,
    nodes: Vec<String>,
    retries_max: u32,
}

fn retryable(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    )
}

fn retry_wait(headers: &reqwest::header::HeaderMap) -> Duration {
    let wait_ms = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok())
        .map_or(RETRY_WAIT_MS_DEFAULT, |seconds| {
            seconds.saturating_mul(1_000)
        });
    Duration::from_millis(wait_ms.min(RETRY_WAIT_MS_MAX))
}

impl Http {
    /// `nodes` are base URLs (`http://127.0.0.1:8081`), at least one.
    pub fn new(nodes: Vec<String>, timeout: Duration, retries_max: u32) -> anyhow::Result<Http> {
        anyhow::ensure!(!nodes.is_empty(), "at least one --node is needed");
        let client = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(Http {
            client,
            nodes: nodes
                .into_iter()
                .map(|node| node.trim_end_matches('/').to_owned())
                .collect(),
            retries_max: retries_max.min(RETRIES_MAX),
        })
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Sends `request` to node `node` (modulo the node count), retrying on the next nodes.
    pub async fn send(&self, node: usize, request: &Request<'_>) -> Sent {
        self.send_with(node, request, true).await
    }

    /// Sends `request` to node `node` (modulo the node count), retrying on that node only.
    pub async fn send_pinned(&self, node: usize, request: &Request<'_>) -> Sent {
        self.send_with(node, request, false).await
    }

    /// `GET path` of node `node` (modulo the node count) as text, once: the body (cut at
    /// [`RESPONSE_BYTES_MAX`]) of a 2xx answer, or what went wrong.
    pub async fn get_text(&self, node: usize, path: &str) -> anyhow::Result<String> {
        let base = &self.nodes[node % self.nodes.len()];
        let url = format!("{base}{path}");
        let response = self.client.get(&url).send().await?;
        let status = response.status();
        anyhow::ensure!(status.is_success(), "{url} answered {status}");
        let bytes = read_body(response).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn send_with(&self, node: usize, request: &Request<'_>, rotate: bool) -> Sent {
        let mut retries = 0;
        loop {
            let step = if rotate { retries as usize } else { 0 };
            let base = &self.nodes[(node + step) % self.nodes.len()];
            let (reply, wait) = match self.send_once(base, request).await {
                Ok((reply, headers)) => {
                    let wait = retryable(reply.status).then(|| retry_wait(&headers));
                    (Ok(reply), wait)
                }
                Err(error) => {
                    let what = if error.is_timeout() {
                        "timeout"
                    } else {
                        "connection error"
                    };
                    (
                        Err(what),
                        Some(Duration::from_millis(RETRY_WAIT_MS_DEFAULT)),
                    )
                }
            };
            match wait {
                Some(wait) if retries < self.retries_max => {
                    retries += 1;
                    tokio::time::sleep(wait).await;
                }
                _ => return Sent { reply, retries },
            }
        }
    }

    async fn send_once(
        &self,
        base: &str,
        request: &Request<'_>,
    ) -> Result<(Reply, reqwest::header::HeaderMap), reqwest::Error> {
        let mut builder = self
            .client
            .request(request.method.clone(), format!("{base}{}", request.path));
        if let Some(token) = request.token {
            builder = builder.bearer_auth(token);
        }
        if let Some(key) = request.idempotency_key {
            builder = builder.header("x-idempotency-key", key);
        }
        if let Some(body) = request.body {
            builder = builder.json(body);
        }
        let response = builder.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = read_body(response).await?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((Reply { status, body }, headers))
    }
}

/// The body, cut at [`RESPONSE_BYTES_MAX`] (the rest is read and dropped).
async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = RESPONSE_BYTES_MAX.saturating_sub(bytes.len());
        bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    use super::*;

    #[test]
    fn retry_after_is_honoured_up_to_a_bound() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_wait(&headers), Duration::from_millis(100));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
        assert_eq!(retry_wait(&headers), Duration::from_secs(1));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3600"));
        assert_eq!(retry_wait(&headers), Duration::from_secs(2));
        assert!(retryable(StatusCode::SERVICE_UNAVAILABLE));
        assert!(retryable(StatusCode::GATEWAY_TIMEOUT));
        assert!(!retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(!retryable(StatusCode::INTERNAL_SERVER_ERROR));
    }
}
