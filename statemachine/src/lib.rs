//! # auction-statemachine
//!
//! The auction rules of `RULES.md` (next to this crate's `Cargo.toml`) as a pure, deterministic
//! state machine. It is the heart of
//! the product and the model every history is checked against (the simulator and the Jepsen
//! checker apply the same commands to it and compare).
//!
//! Data flows one way: a node turns an HTTP request into a [`Command`] (new ids chosen, the
//! password hashed, the amount kept as the client's text); the group leader stamps it with its
//! clock and proposes it; every replica calls [`StateMachine::apply`] with the same command on
//! the same state and gets the same [`Applied`] result and the same writes.
//!
//! Rules of this crate:
//! - no I/O, no clock, no randomness, no async: time is `max(command ts, last applied ts)`;
//! - state lives behind [`KvStore`] (get / put / delete / ordered prefix scan): RocksDB in
//!   production, [`MemKv`] in tests; values are versioned binary ([`codec`]);
//! - an auction loads in O(1): its bid history is a separate key range;
//! - a rejection is a deterministic, recorded result; a storage failure is not and escapes.
//!
//! Module map (no import circle: no module uses one that uses it, directly or through others;
//! `tests/module_graph.rs` checks it): [`machine`] (apply, de-duplication, dispatch) runs the
//! operations of [`auction`] (shard operations and the per-auction event log that SSE streams
//! resume from), [`meta`] (users, sessions, bans) and [`tick`] (closing and purging), which all
//! work through `ctx` (the apply context: load / save, notify, audit); [`query`] (reads);
//! [`shape`] (the rules a command meets before it is proposed, shared with apply);
//! [`pricing`] (manual and proxy bid rules, pure); [`model`] / [`command`] / [`outcome`] (the
//! data); [`keys`], [`codec`], [`kv`], [`ids`], [`money`], [`time`] at the bottom, with
//! [`hash`] and [`splitmix`], pure helpers the crates above share (FNV-1a and the seeded
//! generator; apply itself never draws a random number). Two formats sit beside them, used by
//! the crates above and never by apply: [`snapshot`] (a group's state as self-checking
//! records) and [`backup`] (a backup file: one such record stream per group at a recorded log
//! position); they are here, not in the raft crate, so the backup tools build without RocksDB.
//!
//! Not done yet: notification fan-out is capped per event (see [`auction`]); listings with
//! filters and sorting are derived per node by the API, not indexed here.

pub mod auction;
pub mod backup;
pub mod codec;
pub mod command;
mod ctx;
pub mod error;
pub mod hash;
pub mod ids;
pub mod keys;
pub mod kv;
pub mod machine;
pub mod meta;
pub mod model;
pub mod money;
pub mod outcome;
pub mod pricing;
pub mod query;
pub mod shape;
pub mod snapshot;
pub mod splitmix;
pub mod tick;
pub mod time;

pub use command::{
    AntiSnipeSpec, AuctionChanges, Command, NewAuction, NewImage, NewUser, Op, META_GROUP,
};
pub use error::{Error, Rejection};
pub use ids::{
    AuctionId, GroupId, ImageId, NodeId, NotificationId, RequestId, TimestampMs, UserId,
};
pub use kv::{KvRead, KvStore, MemKv, Overlay, StoreError};
pub use machine::StateMachine;
pub use model::{
    Auction, AuctionImages, BidStep, Image, ImageFile, ImageFormat, Notification, NotificationKind,
    Phase, Role, Session, Status, User, Watch,
};
pub use money::{Increment, Money};
pub use outcome::{Applied, BidOutcome, Event, Outcome};
