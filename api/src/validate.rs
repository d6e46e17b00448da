//! Validation before proposing: every client write passes the state machine's own shape rules
//! ([`auction_statemachine::shape`]) before [`App::write`](crate::App::write) proposes it, so a
//! command that apply would refuse for its shape (a 64 KiB title, an amount sent as a JSON
//! object, a ban reason of a page) is answered here and never replicated.
//!
//! The rules are not copied: the API calls the functions apply calls, with this node's clock
//! as "now", and apply still checks everything again at the effective time.
//!
//! A shape refusal is not always the client's answer, because apply reports some state first
//! (RULES.md: a malformed amount on an unknown auction is `AUCTION_NOT_FOUND`). So a command
//! that fails its shape is applied once more as a dry run, on a throwaway overlay over a
//! linearizable read of its group, and the dry run's refusal is the answer: the order of
//! RULES.md holds exactly, and the cost (one read index) is paid by bad requests only. A dry
//! run that accepts lets the write go on to the log, because apply would not refuse it: a
//! retry whose idempotency key replays an earlier outcome, or a time rule that the group's
//! later effective time satisfies.
//!
//! Not here: the type checks of JSON bodies ([`crate::extract`] and each route's body type),
//! and the rules that need state, which only apply can decide.

use auction_raft::host::{ClientWrite, NodeStorage};
use auction_statemachine::{shape, Command, Overlay, Rejection, StateMachine};

use crate::error::{ApiError, ApiResult};
use crate::extract::Consistency;
use crate::{blocking, App};

/// Whether `write` may be proposed: `Ok` when its shape is valid (or apply would accept it
/// anyway), else the refusal apply would answer.
pub async fn before_proposing<S: NodeStorage>(app: &App<S>, write: &ClientWrite) -> ApiResult<()> {
    let now = app.now_ms();
    if shape::check(&write.op, now).is_ok() {
        return Ok(());
    }
    match dry_run(app, write, now).await? {
        Some(rejection) => Err(ApiError::from(rejection)),
        None => Ok(()),
    }
}

/// Applies `write` to a linearizable read of its group and throws the writes away: the
/// refusal apply would answer right now, or `None` when it would accept.
pub(crate) async fn dry_run<S: NodeStorage>(
    app: &App<S>,
    write: &ClientWrite,
    now: auction_statemachine::TimestampMs,
) -> ApiResult<Option<Rejection>> {
    let reader = app.reader(write.group, Consistency::Linearizable).await?;
    let machine = StateMachine::new(write.group);
    let command = Command {
        ts_ms: now,
        request_id: write.request_id,
        idempotency_key: write.idempotency_key.clone(),
        op: write.op.clone(),
    };
    let applied = blocking(move || machine.apply(&mut Overlay::new(&reader), &command)).await?;
    Ok(applied.result.err())
}
