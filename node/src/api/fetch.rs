//! Fetch: whole stored batches from the owner shards, with Kafka's byte limits and long poll.
//!
//! Limits (KIP-74): at most `partition_max_bytes` per partition and `max_bytes` in all, except
//! that the first batch of the first partition with data is returned whole even when larger,
//! so a consumer never stalls on a big batch. Partitions are read in request order.
//!
//! Long poll: when the first pass finds fewer than `min_bytes`, the request waits (up to
//! `max_wait_ms`) on the owner shards until one of its partitions grows, then reads again.
//! Errors answer at once.
//!
//! Fetch sessions (KIP-227): a consumer that asks for one gets an incremental session, kept on
//! the shard of its connection (see [`crate::fetch_session`]); later requests name only the
//! partitions that changed, and responses only the partitions with something new. A session
//! unknown to this shard (another connection, evicted, or a restart) answers
//! `FETCH_SESSION_ID_NOT_FOUND`, and the client starts a new one with a full request.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use event_listener::Event;
use futures_util::future::{Either, join_all, select, select_all};
use kafka_protocol::messages::{FetchRequest, TopicName};
use odradek_net::ErrorCode;
use odradek_net::error_code as ec;
use odradek_net::fetch_response::{EndpointOut, FetchOut, PartitionOut, TopicOut};
use odradek_storage::ReadError;
use tracing::{info, warn};
use uuid::Uuid;

use super::by_owner;
use crate::cluster::{Route, Topic};
use crate::error;
use crate::metrics::{ShardStats, Timing};
use crate::partition::fetch_session::{FINAL_EPOCH, PartKey, next_epoch};
use crate::partition::{FollowerCheck, Partition, Payload, ReadFailure};
use crate::runtime::on_shard;
use crate::shard::Shard;
use odradek_client::stages::{Kind, Stage};

/// Longest long poll honoured, whatever the client asks.
pub const MAX_WAIT_CAP: Duration = Duration::from_secs(30);
/// `fetch.max.bytes`: the broker's cap on one response (Kafka's default, 55 MiB).
pub const FETCH_MAX_BYTES: u64 = 55 * 1024 * 1024;

/// One partition to read, resolved on the connection's shard.
#[derive(Debug, Clone)]
struct Want {
    slot: usize,
    topic: Arc<Topic>,
    partition: i32,
    offset: i64,
    max_bytes: u64,
    /// The fetcher's leader epoch (KIP-320; -1: unchecked).
    current_leader_epoch: i32,
    /// A follower's fetch: its broker id and last fetched epoch.
    follower: Option<(i32, i32)>,
    /// KIP-392: the leader sends the consumer to this replica instead of reading.
    preferred: Option<i32>,
    /// A read_committed consumer: nothing past the last stable offset, and the aborted
    /// transactions in what is read.
    committed: bool,
}

/// One partition's answer.
#[derive(Debug, Clone)]
struct Got {
    error: ErrorCode,
    high_watermark: i64,
    last_stable_offset: i64,
    /// For a read_committed fetch: (producer id, first offset) of each aborted transaction in
    /// what is read.
    aborted: Option<Vec<(i64, i64)>>,
    log_start_offset: i64,
    /// Whole stored batches, as pieces (cached batches, or one range of the log).
    records: Vec<Payload>,
    /// More than the partition's `partition_max_bytes`: allowed only as the response's first
    /// partition with data.
    oversize: bool,
    /// A follower's log diverges after this (epoch, end offset): KIP-320.
    diverging: Option<(i32, i64)>,
    /// KIP-392's preferred read replica (-1: none).
    preferred: i32,
    /// With NOT_LEADER_OR_FOLLOWER: the partition's leader and epoch (KIP-951's
    /// `current_leader`).
    leader: Option<(i32, i32)>,
}

impl Got {
    fn error(error: ErrorCode) -> Self {
        Self {
            error,
            high_watermark: -1,
            last_stable_offset: -1,
            aborted: None,
            log_start_offset: -1,
            records: Vec::new(),
            oversize: false,
            diverging: None,
            preferred: -1,
            leader: None,
        }
    }

