//! Operations endpoints: `/health` (the process answers), `/ready` (every local group knows a
//! leader: 503 `NO_LEADER` otherwise), `/api/v1/cluster/status` (per group: role, term, leader,
//! log, commit and apply indexes, snapshot, membership).
//!
//! `/metrics` is rendered by [`crate::metrics`].

use auction_raft::host::{GroupStatus, NodeStorage, ReplicaProgress, Role};
use auction_raft::{GroupId, NodeId};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
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

/// One node's view of one Raft group, as `/cluster/status` and `/cluster/members` show it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupView {
    group_id: GroupId,
    state: Role,
    term: u64,
    leader_id: Option<NodeId>,
    last_log_index: Option<u64>,
    committed_index: Option<u64>,
    applied_index: Option<u64>,
    snapshot_index: Option<u64>,
    purged_index: Option<u64>,
    voters: Vec<NodeId>,
    learners: Vec<NodeId>,
    /// On a leader: how far each follower's log is known to match.
    replication: Vec<ReplicaProgress>,
}

impl From<GroupStatus> for GroupView {
    fn from(group: GroupStatus) -> GroupView {
        GroupView {
            group_id: group.group_id,
            state: group.role,
            term: group.term,
            leader_id: group.leader_id,
            last_log_index: group.last_log_index,
            committed_index: group.committed_index,
            applied_index: group.applied_index,
            snapshot_index: group.snapshot_index,
            purged_index: group.purged_index,
            voters: group.voters,
            learners: group.learners,
            replication: group.replication,
        }
    }
}

fn group_statuses<S: NodeStorage>(app: &SharedApp<S>) -> Vec<GroupView> {
    app.host
        .local_statuses()
        .into_iter()
        .map(GroupView::from)
        .collect()
}

async fn ready<S: NodeStorage>(State(app): State<SharedApp<S>>) -> Response {
    let me = app.host.node_id();
    let statuses = group_statuses(&app);
    let leaderless: Vec<GroupId> = statuses
        .iter()
        .filter(|group| group.leader_id.is_none())
        .map(|group| group.group_id)
        .collect();
    // A group this node leads but whose writes it would refuse (no majority view of time yet,
    // right after a start or an election): not ready either.
    let unstamped: Vec<GroupId> = statuses
        .iter()
        .filter(|group| group.leader_id == Some(me) && !app.host.can_stamp(group.group_id))
        .map(|group| group.group_id)
        .collect();
    if leaderless.is_empty() && unstamped.is_empty() {
        return Json(json!({ "status": "ready" })).into_response();
    }
    let body = if leaderless.is_empty() {
        json!({
            "error": "UNAVAILABLE",
            "message": "this node leads groups whose voters' clocks it has not heard yet",
            "groups": unstamped,
        })
    } else {
        json!({
            "error": "NO_LEADER",
            "message": "some groups have no leader yet",
            "groups": leaderless,
        })
    };
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
