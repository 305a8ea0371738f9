//! DescribeQuorum (API 55): the controller quorum's state as `kafka-metadata-quorum describe
//! --status` shows it — leader, epoch, high watermark, and each voter's log end offset and lag.
//! Answered by any voter from its own view: the active controller knows every voter's progress,
//! another voter only its own (the others' offsets are then -1). A broker-only node answers
//! NOT_CONTROLLER, as it holds no quorum state.

use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};
use odradek_net::error_code as ec;

use super::str_bytes;
use crate::shard::Shard;

/// The metadata log's topic, as KRaft names it.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

pub fn describe_quorum(
    ctx: &Shard,
    version: i16,
    req: &DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    let Some(status) = ctx.metadata.quorum_status() else {
        let r = DescribeQuorumResponse::default().with_error_code(ec::NOT_CONTROLLER.into());
        return if version >= 2 {
            r.with_error_message(Some(str_bytes("this broker is not a controller voter")))
        } else {
            r
        };
    };
    let as_id = |id: u64| BrokerId(i32::try_from(id).unwrap_or(-1));
    let offset = |index: Option<u64>| index.map_or(-1, |i| i64::try_from(i).unwrap_or(i64::MAX));
    let voters: Vec<ReplicaState> = status
        .voters
        .iter()
        .map(|v| {
            let own = v.node_id == status.node_id;
            let end = if own { status.last_log_index } else { v.matched_index };
            let r = ReplicaState::default().with_replica_id(as_id(v.node_id));
            let r = r.with_log_end_offset(offset(end));
            if version >= 1 {
                r.with_last_fetch_timestamp(-1).with_last_caught_up_timestamp(-1)
            } else {
                r
            }
        })
        .collect();
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let d = PartitionData::default().with_partition_index(p.partition_index);
                    if t.topic_name.0.as_str() != METADATA_TOPIC || p.partition_index != 0 {
                        return d.with_error_code(ec::UNKNOWN_TOPIC_OR_PARTITION.into());
                    }
                    d.with_leader_id(status.leader_id.map_or(BrokerId(-1), as_id))
                        .with_leader_epoch(i32::try_from(status.term).unwrap_or(i32::MAX))
                        .with_high_watermark(offset(status.committed_index))
                        .with_current_voters(voters.clone())
                })
                .collect();
            TopicData::default().with_topic_name(t.topic_name.clone()).with_partitions(partitions)
        })
        .collect();
    let mut resp = DescribeQuorumResponse::default().with_topics(topics);
    if version >= 2 {
        let nodes = ctx
            .config
            .cluster
            .voters
            .iter()
            .map(|(id, addr)| {
                Node::default().with_node_id(as_id(id)).with_listeners(vec![
                    Listener::default()
                        .with_name(str_bytes("CONTROLLER"))
                        .with_host(str_bytes(&addr.ip().to_string()))
                        .with_port(addr.port()),
                ])
            })
            .collect();
        resp = resp.with_nodes(nodes).with_error_message(None);
    }
    resp
}
