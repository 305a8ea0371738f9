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

/// A Kafka error code, as a response carries it (`i16` on the wire): the node's handlers and
/// rooms pass these, never bare integers, and turn them into the wire's `i16` only when they
/// fill in a response ([`ErrorCode::code`], or `i16::from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ErrorCode(i16);

impl ErrorCode {
    /// The code Kafka numbers `code` (any `i16`, known to this table or not).
    pub const fn new(code: i16) -> Self {
        Self(code)
    }

    /// The number on the wire.
    pub const fn code(self) -> i16 {
        self.0
    }

    /// Whether this is `NONE`.
    pub const fn is_none(self) -> bool {
        self.0 == 0
    }

    /// Whether a client retries a request that got this code (Kafka's `RetriableException`).
    pub fn is_retriable(self) -> bool {
        ResponseError::try_from_code(self.0).is_some_and(|e| e.is_retriable())
    }
}

impl From<ErrorCode> for i16 {
    fn from(code: ErrorCode) -> i16 {
        code.0
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match ResponseError::try_from_code(self.0) {
            None => write!(f, "NONE"),
            Some(e) => write!(f, "{e} ({})", self.0),
        }
    }
}

/// No error.
pub const NONE: ErrorCode = ErrorCode(0);
/// An unexpected server error (Kafka's answer to an exception it does not map).
pub const UNKNOWN_SERVER_ERROR: ErrorCode = ErrorCode(ResponseError::UnknownServerError.code());
/// The requested offset is outside the log.
pub const OFFSET_OUT_OF_RANGE: ErrorCode = ErrorCode(ResponseError::OffsetOutOfRange.code());
/// A batch failed its CRC or its framing (retriable: the bytes may have been damaged in flight).
pub const CORRUPT_MESSAGE: ErrorCode = ErrorCode(ResponseError::CorruptMessage.code());
/// This broker does not host the topic or partition.
pub const UNKNOWN_TOPIC_OR_PARTITION: ErrorCode =
    ErrorCode(ResponseError::UnknownTopicOrPartition.code());
/// This broker is not the leader (retriable: the client refreshes its metadata).
pub const NOT_LEADER_OR_FOLLOWER: ErrorCode = ErrorCode(ResponseError::NotLeaderOrFollower.code());
/// The broker is not available (shutting down).
pub const BROKER_NOT_AVAILABLE: ErrorCode = ErrorCode(ResponseError::BrokerNotAvailable.code());
/// No active controller could take the request (retriable: the client retries).
pub const NOT_CONTROLLER: ErrorCode = ErrorCode(ResponseError::NotController.code());
/// UnregisterBroker of an id no broker registered.
pub const BROKER_ID_NOT_REGISTERED: ErrorCode =
    ErrorCode(ResponseError::BrokerIdNotRegistered.code());
/// The request timed out.
pub const REQUEST_TIMED_OUT: ErrorCode = ErrorCode(ResponseError::RequestTimedOut.code());
/// A batch is larger than `max.message.bytes`.
pub const MESSAGE_TOO_LARGE: ErrorCode = ErrorCode(ResponseError::MessageTooLarge.code());
/// The server disconnected before a response was received.
pub const NETWORK_EXCEPTION: ErrorCode = ErrorCode(ResponseError::NetworkException.code());
/// The group coordinator is not available.
pub const COORDINATOR_NOT_AVAILABLE: ErrorCode =
    ErrorCode(ResponseError::CoordinatorNotAvailable.code());
/// This broker is not the group's coordinator.
pub const NOT_COORDINATOR: ErrorCode = ErrorCode(ResponseError::NotCoordinator.code());
/// The topic name is invalid.
pub const INVALID_TOPIC_EXCEPTION: ErrorCode =
    ErrorCode(ResponseError::InvalidTopicException.code());
