//! Black-box tests of the cluster-wide rate limits on real 3-node clusters: a user who spreads
//! bids over every node gets the quota once, not once per node; a retry with an idempotency
//! key that has a recorded outcome gets that outcome even when the quota is spent; login
//! attempts on one account, spread over every node, meet the backoff after the documented
//! count (5), for known and unknown emails alike, and a successful login starts the count over.
//!
//! The quotas are chosen so that nothing replenishes while a scenario runs: 3 bids a minute (a
//! unit comes back every 20 s; a scenario sends its bids within a second or two) and a first
//! login wait of 10 minutes.

mod common;

use common::{Api, Cluster, Reply};
use reqwest::Method;
use serde_json::json;

/// Bids per user per minute in these clusters: fewer than one per node would show it too, but
/// 3 keeps every node's fallback share at 1.
const BID_QUOTA: usize = 3;
/// Login attempts before the first wait (the production default).
const LOGIN_ATTEMPTS_FREE: usize = 5;

fn api(cluster: &Cluster, node: usize, path: &str) -> String {
    format!("{}/api/v1{path}", cluster.url(node))
}

async fn start() -> Cluster {
    let quota = BID_QUOTA.to_string();
    Cluster::start_with(
        3,
        &[
            "--bid-rate-per-minute",
            &quota,
            "--ip-rate-per-minute",
            "0",
            "--login-backoff-min-ms",
            "600000",
        ],
    )
    .await
}

#[track_caller]
fn assert_rate_limited(reply: Reply) {
    assert!(
        reply.headers.contains_key("retry-after"),
        "{:?}",
        reply.headers
    );
    let body = reply.expect_error(429, "RATE_LIMITED");
    assert!(
        body["retryAfter"]
            .as_u64()
            .is_some_and(|seconds| seconds >= 1),
        "{body}"
    );
}

