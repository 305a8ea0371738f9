//! CreateTopics, DeleteTopics and CreatePartitions: checked here with Kafka's error codes,
//! then proposed to the controller quorum (forwarded to the active controller from any
//! broker), which serializes every change; answered once this broker's metadata shows it.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, UnregisterBrokerRequest, UnregisterBrokerResponse,
};
use odradek_net::error_code as ec;
use tracing::info;
use uuid::Uuid;

use odradek_controller::{Command, CommandResult};

use super::str_bytes;
use crate::cluster::{self, Catalogue, NOT_HERE, Placement, Topic, topic_config};
use crate::error::KafkaError;
use crate::shard::Shard;

/// Replicas of a topic created without a replication factor (Kafka's
/// `default.replication.factor`).
pub const DEFAULT_REPLICATION_FACTOR: i16 = 1;

/// Kafka's `ConfigSource` for a value set on the topic, and for a default.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;

/// How long an admin request waits for its committed change to reach this broker's own
/// metadata (so the client's next request here sees it). Normally milliseconds.
pub(super) const VISIBLE_WAIT: Duration = Duration::from_secs(10);

/// Proposes `command` and waits until this broker's snapshot satisfies `visible`.
pub(super) async fn propose_and_wait(
    ctx: &Shard,
    command: Command,
    visible: impl Fn(&Catalogue, &CommandResult) -> bool,
) -> Result<CommandResult, KafkaError> {
    let result = ctx.metadata.propose(command).await?;
    if !cluster::wait_for(&*ctx.metadata, VISIBLE_WAIT, |c| visible(c, &result)).await {
        return Err(KafkaError::new(
            ec::REQUEST_TIMED_OUT,
            "committed by the controller quorum but not yet visible on this broker",
        ));
    }
    Ok(result)
}

/// The topic named `name` as the cluster has it: from this broker's snapshot, or, if the
/// snapshot does not have it, after a read barrier (this broker's metadata has caught up with
/// everything the quorum committed so far), so that a topic created through another broker
/// a moment ago is not answered as unknown. `UNKNOWN_TOPIC_OR_PARTITION` if it still is not.
pub(super) async fn existing_topic(ctx: &Shard, name: &str) -> Result<Arc<Topic>, KafkaError> {
    if let Some(t) = ctx.metadata.snapshot().topic(name) {
        return Ok(t.clone());
    }
    if let Ok(CommandResult::Barrier { index }) = ctx.metadata.propose(Command::Barrier).await {
        cluster::wait_for(&*ctx.metadata, VISIBLE_WAIT, |c| c.applied_index >= index).await;
    }
    ctx.metadata.snapshot().existing(name).cloned()
}

/// Creates a topic (already validated configs) through the controller quorum; its partitions
/// are opened by the brokers that hold them as the change reaches them.
/// `Err(KafkaError::new(kafka error code, message))`.
pub async fn create_topic(
    ctx: &Rc<Shard>,
    name: &str,
    partitions: i32,
    replication_factor: i16,
    configs: BTreeMap<String, String>,
) -> Result<Arc<Topic>, KafkaError> {
    ctx.metadata.snapshot().check_new_topic(name, partitions)?;
    let command = Command::CreateTopic {
        name: name.to_owned(),
        topic_id: Uuid::nil(),
        partitions,
        replication_factor,
        configs,
    };
    let created = propose_and_wait(ctx, command, |c, r| match r {
        CommandResult::TopicCreated { topic_id, .. } => c.topic_by_id(*topic_id).is_some(),
        _ => true,
    })
    .await;
    let created = match created {
        // Created through another broker or request: callers that accept an existing topic
        // (auto-creation, the offsets topic) find it once it is visible here.
        Err(e) if e.code == ec::TOPIC_ALREADY_EXISTS => {
            cluster::wait_for(&*ctx.metadata, VISIBLE_WAIT, |c| c.topic(name).is_some()).await;
            return Err(e);
        }
        other => other?,
    };
    let CommandResult::TopicCreated { topic_id, .. } = created else {
        return Err(KafkaError::new(ec::UNKNOWN_SERVER_ERROR, format!("odd reply {created:?}")));
    };
    let snapshot = ctx.metadata.snapshot();
    let topic = snapshot.topic_by_id(topic_id).cloned().ok_or_else(|| {
        KafkaError::new(ec::UNKNOWN_TOPIC_OR_PARTITION, "deleted right after its creation")
    })?;
    info!(topic = name, id = %topic.id, partitions, replication_factor, "topic created");
    Ok(topic)
}

