//! Continuous bidding for the end-to-end test: a few bidders place manual bids on a handful of
//! auctions through whichever nodes are currently in service, and keep a ledger of every bid
//! by outcome: acknowledged (201, or 200 for a replay), definitely refused (an error code), or
//! unknown (no answer after the bounded retries with the same idempotency key).
//!
//! Only manual bids, each just above the minimum the bidder last read, so an accepted bid is
//! exactly one bid-history step with its amount, and amounts in one auction strictly increase:
//! the checker can then match history steps to the ledger by (auction, amount).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::bench::money::{format_cents, parse_cents};

/// Attempts of one bid (the same idempotency key every time).
const BID_ATTEMPTS_MAX: u32 = 10;
/// Time one request may take.
const REQUEST_TIMEOUT_MS: u64 = 10_000;
/// Pause after an attempt without an answer, before the next node is tried.
const RETRY_PAUSE_MS: u64 = 300;
/// Pause between two bids of one bidder.
const BID_PAUSE_MS: u64 = 25;

/// A user of the test: id and session token.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub token: String,
}

#[derive(Debug, Clone)]
pub struct Auction {
    pub id: String,
    pub seller: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    pub auction: String,
    pub amount_cents: u64,
    pub bid_id: String,
    pub bidder: String,
}

#[derive(Debug, Default)]
pub struct Ledger {
    pub acked: Vec<Acked>,
    /// (auction, amount in cents) of bids whose outcome stayed unknown.
    pub unknown: Vec<(String, u64)>,
    pub refused: BTreeMap<String, u64>,
    /// Attempts that got no answer and were retried.
    pub retried: u64,
    /// Answers 200: a retry that found its first outcome.
    pub replayed: u64,
    /// Rounds that placed no bid because the auction could not be read, and the last reason.
    pub unread: u64,
    pub last_unread: Option<String>,
}

/// The nodes clients may use right now (a node is taken out before it is killed or restarted).
#[derive(Clone, Default)]
pub struct InService(Arc<Mutex<Vec<u64>>>);

impl InService {
    pub fn set(&self, nodes: &[u64]) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = nodes.to_vec();
    }

    pub fn remove(&self, node: u64) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|n| *n != node);
    }

    pub fn add(&self, node: u64) {
        let mut nodes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !nodes.contains(&node) {
            nodes.push(node);
        }
    }

    fn pick(&self, rng: &mut StdRng) -> Option<u64> {
        let nodes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (!nodes.is_empty()).then(|| nodes[rng.random_range(0..nodes.len())])
    }
}

/// `"12.34"` → 1234, refusing anything that is not an amount.
pub fn cents(amount: &str) -> anyhow::Result<u64> {
    parse_cents(amount).with_context(|| format!("{amount:?} is not an amount"))
}

/// Everything a bidder shares with the driver.
pub struct Shared {
    pub base_urls: Vec<String>,
    pub users: Vec<User>,
    pub auctions: Vec<Auction>,
    pub in_service: InService,
    pub ledger: Mutex<Ledger>,
    pub stop: AtomicBool,
    pub http: reqwest::Client,
}

impl Shared {
    fn url(&self, node: u64, path: &str) -> String {
        let index = usize::try_from(node.saturating_sub(1)).unwrap_or(usize::MAX);
        format!(
            "{}{path}",
            self.base_urls.get(index).map_or("", String::as_str)
        )
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Starts `bidders` bidders; they run until `shared.stop` is set.
pub fn start(shared: &Arc<Shared>, bidders: usize, seed: u64) -> Vec<JoinHandle<()>> {
    (0..bidders)
        .map(|index| {
            let shared = shared.clone();
            let rng = StdRng::seed_from_u64(seed.wrapping_add(index as u64));
            tokio::spawn(bidder(shared, rng))
        })
        .collect()
}

async fn bidder(shared: Arc<Shared>, mut rng: StdRng) {
    while !shared.stop.load(Ordering::Relaxed) {
        if let Err(error) = one_bid(&shared, &mut rng).await {
            {
                let mut ledger = shared.ledger();
                ledger.unread += 1;
                ledger.last_unread = Some(format!("{error:#}"));
            }
            tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS)).await;
        }
        tokio::time::sleep(Duration::from_millis(BID_PAUSE_MS)).await;
    }
}

