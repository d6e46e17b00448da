//! A node's command line and environment: who it is, where it listens, where its data lives,
//! who its peers are, whether it bootstraps the cluster, and its node-to-node TLS credentials
//! (required unless `--insecure-grpc` opts out, which logs a warning at every start).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use auction_api::images::store::StoreConfig;
use auction_api::images::ImageSettings;
use auction_api::search::meili::MeiliConfig;
use auction_raft::host::HostConfig;
use auction_raft::network::TlsIdentity;
use clap::Args;

/// One node.
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// This node's id, unique in the cluster (> 0).
    #[arg(long, env = "AUCTION_NODE_ID")]
    pub id: u64,
    /// Address of the HTTP server (the API and the operations endpoints).
    #[arg(long, env = "AUCTION_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Address the node-to-node gRPC server binds.
    #[arg(long, env = "AUCTION_GRPC_ADDR", default_value = "127.0.0.1:7000")]
    pub grpc_addr: SocketAddr,
    /// The gRPC address peers use to reach this node, if not `--grpc-addr` (e.g. a DNS name).
    #[arg(long, env = "AUCTION_ADVERTISE_ADDR")]
    pub advertise_addr: Option<String>,
    /// Directory of this node's RocksDB and snapshots.
    #[arg(long, env = "AUCTION_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// The other initial members, as `ID=HOST:PORT` (repeat, or comma-separate).
    #[arg(long = "peer", env = "AUCTION_PEERS", value_delimiter = ',')]
    pub peers: Vec<String>,
    /// Bootstrap the cluster: this node and its peers become the voters of every group. Only
    /// on the first start of one node; ignored when the groups are already initialised.
    #[arg(long, env = "AUCTION_INIT")]
    pub init: bool,
    /// Auction shards (Raft groups 1..=S besides the meta group). Fixed at cluster init.
    #[arg(long, env = "AUCTION_SHARDS", default_value_t = 8)]
    pub shards: u32,
    /// The cluster admin token: requests carrying it as `X-Admin-Token` may grant roles (this
    /// is how the first admin is made). Unset disables it.
    #[arg(long, env = "AUCTION_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Interval of the heartbeat comments of server-sent event streams, in ms.
    #[arg(long, env = "AUCTION_SSE_HEARTBEAT_MS", default_value_t = 15_000)]
    pub sse_heartbeat_ms: u64,
    /// HTTP connections served at once; beyond it a connection gets one 503 and is closed.
    #[arg(long, env = "AUCTION_HTTP_CONNECTIONS_MAX", default_value_t = 4_096)]
    pub http_connections_max: usize,
    /// How long a client may take to send request headers, and to idle between requests, in ms.
    #[arg(
        long,
        env = "AUCTION_HTTP_HEADER_READ_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub http_header_read_timeout_ms: u64,
    /// Event streams open at once on this node.
    #[arg(long, env = "AUCTION_SSE_STREAMS_MAX", default_value_t = 2_048)]
    pub sse_streams_max: usize,
    /// Event streams open at once per client IP.
    #[arg(long, env = "AUCTION_SSE_STREAMS_PER_CLIENT_MAX", default_value_t = 16)]
    pub sse_streams_per_client_max: usize,
    /// Mark the session cookie `Secure` (when the API is served over TLS).
    #[arg(long, env = "AUCTION_COOKIE_SECURE")]
    pub cookie_secure: bool,
    /// Bids (manual, proxy, buy now) per user per minute, cluster-wide (every node must use
    /// the same value); 0 disables the limit.
    #[arg(long, env = "AUCTION_BID_RATE_PER_MINUTE", default_value_t = 10)]
    pub bid_rate_per_minute: u32,
    /// Login attempts per account before waits begin, cluster-wide; 0 disables the backoff.
    #[arg(long, env = "AUCTION_LOGIN_ATTEMPTS_FREE", default_value_t = 5)]
    pub login_attempts_free: u32,
    /// The first wait after the free login attempts, in ms; each further attempt doubles it
    /// (at most 15 minutes).
    #[arg(long, env = "AUCTION_LOGIN_BACKOFF_MIN_MS", default_value_t = 1_000)]
    pub login_backoff_min_ms: u64,
    /// Requests per client IP per minute on this node; 0 disables the limit.
    #[arg(long, env = "AUCTION_IP_RATE_PER_MINUTE", default_value_t = 1_200)]
    pub ip_rate_per_minute: u32,
    /// Directory of this node's node-to-node TLS credentials: `ca.pem` (the cluster CA),
    /// `node.pem` and `node-key.pem` (made by `auction-node certs`). Default `DATA_DIR/tls`.
    #[arg(long, env = "AUCTION_TLS_DIR")]
    pub tls_dir: Option<PathBuf>,
    /// Serve and dial node-to-node gRPC in plaintext, without authentication: anyone who
    /// reaches the gRPC port can then vote, install snapshots, forward writes and change
    /// membership. Only for a throwaway cluster on an isolated machine.
    #[arg(long, env = "AUCTION_INSECURE_GRPC", conflicts_with = "tls_dir")]
    pub insecure_grpc: bool,
    /// Send Raft appends as one unary gRPC call each instead of on one stream per peer: for a
    /// cluster with nodes of a version that does not serve the stream, and A/B benchmarks.
    #[arg(long, env = "AUCTION_RAFT_UNARY_APPENDS")]
    pub raft_unary_appends: bool,
    /// Re-index an auction's search document on every bid instead of showing bids through the
    /// index's live overlay: the behaviour before the overlay, for A/B benchmarks.
    #[arg(long, env = "AUCTION_SEARCH_REINDEX_BIDS")]
    pub search_reindex_bids: bool,
    /// A group leader proposes housekeeping (purging expired records) at least this often, in
    /// ms; closing due auctions does not wait for it. Tests that count log entries raise it.
    #[arg(
        long,
        env = "AUCTION_HOUSEKEEPING_INTERVAL_MS",
        default_value_t = 10_000
    )]
    pub housekeeping_interval_ms: u64,
    /// Each group builds a snapshot after this many applied entries since its last one (and
    /// may then drop the log behind it, see the next flag).
    #[arg(
        long,
        env = "AUCTION_SNAPSHOT_EVERY_ENTRIES",
        default_value_t = 20_000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub snapshot_every_entries: u64,
    /// Log entries each group keeps behind its last snapshot, for followers a little behind;
    /// a follower further behind is sent the snapshot instead.
    #[arg(
        long,
        env = "AUCTION_LOG_ENTRIES_KEPT_AFTER_SNAPSHOT",
        default_value_t = 2_000
    )]
    pub log_entries_kept_after_snapshot: u64,
    /// Also push every shard this node leads to this Meilisearch (`http://HOST:PORT`), about
    /// once a second; unset, no sink runs.
    #[arg(long, env = "AUCTION_MEILI_URL")]
    pub meili_url: Option<String>,
    /// The Meilisearch API key (sent as a bearer token).
    #[arg(long, env = "AUCTION_MEILI_KEY", hide_env_values = true)]
    pub meili_key: Option<String>,
    /// The Meilisearch index the auctions go to.
    #[arg(long, env = "AUCTION_MEILI_INDEX", default_value = "auctions")]
    pub meili_index: String,
    /// Serve the web page from this directory instead of the copy built into the binary (for
    /// working on the page: edit, reload).
    #[arg(long, env = "AUCTION_WEB_DIR")]
    pub web_dir: Option<PathBuf>,
    /// The S3-compatible object store that holds auction images (`http://HOST:PORT`); unset,
    /// image uploads are refused with 503 and auctions show no images.
    #[arg(long, env = "AUCTION_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// The bucket the images go to; created at start if it is missing.
    #[arg(long, env = "AUCTION_S3_BUCKET", default_value = "auction-images")]
    pub s3_bucket: String,
    #[arg(long, env = "AUCTION_S3_ACCESS_KEY", hide_env_values = true)]
    pub s3_access_key: Option<String>,
    #[arg(long, env = "AUCTION_S3_SECRET_KEY", hide_env_values = true)]
    pub s3_secret_key: Option<String>,
    #[arg(long, env = "AUCTION_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// An image object that no committed command refers to is deleted once it is this old
    /// (an upload that crashed between storing the bytes and committing the metadata).
    #[arg(
        long,
        env = "AUCTION_IMAGE_ORPHAN_GRACE_SECONDS",
        default_value_t = 3_600
    )]
    pub image_orphan_grace_seconds: u64,
    /// How often the node leading the meta group sweeps the bucket for such orphans.
    #[arg(long, env = "AUCTION_IMAGE_SWEEP_INTERVAL_SECONDS", default_value_t = 600,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub image_sweep_interval_seconds: u64,
}

