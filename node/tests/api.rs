//! Black-box tests of the HTTP API against a cluster of 3 real `auction-node` processes: every
//! request goes over a socket to a node chosen on purpose (often not the leader of the group
//! involved), so forwarding, linearizable reads and event fan-out are all exercised.
//!
//! The scenarios are separate tests sharing one cluster ([`shared`]), started once per test
//! binary on a runtime that outlives the tests and stopped when the test binary exits. Each
//! scenario registers users of its own (tagged with its name) and creates its own auctions, so
//! the scenarios are independent of each other and of their order, and one failure hides no
//! other. The failover test kills nodes, so it starts a cluster of its own.

mod common;

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use common::{Api, Cluster, ADMIN_TOKEN};
use reqwest::Method;
use serde_json::{json, Value};

/// How long a logout may take to reach every node's local meta replica (the session lease).
const SESSION_LEASE_MS: u64 = 1_000;

/// The cluster the scenarios share, and the runtime every scenario runs on (a client's
/// connections belong to the runtime that opened them).
struct Shared {
    runtime: tokio::runtime::Runtime,
    cluster: Cluster,
    client: Api,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

/// The shared cluster, started by the first scenario that asks.
fn shared() -> &'static Shared {
    SHARED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let cluster = runtime.block_on(Cluster::start(3));
        stop_at_exit();
        Shared {
            runtime,
            cluster,
            client: Api::default(),
        }
    })
}

/// A static is never dropped: the cluster's nodes are stopped (and its directory removed) when
/// the test binary exits, whether the tests passed or not.
fn stop_at_exit() {
    extern "C" fn stop() {
        if let Some(shared) = SHARED.get() {
            shared.cluster.stop();
        }
    }
    // SAFETY: `stop` is an `extern "C"` function without arguments that cannot unwind; it
    // kills child processes and removes a directory, taking only the cluster's own locks,
    // which no test holds once the test binary exits.
    let registered = unsafe { libc::atexit(stop) };
    assert_eq!(registered, 0, "atexit registers the cluster's stop");
}

/// Runs one scenario on the shared cluster.
fn run<F: Future<Output = ()>>(scenario: impl FnOnce(&'static Cluster, &'static Api) -> F) {
    let shared = shared();
    shared
        .runtime
        .block_on(scenario(&shared.cluster, &shared.client));
}

