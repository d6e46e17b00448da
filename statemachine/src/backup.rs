//! The backup file: every group of a cluster, each at a recorded log position, in one
//! self-checking stream.
//!
//! A node serves one group as a *section* (`GET /api/v1/cluster/groups/{g}/backup`);
//! `auctionctl backup` strings the sections of groups `0..=S` together between a header and a
//! trailer; `auctionctl backup verify` and `auction-node restore` read the file back. Layout
//! (integers little-endian):
//!
//! ```text
//! file    = "AUCBACK1" version:u32 shard_count:u32 group_count:u32 created_at_ms:u64
//!           section{group_count}
//!           "AUCEND01" group_count:u32 file_digest:u64
//! section = "AUCGRP01" group:u32 shard_count:u32 source_node:u64
//!           has_position:u8 term:u64 leader_node:u64 index:u64
//!           records (the snapshot format of [`crate::snapshot`]: "AUCSNAP1", pairs, count, digest)
//!           state_digest:u64
//! ```
//!
//! Three checks, each over different bytes: the snapshot trailer's count and FNV-1a digest
//! over the records (as in every Raft snapshot); the *state digest*, FNV-1a over every key and
//! value framed by its length ([`state_digest_of`]), which is what a node answers at
//! `GET /cluster/groups/{g}/digest`, so a restored replica can be compared with the backup
//! directly; and the file digest, FNV-1a over every byte of the file before it, which also
//! covers the headers. Sections come in the order of [`group_order`] (shards `1..=S`, then the
//! meta group `0`), each naming the file's shard count; nothing may follow the trailer.
//!
//! Everything is read and written through `io::Read` / `io::Write` one record at a time, so a
//! backup is never held in memory whole: the bound is one record (a snapshot record's limits).
//!
//! Not done yet: no compression; FNV-1a detects accidents, not tampering (sign or store the
//! file somewhere trusted); a section is one group's whole state (no incremental backups).

use std::io::{self, Read, Write};

use crate::hash::Fnv1a64;
use crate::ids::{GroupId, NodeId};
use crate::snapshot::{SnapshotReader, SnapshotWriter};

const FILE_MAGIC: &[u8; 8] = b"AUCBACK1";
const SECTION_MAGIC: &[u8; 8] = b"AUCGRP01";
const TRAILER_MAGIC: &[u8; 8] = b"AUCEND01";
/// The version of the layout above.
pub const FORMAT_VERSION: u32 = 1;
/// Most groups a backup may hold (the node's own bound on `--shards` is 1,024, plus meta).
pub const GROUPS_MAX: u32 = 1_025;

fn invalid(reason: impl Into<String>) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("backup: {}", reason.into()),
    )
}

/// The log entry a group's state was read at: its Raft term, the node that led that term, and
/// its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogPosition {
    pub term: u64,
    pub leader_node: NodeId,
    pub index: u64,
}

/// What the file says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    pub shard_count: u32,
    pub group_count: u32,
    pub created_at_ms: u64,
}

impl FileHeader {
    /// The header of a backup of every group of a cluster of `shard_count` shards.
    pub fn new(shard_count: u32, created_at_ms: u64) -> io::Result<FileHeader> {
        let group_count = shard_count
            .checked_add(1)
            .filter(|count| *count <= GROUPS_MAX)
            .ok_or_else(|| invalid(format!("{shard_count} shards is too many")))?;
        Ok(FileHeader {
            shard_count,
            group_count,
            created_at_ms,
        })
    }
}

/// What a section says about its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionHeader {
    pub group: GroupId,
    pub shard_count: u32,
    /// The node that read the state.
    pub source_node: NodeId,
    /// The last entry applied to the state; `None` for a group that never applied one.
    pub position: Option<LogPosition>,
}

/// One group's section as read back: its header, record count and state digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionSummary {
    pub header: SectionHeader,
    pub records: u64,
    /// The state digest ([`state_digest_of`]), equal to a replica's digest at that position.
    pub state_digest: u64,
}

/// A whole file as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    pub header: FileHeader,
    pub sections: Vec<SectionSummary>,
    pub file_digest: u64,
    pub bytes: u64,
}

