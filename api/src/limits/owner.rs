//! The two sides of a cluster-wide budget: [`Keeper`], the budgets this node owns (registered
//! with the Raft host, which serves it to peers as `TakeBudget`), and [`take`], which asks a
//! key's owner, then (when the owner cannot be asked in time) the key's runner-up in the same
//! rendezvous ranking, and falls back to [`Fallback`] when neither answers. A node that failed
//! to answer is passed over for [`OWNER_SUSPECT_MS`], so a dead owner costs one time-out per
//! second, not one per request.
//!
//! The fallback is conservative: each node grants at most `quota / voters` on its own (login:
//! `attempts_free / voters` attempts, at least one), so nodes that all lost their owner never
//! grant more together than the owner would have. It does not know what the owner granted
//! meanwhile: see the module doc of [`super`] for what that does to the bound.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use auction_raft::host::budget::{
    BudgetAnswer, BudgetAsk, BudgetAskError, BudgetKeeper, BudgetKind, BudgetOwner,
};
use auction_raft::host::{NodeStorage, RaftHost};
use auction_raft::NodeId;

use super::gcra::{millis_up, Limit};
use super::login::{LoginBackoffConfig, LoginTable};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A std mutex: every critical section is a map update, never held across an await.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn answer(result: Result<(), Duration>) -> BudgetAnswer {
    match result {
        Ok(()) => BudgetAnswer::Granted,
        Err(wait) => BudgetAnswer::Refused {
            retry_after_ms: millis_up(wait),
        },
    }
}

/// The budgets of the keys this node owns, at the full cluster-wide quota.
pub struct Keeper {
    bids: Option<Limit<Vec<u8>>>,
    logins: Mutex<LoginTable>,
}

impl Keeper {
    pub fn new(bids_per_minute: u32, login: LoginBackoffConfig) -> Keeper {
        Keeper {
            bids: Limit::new(bids_per_minute),
            logins: Mutex::new(LoginTable::new(login)),
        }
    }
}

impl BudgetKeeper for Keeper {
    fn take(&self, ask: &BudgetAsk) -> BudgetAnswer {
        match ask.kind {
            BudgetKind::Bid => match &self.bids {
                Some(limit) => answer(limit.check(&ask.key)),
                None => BudgetAnswer::Granted,
            },
            BudgetKind::LoginAttempt => {
                answer(lock(&self.logins).attempt(&ask.key, Instant::now()))
            }
            BudgetKind::LoginSucceeded => {
                lock(&self.logins).clear(&ask.key);
                BudgetAnswer::Granted
            }
        }
    }
}

/// A node's share of a cluster-wide quota when it cannot ask the owner: never more than
/// `quota / voters`, so `voters` nodes together stay within the quota.
pub fn fallback_share(quota: u32, voters: usize) -> u32 {
    let voters = u32::try_from(voters.max(1)).unwrap_or(u32::MAX);
    quota / voters
}

/// A fallback bid limit and the number of voters its share was computed for (`None`: a share
/// of 0).
type SharedLimit = (usize, Option<Arc<Limit<Vec<u8>>>>);

/// This node's own conservative budgets, rebuilt when the number of voters changes.
pub struct Fallback {
    bids_per_minute: u32,
    login: LoginBackoffConfig,
    bids: Mutex<SharedLimit>,
    logins: Mutex<(usize, LoginTable)>,
}

impl Fallback {
    pub fn new(bids_per_minute: u32, login: LoginBackoffConfig) -> Fallback {
        Fallback {
            bids_per_minute,
            login,
            bids: Mutex::new((0, None)),
            logins: Mutex::new((0, LoginTable::new(login))),
        }
    }

    fn bid(&self, key: &[u8], voters: usize) -> Result<(), Duration> {
        let share = fallback_share(self.bids_per_minute, voters);
        let limit = {
            let mut bids = lock(&self.bids);
            if bids.0 != voters {
                *bids = (voters, Limit::new(share).map(Arc::new));
            }
            bids.1.clone()
        };
        match limit {
            Some(limit) => limit.check(&key.to_vec()),
            // A share of 0 (fewer bids than voters): nothing without the owner.
            None => Err(Duration::from_millis(
                60_000 / u64::from(self.bids_per_minute.max(1)),
            )),
        }
    }