fn check_configs(
    configs: impl IntoIterator<Item = (String, Option<String>)>,
) -> Result<BTreeMap<String, String>, KafkaError> {
    let mut out = BTreeMap::new();
    for (name, value) in configs {
        let Some(value) = value else {
            return Err(KafkaError::new(
                ec::INVALID_CONFIG,
                format!("config `{name}` has no value"),
            ));
        };
        topic_config::validate(&name, &value)
            .map_err(|m| KafkaError::new(ec::INVALID_CONFIG, m))?;
        out.insert(name, value);
    }
    Ok(out)
}

/// A topic to create as (partitions, replication factor, configs), or why not. Explicit
/// assignments give the partition count and replication factor; the controller places the
/// replicas (rack-aware) itself.
fn check_creatable(
    snapshot: &Catalogue,
    t: &CreatableTopic,
    partitions: i32,
) -> Result<(i32, i16, BTreeMap<String, String>), KafkaError> {
    let mut rf =
        if t.replication_factor == -1 { DEFAULT_REPLICATION_FACTOR } else { t.replication_factor };
    let brokers = t.assignments.iter().flat_map(|a| a.broker_ids.iter().map(|b| b.0));
    if let Some(b) = brokers.into_iter().find(|b| !snapshot.brokers.contains_key(b)) {
        return Err(KafkaError::new(
            ec::INVALID_REPLICA_ASSIGNMENT,
            format!("assignment names broker {b}, which is not a live broker"),
        ));
    }
    let partitions = match t.assignments.first() {
        None => partitions,
        Some(a) => {
            rf = i16::try_from(a.broker_ids.len()).unwrap_or(i16::MAX);
            i32::try_from(t.assignments.len()).unwrap_or(i32::MAX)
        }
    };
    if rf < 1 || rf as usize > snapshot.brokers.len() {
        return Err(KafkaError::new(
            ec::INVALID_REPLICATION_FACTOR,
            format!("replication factor {rf}: {} live broker(s)", snapshot.brokers.len()),
        ));
    }
    let configs = check_configs(
        t.configs.iter().map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string()))),
    )?;
    Ok((partitions, rf, configs))
}

/// The topic's full configuration as CreateTopics v5+ returns it.
fn described_configs(overrides: &BTreeMap<String, String>) -> Vec<CreatableTopicConfigs> {
    topic_config::TOPIC_CONFIGS
        .iter()
        .map(|d| {
            let set = overrides.get(d.name);
            CreatableTopicConfigs::default()
                .with_name(str_bytes(d.name))
                .with_value(Some(str_bytes(set.map_or(d.default, String::as_str))))
                .with_config_source(if set.is_some() { SOURCE_TOPIC } else { SOURCE_DEFAULT })
        })
        .collect()
}

pub async fn create_topics(
    ctx: &Rc<Shard>,
    version: i16,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let partitions =
            if t.num_partitions == -1 { ctx.config.default_partitions } else { t.num_partitions };
        let snapshot = ctx.metadata.snapshot();
        let checked = check_creatable(&snapshot, &t, partitions);
        let outcome = match checked {
            Err(e) => Err(e),
            Ok((partitions, rf, configs)) if req.validate_only => {
                snapshot.check_new_topic(&name, partitions).map(|()| {
                    let placement = vec![Placement::default(); partitions as usize];
                    (
                        Arc::new(Topic {
                            name: name.clone(),
                            id: Uuid::nil(),
                            shards: vec![NOT_HERE; partitions as usize],
                            configs,
                            placement,
                        }),
                        rf,
                    )
                })
            }
            Ok((partitions, rf, configs)) => {
                create_topic(ctx, &name, partitions, rf, configs).await.map(|t| (t, rf))
            }
        };
        // kafka-protocol defaults `error_message` to an empty string; Kafka sends null on
        // success, and some clients read any message as a failure.
        let mut result =
            CreatableTopicResult::default().with_name(t.name.clone()).with_error_message(None);
        // Fields a version does not have must stay at their defaults (the encoder refuses
        // them otherwise): num_partitions, replication_factor and configs from v5, the topic
        // id from v7.
        match outcome {
            Ok((topic, rf)) => {
                if version >= 5 {
                    result = result
                        .with_num_partitions(topic.partitions())
                        .with_replication_factor(rf)
                        .with_configs(Some(described_configs(&topic.configs)));
                }
                if version >= 7 && !req.validate_only {
                    result = result.with_topic_id(topic.id);
                }
            }
            Err(KafkaError { code, message }) => {
                info!(topic = %name, %code, %message, "topic not created");
                result = result
                    .with_error_code(code.into())
                    .with_error_message(Some(str_bytes(&message)));
            }
        }
        results.push(result);
    }
    CreateTopicsResponse::default().with_topics(results)
}

