//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document, generated with `utoipa`.
//!
//! - Operations: one documentation-only function per route in [`paths`] (summary, parameters:
//!   path ids, query filters and cursors, `X-Idempotency-Key`, `Last-Event-ID`; request body;
//!   responses with their schemas; security).
//! - Schemas: the real response views ([`crate::views`], which derive `ToSchema` on the very
//!   structs they serialize), the real request bodies of [`crate::routes`], and the envelopes,
//!   error shape and loose-JSON bodies of [`schemas`].
//! - Security schemes: `bearer` (the login token), `cookie` (the HttpOnly `session` cookie),
//!   `adminToken` (`X-Admin-Token`, the cluster admin token).
//!
//! The unit test `the_document_and_the_router_name_the_same_routes` reads the router's source
//! (`.route(...)` calls under `src/`) and fails when a route is served but not documented or
//! documented but not served; the black-box tests call every documented route on a real node.
//!
//! Not done yet: the operations answers (`/cluster/status`, `/cluster/members`, digests) are
//! described in text rather than as schemas (their types live in the raft crate and `ops`).

mod paths;
pub mod schemas;

use std::sync::OnceLock;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::views::{AuctionEndedEvent, AuctionExtendedEvent, BidPlacedEvent};

/// Adds the three ways to authenticate.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("session"))),
        );
        components.add_security_scheme(
            "adminToken",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Admin-Token"))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Raft-replicated auction cluster",
        version = "1",
        description = "Every node serves the whole API. JSON is camelCase; money is a string \
            with two decimals (requests accept a number too); times are RFC 3339 UTC; ids are \
            UUIDs. Errors are `{error, message, ...details}`."
    ),
    paths(
        paths::register, paths::login, paths::logout, paths::me,
        paths::list_auctions, paths::search, paths::create_auction, paths::get_auction, paths::edit_auction,
        paths::cancel_auction, paths::place_bid, paths::bid_history, paths::place_proxy,
        paths::buy_now, paths::auction_events,
        paths::upload_image, paths::list_images, paths::delete_image, paths::order_images,
        paths::image_bytes,
        paths::my_bids, paths::my_auctions, paths::my_watchlist, paths::watch, paths::unwatch,
        paths::my_notifications, paths::mark_read, paths::my_events,
        paths::admin_auctions, paths::admin_update_auction, paths::admin_users, paths::ban_user,
        paths::set_role, paths::audit,
        paths::cluster_status, paths::cluster_members, paths::cluster_add_node,
        paths::cluster_promote_node, paths::cluster_remove_node, paths::cluster_transfer_leader,
        paths::cluster_snapshot, paths::cluster_digest, paths::cluster_backup,
        paths::web_index, paths::web_asset,
        paths::openapi_json, paths::health, paths::ready, paths::metrics,
    ),
    components(schemas(
        BidPlacedEvent, AuctionExtendedEvent, AuctionEndedEvent, schemas::ErrorBody
    )),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "Register, log in, sessions"),
        (name = "auctions", description = "Auctions, bids, proxy bids, buy now"),
        (name = "images", description = "Auction images: bytes in the object store, metadata in Raft"),
        (name = "events", description = "Server-sent events, resumable on any node"),
        (name = "me", description = "My bids, auctions, watchlist, notifications"),
        (name = "admin", description = "Admin actions, all audited"),
        (name = "cluster", description = "Raft groups and membership (auctionctl)"),
        (name = "web", description = "The web page every node serves"),
        (name = "ops", description = "Health, readiness, metrics, this document"),
    )
)]
pub struct ApiDoc;

/// The document as JSON, built once.
pub fn document() -> &'static serde_json::Value {
    static DOCUMENT: OnceLock<serde_json::Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        // utoipa's document is plain data with string keys: it always serializes.
        let mut document = serde_json::to_value(ApiDoc::openapi())
            .expect("the OpenAPI document serializes to JSON");
        describe_responses(&mut document);
        document
    })
}

/// utoipa gives a response written without a description an empty one; name its status.
fn describe_responses(document: &mut serde_json::Value) {
    let Some(paths) = document
        .get_mut("paths")
        .and_then(|paths| paths.as_object_mut())
    else {
        return;
    };
    let operations = paths
        .values_mut()
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut());
    for operation in operations {
        let Some(responses) = operation
            .get_mut("responses")
            .and_then(|responses| responses.as_object_mut())
        else {
            continue;
        };
        for (status, response) in responses.iter_mut() {
            let Some(response) = response.as_object_mut() else {
                continue;
            };
            if response.get("description").and_then(|d| d.as_str()) == Some("") {
                let reason = status
                    .parse::<u16>()
                    .ok()
                    .and_then(|code| axum::http::StatusCode::from_u16(code).ok())
                    .and_then(|code| code.canonical_reason())
                    .unwrap_or("Answer");
                response.insert("description".to_owned(), reason.into());
            }
        }
    }
}

pub async fn serve() -> axum::Json<serde_json::Value> {
    axum::Json(document().clone())
}

#[cfg(test)]
mod tests;