    fn not_leader(leader: i32, epoch: i32) -> Self {
        Self { leader: Some((leader, epoch)), ..Self::error(ec::NOT_LEADER_OR_FOLLOWER) }
    }

    fn len(&self) -> usize {
        self.records.iter().map(Payload::len).sum()
    }
}

/// One partition of a fetch: from the request (sessionless, or a new session) or from the
/// session the request continues.
#[derive(Debug, Clone)]
struct Part {
    key: PartKey,
    offset: i64,
    max_bytes: i32,
    /// KIP-320's epochs, from the request (a session's partitions carry none: -1).
    current_leader_epoch: i32,
    last_fetched_epoch: i32,
}

/// What a fetch request asks of the session cache.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// No session: read the request's partitions, answer them all.
    Sessionless,
    /// Start a session with the request's partitions (answered in full).
    Create,
    /// Continue session `id`: answer only partitions with something new.
    Incremental(i32),
}

/// A Fetch response without its records, and the records of each partition it names, in
/// order: what the connection sends with one vectored write.
#[derive(Debug)]
pub struct FetchReply {
    pub response: FetchOut,
    pub records: Vec<Vec<Payload>>,
}

pub async fn fetch(
    ctx: &Rc<Shard>,
    version: i16,
    req: FetchRequest,
    timing: &mut Timing,
) -> FetchReply {
    let by_id = version >= 13;
    let now = Instant::now();
    let mode = match session_mode(ctx, version, &req) {
        Ok(mode) => mode,
        Err(code) => return session_error(code),
    };
    let parts = match wanted_parts(ctx, &req, by_id, mode, now) {
        Ok(parts) => parts,
        Err(code) => return session_error(code),
    };
    // A follower's fetch names its broker (Fetch v15+: `ReplicaState`; before: `replica_id`).
    let replica = if version >= 15 { req.replica_state.replica_id.0 } else { req.replica_id.0 };
    let replica = (replica >= 0).then_some(replica);
    // KIP-392: a consumer's Fetch v11+ may be served by any replica, and names its rack.
    let reader = match replica {
        Some(_) => Reader::Follower,
        None if version >= 11 => {
            Reader::Consumer { rack: Some(req.rack_id.to_string()).filter(|r| !r.is_empty()) }
        }
        None => Reader::LeaderOnly,
    };
    let got = read_parts(ctx, &req, &parts, replica, &reader, timing).await;
    let (session_id, include) = remember(ctx, mode, &parts, &got, now);
    let leaders: Vec<i32> = got.iter().filter_map(|g| g.leader.map(|(l, _)| l)).collect();
    let node_endpoints = super::leader_endpoints(ctx, leaders)
        .into_iter()
        .map(|b| EndpointOut { node_id: b.id, host: b.host, port: i32::from(b.port), rack: b.rack })
        .collect();
    let (topics, records) = lay_out(&req, by_id, &parts, got, &include);
    let session_id = if version >= 7 { session_id } else { 0 };
    // The breakdown rides in a tagged field (flexible versions, v12+).
    let stages = (version >= 12).then(|| timing.encode(Kind::Fetch));
    let response = FetchOut { session_id, topics, node_endpoints, stages, ..FetchOut::default() };
    FetchReply { response, records }
}

/// KIP-227: (session id, epoch) = (0, -1) sessionless, (0, 0) new session, (S, -1) close S
/// and fetch sessionless, (S, E > 0) continue S.
fn session_mode(ctx: &Shard, version: i16, req: &FetchRequest) -> Result<Mode, ErrorCode> {
    if version < 7 || req.session_epoch == FINAL_EPOCH {
        if req.session_id != 0 {
            ctx.fetch_sessions.borrow_mut().remove(req.session_id);
        }
        Ok(Mode::Sessionless)
    } else if req.session_id == 0 {
        if req.session_epoch != 0 {
            return Err(ec::INVALID_FETCH_SESSION_EPOCH);
        }
        Ok(Mode::Create)
    } else {
        Ok(Mode::Incremental(req.session_id))
    }
}

