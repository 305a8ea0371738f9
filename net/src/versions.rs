//! The APIs and version ranges this broker serves: one table, [`SUPPORTED`], that the decoder
//! (what is accepted), the encoder (what may be answered) and the ApiVersions response (what is
//! advertised) all read.
//!
//! Contracts:
//! - [`request::decode_request`](crate::request::decode_request) accepts exactly the
//!   `(api, version)` pairs in [`SUPPORTED`]; everything else is refused before its body is
//!   parsed.
//! - [`api_versions_response`] lists every row of [`SUPPORTED`], with one deliberate exception:
//!   Produce is advertised from v0 ([`PRODUCE_ADVERTISED_MIN`], what Kafka 4.0 does), though only
//!   v3 and above are accepted.
//! - No response built here sets a tagged field to a non-default value, so nothing optional is
//!   ever written in an ApiVersions tagged-field section (old librdkafka cannot parse one).
//!   Only NOT_LEADER_OR_FOLLOWER answers of Produce v10+ and Fetch v12+ carry tagged fields
//!   (KIP-951's leader hints), which every client speaking those versions reads.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ResponseKind};

use crate::error_code;
use crate::request::DecodeError;

/// Every API this broker serves, with the lowest and highest version it accepts (inclusive).
///
/// Why each range ends where it does (kafka-protocol 0.18 knows more versions of the first five
/// and of DescribeCluster; every other range is all its request decoder knows):
///
/// - **ApiVersions 0–3.** v3 (KIP-511) is the first flexible version and carries the client's
///   name and version. v4 (Kafka 3.9/4.0) only changes what a `SupportedFeatures.MinVersion` of
///   0 means; we advertise no features, so it would add nothing.
/// - **Metadata 0–12.** v10 adds topic ids (which Fetch v13+ uses), v12 the last request
///   change. v13 (KIP-1102) adds a top-level error code for `REBOOTSTRAP_REQUIRED`, which a
///   single node never needs to send. Note v0: an *empty* topic list means "all topics" there;
///   from v1 that is a *null* list.
/// - **Produce 3–11.** v3 is the first version that carries only RecordBatch v2 (magic 2), the
///   only format the log stores; Kafka 4.0 dropped v0–v2 as well (KIP-896). v7 allows zstd, v8
///   adds `record_errors`/`error_message`, v9 is flexible. v10 (KIP-951) adds the tagged
///   `current_leader`/`node_endpoints`, sent only with `NOT_LEADER_OR_FOLLOWER` and left at
///   their defaults (so not written) here. v11 only allows the new `TRANSACTION_ABORTABLE` error.
///   v12 changes what a *transactional* produce means (KIP-890 part 2: the broker adds the
///   partition to the transaction itself), which needs a transaction coordinator, and v13
///   (KIP-516) names topics by id only. Both wait for those features.
/// - **Fetch 4–16.** v4 is the first with RecordBatch v2 and isolation level (Kafka 4.0's floor
///   too). v7 adds fetch sessions (answering `session_id` 0 keeps a client on full fetches),
///   v12 is flexible, v13 replaces topic names by topic ids (the node must keep ids, see
///   Metadata v10), v15 moves the replica id into a tagged `ReplicaState`, v16 (KIP-951) adds
///   tagged `node_endpoints`. v17 (KIP-853) and v18 add follower-only fields (replica directory
///   id, follower high watermark) that mean nothing without replication.
/// - **ListOffsets 1–8.** v1 is Kafka 4.0's floor (v0 returned offset lists). The node answers
///   the special timestamps -1 (latest), -2 (earliest), -3 (v7, KIP-734: the first record with
///   the largest timestamp) and -4 (v8, KIP-405: earliest *local*, the same as earliest without
///   tiered storage). v9 (KIP-1005, -5 = last tiered offset) and v10 (a timeout for remote
///   storage) are about tiered storage, which this broker does not have.
/// - **CreateTopics 2–7** and **DeleteTopics 1–6**: every version kafka-protocol knows (Kafka
///   4.0's floors). CreateTopics v5 returns the topic's configs, v7 its topic id; DeleteTopics v6
///   names topics by name or id.
/// - **DescribeConfigs 1–4**: every version kafka-protocol knows. v0 was removed in Kafka 4.0
///   (KIP-896), and kafka-protocol 0.18 no longer decodes it. v1 adds `include_synonyms` (and
///   each entry's `synonyms` in the response), v2 only changes throttling (KIP-219), v3 adds
///   `include_documentation` (and `config_type`/`documentation`, KIP-569), v4 is flexible.
///   `configuration_keys` is a nullable array: null asks for every key.
/// - **IncrementalAlterConfigs 0–1**: every version (KIP-339); v1 is flexible. A config's
///   `value` is a nullable string (null for DELETE).
/// - **AlterConfigs 0–2**: every version kafka-protocol knows, and what Kafka 4.0 serves. The
///   older whole-set form (KIP-133): the configs given replace the resource's set ones, keys not
///   given return to their defaults. Several admin clients still send it (kafka-python when told
///   `incremental=False`, or against brokers without IncrementalAlterConfigs). v1 only changes
///   throttling (KIP-219), v2 is flexible. A config's `value` is a nullable string.
/// - **CreatePartitions 0–3**: every version (KIP-195). v1 only changes throttling (KIP-219),
///   v2 is flexible, v3 only allows `THROTTLING_QUOTA_EXCEEDED` (KIP-599). `assignments` is a
///   nullable array: null lets the broker place the new partitions.
/// - **DeleteRecords 0–2**: every version (KIP-107). v1 only changes throttling (KIP-219), v2
///   is flexible.
/// - **OffsetForLeaderEpoch 2–4**: every version kafka-protocol knows. v2 is Kafka 4.0's floor
///   (KIP-896: v0–v1 lack `current_leader_epoch`, KIP-320) and kafka-protocol 0.18 does not
///   decode below it. v3 adds `replica_id` (KIP-392; -1 from consumers), v4 is flexible.
/// - **DescribeCluster 0–1.** Flexible from v0 (KIP-700). v1 (KIP-919) adds `endpoint_type`,
///   asking for broker or controller endpoints, in request and response. v2 (KIP-1073) adds
///   `include_fenced_brokers` and each broker's `is_fenced`; left out until a handler decides
///   what fencing means here (a single node is never fenced, so likely only `false`).
/// - **FindCoordinator 0–6**: every version kafka-protocol knows, and what Kafka 4.0 serves:
///   KIP-896 first listed v0 for removal, but as amended keeps it (KAFKA-18270 dropped its
///   deprecated tag). librdkafka before 2.11.1 (confluentinc/librdkafka#5130; kcat 1.7.1 with
///   2.0.2, for one) enables lz4 only if the broker advertises FindCoordinator *v0* ("Feature
///   LZ4: FindCoordinator (0..0) NOT supported by broker"), besides Produce v0 (see
///   [`PRODUCE_ADVERTISED_MIN`]). Unlike Produce v0, a v0 request decodes with kafka-protocol and
///   is answered like v1 (its `key_type` is 0, a group; the response drops `throttle_time_ms` and
///   `error_message`), so v0 is accepted, not only advertised. v1 adds `key_type` (0 group, 1
///   transaction) and the response's `throttle_time_ms`/`error_message`, v2 only changes
///   throttling (KIP-219), v3 is flexible. v4 (KIP-699) replaces `key` by the batch
///   `coordinator_keys`, and the response's single coordinator by a `coordinators` array: a v4+
///   response must leave the top-level `error_code`/`node_id`/`host`/`port` at their defaults,
///   and a v0–v3 one `coordinators` empty, or it fails to encode. v5 only allows
///   `TRANSACTION_ABORTABLE` (KIP-890). v6 allows `key_type` 2, a share group (KIP-932, keyed
///   `groupId:topicId:partition`), in the same layout; a broker without share groups answers such
///   a key with an error (Kafka: `COORDINATOR_NOT_AVAILABLE`).
/// - **InitProducerId 0–5**: every version kafka-protocol's request decoder knows, and what
///   Kafka 4.0 advertises (KIP-896 removed none). An idempotent producer without transactions
///   (what Java producers are by default since 3.0) sends a null `transactional_id`; Kafka then
///   ignores `transaction_timeout_ms` (the Java producer sends `i32::MAX`) and any
///   `producer_id`/`producer_epoch`, and answers a new producer id with epoch 0, at every
///   version. v1 only changes throttling (KIP-219), v2 is flexible, v3 (KIP-360) adds the
///   request's `producer_id`/`producer_epoch` (both -1, or both set: Kafka answers
///   `INVALID_REQUEST` to one without the other) so a transactional producer can keep its id
///   after an error, v4 only allows `PRODUCER_FENCED` (Kafka sends `INVALID_PRODUCER_EPOCH` in
///   its place below v4), v5 only allows `TRANSACTION_ABORTABLE` (KIP-890). v3–v5 share one
///   layout, and the response's is the same in v0–v5. v6 (KIP-939, two-phase commit) adds
///   `enable_2pc`/`keep_prepared_txn` to the request and `ongoing_txn_producer_id`/`_epoch` to
///   the response: it is `latestVersionUnstable` in Kafka's schema (apache/kafka#18316), so
///   Kafka 4.0 does not advertise it, kafka-protocol 0.18 does not decode it (its response type
///   and `ApiKey::valid_versions` reach v6, its request type stops at v5), and it is about
///   transactions, which need a transaction coordinator.
///
/// The classic consumer-group APIs follow: what a group coordinator answers to consumers using
/// `group.protocol=classic` (every client but a KIP-848 one), and to admin clients. KIP-848's new
/// protocol is a separate API (ConsumerGroupHeartbeat, key 68) and is not served; the versions
/// below that KIP-848 added to these APIs are included only where a classic group answers them.
/// Each range is every version kafka-protocol 0.18's *request* decoder knows, intersected with
/// what Kafka 4.0 serves. librdkafka before 2.11 enables consumer groups
/// (`BROKER_BALANCED_CONSUMER`) only if the advertised ranges meet FindCoordinator 0..0,
/// OffsetCommit 1..2, OffsetFetch 1..1, JoinGroup 0..0, SyncGroup 0..0, Heartbeat 0..0 and
/// LeaveGroup 0..0 (confluentinc/librdkafka#5130); every range below does.
///
/// - **OffsetCommit 2–9.** Kafka 4.0 removed v0 (ZooKeeper-stored offsets) and v1 (KIP-896);
///   kafka-protocol does not decode them either. v2 carries `retention_time_ms` (v2–v4 only; v5
///   drops it, retention is the broker's `offsets.retention.minutes`), v3 adds the response's
///   `throttle_time_ms`, v4 only changes throttling (KIP-219), v6 adds each partition's
///   `committed_leader_epoch` (KIP-320), v7 `group_instance_id` (KIP-345), v8 is flexible. v9
///   has v8's layout: it is the first a KIP-848 consumer may send, and renames the generation to
///   `generation_id_or_member_epoch`; for a classic group it is the generation as before
///   (Kafka 4.0 answers classic groups at v9, and its classic Java consumer sends v9), and its
///   only new answers are `GROUP_ID_NOT_FOUND` for a group that does not exist and
///   `STALE_MEMBER_EPOCH` (new-protocol groups only). v10 (KIP-848, apache/kafka#19461) names
///   topics by id only; the node keeps topic ids, so it could answer it, but it is
///   `latestVersionUnstable` in Kafka (not in 4.0) and kafka-protocol 0.18's request type stops
///   at v9 (its response type and `ApiKey::valid_versions` reach v10), so it cannot be decoded.
/// - **OffsetFetch 1–9.** v0 (ZooKeeper-stored offsets) was removed in Kafka 4.0 (KIP-896) and
///   kafka-protocol does not decode it; v1 (the offsets topic) stays, and is the version old
///   librdkafka checks for. v2 makes a null `topics` mean "every topic" and adds a top-level
///   `error_code` (a v1 response drops it silently: Kafka puts a group-level error into every
///   partition instead), v3 the response's `throttle_time_ms`, v4 only changes throttling, v5
///   adds the response's `committed_leader_epoch`, v6 is flexible, v7 adds `require_stable`
///   (KIP-447: answer `UNSTABLE_OFFSET_COMMIT` while a transactional commit is pending). v8
///   (KIP-709) replaces `group_id`/`topics` by a `groups` batch, in
///   request and response: a v8+ response must leave the top-level `topics` empty and a v1–v7
///   one `groups` empty, or it fails to encode. v9 adds each group's `member_id`/`member_epoch`
///   (KIP-848), null and -1 from a classic consumer, and ignored by Kafka for a classic group.
///   v10 names topics by id, like OffsetCommit v10, and is excluded for the same reason.
/// - **JoinGroup 0–9**: every version kafka-protocol knows, and what Kafka 4.0.1 serves. Kafka
///   4.0.0 removed v0–v1 (KIP-896); 4.0.1 and 4.1.0 restored them (KAFKA-19444,
///   apache/kafka#20116) because librdkafka before 2.11.0 enables consumer groups and Kerberos
///   (`SASL_GSSAPI`) only if the broker advertises JoinGroup *v0* (see above), the same trap as
///   FindCoordinator v0; segmentio/kafka-go sends v1 (its #1378). v0 decodes without
///   `rebalance_timeout_ms` (-1: Kafka then uses `session_timeout_ms`). v1 adds
///   `rebalance_timeout_ms`, v2 the response's `throttle_time_ms`, v3 only changes throttling,
///   v4 (KIP-394) answers a first join with an empty `member_id` by `MEMBER_ID_REQUIRED` and an
///   assigned id, v5 adds `group_instance_id` (static membership, KIP-345), v6 is flexible, v7
///   (KIP-559) adds the response's `protocol_type` and lets its `protocol_name` be null: below
///   v7 a null `protocol_name` is refused by
///   [`encode_response`](crate::response::encode_response) (kafka-protocol would write the null,
///   which clients cannot read; Kafka sends `""`). v8 adds `reason` (KIP-800), v9 the response's
///   `skip_assignment` (KIP-814, for a static leader rejoining: it must stay false below v9 or
///   the response fails to encode).
/// - **SyncGroup 0–5**, **Heartbeat 0–4**, **LeaveGroup 0–5**: every version (none removed by
///   KIP-896). v1 adds the response's `throttle_time_ms`, v2 only changes throttling, v3 adds
///   `group_instance_id` (KIP-345), v4 is flexible. SyncGroup v5 (KIP-559) adds
///   `protocol_type`/`protocol_name` to request and response. LeaveGroup v3 replaces `member_id`
///   by a `members` batch (each a member id and/or a `group_instance_id`) and answers each
///   member, v5 adds each member's `reason` (KIP-800).
/// - **ListGroups 0–5**: every version. v1 adds `throttle_time_ms`, v2 only changes throttling,
///   v3 is flexible, v4 adds `states_filter` and each group's `group_state` (KIP-518), v5 adds
///   `types_filter` and each group's `group_type` (KIP-848): a filter a classic-only broker can
///   apply (its groups are all `classic`), so v5 is in. `group_state`/`group_type` are dropped
///   silently below v4/v5.
/// - **DescribeGroups 0–6**: every version. v1 adds `throttle_time_ms`, v2 only changes
///   throttling, v3 adds `include_authorized_operations` and each group's
///   `authorized_operations` (which must stay at its default, `i32::MIN`, below v3 or the
///   response fails to encode), v4 each member's `group_instance_id`, v5 is flexible, v6
///   (KIP-1043, Kafka 4.0) adds each group's `error_message` (null below v6, or the response
///   fails to encode) and answers an unknown group with `GROUP_ID_NOT_FOUND` instead of a `Dead`
///   group with no error.
/// - **DeleteGroups 0–2**: every version. Kafka 4.0 keeps v0 (KAFKA-18352: it was tagged
///   deprecated by mistake; Sarama sends only v0). v1 only changes throttling, v2 is flexible.
/// - **OffsetDelete 0**: the only version (KIP-496), never flexible.
/// - **UnregisterBroker 0**: the only version (KIP-631; `kafka-cluster unregister --id`), the
///   step that lets a broker whose disk was lost be replaced under its id.
/// - **ElectLeaders 0–2**: every version (KIP-183, KIP-460; `kafka-leader-election.sh`). v1
///   adds `election_type` (0 preferred, 1 unclean; v0 is always preferred) and the response's
///   top-level `error_code`, v2 is flexible. A null `topic_partitions` asks for every partition.
/// - **AlterPartitionReassignments 0** and **ListPartitionReassignments 0** (KIP-455;
///   `kafka-reassign-partitions.sh`), flexible. AlterPartitionReassignments v1 (KIP-860) adds
///   `allow_replication_factor_change`, a refusal this broker does not make yet: left out.
/// - **DescribeQuorum 0–2**: every version (KIP-595; `kafka-metadata-quorum describe
///   --status`). v1 adds each replica's last fetch and caught-up timestamps, v2 (KIP-853) the
///   replicas' directory ids, the error message and the nodes' listeners.
/// - **DescribeLogDirs 1–4** (KIP-113; `kafka-log-dirs.sh`, rpk's disk usage). v0 is gone
///   from Kafka 4.0 (KIP-896); v1 only changes throttling, v2 is flexible, v3 adds the
///   top-level `error_code`, v4 (KIP-827) each directory's `total_bytes` and `usable_bytes`.
///
/// Security (KIP-43, KIP-152, KIP-368, KIP-140, KIP-554):
///
/// - **SaslHandshake 0–1.** v0 is followed by bare SASL tokens (length-prefixed, no Kafka
///   header); v1 by SaslAuthenticate requests.
/// - **SaslAuthenticate 0–2.** v1 adds `session_lifetime_ms` (KIP-368 re-authentication), v2
///   is flexible.
/// - **CreateAcls, DescribeAcls, DeleteAcls 1–3.** v0 (no pattern type) was removed in Kafka
///   4.0 (KIP-896) and kafka-protocol 0.18 does not decode it; v1 adds `pattern_type`
///   (KIP-290: LITERAL and PREFIXED), v2 is flexible, v3 adds the USER resource type.
/// - **DescribeUserScramCredentials 0** and **AlterUserScramCredentials 0**: their only
///   versions (KIP-554).
/// - **DescribeClientQuotas 0–1** and **AlterClientQuotas 0–1** (KIP-546): v1 is flexible.
///
/// Transactions (KIP-98: the transaction coordinator's APIs, and the leader side of its
/// markers). Every range stops before KIP-890 part 2, "transaction version 2" (the coordinator
/// bumps the producer epoch at every commit or abort, and partitions join a transaction when
/// the leader first sees them), which this coordinator does not implement. In
/// AddPartitionsToTxn, AddOffsetsToTxn and EndTxn v1 only changes throttling (KIP-219), v2
/// only allows `PRODUCER_FENCED` (below v2 Kafka sends `INVALID_PRODUCER_EPOCH` in its place)
/// and v3 is flexible.
///
/// - **AddPartitionsToTxn 0–4.** Clients send v0–v3: one transaction, in the `v3_and_below_*`
///   fields, answered per topic in `results_by_topic_v3_and_below`. v4 (KIP-890 part 1) is the
///   broker-to-coordinator form only (a leader verifying a transactional Produce): a
///   `transactions` batch, each with `verify_only` (check the partitions are in the
///   transaction, do not add them), answered per transaction in `results_by_transaction` with
///   a top-level `error_code`. A v4 response must leave `results_by_topic_v3_and_below` empty
///   and a v0–v3 one `results_by_transaction` empty, or it fails to encode; the top-level
///   `error_code` is dropped silently below v4. v5 only allows `TRANSACTION_ABORTABLE`
///   (KIP-890); only brokers send it, and it is left out with transaction version 2.
/// - **AddOffsetsToTxn 0–4.** v4 has v3's layout and only allows `TRANSACTION_ABORTABLE`
///   (KIP-890 part 1), an answer the coordinator may choose to send or not: so v4 is in.
///   kafka-protocol knows nothing above v4.
/// - **EndTxn 0–4.** v4 only allows `TRANSACTION_ABORTABLE`. v5 (KIP-890 part 2) bumps the
///   epoch at every commit or abort and returns the new `producer_id`/`producer_epoch` in the
///   response (which kafka-protocol drops silently below v5).
/// - **TxnOffsetCommit 0–4.** v1 only changes throttling, v2 adds each partition's
///   `committed_leader_epoch`, v3 is flexible and adds `generation_id`/`member_id`/
///   `group_instance_id` (KIP-447: the group coordinator fences a zombie consumer's commit by
///   its generation; -1/""/null from a producer that names none), v4 only allows
///   `TRANSACTION_ABORTABLE`. v5 (KIP-890 part 2) has v4's layout, but its sender skips
///   AddOffsetsToTxn and expects the broker to add the group's offsets partition itself.
/// - **WriteTxnMarkers 1**: all kafka-protocol 0.18 knows. The coordinator asks each partition
///   leader to write COMMIT or ABORT control batches (a cluster action: only brokers send it).
///   v0 was removed in Kafka 4.0 (v1, flexible, is the baseline); v2 adds each marker's
///   `transaction_version` (transaction version 2).
/// - **DescribeTransactions 0** (KIP-664; `kafka-transactions.sh describe`): the only version,
///   flexible.
/// - **ListTransactions 0–1** (KIP-664; `kafka-transactions.sh list`), flexible. v1 (KIP-994)
///   adds `duration_filter`: only transactions running longer than it (-1, the default: all),
///   answered from each transaction's start time. v2 (KIP-1152) adds
///   `transactional_id_pattern`, a regular expression the coordinator would have to match
///   exactly as Kafka's does: not trivial, left out.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 16),
    (ApiKey::ListOffsets, 1, 8),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::UnregisterBroker, 0, 0),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 0),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
    (ApiKey::AddPartitionsToTxn, 0, 4),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 4),
    (ApiKey::TxnOffsetCommit, 0, 4),
    (ApiKey::WriteTxnMarkers, 1, 1),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
];

