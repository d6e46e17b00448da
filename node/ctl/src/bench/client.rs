//! One client of the measured phase (a tokio task): when its [`Pace`] says the next operation
//! is due (closed loop: at once; open loop: at its arrival time), it picks an operation from the
//! mix and an auction from the skew, sends it to the next node in turn, records the latency
//! (from the intended start) and the answer, and goes on until the run stops. Its random choices come from its own generator,
//! seeded from `--seed` and its index, so the sequence of (operation, auction) choices of a
//! run is the same for the same seed; bid amounts follow the answers, which depend on timing.
//!
//! Bids are made to be accepted: the bidder is neither the seller nor (for a manual bid) the
//! known high bidder, the amount is the next step of the auction's ladder (above every amount
//! sent before and at least the known minimum bid, see [`world`](super::world)) plus 0 to 2
//! increments (a proxy's maximum: plus 1 to 10). Refusals that only mean another bid got
//! there first (`BID_TOO_LOW`, `ALREADY_HIGH_BIDDER`) count as rejections, not errors, and
//! teach the client the current minimum.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::json;

use super::catalog;
use super::http::{Http, Reply, Request, Sent};
use super::mix::{Mix, OpKind};
use super::money::{format_cents, parse_cents};
use super::pace::Pace;
use super::skew::{pick_user, Skew};
use super::stats::{Answered, Class, Stats};
use super::world::{BenchAuction, World};

/// Items asked for by history and listing reads.
const PAGE_ITEMS: u32 = 20;

/// What every client of a run shares, besides the world.
pub struct Settings {
    pub mix: Mix,
    pub skew: Skew,
    /// `?consistency=local` on single-auction reads and histories.
    pub local_reads: bool,
    /// The run id, in idempotency keys.
    pub run: Arc<str>,
}

pub struct Client {
    index: usize,
    rng: StdRng,
    node: usize,
    sequence: u64,
    http: Arc<Http>,
    world: Arc<World>,
    settings: Arc<Settings>,
}

/// An error answer or a failure without one, as counted.
fn failure(reply: &Result<Reply, &'static str>, retries: u32, class: Class) -> Answered {
    let label = match reply {
        Ok(reply) => format!(
            "{} {}",
            reply.status.as_u16(),
            reply.code().unwrap_or("(no code)")
        ),
        Err(what) => (*what).to_owned(),
    };
    Answered {
        label,
        class,
        retries,
        search_lag_ms: None,
    }
}

fn done(reply: &Reply, outcome: Option<&str>, retries: u32) -> Answered {
    let status = reply.status.as_u16();
    Answered {
        label: outcome.map_or_else(
            || status.to_string(),
            |outcome| format!("{status} {outcome}"),
        ),
        class: Class::Done,
        retries,
        search_lag_ms: None,
    }
}

/// Counts a bid's answer and learns what it says about the auction's price.
fn bid_answer(world: &World, auction: &BenchAuction, bidder: usize, sent: Sent) -> Answered {
    let reply = match &sent.reply {
        Ok(reply) => reply,
        Err(_) => return failure(&sent.reply, sent.retries, Class::Error),
    };
    let body = &reply.body;
    if reply.status.is_success() {
        if let Some(price) = body["currentPrice"].as_str().and_then(parse_cents) {
            let high = body["highBidderId"].as_str().map(|id| world.user(id));
            auction.learn(price.saturating_add(world.increment_cents), high);
        }
        return done(
            reply,
            Some(body["status"].as_str().unwrap_or("(no status)")),
            sent.retries,
        );
    }
    let class = match reply.code() {
        Some("BID_TOO_LOW") => {
            if let Some(minimum) = body["minimumBid"].as_str().and_then(parse_cents) {
                auction.learn(minimum, None);
            }
            Class::Rejected
        }
        Some("ALREADY_HIGH_BIDDER") => {
            auction.learn(auction.known().minimum_cents, Some(Some(bidder)));
            Class::Rejected
        }
        _ => Class::Error,
    };
    failure(&sent.reply, sent.retries, class)
}

