//! Group coordination, first part: FindCoordinator for groups, and committed offsets
//! (OffsetCommit, OffsetFetch) for consumers that assign partitions themselves (generation -1,
//! no member id: Kafka's "simple" consumers), with the admin side of such groups (ListGroups,
//! DescribeGroups, DeleteGroups, OffsetDelete). Group membership (JoinGroup and the rest) is
//! not served yet, so no commit from a group generation can be valid and every group is
//! `Empty`.
//!
//! A group's commits go to its `__consumer_offsets` partition on the shard that owns it, fsynced
//! before the reply, and are read back from there at the first use after a start.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use odradek_net::error_code as ec;
use odradek_storage::builder::{BatchParams, build_batch};
use odradek_storage::compression::Codec;
use odradek_storage::records::Record;
use tracing::{info, warn};

use super::{create_topic, str_bytes, topic_name};
use crate::cluster::Topic;
use crate::error;
use crate::group::records::{
    Committed, METADATA_MAX_BYTES, OFFSETS_PARTITIONS, OFFSETS_SEGMENT_BYTES, OFFSETS_TOPIC,
    RecordError, check_str, group_key, group_value, offset_key, offset_value, partition_for,
};
use crate::group::state::{Group, Member, State};
use crate::partition::Durability;
use crate::runtime::on_shard;
use crate::shard::Shard;

/// Kafka's coordinator key types.
const KEY_TYPE_GROUP: i8 = 0;

/// `__consumer_offsets`, created on first use as Kafka does (compacted, 50 partitions).
pub async fn offsets_topic(ctx: &Rc<Shard>) -> Result<Arc<Topic>, (i16, String)> {
    if let Some(t) = ctx.metadata.snapshot().topic(OFFSETS_TOPIC) {
        return Ok(t.clone());
    }
    let configs = BTreeMap::from([
        ("cleanup.policy".to_owned(), "compact".to_owned()),
        ("segment.bytes".to_owned(), OFFSETS_SEGMENT_BYTES.to_owned()),
    ]);
    match create_topic(ctx, OFFSETS_TOPIC, OFFSETS_PARTITIONS, configs).await {
        Ok(t) => Ok(t),
        // Created meanwhile by another request.
        Err(_) if ctx.metadata.snapshot().topic(OFFSETS_TOPIC).is_some() => ctx
            .metadata
            .snapshot()
            .topic(OFFSETS_TOPIC)
            .cloned()
            .ok_or((ec::UNKNOWN_SERVER_ERROR, String::new())),
        Err((_, message)) => {
            warn!(%message, "cannot create the offsets topic");
            Err((ec::COORDINATOR_NOT_AVAILABLE, message))
        }
    }
}

/// The offsets topic, the group's partition of it, and that partition's owner shard.
async fn group_home(
    ctx: &Rc<Shard>,
    group: &str,
) -> Result<(Arc<Topic>, i32, usize), (i16, String)> {
    let topic = offsets_topic(ctx).await?;
    let partition = partition_for(group, topic.partitions());
    let owner = topic
        .owner(partition, ctx.config.smp)
        .ok_or((ec::COORDINATOR_NOT_AVAILABLE, "offsets partition missing".to_owned()))?;
    Ok((topic, partition, owner))
}

/// Runs `work` on the shard coordinating `group`, with the offsets topic and the group's
/// partition of it, once that partition is loaded there. Every group request goes through
/// here (or [`on_group_owner`]), so none is answered from a half-known group after a start.
async fn on_group_partition<T, F, Fut>(ctx: &Rc<Shard>, group: &str, work: F) -> Result<T, i16>
where
    T: Send + 'static,
    F: FnOnce(Rc<Shard>, Arc<Topic>, i32) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
{
    let (topic, partition, owner) = group_home(ctx, group).await.map_err(|(code, _)| code)?;
    on_shard(ctx, owner, move |there| async move {
        ensure_loaded(&there, &topic, partition).await.map_err(|(code, _)| code)?;
        Ok(work(there, topic, partition).await)
    })
    .await
    .map_err(|_| ec::COORDINATOR_NOT_AVAILABLE)?
}

/// Runs on the owner: reads the offsets partition into memory once per start.
async fn ensure_loaded(
    ctx: &Rc<Shard>,
    topic: &Topic,
    partition: i32,
) -> Result<(), (i16, String)> {
    if ctx.groups.borrow().loaded.contains(&partition) {
        return Ok(());
    }
    let p = ctx.partitions.get(topic, partition).await.map_err(|e| (e.code(), e.to_string()))?;
    let mut at = p.log_start_offset();
    let end = p.high_watermark();
    let mut records = Vec::new();
    while at < end {
        let bytes = p.read_bytes(at, 1 << 20).await.map_err(|e| {
            warn!(partition, offset = at, error = %e, "cannot read group offsets");
            (ec::KAFKA_STORAGE_ERROR, e.to_string())
        })?;
        if bytes.is_empty() {
            break;
        }
        let mut pos = 0;
        while pos < bytes.len() {
            let refuse = |e: String| {
                warn!(partition, offset = at, error = %e, "cannot read group offsets");
                (ec::KAFKA_STORAGE_ERROR, format!("offsets partition {partition}: {e}"))
            };
            // One batch at a time: the read returns as many whole batches as fit.
            let len = odradek_storage::batch::BatchHeader::parse(&bytes[pos..])
                .map_err(|e| refuse(e.to_string()))?
                .total_len();
            let Some(batch) = bytes.get(pos..pos + len).map(|_| bytes.slice(pos..pos + len)) else {
                return Err(refuse(format!("a batch of {len} bytes is cut short")));
            };
            let (header, recs) = odradek_storage::compact::batch_records(&batch).map_err(refuse)?;
            records.extend(recs.into_iter().filter_map(|r| Some((r.key?, r.value))));
            pos += header.total_len();
            at = header.last_offset() as u64 + 1;
        }
    }
    let mut groups = ctx.groups.borrow_mut();
    if groups.loaded.insert(partition) {
        let n = records.len();
        let restored = groups.load(records, Instant::now());
        info!(partition, records = n, groups_restored = restored, "group offsets loaded");
    }
    Ok(())
}

