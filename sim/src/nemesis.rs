//! The nemesis: a fault schedule drawn from the run's seed, applied by the driver between
//! simulation steps.
//!
//! Faults come in *episodes* separated by healthy gaps. An episode is one fault or, with
//! probability [`OVERLAP_PERCENT`], two that overlap: the second starts while the first is on
//! (a crash during a partition, a removal during a hold), so at most [`ACTIVE_FAULTS_MAX`] faults are
//! ever active at once. Each fault lasts a drawn time; the schedule still reads like a story
//! ("12.4 s: isolate the leader of group 1 (n2) for 3.1 s", "13.0 s: crash n3 for 2.2 s (1
//! other active)"). The *kind* and timing of each fault are drawn up front; the victims that
//! depend on the cluster (the current leader) are resolved when the fault starts, from what the
//! simulation shows then, which is itself a function of the seed. Overlapping faults are
//! applied and healed through [`crate::fault_state`], which reference-counts what each fault
//! does to links and hosts, so healing one never undoes the other (a healed partition does not
//! reconnect a link another partition still cuts, nor restart a crashed node).
//!
//! Membership faults ([`Fault::Demote`], [`Fault::Remove`]) and leader transfers go through the
//! admin process ([`crate::admin`]): the driver hands it the action and goes on stepping, so
//! the change runs while the cluster keeps serving (and the next faults may find it half done).
//! An episode never holds two membership faults, nor a membership fault and a clock fault (with
//! a voter out, a wrong clock could be half of a 2-voter majority), so at most one node is out
//! of the voters at a time: a 3-node group keeps at least 2 voters (legal Raft: a majority of 2 is 2; the group is
//! then unavailable while either of them is down or cut off, which overlapping faults exercise)
//! and a 5-node group at least 4.
//!
//! Clock faults ([`Fault::Clock`]) set one node's wall clock seconds off or make it drift,
//! often a leader's; at most one clock is off at a time, so a majority's clocks stay right,
//! which is what the cluster's `clock_skew_ms_max` rule (and the checker's bound) assumes.
//!
//! A crash fault is, one time in ten, a whole-cluster crash ([`Fault::CrashAll`]): every node
//! loses what it had not synced, and the cluster must come back with every acknowledged write.
//!
//! Disk faults ([`Fault::SlowDisk`]) make one node's log sync slowly, often a leader's: its
//! followers then commit entries it has not synced. Half of them end with a *bounce*: the node
//! crashes with those writes in flight and restarts [`BOUNCE_MS`] later, inside an election
//! timeout, so it comes back before anyone else took over (the seed-42 scenario).
//!
//! Not done yet: client-to-node partitions; three or more faults at once; message loss,
//! duplication and reordering on node links (TCP under turmoil delivers in order or not at
//! all).

use auction_raft::GroupId;

use crate::admin::AdminAction;
use crate::config::{FaultKind, SimConfig};
use crate::rng::SimRng;

/// Faults start this long after the auctions exist, so the run has a healthy beginning.
pub const FIRST_FAULT_MS: u64 = 2_000;
/// Shortest and longest healthy gap between two faults.
pub const GAP_MS: (u64, u64) = (500, 3_000);
/// Shortest and longest fault.
pub const FAULT_MS: (u64, u64) = (500, 6_000);
/// Normal one-way message latency bounds of every link.
pub const LATENCY_MS: (u64, u64) = (1, 10);
/// The latency of a spiked link, at most.
pub const SPIKE_LATENCY_MS_MAX: u64 = 1_500;
/// Chance (percent) that a crash fault takes the whole cluster down at once.
pub const CRASH_ALL_PERCENT: u64 = 10;
/// Sync latencies a disk fault sets, in ms.
pub const SYNC_DELAY_MS: (u64, u64) = (20, 300);
/// How long a bounced node stays down, in ms: less than the cluster's shortest election
/// timeout (600 ms), so it restarts before its followers elect another leader.
pub const BOUNCE_MS: (u64, u64) = (50, 400);
/// Faults in one schedule at most.
pub const FAULTS_MAX: usize = 1_000;
/// Chance (percent) that an episode has a second, overlapping fault.
pub const OVERLAP_PERCENT: u64 = 40;
/// Faults active at once, at most.
pub const ACTIVE_FAULTS_MAX: usize = 2;

