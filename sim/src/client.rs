//! Simulated clients: each is one process of the history. It picks an operation on one of a few
//! hot auctions (a manual bid, a proxy bid, buy now or a linearizable read), sends it to a random
//! node over the simulated network and records invoke → ok / fail / unknown. A write whose
//! outcome is unknown is retried (bounded) the way a real client would: with the same
//! idempotency key and a new request id, or without a key with the same request id.
//!
//! Two ways in, drawn per operation ([`API_PERCENT`]): the real HTTP API as users registered
//! through it ([`crate::api_client`]), or a small framed protocol ([`crate::net::ClientRequest`])
//! that calls the host directly as fixed bidder ids, which records the full answer (steps,
//! effective time) and lets writes go without an idempotency key.
//!
//! The auctions are short (seconds, [`SHORT_AUCTION_S`]) with a short anti-sniping window
//! ([`SNIPE_WINDOW_S`], [`SNIPE_EXTENSION_S`]), so they end, get extended and close during the
//! run under every fault: the setup lists the first `auctions`, a seller process
//! ([`run_seller`]) lists a new one every [`RELIST_EVERY_MS`] while the run leaves time for it to
//! end, and clients bid on the `auctions` newest. [`SNIPE_PERCENT`] of the operations aim at the
//! last seconds of the open auction that ends soonest (as far as the client has seen its end):
//! the client waits until shortly before that end and bids then.
//!
//! Every choice comes from the client's own [`SimRng`] stream of the run's seed; ids are built
//! from it, never from the OS.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use auction_jepsen::{Completion, History, ObservedAuction, OkValue, Operation, WriteRequest};
use auction_raft::host::ClientWrite;
use auction_raft::GroupId;
use auction_statemachine::command::{AntiSnipeSpec, NewAuction, Op};
use auction_statemachine::outcome::Outcome;
use auction_statemachine::{AuctionId, RequestId, TimestampMs, UserId};
use turmoil::net::TcpStream;
use uuid::Uuid;

use crate::api_client::{register_users, ApiUser, ApiWrite, BidRead};
use crate::config::SimConfig;
use crate::net::{
    read_frame, write_frame, ClientReply, ClientRequest, Refusal, SimClock, CLIENT_PORT,
};
use crate::node::node_name;
use crate::rng::SimRng;

/// How long a client waits for an answer before the outcome is unknown; longer than the host's
/// own request limit, so a node that answers at all answers in time.
pub const CLIENT_TIMEOUT_MS: u64 = 4_000;
/// Attempts of one logical write (the first and its retries after unknown outcomes).
pub const WRITE_ATTEMPTS_MAX: u32 = 3;
/// Operations one client issues at most, whatever the duration.
pub const CLIENT_OPS_MAX: u64 = 5_000;
/// Longest pause between two operations of a client.
pub const THINK_MS_MAX: u64 = 250;
/// Bidders the clients bid as.
pub const BIDDERS: u128 = 8;
/// How long the setup client tries to create the auctions and register the API users.
pub const SETUP_MS_MAX: u64 = 30_000;
/// Share (percent) of operations that go through the HTTP API.
pub const API_PERCENT: u64 = 50;
/// Share (percent) of API reads that read the bid history rather than the auction.
pub const BID_HISTORY_READ_PERCENT: u64 = 20;
/// Durations of the auctions, in seconds (drawn per auction).
pub const SHORT_AUCTION_S: (u64, u64) = (6, 14);
/// Anti-sniping of every auction: a step less than the window before the end moves the end to
/// the step's time plus the extension.
pub const SNIPE_WINDOW_S: i64 = 2;
pub const SNIPE_EXTENSION_S: i64 = 3;
/// How often the seller lists a new auction.
pub const RELIST_EVERY_MS: u64 = 2_500;
/// Share (percent) of a client's operations aimed at the last seconds of an auction.
pub const SNIPE_PERCENT: u64 = 25;
/// How far ahead a sniping client looks for an end, and how long before it the bid leaves.
pub const SNIPE_LOOKAHEAD_MS: i64 = 3_000;
pub const SNIPE_LEAD_MS_MAX: u64 = 1_500;
/// Attempts of the seller to list one auction.
const LIST_ATTEMPTS_MAX: u32 = 10;

