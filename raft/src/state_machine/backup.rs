//! A group's state in a backup, and back: the log position a backup records, and the writes
//! that seed a new node's storage with it so that a cluster of new members continues from it.
//!
//! The openraft side of a restore (pinned 0.10.0-alpha.37): at start, a group whose state
//! machine has applied log id `L` and whose log is empty (purged up to `L`) starts at `L`,
//! with the membership its applied state names. So a restore writes, per group and on every
//! node of the new cluster:
//!
//! - the records, in bounded batches ([`GroupRestore::record`]);
//! - the applied state: `L` (the backup's position, kept: entries up to it are the same
//!   history) and the *new* membership, every new node a voter, committed at `L`
//!   ([`restored_state`]);
//! - a snapshot file with the same meta and records, so a follower that falls behind is
//!   sent it as if the group had built it ([`GroupRestore::finish`]);
//! - the log: purged and committed up to `L`, and the vote raised to `L`'s term
//!   ([`seed_log`]). The vote matters: a candidate campaigns at its vote's term plus one, and
//!   a leader elected below `L`'s term would append entries that sort before `L` (log ids
//!   order by term first), which every replica would refuse.
//!
//! Every node restores the same file, so all start at the same `L` and any of them can win
//! the first election; nothing here needs `--init`.
//!
//! Not done yet: restoring into a node that then joins an existing cluster (it must not: its
//! membership is the restored cluster's), and a restore of one group alone.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use auction_statemachine::backup::{state_digest_of, LogPosition};
use auction_statemachine::hash::Fnv1a64;
use auction_statemachine::kv::Write;
use openraft::alias::{LogIdOf, SnapshotMetaOf, VoteOf};
use openraft::storage::RaftLogStorage;
use openraft::vote::RaftLeaderIdExt;
use openraft::{BasicNode, Membership, RaftTypeConfig, StoredMembership};

use super::rocks::RocksBackend;
use super::snapshot::SnapshotWriter;
use super::{AppliedState, Backend, SnapshotSource, SourceItem};
use crate::log_store::rocks::RocksLogStore;
use crate::types::AuctionRaft;
use crate::NodeId;

type C = AuctionRaft;

/// Bytes of keys and values written to RocksDB in one batch while restoring.
pub const RESTORE_BATCH_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Records written to RocksDB in one batch while restoring.
pub const RESTORE_BATCH_RECORDS_MAX: usize = 16_384;

impl AppliedState {
    /// The position of the last applied entry, as a backup records it.
    pub fn position(&self) -> Option<LogPosition> {
        self.last_applied.map(|log_id| LogPosition {
            term: log_id.leader_id.term,
            leader_node: log_id.leader_id.node_id,
            index: log_id.index,
        })
    }
}

fn log_id(position: LogPosition) -> LogIdOf<C> {
    let leader =
        <C as RaftTypeConfig>::LeaderId::new_committed(position.term, position.leader_node);
    LogIdOf::<C>::new(leader, position.index)
}

/// The applied state of a restored group: applied up to `position`, with `members` (node id
/// to gRPC address) as its voters from there on.
pub fn restored_state(
    position: LogPosition,
    members: &BTreeMap<NodeId, String>,
) -> io::Result<AppliedState> {
    let voters: BTreeSet<NodeId> = members.keys().copied().collect();
    let nodes: BTreeMap<NodeId, BasicNode> = members
        .iter()
        .map(|(id, addr)| (*id, BasicNode::new(addr)))
        .collect();
    let membership = Membership::new(vec![voters], nodes)
        .map_err(|error| io::Error::other(format!("the new membership: {error}")))?;
    let last = log_id(position);
    Ok(AppliedState {
        last_applied: Some(last),
        membership: StoredMembership::new(Some(last), membership),
    })
}

/// Writes one group's records into a new node's state machine, in bounded batches.
pub struct GroupRestore {
    backend: RocksBackend,
    pending: BTreeMap<Vec<u8>, Write>,
    pending_bytes: usize,
}

impl GroupRestore {
    /// `backend` must be an empty group (a new data directory).
    pub fn new(backend: RocksBackend) -> Self {
        GroupRestore {
            backend,
            pending: BTreeMap::new(),
            pending_bytes: 0,
        }
    }

    pub fn record(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.pending_bytes += key.len() + value.len();
        self.pending.insert(key.to_vec(), Some(value.to_vec()));
        if self.pending_bytes >= RESTORE_BATCH_BYTES_MAX
            || self.pending.len() >= RESTORE_BATCH_RECORDS_MAX
        {
            // Not applied yet: the applied state is written last, by `finish`.
            self.flush(&AppliedState::default())?;
        }
        Ok(())
    }

