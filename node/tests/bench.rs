//! Black-box test of `auctionctl bench` against a real 3-node cluster: two short runs (one hot
//! auction with a request budget, then many auctions for a few seconds) whose JSON reports
//! must have sane counts and no unexpected errors, and whose bids must agree with the nodes'
//! `auction_bids_total` counters.

mod common;

use std::collections::BTreeMap;

use serde_json::Value;

use common::Cluster;

async fn bench(cluster: &Cluster, extra: &[&str]) -> Value {
    let nodes: Vec<&str> = (0..3).map(|node| cluster.url(node)).collect();
    let output = tokio::process::Command::new(common::auctionctl_binary())
        .args(["bench", "--json", "--node", &nodes.join(",")])
        .args(["--users", "12", "--clients", "8", "--seed", "42"])
        .args(extra)
        .output()
        .await
        .expect("auctionctl runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "auctionctl bench failed: {stderr}");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "not one JSON document ({error}): {}\nstderr: {stderr}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn number(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("not a count: {value}"))
}

/// The rows of a report by operation name, after checking each row is self-consistent.
fn checked_rows(report: &Value) -> BTreeMap<String, Value> {
    assert_eq!(
        report["unexpectedErrors"], 0,
        "unexpected errors: {report:#}"
    );
    let mut rows = BTreeMap::new();
    let mut sum = 0;
    for row in report["operations"].as_array().expect("operations") {
        let count = number(&row["count"]);
        let by_class = number(&row["done"]) + number(&row["rejected"]) + number(&row["errors"]);
        assert_eq!(count, by_class, "classes add up: {row}");
        let by_answer: u64 = row["outcomes"]
            .as_object()
            .expect("outcomes")
            .values()
            .map(number)
            .sum();
        assert_eq!(count, by_answer, "answers add up: {row}");
        let latency = &row["latencyMs"];
        let ordered: Vec<f64> = ["p50", "p95", "p99", "max"]
            .iter()
            .map(|key| latency[key].as_f64().expect("latency"))
            .collect();
        assert!(
            ordered[0] > 0.0 && ordered.windows(2).all(|pair| pair[0] <= pair[1]),
            "percentiles in order: {row}"
        );
        assert!(row["opsPerSecond"].as_f64().expect("throughput") > 0.0);
        sum += count;
        rows.insert(row["op"].as_str().expect("op").to_owned(), row.clone());
    }
    assert_eq!(
        number(&report["total"]["count"]),
        sum,
        "the total is the sum"
    );
    rows
}

/// `kind/code → count` of `auction_bids_total`, summed over every node.
async fn bid_counters(cluster: &Cluster) -> BTreeMap<String, u64> {
    let mut counters = BTreeMap::new();
    let client = reqwest::Client::new();
    for node in 0..3 {
        let text = client
            .get(format!("{}/metrics", cluster.url(node)))
            .send()
            .await
            .expect("metrics answered")
            .text()
            .await
            .expect("metrics text");
        for line in text
            .lines()
            .filter(|line| line.starts_with("auction_bids_total{"))
        {
            let (labels, value) = line.rsplit_once(' ').expect("a sample");
            let labels = labels
                .trim_start_matches("auction_bids_total{kind=\"")
                .trim_end_matches("\"}")
                .replace("\",code=\"", "/");
            *counters.entry(labels).or_default() += value.parse::<u64>().expect("a count");
        }
    }
    counters
}

fn sum_of(counters: &BTreeMap<String, u64>, codes: &[&str]) -> u64 {
    counters
        .iter()
        .filter(|(label, _)| {
            codes
                .iter()
                .any(|code| label.ends_with(&format!("/{code}")))
        })
        .map(|(_, count)| count)
        .sum()
}

fn bids(rows: &BTreeMap<String, Value>, field: &str) -> u64 {
    ["bid", "proxy"]
        .iter()
        .filter_map(|op| rows.get(*op))
        .map(|row| number(&row[field]))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_short_bench_reports_sane_counts_and_no_unexpected_errors() {
    // Leaders may still move right after start; the bench retries 503s, so it may run now.
    let cluster = Cluster::start(3).await;

    let hot = bench(
        &cluster,
        &[
            "--auctions",
            "1",
            "--requests",
            "400",
            "--mix",
            "bid=50,proxy=20,read=15,history=10,list=5",
            "--no-anti-snipe",
        ],
    )
    .await;
    let hot_rows = checked_rows(&hot);
    assert_eq!(number(&hot["total"]["count"]), 400, "exactly the budget");
    assert_eq!(hot_rows.len(), 5, "every operation of the mix ran: {hot:#}");
    assert!(
        bids(&hot_rows, "done") > 0,
        "some bids were accepted: {hot:#}"
    );

    let spread = bench(
        &cluster,
        &[
            "--auctions",
            "40",
            "--duration-secs",
            "3",
            "--hot-auctions",
            "4",
            "--hot-share",
            "0.5",
            "--local-reads",
        ],
    )
    .await;
    let spread_rows = checked_rows(&spread);
    assert!(spread["elapsedSeconds"].as_f64().expect("elapsed") >= 3.0);
    assert!(
        !spread_rows.contains_key("list"),
        "list is not in the default mix"
    );
    assert!(
        bids(&spread_rows, "done") > 0,
        "some bids were accepted: {spread:#}"
    );

    // The nodes counted the same bids (a retried request is answered once more, as replayed).
    let counters = bid_counters(&cluster).await;
    let accepted = sum_of(&counters, &["winning", "outbid", "replayed"]);
    let rejected = sum_of(&counters, &["BID_TOO_LOW", "ALREADY_HIGH_BIDDER"]);
    let client_accepted = bids(&hot_rows, "done") + bids(&spread_rows, "done");
    let client_rejected = bids(&hot_rows, "rejected") + bids(&spread_rows, "rejected");
    let retries = number(&hot["total"]["retries"]) + number(&spread["total"]["retries"]);
    if retries == 0 {
        assert_eq!(accepted, client_accepted, "{counters:?}");
        assert_eq!(rejected, client_rejected, "{counters:?}");
    } else {
        assert!(accepted >= client_accepted, "{counters:?}");
    }
}