/// Milliseconds since the epoch.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Runs on the owner: appends `records` (key, value or tombstone) to the group's partition
/// as one batch and fsyncs it (acks=all), so a reply sent after it survives a crash.
async fn append_synced(
    ctx: &Rc<Shard>,
    topic: &Topic,
    partition: i32,
    timestamp: i64,
    records: Vec<(Bytes, Option<Bytes>)>,
) -> Result<(), i16> {
    let records: Vec<Record> = records
        .into_iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            attributes: 0,
            timestamp_delta: 0,
            offset_delta: i as i32,
            key: Some(key),
            value,
            headers: Vec::new(),
        })
        .collect();
    let batch: Bytes =
        build_batch(&BatchParams::simple(Codec::None, timestamp, records.len()), &records)
            .map_err(|_| ec::UNKNOWN_SERVER_ERROR)?;
    let p = ctx.partitions.get(topic, partition).await.map_err(|e| e.code())?;
    p.append(batch, Durability::Synced).await.map_err(|e| error::append_failure(&e))?;
    Ok(())
}

/// Runs on the owner: stores `group`'s metadata as it is now (or its tombstone when the group
/// is gone from memory).
async fn store_group(ctx: &Rc<Shard>, group: &str) -> Result<(), i16> {
    let Some(topic) = ctx.metadata.snapshot().topic(OFFSETS_TOPIC).cloned() else {
        return Err(ec::COORDINATOR_NOT_AVAILABLE);
    };
    let partition = partition_for(group, topic.partitions());
    let now = now_ms();
    let value = ctx.groups.borrow().membership.get(group).map(|g| group_value(&g.stored(now)));
    let record = group_key(group).and_then(|key| Ok((key, value.transpose()?)));
    let record = match record {
        Ok(record) => record,
        Err(e) => {
            warn!(group_bytes = group.len(), partition, error = %e, "group metadata not storable");
            return Err(e.error_code());
        }
    };
    let stored = append_synced(ctx, &topic, partition, now, vec![record]).await;
    if let Err(code) = stored {
        warn!(group, partition, code, "cannot store group metadata");
    }
    stored
}

