//! `auctionctl backup FILE` and `auctionctl backup verify FILE`.
//!
//! A backup asks one node (`--node`) for every group's section in turn
//! (`GET /api/v1/cluster/groups/{g}/backup`: shards `1..=S`, then meta, the order of
//! `auction_statemachine::backup::group_order`) and strings them into one file between a
//! header and a trailer. Each section is read at its group's own log position, at or above
//! every write acknowledged before that group's stream began, while the cluster goes on
//! taking writes. Every byte is checked while it streams by the same reader that `verify`
//! uses (each group's record count, record digest and state digest), then written: a stream
//! that breaks, stalls or fails a check fails the backup, and nothing is left under `FILE`
//! (the bytes go to `FILE.partial`, renamed once the trailer is written and synced). Memory
//! is bounded by a few chunks plus one record, whatever the size of the cluster.
//!
//! `verify` reads a file offline (no node needed) and prints each group's position, record
//! count and state digest; the state digest equals what a replica at that position answers at
//! `GET /cluster/groups/{g}/digest`, so a restored cluster can be compared with its backup.
//!
//! Bounds: [`CHUNKS_AHEAD_MAX`] chunks between the network and the checker, a chunk must
//! arrive within [`CHUNK_WAIT_MS_MAX`], a group within `--group-timeout-secs`, and a group
//! whose node answers `503` (no leader yet, busy) is asked [`GROUP_ATTEMPTS_MAX`] times.
//!
//! Not done yet: TLS to the node; a backup is not resumable (a failure starts it over).

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use auction_statemachine::backup::{
    check_section, group_order, read_backup, read_section, write_file_header, write_trailer,
    BackupSummary, BackupVisitor, FileHeader, Hashing, SectionHeader, SectionSummary,
};
use bytes::Bytes;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::Ctl;

/// Chunks received from the node and not yet checked and written.
pub const CHUNKS_AHEAD_MAX: usize = 8;
/// The longest wait for the next chunk of a stream.
pub const CHUNK_WAIT_MS_MAX: u64 = 60_000;
/// Attempts at one group while its node answers `503` (before any byte was written).
pub const GROUP_ATTEMPTS_MAX: u32 = 6;
/// The longest wait between two attempts (a node's `Retry-After` is capped by it).
const RETRY_WAIT_MS_MAX: u64 = 5_000;
/// Buffer of the file reader and writer.
const FILE_BUFFER_BYTES: usize = 1024 * 1024;
/// Records between two updates of the progress bar's message.
const PROGRESS_EVERY_RECORDS: u64 = 4_096;

type Out = Hashing<BufWriter<File>>;

/// `auctionctl backup FILE`.
pub async fn backup(ctl: &Ctl, file: &Path, group_timeout: Duration) -> anyhow::Result<()> {
    if file.exists() {
        bail!("{} exists already: choose another file", file.display());
    }
    let started = Instant::now();
    let shard_count = shard_count(ctl).await?;
    let header = FileHeader::new(shard_count, now_ms())?;
    let partial = partial_path(file);
    let result = write_backup(ctl, &partial, header, group_timeout).await;
    let sections = match result {
        Ok(sections) => sections,
        Err(error) => {
            let _ = fs::remove_file(&partial);
            return Err(error);
        }
    };
    fs::rename(&partial, file).with_context(|| format!("renaming to {}", file.display()))?;
    let bytes = fs::metadata(file)?.len();
    report_backup(ctl, file, &sections, bytes, started.elapsed())
}

fn partial_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

async fn shard_count(ctl: &Ctl) -> anyhow::Result<u32> {
    let status = ctl
        .call_ok(Method::GET, "/api/v1/cluster/status", None)
        .await?;
    let count = status["shardCount"]
        .as_u64()
        .and_then(|count| u32::try_from(count).ok())
        .context("the node's status names no shardCount")?;
    Ok(count)
}

/// One group as backed up, and how long its stream took.
struct Fetched {
    summary: SectionSummary,
    took: Duration,
}

/// Writes the whole file at `partial`; returns every group's summary.
async fn write_backup(
    ctl: &Ctl,
    partial: &Path,
    header: FileHeader,
    group_timeout: Duration,
) -> anyhow::Result<Vec<Fetched>> {
    let file =
        File::create_new(partial).with_context(|| format!("creating {}", partial.display()))?;
    let mut out = Hashing::new(BufWriter::with_capacity(FILE_BUFFER_BYTES, file));
    write_file_header(&mut out, &header)?;
    let bar = progress_bar(ctl, u64::from(header.group_count))?;
    let http = streaming_client()?;
    let mut sections = Vec::new();
    for group in group_order(header.shard_count) {
        bar.set_message(format!("group {group}"));
        let started = Instant::now();
        let deadline = started + group_timeout;
        let (back, summary) = fetch_group(ctl, &http, group, out, &bar, deadline)
            .await
            .with_context(|| format!("group {group}"))?;
        out = back;
        check_section(&summary, group, header.shard_count)?;
        bar.inc(1);
        sections.push(Fetched {
            summary,
            took: started.elapsed(),
        });
    }
    bar.finish_and_clear();
    write_trailer(&mut out, header.group_count)?;
    let file = out
        .into_inner()
        .into_inner()
        .map_err(|error| error.into_error())?;
    file.sync_all()?;
    Ok(sections)
}

