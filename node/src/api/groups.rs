//! The group coordinator's APIs, wire ⇄ domain: FindCoordinator, JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups
//! and OffsetDelete. Each request is routed to the shard that coordinates its group (the owner
//! of the group's `__consumer_offsets` partition, created on first use), where the `group`
//! room decides and stores: commits and group metadata are fsynced before the reply, and a
//! group's partition is read back before its first request after a start.

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
use kafka_protocol::messages::offset_commit_request::OffsetCommitRequestPartition;
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
use odradek_net::ErrorCode;
use odradek_net::error_code as ec;
use tracing::{info, warn};

use super::{create_topic, str_bytes, topic_name};
use crate::cluster::{Broker, Route, Topic};
use crate::error::KafkaError;
use crate::group::GroupHost;
use crate::group::coordinator::{self, Admission, Assigned, Join, check_member, wait_for};
use crate::group::records::{
    Committed, METADATA_MAX_BYTES, OFFSETS_PARTITIONS, OFFSETS_SEGMENT_BYTES, OFFSETS_TOPIC,
    RecordError, check_str, partition_for,
};
use crate::group::state::{Group, State};
use crate::group::store::{
    Commit, delete_offsets, ensure_loaded, load_all_owned, now_ms, store_group, write_commits,
};
use crate::runtime::on_shard;
use crate::shard::Shard;

/// Kafka's coordinator key types.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// `__consumer_offsets`, created on first use as Kafka does (compacted, 50 partitions), with
/// `offsets.topic.replication.factor` replicas, or as many as there are live brokers if fewer
/// (Kafka refuses to create it then; a cluster still forming would have no groups at all).
pub async fn offsets_topic(ctx: &Rc<Shard>) -> Result<Arc<Topic>, KafkaError> {
    let snapshot = ctx.metadata.snapshot();
    if let Some(t) = snapshot.topic(OFFSETS_TOPIC) {
        return Ok(t.clone());
    }
    let live = i16::try_from(snapshot.brokers.len()).unwrap_or(i16::MAX).max(1);
    let rf = ctx.config.cluster.offsets_topic_replication_factor.min(live);
    let configs = BTreeMap::from([
        ("cleanup.policy".to_owned(), "compact".to_owned()),
        ("segment.bytes".to_owned(), OFFSETS_SEGMENT_BYTES.to_owned()),
    ]);
    match create_topic(ctx, OFFSETS_TOPIC, OFFSETS_PARTITIONS, rf, configs).await {
        Ok(t) => Ok(t),
        // Created meanwhile by another request.
        Err(_) if ctx.metadata.snapshot().topic(OFFSETS_TOPIC).is_some() => ctx
            .metadata
            .snapshot()
            .topic(OFFSETS_TOPIC)
            .cloned()
            .ok_or(KafkaError::new(ec::UNKNOWN_SERVER_ERROR, String::new())),
        Err(KafkaError { message, .. }) => {
            warn!(%message, "cannot create the offsets topic");
            Err(KafkaError::new(ec::COORDINATOR_NOT_AVAILABLE, message))
        }
    }
}

/// The offsets topic, the group's partition of it, and that partition's owner shard.
async fn group_home(ctx: &Rc<Shard>, group: &str) -> Result<(Arc<Topic>, i32, usize), KafkaError> {
    let topic = offsets_topic(ctx).await?;
    let partition = partition_for(group, topic.partitions());
    let owner = match topic.route(partition, ctx.config.node_id, ctx.config.smp) {
        Route::Local(owner) => owner,
        Route::Elsewhere { leader, .. } => {
            return Err(KafkaError::new(
                ec::NOT_COORDINATOR,
                format!("broker {leader} coordinates this group"),
            ));
        }
        Route::Missing => {
            return Err(KafkaError::new(
                ec::COORDINATOR_NOT_AVAILABLE,
                "offsets partition missing".to_owned(),
            ));
        }
    };
    Ok((topic, partition, owner))
}

