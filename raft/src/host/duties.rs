//! The leader's duties, one task per group: when the earliest end time of an open auction has
//! passed, propose a `Tick` (which closes every due auction, bounded per tick, and purges
//! expired records); propose one at least every `housekeeping_interval_ms` anyway.
//!
//! Every node runs the task; only the node that leads the group acts. A tick is idempotent (it
//! closes only what is due), so two nodes briefly both believing they lead is harmless.
//!
//! Leader balance: every voter is a voter of every group, so without help one node could lead
//! them all and carry every write. Group `g` prefers the voter at position `g mod voters` (in
//! id order); its leader hands leadership over when that voter is caught up (within
//! [`BALANCE_LAG_ENTRIES_MAX`]), checked every [`BALANCE_INTERVAL_MS`].
//!
//! Not a duty but a watcher of the same shape: every node counts the leader changes it sees
//! per group ([`crate::stats::GroupStats::leader_changes`]) from openraft's server metrics,
//! which change only with votes, roles and leaders (not with every append).

use std::sync::{Arc, Weak};
use std::time::Duration;

use auction_statemachine::tick::CLOSE_BATCH_AUCTIONS_MAX;
use auction_statemachine::{query, Op, Outcome, RequestId};
use openraft::async_runtime::WatchReceiver;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::propose::propose_local_many;
use super::route::Routed;
use super::{ClientWrite, HostConfig, HostInner, NodeStorage};
use crate::GroupId;

/// Ticks one duty round may propose back to back while auctions remain due.
const TICKS_PER_ROUND_MAX: usize = 16;
/// How often a leader checks whether it should hand its group to the preferred voter.
pub const BALANCE_INTERVAL_MS: u64 = 2_000;
/// How far behind the preferred voter may be and still receive leadership.
pub const BALANCE_LAG_ENTRIES_MAX: u64 = 64;

pub(super) fn spawn<S: NodeStorage>(inner: &Arc<HostInner<S>>) -> Vec<JoinHandle<()>> {
    let mut duties: Vec<_> = inner
        .groups
        .keys()
        .map(|group| tokio::spawn(run(Arc::downgrade(inner), *group)))
        .collect();
    duties.push(tokio::spawn(keep_fresh(Arc::downgrade(inner))));
    duties.extend(
        inner
            .groups
            .keys()
            .map(|group| tokio::spawn(count_leader_changes(Arc::downgrade(inner), *group))),
    );
    duties
}

