//! DescribeConfigs, IncrementalAlterConfigs and AlterConfigs for topics (and a read-only view of
//! the broker).

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse as WholeSetResourceResponse;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use odradek_controller::Command;
use odradek_net::ErrorCode;
use odradek_net::error_code as ec;
use tracing::info;

use super::str_bytes;
use crate::cluster::Topic;
use crate::cluster::topic_config::{self, Kind, TOPIC_CONFIGS};
use crate::config::NodeConfig;
use crate::error::KafkaError;
use crate::shard::Shard;

/// Kafka's `ConfigResource.Type`.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// Kafka's `ConfigSource`.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
/// Kafka's `ConfigType`.
const TYPE_BOOLEAN: i8 = 1;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_LIST: i8 = 7;
/// One config operation: (key, `AlterConfigOp.OpType`, value).
type ConfigOp = (String, i8, Option<String>);
/// Kafka's `AlterConfigOp.OpType`.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

fn entry(
    name: &str,
    value: &str,
    source: i8,
    read_only: bool,
    config_type: i8,
    doc: &str,
    with_doc: bool,
) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(name))
        .with_value(Some(str_bytes(value)))
        .with_read_only(read_only)
        .with_config_source(source)
        .with_config_type(config_type)
        .with_documentation(with_doc.then(|| str_bytes(doc)))
}

fn topic_entries(
    topic: &Topic,
    keys: Option<&[String]>,
    with_doc: bool,
) -> Vec<DescribeConfigsResourceResult> {
    TOPIC_CONFIGS
        .iter()
        .filter(|d| keys.is_none_or(|k| k.iter().any(|k| k == d.name)))
        .map(|d| {
            let set = topic.configs.get(d.name);
            let kind = match d.kind {
                Kind::Long { .. } => TYPE_LONG,
                Kind::Choice(_) => TYPE_STRING,
                Kind::List(_) => TYPE_LIST,
            };
            let source = if set.is_some() { SOURCE_TOPIC } else { SOURCE_DEFAULT };
            entry(
                d.name,
                set.map_or(d.default, String::as_str),
                source,
                false,
                kind,
                d.doc,
                with_doc,
            )
        })
        .collect()
}

/// Broker-level names of the topic config defaults (Kafka's synonyms), with Kafka's type.
const TOPIC_DEFAULT_SYNONYMS: &[(&str, &str, i8)] = &[
    ("log.cleanup.policy", "cleanup.policy", TYPE_LIST),
    ("compression.type", "compression.type", TYPE_STRING),
    ("log.cleaner.delete.retention.ms", "delete.retention.ms", TYPE_LONG),
    ("log.flush.interval.messages", "flush.messages", TYPE_LONG),
    ("log.index.interval.bytes", "index.interval.bytes", TYPE_INT),
    ("message.max.bytes", "max.message.bytes", TYPE_INT),
    ("log.message.timestamp.type", "message.timestamp.type", TYPE_STRING),
    ("min.insync.replicas", "min.insync.replicas", TYPE_INT),
    ("log.retention.bytes", "retention.bytes", TYPE_LONG),
    ("log.retention.ms", "retention.ms", TYPE_LONG),
    ("log.segment.bytes", "segment.bytes", TYPE_INT),
    ("log.roll.ms", "segment.ms", TYPE_LONG),
];

/// `max.connections.per.ip.overrides` as Kafka writes it: `HOST:COUNT` pairs, sorted.
fn overrides_text(overrides: &std::collections::HashMap<std::net::IpAddr, u32>) -> String {
    let mut pairs: Vec<_> = overrides.iter().collect();
    pairs.sort();
    let text: Vec<String> = pairs
        .into_iter()
        .map(|(ip, n)| match ip {
            std::net::IpAddr::V4(a) => format!("{a}:{n}"),
            std::net::IpAddr::V6(a) => format!("[{a}]:{n}"),
        })
        .collect();
    text.join(",")
}

