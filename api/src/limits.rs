//! Rate limits (GCRA, `governor`): bids per user and requests per client IP, each a quota per
//! minute with a burst of the same size; 0 disables a limit. A refusal is `429 RATE_LIMITED`
//! with `retryAfter` and a `Retry-After` header.
//!
//! The limits are per node: a client spreading requests over N nodes gets up to N times the
//! quota (a cluster-wide limit would cost a Raft round trip per request). Keys that are back
//! to a fresh state are dropped every [`RETAIN_EVERY_CHECKS`] checks, so memory stays bounded
//! by the clients active within a minute. The per-IP limit sees the TCP peer; behind a proxy
//! that is the proxy (forwarded headers are not trusted yet).
//!
//! Defaults are the production ones (10 bids per minute per user); the local dev cluster and
//! the tests raise them explicitly.

use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use auction_raft::host::NodeStorage;
use auction_statemachine::UserId;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::error::{ApiError, ApiResult};
use crate::SharedApp;

/// How often (in checks) stale keys are dropped.
pub const RETAIN_EVERY_CHECKS: u64 = 4_096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Bids, proxy bids and purchases per user per minute (0: unlimited).
    pub bids_per_minute_per_user: u32,
    /// Requests per client IP per minute (0: unlimited); health checks are exempt.
    pub requests_per_minute_per_ip: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            bids_per_minute_per_user: 10,
            requests_per_minute_per_ip: 1_200,
        }
    }
}

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

struct Limit<K: Hash + Eq + Clone> {
    limiter: Keyed<K>,
    checks: AtomicU64,
}

impl<K: Hash + Eq + Clone> Limit<K> {
    fn new(per_minute: u32) -> Option<Limit<K>> {
        NonZeroU32::new(per_minute).map(|per_minute| Limit {
            limiter: RateLimiter::hashmap(Quota::per_minute(per_minute)),
            checks: AtomicU64::new(0),
        })
    }

    fn check(&self, key: &K, what: &str) -> ApiResult<()> {
        if self
            .checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(RETAIN_EVERY_CHECKS)
        {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                format!("too many {what}; slow down"),
            )
            .retry_after(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
        })
    }
}

/// The limiters of one node.
pub struct RateLimits {
    bids: Option<Limit<UserId>>,
    requests: Option<Limit<IpAddr>>,
}

impl RateLimits {
    pub fn new(config: RateLimitConfig) -> RateLimits {
        RateLimits {
            bids: Limit::new(config.bids_per_minute_per_user),
            requests: Limit::new(config.requests_per_minute_per_ip),
        }
    }

    pub fn check_bid(&self, user: UserId) -> ApiResult<()> {
        self.bids
            .as_ref()
            .map_or(Ok(()), |limit| limit.check(&user, "bids"))
    }

    pub fn check_ip(&self, ip: IpAddr) -> ApiResult<()> {
        self.requests
            .as_ref()
            .map_or(Ok(()), |limit| limit.check(&ip, "requests"))
    }
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
    fn the_eleventh_bid_in_a_minute_is_refused_with_a_retry_after() {
        let limits = RateLimits::new(RateLimitConfig::default());
        let user = UserId(uuid::Uuid::from_u128(7));
        for n in 0..10 {
            assert!(
                limits.check_bid(user).is_ok(),
                "bid {n} is within the quota"
            );
        }
        let refused = limits.check_bid(user).expect_err("over the quota");
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.code, "RATE_LIMITED");
        let seconds = refused.retry_after_seconds.expect("retry after");
        assert!((1..=6).contains(&seconds), "{seconds}");
        let other = UserId(uuid::Uuid::from_u128(8));
        assert!(limits.check_bid(other).is_ok(), "limits are per user");
        let unlimited = RateLimits::new(RateLimitConfig {
            bids_per_minute_per_user: 0,
            requests_per_minute_per_ip: 0,
        });
        for _ in 0..100 {
            assert!(unlimited.check_bid(user).is_ok());
        }
    }
}