/// Folds one record into a state digest: FNV-1a over the key and the value, each framed by
/// its length. Start from `Fnv1a64::new()`; the same as a node's replica digest.
pub fn state_digest_of(digest: &mut Fnv1a64, key: &[u8], value: &[u8]) {
    digest.write_framed(key);
    digest.write_framed(value);
}

/// Writes one group's section: the header at once, then each record, then the trailers.
pub struct SectionWriter<W: Write> {
    records: SnapshotWriter<W>,
    state_digest: Fnv1a64,
}

impl<W: Write> SectionWriter<W> {
    pub fn new(mut out: W, header: &SectionHeader) -> io::Result<Self> {
        out.write_all(&encode_section_header(header))?;
        Ok(SectionWriter {
            records: SnapshotWriter::new(out)?,
            state_digest: Fnv1a64::new(),
        })
    }

    pub fn push(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.records.push(key, value)?;
        state_digest_of(&mut self.state_digest, key, value);
        Ok(())
    }

    /// Writes the record trailer and the state digest; returns the sink and the digest.
    pub fn finish(self) -> io::Result<(W, u64)> {
        let mut out = self.records.finish()?;
        let digest = self.state_digest.finish();
        out.write_all(&digest.to_le_bytes())?;
        out.flush()?;
        Ok((out, digest))
    }
}

fn encode_section_header(header: &SectionHeader) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(8 + 4 + 4 + 8 + 1 + 24);
    bytes.extend_from_slice(SECTION_MAGIC);
    bytes.extend_from_slice(&header.group.to_le_bytes());
    bytes.extend_from_slice(&header.shard_count.to_le_bytes());
    bytes.extend_from_slice(&header.source_node.to_le_bytes());
    let position = header.position.unwrap_or(LogPosition {
        term: 0,
        leader_node: 0,
        index: 0,
    });
    bytes.push(u8::from(header.position.is_some()));
    for field in [position.term, position.leader_node, position.index] {
        bytes.extend_from_slice(&field.to_le_bytes());
    }
    bytes
}

/// Receives what a reader finds, record by record (every method defaults to "ignore").
pub trait BackupVisitor {
    fn section_start(&mut self, _header: &SectionHeader) -> io::Result<()> {
        Ok(())
    }
    fn record(&mut self, _key: &[u8], _value: &[u8]) -> io::Result<()> {
        Ok(())
    }
    /// Called once the section's record count and both digests have been checked.
    fn section_end(&mut self, _summary: &SectionSummary) -> io::Result<()> {
        Ok(())
    }
}

/// A visitor that only lets the reader check.
pub struct CheckOnly;

impl BackupVisitor for CheckOnly {}

fn read_array<const N: usize>(input: &mut impl Read) -> io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    input
        .read_exact(&mut bytes)
        .map_err(|error| match error.kind() {
            io::ErrorKind::UnexpectedEof => invalid("the file ends early (truncated)"),
            _ => error,
        })?;
    Ok(bytes)
}

fn read_u32(input: &mut impl Read) -> io::Result<u32> {
    read_array::<4>(input).map(u32::from_le_bytes)
}

fn read_u64(input: &mut impl Read) -> io::Result<u64> {
    read_array::<8>(input).map(u64::from_le_bytes)
}

fn expect_magic(input: &mut impl Read, magic: &[u8; 8], what: &str) -> io::Result<()> {
    if &read_array::<8>(input)? != magic {
        return Err(invalid(format!("bad magic: not a {what}")));
    }
    Ok(())
}

fn read_section_header(input: &mut impl Read) -> io::Result<SectionHeader> {
    expect_magic(input, SECTION_MAGIC, "group section")?;
    let group = read_u32(input)?;
    let shard_count = read_u32(input)?;
    let source_node = read_u64(input)?;
    let has_position = read_array::<1>(input)?[0];
    let position = LogPosition {
        term: read_u64(input)?,
        leader_node: read_u64(input)?,
        index: read_u64(input)?,
    };
    let position = match has_position {
        0 => None,
        1 => Some(position),
        other => return Err(invalid(format!("group {group}: position flag {other}"))),
    };
    Ok(SectionHeader {
        group,
        shard_count,
        source_node,
        position,
    })
}

