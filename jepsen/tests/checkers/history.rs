//! Recording, pairing and saving histories.

use auction_jepsen::{Completion, History, HistoryError, OpCounts, OpStatus, Operation, Scope};
use auction_statemachine::command::Op;

use crate::common::*;

#[test]
fn json_lines_round_trip_and_pairing() {
    let mut bench = Bench::new();
    let id = auction_id(1);
    bench.create(0, id);
    bench.write(1, bid(id, ALICE, "20"));
    let bob = bench.request(bid(id, BOB, "25"));
    bench.invoke_write(2, &bob);
    bench.complete_info(2, Some(bench.now));
    bench.invoke_read(3, id);
    bench.complete_fail(3);
    let carol = bench.request(bid(id, CAROL, "30"));
    bench.invoke_write(4, &carol);

    let text = bench.history.to_json_lines().expect("serializable");
    assert_eq!(text.lines().count(), bench.history.len());
    let back = History::from_json_lines(&text).expect("parses");
    assert_eq!(back, bench.history);

    let records = back.operations().expect("pairs");
    assert_eq!(records.len(), 5);
    assert!(matches!(
        records[2].status,
        OpStatus::Unknown {
            proposed_ts: Some(_)
        }
    ));
    assert_eq!(records[3].status, OpStatus::Failed);
    assert_eq!(records[4].status, OpStatus::Unknown { proposed_ts: None });
    assert_eq!(records[4].complete_index, None);
    assert_eq!(records[1].operation.scope(), Scope::Auction(id));
    let counts = OpCounts::of(&records);
    assert_eq!(
        (counts.ok, counts.fail, counts.unknown, counts.reads),
        (2, 1, 2, 1)
    );
}

#[test]
fn malformed_histories_are_refused() {
    let mut history = History::new();
    history.complete(
        1,
        1,
        Completion::Fail {
            reason: "x".to_owned(),
        },
    );
    assert!(matches!(
        history.operations(),
        Err(HistoryError::CompletionWithoutInvoke {
            index: 0,
            process: 1
        })
    ));

    let mut history = History::new();
    history.invoke(
        1,
        1,
        Operation::Read {
            auction_id: auction_id(1),
        },
    );
    history.invoke(
        1,
        2,
        Operation::Read {
            auction_id: auction_id(1),
        },
    );
    assert!(matches!(
        history.operations(),
        Err(HistoryError::InvokeWhileOpen { index: 1, .. })
    ));

    let mut history = History::new();
    history.invoke(
        1,
        5,
        Operation::Read {
            auction_id: auction_id(1),
        },
    );
    history.invoke(
        2,
        4,
        Operation::Read {
            auction_id: auction_id(1),
        },
    );
    assert!(matches!(
        history.operations(),
        Err(HistoryError::TimeWentBackwards { index: 1, .. })
    ));

    assert!(matches!(
        History::from_json_lines("{not json"),
        Err(HistoryError::Json { line: 1, .. })
    ));
}

#[test]
fn scopes_follow_the_operation() {
    let mut bench = Bench::new();
    let ban = bench.request(Op::SyncBan {
        user: ALICE,
        banned: true,
    });
    assert_eq!(Operation::write(ban).scope(), Scope::EveryAuction);
    let tick = bench.request(Op::Tick);
    assert_eq!(Operation::write(tick).scope(), Scope::Unchecked);
}