/// FindCoordinator: this node for every group (creating `__consumer_offsets` on first use, as
/// Kafka does); no coordinator for transactions yet. The API also matters without groups:
/// librdkafka turns lz4 on only for brokers that advertise it (`Feature LZ4: FindCoordinator
/// (0..0)`), else kcat and confluent-kafka silently send lz4 batches uncompressed.
pub async fn find_coordinator(
    ctx: &Rc<Shard>,
    version: i16,
    req: &FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let node = BrokerId(ctx.config.node_id);
    let (host, port) = &ctx.config.advertise;
    // Groups: this node, once the offsets topic exists. Transactions: none yet.
    let answer =
        |key_type: i8, ready: &Result<Arc<Topic>, (i16, String)>| -> Result<(), (i16, String)> {
            if key_type != KEY_TYPE_GROUP {
                return Err((
                    ec::COORDINATOR_NOT_AVAILABLE,
                    "transactions are not supported yet".to_owned(),
                ));
            }
            ready.as_ref().map(|_| ()).map_err(Clone::clone)
        };
    let ready = offsets_topic(ctx).await;
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .iter()
            .map(|key| {
                let c = Coordinator::default().with_key(key.clone());
                match answer(req.key_type, &ready) {
                    Ok(()) => {
                        c.with_node_id(node).with_host(str_bytes(host)).with_port(i32::from(*port))
                    }
                    Err((code, message)) => c
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(code)
                        .with_error_message(Some(str_bytes(&message))),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let resp = FindCoordinatorResponse::default();
    match answer(req.key_type, &ready) {
        Ok(()) => resp.with_node_id(node).with_host(str_bytes(host)).with_port(i32::from(*port)),
        Err((code, message)) => {
            let resp = resp.with_error_code(code).with_node_id(BrokerId(-1)).with_port(-1);
            // The error message exists from v1.
            if version >= 1 { resp.with_error_message(Some(str_bytes(&message))) } else { resp }
        }
    }
}

/// One partition's commit, checked on the connection's shard.
type Commit = (String, i32, Committed);
/// A request's partitions of one topic, each to commit or refused with an error code.
type Checked = (TopicName, Vec<(i32, Result<Commit, i16>)>);

pub async fn offset_commit(ctx: &Rc<Shard>, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let group = req.group_id.0.to_string();
    let snapshot = ctx.metadata.snapshot();
    let now = now_ms();
    // Per partition: Ok(commit) to write, or Err(error code).
    let mut checked: Vec<Checked> = Vec::new();
    let group_error = if group.is_empty() {
        Some(ec::INVALID_GROUP_ID)
    } else {
        // A group id its record cannot hold: refused before anything is written.
        check_str("group id", &group).err().map(|e| e.error_code())
    };
    let generation = req.generation_id_or_member_epoch;
    let member = req.member_id.to_string();
    for t in &req.topics {
        let topic = snapshot.topic(&t.name.0);
        let parts = t
            .partitions
            .iter()
            .map(|p| {
                let result = match (group_error, topic) {
                    (Some(code), _) => Err(code),
                    (None, Some(tp))
                        if p.partition_index >= 0 && p.partition_index < tp.partitions() =>
                    {
                        let metadata = p
                            .committed_metadata
                            .as_ref()
                            .map(|m| m.to_string())
                            .unwrap_or_default();
                        if metadata.len() > METADATA_MAX_BYTES {
                            Err(ec::OFFSET_METADATA_TOO_LARGE)
                        } else {
                            Ok((
                                tp.name.clone(),
                                p.partition_index,
                                Committed {
                                    offset: p.committed_offset,
                                    leader_epoch: p.committed_leader_epoch,
                                    metadata,
                                    commit_timestamp: now,
                                },
                            ))
                        }
                    }
                    _ => Err(ec::UNKNOWN_TOPIC_OR_PARTITION),
                };
                (p.partition_index, result)
            })
            .collect();
        checked.push((t.name.clone(), parts));
    }
    let commits: Vec<Commit> =
        checked.iter().flat_map(|(_, ps)| ps.iter().filter_map(|(_, r)| r.clone().ok())).collect();
    let outcome = if commits.is_empty() {
        Ok(())
    } else {
        let g = group.clone();
        on_group_partition(ctx, &group, move |there, topic, partition| async move {
            check_committer(&there, &g, &member, generation)?;
            write_commits(&there, &topic, partition, &g, commits).await
        })
        .await
        .and_then(|r| r)
    };
    let topics = checked
        .into_iter()
        .map(|(name, parts)| {
            let partitions = parts
                .into_iter()
                .map(|(index, r)| {
                    let code = match (&r, outcome) {
                        (Err(code), _) => *code,
                        (Ok(_), Err(code)) => code,
                        (Ok(_), Ok(())) => ec::NONE,
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default().with_name(name).with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// Runs on the owner: whether `member` of `generation` may commit for `group`. A consumer
/// outside any generation (-1, no member id) may commit only to a group without members.
fn check_committer(ctx: &Shard, group: &str, member: &str, generation: i32) -> Result<(), i16> {
    let mut groups = ctx.groups.borrow_mut();
    let g = groups.membership.get_mut(group);
    if generation < 0 && member.is_empty() {
        return match g {
            Some(g) if !g.members.is_empty() => Err(ec::ILLEGAL_GENERATION),
            _ => Ok(()),
        };
    }
    let g = check_member(g, member, generation)?;
    // As Kafka: members of the current generation may commit while the group prepares a
    // rebalance (before they rejoin), not while the leader is computing the assignment.
    match g.state {
        State::CompletingRebalance => Err(ec::REBALANCE_IN_PROGRESS),
        _ => Ok(()),
    }
}

/// Runs on the owner, its partition loaded: appends the commits as one batch, fsyncs, then
/// makes them visible.
async fn write_commits(
    ctx: &Rc<Shard>,
    topic: &Topic,
    partition: i32,
    group: &str,
    commits: Vec<Commit>,
) -> Result<(), i16> {
    let now = commits.first().map_or(0, |(_, _, c)| c.commit_timestamp);
    let records = commits
        .iter()
        .map(|(t, p, c)| Ok((offset_key(group, t, *p)?, Some(offset_value(c)?))))
        .collect::<Result<Vec<_>, RecordError>>();
    let records = match records {
        Ok(records) => records,
        Err(e) => {
            warn!(group_bytes = group.len(), partition, error = %e, "commit not storable");
            return Err(e.error_code());
        }
    };
    if let Err(code) = append_synced(ctx, topic, partition, now, records).await {
        warn!(group, partition, code, "cannot write committed offsets");
        return Err(code);
    }
    let mut groups = ctx.groups.borrow_mut();
    for (t, p, c) in commits {
        groups.offsets.commit(group, &t, p, c);
    }
    Ok(())
}

/// What OffsetFetch asks of one group: its id and the partitions wanted (`None`: all).
type Wanted = (String, Option<Vec<(String, Vec<i32>)>>);

pub async fn offset_fetch(
    ctx: &Rc<Shard>,
    version: i16,
    req: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let wanted: Vec<Wanted> = if version >= 8 {
        req.groups
            .iter()
            .map(|g| {
                let topics = g.topics.as_ref().map(|ts| {
                    ts.iter().map(|t| (t.name.0.to_string(), t.partition_indexes.clone())).collect()
                });
                (g.group_id.0.to_string(), topics)
            })
            .collect()
    } else {
        let topics = req.topics.as_ref().map(|ts| {
            ts.iter().map(|t| (t.name.0.to_string(), t.partition_indexes.clone())).collect()
        });
        vec![(req.group_id.0.to_string(), topics)]
    };
    let mut answers = Vec::with_capacity(wanted.len());
    for (group, topics) in wanted {
        answers.push((group.clone(), fetch_group(ctx, &group, topics).await));
    }
    if version >= 8 {
        let groups = answers
            .into_iter()
            .map(|(group, result)| {
                let g =
                    OffsetFetchResponseGroup::default().with_group_id(GroupId(str_bytes(&group)));
                match result {
                    Err(code) => g.with_error_code(code),
                    Ok(topics) => g.with_topics(
                        topics
                            .into_iter()
                            .map(|(t, ps)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(topic_name(&t))
                                    .with_partitions(
                                        ps.into_iter()
                                            .map(|(p, c)| {
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(p)
                                                    .with_committed_offset(c.offset)
                                                    .with_committed_leader_epoch(c.leader_epoch)
                                                    .with_metadata(Some(str_bytes(&c.metadata)))
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    ),
                }
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let (_, result) =
        answers.into_iter().next().unwrap_or((String::new(), Err(ec::INVALID_GROUP_ID)));
    match result {
        Err(code) if version >= 2 => OffsetFetchResponse::default().with_error_code(code),
        // v1 has no top-level error: Kafka puts it on every partition asked for.
        Err(code) => OffsetFetchResponse::default().with_topics(
            req.topics
                .iter()
                .flatten()
                .map(|t| {
                    OffsetFetchResponseTopic::default().with_name(t.name.clone()).with_partitions(
                        t.partition_indexes
                            .iter()
                            .map(|&p| {
                                OffsetFetchResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(-1)
                                    .with_error_code(code)
                            })
                            .collect(),
                    )
                })
                .collect(),
        ),
        Ok(topics) => OffsetFetchResponse::default().with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    OffsetFetchResponseTopic::default().with_name(topic_name(&t)).with_partitions(
                        ps.into_iter()
                            .map(|(p, c)| {
                                let r = OffsetFetchResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(c.offset)
                                    .with_metadata(Some(str_bytes(&c.metadata)));
                                if version >= 5 {
                                    r.with_committed_leader_epoch(c.leader_epoch)
                                } else {
                                    r
                                }
                            })
                            .collect(),
                    )
                })
                .collect(),
        ),
    }
}

/// A group's committed offsets for the wanted partitions (all when `None`); partitions without
/// a commit get offset -1, as Kafka answers.
async fn fetch_group(
    ctx: &Rc<Shard>,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> Result<Vec<(String, Vec<(i32, Committed)>)>, i16> {
    if group.is_empty() {
        return Err(ec::INVALID_GROUP_ID);
    }
    let group_name = group.to_owned();
    on_group_owner(ctx, group, move |there| async move {
        let group = group_name;
        let groups = there.groups.borrow();
        let none = Committed {
            offset: -1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: -1,
        };
        Ok(match topics {
            Some(ts) => ts
                .into_iter()
                .map(|(t, ps)| {
                    let found = ps
                        .into_iter()
                        .map(|p| {
                            (
                                p,
                                groups
                                    .offsets
                                    .get(&group, &t, p)
                                    .cloned()
                                    .unwrap_or_else(|| none.clone()),
                            )
                        })
                        .collect();
                    (t, found)
                })
                .collect(),
            None => {
                let mut by_topic: Vec<(String, Vec<(i32, Committed)>)> = Vec::new();
                for (t, p, c) in groups.offsets.all(&group) {
                    match by_topic.last_mut() {
                        Some((last, ps)) if *last == t => ps.push((p, c)),
                        _ => by_topic.push((t, vec![(p, c)])),
                    }
                }
                by_topic
            }
        })
    })
    .await
    .unwrap_or(Err(ec::COORDINATOR_NOT_AVAILABLE))
}

/// Groups that exist here: those with committed offsets. With no membership served yet, every
/// group is `Empty` (Kafka's state for a group with offsets and no members), of the classic
/// type, with no protocol type.
const STATE_EMPTY: &str = "Empty";
const STATE_DEAD: &str = "Dead";
const TYPE_CLASSIC: &str = "classic";

/// Runs on a shard: reads every `__consumer_offsets` partition it owns, so that its view of
/// the groups is complete.
async fn load_all_owned(ctx: &Rc<Shard>) -> Result<(), (i16, String)> {
    let Some(topic) = ctx.metadata.snapshot().topic(OFFSETS_TOPIC).cloned() else { return Ok(()) };
    for p in 0..topic.partitions() {
        if topic.owner(p, ctx.config.smp) == Some(ctx.id) {
            ensure_loaded(ctx, &topic, p).await?;
        }
    }
    Ok(())
}

pub async fn list_groups(ctx: &Rc<Shard>, req: &ListGroupsRequest) -> ListGroupsResponse {
    let state_ok = |state: &str| {
        req.states_filter.is_empty()
            || req.states_filter.iter().any(|s| s.eq_ignore_ascii_case(state))
    };
    let types_ok = req.types_filter.is_empty()
        || req.types_filter.iter().any(|t| t.eq_ignore_ascii_case(TYPE_CLASSIC));
    let mut groups = Vec::new();
    let mut error = ec::NONE;
    for shard in 0..ctx.config.smp {
        let listed = on_shard(ctx, shard, |there| async move {
            load_all_owned(&there).await.map_err(|(code, _)| code)?;
            let groups = there.groups.borrow();
            let mut all: BTreeMap<String, (String, String)> = groups
                .offsets
                .groups()
                .into_iter()
                .map(|g| (g, (String::new(), STATE_EMPTY.to_owned())))
                .collect();
            for (name, g) in &groups.membership {
                // Entries of joins that never formed a generation are not groups yet.
                if !g.members.is_empty() || g.generation > 0 || all.contains_key(name) {
                    let t = g.protocol_type.clone().unwrap_or_default();
                    all.insert(name.clone(), (t, g.state.name().to_owned()));
                }
            }
            Ok::<_, i16>(all.into_iter().collect::<Vec<_>>())
        })
        .await;
        match listed {
            Ok(Ok(names)) => groups.extend(names),
            Ok(Err(code)) => error = code,
            Err(_) => error = ec::COORDINATOR_NOT_AVAILABLE,
        }
    }
    groups.sort();
    let listed = groups
        .into_iter()
        .filter(|(_, (_, state))| state_ok(state) && types_ok)
        .map(|(g, (protocol_type, state))| {
            ListedGroup::default()
                .with_group_id(GroupId(str_bytes(&g)))
                .with_protocol_type(str_bytes(&protocol_type))
                .with_group_state(str_bytes(&state))
                .with_group_type(str_bytes(TYPE_CLASSIC))
        })
        .collect();
    ListGroupsResponse::default().with_error_code(error).with_groups(listed)
}

/// A group's live membership for DescribeGroups: state, protocol type, protocol, members.
type Described = (&'static str, String, String, Vec<DescribedGroupMember>);

fn describe_members(ctx: &Shard, group: &str) -> Option<Described> {
    let groups = ctx.groups.borrow();
    let g = groups.membership.get(group).filter(|g| !g.members.is_empty())?;
    let protocol = g.protocol.clone().unwrap_or_default();
    let members = g
        .members
        .values()
        .map(|m| {
            DescribedGroupMember::default()
                .with_member_id(str_bytes(&m.id))
                .with_group_instance_id(m.instance_id.as_deref().map(str_bytes))
                .with_client_id(str_bytes(&m.client_id))
                .with_client_host(str_bytes(&m.client_host))
                .with_member_metadata(m.metadata_for(&protocol))
                .with_member_assignment(m.assignment.clone())
        })
        .collect();
    Some((g.state.name(), g.protocol_type.clone().unwrap_or_default(), protocol, members))
}

/// Whether `group` exists: it has committed offsets, members, or a stored generation.
async fn group_exists(ctx: &Rc<Shard>, group: &str) -> Result<bool, i16> {
    let group_name = group.to_owned();
    on_group_owner(ctx, group, move |there| async move {
        let groups = there.groups.borrow();
        let formed = groups
            .membership
            .get(&group_name)
            .is_some_and(|g| !g.members.is_empty() || g.generation > 0);
        formed || !groups.offsets.all(&group_name).is_empty()
    })
    .await
}

pub async fn describe_groups(
    ctx: &Rc<Shard>,
    version: i16,
    req: &DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let mut described = Vec::with_capacity(req.groups.len());
    for g in &req.groups {
        let d = DescribedGroup::default()
            .with_group_id(g.clone())
            .with_protocol_type(str_bytes(""))
            .with_protocol_data(str_bytes(""));
        let name = g.0.to_string();
        let live = on_group_owner(ctx, &name, {
            let name = name.clone();
            move |there| async move { describe_members(&there, &name) }
        })
        .await
        .ok()
        .flatten();
        if let Some((state, protocol_type, protocol, members)) = live {
            described.push(
                d.with_group_state(str_bytes(state))
                    .with_protocol_type(str_bytes(&protocol_type))
                    .with_protocol_data(str_bytes(&protocol))
                    .with_members(members),
            );
            continue;
        }
        let d = match group_exists(ctx, &g.0).await {
            Ok(true) => d.with_group_state(str_bytes(STATE_EMPTY)),
            // v6 (KIP-1043) reports an unknown group as an error; before, as a Dead group.
            Ok(false) if version >= 6 => d
                .with_group_state(str_bytes(STATE_DEAD))
                .with_error_code(ec::GROUP_ID_NOT_FOUND)
                .with_error_message(Some(str_bytes("no such group"))),
            Ok(false) => d.with_group_state(str_bytes(STATE_DEAD)),
            Err(code) => d.with_group_state(str_bytes("")).with_error_code(code),
        };
        described.push(d);
    }
    DescribeGroupsResponse::default().with_groups(described)
}

/// Runs on the owner, its partition loaded: writes tombstones for `keys` of `group` (one
/// batch, fsynced), then forgets them. Returns which of them existed.
async fn delete_offsets(
    ctx: &Rc<Shard>,
    topic: &Topic,
    partition: i32,
    group: &str,
    keys: Vec<(String, i32)>,
) -> Result<Vec<bool>, i16> {
    let existed: Vec<bool> = {
        let groups = ctx.groups.borrow();
        keys.iter().map(|(t, p)| groups.offsets.get(group, t, *p).is_some()).collect()
    };
    let records: Vec<(Bytes, Option<Bytes>)> = keys
        .iter()
        .zip(&existed)
        .filter(|(_, e)| **e)
        .map(|((t, p), _)| Ok((offset_key(group, t, *p)?, None)))
        .collect::<Result<_, RecordError>>()
        .map_err(|e| e.error_code())?;
    if records.is_empty() {
        return Ok(existed);
    }
    append_synced(ctx, topic, partition, now_ms(), records).await?;
    let mut groups = ctx.groups.borrow_mut();
    for (t, p) in &keys {
        groups.offsets.remove(group, t, *p);
    }
    Ok(existed)
}

/// Deletes `keys` of `group` (all its offsets when `None`) on the group's owner.
async fn delete_on_owner(
    ctx: &Rc<Shard>,
    group: &str,
    keys: Option<Vec<(String, i32)>>,
) -> Result<Vec<bool>, i16> {
    let group_name = group.to_owned();
    on_group_partition(ctx, group, move |there, topic, partition| async move {
        let group = group_name;
        let keys = keys.unwrap_or_else(|| {
            there.groups.borrow().offsets.all(&group).into_iter().map(|(t, p, _)| (t, p)).collect()
        });
        delete_offsets(&there, &topic, partition, &group, keys).await
    })
    .await
    .and_then(|r| r)
}

/// Deletes a group without members: its offsets and its stored metadata (one hop to the owner).
async fn delete_group(ctx: &Rc<Shard>, group: &str) -> Result<(), i16> {
    let g = group.to_owned();
    on_group_partition(ctx, group, move |there, topic, partition| async move {
        let (known, keys) = {
            let groups = there.groups.borrow();
            let known = match groups.membership.get(&g) {
                Some(gr) if !gr.members.is_empty() => return Err(ec::NON_EMPTY_GROUP),
                Some(_) => true,
                None => false,
            };
            let keys: Vec<(String, i32)> =
                groups.offsets.all(&g).into_iter().map(|(t, p, _)| (t, p)).collect();
            (known, keys)
        };
        if !known && keys.is_empty() {
            return Err(ec::GROUP_ID_NOT_FOUND);
        }
        delete_offsets(&there, &topic, partition, &g, keys).await?;
        // A member may have joined while the tombstones were written: then the group stays.
        let removed = {
            let mut groups = there.groups.borrow_mut();
            match groups.membership.get(&g) {
                Some(gr) if !gr.members.is_empty() => return Err(ec::NON_EMPTY_GROUP),
                _ => groups.membership.remove(&g).is_some(),
            }
        };
        if removed { store_group(&there, &g).await } else { Ok(()) }
    })
    .await?
}

pub async fn delete_groups(ctx: &Rc<Shard>, req: &DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for g in &req.groups_names {
        let code = match delete_group(ctx, &g.0).await {
            Ok(()) => {
                info!(group = %g.0, "group deleted");
                ec::NONE
            }
            Err(code) => code,
        };
        results
            .push(DeletableGroupResult::default().with_group_id(g.clone()).with_error_code(code));
    }
    DeleteGroupsResponse::default().with_results(results)
}

pub async fn offset_delete(ctx: &Rc<Shard>, req: &OffsetDeleteRequest) -> OffsetDeleteResponse {
    let group = req.group_id.0.to_string();
    let keys: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), p.partition_index)))
        .collect();
    let top_error = match group_exists(ctx, &group).await {
        Ok(true) => None,
        Ok(false) => Some(ec::GROUP_ID_NOT_FOUND),
        Err(code) => Some(code),
    };
    if let Some(code) = top_error {
        return OffsetDeleteResponse::default().with_error_code(code);
    }
    let outcome = delete_on_owner(ctx, &group, Some(keys)).await;
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = match &outcome {
                        Err(code) => *code,
                        Ok(_) => ec::NONE,
                    };
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}

/// Runs on every shard until it stops: every `offsets_retention_check_interval_ms`, deletes the
/// committed offsets older than `offsets_retention_ms` of the groups it coordinates (all of
/// them are without members for now: Kafka expires the offsets of such groups by commit age).
pub async fn expire_offsets(ctx: Rc<Shard>) {
    let interval = std::time::Duration::from_millis(ctx.config.offsets_retention_check_interval_ms);
    let step = std::time::Duration::from_millis(100).min(interval);
    let mut waited = std::time::Duration::ZERO;
    while !ctx.life.stopping.get() {
        compio::time::sleep(step).await;
        waited += step;
        if waited < interval {
            continue;
        }
        waited = std::time::Duration::ZERO;
        let Some(topic) = ctx.metadata.snapshot().topic(OFFSETS_TOPIC).cloned() else { continue };
        if let Err((code, message)) = load_all_owned(&ctx).await {
            warn!(code, %message, "cannot read committed offsets for expiry");
            continue;
        }
        let now = now_ms();
        let cutoff =
            now.saturating_sub(i64::try_from(ctx.config.offsets_retention_ms).unwrap_or(i64::MAX));
        let expired: Vec<(String, Vec<(String, i32)>)> = {
            let groups = ctx.groups.borrow();
            let active =
                |g: &String| groups.membership.get(g).is_some_and(|m| !m.members.is_empty());
            groups.offsets.expired(cutoff).into_iter().filter(|(g, _)| !active(g)).collect()
        };
        for (group, keys) in expired {
            let partition = partition_for(&group, topic.partitions());
            let n = keys.len();
            match delete_offsets(&ctx, &topic, partition, &group, keys).await {
                Ok(_) => info!(group, offsets = n, "expired committed offsets deleted"),
                Err(code) => warn!(group, code, "cannot delete expired offsets"),
            }
            // As Kafka: an empty group whose last offsets expired is removed altogether.
            let gone = {
                let mut groups = ctx.groups.borrow_mut();
                let empty = groups.membership.get(&group).is_some_and(|g| g.members.is_empty());
                empty
                    && groups.offsets.all(&group).is_empty()
                    && groups.membership.remove(&group).is_some()
            };
            if gone && store_group(&ctx, &group).await.is_ok() {
                info!(group, "empty group removed with its last offsets");
            }
        }
    }
}

// --- membership: JoinGroup, SyncGroup, Heartbeat, LeaveGroup ----------------------------------

/// How often waiting handlers re-check their group, besides being woken on each change.
const RECHECK: Duration = Duration::from_millis(100);

fn initial_delay(ctx: &Shard) -> Duration {
    Duration::from_millis(ctx.config.group_initial_rebalance_delay_ms)
}

/// Runs `work` on the shard coordinating `group`, once the group's partition of
/// `__consumer_offsets` is loaded there (so a restarted node knows its groups' members).
async fn on_group_owner<T, F, Fut>(ctx: &Rc<Shard>, group: &str, work: F) -> Result<T, i16>
where
    T: Send + 'static,
    F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
{
    on_group_partition(ctx, group, move |there, _, _| work(there)).await
}

/// Waits until `done` says something about the group (or `limit` passes: `None`).
async fn wait_for<T>(
    ctx: &Shard,
    group: &str,
    limit: Duration,
    mut done: impl FnMut(Option<&mut Group>) -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        let listener = {
            let mut groups = ctx.groups.borrow_mut();
            let g = groups.membership.get_mut(group);
            let listener = g.as_ref().map(|g| g.changed.listen());
            if let Some(answer) = done(g) {
                return Some(answer);
            }
            listener
        };
        if Instant::now() >= deadline {
            return None;
        }
        let timer = std::pin::pin!(compio::time::sleep(RECHECK));
        match listener {
            Some(l) => {
                let _ = futures_util::future::select(l, timer).await;
            }
            None => timer.await,
        }
    }
}

pub async fn join_group(
    ctx: &Rc<Shard>,
    version: i16,
    req: JoinGroupRequest,
    client_id: String,
) -> JoinGroupResponse {
    let group = req.group_id.0.to_string();
    let fail = |code: i16| {
        JoinGroupResponse::default()
            .with_error_code(code)
            .with_generation_id(-1)
            .with_protocol_name(if version >= 7 { None } else { Some(str_bytes("")) })
    };
    if group.is_empty() {
        return fail(ec::INVALID_GROUP_ID);
    }
    // Kafka's `group.min.session.timeout.ms` and `group.max.session.timeout.ms`.
    let (min, max) =
        (ctx.config.group_min_session_timeout_ms, ctx.config.group_max_session_timeout_ms);
    if !(min..=max).contains(&req.session_timeout_ms) {
        info!(
            group,
            session_timeout_ms = req.session_timeout_ms,
            min,
            max,
            "session timeout out of bounds"
        );
        return fail(ec::INVALID_SESSION_TIMEOUT);
    }
    if let Err(e) = join_strings_fit(&req, &client_id) {
        warn!(group_bytes = group.len(), error = %e, "JoinGroup refused: a string cannot be stored");
        return fail(e.error_code());
    }
    let g = group.clone();
    let answer = on_group_owner(ctx, &group, move |there| async move {
        join_on_owner(&there, version, &g, req, client_id).await
    })
    .await;
    match answer {
        Ok(resp) => resp,
        Err(code) => fail(code),
    }
}

/// Whether every string a JoinGroup brings into its group's stored metadata fits a stored
/// string, the member id the node would generate included, so that the group can always be
/// stored once it has let the member in.
fn join_strings_fit(req: &JoinGroupRequest, client_id: &str) -> Result<(), RecordError> {
    check_str("group id", &req.group_id.0)?;
    check_str("member id", &req.member_id)?;
    check_str("protocol type", &req.protocol_type)?;
    for p in &req.protocols {
        check_str("protocol", &p.name)?;
    }
    check_str("client id", client_id)?;
    if let Some(instance) = &req.group_instance_id {
        check_str("group instance id", instance)?;
    }
    if req.member_id.is_empty() {
        // A generated id is `<instance id or client id>-<32 hex digits>`.
        let base = req.group_instance_id.as_deref().unwrap_or(client_id);
        check_str("member id", &format!("{base}-{:032x}", 0u128))?;
    }
    Ok(())
}

async fn join_on_owner(
    ctx: &Rc<Shard>,
    version: i16,
    group: &str,
    req: JoinGroupRequest,
    client_id: String,
) -> JoinGroupResponse {
    let now = Instant::now();
    let delay = initial_delay(ctx);
    let protocol_type = req.protocol_type.to_string();
    let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
    let protocols: Vec<(String, Bytes)> =
        req.protocols.iter().map(|p| (p.name.to_string(), p.metadata.clone())).collect();
    let rebalance_timeout = Duration::from_millis(
        u64::try_from(req.rebalance_timeout_ms.max(req.session_timeout_ms)).unwrap_or(0),
    );
    let mut member_id = req.member_id.to_string();
    let base = JoinGroupResponse::default().with_generation_id(-1);
    let name_none = |r: JoinGroupResponse| {
        if version >= 7 { r } else { r.with_protocol_name(Some(str_bytes(""))) }
    };
    // The generation before this join, or the answer to a static member's quick rejoin (given
    // once the replaced member id is stored).
    let before_join: Result<i32, JoinGroupResponse> = 'joined: {
        let mut groups = ctx.groups.borrow_mut();
        let g = groups.membership.entry(group.to_owned()).or_default();
        if g.state != State::Empty && g.protocol_type.as_deref().is_some_and(|t| t != protocol_type)
            || !g.members.is_empty()
                && !g.members.values().next().is_some_and(|m| {
                    m.protocols.iter().any(|(n, _)| protocols.iter().any(|(p, _)| p == n))
                })
        {
            return name_none(base.with_error_code(ec::INCONSISTENT_GROUP_PROTOCOL));
        }
        // Static members: a known instance id with a new member id replaces the old member.
        if let Some(inst) = &instance
            && let Some(old) = g.static_member(inst)
        {
            if !member_id.is_empty() && member_id != old {
                return name_none(base.with_error_code(ec::FENCED_INSTANCE_ID));
            }
            if member_id.is_empty() {
                member_id =
                    format!("{inst}-{}", uuid::Uuid::from_u128(rand::random::<u128>()).simple());
                if let Some(mut m) = g.members.remove(&old) {
                    m.id = member_id.clone();
                    m.last_seen = now;
                    g.members.insert(member_id.clone(), m);
                    if g.leader.as_deref() == Some(&old) {
                        g.leader = Some(member_id.clone());
                    }
                }
                g.store_pending = true;
                if g.state == State::Stable {
                    // A quick rejoin of a static member: no rebalance, same generation.
                    let r = base
                        .clone()
                        .with_generation_id(g.generation)
                        .with_protocol_type(if version >= 7 {
                            Some(str_bytes(&protocol_type))
                        } else {
                            None
                        })
                        .with_protocol_name(Some(str_bytes(g.protocol.as_deref().unwrap_or(""))))
                        .with_leader(str_bytes(g.leader.as_deref().unwrap_or("")))
                        .with_member_id(str_bytes(&member_id));
                    info!(group, member = %member_id, "static member rejoined without a rebalance");
                    g.store_pending = false;
                    break 'joined Err(r);
                }
            }
        }
        if member_id.is_empty() {
            member_id =
                format!("{client_id}-{}", uuid::Uuid::from_u128(rand::random::<u128>()).simple());
            if version >= 4 && instance.is_none() {
                g.pending.insert(member_id.clone(), now);
                return name_none(
                    base.with_error_code(ec::MEMBER_ID_REQUIRED)
                        .with_member_id(str_bytes(&member_id)),
                );
            }
        } else if !g.members.contains_key(&member_id) && !g.pending.contains_key(&member_id) {
            return name_none(
                base.with_error_code(ec::UNKNOWN_MEMBER_ID).with_member_id(str_bytes(&member_id)),
            );
        }
        if g.members.is_empty() {
            g.protocol_type = Some(protocol_type.clone());
        }
        let assignment =
            g.members.get(&member_id).map(|m| m.assignment.clone()).unwrap_or_default();
        let member = Member {
            id: member_id.clone(),
            instance_id: instance.clone(),
            client_id: client_id.clone(),
            client_host: "/127.0.0.1".to_owned(),
            session_timeout: Duration::from_millis(
                u64::try_from(req.session_timeout_ms).unwrap_or(0),
            ),
            rebalance_timeout,
            protocols,
            assignment,
            last_seen: now,
            awaiting_join: false,
        };
        // The generation before this join: the answer is the first one formed after it (this
        // join may complete the phase itself, bumping the generation right here).
        let before = g.generation;
        g.join(member, now, delay);
        Ok(before)
    };
    let start_generation = match before_join {
        Ok(generation) => generation,
        Err(answer) => {
            // acks=all: after a crash the member's new id must still be known.
            if let Err(code) = store_group(ctx, group).await {
                if let Some(g) = ctx.groups.borrow_mut().membership.get_mut(group) {
                    g.store_pending = true;
                }
                return name_none(base.with_error_code(code));
            }
            return answer;
        }
    };
    let me = member_id.clone();
    let done = wait_for(ctx, group, rebalance_timeout + delay + Duration::from_secs(5), |g| {
        let g = g?;
        let Some(m) = g.members.get(&me) else { return Some(Err(ec::UNKNOWN_MEMBER_ID)) };
        let formed = matches!(g.state, State::CompletingRebalance | State::Stable)
            && !m.awaiting_join
            && g.generation > start_generation;
        if !formed {
            return None;
        }
        let protocol = g.protocol.clone().unwrap_or_default();
        let leader = g.leader.clone().unwrap_or_default();
        let members: Vec<JoinGroupResponseMember> = if leader == me {
            g.members
                .values()
                .map(|m| {
                    let r = JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(&m.id))
                        .with_metadata(m.metadata_for(&protocol));
                    if version >= 5 {
                        r.with_group_instance_id(m.instance_id.as_deref().map(str_bytes))
                    } else {
                        r
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        Some(Ok((g.generation, protocol, leader, members)))
    })
    .await;
    match done {
        Some(Ok((generation, protocol, leader, members))) => JoinGroupResponse::default()
            .with_generation_id(generation)
            .with_protocol_type(if version >= 7 { Some(str_bytes(&protocol_type)) } else { None })
            .with_protocol_name(Some(str_bytes(&protocol)))
            .with_leader(str_bytes(&leader))
            .with_member_id(str_bytes(&member_id))
            .with_members(members),
        Some(Err(code)) => {
            name_none(base.with_error_code(code).with_member_id(str_bytes(&member_id)))
        }
        None => name_none(
            base.with_error_code(ec::REBALANCE_IN_PROGRESS).with_member_id(str_bytes(&member_id)),
        ),
    }
}

/// Checks a member and generation of `group` (on its owner): the group, or the error code.
fn check_member<'a>(
    g: Option<&'a mut Group>,
    member_id: &str,
    generation: i32,
) -> Result<&'a mut Group, i16> {
    let g = g.ok_or(ec::UNKNOWN_MEMBER_ID)?;
    if !g.members.contains_key(member_id) {
        return Err(ec::UNKNOWN_MEMBER_ID);
    }
    if generation != g.generation {
        return Err(ec::ILLEGAL_GENERATION);
    }
    Ok(g)
}

pub async fn sync_group(ctx: &Rc<Shard>, version: i16, req: SyncGroupRequest) -> SyncGroupResponse {
    let group = req.group_id.0.to_string();
    let g = group.clone();
    let answer = on_group_owner(ctx, &group, move |there| async move {
        let member = req.member_id.to_string();
        let generation = req.generation_id;
        let assignments: Vec<(String, Bytes)> = req
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect();
        let limit = there
            .groups
            .borrow()
            .membership
            .get(&g)
            .and_then(|gr| gr.members.get(&member).map(|m| m.rebalance_timeout))
            .unwrap_or_default()
            + Duration::from_secs(5);
        let mut leader_done = false;
        let synced = wait_for(&there, &g, limit, |gr| {
            let gr = match check_member(gr, &member, generation) {
                Ok(gr) => gr,
                Err(code) => return Some(Err(code)),
            };
            match gr.state {
                State::PreparingRebalance | State::Empty => Some(Err(ec::REBALANCE_IN_PROGRESS)),
                State::CompletingRebalance
                    if gr.leader.as_deref() == Some(member.as_str()) && !leader_done =>
                {
                    leader_done = true;
                    for (id, a) in &assignments {
                        if let Some(m) = gr.members.get_mut(id) {
                            m.assignment = a.clone();
                        }
                    }
                    Some(Ok(Synced::Store))
                }
                State::CompletingRebalance => None,
                State::Stable => {
                    let m = gr.members.get_mut(&member)?;
                    m.last_seen = Instant::now();
                    Some(Ok(Synced::Assigned(
                        m.assignment.clone(),
                        gr.protocol_type.clone(),
                        gr.protocol.clone(),
                    )))
                }
            }
        })
        .await
        .unwrap_or(Err(ec::REBALANCE_IN_PROGRESS))?;
        match synced {
            Synced::Assigned(a, t, p) => Ok((a, t, p)),
            // As Kafka: the generation's assignment is stored before anyone gets theirs.
            Synced::Store => {
                let stored = store_group(&there, &g).await;
                let mut groups = there.groups.borrow_mut();
                let gr = check_member(groups.membership.get_mut(&g), &member, generation)?;
                if gr.state != State::CompletingRebalance {
                    return Err(ec::REBALANCE_IN_PROGRESS);
                }
                if let Err(code) = stored {
                    for m in gr.members.values_mut() {
                        m.assignment = Bytes::new();
                    }
                    gr.prepare_rebalance(Instant::now(), initial_delay(&there));
                    return Err(code);
                }
                gr.state = State::Stable;
                gr.changed.notify(usize::MAX);
                let own = gr.members.get(&member).map(|m| m.assignment.clone()).unwrap_or_default();
                Ok((own, gr.protocol_type.clone(), gr.protocol.clone()))
            }
        }
    })
    .await
    .and_then(|r| r);
    match answer {
        Ok((assignment, protocol_type, protocol)) => {
            let r = SyncGroupResponse::default().with_assignment(assignment);
            if version >= 5 {
                r.with_protocol_type(protocol_type.as_deref().map(str_bytes))
                    .with_protocol_name(protocol.as_deref().map(str_bytes))
            } else {
                r
            }
        }
        Err(code) => SyncGroupResponse::default().with_error_code(code),
    }
}

/// What a SyncGroup found: the member's assignment (with the protocol type and name), or, for
/// the leader of a generation, that the assignment it brought must be stored first.
enum Synced {
    Assigned(Bytes, Option<String>, Option<String>),
    Store,
}

pub async fn heartbeat(ctx: &Rc<Shard>, req: HeartbeatRequest) -> HeartbeatResponse {
    let group = req.group_id.0.to_string();
    let g = group.clone();
    let code = on_group_owner(ctx, &group, move |there| async move {
        let mut groups = there.groups.borrow_mut();
        let member = req.member_id.to_string();
        match check_member(groups.membership.get_mut(&g), &member, req.generation_id) {
            Err(code) => code,
            Ok(gr) => {
                if let Some(m) = gr.members.get_mut(&member) {
                    m.last_seen = Instant::now();
                }
                if gr.state == State::PreparingRebalance {
                    ec::REBALANCE_IN_PROGRESS
                } else {
                    ec::NONE
                }
            }
        }
    })
    .await
    .unwrap_or_else(|code| code);
    HeartbeatResponse::default().with_error_code(code)
}

pub async fn leave_group(
    ctx: &Rc<Shard>,
    version: i16,
    req: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let group = req.group_id.0.to_string();
    let leaving: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| (m.member_id.to_string(), m.group_instance_id.as_ref().map(|s| s.to_string())))
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let g = group.clone();
    let results = on_group_owner(ctx, &group, move |there| async move {
        let delay = initial_delay(&there);
        let (results, store) = {
            let mut groups = there.groups.borrow_mut();
            let Some(gr) = groups.membership.get_mut(&g) else {
                return leaving
                    .into_iter()
                    .map(|(m, i)| (m, i, ec::UNKNOWN_MEMBER_ID))
                    .collect::<Vec<_>>();
            };
            let results = leaving
                .into_iter()
                .map(|(member, instance)| {
                    let id = match (&instance, member.is_empty()) {
                        (Some(inst), true) => gr.static_member(inst).unwrap_or_default(),
                        _ => member.clone(),
                    };
                    let code = if gr.remove(&id, Instant::now(), delay) {
                        ec::NONE
                    } else {
                        ec::UNKNOWN_MEMBER_ID
                    };
                    info!(group = %g, member = %id, code, "member left");
                    (member, instance, code)
                })
                .collect::<Vec<_>>();
            (results, std::mem::take(&mut gr.store_pending))
        };
        // A group the leave emptied is stored before the answer (acks=all); on failure the
        // ticker tries again.
        if store
            && store_group(&there, &g).await.is_err()
            && let Some(gr) = there.groups.borrow_mut().membership.get_mut(&g)
        {
            gr.store_pending = true;
        }
        results
    })
    .await;
    match results {
        Err(code) => LeaveGroupResponse::default().with_error_code(code),
        Ok(results) if version >= 3 => LeaveGroupResponse::default().with_members(
            results
                .into_iter()
                .map(|(m, i, code)| {
                    MemberResponse::default()
                        .with_member_id(str_bytes(&m))
                        .with_group_instance_id(i.as_deref().map(str_bytes))
                        .with_error_code(code)
                })
                .collect(),
        ),
        Ok(results) => {
            LeaveGroupResponse::default().with_error_code(results.first().map_or(ec::NONE, |r| r.2))
        }
    }
}

/// Runs on every shard until it stops: session timeouts and join deadlines of its groups.
pub async fn tick_groups(ctx: Rc<Shard>) {
    while !ctx.life.stopping.get() {
        compio::time::sleep(RECHECK).await;
        let delay = initial_delay(&ctx);
        let now = Instant::now();
        let mut to_store = Vec::new();
        for (name, g) in ctx.groups.borrow_mut().membership.iter_mut() {
            g.tick(now, delay);
            if std::mem::take(&mut g.store_pending) {
                to_store.push(name.clone());
            }
        }
        for group in to_store {
            // On failure the flag is set again: the next tick retries.
            if store_group(&ctx, &group).await.is_err()
                && let Some(g) = ctx.groups.borrow_mut().membership.get_mut(&group)
            {
                g.store_pending = true;
            }
        }
    }
}
