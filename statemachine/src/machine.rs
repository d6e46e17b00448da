//! Apply: the one entry point from the Raft layer into the rules.
//!
//! [`StateMachine::apply`] computes the effective time, de-duplicates client writes, runs the
//! operation on a write buffer and keeps the buffer only if the operation succeeded, so a
//! rejected command changes nothing but the clock and its own de-duplication record. The result
//! is the same on every replica for the same state and command; only a storage failure escapes,
//! and the caller must then stop the group instead of treating the command as applied.

use serde::{Deserialize, Serialize};

use crate::command::{Command, Op, META_GROUP};
use crate::ctx::{load, save, Ctx, OpResult};
use crate::error::{Error, Rejection};
use crate::ids::{GroupId, TimestampMs};
use crate::kv::{KvRead, KvStore, Overlay, StoreError};
use crate::model::MachineMeta;
use crate::outcome::{Applied, Event, Outcome};
use crate::pricing::BidKind;
use crate::{auction, keys, meta, tick};

/// How long a client idempotency key is remembered (RULES.md: at least 24 hours).
pub const IDEMPOTENCY_KEY_RETENTION_MS: i64 = 25 * 60 * 60 * 1_000;
/// How long a request id is remembered when the client sent no key: longer than any internal
/// retry of a proposal (forwarding retries give up within seconds).
pub const REQUEST_DEDUP_RETENTION_MS: i64 = 15 * 60 * 1_000;

/// The state machine of one group. It holds no state of its own: everything is in the store.
#[derive(Clone, Copy, Debug)]
pub struct StateMachine {
    group: GroupId,
}

impl StateMachine {
    pub fn new(group: GroupId) -> StateMachine {
        StateMachine { group }
    }

    pub fn group(&self) -> GroupId {
        self.group
    }

    pub fn is_meta(&self) -> bool {
        self.group == META_GROUP
    }

    /// Applies one command.
    pub fn apply<S: KvStore>(&self, kv: &mut S, command: &Command) -> Result<Applied, StoreError> {
        let mut meta: MachineMeta = load(&*kv, keys::MACHINE_META)?.unwrap_or_default();
        let now = command.ts_ms.max(meta.last_applied_ts);
        meta.last_applied_ts = now;
        let applied = |result, replayed, events| Applied {
            result,
            replayed,
            effective_ts: now,
            events,
        };

        if !command.op.fits_group(self.group) {
            save(kv, keys::MACHINE_META, &meta)?;
            return Ok(applied(Err(Rejection::WrongGroup), false, Vec::new()));
        }
        let dedup = command.op.is_client_write().then(|| DedupKey::of(command));
        if let Some(dedup) = dedup.as_ref().filter(|_| !planted::skip_dedup()) {
            if let Some(found) = dedup.lookup(&*kv, &command.op)? {
                save(kv, keys::MACHINE_META, &meta)?;
                return Ok(found.answer(now));
            }
        }

        let (result, events) = self.run(kv, command, &mut meta, now)?;
        if let Some(dedup) = &dedup {
            let expires_at = dedup.record(kv, &command.op, &result, now)?;
            tick::purge_dedup_when_due(kv, now, expires_at)?;
        }
        save(kv, keys::MACHINE_META, &meta)?;
        Ok(applied(result, false, events))
    }

    /// Runs the operation on a buffer; keeps its writes and events only on success.
    fn run<S: KvStore>(
        &self,
        kv: &mut S,
        command: &Command,
        meta: &mut MachineMeta,
        now: TimestampMs,
    ) -> Result<(Result<Outcome, Rejection>, Vec<Event>), StoreError> {
        let mut overlay = Overlay::new(&*kv);
        let mut ctx = Ctx {
            kv: &mut overlay,
            group: self.group,
            now,
            request_id: command.request_id,
            meta: *meta,
            events: Vec::new(),
        };
        let result = dispatch(&mut ctx, &command.op);
        let (new_meta, events) = (ctx.meta, ctx.events);
        match result {
            Ok(outcome) => {
                let writes = overlay.into_writes();
                for (key, write) in writes {
                    match write {
                        Some(value) => kv.put(&key, &value)?,
                        None => kv.delete(&key)?,
                    }
                }
                *meta = MachineMeta {
                    last_applied_ts: now,
                    ..new_meta
                };
                Ok((Ok(outcome), events))
            }
            Err(Error::Rejected(rejection)) => Ok((Err(rejection), Vec::new())),
            Err(Error::Store(error)) => Err(error),
        }
    }
}

