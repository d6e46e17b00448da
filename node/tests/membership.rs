//! Black-box test of the membership endpoints and `auctionctl` against real `auction-node`
//! processes: a 4th node joins every group with `auctionctl node add`, serves bids, a voter is
//! removed, leadership moves, snapshots are taken, and every replica ends identical. Also the
//! refusals: no token, a wrong token, bad node ids and addresses, unknown groups.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{wait_until_ready, Api, Cluster, ADMIN_TOKEN, SHARDS};
use reqwest::Method;
use serde_json::{json, Value};

/// A node started outside the cluster (no peers, no bootstrap), killed when dropped.
struct Joiner {
    child: Child,
    http: String,
    rpc_addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Joiner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

fn start_joiner(cluster: &Cluster, id: u64) -> Joiner {
    let dir = tempfile::tempdir().expect("temp dir");
    // A certificate of the cluster's CA, as an operator makes one for a new node.
    let tls_dir = cluster.node_tls_dir(id);
    let (http, grpc) = (port(), port());
    let child = Command::new(env!("CARGO_BIN_EXE_auction-node"))
        .arg("run")
        .args(["--id", &id.to_string()])
        .args(["--http-addr", &format!("127.0.0.1:{http}")])
        .args(["--grpc-addr", &format!("127.0.0.1:{grpc}")])
        .args(["--data-dir", &dir.path().display().to_string()])
        .args(["--shards", &SHARDS.to_string()])
        .args(["--admin-token", ADMIN_TOKEN])
        .args(["--bid-rate-per-minute", "6000"])
        .arg("--tls-dir")
        .arg(&tls_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start auction-node");
    Joiner {
        child,
        http: format!("http://127.0.0.1:{http}"),
        rpc_addr: format!("127.0.0.1:{grpc}"),
        _dir: dir,
    }
}

/// `auctionctl --json ARGS` against `node`; (success, parsed stdout).
fn auctionctl(node: &str, token: &str, args: &[&str]) -> (bool, Value) {
    let output = Command::new(common::auctionctl_binary())
        .args(["--node", node, "--json"])
        .args(args)
        .env("AUCTION_ADMIN_TOKEN", token)
        .output()
        .expect("run auctionctl");
    let text = String::from_utf8_lossy(&output.stdout);
    let value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if !output.status.success() {
        eprintln!(
            "auctionctl {args:?}: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    (output.status.success(), value)
}

fn all_ok(results: &Value) -> bool {
    results
        .as_array()
        .is_some_and(|results| !results.is_empty() && results.iter().all(|r| r["ok"] == true))
}

/// The voters of every group, as each group's leader reports them.
fn voters_everywhere(node: &str) -> Vec<Vec<u64>> {
    let (ok, status) = auctionctl(node, ADMIN_TOKEN, &["status"]);
    assert!(ok, "status works");
    let mut voters = Vec::new();
    for member in status["members"].as_array().expect("members") {
        for group in member["groups"].as_array().into_iter().flatten() {
            if group["state"] == "leader" {
                let ids = group["voters"].as_array().expect("voters");
                voters.push(ids.iter().filter_map(Value::as_u64).collect());
            }
        }
    }
    voters
}

async fn wait_ready(base: &str) {
    wait_until_ready(base, Duration::from_secs(60), || None).await;
}

/// Polls until every listed node reports the same applied index and digest for `group`.
async fn digests_agree(api: &Api, nodes: &[&str], group: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let header = [("x-admin-token", ADMIN_TOKEN)];
    loop {
        let mut seen = Vec::new();
        for node in nodes {
            let url = format!("{node}/api/v1/cluster/groups/{group}/digest");
            let body = api
                .call(Method::GET, url, None, None, &header)
                .await
                .expect(200);
            seen.push((body["appliedIndex"].clone(), body["digest"].clone()));
        }
        if seen.iter().all(|entry| entry.0 == seen[0].0) {
            assert!(
                seen.iter().all(|entry| entry.1 == seen[0].1),
                "group {group}: replicas differ at one applied index: {seen:?}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "group {group} never settled: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_joins_serves_and_another_leaves() {
    let cluster = Cluster::start(3).await;
    let api = Api::default();
    let (n1, n2) = (cluster.url(0).to_owned(), cluster.url(1).to_owned());
    let token = [("x-admin-token", ADMIN_TOKEN)];

    // Refusals.
    api.get(format!("{n1}/api/v1/cluster/members"), None)
        .await
        .expect_error(401, "UNAUTHORIZED");
    api.call(
        Method::GET,
        format!("{n1}/api/v1/cluster/members"),
        None,
        None,
        &[("x-admin-token", "wrong")],
    )
    .await
    .expect_error(403, "FORBIDDEN");
    let (_, user_token) = api.user(&n1, "mallory").await;
    api.get(format!("{n1}/api/v1/cluster/members"), Some(&user_token))
        .await
        .expect_error(403, "FORBIDDEN");
    let bad_node = api
        .call(
            Method::POST,
            format!("{n1}/api/v1/cluster/nodes"),
            None,
            Some(json!({ "nodeId": 0, "rpcAddr": "127.0.0.1:1" })),
            &token,
        )
        .await
        .expect_error(422, "VALIDATION_FAILED");
    assert_eq!(bad_node["field"], "nodeId");
    let bad_addr = api
        .call(
            Method::POST,
            format!("{n1}/api/v1/cluster/nodes"),
            None,
            Some(json!({ "nodeId": 9, "rpcAddr": "no port" })),
            &token,
        )
        .await
        .expect_error(422, "VALIDATION_FAILED");
    assert_eq!(bad_addr["field"], "rpcAddr");
    api.call(
        Method::POST,
        format!("{n1}/api/v1/cluster/groups/999/snapshot"),
        None,
        None,
        &token,
    )
    .await
    .expect_error(404, "GROUP_NOT_FOUND");
    let refused = api
        .call(
            Method::POST,
            format!("{n1}/api/v1/cluster/nodes/9/promote"),
            None,
            None,
            &token,
        )
        .await
        .expect_error(409, "CLUSTER_CHANGE_REFUSED");
    assert!(
        refused["results"]
            .as_array()
            .is_some_and(|r| r.len() == SHARDS as usize + 1),
        "one result per group: {refused}"
    );
    let (ok, _) = auctionctl(&n1, "wrong", &["status"]);
    assert!(!ok, "auctionctl with a wrong token fails");

    // Node 4 joins every group, catches up and becomes a voter.
    let joiner = start_joiner(&cluster, 4);
    let (ok, added) = auctionctl(&n2, ADMIN_TOKEN, &["node", "add", "4", &joiner.rpc_addr]);
    assert!(ok, "node add: {added}");
    assert!(all_ok(&added["learner"]["results"]), "{added}");
    assert!(all_ok(&added["promoted"]["results"]), "{added}");
    wait_ready(&joiner.http).await;
    for voters in voters_everywhere(&n1) {
        assert_eq!(voters, vec![1, 2, 3, 4]);
    }

    // It serves writes and linearizable reads like any member.
    let (_, seller) = api.user(&joiner.http, "sam").await;
    let (_, bidder) = api.user(&n1, "bea").await;
    let auction = api
        .post(
            format!("{}/api/v1/auctions", joiner.http),
            Some(&seller),
            json!({ "title": "Joined", "startingPrice": "10.00", "durationSeconds": 3600 }),
        )
        .await
        .expect(201);
    let id = auction["auction"]["id"].as_str().expect("id").to_owned();
    api.post(
        format!("{}/api/v1/auctions/{id}/bids", joiner.http),
        Some(&bidder),
        json!({ "amount": "12.00" }),
    )
    .await
    .expect(201);
    let seen = api
        .get(format!("{n2}/api/v1/auctions/{id}"), None)
        .await
        .expect(200);
    assert_eq!(seen["auction"]["currentPrice"], "12.00");

    // Node 3 leaves every group; leadership and snapshots work on the new membership.
    let (ok, removed) = auctionctl(&n1, ADMIN_TOKEN, &["node", "remove", "3"]);
    assert!(ok && all_ok(&removed["results"]), "node remove: {removed}");
    for voters in voters_everywhere(&n1) {
        assert_eq!(voters, vec![1, 2, 4]);
    }
    // Group 2 prefers the voter at position 2 mod 3 of [1, 2, 4], node 4, so the leader
    // balancer keeps it there (a transfer elsewhere lasts until the next balancing round).
    let (ok, moved) = auctionctl(
        &n1,
        ADMIN_TOKEN,
        &["leader", "transfer", "--group", "2", "--to", "4"],
    );
    assert!(ok, "leader transfer: {moved}");
    let (ok, snapshot) = auctionctl(&n2, ADMIN_TOKEN, &["snapshot", "--group", "1"]);
    assert!(ok, "snapshot: {snapshot}");
    assert_eq!(snapshot["results"].as_array().map(Vec::len), Some(3));

    let members = [n1.as_str(), n2.as_str(), joiner.http.as_str()];
    for group in 0..=u64::from(SHARDS) {
        digests_agree(&api, &members, group).await;
    }
}
