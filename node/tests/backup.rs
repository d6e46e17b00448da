//! Backup and restore, black box: `auctionctl backup` from a cluster taking bids, `auctionctl
//! backup verify`, `auction-node restore` into a fresh 3-node cluster, and what the restored
//! cluster serves.
//!
//! - Every bid acknowledged before the backup started is in the restored cluster's histories,
//!   and every group's digest on every restored node equals the backup's (the restored
//!   cluster runs with housekeeping off, so nothing but blank entries is applied after the
//!   backup's positions and the state stays the backup's).
//! - `backup verify` refuses a truncated file and a file with one flipped byte; `restore`
//!   refuses them before writing anything, and refuses another shard count and a data
//!   directory in use.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{auctionctl_binary, Api, Cluster, ADMIN_TOKEN, SHARDS};
use serde_json::{json, Value};

/// Auctions bid on at once, each by its own pair of bidders in turn (every bid is accepted).
const AUCTIONS: usize = 8;
/// Load before the backup starts.
const LOAD_BEFORE_BACKUP_MS: u64 = 3_000;
/// Page size of the history reads.
const HISTORY_PAGE: usize = 500;
/// Pause of each bidding loop between two bids: a steady load that a shared two-core machine
/// carries while the backup runs (at most `AUCTIONS * 1000 / BID_PAUSE_MS` bids a second).
const BID_PAUSE_MS: u64 = 10;

/// One acknowledged bid and when its answer arrived.
#[derive(Debug, Clone)]
struct Acked {
    auction: String,
    bidder: String,
    amount: u64,
    at: Instant,
}

fn auctionctl(node: &str, args: &[&str]) -> Output {
    std::process::Command::new(auctionctl_binary())
        .args(["--node", node, "--admin-token", ADMIN_TOKEN, "--json"])
        .args(args)
        .output()
        .expect("auctionctl runs")
}

fn json_of(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "auctionctl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("auctionctl --json prints JSON")
}

async fn create_auction(api: &Api, base: &str, seller: &str, n: usize) -> String {
    let body = json!({
        "title": format!("Backup lot {n}"),
        "startingPrice": "1.00",
        "durationSeconds": 3_600,
        "antiSnipe": {"windowSeconds": 0, "extensionSeconds": 0},
    });
    let created = api
        .post(format!("{base}/api/v1/auctions"), Some(seller), body)
        .await
        .expect(201);
    created["auction"]["id"].as_str().expect("id").to_owned()
}

/// Bids on `auction` through the nodes in turn until `stop`, alternating two bidders, each
/// bid one unit above the last; records every acknowledged one.
async fn bid_until_stopped(
    api: Api,
    nodes: Vec<String>,
    auction: String,
    bidders: [(String, String); 2],
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Acked>>>,
) {
    let mut amount = 1u64;
    let mut turn = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let (bidder, token) = &bidders[turn % 2];
        let base = &nodes[turn % nodes.len()];
        let url = format!("{base}/api/v1/auctions/{auction}/bids");
        let key = format!("{auction}-{amount}");
        let reply = api
            .call(
                reqwest::Method::POST,
                url,
                Some(token),
                Some(json!({ "amount": format!("{amount}.00") })),
                &[("x-idempotency-key", &key)],
            )
            .await;
        assert_eq!(reply.status.as_u16(), 201, "bid refused: {:?}", reply.body);
        acked.lock().expect("acked").push(Acked {
            auction: auction.clone(),
            bidder: bidder.clone(),
            amount,
            at: Instant::now(),
        });
        amount += 1;
        turn += 1;
        tokio::time::sleep(Duration::from_millis(BID_PAUSE_MS)).await;
    }
}

