//! Clients of the real HTTP API: the routing layer (HTTP parsing, authentication with a
//! linearizable session read, validation, idempotency keys, the host's forwarding to the group
//! leader, error mapping) under the same faults as everything else.
//!
//! - Users: the setup registers [`API_USERS`] bidders through `POST /auth/register` (with an
//!   idempotency key, so a retried registration is a replay) and logs each in
//!   (`POST /auth/login`); their bearer tokens authenticate the bids. Credentials are fixed
//!   names; the ids and tokens the API mints come from the seeded entropy of the node
//!   ([`crate::node::api_config`]).
//! - Writes: `POST /auctions/{id}/bids`, `/proxy` and `/buy-now`, always with
//!   `X-Idempotency-Key` (retries after an unknown outcome reuse it). An HTTP answer does not
//!   carry everything the checker needs (the bid's steps, the time it took effect, the request
//!   id the API chose), so each attempt is recorded provisionally and resolved at the end of the
//!   run against the shard's de-duplication record ([`crate::api_history`]): 2xx acknowledged,
//!   4xx refused (a domain rejection, or refused before it was proposed), 5xx (503 no leader,
//!   504 time-out, 500) and broken connections unknown; a connection that could not be opened
//!   sent nothing (fail).
//! - Reads: `GET /auctions/{id}` (linearizable, the default) is a history read whose view (no
//!   proxy maximum: the API never shows it) the checker compares with the model; a 404
//!   `AUCTION_NOT_FOUND` reads "no auction". `GET /auctions/{id}/bids` is not a history
//!   operation; every step it shows must be in the auction's final history, unchanged
//!   ([`crate::api_history::check_bid_reads`]).
//!
//! Not done yet: the other routes (listings, watchlists, notifications, admin), logout and
//! session expiry, SSE streams.

use auction_jepsen::{Completion, ObservedAuction, OkValue, Operation, WriteRequest};
use auction_statemachine::command::Op;
use auction_statemachine::money::Money;
use auction_statemachine::{AuctionId, GroupId, Phase, TimestampMs, UserId};
use hyper::http::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::client::{Client, CLIENT_TIMEOUT_MS};
use crate::http::{self, HttpCall, HttpRequest};
use crate::rng::SimRng;

/// Bidders the setup registers through the API.
pub const API_USERS: u64 = 4;
/// Pause between two attempts of a setup request.
const SETUP_RETRY_MS: u64 = 200;

/// A user registered through the API, with its session token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiUser {
    pub id: UserId,
    pub token: String,
}

/// What an API write's answer said, kept for the end of the run.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiAnswer {
    /// 2xx, with the bid view.
    Acked(Value),
    /// 4xx, with the body's `error` code.
    Refused(String),
    /// Nothing sent, or the outcome is unknown.
    Open,
}

/// One attempt of a write through the API, with the positions of its events in the history.
#[derive(Debug, Clone)]
pub struct ApiWrite {
    pub invoke_index: usize,
    pub complete_index: usize,
    pub group: GroupId,
    pub write: WriteRequest,
    pub answer: ApiAnswer,
}

/// One step of a bid history read through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenStep {
    pub sequence: u32,
    pub amount: Money,
    pub bidder: UserId,
    pub created_at: TimestampMs,
}

/// A bid history read through the API.
#[derive(Debug, Clone)]
pub struct BidRead {
    pub auction: AuctionId,
    /// Newest first, as the API lists them.
    pub steps: Vec<SeenStep>,
}

fn credentials(index: u64) -> (String, String) {
    (
        format!("bidder{index}@sim.test"),
        format!("sim-password-{index}"),
    )
}

/// Sleeps between setup attempts; false once `deadline_ms` (simulated) has passed.
async fn pause_before_retry(deadline_ms: i64) -> bool {
    tokio::time::sleep(std::time::Duration::from_millis(SETUP_RETRY_MS)).await;
    crate::net::SimClock::elapsed_ms() < deadline_ms
}

