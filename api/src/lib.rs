//! # auction-api
//!
//! The HTTP API of `api/API.md`, served by every node (axum). Data flows one way: HTTP →
//! handler (parse and validate: [`extract`], [`validate`]; authenticate: [`auth`]) → a
//! state-machine [`Op`](auction_statemachine::Op) proposed to the group that owns the data
//! through [`RaftHost::propose`] (the host forwards it to the group leader over gRPC when the
//! leader is elsewhere) → the applied outcome → JSON ([`views`]). Every refusal has the one
//! shape of [`error`]. Reads go to the group's linearizable reader (read index) or, with
//! `?consistency=local` and for listings, to this node's replica.
//!
//! Placement: meta data (users, sessions, roles, bans) lives in group 0; everything about an
//! auction lives in its shard ([`shard::shard_of`]). Cross-shard reads (listings, my bids,
//! watchlist, notifications, admin lists) scatter over every shard's local replica and gather
//! here, bounded per shard ([`listing`]).
//!
//! Module map: [`routes`] (one module per resource), [`auth`] (argon2 passwords, session
//! tokens, roles), [`listing`] (filters, sort, cursors), [`events`] (SSE), [`ops`] (health,
//! readiness, cluster status).
//!
//! Rate limits: [`limits`] (bids per user and login attempts per account, cluster-wide through
//! one owner node per key; requests per client IP, per node). The HTTP edge: [`server`]
//! (connection bound, header and idle timeouts), [`streams`] (SSE caps per node and per
//! client), [`deadline`] (the backstop on every answer), bodies bounded in size and time
//! ([`extract`]), password hashes bounded per node ([`auth`]).
//!
//! The web page: [`web`] (static files embedded in the binary, served at `/` with a strict
//! Content-Security-Policy). Cookie-authenticated writes must come from the same origin
//! ([`auth`]), and the session cookie is `SameSite=Strict`.
//!
//! Metrics: [`metrics`] (`GET /metrics`, Prometheus text). Request ids, the request span and
//! the completion log line: [`request_id`].
//!
//! The OpenAPI document: [`openapi`] (generated with utoipa from the views and request bodies,
//! checked against the router by a unit test and by the black-box tests).
//!
//! Images: [`images`] (bytes in an S3-compatible store through `minio`, metadata through
//! Raft, an orphan sweep).
//!
//! Search and listings: [`search`] (a per-node tantivy index fed by the applied changes; without
//! one, as in the simulator, listings scan each shard's auctions, bounded by
//! [`listing::SCAN_PER_SHARD_MAX`]).
//!
//! Not done yet: a paged audit log (the latest entries of each group only).

pub mod auth;
pub mod deadline;
pub mod error;
pub mod events;
pub mod extract;
pub mod images;
pub mod limits;
pub mod listing;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod request_id;
pub mod routes;
pub mod search;
pub mod server;
pub mod shard;
pub mod streams;
pub mod validate;
pub mod views;
pub mod web;

use std::sync::Arc;
use std::time::Duration;

use auction_raft::host::{GroupReader, NodeStorage, RaftHost};
use auction_raft::GroupId;
use auction_statemachine::{Op, Outcome, RequestId, TimestampMs};
use axum::Router;

use crate::error::{ApiError, ApiResult};
use crate::extract::Consistency;

