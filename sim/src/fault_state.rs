//! What the active faults, together, want of the simulated network and hosts, applied to
//! turmoil as differences.
//!
//! Faults may overlap (see [`crate::nemesis`]), and turmoil's link operations do not compose:
//! `repair` after two partitions that share a link reconnects it although one of them is still
//! on, `release` clears a partition, `hold` clears a one-way cut, and restarting a node that
//! two faults crashed ends both. So the driver never calls turmoil directly: each fault adds
//! to (or, healed, takes from) reference counts per directed cut, per held link, per latency
//! spike and per crashed node, and [`FaultState`] turns the change of the *combined* state into
//! the [`Change`]s that [`apply`] makes:
//! - a directed link is cut while any active fault cuts it; a cut wins over a hold in that
//!   direction (the partition drops what it would have held, as a real one would);
//! - a link is held while any active fault holds it; its held messages are released (delivered
//!   at once) only when the last hold on it ends;
//! - a link's latency bound is the largest active spike on it, else the normal bound;
//! - a node is down while any active fault crashed it; it restarts when the last one heals.
//!
//! Membership changes and leader transfers touch neither links nor hosts: the admin process
//! carries them out.
//!
//! Not done yet: client-to-node links (only node-to-node links are faulted).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::nemesis::{Fault, LATENCY_MS};
use crate::node::node_name;

/// The state of the link between nodes `low` < `high`, as turmoil should have it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkState {
    pub held: bool,
    /// Messages from `low` to `high` are dropped.
    pub cut_up: bool,
    /// Messages from `high` to `low` are dropped.
    pub cut_down: bool,
}

impl LinkState {
    fn is_healthy(self) -> bool {
        self == LinkState::default()
    }
}

/// One change to make to the simulation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The link between `low` < `high` goes from `from` to `to`.
    Link {
        low: u64,
        high: u64,
        from: LinkState,
        to: LinkState,
    },
    /// The latency bound of the link between `low` < `high`.
    Latency {
        low: u64,
        high: u64,
        max_ms: u64,
    },
    Crash {
        node: u64,
    },
    Restart {
        node: u64,
    },
}

/// Reference counts of what the active faults do, and what was last applied.
#[derive(Debug, Default)]
pub struct FaultState {
    /// Active cuts per directed link `(from, to)`.
    cuts: BTreeMap<(u64, u64), u32>,
    /// Active holds per link `(low, high)`.
    holds: BTreeMap<(u64, u64), u32>,
    /// Active latency spikes (ms) per link `(low, high)`.
    spikes: BTreeMap<(u64, u64), Vec<u64>>,
    /// Active crashes per node.
    crashes: BTreeMap<u64, u32>,
    links_applied: BTreeMap<(u64, u64), LinkState>,
    latency_applied: BTreeMap<(u64, u64), u64>,
    crashed_applied: BTreeSet<u64>,
}

fn pair(a: u64, b: u64) -> (u64, u64) {
    (a.min(b), a.max(b))
}

fn bump<K: Ord>(counts: &mut BTreeMap<K, u32>, key: K, up: bool) {
    let count = counts.entry(key).or_insert(0);
    *count = if up {
        count.saturating_add(1)
    } else {
        count.saturating_sub(1)
    };
}

impl FaultState {
    pub fn new() -> FaultState {
        FaultState::default()
    }

    /// Adds `fault` to the active ones; the changes that make the simulation match.
    pub fn start(&mut self, fault: &Fault, nodes: u64) -> Vec<Change> {
        self.count(fault, nodes, true);
        self.changes()
    }

    /// Removes `fault` from the active ones; the changes that make the simulation match.
    pub fn heal(&mut self, fault: &Fault, nodes: u64) -> Vec<Change> {
        self.count(fault, nodes, false);
        self.changes()
    }

    /// Whether an active fault keeps `node` down.
    pub fn is_down(&self, node: u64) -> bool {
        self.crashed_applied.contains(&node)
    }

