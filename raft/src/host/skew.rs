//! The `clock_skew_ms_max` rule: a leader stamps a command with its wall clock *bounded by the
//! majority's view of time*, so a leader whose clock runs ahead cannot close auctions early (or
//! refuse bids as ended) and one whose clock runs behind cannot keep them open late.
//!
//! The view comes for free: every vote, pre-vote and `AppendEntries` reply carries the replying
//! node's clock ([`crate::network::clock_sample`]). [`ClockView`] keeps, per peer, the offset
//! of the peer's clock from this node's monotonic clock, taken at the midpoint of the RPC's
//! round trip (error at most half the round trip; replies slower than
//! [`CLOCK_SAMPLE_RTT_MS_MAX`] are not used). An offset stays valid until the peer's clock
//! jumps or drifts, and a leader hears each reachable follower every heartbeat interval.
//!
//! [`ClockView::bounded_now_ms`] for a group with voters `V` (a majority of `V` is `m`): the
//! readings are this node's own clock and `offset + monotonic now` for every other voter heard
//! from, sorted, `k` of them. The view is the interval `[low, high]` with `low` the `m`-th
//! largest reading (at least `m` readings are at or above it) and `high` the `m`-th smallest
//! (at least `m` are at or below it): with all three of three voters heard it is the median,
//! with two of three it spans both. The stamp is this node's clock clamped to
//! `[low - clock_skew_ms_max, high + clock_skew_ms_max]`. When the interval is wider than
//! `2 × clock_skew_ms_max` (the readings heard do not agree on the time, e.g. two of three
//! voters heard and one of them is off) or fewer than `m` readings are known (a node that has
//! not heard a majority; a leader has: the votes that elected it carry clocks), there is no
//! majority view and the write is **refused** (`Unavailable`: nothing entered the log) until
//! the node hears enough clocks. If a majority of the voters' clocks are within
//! `clock_skew_ms_max` of true time, every stamp is within `2 × clock_skew_ms_max` plus half a
//! round trip of it (within `clock_skew_ms_max` plus half a round trip when the correct clocks
//! agree exactly, as in the simulator).
//!
//! Nothing is added to the write path besides one short lock and a sort of a handful of
//! numbers per proposed batch: no RPC, no wait.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::time::Instant;

use super::Clock;
use crate::network::PeerClockSink;
use crate::NodeId;

/// The default of `HostConfig::clock_skew_ms_max`.
pub const CLOCK_SKEW_MS_MAX_DEFAULT: i64 = 500;
/// Replies slower than this round trip are not used as clock readings: the reading's error is
/// up to half the round trip.
pub const CLOCK_SAMPLE_RTT_MS_MAX: i64 = 100;

/// This node's clock, and what it has heard of its peers' clocks.
pub struct ClockView {
    clock: Arc<dyn Clock>,
    /// The monotonic instant offsets are measured from.
    origin: Instant,
    /// Per peer: its clock minus this node's monotonic milliseconds since `origin`.
    offsets: Mutex<BTreeMap<NodeId, i64>>,
    skew_ms_max: i64,
}

impl ClockView {
    pub fn new(clock: Arc<dyn Clock>, skew_ms_max: i64) -> ClockView {
        ClockView {
            clock,
            origin: Instant::now(),
            offsets: Mutex::new(BTreeMap::new()),
            skew_ms_max,
        }
    }

    fn monotonic_ms(&self, at: Instant) -> i64 {
        i64::try_from(at.saturating_duration_since(self.origin).as_millis()).unwrap_or(i64::MAX)
    }

    /// This node's clock, unbounded (what its replies carry and the API shows).
    pub fn own_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The time a leader of a group with `voters` stamps a command with, or `None` when the
    /// clocks it has heard give no majority view of time (see the module docs).
    pub fn bounded_now_ms(
        &self,
        self_id: NodeId,
        voters: impl Iterator<Item = NodeId>,
    ) -> Option<i64> {
        let own = self.own_ms();
        if super::planted::unbounded_stamps() {
            return Some(own);
        }
        let now = self.monotonic_ms(Instant::now());
        let offsets = self.offsets.lock().unwrap_or_else(PoisonError::into_inner);
        let mut voter_count = 0usize;
        let mut readings: Vec<i64> = Vec::new();
        for voter in voters {
            voter_count += 1;
            if voter == self_id {
                readings.push(own);
            } else if let Some(offset) = offsets.get(&voter) {
                readings.push(offset.saturating_add(now));
            }
        }
        drop(offsets);
        let stamp = bound(own, &mut readings, voter_count, self.skew_ms_max);
        tracing::trace!(node = self_id, own, ?readings, stamp, "bounded stamp");
        stamp
    }
}

