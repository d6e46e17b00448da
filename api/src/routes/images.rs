//! `/auctions/{id}/images` and `/images/{key}`: upload, list, delete and order an auction's
//! images, and serve their bytes (see [`crate::images`] for why the nodes serve them).
//!
//! An upload's body is the raw image (any content type: the format is sniffed) or
//! `multipart/form-data` whose first file part is the image; at most
//! [`process::UPLOAD_BYTES_MAX`] bytes either way, read within [`UPLOAD_READ_MS_MAX`].

use std::collections::HashMap;

use auction_raft::host::NodeStorage;
use auction_statemachine::auction::images::object_prefix;
use auction_statemachine::{
    query, AuctionId, Image, ImageFile, ImageFormat, ImageId, NewImage, Op, Outcome, RequestId,
};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;

use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult};
use crate::extract::{consistency, idempotency_key, ApiJson, Consistency};
use crate::images::{object_keys, parse_key, process, Images};
use crate::routes::auctions::auction_id;
use crate::views;
use crate::{new_uuid, SharedApp};

/// How long an upload's body may take to arrive.
pub const UPLOAD_READ_MS_MAX: u64 = 30_000;
/// Room for the multipart framing around an image of the largest size.
const MULTIPART_OVERHEAD_BYTES_MAX: usize = 64 * 1024;
/// One year: image URLs never change what they name.
const IMMUTABLE_CACHE: &str = "public, max-age=31536000, immutable";

fn image_not_found() -> ApiError {
    ApiError::from(auction_statemachine::Rejection::ImageNotFound)
}

/// The node's image service, or the refusal of a node without a store.
fn service<S: NodeStorage>(app: &SharedApp<S>) -> ApiResult<&Images> {
    app.images.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "IMAGE_STORE_UNAVAILABLE",
            "this node has no image store configured (AUCTION_S3_ENDPOINT)",
        )
        .retry_after(60)
    })
}

fn too_large() -> ApiError {
    ApiError::payload_too_large(process::UPLOAD_BYTES_MAX)
}

async fn read_body(body: Body, bytes_max: usize) -> ApiResult<Bytes> {
    let read = axum::body::to_bytes(body, bytes_max);
    let timeout = std::time::Duration::from_millis(UPLOAD_READ_MS_MAX);
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "REQUEST_TIMEOUT",
                format!(
                    "the image did not arrive within {UPLOAD_READ_MS_MAX} ms; nothing was stored"
                ),
            )
        })?
        .map_err(|_| too_large())
}

/// The image bytes of a multipart body: its first part with a file name (or, failing that,
/// its first part).
async fn multipart_image(bytes: Bytes, content_type: &str) -> ApiResult<Bytes> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| ApiError::malformed_body("a multipart body needs a boundary"))?;
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(bytes) });
    let mut parts = multer::Multipart::new(stream, boundary);
    let malformed = |error: multer::Error| {
        ApiError::malformed_body(format!("malformed multipart body: {error}"))
    };
    let mut first = None;
    while let Some(part) = parts.next_field().await.map_err(malformed)? {
        let named = part.file_name().is_some();
        let data = part.bytes().await.map_err(malformed)?;
        if named {
            return Ok(data);
        }
        first.get_or_insert(data);
    }
    first.ok_or_else(|| ApiError::validation("image", "the multipart body has no part"))
}

/// The uploaded image's bytes, raw or from a multipart body, at most 5 MiB.
async fn upload_bytes(headers: &HeaderMap, body: Body) -> ApiResult<Bytes> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let image = if content_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        let bytes = read_body(
            body,
            process::UPLOAD_BYTES_MAX + MULTIPART_OVERHEAD_BYTES_MAX,
        )
        .await?;
        multipart_image(bytes, content_type).await?
    } else {
        read_body(body, process::UPLOAD_BYTES_MAX).await?
    };
    if image.len() > process::UPLOAD_BYTES_MAX {
        return Err(too_large());
    }
    if image.is_empty() {
        return Err(ApiError::validation("image", "the body is empty"));
    }
    Ok(image)
}