/// Every `(bidder, whole amount)` of an auction's history on `base`.
async fn history(api: &Api, base: &str, auction: &str) -> Vec<(String, u64)> {
    let mut steps = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/api/v1/auctions/{auction}/bids?limit={HISTORY_PAGE}");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let page = api.get(url, None).await.expect(200);
        for item in page["items"].as_array().expect("items") {
            let amount = item["amount"].as_str().expect("amount");
            let whole = amount
                .trim_end_matches(".00")
                .parse()
                .expect("a whole amount");
            steps.push((item["bidderId"].as_str().expect("bidder").to_owned(), whole));
        }
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return steps,
        }
    }
}

/// The backup's groups as `group → (applied index, digest)`.
fn backup_groups(verified: &Value) -> BTreeMap<u64, (u64, String)> {
    verified["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|group| {
            (
                group["groupId"].as_u64().expect("group"),
                (
                    group["appliedIndex"].as_u64().expect("index"),
                    group["digest"].as_str().expect("digest").to_owned(),
                ),
            )
        })
        .collect()
}

/// Waits until node `base` reports `group` at or past `index` and returns its digest there.
async fn digest_at_or_after(api: &Api, base: &str, group: u64, index: u64) -> (u64, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = api
            .call(
                reqwest::Method::GET,
                format!("{base}/api/v1/cluster/groups/{group}/digest"),
                None,
                None,
                &[("x-admin-token", ADMIN_TOKEN)],
            )
            .await;
        let body = reply.expect(200);
        let applied = body["appliedIndex"].as_u64().unwrap_or(0);
        if applied >= index {
            return (applied, body["digest"].as_str().expect("digest").to_owned());
        }
        assert!(
            Instant::now() < deadline,
            "group {group} on {base} stays at {applied}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn start_load(
    cluster: &Cluster,
    api: &Api,
) -> (
    Arc<AtomicBool>,
    Arc<Mutex<Vec<Acked>>>,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let nodes: Vec<String> = (0..3).map(|node| cluster.url(node).to_owned()).collect();
    let (_, seller) = api.user(&nodes[0], "seller").await;
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for n in 0..AUCTIONS {
        let auction = create_auction(api, &nodes[n % 3], &seller, n).await;
        let first = api
            .user(&nodes[(n + 1) % 3], &format!("bidder-{n}-a"))
            .await;
        let second = api
            .user(&nodes[(n + 2) % 3], &format!("bidder-{n}-b"))
            .await;
        tasks.push(tokio::spawn(bid_until_stopped(
            api.clone(),
            nodes.clone(),
            auction,
            [first, second],
            stop.clone(),
            acked.clone(),
        )));
    }
    (stop, acked, tasks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_load_restores_every_acknowledged_bid_into_a_new_cluster() {
    // Built (or found up to date) now, not while the clock of the backup runs.
    tokio::task::spawn_blocking(auctionctl_binary)
        .await
        .expect("auctionctl");
    let cluster = Cluster::start(3).await;
    let api = Api::default();
    let (stop, acked, tasks) = start_load(&cluster, &api).await;
    tokio::time::sleep(Duration::from_millis(LOAD_BEFORE_BACKUP_MS)).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("cluster.backup");
    let backup_started = Instant::now();
    let node = cluster.url(1).to_owned();
    let file_arg = file.display().to_string();
    let written = tokio::task::spawn_blocking(move || auctionctl(&node, &["backup", &file_arg]))
        .await
        .expect("auctionctl");
    let took = backup_started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("load task");
    }
    let written = json_of(&written);
    let acked = acked.lock().expect("acked").clone();
    let before: Vec<&Acked> = acked.iter().filter(|bid| bid.at < backup_started).collect();
    let during = acked.len() - before.len();
    eprintln!(
        "backup: {} bytes in {took:?} (per group {}); {} bids acknowledged before it, {during} \
         during it",
        written["bytes"],
        written["groupSeconds"],
        before.len()
    );
    assert!(
        before.len() >= AUCTIONS,
        "the load ran: {} bids",
        before.len()
    );
    assert!(during > 0, "writes went on during the backup");

    let verified = json_of(&auctionctl(
        cluster.url(0),
        &["backup", "verify", &file.display().to_string()],
    ));
    assert_eq!(verified["ok"], true);
    assert_eq!(
        verified["groups"], written["groups"],
        "verify reads what backup wrote"
    );
    let groups = backup_groups(&verified);
    assert_eq!(groups.len(), SHARDS as usize + 1, "every group: {groups:?}");
    cluster.stop();

    // No housekeeping: nothing but blank entries may apply after the backup's positions.
    let restored = Cluster::start_restored(
        3,
        &file,
        &[
            "--housekeeping-interval-ms",
            "3600000",
            "--ip-rate-per-minute",
            "0",
        ],
    )
    .await;
    for (group, (index, digest)) in &groups {
        for node in 0..3 {
            let found = digest_at_or_after(&api, restored.url(node), *group, *index).await;
            assert_eq!(
                &found.1,
                digest,
                "group {group} on node {} at {}",
                node + 1,
                found.0
            );
        }
    }
    let mut histories = BTreeMap::new();
    for bid in &before {
        if !histories.contains_key(&bid.auction) {
            let steps = history(&api, restored.url(2), &bid.auction).await;
            histories.insert(bid.auction.clone(), steps);
        }
        let steps = &histories[&bid.auction];
        assert!(
            steps.contains(&(bid.bidder.clone(), bid.amount)),
            "bid {bid:?} acknowledged before the backup is missing after the restore"
        );
    }
}

fn assert_refused(output: &Output, says: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "accepted; expected a refusal saying {says:?}"
    );
    assert!(stderr.contains(says), "the refusal says {says:?}: {stderr}");
}

fn restore(file: &Path, data_dir: &Path, shards: u32) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_auction-node"))
        .arg("restore")
        .arg("--from")
        .arg(file)
        .arg("--data-dir")
        .arg(data_dir)
        .args([
            "--id",
            "1",
            "--shards",
            &shards.to_string(),
            "--insecure-grpc",
        ])
        .output()
        .expect("auction-node restore runs")
}