/// What the clients share: the history they record and the auctions they fight over.
pub struct Workload {
    pub history: RefCell<History>,
    last_time: Cell<u64>,
    /// Set once every auction exists; clients start then.
    pub ready: Cell<bool>,
    /// Every auction listed so far, oldest first; clients bid on the newest [`Workload::live`].
    pub auctions: RefCell<Vec<AuctionId>>,
    /// How many of the newest auctions clients pick from.
    pub live: usize,
    /// The end of each auction as the clients last saw it (wall-clock ms).
    pub ends: RefCell<BTreeMap<AuctionId, TimestampMs>>,
    pub shards: u32,
    /// Simulated milliseconds at which clients stop issuing operations.
    pub stop_at_ms: Cell<u64>,
    /// The users the API clients bid as (set by the setup).
    pub api_users: RefCell<Vec<ApiUser>>,
    /// Every write attempt through the API, resolved at the end.
    pub api_writes: RefCell<Vec<ApiWrite>>,
    /// Every bid history read through the API, checked at the end.
    pub bid_reads: RefCell<Vec<BidRead>>,
    /// What the clients found wrong on the spot (unreadable answers).
    pub problems: RefCell<Vec<String>>,
}

impl Workload {
    pub fn new(config: &SimConfig) -> Workload {
        Workload {
            history: RefCell::new(History::new()),
            last_time: Cell::new(0),
            ready: Cell::new(false),
            auctions: RefCell::new(Vec::new()),
            live: usize::try_from(config.auctions.max(1)).unwrap_or(1),
            ends: RefCell::new(BTreeMap::new()),
            shards: config.shards,
            stop_at_ms: Cell::new(u64::MAX),
            api_users: RefCell::new(Vec::new()),
            api_writes: RefCell::new(Vec::new()),
            bid_reads: RefCell::new(Vec::new()),
            problems: RefCell::new(Vec::new()),
        }
    }

    /// The shard of an auction: the API's placement, which every node uses.
    pub fn shard_of(&self, auction: AuctionId) -> GroupId {
        auction_api::shard::shard_of(auction, self.shards.max(1))
    }

    /// Simulated milliseconds, never going back (the history's clock).
    fn now(&self) -> u64 {
        let now = u64::try_from(SimClock::elapsed_ms())
            .unwrap_or(0)
            .max(self.last_time.get());
        self.last_time.set(now);
        now
    }

    /// Records an invoke; returns its position in the history.
    pub(crate) fn invoke(&self, process: u64, operation: Operation) -> usize {
        let now = self.now();
        let mut history = self.history.borrow_mut();
        history.invoke(process, now, operation);
        history.len() - 1
    }

    /// Records a completion; returns its position in the history.
    pub(crate) fn complete(&self, process: u64, completion: Completion) -> usize {
        let now = self.now();
        let mut history = self.history.borrow_mut();
        history.complete(process, now, completion);
        history.len() - 1
    }

    pub(crate) fn problem(&self, problem: String) {
        self.problems.borrow_mut().push(problem);
    }

    /// The auctions clients bid on now: the newest [`Workload::live`].
    pub fn live_auctions(&self) -> Vec<AuctionId> {
        let auctions = self.auctions.borrow();
        auctions[auctions.len().saturating_sub(self.live)..].to_vec()
    }

    /// Records an end a client saw (ends only move later).
    pub(crate) fn note_end(&self, auction: AuctionId, end_ms: TimestampMs) {
        let mut ends = self.ends.borrow_mut();
        let end = ends.entry(auction).or_insert(end_ms);
        *end = (*end).max(end_ms);
    }

    /// The live auction whose known end is the soonest still ahead of `now_ms`, within
    /// [`SNIPE_LOOKAHEAD_MS`].
    fn next_end(&self, now_ms: TimestampMs) -> Option<(AuctionId, TimestampMs)> {
        let ends = self.ends.borrow();
        self.live_auctions()
            .into_iter()
            .filter_map(|auction| ends.get(&auction).map(|end| (auction, *end)))
            .filter(|(_, end)| *end > now_ms && *end - now_ms <= SNIPE_LOOKAHEAD_MS)
            .min_by_key(|(_, end)| *end)
    }
}

