//! Placement of an auction: which Raft group (shard) holds everything about it.
//!
//! `shard_of(id, S) = 1 + fnv1a_64(id's 16 bytes) mod S`. FNV-1a is fixed and portable (std's
//! hashers may change between releases), so every node and every version agrees. `S` is fixed
//! at cluster init; changing it would move auctions and is not supported.

use auction_raft::GroupId;
use auction_statemachine::hash::fnv1a_64;
use auction_statemachine::AuctionId;

/// The shard (group 1..=`shard_count`) of an auction.
pub fn shard_of(auction_id: AuctionId, shard_count: u32) -> GroupId {
    assert!(shard_count > 0, "a cluster has at least one shard");
    let slot = fnv1a_64(auction_id.as_bytes()) % u64::from(shard_count);
    // `slot < shard_count`, so it fits the group id's width.
    1 + slot as GroupId
}

/// Every auction shard, in order.
pub fn shards(shard_count: u32) -> impl Iterator<Item = GroupId> {
    1..=shard_count
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn placement_is_stable_and_in_range() {
        let id = AuctionId(Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef));
        // Pinned: a change here would move existing auctions to other shards.
        assert_eq!(u64::from(shard_of(id, 8)), 1 + fnv1a_64(id.as_bytes()) % 8);
        assert_eq!(shard_of(id, 1), 1);
        let mut seen = std::collections::BTreeSet::new();
        for n in 0..1_000u128 {
            let shard = shard_of(AuctionId(Uuid::from_u128(n * 7_919)), 8);
            assert!((1..=8).contains(&shard), "shard {shard} out of range");
            seen.insert(shard);
        }
        assert_eq!(seen.len(), 8, "ids spread over every shard");
    }
}
