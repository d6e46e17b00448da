//! Authentication and roles.
//!
//! - Passwords are hashed with argon2id (random salt; the cost is [`PasswordHashing`] of the
//!   `ApiConfig`, argon2's defaults unless a test lowers it) by the node that takes the
//!   registration; the meta group stores the PHC string, which carries its parameters, so a
//!   password verifies whatever the verifying node's setting. Hashing and verifying run on
//!   the blocking pool: they cost tens of milliseconds of CPU by design (the simulation, with a
//!   trivial cost, runs them inline: [`PasswordHashing::inline`]).
//! - Randomness (session tokens, salts, and the API's new ids, see [`crate::new_uuid`]) comes
//!   from the OS, or, for the deterministic simulation only, from a seeded stream
//!   ([`Entropy::Seeded`]). The router puts the node's [`RequestSecrets`] in scope of every
//!   request (a task-local), which is how handlers reach them without carrying the config.
//! - A login mints a random 256-bit token; the meta group stores only its SHA-256, so a copy
//!   of the data cannot be used to log in. The client sends the token as
//!   `Authorization: Bearer …` or in the HttpOnly `session` cookie.
//! - A session is looked up in this node's replica of the meta group while that replica is
//!   known to be fresh within the session lease (`ApiConfig::session_lease_ms`, default 1 s;
//!   see `RaftHost::bounded_reader`): no Raft round trip per request, and a logout or a ban
//!   taken by any node is refused on every node within the lease. A token the replica does not
//!   know is looked up again linearizably before it is refused, so a session is usable on every
//!   node the moment its login is answered. An open user event stream re-checks its session
//!   the same way ([`session_is_live`]) and ends when the session does.
//! - Roles: guest (no session), user, the seller of an auction (checked by the state machine),
//!   admin. A banned user has no session at all: the ban ends them and refuses new logins; a
//!   banned admin keeps the role, unusable until unbanned. The cluster admin token
//!   (`X-Admin-Token`, from the node's config) may grant roles, which is how the first admin
//!   is made.

use std::sync::{Arc, Mutex, PoisonError};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use auction_raft::host::NodeStorage;
use auction_statemachine::splitmix::SplitMix64;
use auction_statemachine::{query, Role, User, META_GROUP};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use password_hash::rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::extract::Consistency;
use crate::SharedApp;

pub const PASSWORD_CHARS_MIN: usize = 8;
pub const PASSWORD_CHARS_MAX: usize = 128;
/// Random bytes in a session token.
const TOKEN_BYTES: usize = 32;
/// Random bytes in a password salt (argon2's recommendation).
const SALT_BYTES: usize = 16;
pub const SESSION_COOKIE: &str = "session";

pub fn check_password(password: &str) -> ApiResult<()> {
    let chars = password.chars().count();
    if !(PASSWORD_CHARS_MIN..=PASSWORD_CHARS_MAX).contains(&chars) {
        return Err(ApiError::validation(
            "password",
            format!("must be {PASSWORD_CHARS_MIN} to {PASSWORD_CHARS_MAX} characters"),
        ));
    }
    Ok(())
}

/// The argon2id cost of new password hashes (verification reads the cost from the hash), and
/// where hashing runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordHashing {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Hash and verify on the request's own task instead of the blocking pool. Only for a
    /// cheap cost in the deterministic simulation: when a blocking-pool job finishes depends on
    /// real thread timing, which would reorder the simulated node's tasks.
    pub inline: bool,
}

impl Default for PasswordHashing {
    /// argon2's defaults (OWASP's recommendation): 19 MiB, 2 passes, 1 lane, on the blocking
    /// pool.
    fn default() -> Self {
        PasswordHashing {
            memory_kib: Params::DEFAULT_M_COST,
            iterations: Params::DEFAULT_T_COST,
            parallelism: Params::DEFAULT_P_COST,
            inline: false,
        }
    }
}