fn part_key(by_id: bool, topic: &TopicName, topic_id: Uuid, partition: i32) -> PartKey {
    PartKey {
        topic: if by_id { String::new() } else { topic.0.to_string() },
        topic_id: if by_id { topic_id } else { Uuid::nil() },
        partition,
    }
}

/// The partitions this fetch reads: the request's, or (incremental) the session's after the
/// request's changes and forgotten partitions are applied.
fn wanted_parts(
    ctx: &Shard,
    req: &FetchRequest,
    by_id: bool,
    mode: Mode,
    now: Instant,
) -> Result<Vec<Part>, ErrorCode> {
    let request_parts = req.topics.iter().flat_map(|t| {
        t.partitions.iter().map(|p| Part {
            key: part_key(by_id, &t.topic, t.topic_id, p.partition),
            offset: p.fetch_offset,
            max_bytes: p.partition_max_bytes,
            current_leader_epoch: p.current_leader_epoch,
            last_fetched_epoch: p.last_fetched_epoch,
        })
    });
    let Mode::Incremental(id) = mode else { return Ok(request_parts.collect()) };
    let mut sessions = ctx.fetch_sessions.borrow_mut();
    let Some(session) = sessions.get_mut(id, now) else {
        return Err(ec::FETCH_SESSION_ID_NOT_FOUND);
    };
    if session.next_epoch != req.session_epoch {
        return Err(ec::INVALID_FETCH_SESSION_EPOCH);
    }
    let forgotten: Vec<PartKey> = req
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(|&p| part_key(by_id, &t.topic, t.topic_id, p)))
        .collect();
    let named = request_parts
        .map(|p| (p.key, p.offset, p.max_bytes, (p.current_leader_epoch, p.last_fetched_epoch)));
    session.update(named, &forgotten);
    Ok(session
        .parts
        .iter()
        .map(|(key, c)| Part {
            key: key.clone(),
            offset: c.offset,
            max_bytes: c.max_bytes,
            current_leader_epoch: c.epochs.0,
            last_fetched_epoch: c.epochs.1,
        })
        .collect())
}

/// Session bookkeeping after the reads: the session id to answer with, and which partitions
/// the response names (an incremental response names only what changed).
fn remember(
    ctx: &Shard,
    mode: Mode,
    parts: &[Part],
    got: &[Got],
    now: Instant,
) -> (i32, Vec<bool>) {
    match mode {
        Mode::Sessionless => (0, vec![true; parts.len()]),
        Mode::Create => {
            let seen = parts.iter().zip(got).map(|(p, g)| {
                let epochs = (p.current_leader_epoch, p.last_fetched_epoch);
                (p.key.clone(), p.offset, p.max_bytes, epochs, g.high_watermark, g.log_start_offset)
            });
            let id = ctx.fetch_sessions.borrow_mut().create(seen, now);
            (id, vec![true; parts.len()])
        }
        Mode::Incremental(id) => {
            let mut sessions = ctx.fetch_sessions.borrow_mut();
            let include = match sessions.get_mut(id, now) {
                Some(session) => {
                    session.next_epoch = next_epoch(session.next_epoch);
                    parts
                        .iter()
                        .zip(got)
                        .map(|(p, g)| {
                            session.changed(&p.key, g.high_watermark, g.log_start_offset)
                                || g.len() > 0
                                || g.error != ec::NONE
                                || g.diverging.is_some()
                                || g.preferred >= 0
                        })
                        .collect()
                }
                None => vec![true; parts.len()],
            };
            (id, include)
        }
    }
}

