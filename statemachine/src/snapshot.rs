//! The snapshot format of one group's state machine: a self-checking stream of key-value pairs.
//!
//! Layout: the magic `AUCSNAP1`, then records `[key length u32 LE][key][value length u32 LE]
//! [value]`, then an end marker (key length `u32::MAX`), the record count (u64 LE) and an FNV-1a
//! digest of every record (u64 LE). A reader checks the count and digest, so a truncated or
//! corrupted snapshot is refused instead of being half-installed.
//!
//! Written and read through `io::Write` / `io::Read`, so the same code serves a buffer, a file or
//! a network stream. It lives in this crate (pure, no RocksDB) because three users share the
//! very same bytes: the raft crate's snapshots, the node's backup stream and the `auctionctl`
//! tool that writes and verifies backup files ([`crate::backup`]).

use std::io::{self, Read, Write};

use crate::hash::Fnv1a64;

const MAGIC: &[u8; 8] = b"AUCSNAP1";
const END_MARKER: u32 = u32::MAX;
/// Largest key a snapshot may carry.
pub const KEY_BYTES_MAX: u32 = 64 * 1024;
/// Largest value a snapshot may carry.
pub const VALUE_BYTES_MAX: u32 = 64 * 1024 * 1024;

fn invalid(reason: impl Into<String>) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("snapshot: {}", reason.into()),
    )
}

/// Writes pairs in the snapshot format.
pub struct SnapshotWriter<W: Write> {
    out: W,
    count: u64,
    digest: Fnv1a64,
}

impl<W: Write> SnapshotWriter<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(MAGIC)?;
        Ok(SnapshotWriter {
            out,
            count: 0,
            digest: Fnv1a64::new(),
        })
    }

    pub fn push(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        let key_len = u32::try_from(key.len())
            .ok()
            .filter(|len| *len <= KEY_BYTES_MAX);
        let value_len = u32::try_from(value.len())
            .ok()
            .filter(|len| *len <= VALUE_BYTES_MAX);
        let (Some(key_len), Some(value_len)) = (key_len, value_len) else {
            return Err(invalid("a record is larger than the snapshot limits"));
        };
        for part in [
            &key_len.to_le_bytes()[..],
            key,
            &value_len.to_le_bytes()[..],
            value,
        ] {
            self.out.write_all(part)?;
            self.digest.write(part);
        }
        self.count += 1;
        Ok(())
    }

    /// Writes the trailer and returns the sink.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&END_MARKER.to_le_bytes())?;
        self.out.write_all(&self.count.to_le_bytes())?;
        self.out.write_all(&self.digest.finish().to_le_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads pairs in the snapshot format; the last `next` checks the trailer.
pub struct SnapshotReader<R: Read> {
    input: R,
    count: u64,
    digest: Fnv1a64,
    done: bool,
}

impl<R: Read> SnapshotReader<R> {
    pub fn new(mut input: R) -> io::Result<Self> {
        let mut magic = [0u8; 8];
        input.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(invalid("not a snapshot (bad magic)"));
        }
        Ok(SnapshotReader {
            input,
            count: 0,
            digest: Fnv1a64::new(),
            done: false,
        })
    }

    /// Records read so far (all of them once `next_pair` has answered `None`).
    pub fn records(&self) -> u64 {
        self.count
    }

    fn read_u32(&mut self) -> io::Result<u32> {
        let mut bytes = [0u8; 4];
        self.input.read_exact(&mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn read_u64(&mut self) -> io::Result<u64> {
        let mut bytes = [0u8; 8];
        self.input.read_exact(&mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn read_part(&mut self, len: u32, len_max: u32) -> io::Result<Vec<u8>> {
        if len > len_max {
            return Err(invalid("a record is larger than the snapshot limits"));
        }
        let mut part = vec![0u8; len as usize];
        self.input.read_exact(&mut part)?;
        Ok(part)
    }

    /// The next pair, `None` after a verified trailer.
    pub fn next_pair(&mut self) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
        if self.done {
            return Ok(None);
        }
        let key_len = self.read_u32()?;
        if key_len == END_MARKER {
            return self.verify_trailer().map(|()| None);
        }
        let key = self.read_part(key_len, KEY_BYTES_MAX)?;
        let value_len = self.read_u32()?;
        let value = self.read_part(value_len, VALUE_BYTES_MAX)?;
        for part in [
            &key_len.to_le_bytes()[..],
            &key,
            &value_len.to_le_bytes()[..],
            &value,
        ] {
            self.digest.write(part);
        }
        self.count += 1;
        Ok(Some((key, value)))
    }

    fn verify_trailer(&mut self) -> io::Result<()> {
        let count = self.read_u64()?;
        let digest = self.read_u64()?;
        if count != self.count || digest != self.digest.finish() {
            return Err(invalid("count or digest mismatch"));
        }
        self.done = true;
        Ok(())
    }
}

/// Checks a whole snapshot without keeping it: a refused snapshot never touches the store.
pub fn verify(bytes: &[u8]) -> io::Result<u64> {
    let mut reader = SnapshotReader::new(bytes)?;
    while reader.next_pair()?.is_some() {}
    Ok(reader.count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> io::Result<Vec<u8>> {
        let mut writer = SnapshotWriter::new(Vec::new())?;
        writer.push(b"a", b"1")?;
        writer.push(b"b", b"")?;
        writer.finish()
    }

    #[test]
    fn round_trips_and_counts() -> io::Result<()> {
        let bytes = sample()?;
        assert_eq!(verify(&bytes)?, 2);
        let mut reader = SnapshotReader::new(&bytes[..])?;
        assert_eq!(reader.next_pair()?, Some((b"a".to_vec(), b"1".to_vec())));
        assert_eq!(reader.next_pair()?, Some((b"b".to_vec(), Vec::new())));
        assert_eq!(reader.next_pair()?, None);
        Ok(())
    }

    #[test]
    fn the_trailer_carries_the_pinned_count_and_digest() -> io::Result<()> {
        // Pinned: snapshots written by an earlier build must still verify.
        let bytes = sample()?;
        let trailer = &bytes[bytes.len() - 20..];
        assert_eq!(trailer[..4], u32::MAX.to_le_bytes());
        assert_eq!(trailer[4..12], 2u64.to_le_bytes());
        assert_eq!(trailer[12..], 0xa174_7867_ae8b_4bfau64.to_le_bytes());
        Ok(())
    }

    #[test]
    fn refuses_truncated_or_corrupted_snapshots() -> io::Result<()> {
        let bytes = sample()?;
        assert!(verify(&bytes[..bytes.len() - 1]).is_err(), "truncated");
        let mut corrupted = bytes.clone();
        corrupted[13] ^= 0xff;
        assert!(verify(&corrupted).is_err(), "corrupted");
        assert!(verify(b"NOTASNAP").is_err(), "bad magic");
        Ok(())
    }
}
