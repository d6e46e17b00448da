//! A node's host of every Raft group: starting the groups on their storage, bootstrapping the
//! cluster, proposing client writes with the leader's clock (forwarding them to the leader when
//! it is elsewhere), linearizable and local reads, and the leader's duties.
//!
//! One [`RaftHost`] per node. Requests flow: API → [`RaftHost::propose`] → the group leader
//! (here, or over the `ClientService` gRPC of [`service`]) → openraft → every replica's
//! `GroupStateMachine`. A write is answered only after it is committed and applied; a request
//! the cluster cannot serve is refused within `request_timeout_ms` with [`HostError`].
//!
//! Retrying is always safe: a write keeps its request id across every attempt and the state
//! machine applies a request id (or a client's idempotency key) at most once.
//!
//! Cluster administration from any node (membership, leader transfer, snapshots, digests of
//! replicas) is in [`cluster`]. Rate-limit budgets owned by one node per key, asked over gRPC
//! and never replicated, are in [`budget`].
//!
//! Not done yet: groups are fixed at start (every node hosts every group); a node removed from
//! a group keeps its copy of the data.

pub mod backup;
pub mod budget;
pub mod clock;
pub mod cluster;
pub mod config;
mod duties;
mod forward;
pub mod planted;
mod propose;
mod read;
mod route;
pub mod service;
mod skew;
pub mod status;
pub mod storage;

use std::collections::BTreeMap;
use std::sync::Arc;

use openraft::async_runtime::WatchReceiver;
use openraft::{BasicNode, Raft};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use auction_statemachine::{Op, RequestId};

use crate::network::{ChannelFactory, GroupRegistry, GrpcRouter};
use crate::state_machine::{AppliedEvent, Backend, GroupStateMachine, EVENT_CHANNEL_CAPACITY};
use crate::types::{AuctionRaft, SeededRuntime};
use crate::{GroupId, NodeId};

pub use clock::{Clock, SystemClock};
pub use config::HostConfig;
pub use skew::{ClockView, CLOCK_SAMPLE_RTT_MS_MAX, CLOCK_SKEW_MS_MAX_DEFAULT};
pub use status::{GroupStatus, ReplicaProgress, Role};
pub use storage::{NodeStorage, RocksStorage};

/// The state machine type of a group on storage `S`.
pub type GroupSm<S> = GroupStateMachine<<S as NodeStorage>::Backend>;
/// The openraft handle of a group on storage `S`.
pub type GroupRaft<S> = Raft<AuctionRaft, GroupSm<S>>;
/// A local reader of a group's state on storage `S`.
pub type GroupReader<S> = <<S as NodeStorage>::Backend as Backend>::Reader;

/// A client write as the API hands it over; the leader turns it into a stamped `Command`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientWrite {
    pub group: GroupId,
    pub request_id: RequestId,
    pub idempotency_key: Option<String>,
    pub op: Op,
}

/// Why a request was not answered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HostError {
    #[error("group {0} does not exist")]
    UnknownGroup(GroupId),
    /// No leader is known for the group; try again after `retry_after_ms`.
    #[error("group {group} has no leader right now")]
    NoLeader { group: GroupId, retry_after_ms: u64 },
    /// The request may or may not have taken effect (no answer in time, or the leader failed
    /// while it was in flight); retrying it with the same request id or idempotency key is
    /// safe, retrying it without is not.
    #[error("the outcome in group {group} is unknown: {reason}")]
    OutcomeUnknown { group: GroupId, reason: String },
    /// The request certainly did not take effect.
    #[error("group {group} is unavailable: {reason}")]
    Unavailable { group: GroupId, reason: String },
    #[error("the node is shutting down")]
    ShuttingDown,
}

struct Group<S: NodeStorage> {
    raft: GroupRaft<S>,
    reader: GroupReader<S>,
    freshness: read::Freshness,
}

