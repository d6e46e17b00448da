//! An auction's images: the metadata of objects the API has already stored (the bytes never
//! enter the log, DESIGN.md "Images"). Only the seller changes them, while the auction is open,
//! before its end and its first bid, like every other edit; at most [`IMAGES_PER_AUCTION_MAX`].
//!
//! Every object key of an auction starts with [`object_prefix`], so an auction can refer only
//! to its own objects and the API's orphan sweep can tell, key by key, whether a committed
//! record still refers to an object. Cancelling an auction drops its images (the sweep then
//! removes the objects).
//!
//! Not done yet: an admin cannot remove a single image (an admin cancel drops them all).

use crate::command::NewImage;
use crate::ctx::{Ctx, OpResult};
use crate::error::{Error, Rejection};
use crate::ids::{AuctionId, ImageId, UserId};
use crate::keys;
use crate::kv::{KvStore, StoreError};
use crate::model::{AuctionImages, Image, ImageFile};
use crate::outcome::Outcome;

/// Most images one auction has.
pub const IMAGES_PER_AUCTION_MAX: usize = 12;
/// Largest side of a stored original, in pixels.
pub const IMAGE_SIDE_PX_MAX: u32 = 12_000;
/// Largest side of a thumbnail, in pixels.
pub const THUMBNAIL_SIDE_PX_MAX: u32 = 320;
/// Largest stored rendition (a re-encoded upload may be larger than the 5 MiB upload).
pub const IMAGE_STORED_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Longest object key.
pub const OBJECT_KEY_BYTES_MAX: usize = 200;

/// The start of every object key of an auction's images.
pub fn object_prefix(auction_id: AuctionId) -> String {
    format!("{auction_id}/")
}

fn check_file(
    auction_id: AuctionId,
    field: &str,
    file: &ImageFile,
    side_px_max: u32,
) -> Result<(), Rejection> {
    let prefix = object_prefix(auction_id);
    let key_chars_ok = file
        .key
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || b"-_./".contains(&byte));
    if !file.key.starts_with(&prefix)
        || file.key.len() == prefix.len()
        || file.key.len() > OBJECT_KEY_BYTES_MAX
        || !key_chars_ok
        || file.key.contains("..")
    {
        return Err(Rejection::validation(
            field,
            "the object key must be a plain key under the auction's prefix",
        ));
    }
    let sides_ok =
        (1..=side_px_max).contains(&file.width) && (1..=side_px_max).contains(&file.height);
    if !sides_ok {
        return Err(Rejection::validation(
            field,
            format!("width and height must be between 1 and {side_px_max} pixels"),
        ));
    }
    if !(1..=IMAGE_STORED_BYTES_MAX).contains(&file.size_bytes) {
        return Err(Rejection::validation(
            field,
            format!("the stored size must be between 1 and {IMAGE_STORED_BYTES_MAX} bytes"),
        ));
    }
    Ok(())
}

/// The shape of a new image: its files' keys, sides and sizes.
pub fn check_new_image(auction_id: AuctionId, image: &NewImage) -> Result<(), Rejection> {
    check_file(auction_id, "image", &image.original, IMAGE_SIDE_PX_MAX)?;
    check_file(
        auction_id,
        "thumbnail",
        &image.thumbnail,
        THUMBNAIL_SIDE_PX_MAX,
    )?;
    if image.original.key == image.thumbnail.key {
        return Err(Rejection::validation(
            "thumbnail",
            "the thumbnail must be a separate object",
        ));
    }
    Ok(())
}

/// The shape of a new order: no image twice, no more than an auction may have.
pub fn check_order(order: &[ImageId]) -> Result<(), Rejection> {
    let mut seen = order.to_vec();
    seen.sort();
    seen.dedup();
    if seen.len() != order.len() || order.len() > IMAGES_PER_AUCTION_MAX {
        return Err(order_refused());
    }
    Ok(())
}

fn order_refused() -> Rejection {
    Rejection::validation("order", "must list every image of the auction exactly once")
}

pub(crate) fn load_images<S: KvStore>(
    ctx: &Ctx<'_, S>,
    auction_id: AuctionId,
) -> Result<AuctionImages, StoreError> {
    Ok(ctx
        .load(&keys::auction_images(auction_id))?
        .unwrap_or(AuctionImages {
            auction_id,
            images: Vec::new(),
        }))
}

fn save_images<S: KvStore>(ctx: &mut Ctx<'_, S>, images: &AuctionImages) -> Result<(), StoreError> {
    let key = keys::auction_images(images.auction_id);
    if images.images.is_empty() {
        ctx.kv.delete(&key)
    } else {
        ctx.save(&key, images)
    }
}

/// Records an image. The same content again (a retried upload) answers with the images as
/// they are, so a retry without an idempotency key never adds a copy.
pub(crate) fn add<S: KvStore>(
    ctx: &mut Ctx<'_, S>,
    auction_id: AuctionId,
    actor: UserId,
    image: &NewImage,
) -> OpResult {
    super::lifecycle::load_for_seller(ctx, auction_id, actor)?;
    check_new_image(auction_id, image)?;
    let mut images = load_images(ctx, auction_id)?;
    if images
        .images
        .iter()
        .any(|known| known.sha256 == image.sha256)
    {
        return Ok(Outcome::Images(images));
    }
    if images.images.iter().any(|known| known.id == image.image_id) {
        return Err(
            Rejection::validation("imageId", "an image with this id already exists").into(),
        );
    }
    if images.images.len() >= IMAGES_PER_AUCTION_MAX {
        return Err(Rejection::validation(
            "images",
            format!("an auction has at most {IMAGES_PER_AUCTION_MAX} images"),
        )
        .into());
    }
    images.images.push(Image {
        id: image.image_id,
        sha256: image.sha256,
        original: image.original.clone(),
        thumbnail: image.thumbnail.clone(),
        added_at: ctx.now,
    });
    save_images(ctx, &images)?;
    Ok(Outcome::Images(images))
}

pub(crate) fn remove<S: KvStore>(
    ctx: &mut Ctx<'_, S>,
    auction_id: AuctionId,
    actor: UserId,
    image_id: ImageId,
) -> OpResult {
    super::lifecycle::load_for_seller(ctx, auction_id, actor)?;
    let mut images = load_images(ctx, auction_id)?;
    let before = images.images.len();
    images.images.retain(|image| image.id != image_id);
    if images.images.len() == before {
        return Err(Error::Rejected(Rejection::ImageNotFound));
    }
    save_images(ctx, &images)?;
    Ok(Outcome::Images(images))
}

pub(crate) fn order<S: KvStore>(
    ctx: &mut Ctx<'_, S>,
    auction_id: AuctionId,
    actor: UserId,
    order: &[ImageId],
) -> OpResult {
    super::lifecycle::load_for_seller(ctx, auction_id, actor)?;
    check_order(order)?;
    let mut images = load_images(ctx, auction_id)?;
    if order.len() != images.images.len() {
        return Err(order_refused().into());
    }
    let mut ordered = Vec::with_capacity(order.len());
    for id in order {
        let found = images
            .images
            .iter()
            .find(|image| image.id == *id)
            .ok_or_else(order_refused)?;
        ordered.push(found.clone());
    }
    images.images = ordered;
    save_images(ctx, &images)?;
    Ok(Outcome::Images(images))
}