/// Reads and checks one section (as a node serves it), handing every record to `visitor`.
pub fn read_section(
    input: &mut impl Read,
    visitor: &mut impl BackupVisitor,
) -> io::Result<SectionSummary> {
    let header = read_section_header(input)?;
    visitor.section_start(&header)?;
    let mut records = SnapshotReader::new(&mut *input)
        .map_err(|error| invalid(format!("group {}: {error}", header.group)))?;
    let mut digest = Fnv1a64::new();
    while let Some((key, value)) = records
        .next_pair()
        .map_err(|error| invalid(format!("group {}: {error}", header.group)))?
    {
        state_digest_of(&mut digest, &key, &value);
        visitor.record(&key, &value)?;
    }
    let summary = SectionSummary {
        header,
        records: records.records(),
        state_digest: digest.finish(),
    };
    if read_u64(input)? != summary.state_digest {
        return Err(invalid(format!(
            "group {}: the state digest does not match its records",
            header.group
        )));
    }
    visitor.section_end(&summary)?;
    Ok(summary)
}

/// Passes every byte through to the inner reader or writer and hashes it.
pub struct Hashing<T> {
    inner: T,
    digest: Fnv1a64,
    bytes: u64,
}

impl<T> Hashing<T> {
    pub fn new(inner: T) -> Self {
        Hashing {
            inner,
            digest: Fnv1a64::new(),
            bytes: 0,
        }
    }

    /// FNV-1a of every byte so far, and their number.
    pub fn digest(&self) -> (u64, u64) {
        (self.digest.finish(), self.bytes)
    }

    pub fn into_inner(self) -> T {
        self.inner
    }

