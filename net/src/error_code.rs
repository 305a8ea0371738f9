//! The Kafka error codes this broker sends. (How the storage engine's errors map onto them is
//! the node's business: `odradek_node::error`.)
//!
//! The codes come from kafka-protocol's [`ResponseError`] (re-exported), which has every code
//! Kafka defines; the constants below are the subset the broker uses, as the `i16`s the response
//! structs take. Each constant is pinned to Kafka's number at compile time.
//!
//! Retriability matters as much as the name: a Java producer retries a *retriable* code
//! (`CORRUPT_MESSAGE`, `NOT_LEADER_OR_FOLLOWER`, `KAFKA_STORAGE_ERROR`) until
//! `delivery.timeout.ms`, and fails a batch at once on a non-retriable one (`INVALID_RECORD`,
//! `MESSAGE_TOO_LARGE`); the test below pins which is which.

pub use kafka_protocol::ResponseError;

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

#[cfg(test)]
mod tests {
    use super::*;

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
