//! Membership commands of `auctionctl`:
//!
//! - `node add ID ADDR`: the node joins every group as a learner; `auctionctl` then watches the
//!   leaders' replication progress (a progress bar) until the learner's log has reached each
//!   leader's last index as it was when catching up began, and promotes it to voter.
//! - `node remove ID`: the node leaves every group (voter or learner).
//! - `leader transfer --group G --to N`: asks G's leader to hand over, then waits (bounded) until
//!   N leads. The nodes balance leadership (group G prefers the voter at position G mod voters,
//!   in id order), so a transfer to another voter lasts until the next balancing round, seconds
//!   later: it is for draining a node before maintenance, not for placing leaders durably.
//! - `snapshot --group G`: every member of G builds a snapshot.
//!
//! Not done yet: promoting without waiting for catch-up (`--no-wait`) and adding a node to some
//! groups only (every voter is a voter of every group in this version).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::{json, Value};

use super::status::Members;
use super::Ctl;

/// Interval between two looks at the cluster while waiting.
const POLL_INTERVAL_MS: u64 = 500;
/// Interval between two looks while a leader transfer completes (it may be balanced away
/// again within seconds, so look often).
const TRANSFER_POLL_INTERVAL_MS: u64 = 100;

/// Prints per-group results as lines: `group 3 on node 2: ok (log index 17)`.
pub fn print_results(results: &Value) {
    for result in results.as_array().into_iter().flatten() {
        let group = result["groupId"].as_u64().unwrap_or(0);
        let node = result["nodeId"]
            .as_u64()
            .map_or_else(|| "?".to_owned(), |node| node.to_string());
        let outcome = if result["ok"].as_bool() == Some(true) {
            match result["logIndex"].as_u64() {
                Some(index) => format!("ok (log index {index})"),
                None => "ok".to_owned(),
            }
        } else {
            format!("REFUSED: {}", result["error"].as_str().unwrap_or("?"))
        };
        println!("  group {group:>3} on node {node:>3}: {outcome}");
    }
}

async fn act(ctl: &Ctl, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
    let answer = ctl.call_ok(method, path, body).await?;
    if !ctl.json {
        print_results(&answer["results"]);
    }
    Ok(answer)
}

/// `node add ID ADDR`: learner everywhere, wait for catch-up, promote.
pub async fn add(ctl: &Ctl, node_id: u64, rpc_addr: &str, wait: Duration) -> anyhow::Result<()> {
    if !ctl.json {
        println!("adding node {node_id} ({rpc_addr}) as a learner of every group");
    }
    let body = json!({ "nodeId": node_id, "rpcAddr": rpc_addr });
    let learner = act(ctl, Method::POST, "/api/v1/cluster/nodes", Some(body)).await?;
    wait_for_catch_up(ctl, node_id, wait).await?;
    if !ctl.json {
        println!("promoting node {node_id} to voter in every group");
    }
    let path = format!("/api/v1/cluster/nodes/{node_id}/promote");
    let promoted = act(ctl, Method::POST, &path, None).await?;
    if ctl.json {
        ctl.print_json(&json!({ "learner": learner, "promoted": promoted }))?;
    }
    Ok(())
}

/// Per group: (entries the learner has, entries it must reach), as the leaders report them.
/// The target of each group is fixed at its first sighting, so a busy group does not move the
/// finish line away forever.
fn progress(members: &Members, node_id: u64, targets: &mut BTreeMap<u64, u64>) -> (u64, u64) {
    let (mut done, mut total) = (0, 0);
    let mut leaderless = false;
    for group in members.group_ids() {
        // A group between leaders says nothing about the learner: keep waiting.
        let Some(leader) = members.leader_view(group) else {
            leaderless = true;
            continue;
        };
        let last = leader.last_log_index.unwrap_or(0);
        let target = *targets.entry(group).or_insert(last);
        let matched = leader
            .replication
            .iter()
            .find(|replica| replica.node_id == node_id)
            .and_then(|replica| replica.matched_index)
            .unwrap_or(0);
        done += matched.min(target);
        total += target;
    }
    if leaderless {
        total = total.max(done + 1);
    }
    (done, total)
}

async fn wait_for_catch_up(ctl: &Ctl, node_id: u64, wait: Duration) -> anyhow::Result<()> {
    let bar = if ctl.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "catching up {bar:40} {pos}/{len} log entries ({elapsed}, eta {eta})",
        )
        .context("progress bar template")?,
    );
    let started = Instant::now();
    let mut targets = BTreeMap::new();
    loop {
        let (members, _) = Members::fetch(ctl).await?;
        let (done, total) = progress(&members, node_id, &mut targets);
        bar.set_length(total);
        bar.set_position(done);
        if done >= total {
            bar.finish();
            return Ok(());
        }
        if started.elapsed() >= wait {
            bar.abandon();
            bail!(
                "node {node_id} has {done} of {total} entries after {}s; it stays a learner \
                 (run `auctionctl node add` again to keep waiting, or `node remove`)",
                wait.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
    }
}

/// `node remove ID`.
pub async fn remove(ctl: &Ctl, node_id: u64) -> anyhow::Result<()> {
    if !ctl.json {
        println!("removing node {node_id} from every group");
    }
    let path = format!("/api/v1/cluster/nodes/{node_id}");
    let answer = act(ctl, Method::DELETE, &path, None).await?;
    if ctl.json {
        ctl.print_json(&answer)?;
    }
    Ok(())
}

/// `leader transfer --group G --to N`: asks, then waits until N leads G.
pub async fn transfer(ctl: &Ctl, group: u64, to: u64, wait: Duration) -> anyhow::Result<()> {
    let path = format!("/api/v1/cluster/groups/{group}/leader");
    let answer = act(ctl, Method::POST, &path, Some(json!({ "nodeId": to }))).await?;
    let started = Instant::now();
    loop {
        let (members, _) = Members::fetch(ctl).await?;
        let leader = members
            .views(group)
            .into_iter()
            .find(|(_, view)| view.is_some_and(|view| view.state == "leader"))
            .map(|(member, _)| member.node_id);
        if leader == Some(to) {
            if ctl.json {
                ctl.print_json(&answer)?;
            } else {
                println!("node {to} leads group {group}");
            }
            return Ok(());
        }
        if started.elapsed() >= wait {
            bail!(
                "group {group} is led by {leader:?}, not node {to}, after {}s",
                wait.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(TRANSFER_POLL_INTERVAL_MS)).await;
    }
}

/// `snapshot --group G`.
pub async fn snapshot(ctl: &Ctl, group: u64) -> anyhow::Result<()> {
    let path = format!("/api/v1/cluster/groups/{group}/snapshot");
    let answer = act(ctl, Method::POST, &path, None).await?;
    if ctl.json {
        ctl.print_json(&answer)?;
    }
    Ok(())
}