/// Auction number `index` as listed: short, with short anti-sniping; every other one with a
/// reserve and a buy-now price low enough to be met.
pub fn short_auction(index: u64, shards: u32, rng: &mut SimRng) -> NewAuction {
    let seconds = rng.between(SHORT_AUCTION_S.0, SHORT_AUCTION_S.1);
    let mut new = NewAuction::lasting(
        auction_id(index, shards),
        user(0),
        "hot lot",
        "1",
        i64::try_from(seconds).unwrap_or(60),
    );
    new.anti_snipe = Some(AntiSnipeSpec {
        window_seconds: SNIPE_WINDOW_S,
        extension_seconds: SNIPE_EXTENSION_S,
    });
    if index % 2 == 1 {
        new.reserve_price = Some("40".to_owned());
        new.buy_now_price = Some("90".to_owned());
    }
    new
}

/// The wall-clock time of the simulation now (what an accurate clock reads).
pub fn wall_now_ms() -> TimestampMs {
    crate::net::EPOCH_MS.saturating_add(SimClock::elapsed_ms())
}

/// The auction a client write names, if any.
pub fn auction_of(op: &Op) -> Option<AuctionId> {
    match op {
        Op::CreateAuction(new) => Some(new.auction_id),
        Op::PlaceBid { auction_id, .. }
        | Op::PlaceProxyBid { auction_id, .. }
        | Op::BuyNow { auction_id, .. } => Some(*auction_id),
        _ => None,
    }
}

/// Candidate ids tried per auction to place it on its shard.
const PLACEMENT_TRIES_MAX: u128 = 10_000;

/// Auction number `index` of every run: the first id of its range that the API's placement
/// (`auction_api::shard::shard_of`) puts on shard `1 + index mod shards`, so the hot auctions
/// spread over the shards and every node, the API and the framed protocol agree where each is.
pub fn auction_id(index: u64, shards: u32) -> AuctionId {
    let shards = shards.max(1);
    // `index % shards < shards`, so it fits the group id's width.
    let wanted = 1 + (index % u64::from(shards)) as GroupId;
    let base = 0xa0c7_0000_0000_0000_0000 + u128::from(index) * PLACEMENT_TRIES_MAX;
    (0..PLACEMENT_TRIES_MAX)
        .map(|n| AuctionId(Uuid::from_u128(base + n)))
        .find(|id| auction_api::shard::shard_of(*id, shards) == wanted)
        .unwrap_or(AuctionId(Uuid::from_u128(base)))
}

/// Bidder number `index`; the seller is user 0.
pub fn user(index: u128) -> UserId {
    UserId(Uuid::from_u128(0x05e2_0000_0000_0000_0000 + index))
}

/// What one call to a node gave.
enum Call {
    /// Nothing was sent (the node could not be reached): the request cannot take effect.
    NotSent(String),
    /// Sent, no answer in time or the connection broke: the outcome is unknown.
    Lost(String),
    Answered(ClientReply),
}

async fn call(node: u64, request: &ClientRequest) -> Call {
    let timeout = Duration::from_millis(CLIENT_TIMEOUT_MS);
    let connect = tokio::time::timeout(timeout, TcpStream::connect((node_name(node), CLIENT_PORT)));
    let mut stream = match connect.await {
        Err(_) => return Call::NotSent("connect timed out".to_owned()),
        Ok(Err(error)) => return Call::NotSent(format!("connect: {error}")),
        Ok(Ok(stream)) => stream,
    };
    let exchange = async {
        write_frame(&mut stream, request).await?;
        read_frame::<ClientReply>(&mut stream).await
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => Call::Lost("timed out".to_owned()),
        Ok(Err(error)) => Call::Lost(error.to_string()),
        Ok(Ok(reply)) => Call::Answered(reply),
    }
}

/// One client process.
pub struct Client {
    pub(crate) process: u64,
    nodes: u64,
    pub(crate) rng: SimRng,
    pub(crate) workload: Rc<Workload>,
    next_request: u64,
    /// The highest price this client has seen per auction, to bid near it.
    seen_price: BTreeMap<AuctionId, u64>,
}

