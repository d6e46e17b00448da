//! The shard count belongs to the cluster (DESIGN.md, "Groups and placement"), black box on real
//! processes: the count is recorded in the meta group when the cluster is initialised, and a
//! node started with another `--shards` refuses, naming both counts, whether it restarts with
//! the count in its own replica or joins and learns the count by replication; the same node
//! started with the cluster's count serves.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, wait_until_ready, Api, Cluster, ADMIN_TOKEN, SHARDS};
use serde_json::json;

/// Another count than the cluster's (more groups, so a joining node hosts every group the
/// cluster replicates to it and learns the meta group's count).
const OTHER_SHARDS: u32 = SHARDS + 2;
/// How long a misconfigured node may take to refuse (it must learn the count first).
const REFUSAL_WAIT_MS_MAX: u64 = 60_000;

/// One `auction-node run` process, killed when dropped.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Starts `auction-node run` with the cluster's usual flags, `--shards shards` and `extra`.
    fn start(cluster: &Cluster, id: u64, data_dir: &Path, shards: u32, extra: &[&str]) -> Self {
        let log = data_dir.with_extension(format!("shards-{shards}.log"));
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_auction-node"))
            .arg("run")
            .args(["--id", &id.to_string()])
            .args(["--data-dir", &data_dir.display().to_string()])
            .args(["--shards", &shards.to_string()])
            .args(["--admin-token", ADMIN_TOKEN])
            .args(["--bid-rate-per-minute", "6000", "--ip-rate-per-minute", "0"])
            .arg("--tls-dir")
            .arg(cluster.node_tls_dir(id))
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start auction-node");
        Process { child, log }
    }

    /// Waits until the process exits; `None` if it still runs after `wait`.
    async fn exited_within(&mut self, wait: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("process state") {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Asserts that the node exited unsuccessfully with the message naming both counts.
    async fn assert_refuses(&mut self) {
        let status = self
            .exited_within(Duration::from_millis(REFUSAL_WAIT_MS_MAX))
            .await
            .unwrap_or_else(|| {
                panic!(
                    "a node with another shard count kept running:\n{}",
                    self.log()
                )
            });
        assert!(!status.success(), "a refusal is a failure: {status}");
        let log = self.log();
        let configured = format!("configured with --shards {OTHER_SHARDS}");
        let stored = format!("initialised with {SHARDS} shards");
        assert!(
            log.contains(&configured) && log.contains(&stored),
            "the refusal names both counts:\n{log}"
        );
    }

    fn still_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

async fn wait_ready(base: &str, process: &mut Process) {
    wait_until_ready(base, Duration::from_secs(90), || {
        (!process.still_running()).then(|| format!("the node exited:\n{}", process.log()))
    })
    .await;
}

/// Creates an auction and bids on it through `base`, and reads it back through `other`.
async fn serves(api: &Api, base: &str, other: &str, name: &str) {
    let (_, seller) = api.user(base, &format!("{name}-seller")).await;
    let (_, bidder) = api.user(other, &format!("{name}-bidder")).await;
    let created = api
        .post(
            format!("{base}/api/v1/auctions"),
            Some(&seller),
            json!({ "title": name, "startingPrice": "10.00", "durationSeconds": 3600 }),
        )
        .await
        .expect(201);
    let id = created["auction"]["id"].as_str().expect("id").to_owned();
    api.post(
        format!("{base}/api/v1/auctions/{id}/bids"),
        Some(&bidder),
        json!({ "amount": "12.00" }),
    )
    .await
    .expect(201);
    let seen = api
        .get(format!("{other}/api/v1/auctions/{id}"), None)
        .await
        .expect(200);
    assert_eq!(seen["auction"]["currentPrice"], "12.00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_with_another_shard_count_refuses_and_with_the_clusters_count_serves() {
    let mut cluster = Cluster::start(3).await;
    let api = Api::default();
    let n1 = cluster.url(0).to_owned();
    let dir = cluster
        .tls_dir
        .parent()
        .expect("the cluster's directory")
        .to_owned();

    // A restart: node 3 stops and comes back with another count. Whether its own replica
    // already holds the count (it refuses before it binds a port) or learns it from the
    // others after start (it stops then), it refuses, naming both counts.
    let (http3, grpc3) = (cluster.nodes[2].http.clone(), cluster.nodes[2].grpc.clone());
    let peers = format!("1={},2={}", cluster.nodes[0].grpc, cluster.nodes[1].grpc);
    let addrs = |http: &str| {
        vec![
            "--http-addr".to_owned(),
            http.trim_start_matches("http://").to_owned(),
            "--grpc-addr".to_owned(),
            grpc3.clone(),
            "--peer".to_owned(),
            peers.clone(),
        ]
    };
    let node3_args = addrs(&http3);
    let node3_args: Vec<&str> = node3_args.iter().map(String::as_str).collect();
    cluster.kill(3);
    let node3_dir = dir.join("node-3");
    let mut wrong = Process::start(&cluster, 3, &node3_dir, OTHER_SHARDS, &node3_args);
    wrong.assert_refuses().await;
    drop(wrong);
    let mut right = Process::start(&cluster, 3, &node3_dir, SHARDS, &node3_args);
    wait_ready(&http3, &mut right).await;
    serves(&api, &http3, &n1, "restarted").await;

    // A join: node 4 starts empty with another count, is added to every group, learns the
    // cluster's count with the meta group and stops.
    let node4_dir = dir.join("node-4");
    let grpc4 = format!("127.0.0.1:{}", free_port());
    let join_args = |http: &str| {
        vec![
            "--http-addr".to_owned(),
            http.to_owned(),
            "--grpc-addr".to_owned(),
            grpc4.clone(),
        ]
    };
    let first_http = format!("127.0.0.1:{}", free_port());
    let first_args = join_args(&first_http);
    let first_args: Vec<&str> = first_args.iter().map(String::as_str).collect();
    let mut joiner = Process::start(&cluster, 4, &node4_dir, OTHER_SHARDS, &first_args);
    // Adding a learner waits for it to catch up, which this one never finishes: not awaited.
    let add = reqwest::Client::new()
        .post(format!("{n1}/api/v1/cluster/nodes"))
        .header("x-admin-token", ADMIN_TOKEN)
        .json(&json!({ "nodeId": 4, "rpcAddr": grpc4 }))
        .timeout(Duration::from_secs(30))
        .send();
    let adding = tokio::spawn(add);
    joiner.assert_refuses().await;
    drop(joiner);
    let _ = adding.await;

    // The same node, with its data and the cluster's count, joins and serves.
    let http4 = format!("127.0.0.1:{}", free_port());
    let joined_args = join_args(&http4);
    let joined_args: Vec<&str> = joined_args.iter().map(String::as_str).collect();
    let mut joined = Process::start(&cluster, 4, &node4_dir, SHARDS, &joined_args);
    let added = Command::new(common::auctionctl_binary())
        .args(["--node", &n1, "--json", "node", "add", "4", &grpc4])
        .env("AUCTION_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .expect("run auctionctl");
    assert!(
        added.status.success(),
        "node add: {}{}",
        String::from_utf8_lossy(&added.stdout),
        String::from_utf8_lossy(&added.stderr)
    );
    let base4 = format!("http://{http4}");
    wait_ready(&base4, &mut joined).await;
    serves(&api, &base4, &n1, "joined").await;
    assert!(joined.still_running() && right.still_running());
}
