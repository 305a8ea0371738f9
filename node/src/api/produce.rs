//! Produce: validate on the connection's shard, append on the owner, fsync for acks=all.
//!
//! What is checked before any byte reaches a log (each refusal answers that partition only):
//! acks is -1, 0 or 1; the topic and partition exist; the record set is exactly one
//! RecordBatch v2 (Produce v3+); zstd only from v7; no control batch (markers are written by
//! transaction coordinators only); a transactional batch only in a request naming its
//! transactional id; for a compacted topic, every record has a key (else INVALID_RECORD
//! with per-record errors, KIP-467). The log then validates the batch itself (CRC, sizes,
//! counts) and refuses it whole if it is bad. On the owner, the first transactional batch of a
//! producer's transaction on a partition is appended only once the transaction's coordinator
//! confirms the partition was added to it (KIP-890 part 1, `api::txn::verify`).

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::join_all;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse,
    TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse};
use odradek_net::ErrorCode;
use odradek_net::error_code as ec;
use odradek_storage::AppendError;
use odradek_storage::batch::BatchHeader;
use odradek_storage::compact::batch_records;
use odradek_storage::compression::Codec;
use tracing::{debug, info, warn};

use super::{by_owner, str_bytes};
use crate::cluster::{Route, Topic, topic_config};
use crate::error;
use crate::metrics::Timing;
use crate::partition::{AppendFailure, AppendTimes, Durability, Unverified};
use crate::runtime::on_shard;
use crate::shard::Shard;
use odradek_client::stages::{Kind, STAGES_TAG, Stage};

/// The outcome of one partition's append.
#[derive(Debug, Clone)]
struct Outcome {
    error: ErrorCode,
    message: Option<String>,
    base_offset: i64,
    log_append_time: i64,
    log_start_offset: i64,
    /// Per-record refusals (KIP-467, Produce v8+): (batch index, message).
    record_errors: Vec<(i32, String)>,
    /// With NOT_LEADER_OR_FOLLOWER: the partition's leader and its epoch, for KIP-951's
    /// `current_leader`.
    leader: Option<(i32, i32)>,
}

impl Outcome {
    fn error(error: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error,
            message: Some(message.into()),
            base_offset: -1,
            log_append_time: -1,
            log_start_offset: -1,
            record_errors: Vec::new(),
            leader: None,
        }
    }

    fn not_leader(leader: i32, epoch: i32) -> Self {
        let message = if leader < 0 {
            "the partition has no live leader".to_owned()
        } else {
            format!("broker {leader} leads this partition")
        };
        Self { leader: Some((leader, epoch)), ..Self::error(ec::NOT_LEADER_OR_FOLLOWER, message) }
    }
}

/// One partition's record set on its way to the owner.
struct Item {
    slot: (usize, usize),
    topic: Arc<Topic>,
    partition: i32,
    records: Bytes,
    /// The request's transactional id, for a transactional batch's verification.
    txn_id: Option<Arc<str>>,
}

/// Checks a record set before it goes to the log.
fn precheck(version: i16, records: &Bytes, txn_id: Option<&str>) -> Result<(), Outcome> {
    let header = BatchHeader::parse(records)
        .map_err(|e| Outcome::error(error::from_batch_error(&e), e.to_string()))?;
    if header.total_len() != records.len() {
        return Err(Outcome::error(
            ec::INVALID_RECORD,
            "a produce request must carry exactly one record batch per partition",
        ));
    }
    if header.is_control() {
        return Err(Outcome::error(
            ec::INVALID_RECORD,
            "clients may not write control batches (transaction markers)",
        ));
    }
    if header.is_transactional() && txn_id.is_none_or(str::is_empty) {
        return Err(Outcome::error(
            ec::INVALID_RECORD,
            "a transactional batch needs the request's transactional_id",
        ));
    }
    if version < 7 && matches!(header.codec(), Ok(Codec::Zstd)) {
        return Err(Outcome::error(
            ec::UNSUPPORTED_COMPRESSION_TYPE,
            "zstd needs Produce v7 or later",
        ));
    }
    Ok(())
}

