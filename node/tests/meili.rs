//! The Meilisearch sink against a mock Meilisearch: a real HTTP server in this process that
//! records every request and answers as Meilisearch does (`202` and a task object for each
//! write), and applies the writes to its own documents so the test can compare them with the
//! cluster. No real Meilisearch is involved.
//!
//! One node, `--meili-url` pointing at the mock: auctions created and bid on reach the mock
//! as batched documents with the right fields; the settings are written once; an outage (the
//! mock answering `503`) loses no change; a restart, where the node gains every shard's
//! leadership again, resyncs every auction and deletes a stale document by filter.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use common::{Api, Cluster, SHARDS};
use serde_json::{json, Value};

const KEY: &str = "test-meili-key";
const INDEX: &str = "auctions-test";
/// How long the sink may take to bring the mock up to date (ticks of 1 s, backoffs of a few).
const SYNCED_WITHIN_MS_MAX: u64 = 40_000;
const AUCTIONS_FIRST: usize = 24;
const AUCTIONS_DURING_OUTAGE: usize = 3;

/// One request the mock received.
#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    path: String,
    authorization: Option<String>,
    body: Value,
    status: u16,
}

#[derive(Default)]
struct MockState {
    requests: Vec<Recorded>,
    /// Answer every request `503` while set.
    failing: bool,
    next_task: u32,
    /// The index's documents by id, as Meilisearch would hold them once its tasks ran.
    documents: BTreeMap<String, Value>,
}

#[derive(Clone, Default)]
struct Mock {
    state: Arc<Mutex<MockState>>,
}

impl Mock {
    async fn start() -> (Mock, SocketAddr) {
        let mock = Mock::default();
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(mock.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the mock");
        let addr = listener.local_addr().expect("mock address");
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the mock serves");
        });
        (mock, addr)
    }

    fn lock(&self) -> MutexGuard<'_, MockState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    fn documents(&self) -> BTreeMap<String, Value> {
        self.lock().documents.clone()
    }
}

/// Every route of the mock: record, then answer (and apply) like Meilisearch.
async fn answer(
    State(mock): State<Mock>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut state = mock.lock();
    let path = uri.path().to_owned();
    let authorization = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let mut record = Recorded {
        method: method.clone(),
        path: path.clone(),
        authorization,
        body: body.clone(),
        status: 503,
    };
    if state.failing {
        state.requests.push(record);
        return (StatusCode::SERVICE_UNAVAILABLE, "unavailable").into_response();
    }
    let documents_path = format!("/indexes/{INDEX}/documents");
    let kind = match (method.as_str(), path.as_str()) {
        ("PATCH", p) if p == format!("/indexes/{INDEX}/settings") => "settingsUpdate",
        ("POST", p) if p == documents_path => {
            for document in body.as_array().into_iter().flatten() {
                let id = document["id"].as_str().expect("a string id").to_owned();
                state.documents.insert(id, document.clone());
            }
            "documentAdditionOrUpdate"
        }
        ("POST", p) if p == format!("{documents_path}/delete-batch") => {
            for id in body.as_array().into_iter().flatten() {
                state.documents.remove(id.as_str().expect("a string id"));
            }
            "documentDeletion"
        }
        ("POST", p) if p == format!("{documents_path}/delete") => {
            let filter = body["filter"].as_str().expect("a filter").to_owned();
            let (group, epoch) = parse_older_filter(&filter);
            state.documents.retain(|_, document| {
                document["group"] != group || document["syncEpoch"].as_u64() >= Some(epoch)
            });
            "documentDeletion"
        }
        _ => {
            record.status = 404;
            state.requests.push(record);
            return (StatusCode::NOT_FOUND, "unknown route").into_response();
        }
    };
    record.status = 202;
    state.requests.push(record);
    state.next_task += 1;
    let task = json!({
        "taskUid": state.next_task, "indexUid": INDEX, "status": "enqueued", "type": kind,
        "enqueuedAt": "2025-01-01T00:00:00.000000Z",
    });
    (StatusCode::ACCEPTED, axum::Json(task)).into_response()
}

/// `group = G AND syncEpoch < E`, the only filter the sink sends.
fn parse_older_filter(filter: &str) -> (u64, u64) {
    let words: Vec<&str> = filter.split_whitespace().collect();
    match words.as_slice() {
        ["group", "=", group, "AND", "syncEpoch", "<", epoch] => (
            group.parse().expect("a group"),
            epoch.parse().expect("an epoch"),
        ),
        _ => panic!("unexpected filter {filter:?}"),
    }
}

