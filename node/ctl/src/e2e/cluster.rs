//! The cluster under test as the end-to-end driver sees it: each node's HTTP API on loopback,
//! its container driven through `cluster/bin/docker-cluster`, and the members' Raft views.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

use crate::admin::status::Members;
use crate::admin::Ctl;

/// How long a node may take to be ready after a (re)start.
pub const READY_WAIT_MS_MAX: u64 = 90_000;
/// How long a restarted node may take to catch up with its groups.
pub const CATCH_UP_WAIT_MS_MAX: u64 = 90_000;

pub struct Cluster {
    /// `cluster/bin/docker-cluster`, run with the environment of this process.
    pub script: String,
    /// Node `i` serves HTTP on `127.0.0.1:{port_base}{i}`.
    pub port_base: String,
    pub admin_token: String,
    pub http: reqwest::Client,
}

impl Cluster {
    pub fn url(&self, node: u64) -> String {
        format!("http://127.0.0.1:{}{node}", self.port_base)
    }

    pub fn ctl(&self, node: u64) -> anyhow::Result<Ctl> {
        Ctl::new(&self.url(node), Some(self.admin_token.clone()), true)
    }

    /// `docker-cluster ACTION NODE`.
    pub fn docker(&self, action: &str, node: Option<u64>) -> anyhow::Result<()> {
        let mut command = Command::new("bash");
        command.arg(&self.script).arg(action);
        if let Some(node) = node {
            command.arg(node.to_string());
        }
        let output = command
            .output()
            .with_context(|| format!("running docker-cluster {action}"))?;
        if !output.status.success() {
            bail!(
                "docker-cluster {action} {node:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// Waits until `node` answers `/ready` (every group it hosts has a leader).
    pub async fn wait_ready(&self, node: u64) -> anyhow::Result<Duration> {
        self.wait_for(node, "/ready").await
    }

    /// Waits until `node`'s HTTP server answers at all (`/health`).
    pub async fn wait_healthy(&self, node: u64) -> anyhow::Result<Duration> {
        self.wait_for(node, "/health").await
    }

    async fn wait_for(&self, node: u64, path: &str) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            let ready = self
                .http
                .get(format!("{}{path}", self.url(node)))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|response| response.status().is_success());
            if ready {
                return Ok(started.elapsed());
            }
            if started.elapsed() > Duration::from_millis(READY_WAIT_MS_MAX) {
                bail!("node {node} does not answer {path} after {READY_WAIT_MS_MAX} ms");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// The members' views, asked through `via`.
    pub async fn members(&self, via: u64) -> anyhow::Result<Members> {
        Ok(Members::fetch(&self.ctl(via)?).await?.0)
    }

    /// The leader of `group` as the members report it.
    pub async fn leader_of(&self, group: u64, via: u64) -> anyhow::Result<u64> {
        let members = self.members(via).await?;
        members
            .views(group)
            .into_iter()
            .find(|(_, view)| view.is_some_and(|view| view.state == "leader"))
            .map(|(member, _)| member.node_id)
            .with_context(|| format!("group {group} has no leader"))
    }

    /// Waits until `node` has applied, in every group, what each group's leader had committed
    /// when the wait began.
    pub async fn wait_caught_up(&self, node: u64, via: u64) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let mut targets: Option<Vec<(u64, u64)>> = None;
        loop {
            let members = self.members(via).await?;
            let goal = targets.get_or_insert_with(|| {
                members
                    .group_ids()
                    .into_iter()
                    .filter_map(|group| {
                        let leader = members.leader_view(group)?;
                        Some((group, leader.committed_index.unwrap_or(0)))
                    })
                    .collect()
            });
            let behind: Vec<u64> = goal
                .iter()
                .filter(|(group, committed)| {
                    let applied = members
                        .views(*group)
                        .into_iter()
                        .find(|(member, _)| member.node_id == node)
                        .and_then(|(_, view)| view.and_then(|view| view.applied_index));
                    applied.unwrap_or(0) < *committed
                })
                .map(|(group, _)| *group)
                .collect();
            if behind.is_empty() && !goal.is_empty() {
                return Ok(started.elapsed());
            }
            if started.elapsed() > Duration::from_millis(CATCH_UP_WAIT_MS_MAX) {
                bail!("node {node} has not caught up in groups {behind:?}");
            }
            if goal.is_empty() {
                targets = None;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Runs `auctionctl` (the binary next to this one) against `via`.
    pub fn auctionctl(&self, via: u64, args: &[&str]) -> anyhow::Result<Value> {
        let exe = std::env::current_exe()?.with_file_name("auctionctl");
        let output = Command::new(&exe)
            .args(["--node", &self.url(via), "--json"])
            .args(args)
            .env("AUCTION_ADMIN_TOKEN", &self.admin_token)
            .output()
            .with_context(|| format!("running {}", exe.display()))?;
        if !output.status.success() {
            bail!(
                "auctionctl {args:?} failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let text = String::from_utf8_lossy(&output.stdout);
        serde_json::from_str(&text).with_context(|| format!("auctionctl printed {text:.300}"))
    }
}