/// Password hashes computed at once on this node: each takes a core and 19 MiB for tens of
/// milliseconds, so more would only queue on the cores and grow memory.
pub const PASSWORD_HASHES_IN_FLIGHT_MAX: usize = 2;
/// Longest a password check waits for its turn before it is refused with `503 UNAVAILABLE`.
pub const PASSWORD_QUEUE_WAIT_MS_MAX: u64 = 2_000;

static PASSWORD_PERMITS: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(PASSWORD_HASHES_IN_FLIGHT_MAX);

/// Runs password work on the blocking pool, at most [`PASSWORD_HASHES_IN_FLIGHT_MAX`] at a
/// time, or inline when the request's hashing says so (the simulation, whose nodes share this
/// process and so would share the permits).
async fn password_work<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> ApiResult<T> {
    let inline = SECRETS
        .try_with(|secrets| secrets.hashing.inline)
        .unwrap_or(false);
    if inline {
        return Ok(work());
    }
    let wait = std::time::Duration::from_millis(PASSWORD_QUEUE_WAIT_MS_MAX);
    let busy = || {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "too many password checks in progress on this node; retry shortly",
        )
        .retry_after(1)
    };
    let _permit = match tokio::time::timeout(wait, PASSWORD_PERMITS.acquire()).await {
        Ok(Ok(permit)) => permit,
        Ok(Err(_)) | Err(_) => return Err(busy()),
    };
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| ApiError::internal("password hashing was interrupted"))
}

/// Where the API's randomness comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Entropy {
    /// The operating system's generator: every real node.
    #[default]
    Os,
    /// SIMULATION ONLY: a stream drawn from this seed, so a simulated run is a function of its
    /// seed. Tokens and ids are then predictable: never configure it in a real cluster.
    Seeded(u64),
}

/// A node's hashing cost and source of randomness, in scope of each of its requests.
#[derive(Debug, Clone)]
pub struct RequestSecrets {
    hashing: PasswordHashing,
    /// The generator of a seeded source.
    seeded: Option<Arc<Mutex<SplitMix64>>>,
}

impl RequestSecrets {
    pub fn new(hashing: PasswordHashing, entropy: Entropy) -> RequestSecrets {
        let seeded = match entropy {
            Entropy::Os => None,
            Entropy::Seeded(seed) => Some(Arc::new(Mutex::new(SplitMix64::new(seed)))),
        };
        RequestSecrets { hashing, seeded }
    }
}

tokio::task_local! {
    static SECRETS: RequestSecrets;
}

/// Middleware: runs the request with the node's [`RequestSecrets`] in scope.
pub async fn with_secrets<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    request: Request,
    next: Next,
) -> Response {
    SECRETS.scope(app.secrets.clone(), next.run(request)).await
}

/// Fills `bytes` with random bytes: the request's seeded stream if it has one, else the OS.
pub fn fill_random(bytes: &mut [u8]) {
    let seeded = SECRETS
        .try_with(|secrets| secrets.seeded.clone())
        .ok()
        .flatten();
    let Some(generator) = seeded else {
        OsRng.fill_bytes(bytes);
        return;
    };
    generator
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .fill_bytes(bytes);
}

/// An argon2id PHC string of `password`, computed on the blocking pool (or inline, see
/// [`PasswordHashing::inline`]), at the request's [`PasswordHashing`] cost (the default
/// outside a request).
pub async fn hash_password(password: String) -> ApiResult<String> {
    let cost = SECRETS
        .try_with(|secrets| secrets.hashing)
        .unwrap_or_default();
    let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
        .map_err(|_| ApiError::internal("the password hashing parameters are invalid"))?;
    let mut salt = [0u8; SALT_BYTES];
    fill_random(&mut salt);
    let salt =
        SaltString::encode_b64(&salt).map_err(|_| ApiError::internal("password hashing failed"))?;
    password_work(move || {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
    })
    .await?
    .map_err(|_| ApiError::internal("password hashing failed"))
}