impl Client {
    pub fn new(config: &SimConfig, process: u64, workload: Rc<Workload>) -> Client {
        Client {
            process,
            nodes: config.nodes,
            rng: SimRng::new(config.seed, 1_000 + process),
            workload,
            next_request: 0,
            seen_price: BTreeMap::new(),
        }
    }

    fn request_id(&mut self) -> RequestId {
        self.next_request += 1;
        let high = u128::from(self.rng.next_u64()) << 64;
        RequestId(Uuid::from_u128(
            high | u128::from(self.process) << 32 | u128::from(self.next_request),
        ))
    }

    pub(crate) fn node(&mut self) -> u64 {
        self.rng.between(1, self.nodes)
    }

    /// Issues operations until the workload stops.
    pub async fn run(mut self) -> turmoil::Result {
        // Bounded: the setup client sets `ready` within SETUP_MS_MAX or the run ends.
        while !self.workload.ready.get() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for _ in 0..CLIENT_OPS_MAX {
            let now = u64::try_from(SimClock::elapsed_ms()).unwrap_or(u64::MAX);
            if now >= self.workload.stop_at_ms.get() {
                break;
            }
            let sniping = self.rng.percent(SNIPE_PERCENT);
            let target = if sniping { self.aim().await } else { None };
            let live = self.workload.live_auctions();
            let Some(auction) = target.or_else(|| self.rng.pick(&live).copied()) else {
                break;
            };
            let via_api = self.rng.percent(API_PERCENT);
            let api_user = if via_api { self.api_user() } else { None };
            let read = target.is_none() && self.rng.percent(35);
            match (read, api_user) {
                (true, Some(_)) if self.rng.percent(BID_HISTORY_READ_PERCENT) => {
                    self.api_bid_history(auction).await
                }
                (true, Some(_)) => self.api_read(auction).await,
                (true, None) => self.read(auction).await,
                (false, Some(user)) => {
                    let op = self.choose_write(auction, user.id);
                    self.api_write(user, op).await;
                }
                (false, None) => {
                    let bidder = user(1 + u128::from(self.rng.below(BIDDERS as u64)));
                    let op = self.choose_write(auction, bidder);
                    self.write(auction, op).await;
                }
            }
            let think = self.rng.below(THINK_MS_MAX);
            tokio::time::sleep(Duration::from_millis(think)).await;
        }
        Ok(())
    }

    /// Waits until shortly before the soonest known end of a live auction and returns it;
    /// `None` when no end is near.
    async fn aim(&mut self) -> Option<AuctionId> {
        let now = wall_now_ms();
        let (auction, end) = self.workload.next_end(now)?;
        let lead = i64::try_from(self.rng.below(SNIPE_LEAD_MS_MAX)).unwrap_or(0);
        let wait = u64::try_from(end - lead - now).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        Some(auction)
    }

    fn choose_write(&mut self, auction: AuctionId, bidder: UserId) -> Op {
        let seen = self.seen_price.get(&auction).copied().unwrap_or(1);
        let roll = self.rng.below(100);
        if roll < 2 {
            return Op::BuyNow {
                auction_id: auction,
                buyer: bidder,
            };
        }
        let amount = seen + self.rng.between(1, 12);
        if roll < 35 {
            Op::PlaceProxyBid {
                auction_id: auction,
                bidder,
                max_amount: (amount + self.rng.below(20)).to_string(),
            }
        } else {
            Op::PlaceBid {
                auction_id: auction,
                bidder,
                amount: amount.to_string(),
            }
        }
    }

    pub(crate) fn note_price(&mut self, auction: AuctionId, price: Option<String>) {
        let Some(price) = price.and_then(|text| text.parse::<f64>().ok()) else {
            return;
        };
        let price = price.max(0.0) as u64;
        let seen = self.seen_price.entry(auction).or_insert(0);
        *seen = (*seen).max(price);
    }

