//! Login backoff per account: a table of attempts, pure (the caller passes the time).
//!
//! An attempt counts when it starts, before the password is checked, so parallel guesses
//! cannot all slip in before the first failure is recorded; a successful login clears the
//! account. The first [`LoginBackoffConfig::attempts_free`] attempts go through at once; the
//! one that reaches the count starts a wait of `backoff_min_ms`, and each attempt after that
//! (once its wait is over) doubles the wait, up to `backoff_max_ms`. An attempt during a wait
//! is refused with the time left and does not count. An account with no attempt for
//! [`LOGIN_ATTEMPTS_FORGET_AFTER_MS`] starts over.
//!
//! The table holds at most [`LOGIN_ACCOUNTS_TRACKED_MAX`] accounts. When it is full, forgotten
//! accounts go first, then accounts not in a wait (an attacker flooding random emails evicts
//! its own entries, not a victim's wait); an account that still finds no room is not tracked.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Accounts one table tracks at most.
pub const LOGIN_ACCOUNTS_TRACKED_MAX: usize = 100_000;
/// An account with no attempt for this long starts over.
pub const LOGIN_ATTEMPTS_FORGET_AFTER_MS: u64 = 60 * 60 * 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginBackoffConfig {
    /// Attempts before the first wait (0: no backoff).
    pub attempts_free: u32,
    pub backoff_min_ms: u64,
    pub backoff_max_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct Account {
    attempts: u32,
    last_at: Instant,
    wait_until: Option<Instant>,
}

/// The attempts of the accounts one node keeps.
pub struct LoginTable {
    config: LoginBackoffConfig,
    accounts: HashMap<Vec<u8>, Account>,
}

impl LoginTable {
    pub fn new(config: LoginBackoffConfig) -> LoginTable {
        LoginTable {
            config,
            accounts: HashMap::new(),
        }
    }

    /// Counts an attempt on `key` at `now`; `Err(wait)` while the account must wait.
    pub fn attempt(&mut self, key: &[u8], now: Instant) -> Result<(), Duration> {
        let forget = Duration::from_millis(LOGIN_ATTEMPTS_FORGET_AFTER_MS);
        if let Some(account) = self.accounts.get_mut(key) {
            if now.saturating_duration_since(account.last_at) > forget {
                account.attempts = 0;
                account.wait_until = None;
            }
            if let Some(until) = account.wait_until.filter(|until| *until > now) {
                return Err(until - now);
            }
            account.attempts = account.attempts.saturating_add(1);
            account.last_at = now;
            account.wait_until = wait_after(&self.config, account.attempts).map(|wait| now + wait);
            return Ok(());
        }
        if self.make_room(now) {
            let account = Account {
                attempts: 1,
                last_at: now,
                wait_until: wait_after(&self.config, 1).map(|wait| now + wait),
            };
            self.accounts.insert(key.to_vec(), account);
        } else {
            tracing::warn!("the login backoff table is full; an account is not tracked");
        }
        Ok(())
    }

    /// A successful login: the account starts over.
    pub fn clear(&mut self, key: &[u8]) {
        self.accounts.remove(key);
    }

    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// Whether one more account fits, after evicting what may go.
    fn make_room(&mut self, now: Instant) -> bool {
        if self.accounts.len() < LOGIN_ACCOUNTS_TRACKED_MAX {
            return true;
        }
        let forget = Duration::from_millis(LOGIN_ATTEMPTS_FORGET_AFTER_MS);
        self.accounts
            .retain(|_, account| now.saturating_duration_since(account.last_at) <= forget);
        if self.accounts.len() >= LOGIN_ACCOUNTS_TRACKED_MAX {
            self.accounts
                .retain(|_, account| account.wait_until.is_some_and(|until| until > now));
        }
        self.accounts.len() < LOGIN_ACCOUNTS_TRACKED_MAX
    }
}

/// The wait that follows the `attempts`-th attempt: none before the free ones are used up, then
/// `backoff_min_ms` doubling per attempt, at most `backoff_max_ms`.
pub fn wait_after(config: &LoginBackoffConfig, attempts: u32) -> Option<Duration> {
    if config.attempts_free == 0 || attempts < config.attempts_free {
        return None;
    }
    let doublings = (attempts - config.attempts_free).min(63);
    let wait_ms = config
        .backoff_min_ms
        .saturating_mul(1u64 << doublings)
        .min(config.backoff_max_ms.max(config.backoff_min_ms));
    Some(Duration::from_millis(wait_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: LoginBackoffConfig = LoginBackoffConfig {
        attempts_free: 5,
        backoff_min_ms: 1_000,
        backoff_max_ms: 8_000,
    };

    fn seconds(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn five_attempts_go_through_then_the_waits_double_up_to_the_maximum() {
        let mut table = LoginTable::new(CONFIG);
        let start = Instant::now();
        for n in 1..=5 {
            assert_eq!(
                table.attempt(b"alice", start),
                Ok(()),
                "attempt {n} is free"
            );
        }
        assert_eq!(
            table.attempt(b"alice", start),
            Err(seconds(1)),
            "then a wait"
        );
        assert_eq!(table.attempt(b"bob", start), Ok(()), "per account");
        let mut now = start + seconds(1);
        for expected in [2, 4, 8, 8] {
            assert_eq!(table.attempt(b"alice", now), Ok(()), "after the wait");
            assert_eq!(
                table.attempt(b"alice", now),
                Err(seconds(expected)),
                "the next wait"
            );
            now += seconds(expected);
        }
    }

    #[test]
    fn a_refused_attempt_does_not_count_and_a_success_starts_over() {
        let mut table = LoginTable::new(CONFIG);
        let start = Instant::now();
        for _ in 1..=5 {
            table.attempt(b"alice", start).expect("free");
        }
        for _ in 0..10 {
            assert!(table.attempt(b"alice", start).is_err());
        }
        let after = start + seconds(1);
        assert_eq!(table.attempt(b"alice", after), Ok(()));
        assert_eq!(
            table.attempt(b"alice", after),
            Err(seconds(2)),
            "the refused attempts did not double the wait"
        );
        table.clear(b"alice");
        for n in 1..=5 {
            assert_eq!(table.attempt(b"alice", after), Ok(()), "attempt {n} again");
        }
    }

    #[test]
    fn an_account_quiet_for_an_hour_starts_over() {
        let mut table = LoginTable::new(CONFIG);
        let start = Instant::now();
        for _ in 1..=5 {
            table.attempt(b"alice", start).expect("free");
        }
        let later = start + Duration::from_millis(LOGIN_ATTEMPTS_FORGET_AFTER_MS + 1);
        for n in 1..=5 {
            assert_eq!(table.attempt(b"alice", later), Ok(()), "attempt {n}");
        }
        assert!(table.attempt(b"alice", later).is_err());
    }

    #[test]
    fn no_backoff_when_disabled() {
        let config = LoginBackoffConfig {
            attempts_free: 0,
            ..CONFIG
        };
        assert_eq!(wait_after(&config, 1_000), None);
        assert_eq!(wait_after(&CONFIG, 4), None);
        assert_eq!(wait_after(&CONFIG, 5), Some(seconds(1)));
        assert_eq!(wait_after(&CONFIG, u32::MAX), Some(seconds(8)), "saturates");
    }

    #[test]
    fn a_full_table_keeps_the_accounts_that_wait() {
        let mut table = LoginTable::new(CONFIG);
        let start = Instant::now();
        for _ in 1..=5 {
            table.attempt(b"victim", start).expect("free");
        }
        let mut n = 0u32;
        while table.len() < LOGIN_ACCOUNTS_TRACKED_MAX {
            table.attempt(&n.to_be_bytes(), start).expect("free");
            n += 1;
        }
        table.attempt(b"newcomer", start).expect("free");
        assert!(table.len() <= LOGIN_ACCOUNTS_TRACKED_MAX, "bounded");
        assert!(
            table.attempt(b"victim", start).is_err(),
            "the waiting account survived the flood"
        );
    }
}
