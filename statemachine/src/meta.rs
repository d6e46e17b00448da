//! The meta group (group 0): users, sessions, roles, bans, the audit of user admin actions and
//! the cluster settings fixed at init (the shard count).
//!
//! Passwords are hashed with argon2 and session tokens are generated and hashed by the
//! proposing node, since both need randomness; the state machine stores the results. Each user's
//! sessions are indexed in creation order (`keys::user_session`) and capped at
//! [`SESSIONS_PER_USER_MAX`] (a login beyond it ends the oldest), so that a ban ends every
//! session of the user in the same bounded command.
//!
//! A ban is enforced here for what the meta group decides: the banned user's sessions end, a
//! banned user cannot log in, and a banned admin keeps the admin role but may not use it (no
//! ban, no role change) until unbanned; the API refuses a banned user's session on every node.
//! The shards, where bids and listings are checked, learn of the ban from the API
//! (`Op::SyncBan`).
//!
//! Not done yet: sessions created before the per-user index existed are not indexed, so a ban
//! does not delete them; they are refused while the user is banned (the API checks the user's
//! ban on every request) but would work again after an unban.

use serde::{Deserialize, Serialize};

use crate::command::NewUser;
use crate::ctx::{Ctx, OpResult};
use crate::error::Rejection;
use crate::ids::{TimestampMs, UserId};
use crate::keys;
use crate::kv::{KvRead, KvStore, StoreError};
use crate::model::{Role, Session, User};
use crate::outcome::Outcome;

pub const EMAIL_CHARS_MAX: usize = 254;
pub const DISPLAY_NAME_CHARS_MAX: usize = 64;
pub const PASSWORD_HASH_BYTES_MAX: usize = 512;
pub const TOKEN_HASH_BYTES_MAX: usize = 64;
pub const BAN_REASON_CHARS_MAX: usize = 500;
/// Live sessions one user may hold: a login beyond it ends the user's oldest session, which
/// bounds what a ban deletes in one command.
pub const SESSIONS_PER_USER_MAX: usize = 64;
/// Most auction shards a cluster may be initialised with.
pub const SHARD_COUNT_MAX: u32 = 1_024;

/// Settings fixed when the cluster is initialised; every node must be configured the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSettings {
    /// Auction shards (groups 1..=S): an auction's shard is a function of S, so a node that
    /// assumed another S would route auctions to the wrong groups.
    pub shard_count: u32,
}

/// The settings the cluster was initialised with; `None` before the first init is applied.
pub fn cluster_settings(kv: &impl KvRead) -> Result<Option<ClusterSettings>, StoreError> {
    crate::ctx::load(kv, keys::CLUSTER_SETTINGS)
}

/// Trimmed, lower-case, one `@` with text on both sides, no spaces.
pub fn normalize_email(email: &str) -> Result<String, Rejection> {
    let email = email.trim().to_lowercase();
    let valid_shape = match email.split_once('@') {
        Some((local, domain)) => !local.is_empty() && !domain.is_empty() && !domain.contains('@'),
        None => false,
    };
    if !valid_shape
        || email.chars().count() > EMAIL_CHARS_MAX
        || email.chars().any(char::is_whitespace)
    {
        return Err(Rejection::validation(
            "email",
            "must be a valid email address",
        ));
    }
    Ok(email)
}

fn load_user<S: KvStore>(ctx: &Ctx<'_, S>, id: UserId) -> Result<User, crate::error::Error> {
    ctx.load(&keys::user(id))?
        .ok_or(crate::error::Error::Rejected(Rejection::UserNotFound))
}

/// What a client says about a new user, checked: the normalized email and the trimmed
/// display name (1 to [`DISPLAY_NAME_CHARS_MAX`] characters).
pub fn check_profile<'a>(
    email: &str,
    display_name: &'a str,
) -> Result<(String, &'a str), Rejection> {
    let email = normalize_email(email)?;
    let display_name = display_name.trim();
    if display_name.is_empty() || display_name.chars().count() > DISPLAY_NAME_CHARS_MAX {
        return Err(Rejection::validation(
            "displayName",
            "must be 1 to 64 characters",
        ));
    }
    Ok((email, display_name))
}