/// The response's topics and each named partition's records. Consecutive partitions of one
/// topic share a topic entry, as Kafka lays them out.
fn lay_out(
    req: &FetchRequest,
    by_id: bool,
    parts: &[Part],
    got: Vec<Got>,
    include: &[bool],
) -> (Vec<TopicOut>, Vec<Vec<Payload>>) {
    let mut topics: Vec<TopicOut> = Vec::new();
    let mut records = Vec::new();
    for ((part, g), _) in parts.iter().zip(got).zip(include).filter(|(_, inc)| **inc) {
        let out = PartitionOut {
            partition_index: part.key.partition,
            error_code: g.error.into(),
            high_watermark: g.high_watermark,
            last_stable_offset: g.last_stable_offset,
            log_start_offset: g.log_start_offset,
            // Null for read_uncommitted, as Kafka answers; a list (maybe empty) otherwise.
            aborted_transactions: (req.isolation_level == 1)
                .then(|| g.aborted.clone().unwrap_or_default()),
            preferred_read_replica: g.preferred,
            records_len: Some(g.len()),
            current_leader: g.leader,
            diverging_epoch: g.diverging,
        };
        let same = topics.last().is_some_and(|t| {
            if by_id { t.topic_id == part.key.topic_id } else { t.name == part.key.topic }
        });
        if !same {
            topics.push(TopicOut {
                name: part.key.topic.clone(),
                topic_id: part.key.topic_id,
                partitions: Vec::new(),
            });
        }
        if let Some(t) = topics.last_mut() {
            t.partitions.push(out);
        }
        records.push(g.records);
    }
    (topics, records)
}

fn session_error(code: ErrorCode) -> FetchReply {
    FetchReply {
        response: FetchOut { error_code: code.into(), ..FetchOut::default() },
        records: Vec::new(),
    }
}

/// Resolves, reads and (long-)polls `parts`; one answer per part, in order.
/// Who is fetching, for where a partition may be read.
#[derive(Debug, Clone)]
enum Reader {
    /// Another broker's replica fetcher: the leader only.
    Follower,
    /// A consumer speaking Fetch v11+ (KIP-392): any replica, and perhaps sent to one in its
    /// rack.
    Consumer { rack: Option<String> },
    /// An older consumer: the leader only.
    LeaderOnly,
}

/// KIP-392's rack-aware selector: an in-sync, live replica in `rack` other than the leader,
/// unless the leader is in that rack itself.
fn preferred_replica(ctx: &Shard, topic: &Topic, partition: i32, rack: &str) -> Option<i32> {
    let snapshot = ctx.metadata.snapshot();
    let in_rack = |id: &i32| snapshot.brokers.get(id).and_then(|b| b.rack.as_deref()) == Some(rack);
    if in_rack(&ctx.config.node_id) {
        return None;
    }
    let placement = topic.placement_of(partition)?;
    placement.isr.iter().copied().find(|r| *r != ctx.config.node_id && in_rack(r))
}