#[tokio::test]
async fn a_damaged_backup_is_refused_by_verify_and_by_restore() {
    let cluster = Cluster::start(1).await;
    let api = Api::default();
    let (_, seller) = api.user(cluster.url(0), "seller").await;
    create_auction(&api, cluster.url(0), &seller, 0).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("good.backup");
    json_of(&auctionctl(
        cluster.url(0),
        &["backup", &file.display().to_string()],
    ));
    assert_refused(
        &auctionctl(cluster.url(0), &["backup", &file.display().to_string()]),
        "exists already",
    );
    let bytes = std::fs::read(&file).expect("the backup");

    let truncated = dir.path().join("truncated.backup");
    std::fs::write(&truncated, &bytes[..bytes.len() - 9]).expect("write");
    let flipped = dir.path().join("flipped.backup");
    let mut corrupted = bytes.clone();
    corrupted[bytes.len() / 2] ^= 0x10;
    std::fs::write(&flipped, &corrupted).expect("write");
    for damaged in [&truncated, &flipped] {
        let path = damaged.display().to_string();
        assert_refused(
            &auctionctl(cluster.url(0), &["backup", "verify", &path]),
            "not a sound backup",
        );
        let data_dir = dir.path().join("never-written");
        assert_refused(&restore(damaged, &data_dir, SHARDS), "not a sound backup");
        assert!(!data_dir.exists(), "a refused restore writes nothing");
    }

    let data_dir = dir.path().join("restored");
    assert_refused(&restore(&file, &data_dir, SHARDS + 1), "--shards");
    assert!(!data_dir.exists(), "a refused restore writes nothing");
    let restored = restore(&file, &data_dir, SHARDS);
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    assert_refused(&restore(&file, &data_dir, SHARDS), "is not empty");
}
