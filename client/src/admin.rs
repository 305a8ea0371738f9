//! Pure request builders and answer readers for the admin side of Kafka (topics, configs,
//! groups, the cluster): part of the sans-I/O core beside [`crate::requests`], used by the
//! `odradek` CLI. Every reader turns a Kafka error code into a [`ClientError::Broker`] naming
//! what was asked, with the broker's message when it sent one, and returns plain Rust values.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, CreatePartitionsRequest, CreatePartitionsResponse,
    CreateTopicsRequest, CreateTopicsResponse, DeleteGroupsRequest, DeleteGroupsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, DescribeClusterRequest, DescribeClusterResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, GroupId, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, ListGroupsRequest, ListGroupsResponse, MetadataRequest,
    MetadataResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest,
    OffsetFetchResponse,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

use crate::error::{ClientError, Result};
use crate::requests::{CREATE_TOPIC_TIMEOUT_MS, topic_name};

/// DescribeConfigs' and IncrementalAlterConfigs' resource type of a topic.
pub const RESOURCE_TOPIC: i8 = 2;
/// IncrementalAlterConfigs' SET operation.
pub const CONFIG_SET: i8 = 0;
/// IncrementalAlterConfigs' DELETE operation (back to the default).
pub const CONFIG_DELETE: i8 = 1;

fn s(v: &str) -> StrBytes {
    StrBytes::from(v.to_owned())
}

fn group_id(group: &str) -> GroupId {
    GroupId(s(group))
}

/// `what`, with the broker's message if it sent one, as a [`ClientError::Broker`].
fn broker_err(what: String, code: i16, message: Option<&StrBytes>) -> ClientError {
    match message.map(|m| m.as_str()).filter(|m| !m.is_empty()) {
        Some(m) => ClientError::Broker { what: format!("{what} ({m})"), code },
        None => ClientError::Broker { what, code },
    }
}

/// A broker as Metadata lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerView {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerView {
    /// From the fields Metadata and DescribeCluster both carry for a broker.
    fn new(id: i32, host: &StrBytes, port: i32, rack: Option<&StrBytes>) -> Self {
        let rack = rack.map(|r| r.as_str().to_owned());
        BrokerView { id, host: host.as_str().to_owned(), port, rack }
    }
}

/// One partition as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    pub partition: i32,
    pub error_code: i16,
    /// -1 without a leader.
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// One topic as Metadata describes it, partitions sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicView {
    pub name: String,
    pub error_code: i16,
    pub internal: bool,
    pub partitions: Vec<PartitionView>,
}

/// What a Metadata answer says about the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: Vec<BrokerView>,
    pub topics: Vec<TopicView>,
}

/// Metadata of `topics` (every topic for `None`) at `version`, never auto-creating one.
pub fn metadata_of(topics: Option<&[String]>, version: i16) -> MetadataRequest {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    let topics = topics.map(|ts| {
        ts.iter().map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t)))).collect()
    });
    let req = MetadataRequest::default().with_topics(topics);
    if version >= 4 { req.with_allow_auto_topic_creation(false) } else { req }
}

