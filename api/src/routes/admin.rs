//! `/admin/...`: list auctions and users, cancel or extend any auction, ban users, grant roles,
//! read the audit log. Every route needs the admin role, except granting a role, which the
//! cluster admin token (`X-Admin-Token`) may also do: that is how the first admin is made.
//!
//! A ban is decided in the meta group, which ends the user's sessions in the same command, and
//! then copied to every shard (`SyncBan`), where bids, listings and admin actions on auctions
//! are checked. If copying fails part-way the request answers 503 and repeating it is safe
//! (both commands are idempotent in effect). A banned admin keeps the role but cannot use it
//! until unbanned: the meta group and the shards refuse their actions (`403 USER_BANNED`), and
//! their session is refused on every node within the session lease.

use std::collections::HashMap;

use auction_raft::host::NodeStorage;
use auction_statemachine::{query, AuctionId, Op, Outcome, RequestId, Role, UserId, META_GROUP};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{has_admin_token, CurrentUser, MaybeUser};
use crate::error::{ApiError, ApiResult};
use crate::extract::{idempotency_key, limit, parse_time, path_uuid, ApiJson, Consistency};
use crate::routes::auctions::{auction_id, listing_page};
use crate::shard::shards;
use crate::views::{self, Viewer};
use crate::{blocking, new_uuid, SharedApp};

/// Audit entries read from one group per request, at most.
const AUDIT_PER_GROUP_MAX: usize = 500;

pub async fn auctions<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    current: CurrentUser,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    current.require_admin(&app).await?;
    listing_page(&app, &params, Viewer::of(&current.user))
        .await
        .map(Json)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminAuctionBody {
    /// `cancel` or `extend`.
    action: String,
    reason: Option<String>,
    end_time: Option<String>,
}

pub async fn update_auction<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    Path(id): Path<String>,
    current: CurrentUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<AdminAuctionBody>,
) -> ApiResult<Response> {
    current.require_admin(&app).await?;
    let id: AuctionId = auction_id(&id)?;
    let admin = current.user.id;
    let op = match body.action.as_str() {
        "cancel" => Op::AdminCancelAuction {
            auction_id: id,
            admin,
            reason: body.reason.unwrap_or_default(),
        },
        "extend" => {
            let text = body
                .end_time
                .ok_or_else(|| ApiError::validation("endTime", "extend needs an endTime"))?;
            Op::AdminExtendAuction {
                auction_id: id,
                admin,
                end_time: parse_time("endTime", &text)?,
            }
        }
        _ => {
            return Err(ApiError::validation(
                "action",
                "must be \"cancel\" or \"extend\"",
            ))
        }
    };
    let key = idempotency_key(&headers)?;
    // A cancel drops the auction's images: their objects go once it is committed.
    let cancelling = matches!(op, Op::AdminCancelAuction { .. });
    let images = match cancelling {
        true => crate::routes::images::committed_images(&app, id).await,
        false => Vec::new(),
    };
    let written = app
        .write(app.shard_of(id), RequestId(new_uuid()), key, op)
        .await?;
    crate::routes::images::delete_objects(&app, &images).await;
    let Outcome::Auction(auction) = written.outcome else {
        return Err(ApiError::internal("expected an auction outcome"));
    };
    let now = app.now_ms().max(written.effective_ts);
    let body = json!({ "auction": views::auction(&auction, now, Viewer::of(&current.user)) });
    Ok((StatusCode::OK, Json(body)).into_response())
}

pub async fn users<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    current: CurrentUser,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    current.require_admin(&app).await?;
    let limit = limit(params.get("limit").map(String::as_str), 50, 500)?;
    let after = params
        .get("cursor")
        .map(|text| {
            path_uuid(text)
                .map(UserId)
                .ok_or_else(|| ApiError::validation("cursor", "not a cursor this list returned"))
        })
        .transpose()?;
    let banned = params.get("banned").map(|value| value == "true");
    let role = params.get("role").cloned();
    let email = params.get("email").map(|text| text.trim().to_lowercase());
    let meta = app.reader(META_GROUP, Consistency::Linearizable).await?;
    // Filters apply within the scanned window, so a page may hold fewer than `limit` items;
    // `nextCursor` continues the scan.
    let scanned = blocking(move || query::users(&meta, after, limit)).await?;
    let next = (scanned.len() == limit)
        .then(|| scanned.last().map(|user| user.id.to_string()))
        .flatten();
    let items = scanned
        .iter()
        .filter(|user| banned.is_none_or(|banned| user.banned == banned))
        .filter(|user| {
            role.as_deref()
                .is_none_or(|role| user.role.as_str() == role)
        })
        .filter(|user| {
            email
                .as_deref()
                .is_none_or(|email| user.email.contains(email))
        })
        .map(views::user_for_admin)
        .collect();
    Ok(Json(views::list(items, next)))
}

