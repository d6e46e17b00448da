//! Black-box tests of auction images against 3 real `auction-node` processes and a real S3
//! server (`s3s-fs`, started by the test): every accepted format, the size and decoding limits,
//! EXIF removal, thumbnails, order, delete, who may upload, the store going down during an
//! upload, the orphan sweep, and an image uploaded through one node served by another.

mod common;

use std::io::Cursor;
use std::time::{Duration, Instant};

use auction_api::images::store::{ObjectStore, StoreConfig};
use common::{Api, Cluster, S3Server};
use image::{DynamicImage, ImageBuffer, ImageFormat, Rgb, Rgba};
use reqwest::Method;
use serde_json::{json, Value};

/// How long a listing may take to show a change (the index commits every 300 ms).
const LISTING_WAIT_MS_MAX: u64 = 10_000;
/// How long the sweep may take to delete an orphan (grace 3 s, a round every second).
const SWEEP_WAIT_MS_MAX: u64 = 30_000;

struct Ctx {
    cluster: Cluster,
    s3: S3Server,
    client: Api,
    bytes: reqwest::Client,
    seller_id: String,
    seller: String,
    other: String,
}

fn picture(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(ImageBuffer::from_fn(width, height, |x, y| {
        Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 239) as u8])
    }))
}

fn encoded(picture: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    picture.write_to(&mut bytes, format).expect("encode");
    bytes.into_inner()
}

/// A JPEG with an EXIF block after its start marker; the block carries `marker`.
fn jpeg_with_exif(marker: &[u8]) -> Vec<u8> {
    let jpeg = encoded(&picture(640, 480), ImageFormat::Jpeg);
    // "Exif\0\0", a big-endian TIFF header, an IFD with no entries, then the marker.
    let mut payload = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\0\0\0\0\0".to_vec();
    payload.extend_from_slice(marker);
    let length = u16::try_from(payload.len() + 2).expect("small");
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xff, 0xe1]);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
    let mut chunk = u32::try_from(data.len())
        .expect("small")
        .to_be_bytes()
        .to_vec();
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    chunk.extend_from_slice(&body);
    chunk.extend_from_slice(&crc32(&body).to_be_bytes());
    chunk
}

