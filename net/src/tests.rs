//! Tests across modules: requests encoded by kafka-protocol's *client* side decode with ours,
//! responses we encode decode with its client side, and no input makes decoding panic.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::describe_quorum_request::{
    PartitionData as DescribeQuorumPartitionData, TopicData as DescribeQuorumTopicData,
};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions as ElectTopicPartitions;
use kafka_protocol::messages::fetch_request::{
    FetchPartition, FetchTopic, ForgottenTopic, ReplicaState,
};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeTransactionsRequest, DescribeTransactionsResponse,
    EndTxnRequest, EndTxnResponse, ListTransactionsRequest, ListTransactionsResponse,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse, WriteTxnMarkersRequest,
    WriteTxnMarkersResponse,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, AlterPartitionReassignmentsRequest,
    AlterPartitionReassignmentsResponse, ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId,
    ConsumerGroupHeartbeatRequest, CreatePartitionsRequest, CreatePartitionsResponse,
    CreateTopicsRequest, CreateTopicsResponse, DeleteGroupsRequest, DeleteGroupsResponse,
    DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeClusterRequest, DescribeClusterResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, DescribeGroupsRequest, DescribeGroupsResponse, DescribeLogDirsRequest,
    DescribeLogDirsResponse, DescribeQuorumRequest, DescribeQuorumResponse, ElectLeadersRequest,
    ElectLeadersResponse, FetchRequest, FetchResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, InitProducerIdRequest,
    InitProducerIdResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, ListOffsetsRequest,
    ListOffsetsResponse, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
    MetadataRequest, MetadataResponse, OffsetCommitRequest, OffsetCommitResponse,
    OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest, OffsetFetchResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, ProduceRequest, ProduceResponse,
    ProducerId, RequestHeader, RequestKind, ResponseHeader, ResponseKind, SyncGroupRequest,
    SyncGroupResponse, TopicName, TransactionalId, UnregisterBrokerRequest,
    UnregisterBrokerResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, Message, StrBytes, VersionRange};
use odradek_records::{BatchParams, Codec, Record, build_batch};

use crate::error_code::{self, ErrorCode};
use crate::frame::{self, SOCKET_REQUEST_MAX_BYTES_DEFAULT};
use crate::preflight::{self, PreflightError, element_min};
use crate::request::{DecodeError, Request, decode_request};
use crate::response::{EncodeError, encode_response};
use crate::versions::{self, SUPPORTED};

// ---------------------------------------------------------------------------------------------
// Building requests the way a client does.

fn name(s: &'static str) -> TopicName {
    TopicName(StrBytes::from_static_str(s))
}

fn text(s: &'static str) -> StrBytes {
    StrBytes::from_static_str(s)
}

fn group(s: &'static str) -> GroupId {
    GroupId(StrBytes::from_static_str(s))
}

/// A `DeleteTopicState` whose topic id has every byte `n`: a way to get a non-nil `Uuid`
/// without depending on the `uuid` crate (read `.topic_id`).
fn with_uuid(n: u8) -> DeleteTopicState {
    let mut b = BytesMut::new();
    b.put_u8(0); // null compact name
    b.put_slice(&[n; 16]);
    b.put_u8(0); // no tagged fields
    DeleteTopicState::decode(&mut b.freeze(), 6).expect("a DeleteTopicState v6")
}

/// One RecordBatch v2 of three records, as a producer sends it.
fn records_blob() -> Bytes {
    let record = |i: u8| Record {
        attributes: 0,
        timestamp_delta: i64::from(i),
        offset_delta: i32::from(i),
        key: Some(Bytes::from(vec![b'k', i])),
        value: Some(Bytes::from(vec![i; 20])),
        headers: Vec::new(),
    };
    let records = [record(0), record(1), record(2)];
    build_batch(&BatchParams::simple(Codec::None, 1_700_000_000_000, records.len()), &records)
        .expect("a valid batch")
}

/// A request of `api` at `version` with every array populated (nested arrays too) and every
/// field the version has set to a non-default value where that changes the encoding.
fn sample_body(api: ApiKey, v: i16) -> RequestKind {
    match api {
        ApiKey::ApiVersions => RequestKind::ApiVersions(if v >= 3 {
            ApiVersionsRequest::default()
                .with_client_software_name(text("odradek-net-test"))
                .with_client_software_version(text("0.1.0"))
        } else {
            ApiVersionsRequest::default()
        }),
        ApiKey::Metadata => RequestKind::Metadata(sample_metadata(v)),
        ApiKey::Produce => RequestKind::Produce(sample_produce(v)),
        ApiKey::Fetch => RequestKind::Fetch(sample_fetch(v)),
        ApiKey::ListOffsets => RequestKind::ListOffsets(sample_list_offsets(v)),
        ApiKey::CreateTopics => RequestKind::CreateTopics(sample_create_topics()),
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(sample_delete_topics(v)),
        ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(sample_describe_configs(v)),
        ApiKey::IncrementalAlterConfigs => {
            RequestKind::IncrementalAlterConfigs(sample_incremental_alter_configs())
        }
        ApiKey::AlterConfigs => RequestKind::AlterConfigs(sample_alter_configs()),
        ApiKey::CreatePartitions => RequestKind::CreatePartitions(sample_create_partitions()),
        ApiKey::DeleteRecords => RequestKind::DeleteRecords(sample_delete_records(v)),
        ApiKey::OffsetForLeaderEpoch => {
            RequestKind::OffsetForLeaderEpoch(sample_offset_for_leader_epoch(v))
        }
        ApiKey::DescribeCluster => RequestKind::DescribeCluster(sample_describe_cluster(v)),
        ApiKey::FindCoordinator => RequestKind::FindCoordinator(sample_find_coordinator(v)),
        ApiKey::InitProducerId => RequestKind::InitProducerId(sample_init_producer_id(v)),
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(sample_offset_commit(v)),
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(sample_offset_fetch(v)),
        ApiKey::JoinGroup => RequestKind::JoinGroup(sample_join_group(v)),
        ApiKey::Heartbeat => RequestKind::Heartbeat(sample_heartbeat(v)),
        ApiKey::LeaveGroup => RequestKind::LeaveGroup(sample_leave_group(v)),
        ApiKey::SyncGroup => RequestKind::SyncGroup(sample_sync_group(v)),
        ApiKey::DescribeGroups => RequestKind::DescribeGroups(sample_describe_groups(v)),
        ApiKey::ListGroups => RequestKind::ListGroups(sample_list_groups(v)),
        ApiKey::DeleteGroups => RequestKind::DeleteGroups(sample_delete_groups(v)),
        ApiKey::OffsetDelete => RequestKind::OffsetDelete(sample_offset_delete()),
        ApiKey::DescribeQuorum => RequestKind::DescribeQuorum(sample_describe_quorum()),
        ApiKey::UnregisterBroker => RequestKind::UnregisterBroker(
            UnregisterBrokerRequest::default()
                .with_broker_id(BrokerId(3))
                .with_unknown_tagged_field(5, Bytes::from_static(b"tag")),
        ),
        ApiKey::ElectLeaders => RequestKind::ElectLeaders(sample_elect_leaders(v)),
        ApiKey::AlterPartitionReassignments => {
            RequestKind::AlterPartitionReassignments(sample_alter_reassignments())
        }
        ApiKey::ListPartitionReassignments => {
            RequestKind::ListPartitionReassignments(sample_list_reassignments())
        }
        ApiKey::DescribeLogDirs => RequestKind::DescribeLogDirs(sample_describe_log_dirs(v)),
        ApiKey::SaslHandshake => RequestKind::SaslHandshake(
            kafka_protocol::messages::SaslHandshakeRequest::default().with_mechanism(text("PLAIN")),
        ),
        ApiKey::SaslAuthenticate => RequestKind::SaslAuthenticate(
            kafka_protocol::messages::SaslAuthenticateRequest::default()
                .with_auth_bytes(Bytes::from_static(b"\0user\0pass")),
        ),
        ApiKey::CreateAcls => RequestKind::CreateAcls(
            kafka_protocol::messages::CreateAclsRequest::default().with_creations(vec![
                kafka_protocol::messages::create_acls_request::AclCreation::default()
                    .with_resource_type(2)
                    .with_resource_name(text("orders"))
                    .with_resource_pattern_type(3)
                    .with_principal(text("User:bob"))
                    .with_host(text("*"))
                    .with_operation(3)
                    .with_permission_type(3),
            ]),
        ),
        ApiKey::DescribeAcls => RequestKind::DescribeAcls(
            kafka_protocol::messages::DescribeAclsRequest::default()
                .with_resource_type_filter(1)
                .with_resource_name_filter(Some(text("orders")))
                .with_pattern_type_filter(1)
                .with_operation(1)
                .with_permission_type(1),
        ),
        ApiKey::DeleteAcls => RequestKind::DeleteAcls(
            kafka_protocol::messages::DeleteAclsRequest::default().with_filters(vec![
                kafka_protocol::messages::delete_acls_request::DeleteAclsFilter::default()
                    .with_resource_type_filter(2)
                    .with_principal_filter(Some(text("User:bob")))
                    .with_pattern_type_filter(1)
                    .with_operation(1)
                    .with_permission_type(1),
            ]),
        ),
        ApiKey::DescribeUserScramCredentials => RequestKind::DescribeUserScramCredentials(
            kafka_protocol::messages::DescribeUserScramCredentialsRequest::default().with_users(
                Some(vec![
                    kafka_protocol::messages::describe_user_scram_credentials_request::UserName::default()
                        .with_name(text("bob")),
                ]),
            ),
        ),
        ApiKey::DescribeClientQuotas => RequestKind::DescribeClientQuotas(
            kafka_protocol::messages::DescribeClientQuotasRequest::default()
                .with_components(vec![
                    kafka_protocol::messages::describe_client_quotas_request::ComponentData::default()
                        .with_entity_type(text("user"))
                        .with_match_type(0)
                        .with_match(Some(text("bob"))),
                ])
                .with_strict(true),
        ),
        ApiKey::AlterClientQuotas => RequestKind::AlterClientQuotas(
            kafka_protocol::messages::AlterClientQuotasRequest::default().with_entries(vec![
                kafka_protocol::messages::alter_client_quotas_request::EntryData::default()
                    .with_entity(vec![
                        kafka_protocol::messages::alter_client_quotas_request::EntityData::default()
                            .with_entity_type(text("user"))
                            .with_entity_name(Some(text("bob"))),
                    ])
                    .with_ops(vec![
                        kafka_protocol::messages::alter_client_quotas_request::OpData::default()
                            .with_key(text("producer_byte_rate"))
                            .with_value(1048576.0),
                    ]),
            ]),
        ),
        ApiKey::AlterUserScramCredentials => RequestKind::AlterUserScramCredentials(
            kafka_protocol::messages::AlterUserScramCredentialsRequest::default()
                .with_deletions(vec![
                    kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialDeletion::default()
                        .with_name(text("carol"))
                        .with_mechanism(1),
                ])
                .with_upsertions(vec![
                    kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
                        .with_name(text("bob"))
                        .with_mechanism(2)
                        .with_iterations(8192)
                        .with_salt(Bytes::from_static(b"salt"))
                        .with_salted_password(Bytes::from_static(b"salted")),
                ]),
        ),
        ApiKey::AddPartitionsToTxn => {
            RequestKind::AddPartitionsToTxn(sample_add_partitions_to_txn(v))
        }
        ApiKey::AddOffsetsToTxn => RequestKind::AddOffsetsToTxn(sample_add_offsets_to_txn(v)),
        ApiKey::EndTxn => RequestKind::EndTxn(sample_end_txn(v)),
        ApiKey::TxnOffsetCommit => RequestKind::TxnOffsetCommit(sample_txn_offset_commit(v)),
        ApiKey::WriteTxnMarkers => RequestKind::WriteTxnMarkers(sample_write_txn_markers()),
        ApiKey::DescribeTransactions => {
            RequestKind::DescribeTransactions(sample_describe_transactions())
        }
        ApiKey::ListTransactions => RequestKind::ListTransactions(sample_list_transactions(v)),
        other => panic!("no sample for {other:?}"),
    }
}

fn sample_metadata(v: i16) -> MetadataRequest {
    let topic = |n, id| {
        let t = MetadataRequestTopic::default().with_name(Some(name(n)));
        if v >= 10 { t.with_topic_id(with_uuid(id).topic_id) } else { t }
    };
    let mut r =
        MetadataRequest::default().with_topics(Some(vec![topic("orders", 1), topic("audit", 2)]));
    if v >= 4 {
        r = r.with_allow_auto_topic_creation(false);
    }
    if (8..=10).contains(&v) {
        r = r.with_include_cluster_authorized_operations(true);
    }
    if v >= 8 {
        r = r.with_include_topic_authorized_operations(true);
    }
    r
}

fn sample_produce(v: i16) -> ProduceRequest {
    let blob = records_blob();
    let partitions = vec![
        PartitionProduceData::default().with_index(0).with_records(Some(blob.clone())),
        PartitionProduceData::default().with_index(1).with_records(Some(blob)),
        PartitionProduceData::default().with_index(2).with_records(None),
    ];
    let topic = |n, id| {
        let t = TopicProduceData::default().with_partition_data(partitions.clone());
        if v <= 12 { t.with_name(name(n)) } else { t.with_topic_id(with_uuid(id).topic_id) }
    };
    ProduceRequest::default()
        .with_transactional_id(if v % 2 == 0 { Some(TransactionalId(text("tx-1"))) } else { None })
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![topic("orders", 3), topic("audit", 4)])
}

fn sample_fetch(v: i16) -> FetchRequest {
    let partition = |p: i32| {
        let mut fp = FetchPartition::default()
            .with_partition(p)
            .with_fetch_offset(100 + i64::from(p))
            .with_partition_max_bytes(1 << 20);
        if v >= 9 {
            fp = fp.with_current_leader_epoch(3);
        }
        if v >= 12 {
            fp = fp.with_last_fetched_epoch(2);
        }
        if v >= 5 {
            fp = fp.with_log_start_offset(7);
        }
        if v >= 17 {
            fp = fp.with_replica_directory_id(with_uuid(9).topic_id);
        }
        if v >= 18 {
            fp = fp.with_high_watermark(50);
        }
        fp
    };
    let topic = |n, id| {
        let t = FetchTopic::default().with_partitions(vec![partition(0), partition(1)]);
        if v <= 12 { t.with_topic(name(n)) } else { t.with_topic_id(with_uuid(id).topic_id) }
    };
    let mut r = FetchRequest::default()
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_isolation_level(1)
        .with_topics(vec![topic("orders", 5), topic("audit", 6)]);
    if v >= 7 {
        let forgotten = ForgottenTopic::default().with_partitions(vec![4, 5, 6]);
        let forgotten = if v <= 12 {
            forgotten.with_topic(name("old"))
        } else {
            forgotten.with_topic_id(with_uuid(8).topic_id)
        };
        r = r.with_session_id(12).with_session_epoch(3).with_forgotten_topics_data(vec![forgotten]);
    }
    if v >= 11 {
        r = r.with_rack_id(text("rack-a"));
    }
    if v >= 12 {
        r = r.with_cluster_id(Some(text("cluster-1")));
    }
    if v >= 15 {
        r = r.with_replica_state(
            ReplicaState::default().with_replica_id(BrokerId(1)).with_replica_epoch(2),
        );
    }
    r
}

fn sample_list_offsets(v: i16) -> ListOffsetsRequest {
    let partition = |p: i32| {
        let lp = ListOffsetsPartition::default().with_partition_index(p).with_timestamp(-2);
        if v >= 4 { lp.with_current_leader_epoch(4) } else { lp }
    };
    let topic = |n| {
        ListOffsetsTopic::default()
            .with_name(name(n))
            .with_partitions(vec![partition(0), partition(1)])
    };
    let mut r = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![topic("orders"), topic("audit")]);
    if v >= 2 {
        r = r.with_isolation_level(1);
    }
    if v >= 10 {
        r = r.with_timeout_ms(1_000);
    }
    r
}

fn sample_create_topics() -> CreateTopicsRequest {
    let assignment = |p| {
        CreatableReplicaAssignment::default()
            .with_partition_index(p)
            .with_broker_ids(vec![BrokerId(1), BrokerId(2)])
    };
    let topic = CreatableTopic::default()
        .with_name(name("orders"))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_assignments(vec![assignment(0), assignment(1)])
        .with_configs(vec![
            CreatableTopicConfig::default()
                .with_name(text("cleanup.policy"))
                .with_value(Some(text("compact"))),
            CreatableTopicConfig::default().with_name(text("retention.ms")).with_value(None),
        ]);
    let plain = CreatableTopic::default()
        .with_name(name("audit"))
        .with_num_partitions(3)
        .with_replication_factor(1);
    CreateTopicsRequest::default()
        .with_topics(vec![topic, plain])
        .with_timeout_ms(5_000)
        .with_validate_only(true)
}

fn sample_delete_topics(v: i16) -> DeleteTopicsRequest {
    let r = DeleteTopicsRequest::default().with_timeout_ms(5_000);
    if v >= 6 {
        r.with_topics(vec![
            DeleteTopicState::default().with_name(Some(name("orders"))),
            with_uuid(3),
        ])
    } else {
        r.with_topic_names(vec![name("orders"), name("audit")])
    }
}

fn sample_describe_configs(v: i16) -> DescribeConfigsRequest {
    // Resource types: 2 = topic, 4 = broker.
    let topic = DescribeConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(text("orders"))
        .with_configuration_keys(Some(vec![text("cleanup.policy"), text("retention.ms")]));
    // A null key list asks for every key.
    let broker = DescribeConfigsResource::default()
        .with_resource_type(4)
        .with_resource_name(text("1"))
        .with_configuration_keys(None);
    let r = DescribeConfigsRequest::default()
        .with_resources(vec![topic, broker])
        .with_include_synonyms(true);
    if v >= 3 { r.with_include_documentation(true) } else { r }
}

fn sample_incremental_alter_configs() -> IncrementalAlterConfigsRequest {
    // Operations: 0 = SET, 1 = DELETE (value null).
    let topic = AlterConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(text("orders"))
        .with_configs(vec![
            AlterableConfig::default()
                .with_name(text("retention.ms"))
                .with_config_operation(0)
                .with_value(Some(text("86400000"))),
            AlterableConfig::default()
                .with_name(text("cleanup.policy"))
                .with_config_operation(1)
                .with_value(None),
        ]);
    let empty =
        AlterConfigsResource::default().with_resource_type(2).with_resource_name(text("audit"));
    IncrementalAlterConfigsRequest::default()
        .with_resources(vec![topic, empty])
        .with_validate_only(true)
}

