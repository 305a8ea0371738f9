//! The Kafka error codes this broker sends, and how the storage engine's errors map onto them.
//!
//! The codes come from kafka-protocol's [`ResponseError`] (re-exported), which has every code
//! Kafka defines; the constants below are the subset the broker uses, as the `i16`s the response
//! structs take. Each constant is pinned to Kafka's number at compile time.
//!
//! Contract: every code a storage error can produce is chosen here, with the Kafka behaviour it
//! follows cited, and tested. Retriability matters as much as the name: a Java producer retries
//! a *retriable* code (`CORRUPT_MESSAGE`, `NOT_LEADER_OR_FOLLOWER`, `KAFKA_STORAGE_ERROR`) until
//! `delivery.timeout.ms`, and fails a batch at once on a non-retriable one (`INVALID_RECORD`,
//! `MESSAGE_TOO_LARGE`). So a fault that resending the same bytes cannot fix is never mapped to a
//! retriable code.

pub use kafka_protocol::ResponseError;
use odradek_storage::batch::BatchError;
use odradek_storage::{AppendError, ReadError};

/// No error.
pub const NONE: i16 = 0;
/// An unexpected server error (Kafka's answer to an exception it does not map).
pub const UNKNOWN_SERVER_ERROR: i16 = ResponseError::UnknownServerError.code();
/// The requested offset is outside the log.
pub const OFFSET_OUT_OF_RANGE: i16 = ResponseError::OffsetOutOfRange.code();
/// A batch failed its CRC or its framing (retriable: the bytes may have been damaged in flight).
pub const CORRUPT_MESSAGE: i16 = ResponseError::CorruptMessage.code();
/// This broker does not host the topic or partition.
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = ResponseError::UnknownTopicOrPartition.code();
/// This broker is not the leader (retriable: the client refreshes its metadata).
pub const NOT_LEADER_OR_FOLLOWER: i16 = ResponseError::NotLeaderOrFollower.code();
/// The request timed out.
pub const REQUEST_TIMED_OUT: i16 = ResponseError::RequestTimedOut.code();
/// A batch is larger than `max.message.bytes`.
pub const MESSAGE_TOO_LARGE: i16 = ResponseError::MessageTooLarge.code();
/// The server disconnected before a response was received.
pub const NETWORK_EXCEPTION: i16 = ResponseError::NetworkException.code();
/// The group coordinator is not available.
pub const COORDINATOR_NOT_AVAILABLE: i16 = ResponseError::CoordinatorNotAvailable.code();
/// This broker is not the group's coordinator.
pub const NOT_COORDINATOR: i16 = ResponseError::NotCoordinator.code();
/// The topic name is invalid.
pub const INVALID_TOPIC_EXCEPTION: i16 = ResponseError::InvalidTopicException.code();
/// A record set is larger than the segment size.
pub const RECORD_LIST_TOO_LARGE: i16 = ResponseError::RecordListTooLarge.code();
/// `acks` is not -1, 0 or 1.
pub const INVALID_REQUIRED_ACKS: i16 = ResponseError::InvalidRequiredAcks.code();
/// The API version is not supported.
pub const UNSUPPORTED_VERSION: i16 = ResponseError::UnsupportedVersion.code();
/// The topic already exists.
pub const TOPIC_ALREADY_EXISTS: i16 = ResponseError::TopicAlreadyExists.code();
/// The number of partitions is invalid.
pub const INVALID_PARTITIONS: i16 = ResponseError::InvalidPartitions.code();
/// The replication factor is invalid.
pub const INVALID_REPLICATION_FACTOR: i16 = ResponseError::InvalidReplicationFactor.code();
/// The request is malformed.
pub const INVALID_REQUEST: i16 = ResponseError::InvalidRequest.code();
/// The message format does not support the request.
pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = ResponseError::UnsupportedForMessageFormat.code();
/// The request violates a configured policy.
pub const POLICY_VIOLATION: i16 = ResponseError::PolicyViolation.code();
/// A disk error (retriable: Kafka marks the log directory offline and the client retries).
pub const KAFKA_STORAGE_ERROR: i16 = ResponseError::KafkaStorageError.code();
/// A batch's codec is not allowed at this request version (zstd before Produce v7).
pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = ResponseError::UnsupportedCompressionType.code();
/// A batch or record failed validation in a way resending cannot fix (not retriable).
pub const INVALID_RECORD: i16 = ResponseError::InvalidRecord.code();
/// No topic has this id (Fetch v13+, Metadata by id).
pub const UNKNOWN_TOPIC_ID: i16 = ResponseError::UnknownTopicId.code();
/// A topic config key or value the broker does not accept.
pub const INVALID_CONFIG: i16 = ResponseError::InvalidConfig.code();
/// The fetch session named by the client does not exist (here: the broker keeps none).
pub const FETCH_SESSION_ID_NOT_FOUND: i16 = ResponseError::FetchSessionIdNotFound.code();
/// The fetch session epoch is not the one the broker expects.
pub const INVALID_FETCH_SESSION_EPOCH: i16 = ResponseError::InvalidFetchSessionEpoch.code();
/// A partition that exists is not ready to serve yet (retriable).
pub const LEADER_NOT_AVAILABLE: i16 = ResponseError::LeaderNotAvailable.code();
/// A transactional batch arrived, but this broker has no transaction coordinator.
pub const TRANSACTIONAL_ID_NOT_FOUND: i16 = ResponseError::TransactionalIdNotFound.code();
/// A replica assignment names a broker that does not exist.
pub const INVALID_REPLICA_ASSIGNMENT: i16 = ResponseError::InvalidReplicaAssignment.code();
/// The leader epoch in a request is newer than the broker's (retriable).
pub const UNKNOWN_LEADER_EPOCH: i16 = ResponseError::UnknownLeaderEpoch.code();
/// The leader epoch in a request is older than the broker's.
pub const FENCED_LEADER_EPOCH: i16 = ResponseError::FencedLeaderEpoch.code();
/// An idempotent batch's first sequence neither follows the last appended one nor (new epoch) is 0.
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = ResponseError::OutOfOrderSequenceNumber.code();
/// A batch was appended already (clients take it as success; Kafka 4.0 answers NONE instead).
pub const DUPLICATE_SEQUENCE_NUMBER: i16 = ResponseError::DuplicateSequenceNumber.code();
/// A producer epoch older than the partition's last; also PRODUCER_FENCED for InitProducerId < v4.
pub const INVALID_PRODUCER_EPOCH: i16 = ResponseError::InvalidProducerEpoch.code();
/// A producer id is not the one assigned to the request's transactional id (transactional APIs).
pub const INVALID_PRODUCER_ID_MAPPING: i16 = ResponseError::InvalidProducerIdMapping.code();
/// A transactional InitProducerId's timeout is not in 1..=`transaction.max.timeout.ms`.
pub const INVALID_TRANSACTION_TIMEOUT: i16 = ResponseError::InvalidTransactionTimeout.code();
/// The broker has no state for a batch's producer id (since KIP-360 Kafka accepts it instead).
pub const UNKNOWN_PRODUCER_ID: i16 = ResponseError::UnknownProducerId.code();
/// A newer producer with the same transactional id exists (InitProducerId v4+, transactions).
pub const PRODUCER_FENCED: i16 = ResponseError::ProducerFenced.code();
/// A commit's metadata is longer than `offset.metadata.max.bytes`.
pub const OFFSET_METADATA_TOO_LARGE: i16 = ResponseError::OffsetMetadataTooLarge.code();
/// A commit or heartbeat names a group generation the coordinator does not have.
pub const ILLEGAL_GENERATION: i16 = ResponseError::IllegalGeneration.code();
/// The group id is empty or otherwise not allowed.
pub const INVALID_GROUP_ID: i16 = ResponseError::InvalidGroupId.code();
/// DeleteGroups of a group that still has members.
pub const NON_EMPTY_GROUP: i16 = ResponseError::NonEmptyGroup.code();
/// The group has no members and no committed offsets.
pub const GROUP_ID_NOT_FOUND: i16 = ResponseError::GroupIdNotFound.code();
/// A JoinGroup's protocols share none with the group's.
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = ResponseError::InconsistentGroupProtocol.code();
/// The member id is not one of the group's.
pub const UNKNOWN_MEMBER_ID: i16 = ResponseError::UnknownMemberId.code();
/// The session timeout is outside what the broker allows.
pub const INVALID_SESSION_TIMEOUT: i16 = ResponseError::InvalidSessionTimeout.code();
/// The group is rebalancing: rejoin.
pub const REBALANCE_IN_PROGRESS: i16 = ResponseError::RebalanceInProgress.code();
/// A first JoinGroup (v4+) gets its member id with this, and joins again with it.
pub const MEMBER_ID_REQUIRED: i16 = ResponseError::MemberIdRequired.code();
/// A static member's instance id is now held by another member id.
pub const FENCED_INSTANCE_ID: i16 = ResponseError::FencedInstanceId.code();