/// The node's settings under Kafka's broker config names: (name, value, type, doc).
fn broker_rows(c: &NodeConfig) -> Vec<(&'static str, String, i8, &'static str)> {
    let (host, port) = &c.advertise;
    let mut rows = vec![
        ("broker.id", c.node_id.to_string(), TYPE_INT, "this node's id"),
        ("node.id", c.node_id.to_string(), TYPE_INT, "this node's id"),
        ("log.dirs", c.data_dir.display().to_string(), TYPE_STRING, "where partition logs live"),
        ("listeners", format!("PLAINTEXT://{}", c.listen), TYPE_LIST, "address clients connect to"),
        (
            "advertised.listeners",
            format!("PLAINTEXT://{host}:{port}"),
            TYPE_LIST,
            "address given to clients in Metadata",
        ),
        ("num.partitions", c.default_partitions.to_string(), TYPE_INT, "partitions of a new topic"),
        (
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
            TYPE_BOOLEAN,
            "create topics on first use",
        ),
        ("default.replication.factor", "1".to_owned(), TYPE_INT, "a single node keeps one replica"),
        (
            "socket.request.max.bytes",
            c.request_max_bytes.to_string(),
            TYPE_INT,
            "largest request accepted",
        ),
        (
            "connections.max.idle.ms",
            c.connections_max_idle_ms.to_string(),
            TYPE_LONG,
            "idle connections are closed after this",
        ),
        (
            "max.connections.per.ip",
            c.connections_per_ip
                .default
                .unwrap_or(crate::config::MAX_CONNECTIONS_PER_IP_DEFAULT)
                .to_string(),
            TYPE_INT,
            "connections one client address may hold",
        ),
        (
            "max.connections.per.ip.overrides",
            overrides_text(&c.connections_per_ip.overrides),
            TYPE_STRING,
            "per-address connection limits",
        ),
        (
            "queued.max.request.bytes",
            c.queued_max_request_bytes.to_string(),
            TYPE_INT,
            "request bytes held at once while reading and handling requests",
        ),
        (
            "group.initial.rebalance.delay.ms",
            c.group_initial_rebalance_delay_ms.to_string(),
            TYPE_INT,
            "how long a new group waits for more members",
        ),
        (
            "offsets.retention.minutes",
            (c.offsets_retention_ms / 60_000).to_string(),
            TYPE_INT,
            "how long committed offsets of an empty group are kept",
        ),
        (
            "offsets.retention.check.interval.ms",
            c.offsets_retention_check_interval_ms.to_string(),
            TYPE_LONG,
            "how often expired offsets are looked for",
        ),
        (
            "auto.leader.rebalance.enable",
            c.cluster.auto_leader_rebalance_enable.to_string(),
            TYPE_BOOLEAN,
            "the active controller moves leadership back to preferred replicas",
        ),
        (
            "leader.imbalance.check.interval.seconds",
            c.cluster.leader_imbalance_check_interval_seconds.to_string(),
            TYPE_LONG,
            "how often the active controller looks for partitions to give back",
        ),
    ];
    rows.extend(TOPIC_DEFAULT_SYNONYMS.iter().filter_map(|&(name, topic_key, t)| {
        topic_config::def(topic_key).map(|d| (name, d.default.to_owned(), t, d.doc))
    }));
    if let Some(rack) = &c.rack {
        rows.push(("broker.rack", rack.clone(), TYPE_STRING, "the rack this node is in"));
    }
    rows
}

/// The broker settings, all read-only (set at start-up): STATIC_BROKER_CONFIG when a flag, the
/// environment or the config file gave them, else DEFAULT_CONFIG.
fn broker_entries(
    ctx: &Shard,
    keys: Option<&[String]>,
    with_doc: bool,
) -> Vec<DescribeConfigsResourceResult> {
    let c = &ctx.config;
    broker_rows(c)
        .iter()
        .filter(|(n, ..)| keys.is_none_or(|k| k.iter().any(|k| k == n)))
        .map(|(n, v, t, d)| {
            let source = if c.given.contains(n) { SOURCE_STATIC_BROKER } else { SOURCE_DEFAULT };
            entry(n, v, source, true, *t, d, with_doc)
        })
        .collect()
}

