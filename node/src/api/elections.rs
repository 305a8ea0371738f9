//! ElectLeaders (API 43), AlterPartitionReassignments (API 45) and ListPartitionReassignments
//! (API 46): `kafka-leader-election.sh` and `kafka-reassign-partitions.sh`. Each partition is
//! its own proposal to the controller quorum (`Command::ElectLeader`, `Command::Reassign`),
//! answered with the controller's refusal as Kafka's code, or once this broker's catalogue
//! shows the change; partitions of one request do not wait for each other's failures. The
//! rules (who may lead, when a reassignment completes) are the controller's
//! (`controller/src/image.rs`); what happens to the data (a new replica fetching from the
//! leader, a removed one deleting its copy) is the partition room's, as it follows the
//! catalogue.

use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ElectLeadersRequest, ElectLeadersResponse, ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse,
};
use odradek_controller::{Command, CommandResult, ElectionKind};
use odradek_net::error_code as ec;
use tracing::info;

use super::admin::{VISIBLE_WAIT, existing_topic, propose_and_wait};
use super::{str_bytes, topic_name};
use crate::cluster::{self, Placement, Topic};
use crate::error::KafkaError;
use crate::shard::Shard;

/// Proposals one request keeps in flight at a time (each waits for its commit and for this
/// broker's catalogue): bounds what one ElectLeaders of every partition asks of the quorum.
const IN_FLIGHT_MAX: usize = 16;

/// Kafka's `ElectionType`: 0 preferred, 1 unclean.
fn election_kind(election_type: i8) -> Option<ElectionKind> {
    match election_type {
        0 => Some(ElectionKind::Preferred),
        1 => Some(ElectionKind::Unclean),
        _ => None,
    }
}

/// Whether `p` shows the outcome of a `kind` election.
fn elected(p: &Placement, kind: ElectionKind) -> bool {
    match kind {
        ElectionKind::Preferred => p.replicas.first() == Some(&p.leader),
        ElectionKind::Unclean => p.leader != -1,
    }
}

/// UNKNOWN_TOPIC_OR_PARTITION unless `topic` has `partition`.
fn require_partition(topic: &Topic, partition: i32) -> Result<(), KafkaError> {
    if topic.placement_of(partition).is_none() {
        return Err(KafkaError::new(
            ec::UNKNOWN_TOPIC_OR_PARTITION,
            format!("topic `{}` has no partition {partition}", topic.name),
        ));
    }
    Ok(())
}

/// Elects a leader for one partition of `topic`, answered once this broker's catalogue shows
/// it (or the topic is gone).
async fn elect_one(
    ctx: &Shard,
    topic: &Topic,
    partition: i32,
    kind: ElectionKind,
) -> Result<(), KafkaError> {
    require_partition(topic, partition)?;
    let id = topic.id;
    let command = Command::ElectLeader { topic: topic.name.clone(), partition, kind };
    propose_and_wait(ctx, command, |c, _| {
        c.topic_by_id(id).and_then(|t| t.placement_of(partition)).is_none_or(|p| elected(p, kind))
    })
    .await?;
    info!(topic = %topic.name, partition, ?kind, "leader elected");
    Ok(())
}

/// A topic asked for: its name, the topic or why not, and its partitions.
type Wanted = (String, Result<Arc<Topic>, KafkaError>, Vec<i32>);

pub async fn elect_leaders(
    ctx: &Shard,
    version: i16,
    req: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let kind = election_kind(if version >= 1 { req.election_type } else { 0 });
    let all = req.topic_partitions.is_none();
    let mut wanted: Vec<Wanted> = Vec::new();
    match req.topic_partitions {
        Some(topics) => {
            for t in topics {
                let name = t.topic.0.to_string();
                let topic = existing_topic(ctx, &name).await;
                wanted.push((name, topic, t.partitions));
            }
        }
        None => {
            // Every partition that may need it: the others are not proposed (their answer,
            // ELECTION_NOT_NEEDED, is left out of a response for every partition, as Kafka's
            // controller does).
            let snapshot = ctx.metadata.snapshot();
            for t in snapshot.topics.values() {
                let partitions: Vec<i32> = (0..t.partitions())
                    .filter(|&p| {
                        kind.is_some_and(|k| t.placement_of(p).is_some_and(|pl| !elected(pl, k)))
                    })
                    .collect();
                if !partitions.is_empty() {
                    wanted.push((t.name.clone(), Ok(t.clone()), partitions));
                }
            }
        }
    }
    let jobs: Vec<(usize, i32)> = wanted
        .iter()
        .enumerate()
        .flat_map(|(i, (_, _, partitions))| partitions.iter().map(move |&p| (i, p)))
        .collect();
    let outcomes: Vec<Result<(), KafkaError>> = stream::iter(jobs.iter().copied())
        .map(|(i, partition)| {
            let topic = &wanted[i].1;
            async move {
                let Some(kind) = kind else {
                    return Err(KafkaError::new(ec::INVALID_REQUEST, "unknown election type"));
                };
                match topic {
                    Ok(t) => elect_one(ctx, t, partition, kind).await,
                    Err(e) => Err(e.clone()),
                }
            }
        })
        .buffered(IN_FLIGHT_MAX)
        .collect()
        .await;
    let mut results: Vec<ReplicaElectionResult> = wanted
        .iter()
        .map(|(name, _, _)| ReplicaElectionResult::default().with_topic(topic_name(name)))
        .collect();
    for ((i, partition), outcome) in jobs.into_iter().zip(outcomes) {
        let r = PartitionResult::default().with_partition_id(partition);
        let r = match outcome {
            Ok(()) => r.with_error_message(None),
            Err(e) if all && e.code == ec::ELECTION_NOT_NEEDED => continue,
            Err(KafkaError { code, message }) => {
                info!(topic = %wanted[i].0, partition, %code, %message, "leader not elected");
                r.with_error_code(code.into()).with_error_message(Some(str_bytes(&message)))
            }
        };
        results[i].partition_result.push(r);
    }
    results.retain(|r| !r.partition_result.is_empty() || !all);
    let resp = ElectLeadersResponse::default().with_replica_election_results(results);
    if version >= 1 && kind.is_none() {
        resp.with_error_code(ec::INVALID_REQUEST.into())
    } else {
        resp
    }
}

