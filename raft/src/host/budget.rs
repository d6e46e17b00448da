//! Budgets with one owner per key: the node-to-node half of the cluster-wide rate limits.
//!
//! A budget (a user's bids per minute, an account's login attempts) is kept by exactly one
//! node, its *owner*, so the cluster grants it once and not once per node. The owner of a key
//! is chosen by rendezvous (highest-random-weight) hashing among the current voters of the meta
//! group ([`rendezvous_owner`]): every node computes the same owner from the same membership,
//! no state is replicated, and a membership change moves only the keys of the nodes that came
//! or went (about 1/N of them), never reshuffles the rest.
//!
//! The raft crate knows nothing of what a budget counts: the API registers a [`BudgetKeeper`]
//! (a small trait object speaking [`BudgetAsk`] and [`BudgetAnswer`]) and the host serves it to
//! peers as `ClientService.TakeBudget` (see [`super::service`]) over the same mutually
//! authenticated channels as forwarding and read barriers. [`ask`] is the asking side: the
//! local keeper when this node owns the key, else one unary RPC bounded by the caller's time-out
//! and by [`BUDGET_ASKS_IN_FLIGHT_MAX`] asks outstanding per node. An ask that cannot be
//! answered is an error; what to do then (a conservative local fallback) is the caller's
//! decision.
//!
//! Nothing here is replicated and no Raft group is waited on: an ask costs one round trip to
//! the owner and nothing else, so a bid stays within the hot path budget.
//!
//! Not done yet: an owner's budgets live in its memory only, so a restarted or replaced owner
//! starts its keys afresh; nodes that see different memberships (during a change) may name
//! different owners for a moment.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use auction_proto::client::client_service_client::ClientServiceClient;
use auction_proto::client::{BudgetKind as WireKind, TakeBudgetReply, TakeBudgetRequest};
use auction_proto::Bytes;
use auction_statemachine::hash::fnv1a_64;
use auction_statemachine::META_GROUP;
use openraft::async_runtime::WatchReceiver;
use thiserror::Error;
use tokio::sync::Semaphore;

use super::{HostInner, NodeStorage};
use crate::NodeId;

/// Longest key a budget is asked for: a hash or an id, never the raw user input.
pub const BUDGET_KEY_BYTES_MAX: usize = 64;
/// Asks this node waits on at once at most; beyond it an ask fails at once (the caller falls
/// back) instead of queueing behind a slow owner.
pub const BUDGET_ASKS_IN_FLIGHT_MAX: usize = 1_024;

/// What a budget is taken for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BudgetKind {
    /// One bid, proxy bid or purchase of a user.
    Bid,
    /// One login attempt on an account (counted when it starts).
    LoginAttempt,
    /// A login that succeeded: the account's attempts are forgotten.
    LoginSucceeded,
}

impl BudgetKind {
    fn to_wire(self) -> WireKind {
        match self {
            BudgetKind::Bid => WireKind::Bid,
            BudgetKind::LoginAttempt => WireKind::LoginAttempt,
            BudgetKind::LoginSucceeded => WireKind::LoginSucceeded,
        }
    }

    /// The kind of a wire value; `None` for an unknown or unspecified one.
    pub fn from_wire(value: i32) -> Option<BudgetKind> {
        match WireKind::try_from(value).ok()? {
            WireKind::Bid => Some(BudgetKind::Bid),
            WireKind::LoginAttempt => Some(BudgetKind::LoginAttempt),
            WireKind::LoginSucceeded => Some(BudgetKind::LoginSucceeded),
            WireKind::Unspecified => None,
        }
    }
}

/// One unit of a budget, asked of its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetAsk {
    pub kind: BudgetKind,
    /// At most [`BUDGET_KEY_BYTES_MAX`] bytes.
    pub key: Vec<u8>,
}