async fn read_parts(
    ctx: &Rc<Shard>,
    req: &FetchRequest,
    parts: &[Part],
    replica: Option<i32>,
    reader: &Reader,
    timing: &mut Timing,
) -> Vec<Got> {
    let snapshot = ctx.metadata.snapshot();
    let (smp, me) = (ctx.config.smp, ctx.config.node_id);
    let mut got: Vec<Option<Got>> = vec![None; parts.len()];
    let mut wants = Vec::new();
    for (slot, part) in parts.iter().enumerate() {
        let by_id = !part.key.topic_id.is_nil();
        let topic = if by_id {
            snapshot.topic_by_id(part.key.topic_id)
        } else {
            snapshot.topic(&part.key.topic)
        };
        let route = topic.map(|tp| (tp, tp.route(part.key.partition, me, smp)));
        // A consumer may read a follower's replica here (below its high watermark).
        let route = match (route, reader) {
            (Some((tp, Route::Elsewhere { .. })), Reader::Consumer { .. })
                if tp.owner(part.key.partition, smp).is_some() =>
            {
                tp.owner(part.key.partition, smp).map(|owner| (tp, Route::Local(owner)))
            }
            (route, _) => route,
        };
        let preferred = match (&route, reader) {
            (Some((tp, Route::Local(_))), Reader::Consumer { rack: Some(rack) })
                if ctx.config.cluster.rack_aware_reads =>
            {
                preferred_replica(ctx, tp, part.key.partition, rack)
            }
            _ => None,
        };
        match route {
            Some((_, Route::Elsewhere { leader, epoch })) => {
                got[slot] = Some(Got::not_leader(leader, epoch))
            }
            Some((topic, Route::Local(owner))) => wants.push((
                owner,
                Want {
                    slot,
                    topic: topic.clone(),
                    partition: part.key.partition,
                    offset: part.offset,
                    max_bytes: u64::try_from(part.max_bytes).unwrap_or(0),
                    current_leader_epoch: part.current_leader_epoch,
                    follower: replica.map(|r| (r, part.last_fetched_epoch)),
                    preferred,
                    committed: replica.is_none() && req.isolation_level == 1,
                },
            )),
            Some((_, Route::Missing)) | None => {
                got[slot] = Some(Got::error(if by_id && topic.is_none() {
                    ec::UNKNOWN_TOPIC_ID
                } else {
                    ec::UNKNOWN_TOPIC_OR_PARTITION
                }))
            }
        }
    }
    let groups = by_owner(wants);
    let max_bytes = u64::try_from(req.max_bytes).unwrap_or(0).min(FETCH_MAX_BYTES);
    let min_bytes = u64::try_from(req.min_bytes).unwrap_or(0);
    let max_wait =
        Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0)).min(MAX_WAIT_CAP);
    let deadline = Instant::now() + max_wait;
    loop {
        let (results, total, errors) = read_all(ctx, &groups, max_bytes, timing).await;
        let now = Instant::now();
        if total >= min_bytes
            || errors
            || now >= deadline
            || groups.is_empty()
            || ctx.life.stopping.get()
        {
            for (slot, g) in results {
                got[slot] = Some(g);
            }
            break;
        }
        let waiting = Instant::now();
        wait_for_data(ctx, &groups, deadline).await;
        timing.add(Stage::Wait, waiting.elapsed());
    }
    got.into_iter().map(|g| g.unwrap_or_else(|| Got::error(ec::KAFKA_STORAGE_ERROR))).collect()
}

/// One pass over every wanted partition, all owners at once, then cut to `max_bytes` in
/// request order. Returns the answers, the bytes kept, and whether any partition had an error.
///
/// Each owner reads its partitions within the whole budget, as if its first were the
/// response's first; the cut here then applies Kafka's rule across owners: partitions are
/// taken in request order while they fit, except that the first with data is kept whole. What
/// is cut costs little: cached batches and spliced file ranges are references, not copies.
async fn read_all(
    ctx: &Rc<Shard>,
    groups: &[(usize, Vec<Want>)],
    max_bytes: u64,
    timing: &mut Timing,
) -> (Vec<(usize, Got)>, u64, bool) {
    let reads = groups.iter().map(|(owner, wants)| {
        let wants = wants.clone();
        let sent = Instant::now();
        let read = on_shard(ctx, *owner, move |there| async move {
            let began = Instant::now();
            let (answers, _) = read_group(&there, wants, max_bytes, true).await;
            (answers, began.elapsed())
        });
        async move { (read.await, sent.elapsed()) }
    });
    let (mut hop, mut read_time) = (Duration::ZERO, Duration::ZERO);
    let mut out = Vec::new();
    for ((read, round_trip), (owner, group)) in join_all(reads).await.into_iter().zip(groups) {
        match read {
            Ok((answers, on_owner)) => {
                hop = hop.max(round_trip.saturating_sub(on_owner));
                read_time = read_time.max(on_owner);
                out.extend(answers);
            }
            Err(e) => {
                // The owner is stopping (graceful shutdown): clients move on as from a leader
                // that went away, refreshing metadata and fetching again.
                warn!(owner, error = %e, "fetch: owner shard unreachable");
                out.extend(group.iter().map(|w| (w.slot, Got::error(ec::NOT_LEADER_OR_FOLLOWER))));
            }
        }
    }
    timing.add(Stage::Hop, hop);
    timing.add(Stage::Read, read_time);
    out.sort_unstable_by_key(|(slot, _)| *slot);
    let mut kept = 0u64;
    for (_, got) in &mut out {
        let len = got.len() as u64;
        if len == 0 {
            continue;
        }
        if kept > 0 && (kept + len > max_bytes || got.oversize) {
            got.records.clear();
        } else {
            kept += len;
        }
    }
    // A diverging epoch is answered at once too: the follower must truncate first.
    // So is a preferred read replica (KIP-392): the consumer goes there.
    let errors =
        out.iter().any(|(_, g)| g.error != ec::NONE || g.diverging.is_some() || g.preferred >= 0);
    (out, kept, errors)
}

