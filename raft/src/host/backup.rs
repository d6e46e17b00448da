//! A consistent source of one group's state for a backup, taken while the group serves.
//!
//! The source reflects every write acknowledged before the call: it first completes a
//! linearizable read barrier (read index on the leader, or the `ReadBarrier` RPC from a
//! follower, then waits until this replica has applied that index), and only then is the
//! source taken. A RocksDB source reads one RocksDB snapshot, whose applied state and
//! records agree (apply writes both in one batch), at an applied index at or above the
//! barrier's. Writes go on meanwhile: the source simply does not see those after its view.

use super::{GroupSm, HostError, NodeStorage, RaftHost};
use crate::state_machine::Backend;
use crate::GroupId;

/// The source type of a host's backend.
pub type BackupSource<S> = <<S as NodeStorage>::Backend as Backend>::Source;

impl<S: NodeStorage> RaftHost<S> {
    /// A source of `group`'s state at an applied index at or above every write acknowledged
    /// before this call (see the module documentation). Reading it is blocking work.
    pub async fn backup_source(&self, group: GroupId) -> Result<BackupSource<S>, HostError> {
        self.linearizable_reader(group).await?;
        let raft = self.raft(group)?;
        raft.with_state_machine(|machine: &mut GroupSm<S>| {
            Box::pin(std::future::ready(machine.backend().snapshot_source()))
        })
        .await
        .map_err(|fatal| HostError::Unavailable {
            group,
            reason: fatal.to_string(),
        })
    }
}
