//! The binary encoding of everything this crate stores or sends: postcard over serde.
//!
//! Log entries on disk and openraft messages inside the protobuf envelopes of `auction-proto`
//! use this one encoding. postcard is compact (varints, no field names), maintained, and has a
//! stable wire format since 1.0. It is not self-describing: the reader must know the type, and
//! serde attributes that need `deserialize_any` (`untagged`, `flatten`) are not supported. The
//! openraft types and our own messages avoid them; the round-trip tests below keep it so.
//!
//! Not done yet: no version byte in front of stored entries. A change of the entry type needs a
//! migration that rewrites the log (or a new column family).

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Error;

/// Encodes `value`; `what` names it in the error.
pub fn encode<T>(what: &'static str, value: &T) -> Result<Vec<u8>, Error>
where
    T: Serialize + ?Sized,
{
    postcard::to_allocvec(value).map_err(|source| Error::Encode { what, source })
}

/// Decodes a `T` from all of `bytes`; trailing bytes are an error, not ignored.
pub fn decode<T>(what: &'static str, bytes: &[u8]) -> Result<T, Error>
where
    T: DeserializeOwned,
{
    let (value, rest) =
        postcard::take_from_bytes(bytes).map_err(|source| Error::Decode { what, source })?;
    if !rest.is_empty() {
        return Err(Error::Decode {
            what,
            source: postcard::Error::DeserializeBadEncoding,
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::fmt::Debug;

    use openraft::alias::{EntryOf, LogIdOf, SnapshotMetaOf, VoteOf};
    use openraft::raft::{
        AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
        VoteRequest, VoteResponse,
    };
    use openraft::vote::{RaftLeaderId, RaftLeaderIdExt, RaftVote};
    use openraft::{BasicNode, Membership, RaftTypeConfig, StoredMembership};

    use super::*;
    use crate::testing::{TestCommand, TestConfig};

    fn round_trip<T>(value: &T)
    where
        T: Serialize + DeserializeOwned + PartialEq + Debug,
    {
        let bytes = encode("test value", value).expect("encode");
        let back: T = decode("test value", &bytes).expect("decode");
        assert_eq!(&back, value, "round trip changed the value");
    }

    fn log_id(term: u64, node: u64, index: u64) -> LogIdOf<TestConfig> {
        LogIdOf::<TestConfig>::new(
            <TestConfig as RaftTypeConfig>::LeaderId::new_committed(term, node),
            index,
        )
    }

    fn membership() -> Membership<u64, BasicNode> {
        let voters: BTreeSet<u64> = [1, 2, 3].into_iter().collect();
        let nodes: BTreeMap<u64, BasicNode> = (1..=4)
            .map(|id| (id, BasicNode::new(format!("10.0.0.{id}:7000"))))
            .collect();
        // Node 4 is a learner: listed in the nodes, not in the voter config.
        Membership::new(vec![voters], nodes).expect("valid membership")
    }

    fn entries() -> Vec<EntryOf<TestConfig>> {
        use openraft::entry::RaftEntry;
        vec![
            EntryOf::<TestConfig>::new_blank(log_id(1, 1, 1)),
            EntryOf::<TestConfig>::new_normal(
                log_id(1, 1, 2),
                TestCommand {
                    id: 7,
                    note: "bid 55.00".to_string(),
                },
            ),
            EntryOf::<TestConfig>::new_membership(log_id(2, 3, 3), membership()),
        ]
    }

    #[test]
    fn entries_round_trip() {
        for entry in entries() {
            let bytes = encode("entry", &entry).expect("encode");
            let back: EntryOf<TestConfig> = decode("entry", &bytes).expect("decode");
            // Entry has no PartialEq for every payload; compare the debug rendering.
            assert_eq!(format!("{back:?}"), format!("{entry:?}"));
        }
    }

    #[test]
    fn votes_round_trip() {
        round_trip(&VoteOf::<TestConfig>::new(5, 2));
        round_trip(&VoteOf::<TestConfig>::from_leader_id(
            <TestConfig as RaftTypeConfig>::LeaderId::new(6, 3),
            true,
        ));
    }

    #[test]
    fn vote_messages_round_trip() {
        let request =
            VoteRequest::<TestConfig>::new(VoteOf::<TestConfig>::new(5, 2), Some(log_id(4, 1, 99)));
        round_trip(&request);
        let response = VoteResponse::<TestConfig>::new(
            VoteOf::<TestConfig>::new(5, 2),
            Some(log_id(4, 1, 99)),
            true,
        );
        round_trip(&response);
    }

    #[test]
    fn append_entries_round_trip() {
        let request = AppendEntriesRequest::<TestConfig> {
            vote: VoteOf::<TestConfig>::from_leader_id(
                <TestConfig as RaftTypeConfig>::LeaderId::new(2, 3),
                true,
            ),
            prev_log_id: Some(log_id(1, 1, 0)),
            entries: entries(),
            leader_commit: Some(log_id(1, 1, 1)),
        };
        let bytes = encode("append entries", &request).expect("encode");
        let back: AppendEntriesRequest<TestConfig> =
            decode("append entries", &bytes).expect("decode");
        assert_eq!(format!("{back:?}"), format!("{request:?}"));

        round_trip(&AppendEntriesResponse::<TestConfig>::Success);
        round_trip(&AppendEntriesResponse::<TestConfig>::Conflict);
        round_trip(&AppendEntriesResponse::<TestConfig>::PartialSuccess(Some(
            log_id(2, 3, 2),
        )));
        round_trip(&AppendEntriesResponse::<TestConfig>::HigherVote(VoteOf::<
            TestConfig,
        >::new(
            9, 1
        )));
    }

    #[test]
    fn snapshot_and_transfer_messages_round_trip() {
        let meta = SnapshotMetaOf::<TestConfig> {
            last_log_id: Some(log_id(2, 3, 40)),
            last_membership: StoredMembership::new(Some(log_id(2, 3, 3)), membership()),
        };
        let vote = VoteOf::<TestConfig>::new(2, 3);
        round_trip(&(vote, meta));
        round_trip(&SnapshotResponse::<TestConfig>::new(vote));
        round_trip(&TransferLeaderRequest::<TestConfig>::new(
            vote,
            2,
            Some(log_id(2, 3, 40)),
        ));
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = encode("vote", &VoteOf::<TestConfig>::new(1, 1)).expect("encode");
        bytes.push(0);
        let result: Result<VoteOf<TestConfig>, _> = decode("vote", &bytes);
        assert!(result.is_err(), "trailing garbage must not decode");
    }
}
