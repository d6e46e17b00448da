//! Validation before proposing, black-box: a request that apply would refuse for its shape is
//! answered with the code of `api/API.md` and never reaches the Raft log. Proof: the last log
//! index (and term) of every group on every node is the same before and after each refused
//! request, on a cluster whose leaders propose nothing by themselves (housekeeping raised to
//! an hour, no auction due) once leadership has settled; a valid bid afterwards does move it,
//! so the measurement can fail.
//!
//! Where RULES.md reports state before the shape (an unknown auction, the seller bidding, an
//! edit by someone else), the answer is the state's refusal, still without a log entry.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Api, Cluster, ADMIN_TOKEN};
use reqwest::Method;
use serde_json::{json, Value};

/// Per group: the highest (term, last log index) any node reports.
type LogPositions = BTreeMap<u64, (u64, u64)>;

/// Rounds of waiting for leadership to settle (each a little longer than a balance check).
const SETTLE_ROUNDS_MAX: u32 = 60;
/// Attempts of one refusal when an election moved the log meanwhile.
const ELECTION_RETRIES_MAX: u32 = 3;

async fn log_positions(cluster: &Cluster, client: &Api) -> LogPositions {
    let mut positions = LogPositions::new();
    for node in 0..cluster.nodes.len() {
        let url = format!("{}/api/v1/cluster/status", cluster.url(node));
        let status = client.get(url, None).await.expect(200);
        for group in status["groups"].as_array().expect("groups") {
            let id = group["groupId"].as_u64().expect("group id");
            let term = group["term"].as_u64().unwrap_or(0);
            let index = group["lastLogIndex"].as_u64().unwrap_or(0);
            let entry = positions.entry(id).or_insert((0, 0));
            *entry = (*entry).max((term, index));
        }
    }
    positions
}

/// Every group led by its preferred voter (so no leadership transfer is pending) and the log
/// positions unchanged over a balance interval.
async fn settled(cluster: &Cluster, client: &Api) -> LogPositions {
    let mut last = log_positions(cluster, client).await;
    for _ in 0..SETTLE_ROUNDS_MAX {
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let now = log_positions(cluster, client).await;
        if now == last && leaders_are_preferred(cluster, client).await {
            return now;
        }
        last = now;
    }
    panic!("the cluster's logs did not settle: {last:?}");
}

/// Group `g` prefers the voter at position `g mod voters` (raft/src/host/duties.rs).
async fn leaders_are_preferred(cluster: &Cluster, client: &Api) -> bool {
    let url = format!("{}/api/v1/cluster/status", cluster.url(0));
    let status = client.get(url, None).await.expect(200);
    status["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .all(|group| {
            let voters = group["voters"].as_array().cloned().unwrap_or_default();
            let id = group["groupId"].as_u64().unwrap_or(0) as usize;
            !voters.is_empty() && group["leaderId"] == voters[id % voters.len()]
        })
}

/// One request the edge must refuse, and the answer it must get.
struct Refusal {
    name: &'static str,
    method: Method,
    path: String,
    token: String,
    body: Body,
    status: u16,
    code: &'static str,
    /// The `field` of a `VALIDATION_FAILED` answer.
    field: Option<&'static str>,
}

enum Body {
    Json(Value),
    Raw(&'static [u8]),
}

impl Refusal {
    fn new(name: &'static str, method: Method, path: String, token: &str, body: Value) -> Self {
        Refusal {
            name,
            method,
            path,
            token: token.to_owned(),
            body: Body::Json(body),
            status: 422,
            code: "VALIDATION_FAILED",
            field: None,
        }
    }

    fn field(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self
    }

    fn answer(mut self, status: u16, code: &'static str) -> Self {
        self.status = status;
        self.code = code;
        self
    }