/// A record set is larger than the segment size.
pub const RECORD_LIST_TOO_LARGE: ErrorCode = ErrorCode(ResponseError::RecordListTooLarge.code());
/// `acks` is not -1, 0 or 1.
pub const INVALID_REQUIRED_ACKS: ErrorCode = ErrorCode(ResponseError::InvalidRequiredAcks.code());
/// The API version is not supported.
pub const UNSUPPORTED_VERSION: ErrorCode = ErrorCode(ResponseError::UnsupportedVersion.code());
/// The topic already exists.
pub const TOPIC_ALREADY_EXISTS: ErrorCode = ErrorCode(ResponseError::TopicAlreadyExists.code());
/// The number of partitions is invalid.
pub const INVALID_PARTITIONS: ErrorCode = ErrorCode(ResponseError::InvalidPartitions.code());
/// The replication factor is invalid.
pub const INVALID_REPLICATION_FACTOR: ErrorCode =
    ErrorCode(ResponseError::InvalidReplicationFactor.code());
/// The request is malformed.
pub const INVALID_REQUEST: ErrorCode = ErrorCode(ResponseError::InvalidRequest.code());
/// The message format does not support the request.
pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: ErrorCode =
    ErrorCode(ResponseError::UnsupportedForMessageFormat.code());
/// The request violates a configured policy.
pub const POLICY_VIOLATION: ErrorCode = ErrorCode(ResponseError::PolicyViolation.code());
/// A disk error (retriable: Kafka marks the log directory offline and the client retries).
pub const KAFKA_STORAGE_ERROR: ErrorCode = ErrorCode(ResponseError::KafkaStorageError.code());
/// A batch's codec is not allowed at this request version (zstd before Produce v7).
pub const UNSUPPORTED_COMPRESSION_TYPE: ErrorCode =
    ErrorCode(ResponseError::UnsupportedCompressionType.code());
/// A batch or record failed validation in a way resending cannot fix (not retriable).
pub const INVALID_RECORD: ErrorCode = ErrorCode(ResponseError::InvalidRecord.code());
/// No topic has this id (Fetch v13+, Metadata by id).
pub const UNKNOWN_TOPIC_ID: ErrorCode = ErrorCode(ResponseError::UnknownTopicId.code());
/// A topic config key or value the broker does not accept.
pub const INVALID_CONFIG: ErrorCode = ErrorCode(ResponseError::InvalidConfig.code());
/// The fetch session named by the client does not exist (here: the broker keeps none).
pub const FETCH_SESSION_ID_NOT_FOUND: ErrorCode =
    ErrorCode(ResponseError::FetchSessionIdNotFound.code());
/// The fetch session epoch is not the one the broker expects.
pub const INVALID_FETCH_SESSION_EPOCH: ErrorCode =
    ErrorCode(ResponseError::InvalidFetchSessionEpoch.code());
/// A partition that exists is not ready to serve yet (retriable).
pub const LEADER_NOT_AVAILABLE: ErrorCode = ErrorCode(ResponseError::LeaderNotAvailable.code());
/// The transactional id has no state at its coordinator (DescribeTransactions, transactional APIs).
pub const TRANSACTIONAL_ID_NOT_FOUND: ErrorCode =
    ErrorCode(ResponseError::TransactionalIdNotFound.code());
/// A replica assignment names a broker that does not exist.
pub const INVALID_REPLICA_ASSIGNMENT: ErrorCode =
    ErrorCode(ResponseError::InvalidReplicaAssignment.code());
/// The leader epoch in a request is newer than the broker's (retriable).
pub const UNKNOWN_LEADER_EPOCH: ErrorCode = ErrorCode(ResponseError::UnknownLeaderEpoch.code());
/// The leader epoch in a request is older than the broker's.
pub const FENCED_LEADER_EPOCH: ErrorCode = ErrorCode(ResponseError::FencedLeaderEpoch.code());
/// An idempotent batch's first sequence neither follows the last appended one nor (new epoch) is 0.
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: ErrorCode =
    ErrorCode(ResponseError::OutOfOrderSequenceNumber.code());
/// A batch was appended already (clients take it as success; Kafka 4.0 answers NONE instead).
pub const DUPLICATE_SEQUENCE_NUMBER: ErrorCode =
    ErrorCode(ResponseError::DuplicateSequenceNumber.code());
