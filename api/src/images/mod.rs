//! Auction images (DESIGN.md "Images"): the bytes in an S3-compatible object store
//! ([`store`], through the `minio` crate), only their metadata replicated
//! (`Op::AddImage`, `RemoveImage`, `OrderImages`).
//!
//! An upload is checked against the auction first (a linearizable read: seller, open, no bids,
//! room for one more), read whole up to 5 MiB, sniffed, decoded under limits and re-encoded
//! ([`process`], on the blocking pool, at most [`IMAGE_JOBS_MAX`] at a time per node), both
//! renditions stored, and only then the metadata proposed. A crash or a failed proposal between
//! the two leaves objects no command refers to; the [`sweep`] deletes them after a grace
//! period. Removing an image or cancelling an auction deletes its objects once the command is
//! committed (the sweep is the backstop when that fails).
//!
//! Object keys are `AUCTION/SHA256-IMAGEID.EXT` (and `.thumb.EXT`): content-addressed, under
//! the auction's prefix, and never reused, since every upload gets a new image id. So the
//! objects of a deleted image can be deleted at once without racing a later upload of the same
//! picture, and every URL is immutable (served with a one-year cache lifetime).
//!
//! Images are served by every node at `GET /api/v1/images/KEY`, streamed from the store, rather
//! than through presigned URLs: the store sits on the cluster's private network (a browser
//! cannot reach `http://s3:9000` in the docker cluster), one origin keeps the page's
//! Content-Security-Policy at `img-src 'self'`, and the store's credentials never leave the
//! nodes. The cost is that image bytes pass through a node.

pub mod process;
pub mod store;
pub mod sweep;

use std::time::Duration;

use auction_statemachine::auction::images::object_prefix;
use auction_statemachine::{AuctionId, ImageFormat, ImageId};
use tokio::sync::Semaphore;

use crate::error::{ApiError, ApiResult};
use crate::extract::hex;
use store::ObjectStore;

/// Uploads decoded at once on one node (each may use up to `process::DECODE_ALLOC_BYTES_MAX`).
pub const IMAGE_JOBS_MAX: usize = 2;
/// How long an upload waits for a decoding slot before it is refused.
pub const IMAGE_JOB_WAIT_MS_MAX: u64 = 5_000;

/// The images settings of a node.
#[derive(Debug, Clone)]
pub struct ImageSettings {
    pub store: store::StoreConfig,
    /// An object no committed command refers to is deleted once it is this old.
    pub orphan_grace: Duration,
    pub sweep_interval: Duration,
}

/// What the image routes share.
pub struct Images {
    pub store: ObjectStore,
    pub settings: ImageSettings,
    jobs: Semaphore,
}

impl Images {
    pub fn new(settings: ImageSettings) -> ApiResult<Images> {
        Ok(Images {
            store: ObjectStore::new(&settings.store)?,
            settings,
            jobs: Semaphore::new(IMAGE_JOBS_MAX),
        })
    }

    /// Runs `process` on the blocking pool once a decoding slot is free.
    pub async fn process(&self, bytes: bytes::Bytes) -> ApiResult<process::Processed> {
        let wait = Duration::from_millis(IMAGE_JOB_WAIT_MS_MAX);
        let permit = tokio::time::timeout(wait, self.jobs.acquire())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        let processed = tokio::task::spawn_blocking(move || process::process(&bytes))
            .await
            .map_err(|_| ApiError::internal("image processing was interrupted"));
        drop(permit);
        processed?
    }
}

fn busy() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "IMAGE_PROCESSING_BUSY",
        "this node is processing as many images as it can; try again shortly",
    )
    .retry_after(1)
}

/// The object keys of a new image's original and thumbnail.
pub fn object_keys(
    auction: AuctionId,
    sha256: &[u8; 32],
    image: ImageId,
    format: ImageFormat,
) -> (String, String) {
    let base = format!(
        "{}{}-{}",
        object_prefix(auction),
        hex(sha256),
        image.0.simple()
    );
    let extension = format.extension();
    (
        format!("{base}.{extension}"),
        format!("{base}.thumb.{extension}"),
    )
}

/// A key of the image bucket, taken apart: the auction it belongs to, the hex SHA-256 of the
/// original it renders, and its format (from the extension). `None` for anything else, which
/// is how a request for a made-up key is told from one for a real object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedKey {
    pub auction: AuctionId,
    pub sha256_hex: String,
    pub format: ImageFormat,
}

pub fn parse_key(key: &str) -> Option<ParsedKey> {
    let (auction, file) = key.split_once('/')?;
    let auction = uuid::Uuid::parse_str(auction).ok()?;
    if auction.hyphenated().to_string() != key[..36.min(key.len())] {
        return None;
    }
    let (stem, extension) = file.rsplit_once('.')?;
    let format = ImageFormat::from_extension(extension)?;
    let stem = stem.strip_suffix(".thumb").unwrap_or(stem);
    let (sha256_hex, image) = stem.split_once('-')?;
    let hex_ok = |text: &str, length: usize| {
        text.len() == length
            && text
                .bytes()
                .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
    };
    if !hex_ok(sha256_hex, 64) || !hex_ok(image, 32) {
        return None;
    }
    Some(ParsedKey {
        auction: AuctionId(auction),
        sha256_hex: sha256_hex.to_owned(),
        format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_back_and_made_up_ones_do_not() {
        let auction = AuctionId(uuid::Uuid::from_u128(0xa1));
        let image = ImageId(uuid::Uuid::from_u128(0xb2));
        let (original, thumbnail) = object_keys(auction, &[0xab; 32], image, ImageFormat::Png);
        assert!(original.starts_with(&object_prefix(auction)));
        assert!(thumbnail.ends_with(".thumb.png"));
        for key in [&original, &thumbnail] {
            let parsed = parse_key(key).expect("our own key");
            assert_eq!(parsed.auction, auction);
            assert_eq!(parsed.sha256_hex, "ab".repeat(32));
            assert_eq!(parsed.format, ImageFormat::Png);
        }
        for made_up in [
            "x/y.png",
            &original.replace(".png", ".gif"),
            &original.replace('-', "_"),
            &format!("{}/../{}", auction.0, &original[37..]),
            &original.to_uppercase(),
        ] {
            assert_eq!(parse_key(made_up), None, "{made_up}");
        }
    }
}