    fn login_attempt(&self, key: &[u8], voters: usize) -> Result<(), Duration> {
        let mut logins = lock(&self.logins);
        if logins.0 != voters {
            let attempts_free = fallback_share(self.login.attempts_free, voters).max(1);
            let config = LoginBackoffConfig {
                attempts_free,
                ..self.login
            };
            *logins = (voters, LoginTable::new(config));
        }
        logins.1.attempt(key, Instant::now())
    }

    fn take(&self, ask: &BudgetAsk, voters: usize) -> Result<(), Duration> {
        match ask.kind {
            BudgetKind::Bid => self.bid(&ask.key, voters),
            BudgetKind::LoginAttempt => self.login_attempt(&ask.key, voters),
            BudgetKind::LoginSucceeded => {
                self.clear_login(&ask.key);
                Ok(())
            }
        }
    }

    fn clear_login(&self, key: &[u8]) {
        lock(&self.logins).1.clear(key);
    }
}

/// Owners asked per check at most: the key's owner, then its runner-up.
pub const OWNERS_ASKED_MAX: usize = 2;
/// How long a node that failed to answer an ask is passed over (asks go to the runner-up
/// meanwhile instead of waiting for the time-out each time).
pub const OWNER_SUSPECT_MS: u64 = 1_000;
/// Suspected nodes remembered at most (node ids come from the membership, so this is slack).
const SUSPECTS_MAX: usize = 64;

/// Nodes that recently failed to answer, until when they are passed over.
#[derive(Default)]
pub struct Suspects {
    until: Mutex<HashMap<NodeId, Instant>>,
}

impl Suspects {
    fn is_suspect(&self, node: NodeId, now: Instant) -> bool {
        lock(&self.until)
            .get(&node)
            .is_some_and(|until| *until > now)
    }

    fn suspect(&self, node: NodeId, now: Instant) {
        let mut until = lock(&self.until);
        if until.len() >= SUSPECTS_MAX {
            until.retain(|_, until| *until > now);
        }
        if until.len() < SUSPECTS_MAX {
            until.insert(node, now + Duration::from_millis(OWNER_SUSPECT_MS));
        }
    }

    fn clear(&self, node: NodeId) {
        lock(&self.until).remove(&node);
    }
}

/// How a check was answered, the `via` label of the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The key's owner (this node or a peer).
    Owner,
    /// The owner could not be asked; its runner-up answered.
    RunnerUp,
    /// Neither could be asked; this node's fallback share answered.
    Fallback,
}

impl Via {
    pub const ALL: [Via; 3] = [Via::Owner, Via::RunnerUp, Via::Fallback];

    pub fn label(self) -> &'static str {
        match self {
            Via::Owner => "owner",
            Via::RunnerUp => "runner_up",
            Via::Fallback => "fallback",
        }
    }
}

/// Which limit a check was for, the `limit` label of the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    Bid,
    Login,
}

impl Checked {
    pub const ALL: [Checked; 2] = [Checked::Bid, Checked::Login];

    pub fn label(self) -> &'static str {
        match self {
            Checked::Bid => "bid",
            Checked::Login => "login",
        }
    }

    fn of(kind: BudgetKind) -> Checked {
        match kind {
            BudgetKind::Bid => Checked::Bid,
            BudgetKind::LoginAttempt | BudgetKind::LoginSucceeded => Checked::Login,
        }
    }
}

/// Checks by limit and by who answered, refusals by limit, and asks sent to other nodes.
#[derive(Default)]
pub struct Counters {
    checks: [[AtomicU64; 3]; 2],
    refused: [AtomicU64; 2],
    peer_asks_answered: AtomicU64,
    peer_asks_failed: AtomicU64,
}

