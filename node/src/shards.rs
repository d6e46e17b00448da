//! The shard count fixed at cluster init, and this node's agreement with it.
//!
//! An auction's shard is a function of the shard count, so a node that assumed another count
//! than the cluster's would route auctions to the wrong groups. The node that bootstraps the
//! cluster records its `--shards` in the meta group right after initialising the groups
//! (`Op::InitCluster`, [`record`]); apply keeps the first count and refuses any other. Every
//! node compares its own count with the stored one:
//!
//! - at start, from the meta group's state in its storage ([`check_storage`]): a restarted
//!   node whose count differs refuses to start, before any group runs or a port is bound;
//! - a node whose replica does not hold the count yet (a new node, before it is added with
//!   `auctionctl node add` and learns the meta group by replication) watches its replica
//!   ([`watch`]) and stops, naming both counts, as soon as a different count arrives.
//!
//! Not done yet: until a joining node has learnt the count it serves with its own (its groups
//! have no leader before it joins, so it answers little); a cluster initialised before the
//! count was recorded has none stored, and nothing records it later.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail};
use auction_raft::host::{ClientWrite, NodeStorage, RaftHost};
use auction_raft::state_machine::Backend;
use auction_statemachine::meta::cluster_settings;
use auction_statemachine::{KvRead, Op, RequestId, META_GROUP};
use tokio::sync::oneshot;

/// Attempts at recording the count while the meta group elects its first leader.
const RECORD_ATTEMPTS_MAX: u32 = 40;
const RECORD_RETRY_MS: u64 = 250;
/// Interval between two looks at the local meta replica while the count is not known.
const WATCH_INTERVAL_MS: u64 = 100;

/// What this node's meta replica says about the shard count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agreement {
    /// The replica holds the count and it is this node's.
    Agrees,
    /// The replica holds no count yet.
    Unknown,
}

/// The refusal naming both counts.
fn mismatch(configured: u32, stored: u32) -> anyhow::Error {
    anyhow!(
        "this node is configured with --shards {configured}, but the cluster was initialised \
         with {stored} shards: routing with another count would send auctions to the wrong \
         groups; restart it with --shards {stored}"
    )
}

/// Compares `configured` with the count in the meta group's state on `storage`, before any
/// group is started (nothing runs yet that a refusal would have to stop).
pub fn check_storage<S: NodeStorage>(storage: &S, configured: u32) -> anyhow::Result<Agreement> {
    let (_log, meta) = storage.open_group(META_GROUP)?;
    compare(&meta.reader(), configured)
}

/// Compares `configured` with the count in the local meta replica of a running host.
pub fn check_local<S: NodeStorage>(
    host: &RaftHost<S>,
    configured: u32,
) -> anyhow::Result<Agreement> {
    compare(&host.local_reader(META_GROUP)?, configured)
}

fn compare(meta: &impl KvRead, configured: u32) -> anyhow::Result<Agreement> {
    match cluster_settings(meta)? {
        Some(stored) if stored.shard_count != configured => {
            Err(mismatch(configured, stored.shard_count))
        }
        Some(_) => Ok(Agreement::Agrees),
        None => Ok(Agreement::Unknown),
    }
}

/// Records `configured` as the cluster's count (the first init), or confirms it (a later one);
/// an error names both counts when the cluster has another. Retries while the meta group has
/// no leader yet, with one request id, so the record is applied once.
pub async fn record<S: NodeStorage>(host: &RaftHost<S>, configured: u32) -> anyhow::Result<()> {
    let write = ClientWrite {
        group: META_GROUP,
        request_id: RequestId(uuid::Uuid::new_v4()),
        idempotency_key: None,
        op: Op::InitCluster {
            shard_count: configured,
        },
    };
    let mut last_error = None;
    for _ in 0..RECORD_ATTEMPTS_MAX {
        match host.propose(write.clone()).await {
            Ok(response) => {
                return match response.result {
                    Ok(_) => Ok(()),
                    // The only refusal of a valid count: the cluster holds another one.
                    Err(_) => match check_stored_after_refusal(host, configured).await {
                        Some(stored) => Err(mismatch(configured, stored)),
                        None => bail!("the meta group refused shard count {configured}"),
                    },
                };
            }
            Err(error) => last_error = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(RECORD_RETRY_MS)).await;
    }
    Err(anyhow!(
        "could not record the shard count in the meta group: {}",
        last_error.map_or_else(|| "no answer".to_owned(), |error| error.to_string())
    ))
}

/// The stored count, read linearizably after the meta group refused ours.
async fn check_stored_after_refusal<S: NodeStorage>(
    host: &RaftHost<S>,
    configured: u32,
) -> Option<u32> {
    let meta = host.linearizable_reader(META_GROUP).await.ok()?;
    let stored = cluster_settings(&meta).ok()??.shard_count;
    (stored != configured).then_some(stored)
}

/// Watches the local meta replica until it holds the count; sends the refusal if the count is
/// not `configured` (and nothing if it is).
pub fn watch<S: NodeStorage>(
    host: Arc<RaftHost<S>>,
    configured: u32,
) -> oneshot::Receiver<anyhow::Error> {
    let (refuse, refused) = oneshot::channel();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(WATCH_INTERVAL_MS));
        loop {
            interval.tick().await;
            if refuse.is_closed() {
                return;
            }
            match check_local(&host, configured) {
                Ok(Agreement::Unknown) => continue,
                Ok(Agreement::Agrees) => {
                    tracing::info!(shards = configured, "the cluster's shard count agrees");
                    return;
                }
                Err(error) => {
                    let _ = refuse.send(error);
                    return;
                }
            }
        }
    });
    refused
}