    fn flush(&mut self, applied: &AppliedState) -> io::Result<()> {
        let writes = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        self.backend.commit(writes, applied)
    }

    /// Writes the last records with `applied`, then the group's snapshot file (read back from
    /// what was written); returns the state digest of the written state, for the caller to
    /// compare with the backup's.
    pub fn finish(mut self, applied: &AppliedState) -> io::Result<u64> {
        self.flush(applied)?;
        let meta = SnapshotMetaOf::<C> {
            last_log_id: applied.last_applied,
            last_membership: applied.membership.clone(),
        };
        let mut digest = Fnv1a64::new();
        let source = self.backend.snapshot_source();
        self.backend.file_snapshots().save_with(&meta, |out| {
            let mut writer = SnapshotWriter::new(out)?;
            source.visit(&mut |item| match item {
                SourceItem::Applied(written) if written != applied => Err(io::Error::other(
                    "the applied state read back is not the one written",
                )),
                SourceItem::Applied(_) => Ok(()),
                SourceItem::Record(key, value) => {
                    state_digest_of(&mut digest, key, value);
                    writer.push(key, value)
                }
            })?;
            writer.finish().map(|_| ())
        })?;
        Ok(digest.finish())
    }
}

/// Seeds a restored group's log on node `node_id`: purged and committed up to the applied
/// position, and the vote at its term (see the module documentation). The vote is saved last
/// and waits for the WAL sync, which makes everything written before it durable too.
pub async fn seed_log(
    log: &mut RocksLogStore<C>,
    node_id: NodeId,
    applied: &AppliedState,
) -> io::Result<()> {
    let last = applied
        .last_applied
        .ok_or_else(|| io::Error::other("a restored group needs an applied position"))?;
    log.purge(last).await?;
    log.save_committed(Some(last)).await?;
    log.save_vote(&VoteOf::<C>::new(last.leader_id.term, node_id))
        .await
}

#[cfg(test)]
mod tests {
    use openraft::storage::RaftLogStorage;
    use openraft::RaftLogReader;
    use tempfile::TempDir;

    use super::*;
    use crate::host::{NodeStorage, RocksStorage};
    use crate::state_machine::SnapshotStore;

    const GROUP: crate::GroupId = 3;

    fn members() -> BTreeMap<NodeId, String> {
        (1..=3)
            .map(|id| (id, format!("10.0.0.{id}:7000")))
            .collect()
    }

    #[tokio::test]
    async fn a_restored_group_starts_at_the_backup_position_with_the_new_voters() {
        let dir = TempDir::new().expect("temp dir");
        let storage = RocksStorage::open(dir.path()).expect("storage");
        let (mut log, backend) = storage.open_group(GROUP).expect("group");
        let position = LogPosition {
            term: 7,
            leader_node: 2,
            index: 40_000,
        };
        let applied = restored_state(position, &members()).expect("state");
        let mut restore = GroupRestore::new(backend);
        let mut expected = Fnv1a64::new();
        for n in 0..(RESTORE_BATCH_RECORDS_MAX as u32 + 10) {
            let (key, value) = (n.to_be_bytes(), [1u8; 3]);
            state_digest_of(&mut expected, &key, &value);
            restore.record(&key, &value).expect("record");
        }
        let digest = restore.finish(&applied).expect("finish");
        assert_eq!(digest, expected.finish(), "every record, across batches");
        seed_log(&mut log, 1, &applied).await.expect("seed");
        // The storage closes only once every handle on its log is gone.
        drop(log);

        let (mut log, backend) = storage.open_group(GROUP).expect("reopened");
        assert_eq!(backend.load_applied().expect("applied"), applied);
        assert_eq!(
            applied.position(),
            Some(position),
            "the position round trips"
        );
        let voters: Vec<NodeId> = applied.membership.membership().voter_ids().collect();
        assert_eq!(voters, [1, 2, 3], "the new members vote");
        let state = log.get_log_state().await.expect("log state");
        assert_eq!(
            state.last_log_id, applied.last_applied,
            "the log starts there"
        );
        assert_eq!(state.last_purged_log_id, applied.last_applied);
        let vote = log.read_vote().await.expect("vote").expect("a vote");
        assert_eq!(
            vote.leader_id.term, 7,
            "elections happen above the backup's term"
        );
        let (meta, snapshot) = backend
            .file_snapshots()
            .load()
            .expect("load")
            .expect("a snapshot file");
        assert_eq!(meta.last_log_id, applied.last_applied);
        assert_eq!(meta.last_membership, applied.membership);
        let records = crate::state_machine::snapshot::verify(&snapshot).expect("sound");
        assert_eq!(records, u64::from(RESTORE_BATCH_RECORDS_MAX as u32 + 10));
        drop((log, backend));
        storage.close().expect("close");
    }
}
