//! Errors of the log, split by operation. Each variant carries what an operator or the network
//! layer needs to act: the path, the offset, what was expected and what was found.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::batch::BatchError;

/// An I/O failure with the file and operation it happened in. The source is shared so that one
/// failed group write can be reported to every producer waiting on it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct IoFailure {
    pub op: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: Arc<io::Error>,
}

impl IoFailure {
    pub fn new(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self { op, path: path.into(), source: Arc::new(source) }
    }
    /// True when the device is out of space (`ENOSPC`/`EDQUOT`).
    pub fn is_disk_full(&self) -> bool {
        matches!(self.source.raw_os_error(), Some(28) | Some(122))
    }
}

/// Why an append was refused or failed. Nothing of a refused record set was written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    /// The producer's bytes are not a valid RecordBatch v2 set (Kafka: `CORRUPT_MESSAGE`,
    /// `INVALID_RECORD` or `MESSAGE_TOO_LARGE`).
    #[error(transparent)]
    InvalidBatch(#[from] BatchError),
    /// The write failed; the partial bytes were cut off again and the log is unchanged.
    #[error("append failed: {0}")]
    Io(IoFailure),
    /// An earlier write or sync failed in a way the log could not undo; it refuses writes until
    /// it is reopened (which runs recovery).
    #[error("log is fenced after an earlier failure: {reason}")]
    Fenced { reason: String },
    /// Rolling would exceed `segments_max`.
    #[error("partition already has the maximum of {max} segments")]
    TooManySegments { max: usize },
    /// The log was closed.
    #[error("log is closed")]
    Closed,
    /// A replica append ([`crate::Log::append_replica`]) whose batches do not continue the log
    /// exactly: the first must start at the log end offset and each next where the one before
    /// ended. Nothing of the record set was written.
    #[error("replica batches start at offset {found}, expected {expected}")]
    OffsetMismatch { expected: u64, found: u64 },
    /// A transaction marker ([`crate::Log::append_marker`]) whose producer epoch is older than
    /// the producer's current epoch in this partition: a zombie coordinator's or producer's
    /// (Kafka: `INVALID_PRODUCER_EPOCH`). Nothing was written.
    #[error(
        "marker of producer {producer_id} has epoch {got}, older than its current epoch {current}"
    )]
    FencedMarker { producer_id: i64, current: i16, got: i16 },
}

/// Why a read failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    /// Kafka: `OFFSET_OUT_OF_RANGE`.
    #[error("offset {requested} is outside the log [{log_start}, {log_end}]")]
    OffsetOutOfRange { requested: u64, log_start: u64, log_end: u64 },
    #[error("read failed: {0}")]
    Io(IoFailure),
    /// Bytes on disk that should be a batch are not; the segment needs recovery.
    #[error("segment {path} is corrupt at position {position}: {reason}")]
    Corrupt { path: PathBuf, position: u64, reason: String },
}

/// Failures of opening, syncing, truncating, retention and compaction.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Io(#[from] IoFailure),
    #[error("log is fenced after an earlier failure: {reason}")]
    Fenced { reason: String },
    #[error("segment {path} is corrupt at position {position}: {reason}")]
    Corrupt { path: PathBuf, position: u64, reason: String },
    #[error("offset {requested} is outside the log [{log_start}, {log_end}]")]
    OffsetOutOfRange { requested: u64, log_start: u64, log_end: u64 },
    #[error("log is closed")]
    Closed,
}

impl From<ReadError> for LogError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::OffsetOutOfRange { requested, log_start, log_end } => {
                LogError::OffsetOutOfRange { requested, log_start, log_end }
            }
            ReadError::Io(io) => LogError::Io(io),
            ReadError::Corrupt { path, position, reason } => {
                LogError::Corrupt { path, position, reason }
            }
        }
    }
}
