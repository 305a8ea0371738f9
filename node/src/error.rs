//! Errors of the node, and how the storage engine's errors map onto Kafka's error codes.
//!
//! Contract: every code a storage error can produce is chosen here, with the Kafka behaviour it
//! follows cited, and tested. Retriability matters as much as the name: a Java producer retries
//! a *retriable* code (`CORRUPT_MESSAGE`, `NOT_LEADER_OR_FOLLOWER`, `KAFKA_STORAGE_ERROR`) until
//! `delivery.timeout.ms`, and fails a batch at once on a non-retriable one (`INVALID_RECORD`,
//! `MESSAGE_TOO_LARGE`). So a fault that resending the same bytes cannot fix is never mapped to a
//! retriable code.

use odradek_net::ErrorCode;
use odradek_net::error_code::*;
use odradek_storage::batch::BatchError;
use odradek_storage::producers::SeqError;
use odradek_storage::{AppendError, ReadError};

use crate::partition::{AppendFailure, FetchRefusal, ReadFailure, Unverified};

/// A refusal or failure to answer a client with: Kafka's error code, and a message for the
/// response's `error_message` (where the API has one) and the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct KafkaError {
    pub code: ErrorCode,
    pub message: String,
}

impl KafkaError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

impl From<ErrorCode> for KafkaError {
    fn from(code: ErrorCode) -> Self {
        Self { code, message: String::new() }
    }
}

/// The error code for a fetch refused before reading (KIP-320 epochs, roles).
pub fn fetch_refusal(refusal: &FetchRefusal) -> ErrorCode {
    match refusal {
        FetchRefusal::NotLeader => NOT_LEADER_OR_FOLLOWER,
        FetchRefusal::FencedEpoch { .. } => FENCED_LEADER_EPOCH,
        FetchRefusal::UnknownEpoch { .. } => UNKNOWN_LEADER_EPOCH,
    }
}

/// The error code for a partition's refused or failed append.
pub fn append_failure(failure: &AppendFailure) -> ErrorCode {
    match failure {
        AppendFailure::Log(e) => from_append_error(e),
        AppendFailure::Sequence(SeqError::FencedEpoch { .. }) => INVALID_PRODUCER_EPOCH,
        AppendFailure::Sequence(SeqError::OutOfOrder { .. }) => OUT_OF_ORDER_SEQUENCE_NUMBER,
        // Kafka: a failed flush takes the log directory offline.
        AppendFailure::Sync(_) => KAFKA_STORAGE_ERROR,
        AppendFailure::NotLeader => NOT_LEADER_OR_FOLLOWER,
        AppendFailure::NotEnoughReplicas { .. } => NOT_ENOUGH_REPLICAS,
        AppendFailure::NotEnoughReplicasAfterAppend { .. } => NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        AppendFailure::Timeout(_) => REQUEST_TIMED_OUT,
        // Kafka's `InvalidTxnStateException`: a transactional batch the coordinator did not
        // verify (KIP-890), or a plain batch inside an open transaction.
        AppendFailure::Transaction(Unverified::Refused(_)) => INVALID_TXN_STATE,
        AppendFailure::Transaction(Unverified::Fenced(_)) => INVALID_PRODUCER_EPOCH,
        // Kafka answers a verification that could not reach the coordinator with
        // NOT_ENOUGH_REPLICAS, which producers retry (KIP-890).
        AppendFailure::Transaction(Unverified::Unavailable(_)) => NOT_ENOUGH_REPLICAS,
    }
}

/// The error code for a group coordinator's failed write to `__consumer_offsets` (an
/// OffsetCommit, TxnOffsetCommit or a group's stored metadata).
///
/// Kafka's `GroupMetadataManager` (`storeOffsets`, `storeGroup`) answers a failed log append
/// of its own partition with a *coordinator* error, since the client talks to the coordinator,
/// not to the partition: `KAFKA_STORAGE_ERROR` (a full disk) and `NOT_LEADER_OR_FOLLOWER`
/// become `NOT_COORDINATOR`, which a consumer retries after finding the coordinator again. A
/// Java consumer fails a commit that gets an unexpected code such as `KAFKA_STORAGE_ERROR`
/// ("Unexpected error in commit") instead of retrying it. Other codes are kept.
pub fn coordinator_append_failure(failure: &AppendFailure) -> ErrorCode {
    match append_failure(failure) {
        c if c == KAFKA_STORAGE_ERROR || c == NOT_LEADER_OR_FOLLOWER => NOT_COORDINATOR,
        c => c,
    }
}