/// Starts (`Some(target)`) or cancels (`None`) the reassignment of one partition, answered
/// once this broker's catalogue shows it begun (or finished) or cancelled.
async fn reassign_one(
    ctx: &Shard,
    topic: &Topic,
    partition: i32,
    target: Option<Vec<i32>>,
) -> Result<(), KafkaError> {
    require_partition(topic, partition)?;
    let id = topic.id;
    let command =
        Command::Reassign { topic: topic.name.clone(), partition, target: target.clone() };
    propose_and_wait(ctx, command, |c, _| {
        c.topic_by_id(id).and_then(|t| t.placement_of(partition)).is_none_or(|p| match &target {
            // Under way: the target replicas followed by those being removed; done: the target.
            Some(t) => p.replicas.starts_with(t),
            None => p.adding.is_empty() && p.removing.is_empty(),
        })
    })
    .await?;
    info!(topic = %topic.name, partition, ?target, "reassignment changed");
    Ok(())
}

pub async fn alter_partition_reassignments(
    ctx: &Shard,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let mut responses = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let topic = existing_topic(ctx, &name).await;
        let outcomes: Vec<Result<(), KafkaError>> = stream::iter(t.partitions.iter())
            .map(|p| {
                let target = p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect());
                let topic = &topic;
                async move {
                    match topic {
                        Ok(topic) => reassign_one(ctx, topic, p.partition_index, target).await,
                        Err(e) => Err(e.clone()),
                    }
                }
            })
            .buffered(IN_FLIGHT_MAX)
            .collect()
            .await;
        let partitions = t
            .partitions
            .iter()
            .zip(outcomes)
            .map(|(p, outcome)| {
                let r = ReassignablePartitionResponse::default()
                    .with_partition_index(p.partition_index);
                match outcome {
                    Ok(()) => r.with_error_message(None),
                    Err(KafkaError { code, message }) => {
                        info!(topic = %name, partition = p.partition_index, %code, %message,
                            "reassignment refused");
                        r.with_error_code(code.into()).with_error_message(Some(str_bytes(&message)))
                    }
                }
            })
            .collect();
        responses.push(
            ReassignableTopicResponse::default().with_name(t.name).with_partitions(partitions),
        );
    }
    AlterPartitionReassignmentsResponse::default()
        .with_error_message(None)
        .with_responses(responses)
}

fn ids(replicas: &[i32]) -> Vec<BrokerId> {
    replicas.iter().copied().map(BrokerId).collect()
}

/// The reassignments under way, from this broker's catalogue once it has caught up with the
/// quorum (a read barrier, so that a move begun through another broker a moment ago is
/// listed, as Kafka's controller would): of every topic (`topics` null), or of the partitions
/// named (those not under way, or unknown, are left out). Without a quorum, from the
/// catalogue as it is.
pub async fn list_partition_reassignments(
    ctx: &Shard,
    req: &ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    if let Ok(CommandResult::Barrier { index }) = ctx.metadata.propose(Command::Barrier).await {
        cluster::wait_for(&*ctx.metadata, VISIBLE_WAIT, |c| c.applied_index >= index).await;
    }
    let snapshot = ctx.metadata.snapshot();
    let ongoing = |topic: &Topic, partition: i32| {
        let p = topic.placement_of(partition)?;
        if p.adding.is_empty() && p.removing.is_empty() {
            return None;
        }
        Some(
            OngoingPartitionReassignment::default()
                .with_partition_index(partition)
                .with_replicas(ids(&p.replicas))
                .with_adding_replicas(ids(&p.adding))
                .with_removing_replicas(ids(&p.removing)),
        )
    };
    let wanted: Vec<(Arc<Topic>, Vec<i32>)> = match &req.topics {
        None => {
            snapshot.topics.values().map(|t| (t.clone(), (0..t.partitions()).collect())).collect()
        }
        Some(topics) => topics
            .iter()
            .filter_map(|t| {
                let topic = snapshot.topic(&t.name.0)?;
                Some((topic.clone(), t.partition_indexes.clone()))
            })
            .collect(),
    };
    let topics = wanted
        .into_iter()
        .filter_map(|(topic, partitions)| {
            let partitions: Vec<_> =
                partitions.into_iter().filter_map(|p| ongoing(&topic, p)).collect();
            (!partitions.is_empty()).then(|| {
                OngoingTopicReassignment::default()
                    .with_name(topic_name(&topic.name))
                    .with_partitions(partitions)
            })
        })
        .collect();
    ListPartitionReassignmentsResponse::default().with_error_message(None).with_topics(topics)
}