/// Whether the seller may add an image now, asked of the state machine (a dry run on a
/// linearizable read), so a refused upload costs no decoding and no storage.
async fn check_may_add<S: NodeStorage>(
    app: &SharedApp<S>,
    auction: AuctionId,
    current: &CurrentUser,
    key: Option<String>,
) -> ApiResult<()> {
    let prefix = object_prefix(auction);
    let placeholder = |name: &str| ImageFile {
        key: format!("{prefix}{name}"),
        format: ImageFormat::Jpeg,
        size_bytes: 1,
        width: 1,
        height: 1,
    };
    let op = Op::AddImage {
        auction_id: auction,
        actor: current.user.id,
        image: NewImage {
            image_id: ImageId(new_uuid()),
            sha256: [0; 32],
            original: placeholder("check.jpg"),
            thumbnail: placeholder("check.thumb.jpg"),
        },
    };
    let write = auction_raft::host::ClientWrite {
        group: app.shard_of(auction),
        request_id: RequestId(new_uuid()),
        idempotency_key: key,
        op,
    };
    match crate::validate::dry_run(app, &write, app.now_ms()).await? {
        Some(rejection) => Err(ApiError::from(rejection)),
        None => Ok(()),
    }
}

/// Stores both renditions; nothing is committed if either fails.
async fn store_renditions(
    images: &Images,
    processed: &process::Processed,
    keys: &(String, String),
) -> ApiResult<()> {
    let content_type = processed.format.content_type();
    let original = processed.original.bytes.clone();
    let thumbnail = processed.thumbnail.bytes.clone();
    images.store.put(&keys.0, original, content_type).await?;
    images.store.put(&keys.1, thumbnail, content_type).await
}

fn new_image(
    processed: &process::Processed,
    image_id: ImageId,
    keys: (String, String),
) -> NewImage {
    let file = |key: String, rendition: &process::Rendition| ImageFile {
        key,
        format: processed.format,
        size_bytes: rendition.bytes.len() as u64,
        width: rendition.width,
        height: rendition.height,
    };
    NewImage {
        image_id,
        sha256: processed.sha256,
        original: file(keys.0, &processed.original),
        thumbnail: file(keys.1, &processed.thumbnail),
    }
}

fn images_of(outcome: Outcome) -> ApiResult<Vec<Image>> {
    match outcome {
        Outcome::Images(images) => Ok(images.images),
        _ => Err(ApiError::internal("expected the auction's images")),
    }
}

/// `POST /auctions/{id}/images` → 201 `{image}` (200 when the same picture was already there,
/// or for a replayed idempotency key).
pub async fn upload<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    Path(id): Path<String>,
    current: CurrentUser,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let auction = auction_id(&id)?;
    let images = service(&app)?;
    let key = idempotency_key(&headers)?;
    check_may_add(&app, auction, &current, key.clone()).await?;
    let bytes = upload_bytes(&headers, body).await?;
    let processed = images.process(bytes).await?;
    let image_id = ImageId(new_uuid());
    let keys = object_keys(auction, &processed.sha256, image_id, processed.format);
    store_renditions(images, &processed, &keys).await?;
    let op = Op::AddImage {
        auction_id: auction,
        actor: current.user.id,
        image: new_image(&processed, image_id, keys),
    };
    let written = app
        .write(app.shard_of(auction), RequestId(new_uuid()), key, op)
        .await?;
    let replayed = written.replayed;
    let all = images_of(written.outcome)?;
    let image = all
        .iter()
        .find(|image| image.sha256 == processed.sha256)
        .or_else(|| all.last())
        .ok_or_else(|| ApiError::internal("the image is not on the auction"))?;
    let status = if image.id == image_id && !replayed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({ "image": views::image_view(image) }))).into_response())
}

/// `GET /auctions/{id}/images` → `{items}` in display order.
pub async fn list<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<serde_json::Value>> {
    let auction = auction_id(&id)?;
    let consistency = consistency(params.get("consistency").map(String::as_str))?;
    let reader = app.reader(app.shard_of(auction), consistency).await?;
    if query::auction(&reader, auction)?.is_none() {
        return Err(ApiError::auction_not_found());
    }
    Ok(Json(views::images(&query::auction_images(
        &reader, auction,
    )?)))
}