    async fn read(&mut self, auction: AuctionId) {
        let process = self.process;
        let workload = self.workload.clone();
        workload.invoke(
            process,
            Operation::Read {
                auction_id: auction,
            },
        );
        let node = self.node();
        let request = ClientRequest::Read {
            group: workload.shard_of(auction),
            auction_id: auction,
        };
        let completion = match call(node, &request).await {
            Call::Answered(ClientReply::Read(Ok(observed))) => {
                if let Some(seen) = &observed {
                    workload.note_end(auction, seen.end_time);
                }
                self.note_price(
                    auction,
                    observed.as_ref().and_then(|seen: &ObservedAuction| {
                        seen.current_price.map(|price| price.to_string())
                    }),
                );
                Completion::Ok(OkValue::Read { auction: observed })
            }
            // A read changes nothing: whatever went wrong, it failed.
            Call::Answered(ClientReply::Read(Err(refusal))) => Completion::Fail {
                reason: format!("{refusal:?}"),
            },
            Call::Answered(ClientReply::Write(_)) => Completion::Fail {
                reason: "a write's answer to a read".to_owned(),
            },
            Call::NotSent(reason) | Call::Lost(reason) => Completion::Fail { reason },
        };
        workload.complete(process, completion);
    }

    /// One logical write with its retries.
    async fn write(&mut self, auction: AuctionId, op: Op) {
        let with_key = self.rng.percent(75);
        let idempotency_key = with_key.then(|| format!("k{}-{}", self.process, self.next_request));
        let mut request_id = self.request_id();
        for attempt in 0..WRITE_ATTEMPTS_MAX {
            let request = WriteRequest {
                request_id,
                idempotency_key: idempotency_key.clone(),
                op: op.clone(),
            };
            let unknown = self.write_once(auction, request, attempt == 0).await;
            if !unknown {
                return;
            }
            if idempotency_key.is_some() {
                request_id = self.request_id();
            }
        }
    }

    /// One logical write through the API, always with an idempotency key, with its retries.
    async fn api_write(&mut self, user: ApiUser, op: Op) {
        let request = WriteRequest {
            request_id: self.request_id(),
            idempotency_key: Some(format!("a{}-{}", self.process, self.next_request)),
            op,
        };
        for _ in 0..WRITE_ATTEMPTS_MAX {
            if !self.api_write_once(&user, request.clone()).await {
                return;
            }
        }
    }

    /// Sends one attempt; returns whether its outcome is unknown.
    async fn write_once(
        &mut self,
        auction: AuctionId,
        request: WriteRequest,
        first_attempt: bool,
    ) -> bool {
        let process = self.process;
        let workload = self.workload.clone();
        workload.invoke(process, Operation::write(request.clone()));
        let node = self.node();
        let write = ClientWrite {
            group: workload.shard_of(auction),
            request_id: request.request_id,
            idempotency_key: request.idempotency_key,
            op: request.op,
        };
        let request = ClientRequest::Write {
            write: Box::new(write),
            first_attempt,
        };
        let (completion, unknown) = match call(node, &request).await {
            Call::Answered(ClientReply::Write(Ok(response))) => {
                if let Ok(Outcome::Bid(bid)) = &response.result {
                    self.note_price(auction, Some(bid.current_price.to_string()));
                    workload.note_end(auction, bid.end_time);
                }
                let value = OkValue::Write {
                    result: response.result,
                    effective_ts: response.effective_ts,
                };
                (Completion::Ok(value), false)
            }
            Call::Answered(ClientReply::Write(Err(Refusal::NotProposed(reason))))
            | Call::NotSent(reason) => (Completion::Fail { reason }, false),
            Call::Answered(ClientReply::Write(Err(Refusal::Unknown(reason))))
            | Call::Lost(reason) => (
                Completion::Info {
                    reason,
                    proposed_ts: None,
                },
                true,
            ),
            Call::Answered(ClientReply::Read(_)) => (
                Completion::Info {
                    reason: "a read's answer to a write".to_owned(),
                    proposed_ts: None,
                },
                true,
            ),
        };
        workload.complete(process, completion);
        unknown
    }
}

