//! `image-bench`: upload latency of real images against a running cluster.
//!
//! Registers a fresh seller, makes distinct JPEG pictures of about `--bytes` each (seeded
//! noise, so no two are alike and none is answered from the "same picture again" shortcut),
//! and uploads them with `--concurrency` clients through the nodes in turn, creating a new
//! auction every 12 images. Every upload must answer 201; prints p50/p95/p99/max and the
//! rate. The pictures are made before the clock starts.
//!
//! `cargo run --release -p auction-node --bin image-bench -- --url http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083`

use std::io::Cursor;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use hdrhistogram::Histogram;
use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageBuffer, Rgb};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(about = "Upload latency of JPEG images against a running cluster")]
struct Args {
    /// The nodes' base URLs; uploads go to them in turn.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083"
    )]
    url: Vec<String>,
    /// Uploads in all.
    #[arg(long, default_value_t = 60)]
    uploads: usize,
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    /// Size of each JPEG, about.
    #[arg(long, default_value_t = 1024 * 1024)]
    bytes: usize,
}

const IMAGES_PER_AUCTION: usize = 12;

/// Seeded noise over a gradient: JPEG cannot compress it much, so the size follows the area.
fn noise_jpeg(side: u32, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let picture = ImageBuffer::from_fn(side, side, |x, y| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let noise = (state & 0x3f) as u8;
        Rgb([
            (x % 200) as u8 + noise,
            (y % 200) as u8 + noise,
            ((x + y) % 190) as u8 + noise,
        ])
    });
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(picture)
        .write_with_encoder(JpegEncoder::new_with_quality(&mut out, 92))
        .expect("encoding to memory");
    out.into_inner()
}

/// The side whose noise JPEG is about `bytes` long.
fn side_for(bytes: usize) -> u32 {
    let probe = 512u32;
    let probe_bytes = noise_jpeg(probe, 1).len() as f64;
    let scale = (bytes as f64 / probe_bytes).sqrt();
    ((f64::from(probe) * scale) as u32).max(16)
}

async fn post_json(
    client: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Value,
) -> anyhow::Result<Value> {
    let mut request = client.post(&url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.with_context(|| url.clone())?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{url}: {status} {body}");
    }
    Ok(body)
}

async fn seller(client: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let email = format!("image-bench-{}@example.com", uuid::Uuid::new_v4().simple());
    let password = "correct horse battery";
    let register = json!({ "email": email, "password": password, "displayName": "image bench" });
    post_json(
        client,
        format!("{base}/api/v1/auth/register"),
        None,
        register,
    )
    .await?;
    let login = json!({ "email": email, "password": password });
    let session = post_json(client, format!("{base}/api/v1/auth/login"), None, login).await?;
    Ok(session["token"].as_str().context("a token")?.to_owned())
}

async fn auctions(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::with_capacity(count);
    for n in 0..count {
        let body = json!({ "title": format!("image bench lot {n}"), "startingPrice": "5.00",
            "durationSeconds": 3600 });
        let created =
            post_json(client, format!("{base}/api/v1/auctions"), Some(token), body).await?;
        ids.push(
            created["auction"]["id"]
                .as_str()
                .context("an id")?
                .to_owned(),
        );
    }
    Ok(ids)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let Some(first) = args.url.first().cloned() else {
        bail!("give at least one --url");
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let token = seller(&client, &first).await?;
    let lots = auctions(
        &client,
        &first,
        &token,
        args.uploads.div_ceil(IMAGES_PER_AUCTION),
    )
    .await?;
    let side = side_for(args.bytes);
    let pictures: Vec<Vec<u8>> = (0..args.uploads)
        .map(|n| noise_jpeg(side, n as u64 + 2))
        .collect();
    let mean = pictures.iter().map(Vec::len).sum::<usize>() / pictures.len().max(1);
    println!(
        "{} uploads of {side}×{side} JPEGs (mean {mean} bytes), {} at a time, through {} node(s)",
        args.uploads,
        args.concurrency,
        args.url.len()
    );
    let pictures = Arc::new(pictures);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (client, token, lots, pictures, next, urls) = (
            client.clone(),
            token.clone(),
            lots.clone(),
            pictures.clone(),
            next.clone(),
            args.url.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some(picture) = pictures.get(n) else {
                    return Ok::<_, anyhow::Error>(latencies);
                };
                let url = format!(
                    "{}/api/v1/auctions/{}/images",
                    urls[n % urls.len()],
                    lots[n / IMAGES_PER_AUCTION]
                );
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "image/jpeg")
                    .body(picture.clone())
                    .send()
                    .await?;
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                if status.as_u16() != 201 {
                    bail!("upload {n}: {status} {body}");
                }
                latencies.push(sent.elapsed());
            }
        }));
    }
    let mut histogram = Histogram::<u64>::new(3)?;
    for worker in workers {
        for latency in worker.await?? {
            histogram.record(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX))?;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ms = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1_000.0;
    println!(
        "upload latency ms: p50 {:.1}  p95 {:.1}  p99 {:.1}  max {:.1}   ({:.1} uploads/s)",
        ms(0.5),
        ms(0.95),
        ms(0.99),
        histogram.max() as f64 / 1_000.0,
        histogram.len() as f64 / elapsed
    );
    Ok(())
}