/// The error code for a partition's failed read.
pub fn read_failure(failure: &ReadFailure) -> ErrorCode {
    match failure {
        ReadFailure::Log(e) => from_read_error(e),
        ReadFailure::Descriptor(_) | ReadFailure::Io(_) => KAFKA_STORAGE_ERROR,
    }
}

/// The error code for a refused or failed append (a Produce partition response).
pub fn from_append_error(error: &AppendError) -> ErrorCode {
    match error {
        AppendError::InvalidBatch(e) => from_batch_error(e),
        // Kafka turns an I/O failure on append (a full disk included) into a
        // `KafkaStorageException`, takes the log directory offline and answers
        // KAFKA_STORAGE_ERROR, which producers retry. A failed write here leaves the log
        // unchanged, so a retry after space is freed succeeds.
        AppendError::Io(_) => KAFKA_STORAGE_ERROR,
        // The log refuses writes until reopened after a failed fsync: the same state as
        // Kafka's offline log directory.
        AppendError::Fenced { .. } => KAFKA_STORAGE_ERROR,
        // The partition cannot take another segment (a resource limit of this broker, like a
        // failed segment creation in Kafka).
        AppendError::TooManySegments { .. } => KAFKA_STORAGE_ERROR,
        // The partition's log was closed (shutdown or the partition moved away): this broker
        // is no longer where the partition lives, so the client refreshes metadata and retries.
        AppendError::Closed => NOT_LEADER_OR_FOLLOWER,
        // Only a follower's replica append can mismatch offsets, never a Produce; Kafka's
        // `UnexpectedAppendOffsetException` has no code of its own, so it answers as any
        // unexpected server-side failure.
        AppendError::OffsetMismatch { .. } => UNKNOWN_SERVER_ERROR,
        // A transaction marker from an older producer epoch than the partition's (a zombie
        // coordinator's): Kafka's `InvalidProducerEpochException`.
        AppendError::FencedMarker { .. } => INVALID_PRODUCER_EPOCH,
    }
}

/// The error code for a producer's batch the log refused.
///
/// Kafka's choices, which these follow (all in the produce path of Kafka 3.x/4.0):
/// - framing and integrity → `CORRUPT_MESSAGE` (`CorruptRecordException`):
///   `ByteBufferLogInputStream.nextBatchSize` ("Record size N is less than the minimum record
///   overhead", "Invalid magic found in record: M" for a magic outside 0..=2) and
///   `UnifiedLog.analyzeAndValidateRecords` ("Record is corrupt (stored crc = …)");
/// - well-framed batches Kafka will not take → `INVALID_RECORD` (`InvalidRecordException`):
///   `ProduceRequest.validateRecords` (no batch at all; magic 0 or 1 in Produce v3+) and
///   `LogValidator.validateBatch` (record count inconsistent with the offset range) and the
///   record iterators (records section does not hold the declared records);
/// - over `max.message.bytes` → `MESSAGE_TOO_LARGE` (`RecordTooLargeException`).
pub fn from_batch_error(error: &BatchError) -> ErrorCode {
    match error {
        BatchError::CrcMismatch { .. } => CORRUPT_MESSAGE,
        BatchError::BadLength { .. } => CORRUPT_MESSAGE,
        // A batch cut short: Kafka cannot frame it either (it stops at the partial batch).
        BatchError::Truncated { .. } => CORRUPT_MESSAGE,
        BatchError::BadMagic { found: 0 | 1 } => INVALID_RECORD,
        BatchError::BadMagic { .. } => CORRUPT_MESSAGE,
        BatchError::BadRecordCount { .. } => INVALID_RECORD,
        BatchError::InvalidRecords { .. } => INVALID_RECORD,
        BatchError::Empty => INVALID_RECORD,
        // The codec bits are covered by the CRC, so a batch that passed the CRC and still
        // names an unknown codec (or does not decompress) was built that way: resending it
        // cannot help, so not the retriable CORRUPT_MESSAGE. (Kafka itself fails such a batch
        // with an unmapped IllegalArgumentException → UNKNOWN_SERVER_ERROR, also not retriable;
        // INVALID_RECORD says what is wrong.)
        BatchError::Compression(_) => INVALID_RECORD,
        BatchError::TooLarge { .. } => MESSAGE_TOO_LARGE,
    }
}