/// The API's own settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The cluster admin token (`X-Admin-Token`), which may grant roles; `None` disables it.
    pub admin_token: Option<String>,
    /// How long a login lasts.
    pub session_ttl_ms: i64,
    /// How stale the local meta replica may be when it authenticates a request: a logout or a
    /// ban takes effect on every node within this bound (raft/ARCHITECTURE.md, "Hot path budget": 1 s).
    pub session_lease_ms: u64,
    /// Sets `Secure` on the session cookie (behind TLS).
    pub cookie_secure: bool,
    /// Interval of SSE heartbeat comments.
    pub sse_heartbeat: Duration,
    /// Event streams open at once on this node ([`streams`]).
    pub sse_streams_max: usize,
    /// Event streams open at once per client address ([`streams`]).
    pub sse_streams_per_client_max: usize,
    /// The backstop on a handler's answer ([`deadline`]).
    pub request_timeout_ms: u64,
    pub rate_limits: limits::RateLimitConfig,
    /// The cost of new password hashes (argon2's defaults; tests and simulations lower it).
    pub password_hashing: auth::PasswordHashing,
    /// Where tokens, salts and new ids come from: the OS, except in the deterministic
    /// simulation.
    pub entropy: auth::Entropy,
    /// Serve the web page's files from this directory instead of the embedded copy
    /// (`--web-dir`, for working on the page; see [`web`]).
    pub web_dir: Option<std::path::PathBuf>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            admin_token: None,
            session_ttl_ms: 7 * 24 * 60 * 60 * 1_000,
            session_lease_ms: 1_000,
            cookie_secure: false,
            sse_heartbeat: Duration::from_secs(15),
            sse_streams_max: 2_048,
            sse_streams_per_client_max: 16,
            request_timeout_ms: 30_000,
            rate_limits: limits::RateLimitConfig::default(),
            password_hashing: auth::PasswordHashing::default(),
            entropy: auth::Entropy::default(),
            web_dir: None,
        }
    }
}

/// What every handler shares: the node's Raft host and the API settings.
pub struct App<S: NodeStorage> {
    pub host: Arc<RaftHost<S>>,
    pub config: ApiConfig,
    pub limits: limits::RateLimits,
    pub metrics: metrics::HttpMetrics,
    pub streams: Arc<streams::StreamCaps>,
    /// In scope of every request (see [`auth::with_secrets`]).
    pub secrets: auth::RequestSecrets,
    /// This node's search index, which serves search and the listings; `None` (the
    /// simulator's nodes): no search, listings scan the replicas ([`listing`]).
    pub search: Option<Arc<dyn search::SearchIndex>>,
    /// This node's image store ([`images`]); `None`: uploads are refused with 503 and
    /// auctions show the images recorded without serving their bytes.
    pub images: Option<Arc<images::Images>>,
    /// Makes the ids of requests that come without a usable `X-Request-Id`.
    pub request_ids: request_id::RequestIds,
}

/// The optional parts of a node's API.
#[derive(Default, Clone)]
pub struct Services {
    pub search: Option<Arc<dyn search::SearchIndex>>,
    pub images: Option<Arc<images::Images>>,
}

pub type SharedApp<S> = Arc<App<S>>;

/// The applied result of a write that succeeded.
pub struct Written {
    pub outcome: Outcome,
    /// The recorded outcome of an earlier request with the same idempotency key.
    pub replayed: bool,
    pub effective_ts: TimestampMs,
}

impl<S: NodeStorage> App<S> {
    pub fn new(host: Arc<RaftHost<S>>, config: ApiConfig) -> SharedApp<S> {
        App::with_search(host, config, None)
    }

    /// An app whose search and listings are served by `search`.
    pub fn with_search(
        host: Arc<RaftHost<S>>,
        config: ApiConfig,
        search: Option<Arc<dyn search::SearchIndex>>,
    ) -> SharedApp<S> {
        App::with_services(
            host,
            config,
            Services {
                search,
                images: None,
            },
        )
    }

    /// An app with its optional parts.
    pub fn with_services(
        host: Arc<RaftHost<S>>,
        config: ApiConfig,
        services: Services,
    ) -> SharedApp<S> {
        let limits = limits::RateLimits::new(config.rate_limits, &*host);
        let secrets = auth::RequestSecrets::new(config.password_hashing, config.entropy);
        let streams =
            streams::StreamCaps::new(config.sse_streams_max, config.sse_streams_per_client_max);
        let start_ms = u64::try_from(host.clock().now_ms()).unwrap_or(0);
        let request_ids = request_id::RequestIds::new(host.node_id(), start_ms);
        Arc::new(App {
            request_ids,
            streams,
            host,
            config,
            secrets,
            limits,
            metrics: metrics::HttpMetrics::default(),
            search: services.search,
            images: services.images,
        })
    }

