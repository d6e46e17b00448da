//! Rate limits: bids per user and login attempts per account, each held cluster-wide, and
//! requests per client IP, per node. A refusal is `429 RATE_LIMITED` with `retryAfter` and a
//! `Retry-After` header; a limit of 0 disables it and costs nothing (no RPC, no read).
//!
//! Cluster-wide without a Raft write: each key's budget (a user's bids, GCRA, a quota per
//! minute with a burst of the same size; an account's login attempts, [`login`]) is kept by
//! one node, its owner, chosen by rendezvous hashing among the meta group's current voters
//! (`auction_raft::host::budget`). The node that takes a request asks the owner with one
//! unary `TakeBudget` RPC over the mutually authenticated node-to-node channels, bounded by
//! [`RateLimitConfig::owner_ask_timeout_ms`] (250 ms) and by the asks in flight; when the owner
//! is this node the check is a local call. Nothing is replicated and no group is waited on, so
//! a bid still costs one Raft commit in its shard (plus, with limits on, one round trip to a
//! node). Login keys are a SHA-256 of the normalised email, so every node derives the same key
//! and no email travels or is kept in memory.
//!
//! When the owner cannot be asked in time (down, cut off), the asking node asks the key's
//! runner-up in the same ranking, which every node agrees on: a crashed owner leaves its keys
//! to one node, so a cluster with a node down still grants each user the whole quota. A node
//! that failed to answer is passed over for a second, so a dead owner costs one time-out per
//! second per asking node, not one per request. When neither answers, the asking node uses its
//! own fallback share, `quota / voters` (logins: `attempts_free / voters`, at least 1), so
//! nodes that lost both together grant at most one quota.
//!
//! The bound: while every node reaches a key's owner, the cluster grants exactly the quota
//! within a window, whatever nodes the client spreads its requests over. Each change of the
//! node that answers for a key (an owner that crashes, restarts empty or comes back, a
//! membership change, which moves about 1/N of the keys) can grant one more quota in that
//! window, since the new answerer starts the key afresh. Under a partition the owner, the
//! runner-up and the fallback shares may all grant at once: at most `2 * quota + k * quota / N`
//! in a window with k of N nodes reaching neither, so less than three times the quota, never N
//! times it.
//!
//! Idempotent retries: the bid limit is checked after the request's idempotency key is read,
//! and a request the limit would refuse that carries a key is answered from the key's record
//! when there is one ([`recorded`]), with a linearizable read of the shard (a lagging replica
//! could miss a record the leader has), so a retry after a `504 TIMEOUT` gets its outcome,
//! never `429`. A retry whose original is still in flight (no record yet) can still get 429.
//!
//! The per-IP limit sees the TCP peer; behind a proxy that is the proxy (forwarded headers are
//! not trusted yet) and it stays per node. Defaults are the production ones (10 bids per minute
//! per user; 5 login attempts, then waits from 1 s doubling to 15 min); the local dev cluster
//! and the tests raise them explicitly.
//!
//! Not done yet: an owner's budgets are in its memory only (see above); the fallback does not
//! report what it granted to the owner once the owner is back.

mod gcra;
pub mod login;
mod owner;
mod recorded;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use auction_raft::host::budget::{BudgetAsk, BudgetKind};
use auction_raft::host::{NodeStorage, RaftHost};
use auction_statemachine::UserId;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::SharedApp;

pub use gcra::RETAIN_EVERY_CHECKS;
pub use login::LoginBackoffConfig;
pub use owner::{Checked, Counters, Via};
pub use recorded::bid_or_recorded;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Bids, proxy bids and purchases per user per minute, cluster-wide (0: unlimited).
    pub bids_per_minute_per_user: u32,
    /// Requests per client IP per minute on each node (0: unlimited); health checks are exempt.
    pub requests_per_minute_per_ip: u32,
    /// Login attempts per account before the first wait, cluster-wide (0: no backoff).
    pub login_attempts_free: u32,
    /// The first wait after the free attempts; each further attempt doubles it.
    pub login_backoff_min_ms: u64,
    pub login_backoff_max_ms: u64,
    /// How long a node waits for a key's owner before it answers from its fallback share.
    pub owner_ask_timeout_ms: u64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            bids_per_minute_per_user: 10,
            requests_per_minute_per_ip: 1_200,
            login_attempts_free: 5,
            login_backoff_min_ms: 1_000,
            login_backoff_max_ms: 15 * 60 * 1_000,
            owner_ask_timeout_ms: 250,
        }
    }
}

impl RateLimitConfig {
    /// Every limit off (the simulator: its clients are not people, and the limits read the
    /// wall clock).
    pub fn disabled() -> RateLimitConfig {
        RateLimitConfig {
            bids_per_minute_per_user: 0,
            requests_per_minute_per_ip: 0,
            login_attempts_free: 0,
            ..RateLimitConfig::default()
        }
    }

    fn login(&self) -> LoginBackoffConfig {
        LoginBackoffConfig {
            attempts_free: self.login_attempts_free,
            backoff_min_ms: self.login_backoff_min_ms,
            backoff_max_ms: self.login_backoff_max_ms,
        }
    }
}

fn rate_limited(what: &str, wait: Duration) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "RATE_LIMITED",
        format!("too many {what}; slow down"),
    )
    .retry_after(gcra::seconds_up(wait).max(1))
}

/// A login attempt counted at its account's owner; hand it back when the login succeeds.
#[must_use = "a successful login clears its attempts with `RateLimits::login_succeeded`"]
pub struct LoginAttempt {
    /// `None` when the backoff is off.
    key: Option<Vec<u8>>,
}