/// Runs on the owner: reads each partition in turn.
async fn read_group(
    ctx: &Rc<Shard>,
    wants: Vec<Want>,
    mut budget: u64,
    mut first: bool,
) -> (Vec<(usize, Got)>, u64) {
    let mut used = 0;
    let mut out = Vec::with_capacity(wants.len());
    for w in wants {
        let mut got = read_one(ctx, &w, budget, first).await;
        let n = got.len() as u64;
        got.oversize = n > w.max_bytes;
        used += n;
        budget = budget.saturating_sub(n);
        first &= n == 0;
        out.push((w.slot, got));
    }
    (out, used)
}

async fn read_one(ctx: &Rc<Shard>, w: &Want, budget: u64, first: bool) -> Got {
    let p = match ctx.partitions.get(&w.topic, w.partition).await {
        Ok(p) => p,
        Err(e) => {
            warn!(topic = %w.topic.name, partition = w.partition, error = %e, "cannot open partition");
            return Got::error(e.code());
        }
    };
    if let Err(refused) = p.check_fetch_epoch(w.current_leader_epoch, w.follower.is_some()) {
        return Got::error(error::fetch_refusal(&refused));
    }
    if let Some(preferred) = w.preferred {
        // KIP-392: no records; the consumer fetches from `preferred` from now on.
        return Got {
            high_watermark: p.high_watermark() as i64,
            last_stable_offset: p.last_stable_offset() as i64,
            log_start_offset: p.log_start_offset() as i64,
            preferred,
            ..Got::error(ec::NONE)
        };
    }
    let read = match w.follower {
        None if w.committed => p.read_committed(w.offset, w.max_bytes.min(budget), first).await,
        None => p.read(w.offset, w.max_bytes.min(budget), first).await,
        Some((replica, last_fetched_epoch)) => {
            let (check, expand) = p.follower_fetch(replica, w.offset, last_fetched_epoch);
            if let Some(isr) = expand {
                info!(topic = %w.topic.name, partition = w.partition, replica, proposed = ?isr, "follower caught up; expanding the ISR");
                ctx.partitions.propose_isr(p.clone(), isr);
            }
            let offsets = |error| Got {
                high_watermark: p.high_watermark() as i64,
                last_stable_offset: p.last_stable_offset() as i64,
                log_start_offset: p.log_start_offset() as i64,
                ..Got::error(error)
            };
            match check {
                FollowerCheck::Read => p.read_for_follower(w.offset, w.max_bytes.min(budget)).await,
                FollowerCheck::Diverging { epoch, end_offset } => {
                    return Got { diverging: Some((epoch, end_offset)), ..offsets(ec::NONE) };
                }
                FollowerCheck::OutOfRange => return offsets(ec::OFFSET_OUT_OF_RANGE),
            }
        }
    };
    let (error, records) = match read.records {
        Ok(records) => {
            count_read(ctx, &p, &records, w.follower.is_some());
            (ec::NONE, records)
        }
        Err(e @ ReadFailure::Log(ReadError::OffsetOutOfRange { .. })) => {
            (error::read_failure(&e), Vec::new())
        }
        Err(e) => {
            warn!(topic = %w.topic.name, partition = w.partition, error = %e, "read failed");
            (error::read_failure(&e), Vec::new())
        }
    };
    // A read_committed consumer skips the records of the aborted transactions it is told of:
    // those that overlap what it reads, from its offset up to the last stable offset.
    let aborted = w.committed.then(|| {
        let from = u64::try_from(w.offset).unwrap_or(0);
        let upto = u64::try_from(read.last_stable_offset).unwrap_or(0);
        if records.is_empty() {
            return Vec::new();
        }
        p.aborted_transactions(from, upto)
            .into_iter()
            .map(|a| (a.producer_id, a.first_offset as i64))
            .collect()
    });
    Got {
        error,
        high_watermark: read.high_watermark,
        last_stable_offset: read.last_stable_offset,
        aborted,
        log_start_offset: read.log_start_offset,
        records,
        oversize: false,
        diverging: None,
        preferred: -1,
        leader: None,
    }
}