/// A fault as scheduled: what, when, for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    pub at_ms: u64,
    pub duration_ms: u64,
    pub kind: FaultKind,
    /// The draw that picks the fault's variant and victims.
    pub draw: u64,
}

/// The whole schedule of a run, in start order, relative to the start of the workload; no
/// more than [`ACTIVE_FAULTS_MAX`] faults overlap at any time.
pub fn schedule(config: &SimConfig) -> Vec<Scheduled> {
    let kinds = config.faults.kinds();
    let mut rng = SimRng::new(config.seed, 7);
    let mut faults = Vec::new();
    let mut at_ms = FIRST_FAULT_MS;
    while faults.len() + 1 < FAULTS_MAX && !kinds.is_empty() {
        let duration_ms = rng.between(FAULT_MS.0, FAULT_MS.1);
        if at_ms + duration_ms >= config.duration_ms {
            break;
        }
        let Some(kind) = rng.pick(&kinds).copied() else {
            break;
        };
        let first = Scheduled {
            at_ms,
            duration_ms,
            kind,
            draw: rng.next_u64(),
        };
        let mut episode_end_ms = at_ms + duration_ms;
        let second = rng
            .percent(OVERLAP_PERCENT)
            .then(|| overlapping(&first, &kinds, &mut rng))
            .flatten()
            .filter(|second| second.at_ms + second.duration_ms < config.duration_ms);
        faults.push(first);
        if let Some(second) = second {
            episode_end_ms = episode_end_ms.max(second.at_ms + second.duration_ms);
            faults.push(second);
        }
        at_ms = episode_end_ms + rng.between(GAP_MS.0, GAP_MS.1);
    }
    faults
}

/// Whether two faults may overlap: never two membership changes, and never a membership change
/// with a clock fault (a 3-node group left with 2 voters, one of them with a wrong clock, has
/// no majority of right clocks, which the `clock_skew_ms_max` rule and its check assume).
fn may_overlap(first: FaultKind, second: FaultKind) -> bool {
    let pair =
        |a: FaultKind, b: FaultKind| (first == a && second == b) || (first == b && second == a);
    !pair(FaultKind::Membership, FaultKind::Membership)
        && !pair(FaultKind::Membership, FaultKind::Clock)
}

/// A second fault that starts while `first` is on (see [`may_overlap`]).
fn overlapping(first: &Scheduled, kinds: &[FaultKind], rng: &mut SimRng) -> Option<Scheduled> {
    let allowed: Vec<FaultKind> = kinds
        .iter()
        .copied()
        .filter(|kind| may_overlap(first.kind, *kind))
        .collect();
    let at_ms = first.at_ms + rng.between(0, first.duration_ms.saturating_sub(1));
    let duration_ms = rng.between(FAULT_MS.0, FAULT_MS.1);
    let kind = rng.pick(&allowed).copied()?;
    Some(Scheduled {
        at_ms,
        duration_ms,
        kind,
        draw: rng.next_u64(),
    })
}

/// A fault with its victims resolved, as applied to the simulation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Cut every link between the two sides.
    Partition {
        label: String,
        cuts: Vec<(u64, u64)>,
    },
    /// Messages from `from` to `to` are dropped; the other way works.
    OneWay {
        from: u64,
        to: u64,
    },
    Crash {
        node: u64,
    },
    /// Every node crashes at once (a power cut) and restarts when healed: only what each had
    /// synced survives.
    CrashAll,
    Hold {
        a: u64,
        b: u64,
    },
    Latency {
        node: u64,
        latency_ms: u64,
    },
    /// Demote a voter to learner in every group (through the admin process).
    Demote {
        node: u64,
    },
    /// Remove a node from every group outright, not kept as a learner (through the admin
    /// process); healed by adding it back as a learner, letting it catch up and promoting it.
    Remove {
        node: u64,
    },
    /// Hand a group's leadership to another node (through the admin process).
    Transfer {
        group: GroupId,
        from: u64,
        to: u64,
    },
    /// Set `node`'s wall clock `offset_ms` off (a jump) and running `drift_ppm` fast or slow;
    /// healed by setting it right again (a jump back). Both zero: skipped, another clock is off.
    Clock {
        node: u64,
        offset_ms: i64,
        drift_ppm: i64,
    },
    /// Every sync of `node`'s log waits `sync_ms`; healed by syncing at once again, or, with
    /// `bounce_ms`, by crashing the node with its writes in flight and restarting it that long
    /// after.
    SlowDisk {
        node: u64,
        sync_ms: u64,
        bounce_ms: Option<u64>,
    },
}

