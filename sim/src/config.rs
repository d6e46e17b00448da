//! What a run simulates: the seed, the cluster's shape, the workload and the fault mix.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// A kind of fault the nemesis may inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// Network partitions: isolate a node, isolate a group's leader, a bridge, a majority
    /// ring (5 nodes), a one-way partition.
    Partition,
    /// Crash a node (its unsynced writes and applied state are lost) and restart it later.
    Crash,
    /// Hold the messages between two nodes, then release them all at once.
    Hold,
    /// Latency spikes on the links of one node.
    Latency,
    /// A voter demoted to learner, or removed outright, in every group; brought back (added
    /// as a learner, caught up, promoted) when the fault heals (membership changes while the
    /// other faults come and go).
    Membership,
    /// A group's leadership handed to another node.
    Transfer,
    /// One node's wall clock set seconds ahead or behind (a jump at the start and back at the
    /// end) or drifting fast or slow; at most one node's clock is off at a time.
    Clock,
    /// One node's log syncs slowly (often a leader's, whose followers then commit entries it
    /// has not synced); half the time it ends with that node crashing with its writes in
    /// flight and restarting within an election timeout.
    Disk,
}

impl FaultKind {
    pub const ALL: [FaultKind; 8] = [
        FaultKind::Partition,
        FaultKind::Crash,
        FaultKind::Hold,
        FaultKind::Latency,
        FaultKind::Membership,
        FaultKind::Transfer,
        FaultKind::Clock,
        FaultKind::Disk,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Partition => "partition",
            FaultKind::Crash => "crash",
            FaultKind::Hold => "hold",
            FaultKind::Latency => "latency",
            FaultKind::Membership => "membership",
            FaultKind::Transfer => "transfer",
            FaultKind::Clock => "clock",
            FaultKind::Disk => "disk",
        }
    }
}

/// The fault kinds of a run; written `all`, `none` or a comma list (`partition,crash`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultMix(pub BTreeSet<FaultKind>);

impl FaultMix {
    pub fn all() -> FaultMix {
        FaultMix(FaultKind::ALL.into_iter().collect())
    }

    pub fn none() -> FaultMix {
        FaultMix(BTreeSet::new())
    }

    pub fn kinds(&self) -> Vec<FaultKind> {
        self.0.iter().copied().collect()
    }
}

impl fmt::Display for FaultMix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return write!(f, "none");
        }
        if self.0.len() == FaultKind::ALL.len() {
            return write!(f, "all");
        }
        let names: Vec<&str> = self.0.iter().map(|kind| kind.name()).collect();
        write!(f, "{}", names.join(","))
    }
}

impl FromStr for FaultMix {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "all" => return Ok(FaultMix::all()),
            "none" | "" => return Ok(FaultMix::none()),
            _ => {}
        }
        let mut kinds = BTreeSet::new();
        for name in text.split(',').map(str::trim) {
            let kind = FaultKind::ALL
                .into_iter()
                .find(|kind| kind.name() == name)
                .ok_or_else(|| {
                    format!(
                        "unknown fault kind {name:?} (partition, crash, hold, latency, membership, transfer, clock, disk, all, none)"
                    )
                })?;
            kinds.insert(kind);
        }
        Ok(FaultMix(kinds))
    }
}

/// Everything that determines a run besides the code: two runs with equal configs are equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    pub seed: u64,
    /// Simulated time of the workload and faults, after the cluster has started.
    pub duration_ms: u64,
    /// Nodes in the cluster, all voters of every group (3 or 5).
    pub nodes: u64,
    /// Auction shards (groups 1..=shards; group 0 is the meta group).
    pub shards: u32,
    /// Client processes issuing operations concurrently.
    pub clients: u64,
    /// Hot auctions the clients fight over.
    pub auctions: u64,
    pub faults: FaultMix,
    /// A group builds a snapshot (and purges its log) after this many applied entries.
    pub snapshot_every_entries: u64,
    /// PLANTED BUG (test-only): a known bug switched on while the run's cluster runs.
    pub planted: Option<PlantedBug>,
}