/// The brokers, controller, cluster id and topics of a Metadata answer, sorted by id and name.
pub fn cluster_view(resp: &MetadataResponse) -> ClusterView {
    let mut brokers: Vec<BrokerView> = resp
        .brokers
        .iter()
        .map(|b| BrokerView::new(b.node_id.0, &b.host, b.port, b.rack.as_ref()))
        .collect();
    brokers.sort_by_key(|b| b.id);
    let mut topics: Vec<TopicView> = resp
        .topics
        .iter()
        .map(|t| {
            let mut partitions: Vec<PartitionView> = t
                .partitions
                .iter()
                .map(|p| PartitionView {
                    partition: p.partition_index,
                    error_code: p.error_code,
                    leader: p.leader_id.0,
                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            TopicView {
                name: t.name.as_ref().map(|n| n.0.as_str().to_owned()).unwrap_or_default(),
                error_code: t.error_code,
                internal: t.is_internal,
                partitions,
            }
        })
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    ClusterView {
        cluster_id: resp.cluster_id.as_ref().map(|c| c.as_str().to_owned()),
        controller_id: resp.controller_id.0,
        brokers,
        topics,
    }
}

/// CreateTopics of one topic with `configs`; `replication_factor` -1 takes the broker's default.
pub fn create_topic_with_configs(
    topic: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[(String, String)],
) -> CreateTopicsRequest {
    let configs = configs
        .iter()
        .map(|(k, v)| CreatableTopicConfig::default().with_name(s(k)).with_value(Some(s(v))))
        .collect();
    let t = CreatableTopic::default()
        .with_name(topic_name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(replication_factor)
        .with_configs(configs);
    CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(CREATE_TOPIC_TIMEOUT_MS)
}

/// Checks a CreateTopics answer; unlike [`crate::requests::check_created`], an existing topic
/// is an error.
///
/// # Errors
///
/// [`ClientError::Broker`] with the topic's error code.
pub fn check_create(resp: &CreateTopicsResponse, topic: &str) -> Result<()> {
    for t in &resp.topics {
        if t.error_code != 0 {
            let what = format!("creating topic {topic}");
            return Err(broker_err(what, t.error_code, t.error_message.as_ref()));
        }
    }
    Ok(())
}

/// DeleteTopics of `topics` by name at `version` (v6+ names them in `topics`).
pub fn delete_topics(topics: &[String], version: i16) -> DeleteTopicsRequest {
    let req = DeleteTopicsRequest::default().with_timeout_ms(CREATE_TOPIC_TIMEOUT_MS);
    if version >= 6 {
        req.with_topics(
            topics
                .iter()
                .map(|t| DeleteTopicState::default().with_name(Some(topic_name(t))))
                .collect(),
        )
    } else {
        req.with_topic_names(topics.iter().map(|t| topic_name(t)).collect())
    }
}

/// Checks a DeleteTopics answer.
///
/// # Errors
///
/// [`ClientError::Broker`] for the first topic with an error.
pub fn check_deleted(resp: &DeleteTopicsResponse) -> Result<()> {
    for t in &resp.responses {
        if t.error_code != 0 {
            let name = t.name.as_ref().map(|n| n.0.as_str()).unwrap_or("?");
            let what = format!("deleting topic {name}");
            return Err(broker_err(what, t.error_code, t.error_message.as_ref()));
        }
    }
    Ok(())
}

/// CreatePartitions: `topic` grows to `total` partitions.
pub fn create_partitions(topic: &str, total: i32) -> CreatePartitionsRequest {
    let t = CreatePartitionsTopic::default().with_name(topic_name(topic)).with_count(total);
    CreatePartitionsRequest::default().with_topics(vec![t]).with_timeout_ms(CREATE_TOPIC_TIMEOUT_MS)
}

/// Checks a CreatePartitions answer.
///
/// # Errors
///
/// [`ClientError::Broker`] for the topic's error.
pub fn check_partitions_created(resp: &CreatePartitionsResponse) -> Result<()> {
    for t in &resp.results {
        if t.error_code != 0 {
            let what = format!("adding partitions to {}", t.name.0.as_str());
            return Err(broker_err(what, t.error_code, t.error_message.as_ref()));
        }
    }
    Ok(())
}

/// One config entry of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    /// Kafka's config source: 1 the topic, 4/5 the broker, 5 default ... as named by
    /// [`config_source_name`].
    pub source: i8,
    pub read_only: bool,
    pub sensitive: bool,
}

/// Kafka's name of a DescribeConfigs `config_source`.
pub fn config_source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

/// DescribeConfigs of every config of `topic`.
pub fn describe_topic_configs(topic: &str) -> DescribeConfigsRequest {
    let r = DescribeConfigsResource::default()
        .with_resource_type(RESOURCE_TOPIC)
        .with_resource_name(s(topic))
        .with_configuration_keys(None);
    DescribeConfigsRequest::default().with_resources(vec![r])
}

/// The entries of a DescribeConfigs answer, sorted by name.
///
/// # Errors
///
/// [`ClientError::Broker`] for the resource's error.
pub fn config_entries(resp: &DescribeConfigsResponse) -> Result<Vec<ConfigEntry>> {
    let mut out = Vec::new();
    for r in &resp.results {
        if r.error_code != 0 {
            let what = format!("describing the configs of {}", r.resource_name.as_str());
            return Err(broker_err(what, r.error_code, r.error_message.as_ref()));
        }
        out.extend(r.configs.iter().map(|c| ConfigEntry {
            name: c.name.as_str().to_owned(),
            value: c.value.as_ref().map(|v| v.as_str().to_owned()),
            source: c.config_source,
            read_only: c.read_only,
            sensitive: c.is_sensitive,
        }));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// IncrementalAlterConfigs of `topic`: `set` keys to values, `delete` keys back to defaults.
pub fn alter_topic_configs(
    topic: &str,
    set: &[(String, String)],
    delete: &[String],
) -> IncrementalAlterConfigsRequest {
    let mut configs: Vec<AlterableConfig> = set
        .iter()
        .map(|(k, v)| {
            AlterableConfig::default()
                .with_name(s(k))
                .with_config_operation(CONFIG_SET)
                .with_value(Some(s(v)))
        })
        .collect();
    configs.extend(
        delete.iter().map(|k| {
            AlterableConfig::default().with_name(s(k)).with_config_operation(CONFIG_DELETE)
        }),
    );
    let r = AlterConfigsResource::default()
        .with_resource_type(RESOURCE_TOPIC)
        .with_resource_name(s(topic))
        .with_configs(configs);
    IncrementalAlterConfigsRequest::default().with_resources(vec![r])
}

/// Checks an IncrementalAlterConfigs answer.
///
/// # Errors
///
/// [`ClientError::Broker`] for the resource's error.
pub fn check_altered(resp: &IncrementalAlterConfigsResponse) -> Result<()> {
    for r in &resp.responses {
        if r.error_code != 0 {
            let what = format!("altering the configs of {}", r.resource_name.as_str());
            return Err(broker_err(what, r.error_code, r.error_message.as_ref()));
        }
    }
    Ok(())
}

/// A group as ListGroups lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub group: String,
    pub protocol_type: String,
    /// Empty where the broker's version carries no state (before v4).
    pub state: String,
}

/// ListGroups of every group.
pub fn list_groups() -> ListGroupsRequest {
    ListGroupsRequest::default()
}

/// The groups of a ListGroups answer, sorted.
///
/// # Errors
///
/// [`ClientError::Broker`] for the answer's error.
pub fn listed_groups(resp: &ListGroupsResponse) -> Result<Vec<ListedGroup>> {
    if resp.error_code != 0 {
        return Err(ClientError::broker("ListGroups", resp.error_code));
    }
    let mut out: Vec<ListedGroup> = resp
        .groups
        .iter()
        .map(|g| ListedGroup {
            group: g.group_id.0.as_str().to_owned(),
            protocol_type: g.protocol_type.as_str().to_owned(),
            state: g.group_state.as_str().to_owned(),
        })
        .collect();
    out.sort_by(|a, b| a.group.cmp(&b.group));
    Ok(out)
}

/// A member of a described group, with its assignment when it is a consumer's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    /// (topic, partitions) of a consumer-protocol assignment; empty if none or undecodable.
    pub assignment: Vec<(String, Vec<i32>)>,
}

/// A group as DescribeGroups describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub group: String,
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberView>,
}

/// DescribeGroups of `group`.
pub fn describe_group(group: &str) -> DescribeGroupsRequest {
    DescribeGroupsRequest::default().with_groups(vec![group_id(group)])
}

/// The (topic, partitions) of a consumer-protocol assignment (an i16 version, then the
/// message); empty for bytes that are none.
pub fn decode_assignment(bytes: &Bytes) -> Vec<(String, Vec<i32>)> {
    if bytes.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]).clamp(0, 3);
    let mut body = bytes.slice(2..);
    match ConsumerProtocolAssignment::decode(&mut body, version) {
        Ok(a) => a
            .assigned_partitions
            .into_iter()
            .map(|TopicPartition { topic, mut partitions, .. }| {
                partitions.sort_unstable();
                (topic.0.as_str().to_owned(), partitions)
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The group of a DescribeGroups answer.
///
/// # Errors
///
/// [`ClientError::Broker`] for the group's error; [`ClientError::Unexpected`] if it is absent.
pub fn group_view(resp: &DescribeGroupsResponse, group: &str) -> Result<GroupView> {
    let g = resp.groups.iter().find(|g| g.group_id.0.as_str() == group).ok_or_else(|| {
        ClientError::Unexpected { what: format!("DescribeGroups did not answer for {group}") }
    })?;
    if g.error_code != 0 {
        let what = format!("describing group {group}");
        return Err(broker_err(what, g.error_code, g.error_message.as_ref()));
    }
    let consumer = g.protocol_type.as_str() == "consumer";
    let mut members: Vec<MemberView> = g
        .members
        .iter()
        .map(|m| MemberView {
            member_id: m.member_id.as_str().to_owned(),
            client_id: m.client_id.as_str().to_owned(),
            client_host: m.client_host.as_str().to_owned(),
            assignment: if consumer { decode_assignment(&m.member_assignment) } else { Vec::new() },
        })
        .collect();
    members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    Ok(GroupView {
        group: group.to_owned(),
        state: g.group_state.as_str().to_owned(),
        protocol_type: g.protocol_type.as_str().to_owned(),
        protocol: g.protocol_data.as_str().to_owned(),
        members,
    })
}

/// DeleteGroups of `group`.
pub fn delete_group(group: &str) -> DeleteGroupsRequest {
    DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)])
}

