//! Black-box tests of SSE resume (`Last-Event-ID`) against a cluster of 3 real `auction-node`
//! processes: a stream started on one node and resumed on another gets exactly the events it
//! missed, in order, then the live ones, without duplicates; an id older than what the cluster
//! keeps (or one it never sent) gets an explicit `resync`; a malformed id is refused.

mod common;

use std::time::Duration;

use common::{Api, Cluster, SseMessage, SseStream};
use serde_json::{json, Value};

struct Ctx {
    cluster: Cluster,
    client: Api,
    seller: (String, String),
    alice: (String, String),
    bob: (String, String),
}

impl Ctx {
    fn url(&self, node: usize, path: &str) -> String {
        format!("{}/api/v1{path}", self.cluster.url(node))
    }

    async fn auction(&self, body: Value) -> String {
        let created = self
            .client
            .post(self.url(0, "/auctions"), Some(&self.seller.1), body)
            .await
            .expect(201);
        created["auction"]["id"].as_str().expect("id").to_owned()
    }

    /// A bid through node `node`; returns the answer.
    async fn bid(&self, node: usize, auction: &str, token: &str, amount: u64) -> Value {
        let url = self.url(node, &format!("/auctions/{auction}/bids"));
        self.client
            .post(url, Some(token), json!({ "amount": amount.to_string() }))
            .await
            .expect(201)
    }

    async fn stream(
        &self,
        node: usize,
        path: &str,
        token: Option<&str>,
        last: Option<&str>,
    ) -> SseStream {
        SseStream::open(&self.url(node, path), token, last)
            .await
            .unwrap_or_else(|reply| panic!("stream refused: {:?}", reply.body))
    }
}

fn seq(message: &SseMessage) -> u64 {
    message
        .id
        .as_deref()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("an auction event has a numeric id: {message:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_resume_on_another_node() {
    let cluster = Cluster::start(3).await;
    let client = Api::default();
    let base = cluster.url(0).to_owned();
    let seller = client.user(&base, "sse-seller").await;
    let alice = client.user(&base, "sse-alice").await;
    let bob = client.user(&base, "sse-bob").await;
    let ctx = Ctx {
        cluster,
        client,
        seller,
        alice,
        bob,
    };
    malformed_ids_are_refused(&ctx).await;
    auction_stream_resumes_on_another_node(&ctx).await;
    user_stream_resumes_on_another_node(&ctx).await;
    ids_too_old_or_never_sent_get_resync(&ctx).await;
}

async fn malformed_ids_are_refused(ctx: &Ctx) {
    let id = ctx
        .auction(json!({ "title": "Malformed", "startingPrice": "5", "durationSeconds": 600 }))
        .await;
    for bad in ["abc", "-1", "1:2"] {
        let url = ctx.url(1, &format!("/auctions/{id}/events"));
        let refused = SseStream::open(&url, None, Some(bad))
            .await
            .err()
            .expect("refused");
        refused.expect_error(400, "VALIDATION_FAILED");
    }
    for bad in ["7", "1:x", "99:1", "1:1,1:2"] {
        let url = ctx.url(2, "/users/me/events");
        let refused = SseStream::open(&url, Some(&ctx.alice.1), Some(bad))
            .await
            .err()
            .expect("refused");
        let body = refused.expect_error(400, "VALIDATION_FAILED");
        assert_eq!(body["field"], "Last-Event-ID");
    }
}

async fn auction_stream_resumes_on_another_node(ctx: &Ctx) {
    let id = ctx
        .auction(json!({
            "title": "Resumed", "startingPrice": "10", "durationSeconds": 600,
            "antiSnipe": { "windowSeconds": 0, "extensionSeconds": 0 },
        }))
        .await;
    let path = format!("/auctions/{id}/events");
    // Node 2 streams; bids go through node 1.
    let mut first = ctx.stream(1, &path, None, None).await;
    let snapshot = first.next().await;
    assert_eq!(snapshot.event, "snapshot");
    assert_eq!(snapshot.id.as_deref(), Some("0"), "no events yet");
    let bidders = [&ctx.alice, &ctx.bob];
    let mut prices = Vec::new();
    for step in 0..3u64 {
        let answer = ctx
            .bid(0, &id, &bidders[step as usize % 2].1, 10 + step)
            .await;
        prices.push(answer["currentPrice"].clone());
    }
    for expected in 1..=3u64 {
        let event = first.next().await;
        assert_eq!(
            (event.event.as_str(), seq(&event)),
            ("bid_placed", expected)
        );
        assert_eq!(event.data["currentPrice"], prices[expected as usize - 1]);
        assert!(
            event.data.get("amount").is_none(),
            "a bid event never shows a maximum"
        );
    }
    drop(first);
    // Missed while disconnected.
    for step in 3..7u64 {
        let answer = ctx
            .bid(0, &id, &bidders[step as usize % 2].1, 10 + step)
            .await;
        prices.push(answer["currentPrice"].clone());
    }
    // Resume on node 3 from the last id node 2 sent.
    let mut resumed = ctx.stream(2, &path, None, Some("3")).await;
    for expected in 4..=7u64 {
        let event = resumed.next().await;
        assert_eq!(
            (event.event.as_str(), seq(&event)),
            ("bid_placed", expected),
            "exactly the missed events, in order: {event:?}"
        );
        assert_eq!(event.data["currentPrice"], prices[expected as usize - 1]);
    }
    // Then live, without a duplicate or a gap.
    let answer = ctx.bid(1, &id, &ctx.bob.1, 30).await;
    let live = resumed.next().await;
    assert_eq!((live.event.as_str(), seq(&live)), ("bid_placed", 8));
    assert_eq!(live.data["currentPrice"], answer["currentPrice"]);
    assert!(
        resumed
            .next_within(Duration::from_millis(800))
            .await
            .is_none(),
        "nothing more than the events that happened"
    );
    // Caught up: resuming from the latest id sends nothing old.
    let mut current = ctx.stream(0, &path, None, Some("8")).await;
    assert!(current
        .next_within(Duration::from_millis(800))
        .await
        .is_none());
}

/// Alice's notifications, newest first, from the list route.
async fn notification_ids(ctx: &Ctx) -> Vec<String> {
    let list = ctx
        .client
        .get(
            ctx.url(0, "/users/me/notifications?limit=100"),
            Some(&ctx.alice.1),
        )
        .await
        .expect(200);
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["id"].as_str().expect("id").to_owned())
        .collect()
}