    pub fn shard_count(&self) -> u32 {
        self.host.config().shard_count
    }

    pub fn shard_of(&self, auction_id: auction_statemachine::AuctionId) -> GroupId {
        shard::shard_of(auction_id, self.shard_count())
    }

    /// Wall-clock ms of this node, for `serverTime` and statuses of reads: the host's clock,
    /// the one its commands are stamped with (simulated time in the simulator).
    pub fn now_ms(&self) -> TimestampMs {
        self.host.clock().now_ms()
    }

    /// Proposes `op` to `group` and waits for its applied result; a rejection is an error. A
    /// command that breaks a shape rule is refused before it is proposed ([`validate`]).
    pub async fn write(
        &self,
        group: GroupId,
        request_id: RequestId,
        idempotency_key: Option<String>,
        op: Op,
    ) -> ApiResult<Written> {
        let write = auction_raft::host::ClientWrite {
            group,
            request_id,
            idempotency_key,
            op,
        };
        validate::before_proposing(self, &write).await?;
        let response = self.host.propose(write).await?;
        let outcome = response.result.map_err(ApiError::from)?;
        Ok(Written {
            outcome,
            replayed: response.replayed,
            effective_ts: response.effective_ts,
        })
    }

    pub async fn reader(
        &self,
        group: GroupId,
        consistency: Consistency,
    ) -> ApiResult<GroupReader<S>> {
        match consistency {
            Consistency::Linearizable => Ok(self.host.linearizable_reader(group).await?),
            Consistency::Local => Ok(self.host.local_reader(group)?),
        }
    }
}

impl<S: NodeStorage> App<S> {
    /// A reader of every auction shard, in shard order, obtained concurrently.
    pub async fn shard_readers(&self, consistency: Consistency) -> ApiResult<Vec<GroupReader<S>>> {
        let pending =
            shard::shards(self.shard_count()).map(|group| self.reader(group, consistency));
        futures_util::future::join_all(pending)
            .await
            .into_iter()
            .collect()
    }
}

/// Runs a scatter-gather over storage readers on the blocking pool.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, auction_statemachine::StoreError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| ApiError::internal("a read was interrupted"))?
        .map_err(ApiError::from)
}

/// A fresh random (version 4) id for a new object or request, from the request's source of
/// randomness (see [`auth::fill_random`]).
pub fn new_uuid() -> uuid::Uuid {
    let mut bytes = [0u8; 16];
    auth::fill_random(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// The whole HTTP surface of a node: the API, the operations endpoints, JSON fallbacks, the
/// per-IP rate limit, the stream caps and the answer timeout. Serve it with [`server::serve`]
/// (or with `ConnectInfo<SocketAddr>` in every request some other way), so the per-client
/// bounds see the client's address (without it, those bounds are off).
pub fn router<S: NodeStorage>(host: Arc<RaftHost<S>>, config: ApiConfig) -> Router {
    router_with_search(host, config, None)
}

/// [`router`] with this node's search index ([`search`]), which serves `GET /search` and the
/// listings.
pub fn router_with_search<S: NodeStorage>(
    host: Arc<RaftHost<S>>,
    config: ApiConfig,
    search: Option<Arc<dyn search::SearchIndex>>,
) -> Router {
    router_with_services(
        host,
        config,
        Services {
            search,
            images: None,
        },
    )
}

/// [`router`] with every optional part this node has.
pub fn router_with_services<S: NodeStorage>(
    host: Arc<RaftHost<S>>,
    config: ApiConfig,
    services: Services,
) -> Router {
    let app = App::with_services(host, config, services);
    routes::router::<S>()
        .merge(ops::router::<S>())
        .fallback(error::route_not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            limits::per_ip::<S>,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            streams::cap::<S>,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            metrics::track::<S>,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            deadline::bound::<S>,
        ))
        // Outermost, so every handler and middleware runs with the node's randomness and
        // hashing cost in scope.
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::with_secrets::<S>,
        ))
        // Outermost: every answer, the fallbacks' and the time-out's included, has its id.
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            request_id::scope::<S>,
        ))
        .with_state(app)
}