    async fn send(&self, client: &Api, base: &str) -> Value {
        let url = format!("{base}/api/v1{}", self.path);
        let bearer = format!("Bearer {}", self.token);
        let headers = [("authorization", bearer.as_str())];
        let token = Some(self.token.as_str()).filter(|token| !token.is_empty());
        let reply = match &self.body {
            Body::Json(body) => {
                client
                    .call_once(self.method.clone(), url, token, Some(body.clone()), &[])
                    .await
            }
            Body::Raw(bytes) => {
                let headers = [headers[0], ("content-type", "application/json")];
                client
                    .raw(self.method.clone(), url, bytes.to_vec(), &headers)
                    .await
            }
        };
        assert_eq!(
            reply.status.as_u16(),
            self.status,
            "{}: {:?}",
            self.name,
            reply.body
        );
        assert_eq!(
            reply.body["error"], self.code,
            "{}: {}",
            self.name, reply.body
        );
        if let Some(field) = self.field {
            assert_eq!(reply.body["field"], field, "{}: {}", self.name, reply.body);
        }
        reply.body
    }
}

/// The people of the scenario and the auction they argue about.
struct World {
    seller: String,
    alice: (String, String),
    admin: String,
    auction: String,
}

async fn world(cluster: &Cluster, client: &Api) -> World {
    let base = cluster.url(0);
    let (_, seller) = client.user(base, "seller.validation").await;
    let alice = client.user(base, "alice.validation").await;
    let (admin_id, admin) = client.user(base, "admin.validation").await;
    client
        .call(
            Method::PUT,
            format!("{base}/api/v1/admin/users/{admin_id}/role"),
            None,
            Some(json!({ "role": "admin" })),
            &[("x-admin-token", ADMIN_TOKEN)],
        )
        .await
        .expect(200);
    let created = client
        .post(
            format!("{base}/api/v1/auctions"),
            Some(&seller),
            json!({ "title": "Clock", "startingPrice": "10.00", "durationSeconds": 3_600 }),
        )
        .await
        .expect(201);
    let auction = created["auction"]["id"].as_str().expect("id").to_owned();
    World {
        seller,
        alice,
        admin,
        auction,
    }
}

fn create_refusals(world: &World) -> Vec<Refusal> {
    let create = |name, body: Value| {
        let mut full = json!({ "title": "Lamp", "startingPrice": "10.00", "durationSeconds": 600 });
        for (key, value) in body.as_object().expect("object") {
            full[key] = value.clone();
        }
        Refusal::new(name, Method::POST, "/auctions".into(), &world.seller, full)
    };
    vec![
        create(
            "a 60,000-character title",
            json!({ "title": "t".repeat(60_000) }),
        )
        .field("title"),
        create("an empty title", json!({ "title": "  " })).field("title"),
        create(
            "a price as an object",
            json!({ "startingPrice": { "cents": 1 } }),
        )
        .field("startingPrice"),
        create("a price of 3 decimals", json!({ "startingPrice": "1.005" })).field("startingPrice"),
        create(
            "a long description",
            json!({ "description": "d".repeat(10_001) }),
        )
        .field("description"),
        create("a long category", json!({ "category": "c".repeat(65) })).field("category"),
        create(
            "a reserve below the start",
            json!({ "reservePrice": "5.00" }),
        )
        .field("reservePrice"),
        create(
            "an end in the past",
            json!({ "durationSeconds": null, "endTime": "2020-01-01T00:00:00Z" }),
        )
        .field("endTime"),
        create(
            "a duration over 90 days",
            json!({ "durationSeconds": 7_776_001 }),
        )
        .field("durationSeconds"),
        create("a duration as text", json!({ "durationSeconds": "ten" })).field("durationSeconds"),
        create(
            "an anti-snipe window over a day",
            json!({ "antiSnipe": { "windowSeconds": 86_401, "extensionSeconds": 60 } }),
        )
        .field("antiSnipe.windowSeconds"),
    ]
}

fn bid_refusals(world: &World) -> Vec<Refusal> {
    let bids = format!("/auctions/{}/bids", world.auction);
    let alice = &world.alice.1;
    let bid = |name, token: &str, path: &str, amount: Value| {
        Refusal::new(
            name,
            Method::POST,
            path.into(),
            token,
            json!({ "amount": amount }),
        )
        .answer(400, "INVALID_AMOUNT")
    };
    let unknown = format!("/auctions/{}/bids", uuid::Uuid::new_v4());
    vec![
        bid(
            "an amount as an object",
            alice,
            &bids,
            json!({ "cents": 5_000 }),
        ),
        bid("an amount of 3 decimals", alice, &bids, json!("10.005")),
        bid(
            "a 60,000-character amount",
            alice,
            &bids,
            json!("9".repeat(60_000)),
        ),
        bid("no amount", alice, &bids, Value::Null),
        bid(
            "an object amount, unknown auction",
            alice,
            &unknown,
            json!({}),
        )
        .answer(404, "AUCTION_NOT_FOUND"),
        bid(
            "an object amount by the seller",
            &world.seller,
            &bids,
            json!({}),
        )
        .answer(403, "SELLER_CANNOT_BID"),
        Refusal::new(
            "a negative proxy maximum",
            Method::POST,
            format!("/auctions/{}/proxy", world.auction),
            alice,
            json!({ "maxAmount": "-1" }),
        )
        .answer(400, "INVALID_AMOUNT"),
        Refusal {
            body: Body::Raw(b"{\"amount\": "),
            ..bid("a body that is not JSON", alice, &bids, Value::Null)
        }
        .answer(400, "VALIDATION_FAILED")
        .field("body"),
    ]
}

fn edit_refusals(world: &World) -> Vec<Refusal> {
    let path = format!("/auctions/{}", world.auction);
    let edit = |name, token: &str, body| Refusal::new(name, Method::PUT, path.clone(), token, body);
    let seller = &world.seller;
    vec![
        edit(
            "a 201-character title",
            seller,
            json!({ "title": "t".repeat(201) }),
        )
        .field("title"),
        edit(
            "a price that is text",
            seller,
            json!({ "startingPrice": "abc" }),
        )
        .field("startingPrice"),
        edit(
            "an end in the past",
            seller,
            json!({ "endTime": "2020-01-01T00:00:00Z" }),
        )
        .field("endTime"),
        edit(
            "a bad title by another user",
            &world.alice.1,
            json!({ "title": "" }),
        )
        .answer(403, "FORBIDDEN"),
    ]
}

fn other_refusals(world: &World) -> Vec<Refusal> {
    let register = |name, body| Refusal::new(name, Method::POST, "/auth/register".into(), "", body);
    vec![
        register(
            "a 65-character display name",
            json!({ "email": "long.validation@example.com", "password": "long enough",
                "displayName": "n".repeat(65) }),
        )
        .field("displayName"),
        register(
            "an email as a number",
            json!({ "email": 5, "password": "long enough", "displayName": "N" }),
        )
        .field("email"),
        Refusal::new(
            "an admin cancel with a 501-character reason",
            Method::PUT,
            format!("/admin/auctions/{}", world.auction),
            &world.admin,
            json!({ "action": "cancel", "reason": "r".repeat(501) }),
        )
        .field("reason"),
        Refusal::new(
            "a ban with a 501-character reason",
            Method::POST,
            format!("/admin/users/{}/ban", world.alice.0),
            &world.admin,
            json!({ "reason": "r".repeat(501) }),
        )
        .field("reason"),
        Refusal::new(
            "a watch of an id that is not a UUID",
            Method::POST,
            "/users/me/watchlist".into(),
            &world.alice.1,
            json!({ "auctionId": "nope" }),
        )
        .field("auctionId"),
    ]
}

/// Sends `refusal` to `node` and asserts that no group's log moved; an election meanwhile
/// (a new term) is waited out and the refusal sent again.
async fn refused_without_a_log_entry(
    cluster: &Cluster,
    client: &Api,
    node: usize,
    refusal: &Refusal,
) {
    for _ in 0..ELECTION_RETRIES_MAX {
        let before = log_positions(cluster, client).await;
        refusal.send(client, cluster.url(node)).await;
        let after = log_positions(cluster, client).await;
        let terms_moved = before
            .iter()
            .any(|(group, (term, _))| after.get(group).map(|position| position.0) != Some(*term));
        if !terms_moved {
            assert_eq!(before, after, "{} reached the log", refusal.name);
            return;
        }
        settled(cluster, client).await;
    }
    panic!("{}: elections kept moving the log", refusal.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_refused_for_their_shape_never_reach_the_log() {
    let cluster = Cluster::start_with(
        3,
        &[
            "--bid-rate-per-minute",
            "6000",
            "--ip-rate-per-minute",
            "0",
            "--housekeeping-interval-ms",
            "3600000",
        ],
    )
    .await;
    let client = Api::default();
    let world = world(&cluster, &client).await;
    settled(&cluster, &client).await;
    let refusals = [
        create_refusals(&world),
        bid_refusals(&world),
        edit_refusals(&world),
        other_refusals(&world),
    ];
    for (index, refusal) in refusals.iter().flatten().enumerate() {
        // Round robin: most requests reach a node that does not lead the group involved.
        refused_without_a_log_entry(&cluster, &client, index % 3, refusal).await;
    }

    // The measurement sees a write: a valid bid moves the auction's group.
    let before = log_positions(&cluster, &client).await;
    client
        .post(
            format!("{}/api/v1/auctions/{}/bids", cluster.url(1), world.auction),
            Some(&world.alice.1),
            json!({ "amount": "10.00" }),
        )
        .await
        .expect(201);
    assert_ne!(
        before,
        log_positions(&cluster, &client).await,
        "a bid is logged"
    );
}
