//! The auction state machine of one Raft group, on a pluggable store.
//!
//! [`GroupStateMachine`] implements openraft's `RaftStateMachine` for the auction rules
//! (`auction_statemachine::StateMachine`). It applies each batch of committed entries on one
//! write buffer and commits the writes together with the applied log id and membership in one
//! atomic write ([`Backend::commit`]), so the state and "how far it got" never disagree. Only
//! after that write are the proposers answered and the events published to local subscribers
//! (each node publishes the events of its own applies: that is how a stream on any node sees
//! bids taken by any other node).
//!
//! A storage failure during apply is returned as an `io::Error`, which openraft treats as fatal
//! for the group: it stops rather than let this replica diverge.
//!
//! Backends: [`rocks::RocksBackend`] (every group in one RocksDB per node, keys prefixed by the
//! group id) and [`memory::MemBackend`] (the simulator's, with snapshots kept in a store that
//! survives a simulated crash).
//!
//! Not done yet: a snapshot is built into and installed from one in-memory buffer (the
//! transport moves buffers); install writes it in one atomic batch. Streaming both through a
//! file is the next step for large shards.

pub mod backup;
pub mod feed;
pub mod memory;
pub mod rocks;
pub mod snapshot;

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use auction_statemachine::kv::Write;
use auction_statemachine::{Event, KvRead, Overlay, StateMachine};
use futures_util::{Stream, StreamExt};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::entry::RaftEntry;
use openraft::storage::EntryResponder;
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, Snapshot, StoredMembership};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::stats::GroupStats;
use crate::trace::{ApplyTraces, WriteTrace};
use crate::types::{AuctionRaft, Response};
use crate::GroupId;

type C = AuctionRaft;

/// How far a group's state machine has applied, stored atomically with its state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedState {
    pub last_applied: Option<LogIdOf<C>>,
    pub membership: StoredMembershipOf<C>,
}

/// An event of an applied entry, as published to local subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedEvent {
    pub group: GroupId,
    pub log_index: u64,
    pub event: Event,
}

/// Where a group's state and its last snapshot live.
pub trait Backend: Send + Sync + 'static {
    /// A cheap, owned reader of the group's current state (for apply and for local reads).
    type Reader: KvRead + Clone + Send + Sync + 'static;
    /// A consistent source for building a snapshot off the apply path.
    type Source: SnapshotSource;

    fn reader(&self) -> Self::Reader;
    fn load_applied(&self) -> io::Result<AppliedState>;
    /// Writes the buffered state changes and the applied state in one atomic write.
    fn commit(
        &mut self,
        writes: BTreeMap<Vec<u8>, Write>,
        applied: &AppliedState,
    ) -> io::Result<()>;
    /// Replaces the whole state by a verified snapshot.
    fn replace(&mut self, snapshot: &[u8], applied: &AppliedState) -> io::Result<()>;
    fn snapshot_source(&self) -> Self::Source;
    fn snapshot_store(&self) -> Arc<dyn SnapshotStore>;
}

/// One item of a consistent view of a group's state: its applied state first, then every
/// record in key order.
pub enum SourceItem<'a> {
    Applied(&'a AppliedState),
    Record(&'a [u8], &'a [u8]),
}

/// A consistent view of a group's state (a snapshot, a backup), read off the apply path.
pub trait SnapshotSource: Send + Sync + 'static {
    /// Visits one consistent view: [`SourceItem::Applied`] once, then every record. Blocking
    /// (it reads the whole state): call it off the async runtime's worker threads.
    fn visit(&self, visitor: &mut dyn FnMut(SourceItem<'_>) -> io::Result<()>) -> io::Result<()>;

    /// The bytes of a snapshot and the applied state they contain.
    fn export(&self) -> io::Result<(AppliedState, Vec<u8>)> {
        let mut applied = AppliedState::default();
        let mut writer = snapshot::SnapshotWriter::new(Vec::new())?;
        self.visit(&mut |item| match item {
            SourceItem::Applied(state) => {
                applied = state.clone();
                Ok(())
            }
            SourceItem::Record(key, value) => writer.push(key, value),
        })?;
        Ok((applied, writer.finish()?))
    }
}

/// Keeps the group's current snapshot (the last one built or installed).
pub trait SnapshotStore: Send + Sync + 'static {
    fn save(&self, meta: &SnapshotMetaOf<C>, data: &[u8]) -> io::Result<()>;
    fn load(&self) -> io::Result<Option<(SnapshotMetaOf<C>, Vec<u8>)>>;
}

/// Capacity of a node's event channel; a subscriber that falls further behind is told it lagged.
pub const EVENT_CHANNEL_CAPACITY: usize = 16_384;

/// The auction state machine of one group.
pub struct GroupStateMachine<B: Backend> {
    group: GroupId,
    machine: StateMachine,
    backend: B,
    applied: AppliedState,
    events: broadcast::Sender<AppliedEvent>,
    /// The leader's handles of the writes it proposed, so their applies join their traces.
    traces: Option<Arc<ApplyTraces>>,
    /// Snapshot counts and sizes for `/metrics`.
    stats: Option<Arc<GroupStats>>,
}

fn io_error(error: impl std::fmt::Display) -> io::Error {
    io::Error::other(error.to_string())
}

impl<B: Backend> GroupStateMachine<B> {
    pub fn open(
        group: GroupId,
        backend: B,
        events: broadcast::Sender<AppliedEvent>,
    ) -> io::Result<Self> {
        let applied = backend.load_applied()?;
        Ok(GroupStateMachine {
            group,
            machine: StateMachine::new(group),
            backend,
            applied,
            events,
            traces: None,
            stats: None,
        })
    }

