//! The meta group (group 0): users, sessions, roles, bans and the audit of user admin actions.
//!
//! Passwords are hashed with argon2 and session tokens are generated and hashed by the
//! proposing node, since both need randomness; the state machine stores the results. A ban set
//! here is copied to every shard by the API (`Op::SyncBan`), because bids are checked there.

use crate::command::NewUser;
use crate::ctx::{Ctx, OpResult};
use crate::error::Rejection;
use crate::ids::{TimestampMs, UserId};
use crate::keys;
use crate::kv::KvStore;
use crate::model::{Role, Session, User};
use crate::outcome::Outcome;

pub const EMAIL_CHARS_MAX: usize = 254;
pub const DISPLAY_NAME_CHARS_MAX: usize = 64;
pub const PASSWORD_HASH_BYTES_MAX: usize = 512;
pub const TOKEN_HASH_BYTES_MAX: usize = 64;
pub const BAN_REASON_CHARS_MAX: usize = 500;

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
    load_user(ctx, user_id)?;
    if expires_at <= ctx.now {
        return Err(Rejection::validation("expiresAt", "must be in the future").into());
    }
    let session = Session {
        token_hash: token_hash.to_vec(),
        user_id,
        created_at: ctx.now,
        expires_at,
    };
    ctx.save(&keys::session(token_hash), &session)?;
    ctx.kv
        .put(&keys::session_expiry(expires_at, token_hash), &[])?;
    Ok(Outcome::Session(session))
}

/// Logging out twice is not an error.
pub(crate) fn delete_session<S: KvStore>(ctx: &mut Ctx<'_, S>, token_hash: &[u8]) -> OpResult {
    if let Some(session) = ctx.load::<Session>(&keys::session(token_hash))? {
        ctx.kv.delete(&keys::session(token_hash))?;
        ctx.kv
            .delete(&keys::session_expiry(session.expires_at, token_hash))?;
    }
    Ok(Outcome::Done)
}

pub(crate) fn set_role<S: KvStore>(
    ctx: &mut Ctx<'_, S>,
    user_id: UserId,
    role: Role,
    actor: Option<UserId>,
) -> OpResult {
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
    let mut user = load_user(ctx, user_id)?;
    user.banned = banned;
    user.ban_reason = if banned {
        reason.map(str::to_owned)
    } else {
        None
    };
    ctx.save(&keys::user(user_id), &user)?;
    let action = if banned { "user.ban" } else { "user.unban" };
    ctx.audit(
        admin,
        action,
        user_id.to_string(),
        reason.unwrap_or_default().to_owned(),
    )?;
    Ok(Outcome::User(Box::new(user)))
}
