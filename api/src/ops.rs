//! Operations endpoints: `/health` (the process answers), `/ready` (every local group knows a
//! leader: 503 `NO_LEADER` otherwise), `/api/v1/cluster/status` (per group: role, term, leader,
//! log, commit and apply indexes, snapshot, membership).
//!
//! `/metrics` is rendered by [`crate::metrics`].

use auction_raft::host::NodeStorage;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use openraft::async_runtime::WatchReceiver;
use serde::Serialize;
use serde_json::json;

use crate::extract::format_time;
use crate::SharedApp;

pub fn router<S: NodeStorage>() -> Router<SharedApp<S>> {
    Router::new()
        .route("/health", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/ready", get(ready::<S>))
        .route("/api/v1/cluster/status", get(status::<S>))
        .route("/metrics", get(crate::metrics::render::<S>))
        .route("/api/v1/openapi.json", get(crate::openapi::serve))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupStatus {
    group_id: u64,
    state: String,
    term: u64,
    leader_id: Option<u64>,
    last_log_index: Option<u64>,
    committed_index: Option<u64>,
    applied_index: Option<u64>,
    snapshot_index: Option<u64>,
    purged_index: Option<u64>,
    voters: Vec<u64>,
    learners: Vec<u64>,
}

fn group_statuses<S: NodeStorage>(app: &SharedApp<S>) -> Vec<GroupStatus> {
    let host = &app.host;
    let mut statuses = Vec::new();
    for group_id in host.group_ids() {
        let Ok(raft) = host.raft(group_id) else {
            continue;
        };
        let metrics = raft.metrics().borrow_watched().clone();
        let membership = metrics.membership_config.membership();
        statuses.push(GroupStatus {
            group_id,
            state: format!("{:?}", metrics.state).to_lowercase(),
            term: metrics.current_term,
            leader_id: metrics.current_leader,
            last_log_index: metrics.last_log_index,
            committed_index: metrics.local_committed.map(|log_id| log_id.index),
            applied_index: metrics.last_applied.map(|log_id| log_id.index),
            snapshot_index: metrics.snapshot.map(|log_id| log_id.index),
            purged_index: metrics.purged.map(|log_id| log_id.index),
            voters: membership.voter_ids().collect(),
            learners: membership.learner_ids().collect(),
        });
    }
    statuses
}

async fn ready<S: NodeStorage>(State(app): State<SharedApp<S>>) -> Response {
    let leaderless: Vec<u64> = group_statuses(&app)
        .into_iter()
        .filter(|group| group.leader_id.is_none())
        .map(|group| group.group_id)
        .collect();
    if leaderless.is_empty() {
        return Json(json!({ "status": "ready" })).into_response();
    }
    let body = json!({
        "error": "NO_LEADER",
        "message": "some groups have no leader yet",
        "groups": leaderless,
    });
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [("retry-after", "1")],
        Json(body),
    )
        .into_response()
}

async fn status<S: NodeStorage>(State(app): State<SharedApp<S>>) -> Json<serde_json::Value> {
    Json(json!({
        "nodeId": app.host.node_id(),
        "shardCount": app.shard_count(),
        "groups": group_statuses(&app),
        "serverTime": format_time(app.now_ms()),
    }))
}