/// Counts every change of the group's known leader to another node until shutdown.
async fn count_leader_changes<S: NodeStorage>(host: Weak<HostInner<S>>, group: GroupId) {
    let watched = host.upgrade().and_then(|inner| {
        let metrics = inner.groups.get(&group)?.raft.server_metrics();
        let stats = inner.stats.group(group)?.clone();
        Some((metrics, stats, inner.shutdown.subscribe()))
    });
    let Some((mut metrics, stats, mut shutdown)) = watched else {
        return;
    };
    let mut last = None;
    loop {
        let leader = metrics.borrow_watched().current_leader;
        if leader.is_some() && leader != last {
            stats
                .leader_changes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            last = leader;
        }
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

/// The shutdown signal and an interval of `period_ms` (read from the host's configuration) for
/// one duty; `None` when the host is already gone.
fn schedule<S: NodeStorage>(
    host: &Weak<HostInner<S>>,
    period_ms: impl FnOnce(&HostConfig) -> u64,
) -> Option<(watch::Receiver<bool>, Interval)> {
    let inner = host.upgrade()?;
    let period = Duration::from_millis(period_ms(&inner.config).max(1));
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    Some((inner.shutdown.subscribe(), interval))
}

/// Waits for a duty's next round: the host, or `None` once it is gone or shutting down.
async fn next_round<S: NodeStorage>(
    host: &Weak<HostInner<S>>,
    interval: &mut Interval,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Arc<HostInner<S>>> {
    tokio::select! {
        _ = interval.tick() => {}
        _ = shutdown.changed() => return None,
    }
    let inner = host.upgrade()?;
    let stopping = *inner.shutdown.borrow();
    (!stopping).then_some(inner)
}

/// Keeps the groups that serve bounded-staleness reads fresh (see `read`): a read barrier
/// every `freshness_refresh_ms` for each group read that way since the last round.
async fn keep_fresh<S: NodeStorage>(host: Weak<HostInner<S>>) {
    let Some((mut shutdown, mut interval)) = schedule(&host, |config| config.freshness_refresh_ms)
    else {
        return;
    };
    while let Some(inner) = next_round(&host, &mut interval, &mut shutdown).await {
        tokio::select! {
            () = super::read::refresh(&inner) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn run<S: NodeStorage>(host: Weak<HostInner<S>>, group: GroupId) {
    let Some((mut shutdown, mut interval)) = schedule(&host, |config| config.tick_interval_ms)
    else {
        return;
    };
    let mut last_tick = Instant::now();
    let mut last_balance = Instant::now();
    while let Some(inner) = next_round(&host, &mut interval, &mut shutdown).await {
        if is_leader(&inner, group) && tick_is_due(&inner, group, last_tick) {
            propose_ticks(&inner, group).await;
            last_tick = Instant::now();
        }
        if is_leader(&inner, group)
            && last_balance.elapsed() >= Duration::from_millis(BALANCE_INTERVAL_MS)
        {
            maybe_hand_over(&inner, group).await;
            last_balance = Instant::now();
        }
    }
}

/// The voter that should lead `group`: position `group mod voters` in id order.
pub(super) fn preferred_leader(voters: &[u64], group: GroupId) -> Option<u64> {
    let count = u64::try_from(voters.len())
        .ok()
        .filter(|count| *count > 0)?;
    let position = usize::try_from(u64::from(group) % count).ok()?;
    voters.get(position).copied()
}

async fn maybe_hand_over<S: NodeStorage>(inner: &HostInner<S>, group_id: GroupId) {
    let Ok(group) = inner.group(group_id) else {
        return;
    };
    let metrics = group.raft.metrics().borrow_watched().clone();
    let voters: Vec<u64> = metrics.membership_config.membership().voter_ids().collect();
    let Some(preferred) = preferred_leader(&voters, group_id) else {
        return;
    };
    if preferred == inner.node_id() {
        return;
    }
    let last_index = metrics.last_log_index.unwrap_or(0);
    let matched = metrics
        .replication
        .as_ref()
        .and_then(|replication| replication.get(&preferred).cloned().flatten());
    let caught_up = matched
        .is_some_and(|matched| last_index.saturating_sub(matched.index) <= BALANCE_LAG_ENTRIES_MAX);
    if caught_up {
        tracing::info!(
            group = group_id,
            to = preferred,
            "handing leadership to the preferred voter"
        );
        if let Err(error) = group.raft.trigger().transfer_leader(preferred).await {
            tracing::warn!(group = group_id, %error, "leadership transfer failed");
        }
    }
}

fn is_leader<S: NodeStorage>(inner: &HostInner<S>, group: GroupId) -> bool {
    inner
        .group(group)
        .is_ok_and(|g| g.raft.metrics().borrow_watched().current_leader == Some(inner.node_id()))
}

fn tick_is_due<S: NodeStorage>(inner: &HostInner<S>, group: GroupId, last_tick: Instant) -> bool {
    let housekeeping = Duration::from_millis(inner.config.housekeeping_interval_ms);
    if last_tick.elapsed() >= housekeeping {
        return true;
    }
    let Ok(handle) = inner.group(group) else {
        return false;
    };
    // The time the tick would be stamped with: a clock ahead of the majority's does not make
    // ticks due early (they would close nothing), one behind does not make them late.
    match query::next_due_end_time(&handle.reader) {
        Ok(Some(end_time)) => inner.stamp_ms(group).is_some_and(|now| end_time <= now),
        Ok(None) => false,
        Err(error) => {
            tracing::warn!(%error, "cannot read the next end time");
            false
        }
    }
}

async fn propose_ticks<S: NodeStorage>(inner: &HostInner<S>, group: GroupId) {
    for _ in 0..TICKS_PER_ROUND_MAX {
        let write = ClientWrite {
            group,
            request_id: RequestId(uuid::Uuid::nil()),
            idempotency_key: None,
            op: Op::Tick,
        };
        let deadline = Instant::now() + inner.config.request_timeout();
        let answer = propose_local_many(inner, group, vec![&write], deadline)
            .await
            .pop();
        match answer {
            Some(Routed::Done(response)) => match response.result {
                Ok(Outcome::Ticked { closed, .. })
                    if closed as usize >= CLOSE_BATCH_AUCTIONS_MAX =>
                {
                    continue
                }
                _ => return,
            },
            Some(Routed::NotLeader(_)) | Some(Routed::Unreachable { .. }) | None => return,
            Some(Routed::Failed(error)) => {
                tracing::warn!(group, %error, "tick not applied");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::preferred_leader;

    #[test]
    fn groups_prefer_voters_round_robin() {
        let voters = [1, 2, 3];
        let preferred: Vec<_> = (0..9)
            .filter_map(|group| preferred_leader(&voters, group))
            .collect();
        assert_eq!(preferred, [1, 2, 3, 1, 2, 3, 1, 2, 3]);
        assert_eq!(preferred_leader(&[], 4), None);
    }
}
