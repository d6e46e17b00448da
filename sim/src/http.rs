//! HTTP/1.1 over the simulated network: every node serves the real API router
//! (`auction_api::router`) on [`HTTP_PORT`], and simulated clients call it with hyper, one
//! request per connection, so requests cross turmoil's links like any other traffic.
//!
//! A call ends in one of three ways ([`HttpCall`]): nothing was sent (the connection could not
//! be opened: the request cannot take effect), it was sent and no answer came in time (its
//! outcome is unknown), or an answer with a status and a JSON body.
//!
//! Not done yet: keep-alive connections (each call opens its own); HTTP/2.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::http::{header, Method, Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::Value;
use turmoil::net::{TcpListener, TcpStream};

use crate::node::node_name;

/// Where every node serves the HTTP API.
pub const HTTP_PORT: u16 = 8080;
/// Largest answer body a client reads.
pub const BODY_BYTES_MAX: usize = 1024 * 1024;

/// A request to the API.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: Method,
    pub path: String,
    /// Sent as `Authorization: Bearer …`.
    pub token: Option<String>,
    /// Sent as `X-Idempotency-Key`.
    pub idempotency_key: Option<String>,
    pub body: Option<Value>,
}

impl HttpRequest {
    pub fn get(path: String) -> HttpRequest {
        HttpRequest {
            method: Method::GET,
            path,
            token: None,
            idempotency_key: None,
            body: None,
        }
    }

    pub fn post(path: String, body: Value) -> HttpRequest {
        HttpRequest {
            method: Method::POST,
            path,
            token: None,
            idempotency_key: None,
            body: Some(body),
        }
    }
}

/// An answer: the status and the body as JSON (`Null` when empty or not JSON).
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    pub status: StatusCode,
    pub body: Value,
}

impl HttpAnswer {
    /// The `error` code of a refusal's body.
    pub fn error_code(&self) -> Option<&str> {
        self.body.get("error").and_then(Value::as_str)
    }
}

/// How a call ended.
#[derive(Debug, Clone)]
pub enum HttpCall {
    /// Nothing was sent: the request cannot take effect.
    NotSent(String),
    /// Sent, but no (whole) answer in time: the outcome is unknown.
    Lost(String),
    Answered(HttpAnswer),
}

/// Sends `request` to node `node`, waiting at most `timeout_ms` for the connection and as
/// long again for the answer.
pub async fn call(node: u64, request: &HttpRequest, timeout_ms: u64) -> HttpCall {
    let timeout = Duration::from_millis(timeout_ms);
    let connect = tokio::time::timeout(timeout, TcpStream::connect((node_name(node), HTTP_PORT)));
    let stream = match connect.await {
        Err(_) => return HttpCall::NotSent("connect timed out".to_owned()),
        Ok(Err(error)) => return HttpCall::NotSent(format!("connect: {error}")),
        Ok(Ok(stream)) => stream,
    };
    let built = build(node, request);
    let Ok(http_request) = built else {
        return HttpCall::NotSent("the request could not be built".to_owned());
    };
    match tokio::time::timeout(timeout, exchange(stream, http_request)).await {
        Err(_) => HttpCall::Lost("timed out".to_owned()),
        Ok(Err(error)) => HttpCall::Lost(error),
        Ok(Ok(answer)) => HttpCall::Answered(answer),
    }
}

fn build(node: u64, request: &HttpRequest) -> Result<Request<Full<Bytes>>, hyper::http::Error> {
    let mut builder = Request::builder()
        .method(request.method.clone())
        .uri(request.path.as_str())
        .header(header::HOST, node_name(node));
    if let Some(token) = &request.token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if let Some(key) = &request.idempotency_key {
        builder = builder.header("x-idempotency-key", key.as_str());
    }
    let body = match &request.body {
        Some(body) => {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
            Bytes::from(body.to_string())
        }
        None => Bytes::new(),
    };
    builder.body(Full::new(body))
}

async fn exchange(stream: TcpStream, request: Request<Full<Bytes>>) -> Result<HttpAnswer, String> {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| format!("handshake: {error}"))?;
    let driver = tokio::task::spawn_local(connection);
    let answer = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| format!("request: {error}"))?;
        let status = response.status();
        let bytes = Limited::new(response.into_body(), BODY_BYTES_MAX)
            .collect()
            .await
            .map_err(|error| format!("body: {error}"))?
            .to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(HttpAnswer { status, body })
    }
    .await;
    driver.abort();
    answer
}

/// Serves `router` on the node's [`HTTP_PORT`] until the node crashes; one task per
/// connection. Timers are tokio's, so simulated.
pub async fn serve(router: Router) -> std::io::Result<()> {
    let listener = TcpListener::bind((IpAddr::V4(Ipv4Addr::UNSPECIFIED), HTTP_PORT)).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let service = TowerToHyperService::new(router.clone());
        tokio::task::spawn_local(async move {
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(error) = served {
                tracing::debug!(%error, "an HTTP connection ended with an error");
            }
        });
    }
}