fn api_url(base: &str, path: &str) -> String {
    format!("{base}/api/v1{path}")
}

/// Creates `count` auctions at once; their ids.
async fn create_many(api: &Api, base: &str, token: &str, tag: &str, count: usize) -> Vec<String> {
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..count {
        let (api, url, token) = (api.clone(), api_url(base, "/auctions"), token.to_owned());
        let body = json!({
            "title": format!("Lamp {tag} {n}"), "description": "brass, working",
            "category": "home", "startingPrice": "12.00", "durationSeconds": 3600,
        });
        tasks.spawn(async move {
            let created = api.post(url, Some(&token), body).await.expect(201);
            created["auction"]["id"].as_str().expect("id").to_owned()
        });
    }
    let mut ids = Vec::new();
    while let Some(id) = tasks.join_next().await {
        ids.push(id.expect("create task"));
    }
    ids
}

async fn bid(api: &Api, base: &str, token: &str, id: &str, amount: &str) {
    let url = api_url(base, &format!("/auctions/{id}/bids"));
    api.post(url, Some(token), json!({ "amount": amount }))
        .await
        .expect(201);
}

/// Waits until `done` holds for the mock.
async fn until(mock: &Mock, what: &str, done: impl Fn(&Mock) -> bool) {
    let start = Instant::now();
    while !done(mock) {
        if start.elapsed() > Duration::from_millis(SYNCED_WITHIN_MS_MAX) {
            let requests: Vec<String> = mock
                .requests()
                .iter()
                .map(|r| format!("{} {} -> {}", r.method, r.path, r.status))
                .collect();
            panic!("{what}: not within {SYNCED_WITHIN_MS_MAX} ms; requests: {requests:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn has_all(mock: &Mock, ids: &[String]) -> bool {
    let documents = mock.documents();
    ids.iter().all(|id| documents.contains_key(id))
}

fn price_cents(mock: &Mock, id: &str) -> Option<i64> {
    mock.documents().get(id)?["currentPriceCents"].as_i64()
}

fn settings_requests(requests: &[Recorded]) -> Vec<&Recorded> {
    requests
        .iter()
        .filter(|r| r.method == Method::PATCH && r.status == 202)
        .collect()
}

fn document_requests(requests: &[Recorded]) -> Vec<&Recorded> {
    let path = format!("/indexes/{INDEX}/documents");
    requests
        .iter()
        .filter(|r| r.method == Method::POST && r.path == path && r.status == 202)
        .collect()
}

fn strings(value: &Value) -> Vec<&str> {
    let items = value.as_array().expect("a list");
    items
        .iter()
        .map(|v| v.as_str().expect("a string"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leader_pushes_batched_documents_survives_an_outage_and_resyncs_on_leadership() {
    let (mock, addr) = Mock::start().await;
    let meili_url = format!("http://{addr}");
    let mut cluster = Cluster::start_with(
        1,
        &[
            "--bid-rate-per-minute",
            "6000",
            "--ip-rate-per-minute",
            "0",
            "--meili-url",
            &meili_url,
            "--meili-key",
            KEY,
            "--meili-index",
            INDEX,
        ],
    )
    .await;
    let base = cluster.url(0).to_owned();
    let api = Api::default();
    let (seller_id, seller) = api.user(&base, "meili-seller").await;
    let (_, bidder) = api.user(&base, "meili-bidder").await;

    // Changes reach the mock as documents with the auction's fields, the bid's price included.
    let first = create_many(&api, &base, &seller, "first", AUCTIONS_FIRST).await;
    bid(&api, &base, &bidder, &first[0], "20.00").await;
    until(&mock, "the first auctions and the bid", |mock| {
        has_all(mock, &first) && price_cents(mock, &first[0]) == Some(2_000)
    })
    .await;
    let documents = mock.documents();
    let document = &documents[&first[1]];
    assert_eq!(
        document["title"]
            .as_str()
            .map(|t| t.starts_with("Lamp first")),
        Some(true)
    );
    assert_eq!(
        (
            &document["category"],
            &document["phase"],
            &document["sellerId"]
        ),
        (&json!("home"), &json!("open"), &json!(seller_id)),
        "{document}"
    );
    assert_eq!(
        (
            &document["currentPriceCents"],
            &document["currentPrice"],
            &document["bidCount"]
        ),
        (&json!(1_200), &json!("12.00"), &json!(0)),
        "{document}"
    );
    let group = document["group"].as_u64().expect("group");
    assert!((1..=u64::from(SHARDS)).contains(&group), "{document}");
    let bid_on = &documents[&first[0]];
    assert_eq!(
        (&bid_on["currentPrice"], &bid_on["bidCount"]),
        (&json!("20.00"), &json!(1))
    );

    let requests = mock.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {KEY}"))),
        "every request carries the key"
    );
    let settings = settings_requests(&requests);
    assert_eq!(settings.len(), 1, "the settings are written once");
    let body = &settings[0].body;
    assert_eq!(
        strings(&body["searchableAttributes"]),
        ["title", "description"]
    );
    for attribute in [
        "category",
        "phase",
        "currentPriceCents",
        "group",
        "syncEpoch",
    ] {
        assert!(
            strings(&body["filterableAttributes"]).contains(&attribute),
            "{body}"
        );
    }
    for attribute in ["endsAt", "createdAt", "currentPriceCents", "bidCount"] {
        assert!(
            strings(&body["sortableAttributes"]).contains(&attribute),
            "{body}"
        );
    }
    let pushes = document_requests(&requests);
    let pushed: usize = pushes
        .iter()
        .map(|r| r.body.as_array().map_or(0, Vec::len))
        .sum();
    assert!(
        pushes.len() < AUCTIONS_FIRST + 1
            && pushes
                .iter()
                .any(|r| r.body.as_array().map_or(0, Vec::len) > 1),
        "{} changes went in {} requests ({pushed} documents): batched",
        AUCTIONS_FIRST + 1,
        pushes.len()
    );
    assert!(
        requests.iter().position(|r| r.method == Method::PATCH)
            < requests.iter().position(|r| r.method == Method::POST),
        "the settings come before the first write"
    );

    // An outage: changes made while the mock refuses are pushed after it recovers.
    mock.lock().failing = true;
    let during = create_many(&api, &base, &seller, "outage", AUCTIONS_DURING_OUTAGE).await;
    bid(&api, &base, &bidder, &first[1], "30.00").await;
    until(&mock, "two refused attempts", |mock| {
        mock.requests().iter().filter(|r| r.status == 503).count() >= 2
    })
    .await;
    assert!(!has_all(&mock, &during), "nothing got through the outage");
    mock.lock().failing = false;
    until(&mock, "the changes made during the outage", |mock| {
        has_all(mock, &during) && price_cents(mock, &first[1]) == Some(3_000)
    })
    .await;
    assert_eq!(
        settings_requests(&mock.requests()).len(),
        1,
        "still once per process"
    );

    // A stale document (its auction is gone), then a restart: the node gains every shard's
    // leadership again and resyncs it, which pushes every auction and deletes the stale one.
    let stale = json!({ "id": "stale", "group": group, "syncEpoch": 0 });
    let all: Vec<String> = first.iter().chain(&during).cloned().collect();
    {
        let mut state = mock.lock();
        state.documents.insert("stale".to_owned(), stale);
        state.requests.clear();
    }
    cluster.restart(1).await;
    until(&mock, "the resync after the restart", |mock| {
        let requests = mock.requests();
        let mut resent: Vec<String> = document_requests(&requests)
            .iter()
            .flat_map(|r| r.body.as_array().cloned().unwrap_or_default())
            .filter_map(|d| d["id"].as_str().map(str::to_owned))
            .collect();
        resent.sort();
        all.iter().all(|id| resent.binary_search(id).is_ok())
            && !mock.documents().contains_key("stale")
    })
    .await;
    let requests = mock.requests();
    assert_eq!(
        settings_requests(&requests).len(),
        1,
        "once for the new process"
    );
    let deletes: Vec<&Recorded> = requests
        .iter()
        .filter(|r| r.path.ends_with("/documents/delete") && r.status == 202)
        .collect();
    assert!(
        deletes.iter().any(|r| r.body["filter"]
            .as_str()
            .is_some_and(|f| f.starts_with(&format!("group = {group} AND")))),
        "the resync deletes the older documents of the shard by filter: {deletes:?}"
    );
    assert_eq!(
        mock.documents().len(),
        all.len(),
        "exactly the cluster's auctions"
    );
    assert_eq!(price_cents(&mock, &first[1]), Some(3_000));
    cluster.stop();
}
