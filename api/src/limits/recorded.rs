//! The bid limit, applied after the idempotency lookup: a request the limit would refuse is
//! answered with its key's recorded outcome when it has one, and refused `429` otherwise.
//!
//! The record is only read when the limit refuses (a bid within its budget goes straight to
//! the shard, whose apply de-duplicates anyway), and then linearizably: a lagging local
//! replica could lack a record the leader already has and refuse a retry that has an outcome.
//! Reading it proposes nothing, so a recorded retry does not cost a Raft commit either.

use auction_raft::host::NodeStorage;
use auction_raft::GroupId;
use auction_statemachine::machine::recorded_answer;
use auction_statemachine::Op;

use crate::error::{ApiError, ApiResult};
use crate::extract::Consistency;
use crate::{SharedApp, Written};

/// `Ok(None)`: within the limit, propose the bid. `Ok(Some(_))`: over the limit, but the key
/// has a recorded outcome, which is the answer. `Err`: over the limit (`429`), or the record
/// could not be read.
pub async fn bid_or_recorded<S: NodeStorage>(
    app: &SharedApp<S>,
    group: GroupId,
    op: &Op,
    idempotency_key: Option<&str>,
) -> ApiResult<Option<Written>> {
    let Some(bidder) = op.actor() else {
        return Ok(None);
    };
    let Err(limited) = app.limits.check_bid(&*app.host, bidder).await else {
        return Ok(None);
    };
    let Some(key) = idempotency_key else {
        return Err(limited);
    };
    let reader = app.reader(group, Consistency::Linearizable).await?;
    let (op, key) = (op.clone(), key.to_owned());
    let found = crate::blocking(move || recorded_answer(&reader, &op, &key)).await?;
    let Some(applied) = found else {
        return Err(limited);
    };
    Ok(Some(Written {
        outcome: applied.result.map_err(ApiError::from)?,
        replayed: applied.replayed,
        effective_ts: applied.effective_ts,
    }))
}