/// The lowest Produce version advertised in ApiVersions, below the lowest accepted one.
///
/// librdkafka before 2.11.1 (so every kcat in Debian and Ubuntu) decides whether the broker
/// supports gzip, snappy and lz4 by asking whether it supports *Produce v0*; told "3 to 11" it
/// sends every batch uncompressed ("Broker does not support compression type gzip: not compressing batch",
/// confluentinc/librdkafka#4956). Kafka 4.0 therefore advertises Produce from v0 and refuses
/// v0–v2 requests (KAFKA-18659, apache/kafka#18727); so do we. Clients pick the highest common
/// version, so none of them sends v0–v2 because of this.
pub const PRODUCE_ADVERTISED_MIN: i16 = 0;

/// The version an ApiVersions response to an ApiVersions request of an unsupported version is
/// encoded at (KIP-511): v0, the one every client can read, with response header v0.
pub const API_VERSIONS_FALLBACK_VERSION: i16 = 0;

/// The `(min, max)` versions of `api` this broker accepts, or `None` when it does not serve it.
pub fn supported(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED.iter().find(|(key, _, _)| *key == api).map(|&(_, min, max)| (min, max))
}

/// True when `version` of `api` is accepted.
pub fn is_supported(api: ApiKey, version: i16) -> bool {
    supported(api).is_some_and(|(min, max)| (min..=max).contains(&version))
}