impl Fault {
    pub fn describe(&self) -> String {
        match self {
            Fault::Partition { label, cuts } => format!("partition ({label}) cutting {cuts:?}"),
            Fault::OneWay { from, to } => format!("one-way partition n{from} -> n{to}"),
            Fault::Crash { node } => format!("crash n{node}"),
            Fault::CrashAll => "crash every node".to_owned(),
            Fault::SlowDisk {
                node,
                sync_ms,
                bounce_ms,
            } => match bounce_ms {
                Some(bounce_ms) => format!(
                    "slow disk on n{node} ({sync_ms} ms a sync), then a crash and a restart {bounce_ms} ms later"
                ),
                None => format!("slow disk on n{node} ({sync_ms} ms a sync)"),
            },
            Fault::Hold { a, b } => format!("hold messages between n{a} and n{b}"),
            Fault::Latency { node, latency_ms } => {
                format!("latency spike on n{node} up to {latency_ms} ms")
            }
            Fault::Demote { node } => format!("demote n{node} to learner in every group"),
            Fault::Remove { node } => format!("remove n{node} from every group"),
            Fault::Transfer { group, from, to } => {
                format!("transfer leadership of group {group} from n{from} to n{to}")
            }
            Fault::Clock {
                node,
                offset_ms: 0,
                drift_ppm: 0,
            } => format!("clock fault on n{node} skipped (another clock is off)"),
            Fault::Clock {
                node,
                offset_ms,
                drift_ppm,
            } => format!("clock of n{node} jumps {offset_ms:+} ms, drifts {drift_ppm:+} ppm"),
        }
    }

    /// The action the admin process takes to start this fault, if it is one of its own.
    pub fn admin_start(&self) -> Option<AdminAction> {
        match self {
            Fault::Demote { node } => Some(AdminAction::Demote { node: *node }),
            Fault::Remove { node } => Some(AdminAction::Remove { node: *node }),
            Fault::Transfer { group, from, to } => Some(AdminAction::TransferLeader {
                group: *group,
                from: *from,
                to: *to,
            }),
            _ => None,
        }
    }

    /// The action the admin process takes to heal this fault, if it is one of its own.
    pub fn admin_heal(&self) -> Option<AdminAction> {
        match self {
            Fault::Demote { node } | Fault::Remove { node } => {
                Some(AdminAction::Promote { node: *node })
            }
            _ => None,
        }
    }
}

/// Clock offsets a clock fault sets, in ms either way, and drifts, in parts per million.
pub const CLOCK_OFFSET_MS: (u64, u64) = (1_000, 5_000);
pub const CLOCK_DRIFT_PPM: (u64, u64) = (100_000, 500_000);

/// Every link between `side` and the other nodes.
fn isolate(node: u64, nodes: u64) -> Vec<(u64, u64)> {
    (1..=nodes)
        .filter(|other| *other != node)
        .map(|other| (node, other))
        .collect()
}

/// The nodes in a drawn order.
fn shuffled(nodes: u64, rng: &mut SimRng) -> Vec<u64> {
    let mut order: Vec<u64> = (1..=nodes).collect();
    for i in (1..order.len()).rev() {
        let j = usize::try_from(rng.below(i as u64 + 1)).unwrap_or(0);
        order.swap(i, j);
    }
    order
}