async fn user_stream_resumes_on_another_node(ctx: &Ctx) {
    let no_snipe = json!({ "windowSeconds": 0, "extensionSeconds": 0 });
    // Two auctions, likely in different shards: the cursor tracks every shard.
    let mut lots = Vec::new();
    for title in ["Lamp", "Chair", "Desk"] {
        let body = json!({
            "title": title, "startingPrice": "10", "durationSeconds": 600, "antiSnipe": no_snipe,
        });
        lots.push(ctx.auction(body).await);
    }
    let mut first = ctx
        .stream(1, "/users/me/events", Some(&ctx.alice.1), None)
        .await;
    let ready = first.next().await;
    assert_eq!(ready.event, "ready");
    let mut price = 10;
    // Alice bids, Bob outbids her: one `outbid` notification each time.
    for lot in &lots[..2] {
        ctx.bid(0, lot, &ctx.alice.1, price).await;
        ctx.bid(0, lot, &ctx.bob.1, price + 1).await;
        price += 2;
    }
    let mut last_id = String::new();
    for _ in 0..2 {
        let note = first.next().await;
        assert_eq!(
            (note.event.as_str(), note.data["type"].as_str()),
            ("notification", Some("outbid"))
        );
        last_id = note.id.expect("an id to resume from");
    }
    let seen = notification_ids(ctx).await;
    drop(first);
    for lot in &lots {
        ctx.bid(0, lot, &ctx.alice.1, price + 10).await;
        ctx.bid(0, lot, &ctx.bob.1, price + 11).await;
        price += 2;
    }
    let all = notification_ids(ctx).await;
    let mut missed: Vec<String> = all[..all.len() - seen.len()].to_vec();
    missed.reverse();
    assert_eq!(missed.len(), 3, "three more outbid notices: {all:?}");
    let mut resumed = ctx
        .stream(2, "/users/me/events", Some(&ctx.alice.1), Some(&last_id))
        .await;
    let mut got = Vec::new();
    for _ in 0..missed.len() {
        let note = resumed.next().await;
        assert_eq!(note.event, "notification");
        got.push(note.data["id"].as_str().expect("id").to_owned());
        last_id = note.id.expect("id");
    }
    assert_eq!(
        got, missed,
        "exactly the missed notifications, oldest first"
    );
    // Live after the replay, no duplicate.
    ctx.bid(1, &lots[0], &ctx.alice.1, price + 20).await;
    ctx.bid(1, &lots[0], &ctx.bob.1, price + 21).await;
    let live = resumed.next().await;
    assert_eq!(live.data["type"], "outbid");
    assert!(!got.contains(&live.data["id"].as_str().expect("id").to_owned()));
    assert!(resumed
        .next_within(Duration::from_millis(800))
        .await
        .is_none());
    // The last id resumes with nothing old, on yet another node.
    let live_id = live.id.expect("id");
    assert_ne!(live_id, last_id);
    let mut again = ctx
        .stream(0, "/users/me/events", Some(&ctx.alice.1), Some(&live_id))
        .await;
    assert!(again
        .next_within(Duration::from_millis(800))
        .await
        .is_none());
}