/// The owner's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetAnswer {
    Granted,
    /// Spent; the next unit is available in `retry_after_ms`.
    Refused {
        retry_after_ms: u64,
    },
}

/// Keeps the budgets this node owns; registered by the layer that knows what they count.
pub trait BudgetKeeper: Send + Sync + 'static {
    /// Takes one unit (or, for [`BudgetKind::LoginSucceeded`], clears the key). Must not block:
    /// it runs on the gRPC server's task.
    fn take(&self, ask: &BudgetAsk) -> BudgetAnswer;
}

/// Who owns a key, as this node's membership of the meta group says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetOwner {
    pub node: NodeId,
    /// The owner's node-to-node gRPC address.
    pub addr: String,
    /// Voters of the meta group the owner was chosen among (at least 1).
    pub voters: usize,
}

/// Why an ask went unanswered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BudgetAskError {
    #[error("the meta group has no voters this node knows")]
    NoOwner,
    #[error("no budget keeper is registered on node {0}")]
    NoKeeper(NodeId),
    #[error("too many budget asks in flight")]
    Busy,
    #[error("budget key of {0} bytes is too long")]
    KeyTooLong(usize),
    #[error("no answer from node {0} in time")]
    TimedOut(NodeId),
    #[error("node {node} did not answer: {reason}")]
    Failed { node: NodeId, reason: String },
}

/// The budget side of a host: the registered keeper and the bound on asks in flight.
pub(super) struct Budgets {
    keeper: OnceLock<Arc<dyn BudgetKeeper>>,
    in_flight: Arc<Semaphore>,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            keeper: OnceLock::new(),
            in_flight: Arc::new(Semaphore::new(BUDGET_ASKS_IN_FLIGHT_MAX)),
        }
    }
}

impl Budgets {
    /// Registers the keeper; the first registration wins (one API per host).
    pub(super) fn register(&self, keeper: Arc<dyn BudgetKeeper>) -> bool {
        self.keeper.set(keeper).is_ok()
    }

    pub(super) fn keeper(&self) -> Option<&Arc<dyn BudgetKeeper>> {
        self.keeper.get()
    }
}

