//! The setup phase: registers and logs in the users, then creates the auctions (seller of
//! auction `i` is user `i mod users`), with a bounded number of requests in flight, spread
//! over the nodes. Names carry a run id so that runs against the same cluster do not collide.
//! Any failure here stops the run: without its users and auctions there is nothing to measure.
//!
//! Then it settles ([`settle`]): every node reads every auction once, linearizably. An
//! auction's creation is acknowledged once a majority has it, so a follower may not have
//! applied it yet, and a `?consistency=local` read there would answer `404 AUCTION_NOT_FOUND`
//! (counted as an unexpected error of the measured phase). A linearizable read on a node makes
//! that node's replica of the auction's group apply everything acknowledged before the read,
//! so after the settling reads every node's local reads see every auction.
//!
//! Not here: reusing the users or auctions of an earlier run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use indicatif::ProgressBar;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::catalog;
use super::http::{Http, Request};
use super::money::format_cents;
use super::world::{BenchAuction, BenchUser};

/// The password of every generated user.
const PASSWORD: &str = "load generator password";

/// What the auctions look like.
#[derive(Debug, Clone, Copy)]
pub struct AuctionShape {
    pub starting_cents: u64,
    pub increment_cents: u64,
    pub duration_seconds: u64,
    pub anti_snipe: bool,
}

/// Runs `make(i)` for every `i` in `0..count`, at most `concurrency` at a time; the results in
/// the order of `i`, or the first error.
async fn run_all<T, F, Fut>(count: usize, concurrency: usize, make: F) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<T>> + Send,
{
    let make = Arc::new(make);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.clamp(1, count.max(1)) {
        let (make, next) = (make.clone(), next.clone());
        workers.spawn(async move {
            let mut done = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    return Ok::<_, anyhow::Error>(done);
                }
                done.push((index, make(index).await?));
            }
        });
    }
    let mut all = Vec::with_capacity(count);
    while let Some(joined) = workers.join_next().await {
        all.extend(joined.context("a setup task panicked")??);
    }
    all.sort_by_key(|(index, _)| *index);
    Ok(all.into_iter().map(|(_, item)| item).collect())
}

async fn post(
    http: &Http,
    node: usize,
    path: &str,
    token: Option<&str>,
    body: &Value,
    key: Option<&str>,
) -> anyhow::Result<(StatusCode, Value)> {
    let sent = http
        .send(
            node,
            &Request {
                method: Method::POST,
                path,
                token,
                body: Some(body),
                idempotency_key: key,
            },
        )
        .await;
    match sent.reply {
        Ok(reply) if reply.status.is_success() => Ok((reply.status, reply.body)),
        Ok(reply) => bail!("{path} answered {}: {}", reply.status, reply.body),
        Err(what) => bail!("{path}: {what} after {} retries", sent.retries),
    }
}

async fn user(http: &Http, run: &str, index: usize) -> anyhow::Result<BenchUser> {
    let email = format!("bench-{run}-{index}@example.com");
    let register =
        json!({ "email": email, "password": PASSWORD, "displayName": format!("bench {index}") });
    let (_, body) = post(
        http,
        index,
        "/api/v1/auth/register",
        None,
        &register,
        Some(&format!("bench-{run}-register-{index}")),
    )
    .await?;
    let id = body["user"]["id"]
        .as_str()
        .context("registration without a user id")?
        .to_owned();
    let login = json!({ "email": email, "password": PASSWORD });
    // A login through another node than the registration: it must see the new user.
    let (_, body) = post(http, index + 1, "/api/v1/auth/login", None, &login, None).await?;
    let token = body["token"]
        .as_str()
        .context("login without a token")?
        .to_owned();
    Ok(BenchUser { id, token })
}

/// Registers and logs in `count` users.
pub async fn users(
    http: Arc<Http>,
    run: Arc<str>,
    count: usize,
    concurrency: usize,
    progress: ProgressBar,
) -> anyhow::Result<Vec<BenchUser>> {
    run_all(count, concurrency, move |index| {
        let (http, run, progress) = (http.clone(), run.clone(), progress.clone());
        async move {
            let made = user(&http, &run, index)
                .await
                .with_context(|| format!("user {index}"))?;
            progress.inc(1);
            Ok(made)
        }
    })
    .await
}

fn auction_body(run: &str, index: usize, shape: AuctionShape) -> Value {
    let (title, description, category) = catalog::listing(run, index);
    let mut body = json!({
        "title": title,
        "description": description,
        "category": category,
        "startingPrice": format_cents(shape.starting_cents),
        "bidIncrement": format_cents(shape.increment_cents),
        "durationSeconds": shape.duration_seconds,
    });
    if !shape.anti_snipe {
        body["antiSnipe"] = json!({ "windowSeconds": 0, "extensionSeconds": 0 });
    }
    body
}

