//! `GET /api/v1/openapi.json`: an OpenAPI 3.1 document of every route, built from one table
//! ([`ROUTES`]) of method, path, summary, who may call it, the success status and the error
//! statuses. The black-box tests call every route of the document against a real node and
//! check that none falls through to the "no such route" answer, so the table and the router
//! cannot drift apart silently.
//!
//! Not done yet: request and response body schemas per route (the shapes are in DESIGN.md;
//! the error body is described once, as `Error`); generating the document from the handlers
//! with `utoipa`.

use serde_json::{json, Map, Value};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Anyone,
    User,
    Admin,
    /// An admin, or the cluster admin token (`X-Admin-Token`).
    AdminOrToken,
}

#[derive(Debug, Clone, Copy)]
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub access: Access,
    pub success: u16,
    pub errors: &'static [u16],
}

const fn route(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    access: Access,
    success: u16,
    errors: &'static [u16],
) -> RouteDoc {
    RouteDoc {
        method,
        path,
        summary,
        access,
        success,
        errors,
    }
}

use Access::{Admin, AdminOrToken, Anyone, User};

const WRITE: &[u16] = &[400, 401, 403, 404, 409, 422, 429, 503, 504];
const READ: &[u16] = &[404, 422, 503, 504];
const MINE: &[u16] = &[401, 422, 503, 504];
const ADMIN: &[u16] = &[401, 403, 404, 409, 422, 503, 504];

/// Every route of the API, in the order of DESIGN.md.
pub const ROUTES: &[RouteDoc] = &[
    route(
        "post",
        "/api/v1/auth/register",
        "Register a user",
        Anyone,
        201,
        &[400, 409, 422, 503],
    ),
    route(
        "post",
        "/api/v1/auth/login",
        "Log in: a bearer token and the session cookie",
        Anyone,
        200,
        &[400, 401, 422, 503],
    ),
    route(
        "post",
        "/api/v1/auth/logout",
        "End this session",
        User,
        204,
        &[401, 503],
    ),
    route(
        "get",
        "/api/v1/users/me",
        "The current user",
        User,
        200,
        &[401],
    ),
    route(
        "get",
        "/api/v1/auctions",
        "List auctions: filters, sort, cursor",
        Anyone,
        200,
        &[422],
    ),
    route(
        "post",
        "/api/v1/auctions",
        "Create an auction",
        User,
        201,
        WRITE,
    ),
    route(
        "get",
        "/api/v1/auctions/{id}",
        "One auction (?consistency=local|linearizable)",
        Anyone,
        200,
        READ,
    ),
    route(
        "put",
        "/api/v1/auctions/{id}",
        "Edit an auction before its first bid (seller)",
        User,
        200,
        WRITE,
    ),
    route(
        "delete",
        "/api/v1/auctions/{id}",
        "Cancel an auction before its first bid (seller)",
        User,
        200,
        WRITE,
    ),
    route(
        "post",
        "/api/v1/auctions/{id}/bids",
        "Place a bid; 200 on an idempotent replay",
        User,
        201,
        WRITE,
    ),
    route(
        "get",
        "/api/v1/auctions/{id}/bids",
        "Bid history, newest first",
        Anyone,
        200,
        READ,
    ),
    route(
        "post",
        "/api/v1/auctions/{id}/proxy",
        "Place or raise a proxy maximum",
        User,
        201,
        WRITE,
    ),
    route(
        "post",
        "/api/v1/auctions/{id}/buy-now",
        "Buy at the buy-now price",
        User,
        201,
        WRITE,
    ),
    route(
        "get",
        "/api/v1/auctions/{id}/events",
        "Live events of an auction (SSE)",
        Anyone,
        200,
        READ,
    ),
    route(
        "get",
        "/api/v1/users/me/bids",
        "My bids: winning, outbid, won, lost",
        User,
        200,
        MINE,
    ),
    route(
        "get",
        "/api/v1/users/me/auctions",
        "Auctions I sell",
        User,
        200,
        MINE,
    ),
    route(
        "get",
        "/api/v1/users/me/watchlist",
        "My watchlist",
        User,
        200,
        MINE,
    ),
    route(
        "post",
        "/api/v1/users/me/watchlist",
        "Watch an auction",
        User,
        201,
        WRITE,
    ),
    route(
        "delete",
        "/api/v1/users/me/watchlist/{auctionId}",
        "Stop watching",
        User,
        204,
        WRITE,
    ),
    route(
        "get",
        "/api/v1/users/me/notifications",
        "My notifications, newest first",
        User,
        200,
        MINE,
    ),
    route(
        "post",
        "/api/v1/users/me/notifications/{id}/read",
        "Mark a notification read",
        User,
        200,
        WRITE,
    ),
    route(
        "get",
        "/api/v1/users/me/events",
        "My live notifications (SSE)",
        User,
        200,
        MINE,
    ),
    route(
        "get",
        "/api/v1/admin/auctions",
        "List every auction",
        Admin,
        200,
        ADMIN,
    ),
    route(
        "put",
        "/api/v1/admin/auctions/{id}",
        "Cancel or extend any auction",
        Admin,
        200,
        ADMIN,
    ),
    route(
        "get",
        "/api/v1/admin/users",
        "List users",
        Admin,
        200,
        ADMIN,
    ),
    route(
        "post",
        "/api/v1/admin/users/{id}/ban",
        "Ban or unban a user",
        Admin,
        200,
        ADMIN,
    ),
    route(
        "put",
        "/api/v1/admin/users/{id}/role",
        "Grant a role; {id} may be an email (admin or cluster admin token)",
        AdminOrToken,
        200,
        ADMIN,
    ),
    route(
        "get",
        "/api/v1/admin/audit",
        "The audit log",
        Admin,
        200,
        ADMIN,
    ),
    route(
        "get",
        "/api/v1/cluster/status",
        "Raft groups of this node",
        Anyone,
        200,
        &[],
    ),
    route(
        "get",
        "/api/v1/openapi.json",
        "This document",
        Anyone,
        200,
        &[],
    ),
    route("get", "/health", "The process answers", Anyone, 200, &[]),
    route(
        "get",
        "/ready",
        "Every local group knows a leader",
        Anyone,
        200,
        &[503],
    ),
    route("get", "/metrics", "Prometheus metrics", Anyone, 200, &[]),
];

