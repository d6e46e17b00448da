//! The session lease, black box on 3 real nodes: a node authenticates from its own replica of
//! the meta group (no Raft round trip per request), yet a session works on every node the
//! moment its login is answered, and a logout or a ban taken through one node is refused by
//! every node once the lease bound (1 s, `ApiConfig::session_lease_ms`) has passed.

mod common;

use std::time::{Duration, Instant};

use common::{Api, Cluster, ADMIN_TOKEN};
use reqwest::Method;
use serde_json::json;

/// raft/ARCHITECTURE.md, "Hot path budget": logout and bans take effect on every node within this bound.
const SESSION_LEASE_MS: u64 = 1_000;

fn url(cluster: &Cluster, node: usize, path: &str) -> String {
    format!("{}/api/v1{path}", cluster.url(node))
}

/// Waits until `SESSION_LEASE_MS` have passed since `since`.
async fn past_the_lease(since: Instant) {
    let lease_end = since + Duration::from_millis(SESSION_LEASE_MS);
    tokio::time::sleep_until(lease_end.into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_and_ban_end_a_session_on_every_node_within_the_lease() {
    let cluster = Cluster::start(3).await;
    let client = Api::default();

    // A fresh session is usable on every node at once, though two of them learn of it only
    // by replication: the local miss is confirmed linearizably.
    let (_, alice) = client.user(cluster.url(0), "lease-alice").await;
    for node in 0..3 {
        client
            .get(url(&cluster, node, "/users/me"), Some(&alice))
            .await
            .expect(200);
    }

    // Logout through node 2; a request sent after the lease bound is refused everywhere.
    client
        .post(url(&cluster, 1, "/auth/logout"), Some(&alice), json!({}))
        .await
        .expect(204);
    let logged_out = Instant::now();
    past_the_lease(logged_out).await;
    for node in 0..3 {
        client
            .get(url(&cluster, node, "/users/me"), Some(&alice))
            .await
            .expect_error(401, "UNAUTHORIZED");
    }

    // A ban through node 3 ends every session of the user, on every node, within the bound.
    let (admin_id, admin) = client.user(cluster.url(0), "lease-admin").await;
    client
        .call(
            Method::PUT,
            url(&cluster, 1, &format!("/admin/users/{admin_id}/role")),
            None,
            Some(json!({ "role": "admin" })),
            &[("x-admin-token", ADMIN_TOKEN)],
        )
        .await
        .expect(200);
    let (bob_id, bob) = client.user(cluster.url(1), "lease-bob").await;
    let auction = client
        .post(
            url(&cluster, 0, "/auctions"),
            Some(&admin),
            json!({ "title": "Leased", "startingPrice": "5", "durationSeconds": 3600 }),
        )
        .await
        .expect(201);
    let auction = auction["auction"]["id"].as_str().expect("id").to_owned();
    client
        .post(
            url(&cluster, 2, &format!("/admin/users/{bob_id}/ban")),
            Some(&admin),
            json!({ "reason": "shill bidding" }),
        )
        .await
        .expect(200);
    let banned = Instant::now();
    // Within the bound a bid is refused either way: by the session (this replica has the ban)
    // or by the shard, which learned of the ban before the ban was answered.
    for node in 0..3 {
        let reply = client
            .post(
                url(&cluster, node, &format!("/auctions/{auction}/bids")),
                Some(&bob),
                json!({ "amount": "5" }),
            )
            .await;
        let code = reply.body["error"].as_str().unwrap_or_default().to_owned();
        assert!(
            matches!(
                (reply.status.as_u16(), code.as_str()),
                (401, "UNAUTHORIZED") | (403, "USER_BANNED")
            ),
            "a banned user's bid was not refused: {} {:?}",
            reply.status,
            reply.body
        );
    }
    past_the_lease(banned).await;
    for node in 0..3 {
        client
            .get(url(&cluster, node, "/users/me"), Some(&bob))
            .await
            .expect_error(401, "UNAUTHORIZED");
        client
            .post(
                url(&cluster, node, &format!("/auctions/{auction}/bids")),
                Some(&bob),
                json!({ "amount": "5" }),
            )
            .await
            .expect_error(401, "UNAUTHORIZED");
    }
}