/// A voter's weight for a key: a fixed, portable mix of the key's FNV-1a hash and the node id
/// (SplitMix64's finaliser), so every node and every release computes the same weights.
pub fn rendezvous_weight(node: NodeId, key: &[u8]) -> u64 {
    let mut z = fnv1a_64(key) ^ node.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The voters in the order they own `key`: highest weight first (the higher id on a tie). The
/// first is the owner; the next one takes over for nodes that cannot reach it.
pub fn rendezvous_ranked(voters: impl IntoIterator<Item = NodeId>, key: &[u8]) -> Vec<NodeId> {
    let mut ranked: Vec<NodeId> = voters.into_iter().collect();
    ranked.sort_by_key(|node| std::cmp::Reverse((rendezvous_weight(*node, key), *node)));
    ranked
}

/// The owner of `key` among `voters`.
pub fn rendezvous_owner(voters: impl IntoIterator<Item = NodeId>, key: &[u8]) -> Option<NodeId> {
    rendezvous_ranked(voters, key).first().copied()
}

/// The voters of the meta group by this node's view, in the order they own `key` (see
/// [`rendezvous_ranked`]); voters whose address is unknown are left out.
pub(super) fn owners<S: NodeStorage>(inner: &HostInner<S>, key: &[u8]) -> Vec<BudgetOwner> {
    let Ok(group) = inner.group(META_GROUP) else {
        return Vec::new();
    };
    let metrics = group.raft.metrics();
    let metrics = metrics.borrow_watched();
    let membership = metrics.membership_config.membership();
    let voters: Vec<NodeId> = membership.voter_ids().collect();
    let count = voters.len();
    rendezvous_ranked(voters, key)
        .into_iter()
        .filter_map(|node| {
            let addr = match membership.get_node(&node) {
                Some(member) => member.addr.clone(),
                None if node == inner.node_id() => inner.config.rpc_addr.clone(),
                None => return None,
            };
            Some(BudgetOwner {
                node,
                addr,
                voters: count,
            })
        })
        .collect()
}

/// Takes one unit of `ask` from `owner`: this node's keeper, or the owner's over gRPC within
/// `timeout`.
pub(super) async fn ask<S: NodeStorage>(
    inner: &HostInner<S>,
    owner: &BudgetOwner,
    ask: &BudgetAsk,
    timeout: Duration,
) -> Result<BudgetAnswer, BudgetAskError> {
    if ask.key.len() > BUDGET_KEY_BYTES_MAX {
        return Err(BudgetAskError::KeyTooLong(ask.key.len()));
    }
    if owner.node == inner.node_id() {
        let keeper = inner.budgets.keeper();
        let keeper = keeper.ok_or(BudgetAskError::NoKeeper(owner.node))?;
        return Ok(keeper.take(ask));
    }
    let _permit = inner
        .budgets
        .in_flight
        .clone()
        .try_acquire_owned()
        .map_err(|_| BudgetAskError::Busy)?;
    let failed = |reason: String| BudgetAskError::Failed {
        node: owner.node,
        reason,
    };
    let channel = inner.peer_channel(&owner.addr).map_err(failed)?;
    let request = TakeBudgetRequest {
        kind: ask.kind.to_wire() as i32,
        key: Bytes::from(ask.key.clone()),
    };
    let mut client = ClientServiceClient::new(channel);
    match tokio::time::timeout(timeout, client.take_budget(request)).await {
        Err(_elapsed) => Err(BudgetAskError::TimedOut(owner.node)),
        Ok(Err(status)) => Err(failed(status.message().to_owned())),
        Ok(Ok(reply)) => Ok(answer(reply.into_inner())),
    }
}

fn answer(reply: TakeBudgetReply) -> BudgetAnswer {
    if reply.granted {
        BudgetAnswer::Granted
    } else {
        BudgetAnswer::Refused {
            retry_after_ms: reply.retry_after_ms,
        }
    }
}

/// The server's side: the registered keeper's answer to a peer's ask.
pub(super) fn serve(
    budgets: &Budgets,
    node: NodeId,
    request: TakeBudgetRequest,
) -> Result<TakeBudgetReply, tonic::Status> {
    let kind = BudgetKind::from_wire(request.kind)
        .ok_or_else(|| tonic::Status::invalid_argument("unknown budget kind"))?;
    if request.key.len() > BUDGET_KEY_BYTES_MAX {
        return Err(tonic::Status::invalid_argument(format!(
            "a budget key is at most {BUDGET_KEY_BYTES_MAX} bytes"
        )));
    }
    let keeper = budgets
        .keeper()
        .ok_or_else(|| tonic::Status::unavailable(BudgetAskError::NoKeeper(node).to_string()))?;
    let ask = BudgetAsk {
        kind,
        key: request.key.to_vec(),
    };
    Ok(match keeper.take(&ask) {
        BudgetAnswer::Granted => TakeBudgetReply {
            granted: true,
            retry_after_ms: 0,
        },
        BudgetAnswer::Refused { retry_after_ms } => TakeBudgetReply {
            granted: false,
            retry_after_ms,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> impl Iterator<Item = Vec<u8>> {
        (0..3_000u32).map(|n| n.to_be_bytes().to_vec())
    }

    #[test]
    fn every_node_names_the_same_owner_whatever_the_order_of_the_voters() {
        for key in keys() {
            let forward = rendezvous_owner([1, 2, 3], &key);
            let backward = rendezvous_owner([3, 2, 1], &key);
            assert_eq!(forward, backward, "key {key:?}");
            assert!(matches!(forward, Some(1..=3)), "an owner among the voters");
        }
        assert_eq!(rendezvous_owner([], b"key"), None, "no voters, no owner");
    }

    #[test]
    fn the_runner_up_is_the_owner_once_the_owner_is_gone() {
        for key in keys() {
            let ranked = rendezvous_ranked([1, 2, 3], &key);
            assert_eq!(ranked.len(), 3);
            let rest: Vec<NodeId> = [1, 2, 3].into_iter().filter(|n| *n != ranked[0]).collect();
            assert_eq!(rendezvous_owner(rest, &key), Some(ranked[1]), "key {key:?}");
        }
    }

    #[test]
    fn keys_spread_over_every_voter() {
        let mut owned = std::collections::BTreeMap::<NodeId, usize>::new();
        for key in keys() {
            let owner = rendezvous_owner([1, 2, 3], &key).expect("an owner");
            *owned.entry(owner).or_default() += 1;
        }
        assert_eq!(owned.len(), 3, "{owned:?}");
        for (node, count) in owned {
            assert!((800..=1_200).contains(&count), "node {node} owns {count}");
        }
    }

    #[test]
    fn a_membership_change_moves_only_the_keys_of_the_node_that_left_or_came() {
        for key in keys() {
            let before = rendezvous_owner([1, 2, 3], &key).expect("an owner");
            let without_two = rendezvous_owner([1, 3], &key).expect("an owner");
            if before != 2 {
                assert_eq!(without_two, before, "a key of a remaining node stays");
            }
            let with_four = rendezvous_owner([1, 2, 3, 4], &key).expect("an owner");
            assert!(
                with_four == before || with_four == 4,
                "a key moves only to the new node"
            );
        }
    }

    #[test]
    fn weights_are_pinned() {
        // Pinned: a change moves every budget to another owner in a mixed-version cluster.
        assert_eq!(rendezvous_weight(1, b"user"), 0xb11b_916c_c2cc_a36d);
        assert_eq!(rendezvous_weight(2, b"user"), 0x6332_d52e_349c_c78e);
        assert_eq!(rendezvous_weight(3, b"user"), 0x3679_bed3_6e37_cdec);
        assert_eq!(rendezvous_owner([1, 2, 3], b"user"), Some(1));
    }

    struct Counting;

    impl BudgetKeeper for Counting {
        fn take(&self, ask: &BudgetAsk) -> BudgetAnswer {
            match ask.kind {
                BudgetKind::Bid => BudgetAnswer::Granted,
                _ => BudgetAnswer::Refused { retry_after_ms: 7 },
            }
        }
    }

    #[test]
    fn the_server_answers_with_the_keeper_and_refuses_bad_asks() {
        let budgets = Budgets::default();
        let ask = |kind: WireKind, key: &[u8]| TakeBudgetRequest {
            kind: kind as i32,
            key: Bytes::from(key.to_vec()),
        };
        let unregistered = serve(&budgets, 1, ask(WireKind::Bid, b"k")).expect_err("no keeper");
        assert_eq!(unregistered.code(), tonic::Code::Unavailable);
        assert!(budgets.register(Arc::new(Counting)));
        assert!(!budgets.register(Arc::new(Counting)), "one keeper per host");
        let granted = serve(&budgets, 1, ask(WireKind::Bid, b"k")).expect("answer");
        assert!(granted.granted);
        let refused = serve(&budgets, 1, ask(WireKind::LoginAttempt, b"k")).expect("answer");
        assert_eq!((refused.granted, refused.retry_after_ms), (false, 7));
        let unknown = serve(&budgets, 1, ask(WireKind::Unspecified, b"k")).expect_err("kind");
        assert_eq!(unknown.code(), tonic::Code::InvalidArgument);
        let long = vec![0u8; BUDGET_KEY_BYTES_MAX + 1];
        let too_long = serve(&budgets, 1, ask(WireKind::Bid, &long)).expect_err("long key");
        assert_eq!(too_long.code(), tonic::Code::InvalidArgument);
    }
}