/// Checks a DeleteGroups answer.
///
/// # Errors
///
/// [`ClientError::Broker`] for the group's error.
pub fn check_group_deleted(resp: &DeleteGroupsResponse) -> Result<()> {
    for r in &resp.results {
        if r.error_code != 0 {
            let what = format!("deleting group {}", r.group_id.0.as_str());
            return Err(ClientError::broker(what, r.error_code));
        }
    }
    Ok(())
}

/// FindCoordinator of a group (key type 0), at versions before the batched v4.
pub fn find_group_coordinator(group: &str) -> FindCoordinatorRequest {
    FindCoordinatorRequest::default().with_key(s(group))
}

/// The coordinator's `host:port` from a FindCoordinator answer.
///
/// # Errors
///
/// [`ClientError::Broker`] for its error (COORDINATOR_NOT_AVAILABLE is retriable).
pub fn coordinator_addr(resp: &FindCoordinatorResponse, group: &str) -> Result<String> {
    if let Some(c) = resp.coordinators.first() {
        if c.error_code != 0 {
            let what = format!("finding the coordinator of group {group}");
            return Err(broker_err(what, c.error_code, c.error_message.as_ref()));
        }
        return Ok(format!("{}:{}", c.host.as_str(), c.port));
    }
    if resp.error_code != 0 {
        let what = format!("finding the coordinator of group {group}");
        return Err(broker_err(what, resp.error_code, resp.error_message.as_ref()));
    }
    Ok(format!("{}:{}", resp.host.as_str(), resp.port))
}

