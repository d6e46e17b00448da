//! One keyed GCRA limit (`governor`): a quota per minute with a burst of the same size.
//!
//! Keys that are back to a fresh state are dropped every [`RETAIN_EVERY_CHECKS`] checks, so
//! memory stays bounded by the keys active within a minute. It reads the monotonic clock of
//! this process; nothing here is shared with other nodes.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

/// How often (in checks) stale keys are dropped.
pub const RETAIN_EVERY_CHECKS: u64 = 4_096;

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

pub struct Limit<K: Hash + Eq + Clone> {
    limiter: Keyed<K>,
    checks: AtomicU64,
}

impl<K: Hash + Eq + Clone> Limit<K> {
    /// `None` for a quota of 0.
    pub fn new(per_minute: u32) -> Option<Limit<K>> {
        NonZeroU32::new(per_minute).map(|per_minute| Limit {
            limiter: RateLimiter::hashmap(Quota::per_minute(per_minute)),
            checks: AtomicU64::new(0),
        })
    }

    /// Takes one unit for `key`; when spent, how long until the next one.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        if self
            .checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(RETAIN_EVERY_CHECKS)
        {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// A wait in whole seconds, rounded up (for `Retry-After`).
pub fn seconds_up(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// A wait in milliseconds, rounded up, saturating.
pub fn millis_up(wait: Duration) -> u64 {
    let millis = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
    millis.saturating_add(u64::from(!wait.subsec_nanos().is_multiple_of(1_000_000)))
}