fn sample_alter_configs() -> AlterConfigsRequest {
    use kafka_protocol::messages::alter_configs_request::{
        AlterConfigsResource as WholeResource, AlterableConfig as WholeConfig,
    };
    let topic = WholeResource::default()
        .with_resource_type(2)
        .with_resource_name(text("orders"))
        .with_configs(vec![
            WholeConfig::default()
                .with_name(text("retention.ms"))
                .with_value(Some(text("86400000"))),
            WholeConfig::default().with_name(text("cleanup.policy")).with_value(None),
        ]);
    let empty = WholeResource::default().with_resource_type(2).with_resource_name(text("audit"));
    AlterConfigsRequest::default().with_resources(vec![topic, empty]).with_validate_only(true)
}

fn sample_create_partitions() -> CreatePartitionsRequest {
    let assignment = |ids: &[i32]| {
        CreatePartitionsAssignment::default()
            .with_broker_ids(ids.iter().map(|&i| BrokerId(i)).collect())
    };
    let placed = CreatePartitionsTopic::default()
        .with_name(name("orders"))
        .with_count(4)
        .with_assignments(Some(vec![assignment(&[1, 2]), assignment(&[3])]));
    // Null assignments: the broker places the new partitions.
    let unplaced = CreatePartitionsTopic::default()
        .with_name(name("audit"))
        .with_count(6)
        .with_assignments(None);
    CreatePartitionsRequest::default()
        .with_topics(vec![placed, unplaced])
        .with_timeout_ms(5_000)
        .with_validate_only(true)
}

fn sample_delete_records(v: i16) -> DeleteRecordsRequest {
    let partition = |p: i32| {
        let dp = DeleteRecordsPartition::default()
            .with_partition_index(p)
            .with_offset(-1 + 10 * i64::from(p));
        // An unknown tagged field, skipped by size (only flexible versions carry one).
        if v >= 2 { dp.with_unknown_tagged_field(3, Bytes::from_static(b"xyz")) } else { dp }
    };
    let topic = |n| {
        DeleteRecordsTopic::default()
            .with_name(name(n))
            .with_partitions(vec![partition(0), partition(1)])
    };
    DeleteRecordsRequest::default()
        .with_topics(vec![topic("orders"), topic("audit")])
        .with_timeout_ms(5_000)
}

fn sample_offset_for_leader_epoch(v: i16) -> OffsetForLeaderEpochRequest {
    let partition = |p: i32| {
        OffsetForLeaderPartition::default()
            .with_partition(p)
            .with_current_leader_epoch(7)
            .with_leader_epoch(5)
    };
    let topic = |n| {
        OffsetForLeaderTopic::default()
            .with_topic(name(n))
            .with_partitions(vec![partition(0), partition(1)])
    };
    let r =
        OffsetForLeaderEpochRequest::default().with_topics(vec![topic("orders"), topic("audit")]);
    // v2 has no replica id (it decodes as the default, -2).
    if v >= 3 { r.with_replica_id(BrokerId(-1)) } else { r }
}

fn sample_describe_cluster(v: i16) -> DescribeClusterRequest {
    // Flexible from v0; an unknown tagged field exercises the skip.
    let mut r = DescribeClusterRequest::default()
        .with_include_cluster_authorized_operations(true)
        .with_unknown_tagged_field(5, Bytes::from_static(b"tag"));
    if v >= 1 {
        r = r.with_endpoint_type(2);
    }
    if v >= 2 {
        r = r.with_include_fenced_brokers(true);
    }
    r
}

fn sample_find_coordinator(v: i16) -> FindCoordinatorRequest {
    // Key types: 0 = group (all v0 can ask for), 1 = transaction, 2 = share group (v6+, keyed
    // `groupId:topicId:partition`). From v4 the keys are a batch (an empty one included).
    let r = FindCoordinatorRequest::default();
    let r = match v {
        0 => r.with_key(text("orders-consumers")),
        1..=3 => r.with_key(text("tx-1")).with_key_type(1),
        4 | 5 => r.with_coordinator_keys(vec![
            text("orders-consumers"),
            text(""),
            text("audit-consumers"),
        ]),
        _ => r.with_key_type(2).with_coordinator_keys(vec![
            text("share-a:AAAAAAAAAAAAAAAAAAAAAA:0"),
            text("share-a:AAAAAAAAAAAAAAAAAAAAAA:1"),
        ]),
    };
    // Flexible from v3; an unknown tagged field exercises the skip.
    if v >= 3 { r.with_unknown_tagged_field(4, Bytes::from_static(b"tag")) } else { r }
}

fn sample_init_producer_id(v: i16) -> InitProducerIdRequest {
    // Even versions: an idempotent producer without transactions, as the Java producer asks
    // (null transactional id, timeout `i32::MAX`). Odd versions: a transactional producer, from
    // v3 (KIP-360) naming the id and epoch it has, to keep the id after an error.
    let r = InitProducerIdRequest::default();
    let mut r = if v % 2 == 0 {
        r.with_transactional_id(None).with_transaction_timeout_ms(i32::MAX)
    } else {
        r.with_transactional_id(Some(TransactionalId(text("tx-1"))))
            .with_transaction_timeout_ms(60_000)
    };
    if v >= 3 && v % 2 == 1 {
        r = r.with_producer_id(ProducerId(4_711)).with_producer_epoch(7);
    }
    // Flexible from v2; an unknown tagged field exercises the skip.
    if v >= 2 { r.with_unknown_tagged_field(5, Bytes::from_static(b"tag")) } else { r }
}

// The group APIs' samples: each flexible version carries an unknown tagged field (tag 6), to
// exercise the skip.

fn sample_offset_commit(v: i16) -> OffsetCommitRequest {
    // A committed offset with metadata and one with null metadata (nullable in every version),
    // and a topic without partitions.
    let partition = |p: i32, metadata: Option<StrBytes>| {
        let op = OffsetCommitRequestPartition::default()
            .with_partition_index(p)
            .with_committed_offset(100 * i64::from(p) + 7)
            .with_committed_metadata(metadata);
        if v >= 6 { op.with_committed_leader_epoch(4) } else { op }
    };
    let orders = OffsetCommitRequestTopic::default()
        .with_name(name("orders"))
        .with_partitions(vec![partition(0, Some(text("by-app"))), partition(1, None)]);
    let audit = OffsetCommitRequestTopic::default().with_name(name("audit"));
    let mut r = OffsetCommitRequest::default()
        .with_group_id(group("orders-consumers"))
        .with_generation_id_or_member_epoch(3)
        .with_member_id(text("member-1"))
        .with_topics(vec![orders, audit]);
    if v <= 4 {
        r = r.with_retention_time_ms(86_400_000);
    }
    if v >= 7 {
        r = r.with_group_instance_id(Some(text("instance-1")));
    }
    if v >= 8 { r.with_unknown_tagged_field(6, Bytes::from_static(b"tag")) } else { r }
}

fn sample_offset_fetch(v: i16) -> OffsetFetchRequest {
    if v <= 7 {
        // From v2 a null topic list asks for every topic: even versions send one.
        let topics = if v >= 2 && v % 2 == 0 {
            None
        } else {
            Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(name("orders"))
                    .with_partition_indexes(vec![0, 1, 2]),
                OffsetFetchRequestTopic::default().with_name(name("audit")),
            ])
        };
        let r = OffsetFetchRequest::default()
            .with_group_id(group("orders-consumers"))
            .with_topics(topics);
        let r = if v == 7 { r.with_require_stable(true) } else { r };
        return if v >= 6 { r.with_unknown_tagged_field(6, Bytes::from_static(b"tag")) } else { r };
    }
    // v8+: a batch of groups (KIP-709), one naming topics, one asking for all (null).
    let named = OffsetFetchRequestGroup::default()
        .with_group_id(group("orders-consumers"))
        .with_topics(Some(vec![
            OffsetFetchRequestTopics::default()
                .with_name(name("orders"))
                .with_partition_indexes(vec![0, 1]),
            OffsetFetchRequestTopics::default().with_name(name("audit")),
        ]));
    let named = if v >= 9 {
        named.with_member_id(Some(text("member-1"))).with_member_epoch(5)
    } else {
        named
    };
    let all = OffsetFetchRequestGroup::default()
        .with_group_id(group("audit-consumers"))
        .with_topics(None);
    OffsetFetchRequest::default()
        .with_groups(vec![named, all])
        .with_require_stable(true)
        .with_unknown_tagged_field(6, Bytes::from_static(b"tag"))
}

fn sample_join_group(v: i16) -> JoinGroupRequest {
    let protocol = |n, metadata: &'static [u8]| {
        JoinGroupRequestProtocol::default()
            .with_name(text(n))
            .with_metadata(Bytes::from_static(metadata))
    };
    // From v4 a first join has an empty member id (answered MEMBER_ID_REQUIRED): even versions.
    let member = if v >= 4 && v % 2 == 0 { "" } else { "member-1" };
    let mut r = JoinGroupRequest::default()
        .with_group_id(group("orders-consumers"))
        .with_session_timeout_ms(45_000)
        .with_member_id(text(member))
        .with_protocol_type(text("consumer"))
        .with_protocols(vec![
            protocol("range", b"\x00\x03\x00\x00\x00\x01\x00\x06orders"),
            protocol("cooperative-sticky", b""),
        ]);
    if v >= 1 {
        r = r.with_rebalance_timeout_ms(300_000);
    }
    if v >= 5 {
        r = r.with_group_instance_id(Some(text("instance-1")));
    }
    if v >= 8 {
        r = r.with_reason(Some(text("rebalance after metadata change")));
    }
    if v >= 6 { r.with_unknown_tagged_field(6, Bytes::from_static(b"tag")) } else { r }
}

fn sample_heartbeat(v: i16) -> HeartbeatRequest {
    let r = HeartbeatRequest::default()
        .with_group_id(group("orders-consumers"))
        .with_generation_id(3)
        .with_member_id(text("member-1"));
    let r = if v >= 3 { r.with_group_instance_id(Some(text("instance-1"))) } else { r };
    if v >= 4 { r.with_unknown_tagged_field(6, Bytes::from_static(b"tag")) } else { r }
}

fn sample_leave_group(v: i16) -> LeaveGroupRequest {
    let r = LeaveGroupRequest::default().with_group_id(group("orders-consumers"));
    let r = if v <= 2 {
        r.with_member_id(text("member-1"))
    } else {
        // v3+: a batch, by member id or by static instance id (KIP-345).
        let by_id = MemberIdentity::default().with_member_id(text("member-1"));
        let by_instance =
            MemberIdentity::default().with_group_instance_id(Some(text("instance-2")));
        let by_instance = if v >= 5 {
            by_instance.with_reason(Some(text("the consumer is being closed")))
        } else {
            by_instance
        };
        r.with_members(vec![by_id, by_instance])
    };
    if v >= 4 { r.with_unknown_tagged_field(6, Bytes::from_static(b"tag")) } else { r }
}

fn sample_sync_group(v: i16) -> SyncGroupRequest {
    // The leader sends every member's assignment (an empty one included).
    let assignment = |m, a: &'static [u8]| {
        SyncGroupRequestAssignment::default()
            .with_member_id(text(m))
            .with_assignment(Bytes::from_static(a))
    };
    let mut r = SyncGroupRequest::default()
        .with_group_id(group("orders-consumers"))
        .with_generation_id(3)
        .with_member_id(text("member-1"))
        .with_assignments(vec![
            assignment("member-1", b"\x00\x03\x00\x00\x00\x01\x00\x06orders"),
            assignment("member-2", b""),
        ]);
    if v >= 3 {
        r = r.with_group_instance_id(Some(text("instance-1")));
    }
    if v >= 5 {
        r = r.with_protocol_type(Some(text("consumer"))).with_protocol_name(Some(text("range")));
    }
    if v >= 4 { r.with_unknown_tagged_field(6, Bytes::from_static(b"tag")) } else { r }
}

fn sample_describe_groups(v: i16) -> DescribeGroupsRequest {
    let r = DescribeGroupsRequest::default().with_groups(vec![
        group("orders-consumers"),
        group(""),
        group("audit-consumers"),
    ]);
    let r = if v >= 3 { r.with_include_authorized_operations(true) } else { r };
    if v >= 5 { r.with_unknown_tagged_field(6, Bytes::from_static(b"tag")) } else { r }
}

fn sample_list_groups(v: i16) -> ListGroupsRequest {
    // v0–v2 have an empty body.
    let mut r = ListGroupsRequest::default();
    if v >= 4 {
        r = r.with_states_filter(vec![text("Stable"), text("Empty")]);
    }
    if v >= 5 {
        r = r.with_types_filter(vec![text("classic")]);
    }
    if v >= 3 { r.with_unknown_tagged_field(6, Bytes::from_static(b"tag")) } else { r }
}

fn sample_delete_groups(v: i16) -> DeleteGroupsRequest {
    let r = DeleteGroupsRequest::default()
        .with_groups_names(vec![group("orders-consumers"), group("audit-consumers")]);
    if v >= 2 { r.with_unknown_tagged_field(6, Bytes::from_static(b"tag")) } else { r }
}

fn sample_offset_delete() -> OffsetDeleteRequest {
    let partition = |p| OffsetDeleteRequestPartition::default().with_partition_index(p);
    OffsetDeleteRequest::default().with_group_id(group("orders-consumers")).with_topics(vec![
        OffsetDeleteRequestTopic::default()
            .with_name(name("orders"))
            .with_partitions(vec![partition(0), partition(1)]),
        OffsetDeleteRequestTopic::default().with_name(name("audit")),
    ])
}

fn sample_describe_quorum() -> DescribeQuorumRequest {
    let partition = |p| DescribeQuorumPartitionData::default().with_partition_index(p);
    DescribeQuorumRequest::default()
        .with_topics(vec![
            DescribeQuorumTopicData::default()
                .with_topic_name(name("__cluster_metadata"))
                .with_partitions(vec![partition(0), partition(1)]),
            DescribeQuorumTopicData::default().with_topic_name(name("other")),
        ])
        .with_unknown_tagged_field(5, Bytes::from_static(b"tag"))
}

fn sample_elect_leaders(v: i16) -> ElectLeadersRequest {
    let topic = |n, partitions| {
        ElectTopicPartitions::default().with_topic(name(n)).with_partitions(partitions)
    };
    let r = ElectLeadersRequest::default()
        .with_topic_partitions(Some(vec![topic("a", vec![0, 1]), topic("b", vec![2])]))
        .with_timeout_ms(5000);
    let r = if v >= 1 { r.with_election_type(1) } else { r };
    if v >= 2 { r.with_unknown_tagged_field(5, Bytes::from_static(b"tag")) } else { r }
}

fn sample_describe_log_dirs(v: i16) -> DescribeLogDirsRequest {
    let topic = |n, partitions| {
        DescribableLogDirTopic::default().with_topic(name(n)).with_partitions(partitions)
    };
    let r = DescribeLogDirsRequest::default()
        .with_topics(Some(vec![topic("a", vec![0, 1]), topic("b", vec![2])]));
    if v >= 2 { r.with_unknown_tagged_field(5, Bytes::from_static(b"tag")) } else { r }
}

fn sample_alter_reassignments() -> AlterPartitionReassignmentsRequest {
    let partition = |p, replicas: Option<Vec<i32>>| {
        ReassignablePartition::default()
            .with_partition_index(p)
            .with_replicas(replicas.map(|r| r.into_iter().map(BrokerId).collect()))
    };
    AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![
            ReassignableTopic::default()
                .with_name(name("a"))
                .with_partitions(vec![partition(0, Some(vec![1, 2, 3])), partition(1, None)]),
            ReassignableTopic::default().with_name(name("b")),
        ])
        .with_unknown_tagged_field(5, Bytes::from_static(b"tag"))
}

fn sample_list_reassignments() -> ListPartitionReassignmentsRequest {
    ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(Some(vec![
            ListPartitionReassignmentsTopics::default()
                .with_name(name("a"))
                .with_partition_indexes(vec![0, 3]),
            ListPartitionReassignmentsTopics::default().with_name(name("b")),
        ]))
        .with_unknown_tagged_field(5, Bytes::from_static(b"tag"))
}

// The transaction APIs' samples: each flexible version carries an unknown tagged field (tag 6),
// to exercise the skip.

fn txn_id(s: &'static str) -> TransactionalId {
    TransactionalId(text(s))
}

fn sample_add_partitions_to_txn(v: i16) -> AddPartitionsToTxnRequest {
    let topic = |n, partitions: Vec<i32>| {
        AddPartitionsToTxnTopic::default().with_name(name(n)).with_partitions(partitions)
    };
    let r = AddPartitionsToTxnRequest::default();
    let r = if v <= 3 {
        // A producer adding its partitions (a topic without partitions included).
        r.with_v3_and_below_transactional_id(txn_id("tx-1"))
            .with_v3_and_below_producer_id(ProducerId(4_711))
            .with_v3_and_below_producer_epoch(7)
            .with_v3_and_below_topics(vec![topic("orders", vec![0, 1, 2]), topic("audit", vec![])])
    } else {
        // A leader verifying two transactions (KIP-890 part 1), one adding, one without topics.
        r.with_transactions(vec![
            AddPartitionsToTxnTransaction::default()
                .with_transactional_id(txn_id("tx-1"))
                .with_producer_id(ProducerId(4_711))
                .with_producer_epoch(7)
                .with_verify_only(true)
                .with_topics(vec![topic("orders", vec![0, 1]), topic("audit", vec![3])])
                .with_unknown_tagged_field(6, Bytes::from_static(b"tag")),
            AddPartitionsToTxnTransaction::default()
                .with_transactional_id(txn_id("tx-2"))
                .with_producer_id(ProducerId(4_712)),
        ])
    };
    if v >= 3 { r.with_unknown_tagged_field(6, Bytes::from_static(b"tag")) } else { r }
}

fn sample_add_offsets_to_txn(v: i16) -> AddOffsetsToTxnRequest {
    let r = AddOffsetsToTxnRequest::default()
        .with_transactional_id(txn_id("tx-1"))
        .with_producer_id(ProducerId(4_711))
        .with_producer_epoch(7)
        .with_group_id(group("orders-consumers"));
    if v >= 3 { r.with_unknown_tagged_field(6, Bytes::from_static(b"tag")) } else { r }
}

