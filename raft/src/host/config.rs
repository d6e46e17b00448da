//! A node's configuration of its Raft groups, with named limits in logical units.

use std::hash::BuildHasher;
use std::time::Duration;

use crate::network::NetworkConfig;
use crate::{GroupId, NodeId};

/// How this node runs its groups.
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub node_id: NodeId,
    /// This node's node-to-node gRPC address (`host:port`), as peers reach it.
    pub rpc_addr: String,
    /// Auction shards; groups are 0 (meta) and 1..=`shard_count`. Fixed at cluster init.
    pub shard_count: u32,
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// A snapshot is built after this many applied entries since the last one.
    pub snapshot_every_entries: u64,
    /// Entries kept in the log behind a snapshot, for followers that are a little behind.
    pub log_entries_kept_after_snapshot: u64,
    /// How often a leader checks for due auctions.
    pub tick_interval_ms: u64,
    /// A leader proposes housekeeping (purging expired records) at least this often.
    pub housekeeping_interval_ms: u64,
    /// The longest a write or read waits for an answer, forwarding and leader changes included.
    pub request_timeout_ms: u64,
    /// The longest a request waits for a group to have a known leader before it is refused.
    pub leader_wait_ms: u64,
    /// Attempts of one request across leader changes (each re-routes to the current leader).
    pub route_attempts_max: u32,
    /// How often a group that serves bounded-staleness reads (sessions) confirms that its
    /// local replica is fresh with a read barrier; well below the staleness those reads allow.
    pub freshness_refresh_ms: u64,
    pub network: NetworkConfig,
    /// A leader's stamp is its clock clamped to within this of the majority's view of time
    /// (see `host::skew`); DESIGN.md's `clock_skew_ms_max`.
    pub clock_skew_ms_max: i64,
    /// Seeds openraft's random choices (election time-outs) in every group: the simulator sets
    /// the run's seed; `new` draws one from the OS.
    pub rng_seed: u64,
}

impl HostConfig {
    /// Defaults for a node; the id and address are the caller's.
    pub fn new(node_id: NodeId, rpc_addr: impl Into<String>) -> Self {
        HostConfig {
            node_id,
            rpc_addr: rpc_addr.into(),
            shard_count: 8,
            heartbeat_interval_ms: 100,
            election_timeout_min_ms: 600,
            election_timeout_max_ms: 1_200,
            snapshot_every_entries: 20_000,
            log_entries_kept_after_snapshot: 2_000,
            tick_interval_ms: 100,
            housekeeping_interval_ms: 10_000,
            request_timeout_ms: 5_000,
            leader_wait_ms: 2_000,
            route_attempts_max: 5,
            freshness_refresh_ms: 200,
            clock_skew_ms_max: super::CLOCK_SKEW_MS_MAX_DEFAULT,
            network: NetworkConfig::default(),
            rng_seed: random_seed(node_id),
        }
    }

    /// The seed of one group's randomness on this node.
    pub fn group_seed(&self, group: GroupId) -> u64 {
        self.rng_seed ^ u64::from(group).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    /// Every group id of the cluster: the meta group and the shards.
    pub fn group_ids(&self) -> impl Iterator<Item = GroupId> {
        0..=self.shard_count
    }

    pub fn openraft_config(&self) -> Result<openraft::Config, openraft::ConfigError> {
        let config = openraft::Config {
            cluster_name: "auction".to_owned(),
            heartbeat_interval: self.heartbeat_interval_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every_entries),
            max_in_snapshot_log_to_keep: self.log_entries_kept_after_snapshot,
            // A restarted leader must win an election like any node. Restoring its leadership
            // from the persisted vote (openraft's default) is unsafe with group commit: its own
            // appends may still be unsynced when the followers' acknowledgements commit them,
            // so after a crash it would lead with a log and commit index behind the cluster's
            // and serve stale reads (the simulator's seed 42).
            enable_leader_restore: Some(super::planted::restore_leadership()),
            ..Default::default()
        };
        config.validate()
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn leader_wait(&self) -> Duration {
        Duration::from_millis(self.leader_wait_ms)
    }
}

/// A seed from the OS's randomness (std seeds each `RandomState` from it).
fn random_seed(salt: NodeId) -> u64 {
    std::collections::hash_map::RandomState::new().hash_one(salt)
}