fn progress_bar(ctl: &Ctl, groups: u64) -> anyhow::Result<ProgressBar> {
    let bar = if ctl.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(groups)
    };
    bar.set_style(
        ProgressStyle::with_template("backup {bar:30} {pos}/{len} groups ({elapsed}) {msg}")
            .context("progress bar template")?,
    );
    Ok(bar)
}

/// A client without a total time-out (a stream lasts as long as its group is big); each read
/// is bounded instead.
fn streaming_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_millis(CHUNK_WAIT_MS_MAX))
        .build()?)
}

/// Streams one group's section through the checker into `out`, asking again while the node
/// answers `503` before the stream starts.
async fn fetch_group(
    ctl: &Ctl,
    http: &reqwest::Client,
    group: u32,
    out: Out,
    bar: &ProgressBar,
    deadline: Instant,
) -> anyhow::Result<(Out, SectionSummary)> {
    let mut attempt = 0;
    let response = loop {
        attempt += 1;
        let response = request_section(ctl, http, group).await?;
        if response.status().is_success() {
            break response;
        }
        let wait = retry_wait(&response);
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status != StatusCode::SERVICE_UNAVAILABLE || attempt >= GROUP_ATTEMPTS_MAX {
            bail!("refused with {status}: {}", error_text(&body));
        }
        tokio::time::sleep(wait).await;
    };
    pump(response, out, bar.clone(), group, deadline).await
}

async fn request_section(
    ctl: &Ctl,
    http: &reqwest::Client,
    group: u32,
) -> anyhow::Result<reqwest::Response> {
    let url = format!("{}/api/v1/cluster/groups/{group}/backup", ctl.node());
    http.get(url)
        .header("x-admin-token", ctl.token()?)
        .send()
        .await
        .with_context(|| format!("node {} did not answer", ctl.node()))
}

fn retry_wait(response: &reqwest::Response) -> Duration {
    let seconds = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok())
        .unwrap_or(1);
    Duration::from_millis(seconds.saturating_mul(1_000).min(RETRY_WAIT_MS_MAX))
}

fn error_text(body: &Value) -> String {
    format!(
        "{} {}",
        body["error"].as_str().unwrap_or("?"),
        body["message"].as_str().unwrap_or("")
    )
}

/// Hands the body's chunks to a blocking checker-writer and waits for its verdict.
async fn pump(
    mut response: reqwest::Response,
    out: Out,
    bar: ProgressBar,
    group: u32,
    deadline: Instant,
) -> anyhow::Result<(Out, SectionSummary)> {
    let (sender, receiver) = mpsc::channel::<io::Result<Bytes>>(CHUNKS_AHEAD_MAX);
    let checker = tokio::task::spawn_blocking(move || check_and_write(receiver, out, bar, group));
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let next = match tokio::time::timeout(left, response.chunk()).await {
            Ok(Ok(Some(chunk))) => Ok(chunk),
            Ok(Ok(None)) => break,
            Ok(Err(error)) => Err(io::Error::other(format!("the stream broke: {error}"))),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the group took longer than --group-timeout-secs",
            )),
        };
        let failed = next.is_err();
        // A closed channel means the checker has stopped: its verdict says why.
        if sender.send(next).await.is_err() || failed {
            break;
        }
    }
    drop(sender);
    Ok(checker.await.context("the checker stopped")??)
}

/// Reads one section from the chunks, checking it and copying every byte it consumed to
/// `out`; then requires the stream to end there.
fn check_and_write(
    receiver: mpsc::Receiver<io::Result<Bytes>>,
    mut out: Out,
    bar: ProgressBar,
    group: u32,
) -> io::Result<(Out, SectionSummary)> {
    let mut chunks = ChunkReader::new(receiver);
    let mut progress = Progress {
        bar,
        group,
        records: 0,
    };
    let summary = read_section(
        &mut Tee {
            input: &mut chunks,
            copy: &mut out,
        },
        &mut progress,
    )?;
    if chunks.read(&mut [0u8; 1])? != 0 {
        return Err(io::Error::other("bytes after the section's end"));
    }
    Ok((out, summary))
}