pub fn describe_configs(
    ctx: &Rc<Shard>,
    version: i16,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let snapshot = ctx.metadata.snapshot();
    let with_doc = version >= 3 && req.include_documentation;
    let results = req
        .resources
        .iter()
        .map(|r| {
            let name = r.resource_name.to_string();
            let keys: Option<Vec<String>> =
                r.configuration_keys.as_ref().map(|k| k.iter().map(|s| s.to_string()).collect());
            // Null on success, as Kafka sends (kafka-protocol's default is an empty string).
            let result = DescribeConfigsResult::default()
                .with_error_message(None)
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let fail = |code: ErrorCode, msg: String| {
                result
                    .clone()
                    .with_error_code(code.into())
                    .with_error_message(Some(str_bytes(&msg)))
            };
            match r.resource_type {
                RESOURCE_TOPIC => match snapshot.topic(&name) {
                    Some(t) => {
                        result.clone().with_configs(topic_entries(t, keys.as_deref(), with_doc))
                    }
                    None => fail(ec::UNKNOWN_TOPIC_OR_PARTITION, format!("no topic `{name}`")),
                },
                RESOURCE_BROKER if name.is_empty() || name == ctx.config.node_id.to_string() => {
                    result.clone().with_configs(broker_entries(ctx, keys.as_deref(), with_doc))
                }
                RESOURCE_BROKER => fail(ec::INVALID_REQUEST, format!("no broker `{name}`")),
                other => {
                    fail(ec::INVALID_REQUEST, format!("resource type {other} is not supported"))
                }
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// Applies one resource's operations to `current`, or says why not (`INVALID_CONFIG`).
fn apply_ops(
    current: &BTreeMap<String, String>,
    ops: &[(String, i8, Option<String>)],
) -> Result<BTreeMap<String, String>, String> {
    let mut next = current.clone();
    for (name, op, value) in ops {
        let def = topic_config::def(name)
            .ok_or_else(|| format!("unknown or unsupported topic config `{name}`"))?;
        let list = matches!(def.kind, Kind::List(_));
        let now = topic_config::value(&next, name).unwrap_or(def.default).to_owned();
        let items = |s: &str| -> Vec<String> {
            s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
        };
        match (*op, value) {
            (OP_DELETE, _) => {
                next.remove(name);
            }
            (OP_SET, Some(v)) => {
                topic_config::validate(name, v)?;
                next.insert(name.clone(), v.clone());
            }
            (OP_APPEND, Some(v)) if list => {
                let mut all = items(&now);
                for i in items(v) {
                    if !all.contains(&i) {
                        all.push(i);
                    }
                }
                let joined = all.join(",");
                topic_config::validate(name, &joined)?;
                next.insert(name.clone(), joined);
            }
            (OP_SUBTRACT, Some(v)) if list => {
                let drop = items(v);
                let joined = items(&now)
                    .into_iter()
                    .filter(|i| !drop.contains(i))
                    .collect::<Vec<_>>()
                    .join(",");
                topic_config::validate(name, &joined)?;
                next.insert(name.clone(), joined);
            }
            (OP_APPEND | OP_SUBTRACT, Some(_)) => return Err(format!("{name} is not a list")),
            (OP_SET | OP_APPEND | OP_SUBTRACT, None) => {
                return Err(format!("{name} needs a value"));
            }
            (other, _) => return Err(format!("unknown config operation {other}")),
        }
    }
    Ok(next)
}

pub async fn incremental_alter_configs(
    ctx: &Rc<Shard>,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in &req.resources {
        let name = r.resource_name.to_string();
        let ops: Vec<ConfigOp> = r
            .configs
            .iter()
            .map(|c| {
                (c.name.to_string(), c.config_operation, c.value.as_ref().map(|v| v.to_string()))
            })
            .collect();
        let outcome = alter_resource(ctx, r.resource_type, &name, Ok(ops), req.validate_only);
        let resp = AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        responses.push(match outcome.await {
            Ok(()) => resp.with_error_message(None),
            Err(e) => {
                resp.with_error_code(e.code.into()).with_error_message(Some(str_bytes(&e.message)))
            }
        });
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// Alters one resource (both AlterConfigs forms): a topic takes `ops`; broker settings are
/// set at start-up and read-only here. A refusal is logged.
async fn alter_resource(
    ctx: &Rc<Shard>,
    resource_type: i8,
    name: &str,
    ops: Result<Vec<ConfigOp>, KafkaError>,
    validate_only: bool,
) -> Result<(), KafkaError> {
    let outcome = match resource_type {
        RESOURCE_TOPIC => match ops {
            Ok(ops) => alter_topic(ctx, name, &ops, validate_only).await,
            Err(e) => Err(e),
        },
        RESOURCE_BROKER => Err(KafkaError::new(
            ec::INVALID_REQUEST,
            "broker settings are set at start-up (flags or config file)",
        )),
        other => Err(KafkaError::new(
            ec::INVALID_REQUEST,
            format!("resource type {other} is not supported"),
        )),
    };
    if let Err(e) = &outcome {
        info!(resource = %name, code = %e.code, msg = %e.message, "configs not altered");
    }
    outcome
}

/// AlterConfigs (API 33), the older whole-set form: for a topic, the configs given replace its
/// set ones and keys not given return to their defaults, with IncrementalAlterConfigs'
/// validation and `validate_only`. Broker settings are read-only here.
pub async fn alter_configs(ctx: &Rc<Shard>, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in &req.resources {
        let name = r.resource_name.to_string();
        let given: Vec<(String, Option<String>)> = r
            .configs
            .iter()
            .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
            .collect();
        let ops = whole_set_ops(&given);
        let outcome = alter_resource(ctx, r.resource_type, &name, ops, req.validate_only);
        let resp = WholeSetResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        responses.push(match outcome.await {
            Ok(()) => resp.with_error_message(None),
            Err(e) => {
                resp.with_error_code(e.code.into()).with_error_message(Some(str_bytes(&e.message)))
            }
        });
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// The operations that turn any topic's configs into exactly `given`: delete every key, then set
/// the given ones (so the result does not depend on the configs read before the admin lock). A
/// null value is `INVALID_REQUEST`, as Kafka answers.
fn whole_set_ops(given: &[(String, Option<String>)]) -> Result<Vec<ConfigOp>, KafkaError> {
    let nulls: Vec<&str> =
        given.iter().filter(|(_, v)| v.is_none()).map(|(n, _)| n.as_str()).collect();
    if !nulls.is_empty() {
        return Err(KafkaError::new(
            ec::INVALID_REQUEST,
            format!("null value not supported for {}", nulls.join(",")),
        ));
    }
    let deletes = TOPIC_CONFIGS.iter().map(|d| (d.name.to_owned(), OP_DELETE, None));
    let sets = given.iter().map(|(n, v)| (n.clone(), OP_SET, v.clone()));
    Ok(deletes.chain(sets).collect())
}

async fn alter_topic(
    ctx: &Rc<Shard>,
    name: &str,
    ops: &[(String, i8, Option<String>)],
    validate_only: bool,
) -> Result<(), KafkaError> {
    let topic = super::admin::existing_topic(ctx, name).await?;
    let configs =
        apply_ops(&topic.configs, ops).map_err(|m| KafkaError::new(ec::INVALID_CONFIG, m))?;
    if validate_only || configs == topic.configs {
        return Ok(());
    }
    // Only what changed travels, so that alterations of other keys from other brokers meet
    // in the controller's order without undoing each other.
    let set: BTreeMap<String, String> = configs
        .iter()
        .filter(|(k, v)| topic.configs.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let delete: Vec<String> =
        topic.configs.keys().filter(|k| !configs.contains_key(*k)).cloned().collect();
    let id = topic.id;
    let command = Command::AlterTopicConfigs { name: name.to_owned(), set, delete };
    super::admin::propose_and_wait(ctx, command, |c, _| {
        c.topic_by_id(id).is_none_or(|t| t.configs == configs)
    })
    .await?;
    // Each broker's partitions take the new settings as the change reaches it.
    info!(topic = name, configs = ?configs, "topic configs altered");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_follow_kafka() {
        let none = BTreeMap::new();
        let set = |n: &str, v: &str| (n.to_owned(), OP_SET, Some(v.to_owned()));
        let next = apply_ops(&none, &[set("retention.ms", "1000")]).expect("set");
        assert_eq!(next.get("retention.ms").map(String::as_str), Some("1000"));
        let next = apply_ops(&next, &[("retention.ms".into(), OP_DELETE, None)]).expect("delete");
        assert!(next.is_empty());
        let both =
            apply_ops(&none, &[("cleanup.policy".into(), OP_APPEND, Some("compact".into()))])
                .expect("append");
        assert_eq!(both.get("cleanup.policy").map(String::as_str), Some("delete,compact"));
        let compact =
            apply_ops(&both, &[("cleanup.policy".into(), OP_SUBTRACT, Some("delete".into()))])
                .expect("subtract");
        assert_eq!(compact.get("cleanup.policy").map(String::as_str), Some("compact"));
        assert!(apply_ops(&none, &[set("retention.ms", "x")]).is_err());
        assert!(apply_ops(&none, &[("retention.ms".into(), OP_APPEND, Some("1".into()))]).is_err());
        assert!(apply_ops(&none, &[set("no.such.key", "1")]).is_err());
        assert!(
            apply_ops(&compact, &[("cleanup.policy".into(), OP_SUBTRACT, Some("compact".into()))])
                .is_err(),
            "an empty policy list is refused"
        );
    }

    #[test]
    fn a_whole_set_replaces_every_set_key() {
        let mut current = BTreeMap::new();
        current.insert("retention.ms".to_owned(), "1000".to_owned());
        current.insert("cleanup.policy".to_owned(), "compact".to_owned());
        let given = [("segment.bytes".to_owned(), Some("1048576".to_owned()))];
        let next = apply_ops(&current, &whole_set_ops(&given).expect("ops")).expect("apply");
        assert_eq!(
            next.into_iter().collect::<Vec<_>>(),
            [("segment.bytes".into(), "1048576".into())]
        );
        let none = apply_ops(&current, &whole_set_ops(&[]).expect("ops")).expect("apply");
        assert!(none.is_empty(), "an empty set returns every key to its default");
        let null = whole_set_ops(&[("retention.ms".to_owned(), None)]);
        assert_eq!(null.expect_err("null").code, ec::INVALID_REQUEST);
        let bad = whole_set_ops(&[("retention.ms".to_owned(), Some("x".to_owned()))]).expect("ops");
        assert!(apply_ops(&current, &bad).is_err(), "validated as IncrementalAlterConfigs is");
    }
}