/// Resolves a scheduled fault; `leader` is a group's leader when one is known.
pub fn resolve(scheduled: &Scheduled, nodes: u64, leader: Option<(GroupId, u64)>) -> Fault {
    let mut rng = SimRng::new(scheduled.draw, 0);
    let order = shuffled(nodes, &mut rng);
    let first = order.first().copied().unwrap_or(1);
    let second = order.get(1).copied().unwrap_or(1);
    match scheduled.kind {
        // Half the time a leader: its unsynced appends, committed by the followers' copies,
        // are what a restart must not lead with (the seed-42 bug).
        FaultKind::Crash => match leader {
            _ if rng.percent(CRASH_ALL_PERCENT) => Fault::CrashAll,
            Some((_, leader)) if rng.percent(50) => Fault::Crash { node: leader },
            _ => Fault::Crash { node: first },
        },
        FaultKind::Hold => Fault::Hold {
            a: first,
            b: second,
        },
        FaultKind::Latency => Fault::Latency {
            node: first,
            latency_ms: rng.between(200, SPIKE_LATENCY_MS_MAX),
        },
        FaultKind::Partition => partition(&mut rng, &order, nodes, leader),
        FaultKind::Membership if rng.percent(50) => Fault::Demote { node: first },
        FaultKind::Membership => Fault::Remove { node: first },
        FaultKind::Clock => {
            // Half the time the clock of a leader, which stamps commands.
            let node = match leader {
                Some((_, leader)) if rng.percent(50) => leader,
                _ => first,
            };
            let sign = if rng.percent(50) { 1 } else { -1 };
            let (offset_ms, drift_ppm) = match rng.below(3) {
                0 => (rng.between(CLOCK_OFFSET_MS.0, CLOCK_OFFSET_MS.1), 0),
                1 => (0, rng.between(CLOCK_DRIFT_PPM.0, CLOCK_DRIFT_PPM.1)),
                _ => (
                    rng.between(CLOCK_OFFSET_MS.0, CLOCK_OFFSET_MS.1),
                    rng.between(CLOCK_DRIFT_PPM.0, CLOCK_DRIFT_PPM.1),
                ),
            };
            Fault::Clock {
                node,
                offset_ms: sign * i64::try_from(offset_ms).unwrap_or(0),
                drift_ppm: sign * i64::try_from(drift_ppm).unwrap_or(0),
            }
        }
        FaultKind::Disk => {
            // Mostly a leader's disk: its followers commit what it has not synced.
            let node = match leader {
                Some((_, leader)) if rng.percent(75) => leader,
                _ => first,
            };
            let sync_ms = rng.between(SYNC_DELAY_MS.0, SYNC_DELAY_MS.1);
            let bounce_ms = rng
                .percent(50)
                .then(|| rng.between(BOUNCE_MS.0, BOUNCE_MS.1));
            Fault::SlowDisk {
                node,
                sync_ms,
                bounce_ms,
            }
        }
        FaultKind::Transfer => {
            let (group, from) = leader.unwrap_or((1, first));
            let to = order
                .iter()
                .copied()
                .find(|node| *node != from)
                .unwrap_or(from);
            Fault::Transfer { group, from, to }
        }
    }
}