/// `own` clamped to the majority's view of `readings` (of `voter_count` voters) widened by
/// `skew_ms_max`; `None` without a majority view (see the module docs).
fn bound(own: i64, readings: &mut [i64], voter_count: usize, skew_ms_max: i64) -> Option<i64> {
    let majority = voter_count / 2 + 1;
    let count = readings.len();
    if count < majority {
        return None;
    }
    readings.sort_unstable();
    let low = readings[count - majority];
    let high = readings[majority - 1];
    if high.saturating_sub(low) > skew_ms_max.saturating_mul(2) {
        return None;
    }
    Some(own.clamp(
        low.min(high).saturating_sub(skew_ms_max),
        high.max(low).saturating_add(skew_ms_max),
    ))
}

impl PeerClockSink<NodeId> for ClockView {
    fn now_ms(&self) -> i64 {
        self.own_ms()
    }

    fn observe(&self, peer: &NodeId, peer_clock_ms: i64, sent: Instant, received: Instant) {
        let round_trip = received.saturating_duration_since(sent);
        let round_trip_ms = i64::try_from(round_trip.as_millis()).unwrap_or(i64::MAX);
        if round_trip_ms > CLOCK_SAMPLE_RTT_MS_MAX {
            return;
        }
        let midpoint = sent + round_trip / 2;
        let offset = peer_clock_ms.saturating_sub(self.monotonic_ms(midpoint));
        self.offsets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(*peer, offset);
    }
}

#[cfg(test)]
mod tests {
    use super::bound;

    #[test]
    fn a_clock_ahead_of_the_majority_is_clamped_to_the_bound() {
        // Three voters: this node 3 s ahead, the others on time.
        assert_eq!(
            bound(13_000, &mut [13_000, 10_000, 10_010], 3, 500),
            Some(10_510)
        );
        // Behind by 3 s: raised to the bound below the view.
        assert_eq!(
            bound(7_000, &mut [7_000, 10_000, 10_010], 3, 500),
            Some(9_500)
        );
        // Within the bound: unchanged.
        assert_eq!(
            bound(10_200, &mut [10_200, 10_000, 10_010], 3, 500),
            Some(10_200)
        );
    }

    #[test]
    fn a_minority_of_wrong_clocks_does_not_move_the_view() {
        // Five voters, two of them (not this one) 5 s ahead.
        assert_eq!(
            bound(10_000, &mut [10_000, 15_000, 15_000, 10_005, 9_990], 5, 500),
            Some(10_000)
        );
        // Four of five heard, one of them off: the two middle readings agree.
        assert_eq!(
            bound(10_000, &mut [10_000, 15_000, 10_005, 9_990], 5, 500),
            Some(10_000)
        );
    }

    #[test]
    fn two_of_three_clocks_that_disagree_give_no_view() {
        // Which of the two is right cannot be told without the third: refuse.
        assert_eq!(bound(10_000, &mut [10_000, 12_100], 3, 500), None);
        assert_eq!(bound(12_100, &mut [10_000, 12_100], 3, 500), None);
        // Two that agree within the bound: the own clock stands.
        assert_eq!(bound(10_000, &mut [10_000, 10_300], 3, 500), Some(10_000));
    }

    #[test]
    fn without_a_majority_of_readings_there_is_no_view() {
        assert_eq!(bound(13_000, &mut [13_000], 3, 500), None);
        assert_eq!(bound(13_000, &mut [13_000, 10_000], 5, 500), None);
        // A group of one: its own clock is the majority.
        assert_eq!(bound(13_000, &mut [13_000], 1, 500), Some(13_000));
    }
}