impl Counters {
    pub fn count(&self, checked: Checked, via: Via, refused: bool) {
        self.checks[checked as usize][via as usize].fetch_add(1, Ordering::Relaxed);
        if refused {
            self.refused[checked as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn count_peer_ask(&self, answered: bool) {
        let counter = if answered {
            &self.peer_asks_answered
        } else {
            &self.peer_asks_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn checks(&self, checked: Checked, via: Via) -> u64 {
        self.checks[checked as usize][via as usize].load(Ordering::Relaxed)
    }

    pub fn refused(&self, checked: Checked) -> u64 {
        self.refused[checked as usize].load(Ordering::Relaxed)
    }

    /// Asks sent to another node: (answered, failed).
    pub fn peer_asks(&self) -> (u64, u64) {
        (
            self.peer_asks_answered.load(Ordering::Relaxed),
            self.peer_asks_failed.load(Ordering::Relaxed),
        )
    }
}

/// What [`take`] needs of the limits.
pub struct Asker<'a> {
    pub fallback: &'a Fallback,
    pub counters: &'a Counters,
    pub suspects: &'a Suspects,
    /// The voters last seen, for a fallback that found no owner at all.
    pub voters_seen: &'a AtomicUsize,
    pub timeout: Duration,
}

impl Asker<'_> {
    /// One ask of one owner; `None` when it could not be asked (and is then suspected).
    async fn ask<S: NodeStorage>(
        &self,
        host: &RaftHost<S>,
        owner: &BudgetOwner,
        ask: &BudgetAsk,
    ) -> Option<BudgetAnswer> {
        let remote = owner.node != host.node_id();
        if remote && self.suspects.is_suspect(owner.node, Instant::now()) {
            return None;
        }
        let result = host.ask_budget(owner, ask, self.timeout).await;
        if remote {
            self.counters.count_peer_ask(result.is_ok());
        }
        match result {
            Ok(answer) => {
                self.suspects.clear(owner.node);
                Some(answer)
            }
            Err(error) => {
                if matches!(
                    error,
                    BudgetAskError::TimedOut(_) | BudgetAskError::Failed { .. }
                ) {
                    self.suspects.suspect(owner.node, Instant::now());
                }
                tracing::debug!(%error, node = owner.node, "a budget owner was not asked");
                None
            }
        }
    }
}

/// Takes one unit of `ask` from its owner, else its runner-up, else this node's fallback
/// share; `Err(wait)` when it is spent.
pub async fn take<S: NodeStorage>(
    asker: Asker<'_>,
    host: &RaftHost<S>,
    ask: BudgetAsk,
) -> Result<(), Duration> {
    let ranked = host.budget_owners(&ask.key);
    if let Some(owner) = ranked.first() {
        asker.voters_seen.store(owner.voters, Ordering::Relaxed);
    }
    let checked = Checked::of(ask.kind);
    for (rank, owner) in ranked.iter().take(OWNERS_ASKED_MAX).enumerate() {
        if let Some(answer) = asker.ask(host, owner, &ask).await {
            let via = if rank == 0 { Via::Owner } else { Via::RunnerUp };
            let refused = matches!(answer, BudgetAnswer::Refused { .. });
            asker.counters.count(checked, via, refused);
            return match answer {
                BudgetAnswer::Granted => Ok(()),
                BudgetAnswer::Refused { retry_after_ms } => {
                    Err(Duration::from_millis(retry_after_ms))
                }
            };
        }
    }
    let voters = asker.voters_seen.load(Ordering::Relaxed).max(1);
    let result = asker.fallback.take(&ask, voters);
    asker
        .counters
        .count(checked, Via::Fallback, result.is_err());
    result
}

/// Forgets a successful login's attempts wherever they may have been counted: the owner, the
/// runner-up and this node's fallback.
pub async fn clear_login<S: NodeStorage>(asker: Asker<'_>, host: &RaftHost<S>, key: Vec<u8>) {
    asker.fallback.clear_login(&key);
    let ask = BudgetAsk {
        kind: BudgetKind::LoginSucceeded,
        key,
    };
    let ranked = host.budget_owners(&ask.key);
    let clears = ranked
        .iter()
        .take(OWNERS_ASKED_MAX)
        .map(|owner| asker.ask(host, owner, &ask));
    futures_util::future::join_all(clears).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGIN: LoginBackoffConfig = LoginBackoffConfig {
        attempts_free: 5,
        backoff_min_ms: 1_000,
        backoff_max_ms: 60_000,
    };

    fn bid(key: &[u8]) -> BudgetAsk {
        BudgetAsk {
            kind: BudgetKind::Bid,
            key: key.to_vec(),
        }
    }

    #[test]
    fn the_owner_grants_the_quota_and_refuses_the_next_bid_with_a_wait() {
        let keeper = Keeper::new(10, LOGIN);
        for n in 0..10 {
            assert_eq!(
                keeper.take(&bid(b"alice")),
                BudgetAnswer::Granted,
                "bid {n}"
            );
        }
        let BudgetAnswer::Refused { retry_after_ms } = keeper.take(&bid(b"alice")) else {
            panic!("the eleventh bid is refused");
        };
        assert!((1..=6_000).contains(&retry_after_ms), "{retry_after_ms}");
        assert_eq!(keeper.take(&bid(b"bob")), BudgetAnswer::Granted, "per user");
        let unlimited = Keeper::new(0, LOGIN);
        for _ in 0..100 {
            assert_eq!(unlimited.take(&bid(b"alice")), BudgetAnswer::Granted);
        }
    }

    #[test]
    fn the_owner_backs_off_logins_and_a_success_clears_them() {
        let keeper = Keeper::new(10, LOGIN);
        let attempt = BudgetAsk {
            kind: BudgetKind::LoginAttempt,
            key: b"alice".to_vec(),
        };
        for n in 1..=5 {
            assert_eq!(keeper.take(&attempt), BudgetAnswer::Granted, "attempt {n}");
        }
        assert!(matches!(
            keeper.take(&attempt),
            BudgetAnswer::Refused { .. }
        ));
        let success = BudgetAsk {
            kind: BudgetKind::LoginSucceeded,
            key: b"alice".to_vec(),
        };
        assert_eq!(keeper.take(&success), BudgetAnswer::Granted);
        assert_eq!(keeper.take(&attempt), BudgetAnswer::Granted, "cleared");
    }

    #[test]
    fn fallback_shares_never_add_up_to_more_than_the_quota() {
        for quota in [1, 2, 5, 10, 11, 6_000] {
            for voters in 1..=7 {
                let share = fallback_share(quota, voters);
                assert!(
                    u64::from(share) * voters as u64 <= u64::from(quota),
                    "{voters} voters x {share} > {quota}"
                );
            }
        }
        assert_eq!(fallback_share(10, 3), 3);
        assert_eq!(fallback_share(10, 0), 10, "no voters known counts as one");
    }

    #[test]
    fn the_fallback_grants_a_share_per_node_and_follows_the_voters() {
        let fallback = Fallback::new(10, LOGIN);
        let granted = (0..10)
            .filter(|_| fallback.take(&bid(b"alice"), 3).is_ok())
            .count();
        assert_eq!(granted, 3, "10 / 3 voters");
        let granted = (0..10)
            .filter(|_| fallback.take(&bid(b"alice"), 2).is_ok())
            .count();
        assert_eq!(granted, 5, "a new share once the voters change");
        let tiny = Fallback::new(2, LOGIN);
        assert!(
            tiny.take(&bid(b"alice"), 3).is_err(),
            "a share of 0 grants nothing"
        );
        let attempt = BudgetAsk {
            kind: BudgetKind::LoginAttempt,
            key: b"alice".to_vec(),
        };
        assert!(fallback.take(&attempt, 3).is_ok(), "5 / 3 = 1 free attempt");
        assert!(fallback.take(&attempt, 3).is_err());
    }
}
