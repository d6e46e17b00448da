//! Group commit: one durability sync completes the pending log writes of every group.
//!
//! A log store writes an append (or a vote) into its write-ahead log right away, unsynced, so
//! the entries are readable when `append` returns, as openraft requires. It then queues a
//! [`SyncWaiter`] here. One sync worker per node takes the first waiter, drains every waiter
//! that is already queued (up to [`GroupCommitLimits::sync_batch_waiters_max`]), performs ONE
//! sync, and completes them all. Because the write-ahead log is a single sequential file, a sync
//! that starts after a write makes that write durable, whichever group it belongs to. Under
//! load, waiters pile up while a sync is running and the next sync covers all of them: the
//! number of syncs per committed entry falls as the number of busy groups grows.
//!
//! There are no timers: a sync starts as soon as a waiter is queued and the previous sync has
//! finished, so an idle node has no added latency and the worker is deterministic.
//!
//! A failed sync is permanent (after a failed `fsync` the kernel may have dropped the dirty
//! pages; retrying would lie). Every later waiter fails too and the node must restart.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::IOFlushed;
use openraft::RaftTypeConfig;
use tokio::sync::{mpsc, oneshot};

use crate::error::Error;

/// Bounds of the sync queue of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitLimits {
    /// Waiters that may be queued for the next sync; a full queue makes appends wait.
    pub sync_queue_waiters_max: usize,
    /// Waiters completed by one sync at most.
    pub sync_batch_waiters_max: usize,
}

impl Default for GroupCommitLimits {
    fn default() -> Self {
        Self {
            sync_queue_waiters_max: 4096,
            sync_batch_waiters_max: 1024,
        }
    }
}

/// Upper bounds of the sync latency buckets, in microseconds (the last bucket is unbounded).
pub const SYNC_LATENCY_BUCKETS_US: [u64; 12] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
];

/// Counters of the sync worker, shared with whoever wants to report them.
#[derive(Debug, Default)]
pub struct SyncCounters {
    syncs: AtomicU64,
    waiters_synced: AtomicU64,
    entries_synced: AtomicU64,
    /// Syncs per latency bucket of [`SYNC_LATENCY_BUCKETS_US`], plus one for slower ones.
    latency_buckets: [AtomicU64; SYNC_LATENCY_BUCKETS_US.len() + 1],
    latency_sum_us: AtomicU64,
}

/// The sync latency histogram at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncLatency {
    /// Syncs per bucket of [`SYNC_LATENCY_BUCKETS_US`] (not cumulative), then the slower ones.
    pub buckets: Vec<u64>,
    pub sum_us: u64,
}

impl SyncCounters {
    /// Durability syncs performed (WAL `fsync`s for RocksDB).
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Appends and votes completed by those syncs.
    pub fn waiters_synced(&self) -> u64 {
        self.waiters_synced.load(Ordering::Relaxed)
    }

    /// Log entries made durable by those syncs.
    pub fn entries_synced(&self) -> u64 {
        self.entries_synced.load(Ordering::Relaxed)
    }

    /// How long the syncs took.
    pub fn latency(&self) -> SyncLatency {
        SyncLatency {
            buckets: self
                .latency_buckets
                .iter()
                .map(|bucket| bucket.load(Ordering::Relaxed))
                .collect(),
            sum_us: self.latency_sum_us.load(Ordering::Relaxed),
        }
    }

    fn record(&self, batch: &[SyncWaiter<impl RaftTypeConfig>], took: std::time::Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = SYNC_LATENCY_BUCKETS_US
            .iter()
            .position(|bound| micros <= *bound)
            .unwrap_or(SYNC_LATENCY_BUCKETS_US.len());
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(micros, Ordering::Relaxed);
        let entries: u64 = batch.iter().map(SyncWaiter::entries).sum();
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.waiters_synced
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.entries_synced.fetch_add(entries, Ordering::Relaxed);
    }
}

/// Something waiting for the next sync.
pub(crate) enum SyncWaiter<C: RaftTypeConfig> {
    /// An append: openraft's completion callback, and how many entries it holds.
    Append {
        callback: IOFlushed<C>,
        entries: u64,
        epoch: u64,
    },
    /// A vote (or anything else) whose caller awaits durability.
    Signal {
        done: oneshot::Sender<Result<(), String>>,
        epoch: u64,
    },
}

impl<C: RaftTypeConfig> SyncWaiter<C> {
    fn entries(&self) -> u64 {
        match self {
            SyncWaiter::Append { entries, .. } => *entries,
            SyncWaiter::Signal { .. } => 0,
        }
    }

    fn epoch(&self) -> u64 {
        match self {
            SyncWaiter::Append { epoch, .. } | SyncWaiter::Signal { epoch, .. } => *epoch,
        }
    }

    fn complete(self, result: Result<(), String>) {
        match self {
            SyncWaiter::Append { callback, .. } => {
                callback.io_completed(result.map_err(io::Error::other));
            }
            SyncWaiter::Signal { done, .. } => {
                // The caller may have given up waiting; nobody is left to tell.
                let _ = done.send(result);
            }
        }
    }
}

