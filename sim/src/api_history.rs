//! The end of a run for the API clients: turning what HTTP answers showed into history
//! completions the checker can judge, and checking the bid history reads.
//!
//! An API write's answer lacks the bid's steps, the time it took effect and the request id the
//! API minted (the bid id of a fresh bid), all of which the model compares. The simulator can
//! read the shard's de-duplication record of the write's idempotency key, which holds the result
//! the state machine applied and when ([`crate::stamps::dedup_record`]). [`resolve_api_writes`]:
//! - gives every attempt of the write the request id the record shows (the bid id), so the
//!   duplicate and lost-bid checks match the bid's steps to it (a write with no record, or a
//!   record that is not a bid, keeps the id the client drew: it left no steps);
//! - turns an acknowledged (2xx) attempt into `ok` with the record's result and time, after
//!   checking that the answer shows the same bid (id, bidder, price, high bidder, count, end,
//!   winning); a disagreement or a missing record (an acknowledged write that never took
//!   effect: lost) is a problem of the run. Any attempt may carry the record's time: a retry
//!   answered by a replay reports the original time too;
//! - turns a refused (4xx) attempt whose record holds a rejection with the same code into `ok`
//!   with that rejection (the model must reject it too); other refusals stay `fail` (refused
//!   before they were proposed: authentication, validation).
//!
//! [`check_bid_reads`]: every step a bid history read showed must be in the auction's final
//! history at the same position with the same amount, bidder and time (a read that saw a bid
//! the cluster later lost, or saw it differently, is a violation); the listing must be newest
//! first.
//!
//! Not done yet: resolving writes other than bids (auction edits, cancels), checking other
//! list reads (my bids, watchlists, listings).

use std::collections::BTreeMap;

use auction_jepsen::{Completion, EventKind, FinalState, History, OkValue, Operation};
use auction_statemachine::outcome::{BidOutcome, Outcome};
use auction_statemachine::{GroupId, KvRead, Rejection};
use serde_json::Value;

use crate::api_client::{ApiAnswer, ApiWrite, BidRead};
use crate::stamps::dedup_record;

/// The history with the API writes resolved, and the problems found on the way.
pub fn resolve_api_writes<R: KvRead>(
    history: &History,
    writes: &[ApiWrite],
    shards: &BTreeMap<GroupId, R>,
) -> (History, Vec<String>) {
    let mut events = history.events().to_vec();
    let mut problems = Vec::new();
    for write in writes {
        let Some(shard) = shards.get(&write.group) else {
            continue;
        };
        let record = dedup_record(shard, &write.write);
        let bid_id = match record.as_ref().map(|record| &record.result) {
            Some(Ok(Outcome::Bid(bid))) => Some(bid.bid_id),
            _ => None,
        };
        if let (Some(bid_id), Some(event)) = (bid_id, events.get_mut(write.invoke_index)) {
            if let EventKind::Invoke(Operation::Write(request)) = &mut event.kind {
                request.request_id = bid_id;
            }
        }
        let resolved = match (&write.answer, record) {
            (ApiAnswer::Acked(body), Some(record)) => match disagreement(body, &record.result) {
                None => Some(Completion::Ok(OkValue::Write {
                    result: record.result,
                    effective_ts: record.created_at,
                })),
                Some(why) => {
                    problems.push(format!(
                        "the API acknowledged {} with {body} but the shard applied it as: {why}",
                        Operation::write(write.write.clone()).describe()
                    ));
                    None
                }
            },
            (ApiAnswer::Acked(body), None) => {
                problems.push(format!(
                    "the API acknowledged {} with {body}, but it never took effect: lost",
                    Operation::write(write.write.clone()).describe()
                ));
                None
            }
            (ApiAnswer::Refused(code), Some(record)) => match &record.result {
                Err(rejection) if rejection.code() == code.as_str() => {
                    Some(Completion::Ok(OkValue::Write {
                        result: Err(rejection.clone()),
                        effective_ts: record.created_at,
                    }))
                }
                _ => None,
            },
            (ApiAnswer::Refused(_), None) | (ApiAnswer::Open, _) => None,
        };
        if let (Some(completion), Some(event)) = (resolved, events.get_mut(write.complete_index)) {
            event.kind = EventKind::Complete(completion);
        }
    }
    (History::from_events(events), problems)
}

