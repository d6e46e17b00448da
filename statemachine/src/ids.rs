//! Identifiers and time units shared by every aggregate.
//!
//! Ids that a client can name (auctions, users, bids) are UUIDs chosen by the node that proposes
//! the command, so the state machine never needs randomness. Ids the state machine mints itself
//! (notifications, audit entries) are deterministic version-8 UUIDs built from the group and a
//! per-group sequence number, so every replica mints the same id.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Milliseconds since the Unix epoch, UTC.
pub type TimestampMs = i64;
/// A Raft group number: 0 is the meta group, 1..=S are auction shards. The one group id type
/// of every crate (the wire carries it as `uint32`, storage keys as 8 big-endian bytes).
pub type GroupId = u32;
/// A cluster node's id, as Raft memberships name it.
pub type NodeId = u64;

pub const MILLIS_PER_SECOND: i64 = 1_000;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// An auction, chosen by the proposing node at creation.
    AuctionId
);
uuid_id!(
    /// A user account, chosen by the proposing node at registration.
    UserId
);
uuid_id!(
    /// A client request; a bid's id is the id of the request that placed it.
    RequestId
);
uuid_id!(
    /// A notification, minted deterministically by the group that stores it.
    NotificationId
);
uuid_id!(
    /// An image of an auction, chosen by the node that took the upload.
    ImageId
);

/// What kind of record a minted id names; part of the id so two kinds never collide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum MintedKind {
    Notification = 1,
    Audit = 2,
}

/// Sequence numbers in minted ids keep their top two bits clear for the UUID variant.
const MINTED_SEQUENCE_MASK: u64 = (1 << 62) - 1;

/// A deterministic version-8 UUID: group (4 bytes), kind (1 byte), sequence (62 bits).
pub fn mint_uuid(group: GroupId, kind: MintedKind, sequence: u64) -> Uuid {
    assert!(sequence <= MINTED_SEQUENCE_MASK, "minted sequence overflow");
    let mut bytes = [0u8; 16];
    bytes[0..4].copy_from_slice(&group.to_be_bytes());
    bytes[4] = kind as u8;
    bytes[8..16].copy_from_slice(&sequence.to_be_bytes());
    Uuid::new_v8(bytes)
}

/// The group and sequence of a minted id, if it is one of the given kind.
pub fn parse_minted_uuid(id: Uuid, kind: MintedKind) -> Option<(GroupId, u64)> {
    let bytes = id.as_bytes();
    if id.get_version_num() != 8 || bytes[4] != kind as u8 {
        return None;
    }
    let group = GroupId::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&bytes[8..16]);
    Some((group, u64::from_be_bytes(tail) & MINTED_SEQUENCE_MASK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_ids_round_trip_and_differ_by_kind() {
        let id = mint_uuid(7, MintedKind::Notification, 123_456);
        assert_eq!(
            parse_minted_uuid(id, MintedKind::Notification),
            Some((7, 123_456))
        );
        assert_eq!(parse_minted_uuid(id, MintedKind::Audit), None);
        assert_ne!(id, mint_uuid(7, MintedKind::Audit, 123_456));
        assert_eq!(
            parse_minted_uuid(Uuid::nil(), MintedKind::Notification),
            None
        );
    }
}