    fn count(&mut self, fault: &Fault, nodes: u64, up: bool) {
        match fault {
            Fault::Partition { cuts, .. } => {
                for (a, b) in cuts {
                    bump(&mut self.cuts, (*a, *b), up);
                    bump(&mut self.cuts, (*b, *a), up);
                }
            }
            Fault::OneWay { from, to } => bump(&mut self.cuts, (*from, *to), up),
            Fault::Crash { node } => bump(&mut self.crashes, *node, up),
            Fault::CrashAll => {
                for node in 1..=nodes {
                    bump(&mut self.crashes, node, up);
                }
            }
            Fault::Hold { a, b } => bump(&mut self.holds, pair(*a, *b), up),
            Fault::Latency { node, latency_ms } => {
                for other in (1..=nodes).filter(|other| other != node) {
                    let spikes = self.spikes.entry(pair(*node, other)).or_default();
                    if up {
                        spikes.push(*latency_ms);
                    } else if let Some(at) = spikes.iter().position(|ms| ms == latency_ms) {
                        spikes.remove(at);
                    }
                }
            }
            // Clock faults act on the node's clock (the driver's `NodeClock`) and disk faults on
            // its disk (the driver's `SimDisk`), not on links; a disk fault's bounce is a crash
            // fault of its own.
            Fault::Demote { .. }
            | Fault::Remove { .. }
            | Fault::Transfer { .. }
            | Fault::Clock { .. }
            | Fault::SlowDisk { .. } => {}
        }
    }

    fn wanted_link(&self, low: u64, high: u64) -> LinkState {
        let active = |count: Option<&u32>| count.is_some_and(|count| *count > 0);
        LinkState {
            held: active(self.holds.get(&(low, high))),
            cut_up: active(self.cuts.get(&(low, high))),
            cut_down: active(self.cuts.get(&(high, low))),
        }
    }

    /// Every difference between what the active faults want and what was applied, in a fixed
    /// order (links, latencies, crashes, restarts), recorded as applied.
    fn changes(&mut self) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut pairs: BTreeSet<(u64, u64)> = self.links_applied.keys().copied().collect();
        pairs.extend(self.holds.keys().copied());
        pairs.extend(self.cuts.keys().map(|(a, b)| pair(*a, *b)));
        for (low, high) in pairs {
            let to = self.wanted_link(low, high);
            let from = self
                .links_applied
                .get(&(low, high))
                .copied()
                .unwrap_or_default();
            if from != to {
                changes.push(Change::Link {
                    low,
                    high,
                    from,
                    to,
                });
            }
            if to.is_healthy() {
                self.links_applied.remove(&(low, high));
            } else {
                self.links_applied.insert((low, high), to);
            }
        }
        for (&(low, high), spikes) in &self.spikes {
            let max_ms = spikes.iter().copied().max().unwrap_or(LATENCY_MS.1);
            let applied = self
                .latency_applied
                .get(&(low, high))
                .copied()
                .unwrap_or(LATENCY_MS.1);
            if applied != max_ms {
                changes.push(Change::Latency { low, high, max_ms });
                self.latency_applied.insert((low, high), max_ms);
            }
        }
        let down: BTreeSet<u64> = self
            .crashes
            .iter()
            .filter(|(_, count)| **count > 0)
            .map(|(node, _)| *node)
            .collect();
        for node in down.difference(&self.crashed_applied) {
            changes.push(Change::Crash { node: *node });
        }
        for node in self.crashed_applied.difference(&down) {
            changes.push(Change::Restart { node: *node });
        }
        self.crashed_applied = down;
        changes
    }
}