/// Why an acknowledged bid view does not show the applied result, if it does not.
fn disagreement(body: &Value, applied: &Result<Outcome, Rejection>) -> Option<String> {
    let bid: &BidOutcome = match applied {
        Ok(Outcome::Bid(bid)) => bid,
        Ok(_) => return Some("an outcome that is not a bid".to_owned()),
        Err(rejection) => return Some(format!("rejected: {rejection}")),
    };
    let text = |field: &str| body.get(field).and_then(Value::as_str).map(str::to_owned);
    let expected = [
        ("bidId", Some(bid.bid_id.to_string())),
        ("bidderId", Some(bid.bidder_id.to_string())),
        ("highBidderId", Some(bid.high_bidder_id.to_string())),
        ("currentPrice", Some(bid.current_price.to_string())),
        (
            "status",
            Some(if bid.winning { "winning" } else { "outbid" }.to_owned()),
        ),
    ];
    for (field, want) in expected {
        if text(field) != want {
            return Some(format!("{field} {want:?}"));
        }
    }
    if body.get("bidCount").and_then(Value::as_u64) != Some(u64::from(bid.bid_count)) {
        return Some(format!("bidCount {}", bid.bid_count));
    }
    let end =
        text("endTime").and_then(|end| auction_api::extract::parse_time("endTime", &end).ok());
    if end != Some(bid.end_time) {
        return Some(format!("endTime {}", bid.end_time));
    }
    None
}