/// Refuses a batch with a record without a key for a compacted topic, as Kafka does:
/// `INVALID_RECORD` with one record error per keyless record (KIP-467), and nothing of the batch
/// written. Decodes (and decompresses, bounded) the batch only for compacted topics.
fn check_keys(topic: &Topic, partition: i32, records: &Bytes) -> Result<(), Outcome> {
    let policy = topic_config::value(&topic.configs, "cleanup.policy").unwrap_or("delete");
    if !policy.split(',').any(|p| p.trim() == "compact") {
        return Ok(());
    }
    // A batch whose records do not decode (its CRC passed) cannot be fixed by resending it:
    // INVALID_RECORD, as the log answers such batches (`error::from_batch_error`).
    let (header, decoded) = batch_records(records)
        .map_err(|e| Outcome::error(ec::INVALID_RECORD, format!("unreadable batch: {e}")))?;
    if header.is_control() {
        return Ok(());
    }
    let message = format!(
        "Compacted topic cannot accept message without key in topic partition {}-{partition}.",
        topic.name
    );
    let keyless: Vec<(i32, String)> = decoded
        .iter()
        .enumerate()
        .filter(|(_, r)| r.key.is_none())
        .map(|(i, _)| (i32::try_from(i).unwrap_or(i32::MAX), message.clone()))
        .collect();
    if keyless.is_empty() {
        return Ok(());
    }
    info!(topic = %topic.name, partition, keyless = keyless.len(), "batch refused: records without a key for a compacted topic");
    let summary = format!(
        "One or more records have been rejected: {} without a key for a compacted topic",
        keyless.len()
    );
    Err(Outcome { record_errors: keyless, ..Outcome::error(ec::INVALID_RECORD, summary) })
}

/// The wire form of per-record errors.
fn record_errors(errors: &[(i32, String)]) -> Vec<BatchIndexAndErrorMessage> {
    errors
        .iter()
        .map(|(index, message)| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(*index)
                .with_batch_index_error_message(Some(str_bytes(message)))
        })
        .collect()
}

pub async fn produce(
    ctx: &Rc<Shard>,
    version: i16,
    req: ProduceRequest,
    timing: &mut Timing,
) -> Option<ProduceResponse> {
    let began = Instant::now();
    let (mut outcomes, work) = check_partitions(ctx, version, &req);
    timing.add(Stage::Validate, began.elapsed());
    // acks=all waits for the ISR at most the request's timeout (Kafka's `timeout_ms`),
    // bounded here so that a producer asking for hours cannot pin the request.
    let timeout = Duration::from_millis(u64::try_from(req.timeout_ms).unwrap_or(0))
        .clamp(ACKS_TIMEOUT_MIN, ACKS_TIMEOUT_MAX);
    append_on_owners(ctx, work, (req.acks, timeout), &mut outcomes, timing).await;
    (req.acks != 0).then(|| {
        let mut r = response(ctx, version, &req, outcomes);
        // The breakdown rides in a tagged field (flexible versions, v9+): clients that do not
        // know the tag skip it.
        if version >= 9 {
            r.unknown_tagged_fields.insert(STAGES_TAG, timing.encode(Kind::Produce));
        }
        r
    })
}

/// Each partition's outcome, by topic and partition index: a refusal, or `None` while it is
/// still to be appended.
type Outcomes = Vec<Vec<Option<Outcome>>>;

