//! When the operations of the measured phase start.
//!
//! Closed loop (the default, [`Stop`]): each client starts its next operation as soon as its
//! last one finished, until the deadline or the request budget; latency is measured from that
//! start. Under overload this shows as lower throughput, not as queueing delay.
//!
//! Open loop (`--rate N`, [`Schedule`]): operation `n` is meant to start at `n / N` seconds
//! after the phase began, whatever happened to the ones before; its latency is measured from
//! that intended start, so time spent waiting for a free client counts (no coordinated
//! omission). The clients take arrivals in order from the shared schedule: a free client
//! sleeps until its arrival is due, and when every client is busy the next arrival simply is
//! not taken yet, so `--clients` bounds the operations in flight and nothing queues. How late
//! each operation started against the schedule is reported. Arrivals due before the deadline
//! but not taken by it are reported as missed (they have no latency: the report says how many).
//!
//! Not here: sub-millisecond pacing. tokio's timer rounds a sleep up to its next millisecond
//! tick, so an on-time operation starts about 1 ms late; that shows in the lateness (its p50)
//! and is included in the latency, an upper bound rather than a flattering one. Nor randomised
//! (Poisson) arrivals.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

// tokio's clock (the same as std's outside tests), so that tests can pause and advance it.
use tokio::time::Instant;

/// The highest open-loop rate accepted.
pub const RATE_PER_SECOND_MAX: u64 = 1_000_000;
const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// When the closed loop stops: at the deadline, or when the request budget is spent.
pub struct Stop {
    deadline: Instant,
    budget: Option<u64>,
    issued: AtomicU64,
}

impl Stop {
    pub fn new(deadline: Instant, budget: Option<u64>) -> Stop {
        Stop {
            deadline,
            budget,
            issued: AtomicU64::new(0),
        }
    }

    /// Whether one more operation may start (and if so, it is counted against the budget).
    pub fn take(&self) -> bool {
        if Instant::now() >= self.deadline {
            return false;
        }
        self.budget
            .is_none_or(|budget| self.issued.fetch_add(1, Ordering::Relaxed) < budget)
    }
}

/// Arrival `index`'s offset from the start of the phase: `index / rate` seconds, rounded down
/// to a nanosecond.
pub fn arrival_offset(index: u64, rate_per_second: u64) -> Duration {
    let rate = rate_per_second.max(1);
    // Whole seconds, then the rest: below one second, so the nanoseconds fit a u32.
    let rest_nanos = u128::from(index % rate) * NANOS_PER_SECOND / u128::from(rate);
    Duration::new(index / rate, u32::try_from(rest_nanos).unwrap_or(u32::MAX))
}

/// How many arrivals are due before `run_for` has passed (at most `budget`): the `n` with
/// `n / rate < run_for`, that is `ceil(run_for * rate)`.
pub fn arrivals_before(run_for: Duration, rate_per_second: u64, budget: Option<u64>) -> u64 {
    let due = (run_for.as_nanos() * u128::from(rate_per_second)).div_ceil(NANOS_PER_SECOND);
    let due = u64::try_from(due).unwrap_or(u64::MAX);
    budget.map_or(due, |budget| budget.min(due))
}

/// The open loop's arrivals, shared by the clients.
pub struct Schedule {
    started: Instant,
    deadline: Instant,
    rate_per_second: u64,
    offered: u64,
    next: AtomicU64,
}

impl Schedule {
    pub fn new(
        started: Instant,
        run_for: Duration,
        rate_per_second: u64,
        budget: Option<u64>,
    ) -> Schedule {
        Schedule {
            started,
            deadline: started + run_for,
            rate_per_second: rate_per_second.max(1),
            offered: arrivals_before(run_for, rate_per_second.max(1), budget),
            next: AtomicU64::new(0),
        }
    }

