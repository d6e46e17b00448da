//! Test-only types: a Raft type config and the smallest state machine that drives openraft's
//! storage test suite (`openraft::testing::log::Suite`).
//!
//! The suite checks log storage and a state machine together; the auction state machine does
//! not exist here, so [`SuiteStateMachine`] stands in. It keeps only the last applied log id and
//! the last membership, which is all the suite inspects. It is not a model of the real one.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::{Stream, StreamExt};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::entry::RaftEntry;
use openraft::storage::EntryResponder;
use openraft::{OptionalSend, RaftSnapshotBuilder, Snapshot, StoredMembership};
use serde::{Deserialize, Serialize};

use crate::codec;

/// A stand-in for the auction command: serde, `Clone`, `Debug` and — openraft requires it of
/// application data — `Display`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TestCommand {
    pub id: u64,
    pub note: String,
}

impl fmt::Display for TestCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TestCommand({}, {})", self.id, self.note)
    }
}

/// A stand-in for the auction outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TestReply {
    pub applied: bool,
}

openraft::declare_raft_types!(
    /// Type config of the tests: openraft's defaults (u64 node ids, `BasicNode`, advanced leader
    /// ids, tokio) with the stand-in command and reply.
    pub(crate) TestConfig:
        D = TestCommand,
        R = TestReply,
);

type C = TestConfig;

#[derive(Default)]
struct SuiteState {
    last_applied: Option<LogIdOf<C>>,
    last_membership: StoredMembershipOf<C>,
    current_snapshot: Option<(SnapshotMetaOf<C>, Vec<u8>)>,
}

/// The minimal state machine that drives openraft's storage test suite. Test-only.
#[derive(Clone, Default)]
pub(crate) struct SuiteStateMachine {
    state: Arc<Mutex<SuiteState>>,
}

impl SuiteStateMachine {
    fn lock(&self) -> MutexGuard<'_, SuiteState> {
        self.state
            .lock()
            .expect("suite state machine mutex poisoned")
    }
}

impl openraft::storage::RaftStateMachine<C> for SuiteStateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<C>>, StoredMembershipOf<C>), io::Error> {
        let state = self.lock();
        Ok((state.last_applied, state.last_membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<C>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            {
                let mut state = self.lock();
                let log_id = entry.log_id();
                if let Some(membership) = entry.get_membership() {
                    state.last_membership = StoredMembership::new(Some(log_id), membership);
                }
                state.last_applied = Some(log_id);
            }
            if let Some(responder) = responder {
                responder.send(TestReply { applied: true });
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<C>,
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        let (last_applied, last_membership): (Option<LogIdOf<C>>, StoredMembershipOf<C>) =
            codec::decode("suite snapshot", &snapshot)?;
        let mut state = self.lock();
        state.last_applied = last_applied;
        state.last_membership = last_membership;
        state.current_snapshot = Some((meta.clone(), snapshot));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<SnapshotOf<C, Vec<u8>>>, io::Error> {
        let state = self.lock();
        Ok(state
            .current_snapshot
            .as_ref()
            .map(|(meta, data)| Snapshot {
                meta: meta.clone(),
                snapshot: data.clone(),
            }))
    }
}

impl RaftSnapshotBuilder<C> for SuiteStateMachine {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<C, Vec<u8>>, io::Error> {
        let mut state = self.lock();
        let data = codec::encode(
            "suite snapshot",
            &(state.last_applied, state.last_membership.clone()),
        )?;
        let meta = SnapshotMetaOf::<C> {
            last_log_id: state.last_applied,
            last_membership: state.last_membership.clone(),
        };
        state.current_snapshot = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: data,
        })
    }
}