/// OffsetFetch of every committed offset of `group` (v2+; before v8's batched form).
pub fn offset_fetch_all(group: &str) -> OffsetFetchRequest {
    OffsetFetchRequest::default().with_group_id(group_id(group)).with_topics(None)
}

/// OffsetFetch of `group`'s committed offsets of named (topic, partitions): for brokers that
/// cannot answer [`offset_fetch_all`] (Tansu 0.x answers it with a null array).
pub fn offset_fetch_of(group: &str, topics: &[(String, Vec<i32>)]) -> OffsetFetchRequest {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    let topics = topics
        .iter()
        .map(|(t, parts)| {
            OffsetFetchRequestTopic::default()
                .with_name(topic_name(t))
                .with_partition_indexes(parts.clone())
        })
        .collect();
    OffsetFetchRequest::default().with_group_id(group_id(group)).with_topics(Some(topics))
}

/// The committed offsets of an OffsetFetch answer: topic → partition → offset (those without
/// a committed offset are left out).
///
/// # Errors
///
/// [`ClientError::Broker`] for the answer's or a partition's error.
pub fn committed_offsets(
    resp: &OffsetFetchResponse,
    group: &str,
) -> Result<BTreeMap<String, BTreeMap<i32, i64>>> {
    if resp.error_code != 0 {
        return Err(ClientError::broker(format!("OffsetFetch of group {group}"), resp.error_code));
    }
    let mut out: BTreeMap<String, BTreeMap<i32, i64>> = BTreeMap::new();
    for t in &resp.topics {
        for p in &t.partitions {
            if p.error_code != 0 {
                let what = format!(
                    "OffsetFetch of group {group}, {}/{}",
                    t.name.0.as_str(),
                    p.partition_index
                );
                return Err(ClientError::broker(what, p.error_code));
            }
            if p.committed_offset >= 0 {
                out.entry(t.name.0.as_str().to_owned())
                    .or_default()
                    .insert(p.partition_index, p.committed_offset);
            }
        }
    }
    Ok(out)
}

