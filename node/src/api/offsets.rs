//! ListOffsets: the earliest and latest offsets, and the first offset at or after a timestamp.

use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};
use odradek_net::ErrorCode;
use odradek_net::error_code as ec;
use odradek_storage::LogError;
use tracing::{info, warn};

use super::on_owners;
use crate::cluster::Topic;
use crate::cluster::topic_config;
use crate::error;
use crate::partition::Partition;
use crate::shard::Shard;

/// Kafka's special timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
/// KIP-734: the first record with the largest timestamp.
const MAX_TIMESTAMP: i64 = -3;
/// KIP-405: the earliest offset kept locally; without tiered storage, the earliest.
const EARLIEST_LOCAL: i64 = -4;

/// `(error, timestamp, offset)` of one partition.
type Answer = (ErrorCode, i64, i64);
/// One partition's lookup on its owner: response slot, then topic, partition, and the
/// request's timestamp or offset.
type Lookup = ((usize, usize), (Arc<Topic>, i32, i64));

pub async fn list_offsets(
    ctx: &Rc<Shard>,
    version: i16,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let snapshot = ctx.metadata.snapshot();
    let (smp, me) = (ctx.config.smp, ctx.config.node_id);
    let mut answers: Vec<Vec<Answer>> = req
        .topics
        .iter()
        .map(|t| vec![(ec::UNKNOWN_TOPIC_OR_PARTITION, -1, -1); t.partitions.len()])
        .collect();
    let mut work: Vec<(usize, Lookup)> = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        let Some(topic) = snapshot.topic(&t.name.0) else { continue };
        for (pi, p) in t.partitions.iter().enumerate() {
            match topic.route(p.partition_index, me, smp).local() {
                Ok(owner) => {
                    work.push((owner, ((ti, pi), (topic.clone(), p.partition_index, p.timestamp))))
                }
                Err(code) => answers[ti][pi].0 = code,
            }
        }
    }
    // read_committed (v2+): the latest offset is the last stable offset, as Kafka answers.
    let committed = version >= 2 && req.isolation_level == 1;
    let done = on_owners(ctx, work, move |there, (topic, partition, timestamp)| async move {
        lookup(&there, &topic, partition, timestamp, committed).await
    });
    for ((ti, pi), a) in done.await {
        answers[ti][pi] = a;
    }
    let topics = req
        .topics
        .iter()
        .zip(answers)
        .map(|(t, ans)| {
            let partitions = t
                .partitions
                .iter()
                .zip(ans)
                .map(|(p, (error, timestamp, offset))| {
                    let r = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error.into())
                        .with_timestamp(timestamp)
                        .with_offset(offset);
                    let epoch = snapshot
                        .topic(&t.name.0)
                        .map_or(-1, |tp| tp.leader_epoch(p.partition_index));
                    if version >= 4 && error == ec::NONE && offset >= 0 {
                        r.with_leader_epoch(epoch)
                    } else {
                        r
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

async fn lookup(
    ctx: &Rc<Shard>,
    topic: &Topic,
    partition: i32,
    timestamp: i64,
    committed: bool,
) -> Answer {
    let p = match ctx.partitions.get(topic, partition).await {
        Ok(p) => p,
        Err(e) => {
            warn!(topic = %topic.name, partition, error = %e, "cannot open partition");
            return (e.code(), -1, -1);
        }
    };
    match timestamp {
        LATEST if committed => (ec::NONE, -1, p.last_stable_offset() as i64),
        LATEST => (ec::NONE, -1, p.high_watermark() as i64),
        EARLIEST | EARLIEST_LOCAL => (ec::NONE, -1, p.log_start_offset() as i64),
        t if t < 0 && t != MAX_TIMESTAMP => (ec::INVALID_REQUEST, -1, -1),
        t => {
            let wanted = if t == MAX_TIMESTAMP {
                match p.max_timestamp() {
                    Some(max) => max,
                    None => return (ec::NONE, -1, -1),
                }
            } else {
                t
            };
            by_time(&p, topic, partition, wanted).await
        }
    }
}

/// The first record at or after `timestamp`.
async fn by_time(p: &Partition, topic: &Topic, partition: i32, timestamp: i64) -> Answer {
    match p.offset_for_timestamp(timestamp).await {
        Ok(Some((offset, ts))) => (ec::NONE, ts, offset as i64),
        // Every record is older: Kafka answers no offset (-1), not an error.
        Ok(None) => (ec::NONE, -1, -1),
        Err(e) => {
            warn!(topic = %topic.name, partition, error = %e, "offset lookup failed");
            (error::from_read_error(&e), -1, -1)
        }
    }
}

/// DeleteRecords: moves each partition's log start offset up (`-1`: to the high watermark).
pub async fn delete_records(ctx: &Rc<Shard>, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let snapshot = ctx.metadata.snapshot();
    let (smp, me) = (ctx.config.smp, ctx.config.node_id);
    let mut answers: Vec<Vec<(ErrorCode, i64)>> = req
        .topics
        .iter()
        .map(|t| vec![(ec::UNKNOWN_TOPIC_OR_PARTITION, -1); t.partitions.len()])
        .collect();
    let mut work: Vec<(usize, Lookup)> = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        let Some(topic) = snapshot.topic(&t.name.0) else { continue };
        let compact_only = topic_config::value(&topic.configs, "cleanup.policy") == Some("compact");
        for (pi, p) in t.partitions.iter().enumerate() {
            if compact_only {
                // Kafka refuses to move the start of a compacted-only log.
                answers[ti][pi] = (ec::POLICY_VIOLATION, -1);
            } else {
                match topic.route(p.partition_index, me, smp).local() {
                    Ok(owner) => {
                        work.push((owner, ((ti, pi), (topic.clone(), p.partition_index, p.offset))))
                    }
                    Err(code) => answers[ti][pi].0 = code,
                }
            }
        }
    }
    let done = on_owners(ctx, work, |there, (topic, partition, offset)| async move {
        delete_below(&there, &topic, partition, offset).await
    });
    for ((ti, pi), a) in done.await {
        answers[ti][pi] = a;
    }
    let topics = req
        .topics
        .iter()
        .zip(answers)
        .map(|(t, ans)| {
            let partitions = t
                .partitions
                .iter()
                .zip(ans)
                .map(|(p, (error, low))| {
                    DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error.into())
                        .with_low_watermark(low)
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

async fn delete_below(
    ctx: &Rc<Shard>,
    topic: &Topic,
    partition: i32,
    offset: i64,
) -> (ErrorCode, i64) {
    let p = match ctx.partitions.get(topic, partition).await {
        Ok(p) => p,
        Err(e) => {
            warn!(topic = %topic.name, partition, error = %e, "cannot open partition");
            return (e.code(), -1);
        }
    };
    let target = match offset {
        -1 => p.high_watermark(),
        o if o < 0 => return (ec::OFFSET_OUT_OF_RANGE, -1),
        o => o as u64,
    };
    match p.delete_records(target).await {
        Ok(start) => {
            info!(topic = %topic.name, partition, log_start_offset = start, "records deleted");
            (ec::NONE, start as i64)
        }
        Err(LogError::OffsetOutOfRange { .. }) => (ec::OFFSET_OUT_OF_RANGE, -1),
        Err(e) => {
            warn!(topic = %topic.name, partition, error = %e, "delete records failed");
            (ec::KAFKA_STORAGE_ERROR, -1)
        }
    }
}

/// OffsetForLeaderEpoch: where a leader epoch ends on this partition's leader (Kafka's
/// leader-epoch cache): the largest epoch at or below the one asked for and the start of the
/// next one (the log end for the latest), or "undefined" (-1, -1). The requester's
/// `current_leader_epoch` is checked first (KIP-320).
pub async fn offset_for_leader_epoch(
    ctx: &Rc<Shard>,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let snapshot = ctx.metadata.snapshot();
    let (smp, me) = (ctx.config.smp, ctx.config.node_id);
    type EpochLookup = ((usize, usize), (Arc<Topic>, i32, i32, i32));
    let mut work: Vec<(usize, EpochLookup)> = Vec::new();
    let mut answers: Vec<Vec<EpochEndOffset>> = Vec::with_capacity(req.topics.len());
    for (ti, t) in req.topics.iter().enumerate() {
        let topic = snapshot.topic(&t.topic.0);
        let mut row = Vec::with_capacity(t.partitions.len());
        for (pi, p) in t.partitions.iter().enumerate() {
            let answer = EpochEndOffset::default()
                .with_partition(p.partition)
                .with_leader_epoch(-1)
                .with_end_offset(-1);
            match topic.map(|tp| (tp, tp.route(p.partition, me, smp).local())) {
                Some((_, Err(code))) => row.push(answer.with_error_code(code.into())),
                Some((topic, Ok(owner))) => {
                    let item = (topic.clone(), p.partition, p.current_leader_epoch, p.leader_epoch);
                    work.push((owner, ((ti, pi), item)));
                    row.push(answer);
                }
                None => row.push(answer.with_error_code(ec::UNKNOWN_TOPIC_OR_PARTITION.into())),
            }
        }
        answers.push(row);
    }
    let done = on_owners(ctx, work, |there, (topic, partition, current, wanted)| async move {
        let p = there.partitions.get(&topic, partition).await.map_err(|e| e.code())?;
        p.check_fetch_epoch(current, false).map_err(|r| crate::error::fetch_refusal(&r))?;
        Ok(p.end_offset_for_epoch(wanted).map_or((-1, -1), |(e, o)| (e, o as i64)))
    });
    for ((ti, pi), end) in done.await {
        let a = &mut answers[ti][pi];
        *a = match end {
            Ok((epoch, end)) => a.clone().with_leader_epoch(epoch).with_end_offset(end),
            Err::<_, odradek_net::ErrorCode>(code) => a.clone().with_error_code(code.into()),
        };
    }
    let topics = req
        .topics
        .iter()
        .zip(answers)
        .map(|(t, partitions)| {
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
