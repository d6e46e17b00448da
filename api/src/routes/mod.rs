//! The routes of `api/API.md`, one module per resource. Each handler parses and
//! validates its input, proposes one command or reads one or more groups, and answers with a
//! view; it never builds an error body itself.

pub mod admin;
pub mod auctions;
pub mod auth;
pub mod backup;
pub mod cluster;
pub mod images;
pub mod me;
pub mod search;

use auction_raft::host::NodeStorage;
use axum::routing::{delete, get, post, put};
use axum::Router;

use crate::{events, SharedApp};

pub fn router<S: NodeStorage>() -> Router<SharedApp<S>> {
    Router::new()
        .route("/api/v1/auth/register", post(auth::register::<S>))
        .route("/api/v1/auth/login", post(auth::login::<S>))
        .route("/api/v1/auth/logout", post(auth::logout::<S>))
        .route("/api/v1/users/me", get(auth::me::<S>))
        .route(
            "/api/v1/auctions",
            get(auctions::list::<S>).post(auctions::create::<S>),
        )
        .route(
            "/api/v1/auctions/{id}",
            get(auctions::get_one::<S>)
                .put(auctions::update::<S>)
                .delete(auctions::cancel::<S>),
        )
        .route(
            "/api/v1/auctions/{id}/bids",
            get(auctions::history::<S>).post(auctions::bid::<S>),
        )
        .route("/api/v1/auctions/{id}/proxy", post(auctions::proxy::<S>))
        .route(
            "/api/v1/auctions/{id}/buy-now",
            post(auctions::buy_now::<S>),
        )
        .route("/api/v1/auctions/{id}/events", get(events::auction::<S>))
        .route(
            "/api/v1/auctions/{id}/images",
            get(images::list::<S>).post(images::upload::<S>),
        )
        .route(
            "/api/v1/auctions/{id}/images/order",
            put(images::order::<S>),
        )
        .route(
            "/api/v1/auctions/{id}/images/{image_id}",
            delete(images::remove::<S>),
        )
        .route("/api/v1/images/{auction}/{file}", get(images::serve::<S>))
        .route("/", get(crate::web::index::<S>))
        .route("/assets/{*path}", get(crate::web::asset::<S>))
        .route("/api/v1/search", get(search::search::<S>))
        .route("/api/v1/users/me/bids", get(me::bids::<S>))
        .route("/api/v1/users/me/auctions", get(me::auctions::<S>))
        .route(
            "/api/v1/users/me/watchlist",
            get(me::watchlist::<S>).post(me::watch::<S>),
        )
        .route(
            "/api/v1/users/me/watchlist/{auction_id}",
            delete(me::unwatch::<S>),
        )
        .route(
            "/api/v1/users/me/notifications",
            get(me::notifications::<S>),
        )
        .route(
            "/api/v1/users/me/notifications/{id}/read",
            post(me::mark_read::<S>),
        )
        .route("/api/v1/users/me/events", get(events::user::<S>))
        .route("/api/v1/admin/auctions", get(admin::auctions::<S>))
        .route(
            "/api/v1/admin/auctions/{id}",
            put(admin::update_auction::<S>),
        )
        .route("/api/v1/admin/users", get(admin::users::<S>))
        .route("/api/v1/admin/users/{id}/ban", post(admin::ban::<S>))
        .route("/api/v1/admin/users/{id}/role", put(admin::set_role::<S>))
        .route("/api/v1/admin/audit", get(admin::audit::<S>))
        .route("/api/v1/cluster/members", get(cluster::members::<S>))
        .route("/api/v1/cluster/nodes", post(cluster::add_node::<S>))
        .route(
            "/api/v1/cluster/nodes/{id}/promote",
            post(cluster::promote_node::<S>),
        )
        .route(
            "/api/v1/cluster/nodes/{id}",
            delete(cluster::remove_node::<S>),
        )
        .route(
            "/api/v1/cluster/groups/{group}/leader",
            post(cluster::transfer_leader::<S>),
        )
        .route(
            "/api/v1/cluster/groups/{group}/snapshot",
            post(cluster::snapshot::<S>),
        )
        .route(
            "/api/v1/cluster/groups/{group}/digest",
            get(cluster::digest::<S>),
        )
        .route(
            "/api/v1/cluster/groups/{group}/backup",
            get(backup::backup::<S>),
        )
}
