//! The transaction APIs, wire ⇄ domain: InitProducerId with a transactional id,
//! AddPartitionsToTxn (v0–3 from producers; v4 from partition leaders verifying a batch,
//! KIP-890), AddOffsetsToTxn, EndTxn, TxnOffsetCommit, WriteTxnMarkers (coordinator →
//! partition leaders), DescribeTransactions and ListTransactions. Each transactional id is
//! routed to the shard coordinating it (the owner of its `__transaction_state` partition,
//! created on first use) where the `txn` room decides and stores; markers go to each
//! partition's leader: the owner shard here, or the leader broker over an inter-broker
//! connection.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedState;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, ApiKey, DescribeTransactionsRequest, DescribeTransactionsResponse,
    EndTxnRequest, EndTxnResponse, InitProducerIdRequest, InitProducerIdResponse,
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse, WriteTxnMarkersRequest,
    WriteTxnMarkersResponse,
};
use odradek_client::compio::AsyncConn;
use odradek_net::ErrorCode;
use odradek_net::error_code as ec;
use odradek_storage::txn::{MarkerKind, TxnMarker};
use tracing::{debug, warn};

use super::groups::offsets_topic;
use super::{create_topic, str_bytes, topic_name};
use crate::cluster::{Route, Topic};
use crate::error::{self, KafkaError};
use crate::group::records::{Committed, OFFSETS_TOPIC, check_str};
use crate::group::store::{Commit, OFFSETS_COMMIT_TIMEOUT, now_ms, write_txn_commits};
use crate::partition::Durability;
use crate::runtime::on_shard;
use crate::shard::Shard;
use crate::txn::Markers;
use crate::txn::coordinator::{self, Described};
use crate::txn::records::{TXN_SEGMENT_BYTES, TXN_TOPIC, partition_for};

/// Idle inter-broker connections a shard keeps per broker for markers and verifications.
const IDLE_BROKER_CONNS: usize = 4;
/// How long one inter-broker call (a marker write, a verification) may take.
const BROKER_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// `__transaction_state`, created on first use as Kafka does: compacted,
/// `transaction.state.log.num.partitions` partitions, `transaction.state.log.replication.factor`
/// replicas (fewer if fewer brokers are live), `min.insync.replicas` Kafka's
/// `transaction.state.log.min.isr` (2) when there are that many replicas.
pub async fn txn_topic(ctx: &Rc<Shard>) -> Result<Arc<Topic>, KafkaError> {
    let snapshot = ctx.metadata.snapshot();
    if let Some(t) = snapshot.topic(TXN_TOPIC) {
        return Ok(t.clone());
    }
    let live = i16::try_from(snapshot.brokers.len()).unwrap_or(i16::MAX).max(1);
    let txn = &ctx.config.transactions;
    let rf = txn.state_log_replication_factor.min(live);
    let configs = BTreeMap::from([
        ("cleanup.policy".to_owned(), "compact".to_owned()),
        ("segment.bytes".to_owned(), TXN_SEGMENT_BYTES.to_owned()),
        ("min.insync.replicas".to_owned(), rf.min(2).to_string()),
        ("unclean.leader.election.enable".to_owned(), "false".to_owned()),
    ]);
    match create_topic(ctx, TXN_TOPIC, txn.state_log_num_partitions, rf, configs).await {
        Ok(t) => Ok(t),
        Err(_) if ctx.metadata.snapshot().topic(TXN_TOPIC).is_some() => ctx
            .metadata
            .snapshot()
            .topic(TXN_TOPIC)
            .cloned()
            .ok_or(KafkaError::new(ec::UNKNOWN_SERVER_ERROR, String::new())),
        Err(KafkaError { message, .. }) => {
            warn!(%message, "cannot create the transaction state topic");
            Err(KafkaError::new(ec::COORDINATOR_NOT_AVAILABLE, message))
        }
    }
}