/// A producer epoch older than the partition's last; also PRODUCER_FENCED for InitProducerId < v4.
pub const INVALID_PRODUCER_EPOCH: ErrorCode = ErrorCode(ResponseError::InvalidProducerEpoch.code());
/// A producer id is not the one assigned to the request's transactional id (transactional APIs).
pub const INVALID_PRODUCER_ID_MAPPING: ErrorCode =
    ErrorCode(ResponseError::InvalidProducerIdMapping.code());
/// A transactional InitProducerId's timeout is not in 1..=`transaction.max.timeout.ms`.
pub const INVALID_TRANSACTION_TIMEOUT: ErrorCode =
    ErrorCode(ResponseError::InvalidTransactionTimeout.code());
/// The broker has no state for a batch's producer id (since KIP-360 Kafka accepts it instead).
pub const UNKNOWN_PRODUCER_ID: ErrorCode = ErrorCode(ResponseError::UnknownProducerId.code());
/// A newer producer with the same transactional id exists (InitProducerId v4+, transactions).
pub const PRODUCER_FENCED: ErrorCode = ErrorCode(ResponseError::ProducerFenced.code());
/// The transaction coordinator is loading its state partition (retriable: the client retries).
pub const COORDINATOR_LOAD_IN_PROGRESS: ErrorCode =
    ErrorCode(ResponseError::CoordinatorLoadInProgress.code());
/// A transactional request that the transaction's state does not allow (EndTxn with none open).
pub const INVALID_TXN_STATE: ErrorCode = ErrorCode(ResponseError::InvalidTxnState.code());
/// The transaction is still completing a previous commit or abort (the client retries it).
pub const CONCURRENT_TRANSACTIONS: ErrorCode =
    ErrorCode(ResponseError::ConcurrentTransactions.code());
/// WriteTxnMarkers from a coordinator whose epoch is older than the partition has seen.
pub const TRANSACTION_COORDINATOR_FENCED: ErrorCode =
    ErrorCode(ResponseError::TransactionCoordinatorFenced.code());
/// The transaction failed and must be aborted; only from the versions that allow it (KIP-890).
pub const TRANSACTION_ABORTABLE: ErrorCode = ErrorCode(ResponseError::TransactionAbortable.code());
/// Batched requests: not tried because another entry of the batch failed (all or nothing).
pub const OPERATION_NOT_ATTEMPTED: ErrorCode =
    ErrorCode(ResponseError::OperationNotAttempted.code());
/// OffsetFetch `require_stable`: a transactional commit is still pending (retriable, KIP-447).
pub const UNSTABLE_OFFSET_COMMIT: ErrorCode = ErrorCode(ResponseError::UnstableOffsetCommit.code());
/// A commit's metadata is longer than `offset.metadata.max.bytes`.
pub const OFFSET_METADATA_TOO_LARGE: ErrorCode =
    ErrorCode(ResponseError::OffsetMetadataTooLarge.code());
/// A commit or heartbeat names a group generation the coordinator does not have.
pub const ILLEGAL_GENERATION: ErrorCode = ErrorCode(ResponseError::IllegalGeneration.code());
/// The group id is empty or otherwise not allowed.
pub const INVALID_GROUP_ID: ErrorCode = ErrorCode(ResponseError::InvalidGroupId.code());
/// DeleteGroups of a group that still has members.
pub const NON_EMPTY_GROUP: ErrorCode = ErrorCode(ResponseError::NonEmptyGroup.code());
/// The group has no members and no committed offsets.
pub const GROUP_ID_NOT_FOUND: ErrorCode = ErrorCode(ResponseError::GroupIdNotFound.code());
/// A JoinGroup's protocols share none with the group's.
pub const INCONSISTENT_GROUP_PROTOCOL: ErrorCode =
    ErrorCode(ResponseError::InconsistentGroupProtocol.code());
/// The member id is not one of the group's.
pub const UNKNOWN_MEMBER_ID: ErrorCode = ErrorCode(ResponseError::UnknownMemberId.code());
/// The session timeout is outside what the broker allows.
pub const INVALID_SESSION_TIMEOUT: ErrorCode =
    ErrorCode(ResponseError::InvalidSessionTimeout.code());