/// Reads the auction's minimum on some node, then bids a little above it.
async fn one_bid(shared: &Shared, rng: &mut StdRng) -> anyhow::Result<()> {
    let auction = &shared.auctions[rng.random_range(0..shared.auctions.len())];
    let mut user_index = rng.random_range(0..shared.users.len());
    if user_index == auction.seller {
        user_index = (user_index + 1) % shared.users.len();
    }
    let user = &shared.users[user_index];
    let node = shared.in_service.pick(rng).context("no node in service")?;
    let path = format!("/api/v1/auctions/{}?consistency=local", auction.id);
    let view: Value = shared
        .http
        .get(shared.url(node, &path))
        .timeout(Duration::from_millis(REQUEST_TIMEOUT_MS))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let minimum = cents(
        view["auction"]["minimumBid"]
            .as_str()
            .context("minimumBid")?,
    )?;
    let amount = minimum + rng.random_range(0..300);
    place(shared, rng, auction, user, amount).await;
    Ok(())
}

enum Attempt {
    Acked(Acked, bool),
    Refused(String),
    NoAnswer,
}

async fn place(shared: &Shared, rng: &mut StdRng, auction: &Auction, user: &User, amount: u64) {
    let key = uuid::Uuid::new_v4().to_string();
    let started = Instant::now();
    for _ in 0..BID_ATTEMPTS_MAX {
        let Some(node) = shared.in_service.pick(rng) else {
            tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS)).await;
            continue;
        };
        match attempt(shared, node, auction, user, amount, &key).await {
            Attempt::Acked(acked, replayed) => {
                let mut ledger = shared.ledger();
                ledger.replayed += u64::from(replayed);
                ledger.acked.push(acked);
                return;
            }
            Attempt::Refused(code) => {
                *shared.ledger().refused.entry(code).or_default() += 1;
                return;
            }
            Attempt::NoAnswer => {
                shared.ledger().retried += 1;
                tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS)).await;
            }
        }
    }
    tracing::warn!(auction = %auction.id, amount, elapsed = ?started.elapsed(), "outcome unknown");
    shared.ledger().unknown.push((auction.id.clone(), amount));
}

async fn attempt(
    shared: &Shared,
    node: u64,
    auction: &Auction,
    user: &User,
    amount: u64,
    key: &str,
) -> Attempt {
    let path = format!("/api/v1/auctions/{}/bids", auction.id);
    let sent = shared
        .http
        .post(shared.url(node, &path))
        .bearer_auth(&user.token)
        .header("x-idempotency-key", key)
        .json(&json!({ "amount": format_cents(amount) }))
        .timeout(Duration::from_millis(REQUEST_TIMEOUT_MS))
        .send()
        .await;
    let Ok(response) = sent else {
        return Attempt::NoAnswer;
    };
    let status = response.status().as_u16();
    let Ok(body) = response.json::<Value>().await else {
        return Attempt::NoAnswer;
    };
    match status {
        200 | 201 => match body["bidId"].as_str() {
            Some(bid_id) => Attempt::Acked(
                Acked {
                    auction: auction.id.clone(),
                    amount_cents: amount,
                    bid_id: bid_id.to_owned(),
                    bidder: user.id.clone(),
                },
                status == 200,
            ),
            None => Attempt::Refused("ANSWER_WITHOUT_BID_ID".to_owned()),
        },
        // Refused before anything was proposed (rate limit) or not answered: same key again.
        429 | 500..=599 => Attempt::NoAnswer,
        _ => Attempt::Refused(body["error"].as_str().unwrap_or("?").to_owned()),
    }
}
