//! Raft invariants watched while the run goes, from every running node's metrics and log:
//! - a node's term never goes down, nor its commit index, within one incarnation (a crash
//!   loses the unsynced vote and commit index, so a restarted node is watched afresh);
//! - committed entries never change: the first time any node reports index `i` of a group
//!   committed, the log id it holds there is recorded, and every node that later reports `i`
//!   committed must hold the same log id there (entries a snapshot purged are not compared).
//!
//! The driver samples every [`SAMPLE_EVERY_MS`] of simulated time; each sample reads only the
//! entries committed since the node's last sample, so the cost grows with the log, not with the
//! number of samples.

use std::collections::BTreeMap;
use std::sync::Arc;

use auction_raft::types::AuctionRaft;
use auction_raft::GroupId;
use openraft::alias::LogIdOf;

use crate::storage::SimDisk;

/// How often (simulated ms) the driver samples the invariants.
pub const SAMPLE_EVERY_MS: u64 = 20;
/// Violations kept; later ones are counted only.
const VIOLATIONS_MAX: usize = 20;

/// What one node's incarnation showed of one group at its last sample.
#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    incarnation: u64,
    term: u64,
    committed: Option<u64>,
}

/// The invariants' memory across samples.
#[derive(Default)]
pub struct RaftInvariants {
    seen: BTreeMap<(u64, GroupId), Seen>,
    committed: BTreeMap<(GroupId, u64), (u64, LogIdOf<AuctionRaft>)>,
    violations: Vec<String>,
    omitted: usize,
}

/// One node's view of one group at a sample.
pub struct Sample<'a> {
    pub node: u64,
    pub group: GroupId,
    pub incarnation: u64,
    pub term: u64,
    pub committed: Option<u64>,
    pub disk: &'a Arc<SimDisk>,
}

impl RaftInvariants {
    /// Checks one node's view of one group against what earlier samples showed.
    pub fn observe(&mut self, sample: &Sample<'_>, at_ms: u64) {
        let key = (sample.node, sample.group);
        let previous = self.seen.get(&key).copied().unwrap_or_default();
        let same_life = previous.incarnation == sample.incarnation;
        if same_life && sample.term < previous.term {
            self.violate(format!(
                "{at_ms} ms: n{} group {}: term went from {} down to {}",
                sample.node, sample.group, previous.term, sample.term
            ));
        }
        if same_life && sample.committed < previous.committed {
            self.violate(format!(
                "{at_ms} ms: n{} group {}: commit index went from {:?} down to {:?}",
                sample.node, sample.group, previous.committed, sample.committed
            ));
        }
        let from = if same_life {
            previous.committed.map_or(0, |index| index + 1)
        } else {
            0
        };
        if let Some(to) = sample.committed {
            self.check_entries(sample, from, to, at_ms);
        }
        self.seen.insert(
            key,
            Seen {
                incarnation: sample.incarnation,
                term: sample.term,
                committed: sample.committed,
            },
        );
    }

    fn check_entries(&mut self, sample: &Sample<'_>, from: u64, to: u64, at_ms: u64) {
        for log_id in sample.disk.live_log_ids(sample.group, from, to) {
            let index = log_id.index;
            match self.committed.get(&(sample.group, index)) {
                None => {
                    self.committed
                        .insert((sample.group, index), (sample.node, log_id));
                }
                Some((first, recorded)) if *recorded != log_id => {
                    let message = format!(
                        "{at_ms} ms: group {} index {index}: n{} holds {log_id:?} as committed, \
                         but n{first} held {recorded:?} committed there",
                        sample.group, sample.node
                    );
                    self.violate(message);
                }
                Some(_) => {}
            }
        }
    }

    fn violate(&mut self, message: String) {
        if self.violations.len() < VIOLATIONS_MAX {
            self.violations.push(message);
        } else {
            self.omitted += 1;
        }
    }

    /// Every violation found, one line each (and how many more were left out).
    pub fn violations(&self) -> Vec<String> {
        let mut lines = self.violations.clone();
        if self.omitted > 0 {
            lines.push(format!(
                "... and {} more Raft invariant violations",
                self.omitted
            ));
        }
        lines
    }

    /// How many committed entries were recorded (for reports and tests).
    pub fn committed_entries(&self) -> usize {
        self.committed.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{RaftInvariants, Sample};
    use crate::storage::SimDisk;

    fn sample(disk: &Arc<SimDisk>, incarnation: u64, term: u64, committed: u64) -> Sample<'_> {
        Sample {
            node: 1,
            group: 0,
            incarnation,
            term,
            committed: Some(committed),
            disk,
        }
    }

    #[test]
    fn a_term_or_commit_index_that_goes_down_is_reported() {
        let disk = Arc::new(SimDisk::new([0]));
        let mut invariants = RaftInvariants::default();
        invariants.observe(&sample(&disk, 1, 3, 10), 0);
        invariants.observe(&sample(&disk, 1, 4, 12), 20);
        assert!(invariants.violations().is_empty());
        invariants.observe(&sample(&disk, 1, 2, 12), 40);
        invariants.observe(&sample(&disk, 1, 2, 11), 60);
        let violations = invariants.violations();
        assert_eq!(violations.len(), 2, "{violations:?}");
        assert!(violations[0].contains("term went from 4 down to 2"));
        assert!(violations[1].contains("commit index went from Some(12) down to Some(11)"));
    }

    #[test]
    fn a_restarted_node_is_watched_afresh() {
        let disk = Arc::new(SimDisk::new([0]));
        let mut invariants = RaftInvariants::default();
        invariants.observe(&sample(&disk, 1, 5, 30), 0);
        // A crash lost the unsynced commit index: the new incarnation starts lower.
        invariants.observe(&sample(&disk, 2, 5, 20), 20);
        assert!(invariants.violations().is_empty());
    }
}