/// The error code for a failed read (a Fetch partition response).
pub fn from_read_error(error: &ReadError) -> ErrorCode {
    match error {
        ReadError::OffsetOutOfRange { .. } => OFFSET_OUT_OF_RANGE,
        // Kafka: an IOException while reading takes the log directory offline →
        // KAFKA_STORAGE_ERROR. A corrupt segment is a disk fault of the same kind.
        ReadError::Io(_) => KAFKA_STORAGE_ERROR,
        ReadError::Corrupt { .. } => KAFKA_STORAGE_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use odradek_storage::compression::CompressionError;
    use odradek_storage::error::IoFailure;

    use super::*;
    use odradek_net::error_code::ResponseError;

    fn name(code: ErrorCode) -> String {
        match ResponseError::try_from_code(code.code()) {
            None => "NONE".to_owned(),
            Some(e) => e.to_string(),
        }
    }

    fn io_failure(errno: i32) -> IoFailure {
        IoFailure::new(
            "pwritev",
            "/data/t-0/00000000000000000000.log",
            io::Error::from_raw_os_error(errno),
        )
    }

    #[test]
    fn batch_errors() {
        let cases: &[(BatchError, &str)] = &[
            (BatchError::CrcMismatch { expected: 1, computed: 2 }, "CorruptMessage"),
            (BatchError::BadLength { length: 3 }, "CorruptMessage"),
            (BatchError::Truncated { needed: 61, available: 12 }, "CorruptMessage"),
            (BatchError::BadMagic { found: 3 }, "CorruptMessage"),
            (BatchError::BadMagic { found: -1 }, "CorruptMessage"),
            (BatchError::BadMagic { found: 0 }, "InvalidRecord"),
            (BatchError::BadMagic { found: 1 }, "InvalidRecord"),
            (BatchError::BadRecordCount { count: 0, last_offset_delta: 0 }, "InvalidRecord"),
            (BatchError::InvalidRecords { reason: "bad varint".into() }, "InvalidRecord"),
            (BatchError::Empty, "InvalidRecord"),
            (BatchError::Compression(CompressionError::UnknownCodec { id: 5 }), "InvalidRecord"),
            (
                BatchError::Compression(CompressionError::Corrupt {
                    codec: "zstd",
                    reason: "bad frame".into(),
                }),
                "InvalidRecord",
            ),
            (BatchError::TooLarge { size: 2_000_000, max: 1_048_588 }, "MessageTooLarge"),
        ];
        for (error, expected) in cases {
            assert_eq!(name(from_batch_error(error)), *expected, "{error:?}");
            let append = AppendError::InvalidBatch(error.clone());
            assert_eq!(from_append_error(&append), from_batch_error(error), "{append:?}");
        }
    }

    #[test]
    fn append_errors() {
        let cases: &[(AppendError, &str)] = &[
            (AppendError::Io(io_failure(5)), "KafkaStorageError"),
            (AppendError::Io(io_failure(28)), "KafkaStorageError"),
            (AppendError::Fenced { reason: "fdatasync failed".into() }, "KafkaStorageError"),
            (AppendError::TooManySegments { max: 10_000 }, "KafkaStorageError"),
            (AppendError::Closed, "NotLeaderOrFollower"),
            (AppendError::OffsetMismatch { expected: 5, found: 7 }, "UnknownServerError"),
        ];
        for (error, expected) in cases {
            assert_eq!(name(from_append_error(error)), *expected, "{error:?}");
        }
        assert!(io_failure(28).is_disk_full(), "the ENOSPC case above is a full disk");
    }

    #[test]
    fn coordinator_append_errors() {
        use odradek_storage::LogError;
        let cases: Vec<(AppendFailure, &str)> = vec![
            (AppendFailure::Log(AppendError::Io(io_failure(28))), "NotCoordinator"),
            (AppendFailure::Log(AppendError::Fenced { reason: "x".into() }), "NotCoordinator"),
            (AppendFailure::Sync(LogError::Io(io_failure(5))), "NotCoordinator"),
            (AppendFailure::NotLeader, "NotCoordinator"),
            (AppendFailure::NotEnoughReplicas { isr: 1, min: 2 }, "NotEnoughReplicas"),
            (
                AppendFailure::Log(AppendError::InvalidBatch(BatchError::TooLarge {
                    size: 2,
                    max: 1,
                })),
                "MessageTooLarge",
            ),
        ];
        for (failure, expected) in &cases {
            assert_eq!(name(coordinator_append_failure(failure)), *expected, "{failure:?}");
        }
    }

    #[test]
    fn read_errors() {
        let cases: &[(ReadError, &str)] = &[
            (
                ReadError::OffsetOutOfRange { requested: 7, log_start: 10, log_end: 20 },
                "OffsetOutOfRange",
            ),
            (ReadError::Io(io_failure(5)), "KafkaStorageError"),
            (
                ReadError::Corrupt {
                    path: "/d/t-0/0.log".into(),
                    position: 4096,
                    reason: "crc".into(),
                },
                "KafkaStorageError",
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(name(from_read_error(error)), *expected, "{error:?}");
        }
    }
}