impl NodeArgs {
    /// The advertised node-to-node address.
    pub fn rpc_addr(&self) -> String {
        self.advertise_addr
            .clone()
            .unwrap_or_else(|| self.grpc_addr.to_string())
    }

    /// `ID=HOST:PORT` pairs of the peers.
    pub fn peer_map(&self) -> anyhow::Result<BTreeMap<u64, String>> {
        let mut peers = BTreeMap::new();
        for peer in &self.peers {
            let (id, addr) = peer
                .split_once('=')
                .with_context(|| format!("peer {peer:?} is not ID=HOST:PORT"))?;
            let id: u64 = id
                .trim()
                .parse()
                .with_context(|| format!("peer id in {peer:?} is not a number"))?;
            if id == self.id {
                bail!("peer {peer:?} has this node's own id");
            }
            if peers.insert(id, addr.trim().to_owned()).is_some() {
                bail!("peer id {id} is given twice");
            }
        }
        Ok(peers)
    }

    /// The HTTP API's settings.
    pub fn api_config(&self) -> auction_api::ApiConfig {
        auction_api::ApiConfig {
            admin_token: self.admin_token.clone().filter(|token| !token.is_empty()),
            cookie_secure: self.cookie_secure,
            sse_heartbeat: std::time::Duration::from_millis(self.sse_heartbeat_ms.max(100)),
            sse_streams_max: self.sse_streams_max,
            sse_streams_per_client_max: self.sse_streams_per_client_max,
            rate_limits: auction_api::limits::RateLimitConfig {
                bids_per_minute_per_user: self.bid_rate_per_minute,
                requests_per_minute_per_ip: self.ip_rate_per_minute,
                login_attempts_free: self.login_attempts_free,
                login_backoff_min_ms: self.login_backoff_min_ms,
                ..auction_api::limits::RateLimitConfig::default()
            },
            web_dir: self.web_dir.clone(),
            ..auction_api::ApiConfig::default()
        }
    }