/// Everything the host's tasks and services share.
pub(crate) struct HostInner<S: NodeStorage> {
    config: HostConfig,
    groups: BTreeMap<GroupId, Group<S>>,
    registry: Arc<GroupRegistry<AuctionRaft, GroupSm<S>>>,
    router: GrpcRouter<AuctionRaft>,
    channel_factory: ChannelFactory,
    peer_channels: std::sync::Mutex<BTreeMap<String, tonic::transport::Channel>>,
    forwarders: forward::Forwarders,
    budgets: budget::Budgets,
    clock: Arc<dyn Clock>,
    /// The clock bounded by the majority's view (`clock_skew_ms_max`), which stamps commands.
    clocks: Arc<ClockView>,
    events: broadcast::Sender<AppliedEvent>,
    shutdown: watch::Sender<bool>,
    /// Turns true when the append streams this node serves must end (before its gRPC server
    /// stops gracefully, which waits for them).
    streams_closing: watch::Sender<bool>,
    /// When the host started, for [`read::Freshness`] (tokio's clock: simulated time in the
    /// simulator).
    started: tokio::time::Instant,
    /// Handles of traced writes this node proposed, until their apply (see [`crate::trace`]).
    traces: Arc<crate::trace::ApplyTraces>,
    /// Per-group counters for `/metrics`.
    stats: Arc<crate::stats::NodeStats>,
}

