//! `raft-bench`: bids through Raft on a 3-node loopback cluster with RocksDB and fsync on.
//!
//! Starts three nodes in this process (each with its own RocksDB in a temporary directory and
//! its gRPC server on loopback), creates auctions spread over every shard, then for each
//! concurrency level runs that many clients for a fixed time. Every client bids on its own
//! auctions (so bids are accepted, not refused for being too low) through the nodes in turn, so
//! two thirds of the bids are forwarded to another node's leader, as API requests would be.
//! Prints throughput, latency percentiles and WAL syncs per committed bid.
//!
//! `cargo run --release -p auction-node --bin raft-bench -- --clients 1,16,64 --seconds 10`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use auction_node::config::NodeArgs;
use auction_node::runtime::RunningNode;
use auction_raft::host::{ClientWrite, NodeStorage};
use auction_statemachine::command::{NewAuction, Op};
use auction_statemachine::{AuctionId, GroupId, Outcome, RequestId, UserId};
use clap::Parser;
use hdrhistogram::Histogram;
use uuid::Uuid;

#[derive(Parser)]
#[command(about = "Bids through Raft on a 3-node loopback cluster (RocksDB, fsync on)")]
struct Args {
    /// Concurrency levels to run, one after another.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    clients: Vec<usize>,
    /// Seconds per concurrency level.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Auctions per client (spread over the shards).
    #[arg(long, default_value_t = 4)]
    auctions_per_client: usize,
    #[arg(long, default_value_t = 8)]
    shards: u32,
    /// Print one JSON object per level instead of a table.
    #[arg(long)]
    json: bool,
}

const NODES: u64 = 3;

fn node_args(id: u64, dir: &std::path::Path, grpc_ports: &[u16], shards: u32) -> NodeArgs {
    NodeArgs {
        id,
        http_addr: "127.0.0.1:0".parse().expect("literal address"),
        grpc_addr: format!("127.0.0.1:{}", grpc_ports[(id - 1) as usize])
            .parse()
            .expect("loopback address"),
        advertise_addr: None,
        data_dir: dir.join(format!("node-{id}")),
        peers: (1..=NODES)
            .filter(|peer| *peer != id)
            .map(|peer| format!("{peer}=127.0.0.1:{}", grpc_ports[(peer - 1) as usize]))
            .collect(),
        init: id == 1,
        shards,
        admin_token: None,
        sse_heartbeat_ms: 15_000,
        cookie_secure: false,
        http_connections_max: 4_096,
        http_header_read_timeout_ms: 10_000,
        sse_streams_max: 2_048,
        sse_streams_per_client_max: 16,
        bid_rate_per_minute: 0,
        ip_rate_per_minute: 0,
        login_attempts_free: 0,
        login_backoff_min_ms: 1_000,
        // Measured as deployed: node-to-node mutual TLS (certificates made by `main`).
        tls_dir: Some(auction_raft::network::certs::node_dir(&dir.join("tls"), id)),
        insecure_grpc: false,
        // The environment's choice, so A/B runs need no flag of their own.
        raft_unary_appends: std::env::var("AUCTION_RAFT_UNARY_APPENDS")
            .is_ok_and(|value| !matches!(value.as_str(), "" | "0" | "false" | "no" | "off")),
        search_reindex_bids: false,
        housekeeping_interval_ms: 10_000,
        snapshot_every_entries: 20_000,
        log_entries_kept_after_snapshot: 2_000,
        meili_url: None,
        meili_key: None,
        meili_index: "auctions".to_owned(),
        web_dir: None,
        s3_endpoint: None,
        s3_bucket: "auction-images".to_owned(),
        s3_access_key: None,
        s3_secret_key: None,
        s3_region: "us-east-1".to_owned(),
        image_orphan_grace_seconds: 3_600,
        image_sweep_interval_seconds: 600,
    }
}

fn free_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    let listeners: Vec<std::net::TcpListener> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    listeners
        .iter()
        .map(|listener| Ok(listener.local_addr()?.port()))
        .collect()
}

