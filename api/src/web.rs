//! The web page (DESIGN.md "Web page"): static files under `api/web/`, embedded in the binary
//! at build time (`rust-embed`), served by every node at `/` (the app's `index.html`) and
//! `/assets/PATH` (every file of the folder). The app is plain JavaScript modules and CSS with
//! hash routing, talking to the same JSON API as every other client, so there is nothing to
//! render here and no build step.
//!
//! Every answer carries a Content-Security-Policy that allows only this origin's scripts,
//! styles, images and connections (no inline script or style, no framing), with `nosniff`
//! and a same-origin referrer policy. Files are revalidated on every load (`no-cache` with an
//! `ETag` of their SHA-256), so a node upgraded to new files serves them at once.
//!
//! With `web_dir` set (`--web-dir`, for working on the page) the files are read from that
//! directory on each request instead, confined to it.
//!
//! Not done yet: compression (the files are small), a service worker for offline use.

use std::borrow::Cow;
use std::path::{Component, Path, PathBuf};

use auction_raft::host::NodeStorage;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::extract::{etag_matches, hex};
use crate::SharedApp;

#[derive(RustEmbed)]
#[folder = "web/"]
struct Files;

/// The policy of every page and file.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
    style-src 'self'; script-src 'self'; connect-src 'self'; font-src 'self'; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";
/// Longest asset path accepted.
const ASSET_PATH_BYTES_MAX: usize = 200;

fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map_or("", |(_, extension)| extension);
    match extension {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "webmanifest" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn not_found() -> ApiError {
    ApiError::not_found("FILE_NOT_FOUND", "the web page has no such file")
}

/// A relative path of plain components only (no `..`, no root, no empty parts).
fn plain(path: &str) -> Option<PathBuf> {
    if path.is_empty() || path.len() > ASSET_PATH_BYTES_MAX || path.contains('\\') {
        return None;
    }
    let relative = Path::new(path);
    relative
        .components()
        .all(|component| matches!(component, Component::Normal(_)))
        .then(|| relative.to_path_buf())
}

/// The file's bytes (the embedded ones are not copied) and the hex SHA-256 that tags them.
async fn load(dir: Option<&Path>, path: &str) -> ApiResult<(Bytes, String)> {
    let relative = plain(path).ok_or_else(not_found)?;
    match dir {
        Some(dir) => {
            let bytes = tokio::fs::read(dir.join(relative))
                .await
                .map_err(|_| not_found())?;
            let tag = hex(&Sha256::digest(&bytes));
            Ok((bytes.into(), tag))
        }
        None => {
            let file = Files::get(path).ok_or_else(not_found)?;
            let bytes = match file.data {
                Cow::Borrowed(bytes) => Bytes::from_static(bytes),
                Cow::Owned(bytes) => Bytes::from(bytes),
            };
            Ok((bytes, hex(&file.metadata.sha256_hash())))
        }
    }
}

fn headers_of(response: &mut Response, path: &str, tag: &str) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{tag}\"")) {
        headers.insert(header::ETAG, etag);
    }
}

async fn serve_file<S: NodeStorage>(
    app: &SharedApp<S>,
    path: &str,
    request: &HeaderMap,
) -> ApiResult<Response> {
    let (bytes, tag) = load(app.config.web_dir.as_deref(), path).await?;
    let mut response = if etag_matches(request, &format!("\"{tag}\"")) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        bytes.into_response()
    };
    headers_of(&mut response, path, &tag);
    Ok(response)
}

/// `GET /`: the app.
pub async fn index<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    serve_file(&app, "index.html", &headers).await
}

/// `GET /assets/{*path}`: a file of the app.
pub async fn asset<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    UrlPath(path): UrlPath<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    serve_file(&app, &path, &headers).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_name_a_file() {
        assert!(plain("app.js").is_some());
        assert!(plain("js/views/auction.js").is_some());
        for bad in ["", "../secret", "/etc/passwd", "a/../../b", "a\\b", "./a"] {
            assert!(plain(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_app_is_embedded_with_its_types() {
        assert!(
            Files::get("index.html").is_some(),
            "api/web/index.html is embedded"
        );
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
    }
}
