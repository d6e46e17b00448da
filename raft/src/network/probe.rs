//! Probes: each node-to-node RPC sent once, with the request an intruder would send, over a
//! channel the caller built (plaintext, TLS without a client certificate, a foreign CA...).
//!
//! They exist so a black-box test (the node crate's `tests/tls.rs`) or an operator's check can
//! show that a node refuses every RPC to a client without the cluster's credentials, without
//! speaking openraft or protobuf types. Each probe reports the gRPC status it got; a probe that
//! was answered means the node served a non-member. [`membership`] reads voters, learners and
//! terms back, to show that nothing moved.
//!
//! Not done yet: probes send one hostile request per RPC, not a fuzzing campaign.

use auction_proto::admin::admin_service_client::AdminServiceClient;
use auction_proto::admin::{
    AddLearnerRequest, ChangeMembershipRequest, NodeAddress, StatusRequest,
};
use auction_proto::client::client_service_client::ClientServiceClient;
use auction_proto::client::{
    BudgetKind, ForwardBatchRequest, ForwardItem, ReadBarrierRequest, TakeBudgetRequest,
};
use auction_proto::raft::raft_service_client::RaftServiceClient;
use auction_proto::raft::snapshot_chunk::Item;
use auction_proto::raft::{RaftRequest, SnapshotChunk, SnapshotHeader};
use openraft::alias::VoteOf;
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use tonic::transport::Channel;
use tonic::Status;

use crate::types::AuctionRaft;
use crate::{codec, GroupId, NodeId};

/// Every RPC a node serves to its peers and to `auctionctl`'s admin path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpc {
    Vote,
    PreVote,
    AppendEntries,
    InstallSnapshot,
    ForwardBatch,
    ReadBarrier,
    TakeBudget,
    ChangeMembership,
    AddLearner,
    Status,
}

impl Rpc {
    pub const ALL: [Rpc; 10] = [
        Rpc::Vote,
        Rpc::PreVote,
        Rpc::AppendEntries,
        Rpc::InstallSnapshot,
        Rpc::ForwardBatch,
        Rpc::ReadBarrier,
        Rpc::TakeBudget,
        Rpc::ChangeMembership,
        Rpc::AddLearner,
        Rpc::Status,
    ];
}

/// Who the intruder claims to be, and the groups it aims at.
#[derive(Debug, Clone)]
pub struct Intruder {
    /// A term far above the cluster's: a vote or append that is obeyed takes it.
    pub term: u64,
    /// A node id that is no member: a membership change that is obeyed adds or keeps it.
    pub node_id: NodeId,
    pub groups: Vec<GroupId>,
}

/// One group's membership and term as a node reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupMembership {
    pub group: GroupId,
    pub term: u64,
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
}

/// Sends `rpc` with the intruder's request over `channel`; `Ok` means the node answered.
pub async fn send(channel: Channel, rpc: Rpc, intruder: &Intruder) -> Result<(), Status> {
    let group = intruder.groups.first().copied().unwrap_or_default();
    match rpc {
        Rpc::Vote => raft(channel).vote(vote(intruder, group)?).await.map(drop),
        Rpc::PreVote => raft(channel)
            .pre_vote(vote(intruder, group)?)
            .await
            .map(drop),
        Rpc::AppendEntries => raft(channel)
            .append_entries(append(intruder, group)?)
            .await
            .map(drop),
        Rpc::InstallSnapshot => raft(channel)
            .install_snapshot(tonic::codegen::tokio_stream::iter(snapshot(group)))
            .await
            .map(drop),
        Rpc::ForwardBatch => {
            let request = ForwardBatchRequest {
                items: vec![ForwardItem {
                    group_id: group,
                    write: vec![0; 32].into(),
                    ..ForwardItem::default()
                }],
            };
            client(channel).forward_batch(request).await.map(drop)
        }
        Rpc::ReadBarrier => client(channel)
            .read_barrier(ReadBarrierRequest { group_id: group })
            .await
            .map(drop),
        // Spending a user's budget would lock them out of bidding.
        Rpc::TakeBudget => {
            let request = TakeBudgetRequest {
                kind: BudgetKind::Bid as i32,
                key: intruder.node_id.to_be_bytes().to_vec().into(),
            };
            client(channel).take_budget(request).await.map(drop)
        }
        Rpc::ChangeMembership => {
            let request = ChangeMembershipRequest {
                group_ids: intruder.groups.clone(),
                voter_ids: vec![intruder.node_id],
                retain_removed: false,
            };
            admin(channel).change_membership(request).await.map(drop)
        }
        Rpc::AddLearner => {
            let request = AddLearnerRequest {
                group_ids: intruder.groups.clone(),
                node: Some(NodeAddress {
                    node_id: intruder.node_id,
                    rpc_addr: "127.0.0.1:1".to_owned(),
                }),
                blocking: false,
            };
            admin(channel).add_learner(request).await.map(drop)
        }
        Rpc::Status => membership(channel, &intruder.groups).await.map(drop),
    }
}

