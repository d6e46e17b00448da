//! The crate's error type, and its conversions to what openraft and tonic expect.
//!
//! Storage traits in openraft return `std::io::Error`; the gRPC server returns `tonic::Status`.
//! [`Error`] converts into both, so the code below those boundaries uses `?` throughout.
//!
//! Not done yet: errors are not classified as retryable or not beyond the gRPC status code.

use std::io;

use crate::GroupId;

/// Everything that can go wrong in the replication layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("rocksdb: {0}")]
    RocksDb(#[from] rocksdb::Error),

    #[error("column family `{0}` is missing: open the database with `log_store::rocks::open_db`")]
    MissingColumnFamily(&'static str),

    #[error("cannot encode {what}: {source}")]
    Encode {
        what: &'static str,
        source: postcard::Error,
    },

    #[error("cannot decode {what}: {source}")]
    Decode {
        what: &'static str,
        source: postcard::Error,
    },

    #[error("corrupt log of group {group_id}: {reason}")]
    CorruptLog { group_id: GroupId, reason: String },

    #[error("the log writer has stopped; the node must restart")]
    WriterStopped,

    #[error("a previous log write failed ({0}); the node must restart")]
    WriterFailed(String),

    #[error("unknown raft group {0}")]
    UnknownGroup(GroupId),

    #[error("invalid address `{addr}` of node {node}: {reason}")]
    InvalidPeerAddress {
        node: String,
        addr: String,
        reason: String,
    },

    #[error("snapshot of {bytes} bytes exceeds the limit of {bytes_max} bytes")]
    SnapshotTooLarge { bytes: u64, bytes_max: u64 },

    #[error("protocol violation: {0}")]
    Protocol(String),

    #[error("raft group {group_id} failed: {reason}")]
    Raft { group_id: GroupId, reason: String },

    /// Node-to-node TLS credentials that cannot be read, made or used.
    #[error("TLS credentials {}: {reason}", path.display())]
    Tls {
        path: std::path::PathBuf,
        reason: String,
    },

    #[error("i/o: {0}")]
    Io(#[from] io::Error),
}

impl From<Error> for io::Error {
    fn from(error: Error) -> Self {
        match error {
            Error::Io(inner) => inner,
            other => io::Error::other(other),
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::UnknownGroup(_) => tonic::Status::not_found(message),
            Error::Decode { .. } | Error::Protocol(_) => tonic::Status::invalid_argument(message),
            Error::SnapshotTooLarge { .. } => tonic::Status::resource_exhausted(message),
            Error::Raft { .. } => tonic::Status::unavailable(message),
            _ => tonic::Status::internal(message),
        }
    }
}
