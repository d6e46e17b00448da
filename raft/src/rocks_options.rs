//! How a node's one RocksDB is tuned, in one place: the database options and those of each
//! column family (the Raft log and meta of `log_store::rocks`, the state of
//! `state_machine::rocks`).
//!
//! The choices, and why:
//! - Memory is bounded by configuration: every memtable of every column family together is
//!   capped ([`WRITE_BUFFERS_BYTES_MAX`]), and one block cache serves them all
//!   ([`BLOCK_CACHE_BYTES`]), index and filter blocks included.
//! - Flushes and compactions bypass the page cache (direct I/O), and other background writes
//!   are synced in small steps: the log's `fsync` (group commit) then has only the WAL's own
//!   pages to write, instead of waiting behind megabytes of freshly flushed tables that the
//!   file system would otherwise push out with it.
//! - Point reads dominate applies (auctions, de-duplication records, sessions): bloom filters
//!   on tables and on memtables let a read of a key that is not there skip the search.
//!
//! Not done yet: no per-deployment overrides (the constants are the configuration); no rate
//! limiter for compaction writes.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rocksdb::{BlockBasedOptions, Cache, ColumnFamilyDescriptor, Options};

/// Every memtable of the node together (the database-wide write buffer bound).
pub const WRITE_BUFFERS_BYTES_MAX: usize = 128 << 20;
/// One memtable of the log or the state column family before it is flushed.
pub const WRITE_BUFFER_BYTES: usize = 32 << 20;
/// The node's block cache, shared by every column family.
pub const BLOCK_CACHE_BYTES: usize = 64 << 20;
/// Background writes are synced every this many bytes.
pub const BACKGROUND_SYNC_BYTES: u64 = 1 << 20;
/// Bloom filter bits per key of table files.
const BLOOM_BITS_PER_KEY: f64 = 10.0;
/// Share of a memtable spent on its bloom filter.
const MEMTABLE_BLOOM_RATIO: f64 = 0.05;
/// Flush and compaction threads.
const BACKGROUND_JOBS: i32 = 2;

/// The database options of a node's RocksDB in `dir` (which must exist).
pub fn db_options(dir: &Path) -> Options {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.set_db_write_buffer_size(WRITE_BUFFERS_BYTES_MAX);
    // Some file systems (tmpfs) refuse direct I/O; RocksDB would then fail its first flush.
    options.set_use_direct_io_for_flush_and_compaction(supports_direct_io(dir));
    options.set_bytes_per_sync(BACKGROUND_SYNC_BYTES);
    options.set_max_background_jobs(BACKGROUND_JOBS);
    options
}

/// Whether files in `dir` can be opened for direct I/O.
fn supports_direct_io(dir: &Path) -> bool {
    let probe = dir.join(".direct-io-probe");
    let supported = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(&probe)
        .is_ok();
    let _ = std::fs::remove_file(&probe);
    supported
}

/// Descriptors of the column families `names`, tuned as [`column_family_options`].
pub fn column_families(names: &[&str], cache: &Cache) -> Vec<ColumnFamilyDescriptor> {
    names
        .iter()
        .map(|name| ColumnFamilyDescriptor::new(*name, column_family_options(cache)))
        .collect()
}

/// The options of a column family that holds many keys read one at a time.
pub fn column_family_options(cache: &Cache) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_bloom_filter(BLOOM_BITS_PER_KEY, false);
    table.set_cache_index_and_filter_blocks(true);
    let mut options = Options::default();
    options.set_block_based_table_factory(&table);
    options.set_write_buffer_size(WRITE_BUFFER_BYTES);
    options.set_memtable_prefix_bloom_ratio(MEMTABLE_BLOOM_RATIO);
    options.set_memtable_whole_key_filtering(true);
    options
}

/// The block cache a node's column families share.
pub fn block_cache() -> Cache {
    Cache::new_lru_cache(BLOCK_CACHE_BYTES)
}
