//! The sink task: about every [`PUSH_INTERVAL_MS`], push what changed in the shards this
//! node leads.
//!
//! One tick: look at leadership (every auction shard, from this node's own Raft metrics),
//! take the inbox, write the settings if this process has not yet, resync every group that
//! needs it, then push the changed auctions of the others in batches of at most
//! [`DOCUMENTS_PER_REQUEST_MAX`]. A resync pages through the local replica
//! (`query::auctions`), pushes every auction with the group's new sync epoch, then deletes
//! the group's documents with an older epoch. Reads run on the blocking pool.
//!
//! A failed call ends the tick; what was not pushed stays pending (bounded, see
//! [`super::state`]) and the next tick comes after a backoff that doubles up to
//! [`BACKOFF_MS_MAX`]. Warnings are logged at most every [`WARNING_INTERVAL_MS`].

use std::sync::Arc;
use std::time::Duration;

use auction_raft::host::{NodeStorage, RaftHost};
use auction_raft::GroupId;
use auction_statemachine::{query, AuctionId, KvRead, META_GROUP};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::client::MeiliClient;
use super::document::Document;
use super::inbox::SinkInbox;
use super::state::SyncState;
use crate::error::{ApiError, ApiResult};

/// How often changes are pushed.
pub const PUSH_INTERVAL_MS: u64 = 1_000;
/// The longest wait between attempts while Meilisearch fails.
pub const BACKOFF_MS_MAX: u64 = 30_000;
/// Documents (or ids to delete) in one request, at most.
pub const DOCUMENTS_PER_REQUEST_MAX: usize = 1_000;
/// At most one warning about failures this often.
pub const WARNING_INTERVAL_MS: u64 = 30_000;

pub(super) struct Sink<S: NodeStorage> {
    pub host: Arc<RaftHost<S>>,
    pub inbox: Arc<SinkInbox>,
    pub client: MeiliClient,
    pub state: SyncState,
    pub settings_written: bool,
    pub failures: u32,
    pub warned_at: Option<Instant>,
}

impl<S: NodeStorage> Sink<S> {
    pub async fn run(mut self, mut stopped: oneshot::Receiver<()>) {
        let mut delay_ms = PUSH_INTERVAL_MS;
        loop {
            tokio::select! {
                _ = &mut stopped => return,
                _ = tokio::time::sleep(Duration::from_millis(delay_ms)) => {}
            }
            let result = tokio::select! {
                _ = &mut stopped => return,
                result = self.tick() => result,
            };
            delay_ms = self.next_delay_ms(result);
        }
    }

    fn next_delay_ms(&mut self, result: ApiResult<()>) -> u64 {
        match result {
            Ok(()) => {
                if self.failures > 0 {
                    tracing::info!(
                        failures = self.failures,
                        "meilisearch sink: writes succeed again"
                    );
                }
                self.failures = 0;
                self.warned_at = None;
                PUSH_INTERVAL_MS
            }
            Err(error) => {
                self.failures = self.failures.saturating_add(1);
                let quiet = self
                    .warned_at
                    .is_some_and(|at| at.elapsed() < Duration::from_millis(WARNING_INTERVAL_MS));
                if !quiet {
                    self.warned_at = Some(Instant::now());
                    tracing::warn!(
                        error = %error.message,
                        failures = self.failures,
                        "meilisearch sink: a write failed; changes stay pending and are retried"
                    );
                }
                backoff_ms(self.failures)
            }
        }
    }

    /// One round: leadership, inbox, settings, resyncs, changes.
    async fn tick(&mut self) -> ApiResult<()> {
        self.observe_leadership();
        self.state.receive(self.inbox.take());
        if !self.state.has_work() {
            return Ok(());
        }
        if !self.settings_written {
            self.client.set_settings().await?;
            self.settings_written = true;
        }
        for (group, sync_epoch) in self.state.resyncs() {
            self.resync(group, sync_epoch).await?;
        }
        for group in self.state.groups_pending() {
            self.push_pending(group).await?;
        }
        Ok(())
    }

