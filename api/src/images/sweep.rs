//! The orphan sweep: deletes image objects that no committed command refers to once they are
//! older than the grace period: uploads that crashed or failed between storing the bytes and
//! committing the metadata, and what a removal or a cancel failed to delete at once.
//!
//! One node sweeps: the one leading the meta group when a round starts (a round that overlaps
//! a leader change on another node deletes nothing that is referenced, so two at once are
//! harmless, only wasteful). A round lists the bucket in pages, at most
//! [`SWEEP_KEYS_PER_ROUND_MAX`] keys, and checks each old enough object against a linearizable
//! read of its auction's shard, so an image committed a moment ago is never taken for an
//! orphan. Keys that are not ours (see [`super::parse_key`]) are left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use auction_raft::host::{NodeStorage, RaftHost};
use auction_raft::GroupId;
use auction_statemachine::{query, AuctionId, META_GROUP};
use tokio::task::JoinHandle;

use super::store::ObjectEntry;
use super::{parse_key, Images};
use crate::error::{ApiError, ApiResult};

/// Most keys one round looks at; the next round starts from the beginning again.
pub const SWEEP_KEYS_PER_ROUND_MAX: usize = 100_000;

/// What a round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub listed: usize,
    pub deleted: usize,
}

/// Sweeps every `sweep_interval` while this node leads the meta group.
pub fn spawn<S: NodeStorage>(host: Arc<RaftHost<S>>, images: Arc<Images>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(images.settings.sweep_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            if host.leader_of(META_GROUP) != Some(host.node_id()) {
                continue;
            }
            match sweep_once(&host, &images).await {
                Ok(report) if report.deleted > 0 => {
                    tracing::info!(
                        listed = report.listed,
                        deleted = report.deleted,
                        "image sweep"
                    )
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(message = %error.message, "image sweep failed"),
            }
        }
    })
}

/// Old enough objects of our key shape, by auction.
async fn old_objects(
    images: &Images,
    now_ms: i64,
) -> ApiResult<(usize, BTreeMap<AuctionId, Vec<ObjectEntry>>)> {
    let grace_ms = i64::try_from(images.settings.orphan_grace.as_millis()).unwrap_or(i64::MAX);
    let mut by_auction: BTreeMap<AuctionId, Vec<ObjectEntry>> = BTreeMap::new();
    let mut listed = 0;
    let mut next = None;
    loop {
        let (entries, continuation) = images.store.list_page(next).await?;
        listed += entries.len();
        for entry in entries {
            let Some(parsed) = parse_key(&entry.key) else {
                continue;
            };
            if now_ms.saturating_sub(entry.modified_ms) >= grace_ms {
                by_auction.entry(parsed.auction).or_default().push(entry);
            }
        }
        next = continuation;
        if next.is_none() || listed >= SWEEP_KEYS_PER_ROUND_MAX {
            return Ok((listed, by_auction));
        }
    }
}

/// One round: list, check against the committed metadata, delete what nothing refers to.
pub async fn sweep_once<S: NodeStorage>(
    host: &RaftHost<S>,
    images: &Images,
) -> ApiResult<SweepReport> {
    let now_ms = host.clock().now_ms();
    let (listed, by_auction) = old_objects(images, now_ms).await?;
    let shard_count = host.config().shard_count;
    let mut readers = BTreeMap::new();
    let mut deleted = 0;
    for (auction, entries) in by_auction {
        let group: GroupId = crate::shard::shard_of(auction, shard_count);
        let reader = match readers.entry(group) {
            std::collections::btree_map::Entry::Occupied(known) => known.into_mut(),
            std::collections::btree_map::Entry::Vacant(slot) => {
                let reader = host
                    .linearizable_reader(group)
                    .await
                    .map_err(ApiError::from)?;
                slot.insert(reader)
            }
        };
        let referenced: BTreeSet<String> = query::auction_images(&*reader, auction)?
            .into_iter()
            .flat_map(|image| [image.original.key, image.thumbnail.key])
            .collect();
        for entry in entries
            .iter()
            .filter(|entry| !referenced.contains(&entry.key))
        {
            images.store.delete(&entry.key).await?;
            deleted += 1;
        }
    }
    Ok(SweepReport { listed, deleted })
}
