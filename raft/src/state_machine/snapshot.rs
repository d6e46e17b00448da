//! The snapshot format of one group's state machine (`AUCSNAP1`: self-checking records with a
//! count and an FNV-1a digest). It lives in `auction_statemachine::snapshot` so that the backup
//! tools, which must not build RocksDB, read and write the very same bytes; this module keeps
//! the raft crate's path to it.

pub use auction_statemachine::snapshot::*;