/// Creates `count` auctions, sold by the users in turn.
pub async fn auctions(
    http: Arc<Http>,
    run: Arc<str>,
    users: Arc<Vec<BenchUser>>,
    count: usize,
    shape: AuctionShape,
    concurrency: usize,
    progress: ProgressBar,
) -> anyhow::Result<Vec<BenchAuction>> {
    run_all(count, concurrency, move |index| {
        let (http, run, users, progress) =
            (http.clone(), run.clone(), users.clone(), progress.clone());
        async move {
            let seller = index % users.len();
            let body = auction_body(&run, index, shape);
            let key = format!("bench-{run}-auction-{index}");
            let (_, answer) = post(
                &http,
                index,
                "/api/v1/auctions",
                Some(&users[seller].token),
                &body,
                Some(&key),
            )
            .await
            .with_context(|| format!("auction {index}"))?;
            let id = answer["auction"]["id"]
                .as_str()
                .context("an auction without an id")?
                .to_owned();
            progress.inc(1);
            Ok(BenchAuction::new(id, seller, shape.starting_cents))
        }
    })
    .await
}

/// The settling read of auction `auction_id` on node `node`: linearizable (no
/// `?consistency=local`), retried on that node only, anything but a 2xx an error.
async fn settle_one(http: &Http, node: usize, auction_id: &str) -> anyhow::Result<()> {
    let path = format!("/api/v1/auctions/{auction_id}");
    let request = Request::get(&path);
    let sent = http.send_pinned(node, &request).await;
    match sent.reply {
        Ok(reply) if reply.status.is_success() => Ok(()),
        Ok(reply) => bail!(
            "node {node}: {path} answered {}: {}",
            reply.status,
            reply.body
        ),
        Err(what) => bail!("node {node}: {path}: {what} after {} retries", sent.retries),
    }
}

/// Which (node, auction) settling read `index` is: the nodes in turn, so each is read about
/// equally all along.
fn settle_pair(index: usize, nodes: usize) -> (usize, usize) {
    (index % nodes.max(1), index / nodes.max(1))
}

/// Reads every auction once on every node, linearizably, at most `concurrency` at a time
/// (see the module doc: afterwards local reads see every auction).
pub async fn settle(
    http: Arc<Http>,
    auction_ids: Arc<Vec<String>>,
    concurrency: usize,
    progress: ProgressBar,
) -> anyhow::Result<()> {
    let nodes = http.node_count();
    let reads = nodes.saturating_mul(auction_ids.len());
    run_all(reads, concurrency, move |index| {
        let (http, auction_ids, progress) = (http.clone(), auction_ids.clone(), progress.clone());
        async move {
            let (node, auction) = settle_pair(index, nodes);
            settle_one(&http, node, &auction_ids[auction])
                .await
                .with_context(|| format!("settling auction {auction}"))?;
            progress.inc(1);
            Ok(())
        }
    })
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn run_all_keeps_the_order_and_bounds_the_concurrency() {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (flight, peak) = (in_flight.clone(), most.clone());
        let squares = run_all(50, 4, move |index| {
            let (flight, peak) = (flight.clone(), peak.clone());
            async move {
                let now = flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::task::yield_now().await;
                flight.fetch_sub(1, Ordering::SeqCst);
                Ok(index * index)
            }
        })
        .await
        .expect("no error");
        assert_eq!(
            squares,
            (0..50).map(|index| index * index).collect::<Vec<_>>()
        );
        assert!(most.load(Ordering::SeqCst) <= 4);
        let failed = run_all(10, 3, |index| async move {
            if index == 7 {
                bail!("seven")
            }
            Ok(index)
        })
        .await;
        assert!(failed.is_err());
    }

    #[test]
    fn settling_reads_every_auction_on_every_node() {
        let (nodes, auctions) = (3, 5);
        let mut pairs: Vec<_> = (0..nodes * auctions)
            .map(|index| settle_pair(index, nodes))
            .collect();
        assert_eq!(&pairs[..4], [(0, 0), (1, 0), (2, 0), (0, 1)]);
        pairs.sort_unstable();
        pairs.dedup();
        assert_eq!(pairs.len(), nodes * auctions, "each pair once");
        assert!(pairs
            .iter()
            .all(|&(node, auction)| node < nodes && auction < auctions));
    }

    #[test]
    fn anti_snipe_off_is_sent_as_zero_window() {
        let shape = AuctionShape {
            starting_cents: 1_000,
            increment_cents: 100,
            duration_seconds: 3_600,
            anti_snipe: false,
        };
        let body = auction_body("r", 3, shape);
        assert_eq!(body["antiSnipe"]["windowSeconds"], 0);
        assert_eq!(body["startingPrice"], "10.00");
        assert_eq!(body["bidIncrement"], "1.00");
        let on = auction_body(
            "r",
            3,
            AuctionShape {
                anti_snipe: true,
                ..shape
            },
        );
        assert!(
            on.get("antiSnipe").is_none(),
            "the default anti-sniping applies"
        );
    }
}