/// Runs `work` on the shard coordinating `group`, with the offsets topic and the group's
/// partition of it, once that partition is loaded there. Every group request goes through
/// here (or [`on_group_owner`]), so none is answered from a half-known group after a start.
pub(crate) async fn on_group_partition<T, F, Fut>(
    ctx: &Rc<Shard>,
    group: &str,
    work: F,
) -> Result<T, ErrorCode>
where
    T: Send + 'static,
    F: FnOnce(Rc<Shard>, i32) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
{
    let (_, partition, owner) = group_home(ctx, group).await.map_err(|e| e.code)?;
    on_shard(ctx, owner, move |there| async move {
        ensure_loaded(&*there, partition).await.map_err(|e| e.code)?;
        Ok(work(there, partition).await)
    })
    .await
    .map_err(|_| ec::COORDINATOR_NOT_AVAILABLE)?
}

/// FindCoordinator: the leader of the group's `__consumer_offsets` partition, or of the
/// transactional id's `__transaction_state` partition (each topic created on first use, as
/// Kafka does). The API also matters without groups:
/// librdkafka turns lz4 on only for brokers that advertise it (`Feature LZ4: FindCoordinator
/// (0..0)`), else kcat and confluent-kafka silently send lz4 batches uncompressed.
pub async fn find_coordinator(
    ctx: &Rc<Shard>,
    version: i16,
    req: &FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    // Groups: the broker that leads the group's partition of the offsets topic. Transactions:
    // the leader of the id's partition of the transaction state topic.
    if req.key_type == KEY_TYPE_TRANSACTION {
        let keys: Vec<String> = if version >= 4 {
            req.coordinator_keys.iter().map(|k| k.to_string()).collect()
        } else {
            vec![req.key.to_string()]
        };
        let mut found = Vec::with_capacity(keys.len());
        for key in &keys {
            found.push(super::txn::coordinator_of(ctx, key).await);
        }
        return coordinators(version, &keys, found);
    }
    if req.key_type != KEY_TYPE_GROUP {
        let e = KafkaError::new(ec::INVALID_REQUEST, format!("unknown key type {}", req.key_type));
        let keys: Vec<String> = req.coordinator_keys.iter().map(|k| k.to_string()).collect();
        let keys = if version >= 4 { keys } else { vec![req.key.to_string()] };
        let found = keys.iter().map(|_| Err(e.clone())).collect();
        return coordinators(version, &keys, found);
    }
    let ready = offsets_topic(ctx).await;
    let answer = |key: &str| -> Result<Broker, KafkaError> {
        let topic = ready.as_ref().map_err(Clone::clone)?;
        let leader = topic.leader(partition_for(key, topic.partitions())).unwrap_or(-1);
        ctx.metadata.snapshot().brokers.get(&leader).cloned().ok_or_else(|| {
            KafkaError::new(
                ec::COORDINATOR_NOT_AVAILABLE,
                format!("the group's offsets partition has no live leader ({leader})"),
            )
        })
    };
    let keys: Vec<String> = if version >= 4 {
        req.coordinator_keys.iter().map(|k| k.to_string()).collect()
    } else {
        vec![req.key.to_string()]
    };
    let found = keys.iter().map(|k| answer(k)).collect();
    coordinators(version, &keys, found)
}