fn partition(rng: &mut SimRng, order: &[u64], nodes: u64, leader: Option<(GroupId, u64)>) -> Fault {
    let first = order.first().copied().unwrap_or(1);
    let second = order.get(1).copied().unwrap_or(1);
    match rng.below(5) {
        0 => Fault::Partition {
            label: format!("isolate n{first}"),
            cuts: isolate(first, nodes),
        },
        1 => match leader {
            Some((group, node)) => Fault::Partition {
                label: format!("isolate n{node}, leader of group {group}"),
                cuts: isolate(node, nodes),
            },
            None => Fault::Partition {
                label: format!("isolate n{first} (no leader known)"),
                cuts: isolate(first, nodes),
            },
        },
        2 if nodes >= 5 => {
            // A ring: each node reaches only its two neighbours, so each has a majority in
            // view but no two views agree.
            let mut cuts = Vec::new();
            for i in 0..order.len() {
                for j in i + 1..order.len() {
                    let distance = j - i;
                    if distance != 1 && distance != order.len() - 1 {
                        cuts.push((order[i], order[j]));
                    }
                }
            }
            Fault::Partition {
                label: format!("majority ring {order:?}"),
                cuts,
            }
        }
        2 | 3 => {
            // A bridge: the last node of the order reaches both halves, which cannot reach
            // each other.
            let (halves, bridge) = order.split_at(order.len().saturating_sub(1));
            let (left, right) = halves.split_at(halves.len() / 2);
            let cuts = left
                .iter()
                .flat_map(|a| right.iter().map(move |b| (*a, *b)))
                .collect();
            Fault::Partition {
                label: format!("bridge {left:?} <-> {bridge:?} <-> {right:?}"),
                cuts,
            }
        }
        _ => Fault::OneWay {
            from: first,
            to: second,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{resolve, schedule, Fault, Scheduled, ACTIVE_FAULTS_MAX};
    use crate::config::{FaultKind, SimConfig};

    #[test]
    fn schedules_are_seeded_and_fit_the_run() {
        let config = SimConfig::new(42);
        let one = schedule(&config);
        assert_eq!(one, schedule(&config), "one seed, one schedule");
        assert_ne!(
            one,
            schedule(&SimConfig::new(43)),
            "another seed, another schedule"
        );
        assert!(!one.is_empty(), "30 s with every fault kind has faults");
        for fault in &one {
            assert!(
                fault.at_ms + fault.duration_ms < config.duration_ms,
                "{fault:?}"
            );
        }
        assert!(one.windows(2).all(|pair| pair[0].at_ms <= pair[1].at_ms));
    }

    #[test]
    fn faults_overlap_sometimes_never_more_than_two_nor_membership_with_membership_or_clock() {
        let mut overlaps = 0;
        for seed in 0..200 {
            let faults = schedule(&SimConfig::new(seed));
            for (index, fault) in faults.iter().enumerate() {
                let active: Vec<&Scheduled> = faults[..index]
                    .iter()
                    .filter(|earlier| earlier.at_ms + earlier.duration_ms > fault.at_ms)
                    .collect();
                assert!(
                    active.len() < ACTIVE_FAULTS_MAX,
                    "seed {seed}: {fault:?} joins {active:?}"
                );
                if let Some(other) = active.first() {
                    overlaps += 1;
                    assert!(
                        !(other.kind == FaultKind::Membership
                            && fault.kind == FaultKind::Membership),
                        "seed {seed}: two membership changes at once"
                    );
                    let kinds = BTreeSet::from([other.kind, fault.kind]);
                    assert!(
                        kinds != BTreeSet::from([FaultKind::Membership, FaultKind::Clock]),
                        "seed {seed}: a clock fault while a voter is out"
                    );
                }
            }
        }
        assert!(
            overlaps > 200,
            "overlapping episodes are common: {overlaps}"
        );
    }

    #[test]
    fn partitions_never_cut_a_node_from_itself() {
        let mut shapes = BTreeSet::new();
        for seed in 0..200 {
            for fault in schedule(&SimConfig {
                nodes: 5,
                ..SimConfig::new(seed)
            }) {
                if let Fault::Partition { label, cuts } = resolve(&fault, 5, Some((1, 2))) {
                    assert!(cuts.iter().all(|(a, b)| a != b), "{cuts:?}");
                    shapes.insert(partition_shape(&label));
                }
            }
        }
        // Not vacuous: every shape of partition was drawn and checked.
        assert_eq!(
            shapes,
            BTreeSet::from(["bridge", "isolate", "isolate the leader", "majority ring"]),
            "partition shapes drawn over 200 seeds"
        );
    }

    /// The shape of a partition, from its label.
    fn partition_shape(label: &str) -> &'static str {
        if label.starts_with("bridge") {
            "bridge"
        } else if label.starts_with("majority ring") {
            "majority ring"
        } else if label.contains("leader of group") {
            "isolate the leader"
        } else {
            "isolate"
        }
    }

    #[test]
    fn every_fault_kind_and_variant_is_drawn() {
        let mut kinds = BTreeSet::new();
        let mut variants = BTreeSet::new();
        for seed in 0..200 {
            for fault in schedule(&SimConfig::new(seed)) {
                kinds.insert(fault.kind);
                variants.insert(variant(&resolve(&fault, 3, Some((1, 2)))));
            }
        }
        assert_eq!(
            kinds,
            FaultKind::ALL.into_iter().collect::<BTreeSet<_>>(),
            "fault kinds drawn over 200 seeds"
        );
        assert_eq!(
            variants,
            BTreeSet::from([
                "crash",
                "crash all",
                "demote",
                "hold",
                "latency",
                "one-way",
                "partition",
                "remove",
                "transfer",
                "clock",
                "slow disk",
                "slow disk and bounce",
            ]),
            "resolved faults drawn over 200 seeds"
        );
    }

    fn variant(fault: &Fault) -> &'static str {
        match fault {
            Fault::Partition { .. } => "partition",
            Fault::OneWay { .. } => "one-way",
            Fault::Crash { .. } => "crash",
            Fault::CrashAll => "crash all",
            Fault::Hold { .. } => "hold",
            Fault::Latency { .. } => "latency",
            Fault::Demote { .. } => "demote",
            Fault::Remove { .. } => "remove",
            Fault::Transfer { .. } => "transfer",
            Fault::Clock { .. } => "clock",
            Fault::SlowDisk {
                bounce_ms: Some(_), ..
            } => "slow disk and bounce",
            Fault::SlowDisk { .. } => "slow disk",
        }
    }
}
