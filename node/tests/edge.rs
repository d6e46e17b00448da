//! Black-box tests of the HTTP edge on a real node (raw TCP where a well-behaved client would
//! not misbehave): a client that sends its headers too slowly, idles, or stalls its body is
//! cut off with a clear answer; connections over the node's bound get one `503` and close, and
//! a place comes free again; SSE streams over the per-client cap are refused with `429` until
//! one closes.

mod common;

use std::time::Duration;

use common::{Api, Cluster, SseStream};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEADER_READ_TIMEOUT_MS: u64 = 2_000;
const CONNECTIONS_MAX: usize = 6;
const STREAMS_PER_CLIENT_MAX: usize = 2;
/// Bound on any one wait of these tests, so a missing bound fails instead of hanging.
const WAIT_MS_MAX: u64 = 20_000;

async fn node() -> Cluster {
    let header_timeout = HEADER_READ_TIMEOUT_MS.to_string();
    let connections = CONNECTIONS_MAX.to_string();
    let streams = STREAMS_PER_CLIENT_MAX.to_string();
    Cluster::start_with(
        1,
        &[
            "--bid-rate-per-minute",
            "0",
            "--ip-rate-per-minute",
            "0",
            "--http-header-read-timeout-ms",
            &header_timeout,
            "--http-connections-max",
            &connections,
            "--sse-streams-per-client-max",
            &streams,
        ],
    )
    .await
}

fn addr(cluster: &Cluster) -> String {
    cluster
        .url(0)
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

/// Everything the server sends until it closes the connection; `None` if it keeps it open
/// past the bound.
async fn read_until_closed(stream: &mut TcpStream) -> Option<String> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(
        Duration::from_millis(WAIT_MS_MAX),
        stream.read_to_end(&mut received),
    )
    .await;
    match read {
        Ok(_) => Some(String::from_utf8_lossy(&received).into_owned()),
        Err(_) => None,
    }
}

/// One whole response (headers and a `Content-Length` body), without waiting for the close.
async fn read_response(stream: &mut TcpStream) -> String {
    let read = async {
        let mut received = Vec::new();
        let mut chunk = [0u8; 4_096];
        loop {
            let text = String::from_utf8_lossy(&received).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if received.len() >= end + 4 + length {
                    return text;
                }
            }
            let count = stream.read(&mut chunk).await.expect("read");
            assert!(count > 0, "closed before a whole response: {text:?}");
            received.extend_from_slice(&chunk[..count]);
        }
    };
    tokio::time::timeout(Duration::from_millis(WAIT_MS_MAX), read)
        .await
        .expect("a response within the bound")
}

/// Status code and JSON body of the one HTTP/1.1 response in `text`.
fn parse_response(text: &str) -> (u16, Value) {
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_idle_and_stalled_clients_are_cut_off_and_over_the_bound_are_refused() {
    let cluster = node().await;
    let addr = addr(&cluster);

    // Headers that never end: the connection is closed, nothing is answered.
    let mut slow = TcpStream::connect(&addr).await.expect("connect");
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: node\r\n")
        .await
        .expect("write");
    let answer = read_until_closed(&mut slow)
        .await
        .expect("a client slower than the header timeout is closed");
    assert!(answer.is_empty(), "no answer to half a request: {answer:?}");

    // A kept-alive connection that idles after its answer is closed too.
    let mut idle = TcpStream::connect(&addr).await.expect("connect");
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: node\r\n\r\n")
        .await
        .expect("write");
    let answer = read_until_closed(&mut idle)
        .await
        .expect("an idle kept-alive connection is closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");

    // A body that stalls: 408 in the error shape, and nothing was done.
    let mut stalled = TcpStream::connect(&addr).await.expect("connect");
    stalled
        .write_all(
            b"POST /api/v1/auth/register HTTP/1.1\r\nHost: node\r\n\
              Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"email\":",
        )
        .await
        .expect("write");
    let answer = read_response(&mut stalled).await;
    let (status, body) = parse_response(&answer);
    assert_eq!(
        (status, body["error"].as_str()),
        (408, Some("REQUEST_TIMEOUT")),
        "{answer}"
    );

    // Every earlier connection gone from the server's count first: the stalled one is closed
    // after its 408 (on a loaded machine that close could land while the bound below is being
    // filled, freeing a place at the wrong moment).
    let _ = read_until_closed(&mut stalled).await;
    drop(stalled);

    // The node's connection bound: every place taken by a client that is slow to send its
    // headers, the next connection gets one 503 with Retry-After and is closed.
    let mut holders = Vec::new();
    for _ in 0..CONNECTIONS_MAX {
        let mut holder = TcpStream::connect(&addr).await.expect("connect");
        holder
            .write_all(b"GET /health HTTP/1.1\r\n")
            .await
            .expect("write");
        holders.push(holder);
    }
    let mut over = TcpStream::connect(&addr).await.expect("connect");
    over.write_all(b"GET /health HTTP/1.1\r\nHost: node\r\n\r\n")
        .await
        .expect("write");
    let answer = read_response(&mut over).await;
    let (status, body) = parse_response(&answer);
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("UNAVAILABLE")),
        "{answer}"
    );
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );

    // The holders are cut off by the header timeout, and the places come free.
    for holder in &mut holders {
        read_until_closed(holder)
            .await
            .expect("a holder is closed by the header timeout");
    }
    let health = reqwest::get(format!("{}/health", cluster.url(0)))
        .await
        .expect("served again");
    assert_eq!(health.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_over_the_per_client_cap_wait_until_one_closes() {
    let cluster = node().await;
    let api = Api::default();
    let (_, seller) = api.user(cluster.url(0), "stream-seller").await;
    let created = api
        .post(
            format!("{}/api/v1/auctions", cluster.url(0)),
            Some(&seller),
            json!({ "title": "Watched lot", "startingPrice": "10.00", "durationSeconds": 3600 }),
        )
        .await
        .expect(201);
    let id = created["auction"]["id"].as_str().expect("auction id");
    let url = format!("{}/api/v1/auctions/{id}/events", cluster.url(0));

    let mut open = Vec::new();
    for _ in 0..STREAMS_PER_CLIENT_MAX {
        let mut stream = SseStream::open(&url, None, None)
            .await
            .unwrap_or_else(|refused| panic!("within the cap: {:?}", refused.body));
        assert_eq!(stream.next().await.event, "snapshot");
        open.push(stream);
    }
    let refused = match SseStream::open(&url, None, None).await {
        Ok(_) => panic!("a stream over the per-client cap was opened"),
        Err(refused) => refused,
    };
    assert!(refused.headers.contains_key("retry-after"));
    refused.expect_error(429, "RATE_LIMITED");

    // Closing one frees its place once the node notices (its next heartbeat fails).
    drop(open.pop());
    let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS_MAX);
    loop {
        match SseStream::open(&url, None, None).await {
            Ok(_) => break,
            Err(refused) => {
                assert_eq!(refused.status.as_u16(), 429, "{:?}", refused.body);
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the closed stream's place came free"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