/// Whether `password` matches the stored PHC string, computed on the blocking pool (or inline,
/// see [`PasswordHashing::inline`]); an error when the node is too busy to check now.
pub async fn verify_password(password: String, stored: String) -> ApiResult<bool> {
    password_work(move || {
        PasswordHash::new(&stored)
            .map(|hash| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &hash)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
}

/// A new session token (hex) and the hash the meta group stores.
pub fn new_token() -> (String, Vec<u8>) {
    let mut bytes = [0u8; TOKEN_BYTES];
    fill_random(&mut bytes);
    let token = crate::extract::hex(&bytes);
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The session token of a request: the bearer token, else the `session` cookie.
pub fn request_token(headers: &HeaderMap) -> Option<String> {
    if let Some(token) = bearer_token(headers) {
        return Some(token.to_owned());
    }
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .filter_map(|cookie| cookie.trim().split_once('='))
        .find(|(name, value)| *name == SESSION_COOKIE && !value.is_empty())
        .map(|(_, value)| value.to_owned())
}

/// The `Authorization: Bearer` token, if the request sends a non-empty one.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

/// Whether the request's token is the session cookie (no bearer token).
fn by_cookie(headers: &HeaderMap) -> bool {
    bearer_token(headers).is_none() && request_token(headers).is_some()
}

/// Whether a request comes from a page of this origin: `Sec-Fetch-Site: same-origin` (or
/// `none`, typed by the user), else an `Origin` whose host is the `Host` the request was sent
/// to. A browser sends one of them with every write; without either the request is taken
/// for a cross-site one.
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    let (Some(origin), Some(host)) = (text("origin"), text("host")) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

/// The CSRF rule (DESIGN.md "Web page"): a write authenticated by the session cookie must come
/// from this origin. The cookie is also `SameSite=Strict`; a bearer token is never sent by a
/// browser on its own, so it needs no such check.
pub fn check_cookie_write(method: &axum::http::Method, headers: &HeaderMap) -> ApiResult<()> {
    let safe = matches!(
        *method,
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if safe || !by_cookie(headers) || same_origin(headers) {
        return Ok(());
    }
    Err(ApiError::forbidden(
        "a write with the session cookie must come from this site's own pages; \
         other clients send the bearer token",
    ))
}

/// The `Set-Cookie` value of a new session, or of a logout (`token` = `None`).
pub fn session_cookie(token: Option<&str>, max_age_seconds: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match token {
        Some(token) => format!(
            "{SESSION_COOKIE}={token}; HttpOnly; Path=/; SameSite=Strict; Max-Age={max_age_seconds}{secure}"
        ),
        None => format!("{SESSION_COOKIE}=; HttpOnly; Path=/; SameSite=Strict; Max-Age=0{secure}"),
    }
}

/// Whether the request carries the cluster admin token. Compares digests, so the time taken
/// does not reveal how much of the token matched.
pub fn has_admin_token(headers: &HeaderMap, configured: Option<&str>) -> bool {
    let (Some(configured), Some(sent)) = (
        configured,
        headers
            .get("x-admin-token")
            .and_then(|value| value.to_str().ok()),
    ) else {
        return false;
    };
    !configured.is_empty() && token_hash(configured) == token_hash(sent)
}

/// An authenticated user (and the hash of the token that proved it).
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub user: User,
    pub token_hash: Vec<u8>,
}

impl CurrentUser {
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }

    /// Admins pass. The user record came from this node's replica, which may not have applied
    /// a role granted a moment ago elsewhere, so a refusal is confirmed by a linearizable read
    /// first. (A revoked role may still pass for the replication delay, milliseconds.)
    pub async fn require_admin<S: NodeStorage>(&self, app: &SharedApp<S>) -> ApiResult<()> {
        if self.is_admin() {
            return Ok(());
        }
        let meta = app.reader(META_GROUP, Consistency::Linearizable).await?;
        match query::user(&meta, self.user.id)? {
            // A banned admin keeps the role but may not use it (RULES.md rule 36).
            Some(user) if user.role == Role::Admin && !user.banned => Ok(()),
            _ => Err(ApiError::forbidden("this action needs the admin role")),
        }
    }
}

/// Whether the session `token_hash` still authenticates its user, as this node's meta replica
/// says within the session lease: what an open event stream re-checks, so that a logout or a
/// ban taken by any node ends the stream too. A replica that cannot answer counts as "no": the
/// client reconnects and is authenticated afresh.
pub async fn session_is_live<S: NodeStorage>(app: &SharedApp<S>, token_hash: &[u8]) -> bool {
    let lease = std::time::Duration::from_millis(app.config.session_lease_ms);
    let Ok(meta) = app.host.bounded_reader(META_GROUP, lease).await else {
        return false;
    };
    matches!(lookup(&meta, token_hash, app.now_ms()), Ok(Some(_)))
}

/// The user of a request, when it has a valid session.
pub struct MaybeUser(pub Option<CurrentUser>);

/// The user of a live session `token_hash` in `meta`, if any. A ban ends every session of the
/// user in the meta group; a banned user's session is refused here as well, which covers
/// sessions older than the meta group's per-user session index (see `auction_statemachine::meta`).
fn lookup(
    meta: &impl auction_statemachine::KvRead,
    token_hash: &[u8],
    now: auction_statemachine::TimestampMs,
) -> ApiResult<Option<User>> {
    let Some(session) = query::session(meta, token_hash, now)? else {
        return Ok(None);
    };
    Ok(query::user(meta, session.user_id)?.filter(|user| !user.banned))
}

async fn authenticate<S: NodeStorage>(
    app: &SharedApp<S>,
    headers: &HeaderMap,
) -> ApiResult<Option<CurrentUser>> {
    let Some(token) = request_token(headers) else {
        return Ok(None);
    };
    let token_hash = token_hash(&token);
    let now = app.now_ms();
    // The local meta replica, known fresh within the session lease: no Raft round trip, and a
    // logout or a ban committed anywhere is refused on every node within the lease.
    let lease = std::time::Duration::from_millis(app.config.session_lease_ms);
    let meta = app.host.bounded_reader(META_GROUP, lease).await?;
    if let Some(user) = lookup(&meta, &token_hash, now)? {
        return Ok(Some(CurrentUser { user, token_hash }));
    }
    // Not found locally: the session may be younger than this replica (a login answered a
    // moment ago by the meta leader). Ask linearizably before refusing.
    let meta = app.reader(META_GROUP, Consistency::Linearizable).await?;
    let user = lookup(&meta, &token_hash, now)?;
    Ok(user.map(|user| CurrentUser { user, token_hash }))
}

/// [`authenticate`] in an `auth.authenticate` span; the user's id goes on the request span
/// (the current one when this is called), so every later log line of the request has it.
async fn authenticate_traced<S: NodeStorage>(
    app: &SharedApp<S>,
    headers: &HeaderMap,
) -> ApiResult<Option<CurrentUser>> {
    use tracing::Instrument;
    let request_span = tracing::Span::current();
    let found = authenticate(app, headers)
        .instrument(tracing::info_span!("auth.authenticate"))
        .await?;
    if let Some(current) = &found {
        request_span.record("user_id", tracing::field::display(&current.user.id));
    }
    Ok(found)
}

impl<S: NodeStorage> FromRequestParts<SharedApp<S>> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &SharedApp<S>,
    ) -> Result<Self, Self::Rejection> {
        if request_token(&parts.headers).is_none() {
            return Err(ApiError::unauthorized(
                "log in first: send a bearer token or the session cookie",
            ));
        }
        check_cookie_write(&parts.method, &parts.headers)?;
        authenticate_traced(app, &parts.headers)
            .await?
            .ok_or_else(|| ApiError::unauthorized("the session is invalid or has expired"))
    }
}