/// Deletes one topic through the controller quorum; every broker that holds its partitions
/// closes and removes them as the change reaches it.
async fn delete_topic(
    ctx: &Rc<Shard>,
    name: Option<&str>,
    id: Uuid,
) -> Result<Arc<Topic>, KafkaError> {
    let topic = match name {
        Some(n) => existing_topic(ctx, n).await?,
        None => ctx
            .metadata
            .snapshot()
            .topic_by_id(id)
            .cloned()
            .ok_or_else(|| KafkaError::new(ec::UNKNOWN_TOPIC_ID, "no such topic"))?,
    };
    let gone = topic.id;
    propose_and_wait(ctx, Command::DeleteTopic { name: topic.name.clone() }, |c, _| {
        c.topic_by_id(gone).is_none()
    })
    .await?;
    info!(topic = %topic.name, id = %topic.id, "topic deleted");
    Ok(topic)
}

pub async fn delete_topics(
    ctx: &Rc<Shard>,
    version: i16,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    // v0–v5 name topics in `topic_names`, v6 in `topics` by name or id.
    let wanted: Vec<(Option<String>, Uuid)> = if version >= 6 {
        req.topics.iter().map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id)).collect()
    } else {
        req.topic_names.iter().map(|n| (Some(n.0.to_string()), Uuid::nil())).collect()
    };
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        // The topic id exists from v6, the error message from v5.
        let result = DeletableTopicResult::default();
        let result = match delete_topic(ctx, name.as_deref(), id).await {
            Ok(t) => result
                .with_name(Some(super::topic_name(&t.name)))
                .with_topic_id(if version >= 6 { t.id } else { Uuid::nil() }),
            Err(KafkaError { code, message }) => {
                info!(topic = ?name, %id, %code, %message, "topic not deleted");
                let r = result
                    .with_name(name.as_deref().map(super::topic_name))
                    .with_topic_id(if version >= 6 { id } else { Uuid::nil() })
                    .with_error_code(code.into());
                if version >= 5 { r.with_error_message(Some(str_bytes(&message))) } else { r }
            }
        };
        responses.push(result);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

/// Grows a topic to `count` partitions through the controller quorum.
async fn grow_topic(
    ctx: &Rc<Shard>,
    name: &str,
    count: i32,
    validate_only: bool,
) -> Result<(), KafkaError> {
    let topic = existing_topic(ctx, name).await?;
    let snapshot = ctx.metadata.snapshot();
    let have = topic.partitions();
    snapshot.check_growth(&topic, count)?;
    if validate_only {
        return Ok(());
    }
    let id = topic.id;
    propose_and_wait(
        ctx,
        Command::CreatePartitions { name: name.to_owned(), total: count },
        |c, _| c.topic_by_id(id).is_none_or(|t| t.partitions() >= count),
    )
    .await?;
    info!(topic = name, from = have, to = count, "partitions added");
    Ok(())
}

pub async fn create_partitions(
    ctx: &Rc<Shard>,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    let brokers = ctx.metadata.snapshot().brokers.clone();
    for t in &req.topics {
        let foreign = t
            .assignments
            .iter()
            .flatten()
            .any(|a| a.broker_ids.iter().any(|b| !brokers.contains_key(&b.0)));
        let outcome = if foreign {
            Err(KafkaError::new(
                ec::INVALID_REPLICA_ASSIGNMENT,
                "assignment names an unknown broker".to_owned(),
            ))
        } else {
            grow_topic(ctx, &t.name.0, t.count, req.validate_only).await
        };
        let r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        results.push(match outcome {
            Ok(()) => r,
            Err(KafkaError { code, message: msg }) => {
                info!(topic = %t.name.0, %code, %msg, "partitions not added");
                r.with_error_code(code.into()).with_error_message(Some(str_bytes(&msg)))
            }
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}

/// UnregisterBroker (`kafka-cluster unregister --id N`): removes a fenced broker's
/// registration, so that a replacement with a new data directory can register under its id
/// (the lost-disk procedure). A live (unfenced) broker is refused: stop it first and wait for
/// its session timeout.
pub async fn unregister_broker(
    ctx: &Shard,
    req: &UnregisterBrokerRequest,
) -> UnregisterBrokerResponse {
    let broker_id = req.broker_id.0;
    let outcome = ctx.metadata.propose(Command::UnregisterBroker { broker_id }).await;
    let resp = UnregisterBrokerResponse::default();
    match outcome {
        Ok(_) => {
            info!(broker_id, "broker unregistered");
            resp.with_error_message(None)
        }
        Err(KafkaError { code, message }) => {
            info!(broker_id, %code, %message, "broker not unregistered");
            resp.with_error_code(code.into()).with_error_message(Some(str_bytes(&message)))
        }
    }
}