/// Creates the hot auctions (retrying until each is acknowledged), then lets the clients go.
pub async fn run_setup(config: SimConfig, workload: Rc<Workload>) -> turmoil::Result {
    let process = config.clients + 1;
    let mut rng = SimRng::new(config.seed, 999);
    let deadline = u64::try_from(SimClock::elapsed_ms()).unwrap_or(0) + SETUP_MS_MAX;
    for index in 0..config.auctions {
        let new = short_auction(index, config.shards, &mut rng);
        let auction = new.auction_id;
        let listed = list(
            &config,
            &workload,
            process,
            &mut rng,
            new,
            deadline,
            u32::MAX,
        )
        .await;
        if !listed {
            return Err(format!("auction {auction} not created within {SETUP_MS_MAX} ms").into());
        }
    }
    let deadline_ms = i64::try_from(deadline).unwrap_or(i64::MAX);
    let users = register_users(config.nodes, &mut rng, deadline_ms).await?;
    *workload.api_users.borrow_mut() = users;
    workload.ready.set(true);
    Ok(())
}

/// The seller: lists a new short auction every [`RELIST_EVERY_MS`] while one can still end
/// before the clients stop, so that every auction of the run ends during the workload.
pub async fn run_seller(config: SimConfig, workload: Rc<Workload>) -> turmoil::Result {
    let process = config.clients + 2;
    let mut rng = SimRng::new(config.seed, 998);
    while !workload.ready.get() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let longest_ms = (SHORT_AUCTION_S.1 + 1) * 1_000;
    for index in config.auctions.. {
        tokio::time::sleep(Duration::from_millis(RELIST_EVERY_MS)).await;
        let now = u64::try_from(SimClock::elapsed_ms()).unwrap_or(u64::MAX);
        let stop = workload.stop_at_ms.get();
        if now.saturating_add(longest_ms + CLIENT_TIMEOUT_MS) >= stop {
            break;
        }
        let new = short_auction(index, config.shards, &mut rng);
        let deadline = now + CLIENT_TIMEOUT_MS * u64::from(LIST_ATTEMPTS_MAX);
        list(
            &config,
            &workload,
            process,
            &mut rng,
            new,
            deadline,
            LIST_ATTEMPTS_MAX,
        )
        .await;
    }
    Ok(())
}

/// The write that creates `new`, without an idempotency key: its request id is `prefix` plus
/// the low 32 bits of the auction id, so retries de-duplicate and kinds of creation differ.
fn creation(new: NewAuction, prefix: u128) -> WriteRequest {
    WriteRequest {
        request_id: RequestId(Uuid::from_u128(
            prefix + new.auction_id.0.as_u128() % 0x1_0000_0000,
        )),
        idempotency_key: None,
        op: Op::CreateAuction(new),
    }
}

/// The framed-protocol request of one attempt of `request` (to its auction's shard).
fn framed_write(workload: &Workload, request: &WriteRequest, first_attempt: bool) -> ClientRequest {
    let group = auction_of(&request.op).map_or(0, |auction| workload.shard_of(auction));
    ClientRequest::Write {
        write: Box::new(ClientWrite {
            group,
            request_id: request.request_id,
            idempotency_key: request.idempotency_key.clone(),
            op: request.op.clone(),
        }),
        first_attempt,
    }
}