    /// The HTTP server's connection bounds.
    pub fn server_limits(&self) -> auction_api::server::ServerLimits {
        auction_api::server::ServerLimits {
            connections_max: self.http_connections_max.max(1),
            header_read_timeout_ms: self.http_header_read_timeout_ms.max(100),
            ..auction_api::server::ServerLimits::default()
        }
    }

    pub fn host_config(&self) -> anyhow::Result<HostConfig> {
        if self.id == 0 {
            bail!("--id must be greater than 0");
        }
        if self.shards == 0 || self.shards > 1_024 {
            bail!("--shards must be between 1 and 1024");
        }
        let mut config = HostConfig::new(self.id, self.rpc_addr());
        config.shard_count = self.shards;
        config.housekeeping_interval_ms = self.housekeeping_interval_ms;
        config.snapshot_every_entries = self.snapshot_every_entries;
        config.log_entries_kept_after_snapshot = self.log_entries_kept_after_snapshot;
        config.network.tls = self.tls_identity()?;
        config.network.append_stream = !self.raft_unary_appends;
        Ok(config)
    }

    /// The Meilisearch sink's settings; `None` without `--meili-url` (no sink runs).
    pub fn meili_config(&self) -> anyhow::Result<Option<MeiliConfig>> {
        MeiliConfig::new(
            self.meili_url.as_deref(),
            self.meili_key.as_deref(),
            &self.meili_index,
        )
        .map_err(|error| anyhow::anyhow!("the Meilisearch sink: {}", error.message))
    }

    /// The image store's settings; `None` without `--s3-endpoint` (uploads are refused).
    pub fn image_settings(&self) -> Option<ImageSettings> {
        let endpoint = self.s3_endpoint.clone()?;
        Some(ImageSettings {
            store: StoreConfig {
                endpoint,
                bucket: self.s3_bucket.clone(),
                access_key: self.s3_access_key.clone(),
                secret_key: self.s3_secret_key.clone(),
                region: self.s3_region.clone(),
            },
            orphan_grace: Duration::from_secs(self.image_orphan_grace_seconds),
            sweep_interval: Duration::from_secs(self.image_sweep_interval_seconds),
        })
    }