/// Each partition's outcome so far, and the record sets to append, by owner shard.
fn check_partitions(
    ctx: &Shard,
    version: i16,
    req: &ProduceRequest,
) -> (Outcomes, Vec<(usize, Item)>) {
    let acks = req.acks;
    let snapshot = ctx.metadata.snapshot();
    let (smp, me) = (ctx.config.smp, ctx.config.node_id);
    let mut outcomes: Outcomes =
        req.topic_data.iter().map(|t| vec![None; t.partition_data.len()]).collect();
    let mut work = Vec::new();
    let txn_id: Option<Arc<str>> = req.transactional_id.as_ref().map(|t| Arc::from(t.0.as_str()));
    for (ti, t) in req.topic_data.iter().enumerate() {
        let topic = snapshot.topic(&t.name.0);
        for (pi, p) in t.partition_data.iter().enumerate() {
            let slot = &mut outcomes[ti][pi];
            if !matches!(acks, -1..=1) {
                *slot = Some(Outcome::error(ec::INVALID_REQUIRED_ACKS, format!("acks={acks}")));
                continue;
            }
            let (topic, owner) = match topic.map(|tp| (tp, tp.route(p.index, me, smp))) {
                Some((tp, Route::Local(owner))) => (tp.clone(), owner),
                Some((_, Route::Elsewhere { leader, epoch })) => {
                    *slot = Some(Outcome::not_leader(leader, epoch));
                    continue;
                }
                _ => {
                    *slot =
                        Some(Outcome::error(ec::UNKNOWN_TOPIC_OR_PARTITION, "no such partition"));
                    continue;
                }
            };
            let records = p.records.clone().unwrap_or_default();
            if let Err(refused) = precheck(version, &records, txn_id.as_deref())
                .and_then(|()| check_keys(&topic, p.index, &records))
            {
                *slot = Some(refused);
                continue;
            }
            let txn_id = txn_id.clone();
            work.push((owner, Item { slot: (ti, pi), topic, partition: p.index, records, txn_id }));
        }
    }
    (outcomes, work)
}

/// Bounds on how long acks=all waits for the ISR, whatever the request's `timeout_ms`.
pub const ACKS_TIMEOUT_MIN: Duration = Duration::from_millis(100);
pub const ACKS_TIMEOUT_MAX: Duration = Duration::from_secs(300);

/// Appends every item on its owner (one hop per other shard) and fills in their outcomes.
async fn append_on_owners(
    ctx: &Rc<Shard>,
    work: Vec<(usize, Item)>,
    (acks, timeout): (i16, Duration),
    outcomes: &mut [Vec<Option<Outcome>>],
    timing: &mut Timing,
) {
    let (owners, groups): (Vec<usize>, Vec<_>) = by_owner(work)
        .into_iter()
        .map(|(owner, items)| {
            let sent = Instant::now();
            let appended = on_shard(ctx, owner, move |there| async move {
                let began = Instant::now();
                let appends = items.into_iter().map(|item| {
                    let there = there.clone();
                    async move {
                        let slot = item.slot;
                        let (outcome, times) = append(&there, item, acks, timeout).await;
                        (slot, outcome, times)
                    }
                });
                (join_all(appends).await, began.elapsed())
            });
            (owner, async move { (appended.await, sent.elapsed()) })
        })
        .unzip();
    for (owner, (result, round_trip)) in owners.into_iter().zip(join_all(groups).await) {
        match result {
            Ok((done, on_owner)) => {
                timing.at_least(Stage::Hop, round_trip.saturating_sub(on_owner));
                for ((ti, pi), outcome, times) in done {
                    timing.at_least(Stage::Write, times.write);
                    timing.at_least(Stage::Fsync, times.fsync);
                    timing.at_least(Stage::Replicate, times.replicate);
                    outcomes[ti][pi] = Some(outcome);
                }
            }
            Err(e) => warn!(owner, error = %e, "produce: owner shard unreachable"),
        }
    }
}

