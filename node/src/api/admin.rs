//! CreateTopics and DeleteTopics. Admin operations hold the catalogue's admin lock for their
//! whole duration, including the owner shards' work, so they never interleave.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse,
};
use odradek_net::error_code as ec;
use tracing::{info, warn};
use uuid::Uuid;

use super::{on_owners, str_bytes};
use crate::cluster::topic_config;
use crate::cluster::{Catalogue, Metadata, Topic};
use crate::error::KafkaError;
use crate::shard::Shard;

/// Kafka's `ConfigSource` for a value set on the topic, and for a default.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;

/// Publishes the catalogue `snapshot` changed by `change` (call with the admin lock held).
pub(super) async fn publish_change(
    ctx: &Shard,
    snapshot: &Catalogue,
    change: impl FnOnce(&mut Catalogue),
) -> Result<(), KafkaError> {
    let mut next = snapshot.clone();
    change(&mut next);
    ctx.metadata.publish(next).await.map_err(|e| {
        warn!(error = %e, "cannot persist the topic catalogue");
        KafkaError::new(ec::KAFKA_STORAGE_ERROR, format!("cannot persist the topic catalogue: {e}"))
    })
}

/// One partition of a topic as work for [`on_owners`]: owner, then (partition, (topic,
/// partition)).
type PartitionWork = (usize, (i32, (Arc<Topic>, i32)));

/// Work for [`on_owners`], one item per partition of `partitions`.
fn partition_work(
    topic: &Arc<Topic>,
    partitions: std::ops::Range<i32>,
    smp: usize,
) -> Vec<PartitionWork> {
    partitions.filter_map(|p| topic.owner(p, smp).map(|o| (o, (p, (topic.clone(), p))))).collect()
}

/// Opens (creates) `partitions` of a new or grown topic on their owners, so that a disk
/// problem shows up in the admin response's log rather than on the first produce; a failure
/// is logged and retried on first use.
async fn open_new(ctx: &Rc<Shard>, topic: &Arc<Topic>, partitions: std::ops::Range<i32>) {
    let opened = on_owners(
        ctx,
        partition_work(topic, partitions, ctx.config.smp),
        |there, (topic, p)| async move {
            there.partitions.get(&topic, p).await.err().map(|e| e.to_string())
        },
    );
    for (p, error) in opened.await {
        if let Some(error) = error {
            warn!(topic = %topic.name, partition = p, %error, "cannot open a new partition");
        }
    }
}

/// Creates a topic (already validated configs) and opens its partitions on their owners.
/// `Err(KafkaError::new(kafka error code, message))`.
pub async fn create_topic(
    ctx: &Rc<Shard>,
    name: &str,
    partitions: i32,
    configs: BTreeMap<String, String>,
) -> Result<Arc<Topic>, KafkaError> {
    let _admin = ctx.metadata.admin().lock().await;
    let snapshot = ctx.metadata.snapshot();
    let topic =
        Arc::new(Metadata::plan_topic(&snapshot, name, partitions, configs, ctx.config.smp)?);
    publish_change(ctx, &snapshot, |next| {
        next.topics.insert(name.to_owned(), topic.clone());
    })
    .await?;
    info!(topic = name, id = %topic.id, partitions, "topic created");
    open_new(ctx, &topic, 0..partitions).await;
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
        let checked = (|| {
            if t.replication_factor != -1 && t.replication_factor != 1 {
                return Err(KafkaError::new(
                    ec::INVALID_REPLICATION_FACTOR,
                    format!(
                        "replication factor {} is more than the 1 broker available",
                        t.replication_factor
                    ),
                ));
            }
            let node = ctx.config.node_id;
            if t.assignments.iter().any(|a| a.broker_ids.iter().any(|b| b.0 != node)) {
                return Err(KafkaError::new(
                    ec::INVALID_REPLICATION_FACTOR,
                    "assignment names an unknown broker",
                ));
            }
            let partitions =
                if t.assignments.is_empty() { partitions } else { t.assignments.len() as i32 };
            let configs = check_configs(
                t.configs
                    .iter()
                    .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string()))),
            )?;
            Ok((partitions, configs))
        })();
        let outcome = match checked {
            Err(e) => Err(e),
            Ok((partitions, configs)) if req.validate_only => {
                let snapshot = ctx.metadata.snapshot();
                Metadata::plan_topic(&snapshot, &name, partitions, configs, ctx.config.smp)
                    .map(Arc::new)
            }
            Ok((partitions, configs)) => create_topic(ctx, &name, partitions, configs).await,
        };
        // kafka-protocol defaults `error_message` to an empty string; Kafka sends null on
        // success, and some clients read any message as a failure.
        let mut result =
            CreatableTopicResult::default().with_name(t.name.clone()).with_error_message(None);
        // Fields a version does not have must stay at their defaults (the encoder refuses
        // them otherwise): num_partitions, replication_factor and configs from v5, the topic
        // id from v7.
        match outcome {
            Ok(topic) => {
                if version >= 5 {
                    result = result
                        .with_num_partitions(topic.partitions())
                        .with_replication_factor(1)
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

/// Deletes one topic: drops it from the catalogue (durably), then has each owner close and
/// remove its partitions.
async fn delete_topic(
    ctx: &Rc<Shard>,
    name: Option<&str>,
    id: Uuid,
) -> Result<Arc<Topic>, KafkaError> {
    let _admin = ctx.metadata.admin().lock().await;
    let snapshot = ctx.metadata.snapshot();
    let topic = match name {
        Some(n) => snapshot.topic(n),
        None => snapshot.topic_by_id(id),
    };
    let Some(topic) = topic.cloned() else {
        let code =
            if name.is_some() { ec::UNKNOWN_TOPIC_OR_PARTITION } else { ec::UNKNOWN_TOPIC_ID };
        return Err(KafkaError::new(code, "no such topic"));
    };
    publish_change(ctx, &snapshot, |next| {
        next.topics.remove(&topic.name);
    })
    .await?;
    let removed = on_owners(
        ctx,
        partition_work(&topic, 0..topic.partitions(), ctx.config.smp),
        |there, (topic, p)| async move { there.partitions.delete(&topic, p).await },
    );
    for (p, result) in removed.await {
        if let Err(e) = result {
            warn!(topic = %topic.name, partition = p, error = %e, "cannot remove a deleted partition's files");
        }
    }
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

/// Grows a topic to `count` partitions; the new ones continue the round-robin over shards.
async fn grow_topic(
    ctx: &Rc<Shard>,
    name: &str,
    count: i32,
    validate_only: bool,
) -> Result<(), KafkaError> {
    let _admin = ctx.metadata.admin().lock().await;
    let snapshot = ctx.metadata.snapshot();
    let topic = snapshot.existing(name)?;
    let have = topic.partitions();
    let grown = Arc::new(crate::cluster::plan_growth(&snapshot, topic, count, ctx.config.smp)?);
    if validate_only {
        return Ok(());
    }
    publish_change(ctx, &snapshot, |next| {
        next.topics.insert(name.to_owned(), grown.clone());
    })
    .await?;
    info!(topic = name, from = have, to = count, "partitions added");
    open_new(ctx, &grown, have..count).await;
    Ok(())
}

pub async fn create_partitions(
    ctx: &Rc<Shard>,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    let node = ctx.config.node_id;
    for t in &req.topics {
        let foreign =
            t.assignments.iter().flatten().any(|a| a.broker_ids.iter().any(|b| b.0 != node));
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