fn sample_end_txn(v: i16) -> EndTxnRequest {
    // Even versions commit, odd ones abort.
    let r = EndTxnRequest::default()
        .with_transactional_id(txn_id("tx-1"))
        .with_producer_id(ProducerId(4_711))
        .with_producer_epoch(7)
        .with_committed(v % 2 == 0);
    if v >= 3 { r.with_unknown_tagged_field(6, Bytes::from_static(b"tag")) } else { r }
}

fn sample_txn_offset_commit(v: i16) -> TxnOffsetCommitRequest {
    // An offset with metadata, one with null metadata, and a topic without partitions.
    let partition = |p: i32, metadata: Option<StrBytes>| {
        let tp = TxnOffsetCommitRequestPartition::default()
            .with_partition_index(p)
            .with_committed_offset(100 * i64::from(p) + 7)
            .with_committed_metadata(metadata);
        if v >= 2 { tp.with_committed_leader_epoch(4) } else { tp }
    };
    let mut r = TxnOffsetCommitRequest::default()
        .with_transactional_id(txn_id("tx-1"))
        .with_group_id(group("orders-consumers"))
        .with_producer_id(ProducerId(4_711))
        .with_producer_epoch(7)
        .with_topics(vec![
            TxnOffsetCommitRequestTopic::default()
                .with_name(name("orders"))
                .with_partitions(vec![partition(0, Some(text("by-app"))), partition(1, None)]),
            TxnOffsetCommitRequestTopic::default().with_name(name("audit")),
        ]);
    if v >= 3 {
        // KIP-447: the consumer's generation; odd versions from a static member.
        let instance = if v % 2 == 1 { Some(text("instance-1")) } else { None };
        r = r
            .with_generation_id(3)
            .with_member_id(text("member-1"))
            .with_group_instance_id(instance)
            .with_unknown_tagged_field(6, Bytes::from_static(b"tag"));
    }
    r
}

fn sample_write_txn_markers() -> WriteTxnMarkersRequest {
    let topic = |n, partitions: Vec<i32>| {
        WritableTxnMarkerTopic::default().with_name(name(n)).with_partition_indexes(partitions)
    };
    WriteTxnMarkersRequest::default()
        .with_markers(vec![
            WritableTxnMarker::default()
                .with_producer_id(ProducerId(4_711))
                .with_producer_epoch(7)
                .with_transaction_result(true)
                .with_topics(vec![topic("orders", vec![0, 1]), topic("audit", vec![])])
                .with_coordinator_epoch(2),
            WritableTxnMarker::default()
                .with_producer_id(ProducerId(4_712))
                .with_transaction_result(false)
                .with_coordinator_epoch(2),
        ])
        .with_unknown_tagged_field(6, Bytes::from_static(b"tag"))
}

fn sample_describe_transactions() -> DescribeTransactionsRequest {
    DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![txn_id("tx-1"), txn_id(""), txn_id("tx-2")])
        .with_unknown_tagged_field(6, Bytes::from_static(b"tag"))
}

fn sample_list_transactions(v: i16) -> ListTransactionsRequest {
    let mut r = ListTransactionsRequest::default()
        .with_state_filters(vec![text("Ongoing"), text("PrepareCommit")])
        .with_producer_id_filters(vec![ProducerId(4_711), ProducerId(4_712)])
        .with_unknown_tagged_field(6, Bytes::from_static(b"tag"));
    if v >= 1 {
        r = r.with_duration_filter(60_000);
    }
    if v >= 2 {
        r = r.with_transactional_id_pattern(Some(text("tx-.*")));
    }
    r
}

/// A request as a client sends it, without the length prefix: header then body.
fn encode_request(api: ApiKey, version: i16, correlation_id: i32, body: &RequestKind) -> Bytes {
    let mut header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(text("net-test")));
    if api.request_header_version(version) >= 2 {
        header = header.with_unknown_tagged_field(7, Bytes::from_static(b"tag"));
    }
    let mut buf = BytesMut::new();
    header.encode(&mut buf, api.request_header_version(version)).expect("header encodes");
    body.encode(&mut buf, version).expect("body encodes");
    buf.freeze()
}

/// Every served `(api, version)`, encoded with a distinct correlation id.
fn served_requests() -> Vec<(ApiKey, i16, Bytes)> {
    let mut out = Vec::new();
    for &(api, min, max) in SUPPORTED {
        for v in min..=max {
            let correlation_id = 1000 * i32::from(api as i16) + i32::from(v);
            out.push((api, v, encode_request(api, v, correlation_id, &sample_body(api, v))));
        }
    }
    out
}