// Kafka's numbers (`Errors.java`); a kafka-protocol release that changed one would be a bug.
const _: () = assert!(UNKNOWN_SERVER_ERROR == -1);
const _: () = assert!(OFFSET_OUT_OF_RANGE == 1);
const _: () = assert!(CORRUPT_MESSAGE == 2);
const _: () = assert!(UNKNOWN_TOPIC_OR_PARTITION == 3);
const _: () = assert!(NOT_LEADER_OR_FOLLOWER == 6);
const _: () = assert!(REQUEST_TIMED_OUT == 7);
const _: () = assert!(MESSAGE_TOO_LARGE == 10);
const _: () = assert!(NETWORK_EXCEPTION == 13);
const _: () = assert!(COORDINATOR_NOT_AVAILABLE == 15);
const _: () = assert!(NOT_COORDINATOR == 16);
const _: () = assert!(INVALID_TOPIC_EXCEPTION == 17);
const _: () = assert!(RECORD_LIST_TOO_LARGE == 18);
const _: () = assert!(INVALID_REQUIRED_ACKS == 21);
const _: () = assert!(UNSUPPORTED_VERSION == 35);
const _: () = assert!(TOPIC_ALREADY_EXISTS == 36);
const _: () = assert!(INVALID_PARTITIONS == 37);
const _: () = assert!(INVALID_REPLICATION_FACTOR == 38);
const _: () = assert!(INVALID_REQUEST == 42);
const _: () = assert!(UNSUPPORTED_FOR_MESSAGE_FORMAT == 43);
const _: () = assert!(POLICY_VIOLATION == 44);
const _: () = assert!(KAFKA_STORAGE_ERROR == 56);
const _: () = assert!(UNSUPPORTED_COMPRESSION_TYPE == 76);
const _: () = assert!(INVALID_RECORD == 87);
const _: () = assert!(INVALID_CONFIG == 40);
const _: () = assert!(OFFSET_METADATA_TOO_LARGE == 12);
const _: () = assert!(ILLEGAL_GENERATION == 22);
const _: () = assert!(INVALID_GROUP_ID == 24);
const _: () = assert!(INCONSISTENT_GROUP_PROTOCOL == 23);
const _: () = assert!(UNKNOWN_MEMBER_ID == 25);
const _: () = assert!(INVALID_SESSION_TIMEOUT == 26);
const _: () = assert!(REBALANCE_IN_PROGRESS == 27);
const _: () = assert!(MEMBER_ID_REQUIRED == 79);
const _: () = assert!(FENCED_INSTANCE_ID == 82);
const _: () = assert!(NON_EMPTY_GROUP == 68);
const _: () = assert!(GROUP_ID_NOT_FOUND == 69);
const _: () = assert!(INVALID_REPLICA_ASSIGNMENT == 39);
const _: () = assert!(UNKNOWN_LEADER_EPOCH == 75);
const _: () = assert!(FENCED_LEADER_EPOCH == 74);
const _: () = assert!(FETCH_SESSION_ID_NOT_FOUND == 70);
const _: () = assert!(INVALID_FETCH_SESSION_EPOCH == 71);
const _: () = assert!(LEADER_NOT_AVAILABLE == 5);
const _: () = assert!(TRANSACTIONAL_ID_NOT_FOUND == 105);
const _: () = assert!(UNKNOWN_TOPIC_ID == 100);
const _: () = assert!(OUT_OF_ORDER_SEQUENCE_NUMBER == 45);
const _: () = assert!(DUPLICATE_SEQUENCE_NUMBER == 46);
const _: () = assert!(INVALID_PRODUCER_EPOCH == 47);
const _: () = assert!(INVALID_PRODUCER_ID_MAPPING == 49);
const _: () = assert!(INVALID_TRANSACTION_TIMEOUT == 50);
const _: () = assert!(UNKNOWN_PRODUCER_ID == 59);
const _: () = assert!(PRODUCER_FENCED == 90);

/// The error code for a refused or failed append (a Produce partition response).
pub fn from_append_error(error: &AppendError) -> i16 {
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
pub fn from_batch_error(error: &BatchError) -> i16 {
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
pub fn from_read_error(error: &ReadError) -> i16 {
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

    fn name(code: i16) -> String {
        match ResponseError::try_from_code(code) {
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
        ];
        for (error, expected) in cases {
            assert_eq!(name(from_append_error(error)), *expected, "{error:?}");
        }
        assert!(io_failure(28).is_disk_full(), "the ENOSPC case above is a full disk");
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

    #[test]
    fn retriability_follows_the_cause() {
        // Faults a resend may fix are retriable; deterministic refusals are not.
        let retriable = |code| ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable());
        assert!(retriable(CORRUPT_MESSAGE));
        assert!(retriable(KAFKA_STORAGE_ERROR));
        assert!(retriable(NOT_LEADER_OR_FOLLOWER));
        assert!(!retriable(INVALID_RECORD));
        assert!(!retriable(MESSAGE_TOO_LARGE));
        assert!(!retriable(OFFSET_OUT_OF_RANGE));
    }
}