/// The chunks of a body as an `io::Read` (blocking on the channel).
struct ChunkReader {
    receiver: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl ChunkReader {
    fn new(receiver: mpsc::Receiver<io::Result<Bytes>>) -> Self {
        ChunkReader {
            receiver,
            current: Bytes::new(),
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.receiver.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let count = buffer.len().min(self.current.len());
        buffer[..count].copy_from_slice(&self.current[..count]);
        self.current = self.current.slice(count..);
        Ok(count)
    }
}

/// Copies every byte read from `input` to `copy`.
struct Tee<'a, R, W> {
    input: &'a mut R,
    copy: &'a mut W,
}

impl<R: Read, W: Write> Read for Tee<'_, R, W> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let count = self.input.read(buffer)?;
        self.copy.write_all(&buffer[..count])?;
        Ok(count)
    }
}

/// Shows the records of the group being read.
struct Progress {
    bar: ProgressBar,
    group: u32,
    records: u64,
}

impl BackupVisitor for Progress {
    fn record(&mut self, _key: &[u8], _value: &[u8]) -> io::Result<()> {
        self.records += 1;
        if self.records.is_multiple_of(PROGRESS_EVERY_RECORDS) {
            let (group, records) = (self.group, self.records);
            self.bar
                .set_message(format!("group {group}: {records} records"));
        }
        Ok(())
    }
}

fn position_text(header: &SectionHeader) -> String {
    match header.position {
        Some(position) => format!(
            "index {} (term {}, leader {})",
            position.index, position.term, position.leader_node
        ),
        None => "nothing applied".to_owned(),
    }
}

fn section_line(summary: &SectionSummary) -> String {
    format!(
        "group {:>4}  {:<36} {:>9} records  digest {:016x}  from node {}",
        summary.header.group,
        position_text(&summary.header),
        summary.records,
        summary.state_digest,
        summary.header.source_node
    )
}

fn section_json(summary: &SectionSummary) -> Value {
    let position = summary.header.position;
    json!({
        "groupId": summary.header.group,
        "appliedIndex": position.map(|position| position.index),
        "term": position.map(|position| position.term),
        "leaderNode": position.map(|position| position.leader_node),
        "records": summary.records,
        "digest": format!("{:016x}", summary.state_digest),
        "sourceNode": summary.header.source_node,
    })
}

fn report_backup(
    ctl: &Ctl,
    file: &Path,
    sections: &[Fetched],
    bytes: u64,
    took: Duration,
) -> anyhow::Result<()> {
    if ctl.json {
        let seconds: Vec<f64> = sections.iter().map(|s| s.took.as_secs_f64()).collect();
        let groups: Vec<Value> = sections.iter().map(|s| section_json(&s.summary)).collect();
        return ctl.print_json(&json!({
            "file": file.display().to_string(),
            "bytes": bytes,
            "seconds": took.as_secs_f64(),
            "groups": groups,
            "groupSeconds": seconds,
        }));
    }
    for section in sections {
        let seconds = section.took.as_secs_f64();
        println!("{}  {seconds:.2} s", section_line(&section.summary));
    }
    println!(
        "backup of {} groups written to {} ({bytes} bytes in {:.1} s)",
        sections.len(),
        file.display(),
        took.as_secs_f64()
    );
    Ok(())
}

/// `auctionctl backup verify FILE`: every check, offline.
pub fn verify(ctl: &Ctl, file: &Path) -> anyhow::Result<()> {
    let input = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let summary = read_backup(
        BufReader::with_capacity(FILE_BUFFER_BYTES, input),
        &mut auction_statemachine::backup::CheckOnly,
    )
    .with_context(|| format!("{} is not a sound backup", file.display()))?;
    report_verify(ctl, file, &summary)
}

fn report_verify(ctl: &Ctl, file: &Path, summary: &BackupSummary) -> anyhow::Result<()> {
    if ctl.json {
        let groups: Vec<Value> = summary.sections.iter().map(section_json).collect();
        return ctl.print_json(&json!({
            "file": file.display().to_string(),
            "ok": true,
            "shardCount": summary.header.shard_count,
            "createdAtMs": summary.header.created_at_ms,
            "bytes": summary.bytes,
            "fileDigest": format!("{:016x}", summary.file_digest),
            "groups": groups,
        }));
    }
    for section in &summary.sections {
        println!("{}", section_line(section));
    }
    println!(
        "{}: sound backup of {} shards + meta, {} bytes, file digest {:016x}, taken at {} ms \
         since the epoch",
        file.display(),
        summary.header.shard_count,
        summary.bytes,
        summary.file_digest,
        summary.header.created_at_ms
    );
    Ok(())
}
