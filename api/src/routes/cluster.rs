//! `/cluster/...`: the membership endpoints `auctionctl` uses, on any node.
//!
//! - `GET /cluster/members`: every member's own view of its groups (role, term, leader, log,
//!   commit and apply indexes, snapshot, replication progress on leaders), asked over gRPC.
//! - `POST /cluster/nodes {nodeId, rpcAddr}`: the node joins every group as a learner.
//! - `POST /cluster/nodes/{id}/promote`: the learner becomes a voter of every group.
//! - `DELETE /cluster/nodes/{id}`: the node leaves every group.
//! - `POST /cluster/groups/{group}/leader {nodeId}`: leadership moves to `nodeId`.
//! - `POST /cluster/groups/{group}/snapshot`: every member of the group builds a snapshot.
//! - `GET /cluster/groups/{group}/digest`: a hash of this node's replica of the group at its
//!   applied index, to check that replicas agree (equal index, equal digest).
//!
//! Each answers `{results: [{groupId, nodeId, ok, error?, logIndex?}]}`: 200 when every group
//! did it, 409 `CLUSTER_CHANGE_REFUSED` (with the same `results`) when one refused or could not
//! be reached. Every action is idempotent, so the answer to a partial failure is to repeat it.
//!
//! Callers prove themselves with the cluster admin token (`X-Admin-Token`), which needs no
//! Raft read, so a cluster whose meta group has lost its quorum can still be repaired; an
//! admin's session works too.
//!
//! One node's own view without authentication is `GET /cluster/status` ([`crate::ops`]).
//!
//! Not done yet: adding a node to some groups only (every voter is a voter of every group).

use auction_raft::host::cluster::{GroupAction, MemberStatus};
use auction_raft::host::NodeStorage;
use auction_raft::GroupId;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{has_admin_token, MaybeUser};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::ops::GroupView;
use crate::SharedApp;

/// Longest accepted `rpcAddr`, in bytes.
const RPC_ADDR_BYTES_MAX: usize = 255;

/// Lets the cluster admin token or an admin session through.
pub(crate) async fn require_operator<S: NodeStorage>(
    app: &SharedApp<S>,
    headers: &HeaderMap,
    user: &MaybeUser,
) -> ApiResult<()> {
    if has_admin_token(headers, app.config.admin_token.as_deref()) {
        return Ok(());
    }
    if headers.contains_key("x-admin-token") {
        return Err(ApiError::forbidden("the cluster admin token is not valid"));
    }
    match &user.0 {
        Some(current) => current.require_admin(app).await,
        None => Err(ApiError::unauthorized(
            "send the cluster admin token (X-Admin-Token) or log in as an admin",
        )),
    }
}

fn answer(results: Vec<GroupAction>) -> Response {
    if results.iter().all(|result| result.ok) {
        return Json(json!({ "results": results })).into_response();
    }
    let failed: Vec<GroupId> = results
        .iter()
        .filter(|result| !result.ok)
        .map(|result| result.group_id)
        .collect();
    ApiError::new(
        StatusCode::CONFLICT,
        "CLUSTER_CHANGE_REFUSED",
        format!("groups {failed:?} did not carry out the change; it is safe to repeat"),
    )
    .with("results", json!(results))
    .into_response()
}

fn node_id(raw: &str) -> ApiResult<u64> {
    raw.parse::<u64>()
        .map_err(|_| ApiError::validation("nodeId", "must be a number above 0"))
        .and_then(positive)
}

fn positive(id: u64) -> ApiResult<u64> {
    if id == 0 {
        return Err(ApiError::validation("nodeId", "must be a number above 0"));
    }
    Ok(id)
}