/// The ApiVersions response to an ApiVersions request of `version`.
///
/// For a supported version: error code 0, throttle time 0 and every row of [`SUPPORTED`] (with
/// Produce from [`PRODUCE_ADVERTISED_MIN`]). For an unsupported one, the same list with
/// `UNSUPPORTED_VERSION`, so the client can retry with a version from it; that response must be
/// encoded at [`API_VERSIONS_FALLBACK_VERSION`] (see [`answer_for_decode_error`]).
///
/// Supported features, finalized features and their epoch stay at their defaults (empty, empty,
/// -1), so at v3 the tagged-field section is empty: librdkafka before 2.2 misreads a non-empty
/// one.
pub fn api_versions_response(version: i16) -> ApiVersionsResponse {
    api_versions_response_for(version, &all_supported())
}

/// [`api_versions_response`] advertising only `served`: the APIs of [`SUPPORTED`] a node
/// actually answers (the codec may decode more than a node has handlers for; Kafka clients
/// send only what is advertised, and a node closes the connection on anything else).
pub fn api_versions_response_for(version: i16, served: &[ApiKey]) -> ApiVersionsResponse {
    let error_code = if is_supported(ApiKey::ApiVersions, version) {
        error_code::NONE.code()
    } else {
        error_code::UNSUPPORTED_VERSION.code()
    };
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_throttle_time_ms(0)
        .with_api_keys(advertised_api_keys(served))
}

