//! # auction-statemachine
//!
//! The auction rules of DESIGN.md as a pure, deterministic state machine. It is the heart of
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
//! Module map: [`pricing`] (manual and proxy bid rules, pure), [`auction`] (shard operations and
//! the per-auction event log that SSE streams resume from),
//! [`meta`] (users, sessions, bans), [`tick`] (closing and purging), [`machine`] (apply,
//! de-duplication), [`query`] (reads), [`model`] / [`command`] / [`outcome`] (the data).
//!
//! Not done yet: notification fan-out is capped per event (see [`auction`]); listings with
//! filters and sorting are derived per node by the API, not indexed here.

pub mod auction;
pub mod codec;
pub mod command;
pub mod error;
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
pub mod tick;
pub mod time;

pub use command::{AntiSnipeSpec, AuctionChanges, Command, NewAuction, NewUser, Op, META_GROUP};
pub use error::{Error, Rejection};
pub use ids::{AuctionId, GroupId, NodeId, NotificationId, RequestId, TimestampMs, UserId};
pub use kv::{KvRead, KvStore, MemKv, Overlay, StoreError};
pub use machine::StateMachine;
pub use model::{
    Auction, BidStep, Notification, NotificationKind, Phase, Role, Session, Status, User, Watch,
};
pub use money::{Increment, Money};
pub use outcome::{Applied, BidOutcome, Event, Outcome};