/// The rules of a new user that need no state (the profile, then the stored hash's size).
pub fn check_new_user(new: &NewUser) -> Result<(String, &str), Rejection> {
    let (email, display_name) = check_profile(&new.email, &new.display_name)?;
    if new.password_hash.is_empty() || new.password_hash.len() > PASSWORD_HASH_BYTES_MAX {
        return Err(Rejection::validation("password", "could not be stored"));
    }
    Ok((email, display_name))
}

/// A ban's reason, trimmed (`None` when empty): at most [`BAN_REASON_CHARS_MAX`] characters.
pub fn check_ban_reason(reason: Option<&str>) -> Result<Option<&str>, Rejection> {
    let reason = reason.map(str::trim).filter(|reason| !reason.is_empty());
    if reason.is_some_and(|reason| reason.chars().count() > BAN_REASON_CHARS_MAX) {
        return Err(Rejection::validation(
            "reason",
            "must be at most 500 characters",
        ));
    }
    Ok(reason)
}

pub(crate) fn register<S: KvStore>(ctx: &mut Ctx<'_, S>, new: &NewUser) -> OpResult {
    let (email, display_name) = check_new_user(new)?;
    if ctx.kv.get(&keys::user_email(&email))?.is_some() {
        return Err(Rejection::EmailTaken.into());
    }
    if ctx.kv.get(&keys::user(new.user_id))?.is_some() {
        return Err(Rejection::validation("id", "a user with this id already exists").into());
    }
    let user = User {
        id: new.user_id,
        email,
        display_name: display_name.to_owned(),
        password_hash: new.password_hash.clone(),
        role: Role::User,
        banned: false,
        ban_reason: None,
        created_at: ctx.now,
    };
    ctx.save(&keys::user(user.id), &user)?;
    ctx.save(&keys::user_email(&user.email), &user.id)?;
    Ok(Outcome::User(Box::new(user)))
}

pub(crate) fn create_session<S: KvStore>(
    ctx: &mut Ctx<'_, S>,
    token_hash: &[u8],
    user_id: UserId,
    expires_at: TimestampMs,
) -> OpResult {
    if token_hash.is_empty() || token_hash.len() > TOKEN_HASH_BYTES_MAX {
        return Err(Rejection::validation("token", "malformed session token").into());
    }
    if load_user(ctx, user_id)?.banned {
        return Err(Rejection::UserBanned.into());
    }
    if expires_at <= ctx.now {
        return Err(Rejection::validation("expiresAt", "must be in the future").into());
    }
    end_sessions(ctx.kv, user_id, SESSIONS_PER_USER_MAX - 1)?;
    let session = Session {
        token_hash: token_hash.to_vec(),
        user_id,
        created_at: ctx.now,
        expires_at,
    };
    ctx.save(&keys::session(token_hash), &session)?;
    ctx.kv
        .put(&keys::session_expiry(expires_at, token_hash), &[])?;
    ctx.kv
        .put(&keys::user_session(user_id, ctx.now, token_hash), &[])?;
    Ok(Outcome::Session(session))
}

/// Logging out twice is not an error.
pub(crate) fn delete_session<S: KvStore>(ctx: &mut Ctx<'_, S>, token_hash: &[u8]) -> OpResult {
    if let Some(session) = ctx.load::<Session>(&keys::session(token_hash))? {
        forget_session(ctx.kv, &session)?;
    }
    Ok(Outcome::Done)
}

/// Deletes a session with its expiry and per-user index entries.
fn forget_session(kv: &mut impl KvStore, session: &Session) -> Result<(), StoreError> {
    let token_hash = &session.token_hash;
    kv.delete(&keys::session(token_hash))?;
    kv.delete(&keys::session_expiry(session.expires_at, token_hash))?;
    kv.delete(&keys::user_session(
        session.user_id,
        session.created_at,
        token_hash,
    ))
}