fn all_supported() -> Vec<ApiKey> {
    SUPPORTED.iter().map(|&(api, _, _)| api).collect()
}

fn advertised_api_keys(served: &[ApiKey]) -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .filter(|(api, _, _)| served.contains(api))
        .map(|&(api, min, max)| {
            let min = if api == ApiKey::Produce { PRODUCE_ADVERTISED_MIN } else { min };
            ApiVersion::default()
                .with_api_key(api as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

/// What Kafka answers to a request that could not be decoded: `Some((correlation_id, api,
/// version, body))` to encode with [`encode_response`](crate::response::encode_response), or
/// `None` when the connection must be closed instead.
///
/// Only one decode error is answered: an ApiVersions request of a version this broker does not
/// serve (KIP-511), with [`api_versions_response`] at v0. Kafka closes the connection on every
/// other one (an unknown or unserved API, an unsupported version of another API, a malformed
/// header or body): the client cannot be told anything useful in a response it would not
/// understand.
pub fn answer_for_decode_error(error: &DecodeError) -> Option<(i32, ApiKey, i16, ResponseKind)> {
    answer_for_decode_error_for(error, &all_supported())
}

/// [`answer_for_decode_error`] advertising only `served` (see [`api_versions_response_for`]).
pub fn answer_for_decode_error_for(
    error: &DecodeError,
    served: &[ApiKey],
) -> Option<(i32, ApiKey, i16, ResponseKind)> {
    match *error {
        DecodeError::UnsupportedVersion {
            api: ApiKey::ApiVersions,
            version,
            correlation_id,
            ..
        } => Some((
            correlation_id,
            ApiKey::ApiVersions,
            API_VERSIONS_FALLBACK_VERSION,
            ResponseKind::ApiVersions(api_versions_response_for(version, served)),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_well_formed() {
        for (i, &(api, min, max)) in SUPPORTED.iter().enumerate() {
            assert!(0 <= min && min <= max, "{api:?}: {min}..={max}");
            // `valid_versions` spans request *and* response (InitProducerId: 0–6, its request
            // only 0–5); `crate::tests::served_ranges_are_within_the_request_decoders` checks
            // each request decoder's own range.
            let known = api.valid_versions();
            assert!(
                known.min <= min && max <= known.max,
                "{api:?} {min}..={max} is outside what kafka-protocol can decode ({known})"
            );
            assert!(
                SUPPORTED[..i].iter().all(|&(other, _, _)| other != api),
                "{api:?} is listed twice"
            );
        }
    }

    #[test]
    fn table_pins_the_chosen_ranges() {
        // Changing a range is a decision: update the reasons on `SUPPORTED` with it.
        let expected = [
            (ApiKey::ApiVersions, 0, 3),
            (ApiKey::Metadata, 0, 12),
            (ApiKey::Produce, 3, 11),
            (ApiKey::Fetch, 4, 16),
            (ApiKey::ListOffsets, 1, 8),
            (ApiKey::CreateTopics, 2, 7),
            (ApiKey::DeleteTopics, 1, 6),
            (ApiKey::DescribeConfigs, 1, 4),
            (ApiKey::IncrementalAlterConfigs, 0, 1),
            (ApiKey::AlterConfigs, 0, 2),
            (ApiKey::CreatePartitions, 0, 3),
            (ApiKey::DeleteRecords, 0, 2),
            (ApiKey::OffsetForLeaderEpoch, 2, 4),
            (ApiKey::DescribeCluster, 0, 1),
            (ApiKey::FindCoordinator, 0, 6),
            (ApiKey::InitProducerId, 0, 5),
            (ApiKey::OffsetCommit, 2, 9),
            (ApiKey::OffsetFetch, 1, 9),
            (ApiKey::JoinGroup, 0, 9),
            (ApiKey::Heartbeat, 0, 4),
            (ApiKey::LeaveGroup, 0, 5),
            (ApiKey::SyncGroup, 0, 5),
            (ApiKey::DescribeGroups, 0, 6),
            (ApiKey::ListGroups, 0, 5),
            (ApiKey::DeleteGroups, 0, 2),
            (ApiKey::OffsetDelete, 0, 0),
            (ApiKey::DescribeQuorum, 0, 2),
            (ApiKey::UnregisterBroker, 0, 0),
            (ApiKey::ElectLeaders, 0, 2),
            (ApiKey::AlterPartitionReassignments, 0, 0),
            (ApiKey::ListPartitionReassignments, 0, 0),
            (ApiKey::DescribeLogDirs, 1, 4),
            (ApiKey::SaslHandshake, 0, 1),
            (ApiKey::SaslAuthenticate, 0, 2),
            (ApiKey::CreateAcls, 1, 3),
            (ApiKey::DescribeAcls, 1, 3),
            (ApiKey::DeleteAcls, 1, 3),
            (ApiKey::DescribeUserScramCredentials, 0, 0),
            (ApiKey::AlterUserScramCredentials, 0, 0),
            (ApiKey::DescribeClientQuotas, 0, 1),
            (ApiKey::AlterClientQuotas, 0, 1),
            (ApiKey::AddPartitionsToTxn, 0, 4),
            (ApiKey::AddOffsetsToTxn, 0, 4),
            (ApiKey::EndTxn, 0, 4),
            (ApiKey::TxnOffsetCommit, 0, 4),
            (ApiKey::WriteTxnMarkers, 1, 1),
            (ApiKey::DescribeTransactions, 0, 0),
            (ApiKey::ListTransactions, 0, 1),
        ];
        assert_eq!(SUPPORTED.len(), expected.len());
        for (api, min, max) in expected {
            assert_eq!(supported(api), Some((min, max)), "{api:?}");
        }
        // KIP-848's own group API (the new consumer protocol) is a different API, not served.
        assert_eq!(supported(ApiKey::ConsumerGroupHeartbeat), None);
    }

    #[test]
    fn is_supported_checks_both_ends() {
        assert!(!is_supported(ApiKey::Produce, 2));
        assert!(is_supported(ApiKey::Produce, 3));
        assert!(is_supported(ApiKey::Produce, 11));
        assert!(!is_supported(ApiKey::Produce, 12));
        assert!(!is_supported(ApiKey::ApiVersions, -1));
        assert!(!is_supported(ApiKey::InitProducerId, 6));
        assert!(is_supported(ApiKey::EndTxn, 0));
        assert!(!is_supported(ApiKey::EndTxn, 5));
    }

    #[test]
    fn transaction_apis_stop_before_transaction_version_2() {
        // kafka-protocol knows the KIP-890 part 2 versions (and AddPartitionsToTxn v5); the
        // coordinator does not implement them. Widening one of these is a decision: see the
        // reasons on `SUPPORTED`.
        let stops = [
            (ApiKey::AddPartitionsToTxn, 4, 5),
            (ApiKey::AddOffsetsToTxn, 4, 4),
            (ApiKey::EndTxn, 4, 5),
            (ApiKey::TxnOffsetCommit, 4, 5),
            (ApiKey::WriteTxnMarkers, 1, 1),
            (ApiKey::DescribeTransactions, 0, 0),
            (ApiKey::ListTransactions, 1, 2),
        ];
        for (api, served_max, known_max) in stops {
            assert_eq!(api.valid_versions().max, known_max, "{api:?}");
            assert!(is_supported(api, served_max), "{api:?}");
            assert!(!is_supported(api, served_max + 1), "{api:?}");
        }
        // WriteTxnMarkers v0 was removed in Kafka 4.0, and kafka-protocol does not know it.
        assert_eq!(ApiKey::WriteTxnMarkers.valid_versions().min, 1);
        assert!(!is_supported(ApiKey::WriteTxnMarkers, 0));
    }

    #[test]
    fn api_versions_lists_every_api_and_produce_from_v0() {
        for version in 0..=3 {
            let r = api_versions_response(version);
            assert_eq!(r.error_code, error_code::NONE.code());
            assert_eq!(r.throttle_time_ms, 0);
            assert!(r.supported_features.is_empty());
            assert!(r.finalized_features.is_empty());
            assert_eq!(r.finalized_features_epoch, -1);
            assert!(!r.zk_migration_ready);
            assert!(r.unknown_tagged_fields.is_empty());
            assert_eq!(r.api_keys.len(), SUPPORTED.len());
            for k in &r.api_keys {
                let api = ApiKey::try_from(k.api_key).expect("a known key");
                let (min, max) = supported(api).expect("advertised only if supported");
                let advertised_min = if api == ApiKey::Produce { 0 } else { min };
                assert_eq!((k.min_version, k.max_version), (advertised_min, max), "{api:?}");
            }
        }
    }

    #[test]
    fn find_coordinator_v0_is_advertised_and_accepted() {
        // librdkafka before 2.11.1 enables lz4 only if FindCoordinator v0 is advertised; Kafka
        // 4.0 kept v0, and kafka-protocol decodes it, so it is accepted too (no Produce-like
        // exception). Narrowing this range silently turns lz4 off for those clients.
        assert!(is_supported(ApiKey::FindCoordinator, 0));
        assert!(is_supported(ApiKey::FindCoordinator, 6));
        assert!(!is_supported(ApiKey::FindCoordinator, 7));
        let advertised = api_versions_response(3)
            .api_keys
            .into_iter()
            .find(|k| k.api_key == ApiKey::FindCoordinator as i16)
            .expect("FindCoordinator is advertised");
        assert_eq!((advertised.min_version, advertised.max_version), (0, 6));
    }

    #[test]
    fn init_producer_id_stops_before_the_unstable_v6() {
        // kafka-protocol's `valid_versions` (0–6) is the union of request and response: its
        // response type knows v6 (KIP-939), its request type stops at v5, as does what Kafka 4.0
        // advertises. `table_is_well_formed` would let v6 through; this does not.
        assert_eq!(ApiKey::InitProducerId.valid_versions().max, 6);
        assert!(is_supported(ApiKey::InitProducerId, 0));
        assert!(is_supported(ApiKey::InitProducerId, 5));
        assert!(!is_supported(ApiKey::InitProducerId, 6));
        let advertised = api_versions_response(3)
            .api_keys
            .into_iter()
            .find(|k| k.api_key == ApiKey::InitProducerId as i16)
            .expect("InitProducerId is advertised");
        assert_eq!((advertised.min_version, advertised.max_version), (0, 5));
        assert_eq!(advertised.api_key, 22);
    }

    #[test]
    fn group_apis_meet_what_old_librdkafka_checks() {
        // librdkafka before 2.11 enables consumer groups only if every advertised range below
        // meets the one it names (its `BROKER_BALANCED_CONSUMER` feature). JoinGroup v0 is the
        // one Kafka 4.0.0 dropped and 4.0.1 restored (KAFKA-19444); narrowing a range here
        // silently turns consumer groups off for those clients.
        let checks = [
            (ApiKey::FindCoordinator, 0, 0),
            (ApiKey::OffsetCommit, 1, 2),
            (ApiKey::OffsetFetch, 1, 1),
            (ApiKey::JoinGroup, 0, 0),
            (ApiKey::SyncGroup, 0, 0),
            (ApiKey::Heartbeat, 0, 0),
            (ApiKey::LeaveGroup, 0, 0),
        ];
        let advertised = api_versions_response(3).api_keys;
        for (api, min, max) in checks {
            let k = advertised.iter().find(|k| k.api_key == api as i16).expect("advertised");
            assert!(min <= k.max_version && k.min_version <= max, "{api:?} {min}..{max}");
        }
        // Sarama sends only DeleteGroups v0, which Kafka 4.0 kept (KAFKA-18352).
        assert!(is_supported(ApiKey::DeleteGroups, 0));
    }

    #[test]
    fn offset_commit_and_fetch_stop_before_topic_ids() {
        // v10 of both (KIP-848: topic ids only) is in kafka-protocol's `valid_versions` (its
        // response types), not in its request types, and not in Kafka 4.0.
        for api in [ApiKey::OffsetCommit, ApiKey::OffsetFetch] {
            assert_eq!(api.valid_versions().max, 10, "{api:?}");
            assert!(is_supported(api, 9), "{api:?}");
            assert!(!is_supported(api, 10), "{api:?}");
        }
        // Removed in Kafka 4.0 (KIP-896), and not decodable by kafka-protocol.
        assert!(!is_supported(ApiKey::OffsetCommit, 1));
        assert!(!is_supported(ApiKey::OffsetFetch, 0));
        assert_eq!(ApiKey::OffsetCommit.valid_versions().min, 2);
        assert_eq!(ApiKey::OffsetFetch.valid_versions().min, 1);
    }

    #[test]
    fn api_versions_of_an_unsupported_version_says_so() {
        for version in [-1, 4, 99, i16::MAX] {
            let r = api_versions_response(version);
            assert_eq!(r.error_code, error_code::UNSUPPORTED_VERSION.code());
            assert_eq!(r.api_keys.len(), SUPPORTED.len());
        }
    }
}