/// A FindCoordinator answer: one coordinator per key (v4+) or the one key's (v0–3).
fn coordinators(
    version: i16,
    keys: &[String],
    found: Vec<Result<Broker, KafkaError>>,
) -> FindCoordinatorResponse {
    if version >= 4 {
        let coordinators = keys
            .iter()
            .zip(found)
            .map(|(key, answer)| {
                let c = Coordinator::default().with_key(str_bytes(key));
                match answer {
                    Ok(b) => c
                        .with_node_id(BrokerId(b.id))
                        .with_host(str_bytes(&b.host))
                        .with_port(i32::from(b.port)),
                    Err(KafkaError { code, message }) => c
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(code.into())
                        .with_error_message(Some(str_bytes(&message))),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let resp = FindCoordinatorResponse::default();
    let answer = found.into_iter().next().unwrap_or_else(|| {
        Err(KafkaError::new(ec::INVALID_REQUEST, "no coordinator key".to_owned()))
    });
    match answer {
        Ok(b) => resp
            .with_node_id(BrokerId(b.id))
            .with_host(str_bytes(&b.host))
            .with_port(i32::from(b.port)),
        Err(KafkaError { code, message }) => {
            let resp = resp.with_error_code(code.into()).with_node_id(BrokerId(-1)).with_port(-1);
            // The error message exists from v1.
            if version >= 1 { resp.with_error_message(Some(str_bytes(&message))) } else { resp }
        }
    }
}

/// One partition's commit, checked on the connection's shard.
/// A request's partitions of one topic, each to commit or refused with an error code.
type Checked = (TopicName, Vec<(i32, Result<Commit, ErrorCode>)>);

pub async fn offset_commit(ctx: &Rc<Shard>, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let group = req.group_id.0.to_string();
    let checked = check_commits(ctx, &group, &req);
    let commits: Vec<Commit> =
        checked.iter().flat_map(|(_, ps)| ps.iter().filter_map(|(_, r)| r.clone().ok())).collect();
    let outcome = if commits.is_empty() {
        Ok(())
    } else {
        let g = group.clone();
        let member = req.member_id.to_string();
        let generation = req.generation_id_or_member_epoch;
        on_group_partition(ctx, &group, move |there, partition| async move {
            coordinator::check_committer(&*there, &g, &member, generation)?;
            write_commits(&*there, partition, &g, commits).await
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
                        .with_error_code(code.into())
                })
                .collect();
            OffsetCommitResponseTopic::default().with_name(name).with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// Each partition of an OffsetCommit: the commit to write, or its error code.
fn check_commits(ctx: &Shard, group: &str, req: &OffsetCommitRequest) -> Vec<Checked> {
    let snapshot = ctx.metadata.snapshot();
    let now = now_ms();
    let group_error = if group.is_empty() {
        Some(ec::INVALID_GROUP_ID)
    } else {
        // A group id its record cannot hold: refused before anything is written.
        check_str("group id", group).err().map(|e| e.error_code())
    };
    let check = |topic: Option<&Arc<Topic>>, p: &OffsetCommitRequestPartition| {
        let tp = match (group_error, topic) {
            (Some(code), _) => return Err(code),
            (None, Some(tp)) if p.partition_index >= 0 && p.partition_index < tp.partitions() => tp,
            _ => return Err(ec::UNKNOWN_TOPIC_OR_PARTITION),
        };
        let metadata = p.committed_metadata.as_ref().map(|m| m.to_string()).unwrap_or_default();
        if metadata.len() > METADATA_MAX_BYTES {
            return Err(ec::OFFSET_METADATA_TOO_LARGE);
        }
        let committed = Committed {
            offset: p.committed_offset,
            leader_epoch: p.committed_leader_epoch,
            metadata,
            commit_timestamp: now,
        };
        Ok((tp.name.clone(), p.partition_index, committed))
    };
    req.topics
        .iter()
        .map(|t| {
            let topic = snapshot.topic(&t.name.0);
            let parts = t.partitions.iter().map(|p| (p.partition_index, check(topic, p))).collect();
            (t.name.clone(), parts)
        })
        .collect()
}

/// What OffsetFetch asks of one group: its id and the partitions wanted (`None`: all).
type Wanted = (String, Option<Vec<(String, Vec<i32>)>>);

pub async fn offset_fetch(
    ctx: &Rc<Shard>,
    version: i16,
    req: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let mut answers = Vec::new();
    // KIP-447: a read_committed consumer asks for stable offsets only; a partition with a
    // transactional commit still undecided is answered UNSTABLE_OFFSET_COMMIT (retried).
    let stable = version >= 7 && req.require_stable;
    for (group, topics) in wanted_groups(version, &req) {
        answers.push((group.clone(), fetch_group(ctx, &group, topics, stable).await));
    }
    if version >= 8 {
        return OffsetFetchResponse::default().with_groups(
            answers.into_iter().map(|(group, result)| group_offsets(&group, result)).collect(),
        );
    }
    let (_, result) =
        answers.into_iter().next().unwrap_or((String::new(), Err(ec::INVALID_GROUP_ID)));
    match result {
        Err(code) if version >= 2 => OffsetFetchResponse::default().with_error_code(code.into()),
        // v1 has no top-level error: Kafka puts it on every partition asked for.
        Err(code) => OffsetFetchResponse::default()
            .with_topics(req.topics.iter().flatten().map(|t| failed_topic(t, code)).collect()),
        Ok(topics) => {
            // Kafka (v2–v7) also puts a partition's UNSTABLE_OFFSET_COMMIT at the top level.
            let unstable = topics.iter().flat_map(|(_, ps)| ps).any(|(_, _, e)| *e != ec::NONE);
            let resp = OffsetFetchResponse::default().with_topics(
                topics.into_iter().map(|(t, ps)| topic_offsets(version, &t, ps)).collect(),
            );
            if unstable && version >= 2 {
                resp.with_error_code(ec::UNSTABLE_OFFSET_COMMIT.into())
            } else {
                resp
            }
        }
    }
}

/// The groups an OffsetFetch asks for (v8+: several; before: one), each with the partitions
/// wanted (`None`: all).
fn wanted_groups(version: i16, req: &OffsetFetchRequest) -> Vec<Wanted> {
    if version >= 8 {
        return req
            .groups
            .iter()
            .map(|g| {
                let topics = g.topics.as_ref().map(|ts| {
                    ts.iter().map(|t| (t.name.0.to_string(), t.partition_indexes.clone())).collect()
                });
                (g.group_id.0.to_string(), topics)
            })
            .collect();
    }
    let topics = req
        .topics
        .as_ref()
        .map(|ts| ts.iter().map(|t| (t.name.0.to_string(), t.partition_indexes.clone())).collect());
    vec![(req.group_id.0.to_string(), topics)]
}

/// Each topic's partitions: committed offset, and the partition's error (UNSTABLE_OFFSET_COMMIT).
type TopicOffsets = Vec<(String, Vec<(i32, Committed, ErrorCode)>)>;
type GroupOffsets = Result<TopicOffsets, ErrorCode>;

/// One group's answer in OffsetFetch v8+.
fn group_offsets(group: &str, result: GroupOffsets) -> OffsetFetchResponseGroup {
    let g = OffsetFetchResponseGroup::default().with_group_id(GroupId(str_bytes(group)));
    let topics = match result {
        Err(code) => return g.with_error_code(code.into()),
        Ok(topics) => topics,
    };
    g.with_topics(
        topics
            .into_iter()
            .map(|(t, ps)| {
                let partitions = ps
                    .into_iter()
                    .map(|(p, c, e)| {
                        OffsetFetchResponsePartitions::default()
                            .with_partition_index(p)
                            .with_committed_offset(c.offset)
                            .with_committed_leader_epoch(c.leader_epoch)
                            .with_metadata(Some(str_bytes(&c.metadata)))
                            .with_error_code(e.into())
                    })
                    .collect();
                OffsetFetchResponseTopics::default()
                    .with_name(topic_name(&t))
                    .with_partitions(partitions)
            })
            .collect(),
    )
}

/// One topic's committed offsets in OffsetFetch v1–v7.
fn topic_offsets(
    version: i16,
    topic: &str,
    ps: Vec<(i32, Committed, ErrorCode)>,
) -> OffsetFetchResponseTopic {
    let partitions = ps
        .into_iter()
        .map(|(p, c, e)| {
            let r = OffsetFetchResponsePartition::default()
                .with_partition_index(p)
                .with_committed_offset(c.offset)
                .with_metadata(Some(str_bytes(&c.metadata)))
                .with_error_code(e.into());
            if version >= 5 { r.with_committed_leader_epoch(c.leader_epoch) } else { r }
        })
        .collect();
    OffsetFetchResponseTopic::default().with_name(topic_name(topic)).with_partitions(partitions)
}

/// A v1 answer's topic: the group's error on every partition asked for.
fn failed_topic(
    t: &kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic,
    code: ErrorCode,
) -> OffsetFetchResponseTopic {
    let partitions = t
        .partition_indexes
        .iter()
        .map(|&p| {
            OffsetFetchResponsePartition::default()
                .with_partition_index(p)
                .with_committed_offset(-1)
                .with_error_code(code.into())
        })
        .collect();
    OffsetFetchResponseTopic::default().with_name(t.name.clone()).with_partitions(partitions)
}

/// A group's committed offsets for the wanted partitions (all when `None`); partitions without
/// a commit get offset -1, as Kafka answers.
async fn fetch_group(
    ctx: &Rc<Shard>,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    stable: bool,
) -> GroupOffsets {
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
        let code = |t: &str, p: i32| {
            if stable && groups.unstable(&group, t, p) {
                ec::UNSTABLE_OFFSET_COMMIT
            } else {
                ec::NONE
            }
        };
        Ok(match topics {
            Some(ts) => ts
                .into_iter()
                .map(|(t, ps)| {
                    let found = ps
                        .into_iter()
                        .map(|p| {
                            let e = code(&t, p);
                            let c = match groups.offsets.get(&group, &t, p) {
                                Some(c) if e == ec::NONE => c.clone(),
                                _ => none.clone(),
                            };
                            (p, c, e)
                        })
                        .collect();
                    (t, found)
                })
                .collect(),
            None => {
                let mut by_topic: TopicOffsets = Vec::new();
                for (t, p, c) in groups.offsets.all(&group) {
                    let e = code(&t, p);
                    let c = if e == ec::NONE { c } else { none.clone() };
                    match by_topic.last_mut() {
                        Some((last, ps)) if *last == t => ps.push((p, c, e)),
                        _ => by_topic.push((t, vec![(p, c, e)])),
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
            load_all_owned(&*there).await.map_err(|e| e.code)?;
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
            Ok::<_, ErrorCode>(all.into_iter().collect::<Vec<_>>())
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
    ListGroupsResponse::default().with_error_code(error.into()).with_groups(listed)
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
async fn group_exists(ctx: &Rc<Shard>, group: &str) -> Result<bool, ErrorCode> {
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
                .with_error_code(ec::GROUP_ID_NOT_FOUND.into())
                .with_error_message(Some(str_bytes("no such group"))),
            Ok(false) => d.with_group_state(str_bytes(STATE_DEAD)),
            Err(code) => d.with_group_state(str_bytes("")).with_error_code(code.into()),
        };
        described.push(d);
    }
    DescribeGroupsResponse::default().with_groups(described)
}

/// Deletes `keys` of `group` (all its offsets when `None`) on the group's owner.
async fn delete_on_owner(
    ctx: &Rc<Shard>,
    group: &str,
    keys: Option<Vec<(String, i32)>>,
) -> Result<Vec<bool>, ErrorCode> {
    let group_name = group.to_owned();
    on_group_partition(ctx, group, move |there, partition| async move {
        let group = group_name;
        let keys = keys.unwrap_or_else(|| {
            there.groups.borrow().offsets.all(&group).into_iter().map(|(t, p, _)| (t, p)).collect()
        });
        delete_offsets(&*there, partition, &group, keys).await
    })
    .await
    .and_then(|r| r)
}

/// Deletes a group without members: its offsets and its stored metadata (one hop to the owner).
async fn delete_group(ctx: &Rc<Shard>, group: &str) -> Result<(), ErrorCode> {
    let g = group.to_owned();
    on_group_partition(ctx, group, move |there, partition| async move {
        coordinator::delete_group(&*there, partition, &g).await
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
        results.push(
            DeletableGroupResult::default().with_group_id(g.clone()).with_error_code(code.into()),
        );
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
        return OffsetDeleteResponse::default().with_error_code(code.into());
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
                        .with_error_code(code.into())
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}

// --- membership: JoinGroup, SyncGroup, Heartbeat, LeaveGroup ----------------------------------

/// Runs `work` on the shard coordinating `group`, once the group's partition of
/// `__consumer_offsets` is loaded there (so a restarted node knows its groups' members).
async fn on_group_owner<T, F, Fut>(ctx: &Rc<Shard>, group: &str, work: F) -> Result<T, ErrorCode>
where
    T: Send + 'static,
    F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
{
    on_group_partition(ctx, group, move |there, _| work(there)).await
}

/// JoinGroup; `client` is the member's client id and host (`/address`), from its session.
pub async fn join_group(
    ctx: &Rc<Shard>,
    version: i16,
    req: JoinGroupRequest,
    client: (String, String),
) -> JoinGroupResponse {
    let group = req.group_id.0.to_string();
    let fail = |code: ErrorCode| {
        JoinGroupResponse::default()
            .with_error_code(code.into())
            .with_generation_id(-1)
            .with_protocol_name(if version >= 7 { None } else { Some(str_bytes("")) })
    };
    if group.is_empty() {
        return fail(ec::INVALID_GROUP_ID);
    }
    // Kafka's `group.min.session.timeout.ms` and `group.max.session.timeout.ms`.
    let settings = ctx.group_settings();
    let (min, max) = (settings.session_timeout_min_ms, settings.session_timeout_max_ms);
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
    if let Err(e) = join_strings_fit(&req, &client.0) {
        warn!(group_bytes = group.len(), error = %e, "JoinGroup refused: a string cannot be stored");
        return fail(e.error_code());
    }
    let g = group.clone();
    let answer = on_group_owner(ctx, &group, move |there| async move {
        join_on_owner(&there, version, &g, req, client).await
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
    client: (String, String),
) -> JoinGroupResponse {
    let delay = ctx.group_settings().initial_rebalance_delay;
    let protocol_type = req.protocol_type.to_string();
    let rebalance_timeout = Duration::from_millis(
        u64::try_from(req.rebalance_timeout_ms.max(req.session_timeout_ms)).unwrap_or(0),
    );
    let join = Join {
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: client.0,
        client_host: client.1,
        protocol_type: protocol_type.clone(),
        protocols: req.protocols.iter().map(|p| (p.name.to_string(), p.metadata.clone())).collect(),
        session_timeout: Duration::from_millis(u64::try_from(req.session_timeout_ms).unwrap_or(0)),
        rebalance_timeout,
        member_id_required: version >= 4,
    };
    let base = JoinGroupResponse::default().with_generation_id(-1);
    let name_none = |r: JoinGroupResponse| {
        if version >= 7 { r } else { r.with_protocol_name(Some(str_bytes(""))) }
    };
    let protocol_type_field = (version >= 7).then(|| str_bytes(&protocol_type));
    let admission = {
        let mut groups = ctx.groups.borrow_mut();
        let g = groups.membership.entry(group.to_owned()).or_default();
        coordinator::admit(g, join, Instant::now(), delay)
    };
    let (member_id, before) = match admission {
        Admission::Joined { member_id, before } => (member_id, before),
        Admission::Refused { code, member_id } => {
            return name_none(
                base.with_error_code(code.into())
                    .with_member_id(str_bytes(&member_id.unwrap_or_default())),
            );
        }
        Admission::Rejoined { member_id, generation, protocol, leader } => {
            // acks=all: after a crash the member's new id must still be known.
            if let Err(code) = store_group(&**ctx, group).await {
                if let Some(g) = ctx.groups.borrow_mut().membership.get_mut(group) {
                    g.store_pending = true;
                }
                return name_none(base.with_error_code(code.into()));
            }
            info!(group, member = %member_id, "static member rejoined without a rebalance");
            return base
                .with_generation_id(generation)
                .with_protocol_type(protocol_type_field)
                .with_protocol_name(Some(str_bytes(&protocol)))
                .with_leader(str_bytes(&leader))
                .with_member_id(str_bytes(&member_id));
        }
    };
    let limit = rebalance_timeout + delay + Duration::from_secs(5);
    let formed = wait_for(&**ctx, group, limit, |g| formed(g, &member_id, before, version)).await;
    match formed {
        Some(Ok((generation, protocol, leader, members))) => JoinGroupResponse::default()
            .with_generation_id(generation)
            .with_protocol_type(protocol_type_field)
            .with_protocol_name(Some(str_bytes(&protocol)))
            .with_leader(str_bytes(&leader))
            .with_member_id(str_bytes(&member_id))
            .with_members(members),
        Some(Err(code)) => {
            name_none(base.with_error_code(code.into()).with_member_id(str_bytes(&member_id)))
        }
        None => name_none(
            base.with_error_code(ec::REBALANCE_IN_PROGRESS.into())
                .with_member_id(str_bytes(&member_id)),
        ),
    }
}

/// A generation after `before` that `me` is in, once formed: its number, protocol, leader,
/// and (for the leader) every member's metadata; or `me`'s error.
type Formed = Result<(i32, String, String, Vec<JoinGroupResponseMember>), ErrorCode>;

fn formed(g: Option<&mut Group>, me: &str, before: i32, version: i16) -> Option<Formed> {
    let g = g?;
    let Some(m) = g.members.get(me) else { return Some(Err(ec::UNKNOWN_MEMBER_ID)) };
    let formed = matches!(g.state, State::CompletingRebalance | State::Stable)
        && !m.awaiting_join
        && g.generation > before;
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
}

pub async fn sync_group(ctx: &Rc<Shard>, version: i16, req: SyncGroupRequest) -> SyncGroupResponse {
    let group = req.group_id.0.to_string();
    let g = group.clone();
    let answer = on_group_owner(ctx, &group, move |there| async move {
        let member = req.member_id.to_string();
        let assignments: Vec<(String, Bytes)> = req
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect();
        coordinator::sync(&*there, &g, &member, req.generation_id, assignments).await
    })
    .await
    .and_then(|r| r);
    match answer {
        Ok(Assigned { assignment, protocol_type, protocol }) => {
            let r = SyncGroupResponse::default().with_assignment(assignment);
            if version >= 5 {
                r.with_protocol_type(protocol_type.as_deref().map(str_bytes))
                    .with_protocol_name(protocol.as_deref().map(str_bytes))
            } else {
                r
            }
        }
        Err(code) => SyncGroupResponse::default().with_error_code(code.into()),
    }
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
    HeartbeatResponse::default().with_error_code(code.into())
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
        coordinator::leave(&*there, &g, leaving).await
    })
    .await;
    match results {
        Err(code) => LeaveGroupResponse::default().with_error_code(code.into()),
        Ok(results) if version >= 3 => LeaveGroupResponse::default().with_members(
            results
                .into_iter()
                .map(|(m, i, code)| {
                    MemberResponse::default()
                        .with_member_id(str_bytes(&m))
                        .with_group_instance_id(i.as_deref().map(str_bytes))
                        .with_error_code(code.into())
                })
                .collect(),
        ),
        Ok(results) => LeaveGroupResponse::default()
            .with_error_code(results.first().map_or(ec::NONE, |r| r.2).into()),
    }
}