/// The group is rebalancing: rejoin.
pub const REBALANCE_IN_PROGRESS: ErrorCode = ErrorCode(ResponseError::RebalanceInProgress.code());
/// A first JoinGroup (v4+) gets its member id with this, and joins again with it.
pub const MEMBER_ID_REQUIRED: ErrorCode = ErrorCode(ResponseError::MemberIdRequired.code());
/// A static member's instance id is now held by another member id.
pub const FENCED_INSTANCE_ID: ErrorCode = ErrorCode(ResponseError::FencedInstanceId.code());

/// acks=all refused before appending: the ISR is smaller than `min.insync.replicas`.
pub const NOT_ENOUGH_REPLICAS: ErrorCode = ErrorCode(ResponseError::NotEnoughReplicas.code());
/// acks=all written, but the ISR shrank below `min.insync.replicas` while it waited.
pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: ErrorCode =
    ErrorCode(ResponseError::NotEnoughReplicasAfterAppend.code());
/// ElectLeaders: the preferred replica is not live and in sync.
pub const PREFERRED_LEADER_NOT_AVAILABLE: ErrorCode =
    ErrorCode(ResponseError::PreferredLeaderNotAvailable.code());
/// ElectLeaders (unclean): no live replica to elect.
pub const ELIGIBLE_LEADERS_NOT_AVAILABLE: ErrorCode =
    ErrorCode(ResponseError::EligibleLeadersNotAvailable.code());
/// ElectLeaders: the partition already has the leader asked for.
pub const ELECTION_NOT_NEEDED: ErrorCode = ErrorCode(ResponseError::ElectionNotNeeded.code());
/// AlterPartitionReassignments: cancelling where nothing is under way.
pub const NO_REASSIGNMENT_IN_PROGRESS: ErrorCode =
    ErrorCode(ResponseError::NoReassignmentInProgress.code());
/// AlterPartition: the partition record changed meanwhile (stale partition epoch).
pub const INVALID_UPDATE_VERSION: ErrorCode = ErrorCode(ResponseError::InvalidUpdateVersion.code());
/// A broker's request carries a registration epoch that is no longer its current one.
pub const STALE_BROKER_EPOCH: ErrorCode = ErrorCode(ResponseError::StaleBrokerEpoch.code());
/// A request only brokers may make (a follower's Fetch) from somewhere else.
pub const CLUSTER_AUTHORIZATION_FAILED: ErrorCode =
    ErrorCode(ResponseError::ClusterAuthorizationFailed.code());
/// AlterPartition: a replica added to the ISR is fenced or not a replica.
pub const INELIGIBLE_REPLICA: ErrorCode = ErrorCode(ResponseError::IneligibleReplica.code());
/// Security (KIP-43, KIP-140, KIP-554).
pub const TOPIC_AUTHORIZATION_FAILED: ErrorCode =
    ErrorCode(ResponseError::TopicAuthorizationFailed.code());
pub const GROUP_AUTHORIZATION_FAILED: ErrorCode =
    ErrorCode(ResponseError::GroupAuthorizationFailed.code());
/// The principal may not use (Write) or see (Describe) the transactional id.
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: ErrorCode =
    ErrorCode(ResponseError::TransactionalIdAuthorizationFailed.code());
pub const UNSUPPORTED_SASL_MECHANISM: ErrorCode =
    ErrorCode(ResponseError::UnsupportedSaslMechanism.code());
pub const ILLEGAL_SASL_STATE: ErrorCode = ErrorCode(ResponseError::IllegalSaslState.code());
pub const SASL_AUTHENTICATION_FAILED: ErrorCode =
    ErrorCode(ResponseError::SaslAuthenticationFailed.code());
pub const SECURITY_DISABLED: ErrorCode = ErrorCode(ResponseError::SecurityDisabled.code());
pub const RESOURCE_NOT_FOUND: ErrorCode = ErrorCode(ResponseError::ResourceNotFound.code());
pub const DUPLICATE_RESOURCE: ErrorCode = ErrorCode(ResponseError::DuplicateResource.code());
pub const UNACCEPTABLE_CREDENTIAL: ErrorCode =
    ErrorCode(ResponseError::UnacceptableCredential.code());