    /// The search index directory (derived from the replicas: deleting it makes the node
    /// rebuild it at start).
    pub fn search_dir(&self) -> PathBuf {
        self.data_dir.join("search")
    }

    /// Where the TLS credentials are looked for.
    pub fn tls_dir(&self) -> PathBuf {
        self.tls_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("tls"))
    }

    /// The node's TLS credentials; `None` only with `--insecure-grpc`. Missing or mismatched
    /// files refuse the start: falling back to plaintext would open the cluster silently.
    pub fn tls_identity(&self) -> anyhow::Result<Option<TlsIdentity>> {
        if self.insecure_grpc {
            tracing::warn!(
                grpc = %self.grpc_addr,
                "INSECURE: --insecure-grpc is set, node-to-node gRPC is plaintext and \
                 unauthenticated; any process that reaches the gRPC port can vote, install \
                 snapshots, forward writes and change membership"
            );
            return Ok(None);
        }
        let dir = self.tls_dir();
        let identity = TlsIdentity::load(&dir).with_context(|| {
            format!(
                "node-to-node TLS: no usable credentials in {} (ca.pem, node.pem, \
                 node-key.pem). Make them with `auction-node certs --out DIR --nodes \
                 {}=HOST,...` and pass `--tls-dir DIR/node-{}`, or opt out with \
                 --insecure-grpc",
                dir.display(),
                self.id,
                self.id
            )
        })?;
        Ok(Some(identity))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        node: NodeArgs,
    }

    fn parse(args: &[&str]) -> NodeArgs {
        Cli::parse_from([&["auction-node"], args].concat()).node
    }

    #[test]
    fn peers_parse_and_bad_peers_are_refused() {
        let node = parse(&["--id", "1", "--peer", "2=127.0.0.1:7002,3=127.0.0.1:7003"]);
        let peers = node.peer_map().expect("valid peers");
        assert_eq!(peers.get(&3).map(String::as_str), Some("127.0.0.1:7003"));
        assert!(
            parse(&["--id", "1", "--peer", "1=127.0.0.1:7001"])
                .peer_map()
                .is_err(),
            "own id"
        );
        assert!(
            parse(&["--id", "1", "--peer", "x=127.0.0.1:7001"])
                .peer_map()
                .is_err(),
            "bad id"
        );
        assert!(
            parse(&["--id", "1", "--peer", "127.0.0.1:7001"])
                .peer_map()
                .is_err(),
            "no id"
        );
        assert!(parse(&["--id", "0"]).host_config().is_err(), "id 0");
    }

    #[test]
    fn the_meilisearch_sink_is_off_without_a_url() {
        let off = parse(&["--id", "1", "--meili-key", "secret"]);
        assert_eq!(off.meili_config().expect("valid"), None, "no URL, no sink");
        let on = parse(&["--id", "1", "--meili-url", "http://127.0.0.1:7700"]);
        let config = on.meili_config().expect("valid").expect("a sink");
        assert_eq!(
            (config.url.as_str(), config.index.as_str()),
            ("http://127.0.0.1:7700", "auctions")
        );
        assert!(parse(&["--id", "1", "--meili-url", "localhost:7700"])
            .meili_config()
            .is_err());
    }

    #[test]
    fn tls_is_required_unless_explicitly_opted_out() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().display().to_string();
        let error = parse(&["--id", "1", "--data-dir", &data])
            .host_config()
            .expect_err("no credentials, no start");
        assert!(
            format!("{error:#}").contains("--insecure-grpc"),
            "the refusal says what to do: {error:#}"
        );
        let insecure = parse(&["--id", "1", "--data-dir", &data, "--insecure-grpc"]);
        assert!(insecure
            .host_config()
            .expect("opted out")
            .network
            .tls
            .is_none());

        let out = dir.path().join("certs");
        auction_raft::network::certs::ensure_cluster(&out, &[(1, Vec::new())]).expect("certs");
        let tls_dir = out.join("node-1").display().to_string();
        let secure = parse(&["--id", "1", "--data-dir", &data, "--tls-dir", &tls_dir]);
        assert!(secure
            .host_config()
            .expect("credentials")
            .network
            .tls
            .is_some());
    }
}