fn path_parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            json!({
                "name": name, "in": "path", "required": true,
                "schema": { "type": "string", "format": "uuid" },
            })
        })
        .collect()
}

fn operation(route: &RouteDoc) -> Value {
    let mut responses = Map::new();
    responses.insert(
        route.success.to_string(),
        json!({ "description": "success" }),
    );
    for status in route.errors {
        responses.insert(
            status.to_string(),
            json!({
                "description": "refused",
                "content": { "application/json": {
                    "schema": { "$ref": "#/components/schemas/Error" } } },
            }),
        );
    }
    let security = match route.access {
        Access::Anyone => json!([]),
        Access::User | Access::Admin => json!([{ "bearer": [] }, { "cookie": [] }]),
        Access::AdminOrToken => json!([{ "bearer": [] }, { "cookie": [] }, { "adminToken": [] }]),
    };
    let mut operation = json!({
        "summary": route.summary,
        "parameters": path_parameters(route.path),
        "responses": responses,
        "security": security,
    });
    if route.errors.contains(&409) || route.method == "post" {
        operation["parameters"]
            .as_array_mut()
            .expect("an array")
            .push(json!({
                "name": "X-Idempotency-Key", "in": "header", "required": false,
                "schema": { "type": "string", "maxLength": 128 },
            }));
    }
    operation
}

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let item = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        item[route.method] = operation(route);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Raft-replicated auction cluster",
            "version": "1",
            "description": "Every node serves the whole API; money is a string with two decimals; \
                times are RFC 3339 UTC.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer" },
                "cookie": { "type": "apiKey", "in": "cookie", "name": "session" },
                "adminToken": { "type": "apiKey", "in": "header", "name": "X-Admin-Token" },
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {
                        "error": { "type": "string", "description": "A stable code such as BID_TOO_LOW" },
                        "message": { "type": "string" },
                        "field": { "type": "string" },
                        "currentBid": { "type": ["string", "null"] },
                        "minimumBid": { "type": "string" },
                        "retryAfter": { "type": "integer" },
                    },
                    "additionalProperties": true,
                },
            },
        },
    })
}

pub async fn serve() -> axum::Json<Value> {
    axum::Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_appears_once_with_its_path_parameters() {
        let mut seen = std::collections::BTreeSet::new();
        for route in ROUTES {
            assert!(
                seen.insert((route.method, route.path)),
                "{} {} twice",
                route.method,
                route.path
            );
        }
        let document = document();
        let bids = &document["paths"]["/api/v1/auctions/{id}/bids"];
        assert_eq!(bids["post"]["responses"]["201"]["description"], "success");
        assert_eq!(bids["get"]["parameters"][0]["name"], "id");
        assert!(bids["post"]["responses"]["429"].is_object());
    }
}
