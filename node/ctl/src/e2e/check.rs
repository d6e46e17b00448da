//! The end-to-end test's final checks:
//!
//! - every acknowledged bid is in its auction's bid history (linearizable reads), with its
//!   bidder; every history step is a bid that was acknowledged or whose outcome stayed unknown
//!   (never one that was refused or never sent); amounts strictly increase; the auction's
//!   `bidCount` and `currentPrice` agree with its history;
//! - every member's replica of every group has the same digest at the same applied index.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use reqwest::Method;
use serde_json::Value;

use super::cluster::Cluster;
use super::load::{cents, Ledger};

/// Bid history steps read per page.
const HISTORY_PAGE_STEPS: usize = 500;
/// How long replicas may take to settle on one applied index once the load has stopped.
const AGREE_WAIT_MS_MAX: u64 = 60_000;

/// What the history check saw.
#[derive(Debug, Default)]
pub struct HistoryReport {
    pub auctions: usize,
    pub steps: usize,
    pub acked_checked: usize,
    pub unknown_applied: usize,
}

async fn get(cluster: &Cluster, via: u64, path: &str) -> anyhow::Result<Value> {
    let response = cluster
        .http
        .get(format!("{}{path}", cluster.url(via)))
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .with_context(|| format!("GET {path} on node {via}"))?;
    let status = response.status();
    let body: Value = response.json().await?;
    if !status.is_success() {
        bail!("GET {path} on node {via}: {status} {body}");
    }
    Ok(body)
}

/// Every step of an auction's history, newest first: (amount in cents, bidder id).
async fn history(cluster: &Cluster, via: u64, auction: &str) -> anyhow::Result<Vec<(u64, String)>> {
    let mut steps = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/auctions/{auction}/bids?limit={HISTORY_PAGE_STEPS}");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page = get(cluster, via, &path).await?;
        for item in page["items"].as_array().into_iter().flatten() {
            let amount = cents(item["amount"].as_str().context("step amount")?)?;
            let bidder = item["bidderId"].as_str().context("step bidder")?.to_owned();
            steps.push((amount, bidder));
        }
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(steps),
        }
    }
}

/// Checks every auction's history against the ledger.
pub async fn histories(
    cluster: &Cluster,
    via: u64,
    auctions: &[String],
    ledger: &Ledger,
) -> anyhow::Result<HistoryReport> {
    let mut report = HistoryReport::default();
    for auction in auctions {
        let steps = history(cluster, via, auction).await?;
        let (acked, unknown_applied) = check_steps(auction, &steps, ledger)?;
        let answer = get(cluster, via, &format!("/api/v1/auctions/{auction}")).await?;
        let view = &answer["auction"];
        let bid_count = view["bidCount"].as_u64().context("bidCount")?;
        if bid_count != steps.len() as u64 {
            bail!(
                "auction {auction}: bidCount {bid_count} but {} history steps",
                steps.len()
            );
        }
        let price = view["currentPrice"].as_str().map(cents).transpose()?;
        if price != steps.first().map(|(amount, _)| *amount) {
            bail!("auction {auction}: currentPrice {price:?} is not the last step's amount");
        }
        report.auctions += 1;
        report.steps += steps.len();
        report.acked_checked += acked;
        report.unknown_applied += unknown_applied;
    }
    Ok(report)
}

