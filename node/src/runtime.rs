//! A running node: RocksDB storage, every Raft group, the node-to-node gRPC server (mutual TLS
//! with the cluster CA unless `--insecure-grpc`) and the HTTP server (the whole API of
//! `auction-api`, operations endpoints included), and a graceful stop (servers first, then the
//! groups, then the storage, so the log's last sync completes before the database closes).
//! A node whose `--shards` is not the cluster's refuses to start, or stops once it learns the
//! cluster's count by replication ([`crate::shards`], [`RunningNode::refused`]).
//!
//! Search: the storage is wrapped in the raft crate's change feed (`FeedStorage`), whose
//! batches feed the search index under `<data dir>/search` (`auction_api::search`); the
//! indexer stops after the groups, with a last commit, so a clean restart rescans nothing.
//! With `--meili-url` the indexer also feeds the Meilisearch sink
//! (`auction_api::search::meili`), which stops before the groups; without it no sink runs.
//!
//! Images: with `--s3-endpoint` the API stores image bytes in that S3-compatible store
//! (`auction_api::images`); the bucket is created at start if missing (in the background: a
//! store that is down delays nothing but uploads), and the orphan sweep runs until the stop.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use auction_api::images::{sweep, Images};
use auction_api::search::indexer::{self, IndexerHandle};
use auction_api::search::meili::{self, SinkHandle, SinkInbox};
use auction_api::search::tantivy_index::{Opened, TantivyIndex};
use auction_api::Services;
use auction_raft::host::{RaftHost, RocksStorage, SystemClock};
use auction_raft::network::tcp_channel_factory;
use auction_raft::state_machine::feed::{change_feed_with, FeedStorage};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

use crate::config::NodeArgs;
use crate::shards::{self, Agreement};

/// How long a stop waits for in-flight work to release the storage before giving up.
const STORAGE_RELEASE_WAIT_MS_MAX: u64 = 10_000;

struct Server {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Server {
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// A node's storage: RocksDB, with the change feed of the search index.
pub type NodeStorage = FeedStorage<RocksStorage>;
/// A node's Raft host.
pub type NodeHost = RaftHost<NodeStorage>;

pub struct RunningNode {
    host: Arc<NodeHost>,
    indexer: IndexerHandle,
    /// The Meilisearch sink, with `--meili-url`.
    sink: Option<SinkHandle>,
    /// The image orphan sweep, with `--s3-endpoint`.
    sweep: Option<JoinHandle<()>>,
    grpc: Server,
    http: Server,
    pub http_addr: std::net::SocketAddr,
    pub grpc_addr: std::net::SocketAddr,
    /// Sends why the node must stop serving: the cluster's shard count, learnt after start,
    /// is not this node's. `None` when the count was confirmed at start.
    refusal: Option<oneshot::Receiver<anyhow::Error>>,
}

impl RunningNode {
    pub async fn start(args: &NodeArgs) -> anyhow::Result<RunningNode> {
        // First, before any storage is opened: a node without its credentials refuses to start.
        let config = args.host_config()?;
        // The sink's client too, so that a bad Meilisearch setting refuses the start.
        let meili = match args.meili_config()? {
            Some(config) => Some((
                meili::client::MeiliClient::new(&config)
                    .map_err(|error| anyhow::anyhow!("the Meilisearch sink: {}", error.message))?,
                config,
            )),
            None => None,
        };
        let images = match args.image_settings() {
            Some(settings) => {
                Some(Arc::new(Images::new(settings).map_err(|error| {
                    anyhow::anyhow!("the image store: {}", error.message)
                })?))
            }
            None => None,
        };
        let mut grpc_server = tonic::transport::Server::builder();
        if let Some(tls) = &config.network.tls {
            // Requires a client certificate of the cluster CA on every connection.
            grpc_server = grpc_server
                .tls_config(tls.server_config())
                .context("node-to-node TLS: the server cannot use node.pem and node-key.pem")?;
        }
        let peers = args.peer_map()?;
        // A restore that failed half-way left a directory no node may serve from.
        crate::restore::refuse_unfinished(&args.data_dir)?;
        let storage = RocksStorage::open(&args.data_dir).context("opening the data directory")?;
        // A restart with another shard count stops here, before any group runs.
        let agreement = match shards::check_storage(&storage, args.shards) {
            Ok(agreement) => agreement,
            Err(refusal) => {
                let _ = storage.close();
                return Err(refusal);
            }
        };
        let (index, opened) = TantivyIndex::open(&args.search_dir())
            .map_err(|error| anyhow::anyhow!("opening the search index: {}", error.message))?;
        if opened == Opened::Rebuilt {
            tracing::info!("the search index is new: every shard is indexed from its replica");
        }
        let index = Arc::new(index);
        // Bids reach the index through its live overlay, not a re-indexed document.
        let live_test = (!args.search_reindex_bids).then(auction_api::search::live::live_test);
        let (feed, changes) = change_feed_with(live_test);
        let storage = Arc::new(FeedStorage::new(storage, feed));
        let factory = tcp_channel_factory(&config.network);
        let host =
            Arc::new(RaftHost::start(config, storage, factory, Arc::new(SystemClock)).await?);
        let inbox = meili.as_ref().map(|_| Arc::new(SinkInbox::new()));
        let indexer = indexer::spawn(host.clone(), index.clone(), changes, inbox.clone());
        let sink = match (meili, inbox) {
            (Some((client, config)), Some(inbox)) => {
                tracing::info!(url = %config.url, index = %config.index, "meilisearch sink on");
                Some(meili::spawn(host.clone(), inbox, client))
            }
            _ => None,
        };

        let grpc_listener = TcpListener::bind(args.grpc_addr)
            .await
            .with_context(|| format!("binding gRPC {}", args.grpc_addr))?;
        let grpc_addr = grpc_listener.local_addr()?;
        let routes = host.grpc_services();
        let grpc = spawn_server(move |stopped| async move {
            grpc_server
                .add_routes(routes)
                .serve_with_incoming_shutdown(TcpIncoming::from(grpc_listener), stopped)
                .await
                .map_err(anyhow::Error::from)
        });

        let http_listener = TcpListener::bind(args.http_addr)
            .await
            .with_context(|| format!("binding HTTP {}", args.http_addr))?;
        let http_addr = http_listener.local_addr()?;
        let sweep = images.clone().map(|images| {
            let store = images.clone();
            tokio::spawn(async move {
                match store.store.ensure_bucket().await {
                    Ok(()) => tracing::info!(endpoint = %store.store.endpoint(), bucket = %store.store.bucket(), "image store ready"),
                    Err(error) => tracing::warn!(message = %error.message, "the image store is not reachable yet; uploads will retry"),
                }
            });
            sweep::spawn(host.clone(), images)
        });
        let services = Services {
            search: Some(index),
            images,
        };
        let app = auction_api::router_with_services(host.clone(), args.api_config(), services);
        let limits = args.server_limits();
        let http = spawn_server(move |stopped| async move {
            auction_api::server::serve(http_listener, app, limits, stopped).await;
            Ok(())
        });

        let mut node = RunningNode {
            host,
            indexer,
            sink,
            sweep,
            grpc,
            http,
            http_addr,
            grpc_addr,
            refusal: None,
        };
        if args.init {
            if let Err(error) = node.bootstrap(args, &peers).await {
                let _ = node.stop().await;
                return Err(error);
            }
        } else if agreement == Agreement::Unknown {
            node.refusal = Some(shards::watch(node.host.clone(), args.shards));
        }
        Ok(node)
    }