/// Registers and logs in the API users, retrying each request until `deadline_ms`.
pub async fn register_users(
    nodes: u64,
    rng: &mut SimRng,
    deadline_ms: i64,
) -> Result<Vec<ApiUser>, String> {
    let mut users = Vec::new();
    for index in 0..API_USERS {
        let (email, password) = credentials(index);
        let mut register = HttpRequest::post(
            "/api/v1/auth/register".to_owned(),
            json!({ "email": email, "password": password, "displayName": format!("Bidder {index}") }),
        );
        register.idempotency_key = Some(format!("register-{index}"));
        loop {
            let answer = http::call(rng.between(1, nodes), &register, CLIENT_TIMEOUT_MS).await;
            let registered = match &answer {
                HttpCall::Answered(answer) => {
                    answer.status.is_success() || answer.error_code() == Some("EMAIL_TAKEN")
                }
                _ => false,
            };
            if registered {
                break;
            }
            if !pause_before_retry(deadline_ms).await {
                return Err(format!("registering user {index}: {answer:?}"));
            }
        }
        let login = HttpRequest::post(
            "/api/v1/auth/login".to_owned(),
            json!({ "email": email, "password": password }),
        );
        loop {
            let answer = http::call(rng.between(1, nodes), &login, CLIENT_TIMEOUT_MS).await;
            if let HttpCall::Answered(answer) = &answer {
                if let Some(user) = logged_in(&answer.body) {
                    users.push(user);
                    break;
                }
            }
            if !pause_before_retry(deadline_ms).await {
                return Err(format!("logging user {index} in: {answer:?}"));
            }
        }
    }
    Ok(users)
}

fn logged_in(body: &Value) -> Option<ApiUser> {
    let token = body.get("token")?.as_str()?.to_owned();
    let id = uuid_field(body.get("user")?, "id")?;
    Some(ApiUser {
        id: UserId(id),
        token,
    })
}

fn uuid_field(body: &Value, field: &str) -> Option<Uuid> {
    Uuid::parse_str(body.get(field)?.as_str()?).ok()
}

fn money_field(body: &Value, field: &str) -> Option<Money> {
    Money::parse(body.get(field)?.as_str()?).ok()
}

fn time_field(body: &Value, field: &str) -> Option<TimestampMs> {
    auction_api::extract::parse_time(field, body.get(field)?.as_str()?).ok()
}

fn phase_of(status: &str) -> Option<Phase> {
    match status {
        "scheduled" | "active" => Some(Phase::Open),
        "sold" => Some(Phase::Sold),
        "unsold" => Some(Phase::Unsold),
        "cancelled" => Some(Phase::Cancelled),
        _ => None,
    }
}

/// What a reader of the API sees of an auction view (no proxy maximum).
pub fn observed(view: &Value) -> Option<ObservedAuction> {
    let high_bidder = match view.get("highBidderId")? {
        Value::Null => None,
        _ => Some(UserId(uuid_field(view, "highBidderId")?)),
    };
    let current_price = match view.get("currentPrice")? {
        Value::Null => None,
        _ => Some(money_field(view, "currentPrice")?),
    };
    Some(ObservedAuction {
        phase: phase_of(view.get("status")?.as_str()?)?,
        current_price,
        high_bidder,
        high_max: None,
        bid_count: u32::try_from(view.get("bidCount")?.as_u64()?).ok()?,
        end_time: time_field(view, "endTime")?,
    })
}

fn seen_step(item: &Value) -> Option<SeenStep> {
    Some(SeenStep {
        sequence: u32::try_from(item.get("sequence")?.as_u64()?).ok()?,
        amount: money_field(item, "amount")?,
        bidder: UserId(uuid_field(item, "bidderId")?),
        created_at: time_field(item, "createdAt")?,
    })
}