/// Checks one auction's history (newest first) against the ledger: amounts strictly
/// increase, every acknowledged bid is there with its bidder, every other step was a bid whose
/// outcome stayed unknown. Answers (acknowledged bids checked, unknown bids applied).
pub fn check_steps(
    auction: &str,
    steps: &[(u64, String)],
    ledger: &Ledger,
) -> anyhow::Result<(usize, usize)> {
    if steps.windows(2).any(|pair| pair[0].0 <= pair[1].0) {
        bail!("auction {auction}: amounts do not strictly increase: {steps:?}");
    }
    let by_amount: BTreeMap<u64, &str> = steps
        .iter()
        .map(|(amount, bidder)| (*amount, bidder.as_str()))
        .collect();
    let acked: Vec<_> = ledger
        .acked
        .iter()
        .filter(|a| a.auction == auction)
        .collect();
    for bid in &acked {
        match by_amount.get(&bid.amount_cents) {
            Some(bidder) if *bidder == bid.bidder => {}
            Some(bidder) => bail!(
                "auction {auction}: acknowledged bid {} of {} is in the history as {bidder}'s",
                bid.bid_id,
                bid.bidder
            ),
            None => bail!(
                "auction {auction}: acknowledged bid {} ({} cents by {}) is LOST",
                bid.bid_id,
                bid.amount_cents,
                bid.bidder
            ),
        }
    }
    let acked_amounts: BTreeSet<u64> = acked.iter().map(|a| a.amount_cents).collect();
    let mut unknown_applied = 0;
    for (amount, _) in steps {
        if acked_amounts.contains(amount) {
            continue;
        }
        let unknown = ledger
            .unknown
            .iter()
            .any(|(other, cents)| other == auction && cents == amount);
        if !unknown {
            bail!("auction {auction}: history step of {amount} cents was never acknowledged nor left unknown");
        }
        unknown_applied += 1;
    }
    Ok((acked.len(), unknown_applied))
}

/// Waits until every member reports the same applied index and digest for every group; fails
/// at once when two replicas differ at the same index.
pub async fn replicas_agree(
    cluster: &Cluster,
    members: &[u64],
    groups: &[u64],
) -> anyhow::Result<usize> {
    let started = Instant::now();
    let mut compared = 0;
    for group in groups {
        loop {
            let mut digests = Vec::new();
            for member in members {
                let ctl = cluster.ctl(*member)?;
                let path = format!("/api/v1/cluster/groups/{group}/digest");
                let digest = ctl.call_ok(Method::GET, &path, None).await?;
                digests.push((
                    *member,
                    digest["appliedIndex"].as_u64(),
                    digest["digest"].as_str().unwrap_or("").to_owned(),
                ));
            }
            let (_, first_index, first_digest) = &digests[0];
            let same_index = digests.iter().all(|(_, index, _)| index == first_index);
            if same_index {
                if let Some((node, _, digest)) =
                    digests.iter().find(|(_, _, digest)| digest != first_digest)
                {
                    bail!("group {group}: node {node} has digest {digest} but node {} has {first_digest} at applied index {first_index:?}", digests[0].0);
                }
                compared += digests.len();
                break;
            }
            if started.elapsed() > Duration::from_millis(AGREE_WAIT_MS_MAX) {
                bail!("group {group}: replicas did not settle on one applied index: {digests:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(compared)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e2e::load::Acked;

    fn ledger() -> Ledger {
        let acked = |amount: u64, bidder: &str| Acked {
            auction: "a".into(),
            amount_cents: amount,
            bid_id: format!("bid-{amount}"),
            bidder: bidder.into(),
        };
        Ledger {
            acked: vec![acked(100, "u1"), acked(300, "u2")],
            unknown: vec![("a".into(), 200)],
            ..Ledger::default()
        }
    }

    fn steps(items: &[(u64, &str)]) -> Vec<(u64, String)> {
        items.iter().map(|(a, b)| (*a, (*b).to_owned())).collect()
    }

    #[test]
    fn a_history_with_every_acknowledged_bid_passes() {
        let history = steps(&[(300, "u2"), (200, "u1"), (100, "u1")]);
        assert_eq!(check_steps("a", &history, &ledger()).ok(), Some((2, 1)));
        let without_unknown = steps(&[(300, "u2"), (100, "u1")]);
        assert_eq!(
            check_steps("a", &without_unknown, &ledger()).ok(),
            Some((2, 0))
        );
    }

    #[test]
    fn a_lost_bid_a_wrong_bidder_a_stranger_or_disorder_fail() {
        let lost = steps(&[(100, "u1")]);
        assert!(format!("{:#}", check_steps("a", &lost, &ledger()).unwrap_err()).contains("LOST"));
        let wrong_bidder = steps(&[(300, "u1"), (100, "u1")]);
        assert!(check_steps("a", &wrong_bidder, &ledger()).is_err());
        let never_sent = steps(&[(400, "u3"), (300, "u2"), (100, "u1")]);
        assert!(check_steps("a", &never_sent, &ledger()).is_err());
        let disorder = steps(&[(100, "u1"), (300, "u2")]);
        assert!(check_steps("a", &disorder, &ledger()).is_err());
    }
}
