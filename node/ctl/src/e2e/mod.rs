//! `cluster-e2e`: the end-to-end test of a docker cluster (`cluster/bin/docker-e2e` starts the
//! cluster and runs this against it). While bidders bid continuously through the nodes in
//! service, it:
//!
//! 1. kills (SIGKILL) the leader of an auction's group, bids on without it, restarts it and
//!    checks it catches up;
//! 2. starts the spare node 4 and adds it with `auctionctl node add`, then removes node 3 with
//!    `auctionctl node remove` and stops it;
//! 3. restarts every member in turn (SIGTERM, wait until ready and caught up);
//!
//! then stops the bidders and checks that every acknowledged bid is present and that every
//! replica of every group is identical ([`check`]).
//!
//! Not done yet: network partitions between containers (the simulator covers them) and clock
//! skew.

pub mod check;
pub mod cluster;
pub mod load;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use serde_json::{json, Value};

use self::cluster::Cluster;
use self::load::{Auction, InService, Shared, User};

#[derive(Debug, Clone, Args)]
pub struct E2eArgs {
    /// `cluster/bin/docker-cluster`, which the driver runs to kill, start and restart nodes.
    #[arg(long, default_value = "cluster/bin/docker-cluster")]
    pub docker_cluster: String,
    /// Node i's HTTP API is on 127.0.0.1:{port_base}{i}.
    #[arg(long, env = "AUCTION_HTTP_PORT_BASE", default_value = "1808")]
    pub port_base: String,
    #[arg(long, env = "AUCTION_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: String,
    /// Concurrent bidders.
    #[arg(long, default_value_t = 6)]
    pub bidders: usize,
    #[arg(long, default_value_t = 6)]
    pub auctions: usize,
    /// Seconds of bidding after each disruption.
    #[arg(long, default_value_t = 5)]
    pub settle_secs: u64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Bidders at most (the test's load is a witness, not a benchmark).
const BIDDERS_MAX: usize = 64;
const USERS: usize = 8;

fn log(started: Instant, message: impl AsRef<str>) {
    println!(
        "[{:>7.1}s] {}",
        started.elapsed().as_secs_f64(),
        message.as_ref()
    );
}

async fn post(
    http: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Value,
) -> anyhow::Result<Value> {
    let mut request = http.post(&url).json(&body).timeout(Duration::from_secs(15));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let answer: Value = response.json().await?;
    if !status.is_success() {
        bail!("POST {url}: {status} {answer}");
    }
    Ok(answer)
}

/// Registers and logs in the users, each through a different node; creates the auctions.
async fn setup(
    cluster: &Cluster,
    args: &E2eArgs,
    run: &str,
) -> anyhow::Result<(Vec<User>, Vec<Auction>)> {
    let mut users = Vec::new();
    for index in 0..USERS {
        let node = 1 + (index as u64 % 3);
        let email = format!("e2e-{run}-{index}@example.com");
        let base = cluster.url(node);
        let registered = post(
            &cluster.http,
            format!("{base}/api/v1/auth/register"),
            None,
            json!({ "email": email, "password": "correct horse battery", "displayName": format!("Bidder {index}") }),
        )
        .await?;
        let login = post(
            &cluster.http,
            format!("{base}/api/v1/auth/login"),
            None,
            json!({ "email": email, "password": "correct horse battery" }),
        )
        .await?;
        users.push(User {
            id: registered["user"]["id"]
                .as_str()
                .context("user id")?
                .to_owned(),
            token: login["token"].as_str().context("token")?.to_owned(),
        });
    }
    let mut auctions = Vec::new();
    for index in 0..args.auctions {
        let seller = index % USERS;
        let node = 1 + (index as u64 % 3);
        let created = post(
            &cluster.http,
            format!("{}/api/v1/auctions", cluster.url(node)),
            Some(&users[seller].token),
            json!({ "title": format!("e2e lot {index}"), "startingPrice": "1.00", "durationSeconds": 6 * 3600 }),
        )
        .await?;
        auctions.push(Auction {
            id: created["auction"]["id"]
                .as_str()
                .context("auction id")?
                .to_owned(),
            seller,
        });
    }
    Ok((users, auctions))
}

/// The auction shard with the longest log (so surely one that takes bids) and its leader.
async fn busiest_shard_leader(cluster: &Cluster, via: u64) -> anyhow::Result<(u64, u64)> {
    let members = cluster.members(via).await?;
    let group = members
        .group_ids()
        .into_iter()
        .filter(|group| *group != 0)
        .max_by_key(|group| {
            members
                .leader_view(*group)
                .and_then(|view| view.last_log_index)
        })
        .context("no auction shard")?;
    Ok((group, cluster.leader_of(group, via).await?))
}

async fn bid_for(started: Instant, shared: &Shared, seconds: u64, what: &str) {
    let before = shared.ledger.lock().map(|l| l.acked.len()).unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let after = shared.ledger.lock().map(|l| l.acked.len()).unwrap_or(0);
    log(
        started,
        format!("{} acknowledged bids {what}", after - before),
    );
}

pub async fn run(args: E2eArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    if args.bidders == 0 || args.bidders > BIDDERS_MAX || args.auctions == 0 {
        bail!("--bidders must be 1..={BIDDERS_MAX} and --auctions at least 1");
    }
    let http = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(5))
        .build()?;
    let cluster = Cluster {
        script: args.docker_cluster.clone(),
        port_base: args.port_base.clone(),
        admin_token: args.admin_token.clone(),
        http: http.clone(),
    };
    for node in 1..=3 {
        cluster.wait_ready(node).await?;
    }
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let (users, auctions) = setup(&cluster, &args, &run).await?;
    log(
        started,
        format!(
            "{} users, {} auctions created through nodes 1-3",
            users.len(),
            auctions.len()
        ),
    );

    let in_service = InService::default();
    in_service.set(&[1, 2, 3]);
    let shared = Arc::new(Shared {
        base_urls: (1..=4).map(|node| cluster.url(node)).collect(),
        users,
        auctions: auctions.clone(),
        in_service: in_service.clone(),
        ledger: Mutex::new(Default::default()),
        stop: Default::default(),
        http: http.clone(),
    });
    let bidders = load::start(&shared, args.bidders, args.seed);
    bid_for(started, &shared, args.settle_secs, "with 3 healthy nodes").await;

    // 1. Kill a shard leader, bid on, bring it back.
    let (group, victim) = busiest_shard_leader(&cluster, 1).await?;
    let via = if victim == 1 { 2 } else { 1 };
    in_service.remove(victim);
    cluster.docker("kill", Some(victim))?;
    log(
        started,
        format!("killed node {victim} (leader of group {group}) with SIGKILL"),
    );
    bid_for(
        started,
        &shared,
        args.settle_secs,
        &format!("without node {victim}"),
    )
    .await;
    let new_leader = cluster.leader_of(group, via).await?;
    log(
        started,
        format!("group {group} is now led by node {new_leader}"),
    );
    cluster.docker("start", Some(victim))?;
    let ready = cluster.wait_ready(victim).await?;
    let caught_up = cluster.wait_caught_up(victim, via).await?;
    log(
        started,
        format!(
            "node {victim} restarted: ready after {ready:?}, caught up after {caught_up:?} more"
        ),
    );
    in_service.add(victim);

    // 2. Membership: add node 4, remove node 3.
    cluster.docker("start-spare", None)?;
    cluster.wait_healthy(4).await?;
    let added = cluster.auctionctl(1, &["node", "add", "4", "node4:7000", "--wait-secs", "120"])?;
    log(
        started,
        format!(
            "auctionctl node add 4: {} groups promoted",
            count_ok(&added["promoted"])
        ),
    );
    cluster.wait_ready(4).await?;
    in_service.add(4);
    bid_for(started, &shared, args.settle_secs, "with 4 voters").await;
    in_service.remove(3);
    let removed = cluster.auctionctl(1, &["node", "remove", "3"])?;
    log(
        started,
        format!(
            "auctionctl node remove 3: {} groups changed",
            count_ok(&removed)
        ),
    );
    cluster.docker("stop-node", Some(3))?;
    let members = voters(&cluster, 1).await?;
    if members != [1, 2, 4] {
        bail!("the voters of some group are {members:?}, not [1, 2, 4]");
    }
    bid_for(started, &shared, args.settle_secs, "with voters 1, 2, 4").await;

    // 3. Rolling restart.
    for node in [1u64, 2, 4] {
        let via = if node == 1 { 2 } else { 1 };
        in_service.remove(node);
        cluster.docker("restart", Some(node))?;
        let ready = cluster.wait_ready(node).await?;
        let caught_up = cluster.wait_caught_up(node, via).await?;
        in_service.add(node);
        log(
            started,
            format!(
                "rolling restart: node {node} ready after {ready:?}, caught up after {caught_up:?}"
            ),
        );
        bid_for(
            started,
            &shared,
            2,
            &format!("after restarting node {node}"),
        )
        .await;
    }

    shared.stop.store(true, Ordering::Relaxed);
    for bidder in bidders {
        bidder.await.context("a bidder panicked")?;
    }
    let ledger = std::mem::take(&mut *shared.ledger.lock().unwrap_or_else(|e| e.into_inner()));
    log(
        started,
        format!(
            "bidding stopped: {} acknowledged ({} answered as replays), {} unknown, {} retried attempts, refused by code {:?}; {} rounds could not read the auction (last: {:?})",
            ledger.acked.len(),
            ledger.replayed,
            ledger.unknown.len(),
            ledger.retried,
            ledger.refused,
            ledger.unread,
            ledger.last_unread,
        ),
    );
    if ledger.acked.is_empty() {
        bail!("no bid was acknowledged: the test proved nothing");
    }
    let ids: Vec<String> = auctions.iter().map(|a| a.id.clone()).collect();
    let report = check::histories(&cluster, 2, &ids, &ledger).await?;
    log(
        started,
        format!(
            "histories: {} auctions, {} steps; all {} acknowledged bids present; {} bids of unknown outcome were applied; nothing refused was applied",
            report.auctions, report.steps, report.acked_checked, report.unknown_applied
        ),
    );
    let groups = cluster.members(1).await?.group_ids();
    let compared = check::replicas_agree(&cluster, &[1, 2, 4], &groups).await?;
    log(
        started,
        format!(
            "replicas agree: {} groups × 3 members, {compared} digests compared",
            groups.len()
        ),
    );
    println!(
        "E2E PASSED: {} acknowledged bids checked in {:.0}s",
        report.acked_checked,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn count_ok(answer: &Value) -> usize {
    answer["results"].as_array().map_or(0, |results| {
        results.iter().filter(|r| r["ok"] == true).count()
    })
}

/// The voters every group's leader reports; fails when the groups disagree.
async fn voters(cluster: &Cluster, via: u64) -> anyhow::Result<Vec<u64>> {
    let members = cluster.members(via).await?;
    let mut seen: Option<Vec<u64>> = None;
    for group in members.group_ids() {
        let view = members
            .leader_view(group)
            .with_context(|| format!("group {group} has no leader"))?;
        match &seen {
            Some(voters) if *voters != view.voters => {
                bail!(
                    "group {group} has voters {:?}, another group {voters:?}",
                    view.voters
                )
            }
            _ => seen = Some(view.voters.clone()),
        }
    }
    seen.context("no groups")
}