    /// Reports snapshots to `stats` and traces the applies of the writes in `traces`.
    pub fn observed(mut self, traces: Arc<ApplyTraces>, stats: Arc<GroupStats>) -> Self {
        self.traces = Some(traces);
        self.stats = Some(stats);
        self
    }

    /// The span of one entry's apply: a child of its proposal's span when this node proposed
    /// it (it has a responder) and kept a handle; disabled otherwise, which costs nothing.
    fn apply_span(
        &self,
        entry: &openraft::alias::EntryOf<C>,
        proposed_here: bool,
    ) -> tracing::Span {
        let (Some(traces), EntryPayload::Normal(command), true) =
            (&self.traces, &entry.payload, proposed_here)
        else {
            return tracing::Span::none();
        };
        let Some(WriteTrace { span, request_id }) = traces.take(command.request_id) else {
            return tracing::Span::none();
        };
        tracing::info_span!(
            parent: &span,
            "raft.apply",
            group = self.group,
            log_index = entry.log_id().index,
            request_id = request_id.as_deref().unwrap_or(""),
        )
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The index of the last applied entry; the backend's state is exactly the state there.
    pub fn applied_index(&self) -> Option<u64> {
        self.applied.last_applied.map(|log_id| log_id.index)
    }

    #[cfg(test)]
    fn backend_mut_for_tests(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Applies one entry on the buffer; returns the answer for its proposer.
    fn apply_entry<R: KvRead>(
        &self,
        overlay: &mut Overlay<R>,
        entry: &openraft::alias::EntryOf<C>,
        applied: &mut AppliedState,
        events: &mut Vec<AppliedEvent>,
    ) -> io::Result<Response> {
        let log_id = entry.log_id();
        applied.last_applied = Some(log_id);
        match &entry.payload {
            EntryPayload::Blank => Ok(Response::no_command()),
            EntryPayload::Membership(membership) => {
                applied.membership = StoredMembership::new(Some(log_id), membership.clone());
                Ok(Response::no_command())
            }
            EntryPayload::Normal(command) => {
                let result = self.machine.apply(overlay, command).map_err(io_error)?;
                let log_index = log_id.index;
                events.extend(result.events.into_iter().map(|event| AppliedEvent {
                    group: self.group,
                    log_index,
                    event,
                }));
                Ok(Response {
                    result: result.result,
                    replayed: result.replayed,
                    effective_ts: result.effective_ts,
                })
            }
        }
    }
}

impl<B: Backend> openraft::storage::RaftStateMachine<C> for GroupStateMachine<B> {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = GroupSnapshotBuilder<B::Source>;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<C>>, StoredMembershipOf<C>), io::Error> {
        Ok((self.applied.last_applied, self.applied.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<C>, io::Error>> + Unpin + OptionalSend,
    {
        let mut applied = self.applied.clone();
        let mut answers = Vec::new();
        let mut events = Vec::new();
        let mut overlay = Overlay::new(self.backend.reader());
        // Spans of traced entries end after the batch's atomic write, which they include.
        let mut spans = Vec::new();
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let span = self.apply_span(&entry, responder.is_some());
            let response = span
                .in_scope(|| self.apply_entry(&mut overlay, &entry, &mut applied, &mut events))?;
            if !span.is_disabled() {
                spans.push(span);
            }
            answers.push((responder, response));
        }
        let writes = overlay.into_writes();
        self.backend.commit(writes, &applied)?;
        self.applied = applied;
        drop(spans);
        if let Some(stats) = &self.stats {
            stats.count_ends(events.iter().map(|applied| &applied.event));
        }
        for (responder, response) in answers {
            if let Some(responder) = responder {
                responder.send(response);
            }
        }
        for event in events {
            // No subscriber is not an error: events are for whoever listens now.
            let _ = self.events.send(event);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        GroupSnapshotBuilder {
            source: self.backend.snapshot_source(),
            store: self.backend.snapshot_store(),
            stats: self.stats.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<C>,
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        snapshot::verify(&snapshot)?;
        let applied = AppliedState {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        self.backend.replace(&snapshot, &applied)?;
        self.backend.snapshot_store().save(meta, &snapshot)?;
        self.applied = applied;
        if let Some(stats) = &self.stats {
            stats.snapshot_installed(snapshot.len());
        }
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<SnapshotOf<C, Vec<u8>>>, io::Error> {
        let current = self.backend.snapshot_store().load()?;
        Ok(current.map(|(meta, snapshot)| Snapshot { meta, snapshot }))
    }
}

/// Builds a snapshot from a consistent view, off the apply path.
pub struct GroupSnapshotBuilder<S: SnapshotSource> {
    source: S,
    store: Arc<dyn SnapshotStore>,
    stats: Option<Arc<GroupStats>>,
}

impl<S: SnapshotSource> RaftSnapshotBuilder<C> for GroupSnapshotBuilder<S> {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<C, Vec<u8>>, io::Error> {
        let (applied, snapshot) = self.source.export()?;
        let meta = SnapshotMetaOf::<C> {
            last_log_id: applied.last_applied,
            last_membership: applied.membership,
        };
        self.store.save(&meta, &snapshot)?;
        if let Some(stats) = &self.stats {
            stats.snapshot_built(snapshot.len());
        }
        Ok(Snapshot { meta, snapshot })
    }
}

#[cfg(test)]
mod tests;