/// A vote request whose payload does not decode: a member's channel gets `INVALID_ARGUMENT`
/// for it, which shows the refusals of [`send`] come from who sent them, not what.
pub async fn send_undecodable_vote(channel: Channel) -> Result<(), Status> {
    let request = RaftRequest {
        group_id: 0,
        payload: vec![0xff; 8].into(),
    };
    raft(channel).vote(request).await.map(drop)
}

/// Voters, learners and term of `groups` on the node behind `channel`, ascending by group.
pub async fn membership(
    channel: Channel,
    groups: &[GroupId],
) -> Result<Vec<GroupMembership>, Status> {
    let request = StatusRequest {
        group_ids: groups.to_vec(),
    };
    let reply = admin(channel).status(request).await?.into_inner();
    let mut groups: Vec<GroupMembership> = reply
        .groups
        .into_iter()
        .map(|group| GroupMembership {
            group: group.group_id,
            term: group.current_term,
            voters: group.voter_ids,
            learners: group.learner_ids,
        })
        .collect();
    groups.sort();
    Ok(groups)
}

fn raft(channel: Channel) -> RaftServiceClient<Channel> {
    RaftServiceClient::new(channel)
}

fn client(channel: Channel) -> ClientServiceClient<Channel> {
    ClientServiceClient::new(channel)
}

fn admin(channel: Channel) -> AdminServiceClient<Channel> {
    AdminServiceClient::new(channel)
}

fn encoded(what: &'static str, message: &impl serde::Serialize) -> Result<Vec<u8>, Status> {
    codec::encode(what, message).map_err(|error| Status::internal(error.to_string()))
}

fn vote(intruder: &Intruder, group: GroupId) -> Result<RaftRequest, Status> {
    let vote = VoteOf::<AuctionRaft>::new(intruder.term, intruder.node_id);
    let request = VoteRequest::<AuctionRaft>::new(vote, None);
    Ok(RaftRequest {
        group_id: group,
        payload: encoded("vote", &request)?.into(),
    })
}

fn append(intruder: &Intruder, group: GroupId) -> Result<RaftRequest, Status> {
    let request = AppendEntriesRequest::<AuctionRaft> {
        vote: VoteOf::<AuctionRaft>::new_committed(intruder.term, intruder.node_id),
        prev_log_id: None,
        entries: Vec::new(),
        leader_commit: None,
    };
    Ok(RaftRequest {
        group_id: group,
        payload: encoded("append", &request)?.into(),
    })
}

/// A snapshot header and one data chunk: an install that is obeyed replaces the group's state.
fn snapshot(group: GroupId) -> Vec<SnapshotChunk> {
    vec![
        SnapshotChunk {
            item: Some(Item::Header(SnapshotHeader {
                group_id: group,
                payload: vec![0; 16].into(),
                snapshot_bytes: 4,
            })),
        },
        SnapshotChunk {
            item: Some(Item::Data(vec![1, 2, 3, 4].into())),
        },
    ]
}