/// The request of a bid-like write through the API.
fn write_request(write: &WriteRequest, token: &str) -> Option<HttpRequest> {
    let (path, body) = match &write.op {
        Op::PlaceBid {
            auction_id, amount, ..
        } => (
            format!("/api/v1/auctions/{auction_id}/bids"),
            json!({ "amount": amount }),
        ),
        Op::PlaceProxyBid {
            auction_id,
            max_amount,
            ..
        } => (
            format!("/api/v1/auctions/{auction_id}/proxy"),
            json!({ "maxAmount": max_amount }),
        ),
        Op::BuyNow { auction_id, .. } => {
            (format!("/api/v1/auctions/{auction_id}/buy-now"), json!({}))
        }
        _ => return None,
    };
    let mut request = HttpRequest::post(path, body);
    request.token = Some(token.to_owned());
    request.idempotency_key = write.idempotency_key.clone();
    Some(request)
}

impl Client {
    /// The API user this client bids as for this operation.
    pub(crate) fn api_user(&mut self) -> Option<ApiUser> {
        let users = self.workload.api_users.borrow().clone();
        self.rng.pick(&users).cloned()
    }

    /// One attempt of a write through the API; returns whether its outcome is unknown.
    pub(crate) async fn api_write_once(&mut self, user: &ApiUser, request: WriteRequest) -> bool {
        let process = self.process;
        let workload = self.workload.clone();
        let group =
            crate::client::auction_of(&request.op).map_or(0, |auction| workload.shard_of(auction));
        let invoke_index = workload.invoke(process, Operation::write(request.clone()));
        let node = self.node();
        let call = match write_request(&request, &user.token) {
            Some(http_request) => http::call(node, &http_request, CLIENT_TIMEOUT_MS).await,
            None => HttpCall::NotSent("not a write the API client knows".to_owned()),
        };
        let (completion, answer, unknown) = api_write_completion(call);
        if let ApiAnswer::Acked(body) = &answer {
            self.note_price(
                request_auction(&request),
                body.get("currentPrice")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            );
        }
        let complete_index = workload.complete(process, completion);
        workload.api_writes.borrow_mut().push(ApiWrite {
            invoke_index,
            complete_index,
            group,
            write: request,
            answer,
        });
        unknown
    }

    /// A linearizable read of one auction through the API (a history operation).
    pub(crate) async fn api_read(&mut self, auction: AuctionId) {
        let process = self.process;
        let workload = self.workload.clone();
        workload.invoke(
            process,
            Operation::Read {
                auction_id: auction,
            },
        );
        let mut request = HttpRequest::get(format!("/api/v1/auctions/{auction}"));
        // Sometimes as a signed-in user: the session lookup is one more linearizable read.
        if self.rng.percent(30) {
            request.token = self.api_user().map(|user| user.token);
        }
        let node = self.node();
        let completion = match http::call(node, &request, CLIENT_TIMEOUT_MS).await {
            HttpCall::Answered(answer) if answer.status == StatusCode::OK => {
                match answer.body.get("auction").and_then(observed) {
                    Some(seen) => {
                        workload.note_end(auction, seen.end_time);
                        self.note_price(auction, seen.current_price.map(|price| price.to_string()));
                        Completion::Ok(OkValue::Read {
                            auction: Some(seen),
                        })
                    }
                    None => {
                        workload.problem(format!("an unreadable auction view: {}", answer.body));
                        Completion::Fail {
                            reason: "unreadable answer".to_owned(),
                        }
                    }
                }
            }
            HttpCall::Answered(answer)
                if answer.status == StatusCode::NOT_FOUND
                    && answer.error_code() == Some("AUCTION_NOT_FOUND") =>
            {
                Completion::Ok(OkValue::Read { auction: None })
            }
            HttpCall::Answered(answer) => Completion::Fail {
                reason: format!("{} {}", answer.status, answer.body),
            },
            HttpCall::NotSent(reason) | HttpCall::Lost(reason) => Completion::Fail { reason },
        };
        workload.complete(process, completion);
    }