/// Counts a read's answer; a single-auction read also teaches its price.
fn read_answer(world: &World, auction: Option<&BenchAuction>, sent: Sent) -> Answered {
    match &sent.reply {
        Ok(reply) if reply.status.is_success() => {
            let view = &reply.body["auction"];
            let minimum = view["minimumBid"].as_str().and_then(parse_cents);
            if let (Some(auction), Some(minimum)) = (auction, minimum) {
                auction.learn(
                    minimum,
                    Some(view["highBidderId"].as_str().and_then(|id| world.user(id))),
                );
            }
            done(reply, None, sent.retries)
        }
        _ => failure(&sent.reply, sent.retries, Class::Error),
    }
}

impl Client {
    pub fn new(
        index: usize,
        seed: u64,
        http: Arc<Http>,
        world: Arc<World>,
        settings: Arc<Settings>,
    ) -> Client {
        Client {
            index,
            // Each client its own stream: the seed and the client index, mixed.
            rng: StdRng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            node: index % http.node_count(),
            sequence: 0,
            http,
            world,
            settings,
        }
    }

    /// Runs operations until `pace` says no more; counts each finished one in `completed`.
    pub async fn run(mut self, pace: Arc<Pace>, completed: Arc<AtomicU64>) -> Stats {
        let mut stats = Stats::default();
        while let Some(start) = pace.next().await {
            if let Some(late) = start.late {
                stats.started_late.record(late);
            }
            let kind = self.settings.mix.pick(&mut self.rng);
            let auction = self.settings.skew.pick(&mut self.rng);
            let answered = self.operate(kind, auction).await;
            stats.record(kind, &answered, start.intended.elapsed());
            completed.fetch_add(1, Ordering::Relaxed);
        }
        stats
    }

    async fn operate(&mut self, kind: OpKind, auction: usize) -> Answered {
        let node = self.node;
        self.node = (self.node + 1) % self.http.node_count();
        match kind {
            OpKind::Bid => self.bid(node, auction, false).await,
            OpKind::Proxy => self.bid(node, auction, true).await,
            OpKind::Read | OpKind::History | OpKind::List => self.read(node, kind, auction).await,
            OpKind::Search => self.search(node).await,
        }
    }

    async fn bid(&mut self, node: usize, index: usize, proxy: bool) -> Answered {
        let world = self.world.clone();
        let auction = &world.auctions[index];
        let known = auction.known();
        let avoid: Vec<usize> = if proxy {
            vec![auction.seller]
        } else {
            std::iter::once(auction.seller)
                .chain(known.high_bidder)
                .collect()
        };
        let bidder = pick_user(&mut self.rng, world.users.len(), &avoid);
        let (route, field, steps) = if proxy {
            ("proxy", "maxAmount", self.rng.random_range(1..=10u64))
        } else {
            ("bids", "amount", self.rng.random_range(0..=2u64))
        };
        let amount = auction.next_amount(
            known.minimum_cents,
            world.increment_cents,
            steps * world.increment_cents,
        );
        let body = json!({ field: format_cents(amount) });
        self.sequence += 1;
        let key = format!(
            "bench-{}-c{}-{}",
            self.settings.run, self.index, self.sequence
        );
        let path = format!("/api/v1/auctions/{}/{route}", auction.id);
        let request = Request {
            method: Method::POST,
            path: &path,
            token: Some(&world.users[bidder].token),
            body: Some(&body),
            idempotency_key: Some(&key),
        };
        let sent = self.http.send(node, &request).await;
        bid_answer(&world, auction, bidder, sent)
    }

    async fn search(&mut self, node: usize) -> Answered {
        let path = catalog::pick_search(&mut self.rng);
        let request = Request::get(&path);
        search_answer(self.http.send(node, &request).await)
    }

    async fn read(&mut self, node: usize, kind: OpKind, index: usize) -> Answered {
        let world = self.world.clone();
        let auction = &world.auctions[index];
        let local = self.settings.local_reads;
        let path = match kind {
            OpKind::History => format!(
                "/api/v1/auctions/{}/bids?limit={PAGE_ITEMS}{}",
                auction.id,
                if local { "&consistency=local" } else { "" }
            ),
            OpKind::List => catalog::pick_listing(&mut self.rng, PAGE_ITEMS),
            _ => format!(
                "/api/v1/auctions/{}{}",
                auction.id,
                if local { "?consistency=local" } else { "" }
            ),
        };
        let request = Request::get(&path);
        let sent = self.http.send(node, &request).await;
        read_answer(&world, (kind == OpKind::Read).then_some(auction), sent)
    }
}