pub(crate) fn group_id<S: NodeStorage>(app: &SharedApp<S>, raw: &str) -> ApiResult<GroupId> {
    match raw.parse::<GroupId>() {
        Ok(group) if app.host.group_ids().contains(&group) => Ok(group),
        _ => Err(ApiError::not_found(
            "GROUP_NOT_FOUND",
            format!("there is no group {raw:?}"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddNodeBody {
    node_id: u64,
    rpc_addr: String,
}

/// `host:port`, with a port that is a number.
fn check_rpc_addr(addr: &str) -> ApiResult<()> {
    let valid = addr.len() <= RPC_ADDR_BYTES_MAX
        && !addr.contains(char::is_whitespace)
        && addr
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if valid {
        Ok(())
    } else {
        Err(ApiError::validation(
            "rpcAddr",
            format!("must be HOST:PORT, at most {RPC_ADDR_BYTES_MAX} bytes"),
        ))
    }
}

pub async fn add_node<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    headers: HeaderMap,
    user: MaybeUser,
    ApiJson(body): ApiJson<AddNodeBody>,
) -> ApiResult<Response> {
    require_operator(&app, &headers, &user).await?;
    let node = positive(body.node_id)?;
    check_rpc_addr(&body.rpc_addr)?;
    Ok(answer(app.host.add_learner(node, &body.rpc_addr).await))
}

pub async fn promote_node<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    user: MaybeUser,
) -> ApiResult<Response> {
    require_operator(&app, &headers, &user).await?;
    let node = node_id(&id)?;
    Ok(answer(app.host.promote(node).await))
}

pub async fn remove_node<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    user: MaybeUser,
) -> ApiResult<Response> {
    require_operator(&app, &headers, &user).await?;
    let node = node_id(&id)?;
    Ok(answer(app.host.remove_node(node).await))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaderBody {
    node_id: u64,
}

pub async fn transfer_leader<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    Path(group): Path<String>,
    headers: HeaderMap,
    user: MaybeUser,
    ApiJson(body): ApiJson<LeaderBody>,
) -> ApiResult<Response> {
    require_operator(&app, &headers, &user).await?;
    let group = group_id(&app, &group)?;
    let to = positive(body.node_id)?;
    Ok(answer(vec![app.host.transfer_leader(group, to).await]))
}

pub async fn snapshot<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    Path(group): Path<String>,
    headers: HeaderMap,
    user: MaybeUser,
) -> ApiResult<Response> {
    require_operator(&app, &headers, &user).await?;
    let group = group_id(&app, &group)?;
    Ok(answer(app.host.snapshot(group).await))
}

fn member_view(member: MemberStatus) -> Value {
    let groups: Vec<GroupView> = match member.groups {
        Ok(groups) => groups.into_iter().map(GroupView::from).collect(),
        Err(error) => {
            return json!({
                "nodeId": member.node_id,
                "rpcAddr": member.rpc_addr,
                "reachable": false,
                "error": error,
            })
        }
    };
    json!({
        "nodeId": member.node_id,
        "rpcAddr": member.rpc_addr,
        "reachable": true,
        "groups": groups,
    })
}

/// Every member's view, each asked directly (unreachable members say so).
pub async fn members<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    headers: HeaderMap,
    user: MaybeUser,
) -> ApiResult<Json<Value>> {
    require_operator(&app, &headers, &user).await?;
    let members: Vec<Value> = app
        .host
        .member_statuses()
        .await
        .into_iter()
        .map(member_view)
        .collect();
    Ok(Json(json!({
        "askedNode": app.host.node_id(),
        "shardCount": app.shard_count(),
        "members": members,
    })))
}

/// This node's digest of one group.
pub async fn digest<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    Path(group): Path<String>,
    headers: HeaderMap,
    user: MaybeUser,
) -> ApiResult<Json<Value>> {
    require_operator(&app, &headers, &user).await?;
    let group = group_id(&app, &group)?;
    let digest = app.host.state_digest(group).await?;
    Ok(Json(json!({
        "nodeId": app.host.node_id(),
        "groupId": digest.group_id,
        "appliedIndex": digest.applied_index,
        "records": digest.records,
        "digest": digest.digest,
    })))
}
