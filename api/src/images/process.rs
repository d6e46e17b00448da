//! Turning an upload into the stored renditions: the format sniffed from the content (never
//! from the name or the declared type), decoding under explicit limits (sides and memory, so a
//! small file that would decode to gigabytes is refused before it is decoded), EXIF orientation
//! applied and every metadata block dropped by re-encoding, and a thumbnail.
//!
//! Pure CPU work: the caller runs it on the blocking pool, a bounded number at a time.
//!
//! Not done yet: animated images keep only their first frame; colour profiles are dropped
//! with the rest of the metadata (images are shown as sRGB).

use std::io::Cursor;

use auction_statemachine::auction::images::{IMAGE_SIDE_PX_MAX, THUMBNAIL_SIDE_PX_MAX};
use auction_statemachine::ImageFormat;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{DynamicImage, ImageDecoder, ImageError, ImageReader, Limits};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};

/// Largest upload, in bytes (DESIGN.md: 5 MiB).
pub const UPLOAD_BYTES_MAX: usize = 5 * 1024 * 1024;
/// Most memory one decode may allocate.
pub const DECODE_ALLOC_BYTES_MAX: u64 = 256 * 1024 * 1024;
/// JPEG quality of the re-encoded renditions.
const JPEG_QUALITY: u8 = 88;

/// One encoded rendition.
#[derive(Debug, Clone)]
pub struct Rendition {
    /// Shared, so storing it copies nothing.
    pub bytes: bytes::Bytes,
    pub width: u32,
    pub height: u32,
}

/// An upload made safe to store.
#[derive(Debug, Clone)]
pub struct Processed {
    pub format: ImageFormat,
    /// SHA-256 of the re-encoded original.
    pub sha256: [u8; 32],
    pub original: Rendition,
    pub thumbnail: Rendition,
}

fn refused(message: impl Into<String>) -> ApiError {
    ApiError::validation("image", message)
}

/// The format of `bytes` by their magic numbers; anything but JPEG, PNG or WebP is refused.
pub fn sniff(bytes: &[u8]) -> ApiResult<ImageFormat> {
    match image::guess_format(bytes) {
        Ok(image::ImageFormat::Jpeg) => Ok(ImageFormat::Jpeg),
        Ok(image::ImageFormat::Png) => Ok(ImageFormat::Png),
        Ok(image::ImageFormat::WebP) => Ok(ImageFormat::Webp),
        Ok(other) => Err(refused(format!(
            "{other:?} images are not accepted; send a JPEG, PNG or WebP image"
        ))),
        Err(_) => Err(refused(
            "the body is not a JPEG, PNG or WebP image (whatever its content type says)",
        )),
    }
}

fn codec_format(format: ImageFormat) -> image::ImageFormat {
    match format {
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Webp => image::ImageFormat::WebP,
    }
}

fn decode_refused(error: ImageError) -> ApiError {
    match error {
        ImageError::Limits(_) => refused(format!(
            "the image is too large to decode: at most {IMAGE_SIDE_PX_MAX} pixels a side and \
             {DECODE_ALLOC_BYTES_MAX} bytes decoded"
        )),
        other => refused(format!("the image cannot be decoded: {other}")),
    }
}

fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(IMAGE_SIDE_PX_MAX);
    limits.max_image_height = Some(IMAGE_SIDE_PX_MAX);
    limits.max_alloc = Some(DECODE_ALLOC_BYTES_MAX);
    limits
}

/// Decodes under [`limits`] and turns the picture upright (EXIF orientation).
fn decode(bytes: &[u8], format: ImageFormat) -> ApiResult<DynamicImage> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), codec_format(format));
    reader.limits(limits());
    let mut decoder = reader.into_decoder().map_err(decode_refused)?;
    let orientation = decoder.orientation().map_err(decode_refused)?;
    let mut picture = DynamicImage::from_decoder(decoder).map_err(decode_refused)?;
    picture.apply_orientation(orientation);
    Ok(picture)
}

fn encode(picture: &DynamicImage, format: ImageFormat) -> ApiResult<Rendition> {
    let mut bytes = Vec::new();
    let written = match format {
        ImageFormat::Jpeg => DynamicImage::ImageRgb8(picture.to_rgb8())
            .write_with_encoder(JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY)),
        ImageFormat::Png => picture.write_with_encoder(PngEncoder::new(&mut bytes)),
        ImageFormat::Webp => {
            let pixels = if picture.color().has_alpha() {
                DynamicImage::ImageRgba8(picture.to_rgba8())
            } else {
                DynamicImage::ImageRgb8(picture.to_rgb8())
            };
            pixels.write_with_encoder(WebPEncoder::new_lossless(&mut bytes))
        }
    };
    written.map_err(|error| refused(format!("the image cannot be re-encoded: {error}")))?;
    Ok(Rendition {
        bytes: bytes.into(),
        width: picture.width(),
        height: picture.height(),
    })
}

/// The thumbnail: the picture scaled down to fit [`THUMBNAIL_SIDE_PX_MAX`] (never up).
fn thumbnail(picture: &DynamicImage) -> DynamicImage {
    let side = THUMBNAIL_SIDE_PX_MAX;
    if picture.width() <= side && picture.height() <= side {
        return picture.clone();
    }
    picture.thumbnail(side, side)
}

/// Checks, decodes and re-encodes an upload; every refusal is `422 VALIDATION_FAILED` naming
/// the field `image`.
pub fn process(bytes: &[u8]) -> ApiResult<Processed> {
    let format = sniff(bytes)?;
    let picture = decode(bytes, format)?;
    let original = encode(&picture, format)?;
    let thumbnail = encode(&thumbnail(&picture), format)?;
    let sha256: [u8; 32] = Sha256::digest(&original.bytes).into();
    Ok(Processed {
        format,
        sha256,
        original,
        thumbnail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Rgb, RgbImage};

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let picture: RgbImage = ImageBuffer::from_fn(width, height, |x, y| {
            Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        });
        let mut bytes = Vec::new();
        DynamicImage::ImageRgb8(picture)
            .write_with_encoder(JpegEncoder::new_with_quality(&mut bytes, 90))
            .expect("encode");
        bytes
    }

    #[test]
    fn a_large_picture_gets_a_thumbnail_that_keeps_its_shape() {
        let processed = process(&jpeg(1200, 600)).expect("processed");
        assert_eq!(processed.format, ImageFormat::Jpeg);
        assert_eq!(
            (processed.original.width, processed.original.height),
            (1200, 600)
        );
        assert_eq!(
            (processed.thumbnail.width, processed.thumbnail.height),
            (320, 160)
        );
        assert_eq!(
            sniff(&processed.thumbnail.bytes).expect("jpeg"),
            ImageFormat::Jpeg
        );
    }

    #[test]
    fn a_small_picture_is_never_scaled_up() {
        let processed = process(&jpeg(100, 40)).expect("processed");
        assert_eq!(
            (processed.thumbnail.width, processed.thumbnail.height),
            (100, 40)
        );
    }

    #[test]
    fn text_with_an_image_name_is_refused() {
        let error = process(b"GIF? no: just some text").expect_err("not an image");
        assert_eq!(error.code, "VALIDATION_FAILED");
        assert_eq!(error.details["field"], "image");
    }
}