    /// A bid history read through the API (checked against the final history).
    pub(crate) async fn api_bid_history(&mut self, auction: AuctionId) {
        let request = HttpRequest::get(format!("/api/v1/auctions/{auction}/bids?limit=500"));
        let node = self.node();
        let HttpCall::Answered(answer) = http::call(node, &request, CLIENT_TIMEOUT_MS).await else {
            return;
        };
        if answer.status != StatusCode::OK {
            return;
        }
        let items = answer.body.get("items").and_then(Value::as_array);
        let steps: Option<Vec<SeenStep>> =
            items.and_then(|items| items.iter().map(seen_step).collect());
        match steps {
            Some(steps) => self
                .workload
                .bid_reads
                .borrow_mut()
                .push(BidRead { auction, steps }),
            None => self
                .workload
                .problem(format!("an unreadable bid history: {}", answer.body)),
        }
    }
}

fn request_auction(request: &WriteRequest) -> AuctionId {
    crate::client::auction_of(&request.op).unwrap_or(AuctionId(Uuid::nil()))
}

/// The provisional completion of an API write, what to resolve later, and whether the
/// outcome is unknown (so the client retries).
fn api_write_completion(call: HttpCall) -> (Completion, ApiAnswer, bool) {
    match call {
        HttpCall::NotSent(reason) => (Completion::Fail { reason }, ApiAnswer::Open, false),
        HttpCall::Lost(reason) => (
            Completion::Info {
                reason,
                proposed_ts: None,
            },
            ApiAnswer::Open,
            true,
        ),
        HttpCall::Answered(answer) if answer.status.is_success() => (
            Completion::Info {
                reason: format!("{}: resolved at the end of the run", answer.status),
                proposed_ts: None,
            },
            ApiAnswer::Acked(answer.body),
            false,
        ),
        HttpCall::Answered(answer) if answer.status.is_client_error() => {
            let code = answer.error_code().unwrap_or("no error code").to_owned();
            (
                Completion::Fail {
                    reason: format!("{} {code}", answer.status),
                },
                ApiAnswer::Refused(code),
                false,
            )
        }
        HttpCall::Answered(answer) => (
            Completion::Info {
                reason: format!("{} {}", answer.status, answer.body),
                proposed_ts: None,
            },
            ApiAnswer::Open,
            true,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::{observed, seen_step};
    use auction_statemachine::Phase;
    use serde_json::json;

    #[test]
    fn views_parse_into_what_the_checker_compares() {
        let view = json!({
            "status": "active", "currentPrice": "12.00", "bidCount": 3,
            "highBidderId": "00000000-0000-0000-0000-000000000007",
            "endTime": "2026-01-01T01:00:00.000Z",
        });
        let seen = observed(&view).expect("a view");
        assert_eq!(seen.phase, Phase::Open);
        assert_eq!(seen.bid_count, 3);
        assert_eq!(
            seen.current_price.map(|price| price.to_string()).as_deref(),
            Some("12.00")
        );
        assert_eq!(seen.end_time, 1_767_229_200_000);
        assert!(seen.high_max.is_none(), "the API never shows the maximum");
        let fresh = json!({
            "status": "sold", "currentPrice": null, "bidCount": 0, "highBidderId": null,
            "endTime": "2026-01-01T01:00:00.000Z",
        });
        assert_eq!(observed(&fresh).map(|seen| seen.phase), Some(Phase::Sold));
        assert!(
            observed(&json!({ "status": "active" })).is_none(),
            "fields missing"
        );
        let step = json!({
            "sequence": 2, "amount": "5.00", "bidderId": "00000000-0000-0000-0000-000000000007",
            "isProxy": false, "createdAt": "2026-01-01T00:00:01.500Z",
        });
        assert_eq!(
            seen_step(&step).map(|step| step.created_at),
            Some(1_767_225_601_500)
        );
    }
}
