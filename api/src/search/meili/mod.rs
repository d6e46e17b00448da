//! The optional Meilisearch sink: each auction shard's leader copies its auctions into an
//! external Meilisearch index through `meilisearch-sdk`.
//!
//! DESIGN.md "Search": the node's own search is the tantivy index ([`super::tantivy_index`]);
//! this sink is for deployments that also want the auctions in a Meilisearch they run. It is
//! off unless the node is given a URL (`AUCTION_MEILI_URL`, with `AUCTION_MEILI_KEY` and
//! `AUCTION_MEILI_INDEX`, default `auctions`): without one nothing here runs and the indexer
//! notes nothing for it.
//!
//! - Source: the indexer, which already receives every applied batch's changed auction ids,
//!   also notes them in the [`SinkInbox`] (a bounded set per group, never waited on), and
//!   asks for a resync of every group it rescans.
//! - [`sink`]: one task per node. About every [`sink::PUSH_INTERVAL_MS`] it looks at which
//!   auction shards this node leads; for each, it re-reads the changed auctions from the local
//!   replica and pushes them as whole documents ([`document::Document`], primary key `id`),
//!   at most [`sink::DOCUMENTS_PER_REQUEST_MAX`] a request, and deletes the ids that are gone.
//!   Changes of shards it does not lead are dropped: their leaders push them.
//! - A shard whose leadership this node gains (or whose inbox overflowed, or that the indexer
//!   rescanned) is resynced whole: every auction is pushed with a new sync epoch built from the
//!   Raft term ([`state`]), then the shard's documents with an older epoch are deleted by
//!   filter, which removes what no longer exists.
//! - Settings (searchable, filterable, sortable attributes, [`document::settings`]) are written
//!   once per process start, before the first documents, and retried until accepted.
//! - Failures (Meilisearch down, refusing, slow): a warning at most every
//!   [`sink::WARNING_INTERVAL_MS`], the changes stay pending (at most
//!   [`state::PENDING_AUCTIONS_PER_GROUP_MAX`] per shard, past that the shard is resynced once
//!   Meilisearch answers) and the next attempt waits a backoff of up to
//!   [`sink::BACKOFF_MS_MAX`]. Nothing of this is on the apply path or the request path.
//!
//! Tested only against a mock HTTP server that answers as Meilisearch does (task objects for
//! writes), in `node/tests/meili.rs`; never against a real Meilisearch.
//!
//! Not done yet: the sink checks that each write was accepted (enqueued), not that its task
//! later succeeded; a deposed leader that has not noticed yet may push an older copy of an
//! auction after the new leader's resync (it is corrected by the auction's next change or the
//! next resync); changes of the last second before a node stops are left to the next leader's
//! resync; there are no metrics of the sink yet; an `https` URL uses the webpki roots (no
//! custom CA).

pub mod client;
pub mod document;
pub mod inbox;
pub mod sink;
pub mod state;

use std::sync::Arc;

use auction_raft::host::{NodeStorage, RaftHost};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use inbox::SinkInbox;

use crate::error::{ApiError, ApiResult};

/// The longest index uid Meilisearch accepts.
pub const INDEX_UID_CHARS_MAX: usize = 400;

/// Where the sink writes.
#[derive(Clone, PartialEq, Eq)]
pub struct MeiliConfig {
    /// `http://host:port` or `https://…`, without a trailing `/`.
    pub url: String,
    /// The API key, sent as `Authorization: Bearer …`.
    pub key: Option<String>,
    /// The index uid.
    pub index: String,
}

impl std::fmt::Debug for MeiliConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeiliConfig")
            .field("url", &self.url)
            .field("key", &self.key.as_ref().map(|_| "<hidden>"))
            .field("index", &self.index)
            .finish()
    }
}

impl MeiliConfig {
    /// Checks the settings; `None` without a URL (the sink is off).
    pub fn new(
        url: Option<&str>,
        key: Option<&str>,
        index: &str,
    ) -> ApiResult<Option<MeiliConfig>> {
        let Some(url) = url.map(str::trim).filter(|url| !url.is_empty()) else {
            return Ok(None);
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ApiError::validation(
                "meiliUrl",
                "the Meilisearch URL must start with http:// or https://",
            ));
        }
        let key = key.filter(|key| !key.is_empty());
        // The SDK puts the key in a header and panics on bytes a header cannot carry.
        if key.is_some_and(|key| !key.bytes().all(|byte| byte.is_ascii_graphic())) {
            return Err(ApiError::validation(
                "meiliKey",
                "the Meilisearch key must be printable ASCII without spaces",
            ));
        }
        let index_ok = !index.is_empty()
            && index.len() <= INDEX_UID_CHARS_MAX
            && index
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
        if !index_ok {
            return Err(ApiError::validation(
                "meiliIndex",
                "the Meilisearch index must be 1 to 400 letters, digits, '-' or '_'",
            ));
        }
        Ok(Some(MeiliConfig {
            url: url.trim_end_matches('/').to_owned(),
            key: key.map(str::to_owned),
            index: index.to_owned(),
        }))
    }
}

/// The running sink; [`SinkHandle::stop`] ends it (what is pending is left to the next
/// leader's resync).
pub struct SinkHandle {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl SinkHandle {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Starts the sink of `host`, fed through `inbox` (hand the same inbox to the indexer),
/// writing through `client` ([`client::MeiliClient::new`]).
pub fn spawn<S: NodeStorage>(
    host: Arc<RaftHost<S>>,
    inbox: Arc<SinkInbox>,
    client: client::MeiliClient,
) -> SinkHandle {
    let (stop, stopped) = oneshot::channel();
    let sink = sink::Sink {
        host,
        inbox,
        client,
        state: state::SyncState::default(),
        settings_written: false,
        failures: 0,
        warned_at: None,
    };
    SinkHandle {
        stop,
        task: tokio::spawn(sink.run(stopped)),
    }
}

#[cfg(test)]
mod tests;