/// Makes the changes in the simulation.
pub fn apply(sim: &mut turmoil::Sim<'_>, changes: &[Change]) {
    for change in changes {
        match change {
            Change::Link {
                low,
                high,
                from,
                to,
            } => {
                let (low, high) = (node_name(*low), node_name(*high));
                // First the shared state of both directions, then the cuts on top: turmoil's
                // `hold` and `release` set both directions and would clear a cut.
                if to.held {
                    sim.hold(low.as_str(), high.as_str());
                } else if from.held {
                    sim.release(low.as_str(), high.as_str());
                } else {
                    sim.repair(low.as_str(), high.as_str());
                }
                if to.cut_up {
                    sim.partition_oneway(low.as_str(), high.as_str());
                }
                if to.cut_down {
                    sim.partition_oneway(high.as_str(), low.as_str());
                }
            }
            Change::Latency { low, high, max_ms } => sim.set_link_max_message_latency(
                node_name(*low),
                node_name(*high),
                Duration::from_millis(*max_ms),
            ),
            Change::Crash { node } => sim.crash(node_name(*node)),
            Change::Restart { node } => sim.bounce(node_name(*node)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Change, FaultState, LinkState};
    use crate::nemesis::{Fault, LATENCY_MS};

    fn isolate(node: u64) -> Fault {
        Fault::Partition {
            label: format!("isolate n{node}"),
            cuts: (1..=3)
                .filter(|other| *other != node)
                .map(|other| (node, other))
                .collect(),
        }
    }

    const CUT: LinkState = LinkState {
        held: false,
        cut_up: true,
        cut_down: true,
    };

    #[test]
    fn a_shared_link_stays_cut_until_the_last_partition_heals() {
        let mut state = FaultState::new();
        assert_eq!(state.start(&isolate(1), 3).len(), 2, "links 1-2 and 1-3");
        let second = state.start(&isolate(2), 3);
        assert_eq!(
            second,
            vec![Change::Link {
                low: 2,
                high: 3,
                from: LinkState::default(),
                to: CUT
            }],
            "link 1-2 is cut already"
        );
        let healed = state.heal(&isolate(1), 3);
        assert_eq!(
            healed,
            vec![Change::Link {
                low: 1,
                high: 3,
                from: CUT,
                to: LinkState::default()
            }],
            "link 1-2 stays cut: n2 is still isolated"
        );
        let last = state.heal(&isolate(2), 3);
        assert_eq!(last.len(), 2, "links 1-2 and 2-3 heal: {last:?}");
        assert!(
            state.heal(&isolate(2), 3).is_empty(),
            "nothing left to heal"
        );
    }

    #[test]
    fn a_cut_under_a_hold_keeps_the_hold_and_healing_it_releases_nothing() {
        let mut state = FaultState::new();
        state.start(&Fault::Hold { a: 2, b: 1 }, 3);
        let cut = state.start(&Fault::OneWay { from: 2, to: 1 }, 3);
        let held_and_cut = LinkState {
            held: true,
            cut_up: false,
            cut_down: true,
        };
        let held = LinkState {
            held: true,
            ..LinkState::default()
        };
        assert_eq!(
            cut,
            vec![Change::Link {
                low: 1,
                high: 2,
                from: held,
                to: held_and_cut
            }]
        );
        let uncut = state.heal(&Fault::OneWay { from: 2, to: 1 }, 3);
        assert_eq!(
            uncut,
            vec![Change::Link {
                low: 1,
                high: 2,
                from: held_and_cut,
                to: held
            }],
            "still held: nothing is released yet"
        );
        let released = state.heal(&Fault::Hold { a: 1, b: 2 }, 3);
        assert_eq!(
            released,
            vec![Change::Link {
                low: 1,
                high: 2,
                from: held,
                to: LinkState::default()
            }]
        );
    }

    #[test]
    fn a_node_crashed_twice_restarts_only_when_both_heal_and_partitions_leave_it_down() {
        let mut state = FaultState::new();
        assert_eq!(
            state.start(&Fault::Crash { node: 3 }, 3),
            vec![Change::Crash { node: 3 }]
        );
        state.start(&isolate(3), 3);
        assert!(state.start(&Fault::Crash { node: 3 }, 3).is_empty());
        let healed = state.heal(&isolate(3), 3);
        assert!(
            healed
                .iter()
                .all(|change| matches!(change, Change::Link { .. })),
            "healing the partition does not restart n3: {healed:?}"
        );
        assert!(state.is_down(3));
        assert!(state.heal(&Fault::Crash { node: 3 }, 3).is_empty());
        assert_eq!(
            state.heal(&Fault::Crash { node: 3 }, 3),
            vec![Change::Restart { node: 3 }]
        );
        assert!(!state.is_down(3));
    }

    #[test]
    fn overlapping_spikes_keep_the_larger_bound_until_each_heals() {
        let mut state = FaultState::new();
        let slow = Fault::Latency {
            node: 1,
            latency_ms: 900,
        };
        let slower = Fault::Latency {
            node: 2,
            latency_ms: 1_200,
        };
        state.start(&slow, 3);
        let second = state.start(&slower, 3);
        assert!(second.contains(&Change::Latency {
            low: 1,
            high: 2,
            max_ms: 1_200
        }));
        let healed = state.heal(&slower, 3);
        assert!(healed.contains(&Change::Latency {
            low: 1,
            high: 2,
            max_ms: 900
        }));
        assert!(
            !healed.iter().any(|change| matches!(
                change,
                Change::Latency {
                    low: 1,
                    high: 3,
                    ..
                }
            )),
            "link 1-3 keeps its spike: {healed:?}"
        );
        let last = state.heal(&slow, 3);
        assert!(last.contains(&Change::Latency {
            low: 1,
            high: 3,
            max_ms: LATENCY_MS.1
        }));
    }
}