/// Where transactional id `id` is coordinated: the broker leading its partition (`Err` with
/// the code a client is answered with when none is).
pub async fn coordinator_of(
    ctx: &Rc<Shard>,
    id: &str,
) -> Result<crate::cluster::Broker, KafkaError> {
    let topic = txn_topic(ctx).await?;
    let leader = topic.leader(partition_for(id, topic.partitions())).unwrap_or(-1);
    ctx.metadata.snapshot().brokers.get(&leader).cloned().ok_or_else(|| {
        KafkaError::new(
            ec::COORDINATOR_NOT_AVAILABLE,
            format!("the transactional id's partition has no live leader ({leader})"),
        )
    })
}

/// Runs `work` on the shard coordinating `id`, once its partition is loaded there;
/// NOT_COORDINATOR when another broker leads it.
async fn on_coordinator<T, F, Fut>(ctx: &Rc<Shard>, id: &str, work: F) -> Result<T, ErrorCode>
where
    T: Send + 'static,
    F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, ErrorCode>> + 'static,
{
    let topic = txn_topic(ctx).await.map_err(|e| e.code)?;
    let partition = partition_for(id, topic.partitions());
    let owner = match topic.route(partition, ctx.config.node_id, ctx.config.smp) {
        Route::Local(owner) => owner,
        Route::Elsewhere { .. } => return Err(ec::NOT_COORDINATOR),
        Route::Missing => return Err(ec::COORDINATOR_NOT_AVAILABLE),
    };
    on_shard(ctx, owner, move |there| async move {
        coordinator::ensure_loaded(&there, partition).await?;
        work(there).await
    })
    .await
    .map_err(|_| ec::COORDINATOR_NOT_AVAILABLE)?
}

/// InitProducerId with a transactional id.
pub async fn init_producer_id(
    ctx: &Rc<Shard>,
    version: i16,
    id: &str,
    req: &InitProducerIdRequest,
) -> InitProducerIdResponse {
    let resp =
        InitProducerIdResponse::default().with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
    if let Err(e) = check_str("transactional id", id) {
        return resp.with_error_code(e.error_code().into());
    }
    let (timeout, pid, epoch) = (req.transaction_timeout_ms, req.producer_id.0, req.producer_epoch);
    let owned = id.to_owned();
    let result = on_coordinator(ctx, id, move |there| async move {
        coordinator::init_producer_id(&there, &owned, timeout, pid, epoch).await
    })
    .await;
    match result {
        Ok((pid, epoch)) => resp.with_producer_id(ProducerId(pid)).with_producer_epoch(epoch),
        Err(code) => resp.with_error_code(fenced_for(code, 4, version).into()),
    }
}

/// PRODUCER_FENCED exists from some version of each API (`since`); older clients are told
/// INVALID_PRODUCER_EPOCH, as Kafka does.
fn fenced_for(code: ErrorCode, since: i16, version: i16) -> ErrorCode {
    if code == ec::PRODUCER_FENCED && version < since { ec::INVALID_PRODUCER_EPOCH } else { code }
}

type Parts = Vec<(String, i32)>;

fn parts_of(topics: &[AddPartitionsToTxnTopic]) -> Parts {
    topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.0.to_string(), *p)))
        .collect()
}