/// Lists one auction (retrying with the same request id, so it is created at most once) until
/// it is acknowledged, `deadline` (simulated ms) passes or the attempts run out; an
/// acknowledged auction joins the workload. Returns whether it was acknowledged.
async fn list(
    config: &SimConfig,
    workload: &Workload,
    process: u64,
    rng: &mut SimRng,
    new: NewAuction,
    deadline: u64,
    attempts_max: u32,
) -> bool {
    let auction = new.auction_id;
    let request = creation(new, 0xc0de_0000_0000);
    let mut attempts = 0u32;
    // The last attempt's fate may be unknown: the auction may exist without the clients
    // knowing; the final state still holds it and every check covers it.
    while attempts < attempts_max {
        if u64::try_from(SimClock::elapsed_ms()).unwrap_or(u64::MAX) > deadline {
            return false;
        }
        workload.invoke(process, Operation::write(request.clone()));
        let node = rng.between(1, config.nodes);
        let call_request = framed_write(workload, &request, attempts == 0);
        attempts += 1;
        match call(node, &call_request).await {
            Call::Answered(ClientReply::Write(Ok(response))) => {
                let created = match &response.result {
                    Ok(Outcome::Auction(auction)) => Some(auction.end_time),
                    _ => None,
                };
                let value = OkValue::Write {
                    result: response.result,
                    effective_ts: response.effective_ts,
                };
                workload.complete(process, Completion::Ok(value));
                if let Some(end) = created {
                    workload.auctions.borrow_mut().push(auction);
                    workload.note_end(auction, end);
                }
                return created.is_some();
            }
            Call::NotSent(reason) => {
                workload.complete(process, Completion::Fail { reason });
            }
            other => {
                let reason = match other {
                    Call::Lost(reason) => reason,
                    _ => "refused".to_owned(),
                };
                workload.complete(
                    process,
                    Completion::Info {
                        reason,
                        proposed_ts: None,
                    },
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// Attempts of each probe write and read (each bounded by [`CLIENT_TIMEOUT_MS`]).
const PROBE_ATTEMPTS_MAX: u32 = 3;

/// After healing: through every node, lists one auction in every shard, then reads every one
/// of them through every node; all must succeed (recorded in the history, so the checks cover
/// them too). What failed is recorded as a problem.
pub async fn run_probe(config: SimConfig, workload: Rc<Workload>) -> turmoil::Result {
    let process = config.clients + 3;
    let shards = config.shards.max(1);
    let base = 100_000 * u64::from(shards);
    let mut probes = Vec::new();
    for node in 1..=config.nodes {
        for slot in 0..u64::from(shards) {
            let index = base + (node - 1) * u64::from(shards) + slot;
            let mut new =
                NewAuction::lasting(auction_id(index, shards), user(0), "probe", "1", 3_600);
            new.anti_snipe = None;
            if probe_write(&workload, process, node, new).await {
                probes.push(auction_id(index, shards));
            } else {
                workload.problem(format!(
                    "probe: listing through n{node} failed after healing"
                ));
            }
        }
    }
    for node in 1..=config.nodes {
        for auction in &probes {
            if !probe_read(&workload, process, node, *auction).await {
                workload.problem(format!(
                    "probe: reading {auction} through n{node} failed after healing"
                ));
            }
        }
    }
    Ok(())
}

async fn probe_write(workload: &Workload, process: u64, node: u64, new: NewAuction) -> bool {
    let request = creation(new, 0x960b_e000_0000);
    for attempt in 0..PROBE_ATTEMPTS_MAX {
        workload.invoke(process, Operation::write(request.clone()));
        let call_request = framed_write(workload, &request, attempt == 0);
        let completion = match call(node, &call_request).await {
            Call::Answered(ClientReply::Write(Ok(response))) => {
                let created = response.result.is_ok();
                workload.complete(
                    process,
                    Completion::Ok(OkValue::Write {
                        result: response.result,
                        effective_ts: response.effective_ts,
                    }),
                );
                return created;
            }
            Call::NotSent(reason) => Completion::Fail { reason },
            Call::Lost(reason)
            | Call::Answered(ClientReply::Write(Err(Refusal::Unknown(reason)))) => {
                Completion::Info {
                    reason,
                    proposed_ts: None,
                }
            }
            Call::Answered(other) => Completion::Info {
                reason: format!("unexpected answer {other:?}"),
                proposed_ts: None,
            },
        };
        workload.complete(process, completion);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

async fn probe_read(workload: &Workload, process: u64, node: u64, auction: AuctionId) -> bool {
    for _ in 0..PROBE_ATTEMPTS_MAX {
        workload.invoke(
            process,
            Operation::Read {
                auction_id: auction,
            },
        );
        let request = ClientRequest::Read {
            group: workload.shard_of(auction),
            auction_id: auction,
        };
        let reply = call(node, &request).await;
        let completion = match reply {
            Call::Answered(ClientReply::Read(Ok(observed))) => {
                let found = observed.is_some();
                workload.complete(process, Completion::Ok(OkValue::Read { auction: observed }));
                return found;
            }
            Call::Answered(other) => Completion::Fail {
                reason: format!("{other:?}"),
            },
            Call::NotSent(reason) | Call::Lost(reason) => Completion::Fail { reason },
        };
        workload.complete(process, completion);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}