fn decode_ok(frame: Bytes) -> Request {
    match decode_request(frame) {
        Ok(r) => r,
        Err(e) => panic!("decode failed: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding.

#[test]
fn every_served_version_round_trips() {
    for &(api, min, max) in SUPPORTED {
        for v in min..=max {
            let body = sample_body(api, v);
            let req = decode_ok(encode_request(api, v, 42, &body));
            assert_eq!(req.api_key, api);
            assert_eq!(req.version(), v);
            assert_eq!(req.correlation_id(), 42);
            assert_eq!(req.header.client_id.as_deref(), Some("net-test"));
            assert_eq!(req.body, body, "{api:?} v{v}");
        }
    }
}

#[test]
fn decodes_the_named_versions_field_by_field() {
    // ApiVersions v0 (header v1, empty body) and v3 (header v2, flexible).
    let req =
        decode_ok(encode_request(ApiKey::ApiVersions, 0, 1, &sample_body(ApiKey::ApiVersions, 0)));
    assert!(
        matches!(req.body, RequestKind::ApiVersions(ref b) if b.client_software_name.is_empty())
    );
    let req =
        decode_ok(encode_request(ApiKey::ApiVersions, 3, 2, &sample_body(ApiKey::ApiVersions, 3)));
    let RequestKind::ApiVersions(b) = &req.body else { panic!("not ApiVersions") };
    assert_eq!(&*b.client_software_name, "odradek-net-test");
    assert_eq!(req.header.unknown_tagged_fields.get(&7).map(|b| &b[..]), Some(&b"tag"[..]));

    // Metadata v1 and v12.
    for v in [1, 12] {
        let req =
            decode_ok(encode_request(ApiKey::Metadata, v, 3, &sample_body(ApiKey::Metadata, v)));
        let RequestKind::Metadata(m) = &req.body else { panic!("not Metadata") };
        let names: Vec<_> = m
            .topics
            .iter()
            .flatten()
            .filter_map(|t| t.name.as_deref().map(|n| n.to_string()))
            .collect();
        assert_eq!(names, ["orders", "audit"], "Metadata v{v}");
    }

    // Produce v3 and v9 carry the records blob byte for byte, sharing the frame's buffer.
    let blob = records_blob();
    for v in [3, 9] {
        let frame = encode_request(ApiKey::Produce, v, 4, &sample_body(ApiKey::Produce, v));
        let frame_range = frame.as_ptr_range();
        let req = decode_ok(frame);
        assert!(req.expects_response());
        let RequestKind::Produce(p) = &req.body else { panic!("not Produce") };
        assert_eq!(p.acks, -1);
        assert_eq!(&*p.topic_data[0].name, "orders");
        let records = p.topic_data[0].partition_data[0].records.as_ref().expect("records");
        assert_eq!(records, &blob, "Produce v{v}");
        assert!(frame_range.contains(&records.as_ptr()), "records are a slice of the frame");
        assert_eq!(p.topic_data[1].partition_data[2].records, None);
    }

    // Fetch v4 (names) and v13 (topic ids).
    let req = decode_ok(encode_request(ApiKey::Fetch, 4, 5, &sample_body(ApiKey::Fetch, 4)));
    let RequestKind::Fetch(f) = &req.body else { panic!("not Fetch") };
    assert_eq!(&*f.topics[0].topic, "orders");
    assert_eq!(f.topics[0].partitions[1].fetch_offset, 101);
    let req = decode_ok(encode_request(ApiKey::Fetch, 13, 6, &sample_body(ApiKey::Fetch, 13)));
    let RequestKind::Fetch(f) = &req.body else { panic!("not Fetch") };
    assert_eq!(f.topics[0].topic_id, with_uuid(5).topic_id);
    assert_eq!(f.cluster_id.as_deref(), Some("cluster-1"));
    assert_eq!(f.forgotten_topics_data[0].partitions, [4, 5, 6]);

    // FindCoordinator v0 (one key, implicitly a group) and v4 (a batch of keys).
    let sample = |v| sample_body(ApiKey::FindCoordinator, v);
    let req = decode_ok(encode_request(ApiKey::FindCoordinator, 0, 7, &sample(0)));
    let RequestKind::FindCoordinator(f) = &req.body else { panic!("not FindCoordinator") };
    assert_eq!((&*f.key, f.key_type), ("orders-consumers", 0));
    assert!(f.coordinator_keys.is_empty());
    let req = decode_ok(encode_request(ApiKey::FindCoordinator, 4, 8, &sample(4)));
    let RequestKind::FindCoordinator(f) = &req.body else { panic!("not FindCoordinator") };
    assert!(f.key.is_empty());
    let keys: Vec<&str> = f.coordinator_keys.iter().map(|k| &**k).collect();
    assert_eq!(keys, ["orders-consumers", "", "audit-consumers"]);
    assert_eq!(f.unknown_tagged_fields.get(&4).map(|b| &b[..]), Some(&b"tag"[..]));

    // InitProducerId v0 (idempotent: null transactional id; no producer id or epoch on the wire,
    // so both decode as -1) and v3 (transactional, with the id and epoch it has, flexible).
    let sample = |v| sample_body(ApiKey::InitProducerId, v);
    let req = decode_ok(encode_request(ApiKey::InitProducerId, 0, 9, &sample(0)));
    let RequestKind::InitProducerId(i) = &req.body else { panic!("not InitProducerId") };
    assert_eq!(i.transactional_id, None);
    assert_eq!(i.transaction_timeout_ms, i32::MAX);
    assert_eq!((i.producer_id, i.producer_epoch), (ProducerId(-1), -1));
    let req = decode_ok(encode_request(ApiKey::InitProducerId, 3, 10, &sample(3)));
    let RequestKind::InitProducerId(i) = &req.body else { panic!("not InitProducerId") };
    assert_eq!(i.transactional_id.as_deref().map(|t| &**t), Some("tx-1"));
    assert_eq!(i.transaction_timeout_ms, 60_000);
    assert_eq!((i.producer_id, i.producer_epoch), (ProducerId(4_711), 7));
    assert_eq!(i.unknown_tagged_fields.get(&5).map(|b| &b[..]), Some(&b"tag"[..]));

    // JoinGroup v0 (no rebalance timeout on the wire: it decodes as -1, and Kafka uses the
    // session timeout) and v8 (a first join: empty member id; `reason` after the protocols).
    let sample = |v| sample_body(ApiKey::JoinGroup, v);
    let req = decode_ok(encode_request(ApiKey::JoinGroup, 0, 11, &sample(0)));
    let RequestKind::JoinGroup(j) = &req.body else { panic!("not JoinGroup") };
    assert_eq!((&**j.group_id, j.session_timeout_ms), ("orders-consumers", 45_000));
    assert_eq!((j.rebalance_timeout_ms, &*j.member_id), (-1, "member-1"));
    let protocols: Vec<&str> = j.protocols.iter().map(|p| &*p.name).collect();
    assert_eq!(protocols, ["range", "cooperative-sticky"]);
    assert_eq!(&j.protocols[0].metadata[..2], &[0, 3]);
    let req = decode_ok(encode_request(ApiKey::JoinGroup, 8, 12, &sample(8)));
    let RequestKind::JoinGroup(j) = &req.body else { panic!("not JoinGroup") };
    assert_eq!((j.rebalance_timeout_ms, &*j.member_id), (300_000, ""));
    assert_eq!(j.group_instance_id.as_deref(), Some("instance-1"));
    assert_eq!(j.reason.as_deref(), Some("rebalance after metadata change"));
    assert!(j.protocols[1].metadata.is_empty());

    // LeaveGroup v2 (one member id) and v3 (a batch, by member id or by instance id).
    let sample = |v| sample_body(ApiKey::LeaveGroup, v);
    let req = decode_ok(encode_request(ApiKey::LeaveGroup, 2, 13, &sample(2)));
    let RequestKind::LeaveGroup(l) = &req.body else { panic!("not LeaveGroup") };
    assert_eq!((&*l.member_id, l.members.len()), ("member-1", 0));
    let req = decode_ok(encode_request(ApiKey::LeaveGroup, 3, 14, &sample(3)));
    let RequestKind::LeaveGroup(l) = &req.body else { panic!("not LeaveGroup") };
    assert!(l.member_id.is_empty());
    assert_eq!(
        (&*l.members[0].member_id, l.members[0].group_instance_id.as_deref()),
        ("member-1", None)
    );
    assert_eq!(
        (&*l.members[1].member_id, l.members[1].group_instance_id.as_deref()),
        ("", Some("instance-2"))
    );

    // OffsetCommit v2 (with a retention time) and v9 (none on the wire: -1; leader epochs).
    let sample = |v| sample_body(ApiKey::OffsetCommit, v);
    let req = decode_ok(encode_request(ApiKey::OffsetCommit, 2, 15, &sample(2)));
    let RequestKind::OffsetCommit(c) = &req.body else { panic!("not OffsetCommit") };
    assert_eq!((c.generation_id_or_member_epoch, c.retention_time_ms), (3, 86_400_000));
    let p = &c.topics[0].partitions;
    assert_eq!((p[0].committed_offset, p[0].committed_leader_epoch), (7, -1));
    assert_eq!(
        (p[0].committed_metadata.as_deref(), p[1].committed_metadata.as_deref()),
        (Some("by-app"), None)
    );
    let req = decode_ok(encode_request(ApiKey::OffsetCommit, 9, 16, &sample(9)));
    let RequestKind::OffsetCommit(c) = &req.body else { panic!("not OffsetCommit") };
    assert_eq!((c.retention_time_ms, c.group_instance_id.as_deref()), (-1, Some("instance-1")));
    assert_eq!(c.topics[0].partitions[1].committed_leader_epoch, 4);
    assert!(c.topics[1].partitions.is_empty());
    // Topic ids are OffsetCommit v10's: never on the wire below it.
    assert!(c.topics[0].topic_id.is_nil());

    // OffsetFetch v1 (named topics), v2 (null: every topic) and v8 (a batch of groups).
    let sample = |v| sample_body(ApiKey::OffsetFetch, v);
    let req = decode_ok(encode_request(ApiKey::OffsetFetch, 1, 17, &sample(1)));
    let RequestKind::OffsetFetch(f) = &req.body else { panic!("not OffsetFetch") };
    let topics = f.topics.as_ref().expect("named topics");
    assert_eq!((&**topics[0].name, &topics[0].partition_indexes[..]), ("orders", &[0, 1, 2][..]));
    let req = decode_ok(encode_request(ApiKey::OffsetFetch, 2, 18, &sample(2)));
    let RequestKind::OffsetFetch(f) = &req.body else { panic!("not OffsetFetch") };
    assert_eq!((&**f.group_id, f.topics.as_ref()), ("orders-consumers", None));
    let req = decode_ok(encode_request(ApiKey::OffsetFetch, 8, 19, &sample(8)));
    let RequestKind::OffsetFetch(f) = &req.body else { panic!("not OffsetFetch") };
    assert!(f.group_id.is_empty() && f.require_stable);
    let groups: Vec<&str> = f.groups.iter().map(|g| &**g.group_id).collect();
    assert_eq!(groups, ["orders-consumers", "audit-consumers"]);
    assert_eq!(f.groups[0].topics.as_ref().map(|t| t.len()), Some(2));
    assert_eq!((f.groups[0].member_id.as_ref(), f.groups[0].member_epoch), (None, -1));
    assert_eq!(f.groups[1].topics, None);
}

#[test]
fn decodes_the_transaction_requests_field_by_field() {
    // AddPartitionsToTxn v3 (a producer's one transaction) and v4 (a leader's batch, KIP-890).
    let sample = |v| sample_body(ApiKey::AddPartitionsToTxn, v);
    let req = decode_ok(encode_request(ApiKey::AddPartitionsToTxn, 3, 20, &sample(3)));
    let RequestKind::AddPartitionsToTxn(a) = &req.body else { panic!("not AddPartitionsToTxn") };
    assert_eq!(&**a.v3_and_below_transactional_id, "tx-1");
    assert_eq!((a.v3_and_below_producer_id, a.v3_and_below_producer_epoch), (ProducerId(4_711), 7));
    let topics = &a.v3_and_below_topics;
    assert_eq!((&**topics[0].name, &topics[0].partitions[..]), ("orders", &[0, 1, 2][..]));
    assert!(topics[1].partitions.is_empty() && a.transactions.is_empty());
    let req = decode_ok(encode_request(ApiKey::AddPartitionsToTxn, 4, 21, &sample(4)));
    let RequestKind::AddPartitionsToTxn(a) = &req.body else { panic!("not AddPartitionsToTxn") };
    assert!(a.v3_and_below_transactional_id.is_empty() && a.v3_and_below_topics.is_empty());
    let t = &a.transactions;
    assert_eq!((&**t[0].transactional_id, t[0].verify_only, t[0].topics.len()), ("tx-1", true, 2));
    assert_eq!((&**t[1].transactional_id, t[1].verify_only, t[1].topics.len()), ("tx-2", false, 0));
    assert_eq!(t[0].unknown_tagged_fields.get(&6).map(|b| &b[..]), Some(&b"tag"[..]));

    // EndTxn v0 commits, v3 aborts.
    let req = decode_ok(encode_request(ApiKey::EndTxn, 0, 22, &sample_body(ApiKey::EndTxn, 0)));
    let RequestKind::EndTxn(e) = &req.body else { panic!("not EndTxn") };
    assert_eq!(
        (&**e.transactional_id, e.producer_id, e.committed),
        ("tx-1", ProducerId(4_711), true)
    );
    let req = decode_ok(encode_request(ApiKey::EndTxn, 3, 23, &sample_body(ApiKey::EndTxn, 3)));
    let RequestKind::EndTxn(e) = &req.body else { panic!("not EndTxn") };
    assert!(!e.committed);

    // TxnOffsetCommit v0 (no generation on the wire: -1, "", null) and v3 (KIP-447).
    let sample = |v| sample_body(ApiKey::TxnOffsetCommit, v);
    let req = decode_ok(encode_request(ApiKey::TxnOffsetCommit, 0, 24, &sample(0)));
    let RequestKind::TxnOffsetCommit(c) = &req.body else { panic!("not TxnOffsetCommit") };
    assert_eq!((&**c.transactional_id, &**c.group_id), ("tx-1", "orders-consumers"));
    assert_eq!((c.generation_id, &*c.member_id, c.group_instance_id.as_deref()), (-1, "", None));
    let p = &c.topics[0].partitions;
    assert_eq!((p[0].committed_offset, p[0].committed_leader_epoch), (7, -1));
    assert_eq!(p[1].committed_metadata, None);
    let req = decode_ok(encode_request(ApiKey::TxnOffsetCommit, 3, 25, &sample(3)));
    let RequestKind::TxnOffsetCommit(c) = &req.body else { panic!("not TxnOffsetCommit") };
    assert_eq!(
        (c.generation_id, &*c.member_id, c.group_instance_id.as_deref()),
        (3, "member-1", Some("instance-1"))
    );
    assert_eq!(c.topics[0].partitions[1].committed_leader_epoch, 4);

    // WriteTxnMarkers v1: a commit and an abort marker.
    let body = sample_body(ApiKey::WriteTxnMarkers, 1);
    let req = decode_ok(encode_request(ApiKey::WriteTxnMarkers, 1, 26, &body));
    let RequestKind::WriteTxnMarkers(w) = &req.body else { panic!("not WriteTxnMarkers") };
    let m = &w.markers;
    assert_eq!(
        (m[0].producer_id, m[0].transaction_result, m[0].coordinator_epoch),
        (ProducerId(4_711), true, 2)
    );
    assert_eq!(m[0].topics[0].partition_indexes, [0, 1]);
    assert!(!m[1].transaction_result && m[1].topics.is_empty());

    // ListTransactions v0 (no duration on the wire: -1, every transaction) and v1 (KIP-994).
    let sample = |v| sample_body(ApiKey::ListTransactions, v);
    let req = decode_ok(encode_request(ApiKey::ListTransactions, 0, 27, &sample(0)));
    let RequestKind::ListTransactions(l) = &req.body else { panic!("not ListTransactions") };
    assert_eq!(l.duration_filter, -1);
    assert_eq!(l.producer_id_filters, [ProducerId(4_711), ProducerId(4_712)]);
    let states: Vec<&str> = l.state_filters.iter().map(|s| &**s).collect();
    assert_eq!(states, ["Ongoing", "PrepareCommit"]);
    let req = decode_ok(encode_request(ApiKey::ListTransactions, 1, 28, &sample(1)));
    let RequestKind::ListTransactions(l) = &req.body else { panic!("not ListTransactions") };
    assert_eq!((l.duration_filter, l.transactional_id_pattern.as_deref()), (60_000, None));
}

#[test]
fn find_coordinator_accepts_transaction_keys_in_every_version_with_a_key_type() {
    // A transactional producer looks up its coordinator with key type 1 (TRANSACTION), from v1
    // (v0 has no key type: always a group) to v6, one key or (v4+) a batch.
    for v in 1..=6 {
        let r = FindCoordinatorRequest::default().with_key_type(1);
        let r = if v <= 3 {
            r.with_key(text("tx-1"))
        } else {
            r.with_coordinator_keys(vec![text("tx-1"), text("tx-2")])
        };
        let body = RequestKind::FindCoordinator(r);
        let req = decode_ok(encode_request(ApiKey::FindCoordinator, v, 29, &body));
        let RequestKind::FindCoordinator(f) = &req.body else { panic!("not FindCoordinator") };
        assert_eq!(f.key_type, 1, "v{v}");
        let keys: Vec<&str> =
            if v <= 3 { vec![&*f.key] } else { f.coordinator_keys.iter().map(|k| &**k).collect() };
        assert_eq!(keys[0], "tx-1", "v{v}");
        assert_eq!(req.body, body, "v{v}");
    }
}

#[test]
fn isolation_levels_are_decoded() {
    // read_committed (1) consumers must be told apart: Fetch carries it in every served
    // version, ListOffsets from v2 (v1 has none: read_uncommitted).
    let (min, max) = versions::supported(ApiKey::Fetch).expect("Fetch is served");
    for v in min..=max {
        let req = decode_ok(encode_request(ApiKey::Fetch, v, 30, &sample_body(ApiKey::Fetch, v)));
        let RequestKind::Fetch(f) = &req.body else { panic!("not Fetch") };
        assert_eq!(f.isolation_level, 1, "Fetch v{v}");
    }
    let (min, max) = versions::supported(ApiKey::ListOffsets).expect("ListOffsets is served");
    for v in min..=max {
        let body = sample_body(ApiKey::ListOffsets, v);
        let req = decode_ok(encode_request(ApiKey::ListOffsets, v, 31, &body));
        let RequestKind::ListOffsets(l) = &req.body else { panic!("not ListOffsets") };
        assert_eq!(l.isolation_level, if v >= 2 { 1 } else { 0 }, "ListOffsets v{v}");
    }
}

#[test]
fn header_versions_follow_flexibility() {
    // The first flexible version of each served API (KIP-482), from Kafka's message schemas.
    let first_flexible = |api| match api {
        ApiKey::ApiVersions => 3,
        ApiKey::Metadata | ApiKey::Produce => 9,
        ApiKey::Fetch => 12,
        ApiKey::ListOffsets => 6,
        ApiKey::CreateTopics => 5,
        ApiKey::DeleteTopics => 4,
        ApiKey::DescribeConfigs | ApiKey::OffsetForLeaderEpoch => 4,
        ApiKey::IncrementalAlterConfigs => 1,
        ApiKey::AlterConfigs => 2,
        ApiKey::CreatePartitions | ApiKey::DeleteRecords => 2,
        ApiKey::DescribeCluster => 0,
        ApiKey::FindCoordinator => 3,
        ApiKey::InitProducerId => 2,
        ApiKey::OffsetCommit => 8,
        ApiKey::OffsetFetch | ApiKey::JoinGroup => 6,
        ApiKey::Heartbeat | ApiKey::LeaveGroup | ApiKey::SyncGroup => 4,
        ApiKey::DescribeGroups => 5,
        ApiKey::ListGroups => 3,
        ApiKey::DeleteGroups => 2,
        ApiKey::OffsetDelete => i16::MAX, // never
        ApiKey::DescribeQuorum | ApiKey::UnregisterBroker => 0,
        ApiKey::ElectLeaders => 2,
        ApiKey::AlterPartitionReassignments | ApiKey::ListPartitionReassignments => 0,
        ApiKey::DescribeLogDirs => 2,
        ApiKey::SaslHandshake => i16::MAX, // never
        ApiKey::SaslAuthenticate | ApiKey::CreateAcls | ApiKey::DescribeAcls => 2,
        ApiKey::DeleteAcls => 2,
        ApiKey::DescribeUserScramCredentials | ApiKey::AlterUserScramCredentials => 0,
        ApiKey::DescribeClientQuotas | ApiKey::AlterClientQuotas => 1,
        ApiKey::AddPartitionsToTxn | ApiKey::AddOffsetsToTxn => 3,
        ApiKey::EndTxn | ApiKey::TxnOffsetCommit => 3,
        ApiKey::WriteTxnMarkers => 1,
        ApiKey::DescribeTransactions | ApiKey::ListTransactions => 0,
        other => panic!("{other:?}"),
    };
    for &(api, min, max) in SUPPORTED {
        for v in min..=max {
            let flexible = v >= first_flexible(api);
            assert_eq!(api.request_header_version(v), if flexible { 2 } else { 1 }, "{api:?} v{v}");
            let response_header = if api == ApiKey::ApiVersions {
                0 // always: the client reads it before it knows the broker's versions
            } else if flexible {
                1
            } else {
                0
            };
            assert_eq!(api.response_header_version(v), response_header, "{api:?} v{v}");
        }
    }
}

#[test]
fn too_short_unknown_and_unserved() {
    let full = encode_request(ApiKey::Metadata, 1, 77, &sample_body(ApiKey::Metadata, 1));
    for len in 0..8 {
        assert_eq!(decode_request(full.slice(..len)), Err(DecodeError::TooShort { len }));
    }

    let mut unknown = BytesMut::new();
    unknown.put_i16(9999);
    unknown.put_i16(1);
    unknown.put_i32(78);
    unknown.put_i16(-1);
    let err = decode_request(unknown.freeze()).expect_err("unknown key");
    assert_eq!(err, DecodeError::UnknownApi { key: 9999, version: 1, correlation_id: 78 });
    assert_eq!(err.correlation_id(), Some(78));
    assert_eq!(versions::answer_for_decode_error(&err), None, "closes the connection");

    // KIP-848's consumer-group API: the new protocol, not served (the classic one is).
    let heartbeat = RequestKind::ConsumerGroupHeartbeat(ConsumerGroupHeartbeatRequest::default());
    let err = decode_request(encode_request(ApiKey::ConsumerGroupHeartbeat, 0, 79, &heartbeat))
        .expect_err("unserved API");
    assert_eq!(
        err,
        DecodeError::UnsupportedApi {
            api: ApiKey::ConsumerGroupHeartbeat,
            version: 0,
            correlation_id: 79
        }
    );
    assert_eq!(versions::answer_for_decode_error(&err), None);
    assert_eq!(
        err.to_string(),
        "ConsumerGroupHeartbeat (key 68) is not served by this broker (version 0, correlation id \
         79)"
    );
}

#[test]
fn unsupported_versions_are_refused_before_the_body() {
    let cases = [
        (ApiKey::Produce, 2, 3, 11),
        (ApiKey::Produce, 12, 3, 11),
        (ApiKey::Produce, 13, 3, 11),
        (ApiKey::Fetch, 17, 4, 16),
        (ApiKey::Metadata, 13, 0, 12),
        (ApiKey::ListOffsets, 9, 1, 8),
        (ApiKey::DescribeConfigs, 0, 1, 4),
        (ApiKey::OffsetForLeaderEpoch, 1, 2, 4),
        (ApiKey::DescribeCluster, 2, 0, 1),
        (ApiKey::FindCoordinator, 7, 0, 6),
        (ApiKey::FindCoordinator, -1, 0, 6),
        // v6 (KIP-939) is in kafka-protocol's `valid_versions`, not in its request decoder.
        (ApiKey::InitProducerId, 6, 0, 5),
        (ApiKey::InitProducerId, -1, 0, 5),
        // v0–v1 were removed in Kafka 4.0 (KIP-896); v10 (topic ids) is in kafka-protocol's
        // `valid_versions`, not in its request decoder.
        (ApiKey::OffsetCommit, 1, 2, 9),
        (ApiKey::OffsetCommit, 10, 2, 9),
        (ApiKey::OffsetFetch, 0, 1, 9),
        (ApiKey::OffsetFetch, 10, 1, 9),
        (ApiKey::JoinGroup, 10, 0, 9),
        (ApiKey::JoinGroup, -1, 0, 9),
        (ApiKey::Heartbeat, 5, 0, 4),
        (ApiKey::LeaveGroup, 6, 0, 5),
        (ApiKey::SyncGroup, 6, 0, 5),
        (ApiKey::DescribeGroups, 7, 0, 6),
        (ApiKey::ListGroups, 6, 0, 5),
        (ApiKey::DeleteGroups, 3, 0, 2),
        (ApiKey::OffsetDelete, 1, 0, 0),
    ];
    for (api, version, min, max) in cases {
        let mut frame = BytesMut::new();
        frame.put_i16(api as i16);
        frame.put_i16(version);
        frame.put_i32(80);
        // No header or body at all: refused on the first 8 bytes alone.
        let err = decode_request(frame.freeze()).expect_err("unsupported");
        assert_eq!(
            err,
            DecodeError::UnsupportedVersion { api, version, min, max, correlation_id: 80 }
        );
        assert_eq!(versions::answer_for_decode_error(&err), None, "{api:?} v{version} closes");
    }
}

#[test]
fn malformed_header_and_body() {
    // client_id says 100 bytes, 3 follow.
    let mut frame = BytesMut::new();
    frame.put_i16(ApiKey::Metadata as i16);
    frame.put_i16(1);
    frame.put_i32(81);
    frame.put_i16(100);
    frame.put_slice(b"abc");
    match decode_request(frame.freeze()) {
        Err(DecodeError::Malformed {
            api: ApiKey::Metadata,
            version: 1,
            correlation_id: 81,
            part: "header",
            ..
        }) => {}
        other => panic!("expected a malformed header, got {other:?}"),
    }

    // The body of PR #152's repro: Metadata v0 claiming 54 265 856 topics in 5 bytes.
    let mut frame = BytesMut::new();
    frame.put_i16(ApiKey::Metadata as i16);
    frame.put_i16(0);
    frame.put_i32(82);
    frame.put_i16(-1);
    frame.put_slice(&[0x03, 0x3c, 0x0c, 0x00, 0xb6]);
    match decode_request(frame.freeze()) {
        Err(DecodeError::Malformed { part: "body", reason, correlation_id: 82, .. }) => {
            assert!(
                reason.contains("Metadata.topics") && reason.contains("cannot fit"),
                "{reason}"
            );
        }
        other => panic!("expected a refused array count, got {other:?}"),
    }
}

#[test]
fn acks_zero_expects_no_response() {
    let body = RequestKind::Produce(sample_produce(9).with_acks(0));
    assert!(!decode_ok(encode_request(ApiKey::Produce, 9, 1, &body)).expects_response());
    let body = RequestKind::Produce(sample_produce(9).with_acks(1));
    assert!(decode_ok(encode_request(ApiKey::Produce, 9, 1, &body)).expects_response());
    assert!(
        decode_ok(encode_request(ApiKey::Metadata, 1, 1, &sample_body(ApiKey::Metadata, 1)))
            .expects_response()
    );
}

#[test]
fn framed_request_end_to_end() {
    let body = encode_request(ApiKey::Metadata, 12, 83, &sample_body(ApiKey::Metadata, 12));
    let mut wire = BytesMut::new();
    frame::encode_frame(&body, &mut wire).expect("frames");
    wire.put_slice(&[0, 0]); // the start of the next frame
    let frame = frame::split_frame(&mut wire, SOCKET_REQUEST_MAX_BYTES_DEFAULT)
        .expect("valid prefix")
        .expect("whole frame");
    assert_eq!(decode_ok(frame).correlation_id(), 83);
    assert_eq!(&wire[..], &[0, 0]);
}

/// The versions kafka-protocol's *request* type of `api` encodes and decodes. Not always
/// `api.valid_versions()`, which spans request and response: InitProducerId's response knows
/// v6 (KIP-939), its request only v0–v5; OffsetCommit's and OffsetFetch's responses know v10
/// (topic ids), their requests stop at v9.
fn request_versions(api: ApiKey) -> VersionRange {
    match api {
        ApiKey::ApiVersions => ApiVersionsRequest::VERSIONS,
        ApiKey::Metadata => MetadataRequest::VERSIONS,
        ApiKey::Produce => ProduceRequest::VERSIONS,
        ApiKey::Fetch => FetchRequest::VERSIONS,
        ApiKey::ListOffsets => ListOffsetsRequest::VERSIONS,
        ApiKey::CreateTopics => CreateTopicsRequest::VERSIONS,
        ApiKey::DeleteTopics => DeleteTopicsRequest::VERSIONS,
        ApiKey::DescribeConfigs => DescribeConfigsRequest::VERSIONS,
        ApiKey::IncrementalAlterConfigs => IncrementalAlterConfigsRequest::VERSIONS,
        ApiKey::AlterConfigs => AlterConfigsRequest::VERSIONS,
        ApiKey::CreatePartitions => CreatePartitionsRequest::VERSIONS,
        ApiKey::DeleteRecords => DeleteRecordsRequest::VERSIONS,
        ApiKey::OffsetForLeaderEpoch => OffsetForLeaderEpochRequest::VERSIONS,
        ApiKey::DescribeCluster => DescribeClusterRequest::VERSIONS,
        ApiKey::FindCoordinator => FindCoordinatorRequest::VERSIONS,
        ApiKey::InitProducerId => InitProducerIdRequest::VERSIONS,
        ApiKey::OffsetCommit => OffsetCommitRequest::VERSIONS,
        ApiKey::OffsetFetch => OffsetFetchRequest::VERSIONS,
        ApiKey::JoinGroup => JoinGroupRequest::VERSIONS,
        ApiKey::Heartbeat => HeartbeatRequest::VERSIONS,
        ApiKey::LeaveGroup => LeaveGroupRequest::VERSIONS,
        ApiKey::SyncGroup => SyncGroupRequest::VERSIONS,
        ApiKey::DescribeGroups => DescribeGroupsRequest::VERSIONS,
        ApiKey::ListGroups => ListGroupsRequest::VERSIONS,
        ApiKey::DeleteGroups => DeleteGroupsRequest::VERSIONS,
        ApiKey::OffsetDelete => OffsetDeleteRequest::VERSIONS,
        ApiKey::DescribeQuorum => DescribeQuorumRequest::VERSIONS,
        ApiKey::UnregisterBroker => UnregisterBrokerRequest::VERSIONS,
        ApiKey::ElectLeaders => ElectLeadersRequest::VERSIONS,
        ApiKey::AlterPartitionReassignments => AlterPartitionReassignmentsRequest::VERSIONS,
        ApiKey::ListPartitionReassignments => ListPartitionReassignmentsRequest::VERSIONS,
        ApiKey::DescribeLogDirs => DescribeLogDirsRequest::VERSIONS,
        ApiKey::SaslHandshake => kafka_protocol::messages::SaslHandshakeRequest::VERSIONS,
        ApiKey::SaslAuthenticate => kafka_protocol::messages::SaslAuthenticateRequest::VERSIONS,
        ApiKey::CreateAcls => kafka_protocol::messages::CreateAclsRequest::VERSIONS,
        ApiKey::DescribeAcls => kafka_protocol::messages::DescribeAclsRequest::VERSIONS,
        ApiKey::DeleteAcls => kafka_protocol::messages::DeleteAclsRequest::VERSIONS,
        ApiKey::DescribeUserScramCredentials => {
            kafka_protocol::messages::DescribeUserScramCredentialsRequest::VERSIONS
        }
        ApiKey::AlterUserScramCredentials => {
            kafka_protocol::messages::AlterUserScramCredentialsRequest::VERSIONS
        }
        ApiKey::DescribeClientQuotas => {
            kafka_protocol::messages::DescribeClientQuotasRequest::VERSIONS
        }
        ApiKey::AlterClientQuotas => kafka_protocol::messages::AlterClientQuotasRequest::VERSIONS,
        ApiKey::AddPartitionsToTxn => AddPartitionsToTxnRequest::VERSIONS,
        ApiKey::AddOffsetsToTxn => AddOffsetsToTxnRequest::VERSIONS,
        ApiKey::EndTxn => EndTxnRequest::VERSIONS,
        ApiKey::TxnOffsetCommit => TxnOffsetCommitRequest::VERSIONS,
        ApiKey::WriteTxnMarkers => WriteTxnMarkersRequest::VERSIONS,
        ApiKey::DescribeTransactions => DescribeTransactionsRequest::VERSIONS,
        ApiKey::ListTransactions => ListTransactionsRequest::VERSIONS,
        other => panic!("no request range for {other:?}"),
    }
}

#[test]
fn served_ranges_are_within_the_request_decoders() {
    // `versions::tests::table_is_well_formed` checks `valid_versions`; a served version the
    // request type cannot decode would fail every request of it at runtime.
    for &(api, min, max) in SUPPORTED {
        let known = request_versions(api);
        assert!(known.min <= min && max <= known.max, "{api:?} {min}..={max} outside {known}");
        // Just past the range the decoder refuses the version itself.
        for v in [known.min - 1, known.max + 1] {
            let err = RequestKind::decode(api, &mut Bytes::new(), v).expect_err("out of range");
            assert!(format!("{err:#}").contains("version not supported"), "{api:?} v{v}: {err:#}");
        }
    }
    let init = request_versions(ApiKey::InitProducerId);
    assert_eq!((init.min, init.max), (0, 5));
    assert_eq!(ApiKey::InitProducerId.valid_versions().max, 6);
    for (api, min) in [(ApiKey::OffsetCommit, 2), (ApiKey::OffsetFetch, 1)] {
        let known = request_versions(api);
        assert_eq!((known.min, known.max), (min, 9), "{api:?}");
        assert_eq!(api.valid_versions().max, 10, "{api:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// The allocation bounds check.

#[test]
fn preflight_walks_exactly_what_kafka_protocol_encodes() {
    // Every version kafka-protocol's request type knows of every served API, not only the served
    // ones, so widening a range in `SUPPORTED` needs no change here.
    for &(api, _, _) in SUPPORTED {
        let known = request_versions(api);
        for v in known.min..=known.max {
            let body = sample_body(api, v);
            let mut encoded = BytesMut::new();
            body.encode(&mut encoded, v).expect("body encodes");
            assert_eq!(preflight::check_body(api, v, &encoded), Ok(encoded.len()), "{api:?} v{v}");
            // And with trailing bytes, which are left alone.
            encoded.put_slice(&[0xff; 3]);
            assert_eq!(
                preflight::check_body(api, v, &encoded),
                Ok(encoded.len() - 3),
                "{api:?} v{v}"
            );
        }
    }
}

#[test]
fn preflight_refuses_an_impossible_count_in_every_array() {
    // At every byte of the body of every served request, write the largest count each encoding
    // allows (int32 2^31 - 1, or a varint of 2^31 - 2, so 2^31 - 3 elements, for compact arrays): every array the API
    // has must be refused by name at least once, before kafka-protocol could allocate for it.
    let arrays = |api| -> &'static [&'static str] {
        match api {
            ApiKey::ApiVersions => &[],
            ApiKey::Metadata => &["Metadata.topics"],
            ApiKey::Produce => &["Produce.topic_data", "Produce.partition_data"],
            ApiKey::Fetch => &[
                "Fetch.topics",
                "Fetch.topics.partitions",
                "Fetch.forgotten_topics_data",
                "Fetch.forgotten_topics_data.partitions",
            ],
            ApiKey::ListOffsets => &["ListOffsets.topics", "ListOffsets.topics.partitions"],
            ApiKey::CreateTopics => &[
                "CreateTopics.topics",
                "CreateTopics.topics.assignments",
                "CreateTopics.assignments.broker_ids",
                "CreateTopics.topics.configs",
            ],
            ApiKey::DeleteTopics => &["DeleteTopics.topic_names", "DeleteTopics.topics"],
            ApiKey::DescribeConfigs => {
                &["DescribeConfigs.resources", "DescribeConfigs.resources.configuration_keys"]
            }
            ApiKey::IncrementalAlterConfigs => {
                &["IncrementalAlterConfigs.resources", "IncrementalAlterConfigs.resources.configs"]
            }
            ApiKey::AlterConfigs => &["AlterConfigs.resources", "AlterConfigs.resources.configs"],
            ApiKey::CreatePartitions => &[
                "CreatePartitions.topics",
                "CreatePartitions.topics.assignments",
                "CreatePartitions.assignments.broker_ids",
            ],
            ApiKey::DeleteRecords => &["DeleteRecords.topics", "DeleteRecords.topics.partitions"],
            ApiKey::OffsetForLeaderEpoch => {
                &["OffsetForLeaderEpoch.topics", "OffsetForLeaderEpoch.topics.partitions"]
            }
            ApiKey::DescribeCluster => &[],
            ApiKey::FindCoordinator => &["FindCoordinator.coordinator_keys"],
            ApiKey::InitProducerId => &[],
            ApiKey::OffsetCommit => &["OffsetCommit.topics", "OffsetCommit.topics.partitions"],
            ApiKey::OffsetFetch => &[
                "OffsetFetch.topics",
                "OffsetFetch.topics.partition_indexes",
                "OffsetFetch.groups",
                "OffsetFetch.groups.topics",
                "OffsetFetch.groups.topics.partition_indexes",
            ],
            ApiKey::JoinGroup => &["JoinGroup.protocols"],
            ApiKey::Heartbeat => &[],
            ApiKey::LeaveGroup => &["LeaveGroup.members"],
            ApiKey::SyncGroup => &["SyncGroup.assignments"],
            ApiKey::DescribeGroups => &["DescribeGroups.groups"],
            ApiKey::ListGroups => &["ListGroups.states_filter", "ListGroups.types_filter"],
            ApiKey::DeleteGroups => &["DeleteGroups.groups_names"],
            ApiKey::OffsetDelete => &["OffsetDelete.topics", "OffsetDelete.topics.partitions"],
            ApiKey::DescribeQuorum => {
                &["DescribeQuorum.topics", "DescribeQuorum.topics.partitions"]
            }
            ApiKey::UnregisterBroker => &[],
            ApiKey::ElectLeaders => {
                &["ElectLeaders.topic_partitions", "ElectLeaders.topic_partitions.partitions"]
            }
            ApiKey::AlterPartitionReassignments => &[
                "AlterPartitionReassignments.topics",
                "AlterPartitionReassignments.topics.partitions",
                "AlterPartitionReassignments.partitions.replicas",
            ],
            ApiKey::ListPartitionReassignments => &[
                "ListPartitionReassignments.topics",
                "ListPartitionReassignments.topics.partition_indexes",
            ],
            ApiKey::DescribeLogDirs => {
                &["DescribeLogDirs.topics", "DescribeLogDirs.topics.partitions"]
            }
            ApiKey::SaslHandshake | ApiKey::SaslAuthenticate | ApiKey::DescribeAcls => &[],
            ApiKey::CreateAcls => &["CreateAcls.creations"],
            ApiKey::DeleteAcls => &["DeleteAcls.filters"],
            ApiKey::DescribeUserScramCredentials => &["DescribeUserScramCredentials.users"],
            ApiKey::AlterUserScramCredentials => {
                &["AlterUserScramCredentials.deletions", "AlterUserScramCredentials.upsertions"]
            }
            ApiKey::DescribeClientQuotas => &["DescribeClientQuotas.components"],
            ApiKey::AlterClientQuotas => &[
                "AlterClientQuotas.entries",
                "AlterClientQuotas.entries.entity",
                "AlterClientQuotas.entries.ops",
            ],
            ApiKey::AddPartitionsToTxn => &[
                "AddPartitionsToTxn.v3_and_below_topics",
                "AddPartitionsToTxn.transactions",
                "AddPartitionsToTxn.transactions.topics",
                "AddPartitionsToTxn.topics.partitions",
            ],
            ApiKey::AddOffsetsToTxn | ApiKey::EndTxn => &[],
            ApiKey::TxnOffsetCommit => {
                &["TxnOffsetCommit.topics", "TxnOffsetCommit.topics.partitions"]
            }
            ApiKey::WriteTxnMarkers => &[
                "WriteTxnMarkers.markers",
                "WriteTxnMarkers.markers.topics",
                "WriteTxnMarkers.topics.partition_indexes",
            ],
            ApiKey::DescribeTransactions => &["DescribeTransactions.transactional_ids"],
            ApiKey::ListTransactions => {
                &["ListTransactions.state_filters", "ListTransactions.producer_id_filters"]
            }
            other => panic!("no array list for {other:?}"),
        }
    };
    for &(api, min, max) in SUPPORTED {
        let mut refused = std::collections::BTreeSet::new();
        for v in min..=max {
            let mut body = BytesMut::new();
            sample_body(api, v).encode(&mut body, v).expect("body encodes");
            let flexible = api.request_header_version(v) >= 2;
            let pattern: &[u8] =
                if flexible { &[0xfe, 0xff, 0xff, 0xff, 0x07] } else { &[0x7f, 0xff, 0xff, 0xff] };
            for at in 0..body.len() {
                let mut m = body.clone();
                let end = (at + pattern.len()).min(m.len());
                m[at..end].copy_from_slice(&pattern[..end - at]);
                if let Err(PreflightError::ArrayTooLong { field, at: field_at, count, .. }) =
                    preflight::check_body(api, v, &m)
                {
                    // Only a count written whole, at its own position, is counted: a partial
                    // overwrite of a count or length elsewhere may also be refused, by chance.
                    if field_at == at {
                        let written = if flexible { (1 << 31) - 3 } else { (1 << 31) - 1 };
                        assert_eq!(count, written, "{api:?} v{v} {field}");
                        refused.insert(field);
                    }
                }
            }
        }
        let expected: std::collections::BTreeSet<_> = arrays(api).iter().copied().collect();
        assert_eq!(refused, expected, "{api:?}");
    }
}

#[test]
fn preflight_refuses_uncovered_apis() {
    assert_eq!(
        preflight::check_body(ApiKey::ConsumerGroupHeartbeat, 0, &[]),
        Err(PreflightError::Uncovered { api: ApiKey::ConsumerGroupHeartbeat })
    );
}

fn encoded_len<T: Encodable>(value: &T, version: i16) -> usize {
    let mut b = BytesMut::new();
    value.encode(&mut b, version).expect("encodes");
    b.len()
}

#[test]
fn element_minimums_are_the_smallest_encodings() {
    // A default element (empty strings, empty arrays, null bytes) is the smallest encoding of
    // its type; the bound must not exceed it or valid requests would be refused.
    let versions = |api: ApiKey| {
        let r = request_versions(api);
        r.min..=r.max
    };
    for v in versions(ApiKey::Metadata) {
        let t = MetadataRequestTopic::default().with_name(Some(name("")));
        assert_eq!(element_min::metadata_topic(v), encoded_len(&t, v), "Metadata v{v}");
    }
    for v in versions(ApiKey::Produce) {
        assert_eq!(
            element_min::produce_topic(v),
            encoded_len(&TopicProduceData::default(), v),
            "v{v}"
        );
        let p = PartitionProduceData::default();
        assert_eq!(element_min::produce_partition(v), encoded_len(&p, v), "Produce v{v}");
    }
    for v in versions(ApiKey::Fetch) {
        assert_eq!(element_min::fetch_topic(v), encoded_len(&FetchTopic::default(), v), "v{v}");
        assert_eq!(
            element_min::fetch_partition(v),
            encoded_len(&FetchPartition::default(), v),
            "v{v}"
        );
        if v >= 7 {
            let f = ForgottenTopic::default();
            assert_eq!(element_min::forgotten_topic(v), encoded_len(&f, v), "Fetch v{v}");
        }
    }
    for v in versions(ApiKey::ListOffsets) {
        let t = ListOffsetsTopic::default();
        assert_eq!(element_min::list_offsets_topic(v), encoded_len(&t, v), "v{v}");
        let p = ListOffsetsPartition::default();
        assert_eq!(element_min::list_offsets_partition(v), encoded_len(&p, v), "ListOffsets v{v}");
    }
    for v in versions(ApiKey::CreateTopics) {
        let t = CreatableTopic::default();
        assert_eq!(element_min::create_topics_topic(v), encoded_len(&t, v), "v{v}");
        let a = CreatableReplicaAssignment::default();
        assert_eq!(element_min::create_topics_assignment(v), encoded_len(&a, v), "v{v}");
        let c = CreatableTopicConfig::default();
        assert_eq!(element_min::create_topics_config(v), encoded_len(&c, v), "CreateTopics v{v}");
    }
    for v in 6..=ApiKey::DeleteTopics.valid_versions().max {
        let s = DeleteTopicState::default();
        assert_eq!(element_min::delete_topics_state(v), encoded_len(&s, v), "DeleteTopics v{v}");
    }
    for v in versions(ApiKey::DescribeConfigs) {
        // The default key list is empty (not null); both encode in the same bytes.
        let r = DescribeConfigsResource::default();
        assert_eq!(element_min::describe_configs_resource(v), encoded_len(&r, v), "v{v}");
        let null = DescribeConfigsResource::default().with_configuration_keys(None);
        assert_eq!(encoded_len(&null, v), encoded_len(&r, v), "DescribeConfigs v{v}");
        // One empty key costs the smallest string.
        let one = DescribeConfigsResource::default().with_configuration_keys(Some(vec![text("")]));
        let key = encoded_len(&one, v) - encoded_len(&r, v);
        assert_eq!(element_min::describe_configs_key(v), key, "DescribeConfigs v{v}");
    }
    for v in versions(ApiKey::IncrementalAlterConfigs) {
        let r = AlterConfigsResource::default();
        assert_eq!(element_min::alter_configs_resource(v), encoded_len(&r, v), "v{v}");
        let c = AlterableConfig::default();
        assert_eq!(element_min::alterable_config(v), encoded_len(&c, v), "v{v}");
        let null = AlterableConfig::default().with_value(None);
        assert_eq!(encoded_len(&null, v), encoded_len(&c, v), "IncrementalAlterConfigs v{v}");
    }
    for v in versions(ApiKey::AlterConfigs) {
        use kafka_protocol::messages::alter_configs_request::{
            AlterConfigsResource as WholeResource, AlterableConfig as WholeConfig,
        };
        let r = WholeResource::default();
        assert_eq!(element_min::legacy_alter_configs_resource(v), encoded_len(&r, v), "v{v}");
        let c = WholeConfig::default();
        assert_eq!(element_min::legacy_alterable_config(v), encoded_len(&c, v), "v{v}");
        let null = WholeConfig::default().with_value(None);
        assert_eq!(encoded_len(&null, v), encoded_len(&c, v), "AlterConfigs v{v}");
    }
    for v in versions(ApiKey::CreatePartitions) {
        let t = CreatePartitionsTopic::default();
        assert_eq!(element_min::create_partitions_topic(v), encoded_len(&t, v), "v{v}");
        let null = CreatePartitionsTopic::default().with_assignments(None);
        assert_eq!(encoded_len(&null, v), encoded_len(&t, v), "v{v}");
        let a = CreatePartitionsAssignment::default();
        assert_eq!(element_min::create_partitions_assignment(v), encoded_len(&a, v), "v{v}");
    }
    for v in versions(ApiKey::DeleteRecords) {
        let t = DeleteRecordsTopic::default();
        assert_eq!(element_min::delete_records_topic(v), encoded_len(&t, v), "v{v}");
        let p = DeleteRecordsPartition::default();
        assert_eq!(element_min::delete_records_partition(v), encoded_len(&p, v), "v{v}");
    }
    for v in versions(ApiKey::OffsetForLeaderEpoch) {
        let t = OffsetForLeaderTopic::default();
        assert_eq!(element_min::offset_for_leader_topic(v), encoded_len(&t, v), "v{v}");
        let p = OffsetForLeaderPartition::default();
        assert_eq!(element_min::offset_for_leader_partition(v), encoded_len(&p, v), "v{v}");
    }
    for v in 4..=ApiKey::FindCoordinator.valid_versions().max {
        // One empty key costs the smallest string.
        let none = FindCoordinatorRequest::default();
        let one = FindCoordinatorRequest::default().with_coordinator_keys(vec![text("")]);
        let key = encoded_len(&one, v) - encoded_len(&none, v);
        assert_eq!(element_min::find_coordinator_key(v), key, "FindCoordinator v{v}");
    }
    for v in versions(ApiKey::OffsetCommit) {
        let t = OffsetCommitRequestTopic::default();
        assert_eq!(element_min::offset_commit_topic(v), encoded_len(&t, v), "v{v}");
        let p = OffsetCommitRequestPartition::default();
        assert_eq!(element_min::offset_commit_partition(v), encoded_len(&p, v), "v{v}");
        // The default metadata is empty (not null); both encode in the same bytes.
        let null = OffsetCommitRequestPartition::default().with_committed_metadata(None);
        assert_eq!(encoded_len(&null, v), encoded_len(&p, v), "OffsetCommit v{v}");
    }
    for v in versions(ApiKey::OffsetFetch) {
        if v <= 7 {
            let t = OffsetFetchRequestTopic::default();
            assert_eq!(element_min::offset_fetch_topic(v), encoded_len(&t, v), "OffsetFetch v{v}");
            continue;
        }
        let g = OffsetFetchRequestGroup::default();
        assert_eq!(element_min::offset_fetch_group(v), encoded_len(&g, v), "v{v}");
        let null = OffsetFetchRequestGroup::default().with_topics(None);
        assert_eq!(encoded_len(&null, v), encoded_len(&g, v), "v{v}");
        let t = OffsetFetchRequestTopics::default();
        assert_eq!(element_min::offset_fetch_topic(v), encoded_len(&t, v), "OffsetFetch v{v}");
    }
    for v in versions(ApiKey::JoinGroup) {
        let p = JoinGroupRequestProtocol::default();
        assert_eq!(element_min::join_group_protocol(v), encoded_len(&p, v), "JoinGroup v{v}");
    }
    for v in 3..=request_versions(ApiKey::LeaveGroup).max {
        let m = MemberIdentity::default();
        assert_eq!(element_min::leave_group_member(v), encoded_len(&m, v), "LeaveGroup v{v}");
    }
    for v in versions(ApiKey::SyncGroup) {
        let a = SyncGroupRequestAssignment::default();
        assert_eq!(element_min::sync_group_assignment(v), encoded_len(&a, v), "SyncGroup v{v}");
    }
    // Arrays of strings: one empty string costs the smallest string.
    for v in versions(ApiKey::DescribeGroups) {
        let none = DescribeGroupsRequest::default();
        let one = DescribeGroupsRequest::default().with_groups(vec![group("")]);
        let g = encoded_len(&one, v) - encoded_len(&none, v);
        assert_eq!(element_min::describe_groups_group(v), g, "DescribeGroups v{v}");
    }
    for v in 4..=request_versions(ApiKey::ListGroups).max {
        let none = ListGroupsRequest::default();
        let one = ListGroupsRequest::default().with_states_filter(vec![text("")]);
        let f = encoded_len(&one, v) - encoded_len(&none, v);
        assert_eq!(element_min::list_groups_filter(v), f, "ListGroups v{v}");
    }
    for v in versions(ApiKey::DeleteGroups) {
        let none = DeleteGroupsRequest::default();
        let one = DeleteGroupsRequest::default().with_groups_names(vec![group("")]);
        let g = encoded_len(&one, v) - encoded_len(&none, v);
        assert_eq!(element_min::delete_groups_name(v), g, "DeleteGroups v{v}");
    }
    for v in versions(ApiKey::DescribeQuorum) {
        let t = DescribeQuorumTopicData::default();
        assert_eq!(element_min::describe_quorum_topic(v), encoded_len(&t, v), "v{v}");
        let p = DescribeQuorumPartitionData::default();
        assert_eq!(element_min::describe_quorum_partition(v), encoded_len(&p, v), "v{v}");
    }
    for v in versions(ApiKey::ElectLeaders) {
        let t = ElectTopicPartitions::default();
        assert_eq!(element_min::elect_leaders_topic(v), encoded_len(&t, v), "v{v}");
    }
    for v in versions(ApiKey::DescribeLogDirs) {
        let t = DescribableLogDirTopic::default();
        assert_eq!(element_min::describe_log_dirs_topic(v), encoded_len(&t, v), "v{v}");
    }
    for v in versions(ApiKey::AlterPartitionReassignments) {
        let t = ReassignableTopic::default();
        assert_eq!(element_min::reassignable_topic(v), encoded_len(&t, v), "v{v}");
        let p = ReassignablePartition::default();
        assert_eq!(element_min::reassignable_partition(v), encoded_len(&p, v), "v{v}");
    }
    for v in versions(ApiKey::ListPartitionReassignments) {
        let t = ListPartitionReassignmentsTopics::default();
        assert_eq!(element_min::list_reassignments_topic(v), encoded_len(&t, v), "v{v}");
    }
    for v in versions(ApiKey::OffsetDelete) {
        let t = OffsetDeleteRequestTopic::default();
        assert_eq!(element_min::offset_delete_topic(v), encoded_len(&t, v), "v{v}");
        // The walk bounds partitions by one int32 each: the whole of a partition.
        assert_eq!(encoded_len(&OffsetDeleteRequestPartition::default(), v), 4, "v{v}");
    }
    for v in versions(ApiKey::AddPartitionsToTxn) {
        let t = AddPartitionsToTxnTopic::default();
        assert_eq!(element_min::add_partitions_topic(v), encoded_len(&t, v), "v{v}");
        if v >= 4 {
            let x = AddPartitionsToTxnTransaction::default();
            assert_eq!(element_min::add_partitions_transaction(v), encoded_len(&x, v), "v{v}");
        }
    }
    for v in versions(ApiKey::TxnOffsetCommit) {
        let t = TxnOffsetCommitRequestTopic::default();
        assert_eq!(element_min::txn_offset_commit_topic(v), encoded_len(&t, v), "v{v}");
        let p = TxnOffsetCommitRequestPartition::default();
        assert_eq!(element_min::txn_offset_commit_partition(v), encoded_len(&p, v), "v{v}");
        // The default metadata is empty (not null); both encode in the same bytes.
        let null = TxnOffsetCommitRequestPartition::default().with_committed_metadata(None);
        assert_eq!(encoded_len(&null, v), encoded_len(&p, v), "TxnOffsetCommit v{v}");
    }
    for v in versions(ApiKey::WriteTxnMarkers) {
        let m = WritableTxnMarker::default();
        assert_eq!(element_min::write_txn_marker(v), encoded_len(&m, v), "v{v}");
        let t = WritableTxnMarkerTopic::default();
        assert_eq!(element_min::write_txn_marker_topic(v), encoded_len(&t, v), "v{v}");
    }
    for v in versions(ApiKey::DescribeTransactions) {
        let none = DescribeTransactionsRequest::default();
        let one = DescribeTransactionsRequest::default().with_transactional_ids(vec![txn_id("")]);
        let id = encoded_len(&one, v) - encoded_len(&none, v);
        assert_eq!(element_min::describe_transactions_id(v), id, "DescribeTransactions v{v}");
    }
    for v in versions(ApiKey::ListTransactions) {
        let none = ListTransactionsRequest::default();
        let one = ListTransactionsRequest::default().with_state_filters(vec![text("")]);
        let f = encoded_len(&one, v) - encoded_len(&none, v);
        assert_eq!(element_min::list_transactions_state(v), f, "ListTransactions v{v}");
        // Producer id filters are int64s: the walk bounds them by 8 bytes each.
        let id = ListTransactionsRequest::default().with_producer_id_filters(vec![ProducerId(0)]);
        assert_eq!(encoded_len(&id, v) - encoded_len(&none, v), 8, "ListTransactions v{v}");
    }
    // DescribeCluster, InitProducerId and Heartbeat have no arrays: nothing to bound (that the
    // walk finds none in them is checked by
    // `preflight_refuses_an_impossible_count_in_every_array`).
}

// ---------------------------------------------------------------------------------------------
// Encoding responses.

/// Splits one encoded frame into (correlation id, bytes after it), checking the prefix.
fn open_frame(out: &[u8]) -> (i32, Bytes) {
    let prefix: [u8; 4] = out[..4].try_into().expect("4 bytes");
    let len = frame::frame_len(prefix, usize::MAX).expect("valid prefix");
    assert_eq!(len, out.len() - 4, "the prefix counts every byte after it");
    let correlation_id = i32::from_be_bytes(out[4..8].try_into().expect("4 bytes"));
    (correlation_id, Bytes::copy_from_slice(&out[8..]))
}

#[test]
fn api_versions_v3_response_has_header_v0_and_no_tagged_fields() {
    let mut out = BytesMut::new();
    let body = ResponseKind::ApiVersions(versions::api_versions_response(3));
    encode_response(90, ApiKey::ApiVersions, 3, &body, &mut out).expect("encodes");
    let (correlation_id, rest) = open_frame(&out);
    assert_eq!(correlation_id, 90);

    // Response header v0 is the correlation id alone: the error code follows directly.
    assert_eq!(&rest[..2], &[0, 0], "error code NONE right after the correlation id");
    // Layout: error code, compact array (count + 1), per entry key/min/max + an empty tag
    // section, throttle time, and the response's own empty tag section.
    let n = SUPPORTED.len();
    assert_eq!(rest.len(), 2 + 1 + n * 7 + 4 + 1);
    assert_eq!(usize::from(rest[2]), n + 1);
    for i in 0..n {
        let entry = &rest[3 + 7 * i..3 + 7 * (i + 1)];
        assert_eq!(entry[6], 0, "entry {i} has tagged fields");
    }
    assert_eq!(&rest[rest.len() - 5..], &[0, 0, 0, 0, 0], "throttle 0, then 0 tagged fields");

    // And kafka-protocol's client side reads it back as we built it.
    let decoded = ApiVersionsResponse::decode(&mut rest.clone(), 3).expect("decodes at v3");
    assert_eq!(ResponseKind::ApiVersions(decoded), body);
}

#[test]
fn api_versions_of_a_future_version_is_answered_at_v0() {
    // A client newer than us sends ApiVersions v99 (header v2, as for every version >= 3):
    // encode a v4 request and change its version.
    let frame = encode_request(ApiKey::ApiVersions, 4, 91, &sample_body(ApiKey::ApiVersions, 4));
    let mut bytes = BytesMut::from(&frame[..]);
    bytes[2..4].copy_from_slice(&99i16.to_be_bytes());
    let err = decode_request(bytes.freeze()).expect_err("v99 is not served");
    assert_eq!(
        err,
        DecodeError::UnsupportedVersion {
            api: ApiKey::ApiVersions,
            version: 99,
            min: 0,
            max: 3,
            correlation_id: 91
        }
    );
    let (correlation_id, api, version, body) =
        versions::answer_for_decode_error(&err).expect("ApiVersions is answered, not closed");
    assert_eq!((correlation_id, api, version), (91, ApiKey::ApiVersions, 0));

    let mut out = BytesMut::new();
    encode_response(correlation_id, api, version, &body, &mut out).expect("encodes");
    let (correlation_id, rest) = open_frame(&out);
    assert_eq!(correlation_id, 91);
    assert_eq!(&rest[..2], &error_code::UNSUPPORTED_VERSION.code().to_be_bytes());
    let decoded = ApiVersionsResponse::decode(&mut rest.clone(), 0).expect("decodes at v0");
    assert_eq!(decoded.error_code, 35);
    let api_versions = decoded
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::ApiVersions as i16)
        .expect("the list names ApiVersions, so the client can retry");
    assert_eq!((api_versions.min_version, api_versions.max_version), (0, 3));
    assert_eq!(decoded.api_keys.len(), SUPPORTED.len());
    // v0 is error code, int32-counted array of 6-byte entries, nothing else.
    assert_eq!(rest.len(), 2 + 4 + 6 * SUPPORTED.len());
}

#[test]
fn flexible_responses_carry_header_v1() {
    let body = ResponseKind::Metadata(MetadataResponse::default());
    let mut out = BytesMut::new();
    encode_response(92, ApiKey::Metadata, 12, &body, &mut out).expect("encodes");
    let (_, rest) = open_frame(&out);
    assert_eq!(rest[0], 0, "header v1: an empty tagged-field section after the correlation id");
    let mut b = Bytes::copy_from_slice(&out[4..]);
    let header = ResponseHeader::decode(&mut b, 1).expect("header v1");
    assert_eq!(header.correlation_id, 92);
    assert_eq!(MetadataResponse::decode(&mut b, 12).expect("body"), MetadataResponse::default());

    let mut out = BytesMut::new();
    encode_response(93, ApiKey::Metadata, 1, &body, &mut out).expect("encodes");
    let mut b = Bytes::copy_from_slice(&out[8..]);
    assert_eq!(
        MetadataResponse::decode(&mut b, 1).expect("body v1, header v0"),
        MetadataResponse::default()
    );
    assert!(b.is_empty());
}

/// The default response of a served API (every API of `SUPPORTED` must have one).
fn default_response(api: ApiKey) -> ResponseKind {
    match api {
        ApiKey::ApiVersions => ResponseKind::ApiVersions(ApiVersionsResponse::default()),
        ApiKey::Metadata => ResponseKind::Metadata(MetadataResponse::default()),
        ApiKey::Produce => ResponseKind::Produce(ProduceResponse::default()),
        ApiKey::Fetch => ResponseKind::Fetch(FetchResponse::default()),
        ApiKey::ListOffsets => ResponseKind::ListOffsets(ListOffsetsResponse::default()),
        ApiKey::CreateTopics => ResponseKind::CreateTopics(CreateTopicsResponse::default()),
        ApiKey::DeleteTopics => ResponseKind::DeleteTopics(DeleteTopicsResponse::default()),
        ApiKey::DescribeConfigs => {
            ResponseKind::DescribeConfigs(DescribeConfigsResponse::default())
        }
        ApiKey::IncrementalAlterConfigs => {
            ResponseKind::IncrementalAlterConfigs(IncrementalAlterConfigsResponse::default())
        }
        ApiKey::AlterConfigs => ResponseKind::AlterConfigs(AlterConfigsResponse::default()),
        ApiKey::CreatePartitions => {
            ResponseKind::CreatePartitions(CreatePartitionsResponse::default())
        }
        ApiKey::DeleteRecords => ResponseKind::DeleteRecords(DeleteRecordsResponse::default()),
        ApiKey::OffsetForLeaderEpoch => {
            ResponseKind::OffsetForLeaderEpoch(OffsetForLeaderEpochResponse::default())
        }
        ApiKey::DescribeCluster => {
            ResponseKind::DescribeCluster(DescribeClusterResponse::default())
        }
        ApiKey::FindCoordinator => {
            ResponseKind::FindCoordinator(FindCoordinatorResponse::default())
        }
        ApiKey::InitProducerId => ResponseKind::InitProducerId(InitProducerIdResponse::default()),
        ApiKey::OffsetCommit => ResponseKind::OffsetCommit(OffsetCommitResponse::default()),
        ApiKey::OffsetFetch => ResponseKind::OffsetFetch(OffsetFetchResponse::default()),
        ApiKey::JoinGroup => ResponseKind::JoinGroup(JoinGroupResponse::default()),
        ApiKey::Heartbeat => ResponseKind::Heartbeat(HeartbeatResponse::default()),
        ApiKey::LeaveGroup => ResponseKind::LeaveGroup(LeaveGroupResponse::default()),
        ApiKey::SyncGroup => ResponseKind::SyncGroup(SyncGroupResponse::default()),
        ApiKey::DescribeGroups => ResponseKind::DescribeGroups(DescribeGroupsResponse::default()),
        ApiKey::ListGroups => ResponseKind::ListGroups(ListGroupsResponse::default()),
        ApiKey::DeleteGroups => ResponseKind::DeleteGroups(DeleteGroupsResponse::default()),
        ApiKey::OffsetDelete => ResponseKind::OffsetDelete(OffsetDeleteResponse::default()),
        ApiKey::DescribeQuorum => ResponseKind::DescribeQuorum(DescribeQuorumResponse::default()),
        ApiKey::UnregisterBroker => {
            ResponseKind::UnregisterBroker(UnregisterBrokerResponse::default())
        }
        ApiKey::ElectLeaders => ResponseKind::ElectLeaders(ElectLeadersResponse::default()),
        ApiKey::AlterPartitionReassignments => {
            ResponseKind::AlterPartitionReassignments(AlterPartitionReassignmentsResponse::default())
        }
        ApiKey::ListPartitionReassignments => {
            ResponseKind::ListPartitionReassignments(ListPartitionReassignmentsResponse::default())
        }
        ApiKey::DescribeLogDirs => {
            ResponseKind::DescribeLogDirs(DescribeLogDirsResponse::default())
        }
        ApiKey::SaslHandshake => {
            ResponseKind::SaslHandshake(kafka_protocol::messages::SaslHandshakeResponse::default())
        }
        ApiKey::SaslAuthenticate => ResponseKind::SaslAuthenticate(
            kafka_protocol::messages::SaslAuthenticateResponse::default(),
        ),
        ApiKey::CreateAcls => {
            ResponseKind::CreateAcls(kafka_protocol::messages::CreateAclsResponse::default())
        }
        ApiKey::DescribeAcls => {
            ResponseKind::DescribeAcls(kafka_protocol::messages::DescribeAclsResponse::default())
        }
        ApiKey::DeleteAcls => {
            ResponseKind::DeleteAcls(kafka_protocol::messages::DeleteAclsResponse::default())
        }
        ApiKey::DescribeUserScramCredentials => ResponseKind::DescribeUserScramCredentials(
            kafka_protocol::messages::DescribeUserScramCredentialsResponse::default(),
        ),
        ApiKey::AlterUserScramCredentials => ResponseKind::AlterUserScramCredentials(
            kafka_protocol::messages::AlterUserScramCredentialsResponse::default(),
        ),
        ApiKey::DescribeClientQuotas => ResponseKind::DescribeClientQuotas(
            kafka_protocol::messages::DescribeClientQuotasResponse::default(),
        ),
        ApiKey::AlterClientQuotas => ResponseKind::AlterClientQuotas(
            kafka_protocol::messages::AlterClientQuotasResponse::default(),
        ),
        ApiKey::AddPartitionsToTxn => {
            ResponseKind::AddPartitionsToTxn(AddPartitionsToTxnResponse::default())
        }
        ApiKey::AddOffsetsToTxn => {
            ResponseKind::AddOffsetsToTxn(AddOffsetsToTxnResponse::default())
        }
        ApiKey::EndTxn => ResponseKind::EndTxn(EndTxnResponse::default()),
        ApiKey::TxnOffsetCommit => {
            ResponseKind::TxnOffsetCommit(TxnOffsetCommitResponse::default())
        }
        ApiKey::WriteTxnMarkers => {
            ResponseKind::WriteTxnMarkers(WriteTxnMarkersResponse::default())
        }
        ApiKey::DescribeTransactions => {
            ResponseKind::DescribeTransactions(DescribeTransactionsResponse::default())
        }
        ApiKey::ListTransactions => {
            ResponseKind::ListTransactions(ListTransactionsResponse::default())
        }
        other => panic!("no default response for {other:?}"),
    }
}

#[test]
fn every_served_version_encodes_a_response() {
    // The encoder accepts a body of every served API at every served version, with the
    // response header version kafka-protocol pairs with it, and the client side reads it back.
    for &(api, min, max) in SUPPORTED {
        let body = default_response(api);
        for v in min..=max {
            let mut out = BytesMut::new();
            encode_response(95, api, v, &body, &mut out)
                .unwrap_or_else(|e| panic!("{api:?} v{v}: {e}"));
            let mut b = Bytes::copy_from_slice(&out[4..]);
            let header =
                ResponseHeader::decode(&mut b, api.response_header_version(v)).expect("header");
            assert_eq!(header.correlation_id, 95, "{api:?} v{v}");
            let decoded = ResponseKind::decode(api, &mut b, v).expect("body");
            assert_eq!(decoded, body, "{api:?} v{v}");
            assert!(b.is_empty(), "{api:?} v{v}: nothing after the body");
        }
    }
}

#[test]
fn produce_response_round_trips() {
    let response = ProduceResponse::default().with_responses(vec![
        TopicProduceResponse::default().with_name(name("orders")).with_partition_responses(vec![
            PartitionProduceResponse::default()
                .with_index(0)
                .with_error_code(error_code::NONE.code())
                .with_base_offset(41),
            PartitionProduceResponse::default()
                .with_index(1)
                .with_error_code(error_code::CORRUPT_MESSAGE.code()),
        ]),
    ]);
    for v in [3, 8, 9, 11] {
        let mut out = BytesMut::new();
        encode_response(94, ApiKey::Produce, v, &ResponseKind::Produce(response.clone()), &mut out)
            .expect("encodes");
        let mut b = Bytes::copy_from_slice(&out[4..]);
        let header = ResponseHeader::decode(&mut b, ApiKey::Produce.response_header_version(v))
            .expect("header");
        assert_eq!(header.correlation_id, 94);
        assert_eq!(ProduceResponse::decode(&mut b, v).expect("body"), response, "v{v}");
        assert!(b.is_empty(), "v{v}: nothing after the body");
    }
}

#[test]
fn find_coordinator_response_round_trips() {
    // v0–v3 answer one key with top-level fields; v4+ answer a batch in `coordinators`.
    let single = FindCoordinatorResponse::default()
        .with_node_id(BrokerId(1))
        .with_host(text("broker-1.local"))
        .with_port(9092);
    let batch = FindCoordinatorResponse::default().with_coordinators(vec![
        Coordinator::default()
            .with_key(text("orders-consumers"))
            .with_node_id(BrokerId(1))
            .with_host(text("broker-1.local"))
            .with_port(9092),
        Coordinator::default()
            .with_key(text("share-a:AAAAAAAAAAAAAAAAAAAAAA:0"))
            .with_node_id(BrokerId(-1))
            .with_error_code(error_code::COORDINATOR_NOT_AVAILABLE.code())
            .with_error_message(None),
    ]);
    for v in 0..=6 {
        let response = if v <= 3 { single.clone() } else { batch.clone() };
        let body = ResponseKind::FindCoordinator(response.clone());
        let mut out = BytesMut::new();
        encode_response(96, ApiKey::FindCoordinator, v, &body, &mut out).expect("encodes");
        let mut b = Bytes::copy_from_slice(&out[4..]);
        let header =
            ResponseHeader::decode(&mut b, ApiKey::FindCoordinator.response_header_version(v))
                .expect("header");
        assert_eq!(header.correlation_id, 96);
        assert_eq!(FindCoordinatorResponse::decode(&mut b, v).expect("body"), response, "v{v}");
        assert!(b.is_empty(), "v{v}: nothing after the body");

        // The other layout does not encode at this version, and leaves the buffer as it was.
        let wrong =
            ResponseKind::FindCoordinator(if v <= 3 { batch.clone() } else { single.clone() });
        let mut out = BytesMut::from(&b"earlier"[..]);
        let err = encode_response(96, ApiKey::FindCoordinator, v, &wrong, &mut out)
            .expect_err("the other layout");
        assert!(matches!(err, EncodeError::Invalid { .. }), "v{v}: {err}");
        assert_eq!(&out[..], b"earlier", "v{v}");
    }
}

#[test]
fn init_producer_id_response_round_trips() {
    // Success: a new producer id at epoch 0 (what Kafka answers a null transactional id).
    // Failure: id and epoch -1 with the error, as Kafka's `initTransactionError` answers (the
    // code is only an example; which one the node sends is its handler's choice).
    let granted = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(1_000))
        .with_producer_epoch(0);
    let refused = InitProducerIdResponse::default()
        .with_error_code(error_code::TRANSACTIONAL_ID_NOT_FOUND.code())
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    for v in 0..=5 {
        for response in [&granted, &refused] {
            let body = ResponseKind::InitProducerId(response.clone());
            let mut out = BytesMut::new();
            encode_response(97, ApiKey::InitProducerId, v, &body, &mut out).expect("encodes");
            let mut b = Bytes::copy_from_slice(&out[4..]);
            let header =
                ResponseHeader::decode(&mut b, ApiKey::InitProducerId.response_header_version(v))
                    .expect("header");
            assert_eq!(header.correlation_id, 97);
            let decoded = InitProducerIdResponse::decode(&mut b, v).expect("body");
            assert_eq!(&decoded, response, "v{v}");
            assert!(b.is_empty(), "v{v}: nothing after the body");
            // throttle, error, id, epoch (+ an empty tagged-field section from v2).
            assert_eq!(out.len(), 4 + 4 + usize::from(v >= 2) + 16 + usize::from(v >= 2));
        }

        // The v6 (KIP-939) fields do not encode below v6, and leave the buffer as it was.
        let ongoing = ResponseKind::InitProducerId(
            granted.clone().with_ongoing_txn_producer_id(ProducerId(999)),
        );
        let mut out = BytesMut::from(&b"earlier"[..]);
        let err = encode_response(97, ApiKey::InitProducerId, v, &ongoing, &mut out)
            .expect_err("a v6 field");
        assert!(matches!(err, EncodeError::Invalid { .. }), "v{v}: {err}");
        assert_eq!(&out[..], b"earlier", "v{v}");
    }
    // v6 itself is not served, though kafka-protocol's response type could encode it.
    let mut out = BytesMut::new();
    let body = ResponseKind::InitProducerId(granted);
    let err = encode_response(97, ApiKey::InitProducerId, 6, &body, &mut out).expect_err("v6");
    assert!(matches!(err, EncodeError::UnsupportedVersion { min: 0, max: 5, .. }), "{err}");
    assert!(out.is_empty());
}

/// Encodes `body` as the answer to `api` v`v`, and decodes it back with kafka-protocol's client
/// side: the header's correlation id, the body, and nothing after it.
fn response_round_trip(api: ApiKey, v: i16, body: &ResponseKind) -> ResponseKind {
    let mut out = BytesMut::new();
    encode_response(98, api, v, body, &mut out).unwrap_or_else(|e| panic!("{api:?} v{v}: {e}"));
    let mut b = Bytes::copy_from_slice(&out[4..]);
    let header = ResponseHeader::decode(&mut b, api.response_header_version(v)).expect("header");
    assert_eq!(header.correlation_id, 98, "{api:?} v{v}");
    let decoded = ResponseKind::decode(api, &mut b, v).expect("body");
    assert!(b.is_empty(), "{api:?} v{v}: nothing after the body");
    decoded
}

/// Checks that `body` does not encode as `api` v`v` and leaves the buffer as it was.
fn response_refused(api: ApiKey, v: i16, body: &ResponseKind) -> EncodeError {
    let mut out = BytesMut::from(&b"earlier"[..]);
    let err = encode_response(98, api, v, body, &mut out).expect_err("refused");
    assert!(matches!(err, EncodeError::Invalid { .. }), "{api:?} v{v}: {err}");
    assert_eq!(&out[..], b"earlier", "{api:?} v{v}");
    err
}

#[test]
fn offset_fetch_response_round_trips() {
    // v1–v7 answer one group in the top-level `topics`; v8+ answer a batch in `groups`
    // (KIP-709). A partition without a committed offset is offset -1 with empty metadata, as
    // Kafka answers; leader epochs are in the response from v5.
    let api = ApiKey::OffsetFetch;
    for v in 1..=9 {
        let epoch = if v >= 5 { 4 } else { -1 };
        let body = if v <= 7 {
            let partition = |p: i32, offset: i64, epoch: i32, metadata| {
                OffsetFetchResponsePartition::default()
                    .with_partition_index(p)
                    .with_committed_offset(offset)
                    .with_committed_leader_epoch(epoch)
                    .with_metadata(Some(text(metadata)))
            };
            OffsetFetchResponse::default().with_topics(vec![
                OffsetFetchResponseTopic::default().with_name(name("orders")).with_partitions(
                    vec![partition(0, 107, epoch, "by-app"), partition(1, -1, -1, "")],
                ),
            ])
        } else {
            let committed = OffsetFetchResponsePartitions::default()
                .with_partition_index(0)
                .with_committed_offset(107)
                .with_committed_leader_epoch(epoch)
                .with_metadata(Some(text("by-app")));
            OffsetFetchResponse::default().with_groups(vec![
                OffsetFetchResponseGroup::default()
                    .with_group_id(group("orders-consumers"))
                    .with_topics(vec![
                        OffsetFetchResponseTopics::default()
                            .with_name(name("orders"))
                            .with_partitions(vec![committed]),
                    ]),
                OffsetFetchResponseGroup::default()
                    .with_group_id(group("audit-consumers"))
                    .with_error_code(error_code::NOT_COORDINATOR.code()),
            ])
        };
        let body = ResponseKind::OffsetFetch(body);
        assert_eq!(response_round_trip(api, v, &body), body, "v{v}");

        // The other layout does not encode at this version.
        let wrong = if v <= 7 {
            OffsetFetchResponse::default()
                .with_groups(vec![OffsetFetchResponseGroup::default().with_group_id(group("g"))])
        } else {
            OffsetFetchResponse::default()
                .with_topics(vec![OffsetFetchResponseTopic::default().with_name(name("orders"))])
        };
        response_refused(api, v, &ResponseKind::OffsetFetch(wrong));
    }
    // The top-level `error_code` is v2–v7 and ignorable: at v1 kafka-protocol drops it without
    // a word, so a handler must put a group-level error into every partition (what Kafka does
    // for v0–v1).
    let error = ResponseKind::OffsetFetch(
        OffsetFetchResponse::default().with_error_code(error_code::NOT_COORDINATOR.code()),
    );
    assert_eq!(
        response_round_trip(api, 1, &error),
        ResponseKind::OffsetFetch(OffsetFetchResponse::default())
    );
    assert_eq!(response_round_trip(api, 2, &error), error);
}

#[test]
fn join_group_response_round_trips() {
    let api = ApiKey::JoinGroup;
    for v in 0..=9 {
        let member = |m, instance: Option<StrBytes>| {
            let jm = JoinGroupResponseMember::default()
                .with_member_id(text(m))
                .with_metadata(Bytes::from_static(b"\x00\x03\x00\x00\x00\x01\x00\x06orders"));
            if v >= 5 { jm.with_group_instance_id(instance) } else { jm }
        };
        // The leader's answer: the chosen protocol and every member's metadata.
        let mut leader = JoinGroupResponse::default()
            .with_generation_id(3)
            .with_protocol_name(Some(text("range")))
            .with_leader(text("member-1"))
            .with_member_id(text("member-1"))
            .with_members(vec![
                member("member-1", Some(text("instance-1"))),
                member("member-2", None),
            ]);
        if v >= 7 {
            leader = leader.with_protocol_type(Some(text("consumer")));
        }
        let body = ResponseKind::JoinGroup(leader.clone());
        assert_eq!(response_round_trip(api, v, &body), body, "v{v}");

        // A refusal carries no protocol: a null name from v7 (KIP-559), an empty one below,
        // where kafka-protocol would write the null (no client can read it) if not stopped.
        let failed = JoinGroupResponse::default()
            .with_error_code(error_code::ResponseError::UnknownMemberId.code())
            .with_protocol_name(None);
        let body = ResponseKind::JoinGroup(failed.clone());
        if v >= 7 {
            assert_eq!(response_round_trip(api, v, &body), body, "v{v}");
        } else {
            let err = response_refused(api, v, &body);
            assert!(err.to_string().contains("protocol_name is null"), "v{v}: {err}");
            let empty = ResponseKind::JoinGroup(failed.with_protocol_name(Some(text(""))));
            assert_eq!(response_round_trip(api, v, &empty), empty, "v{v}");
        }

        // `skip_assignment` (KIP-814) exists from v9.
        let skip = ResponseKind::JoinGroup(leader.with_skip_assignment(true));
        if v >= 9 {
            assert_eq!(response_round_trip(api, v, &skip), skip, "v{v}");
        } else {
            response_refused(api, v, &skip);
        }
    }
}

#[test]
fn describe_groups_response_round_trips() {
    // `authorized_operations` defaults to i32::MIN ("not asked for"), the only value below v3.
    assert_eq!(DescribedGroup::default().authorized_operations, i32::MIN);
    let api = ApiKey::DescribeGroups;
    for v in 0..=6 {
        let member = DescribedGroupMember::default()
            .with_member_id(text("member-1"))
            .with_client_id(text("rdkafka"))
            .with_client_host(text("/10.0.0.7"))
            .with_member_metadata(Bytes::from_static(b"metadata"))
            .with_member_assignment(Bytes::from_static(b"assignment"));
        let member =
            if v >= 4 { member.with_group_instance_id(Some(text("instance-1"))) } else { member };
        let stable = DescribedGroup::default()
            .with_group_id(group("orders-consumers"))
            .with_group_state(text("Stable"))
            .with_protocol_type(text("consumer"))
            .with_protocol_data(text("range"))
            .with_members(vec![member]);
        // READ, DELETE and DESCRIBE (bits 3, 6 and 8 of Kafka's ACL operation codes).
        let operations = (1 << 3) | (1 << 6) | (1 << 8);
        let stable = if v >= 3 { stable.with_authorized_operations(operations) } else { stable };
        // An unknown group: `GROUP_ID_NOT_FOUND` with a message from v6 (KIP-1043), a `Dead`
        // group without an error below.
        let unknown = DescribedGroup::default().with_group_id(group("nope"));
        let unknown = if v >= 6 {
            unknown
                .with_error_code(error_code::ResponseError::GroupIdNotFound.code())
                .with_error_message(Some(text("Group nope not found.")))
        } else {
            unknown.with_group_state(text("Dead"))
        };
        let response = DescribeGroupsResponse::default().with_groups(vec![stable, unknown]);
        let body = ResponseKind::DescribeGroups(response.clone());
        assert_eq!(response_round_trip(api, v, &body), body, "v{v}");

        if v < 3 {
            let asked = DescribedGroup::default().with_authorized_operations(operations);
            let body = DescribeGroupsResponse::default().with_groups(vec![asked]);
            response_refused(api, v, &ResponseKind::DescribeGroups(body));
        }
        if v < 6 {
            let message = DescribedGroup::default().with_error_message(Some(text("why")));
            let body = DescribeGroupsResponse::default().with_groups(vec![message]);
            response_refused(api, v, &ResponseKind::DescribeGroups(body));
        }
    }
}

#[test]
fn leave_and_list_groups_responses_keep_to_their_versions() {
    // LeaveGroup answers each member from v3 (KIP-345); a per-member answer below v3 is refused.
    let members = LeaveGroupResponse::default().with_members(vec![
        MemberResponse::default().with_member_id(text("member-1")),
        MemberResponse::default()
            .with_group_instance_id(Some(text("instance-2")))
            .with_error_code(error_code::ResponseError::UnknownMemberId.code()),
    ]);
    let body = ResponseKind::LeaveGroup(members);
    for v in 0..=5 {
        if v >= 3 {
            assert_eq!(response_round_trip(ApiKey::LeaveGroup, v, &body), body, "v{v}");
        } else {
            response_refused(ApiKey::LeaveGroup, v, &body);
        }
    }
    // ListGroups' `group_state` (v4+) and `group_type` (v5+) are ignorable: dropped below.
    let listed = ListedGroup::default()
        .with_group_id(group("orders-consumers"))
        .with_protocol_type(text("consumer"))
        .with_group_state(text("Stable"))
        .with_group_type(text("classic"));
    for v in 0..=5 {
        let mut expected = listed.clone();
        if v < 5 {
            expected = expected.with_group_type(StrBytes::default());
        }
        if v < 4 {
            expected = expected.with_group_state(StrBytes::default());
        }
        let body = ResponseKind::ListGroups(
            ListGroupsResponse::default().with_groups(vec![listed.clone()]),
        );
        let expected =
            ResponseKind::ListGroups(ListGroupsResponse::default().with_groups(vec![expected]));
        assert_eq!(response_round_trip(ApiKey::ListGroups, v, &body), expected, "v{v}");
    }
}

#[test]
fn add_partitions_to_txn_response_keeps_to_its_layouts() {
    // v0–v3 answer the producer's one transaction per topic; v4 answers a batch per
    // transaction, with a top-level error code (KIP-890 part 1).
    let api = ApiKey::AddPartitionsToTxn;
    let topic = |n, codes: &[(i32, ErrorCode)]| {
        AddPartitionsToTxnTopicResult::default().with_name(name(n)).with_results_by_partition(
            codes
                .iter()
                .map(|&(p, code)| {
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(p)
                        .with_partition_error_code(code.code())
                })
                .collect(),
        )
    };
    let by_topic = AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(vec![
        topic("orders", &[(0, error_code::NONE), (1, error_code::UNKNOWN_TOPIC_OR_PARTITION)]),
        topic("audit", &[(3, error_code::OPERATION_NOT_ATTEMPTED)]),
    ]);
    let by_transaction = AddPartitionsToTxnResponse::default().with_results_by_transaction(vec![
        AddPartitionsToTxnResult::default()
            .with_transactional_id(txn_id("tx-1"))
            .with_topic_results(vec![topic("orders", &[(0, error_code::NONE)])]),
        AddPartitionsToTxnResult::default()
            .with_transactional_id(txn_id("tx-2"))
            .with_topic_results(vec![topic("audit", &[(3, error_code::INVALID_TXN_STATE)])]),
    ]);
    for v in 0..=4 {
        let (right, wrong) =
            if v <= 3 { (&by_topic, &by_transaction) } else { (&by_transaction, &by_topic) };
        let body = ResponseKind::AddPartitionsToTxn(right.clone());
        assert_eq!(response_round_trip(api, v, &body), body, "v{v}");
        response_refused(api, v, &ResponseKind::AddPartitionsToTxn(wrong.clone()));
    }
    // The top-level error code is v4's: dropped silently below it (the per-partition codes are
    // what a producer reads), carried at v4.
    let failed = by_topic.clone().with_error_code(error_code::NOT_COORDINATOR.code());
    let decoded = response_round_trip(api, 3, &ResponseKind::AddPartitionsToTxn(failed));
    assert_eq!(decoded, ResponseKind::AddPartitionsToTxn(by_topic));
    let failed = AddPartitionsToTxnResponse::default()
        .with_error_code(error_code::CLUSTER_AUTHORIZATION_FAILED.code());
    let body = ResponseKind::AddPartitionsToTxn(failed);
    assert_eq!(response_round_trip(api, 4, &body), body);
}

#[test]
fn transaction_responses_round_trip() {
    let producer = |id| ProducerId(id);
    for v in 0..=4 {
        let body = ResponseKind::AddOffsetsToTxn(
            AddOffsetsToTxnResponse::default()
                .with_throttle_time_ms(5)
                .with_error_code(error_code::CONCURRENT_TRANSACTIONS.code()),
        );
        assert_eq!(response_round_trip(ApiKey::AddOffsetsToTxn, v, &body), body, "v{v}");

        let ended = EndTxnResponse::default().with_error_code(error_code::INVALID_TXN_STATE.code());
        let body = ResponseKind::EndTxn(ended.clone());
        assert_eq!(response_round_trip(ApiKey::EndTxn, v, &body), body, "v{v}");
        // The new producer id and epoch are v5's (KIP-890 part 2): not written below it.
        let bumped = ResponseKind::EndTxn(
            ended.clone().with_producer_id(producer(4_711)).with_producer_epoch(8),
        );
        let decoded = response_round_trip(ApiKey::EndTxn, v, &bumped);
        assert_eq!(decoded, ResponseKind::EndTxn(ended), "v{v}");

        let body = ResponseKind::TxnOffsetCommit(TxnOffsetCommitResponse::default().with_topics(
            vec![kafka_protocol::messages::txn_offset_commit_response::TxnOffsetCommitResponseTopic::default()
                .with_name(name("orders"))
                .with_partitions(vec![
                    kafka_protocol::messages::txn_offset_commit_response::TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(0),
                    kafka_protocol::messages::txn_offset_commit_response::TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(1)
                        .with_error_code(error_code::ILLEGAL_GENERATION.code()),
                ])],
        ));
        assert_eq!(response_round_trip(ApiKey::TxnOffsetCommit, v, &body), body, "v{v}");
    }

    use kafka_protocol::messages::write_txn_markers_response::{
        WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
    };
    let body =
        ResponseKind::WriteTxnMarkers(WriteTxnMarkersResponse::default().with_markers(vec![
            WritableTxnMarkerResult::default().with_producer_id(producer(4_711)).with_topics(vec![
                WritableTxnMarkerTopicResult::default().with_name(name("orders")).with_partitions(
                    vec![
                WritableTxnMarkerPartitionResult::default().with_partition_index(0),
                WritableTxnMarkerPartitionResult::default()
                    .with_partition_index(1)
                    .with_error_code(error_code::NOT_LEADER_OR_FOLLOWER.code()),
            ],
                ),
            ]),
        ]));
    assert_eq!(response_round_trip(ApiKey::WriteTxnMarkers, 1, &body), body);

    use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
    let body = ResponseKind::DescribeTransactions(
        DescribeTransactionsResponse::default().with_transaction_states(vec![
            TransactionState::default()
                .with_transactional_id(txn_id("tx-1"))
                .with_transaction_state(text("Ongoing"))
                .with_transaction_timeout_ms(60_000)
                .with_transaction_start_time_ms(1_700_000_000_000)
                .with_producer_id(producer(4_711))
                .with_producer_epoch(7)
                .with_topics(vec![
                    TopicData::default().with_topic(name("orders")).with_partitions(vec![0, 1]),
                ]),
            TransactionState::default()
                .with_error_code(error_code::TRANSACTIONAL_ID_NOT_FOUND.code())
                .with_transactional_id(txn_id("tx-unknown")),
        ]),
    );
    assert_eq!(response_round_trip(ApiKey::DescribeTransactions, 0, &body), body);

    use kafka_protocol::messages::list_transactions_response::TransactionState as Listed;
    for v in 0..=1 {
        let body = ResponseKind::ListTransactions(
            ListTransactionsResponse::default()
                .with_unknown_state_filters(vec![text("Bogus")])
                .with_transaction_states(vec![
                    Listed::default()
                        .with_transactional_id(txn_id("tx-1"))
                        .with_producer_id(producer(4_711))
                        .with_transaction_state(text("Ongoing")),
                ]),
        );
        assert_eq!(response_round_trip(ApiKey::ListTransactions, v, &body), body, "v{v}");
    }
}

#[test]
fn encode_errors_leave_the_buffer_untouched() {
    let metadata = ResponseKind::Metadata(MetadataResponse::default());
    let before = Bytes::from_static(b"earlier response bytes");
    let cases = [
        (ApiKey::Produce, 9, metadata.clone(), "BodyMismatch"),
        (ApiKey::ConsumerGroupHeartbeat, 0, metadata.clone(), "UnsupportedApi"),
        (ApiKey::Metadata, 13, metadata.clone(), "UnsupportedVersion"),
        (
            // `topic_authorized_operations` exists from Metadata v8 and is not ignorable, so
            // kafka-protocol refuses a non-default value at v1 (ignorable fields, such as
            // Produce's `error_message` before v8, are dropped silently instead).
            ApiKey::Metadata,
            1,
            ResponseKind::Metadata(MetadataResponse::default().with_topics(vec![
                MetadataResponseTopic::default()
                    .with_name(Some(name("orders")))
                    .with_topic_authorized_operations(0),
            ])),
            "Invalid",
        ),
    ];
    for (api, version, body, expected) in cases {
        let mut out = BytesMut::from(&before[..]);
        let err = encode_response(1, api, version, &body, &mut out).expect_err("refused");
        let kind = match err {
            EncodeError::BodyMismatch { .. } => "BodyMismatch",
            EncodeError::UnsupportedApi { .. } => "UnsupportedApi",
            EncodeError::UnsupportedVersion { .. } => "UnsupportedVersion",
            EncodeError::Invalid { .. } => "Invalid",
            EncodeError::Frame(_) => "Frame",
        };
        assert_eq!(kind, expected, "{err}");
        assert_eq!(&out[..], &before[..], "{expected}: buffer changed");
    }
    // The length check itself (a 2 GiB response is not built in a unit test).
    assert!(frame::length_prefix(i32::MAX as usize + 1).is_err());
}

// ---------------------------------------------------------------------------------------------
// No input panics.

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// Decodes `frame`; a panic fails the test (an abort would end the whole run).
fn survive(frame: Bytes) -> Result<Request, DecodeError> {
    decode_request(frame)
}

#[test]
fn truncations_of_valid_requests_are_errors() {
    for (api, v, frame) in served_requests() {
        assert!(survive(frame.clone()).is_ok(), "{api:?} v{v} whole");
        for len in 0..frame.len() {
            assert!(
                survive(frame.slice(..len)).is_err(),
                "{api:?} v{v} cut to {len} of {}",
                frame.len()
            );
        }
    }
}

/// What one decode of a frame came to, seen from outside `decode_request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The request header did not decode (an inflated client id length, say).
    HeaderRefused,
    /// The bounds check refused the body: an array count that cannot fit in the bytes left.
    PreflightArrayTooLong,
    /// The bounds check refused the body for another reason (truncated field, bad length).
    PreflightOther,
    /// The bounds check let the body through and kafka-protocol refused it.
    DecoderRefused,
    /// The body decoded (the inflated bytes were not a length, or a plausible one).
    Decoded,
}

/// Classifies a frame whose first 8 bytes are a served api key and version.
fn outcome_of(
    api: ApiKey,
    v: i16,
    frame: &Bytes,
    result: &Result<Request, DecodeError>,
) -> Outcome {
    match result {
        Ok(_) => Outcome::Decoded,
        Err(DecodeError::Malformed { part: "header", .. }) => Outcome::HeaderRefused,
        Err(DecodeError::Malformed { part: "body", .. }) => {
            let mut body = frame.clone();
            RequestHeader::decode(&mut body, api.request_header_version(v))
                .expect("the header decoded in decode_request");
            match preflight::check_body(api, v, &body) {
                Err(PreflightError::ArrayTooLong { .. }) => Outcome::PreflightArrayTooLong,
                Err(_) => Outcome::PreflightOther,
                Ok(_) => Outcome::DecoderRefused,
            }
        }
        Err(e) => panic!("{api:?} v{v}: a change after byte 8 was refused before the header: {e}"),
    }
}

/// Bound on the bytes one decode of an `n`-byte frame may allocate:
/// `DECODE_ALLOC_PER_FRAME_BYTE_MAX × n + DECODE_ALLOC_FIXED_BYTES_MAX`.
///
/// Why this bound. Strings and `bytes` in a decoded request share the frame's buffer, so what a
/// decode allocates is its structs and the arrays kafka-protocol reserves with
/// `Vec::with_capacity(count)`. The preflight walk lets a count through only when
/// `count × element_bytes_min` fits in the bytes left, so an array reserves at most
/// (frame bytes ÷ wire bytes of its smallest element) × (its element's size in memory): a
/// fixed multiple of the frame. 64 leaves room for the widest ratio among the served requests
/// (elements of a few dozen bytes in memory that can be 1 to 4 bytes on the wire). The fixed
/// part covers what does not grow with the frame: the top-level request struct, the error and
/// its formatted reason, and the backtrace that kafka-protocol's `anyhow` errors capture when
/// `RUST_BACKTRACE` is set (about 3.5 KiB of the ~5.5 KiB largest measured; without it every
/// decode here stays under 4 KiB). A count that skipped the walk would reserve up to
/// `i32::MAX` elements, gigabytes: no bound of this shape lets that through.
const DECODE_ALLOC_PER_FRAME_BYTE_MAX: u64 = 64;
const DECODE_ALLOC_FIXED_BYTES_MAX: u64 = 8 * 1024;

fn decode_alloc_bound(frame_bytes: usize) -> u64 {
    DECODE_ALLOC_PER_FRAME_BYTE_MAX * frame_bytes as u64 + DECODE_ALLOC_FIXED_BYTES_MAX
}

/// Request bodies without any array (so no count to inflate), by api key and versions.
fn has_no_array(api: ApiKey, v: i16) -> bool {
    match api {
        ApiKey::ApiVersions | ApiKey::DescribeCluster | ApiKey::InitProducerId => true,
        ApiKey::Heartbeat | ApiKey::UnregisterBroker => true,
        ApiKey::SaslHandshake | ApiKey::SaslAuthenticate | ApiKey::DescribeAcls => true,
        ApiKey::AddOffsetsToTxn | ApiKey::EndTxn => true,
        ApiKey::FindCoordinator | ApiKey::ListGroups => v <= 3, // v4 added the key/state arrays
        ApiKey::LeaveGroup => v <= 2,                           // v3 added `members`
        _ => false,
    }
}

#[test]
fn inflated_length_fields_are_refused_without_allocating() {
    // At every position of every served request, overwrite what may be a length or count with
    // the largest values each encoding can hold; decode, measure what the decode allocated,
    // and count where each frame ended.
    let patterns: [&[u8]; 5] = [
        &[0x7f, 0xff, 0xff, 0xff],       // int32 array count / bytes length
        &[0x7f, 0xff],                   // int16 string length
        &[0xff, 0xff, 0xff, 0xff, 0x0f], // unsigned varint 2^32 - 1
        &[0xfe, 0xff, 0xff, 0xff, 0x07], // unsigned varint 2^31 - 2
        &[0xff, 0xff, 0xff, 0xfe],       // int32 -2
    ];
    let mut outcomes: std::collections::BTreeMap<String, u64> = Default::default();
    for (api, v, frame) in served_requests() {
        let mut too_long_here = 0u64;
        for at in 8..frame.len() {
            for (p, pattern) in patterns.iter().enumerate() {
                let mut m = BytesMut::from(&frame[..]);
                let end = (at + pattern.len()).min(m.len());
                m[at..end].copy_from_slice(&pattern[..end - at]);
                let mutated = m.freeze();
                let n = mutated.len();
                // The handle is made before counting starts, so only the decode is measured.
                let handle = mutated.slice(..);
                let (result, allocated) = counting_alloc::allocated_by(|| survive(handle));
                assert!(
                    allocated <= decode_alloc_bound(n),
                    "{api:?} v{v}, pattern {p} at byte {at}: decoding {n} bytes allocated \
                     {allocated}, over the bound {}",
                    decode_alloc_bound(n)
                );
                let outcome = outcome_of(api, v, &mutated, &result);
                too_long_here += u64::from(outcome == Outcome::PreflightArrayTooLong);
                *outcomes.entry(format!("{outcome:?}")).or_default() += 1;
            }
        }
        // Every request with an array has a count that, set to 2^31 - 1, the walk refuses.
        assert_eq!(
            too_long_here > 0,
            !has_no_array(api, v),
            "{api:?} v{v}: {too_long_here} frames refused for an impossible array count"
        );
    }
    // Every way a frame can end occurs, and often: the patterns reach the header, the walk,
    // kafka-protocol's own checks, and fields that are no length at all. (Measured when this
    // was written: 45,184 decoded, 13,919 refused by the decoder, 7,891 header, 6,004 array
    // count, 14,632 other walk refusals.)
    for outcome in [
        Outcome::HeaderRefused,
        Outcome::PreflightArrayTooLong,
        Outcome::PreflightOther,
        Outcome::DecoderRefused,
        Outcome::Decoded,
    ] {
        let seen = outcomes.get(&format!("{outcome:?}")).copied().unwrap_or(0);
        assert!(seen >= 3_000, "{outcome:?}: {seen} frames; all outcomes: {outcomes:?}");
    }
}

#[test]
fn random_and_mutated_inputs_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // Random bytes: half with a served api key and version in front so they reach the body.
    for i in 0..20_000 {
        let len = rng.below(96);
        let mut b = BytesMut::with_capacity(len + 8);
        if i % 2 == 0 {
            let &(api, min, max) = &SUPPORTED[rng.below(SUPPORTED.len())];
            b.put_i16(api as i16);
            b.put_i16(min + rng.below(usize::from((max - min) as u16) + 1) as i16);
            b.put_i32(rng.next() as i32);
        }
        for _ in 0..len {
            b.put_u8(rng.byte());
        }
        let _ = survive(b.freeze());
    }
    // Valid requests with a few bytes changed. Count outcomes, so the test also shows that
    // the mutations reach the body decoder rather than all dying in the header.
    let corpus = served_requests();
    let (mut decoded, mut body_errors) = (0, 0);
    for _ in 0..50_000 {
        let (_, _, frame) = &corpus[rng.below(corpus.len())];
        let mut m = BytesMut::from(&frame[..]);
        for _ in 0..1 + rng.below(4) {
            let at = 8 + rng.below(m.len() - 8);
            m[at] = match rng.below(4) {
                0 => rng.byte(),
                1 => 0xff,
                2 => 0x00,
                _ => m[at] ^ (1 << rng.below(8)),
            };
        }
        match survive(m.freeze()) {
            Ok(_) => decoded += 1,
            Err(DecodeError::Malformed { part: "body", .. }) => body_errors += 1,
            Err(_) => {}
        }
    }
    assert!(
        decoded > 10_000 && body_errors > 5_000,
        "decoded {decoded}, body errors {body_errors}"
    );
}

#[test]
fn preflight_agrees_with_kafka_protocol_on_mutated_bodies() {
    // Differential check of the walk against the decoder it guards: where the walk accepts a
    // body and kafka-protocol decodes it, both end at the same byte; where the walk refuses a
    // body for any reason but an impossible array count, kafka-protocol refuses it too. (An
    // impossible count is not handed to kafka-protocol: that is the allocation to avoid.)
    let mut rng = Rng(0x0DD5_EED5);
    let corpus = served_requests();
    let (mut agreed_ok, mut agreed_err) = (0, 0);
    for _ in 0..20_000 {
        let (api, v, frame) = &corpus[rng.below(corpus.len())];
        let (api, v) = (*api, *v);
        let mut m = BytesMut::from(&frame[..]);
        for _ in 0..1 + rng.below(3) {
            let at = 8 + rng.below(m.len() - 8);
            m[at] = if rng.below(2) == 0 { rng.byte() } else { m[at] ^ (1 << rng.below(8)) };
        }
        let mut body = m.freeze();
        if RequestHeader::decode(&mut body, api.request_header_version(v)).is_err() {
            continue;
        }
        match preflight::check_body(api, v, &body) {
            Err(PreflightError::ArrayTooLong { .. }) => {}
            Err(e) => {
                let decoded = RequestKind::decode(api, &mut body.clone(), v);
                assert!(decoded.is_err(), "{api:?} v{v}: walk refused ({e}) what decodes");
                agreed_err += 1;
            }
            Ok(walked) => {
                let mut rest = body.clone();
                if RequestKind::decode(api, &mut rest, v).is_ok() {
                    assert_eq!(
                        body.len() - rest.len(),
                        walked,
                        "{api:?} v{v}: walk ended elsewhere"
                    );
                    agreed_ok += 1;
                }
            }
        }
    }
    assert!(agreed_ok > 5_000 && agreed_err > 500, "ok {agreed_ok}, err {agreed_err}");
}

// ---------------------------------------------------------------------------------------------
// A counting global allocator, so that a test can measure what a decode allocates.

/// Counts, per thread, the bytes asked of the allocator (`alloc`, `alloc_zeroed`, and the new
/// size of every `realloc`, since a growing `realloc` may move); frees are not subtracted. The
/// counter is thread-local, so tests running in parallel do not see each other's allocations.
/// Test-only: the crate forbids `unsafe` outside `cfg(test)`.
#[allow(unsafe_code)]
mod counting_alloc {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static ALLOCATED_BYTES: Cell<u64> = const { Cell::new(0) };
    }

    fn count(bytes: usize) {
        // `try_with`: while a thread is torn down its counter may be gone; those bytes are not
        // any test's. A const-initialised `Cell` needs no allocation and no destructor.
        let _ = ALLOCATED_BYTES.try_with(|c| c.set(c.get() + bytes as u64));
    }

    #[derive(Debug)]
    pub struct Counting;

    // SAFETY: every method forwards its arguments unchanged to `System`, so `System`'s
    // guarantees are ours; counting only touches a thread-local `Cell`, which neither allocates
    // nor unwinds.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            count(layout.size());
            // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which is `System`'s.
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            count(layout.size());
            // SAFETY: as for `alloc`.
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: `ptr` came from `System` with `layout` (every allocation here does).
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            count(new_size);
            // SAFETY: `ptr` came from `System` with `layout`; the caller upholds the rest.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    /// Runs `f`; returns its result and the bytes this thread allocated while it ran.
    pub fn allocated_by<T>(f: impl FnOnce() -> T) -> (T, u64) {
        let before = ALLOCATED_BYTES.with(Cell::get);
        let out = f();
        (out, ALLOCATED_BYTES.with(Cell::get) - before)
    }
}