// Kafka's numbers (`Errors.java`); a kafka-protocol release that changed one would be a bug.
const _: () = assert!(UNKNOWN_SERVER_ERROR.code() == -1);
const _: () = assert!(NOT_ENOUGH_REPLICAS.code() == 19);
const _: () = assert!(STALE_BROKER_EPOCH.code() == 77);
const _: () = assert!(CLUSTER_AUTHORIZATION_FAILED.code() == 31);
const _: () = assert!(NOT_ENOUGH_REPLICAS_AFTER_APPEND.code() == 20);
const _: () = assert!(PREFERRED_LEADER_NOT_AVAILABLE.code() == 80);
const _: () = assert!(ELIGIBLE_LEADERS_NOT_AVAILABLE.code() == 83);
const _: () = assert!(ELECTION_NOT_NEEDED.code() == 84);
const _: () = assert!(NO_REASSIGNMENT_IN_PROGRESS.code() == 85);
const _: () = assert!(INVALID_UPDATE_VERSION.code() == 95);
const _: () = assert!(INELIGIBLE_REPLICA.code() == 107);
const _: () = assert!(OFFSET_OUT_OF_RANGE.code() == 1);
const _: () = assert!(CORRUPT_MESSAGE.code() == 2);
const _: () = assert!(UNKNOWN_TOPIC_OR_PARTITION.code() == 3);
const _: () = assert!(NOT_LEADER_OR_FOLLOWER.code() == 6);
const _: () = assert!(BROKER_NOT_AVAILABLE.code() == 8);
const _: () = assert!(NOT_CONTROLLER.code() == 41);
const _: () = assert!(BROKER_ID_NOT_REGISTERED.code() == 102);
const _: () = assert!(REQUEST_TIMED_OUT.code() == 7);
const _: () = assert!(MESSAGE_TOO_LARGE.code() == 10);
const _: () = assert!(NETWORK_EXCEPTION.code() == 13);
const _: () = assert!(COORDINATOR_NOT_AVAILABLE.code() == 15);
const _: () = assert!(NOT_COORDINATOR.code() == 16);
const _: () = assert!(INVALID_TOPIC_EXCEPTION.code() == 17);
const _: () = assert!(RECORD_LIST_TOO_LARGE.code() == 18);
const _: () = assert!(INVALID_REQUIRED_ACKS.code() == 21);
const _: () = assert!(UNSUPPORTED_VERSION.code() == 35);
const _: () = assert!(TOPIC_ALREADY_EXISTS.code() == 36);
const _: () = assert!(INVALID_PARTITIONS.code() == 37);
const _: () = assert!(INVALID_REPLICATION_FACTOR.code() == 38);
const _: () = assert!(INVALID_REQUEST.code() == 42);
const _: () = assert!(UNSUPPORTED_FOR_MESSAGE_FORMAT.code() == 43);
const _: () = assert!(POLICY_VIOLATION.code() == 44);
const _: () = assert!(KAFKA_STORAGE_ERROR.code() == 56);
const _: () = assert!(UNSUPPORTED_COMPRESSION_TYPE.code() == 76);
const _: () = assert!(INVALID_RECORD.code() == 87);
const _: () = assert!(INVALID_CONFIG.code() == 40);
const _: () = assert!(OFFSET_METADATA_TOO_LARGE.code() == 12);
const _: () = assert!(ILLEGAL_GENERATION.code() == 22);
const _: () = assert!(INVALID_GROUP_ID.code() == 24);
const _: () = assert!(INCONSISTENT_GROUP_PROTOCOL.code() == 23);
const _: () = assert!(UNKNOWN_MEMBER_ID.code() == 25);
const _: () = assert!(INVALID_SESSION_TIMEOUT.code() == 26);
const _: () = assert!(REBALANCE_IN_PROGRESS.code() == 27);
const _: () = assert!(MEMBER_ID_REQUIRED.code() == 79);
const _: () = assert!(FENCED_INSTANCE_ID.code() == 82);
const _: () = assert!(NON_EMPTY_GROUP.code() == 68);
const _: () = assert!(GROUP_ID_NOT_FOUND.code() == 69);
const _: () = assert!(INVALID_REPLICA_ASSIGNMENT.code() == 39);
const _: () = assert!(UNKNOWN_LEADER_EPOCH.code() == 75);
const _: () = assert!(FENCED_LEADER_EPOCH.code() == 74);
const _: () = assert!(FETCH_SESSION_ID_NOT_FOUND.code() == 70);
const _: () = assert!(INVALID_FETCH_SESSION_EPOCH.code() == 71);
const _: () = assert!(LEADER_NOT_AVAILABLE.code() == 5);
const _: () = assert!(TRANSACTIONAL_ID_NOT_FOUND.code() == 105);
const _: () = assert!(UNKNOWN_TOPIC_ID.code() == 100);
const _: () = assert!(OUT_OF_ORDER_SEQUENCE_NUMBER.code() == 45);
const _: () = assert!(DUPLICATE_SEQUENCE_NUMBER.code() == 46);
const _: () = assert!(INVALID_PRODUCER_EPOCH.code() == 47);
const _: () = assert!(INVALID_PRODUCER_ID_MAPPING.code() == 49);
const _: () = assert!(INVALID_TRANSACTION_TIMEOUT.code() == 50);
const _: () = assert!(UNKNOWN_PRODUCER_ID.code() == 59);
const _: () = assert!(PRODUCER_FENCED.code() == 90);
const _: () = assert!(COORDINATOR_LOAD_IN_PROGRESS.code() == 14);
const _: () = assert!(INVALID_TXN_STATE.code() == 48);
const _: () = assert!(CONCURRENT_TRANSACTIONS.code() == 51);
const _: () = assert!(TRANSACTION_COORDINATOR_FENCED.code() == 52);
const _: () = assert!(TRANSACTION_ABORTABLE.code() == 120);
const _: () = assert!(OPERATION_NOT_ATTEMPTED.code() == 55);
const _: () = assert!(UNSTABLE_OFFSET_COMMIT.code() == 88);
const _: () = assert!(TOPIC_AUTHORIZATION_FAILED.code() == 29);
const _: () = assert!(GROUP_AUTHORIZATION_FAILED.code() == 30);
const _: () = assert!(TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code() == 53);
const _: () = assert!(UNSUPPORTED_SASL_MECHANISM.code() == 33);
const _: () = assert!(ILLEGAL_SASL_STATE.code() == 34);
const _: () = assert!(SASL_AUTHENTICATION_FAILED.code() == 58);
const _: () = assert!(SECURITY_DISABLED.code() == 54);
const _: () = assert!(RESOURCE_NOT_FOUND.code() == 91);
const _: () = assert!(DUPLICATE_RESOURCE.code() == 92);
const _: () = assert!(UNACCEPTABLE_CREDENTIAL.code() == 93);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retriability_follows_the_cause() {
        // Faults a resend may fix are retriable; deterministic refusals are not.
        let retriable = |code: ErrorCode| code.is_retriable();
        assert!(retriable(CORRUPT_MESSAGE));
        assert!(retriable(KAFKA_STORAGE_ERROR));
        assert!(retriable(NOT_LEADER_OR_FOLLOWER));
        assert!(!retriable(INVALID_RECORD));
        assert!(!retriable(MESSAGE_TOO_LARGE));
        assert!(!retriable(OFFSET_OUT_OF_RANGE));
        // The transaction coordinator's: loading is transient; a fenced or aborted
        // transaction is not fixed by resending the same request.
        assert!(retriable(COORDINATOR_LOAD_IN_PROGRESS));
        assert!(retriable(NOT_COORDINATOR));
        assert!(retriable(UNSTABLE_OFFSET_COMMIT));
        assert!(!retriable(TRANSACTION_ABORTABLE));
        assert!(!retriable(PRODUCER_FENCED));
        assert!(!retriable(INVALID_TXN_STATE));
    }
}