    fn account(&mut self, bytes: &[u8]) {
        self.digest.write(bytes);
        self.bytes += bytes.len() as u64;
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.account(&buffer[..read]);
        Ok(read)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(bytes)?;
        self.account(&bytes[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the file header (start of a backup file).
pub fn write_file_header(out: &mut impl Write, header: &FileHeader) -> io::Result<()> {
    out.write_all(FILE_MAGIC)?;
    for field in [FORMAT_VERSION, header.shard_count, header.group_count] {
        out.write_all(&field.to_le_bytes())?;
    }
    out.write_all(&header.created_at_ms.to_le_bytes())
}

/// Writes the trailer: `out` must have hashed every byte of the file so far.
pub fn write_trailer<W: Write>(out: &mut Hashing<W>, group_count: u32) -> io::Result<u64> {
    out.write_all(TRAILER_MAGIC)?;
    out.write_all(&group_count.to_le_bytes())?;
    let (digest, _) = out.digest();
    out.write_all(&digest.to_le_bytes())?;
    out.flush()?;
    Ok(digest)
}

fn read_file_header(input: &mut impl Read) -> io::Result<FileHeader> {
    expect_magic(input, FILE_MAGIC, "backup file")?;
    let version = read_u32(input)?;
    if version != FORMAT_VERSION {
        return Err(invalid(format!(
            "format version {version}, this build reads {FORMAT_VERSION}"
        )));
    }
    let shard_count = read_u32(input)?;
    let group_count = read_u32(input)?;
    let created_at_ms = read_u64(input)?;
    let expected = FileHeader::new(shard_count, created_at_ms)?;
    if group_count != expected.group_count {
        return Err(invalid(format!(
            "{group_count} groups for {shard_count} shards (expected {})",
            expected.group_count
        )));
    }
    Ok(expected)
}

/// The order of the sections in a file: every shard, then the meta group last. Each group is
/// read at its own position; reading meta last means that every user a shard's records name
/// (a seller, a bidder) was registered before meta was read, so it is in the backup.
pub fn group_order(shard_count: u32) -> impl Iterator<Item = GroupId> {
    (1..=shard_count).chain(std::iter::once(crate::command::META_GROUP))
}

/// Checks that section `expected_group` is that group of this file.
pub fn check_section(
    summary: &SectionSummary,
    expected_group: GroupId,
    shard_count: u32,
) -> io::Result<()> {
    let header = &summary.header;
    if header.group != expected_group {
        return Err(invalid(format!(
            "expected group {expected_group}, found group {}",
            header.group
        )));
    }
    if header.shard_count != shard_count {
        return Err(invalid(format!(
            "group {} was read from a cluster of {} shards, the file is of {shard_count}",
            header.group, header.shard_count
        )));
    }
    Ok(())
}

/// Reads and checks a whole backup file, handing every record to `visitor`: header, every
/// section in group order, trailer, file digest, and nothing after it.
pub fn read_backup(
    input: impl Read,
    visitor: &mut impl BackupVisitor,
) -> io::Result<BackupSummary> {
    let mut input = Hashing::new(input);
    let header = read_file_header(&mut input)?;
    let mut sections = Vec::new();
    for group in group_order(header.shard_count) {
        let summary = read_section(&mut input, visitor)?;
        check_section(&summary, group, header.shard_count)?;
        sections.push(summary);
    }
    expect_magic(&mut input, TRAILER_MAGIC, "backup trailer")?;
    if read_u32(&mut input)? != header.group_count {
        return Err(invalid(
            "the trailer's group count differs from the header's",
        ));
    }
    let (expected, _) = input.digest();
    let file_digest = read_u64(&mut input)?;
    if file_digest != expected {
        return Err(invalid("the file digest does not match (corrupted)"));
    }
    let (_, bytes) = input.digest();
    if input.read(&mut [0u8; 1])? != 0 {
        return Err(invalid("bytes after the trailer"));
    }
    Ok(BackupSummary {
        header,
        sections,
        file_digest,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(group: GroupId, records: &[(&[u8], &[u8])]) -> io::Result<Vec<u8>> {
        let header = SectionHeader {
            group,
            shard_count: 1,
            source_node: 7,
            position: Some(LogPosition {
                term: 3,
                leader_node: 2,
                index: 40 + u64::from(group),
            }),
        };
        let mut writer = SectionWriter::new(Vec::new(), &header)?;
        for (key, value) in records {
            writer.push(key, value)?;
        }
        Ok(writer.finish()?.0)
    }

    fn file() -> io::Result<Vec<u8>> {
        let header = FileHeader::new(1, 1_767_225_600_000)?;
        let mut out = Hashing::new(Vec::new());
        write_file_header(&mut out, &header)?;
        out.write_all(&section(1, &[(b"a", b"1"), (b"b", b"")])?)?;
        out.write_all(&section(0, &[(b"user", b"alice")])?)?;
        write_trailer(&mut out, header.group_count)?;
        Ok(out.into_inner())
    }

    #[test]
    fn a_file_round_trips_with_positions_counts_and_digests() -> io::Result<()> {
        let summary = read_backup(&file()?[..], &mut CheckOnly)?;
        assert_eq!(summary.header.group_count, 2);
        let records: Vec<u64> = summary.sections.iter().map(|s| s.records).collect();
        assert_eq!(records, [2, 1], "shards first, meta last");
        let position = summary.sections[0].header.position.expect("a position");
        assert_eq!(
            (position.term, position.leader_node, position.index),
            (3, 2, 41)
        );
        let mut by_hand = Fnv1a64::new();
        state_digest_of(&mut by_hand, b"user", b"alice");
        assert_eq!(summary.sections[1].state_digest, by_hand.finish());
        Ok(())
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_refused() -> io::Result<()> {
        let bytes = file()?;
        for len in 0..bytes.len() {
            assert!(
                read_backup(&bytes[..len], &mut CheckOnly).is_err(),
                "cut at {len}"
            );
        }
        for at in 0..bytes.len() {
            let mut corrupted = bytes.clone();
            corrupted[at] ^= 0x01;
            assert!(
                read_backup(&corrupted[..], &mut CheckOnly).is_err(),
                "byte {at}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(
            read_backup(&longer[..], &mut CheckOnly).is_err(),
            "trailing byte"
        );
        Ok(())
    }

    #[test]
    fn sections_out_of_order_are_refused() -> io::Result<()> {
        let header = FileHeader::new(1, 0)?;
        let mut out = Hashing::new(Vec::new());
        write_file_header(&mut out, &header)?;
        out.write_all(&section(0, &[])?)?;
        out.write_all(&section(1, &[])?)?;
        write_trailer(&mut out, header.group_count)?;
        let error = read_backup(&out.into_inner()[..], &mut CheckOnly).expect_err("out of order");
        assert!(error.to_string().contains("expected group 1"), "{error}");
        Ok(())
    }
}