/// AddPartitionsToTxn: v0–3 add one producer's partitions; v4 (from brokers) adds or, with
/// `verify_only`, checks several transactions' partitions.
pub async fn add_partitions_to_txn(
    ctx: &Rc<Shard>,
    version: i16,
    req: &AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    if version <= 3 {
        let txn = AddPartitionsToTxnTransaction::default()
            .with_transactional_id(req.v3_and_below_transactional_id.clone())
            .with_producer_id(req.v3_and_below_producer_id)
            .with_producer_epoch(req.v3_and_below_producer_epoch)
            .with_topics(req.v3_and_below_topics.clone());
        let results = add_one(ctx, version, &txn).await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    }
    let mut out = Vec::with_capacity(req.transactions.len());
    for txn in &req.transactions {
        let topic_results = add_one(ctx, version, txn).await;
        out.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(txn.transactional_id.clone())
                .with_topic_results(topic_results),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(out)
}

/// One transaction of an AddPartitionsToTxn: every partition answered with the same code,
/// except that unknown partitions get UNKNOWN_TOPIC_OR_PARTITION and the rest
/// OPERATION_NOT_ATTEMPTED (Kafka's all-or-nothing).
async fn add_one(
    ctx: &Rc<Shard>,
    version: i16,
    txn: &AddPartitionsToTxnTransaction,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let parts = parts_of(&txn.topics);
    let snapshot = ctx.metadata.snapshot();
    let unknown: Vec<bool> = parts
        .iter()
        .map(|(t, p)| snapshot.topic(t).is_none_or(|t| *p < 0 || *p >= t.partitions()))
        .collect();
    let codes: Vec<ErrorCode> = if unknown.iter().any(|u| *u) {
        unknown
            .iter()
            .map(|u| if *u { ec::UNKNOWN_TOPIC_OR_PARTITION } else { ec::OPERATION_NOT_ATTEMPTED })
            .collect()
    } else {
        let id = txn.transactional_id.0.to_string();
        let (pid, epoch) = (txn.producer_id.0, txn.producer_epoch);
        let (verify_only, asked) = (txn.verify_only, parts.clone());
        if verify_only {
            let result = on_coordinator(ctx, &id.clone(), move |there| async move {
                let mut codes = Vec::with_capacity(asked.len());
                for (t, p) in &asked {
                    let r = coordinator::verify(&there, &id, pid, epoch, t, *p).await;
                    codes.push(r.err().unwrap_or(ec::NONE));
                }
                Ok(codes)
            })
            .await;
            result.unwrap_or_else(|code| vec![code; parts.len()])
        } else {
            let result = on_coordinator(ctx, &id.clone(), move |there| async move {
                coordinator::add_partitions(&there, &id, pid, epoch, &asked).await
            })
            .await;
            let code = fenced_for(result.err().unwrap_or(ec::NONE), 2, version);
            vec![code; parts.len()]
        }
    };
    let mut by_topic: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for ((t, p), code) in parts.into_iter().zip(codes) {
        let r = AddPartitionsToTxnPartitionResult::default()
            .with_partition_index(p)
            .with_partition_error_code(code.into());
        match by_topic.last_mut() {
            Some(last) if last.name.0.as_str() == t => last.results_by_partition.push(r),
            _ => by_topic.push(
                AddPartitionsToTxnTopicResult::default()
                    .with_name(topic_name(&t))
                    .with_results_by_partition(vec![r]),
            ),
        }
    }
    by_topic
}

/// AddOffsetsToTxn: adds the group's `__consumer_offsets` partition to the transaction.
pub async fn add_offsets_to_txn(
    ctx: &Rc<Shard>,
    version: i16,
    req: &AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let resp = AddOffsetsToTxnResponse::default();
    let group = req.group_id.0.to_string();
    if group.is_empty() {
        return resp.with_error_code(ec::INVALID_GROUP_ID.into());
    }
    let offsets = match offsets_topic(ctx).await {
        Ok(t) => t,
        Err(e) => return resp.with_error_code(e.code.into()),
    };
    let partition = crate::group::records::partition_for(&group, offsets.partitions());
    let id = req.transactional_id.0.to_string();
    let (pid, epoch) = (req.producer_id.0, req.producer_epoch);
    let result = on_coordinator(ctx, &id.clone(), move |there| async move {
        let parts = [(OFFSETS_TOPIC.to_owned(), partition)];
        coordinator::add_partitions(&there, &id, pid, epoch, &parts).await
    })
    .await;
    resp.with_error_code(fenced_for(result.err().unwrap_or(ec::NONE), 2, version).into())
}

/// EndTxn: commit or abort.
pub async fn end_txn(ctx: &Rc<Shard>, version: i16, req: &EndTxnRequest) -> EndTxnResponse {
    let id = req.transactional_id.0.to_string();
    let (pid, epoch, commit) = (req.producer_id.0, req.producer_epoch, req.committed);
    let result = on_coordinator(ctx, &id.clone(), move |there| async move {
        coordinator::end_txn(&there, &id, pid, epoch, commit).await
    })
    .await;
    EndTxnResponse::default()
        .with_error_code(fenced_for(result.err().unwrap_or(ec::NONE), 2, version).into())
}

/// Asks `id`'s coordinator, wherever it is, whether `topic`-`partition` is in producer
/// `producer_id`'s ongoing transaction at `epoch` (KIP-890 part 1; a broker-to-broker
/// AddPartitionsToTxn v4 with `verify_only` when another broker coordinates it).
pub async fn verify(
    ctx: &Rc<Shard>,
    id: &str,
    (producer_id, epoch): (i64, i16),
    topic: &str,
    partition: i32,
) -> Result<(), ErrorCode> {
    let t = txn_topic(ctx).await.map_err(|e| e.code)?;
    let home = partition_for(id, t.partitions());
    match t.route(home, ctx.config.node_id, ctx.config.smp) {
        Route::Local(_) => {
            let (id, topic) = (id.to_owned(), topic.to_owned());
            on_coordinator(ctx, &id.clone(), move |there| async move {
                coordinator::verify(&there, &id, producer_id, epoch, &topic, partition).await
            })
            .await
        }
        Route::Elsewhere { leader, .. } if leader >= 0 => {
            let txn = AddPartitionsToTxnTransaction::default()
                .with_transactional_id(TransactionalId(str_bytes(id)))
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(epoch)
                .with_verify_only(true)
                .with_topics(vec![
                    AddPartitionsToTxnTopic::default()
                        .with_name(topic_name(topic))
                        .with_partitions(vec![partition]),
                ]);
            let req = AddPartitionsToTxnRequest::default().with_transactions(vec![txn]);
            let resp = call_broker(ctx, leader, ApiKey::AddPartitionsToTxn, 4, &req).await?;
            let code = resp
                .results_by_transaction
                .iter()
                .flat_map(|r| &r.topic_results)
                .flat_map(|t| &t.results_by_partition)
                .map(|p| ErrorCode::new(p.partition_error_code))
                .next()
                .unwrap_or(ErrorCode::new(resp.error_code));
            if code == ec::NONE { Ok(()) } else { Err(code) }
        }
        _ => Err(ec::COORDINATOR_NOT_AVAILABLE),
    }
}

/// One request to broker `broker` over an inter-broker connection of this shard (TLS and SASL
/// as the replica fetchers use them; at most [`IDLE_BROKER_CONNS`] kept idle per broker, one
/// dropped after any error), within [`BROKER_CALL_TIMEOUT`].
async fn call_broker<R>(
    ctx: &Rc<Shard>,
    broker: i32,
    api: ApiKey,
    version: i16,
    req: &R,
) -> Result<R::Response, ErrorCode>
where
    R: kafka_protocol::protocol::Request,
    R::Response: kafka_protocol::protocol::HeaderVersion,
{
    // An idle connection of this shard to the broker first; if that one fails (the broker
    // may have closed it while idle), once more on a new one.
    let idle = ctx.broker_conns.borrow_mut().get_mut(&broker).and_then(Vec::pop);
    let pooled = idle.is_some();
    let mut conn = match idle {
        Some(c) => c,
        None => connect_broker(ctx, broker).await?,
    };
    check_version(&conn, broker, api, version)?;
    let resp = match conn.call_at(version, req, BROKER_CALL_TIMEOUT).await {
        Ok(resp) => resp,
        Err(e) if pooled => {
            debug!(broker, ?api, error = %e, "an idle inter-broker connection failed; reconnecting");
            conn = connect_broker(ctx, broker).await?;
            check_version(&conn, broker, api, version)?;
            conn.call_at(version, req, BROKER_CALL_TIMEOUT)
                .await
                .map_err(|e| call_failed(broker, api, &e))?
        }
        Err(e) => return Err(call_failed(broker, api, &e)),
    };
    let mut conns = ctx.broker_conns.borrow_mut();
    let idle = conns.entry(broker).or_default();
    if idle.len() < IDLE_BROKER_CONNS {
        idle.push(conn);
    }
    Ok(resp)
}

async fn connect_broker(ctx: &Rc<Shard>, broker: i32) -> Result<AsyncConn, ErrorCode> {
    crate::partition::fetcher::connect(&ctx.partitions, broker).await.map_err(|e| {
        debug!(broker, error = %e, "cannot reach a broker for a transaction");
        ec::COORDINATOR_NOT_AVAILABLE
    })
}

fn check_version(
    conn: &AsyncConn,
    broker: i32,
    api: ApiKey,
    version: i16,
) -> Result<(), ErrorCode> {
    let supported = conn.versions().broker_range(api as i16);
    if supported.is_none_or(|(lo, hi)| version < lo || version > hi) {
        warn!(
            broker,
            ?api,
            version,
            "the broker does not serve this version; cannot coordinate a transaction with it"
        );
        return Err(ec::COORDINATOR_NOT_AVAILABLE);
    }
    Ok(())
}

/// A failed inter-broker call (the connection is dropped: its state is unknown).
fn call_failed(broker: i32, api: ApiKey, e: &impl std::fmt::Display) -> ErrorCode {
    debug!(broker, ?api, error = %e, "inter-broker transaction call failed");
    ec::COORDINATOR_NOT_AVAILABLE
}

/// TxnOffsetCommit: the offsets are written to the group's partition as part of the
/// producer's transaction, visible to the group only once it commits.
pub async fn txn_offset_commit(
    ctx: &Rc<Shard>,
    version: i16,
    req: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let group = req.group_id.0.to_string();
    let id = req.transactional_id.0.to_string();
    let (pid, epoch) = (req.producer_id.0, req.producer_epoch);
    let snapshot = ctx.metadata.snapshot();
    let now = now_ms();
    let mut commits: Vec<Commit> = Vec::new();
    let mut codes: Vec<Vec<ErrorCode>> = Vec::new();
    for t in &req.topics {
        let topic = snapshot.topic(&t.name.0);
        let mut ps = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let known = topic
                .is_some_and(|tp| p.partition_index >= 0 && p.partition_index < tp.partitions());
            let metadata = p.committed_metadata.as_deref().unwrap_or("").to_owned();
            if !known {
                ps.push(ec::UNKNOWN_TOPIC_OR_PARTITION);
            } else if metadata.len() > crate::group::records::METADATA_MAX_BYTES {
                ps.push(ec::OFFSET_METADATA_TOO_LARGE);
            } else {
                ps.push(ec::NONE);
                commits.push((
                    t.name.0.to_string(),
                    p.partition_index,
                    Committed {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata,
                        commit_timestamp: now,
                    },
                ));
            }
        }
        codes.push(ps);
    }
    let outcome = if group.is_empty() {
        Err(ec::INVALID_GROUP_ID)
    } else if commits.is_empty() {
        Ok(())
    } else {
        commit_in_txn(ctx, &group, &id, (pid, epoch), &req, commits).await
    };
    let topics = req
        .topics
        .iter()
        .zip(codes)
        .map(|(t, ps)| {
            let partitions = t
                .partitions
                .iter()
                .zip(ps)
                .map(|(p, code)| {
                    let code =
                        if code == ec::NONE { outcome.err().unwrap_or(ec::NONE) } else { code };
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(fenced_for(code, 3, version).into())
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

/// Writes the commits on the group's coordinator, once the transaction's coordinator says the
/// group's partition is in the producer's transaction (AddOffsetsToTxn came first).
async fn commit_in_txn(
    ctx: &Rc<Shard>,
    group: &str,
    id: &str,
    producer: (i64, i16),
    req: &TxnOffsetCommitRequest,
    commits: Vec<Commit>,
) -> Result<(), ErrorCode> {
    let offsets = offsets_topic(ctx).await.map_err(|e| e.code)?;
    let partition = crate::group::records::partition_for(group, offsets.partitions());
    verify(ctx, id, producer, OFFSETS_TOPIC, partition)
        .await
        .map_err(|code| if code == ec::INVALID_TXN_STATE { ec::INVALID_TXN_STATE } else { code })?;
    let g = group.to_owned();
    let member = req.member_id.to_string();
    let generation = req.generation_id;
    super::groups::on_group_partition(ctx, group, move |there, partition| async move {
        // v3+ carries the member: a zombie member of an old generation is fenced (KIP-447);
        // older versions (and the standalone form) commit without one.
        if generation >= 0 || !member.is_empty() {
            crate::group::coordinator::check_committer(&*there, &g, &member, generation)?;
        }
        write_txn_commits(&*there, partition, &g, producer, commits).await
    })
    .await
    .and_then(|r| r)
}

/// WriteTxnMarkers (from a transaction coordinator): each marker written on the partitions
/// this broker leads.
pub async fn write_txn_markers(
    ctx: &Rc<Shard>,
    req: &WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let mut out = Vec::with_capacity(req.markers.len());
    for m in &req.markers {
        let marker = TxnMarker {
            producer_id: m.producer_id.0,
            producer_epoch: m.producer_epoch,
            kind: if m.transaction_result { MarkerKind::Commit } else { MarkerKind::Abort },
            coordinator_epoch: m.coordinator_epoch,
            timestamp_ms: now_ms(),
        };
        let parts: Parts = m
            .topics
            .iter()
            .flat_map(|t| t.partition_indexes.iter().map(move |p| (t.name.0.to_string(), *p)))
            .collect();
        let codes = write_here(ctx, &marker, &parts).await;
        let mut topics: Vec<WritableTxnMarkerTopicResult> = Vec::new();
        for ((t, p), code) in parts.into_iter().zip(codes) {
            let r = WritableTxnMarkerPartitionResult::default()
                .with_partition_index(p)
                .with_error_code(code.into());
            match topics.last_mut() {
                Some(last) if last.name.0.as_str() == t => last.partitions.push(r),
                _ => topics.push(
                    WritableTxnMarkerTopicResult::default()
                        .with_name(topic_name(&t))
                        .with_partitions(vec![r]),
                ),
            }
        }
        out.push(
            WritableTxnMarkerResult::default().with_producer_id(m.producer_id).with_topics(topics),
        );
    }
    WriteTxnMarkersResponse::default().with_markers(out)
}

/// Writes `marker` on each of `parts` this broker leads (on their owner shards, one hop per
/// shard); each partition's code.
async fn write_here(ctx: &Rc<Shard>, marker: &TxnMarker, parts: &Parts) -> Vec<ErrorCode> {
    let snapshot = ctx.metadata.snapshot();
    let (me, smp) = (ctx.config.node_id, ctx.config.smp);
    let mut codes = vec![ec::NONE; parts.len()];
    let mut work = Vec::new();
    for (i, (t, p)) in parts.iter().enumerate() {
        match snapshot.topic(t).map(|tp| (tp.clone(), tp.route(*p, me, smp))) {
            Some((tp, Route::Local(owner))) => work.push((owner, (i, tp, *p))),
            Some((_, Route::Elsewhere { .. })) => codes[i] = ec::NOT_LEADER_OR_FOLLOWER,
            _ => codes[i] = ec::UNKNOWN_TOPIC_OR_PARTITION,
        }
    }
    // Every partition at once: their fsyncs are group-committed per partition, and the
    // markers of one transaction need not wait for each other.
    let owners = super::by_owner(work).into_iter().map(|(owner, items)| {
        let marker = *marker;
        let done = on_shard(ctx, owner, move |there| async move {
            let writes = items.into_iter().map(|(i, topic, p)| {
                let there = there.clone();
                async move { (i, write_marker_on_owner(&there, &topic, p, marker).await) }
            });
            join_all(writes).await
        });
        async move { (owner, done.await) }
    });
    for (owner, done) in join_all(owners).await {
        match done {
            Ok(done) => {
                for (i, code) in done {
                    codes[i] = code;
                }
            }
            Err(_) => warn!(owner, "marker: owner shard unreachable"),
        }
    }
    codes
}

/// Runs on the partition's owner: writes the marker (replicated and fsynced), then, on a
/// `__consumer_offsets` partition, decides the transaction's pending offset commits.
async fn write_marker_on_owner(
    ctx: &Rc<Shard>,
    topic: &Topic,
    index: i32,
    marker: TxnMarker,
) -> ErrorCode {
    let p = match ctx.partitions.get(topic, index).await {
        Ok(p) => p,
        Err(e) => return e.code(),
    };
    let (producer_id, commit) = (marker.producer_id, marker.kind == MarkerKind::Commit);
    if topic.name == OFFSETS_TOPIC {
        // The group partition is read back before its marker is written, so the marker is
        // either in what was read or decides what was read, never lost between the two.
        if let Err(e) = crate::group::store::ensure_loaded(&**ctx, index).await {
            return e.code;
        }
    }
    match p.append_marker(marker, Durability::Committed(OFFSETS_COMMIT_TIMEOUT)).await {
        Ok(_) => {
            if topic.name == OFFSETS_TOPIC {
                let applied = ctx.groups.borrow_mut().complete_txn(index, producer_id, commit);
                debug!(
                    partition = index,
                    producer_id, commit, applied, "transactional offsets decided"
                );
            }
            ec::NONE
        }
        Err(e) => {
            let code = error::append_failure(&e);
            warn!(topic = %topic.name, partition = index, producer_id, error = %e, "cannot write a transaction marker");
            code
        }
    }
}

/// [`TxnHost::write_markers`] for a shard: markers for partitions this broker leads are
/// written here, the others sent to their leaders (WriteTxnMarkers v1). Returns the
/// partitions still to do. A partition whose topic is gone counts as done.
pub async fn write_markers(ctx: &Rc<Shard>, m: Markers) -> Vec<(String, i32)> {
    let marker = TxnMarker {
        producer_id: m.producer_id,
        producer_epoch: m.epoch,
        kind: if m.commit { MarkerKind::Commit } else { MarkerKind::Abort },
        coordinator_epoch: m.coordinator_epoch,
        timestamp_ms: now_ms(),
    };
    let snapshot = ctx.metadata.snapshot();
    let mut by_leader: HashMap<i32, Parts> = HashMap::new();
    let mut left = Vec::new();
    for (t, p) in m.partitions {
        match snapshot.topic(&t).map(|tp| tp.leader(p)) {
            None => debug!(topic = %t, partition = p, "marker skipped: the topic is gone"),
            Some(Some(leader)) if leader >= 0 => by_leader.entry(leader).or_default().push((t, p)),
            Some(_) => left.push((t, p)),
        }
    }
    let leaders =
        by_leader.into_iter().map(|(leader, parts)| markers_to(ctx, leader, marker, parts));
    for not_done in join_all(leaders).await {
        left.extend(not_done);
    }
    left
}

/// Writes `marker` on `parts`, all led by `leader` (this broker or another); returns those
/// not written.
async fn markers_to(ctx: &Rc<Shard>, leader: i32, marker: TxnMarker, parts: Parts) -> Parts {
    let commit = marker.kind == MarkerKind::Commit;
    if leader == ctx.config.node_id {
        let codes = write_here(ctx, &marker, &parts).await;
        return parts
            .into_iter()
            .zip(codes)
            .filter(|(_, c)| !done_code(*c))
            .map(|(p, _)| p)
            .collect();
    }
    let mut topics: Vec<WritableTxnMarkerTopic> = Vec::new();
    for (t, p) in &parts {
        match topics.last_mut() {
            Some(last) if last.name.0.as_str() == t.as_str() => last.partition_indexes.push(*p),
            _ => topics.push(
                WritableTxnMarkerTopic::default()
                    .with_name(topic_name(t))
                    .with_partition_indexes(vec![*p]),
            ),
        }
    }
    let req = WriteTxnMarkersRequest::default().with_markers(vec![
        WritableTxnMarker::default()
            .with_producer_id(ProducerId(marker.producer_id))
            .with_producer_epoch(marker.producer_epoch)
            .with_transaction_result(commit)
            .with_topics(topics)
            .with_coordinator_epoch(marker.coordinator_epoch),
    ]);
    match call_broker(ctx, leader, ApiKey::WriteTxnMarkers, 1, &req).await {
        Ok(resp) => {
            let ok: Vec<(String, i32)> = resp
                .markers
                .iter()
                .flat_map(|r| &r.topics)
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .filter(|p| done_code(ErrorCode::new(p.error_code)))
                        .map(move |p| (t.name.0.to_string(), p.partition_index))
                })
                .collect();
            parts.into_iter().filter(|p| !ok.contains(p)).collect()
        }
        Err(_) => parts,
    }
}

/// Whether a marker's answer means it need not be written again: written, or the partition
/// no longer exists.
fn done_code(code: ErrorCode) -> bool {
    code == ec::NONE || code == ec::UNKNOWN_TOPIC_OR_PARTITION
}

/// DescribeTransactions: each id from its coordinator.
pub async fn describe_transactions(
    ctx: &Rc<Shard>,
    req: &DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let mut states = Vec::with_capacity(req.transactional_ids.len());
    for id in &req.transactional_ids {
        let key = id.0.to_string();
        let result = on_coordinator(ctx, &key.clone(), move |there| async move {
            coordinator::all(&there)
                .into_iter()
                .find(|d| d.id == key)
                .ok_or(ec::TRANSACTIONAL_ID_NOT_FOUND)
        })
        .await;
        let s = TransactionState::default().with_transactional_id(id.clone());
        states.push(match result {
            Ok(d) => described(s, &d),
            Err(code) => s
                .with_error_code(code.into())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        });
    }
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

fn described(s: TransactionState, d: &Described) -> TransactionState {
    let mut topics: Vec<TopicData> = Vec::new();
    for (t, p) in &d.meta.partitions {
        match topics.last_mut() {
            Some(last) if last.topic.0.as_str() == t.as_str() => last.partitions.push(*p),
            _ => topics
                .push(TopicData::default().with_topic(topic_name(t)).with_partitions(vec![*p])),
        }
    }
    s.with_transaction_state(str_bytes(d.meta.state.name()))
        .with_transaction_timeout_ms(d.meta.timeout_ms)
        .with_transaction_start_time_ms(d.meta.start_ms)
        .with_producer_id(ProducerId(d.meta.producer_id))
        .with_producer_epoch(d.meta.epoch)
        .with_topics(topics)
}

/// ListTransactions: the transactions this broker coordinates, from every shard, filtered by
/// state, producer id and (v1) duration (unknown state names are listed back, as Kafka does).
pub async fn list_transactions(
    ctx: &Rc<Shard>,
    req: &ListTransactionsRequest,
) -> ListTransactionsResponse {
    const KNOWN: [&str; 6] =
        ["Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort"];
    let unknown: Vec<_> =
        req.state_filters.iter().filter(|s| !KNOWN.contains(&s.as_str())).cloned().collect();
    let now = now_ms();
    let mut all: Vec<Described> = Vec::new();
    for shard in 0..ctx.config.smp {
        if let Ok(found) =
            on_shard(ctx, shard, |there| async move { coordinator::all(&there) }).await
        {
            all.extend(found);
        }
    }
    let states = all
        .into_iter()
        .filter(|d| {
            req.state_filters.is_empty()
                || req.state_filters.iter().any(|s| s.as_str() == d.meta.state.name())
        })
        .filter(|d| {
            req.producer_id_filters.is_empty()
                || req.producer_id_filters.iter().any(|p| p.0 == d.meta.producer_id)
        })
        // v1 (KIP-994): only open transactions running longer than `duration_filter` ms.
        .filter(|d| {
            req.duration_filter < 0
                || d.meta.state == crate::txn::state::TxnState::Ongoing
                    && now.saturating_sub(d.meta.start_ms) >= req.duration_filter
        })
        .map(|d| {
            ListedState::default()
                .with_transactional_id(TransactionalId(str_bytes(&d.id)))
                .with_producer_id(ProducerId(d.meta.producer_id))
                .with_transaction_state(str_bytes(d.meta.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(states)
}