/// The sending side of a node's sync queue; cloned into every group's log store.
pub(crate) struct SyncQueue<C: RaftTypeConfig> {
    tx: mpsc::Sender<SyncWaiter<C>>,
}

impl<C: RaftTypeConfig> Clone for SyncQueue<C> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<C: RaftTypeConfig> SyncQueue<C> {
    pub(crate) fn new(limits: GroupCommitLimits) -> (Self, mpsc::Receiver<SyncWaiter<C>>) {
        assert!(
            limits.sync_queue_waiters_max > 0,
            "sync queue must hold one waiter"
        );
        assert!(
            limits.sync_batch_waiters_max > 0,
            "sync batch must hold one waiter"
        );
        let (tx, rx) = mpsc::channel(limits.sync_queue_waiters_max);
        (Self { tx }, rx)
    }

    /// Queues an append's callback; it fires after the next sync.
    pub(crate) async fn append_synced(
        &self,
        callback: IOFlushed<C>,
        entries: u64,
        epoch: u64,
    ) -> Result<(), Error> {
        let waiter = SyncWaiter::Append {
            callback,
            entries,
            epoch,
        };
        self.tx.send(waiter).await.map_err(|_| Error::WriterStopped)
    }

    /// Returns once everything written before this call is durable.
    pub(crate) async fn wait_synced(&self, epoch: u64) -> Result<(), Error> {
        let (done, synced) = oneshot::channel();
        let waiter = SyncWaiter::Signal { done, epoch };
        self.tx
            .send(waiter)
            .await
            .map_err(|_| Error::WriterStopped)?;
        match synced.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(Error::WriterFailed(reason)),
            Err(_) => Err(Error::WriterStopped),
        }
    }
}

/// What a sync worker makes durable.
pub(crate) trait Durability: Send + Sync + 'static {
    /// Makes every write issued before this call durable.
    fn sync(&self) -> Result<(), String>;

    /// Waiters queued before a simulated crash carry an older epoch; they must fail.
    fn epoch(&self) -> u64 {
        0
    }
}

/// Takes `first` and every waiter already queued, up to `batch_waiters_max`.
pub(crate) fn drain_batch<C: RaftTypeConfig>(
    first: SyncWaiter<C>,
    rx: &mut mpsc::Receiver<SyncWaiter<C>>,
    batch_waiters_max: usize,
) -> Vec<SyncWaiter<C>> {
    let mut batch = Vec::with_capacity(batch_waiters_max.min(64));
    batch.push(first);
    while batch.len() < batch_waiters_max {
        match rx.try_recv() {
            Ok(waiter) => batch.push(waiter),
            Err(_) => break,
        }
    }
    batch
}

/// Syncs once for `batch` and completes every waiter in it. After a failed sync, `failure`
/// holds the reason and every later batch fails without syncing.
pub(crate) fn sync_batch<C: RaftTypeConfig>(
    durability: &dyn Durability,
    failure: &mut Option<String>,
    counters: &SyncCounters,
    batch: Vec<SyncWaiter<C>>,
) {
    if failure.is_none() {
        // Wall time, for the latency histogram only: nothing decides on it.
        let started = std::time::Instant::now();
        if let Err(reason) = durability.sync() {
            tracing::error!(%reason, "log sync failed; every later log write fails");
            *failure = Some(reason);
        } else {
            counters.record(&batch, started.elapsed());
        }
    }
    let epoch = durability.epoch();
    for waiter in batch {
        let result = match failure {
            Some(reason) => Err(reason.clone()),
            None if waiter.epoch() != epoch => Err("log store crashed before the sync".to_string()),
            None => Ok(()),
        };
        waiter.complete(result);
    }
}

/// Runs a sync worker on a dedicated thread: `fsync` blocks, and must not stall async tasks.
pub(crate) fn spawn_sync_thread<C: RaftTypeConfig>(
    name: &str,
    durability: Arc<dyn Durability>,
    counters: Arc<SyncCounters>,
    mut rx: mpsc::Receiver<SyncWaiter<C>>,
    limits: GroupCommitLimits,
) -> Result<std::thread::JoinHandle<()>, Error> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let mut failure = None;
            // Ends when every log store handle (every sender) is dropped.
            while let Some(first) = rx.blocking_recv() {
                let batch = drain_batch(first, &mut rx, limits.sync_batch_waiters_max);
                sync_batch(durability.as_ref(), &mut failure, &counters, batch);
            }
        })
        .map_err(Error::Io)
}

/// Runs a sync worker as a task of the current tokio runtime (for in-memory stores, whose sync
/// does not block; inside a simulation it runs on the simulated host like everything else).
pub(crate) fn spawn_sync_task<C: RaftTypeConfig>(
    durability: Arc<dyn Durability>,
    counters: Arc<SyncCounters>,
    mut rx: mpsc::Receiver<SyncWaiter<C>>,
    limits: GroupCommitLimits,
) {
    tokio::spawn(async move {
        let mut failure = None;
        while let Some(first) = rx.recv().await {
            let batch = drain_batch(first, &mut rx, limits.sync_batch_waiters_max);
            sync_batch(durability.as_ref(), &mut failure, &counters, batch);
        }
    });
}