/// `DELETE /auctions/{id}/images/{imageId}` → 200 `{items}` (the images left). The objects
/// are deleted once the removal is committed (their keys are never reused); if that fails the
/// sweep deletes them later.
pub async fn remove<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    Path((id, image)): Path<(String, String)>,
    current: CurrentUser,
    headers: HeaderMap,
) -> ApiResult<Json<serde_json::Value>> {
    let auction = auction_id(&id)?;
    let image_id = crate::extract::path_uuid(&image)
        .map(ImageId)
        .ok_or_else(image_not_found)?;
    let key = idempotency_key(&headers)?;
    let reader = app
        .reader(app.shard_of(auction), Consistency::Linearizable)
        .await?;
    let before = query::auction_images(&reader, auction)?;
    let op = Op::RemoveImage {
        auction_id: auction,
        actor: current.user.id,
        image_id,
    };
    let written = app
        .write(app.shard_of(auction), RequestId(new_uuid()), key, op)
        .await?;
    let left = images_of(written.outcome)?;
    let removed: Vec<Image> = before
        .into_iter()
        .filter(|image| image.id == image_id)
        .collect();
    delete_objects(&app, &removed).await;
    Ok(Json(views::images(&left)))
}

/// An auction's images as committed now (a linearizable read), before a command that drops
/// them; empty when the read fails (the sweep then deletes their objects later).
pub async fn committed_images<S: NodeStorage>(
    app: &SharedApp<S>,
    auction: AuctionId,
) -> Vec<Image> {
    let group = app.shard_of(auction);
    match app.reader(group, Consistency::Linearizable).await {
        Ok(reader) => query::auction_images(&reader, auction).unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// Deletes the objects of images no committed command refers to any more (a removed image,
/// a cancelled auction's). Safe at once: object keys are never reused. A failure is logged
/// and left to the sweep.
pub async fn delete_objects<S: NodeStorage>(app: &SharedApp<S>, images: &[Image]) {
    let Some(service) = app.images.as_deref() else {
        return;
    };
    for image in images {
        for object in [&image.original.key, &image.thumbnail.key] {
            if let Err(error) = service.store.delete(object).await {
                tracing::warn!(key = %object, message = %error.message, "left to the sweep");
            }
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderBody {
    /// Every image id of the auction, each once, in the new order.
    #[schema(value_type = Vec<String>)]
    order: Vec<String>,
}

/// `PUT /auctions/{id}/images/order {order: [imageId]}` → 200 `{items}`.
pub async fn order<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    Path(id): Path<String>,
    current: CurrentUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<OrderBody>,
) -> ApiResult<Json<serde_json::Value>> {
    let auction = auction_id(&id)?;
    let order = body
        .order
        .iter()
        .map(|text| {
            crate::extract::path_uuid(text)
                .map(ImageId)
                .ok_or_else(|| ApiError::validation("order", "every item must be an image id"))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let op = Op::OrderImages {
        auction_id: auction,
        actor: current.user.id,
        order,
    };
    let key = idempotency_key(&headers)?;
    let written = app
        .write(app.shard_of(auction), RequestId(new_uuid()), key, op)
        .await?;
    Ok(Json(views::images(&images_of(written.outcome)?)))
}

/// The entity tag of an object: its file name without the extension (hash and image id).
fn entity_tag(key: &str) -> String {
    let file = key.rsplit('/').next().unwrap_or(key);
    let stem = file.rsplit_once('.').map_or(file, |(stem, _)| stem);
    format!("\"{stem}\"")
}

fn cache_headers(response: &mut Response, etag: &str) {
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(IMMUTABLE_CACHE),
    );
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
}

/// `GET /images/{auction}/{file}`: the object's bytes, streamed from the store.
pub async fn serve<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    Path((auction, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let key = format!("{auction}/{file}");
    let parsed = parse_key(&key).ok_or_else(image_not_found)?;
    let images = service(&app)?;
    let etag = entity_tag(&key);
    if crate::extract::etag_matches(&headers, &etag) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        cache_headers(&mut response, &etag);
        return Ok(response);
    }
    let object = images.store.get(&key).await?.ok_or_else(image_not_found)?;
    let body = Body::from_stream(
        object
            .stream
            .map(|chunk| chunk.map_err(std::io::Error::other)),
    );
    let mut response = (
        [
            (header::CONTENT_TYPE, parsed.format.content_type()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response();
    if let Ok(length) = HeaderValue::from_str(&object.size_bytes.to_string()) {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, length);
    }
    cache_headers(&mut response, &etag);
    Ok(response)
}