fn dispatch<S: KvStore>(ctx: &mut Ctx<'_, S>, op: &Op) -> OpResult {
    match op {
        Op::CreateAuction(new) => auction::lifecycle::create(ctx, new),
        Op::UpdateAuction {
            auction_id,
            actor,
            changes,
        } => auction::lifecycle::update(ctx, *auction_id, *actor, changes),
        Op::CancelAuction { auction_id, actor } => {
            auction::lifecycle::cancel(ctx, *auction_id, *actor)
        }
        Op::PlaceBid {
            auction_id,
            bidder,
            amount,
        } => auction::bid::place(ctx, *auction_id, *bidder, BidKind::Manual, amount),
        Op::PlaceProxyBid {
            auction_id,
            bidder,
            max_amount,
        } => auction::bid::place(ctx, *auction_id, *bidder, BidKind::Proxy, max_amount),
        Op::BuyNow { auction_id, buyer } => auction::bid::buy_now(ctx, *auction_id, *buyer),
        Op::Watch { auction_id, user } => auction::watch::watch(ctx, *auction_id, *user),
        Op::Unwatch { auction_id, user } => auction::watch::unwatch(ctx, *auction_id, *user),
        Op::MarkNotificationRead {
            user,
            notification_id,
        } => auction::watch::mark_read(ctx, *user, *notification_id),
        Op::AddImage {
            auction_id,
            actor,
            image,
        } => auction::images::add(ctx, *auction_id, *actor, image),
        Op::RemoveImage {
            auction_id,
            actor,
            image_id,
        } => auction::images::remove(ctx, *auction_id, *actor, *image_id),
        Op::OrderImages {
            auction_id,
            actor,
            order,
        } => auction::images::order(ctx, *auction_id, *actor, order),
        Op::AdminCancelAuction {
            auction_id,
            admin,
            reason,
        } => auction::admin::cancel(ctx, *auction_id, *admin, reason),
        Op::AdminExtendAuction {
            auction_id,
            admin,
            end_time,
        } => auction::admin::extend(ctx, *auction_id, *admin, *end_time),
        Op::SyncBan { user, banned } => auction::admin::sync_ban(ctx, *user, *banned),
        Op::RegisterUser(new) => meta::register(ctx, new),
        Op::CreateSession {
            token_hash,
            user_id,
            expires_at,
        } => meta::create_session(ctx, token_hash, *user_id, *expires_at),
        Op::DeleteSession { token_hash } => meta::delete_session(ctx, token_hash),
        Op::SetRole {
            user_id,
            role,
            actor,
        } => meta::set_role(ctx, *user_id, *role, *actor),
        Op::BanUser {
            user_id,
            banned,
            reason,
            admin,
        } => meta::ban(ctx, *user_id, *banned, reason.as_deref(), *admin),
        Op::Tick => tick::tick(ctx),
        Op::InitCluster { shard_count } => meta::init_cluster(ctx, *shard_count),
    }
}

