//! Pure request builders and response readers for the calls the helpers make (Metadata,
//! CreateTopics, ListOffsets, InitProducerId, Produce, Fetch): part of the sans-I/O core, so a
//! compio transport builds the same requests and reads the same answers.

use std::collections::HashMap;

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, FetchRequest, InitProducerIdRequest,
    ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::error::{ClientError, Result};

/// Kafka's UNKNOWN_TOPIC_OR_PARTITION.
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// Kafka's TOPIC_ALREADY_EXISTS.
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
/// How long the broker may take to create a topic.
pub const CREATE_TOPIC_TIMEOUT_MS: i32 = 20_000;
/// The transaction timeout an idempotent producer asks for (it has no transactions).
pub const TRANSACTION_TIMEOUT_MS: i32 = 60_000;

/// A topic name from a `&str`.
pub fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from(topic.to_owned()))
}

/// A partition's leader address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLeader {
    pub partition: i32,
    pub addr: String,
}

/// Metadata of one topic at `version`, never auto-creating it (v4+).
pub fn metadata(topic: &str, version: i16) -> MetadataRequest {
    let t = MetadataRequestTopic::default().with_name(Some(topic_name(topic)));
    let req = MetadataRequest::default().with_topics(Some(vec![t]));
    if version >= 4 { req.with_allow_auto_topic_creation(false) } else { req }
}

/// The leaders of the first topic of `resp`, sorted by partition: `None` if the topic does not
/// exist, an empty list while a partition has no leader yet.
///
/// # Errors
///
/// [`ClientError::Broker`] for any other topic error.
pub fn leaders(resp: &MetadataResponse, topic: &str) -> Result<Option<Vec<PartitionLeader>>> {
    let brokers: HashMap<i32, String> = resp
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
        .collect();
    let Some(t) = resp.topics.first() else { return Ok(None) };
    if t.error_code == UNKNOWN_TOPIC_OR_PARTITION {
        return Ok(None);
    }
    if t.error_code != 0 {
        return Err(ClientError::broker(format!("metadata of {topic}"), t.error_code));
    }
    let mut out = Vec::with_capacity(t.partitions.len());
    for p in &t.partitions {
        match brokers.get(&p.leader_id.0) {
            Some(addr) if p.error_code == 0 => {
                out.push(PartitionLeader { partition: p.partition_index, addr: addr.clone() })
            }
            _ => return Ok(Some(Vec::new())),
        }
    }
    out.sort_by_key(|p| p.partition);
    Ok(Some(out))
}

/// CreateTopics of one topic with `partitions` partitions and replication 1.
pub fn create_topic(topic: &str, partitions: i32) -> CreateTopicsRequest {
    create_topic_replicated(topic, partitions, 1)
}

/// CreateTopics of `topic` with `partitions` partitions of `replication_factor` replicas.
pub fn create_topic_replicated(
    topic: &str,
    partitions: i32,
    replication_factor: i16,
) -> CreateTopicsRequest {
    let t = CreatableTopic::default()
        .with_name(topic_name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(replication_factor);
    CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(CREATE_TOPIC_TIMEOUT_MS)
}

/// Checks a CreateTopics answer; an existing topic (created by someone else meanwhile) is fine.
///
/// # Errors
///
/// [`ClientError::Broker`] for any other error code.
pub fn check_created(resp: &CreateTopicsResponse, topic: &str) -> Result<()> {
    for r in &resp.topics {
        if r.error_code != 0 && r.error_code != TOPIC_ALREADY_EXISTS {
            return Err(ClientError::broker(format!("creating {topic}"), r.error_code));
        }
    }
    Ok(())
}

/// ListOffsets of `partitions` of `topic` at `timestamp` (-2 earliest, -1 latest).
pub fn list_offsets(topic: &str, partitions: &[i32], timestamp: i64) -> ListOffsetsRequest {
    let parts = partitions
        .iter()
        .map(|&p| ListOffsetsPartition::default().with_partition_index(p).with_timestamp(timestamp))
        .collect();
    let t = ListOffsetsTopic::default().with_name(topic_name(topic)).with_partitions(parts);
    ListOffsetsRequest::default().with_topics(vec![t])
}

/// The offset per partition of a ListOffsets answer, which must cover `asked` partitions.
///
/// # Errors
///
/// [`ClientError::Broker`] for a partition's error; [`ClientError::Unexpected`] if a partition
/// is missing.
pub fn offsets(resp: ListOffsetsResponse, topic: &str, asked: usize) -> Result<HashMap<i32, i64>> {
    let mut out = HashMap::new();
    for t in resp.topics {
        for p in t.partitions {
            if p.error_code != 0 {
                let what = format!("ListOffsets {topic}/{}", p.partition_index);
                return Err(ClientError::broker(what, p.error_code));
            }
            out.insert(p.partition_index, p.offset);
        }
    }
    if out.len() != asked {
        let what = format!("ListOffsets {topic}: {} of {asked} partitions answered", out.len());
        return Err(ClientError::Unexpected { what });
    }
    Ok(out)
}

/// InitProducerId for an idempotent (non-transactional) producer.
pub fn init_producer_id() -> InitProducerIdRequest {
    InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(TRANSACTION_TIMEOUT_MS)
}

/// Produce of one topic: `batches` are (partition, record batches).
pub fn produce(
    topic: TopicName,
    acks: i16,
    timeout_ms: i32,
    batches: impl IntoIterator<Item = (i32, Bytes)>,
) -> ProduceRequest {
    let data = batches
        .into_iter()
        .map(|(p, records)| {
            PartitionProduceData::default().with_index(p).with_records(Some(records))
        })
        .collect();
    ProduceRequest::default().with_acks(acks).with_timeout_ms(timeout_ms).with_topic_data(vec![
        TopicProduceData::default().with_name(topic).with_partition_data(data),
    ])
}

/// The bounds of one Fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchLimits {
    pub max_wait_ms: i32,
    pub min_bytes: i32,
    pub max_bytes: i32,
    pub partition_max_bytes: i32,
}

/// Fetch (no session) of `(partition, offset)`s of one topic.
pub fn fetch(topic: TopicName, wanted: &[(i32, i64)], limits: FetchLimits) -> FetchRequest {
    let partitions = wanted
        .iter()
        .map(|&(p, offset)| {
            FetchPartition::default()
                .with_partition(p)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(limits.partition_max_bytes)
        })
        .collect();
    FetchRequest::default()
        .with_max_wait_ms(limits.max_wait_ms)
        .with_min_bytes(limits.min_bytes)
        .with_max_bytes(limits.max_bytes)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default().with_topic(topic).with_partitions(partitions)])
}