/// A few hundred bytes that claim a 60,000 × 60,000 RGBA picture (14 GB decoded).
fn decompression_bomb() -> Vec<u8> {
    let mut header = Vec::new();
    header.extend_from_slice(&60_000u32.to_be_bytes());
    header.extend_from_slice(&60_000u32.to_be_bytes());
    header.extend_from_slice(&[8, 6, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(png_chunk(b"IHDR", &header));
    // A zlib stream of zeros: it would inflate to all of it.
    png.extend(png_chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    png.extend(png_chunk(b"IEND", &[]));
    png
}

impl Ctx {
    fn url(&self, node: usize, path: &str) -> String {
        format!("{}/api/v1{path}", self.cluster.url(node))
    }

    async fn auction(&self) -> String {
        let body = json!({ "title": "Lamp with pictures", "startingPrice": "10.00",
            "durationSeconds": 3600 });
        let created = self
            .client
            .post(self.url(0, "/auctions"), Some(&self.seller), body)
            .await
            .expect(201);
        created["auction"]["id"].as_str().expect("id").to_owned()
    }

    async fn upload(
        &self,
        node: usize,
        auction: &str,
        token: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> common::Reply {
        let bearer = format!("Bearer {token}");
        self.client
            .raw(
                Method::POST,
                self.url(node, &format!("/auctions/{auction}/images")),
                body,
                &[("authorization", &bearer), ("content-type", content_type)],
            )
            .await
    }

    async fn images(&self, node: usize, auction: &str) -> Vec<Value> {
        let list = self
            .client
            .get(self.url(node, &format!("/auctions/{auction}/images")), None)
            .await
            .expect(200);
        list["items"].as_array().expect("items").clone()
    }

    /// Uploads `picture` as `format` through node 1 and returns the new image.
    async fn add(&self, auction: &str, picture: &DynamicImage, format: ImageFormat) -> Value {
        let content_type = format.to_mime_type();
        let bytes = encoded(picture, format);
        let reply = self
            .upload(0, auction, &self.seller, bytes, content_type)
            .await;
        reply.expect(201)["image"].clone()
    }

    /// `DELETE` of an API path through `node`, as the seller.
    async fn delete(&self, node: usize, path: &str) -> common::Reply {
        let url = self.url(node, path);
        let token = Some(self.seller.as_str());
        self.client
            .call(Method::DELETE, url, token, None, &[])
            .await
    }

    /// GET of an image URL on a node: status, content type, bytes.
    async fn fetch(&self, node: usize, url: &str) -> (u16, String, Vec<u8>) {
        let response = self
            .bytes
            .get(format!("{}{url}", self.cluster.url(node)))
            .send()
            .await
            .expect("sent");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (
            status,
            content_type,
            response.bytes().await.expect("body").to_vec(),
        )
    }

    fn store(&self) -> ObjectStore {
        ObjectStore::new(&StoreConfig {
            endpoint: self.s3.endpoint(),
            bucket: "auction-images".to_owned(),
            access_key: Some(self.s3.access_key.clone()),
            secret_key: Some(self.s3.secret_key.clone()),
            region: "us-east-1".to_owned(),
        })
        .expect("store client")
    }

    /// Waits until node `node`'s listing shows `auction` with `cover` as its thumbnail.
    async fn wait_listed_cover(&self, node: usize, auction: &str, cover: &str) {
        let deadline = Instant::now() + Duration::from_millis(LISTING_WAIT_MS_MAX);
        let path = format!(
            "/auctions?sellerId={}&sort=newest&limit=100",
            self.seller_id
        );
        loop {
            let page = self
                .client
                .get(self.url(node, &path), None)
                .await
                .expect(200);
            let item = page["items"]
                .as_array()
                .expect("items")
                .iter()
                .find(|item| item["id"] == auction)
                .cloned();
            if item
                .as_ref()
                .is_some_and(|item| item["cover"]["url"] == cover)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "listing on node {node} shows {item:?}, not {cover}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_gone(&self, url: &str) {
        let deadline = Instant::now() + Duration::from_millis(SWEEP_WAIT_MS_MAX);
        loop {
            let (status, _, _) = self.fetch(1, url).await;
            if status == 404 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{url} still served ({status}) after the sweep wait"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auction_images_in_a_real_object_store() {
    let s3 = S3Server::new();
    let mut args = s3.node_args();
    args.extend(
        [
            "--image-orphan-grace-seconds",
            "3",
            "--image-sweep-interval-seconds",
            "1",
        ]
        .map(str::to_owned),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let cluster = Cluster::start_with(3, &args).await;
    let client = Api::default();
    let base = cluster.url(0).to_owned();
    let (seller_id, seller) = client.user(&base, "img-seller").await;
    let (_, other) = client.user(&base, "img-other").await;
    let ctx = Ctx {
        cluster,
        s3,
        client,
        bytes: reqwest::Client::new(),
        seller_id,
        seller,
        other,
    };
    every_format_is_stored_served_and_thumbnailed(&ctx).await;
    limits_and_refusals(&ctx).await;
    exif_is_gone_from_the_stored_bytes(&ctx).await;
    order_and_delete(&ctx).await;
    orphans_are_swept_and_cancelled_auctions_lose_their_objects(&ctx).await;
    a_store_that_is_down_refuses_uploads_and_commits_nothing(&ctx).await;
}

async fn every_format_is_stored_served_and_thumbnailed(ctx: &Ctx) {
    let auction = ctx.auction().await;
    let rgba = DynamicImage::ImageRgba8(ImageBuffer::from_fn(500, 1000, |x, y| {
        Rgba([(x % 256) as u8, (y % 256) as u8, 9, 200])
    }));
    let uploads = [
        (
            encoded(&picture(1200, 600), ImageFormat::Jpeg),
            "image/jpeg",
            "image/jpeg",
            (320, 160),
        ),
        (
            encoded(&rgba, ImageFormat::Png),
            "image/png",
            "image/png",
            (160, 320),
        ),
        (
            encoded(&picture(200, 100), ImageFormat::WebP),
            "application/octet-stream",
            "image/webp",
            (200, 100),
        ),
    ];
    for (node, (bytes, sent_as, stored_as, thumbnail)) in uploads.into_iter().enumerate() {
        let started = Instant::now();
        let image = ctx
            .upload(node, &auction, &ctx.seller, bytes, sent_as)
            .await
            .expect(201)["image"]
            .clone();
        eprintln!(
            "upload of {stored_as} through node {} took {:?}",
            node + 1,
            started.elapsed()
        );
        assert_eq!(image["contentType"], stored_as);
        assert_eq!(
            (
                image["thumbnailWidth"].as_u64(),
                image["thumbnailHeight"].as_u64()
            ),
            (Some(u64::from(thumbnail.0)), Some(u64::from(thumbnail.1))),
            "{image}"
        );
        for (url, expected) in [
            (&image["url"], None),
            (&image["thumbnailUrl"], Some(thumbnail)),
        ] {
            let url = url.as_str().expect("url");
            // Served by a node other than the one that took the upload.
            let (status, content_type, body) = ctx.fetch((node + 2) % 3, url).await;
            assert_eq!(status, 200, "{url}");
            assert_eq!(content_type, stored_as);
            let decoded = image::load_from_memory(&body).expect("a real image");
            if let Some((width, height)) = expected {
                assert_eq!((decoded.width(), decoded.height()), (width, height));
            }
        }
    }
    // Listings show the first image's thumbnail, on every node.
    let first = ctx.images(0, &auction).await[0]["thumbnailUrl"]
        .as_str()
        .expect("url")
        .to_owned();
    for node in 0..3 {
        ctx.wait_listed_cover(node, &auction, &first).await;
    }
    // The same picture again: the image already there, no copy.
    let again = ctx
        .upload(
            0,
            &auction,
            &ctx.seller,
            encoded(&picture(200, 100), ImageFormat::WebP),
            "image/webp",
        )
        .await
        .expect(200);
    assert_eq!(again["image"]["contentType"], "image/webp");
    // Every node's view of the auction carries the three images in upload order.
    for node in 0..3 {
        let view = ctx
            .client
            .get(ctx.url(node, &format!("/auctions/{auction}")), None)
            .await
            .expect(200);
        let types: Vec<&str> = view["auction"]["images"]
            .as_array()
            .expect("images")
            .iter()
            .map(|image| image["contentType"].as_str().expect("type"))
            .collect();
        assert_eq!(types, ["image/jpeg", "image/png", "image/webp"]);
    }
    // Cached for a year, and revalidated without reading the store.
    let url = ctx.images(0, &auction).await[0]["url"]
        .as_str()
        .expect("url")
        .to_owned();
    let response = ctx
        .bytes
        .get(format!("{}{url}", ctx.cluster.url(0)))
        .send()
        .await
        .expect("sent");
    assert!(response.headers()["cache-control"]
        .to_str()
        .expect("ascii")
        .contains("immutable"));
    let etag = response.headers()["etag"].clone();
    let again = ctx
        .bytes
        .get(format!("{}{url}", ctx.cluster.url(0)))
        .header("if-none-match", etag)
        .send()
        .await
        .expect("sent");
    assert_eq!(again.status().as_u16(), 304);
    let (status, _, _) = ctx
        .fetch(0, &format!("/api/v1/images/{auction}/made-up.jpg"))
        .await;
    assert_eq!(status, 404);
}

async fn limits_and_refusals(ctx: &Ctx) {
    let auction = ctx.auction().await;
    let too_big = vec![0xffu8; 5 * 1024 * 1024 + 1];
    ctx.upload(0, &auction, &ctx.seller, too_big, "image/jpeg")
        .await
        .expect_error(413, "PAYLOAD_TOO_LARGE");
    let text = b"this is not a picture, whatever the header says".to_vec();
    let refused = ctx
        .upload(1, &auction, &ctx.seller, text, "image/png")
        .await
        .expect_error(422, "VALIDATION_FAILED");
    assert_eq!(refused["field"], "image");
    let started = Instant::now();
    let bomb = ctx
        .upload(2, &auction, &ctx.seller, decompression_bomb(), "image/png")
        .await
        .expect_error(422, "VALIDATION_FAILED");
    assert!(
        bomb["message"]
            .as_str()
            .expect("message")
            .contains("too large"),
        "{bomb}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused before decoding"
    );
    let jpeg = encoded(&picture(64, 64), ImageFormat::Jpeg);
    ctx.upload(0, &auction, &ctx.other, jpeg.clone(), "image/jpeg")
        .await
        .expect_error(403, "FORBIDDEN");
    ctx.upload(
        0,
        "00000000-0000-4000-8000-000000000000",
        &ctx.seller,
        jpeg.clone(),
        "image/jpeg",
    )
    .await
    .expect_error(404, "AUCTION_NOT_FOUND");
    ctx.upload(0, &auction, &ctx.seller, Vec::new(), "image/png")
        .await
        .expect_error(422, "VALIDATION_FAILED");
    ctx.upload(
        0,
        &auction,
        &ctx.seller,
        b"--x\r\n".to_vec(),
        "multipart/form-data",
    )
    .await
    .expect_error(400, "VALIDATION_FAILED");
    let no_part = b"--b\r\n--b--\r\n".to_vec();
    let refused = ctx
        .upload(
            0,
            &auction,
            &ctx.seller,
            no_part,
            "multipart/form-data; boundary=b",
        )
        .await;
    assert!(
        [400, 422].contains(&refused.status.as_u16()),
        "a multipart body without an image: {:?}",
        refused.body
    );
    assert_eq!(refused.body["error"], "VALIDATION_FAILED");
    assert!(
        ctx.images(0, &auction).await.is_empty(),
        "nothing refused was recorded"
    );

    // Twelve at most; none after the first bid.
    for n in 0..12u32 {
        let bytes = encoded(&picture(40 + n, 40), ImageFormat::Png);
        ctx.upload(0, &auction, &ctx.seller, bytes, "image/png")
            .await
            .expect(201);
    }
    ctx.upload(
        0,
        &auction,
        &ctx.seller,
        encoded(&picture(99, 40), ImageFormat::Png),
        "image/png",
    )
    .await
    .expect_error(422, "VALIDATION_FAILED");
    let bid_auction = ctx.auction().await;
    ctx.client
        .post(
            ctx.url(0, &format!("/auctions/{bid_auction}/bids")),
            Some(&ctx.other),
            json!({ "amount": "10" }),
        )
        .await
        .expect(201);
    ctx.upload(0, &bid_auction, &ctx.seller, jpeg, "image/jpeg")
        .await
        .expect_error(409, "AUCTION_HAS_BIDS");
}

async fn exif_is_gone_from_the_stored_bytes(ctx: &Ctx) {
    let auction = ctx.auction().await;
    let marker = b"SECRET-GPS-52.3676N-4.9041E";
    let upload = jpeg_with_exif(marker);
    assert!(
        upload.windows(marker.len()).any(|window| window == marker),
        "the test's own EXIF"
    );
    // As a multipart form, the way a browser sends a file.
    let boundary = "auction-test-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"lamp.jpg\"\r\n\
         Content-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&upload);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let image = ctx
        .upload(
            1,
            &auction,
            &ctx.seller,
            body,
            &format!("multipart/form-data; boundary={boundary}"),
        )
        .await
        .expect(201)["image"]
        .clone();
    for url in [&image["url"], &image["thumbnailUrl"]] {
        let (status, _, stored) = ctx.fetch(0, url.as_str().expect("url")).await;
        assert_eq!(status, 200);
        assert!(
            !stored.windows(marker.len()).any(|window| window == marker),
            "EXIF data left"
        );
        assert!(
            !stored.windows(4).any(|window| window == b"Exif"),
            "an EXIF block left"
        );
    }
}

async fn order_and_delete(ctx: &Ctx) {
    let auction = ctx.auction().await;
    let mut ids = Vec::new();
    for width in [30, 31, 32] {
        let bytes = encoded(&picture(width, 30), ImageFormat::Jpeg);
        let image = ctx
            .upload(0, &auction, &ctx.seller, bytes, "image/jpeg")
            .await
            .expect(201);
        ids.push(image["image"]["id"].as_str().expect("id").to_owned());
    }
    let order = |ids: Vec<&String>| json!({ "order": ids });
    let seller = format!("Bearer {}", ctx.seller);
    let put = |body: Value, token: String| {
        let url = ctx.url(2, &format!("/auctions/{auction}/images/order"));
        async move {
            ctx.client
                .call(
                    Method::PUT,
                    url,
                    None,
                    Some(body),
                    &[("authorization", &token)],
                )
                .await
        }
    };
    let reordered = put(order(vec![&ids[2], &ids[0], &ids[1]]), seller.clone())
        .await
        .expect(200);
    let listed: Vec<&str> = reordered["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|image| image["id"].as_str().expect("id"))
        .collect();
    assert_eq!(listed, [ids[2].as_str(), ids[0].as_str(), ids[1].as_str()]);
    // A new order is a new cover in the listings (image changes feed the search index).
    let cover = reordered["items"][0]["thumbnailUrl"].as_str().expect("url");
    ctx.wait_listed_cover(1, &auction, cover).await;
    put(order(vec![&ids[0], &ids[1]]), seller.clone())
        .await
        .expect_error(422, "VALIDATION_FAILED");
    let not_ids = put(json!({ "order": ["lamp", "shade"] }), seller.clone())
        .await
        .expect_error(422, "VALIDATION_FAILED");
    assert_eq!(not_ids["field"], "order");
    ctx.delete(1, &format!("/auctions/{auction}/images/not-an-id"))
        .await
        .expect_error(404, "IMAGE_NOT_FOUND");
    put(
        order(vec![&ids[0], &ids[1], &ids[2]]),
        format!("Bearer {}", ctx.other),
    )
    .await
    .expect_error(403, "FORBIDDEN");

    let removed = ctx.images(0, &auction).await[1].clone();
    let delete = ctx
        .delete(1, &format!("/auctions/{auction}/images/{}", ids[0]))
        .await
        .expect(200);
    assert_eq!(delete["items"].as_array().expect("items").len(), 2);
    for url in [&removed["url"], &removed["thumbnailUrl"]] {
        let (status, _, _) = ctx.fetch(2, url.as_str().expect("url")).await;
        assert_eq!(status, 404, "the objects of a deleted image are gone");
    }
    ctx.delete(1, &format!("/auctions/{auction}/images/{}", ids[0]))
        .await
        .expect_error(404, "IMAGE_NOT_FOUND");
}

async fn orphans_are_swept_and_cancelled_auctions_lose_their_objects(ctx: &Ctx) {
    let kept_auction = ctx.auction().await;
    let kept = ctx
        .add(&kept_auction, &picture(50, 50), ImageFormat::Png)
        .await;
    // An upload that stored its bytes and crashed before committing: an object of our key
    // shape that no command refers to.
    let orphan_key = format!("{kept_auction}/{}-{}.png", "ab".repeat(32), "cd".repeat(16));
    let store = ctx.store();
    store
        .put(
            &orphan_key,
            encoded(&picture(10, 10), ImageFormat::Png).into(),
            "image/png",
        )
        .await
        .expect("orphan stored");
    let orphan_url = format!("/api/v1/images/{orphan_key}");
    assert_eq!(ctx.fetch(0, &orphan_url).await.0, 200, "served until swept");

    let cancelled_auction = ctx.auction().await;
    let cancelled = ctx
        .add(&cancelled_auction, &picture(60, 50), ImageFormat::Png)
        .await;
    ctx.delete(0, &format!("/auctions/{cancelled_auction}"))
        .await
        .expect(200);

    // A cancel drops the images, and their objects go with the answer.
    for url in [&cancelled["url"], &cancelled["thumbnailUrl"]] {
        let (status, _, _) = ctx.fetch(2, url.as_str().expect("url")).await;
        assert_eq!(status, 404, "a cancelled auction's objects are deleted");
    }
    ctx.wait_gone(&orphan_url).await;
    ctx.wait_gone(cancelled["url"].as_str().expect("url")).await;
    ctx.wait_gone(cancelled["thumbnailUrl"].as_str().expect("url"))
        .await;
    for url in [&kept["url"], &kept["thumbnailUrl"]] {
        assert_eq!(
            ctx.fetch(2, url.as_str().expect("url")).await.0,
            200,
            "a referenced image stays"
        );
    }
}

async fn a_store_that_is_down_refuses_uploads_and_commits_nothing(ctx: &Ctx) {
    let auction = ctx.auction().await;
    ctx.s3.stop();
    let started = Instant::now();
    let refused = ctx
        .upload(
            1,
            &auction,
            &ctx.seller,
            encoded(&picture(80, 80), ImageFormat::Jpeg),
            "image/jpeg",
        )
        .await;
    let retry_after = refused.headers.get("retry-after").cloned();
    refused.expect_error(503, "IMAGE_STORE_UNAVAILABLE");
    assert!(retry_after.is_some(), "with Retry-After");
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "refused quickly"
    );
    assert!(
        ctx.images(0, &auction).await.is_empty(),
        "no metadata committed"
    );
    // Auctions still load while the store is down.
    ctx.client
        .get(ctx.url(2, &format!("/auctions/{auction}")), None)
        .await
        .expect(200);
    ctx.s3.start();
    ctx.upload(
        1,
        &auction,
        &ctx.seller,
        encoded(&picture(80, 80), ImageFormat::Jpeg),
        "image/jpeg",
    )
    .await
    .expect(201);
}