    fn observe_leadership(&mut self) {
        let mut hosted = std::collections::BTreeSet::new();
        for status in self.host.local_statuses() {
            if status.group_id == META_GROUP {
                continue;
            }
            hosted.insert(status.group_id);
            let term = status.is_leader().then_some(status.term);
            self.state.observe(status.group_id, term);
        }
        self.state.retain(&hosted);
    }

    fn leads(&self, group: GroupId) -> bool {
        self.host
            .group_status(group)
            .is_ok_and(|status| status.is_leader())
    }

    /// Pushes every auction of `group` with `sync_epoch`, then deletes its older documents.
    async fn resync(&mut self, group: GroupId, sync_epoch: u64) -> ApiResult<()> {
        let reader = self.host.local_reader(group)?;
        let mut after = None;
        let mut pushed = 0_usize;
        loop {
            if !self.leads(group) {
                // The next tick drops the group; its new leader resyncs it.
                return Ok(());
            }
            let page_reader = reader.clone();
            let (documents, last) = blocking(move || {
                read_after(
                    &page_reader,
                    group,
                    after,
                    sync_epoch,
                    DOCUMENTS_PER_REQUEST_MAX,
                )
            })
            .await?;
            if !documents.is_empty() {
                self.client.put(&documents).await?;
                pushed += documents.len();
            }
            if documents.len() < DOCUMENTS_PER_REQUEST_MAX {
                break;
            }
            after = last;
        }
        self.client.delete_older(group, sync_epoch).await?;
        self.state.resync_done(group, sync_epoch);
        tracing::info!(
            group,
            sync_epoch,
            documents = pushed,
            "meilisearch sink: shard resynced"
        );
        Ok(())
    }

    /// Pushes the changed auctions of `group`, a batch at a time.
    async fn push_pending(&mut self, group: GroupId) -> ApiResult<()> {
        let reader = self.host.local_reader(group)?;
        while let Some((ids, sync_epoch)) =
            self.state.next_pending(group, DOCUMENTS_PER_REQUEST_MAX)
        {
            let batch_reader = reader.clone();
            let batch_ids = ids.clone();
            let (documents, gone) =
                blocking(move || read_ids(&batch_reader, group, &batch_ids, sync_epoch)).await?;
            if !documents.is_empty() {
                self.client.put(&documents).await?;
            }
            if !gone.is_empty() {
                self.client.delete(&gone).await?;
            }
            self.state.pushed(group, &ids);
        }
        Ok(())
    }
}

/// The wait after `failures` failures in a row.
pub fn backoff_ms(failures: u32) -> u64 {
    let doublings = failures.min(16);
    PUSH_INTERVAL_MS
        .saturating_mul(1_u64 << doublings)
        .min(BACKOFF_MS_MAX)
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| ApiError::internal("a meilisearch sink read was interrupted"))?
}

/// Up to `count` documents of the auctions after `after`, and the last id read.
fn read_after<R: KvRead>(
    reader: &R,
    group: GroupId,
    mut after: Option<AuctionId>,
    sync_epoch: u64,
    count: usize,
) -> ApiResult<(Vec<Document>, Option<AuctionId>)> {
    let mut documents = Vec::with_capacity(count);
    while documents.len() < count {
        let limit = (count - documents.len()).min(query::PAGE_ITEMS_MAX);
        let page = query::auctions(reader, after, limit)?;
        let Some(last) = page.last() else {
            break;
        };
        after = Some(last.id);
        documents.extend(page.iter().map(|a| Document::new(group, a, sync_epoch)));
        if page.len() < limit {
            break;
        }
    }
    Ok((documents, after))
}

/// The documents of `ids` that exist, and the ids of those that are gone.
fn read_ids<R: KvRead>(
    reader: &R,
    group: GroupId,
    ids: &[AuctionId],
    sync_epoch: u64,
) -> ApiResult<(Vec<Document>, Vec<String>)> {
    let mut documents = Vec::with_capacity(ids.len());
    let mut gone = Vec::new();
    for id in ids {
        match query::auction(reader, *id)? {
            Some(auction) => documents.push(Document::new(group, &auction, sync_epoch)),
            None => gone.push(id.to_string()),
        }
    }
    Ok((documents, gone))
}