/// OffsetCommit of `positions` (topic → partition → offset) by an administrator, outside any
/// generation (generation -1, no member): brokers accept it only for a group without members.
pub fn admin_commit(
    group: &str,
    positions: &BTreeMap<String, BTreeMap<i32, i64>>,
) -> OffsetCommitRequest {
    let topics = positions
        .iter()
        .map(|(t, parts)| {
            let parts = parts
                .iter()
                .map(|(&p, &o)| {
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(o)
                })
                .collect();
            OffsetCommitRequestTopic::default().with_name(topic_name(t)).with_partitions(parts)
        })
        .collect();
    OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::default())
        .with_retention_time_ms(-1)
        .with_topics(topics)
}

/// Checks an OffsetCommit answer.
///
/// # Errors
///
/// [`ClientError::Broker`] for the first partition with an error.
pub fn check_committed(resp: &OffsetCommitResponse, group: &str) -> Result<()> {
    for t in &resp.topics {
        for p in &t.partitions {
            if p.error_code != 0 {
                let what = format!(
                    "committing group {group}'s offset of {}/{}",
                    t.name.0.as_str(),
                    p.partition_index
                );
                return Err(ClientError::broker(what, p.error_code));
            }
        }
    }
    Ok(())
}

/// What DescribeCluster says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedCluster {
    pub cluster_id: String,
    pub controller_id: i32,
    pub brokers: Vec<BrokerView>,
}

/// DescribeCluster.
pub fn describe_cluster() -> DescribeClusterRequest {
    DescribeClusterRequest::default()
}

/// The cluster of a DescribeCluster answer, brokers sorted by id.
///
/// # Errors
///
/// [`ClientError::Broker`] for its error.
pub fn described_cluster(resp: &DescribeClusterResponse) -> Result<DescribedCluster> {
    if resp.error_code != 0 {
        return Err(broker_err(
            "DescribeCluster".into(),
            resp.error_code,
            resp.error_message.as_ref(),
        ));
    }
    let mut brokers: Vec<BrokerView> = resp
        .brokers
        .iter()
        .map(|b| BrokerView::new(b.broker_id.0, &b.host, b.port, b.rack.as_ref()))
        .collect();
    brokers.sort_by_key(|b| b.id);
    Ok(DescribedCluster {
        cluster_id: resp.cluster_id.as_str().to_owned(),
        controller_id: resp.controller_id.0,
        brokers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::kafka_error_name;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn assignments_decode_and_garbage_is_empty() {
        let tp = TopicPartition::default().with_topic(topic_name("t")).with_partitions(vec![3, 1]);
        let a = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![tp]);
        let mut buf = BytesMut::new();
        buf.put_i16(0);
        a.encode(&mut buf, 0).expect("encode");
        assert_eq!(decode_assignment(&buf.freeze()), vec![("t".to_owned(), vec![1, 3])]);
        assert!(decode_assignment(&Bytes::from_static(&[0, 0, 0xff])).is_empty());
        assert!(decode_assignment(&Bytes::new()).is_empty());
    }

    #[test]
    fn delete_topics_names_topics_where_the_version_wants_them() {
        let names = vec!["a".to_owned()];
        assert_eq!(delete_topics(&names, 5).topic_names.len(), 1);
        assert!(delete_topics(&names, 5).topics.is_empty());
        assert_eq!(delete_topics(&names, 6).topics.len(), 1);
    }

    #[test]
    fn kafka_error_names_are_kafkas() {
        assert_eq!(kafka_error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(kafka_error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(kafka_error_name(68), "NON_EMPTY_GROUP");
        assert_eq!(kafka_error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(kafka_error_name(9999), "UNKNOWN_ERROR_CODE_9999");
    }
}