    /// The intended start of the next arrival not yet taken, if it is due before the deadline
    /// and the deadline has not passed at `now`.
    pub fn take(&self, now: Instant) -> Option<Instant> {
        if now >= self.deadline {
            return None;
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        (index < self.offered).then(|| self.started + arrival_offset(index, self.rate_per_second))
    }

    /// Arrivals due before the deadline (or the budget).
    pub fn offered(&self) -> u64 {
        self.offered
    }

    /// Arrivals taken so far (each became an operation).
    pub fn started(&self) -> u64 {
        self.next.load(Ordering::Relaxed).min(self.offered)
    }
}

/// Closed or open loop.
pub enum Pace {
    Closed(Stop),
    Open(Schedule),
}

/// The start of one operation.
#[derive(Debug, Clone, Copy)]
pub struct Start {
    /// Its latency counts from here.
    pub intended: Instant,
    /// How much later it really started (open loop only).
    pub late: Option<Duration>,
}

impl Pace {
    /// Waits until the next operation is due; `None` when the run is over.
    pub async fn next(&self) -> Option<Start> {
        match self {
            Pace::Closed(stop) => stop.take().then(|| Start {
                intended: Instant::now(),
                late: None,
            }),
            Pace::Open(schedule) => {
                let intended = schedule.take(Instant::now())?;
                tokio::time::sleep_until(intended).await;
                Some(Start {
                    intended,
                    late: Some(Instant::now().saturating_duration_since(intended)),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_stops_the_closed_loop() {
        let stop = Stop::new(Instant::now() + Duration::from_secs(60), Some(3));
        assert_eq!((0..10).filter(|_| stop.take()).count(), 3);
        let past = Stop::new(Instant::now(), None);
        assert!(!past.take());
    }

    #[test]
    fn arrivals_are_evenly_spaced_from_the_start() {
        assert_eq!(arrival_offset(0, 3), Duration::ZERO);
        assert_eq!(arrival_offset(1, 3), Duration::from_nanos(333_333_333));
        assert_eq!(arrival_offset(2, 3), Duration::from_nanos(666_666_666));
        assert_eq!(arrival_offset(3, 3), Duration::from_secs(1));
        assert_eq!(arrival_offset(7_000, 1_000), Duration::from_secs(7));
        assert_eq!(
            arrival_offset(u64::MAX, 1),
            Duration::from_secs(u64::MAX),
            "no overflow"
        );
        assert_eq!(
            arrival_offset(u64::MAX, 2),
            Duration::new(u64::MAX / 2, 500_000_000)
        );
    }

    #[test]
    fn the_offered_count_is_the_arrivals_before_the_deadline() {
        let second = Duration::from_secs(1);
        assert_eq!(arrivals_before(second, 3, None), 3, "at 0, 1/3 and 2/3 s");
        assert_eq!(arrivals_before(second, 1, None), 1, "only the one at 0");
        assert_eq!(arrivals_before(Duration::from_millis(1_001), 1, None), 2);
        assert_eq!(
            arrivals_before(Duration::from_secs(20), 2_500, None),
            50_000
        );
        assert_eq!(
            arrivals_before(Duration::from_secs(20), 2_500, Some(10)),
            10
        );
        for (run_for, rate) in [(second, 3), (Duration::from_millis(2_500), 7)] {
            let offered = arrivals_before(run_for, rate, None);
            assert!(arrival_offset(offered - 1, rate) < run_for);
            assert!(arrival_offset(offered, rate) >= run_for);
        }
    }

    #[test]
    fn the_schedule_hands_out_each_arrival_once_until_the_deadline() {
        let started = Instant::now();
        let schedule = Schedule::new(started, Duration::from_secs(1), 4, None);
        let taken: Vec<Duration> = std::iter::from_fn(|| schedule.take(started))
            .map(|intended| intended - started)
            .take(10)
            .collect();
        assert_eq!(
            taken,
            [0, 250, 500, 750].map(Duration::from_millis),
            "four arrivals in one second at 4/s"
        );
        assert_eq!((schedule.offered(), schedule.started()), (4, 4));
        let late = Schedule::new(started, Duration::from_secs(1), 4, None);
        assert!(late.take(started).is_some());
        assert!(late.take(started + Duration::from_secs(1)).is_none());
        assert_eq!((late.offered(), late.started()), (4, 1), "three missed");
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_loop_start_waits_for_its_time_and_counts_lateness() {
        let started = Instant::now();
        let pace = Pace::Open(Schedule::new(started, Duration::from_secs(1), 2, None));
        let first = pace.next().await.expect("the arrival at 0");
        assert_eq!(first.intended, started);
        // A busy client: the arrival at 500 ms is taken 700 ms in.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let second = pace.next().await.expect("the arrival at 500 ms");
        assert_eq!(second.intended, started + Duration::from_millis(500));
        let late = second.late.expect("open loop");
        assert!(
            late >= Duration::from_millis(200) && late < Duration::from_millis(210),
            "{late:?}"
        );
        assert!(pace.next().await.is_none(), "two arrivals in one second");
    }
}