async fn ids_too_old_or_never_sent_get_resync(ctx: &Ctx) {
    // Every bid is in the anti-sniping window, so each records two events (bid, extension)
    // and tells both bidders of the extension.
    let id = ctx
        .auction(json!({
            "title": "Busy", "startingPrice": "1", "durationSeconds": 3_600,
            "antiSnipe": { "windowSeconds": 3_600, "extensionSeconds": 3_600 },
        }))
        .await;
    let path = format!("/auctions/{id}/events");
    // An id this cluster never sent: start over.
    let mut ahead = ctx.stream(1, &path, None, Some("999999")).await;
    assert_eq!(ahead.next().await.event, "resync");
    let snapshot = ahead.next().await;
    assert_eq!(
        (snapshot.event.as_str(), snapshot.id.as_deref()),
        ("snapshot", Some("0"))
    );
    drop(ahead);

    let mut me = ctx
        .stream(2, "/users/me/events", Some(&ctx.alice.1), None)
        .await;
    let old_cursor = me.next().await.id.expect("ready has the current position");
    drop(me);
    let bidders = [&ctx.alice, &ctx.bob];
    // Each bid notifies Alice about 1.5 times (the extension; every other bid outbids her).
    let bids = 720u64;
    for step in 0..bids {
        ctx.bid(
            step as usize % 3,
            &id,
            &bidders[step as usize % 2].1,
            1 + step,
        )
        .await;
    }
    // Linearizable reads make both replicas that stream below apply every bid first.
    for node in [0, 1] {
        ctx.client
            .get(ctx.url(node, &format!("/auctions/{id}")), None)
            .await
            .expect(200);
    }
    let mut fresh = ctx.stream(0, &path, None, None).await;
    let head: u64 = seq(&fresh.next().await);
    drop(fresh);
    assert!(head > 1_001, "{head} events");
    // Event 2 is no longer kept (only the latest 1000 are): resync, then the state.
    let mut old = ctx.stream(1, &path, None, Some("1")).await;
    assert_eq!(old.next().await.event, "resync");
    let snapshot = old.next().await;
    assert_eq!(snapshot.event, "snapshot");
    assert_eq!(snapshot.id, Some(head.to_string()));
    assert_eq!(snapshot.data["auction"]["bidCount"], bids);
    // The oldest kept one still resumes.
    let oldest_kept_after = head - 1_000;
    let mut kept = ctx
        .stream(2, &path, None, Some(&oldest_kept_after.to_string()))
        .await;
    assert_eq!(seq(&kept.next().await), oldest_kept_after + 1);
    // Alice missed over a thousand notifications: resync, then ready with the current cursor.
    let mut me = ctx
        .stream(0, "/users/me/events", Some(&ctx.alice.1), Some(&old_cursor))
        .await;
    assert_eq!(me.next().await.event, "resync");
    let ready = me.next().await;
    assert_eq!(ready.event, "ready");
    assert_ne!(ready.id, Some(old_cursor));
}
