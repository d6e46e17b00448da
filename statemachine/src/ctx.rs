//! The apply context: everything one operation may touch while it runs, and the storage
//! helpers every operation uses.
//!
//! [`Ctx`] carries the write buffer of the command being applied, its group, its effective
//! time, its request id, the group's bookkeeping ([`MachineMeta`]) and the events it emits.
//! Operations ([`crate::auction`], [`crate::meta`], [`crate::tick`]) receive a `Ctx` from
//! [`crate::machine`] and use it to load and save records, to notify users and to write the
//! audit log; they never see the store behind the buffer, so a rejected operation leaves
//! nothing behind.
//!
//! This module does not apply, de-duplicate or dispatch commands (that is `machine`), and it
//! knows no auction rule: it depends only on the data modules below it.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec;
use crate::error::Error;
use crate::ids::{
    mint_uuid, AuctionId, GroupId, MintedKind, NotificationId, RequestId, TimestampMs, UserId,
};
use crate::keys;
use crate::kv::{KvRead, KvStore, StoreError};
use crate::model::{AuditEntry, MachineMeta, Notification, NotificationKind};
use crate::outcome::{Event, Outcome};

/// Everything an operation may touch while it runs.
pub(crate) struct Ctx<'a, S> {
    pub kv: &'a mut S,
    pub group: GroupId,
    pub now: TimestampMs,
    pub request_id: RequestId,
    pub meta: MachineMeta,
    pub events: Vec<Event>,
}

/// What an operation returns: its outcome, a rejection, or a storage failure.
pub(crate) type OpResult = Result<Outcome, Error>;

/// The record stored under `key`, decoded; `None` when there is none.
pub(crate) fn load<T: DeserializeOwned>(
    kv: &impl KvRead,
    key: &[u8],
) -> Result<Option<T>, StoreError> {
    kv.get(key)?.map(|bytes| codec::decode(&bytes)).transpose()
}

/// Encodes `value` and stores it under `key`.
pub(crate) fn save<T: Serialize>(
    kv: &mut impl KvStore,
    key: &[u8],
    value: &T,
) -> Result<(), StoreError> {
    kv.put(key, &codec::encode(value))
}

impl<S: KvStore> Ctx<'_, S> {
    pub fn load<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        load(&*self.kv, key)
    }

    pub fn save<T: Serialize>(&mut self, key: &[u8], value: &T) -> Result<(), StoreError> {
        save(self.kv, key, value)
    }

    /// Stores a notification for `user` and emits it to live subscribers.
    pub fn notify(
        &mut self,
        user: UserId,
        kind: NotificationKind,
        auction_id: AuctionId,
        message: String,
    ) -> Result<(), StoreError> {
        self.meta.notification_sequence += 1;
        let sequence = self.meta.notification_sequence;
        let id = NotificationId(mint_uuid(self.group, MintedKind::Notification, sequence));
        let notification = Notification {
            id,
            user_id: user,
            kind,
            auction_id,
            message,
            created_at: self.now,
            read_at: None,
        };
        self.save(&keys::notification(user, sequence), &notification)?;
        self.events.push(Event::Notification(notification));
        Ok(())
    }

    /// Appends an entry to this group's audit log.
    pub fn audit(
        &mut self,
        actor: UserId,
        action: &str,
        target: String,
        detail: String,
    ) -> Result<(), StoreError> {
        self.meta.audit_sequence += 1;
        let sequence = self.meta.audit_sequence;
        let entry = AuditEntry {
            id: mint_uuid(self.group, MintedKind::Audit, sequence),
            actor_id: actor,
            action: action.to_owned(),
            target,
            detail,
            created_at: self.now,
        };
        self.save(&keys::audit(sequence), &entry)
    }
}