/// The Raft groups of one node.
pub struct RaftHost<S: NodeStorage> {
    inner: Arc<HostInner<S>>,
    storage: Arc<S>,
    duties: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl<S: NodeStorage> RaftHost<S> {
    /// Starts every group on `storage`, recovering whatever it holds.
    pub async fn start(
        config: HostConfig,
        storage: Arc<S>,
        channel_factory: ChannelFactory,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, crate::Error> {
        let raft_config = Arc::new(
            config
                .openraft_config()
                .map_err(|error| crate::Error::Protocol(error.to_string()))?,
        );
        let router = GrpcRouter::with_channel_factory(
            config.node_id,
            config.network.clone(),
            channel_factory.clone(),
        );
        let registry = Arc::new(GroupRegistry::new());
        let (events, _) = broadcast::channel(EVENT_CHANNEL_CAPACITY);
        let mut groups = BTreeMap::new();
        let traces = Arc::new(crate::trace::ApplyTraces::default());
        let stats = Arc::new(crate::stats::NodeStats::new(config.group_ids()));
        for group in config.group_ids() {
            let (log, backend) = storage.open_group(group)?;
            let reader = backend.reader();
            let group_stats = stats.group(group).cloned().unwrap_or_default();
            let machine = GroupStateMachine::open(group, backend, events.clone())?
                .observed(traces.clone(), group_stats);
            let network = router.network_factory(group);
            // openraft's tasks draw their randomness from this group's seed (see `types`).
            let start = Raft::new(config.node_id, raft_config.clone(), network, log, machine);
            let raft = SeededRuntime::scope(config.group_seed(group), start)
                .await
                .map_err(|fatal| crate::Error::Raft {
                    group_id: group,
                    reason: fatal.to_string(),
                })?;
            registry.insert(group, raft.clone());
            groups.insert(
                group,
                Group {
                    raft,
                    reader,
                    freshness: read::Freshness::default(),
                },
            );
        }
        let (shutdown, _) = watch::channel(false);
        let (streams_closing, _) = watch::channel(false);
        let clocks = Arc::new(ClockView::new(clock.clone(), config.clock_skew_ms_max));
        router.set_peer_clock(clocks.clone());
        let inner = Arc::new(HostInner {
            config,
            groups,
            registry,
            router,
            channel_factory,
            peer_channels: std::sync::Mutex::new(BTreeMap::new()),
            forwarders: forward::Forwarders::default(),
            budgets: budget::Budgets::default(),
            clock,
            clocks,
            events,
            shutdown,
            streams_closing,
            started: tokio::time::Instant::now(),
            traces,
            stats,
        });
        let duties = duties::spawn(&inner);
        Ok(RaftHost {
            inner,
            storage,
            duties: std::sync::Mutex::new(duties),
        })
    }

    pub fn node_id(&self) -> NodeId {
        self.inner.config.node_id
    }

    /// The clock this node stamps commands with; the API shows the same time.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    pub fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    pub fn storage(&self) -> &Arc<S> {
        &self.storage
    }

    pub fn group_ids(&self) -> Vec<GroupId> {
        self.inner.groups.keys().copied().collect()
    }

    /// The openraft handle of a group: crate-internal (callers above this crate use the
    /// domain methods), public only to this crate's own integration tests through the
    /// `test-internals` feature.
    #[cfg(not(feature = "test-internals"))]
    pub(crate) fn raft(&self, group: GroupId) -> Result<&GroupRaft<S>, HostError> {
        self.inner.group(group).map(|group| &group.raft)
    }

    #[cfg(feature = "test-internals")]
    pub fn raft(&self, group: GroupId) -> Result<&GroupRaft<S>, HostError> {
        self.inner.group(group).map(|group| &group.raft)
    }

    /// This node's view of `group`: role, term, leader, indexes, membership.
    pub fn group_status(&self, group: GroupId) -> Result<GroupStatus, HostError> {
        let raft = self.raft(group)?;
        Ok(GroupStatus::from_metrics(
            group,
            &raft.metrics().borrow_watched(),
        ))
    }

    /// This node's own view of every group it hosts.
    pub fn local_statuses(&self) -> Vec<GroupStatus> {
        self.group_ids()
            .into_iter()
            .filter_map(|group| self.group_status(group).ok())
            .collect()
    }

    /// The leader of `group` as this node knows it, if any.
    pub fn leader_of(&self, group: GroupId) -> Option<NodeId> {
        let raft = self.raft(group).ok()?;
        let leader = raft.metrics().borrow_watched().current_leader;
        leader
    }

    /// Whether this node, as a leader of `group`, could stamp a write now: it has heard enough
    /// of the voters' clocks for a majority view of time (`skew`). A leader without one refuses
    /// writes as `Unavailable`, as a node does for a moment after it starts.
    pub fn can_stamp(&self, group: GroupId) -> bool {
        self.inner.stamp_ms(group).is_some()
    }

    /// WAL syncs this node's storage made, and the appends they completed.
    pub fn sync_counters(&self) -> Option<Arc<crate::log_store::SyncCounters>> {
        self.storage.sync_counters()
    }

    /// Events of every local apply, for live streams on this node.
    pub fn subscribe(&self) -> broadcast::Receiver<AppliedEvent> {
        self.inner.events.subscribe()
    }

    /// Makes this node's first membership: every node a voter of every group. Idempotent: a
    /// group that is already initialised is left as it is.
    pub async fn initialize(&self, members: BTreeMap<NodeId, String>) -> Result<(), crate::Error> {
        for (node_id, addr) in &members {
            if *node_id != self.node_id() {
                self.inner.router.set_peer(*node_id, addr)?;
            }
        }
        let members: BTreeMap<NodeId, BasicNode> = members
            .into_iter()
            .map(|(node_id, addr)| (node_id, BasicNode::new(addr)))
            .collect();
        for (group_id, group) in &self.inner.groups {
            match group.raft.initialize(members.clone()).await {
                Ok(()) => {}
                Err(openraft::error::RaftError::APIError(
                    openraft::error::InitializeError::NotAllowed(_),
                )) => {}
                Err(error) => {
                    return Err(crate::Error::Raft {
                        group_id: *group_id,
                        reason: error.to_string(),
                    })
                }
            }
        }
        Ok(())
    }

    /// Proposes a client write and waits for its applied result.
    pub async fn propose(&self, write: ClientWrite) -> Result<crate::types::Response, HostError> {
        propose::propose(&self.inner, write).await
    }

    /// Per-group counters of this node (leader changes, proposal latency, snapshots).
    pub fn stats(&self) -> &crate::stats::NodeStats {
        &self.inner.stats
    }

    /// A reader of the group that reflects every write acknowledged before this call.
    pub async fn linearizable_reader(&self, group: GroupId) -> Result<GroupReader<S>, HostError> {
        read::linearizable_reader(&self.inner, group).await
    }

    /// A reader of this node's replica if it is known to reflect every write committed more
    /// than `bound` ago, else one that waited for a read barrier (see `read`). Sessions are
    /// read this way: no Raft round trip per request, and a logout is final everywhere within
    /// `bound`.
    pub async fn bounded_reader(
        &self,
        group: GroupId,
        bound: std::time::Duration,
    ) -> Result<GroupReader<S>, HostError> {
        read::bounded_reader(&self.inner, group, bound).await
    }

    /// Reads the group's state on its state-machine task, between two applies, so `read` sees
    /// exactly the state at the returned applied index (to compare replicas, or to check them).
    pub async fn read_at_applied<T, F>(
        &self,
        group: GroupId,
        read: F,
    ) -> Result<(Option<u64>, T), HostError>
    where
        F: FnOnce(&GroupReader<S>) -> T + Send + 'static,
        T: Send + 'static,
    {
        let raft = self.raft(group)?;
        raft.with_state_machine(move |machine: &mut GroupSm<S>| {
            let applied = machine.applied_index();
            let value = read(&machine.backend().reader());
            Box::pin(std::future::ready((applied, value)))
        })
        .await
        .map_err(|fatal| HostError::Unavailable {
            group,
            reason: fatal.to_string(),
        })
    }

    /// A reader of this node's replica, which may lag behind the leader.
    pub fn local_reader(&self, group: GroupId) -> Result<GroupReader<S>, HostError> {
        self.inner.group(group).map(|group| group.reader.clone())
    }

    /// Registers what keeps the rate-limit budgets this node owns (see [`budget`]); `false`
    /// if one is registered already.
    pub fn register_budget_keeper(&self, keeper: Arc<dyn budget::BudgetKeeper>) -> bool {
        self.inner.budgets.register(keeper)
    }

    /// The meta group's voters as this node knows them, in the order they own a budget key
    /// (the first is the owner).
    pub fn budget_owners(&self, key: &[u8]) -> Vec<budget::BudgetOwner> {
        budget::owners(&self.inner, key)
    }

    /// Takes one unit of a budget from its owner (this node's keeper, or one RPC within
    /// `timeout`); an error when the owner could not be asked.
    pub async fn ask_budget(
        &self,
        owner: &budget::BudgetOwner,
        ask: &budget::BudgetAsk,
        timeout: std::time::Duration,
    ) -> Result<budget::BudgetAnswer, budget::BudgetAskError> {
        budget::ask(&self.inner, owner, ask, timeout).await
    }

    /// The gRPC services every node serves to its peers: Raft, client forwarding, admin.
    pub fn grpc_services(&self) -> tonic::service::Routes {
        service::routes(&self.inner)
    }

    /// Ends the peers' append streams into this node (each once the appends taken from it are
    /// answered) and refuses new ones. Call it before stopping the gRPC server gracefully: a
    /// graceful stop waits for every open stream.
    pub fn close_peer_streams(&self) {
        let _ = self.inner.streams_closing.send(true);
    }

    /// Stops the duties and every group; later requests are refused. Close the storage after
    /// the last handle on the host is dropped.
    pub async fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
        self.close_peer_streams();
        self.inner.router.close_pipes();
        self.inner.forwarders.close();
        let duties = std::mem::take(
            &mut *self
                .duties
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for duty in duties {
            let _ = duty.await;
        }
        for group in self.inner.groups.values() {
            if let Err(error) = group.raft.shutdown().await {
                tracing::warn!(%error, "a group did not shut down cleanly");
            }
        }
    }
}

impl<S: NodeStorage> HostInner<S> {
    fn group(&self, group: GroupId) -> Result<&Group<S>, HostError> {
        self.groups
            .get(&group)
            .ok_or(HostError::UnknownGroup(group))
    }