async fn wait_for_leaders(nodes: &[RunningNode]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let host = nodes[0].host();
        let all = host
            .group_ids()
            .iter()
            .all(|group| host.leader_of(*group).is_some());
        if all {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("the groups did not elect leaders within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The shard of an auction, as the API will place it (here simply round-robin by index).
fn shard_of(index: usize, shards: u32) -> GroupId {
    let slot = index % usize::try_from(shards).unwrap_or(1).max(1);
    // `slot < shards`, so it fits the group id's width.
    1 + slot as GroupId
}

struct Level {
    clients: usize,
    bids: u64,
    errors: u64,
    elapsed: Duration,
    latency_us: Histogram<u64>,
    syncs: u64,
    entries_synced: u64,
}

static REQUESTS: AtomicU64 = AtomicU64::new(1);

fn request_id() -> RequestId {
    RequestId(Uuid::from_u128(
        u128::from(REQUESTS.fetch_add(1, Ordering::Relaxed)) | (0xbe4c << 64),
    ))
}

async fn create_auctions(
    nodes: &[RunningNode],
    count: usize,
    first: usize,
    shards: u32,
) -> anyhow::Result<Vec<(GroupId, AuctionId)>> {
    let mut auctions = Vec::with_capacity(count);
    for index in first..first + count {
        let id = AuctionId(Uuid::from_u128(0xa0c7_0000_0000 + index as u128));
        let group = shard_of(index, shards);
        let new = NewAuction {
            bid_increment: Some("0.01".to_owned()),
            ..NewAuction::lasting(
                id,
                UserId(Uuid::from_u128(1)),
                &format!("Benchmark lot {index}"),
                "1",
                24 * 3_600,
            )
        };
        let write = ClientWrite {
            group,
            request_id: request_id(),
            idempotency_key: None,
            op: Op::CreateAuction(new),
        };
        let response = nodes[index % nodes.len()].host().propose(write).await?;
        if response.result.is_err() {
            bail!("creating auction {index}: {:?}", response.result);
        }
        auctions.push((group, id));
    }
    Ok(auctions)
}

/// One client: bids on its own auctions, each bid one cent above its last, through the nodes
/// in turn, until the deadline.
async fn client(
    hosts: Vec<Arc<auction_node::runtime::NodeHost>>,
    auctions: Vec<(GroupId, AuctionId)>,
    bidders: [UserId; 2],
    deadline: Instant,
) -> (Histogram<u64>, u64, u64) {
    let mut latency =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds");
    let (mut bids, mut errors) = (0u64, 0u64);
    let mut cents = vec![100i64; auctions.len()];
    let mut turn = 0usize;
    while Instant::now() < deadline {
        let slot = turn % auctions.len();
        let (group, auction_id) = auctions[slot];
        cents[slot] += 1;
        let amount = format!("{}.{:02}", cents[slot] / 100, cents[slot] % 100);
        // Each auction alternates its two bidders, so every bid outbids the previous one.
        let op = Op::PlaceBid {
            auction_id,
            bidder: bidders[(turn / auctions.len()) % 2],
            amount,
        };
        let write = ClientWrite {
            group,
            request_id: request_id(),
            idempotency_key: None,
            op,
        };
        let started = Instant::now();
        let result = hosts[turn % hosts.len()].propose(write).await;
        let _ = latency.record(started.elapsed().as_micros() as u64);
        match result {
            Ok(response) if matches!(response.result, Ok(Outcome::Bid(_))) => bids += 1,
            Ok(response) => {
                errors += 1;
                tracing::warn!(result = ?response.result, "bid refused");
            }
            Err(error) => {
                errors += 1;
                tracing::warn!(%error, "bid not answered");
            }
        }
        turn += 1;
    }
    (latency, bids, errors)
}

fn sync_totals(nodes: &[RunningNode]) -> (u64, u64) {
    nodes
        .iter()
        .filter_map(|node| node.host().storage().sync_counters())
        .fold((0, 0), |(syncs, entries), counters| {
            (
                syncs + counters.syncs(),
                entries + counters.entries_synced(),
            )
        })
}

async fn run_level(
    nodes: &[RunningNode],
    clients: usize,
    per_client: usize,
    seconds: u64,
    shards: u32,
    first: usize,
) -> anyhow::Result<Level> {
    let auctions = create_auctions(nodes, clients * per_client, first, shards).await?;
    let hosts: Vec<_> = nodes.iter().map(|node| node.host().clone()).collect();
    let (syncs_before, entries_before) = sync_totals(nodes);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for (index, own) in auctions.chunks(per_client).enumerate() {
        let bidders = [
            UserId(Uuid::from_u128(10 + 2 * index as u128)),
            UserId(Uuid::from_u128(11 + 2 * index as u128)),
        ];
        tasks.push(tokio::spawn(client(
            hosts.clone(),
            own.to_vec(),
            bidders,
            deadline,
        )));
    }
    let mut latency_us = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut bids, mut errors) = (0, 0);
    for task in tasks {
        let (histogram, ok, failed) = task.await?;
        latency_us.add(histogram)?;
        bids += ok;
        errors += failed;
    }
    let elapsed = started.elapsed();
    let (syncs_after, entries_after) = sync_totals(nodes);
    Ok(Level {
        clients,
        bids,
        errors,
        elapsed,
        latency_us,
        syncs: syncs_after - syncs_before,
        entries_synced: entries_after - entries_before,
    })
}

fn report(level: &Level, json: bool) {
    let throughput = level.bids as f64 / level.elapsed.as_secs_f64();
    let ms = |quantile: f64| level.latency_us.value_at_quantile(quantile) as f64 / 1_000.0;
    // Every node syncs its own log: syncs per committed bid counts all three nodes' syncs.
    let syncs_per_bid = if level.bids == 0 {
        0.0
    } else {
        level.syncs as f64 / level.bids as f64
    };
    let entries_per_sync = if level.syncs == 0 {
        0.0
    } else {
        level.entries_synced as f64 / level.syncs as f64
    };
    if json {
        println!(
            "{}",
            serde_json::json!({
                "clients": level.clients, "bids": level.bids, "errors": level.errors,
                "seconds": level.elapsed.as_secs_f64(), "bidsPerSecond": throughput,
                "p50Ms": ms(0.50), "p95Ms": ms(0.95), "p99Ms": ms(0.99), "maxMs": level.latency_us.max() as f64 / 1_000.0,
                "walSyncs": level.syncs, "walSyncsPerBid": syncs_per_bid, "entriesPerSync": entries_per_sync,
            })
        );
    } else {
        println!(
            "{:>7} {:>9} {:>7} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>10.2} {:>12.1}",
            level.clients,
            level.bids,
            level.errors,
            throughput,
            ms(0.50),
            ms(0.95),
            ms(0.99),
            level.latency_us.max() as f64 / 1_000.0,
            syncs_per_bid,
            entries_per_sync
        );
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.clients.is_empty()
        || args
            .clients
            .iter()
            .any(|clients| *clients == 0 || *clients > 1_024)
    {
        bail!("--clients takes numbers between 1 and 1024");
    }
    let dir = tempfile::TempDir::new()?;
    let ports = free_ports(NODES as usize)?;
    let cluster: Vec<(u64, Vec<String>)> = (1..=NODES).map(|id| (id, Vec::new())).collect();
    auction_raft::network::certs::ensure_cluster(&dir.path().join("tls"), &cluster)?;
    let mut nodes = Vec::new();
    for id in 1..=NODES {
        nodes.push(
            RunningNode::start(&node_args(id, dir.path(), &ports, args.shards))
                .await
                .with_context(|| format!("node {id}"))?,
        );
    }
    wait_for_leaders(&nodes).await?;
    // Give leader balancing a moment so groups are led by different nodes, as in production.
    tokio::time::sleep(Duration::from_secs(3)).await;
    if !args.json {
        println!(
            "3 nodes, {} shards, RocksDB with fsync, {} s per level",
            args.shards, args.seconds
        );
        println!(
            "{:>7} {:>9} {:>7} {:>10} {:>8} {:>8} {:>8} {:>8} {:>10} {:>12}",
            "clients",
            "bids",
            "errors",
            "bids/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "syncs/bid",
            "entries/sync"
        );
    }
    let mut first_auction = 0;
    for clients in &args.clients {
        let level = run_level(
            &nodes,
            *clients,
            args.auctions_per_client,
            args.seconds,
            args.shards,
            first_auction,
        )
        .await?;
        first_auction += clients * args.auctions_per_client;
        report(&level, args.json);
    }
    for node in nodes {
        node.stop().await?;
    }
    Ok(())
}