/// Runs one scenario with users of its own, tagged `tag`.
fn run_with_users<F: Future<Output = ()>>(
    tag: &'static str,
    scenario: impl FnOnce(Ctx<'static>) -> F,
) {
    run(|cluster, client| async move { scenario(Ctx::new(cluster, client, tag).await).await });
}

/// One test per scenario.
mod scenario {
    use super::*;

    #[test]
    fn errors_and_validation() {
        run(super::errors_and_validation);
    }

    #[test]
    fn metrics_are_prometheus_text() {
        run(super::metrics_are_prometheus_text);
    }

    #[test]
    fn the_openapi_document_matches_the_router() {
        run(super::the_openapi_document_matches_the_router);
    }

    #[test]
    fn auth_flow() {
        run(super::auth_flow);
    }

    #[test]
    fn the_web_page_is_served_with_its_policy() {
        run(super::the_web_page_is_served_with_its_policy);
    }

    #[test]
    fn seed_proxy_flow_through_two_nodes() {
        run_with_users("seed", |ctx| async move {
            super::seed_proxy_flow_through_two_nodes(&ctx).await
        });
    }

    #[test]
    fn bid_refusals() {
        run_with_users(
            "refusals",
            |ctx| async move { super::bid_refusals(&ctx).await },
        );
    }

    #[test]
    fn lifecycle_edits_cancel_buy_now() {
        run_with_users("lifecycle", |ctx| async move {
            super::lifecycle_edits_cancel_buy_now(&ctx).await
        });
    }

    #[test]
    fn timing_anti_snipe_and_endings() {
        run_with_users("timing", |ctx| async move {
            super::timing_anti_snipe_and_endings(&ctx).await
        });
    }

    #[test]
    fn listings_and_me() {
        run_with_users("listings", |ctx| async move {
            super::listings_and_me(&ctx).await
        });
    }

    #[test]
    fn sse_events_arrive_on_another_node() {
        run_with_users("sse", |ctx| async move {
            super::sse_events_arrive_on_another_node(&ctx).await
        });
    }

    #[test]
    fn a_create_retried_with_its_key_on_any_node_makes_one_auction() {
        run_with_users("create-retry", |ctx| async move {
            super::a_create_retried_with_its_key_on_any_node_makes_one_auction(&ctx).await
        });
    }

    #[test]
    fn admin_and_rbac() {
        run_with_users(
            "rbac",
            |ctx| async move { super::admin_and_rbac(&ctx).await },
        );
    }
}

fn api(cluster: &Cluster, node: usize, path: &str) -> String {
    format!("{}/api/v1{path}", cluster.url(node))
}

async fn create_auction(api_client: &Api, url: String, token: &str, body: Value) -> Value {
    let created = api_client.post(url, Some(token), body).await.expect(201);
    created["auction"].clone()
}

/// Polls a listing-style read (served from local replicas) until `done` holds.
async fn eventually(
    api_client: &Api,
    url: String,
    token: Option<&str>,
    done: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..50 {
        let reply = api_client.get(url.clone(), token).await.expect(200);
        if done(&reply) {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never reached the expected state");
}

async fn errors_and_validation(cluster: &Cluster, client: &Api) {
    let register = api(cluster, 0, "/auth/register");
    client
        .raw(
            Method::POST,
            register.clone(),
            b"{\"email\": ".to_vec(),
            &[("content-type", "application/json")],
        )
        .await
        .expect_error(400, "VALIDATION_FAILED");
    let missing = client
        .post(
            register.clone(),
            None,
            json!({ "email": "x@example.com", "password": "long enough" }),
        )
        .await
        .expect_error(422, "VALIDATION_FAILED");
    assert_eq!(missing["field"], "displayName");
    let short = client
        .post(
            register.clone(),
            None,
            json!({ "email": "x@example.com", "password": "short", "displayName": "X" }),
        )
        .await
        .expect_error(422, "VALIDATION_FAILED");
    assert_eq!(short["field"], "password");
    let email = client
        .post(
            register.clone(),
            None,
            json!({ "email": "nope", "password": "long enough", "displayName": "X" }),
        )
        .await
        .expect_error(422, "VALIDATION_FAILED");
    assert_eq!(email["field"], "email");
    let huge = vec![b' '; 70 * 1024];
    client
        .raw(
            Method::POST,
            register,
            huge,
            &[("content-type", "application/json")],
        )
        .await
        .expect_error(413, "PAYLOAD_TOO_LARGE");
    client
        .get(api(cluster, 1, "/no/such/route"), None)
        .await
        .expect_error(404, "NOT_FOUND");
    client
        .call(Method::PATCH, api(cluster, 1, "/auctions"), None, None, &[])
        .await
        .expect_error(405, "METHOD_NOT_ALLOWED");
    client
        .get(api(cluster, 2, "/auctions/not-a-uuid"), None)
        .await
        .expect_error(404, "AUCTION_NOT_FOUND");
    let unknown = uuid::Uuid::new_v4();
    client
        .get(api(cluster, 2, &format!("/auctions/{unknown}")), None)
        .await
        .expect_error(404, "AUCTION_NOT_FOUND");
    client
        .get(api(cluster, 0, "/users/me"), None)
        .await
        .expect_error(401, "UNAUTHORIZED");
    client
        .get(api(cluster, 0, "/users/me"), Some("not-a-session"))
        .await
        .expect_error(401, "UNAUTHORIZED");
    let status = client
        .get(api(cluster, 1, "/cluster/status"), None)
        .await
        .expect(200);
    assert_eq!(status["shardCount"], common::SHARDS);
    client
        .get(format!("{}/health", cluster.url(2)), None)
        .await
        .expect(200);
    client
        .get(format!("{}/ready", cluster.url(2)), None)
        .await
        .expect(200);
}

async fn metrics_are_prometheus_text(cluster: &Cluster, client: &Api) {
    // The 404 this test looks for in the counters.
    client
        .get(api(cluster, 2, "/auctions/not-a-uuid"), None)
        .await
        .expect_error(404, "AUCTION_NOT_FOUND");
    let text = reqwest::get(format!("{}/metrics", cluster.url(2)))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        text.contains(
            "http_requests_total{route=\"/api/v1/auctions/{id}\",method=\"GET\",status=\"404\"}"
        ),
        "{text}"
    );
    assert!(text.contains("raft_is_leader{group=\"0\"}"), "{text}");
    assert!(text.contains("# TYPE http_request_duration_seconds histogram"));
}

/// Every node serves the web page and its files, with the Content-Security-Policy, and no file
/// outside the embedded folder.
async fn the_web_page_is_served_with_its_policy(cluster: &Cluster, client: &Api) {
    let http = reqwest::Client::new();
    for node in 0..3 {
        let page = http
            .get(format!("{}/", cluster.url(node)))
            .send()
            .await
            .expect("sent");
        assert_eq!(page.status().as_u16(), 200);
        let headers = page.headers().clone();
        assert!(headers["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/html"));
        let policy = headers["content-security-policy"].to_str().expect("ascii");
        assert!(
            policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"),
            "{policy}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        let html = page.text().await.expect("body");
        assert!(
            html.contains("/assets/app.js"),
            "the page loads its script: {html}"
        );
        assert!(!html.contains("<script>"), "no inline script");
        let script = http
            .get(format!("{}/assets/app.js", cluster.url(node)))
            .send()
            .await
            .expect("sent");
        assert_eq!(script.status().as_u16(), 200);
        assert!(script.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/javascript"));
        let etag = script.headers()["etag"].clone();
        let again = http
            .get(format!("{}/assets/app.js", cluster.url(node)))
            .header("if-none-match", etag)
            .send()
            .await
            .expect("sent");
        assert_eq!(again.status().as_u16(), 304);
    }
    // Nothing outside the folder (the client may resolve `..` itself: then no route matches).
    for escape in [
        "/assets/..%2f..%2fetc%2fpasswd",
        "/assets/%2e%2e/Cargo.toml",
        "/assets/nope.js",
    ] {
        let reply = client
            .get(format!("{}{escape}", cluster.url(0)), None)
            .await;
        let code = reply.body["error"].as_str().unwrap_or_default().to_owned();
        reply.expect(404);
        assert!(
            ["FILE_NOT_FOUND", "NOT_FOUND"].contains(&code.as_str()),
            "{escape}: {code}"
        );
    }
}

/// Every route of the OpenAPI document is served: none falls through to "no such route".
async fn the_openapi_document_matches_the_router(cluster: &Cluster, client: &Api) {
    let document = client
        .get(api(cluster, 0, "/openapi.json"), None)
        .await
        .expect(200);
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().expect("paths");
    assert!(paths.len() >= 25, "{} paths", paths.len());
    let some_id = uuid::Uuid::new_v4().to_string();
    for (path, item) in paths {
        let concrete: String = path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    some_id.as_str()
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for method in item.as_object().expect("operations").keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let body = if method == Method::GET {
                Vec::new()
            } else {
                b"{}".to_vec()
            };
            let reply = client
                .raw(
                    method.clone(),
                    format!("{}{concrete}", cluster.url(1)),
                    body,
                    &[("content-type", "application/json")],
                )
                .await;
            assert!(
                reply.body["error"] != "NOT_FOUND" && reply.body["error"] != "METHOD_NOT_ALLOWED",
                "{method} {path} is in the document but not served: {:?}",
                reply.body
            );
        }
    }
}

async fn auth_flow(cluster: &Cluster, client: &Api) {
    let body = json!({ "email": " Dora@Example.com ", "password": "correct horse battery", "displayName": "Dora" });
    let created = client
        .post(api(cluster, 0, "/auth/register"), None, body.clone())
        .await
        .expect(201);
    assert_eq!(created["user"]["email"], "dora@example.com");
    assert_eq!(created["user"]["role"], "user");
    assert!(
        created["user"].get("passwordHash").is_none(),
        "no hash on the wire"
    );
    client
        .post(api(cluster, 1, "/auth/register"), None, body)
        .await
        .expect_error(409, "EMAIL_TAKEN");
    // Log in on another node than the one that registered.
    let login = json!({ "email": "dora@example.com", "password": "correct horse battery" });
    let wrong = json!({ "email": "dora@example.com", "password": "wrong horse battery" });
    client
        .post(api(cluster, 2, "/auth/login"), None, wrong)
        .await
        .expect_error(401, "UNAUTHORIZED");
    let reply = client
        .post(api(cluster, 2, "/auth/login"), None, login)
        .await;
    let cookie = reply.headers["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.starts_with("session="), "{cookie}");
    let session = reply.expect(200);
    let token = session["token"].as_str().expect("token").to_owned();
    assert_eq!(session["user"]["displayName"], "Dora");
    // The bearer token and the cookie both work, on any node.
    let me = client
        .get(api(cluster, 0, "/users/me"), Some(&token))
        .await
        .expect(200);
    assert_eq!(me["user"]["email"], "dora@example.com");
    let cookie_pair = cookie.split(';').next().expect("pair").to_owned();
    client
        .call(
            Method::GET,
            api(cluster, 1, "/users/me"),
            None,
            None,
            &[("cookie", &cookie_pair)],
        )
        .await
        .expect(200);
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    // A write with the cookie alone must come from this site's pages (CSRF): refused from
    // another origin or with no origin at all, accepted from the node's own origin.
    let host = cluster.url(1).trim_start_matches("http://").to_owned();
    let watch = json!({ "auctionId": uuid::Uuid::new_v4().to_string() });
    for (origin, status, code) in [
        (None, 403, "FORBIDDEN"),
        (Some("https://evil.example".to_owned()), 403, "FORBIDDEN"),
        (Some(format!("http://{host}")), 404, "AUCTION_NOT_FOUND"),
    ] {
        let mut headers = vec![("cookie", cookie_pair.as_str())];
        if let Some(origin) = &origin {
            headers.push(("origin", origin.as_str()));
        }
        client
            .call(
                Method::POST,
                api(cluster, 1, "/users/me/watchlist"),
                None,
                Some(watch.clone()),
                &headers,
            )
            .await
            .expect_error(status, code);
    }
    client
        .call(
            Method::POST,
            api(cluster, 1, "/auth/logout"),
            Some(&token),
            None,
            &[],
        )
        .await
        .expect(204);
    // The logout is committed; a node's local meta replica may take up to the session lease
    // (1 s, DESIGN.md "Hot path budget") to show it, so every node refuses the token after it
    // (node/tests/lease.rs holds the bound itself).
    tokio::time::sleep(Duration::from_millis(SESSION_LEASE_MS)).await;
    for node in 0..3 {
        client
            .get(api(cluster, node, "/users/me"), Some(&token))
            .await
            .expect_error(401, "UNAUTHORIZED");
    }
}

/// A scenario's own users, as (user id, token), registered under names tagged with the
/// scenario (`seller.seed`, ...), so scenarios never share a user.
struct Ctx<'a> {
    cluster: &'a Cluster,
    client: &'a Api,
    tag: &'static str,
    seller: (String, String),
    alice: (String, String),
    bob: (String, String),
    carol: (String, String),
    admin: (String, String),
}

impl<'a> Ctx<'a> {
    async fn new(cluster: &'a Cluster, client: &'a Api, tag: &'static str) -> Ctx<'a> {
        let name = |role: &str| format!("{role}.{tag}");
        Ctx {
            seller: client.user(cluster.url(0), &name("seller")).await,
            alice: client.user(cluster.url(1), &name("alice")).await,
            bob: client.user(cluster.url(2), &name("bob")).await,
            carol: client.user(cluster.url(0), &name("carol")).await,
            admin: client.user(cluster.url(1), &name("admin")).await,
            cluster,
            client,
            tag,
        }
    }

    /// The email of this scenario's user `role` (`seller`, `alice`, ...).
    fn email(&self, role: &str) -> String {
        format!("{role}.{}@example.com", self.tag)
    }

    fn url(&self, node: usize, path: &str) -> String {
        api(self.cluster, node, path)
    }

    async fn auction(&self, body: Value) -> Value {
        create_auction(self.client, self.url(0, "/auctions"), &self.seller.1, body).await
    }

    async fn bid(&self, node: usize, id: &str, token: &str, amount: Value) -> common::Reply {
        self.client
            .post(
                self.url(node, &format!("/auctions/{id}/bids")),
                Some(token),
                json!({ "amount": amount }),
            )
            .await
    }
}

async fn seed_proxy_flow_through_two_nodes(ctx: &Ctx<'_>) {
    let auction = ctx
        .auction(json!({ "title": "Seed lot", "startingPrice": "10.00", "durationSeconds": 3600 }))
        .await;
    let id = auction["id"].as_str().expect("id");
    assert_eq!(auction["status"], "active");
    assert_eq!(auction["currentPrice"], Value::Null);
    assert_eq!(auction["minimumBid"], "10.00");
    assert_eq!(auction["sellerId"], ctx.seller.0.as_str());

    let carol = ctx.bid(1, id, &ctx.carol.1, json!("50")).await.expect(201);
    assert_eq!(
        (carol["status"].as_str(), carol["currentPrice"].as_str()),
        (Some("winning"), Some("50.00"))
    );
    assert!(carol["bidId"].is_string() && carol["endTime"].is_string());
    let proxy = ctx
        .client
        .post(
            ctx.url(2, &format!("/auctions/{id}/proxy")),
            Some(&ctx.alice.1),
            json!({ "maxAmount": 100 }),
        )
        .await
        .expect(201);
    assert_eq!(proxy["status"], "winning");
    assert_eq!(proxy["currentPrice"], "51.00", "max 100 at price 50 -> 51");
    let rival = ctx.bid(1, id, &ctx.bob.1, json!("55.00")).await.expect(201);
    assert_eq!(rival["status"], "outbid");
    assert_eq!(rival["currentPrice"], "56.00");
    assert_eq!(rival["highBidderId"], ctx.alice.0.as_str());
    let rival = ctx.bid(2, id, &ctx.bob.1, json!(101)).await.expect(201);
    assert_eq!(rival["status"], "winning");
    assert_eq!(rival["currentPrice"], "101.00");

    // The history, newest first, in pages, read through the third node.
    let first = ctx
        .client
        .get(ctx.url(0, &format!("/auctions/{id}/bids?limit=4")), None)
        .await
        .expect(200);
    let cursor = first["nextCursor"].as_str().expect("more pages");
    let second = ctx
        .client
        .get(
            ctx.url(0, &format!("/auctions/{id}/bids?limit=4&cursor={cursor}")),
            None,
        )
        .await
        .expect(200);
    assert_eq!(second["nextCursor"], Value::Null);
    let amounts: Vec<&str> = first["items"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(second["items"].as_array().into_iter().flatten())
        .map(|item| item["amount"].as_str().expect("amount"))
        .collect();
    assert_eq!(
        amounts,
        ["101.00", "100.00", "56.00", "55.00", "51.00", "50.00"]
    );
    assert_eq!(first["items"][1]["isProxy"], true);

    // A linearizable read on any node sees the last bid; a local read is allowed to lag.
    let read = ctx
        .client
        .get(ctx.url(0, &format!("/auctions/{id}")), None)
        .await
        .expect(200);
    assert_eq!(read["auction"]["currentPrice"], "101.00");
    assert_eq!(read["auction"]["bidCount"], 6);
    assert_eq!(read["auction"]["minimumBid"], "102.00");
    ctx.client
        .get(
            ctx.url(2, &format!("/auctions/{id}?consistency=local")),
            None,
        )
        .await
        .expect(200);
    ctx.client
        .get(
            ctx.url(2, &format!("/auctions/{id}?consistency=bogus")),
            None,
        )
        .await
        .expect_error(422, "VALIDATION_FAILED");

    // Idempotent retry: the same key on another node answers the first outcome with 200.
    let key = [("x-idempotency-key", "carol-retry-1")];
    let url = |node| ctx.url(node, &format!("/auctions/{id}/bids"));
    let first = ctx
        .client
        .call(
            Method::POST,
            url(0),
            Some(&ctx.carol.1),
            Some(json!({ "amount": "120" })),
            &key,
        )
        .await
        .expect(201);
    let again = ctx
        .client
        .call(
            Method::POST,
            url(2),
            Some(&ctx.carol.1),
            Some(json!({ "amount": "120" })),
            &key,
        )
        .await
        .expect(200);
    assert_eq!(first["bidId"], again["bidId"]);
    assert_eq!(first["currentPrice"], again["currentPrice"]);
    ctx.client
        .call(
            Method::POST,
            url(1),
            Some(&ctx.carol.1),
            Some(json!({ "amount": "130" })),
            &key,
        )
        .await
        .expect_error(409, "IDEMPOTENCY_KEY_REUSED");
    let read = ctx
        .client
        .get(ctx.url(1, &format!("/auctions/{id}")), None)
        .await
        .expect(200);
    assert_eq!(read["auction"]["bidCount"], 7, "the retry changed nothing");
}

async fn bid_refusals(ctx: &Ctx<'_>) {
    let auction = ctx
        .auction(json!({ "title": "Refusals", "startingPrice": 20, "durationSeconds": 3600 }))
        .await;
    let id = auction["id"].as_str().expect("id");
    ctx.bid(1, id, &ctx.seller.1, json!("25"))
        .await
        .expect_error(403, "SELLER_CANNOT_BID");
    ctx.bid(2, id, &ctx.bob.1, json!("abc"))
        .await
        .expect_error(400, "INVALID_AMOUNT");
    ctx.bid(2, id, &ctx.bob.1, json!("10.001"))
        .await
        .expect_error(400, "INVALID_AMOUNT");
    let low = ctx
        .bid(0, id, &ctx.bob.1, json!("19.99"))
        .await
        .expect_error(400, "BID_TOO_LOW");
    assert_eq!(low["currentBid"], Value::Null);
    assert_eq!(low["minimumBid"], "20.00");
    ctx.bid(0, id, &ctx.bob.1, json!("30")).await.expect(201);
    let low = ctx
        .bid(1, id, &ctx.alice.1, json!("30.50"))
        .await
        .expect_error(400, "BID_TOO_LOW");
    assert_eq!(
        (low["currentBid"].as_str(), low["minimumBid"].as_str()),
        (Some("30.00"), Some("31.00"))
    );
    ctx.bid(1, id, &ctx.bob.1, json!("40"))
        .await
        .expect_error(409, "ALREADY_HIGH_BIDDER");
    ctx.client
        .post(
            ctx.url(1, &format!("/auctions/{id}/bids")),
            None,
            json!({ "amount": "40" }),
        )
        .await
        .expect_error(401, "UNAUTHORIZED");
    let unknown = uuid::Uuid::new_v4();
    ctx.bid(1, &unknown.to_string(), &ctx.bob.1, json!("40"))
        .await
        .expect_error(404, "AUCTION_NOT_FOUND");
    // Not-yet-started auctions refuse bids.
    let later = chrono_like_rfc3339(3_600);
    let scheduled = ctx
        .auction(json!({ "title": "Later", "startingPrice": "5", "startTime": later, "durationSeconds": 600 }))
        .await;
    assert_eq!(scheduled["status"], "scheduled");
    let sid = scheduled["id"].as_str().expect("id");
    ctx.bid(2, sid, &ctx.bob.1, json!("5"))
        .await
        .expect_error(409, "AUCTION_NOT_STARTED");
    // Validation of a new auction names the field.
    let missing = ctx
        .client
        .post(
            ctx.url(0, "/auctions"),
            Some(&ctx.seller.1),
            json!({ "startingPrice": "5", "durationSeconds": 60 }),
        )
        .await
        .expect_error(422, "VALIDATION_FAILED");
    assert_eq!(missing["field"], "title");
    let bad_price = ctx
        .client
        .post(
            ctx.url(0, "/auctions"),
            Some(&ctx.seller.1),
            json!({ "title": "t", "startingPrice": "-5", "durationSeconds": 60 }),
        )
        .await
        .expect_error(422, "VALIDATION_FAILED");
    assert_eq!(bad_price["field"], "startingPrice");
    let bad_time = ctx
        .client
        .post(
            ctx.url(0, "/auctions"),
            Some(&ctx.seller.1),
            json!({ "title": "t", "startingPrice": "5", "endTime": "soon" }),
        )
        .await
        .expect_error(422, "VALIDATION_FAILED");
    assert_eq!(bad_time["field"], "endTime");
    ctx.client
        .post(
            ctx.url(0, "/auctions"),
            None,
            json!({ "title": "t", "startingPrice": "5", "durationSeconds": 60 }),
        )
        .await
        .expect_error(401, "UNAUTHORIZED");
}

/// Now plus `seconds`, as RFC 3339 (UTC).
fn chrono_like_rfc3339(seconds: u64) -> String {
    let at = std::time::SystemTime::now() + Duration::from_secs(seconds);
    let secs = at
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after epoch")
        .as_secs();
    // Days since the epoch to a civil date (Howard Hinnant's algorithm).
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

async fn lifecycle_edits_cancel_buy_now(ctx: &Ctx<'_>) {
    let auction = ctx
        .auction(json!({ "title": "Editable", "startingPrice": "5", "reservePrice": "50", "durationSeconds": 3600 }))
        .await;
    let id = auction["id"].as_str().expect("id");
    assert_eq!(
        auction["reservePrice"], "50.00",
        "the seller sees the reserve"
    );
    let public = ctx
        .client
        .get(ctx.url(1, &format!("/auctions/{id}")), Some(&ctx.bob.1))
        .await
        .expect(200);
    assert!(
        public["auction"].get("reservePrice").is_none(),
        "others do not"
    );
    assert_eq!(public["auction"]["reserveMet"], false);
    let path = format!("/auctions/{id}");
    ctx.client
        .call(
            Method::PUT,
            ctx.url(1, &path),
            Some(&ctx.bob.1),
            Some(json!({ "title": "Mine" })),
            &[],
        )
        .await
        .expect_error(403, "FORBIDDEN");
    let edited = ctx
        .client
        .call(
            Method::PUT,
            ctx.url(2, &path),
            Some(&ctx.seller.1),
            Some(json!({ "title": "Edited", "buyNowPrice": "80" })),
            &[],
        )
        .await
        .expect(200);
    assert_eq!(edited["auction"]["title"], "Edited");
    assert_eq!(edited["auction"]["buyNowPrice"], "80.00");
    ctx.client
        .call(
            Method::PUT,
            ctx.url(2, &path),
            Some(&ctx.seller.1),
            Some(json!({ "sellerId": "x" })),
            &[],
        )
        .await
        .expect_error(422, "VALIDATION_FAILED");
    ctx.client
        .call(
            Method::DELETE,
            ctx.url(0, &path),
            Some(&ctx.bob.1),
            None,
            &[],
        )
        .await
        .expect_error(403, "FORBIDDEN");
    ctx.bid(0, id, &ctx.bob.1, json!("6")).await.expect(201);
    ctx.client
        .call(
            Method::PUT,
            ctx.url(2, &path),
            Some(&ctx.seller.1),
            Some(json!({ "title": "Late" })),
            &[],
        )
        .await
        .expect_error(409, "AUCTION_HAS_BIDS");
    // Buy now while the reserve is not met.
    let bought = ctx
        .client
        .call(
            Method::POST,
            ctx.url(1, &format!("{path}/buy-now")),
            Some(&ctx.carol.1),
            None,
            &[],
        )
        .await
        .expect(201);
    assert_eq!(
        (bought["status"].as_str(), bought["currentPrice"].as_str()),
        (Some("winning"), Some("80.00"))
    );
    let sold = ctx.client.get(ctx.url(0, &path), None).await.expect(200);
    assert_eq!(sold["auction"]["status"], "sold");
    ctx.bid(2, id, &ctx.alice.1, json!("90"))
        .await
        .expect_error(409, "AUCTION_ENDED");

    // Cancellation before any bid.
    let doomed = ctx
        .auction(json!({ "title": "Doomed", "startingPrice": "5", "durationSeconds": 3600 }))
        .await;
    let did = doomed["id"].as_str().expect("id");
    let cancelled = ctx
        .client
        .call(
            Method::DELETE,
            ctx.url(2, &format!("/auctions/{did}")),
            Some(&ctx.seller.1),
            None,
            &[],
        )
        .await
        .expect(200);
    assert_eq!(cancelled["auction"]["status"], "cancelled");
    ctx.bid(1, did, &ctx.bob.1, json!("5"))
        .await
        .expect_error(409, "AUCTION_CANCELLED");
}

async fn timing_anti_snipe_and_endings(ctx: &Ctx<'_>) {
    // A bid inside the anti-sniping window moves the end time, visibly.
    let auction = ctx
        .auction(json!({
            "title": "Sniped", "startingPrice": "5", "durationSeconds": 30,
            "antiSnipe": { "windowSeconds": 60, "extensionSeconds": 120 },
        }))
        .await;
    let id = auction["id"].as_str().expect("id");
    let bid = ctx.bid(2, id, &ctx.bob.1, json!("5")).await.expect(201);
    assert_ne!(bid["endTime"], auction["endTime"], "the end moved");
    let read = ctx
        .client
        .get(ctx.url(1, &format!("/auctions/{id}")), None)
        .await
        .expect(200);
    assert_eq!(read["auction"]["endTime"], bid["endTime"]);
    assert_eq!(read["auction"]["originalEndTime"], auction["endTime"]);
    assert!(read["auction"]["endTime"].as_str() > auction["endTime"].as_str());

    // An auction that ends is closed by its group leader: sold to the high bidder.
    let short = ctx
        .auction(json!({
            "title": "Short", "startingPrice": "5", "durationSeconds": 4,
            "antiSnipe": { "windowSeconds": 0, "extensionSeconds": 0 },
        }))
        .await;
    let sid = short["id"].as_str().expect("id");
    ctx.bid(0, sid, &ctx.alice.1, json!("7")).await.expect(201);
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    ctx.bid(1, sid, &ctx.bob.1, json!("9"))
        .await
        .expect_error(409, "AUCTION_ENDED");
    let ended = eventually(
        ctx.client,
        ctx.url(2, &format!("/auctions/{sid}")),
        None,
        |reply| reply["auction"]["status"] == "sold",
    )
    .await;
    assert_eq!(ended["auction"]["winnerId"], ctx.alice.0.as_str());
    let won = eventually(
        ctx.client,
        ctx.url(0, "/users/me/bids?status=won"),
        Some(&ctx.alice.1),
        |reply| {
            reply["items"]
                .as_array()
                .is_some_and(|items| items.iter().any(|item| item["auctionId"] == sid))
        },
    )
    .await;
    assert!(won["items"]
        .as_array()
        .is_some_and(|items| items.iter().all(|item| item["myStatus"] == "won")));
}

async fn listings_and_me(ctx: &Ctx<'_>) {
    let (seller_id, token) = ctx.client.user(ctx.cluster.url(2), "lister").await;
    let mut ids = Vec::new();
    for (n, price) in ["3.00", "9.00", "1.00", "7.00", "5.00"].iter().enumerate() {
        let auction = create_auction(
            ctx.client,
            ctx.url(n % 3, "/auctions"),
            &token,
            json!({ "title": format!("Lamp {n}"), "category": "lamps", "startingPrice": price, "durationSeconds": 3600 + n as i64 }),
        )
        .await;
        ids.push(auction["id"].as_str().expect("id").to_owned());
    }
    // Listings read each node's replica and may lag a little: wait until both nodes see all.
    for node in [1, 2] {
        eventually(
            ctx.client,
            ctx.url(node, &format!("/auctions?sellerId={seller_id}")),
            None,
            |reply| {
                reply["items"]
                    .as_array()
                    .is_some_and(|items| items.len() == 5)
            },
        )
        .await;
    }
    let base = format!("/auctions?sellerId={seller_id}&sort=price_desc&limit=2");
    let first = eventually(ctx.client, ctx.url(1, &base), None, |reply| {
        reply["items"]
            .as_array()
            .is_some_and(|items| items.len() == 2)
            && reply["nextCursor"].is_string()
    })
    .await;
    let mut prices: Vec<String> = Vec::new();
    let mut page = first;
    loop {
        prices.extend(
            page["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|item| item["startingPrice"].as_str().expect("price").to_owned()),
        );
        let Some(cursor) = page["nextCursor"].as_str() else {
            break;
        };
        page = ctx
            .client
            .get(ctx.url(1, &format!("{base}&cursor={cursor}")), None)
            .await
            .expect(200);
    }
    assert_eq!(prices, ["9.00", "7.00", "5.00", "3.00", "1.00"]);
    let filtered = ctx
        .client
        .get(ctx.url(2, &format!("/auctions?sellerId={seller_id}&minPrice=2&maxPrice=8&sort=ending_soon&category=lamps&status=active")), None)
        .await
        .expect(200);
    let titles: Vec<&str> = filtered["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| item["title"].as_str().expect("title"))
        .collect();
    assert_eq!(titles, ["Lamp 0", "Lamp 3", "Lamp 4"]);
    ctx.client
        .get(ctx.url(2, "/auctions?sort=random"), None)
        .await
        .expect_error(422, "VALIDATION_FAILED");
    ctx.client
        .get(ctx.url(2, "/auctions?minPrice=abc"), None)
        .await
        .expect_error(422, "VALIDATION_FAILED");
    let mine = ctx
        .client
        .get(ctx.url(0, "/users/me/auctions"), Some(&token))
        .await
        .expect(200);
    assert_eq!(mine["items"].as_array().map(Vec::len), Some(5));

    // Bids on two lamps: bob wins one, is outbid on the other.
    ctx.bid(0, &ids[0], &ctx.bob.1, json!("3"))
        .await
        .expect(201);
    ctx.bid(1, &ids[1], &ctx.bob.1, json!("9"))
        .await
        .expect(201);
    ctx.bid(2, &ids[1], &ctx.carol.1, json!("12"))
        .await
        .expect(201);
    let bids = ctx
        .client
        .get(ctx.url(2, "/users/me/bids"), Some(&ctx.bob.1))
        .await
        .expect(200);
    let status_of = |id: &str| {
        bids["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|item| item["auctionId"] == id)
            .map(|item| item["myStatus"].clone())
    };
    assert_eq!(status_of(&ids[0]), Some(json!("winning")));
    assert_eq!(status_of(&ids[1]), Some(json!("outbid")));

    // Watchlist: add on one node, see on another, remove.
    let watched = ctx
        .client
        .post(
            ctx.url(0, "/users/me/watchlist"),
            Some(&ctx.alice.1),
            json!({ "auctionId": ids[2] }),
        )
        .await
        .expect(201);
    assert_eq!(watched["item"]["auctionId"], ids[2].as_str());
    ctx.client
        .post(
            ctx.url(1, "/users/me/watchlist"),
            Some(&ctx.alice.1),
            json!({ "auctionId": uuid::Uuid::new_v4().to_string() }),
        )
        .await
        .expect_error(404, "AUCTION_NOT_FOUND");
    let list = ctx
        .client
        .get(ctx.url(2, "/users/me/watchlist"), Some(&ctx.alice.1))
        .await
        .expect(200);
    assert_eq!(list["items"][0]["auction"]["title"], "Lamp 2");
    ctx.client
        .call(
            Method::DELETE,
            ctx.url(1, &format!("/users/me/watchlist/{}", ids[2])),
            Some(&ctx.alice.1),
            None,
            &[],
        )
        .await
        .expect(204);
    let list = ctx
        .client
        .get(ctx.url(0, "/users/me/watchlist"), Some(&ctx.alice.1))
        .await
        .expect(200);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0));

    // Notifications: bob was outbid on lamp 1.
    let notes = ctx
        .client
        .get(
            ctx.url(1, "/users/me/notifications?unread=true"),
            Some(&ctx.bob.1),
        )
        .await
        .expect(200);
    let outbid = notes["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|note| note["type"] == "outbid" && note["auctionId"] == ids[1].as_str())
        .expect("an outbid notification")
        .clone();
    assert_eq!(outbid["readAt"], Value::Null);
    let note_id = outbid["id"].as_str().expect("id");
    let read = ctx
        .client
        .call(
            Method::POST,
            ctx.url(2, &format!("/users/me/notifications/{note_id}/read")),
            Some(&ctx.bob.1),
            None,
            &[],
        )
        .await
        .expect(200);
    assert!(read["notification"]["readAt"].is_string());
    ctx.client
        .call(
            Method::POST,
            ctx.url(2, &format!("/users/me/notifications/{note_id}/read")),
            Some(&ctx.alice.1),
            None,
            &[],
        )
        .await
        .expect_error(404, "NOTIFICATION_NOT_FOUND");
    ctx.client
        .get(ctx.url(0, "/users/me/bids"), None)
        .await
        .expect_error(401, "UNAUTHORIZED");
}

/// Reads an SSE stream until an event named `name` arrives; returns its data.
async fn next_event(response: &mut reqwest::Response, buffer: &mut String, name: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(start) = buffer.find(&format!("event: {name}\n")) {
            if let Some(end) = buffer[start..].find("\n\n") {
                let block = buffer[start..start + end].to_owned();
                buffer.replace_range(start..start + end + 2, "");
                let data: String = block
                    .lines()
                    .filter_map(|line| line.strip_prefix("data: "))
                    .collect();
                return serde_json::from_str(&data).expect("event data is JSON");
            }
        }
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {name} event in time; got {buffer:?}"))
            .expect("stream read")
            .expect("stream open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

async fn sse_events_arrive_on_another_node(ctx: &Ctx<'_>) {
    let auction = ctx
        .auction(json!({
            "title": "Streamed", "startingPrice": "5", "durationSeconds": 60,
            "antiSnipe": { "windowSeconds": 120, "extensionSeconds": 90 },
        }))
        .await;
    let id = auction["id"].as_str().expect("id");
    let stream_client = reqwest::Client::new();
    let mut stream = stream_client
        .get(ctx.url(2, &format!("/auctions/{id}/events")))
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.status().as_u16(), 200);
    assert!(stream.headers()["content-type"]
        .to_str()
        .expect("type")
        .starts_with("text/event-stream"));
    let mut me_stream = stream_client
        .get(ctx.url(1, "/users/me/events"))
        .bearer_auth(&ctx.alice.1)
        .send()
        .await
        .expect("stream");
    let mut buffer = String::new();
    let mut me_buffer = String::new();
    let snapshot = next_event(&mut stream, &mut buffer, "snapshot").await;
    assert_eq!(snapshot["auction"]["id"], id);
    next_event(&mut me_stream, &mut me_buffer, "ready").await;

    ctx.bid(0, id, &ctx.alice.1, json!("6")).await.expect(201);
    let placed = next_event(&mut stream, &mut buffer, "bid_placed").await;
    assert_eq!(placed["currentPrice"], "6.00");
    assert_eq!(placed["highBidderId"], ctx.alice.0.as_str());
    let extended = next_event(&mut stream, &mut buffer, "auction_extended").await;
    assert_eq!(extended["auctionId"], id);
    // Alice, outbid through node 1, hears it on node 2's neighbour.
    ctx.bid(1, id, &ctx.bob.1, json!("8")).await.expect(201);
    // Bidders also hear of the extension; the outbid notice follows.
    let mut note = next_event(&mut me_stream, &mut me_buffer, "notification").await;
    for _ in 0..5 {
        if note["type"] == "outbid" {
            break;
        }
        note = next_event(&mut me_stream, &mut me_buffer, "notification").await;
    }
    assert_eq!(note["type"], "outbid");
    assert_eq!(note["auctionId"], id);
    // Heartbeats keep an idle stream alive (300 ms in the test cluster).
    tokio::time::sleep(Duration::from_millis(700)).await;
    let chunk = tokio::time::timeout(Duration::from_secs(5), stream.chunk())
        .await
        .expect("heartbeat")
        .expect("read");
    assert!(chunk.is_some(), "the stream is still open");
    ctx.client
        .get(ctx.url(0, "/users/me/events"), None)
        .await
        .expect_error(401, "UNAUTHORIZED");
}

async fn a_create_retried_with_its_key_on_any_node_makes_one_auction(ctx: &Ctx<'_>) {
    let body = json!({ "title": "Retried lot", "startingPrice": "5.00", "durationSeconds": 3600 });
    let key = [("x-idempotency-key", "create-once")];
    let create = |node: usize| {
        ctx.client.call(
            Method::POST,
            ctx.url(node, "/auctions"),
            Some(&ctx.seller.1),
            Some(body.clone()),
            &key,
        )
    };
    let first = create(0).await.expect(201);
    let id = first["auction"]["id"].clone();
    for node in [1, 2, 0] {
        let retried = create(node).await.expect(200);
        assert_eq!(
            retried["auction"]["id"], id,
            "node {node} answers the first auction"
        );
    }
    // Another seller's key of the same text is another request.
    let other = ctx
        .client
        .call(
            Method::POST,
            ctx.url(1, "/auctions"),
            Some(&ctx.alice.1),
            Some(body.clone()),
            &key,
        )
        .await
        .expect(201);
    assert_ne!(other["auction"]["id"], id);
    // The same key with another listing is a reuse, not a second auction.
    ctx.client
        .call(
            Method::POST,
            ctx.url(2, "/auctions"),
            Some(&ctx.seller.1),
            Some(json!({ "title": "Other lot", "startingPrice": "5.00", "durationSeconds": 3600 })),
            &key,
        )
        .await
        .expect_error(409, "IDEMPOTENCY_KEY_REUSED");
    let mine = ctx
        .client
        .get(ctx.url(1, "/users/me/auctions"), Some(&ctx.seller.1))
        .await
        .expect(200);
    let retried_lots = mine["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|item| item["title"] == "Retried lot")
        .count();
    assert_eq!(retried_lots, 1, "one auction for one key: {mine}");
}

async fn admin_and_rbac(ctx: &Ctx<'_>) {
    // Not an admin yet: refused.
    ctx.client
        .get(ctx.url(0, "/admin/users"), Some(&ctx.admin.1))
        .await
        .expect_error(403, "FORBIDDEN");
    ctx.client
        .get(ctx.url(0, "/admin/users"), None)
        .await
        .expect_error(401, "UNAUTHORIZED");
    let grant = |token: Option<&'static str>, user: &str| {
        let url = ctx.url(1, &format!("/admin/users/{user}/role"));
        let headers: Vec<(&str, &str)> = token
            .map(|token| vec![("x-admin-token", token)])
            .unwrap_or_default();
        let client = ctx.client.clone();
        async move {
            client
                .call(
                    Method::PUT,
                    url,
                    None,
                    Some(json!({ "role": "admin" })),
                    &headers,
                )
                .await
        }
    };
    grant(Some("wrong-token"), &ctx.admin.0)
        .await
        .expect_error(401, "UNAUTHORIZED");
    grant(None, &ctx.admin.0)
        .await
        .expect_error(401, "UNAUTHORIZED");
    ctx.client
        .call(
            Method::PUT,
            ctx.url(1, &format!("/admin/users/{}/role", ctx.admin.0)),
            Some(&ctx.bob.1),
            Some(json!({ "role": "admin" })),
            &[],
        )
        .await
        .expect_error(403, "FORBIDDEN");
    // The first admin, made with `auctionctl user grant-admin EMAIL` and the cluster token.
    let output = std::process::Command::new(common::auctionctl_binary())
        .args(["--node", ctx.cluster.url(2), "--json"])
        .args(["user", "grant-admin", &ctx.email("admin")])
        .env("AUCTION_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .expect("run auctionctl");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let granted: Value = serde_json::from_slice(&output.stdout).expect("auctionctl prints JSON");
    assert_eq!(granted["user"]["role"], "admin");
    assert_eq!(granted["user"]["id"], ctx.admin.0.as_str());
    let refused = std::process::Command::new(common::auctionctl_binary())
        .args(["--node", ctx.cluster.url(2), "--admin-token", "wrong"])
        .args(["user", "grant-admin", &ctx.email("bob")])
        .output()
        .expect("run auctionctl");
    assert!(!refused.status.success(), "a wrong token is refused");
    let again = grant(Some(ADMIN_TOKEN), &ctx.admin.0).await.expect(200);
    assert_eq!(again["user"]["role"], "admin");
    let admin = ctx.admin.1.as_str();

    // Six users at least, whichever scenarios ran before this one.
    ctx.client
        .user(ctx.cluster.url(2), &format!("listed.{}", ctx.tag))
        .await;
    let users = ctx
        .client
        .get(ctx.url(2, "/admin/users?limit=500"), Some(admin))
        .await
        .expect(200);
    assert!(users["items"]
        .as_array()
        .is_some_and(|items| items.len() >= 6));
    let listed = ctx
        .client
        .get(ctx.url(0, "/admin/auctions?status=active"), Some(admin))
        .await
        .expect(200);
    assert!(listed["items"].is_array());
    ctx.client
        .get(ctx.url(0, "/admin/auctions"), Some(&ctx.bob.1))
        .await
        .expect_error(403, "FORBIDDEN");

    // Ban carol: the ban reaches the shards, so her bids are refused on every node.
    let auction = ctx
        .auction(json!({ "title": "Moderated", "startingPrice": "5", "durationSeconds": 3600 }))
        .await;
    let id = auction["id"].as_str().expect("id");
    ctx.client
        .post(
            ctx.url(0, &format!("/admin/users/{}/ban", ctx.carol.0)),
            Some(&ctx.bob.1),
            json!({ "reason": "no" }),
        )
        .await
        .expect_error(403, "FORBIDDEN");
    let banned = ctx
        .client
        .post(
            ctx.url(0, &format!("/admin/users/{}/ban", ctx.carol.0)),
            Some(admin),
            json!({ "reason": "shill bidding" }),
        )
        .await
        .expect(200);
    assert_eq!(banned["user"]["banned"], true);
    // Refused either by the session (a ban ends the user's sessions once this node's meta
    // replica has it, within the session lease) or by the shard, which has it already.
    for node in 0..3 {
        let reply = ctx.bid(node, id, &ctx.carol.1, json!("5")).await;
        let refused = (reply.status.as_u16(), reply.body["error"].as_str());
        assert!(
            matches!(
                refused,
                (401, Some("UNAUTHORIZED")) | (403, Some("USER_BANNED"))
            ),
            "a banned user's bid was not refused: {refused:?}"
        );
    }
    ctx.client
        .post(
            ctx.url(0, &format!("/admin/users/{}/ban", uuid::Uuid::new_v4())),
            Some(admin),
            json!({}),
        )
        .await
        .expect_error(404, "USER_NOT_FOUND");

    // Admin extend and cancel any auction; a seller's auction with bids included.
    ctx.bid(1, id, &ctx.bob.1, json!("5")).await.expect(201);
    let path = format!("/admin/auctions/{id}");
    let later = chrono_like_rfc3339(7_200);
    let extended = ctx
        .client
        .call(
            Method::PUT,
            ctx.url(2, &path),
            Some(admin),
            Some(json!({ "action": "extend", "endTime": later })),
            &[],
        )
        .await
        .expect(200);
    assert!(extended["auction"]["endTime"].as_str() > auction["endTime"].as_str());
    ctx.client
        .call(
            Method::PUT,
            ctx.url(2, &path),
            Some(&ctx.seller.1),
            Some(json!({ "action": "cancel" })),
            &[],
        )
        .await
        .expect_error(403, "FORBIDDEN");
    ctx.client
        .call(
            Method::PUT,
            ctx.url(2, &path),
            Some(admin),
            Some(json!({ "action": "explode" })),
            &[],
        )
        .await
        .expect_error(422, "VALIDATION_FAILED");
    let cancelled = ctx
        .client
        .call(
            Method::PUT,
            ctx.url(0, &path),
            Some(admin),
            Some(json!({ "action": "cancel", "reason": "fraud" })),
            &[],
        )
        .await
        .expect(200);
    assert_eq!(cancelled["auction"]["status"], "cancelled");
    let audit = ctx
        .client
        .get(ctx.url(1, "/admin/audit"), Some(admin))
        .await
        .expect(200);
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["action"].as_str())
        .collect();
    assert!(actions.contains(&"user.ban"), "{actions:?}");
    assert!(actions.contains(&"auction.cancel"), "{actions:?}");
    assert!(actions.contains(&"auction.extend"), "{actions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_bid_retried_after_its_group_leader_is_killed_returns_the_first_outcome() {
    // The production rate limits (10 bids per minute per user), checked at the end.
    let mut cluster = Cluster::start_with(3, &[]).await;
    let client = Api::default();
    let (_, seller) = client.user(cluster.url(0), "seller").await;
    let (_, bidder) = client.user(cluster.url(1), "bidder").await;
    let auction = create_auction(
        &client,
        api(&cluster, 0, "/auctions"),
        &seller,
        json!({ "title": "Failover", "startingPrice": "10", "durationSeconds": 3600 }),
    )
    .await;
    let id = auction["id"].as_str().expect("id").to_owned();
    let shard = auction_api::shard::shard_of(
        auction_statemachine::AuctionId(uuid::Uuid::parse_str(&id).expect("uuid")),
        common::SHARDS,
    );
    let status = client
        .get(api(&cluster, 0, "/cluster/status"), None)
        .await
        .expect(200);
    let leader = status["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|group| group["groupId"] == shard)
        .and_then(|group| group["leaderId"].as_u64())
        .expect("the shard has a leader");
    let survivors: Vec<usize> = (0..3)
        .filter(|node| cluster.nodes[*node].id != leader)
        .collect();
    let key = [("x-idempotency-key", "failover-bid")];
    let bid_urls: Vec<String> = (0..3)
        .map(|node| api(&cluster, node, &format!("/auctions/{id}/bids")))
        .collect();
    let bid = |node: usize| {
        client.call(
            Method::POST,
            bid_urls[node].clone(),
            Some(&bidder),
            Some(json!({ "amount": "25" })),
            &key,
        )
    };
    let first = bid(survivors[0]).await.expect(201);
    cluster.kill(leader);
    // A client honours 503 + Retry-After while the group elects a new leader.
    let mut retried = bid(survivors[1]).await;
    for _ in 0..10 {
        if retried.status.as_u16() != 503 {
            break;
        }
        let seconds: u64 = retried.headers["retry-after"]
            .to_str()
            .ok()
            .and_then(|text| text.parse().ok())
            .expect("Retry-After in seconds");
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        retried = bid(survivors[1]).await;
    }
    let retried = retried.expect(200);
    assert_eq!(retried["bidId"], first["bidId"]);
    assert_eq!(retried["currentPrice"], "25.00");
    let read = client
        .get(
            api(&cluster, survivors[0], &format!("/auctions/{id}")),
            None,
        )
        .await
        .expect(200);
    assert_eq!(read["auction"]["bidCount"], 1, "applied once");
    // The new leader takes new bids.
    let (_, rival) = client.user(cluster.url(survivors[1]), "rival").await;
    let next = client
        .post(
            api(&cluster, survivors[0], &format!("/auctions/{id}/bids")),
            Some(&rival),
            json!({ "amount": "30" }),
        )
        .await
        .expect(201);
    assert_eq!(next["currentPrice"], "30.00");

    // The eleventh bid of a user within a minute is refused with a Retry-After.
    let (_, spammer) = client.user(cluster.url(survivors[0]), "spammer").await;
    let spam_url = api(&cluster, survivors[0], &format!("/auctions/{id}/bids"));
    for _ in 0..10 {
        client
            .post(spam_url.clone(), Some(&spammer), json!({ "amount": "1" }))
            .await
            .expect_error(400, "BID_TOO_LOW");
    }
    let limited = client
        .post(spam_url, Some(&spammer), json!({ "amount": "1" }))
        .await;
    assert!(limited.headers.contains_key("retry-after"));
    let limited = limited.expect_error(429, "RATE_LIMITED");
    assert!(limited["retryAfter"]
        .as_u64()
        .is_some_and(|seconds| seconds >= 1));

    // With a second node gone there is no majority: a write is refused quickly and clearly.
    cluster.kill(cluster.nodes[survivors[1]].id);
    let started = std::time::Instant::now();
    let refused = client
        .call_once(
            Method::POST,
            api(&cluster, survivors[0], &format!("/auctions/{id}/bids")),
            Some(&rival),
            Some(json!({ "amount": "40" })),
            &[],
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "answered in {:?}",
        started.elapsed()
    );
    assert!(
        refused.headers.contains_key("retry-after"),
        "{:?}",
        refused.headers
    );
    let code = refused.body["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        matches!(
            (refused.status.as_u16(), code.as_str()),
            (503, "NO_LEADER") | (503, "UNAVAILABLE") | (504, "TIMEOUT")
        ),
        "{:?} {}",
        refused.status,
        refused.body
    );
}
