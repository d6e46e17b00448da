//! `GET /search` and the listings served from this node's search index ([`crate::search`]).
//!
//! Both answer from the local index, which may lag the applied state by `searchLagMs`
//! (DESIGN.md: at most a few hundred milliseconds). Without an index (the simulator's nodes)
//! search answers 503 `SEARCH_UNAVAILABLE` and listings fall back to scanning the replicas.

use std::collections::HashMap;
use std::sync::Arc;

use auction_raft::host::NodeStorage;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Map, Value};

use crate::auth::MaybeUser;
use crate::error::{ApiError, ApiResult};
use crate::search::{params, SearchIndex, SearchPage, SearchRequest};
use crate::views::{self, Viewer};
use crate::SharedApp;

fn viewer(user: &MaybeUser) -> Viewer {
    user.0
        .as_ref()
        .map_or(Viewer::GUEST, |current| Viewer::of(&current.user))
}

fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "SEARCH_UNAVAILABLE",
        "this node has no search index",
    )
    .retry_after(1)
}

/// Runs one request against the index on the blocking pool.
pub async fn run(index: Arc<dyn SearchIndex>, request: SearchRequest) -> ApiResult<SearchPage> {
    tokio::task::spawn_blocking(move || index.search(&request))
        .await
        .map_err(|_| ApiError::internal("a search was interrupted"))?
}

/// `GET /search`.
pub async fn search<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    Query(query): Query<HashMap<String, String>>,
    user: MaybeUser,
) -> ApiResult<Json<Value>> {
    let index = app.search.clone().ok_or_else(unavailable)?;
    let now = app.now_ms();
    let request = params::request(&query, now, true)?;
    let page = run(index, request).await?;
    let viewer = viewer(&user);
    let items: Vec<Value> = page
        .auctions
        .iter()
        .zip(&page.covers)
        .map(|(auction, cover)| views::listed(auction, cover.as_ref(), now, viewer))
        .collect();
    let categories: Map<String, Value> = page
        .categories
        .into_iter()
        .map(|(name, count)| (name, Value::from(count)))
        .collect();
    Ok(Json(json!({
        "items": items,
        "nextCursor": page.next_cursor.map(|cursor| cursor.encode()),
        "total": page.total,
        "facets": { "category": categories },
        "searchLagMs": page.lag_ms,
        "serverTime": crate::extract::format_time(now),
    })))
}

/// A listing page (`GET /auctions`, `GET /admin/auctions`) from the index.
pub async fn listing(
    index: Arc<dyn SearchIndex>,
    query: &HashMap<String, String>,
    now: auction_statemachine::TimestampMs,
    viewer: Viewer,
) -> ApiResult<Value> {
    let request = params::request(query, now, false)?;
    let page = run(index, request).await?;
    let items = page
        .auctions
        .iter()
        .zip(&page.covers)
        .map(|(auction, cover)| views::listed(auction, cover.as_ref(), now, viewer))
        .collect();
    Ok(views::list(
        items,
        page.next_cursor.map(|cursor| cursor.encode()),
    ))
}