impl<S: NodeStorage> FromRequestParts<SharedApp<S>> for MaybeUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &SharedApp<S>,
    ) -> Result<Self, Self::Rejection> {
        Ok(MaybeUser(authenticate_traced(app, &parts.headers).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_hash_and_verify() {
        let hash = hash_password("correct horse".to_owned())
            .await
            .expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse".to_owned(), hash.clone())
            .await
            .expect("checked"));
        assert!(!verify_password("wrong horse".to_owned(), hash)
            .await
            .expect("checked"));
        assert!(check_password("short").is_err());
    }

    #[tokio::test]
    async fn a_seeded_source_repeats_and_a_cheap_cost_still_verifies() {
        let cheap = PasswordHashing {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
            inline: true,
        };
        let run = || async {
            let secrets = RequestSecrets::new(cheap, Entropy::Seeded(7));
            SECRETS
                .scope(secrets, async {
                    let hash = hash_password("correct horse".to_owned())
                        .await
                        .expect("hash");
                    (new_token().0, hash, crate::new_uuid())
                })
                .await
        };
        let (token, hash, id) = run().await;
        assert_eq!(
            (token.clone(), hash.clone(), id),
            run().await,
            "one seed, one stream"
        );
        assert!(hash.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{hash}");
        assert!(verify_password("correct horse".to_owned(), hash)
            .await
            .expect("checked"));
        assert_ne!(
            token,
            new_token().0,
            "outside a seeded request the OS decides"
        );
    }

    #[test]
    fn cookie_writes_must_come_from_this_origin() {
        use axum::http::Method;
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, value.parse().expect("header"));
            }
            map
        };
        let cookie = ("cookie", "session=abc");
        let allowed = [
            (Method::GET, headers(&[cookie])),
            (
                Method::POST,
                headers(&[cookie, ("sec-fetch-site", "same-origin")]),
            ),
            (
                Method::POST,
                headers(&[
                    cookie,
                    ("origin", "http://node1:8080"),
                    ("host", "node1:8080"),
                ]),
            ),
            (
                Method::POST,
                headers(&[cookie, ("authorization", "Bearer xyz")]),
            ),
            (Method::DELETE, headers(&[("authorization", "Bearer xyz")])),
        ];
        for (method, headers) in allowed {
            assert!(
                check_cookie_write(&method, &headers).is_ok(),
                "{method} {headers:?}"
            );
        }
        let refused = [
            (Method::POST, headers(&[cookie])),
            (
                Method::PUT,
                headers(&[cookie, ("sec-fetch-site", "cross-site")]),
            ),
            (
                Method::DELETE,
                headers(&[
                    cookie,
                    ("origin", "https://evil.example"),
                    ("host", "node1:8080"),
                ]),
            ),
            (
                Method::POST,
                headers(&[cookie, ("origin", "null"), ("host", "node1:8080")]),
            ),
        ];
        for (method, headers) in refused {
            let error = check_cookie_write(&method, &headers).expect_err("cross-site");
            assert_eq!(error.code, "FORBIDDEN");
        }
    }

    #[test]
    fn tokens_come_from_the_bearer_header_or_the_cookie() {
        let (token, hash) = new_token();
        assert_eq!(token.len(), 64);
        assert_eq!(token_hash(&token), hash);
        let mut headers = HeaderMap::new();
        headers.insert("cookie", "a=b; session=abc; c=d".parse().expect("header"));
        assert_eq!(request_token(&headers).as_deref(), Some("abc"));
        headers.insert("authorization", "Bearer xyz".parse().expect("header"));
        assert_eq!(request_token(&headers).as_deref(), Some("xyz"));
    }

    #[test]
    fn the_admin_token_must_match_and_be_configured() {
        let mut headers = HeaderMap::new();
        headers.insert("x-admin-token", "secret".parse().expect("header"));
        assert!(has_admin_token(&headers, Some("secret")));
        assert!(!has_admin_token(&headers, Some("other")));
        assert!(!has_admin_token(&headers, None));
    }
}