fn response(
    ctx: &Shard,
    version: i16,
    req: &ProduceRequest,
    outcomes: Outcomes,
) -> ProduceResponse {
    let mut leaders = Vec::new();
    let responses = req
        .topic_data
        .iter()
        .zip(outcomes)
        .map(|(t, outs)| {
            let partitions = t
                .partition_data
                .iter()
                .zip(outs)
                .map(|(p, o)| {
                    let o = o.unwrap_or_else(|| {
                        Outcome::error(ec::KAFKA_STORAGE_ERROR, "shard unavailable")
                    });
                    let mut r = PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_error_code(o.error.into())
                        .with_base_offset(o.base_offset)
                        .with_log_append_time_ms(o.log_append_time);
                    if version >= 5 {
                        r = r.with_log_start_offset(o.log_start_offset);
                    }
                    if version >= 8 {
                        r = r
                            .with_error_message(o.message.as_deref().map(str_bytes))
                            .with_record_errors(record_errors(&o.record_errors));
                    }
                    if let (Some((leader, epoch)), true) = (o.leader, version >= 10) {
                        leaders.push(leader);
                        r = r.with_current_leader(
                            LeaderIdAndEpoch::default()
                                .with_leader_id(BrokerId(leader))
                                .with_leader_epoch(epoch),
                        );
                    }
                    r
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(t.name.clone())
                .with_partition_responses(partitions)
        })
        .collect();
    let endpoints = super::leader_endpoints(ctx, leaders).into_iter().map(|b| {
        NodeEndpoint::default()
            .with_node_id(BrokerId(b.id))
            .with_host(str_bytes(&b.host))
            .with_port(i32::from(b.port))
            .with_rack(b.rack.as_deref().map(str_bytes))
    });
    ProduceResponse::default().with_responses(responses).with_node_endpoints(endpoints.collect())
}

/// Runs on the owner shard: append, then (acks=all) wait until the ISR has it and the fsync
/// (group-committed with every other append of the partition) covers it, within `timeout`.
/// Returns the outcome and where the time went.
async fn append(
    ctx: &Rc<Shard>,
    item: Item,
    acks: i16,
    timeout: Duration,
) -> (Outcome, AppendTimes) {
    let partition = match ctx.partitions.get(&item.topic, item.partition).await {
        Ok(p) => p,
        Err(e) => {
            warn!(topic = %item.topic.name, partition = item.partition, error = %e, "cannot open partition");
            return (Outcome::error(e.code(), e.to_string()), AppendTimes::default());
        }
    };
    let durability = if acks == -1 { Durability::Committed(timeout) } else { Durability::Written };
    let verify = item.txn_id.clone().map(|id| {
        let (ctx, topic, index) = (ctx.clone(), item.topic.name.clone(), item.partition);
        let header = BatchHeader::parse(&item.records).ok();
        // Boxed: the verification may call another broker, a large future to keep inline.
        Box::pin(async move {
            let producer = header.map_or((-1, -1), |h| (h.producer_id, h.producer_epoch));
            super::txn::verify(&ctx, &id, producer, &topic, index).await.map_err(|code| {
                let why = format!(
                    "the transaction coordinator did not confirm {topic}-{index} in the ongoing transaction of {id} ({code})"
                );
                match code {
                    c if c == ec::INVALID_PRODUCER_EPOCH || c == ec::PRODUCER_FENCED => {
                        Unverified::Fenced(why)
                    }
                    c if c == ec::COORDINATOR_NOT_AVAILABLE
                        || c == ec::NOT_COORDINATOR
                        || c == ec::COORDINATOR_LOAD_IN_PROGRESS
                        || c == ec::CONCURRENT_TRANSACTIONS =>
                    {
                        Unverified::Unavailable(why)
                    }
                    _ => Unverified::Refused(why),
                }
            })
        })
    });
    let outcome = match partition.append_verified(item.records, durability, verify).await {
        Ok(a) => {
            return (
                Outcome {
                    error: ec::NONE,
                    message: None,
                    base_offset: a.base_offset,
                    log_append_time: a.log_append_time,
                    log_start_offset: a.log_start_offset,
                    record_errors: Vec::new(),
                    leader: None,
                },
                a.times,
            );
        }
        Err(e) => {
            let code = error::append_failure(&e);
            match &e {
                AppendFailure::Sequence(_) | AppendFailure::Transaction(_) => {
                    info!(topic = %item.topic.name, partition = item.partition, error = %e, "batch refused")
                }
                // The log itself logs when appends start failing and when they succeed again
                // (and when it fences): a full disk fails every produce until space is freed,
                // and a line per request would flood the log.
                AppendFailure::Log(AppendError::Io(_) | AppendError::Fenced { .. })
                | AppendFailure::Sync(_) => {
                    debug!(topic = %item.topic.name, partition = item.partition, error = %e, "append failed")
                }
                _ if code == ec::KAFKA_STORAGE_ERROR => {
                    warn!(topic = %item.topic.name, partition = item.partition, error = %e, "append failed")
                }
                _ => {}
            }
            Outcome::error(code, e.to_string())
        }
    };
    (outcome, AppendTimes::default())
}
