//! The nemesis: a fault schedule drawn from the run's seed, applied by the driver between
//! simulation steps.
//!
//! Faults come one at a time: each starts, lasts a drawn time, and is healed before the next
//! one starts, so a schedule reads like a story ("12.4 s: isolate the leader of group 1 (n2)
//! for 3.1 s"). The *kind* and timing of each fault are drawn up front; the victims that depend
//! on the cluster (the current leader) are resolved when the fault starts, from what the
//! simulation shows then, which is itself a function of the seed.
//!
//! Membership changes and leader transfers go through the admin process ([`crate::admin`]):
//! the driver hands it the action and goes on stepping, so the change runs while the cluster
//! keeps serving (and the next faults may find it half done).
//!
//! Not done yet: overlapping faults (two at once); removing a node outright (a demoted voter
//! stays a learner); client-to-node partitions; disk slowness (the log syncs at once).

use std::time::Duration;

use crate::admin::AdminAction;
use crate::config::{FaultKind, SimConfig};
use crate::node::node_name;
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
/// Faults in one schedule at most.
pub const FAULTS_MAX: usize = 1_000;

/// A fault as scheduled: what, when, for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    pub at_ms: u64,
    pub duration_ms: u64,
    pub kind: FaultKind,
    /// The draw that picks the fault's variant and victims.
    pub draw: u64,
}

/// The whole schedule of a run, in time order, relative to the start of the workload.
pub fn schedule(config: &SimConfig) -> Vec<Scheduled> {
    let kinds = config.faults.kinds();
    let mut rng = SimRng::new(config.seed, 7);
    let mut faults = Vec::new();
    let mut at_ms = FIRST_FAULT_MS;
    while faults.len() < FAULTS_MAX && !kinds.is_empty() {
        let duration_ms = rng.between(FAULT_MS.0, FAULT_MS.1);
        if at_ms + duration_ms >= config.duration_ms {
            break;
        }
        let Some(kind) = rng.pick(&kinds).copied() else {
            break;
        };
        faults.push(Scheduled {
            at_ms,
            duration_ms,
            kind,
            draw: rng.next_u64(),
        });
        at_ms += duration_ms + rng.between(GAP_MS.0, GAP_MS.1);
    }
    faults
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
    /// Hand a group's leadership to another node (through the admin process).
    Transfer {
        group: u64,
        from: u64,
        to: u64,
    },
}

impl Fault {
    pub fn describe(&self) -> String {
        match self {
            Fault::Partition { label, cuts } => format!("partition ({label}) cutting {cuts:?}"),
            Fault::OneWay { from, to } => format!("one-way partition n{from} -> n{to}"),
            Fault::Crash { node } => format!("crash n{node}"),
            Fault::Hold { a, b } => format!("hold messages between n{a} and n{b}"),
            Fault::Latency { node, latency_ms } => {
                format!("latency spike on n{node} up to {latency_ms} ms")
            }
            Fault::Demote { node } => format!("demote n{node} to learner in every group"),
            Fault::Transfer { group, from, to } => {
                format!("transfer leadership of group {group} from n{from} to n{to}")
            }
        }
    }

    /// The action the admin process takes to start this fault, if it is one of its own.
    pub fn admin_start(&self) -> Option<AdminAction> {
        match self {
            Fault::Demote { node } => Some(AdminAction::Demote { node: *node }),
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
            Fault::Demote { node } => Some(AdminAction::Promote { node: *node }),
            _ => None,
        }
    }
}

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
pub fn resolve(scheduled: &Scheduled, nodes: u64, leader: Option<(u64, u64)>) -> Fault {
    let mut rng = SimRng::new(scheduled.draw, 0);
    let order = shuffled(nodes, &mut rng);
    let first = order.first().copied().unwrap_or(1);
    let second = order.get(1).copied().unwrap_or(1);
    match scheduled.kind {
        FaultKind::Crash => Fault::Crash { node: first },
        FaultKind::Hold => Fault::Hold {
            a: first,
            b: second,
        },
        FaultKind::Latency => Fault::Latency {
            node: first,
            latency_ms: rng.between(200, SPIKE_LATENCY_MS_MAX),
        },
        FaultKind::Partition => partition(&mut rng, &order, nodes, leader),
        FaultKind::Membership => Fault::Demote { node: first },
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

fn partition(rng: &mut SimRng, order: &[u64], nodes: u64, leader: Option<(u64, u64)>) -> Fault {
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

/// Applies a fault to the simulation.
pub fn start(sim: &mut turmoil::Sim<'_>, fault: &Fault, nodes: u64) {
    match fault {
        Fault::Partition { cuts, .. } => {
            for (a, b) in cuts {
                sim.partition(node_name(*a), node_name(*b));
            }
        }
        Fault::OneWay { from, to } => sim.partition_oneway(node_name(*from), node_name(*to)),
        Fault::Crash { node } => sim.crash(node_name(*node)),
        Fault::Hold { a, b } => sim.hold(node_name(*a), node_name(*b)),
        Fault::Latency { node, latency_ms } => {
            for other in 1..=nodes {
                if other != *node {
                    sim.set_link_max_message_latency(
                        node_name(*node),
                        node_name(other),
                        Duration::from_millis(*latency_ms),
                    );
                }
            }
        }
        // The admin process carries these out (see `Fault::admin_start`).
        Fault::Demote { .. } | Fault::Transfer { .. } => {}
    }
}

/// Undoes a fault: repairs links, releases held messages, restarts a crashed node.
pub fn heal(sim: &mut turmoil::Sim<'_>, fault: &Fault, nodes: u64) {
    match fault {
        Fault::Partition { cuts, .. } => {
            for (a, b) in cuts {
                sim.repair(node_name(*a), node_name(*b));
            }
        }
        Fault::OneWay { from, to } => sim.repair_oneway(node_name(*from), node_name(*to)),
        Fault::Crash { node } => sim.bounce(node_name(*node)),
        Fault::Hold { a, b } => sim.release(node_name(*a), node_name(*b)),
        Fault::Latency { node, .. } => {
            for other in 1..=nodes {
                if other != *node {
                    sim.set_link_max_message_latency(
                        node_name(*node),
                        node_name(other),
                        Duration::from_millis(LATENCY_MS.1),
                    );
                }
            }
        }
        // The admin process heals these (see `Fault::admin_heal`).
        Fault::Demote { .. } | Fault::Transfer { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::{resolve, schedule, Fault};
    use crate::config::SimConfig;

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
        assert!(one
            .windows(2)
            .all(|pair| pair[0].at_ms + pair[0].duration_ms < pair[1].at_ms));
    }

    #[test]
    fn partitions_never_cut_a_node_from_itself() {
        for seed in 0..200 {
            for fault in schedule(&SimConfig {
                nodes: 5,
                ..SimConfig::new(seed)
            }) {
                if let Fault::Partition { cuts, .. } = resolve(&fault, 5, Some((1, 2))) {
                    assert!(cuts.iter().all(|(a, b)| a != b), "{cuts:?}");
                }
            }
        }
    }
}