/// Problems with the bid history reads, judged against the final state.
pub fn check_bid_reads(reads: &[BidRead], final_state: &FinalState) -> Vec<String> {
    let mut problems = Vec::new();
    for read in reads {
        let newest_first = read
            .steps
            .windows(2)
            .all(|pair| pair[0].sequence > pair[1].sequence);
        if !newest_first {
            problems.push(format!(
                "auction {}: a bid history read is not newest first",
                read.auction
            ));
        }
        let Some(final_auction) = final_state.auctions.get(&read.auction) else {
            problems.push(format!(
                "auction {}: a bid history read saw {} steps of an auction the cluster lost",
                read.auction,
                read.steps.len()
            ));
            continue;
        };
        for seen in &read.steps {
            let kept = final_auction
                .steps
                .iter()
                .find(|step| step.sequence == seen.sequence);
            let same = kept.is_some_and(|step| {
                step.amount == seen.amount
                    && step.bidder_id == seen.bidder
                    && step.created_at == seen.created_at
            });
            // A step older than a truncated final history cannot be compared.
            let beyond_truncation = kept.is_none() && final_auction.truncated;
            if !same && !beyond_truncation {
                problems.push(format!(
                    "auction {}: a read saw step {seen:?}, the final history has {kept:?}",
                    read.auction
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use auction_jepsen::{
        Completion, EventKind, FinalAuction, FinalState, History, OkValue, Operation, WriteRequest,
    };
    use auction_statemachine::command::{NewAuction, Op};
    use auction_statemachine::money::Money;
    use auction_statemachine::outcome::Outcome;
    use auction_statemachine::{MemKv, RequestId, StateMachine};
    use serde_json::json;
    use uuid::Uuid;

    use super::{check_bid_reads, resolve_api_writes};
    use crate::api_client::{ApiAnswer, ApiWrite, BidRead, SeenStep};
    use crate::client::{auction_id, user};

    const T0: i64 = 1_767_225_600_000;

    fn bid(key: &str, amount: &str) -> WriteRequest {
        WriteRequest {
            request_id: RequestId(Uuid::from_u128(0x77)),
            idempotency_key: Some(key.to_owned()),
            op: Op::PlaceBid {
                auction_id: auction_id(0, 1),
                bidder: user(1),
                amount: amount.to_owned(),
            },
        }
    }

    /// A shard where the API applied `a1-1` (a bid of 5 with request id 0x99) at T0 + 10.
    fn shard() -> (MemKv, Outcome) {
        let machine = StateMachine::new(1);
        let mut kv = MemKv::new();
        let create = WriteRequest {
            request_id: RequestId(Uuid::from_u128(1)),
            idempotency_key: None,
            op: Op::CreateAuction(NewAuction::lasting(
                auction_id(0, 1),
                user(0),
                "lot",
                "1",
                3_600,
            )),
        };
        machine.apply(&mut kv, &create.command(T0)).expect("create");
        let applied = WriteRequest {
            request_id: RequestId(Uuid::from_u128(0x99)),
            ..bid("a1-1", "5")
        };
        let result = machine
            .apply(&mut kv, &applied.command(T0 + 10))
            .expect("bid")
            .result
            .expect("accepted");
        (kv, result)
    }

    fn attempt(history: &mut History, write: WriteRequest, answer: ApiAnswer) -> ApiWrite {
        history.invoke(1, 0, Operation::write(write.clone()));
        history.complete(
            1,
            1,
            Completion::Info {
                reason: "resolved later".to_owned(),
                proposed_ts: None,
            },
        );
        ApiWrite {
            invoke_index: history.len() - 2,
            complete_index: history.len() - 1,
            group: 1,
            write,
            answer,
        }
    }

    fn view(outcome: &Outcome) -> serde_json::Value {
        let Outcome::Bid(bid) = outcome else {
            panic!("a bid outcome");
        };
        json!({
            "bidId": bid.bid_id.to_string(), "bidderId": bid.bidder_id.to_string(),
            "highBidderId": bid.high_bidder_id.to_string(),
            "currentPrice": bid.current_price.to_string(), "status": "winning",
            "bidCount": bid.bid_count, "endTime": auction_api::extract::format_time(bid.end_time),
        })
    }

    #[test]
    fn acknowledged_writes_take_the_applied_result_and_lost_or_different_ones_are_problems() {
        let (kv, outcome) = shard();
        let shards = BTreeMap::from([(1u32, kv)]);
        let mut history = History::new();
        let acked = attempt(
            &mut history,
            bid("a1-1", "5"),
            ApiAnswer::Acked(view(&outcome)),
        );
        let (resolved, problems) =
            resolve_api_writes(&history, std::slice::from_ref(&acked), &shards);
        assert!(problems.is_empty(), "{problems:?}");
        let events = resolved.events();
        let EventKind::Invoke(Operation::Write(write)) = &events[0].kind else {
            panic!("an invoke");
        };
        assert_eq!(
            write.request_id,
            RequestId(Uuid::from_u128(0x99)),
            "the API's bid id"
        );
        assert_eq!(
            events[1].kind,
            EventKind::Complete(Completion::Ok(OkValue::Write {
                result: Ok(outcome.clone()),
                effective_ts: T0 + 10
            }))
        );
        let mut wrong = view(&outcome);
        wrong["currentPrice"] = json!("6.00");
        let mut history = History::new();
        let disagreeing = attempt(&mut history, bid("a1-1", "5"), ApiAnswer::Acked(wrong));
        let lost = attempt(
            &mut history,
            bid("a1-2", "7"),
            ApiAnswer::Acked(view(&outcome)),
        );
        let refused = attempt(
            &mut history,
            bid("a1-3", "9"),
            ApiAnswer::Refused("X".into()),
        );
        let (resolved, problems) =
            resolve_api_writes(&history, &[disagreeing, lost, refused], &shards);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("currentPrice"), "{}", problems[0]);
        assert!(problems[1].contains("lost"), "{}", problems[1]);
        assert!(
            resolved
                .events()
                .iter()
                .all(|event| !matches!(event.kind, EventKind::Complete(Completion::Ok(_)))),
            "nothing unproven becomes ok"
        );
    }

    #[test]
    fn a_bid_history_read_must_match_the_final_history() {
        let (kv, _) = shard();
        let mut final_state = FinalState::new();
        final_state.read_all(&kv).expect("the final state reads");
        let kept: &FinalAuction = &final_state.auctions[&auction_id(0, 1)];
        let step = &kept.steps[0];
        let seen = SeenStep {
            sequence: step.sequence,
            amount: step.amount,
            bidder: step.bidder_id,
            created_at: step.created_at,
        };
        let good = BidRead {
            auction: auction_id(0, 1),
            steps: vec![seen.clone()],
        };
        assert!(check_bid_reads(&[good], &final_state).is_empty());
        let changed = BidRead {
            auction: auction_id(0, 1),
            steps: vec![SeenStep {
                amount: Money::parse("4").expect("money"),
                ..seen.clone()
            }],
        };
        let unknown = BidRead {
            auction: auction_id(0, 1),
            steps: vec![SeenStep {
                sequence: 9,
                ..seen
            }],
        };
        assert_eq!(check_bid_reads(&[changed, unknown], &final_state).len(), 2);
    }
}