/// Test-only planted bugs, to prove the simulator finds them (`auction-sim`'s planted-bug
/// test). Compiled in only with the `planted-bugs` feature, and even then off unless a test
/// turns it on; without the feature `skip_dedup` is a constant `false`.
pub mod planted {
    #[cfg(feature = "planted-bugs")]
    static SKIP_DEDUP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    /// PLANTED BUG when on: client writes skip the de-duplication lookup, so a retried request
    /// (same request id or idempotency key) is applied again.
    #[cfg(feature = "planted-bugs")]
    pub fn set_skip_dedup(on: bool) {
        SKIP_DEDUP.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    #[inline]
    pub(crate) fn skip_dedup() -> bool {
        #[cfg(feature = "planted-bugs")]
        {
            SKIP_DEDUP.load(std::sync::atomic::Ordering::SeqCst)
        }
        #[cfg(not(feature = "planted-bugs"))]
        {
            false
        }
    }
}

/// What apply would answer to `op` sent again with the idempotency `key`, if the key has a
/// record: the first result (a replay), or `IDEMPOTENCY_KEY_REUSED` when the key was used for a
/// different request. The same lookup apply makes, for a reader that wants the answer without
/// proposing (the API's rate limit answers a recorded retry instead of refusing it).
pub fn recorded_answer<R: KvRead>(
    kv: &R,
    op: &Op,
    key: &str,
) -> Result<Option<Applied>, StoreError> {
    let Some(found) = DedupKey::idempotency(op, key).lookup(kv, op)? else {
        return Ok(None);
    };
    let meta: MachineMeta = load(kv, keys::MACHINE_META)?.unwrap_or_default();
    Ok(Some(found.answer(meta.last_applied_ts)))
}

/// The first result of a de-duplicated write, returned again to every retry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupRecord {
    pub fingerprint: u64,
    pub result: Result<Outcome, Rejection>,
    pub created_at: TimestampMs,
    pub expires_at: TimestampMs,
}

/// What a de-duplication lookup found.
enum Found {
    Replay {
        result: Result<Outcome, Rejection>,
        effective_ts: TimestampMs,
    },
    KeyReused,
}

impl Found {
    /// The answer to a write that found its record: a replay answers as the first application
    /// did, at the first one's time; a reused key is refused at `now`.
    fn answer(self, now: TimestampMs) -> Applied {
        match self {
            Found::Replay {
                result,
                effective_ts,
            } => Applied {
                result,
                replayed: true,
                effective_ts,
                events: Vec::new(),
            },
            Found::KeyReused => Applied {
                result: Err(Rejection::IdempotencyKeyReused),
                replayed: false,
                effective_ts: now,
                events: Vec::new(),
            },
        }
    }
}

/// The identity a write is de-duplicated under.
struct DedupKey {
    bytes: Vec<u8>,
    retention_ms: i64,
}

impl DedupKey {
    fn of(command: &Command) -> DedupKey {
        match &command.idempotency_key {
            Some(key) => DedupKey::idempotency(&command.op, key),
            None => {
                let mut bytes = vec![2u8];
                bytes.extend_from_slice(command.request_id.as_bytes());
                DedupKey {
                    bytes,
                    retention_ms: REQUEST_DEDUP_RETENTION_MS,
                }
            }
        }
    }

    /// The identity of a client's idempotency key, scoped to the operation's actor.
    fn idempotency(op: &Op, key: &str) -> DedupKey {
        let actor = op.actor().map(|user| user.0).unwrap_or_default();
        let mut bytes = vec![1u8];
        bytes.extend_from_slice(actor.as_bytes());
        bytes.extend_from_slice(key.as_bytes());
        DedupKey {
            bytes,
            retention_ms: IDEMPOTENCY_KEY_RETENTION_MS,
        }
    }

    /// The recorded result of an earlier identical request, or the news that the key was used
    /// for a different request; `None` if this is the first time.
    fn lookup<R: KvRead>(&self, kv: &R, op: &Op) -> Result<Option<Found>, StoreError> {
        let Some(record) = load::<DedupRecord>(kv, &keys::dedup(&self.bytes))? else {
            return Ok(None);
        };
        if record.fingerprint != op.fingerprint() {
            return Ok(Some(Found::KeyReused));
        }
        Ok(Some(Found::Replay {
            result: record.result,
            effective_ts: record.created_at,
        }))
    }

    fn record<S: KvStore>(
        &self,
        kv: &mut S,
        op: &Op,
        result: &Result<Outcome, Rejection>,
        now: TimestampMs,
    ) -> Result<TimestampMs, StoreError> {
        let expires_at = now.saturating_add(self.retention_ms);
        let record = DedupRecord {
            fingerprint: op.fingerprint(),
            result: result.clone(),
            created_at: now,
            expires_at,
        };
        save(kv, &keys::dedup(&self.bytes), &record)?;
        kv.put(&keys::dedup_expiry(expires_at, &self.bytes), &[])?;
        Ok(expires_at)
    }
}