/// The limits of one node and its share of the cluster-wide ones.
pub struct RateLimits {
    config: RateLimitConfig,
    requests: Option<gcra::Limit<IpAddr>>,
    fallback: owner::Fallback,
    counters: Counters,
    suspects: owner::Suspects,
    voters_seen: AtomicUsize,
}

impl RateLimits {
    /// The limits of the node of `host`; registers the budgets this node owns with the host,
    /// which serves them to the other nodes.
    pub fn new<S: NodeStorage>(config: RateLimitConfig, host: &RaftHost<S>) -> RateLimits {
        let keeper = owner::Keeper::new(config.bids_per_minute_per_user, config.login());
        if !host.register_budget_keeper(std::sync::Arc::new(keeper)) {
            tracing::warn!("a budget keeper was registered already; this one is not served");
        }
        RateLimits {
            config,
            requests: gcra::Limit::new(config.requests_per_minute_per_ip),
            fallback: owner::Fallback::new(config.bids_per_minute_per_user, config.login()),
            counters: Counters::default(),
            suspects: owner::Suspects::default(),
            voters_seen: AtomicUsize::new(0),
        }
    }

    fn asker(&self) -> owner::Asker<'_> {
        owner::Asker {
            fallback: &self.fallback,
            counters: &self.counters,
            suspects: &self.suspects,
            voters_seen: &self.voters_seen,
            timeout: Duration::from_millis(self.config.owner_ask_timeout_ms),
        }
    }

    /// Checks and counts asks and fallbacks, for `/metrics`.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn bids_limited(&self) -> bool {
        self.config.bids_per_minute_per_user > 0
    }

    /// Takes one bid of `user`'s cluster-wide budget.
    pub async fn check_bid<S: NodeStorage>(
        &self,
        host: &RaftHost<S>,
        user: UserId,
    ) -> ApiResult<()> {
        if !self.bids_limited() {
            return Ok(());
        }
        let ask = BudgetAsk {
            kind: BudgetKind::Bid,
            key: user.0.as_bytes().to_vec(),
        };
        owner::take(self.asker(), host, ask)
            .await
            .map_err(|wait| rate_limited("bids", wait))
    }

    /// Counts a login attempt on the account of `email` (before its password is checked);
    /// `429` while the account must wait.
    pub async fn begin_login<S: NodeStorage>(
        &self,
        host: &RaftHost<S>,
        email: &str,
    ) -> ApiResult<LoginAttempt> {
        if self.config.login_attempts_free == 0 {
            return Ok(LoginAttempt { key: None });
        }
        let key = login_key(email);
        let ask = BudgetAsk {
            kind: BudgetKind::LoginAttempt,
            key: key.clone(),
        };
        owner::take(self.asker(), host, ask)
            .await
            .map_err(|wait| rate_limited("login attempts for this account", wait))?;
        Ok(LoginAttempt { key: Some(key) })
    }

    /// The attempt's password was right: the account's attempts are forgotten.
    pub async fn login_succeeded<S: NodeStorage>(&self, host: &RaftHost<S>, attempt: LoginAttempt) {
        if let Some(key) = attempt.key {
            owner::clear_login(self.asker(), host, key).await;
        }
    }

    pub fn check_ip(&self, ip: IpAddr) -> ApiResult<()> {
        self.requests.as_ref().map_or(Ok(()), |limit| {
            limit
                .check(&ip)
                .map_err(|wait| rate_limited("requests", wait))
        })
    }
}

/// The budget key of an account: SHA-256 of the normalised email (of the trimmed, lowercased
/// text when it is not a valid email, which no account has), so the same on every node.
pub fn login_key(email: &str) -> Vec<u8> {
    let normalised = auction_statemachine::meta::normalize_email(email)
        .unwrap_or_else(|_| email.trim().to_lowercase());
    Sha256::digest(normalised.as_bytes()).to_vec()
}

/// Middleware: the per-IP limit (needs the server to provide `ConnectInfo<SocketAddr>`).
pub async fn per_ip<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    request: Request,
    next: Next,
) -> Response {
    let exempt = matches!(request.uri().path(), "/health" | "/ready" | "/metrics");
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    if let (false, Some(ip)) = (exempt, peer) {
        if let Err(refused) = app.limits.check_ip(ip) {
            return refused.into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_rate_limited_with_a_retry_after_of_at_least_a_second() {
        let refused = rate_limited("bids", Duration::from_millis(4_200));
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.code, "RATE_LIMITED");
        assert_eq!(refused.retry_after_seconds, Some(5), "rounded up");
        let soon = rate_limited("bids", Duration::from_millis(3));
        assert_eq!(soon.retry_after_seconds, Some(1), "never 0");
    }

    #[test]
    fn an_account_has_one_key_however_its_email_is_written() {
        assert_eq!(
            login_key(" Alice@Example.com"),
            login_key("alice@example.com")
        );
        assert_ne!(login_key("alice@example.com"), login_key("bob@example.com"));
        assert_eq!(login_key("not an email").len(), 32, "a fixed-size key");
        assert!(
            login_key("x").len() <= auction_raft::host::budget::BUDGET_KEY_BYTES_MAX,
            "fits a budget ask"
        );
    }

    #[test]
    fn the_defaults_are_the_production_limits_and_disabled_turns_every_one_off() {
        let production = RateLimitConfig::default();
        assert_eq!(production.bids_per_minute_per_user, 10);
        assert_eq!(production.login_attempts_free, 5);
        let off = RateLimitConfig::disabled();
        assert_eq!(
            (
                off.bids_per_minute_per_user,
                off.requests_per_minute_per_ip,
                off.login_attempts_free
            ),
            (0, 0, 0)
        );
    }
}