/// Ends the user's oldest sessions until at most `keep` remain (0: all of them). The index
/// holds at most [`SESSIONS_PER_USER_MAX`] entries per user, so this reads a bounded range.
fn end_sessions(kv: &mut impl KvStore, user: UserId, keep: usize) -> Result<(), StoreError> {
    let indexed = kv.scan(
        &keys::user_sessions_prefix(user),
        None,
        SESSIONS_PER_USER_MAX + 1,
    )?;
    let surplus = indexed.len().saturating_sub(keep);
    for (key, _) in indexed.iter().take(surplus) {
        let token_hash = keys::user_session_token(key)
            .ok_or_else(|| StoreError("corrupt user session index key".to_owned()))?;
        match crate::ctx::load::<Session>(&*kv, &keys::session(token_hash))? {
            Some(session) => forget_session(kv, &session)?,
            None => kv.delete(key)?,
        }
    }
    Ok(())
}

/// The acting admin of a user admin action: an admin who is not banned. (`None` is the cluster
/// admin token, which the API checked.) A banned admin keeps the role, unusable until unbanned.
fn ensure_admin<S: KvStore>(
    ctx: &Ctx<'_, S>,
    actor: Option<UserId>,
) -> Result<(), crate::error::Error> {
    let Some(actor) = actor else {
        return Ok(());
    };
    let admin: Option<User> = ctx.load(&keys::user(actor))?;
    match admin {
        Some(admin) if admin.banned => Err(Rejection::UserBanned.into()),
        Some(admin) if admin.role == Role::Admin => Ok(()),
        _ => Err(Rejection::forbidden("this action needs the admin role").into()),
    }
}

pub(crate) fn set_role<S: KvStore>(
    ctx: &mut Ctx<'_, S>,
    user_id: UserId,
    role: Role,
    actor: Option<UserId>,
) -> OpResult {
    ensure_admin(ctx, actor)?;
    let mut user = load_user(ctx, user_id)?;
    user.role = role;
    ctx.save(&keys::user(user_id), &user)?;
    // The cluster admin token (no user) grants the first admin; it is audited as the user itself.
    let auditor = actor.unwrap_or(user_id);
    ctx.audit(
        auditor,
        "user.role",
        user_id.to_string(),
        role.as_str().to_owned(),
    )?;
    Ok(Outcome::User(Box::new(user)))
}

pub(crate) fn ban<S: KvStore>(
    ctx: &mut Ctx<'_, S>,
    user_id: UserId,
    banned: bool,
    reason: Option<&str>,
    admin: UserId,
) -> OpResult {
    let reason = check_ban_reason(reason)?;
    ensure_admin(ctx, Some(admin))?;
    let mut user = load_user(ctx, user_id)?;
    user.banned = banned;
    user.ban_reason = if banned {
        reason.map(str::to_owned)
    } else {
        None
    };
    ctx.save(&keys::user(user_id), &user)?;
    if banned {
        end_sessions(ctx.kv, user_id, 0)?;
    }
    let action = if banned { "user.ban" } else { "user.unban" };
    ctx.audit(
        admin,
        action,
        user_id.to_string(),
        reason.unwrap_or_default().to_owned(),
    )?;
    Ok(Outcome::User(Box::new(user)))
}

/// Records the cluster settings at the first init; a later init must name the same ones.
pub(crate) fn init_cluster<S: KvStore>(ctx: &mut Ctx<'_, S>, shard_count: u32) -> OpResult {
    if !(1..=SHARD_COUNT_MAX).contains(&shard_count) {
        return Err(Rejection::validation(
            "shardCount",
            format!("must be between 1 and {SHARD_COUNT_MAX}"),
        )
        .into());
    }
    match cluster_settings(&*ctx.kv)? {
        Some(stored) if stored.shard_count != shard_count => Err(Rejection::validation(
            "shardCount",
            format!(
                "the cluster was initialised with {} shards, not {shard_count}",
                stored.shard_count
            ),
        )
        .into()),
        Some(_) => Ok(Outcome::Done),
        None => {
            ctx.save(keys::CLUSTER_SETTINGS, &ClusterSettings { shard_count })?;
            Ok(Outcome::Done)
        }
    }
}
