//! The sink's four Meilisearch calls through `meilisearch-sdk`, each bounded in time.
//!
//! Every write answers with a task that Meilisearch runs later, in the order the writes were
//! enqueued on the index; a call succeeds when the write is accepted (enqueued). The SDK's
//! HTTP client (reqwest) has no time-out of its own, so each call is cut at
//! [`REQUEST_TIMEOUT_MS`].

use std::future::Future;
use std::time::Duration;

use auction_raft::GroupId;
use meilisearch_sdk::client::Client;
use meilisearch_sdk::documents::DocumentDeletionQuery;
use meilisearch_sdk::indexes::Index;

use super::document::{self, Document, PRIMARY_KEY};
use super::MeiliConfig;
use crate::error::{ApiError, ApiResult};

/// How long one call may take (connection, request, answer).
pub const REQUEST_TIMEOUT_MS: u64 = 10_000;

/// One Meilisearch index, as the sink writes it.
#[derive(Debug, Clone)]
pub struct MeiliClient {
    index: Index,
}

impl MeiliClient {
    pub fn new(config: &MeiliConfig) -> ApiResult<MeiliClient> {
        let client = Client::new(config.url.as_str(), config.key.as_deref())
            .map_err(|error| ApiError::internal(format!("meilisearch client: {error}")))?;
        Ok(MeiliClient {
            index: client.index(config.index.as_str()),
        })
    }

    /// Sets the searchable, filterable and sortable attributes (creates the index if needed).
    pub async fn set_settings(&self) -> ApiResult<()> {
        call("settings", self.index.set_settings(&document::settings())).await
    }

    /// Adds or replaces whole documents.
    pub async fn put(&self, documents: &[Document]) -> ApiResult<()> {
        call(
            "documents",
            self.index.add_or_replace(documents, Some(PRIMARY_KEY)),
        )
        .await
    }

    /// Deletes documents by id.
    pub async fn delete(&self, ids: &[String]) -> ApiResult<()> {
        call("delete", self.index.delete_documents(ids)).await
    }

    /// Deletes the documents of `group` written before the resync of `sync_epoch`.
    pub async fn delete_older(&self, group: GroupId, sync_epoch: u64) -> ApiResult<()> {
        let filter = older_filter(group, sync_epoch);
        let mut query = DocumentDeletionQuery::new(&self.index);
        query.with_filter(&filter);
        call("delete by filter", self.index.delete_documents_with(&query)).await
    }
}

/// The filter of [`MeiliClient::delete_older`].
pub fn older_filter(group: GroupId, sync_epoch: u64) -> String {
    format!("group = {group} AND syncEpoch < {sync_epoch}")
}

async fn call<T>(
    what: &str,
    request: impl Future<Output = Result<T, meilisearch_sdk::errors::Error>>,
) -> ApiResult<()> {
    match tokio::time::timeout(Duration::from_millis(REQUEST_TIMEOUT_MS), request).await {
        Ok(Ok(_task)) => Ok(()),
        Ok(Err(error)) => Err(ApiError::internal(format!("meilisearch {what}: {error}"))),
        Err(_) => Err(ApiError::internal(format!(
            "meilisearch {what}: no answer within {REQUEST_TIMEOUT_MS} ms"
        ))),
    }
}