fn user_id(text: &str) -> ApiResult<UserId> {
    path_uuid(text)
        .map(UserId)
        .ok_or_else(|| ApiError::from(auction_statemachine::Rejection::UserNotFound))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct BanBody {
    banned: Option<bool>,
    reason: Option<String>,
}

pub async fn ban<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    Path(id): Path<String>,
    current: CurrentUser,
    ApiJson(body): ApiJson<BanBody>,
) -> ApiResult<Json<Value>> {
    current.require_admin(&app).await?;
    let user_id = user_id(&id)?;
    let banned = body.banned.unwrap_or(true);
    let op = Op::BanUser {
        user_id,
        banned,
        reason: body.reason,
        admin: current.user.id,
    };
    let written = app
        .write(META_GROUP, RequestId(new_uuid()), None, op)
        .await?;
    let Outcome::User(user) = written.outcome else {
        return Err(ApiError::internal("expected a user outcome"));
    };
    let copies = shards(app.shard_count()).map(|group| {
        let op = Op::SyncBan {
            user: user_id,
            banned,
        };
        app.write(group, RequestId(new_uuid()), None, op)
    });
    for copied in futures_util::future::join_all(copies).await {
        copied?;
    }
    Ok(Json(json!({ "user": views::user_for_admin(&user) })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RoleBody {
    role: String,
}

/// Grants a role: an admin, or anyone holding the cluster admin token (the first admin). The
/// user is named by id or by email.
pub async fn set_role<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    Path(id): Path<String>,
    user: MaybeUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RoleBody>,
) -> ApiResult<Json<Value>> {
    let actor = match &user.0 {
        _ if has_admin_token(&headers, app.config.admin_token.as_deref()) => None,
        Some(current) => {
            current.require_admin(&app).await?;
            Some(current.user.id)
        }
        None => {
            return Err(ApiError::unauthorized(
                "log in as an admin or send the cluster admin token",
            ))
        }
    };
    let role = match body.role.as_str() {
        "admin" => Role::Admin,
        "user" => Role::User,
        _ => {
            return Err(ApiError::validation(
                "role",
                "must be \"admin\" or \"user\"",
            ))
        }
    };
    let user_id = if id.contains('@') {
        // An email names the user too: `auctionctl user grant-admin EMAIL` knows no id.
        let meta = app.reader(META_GROUP, Consistency::Linearizable).await?;
        query::user_by_email(&meta, &id)?
            .map(|user| user.id)
            .ok_or_else(|| ApiError::from(auction_statemachine::Rejection::UserNotFound))?
    } else {
        user_id(&id)?
    };
    let op = Op::SetRole {
        user_id,
        role,
        actor,
    };
    let written = app
        .write(META_GROUP, RequestId(new_uuid()), None, op)
        .await?;
    let Outcome::User(user) = written.outcome else {
        return Err(ApiError::internal("expected a user outcome"));
    };
    Ok(Json(json!({ "user": views::user_for_admin(&user) })))
}

/// The audit log of the meta group and every shard, newest first (the latest
/// [`AUDIT_PER_GROUP_MAX`] of each group).
pub async fn audit<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    current: CurrentUser,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    current.require_admin(&app).await?;
    let limit = limit(
        params.get("limit").map(String::as_str),
        50,
        AUDIT_PER_GROUP_MAX,
    )?;
    let mut readers = vec![app.reader(META_GROUP, Consistency::Linearizable).await?];
    readers.extend(app.shard_readers(Consistency::Linearizable).await?);
    let mut entries = blocking(move || {
        let mut entries = Vec::new();
        for reader in &readers {
            entries.extend(query::audit_log(reader, None, AUDIT_PER_GROUP_MAX)?);
        }
        Ok(entries)
    })
    .await?;
    entries.sort_by_key(|entry| {
        (
            std::cmp::Reverse(entry.created_at),
            std::cmp::Reverse(entry.id),
        )
    });
    entries.truncate(limit);
    let items = entries.iter().map(views::audit).collect();
    Ok(Json(views::list(items, None)))
}