    /// Resolves with the reason to stop when the node learns, after start, that the cluster's
    /// shard count is not its own; never resolves otherwise.
    pub async fn refused(&mut self) -> anyhow::Error {
        match self.refusal.as_mut() {
            Some(refusal) => match refusal.await {
                Ok(error) => error,
                // The watch ended without a refusal: the counts agree.
                Err(_) => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    }

    pub fn host(&self) -> &Arc<NodeHost> {
        &self.host
    }

    async fn bootstrap(
        &self,
        args: &NodeArgs,
        peers: &BTreeMap<u64, String>,
    ) -> anyhow::Result<()> {
        let mut members = peers.clone();
        members.insert(args.id, args.rpc_addr());
        tracing::info!(voters = ?members.keys().collect::<Vec<_>>(), "initialising every group");
        self.host
            .initialize(members)
            .await
            .context("initialising the cluster")?;
        // The first init records the shard count; a later one must name the same.
        shards::record(&self.host, args.shards).await
    }

    /// Stops serving, stops the groups, then closes the storage.
    pub async fn stop(self) -> anyhow::Result<()> {
        let RunningNode {
            host,
            indexer,
            sink,
            sweep,
            grpc,
            http,
            refusal,
            ..
        } = self;
        // It holds the host; a round cut short deletes nothing it has not checked.
        if let Some(sweep) = sweep {
            sweep.abort();
            let _ = sweep.await;
        }
        // Ends the shard count watch, which holds the host.
        drop(refusal);
        http.stop().await;
        host.close_peer_streams();
        grpc.stop().await;
        // Before the groups: what it has not pushed is the next leader's resync.
        if let Some(sink) = sink {
            sink.stop().await;
        }
        host.shutdown().await;
        // After the groups: the last commit records every group's final position.
        indexer.stop().await;
        let storage = host.storage().clone();
        drop(host);
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(STORAGE_RELEASE_WAIT_MS_MAX);
        while Arc::strong_count(&storage) > 1 {
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "the storage is still in use {STORAGE_RELEASE_WAIT_MS_MAX} ms after shutdown"
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        match Arc::try_unwrap(storage) {
            Ok(storage) => tokio::task::spawn_blocking(move || storage.into_inner().close())
                .await?
                .map_err(anyhow::Error::from),
            Err(_) => bail!("the storage is still in use after shutdown"),
        }
    }
}

fn spawn_server<F, Fut>(serve: F) -> Server
where
    F: FnOnce(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let (stop, stopped) = oneshot::channel::<()>();
    let stopped = Box::pin(async move {
        let _ = stopped.await;
    });
    let future = serve(stopped);
    let task = tokio::spawn(async move {
        if let Err(error) = future.await {
            tracing::error!(%error, "server stopped with an error");
        }
    });
    Server { stop, task }
}