/// A known bug the planted-bug tests switch on to prove the checkers find it (compiled in with
/// the `planted-bugs` features of `auction-statemachine` and `auction-raft`; see
/// `auction_statemachine::machine::planted` and `auction_raft::host::planted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PlantedBug {
    /// The state machine skips de-duplication: retried writes apply twice.
    SkipDedup,
    /// A leader acknowledges a write once it is in its own log, before it commits.
    AcknowledgeBeforeCommit,
    /// A restarted node resumes leadership from its persisted vote (the seed-42 bug).
    RestoreLeadership,
    /// A linearizable read is served from the local replica.
    LocalLinearizableRead,
    /// A leader stamps with its own clock, without the `clock_skew_ms_max` bound.
    UnboundedStamps,
}

impl PlantedBug {
    pub const ALL: [PlantedBug; 5] = [
        PlantedBug::SkipDedup,
        PlantedBug::AcknowledgeBeforeCommit,
        PlantedBug::RestoreLeadership,
        PlantedBug::LocalLinearizableRead,
        PlantedBug::UnboundedStamps,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PlantedBug::SkipDedup => "skip-dedup",
            PlantedBug::AcknowledgeBeforeCommit => "ack-before-commit",
            PlantedBug::RestoreLeadership => "restore-leadership",
            PlantedBug::LocalLinearizableRead => "local-linearizable-read",
            PlantedBug::UnboundedStamps => "unbounded-stamps",
        }
    }
}

impl FromStr for PlantedBug {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        PlantedBug::ALL
            .into_iter()
            .find(|bug| bug.name() == text.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = PlantedBug::ALL.iter().map(|bug| bug.name()).collect();
                format!("unknown planted bug {text:?} ({})", names.join(", "))
            })
    }
}

impl SimConfig {
    /// The defaults of a run of `seed`: 3 nodes, 2 shards, 30 simulated seconds, every fault.
    pub fn new(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            duration_ms: 30_000,
            nodes: 3,
            shards: 2,
            clients: 5,
            auctions: 4,
            faults: FaultMix::all(),
            snapshot_every_entries: 300,
            planted: None,
        }
    }

    /// The `sim` arguments that run exactly this configuration.
    pub fn cli_args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            ("--seed", self.seed.to_string()),
            ("--duration", (self.duration_ms / 1_000).to_string()),
            ("--nodes", self.nodes.to_string()),
            ("--shards", self.shards.to_string()),
            ("--clients", self.clients.to_string()),
            ("--auctions", self.auctions.to_string()),
            ("--faults", self.faults.to_string()),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_owned(), value])
        .collect();
        if let Some(bug) = self.planted {
            args.extend(["--planted".to_owned(), bug.name().to_owned()]);
        }
        args
    }

    /// The command line that runs exactly this configuration (bit-for-bit only in a build with
    /// `--cfg tokio_unstable`, which the crate requires; see the crate docs).
    pub fn reproduce_command(&self) -> String {
        format!(
            "RUSTFLAGS=\"--cfg tokio_unstable\" CARGO_TARGET_DIR=~/.cache/auction-cluster/target-tokio-unstable cargo run --release -p auction-sim --bin sim -- {}",
            self.cli_args().join(" ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{FaultKind, FaultMix};

    #[test]
    fn fault_mixes_parse_and_print() {
        assert_eq!("all".parse::<FaultMix>(), Ok(FaultMix::all()));
        assert_eq!("none".parse::<FaultMix>(), Ok(FaultMix::none()));
        let mix: FaultMix = "crash, partition".parse().expect("parses");
        assert_eq!(mix.kinds(), vec![FaultKind::Partition, FaultKind::Crash]);
        assert_eq!(mix.to_string(), "partition,crash");
        assert!("flood".parse::<FaultMix>().is_err());
    }
}