    fn node_id(&self) -> NodeId {
        self.config.node_id
    }

    /// The time a leader of `group` stamps a command with: this node's clock bounded by the
    /// majority's view of time (see [`skew`]); `None` without a majority view (refuse).
    fn stamp_ms(&self, group: GroupId) -> Option<auction_statemachine::TimestampMs> {
        let Ok(handle) = self.group(group) else {
            return None;
        };
        let metrics = handle.raft.metrics();
        let metrics = metrics.borrow_watched();
        let voters = metrics.membership_config.membership().voter_ids();
        self.clocks.bounded_now_ms(self.node_id(), voters)
    }

    /// Milliseconds since the host started, never 0.
    fn uptime_ms(&self) -> u64 {
        let elapsed = tokio::time::Instant::now().duration_since(self.started);
        u64::try_from(elapsed.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1)
    }

    /// A channel to a peer's gRPC server, made once per address.
    fn peer_channel(&self, addr: &str) -> Result<tonic::transport::Channel, String> {
        let mut channels = self
            .peer_channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(channel) = channels.get(addr) {
            return Ok(channel.clone());
        }
        let channel = (self.channel_factory)(addr).map_err(|error| error.to_string())?;
        channels.insert(addr.to_owned(), channel.clone());
        Ok(channel)
    }
}