/// Counts a search's answer with the index lag it reports.
fn search_answer(sent: Sent) -> Answered {
    match &sent.reply {
        Ok(reply) if reply.status.is_success() => Answered {
            search_lag_ms: reply.body["searchLagMs"].as_u64(),
            ..done(reply, None, sent.retries)
        },
        _ => failure(&sent.reply, sent.retries, Class::Error),
    }
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;
    use serde_json::Value;

    use super::*;
    use crate::bench::world::BenchUser;

    fn world() -> World {
        let users = (0..3)
            .map(|index| BenchUser {
                id: format!("user-{index}"),
                token: String::new(),
            })
            .collect();
        World::new(
            users,
            vec![BenchAuction::new("a".to_owned(), 0, 1_000)],
            100,
        )
    }

    fn sent(status: u16, body: Value) -> Sent {
        Sent {
            reply: Ok(Reply {
                status: StatusCode::from_u16(status).expect("status"),
                body,
            }),
            retries: 0,
        }
    }

    #[test]
    fn an_accepted_bid_is_done_and_moves_the_known_price() {
        let world = world();
        let auction = &world.auctions[0];
        let body = json!({"status": "winning", "currentPrice": "12.00", "highBidderId": "user-2"});
        let answered = bid_answer(&world, auction, 2, sent(201, body));
        assert_eq!(
            (answered.label.as_str(), answered.class),
            ("201 winning", Class::Done)
        );
        assert_eq!(auction.known().minimum_cents, 1_300);
        assert_eq!(auction.known().high_bidder, Some(2));
    }

    #[test]
    fn lost_races_are_rejections_that_teach_and_other_refusals_are_errors() {
        let world = world();
        let auction = &world.auctions[0];
        let low = json!({"error": "BID_TOO_LOW", "currentBid": "20.00", "minimumBid": "21.00"});
        let answered = bid_answer(&world, auction, 1, sent(400, low));
        assert_eq!(
            (answered.label.as_str(), answered.class),
            ("400 BID_TOO_LOW", Class::Rejected)
        );
        assert_eq!(auction.known().minimum_cents, 2_100);
        let high = json!({"error": "ALREADY_HIGH_BIDDER"});
        let answered = bid_answer(&world, auction, 1, sent(409, high));
        assert_eq!(answered.class, Class::Rejected);
        assert_eq!(auction.known().high_bidder, Some(1));
        let limited = json!({"error": "RATE_LIMITED", "retryAfter": 1});
        let answered = bid_answer(&world, auction, 1, sent(429, limited));
        assert_eq!(
            (answered.label.as_str(), answered.class),
            ("429 RATE_LIMITED", Class::Error)
        );
        let gone = Sent {
            reply: Err("connection error"),
            retries: 3,
        };
        let answered = bid_answer(&world, auction, 1, gone);
        assert_eq!(
            (answered.label.as_str(), answered.class, answered.retries),
            ("connection error", Class::Error, 3)
        );
    }

    #[test]
    fn a_read_teaches_the_minimum_bid_and_the_high_bidder() {
        let world = world();
        let auction = &world.auctions[0];
        let body = json!({"auction": {"minimumBid": "31.00", "highBidderId": "user-1"}});
        let answered = read_answer(&world, Some(auction), sent(200, body));
        assert_eq!(
            (answered.label.as_str(), answered.class),
            ("200", Class::Done)
        );
        assert_eq!(auction.known().minimum_cents, 3_100);
        assert_eq!(auction.known().high_bidder, Some(1));
        let answered = read_answer(&world, None, sent(503, json!({"error": "NO_LEADER"})));
        assert_eq!(
            (answered.label.as_str(), answered.class),
            ("503 NO_LEADER", Class::Error)
        );
    }
}
