//! What a node can say about one of its groups, in the crate's own words: role, term, leader,
//! the log / commit / apply / snapshot / purge indexes, the membership and (on a leader) each
//! follower's progress. Built from openraft's metrics on the node itself and from the admin
//! RPC's reply for a peer, so callers above this crate never see openraft or prost types.

use auction_proto::admin::{
    GroupStatus as ProtoGroupStatus, ReplicationStatus, ServerState as ProtoServerState,
};
use openraft::alias::LogIdOf;
use openraft::{RaftMetrics, RaftTypeConfig, ServerState};
use serde::Serialize;

use crate::{GroupId, NodeId};

/// A node's role in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Learner,
    Follower,
    Candidate,
    Leader,
    Shutdown,
    /// A peer answered with a role this node does not know (a newer version).
    Unknown,
}

/// How far a follower's log is known to match the leader's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaProgress {
    pub node_id: NodeId,
    pub matched_index: Option<u64>,
}

/// One node's view of one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupStatus {
    pub group_id: GroupId,
    pub role: Role,
    pub term: u64,
    pub leader_id: Option<NodeId>,
    pub last_log_index: Option<u64>,
    pub committed_index: Option<u64>,
    pub applied_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub purged_index: Option<u64>,
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    /// On a leader: every other member's progress; empty elsewhere.
    pub replication: Vec<ReplicaProgress>,
}

fn index_of<C: RaftTypeConfig>(log_id: &Option<LogIdOf<C>>) -> Option<u64> {
    log_id.as_ref().map(|log_id| log_id.index)
}

impl GroupStatus {
    pub(crate) fn from_metrics<C>(group_id: GroupId, metrics: &RaftMetrics<C>) -> Self
    where
        C: RaftTypeConfig<NodeId = NodeId, Term = u64>,
    {
        let membership = metrics.membership_config.membership();
        let replication = metrics
            .replication
            .iter()
            .flatten()
            .map(|(node_id, matched)| ReplicaProgress {
                node_id: *node_id,
                matched_index: index_of::<C>(matched),
            })
            .collect();
        GroupStatus {
            group_id,
            role: match metrics.state {
                ServerState::Learner => Role::Learner,
                ServerState::Follower => Role::Follower,
                ServerState::Candidate => Role::Candidate,
                ServerState::Leader => Role::Leader,
                ServerState::Shutdown => Role::Shutdown,
            },
            term: metrics.current_term,
            leader_id: metrics.current_leader,
            last_log_index: metrics.last_log_index,
            committed_index: index_of::<C>(&metrics.local_committed),
            applied_index: index_of::<C>(&metrics.last_applied),
            snapshot_index: index_of::<C>(&metrics.snapshot),
            purged_index: index_of::<C>(&metrics.purged),
            voters: membership.voter_ids().collect(),
            learners: membership.learner_ids().collect(),
            replication,
        }
    }

    /// Whether this node leads the group (by its own metrics).
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    pub(crate) fn to_proto(&self) -> ProtoGroupStatus {
        let state = match self.role {
            Role::Learner => ProtoServerState::Learner,
            Role::Follower => ProtoServerState::Follower,
            Role::Candidate => ProtoServerState::Candidate,
            Role::Leader => ProtoServerState::Leader,
            Role::Shutdown => ProtoServerState::Shutdown,
            Role::Unknown => ProtoServerState::Unspecified,
        };
        ProtoGroupStatus {
            group_id: self.group_id,
            state: state as i32,
            current_term: self.term,
            leader_id: self.leader_id,
            last_log_index: self.last_log_index,
            committed_index: self.committed_index,
            applied_index: self.applied_index,
            snapshot_index: self.snapshot_index,
            purged_index: self.purged_index,
            voter_ids: self.voters.clone(),
            learner_ids: self.learners.clone(),
            replication: self
                .replication
                .iter()
                .map(|progress| ReplicationStatus {
                    node_id: progress.node_id,
                    matched_index: progress.matched_index,
                })
                .collect(),
        }
    }

    pub(crate) fn from_proto(status: ProtoGroupStatus) -> Self {
        let role = match ProtoServerState::try_from(status.state) {
            Ok(ProtoServerState::Learner) => Role::Learner,
            Ok(ProtoServerState::Follower) => Role::Follower,
            Ok(ProtoServerState::Candidate) => Role::Candidate,
            Ok(ProtoServerState::Leader) => Role::Leader,
            Ok(ProtoServerState::Shutdown) => Role::Shutdown,
            _ => Role::Unknown,
        };
        GroupStatus {
            group_id: status.group_id,
            role,
            term: status.current_term,
            leader_id: status.leader_id,
            last_log_index: status.last_log_index,
            committed_index: status.committed_index,
            applied_index: status.applied_index,
            snapshot_index: status.snapshot_index,
            purged_index: status.purged_index,
            voters: status.voter_ids,
            learners: status.learner_ids,
            replication: status
                .replication
                .into_iter()
                .map(|progress| ReplicaProgress {
                    node_id: progress.node_id,
                    matched_index: progress.matched_index,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_survives_the_wire() {
        let status = GroupStatus {
            group_id: 3,
            role: Role::Leader,
            term: 7,
            leader_id: Some(2),
            last_log_index: Some(40),
            committed_index: Some(39),
            applied_index: Some(38),
            snapshot_index: None,
            purged_index: Some(10),
            voters: vec![1, 2, 3],
            learners: vec![4],
            replication: vec![ReplicaProgress {
                node_id: 1,
                matched_index: Some(39),
            }],
        };
        assert_eq!(GroupStatus::from_proto(status.to_proto()), status);
    }
}