/// Counts a read's bytes on its partition, and whether a consumer's read came wholly from the
/// recent-batch cache (memory) or touched segment files.
fn count_read(ctx: &Shard, p: &Partition, records: &[Payload], follower: bool) {
    if records.is_empty() {
        return;
    }
    let bytes: usize = records.iter().map(Payload::len).sum();
    p.count_out(bytes as u64, follower);
    if !follower {
        let from_memory = records.iter().all(|r| matches!(r, Payload::Mem(_)));
        let counter = if from_memory { &ctx.stats.cache_hits } else { &ctx.stats.cache_misses };
        ShardStats::add(counter, 1);
    }
}

/// How far a waiting fetcher may read.
#[derive(Debug, Clone, Copy)]
enum Upto {
    LogEnd,
    HighWatermark,
    LastStable,
}

/// Waits until a wanted partition on any owner grows past its fetch offset, or `deadline`.
async fn wait_for_data(ctx: &Rc<Shard>, groups: &[(usize, Vec<Want>)], deadline: Instant) {
    let cancel = Arc::new((AtomicBool::new(false), Event::new()));
    let waits: Vec<_> = groups
        .iter()
        .map(|(owner, wants)| {
            let watch: Vec<(Uuid, i32, i64, Upto)> = wants
                .iter()
                .map(|w| {
                    let upto = if w.follower.is_some() {
                        Upto::LogEnd
                    } else if w.committed {
                        Upto::LastStable
                    } else {
                        Upto::HighWatermark
                    };
                    (w.topic.id, w.partition, w.offset, upto)
                })
                .collect();
            let cancel = cancel.clone();
            Box::pin(on_shard(ctx, *owner, move |there| async move {
                wait_on_owner(&there, &watch, deadline, &cancel).await
            }))
        })
        .collect();
    let (_, _, rest) = select_all(waits).await;
    cancel.0.store(true, Ordering::Release);
    cancel.1.notify(usize::MAX);
    join_all(rest).await;
}

/// Runs on the owner: returns when one of `watch` has data past its offset, the deadline
/// passes, or the request stops waiting.
async fn wait_on_owner(
    ctx: &Rc<Shard>,
    watch: &[(Uuid, i32, i64, Upto)],
    deadline: Instant,
    cancel: &(AtomicBool, Event),
) {
    // A consumer waits for the high watermark (read_committed: the last stable offset) to
    // pass its offset, a follower for the log end.
    let grown = || {
        watch.iter().any(|&(id, p, offset, upto)| {
            ctx.partitions.get_open(id, p).is_some_and(|p| {
                let end = match upto {
                    Upto::LogEnd => p.log_end_offset(),
                    Upto::HighWatermark => p.high_watermark(),
                    Upto::LastStable => p.last_stable_offset(),
                };
                end as i64 > offset
            })
        })
    };
    loop {
        let appended = ctx.partitions.appended();
        let cancelled = cancel.1.listen();
        if grown() || cancel.0.load(Ordering::Acquire) || ctx.life.stopping.get() {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        let timer = std::pin::pin!(compio::time::sleep(left));
        match select(select(appended, cancelled), timer).await {
            Either::Left(_) => continue,
            Either::Right(_) => return,
        }
    }
}