/// The sum over every node of one series of `/metrics`.
async fn metric_sum(cluster: &Cluster, series: &str) -> u64 {
    let mut sum = 0;
    for node in 0..cluster.nodes.len() {
        let text = reqwest::get(format!("{}/metrics", cluster.url(node)))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        sum += text
            .lines()
            .filter_map(|line| line.strip_prefix(series))
            .filter_map(|rest| rest.trim().parse::<u64>().ok())
            .sum::<u64>();
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_spreading_bids_over_every_node_gets_the_quota_once_and_keyed_retries_their_outcome()
{
    let cluster = start().await;
    let client = Api::default();
    let (_, seller) = client.user(cluster.url(0), "seller").await;
    let (_, bidder) = client.user(cluster.url(1), "bidder").await;
    let created = client
        .post(
            api(&cluster, 0, "/auctions"),
            Some(&seller),
            json!({ "title": "Limits", "startingPrice": "10", "durationSeconds": 3600 }),
        )
        .await
        .expect(201);
    let id = created["auction"]["id"].as_str().expect("id").to_owned();
    let path = format!("/auctions/{id}/bids");
    let bid = |node: usize, amount: &'static str, key: Option<&'static str>| {
        let headers: Vec<(&str, &str)> = key
            .map(|key| ("x-idempotency-key", key))
            .into_iter()
            .collect();
        let (url, token) = (api(&cluster, node, &path), bidder.clone());
        let client = client.clone();
        async move {
            let body = json!({ "amount": amount });
            client
                .call(Method::POST, url, Some(&token), Some(body), &headers)
                .await
        }
    };

    // The quota, spread over the three nodes: a keyed bid that wins, then bids that are too
    // low (a refused bid spends the budget too: it was an attempt).
    let first = bid(0, "25", Some("first-bid")).await.expect(201);
    let mut sent = 1;
    for node in 1..BID_QUOTA {
        bid(node % 3, "1", None)
            .await
            .expect_error(400, "BID_TOO_LOW");
        sent += 1;
    }
    // Spent on every node: per-node limits would have granted each node its own quota.
    for node in 0..3 {
        assert_rate_limited(bid(node, "30", None).await);
        sent += 1;
    }
    // A new key has no record: refused like any other bid.
    assert_rate_limited(bid(2, "30", Some("second-bid")).await);
    sent += 1;

    // The retry of the keyed bid, on the other nodes, gets its recorded outcome, not 429.
    for node in [1, 2] {
        let retry = bid(node, "25", Some("first-bid")).await.expect(200);
        assert_eq!(retry["bidId"], first["bidId"], "the first bid's outcome");
        assert_eq!(retry["status"], "winning");
        sent += 1;
    }
    // The same key for another request answers as apply would: reused, not 429.
    bid(0, "26", Some("first-bid"))
        .await
        .expect_error(409, "IDEMPOTENCY_KEY_REUSED");
    sent += 1;
    let auction = client
        .get(api(&cluster, 2, &format!("/auctions/{id}")), None)
        .await
        .expect(200);
    assert_eq!(auction["auction"]["bidCount"], 1, "one bid was applied");

    // Every bid was checked by the key's owner (or its stand-ins), some over the wire.
    let mut checked = 0;
    for via in ["owner", "runner_up", "fallback"] {
        let series = format!("auction_rate_limit_checks_total{{limit=\"bid\",via=\"{via}\"}}");
        checked += metric_sum(&cluster, &series).await;
    }
    assert!(checked >= sent, "{checked} checks for {sent} bids");
    let asked = metric_sum(
        &cluster,
        "auction_rate_limit_peer_asks_total{result=\"answered\"}",
    )
    .await;
    assert!(asked >= 1, "two nodes of three ask the owner over gRPC");
}

async fn login(client: &Api, cluster: &Cluster, node: usize, email: &str, password: &str) -> Reply {
    client
        .post(
            api(cluster, node, "/auth/login"),
            None,
            json!({ "email": email, "password": password }),
        )
        .await
}

const PASSWORD: &str = "correct horse battery";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_attempts_on_one_account_meet_the_backoff_after_five_whatever_the_node() {
    let cluster = start().await;
    let client = Api::default();
    client.user(cluster.url(0), "victim").await;
    client.user(cluster.url(0), "bystander").await;
    client.user(cluster.url(0), "forgetful").await;

    // Five wrong passwords over the three nodes (one in another spelling of the same email).
    for attempt in 0..LOGIN_ATTEMPTS_FREE {
        let email = if attempt == 3 {
            " Victim@Example.com"
        } else {
            "victim@example.com"
        };
        login(&client, &cluster, attempt % 3, email, "wrong horse battery")
            .await
            .expect_error(401, "UNAUTHORIZED");
    }
    // The sixth waits, on every node, even with the right password.
    for node in 0..3 {
        assert_rate_limited(login(&client, &cluster, node, "victim@example.com", PASSWORD).await);
    }
    // Another account is not affected.
    let fine = login(&client, &cluster, 2, "bystander@example.com", PASSWORD)
        .await
        .expect(200);
    assert!(fine["token"].is_string());

    // An unknown email backs off the same way: the answers do not tell which emails exist.
    for attempt in 0..LOGIN_ATTEMPTS_FREE {
        login(
            &client,
            &cluster,
            attempt % 3,
            "nobody@example.com",
            PASSWORD,
        )
        .await
        .expect_error(401, "UNAUTHORIZED");
    }
    assert_rate_limited(login(&client, &cluster, 1, "nobody@example.com", PASSWORD).await);

    // A successful login starts the count over: four failures and a success, then five
    // failures more before the wait.
    let forgetful = "forgetful@example.com";
    for attempt in 0..LOGIN_ATTEMPTS_FREE - 1 {
        login(&client, &cluster, attempt % 3, forgetful, "wrong")
            .await
            .expect_error(401, "UNAUTHORIZED");
    }
    login(&client, &cluster, 1, forgetful, PASSWORD)
        .await
        .expect(200);
    for attempt in 0..LOGIN_ATTEMPTS_FREE {
        login(&client, &cluster, attempt % 3, forgetful, "wrong")
            .await
            .expect_error(401, "UNAUTHORIZED");
    }
    assert_rate_limited(login(&client, &cluster, 0, forgetful, PASSWORD).await);
}
