//! Test-only planted bugs of the host, to prove the simulator's checkers find Raft-level bugs
//! (`auction-sim`'s planted-bug tests). Compiled in only with the `planted-bugs` feature, and
//! even then off unless a test turns one on ([`set`]); without the feature every switch is a
//! constant `false` and the hooks compile to nothing.
//!
//! The switches are process-wide: a test that turns one on must not share its process with a
//! run that expects the correct host (the simulator's planted-bug tests hold one lock).

use auction_statemachine::kv::Overlay;
use auction_statemachine::{Command, StateMachine};

use super::GroupReader;
use super::NodeStorage;
use crate::types::Response;
use crate::GroupId;

/// A bug that can be planted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Bug {
    /// A leader answers a write as soon as its batch entered its own log, with the result of
    /// applying it to its current state, before a majority has it (it may be lost, and
    /// concurrent writes are answered from a state that lacks each other).
    AcknowledgeBeforeCommit = 1,
    /// A restarted node resumes leadership from its persisted vote (openraft's
    /// `enable_leader_restore`), with its unsynced appends lost: the simulator's seed-42 bug.
    RestoreLeadership = 2,
    /// A linearizable read is served from the local replica, without a read index.
    LocalLinearizableRead = 4,
    /// A leader stamps commands with its own clock, without the `clock_skew_ms_max` bound.
    UnboundedStamps = 8,
}

#[cfg(feature = "planted-bugs")]
static PLANTED: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// PLANTED BUG switch (test-only): turns `bug` on or off for the whole process.
#[cfg(feature = "planted-bugs")]
pub fn set(bug: Bug, on: bool) {
    use std::sync::atomic::Ordering;
    if on {
        PLANTED.fetch_or(bug as u8, Ordering::SeqCst);
    } else {
        PLANTED.fetch_and(!(bug as u8), Ordering::SeqCst);
    }
}

#[inline]
fn is_on(bug: Bug) -> bool {
    #[cfg(feature = "planted-bugs")]
    {
        PLANTED.load(std::sync::atomic::Ordering::SeqCst) & bug as u8 != 0
    }
    #[cfg(not(feature = "planted-bugs"))]
    {
        let _ = bug;
        false
    }
}

pub(super) fn restore_leadership() -> bool {
    is_on(Bug::RestoreLeadership)
}

pub(super) fn local_linearizable_reads() -> bool {
    is_on(Bug::LocalLinearizableRead)
}

pub(super) fn unbounded_stamps() -> bool {
    is_on(Bug::UnboundedStamps)
}

/// With [`Bug::AcknowledgeBeforeCommit`] on: the answers a leader gives `commands` before they
/// commit, from applying them in order to a scratch copy of its current state.
pub(super) fn early_answers<S: NodeStorage>(
    group: GroupId,
    reader: &GroupReader<S>,
    commands: &[Command],
) -> Option<Vec<Response>> {
    if !is_on(Bug::AcknowledgeBeforeCommit) {
        return None;
    }
    let machine = StateMachine::new(group);
    let mut scratch = Overlay::new(reader.clone());
    let mut answers = Vec::with_capacity(commands.len());
    for command in commands {
        let applied = machine.apply(&mut scratch, command).ok()?;
        answers.push(Response {
            result: applied.result,
            replayed: applied.replayed,
            effective_ts: applied.effective_ts,
        });
    }
    Some(answers)
}
