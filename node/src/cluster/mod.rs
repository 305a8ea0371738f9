//! The cluster room: the metadata every shard reads — which topics exist, their ids, configs
//! and partitions, and which shard owns each partition — behind [`MetadataStore`], the trait
//! the controller quorum implements next. Today's store is the node's own catalogue file,
//! [`Metadata`]; `topic_config` maps Kafka's topic config keys onto the log's settings.
//!
//! **Invariants.**
//! - Readers (every request on every shard) take an immutable snapshot
//!   ([`MetadataStore::snapshot`], one atomic load, no lock).
//! - Writers (the admin APIs) are serialized by an async mutex held for the whole operation,
//!   including the owner shards' work, and publish a new snapshot only after it is durable:
//!   `topics.json` in the data directory, replaced by write, fsync, rename, fsync of the
//!   directory, on the blocking pool (never on a shard thread). So a topic acknowledged to a
//!   client survives a crash, with the same id and the same partition-to-shard assignment.
//!
//! **What it does not know.** Kafka requests (the `api` room translates), partitions' data
//! (the `partition` room), or which shard runs a request.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use futures_util::future::LocalBoxFuture;
use odradek_net::error_code as ec;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::KafkaError;
use crate::runtime::blocking::{Blocking, ReplaceError, replace_file_now};

pub mod topic_config;

/// The catalogue file in the data directory.
pub const CATALOGUE_FILE: &str = "topics.json";
/// Longest topic name Kafka allows.
pub const TOPIC_NAME_MAX: usize = 249;
/// Bound on the topics one node holds (each costs a catalogue entry and open files).
pub const TOPICS_MAX: usize = 10_000;
/// Bound on all partitions of all topics (each is an open log with its own files).
pub const PARTITIONS_TOTAL_MAX: usize = 100_000;

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    pub name: String,
    pub id: Uuid,
    /// Owning shard of each partition, by partition index. A shard index at or above the
    /// running shard count wraps around (see [`Topic::owner`]).
    pub shards: Vec<u32>,
    /// The topic-level keys set for this topic (the rest take their defaults).
    pub configs: BTreeMap<String, String>,
}

impl Topic {
    pub fn partitions(&self) -> i32 {
        self.shards.len() as i32
    }

    /// The shard that owns `partition` on a node with `smp` shards, or `None` if the topic has
    /// no such partition.
    pub fn owner(&self, partition: i32, smp: usize) -> Option<usize> {
        let p = usize::try_from(partition).ok()?;
        self.shards.get(p).map(|&s| s as usize % smp.max(1))
    }
}

/// An immutable view of every topic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalogue {
    pub topics: BTreeMap<String, Arc<Topic>>,
    /// Topic id → name, for requests that name topics by id (Fetch v13+, DeleteTopics v6,
    /// Metadata by id): derived from `topics` when a catalogue is loaded or published.
    #[serde(skip)]
    ids: HashMap<Uuid, String>,
}

impl Catalogue {
    pub fn topic(&self, name: &str) -> Option<&Arc<Topic>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<&Arc<Topic>> {
        self.topics.get(self.ids.get(&id)?)
    }

    /// The topic named `name`, or `UNKNOWN_TOPIC_OR_PARTITION` (for the admin paths).
    pub fn existing(&self, name: &str) -> Result<&Arc<Topic>, KafkaError> {
        self.topic(name).ok_or_else(|| {
            KafkaError::new(ec::UNKNOWN_TOPIC_OR_PARTITION, format!("no topic `{name}`"))
        })
    }

    fn reindex(&mut self) {
        self.ids = self.topics.values().map(|t| (t.id, t.name.clone())).collect();
    }

    fn partition_count(&self) -> usize {
        self.topics.values().map(|t| t.shards.len()).sum()
    }
}

/// Why a topic name is not allowed (Kafka: `INVALID_TOPIC_EXCEPTION`).
pub fn check_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("topic name `{name}` is not allowed"));
    }
    if name.len() > TOPIC_NAME_MAX {
        return Err(format!("topic name is {} characters; at most {TOPIC_NAME_MAX}", name.len()));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c))) {
        return Err(format!(
            "topic name `{name}` has `{c}`; allowed are ASCII letters, digits, . _ -"
        ));
    }
    Ok(())
}

/// What the rest of the node may ask of the cluster's metadata, from any shard.
pub trait MetadataStore: std::fmt::Debug + Send + Sync {
    /// The catalogue as it is now: one atomic load, no lock.
    fn snapshot(&self) -> Arc<Catalogue>;
    /// Serializes admin operations (create, delete, alter), including their work on the owner
    /// shards. Never taken on the produce or fetch path.
    fn admin(&self) -> &async_lock::Mutex<()>;
    /// Makes `next` durable, then visible to every shard. Call with [`MetadataStore::admin`]
    /// held. Does not block the calling thread.
    fn publish(&self, next: Catalogue) -> LocalBoxFuture<'_, Result<(), MetadataError>>;
}

/// The catalogue of a single node, kept in `topics.json`.
#[derive(Debug)]
pub struct Metadata {
    path: PathBuf,
    pool: Blocking,
    current: ArcSwap<Catalogue>,
    /// Serializes admin operations (create, delete, alter), including their work on the owner
    /// shards. Never taken on the produce or fetch path.
    pub admin: async_lock::Mutex<()>,
}

/// Why the catalogue could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    #[error("topic catalogue {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("writing the topic catalogue: {0}")]
    Write(#[from] ReplaceError),
}

impl Metadata {
    /// Loads the catalogue of `data_dir` (an empty one if the node is new).
    pub fn open(data_dir: &Path, pool: Blocking) -> Result<Self, MetadataError> {
        let path = data_dir.join(CATALOGUE_FILE);
        let mut catalogue = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Catalogue>(&bytes).map_err(|e| {
                MetadataError::Invalid { path: path.clone(), reason: e.to_string() }
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Catalogue::default(),
            Err(source) => return Err(MetadataError::Io { op: "read", path, source }),
        };
        catalogue.reindex();
        Ok(Self {
            path,
            pool,
            current: ArcSwap::from_pointee(catalogue),
            admin: async_lock::Mutex::new(()),
        })
    }

    /// A new topic with `partitions` partitions spread over `smp` shards, or why not
    /// (`Err(KafkaError::new(kafka error code, message))`). Does not publish it.
    pub fn plan_topic(
        current: &Catalogue,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
        smp: usize,
    ) -> Result<Topic, KafkaError> {
        check_topic_name(name).map_err(|m| KafkaError::new(ec::INVALID_TOPIC_EXCEPTION, m))?;
        if current.topics.contains_key(name) {
            return Err(KafkaError::new(
                ec::TOPIC_ALREADY_EXISTS,
                format!("topic `{name}` already exists"),
            ));
        }
        if current.topics.len() >= TOPICS_MAX {
            return Err(KafkaError::new(
                ec::POLICY_VIOLATION,
                format!("this node holds at most {TOPICS_MAX} topics"),
            ));
        }
        let max = crate::config::PARTITIONS_MAX;
        if partitions < 1 || partitions > max {
            return Err(KafkaError::new(
                ec::INVALID_PARTITIONS,
                format!("partitions must be 1..={max}, not {partitions}"),
            ));
        }
        check_partitions_room(current, partitions as usize)?;
        Ok(Topic {
            name: name.to_owned(),
            id: Uuid::from_u128(rand::random::<u128>()),
            shards: spread(current.partition_count(), partitions as usize, smp),
            configs,
        })
    }
}

impl MetadataStore for Metadata {
    fn snapshot(&self) -> Arc<Catalogue> {
        self.current.load_full()
    }

    fn admin(&self) -> &async_lock::Mutex<()> {
        &self.admin
    }

    fn publish(&self, mut next: Catalogue) -> LocalBoxFuture<'_, Result<(), MetadataError>> {
        Box::pin(async move {
            next.reindex();
            let bytes = serde_json::to_vec_pretty(&next).map_err(|e| MetadataError::Invalid {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
            self.pool.replace_file(self.path.clone(), bytes).await?;
            self.current.store(Arc::new(next));
            Ok(())
        })
    }
}

/// `topic` grown to `count` partitions, the new ones continuing the round-robin over `smp`
/// shards, or why not (`Err(KafkaError::new(kafka error code, message))`): the same per-topic and node-wide
/// limits as [`Metadata::plan_topic`]. Does not publish it.
pub fn plan_growth(
    current: &Catalogue,
    topic: &Topic,
    count: i32,
    smp: usize,
) -> Result<Topic, KafkaError> {
    let have = topic.partitions();
    let max = crate::config::PARTITIONS_MAX;
    if count <= have {
        return Err(KafkaError::new(
            ec::INVALID_PARTITIONS,
            format!("topic has {have} partitions; the new count {count} must be larger"),
        ));
    }
    if count > max {
        return Err(KafkaError::new(
            ec::INVALID_PARTITIONS,
            format!("at most {max} partitions per topic"),
        ));
    }
    let added = (count - have) as usize;
    check_partitions_room(current, added)?;
    let mut shards = topic.shards.clone();
    shards.extend(spread(current.partition_count(), added, smp));
    Ok(Topic { shards, ..topic.clone() })
}

/// Whether `added` more partitions fit under [`PARTITIONS_TOTAL_MAX`] (`POLICY_VIOLATION`
/// otherwise, for CreateTopics and CreatePartitions alike).
fn check_partitions_room(current: &Catalogue, added: usize) -> Result<(), KafkaError> {
    if current.partition_count().saturating_add(added) > PARTITIONS_TOTAL_MAX {
        return Err(KafkaError::new(
            odradek_net::error_code::POLICY_VIOLATION,
            format!(
                "this node holds at most {PARTITIONS_TOTAL_MAX} partitions in all; {} exist, {added} more asked for",
                current.partition_count()
            ),
        ));
    }
    Ok(())
}

/// Kafka's data-directory identity file: `version=1`, `cluster.id`, `node.id`.
pub const META_PROPERTIES_FILE: &str = "meta.properties";

/// Why `meta.properties` could not be read, written or accepted.
#[derive(Debug, thiserror::Error)]
pub enum MetaPropertiesError {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("{path} belongs to node {found}, but this node is configured as node {configured}")]
    NodeIdMismatch { path: PathBuf, found: i32, configured: i32 },
    #[error("writing {0}")]
    Write(#[from] ReplaceError),
}

/// The cluster id of the node `node_id` whose data directory is `data_dir`: read from its
/// `meta.properties`, or generated (a random UUID as 22 characters of unpadded base64url, as
/// Kafka's `Uuid.toString`) and written durably (temp file, fsync, rename, fsync of the
/// directory) if the file does not exist yet, for a new or an upgraded data directory.
///
/// A file naming another node id, or without a cluster id, is refused and left as it is.
/// Blocking file I/O: call at start-up, before the shards start.
pub fn load_or_create_cluster_id(
    data_dir: &Path,
    node_id: i32,
) -> Result<String, MetaPropertiesError> {
    let path = data_dir.join(META_PROPERTIES_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_meta_properties(&path, &text, node_id),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let cluster_id = uuid_base64url(Uuid::from_u128(rand::random::<u128>()));
            let text = format!(
                "#Written by odradek\nversion=1\ncluster.id={cluster_id}\nnode.id={node_id}\n"
            );
            replace_file_now(&path, text.as_bytes())?;
            tracing::info!(cluster_id = %cluster_id, node_id, path = %path.display(), "new cluster id written");
            Ok(cluster_id)
        }
        Err(source) => Err(MetaPropertiesError::Io { op: "read", path, source }),
    }
}

/// The cluster id of a `meta.properties` text (Java properties: `key=value` lines, `#` and `!`
/// comments), checked against the configured `node_id`.
fn parse_meta_properties(
    path: &Path,
    text: &str,
    node_id: i32,
) -> Result<String, MetaPropertiesError> {
    let invalid = |reason: String| MetaPropertiesError::Invalid { path: path.to_owned(), reason };
    let mut keys: HashMap<&str, &str> = HashMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let (k, v) = line
            .split_once(['=', ':'])
            .ok_or_else(|| invalid(format!("line `{line}` is not key=value")))?;
        keys.insert(k.trim(), v.trim());
    }
    // version=1 (KRaft) names the node in node.id; version=0 (ZooKeeper) in broker.id.
    let id_key = match keys.get("version").copied() {
        Some("1") => "node.id",
        Some("0") => "broker.id",
        other => return Err(invalid(format!("version is {other:?}; expected 0 or 1"))),
    };
    let found: i32 = keys
        .get(id_key)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| invalid(format!("no numeric {id_key}")))?;
    if found != node_id {
        return Err(MetaPropertiesError::NodeIdMismatch {
            path: path.to_owned(),
            found,
            configured: node_id,
        });
    }
    match keys.get("cluster.id") {
        Some(id) if !id.is_empty() => Ok((*id).to_owned()),
        _ => Err(invalid("no cluster.id".to_owned())),
    }
}

/// A UUID as Kafka writes one: its 16 bytes in unpadded base64url (22 characters).
fn uuid_base64url(id: Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let mut n = [0u8; 3];
        n[..chunk.len()].copy_from_slice(chunk);
        let v = (u32::from(n[0]) << 16) | (u32::from(n[1]) << 8) | u32::from(n[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((v >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// Shards for `count` new partitions, continuing round-robin after the `existing` ones so that
/// many small topics still spread over every shard.
pub fn spread(existing: usize, count: usize, smp: usize) -> Vec<u32> {
    let smp = smp.max(1);
    (0..count).map(|i| ((existing + i) % smp) as u32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafka_rules() {
        assert!(check_topic_name("orders.v2_eu-1").is_ok());
        for bad in ["", ".", "..", "a b", "ü", "a/b"] {
            assert!(check_topic_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_topic_name(&"x".repeat(TOPIC_NAME_MAX + 1)).is_err());
    }

    #[test]
    fn growing_a_topic_obeys_the_node_wide_partition_limit() {
        let per_topic = crate::config::PARTITIONS_MAX as usize;
        let mut full = Catalogue::default();
        for i in 0..PARTITIONS_TOTAL_MAX / per_topic {
            let t = Topic {
                name: format!("t{i}"),
                id: Uuid::from_u128(i as u128 + 1),
                shards: vec![0; per_topic],
                configs: BTreeMap::new(),
            };
            full.topics.insert(t.name.clone(), Arc::new(t));
        }
        let small = Topic {
            name: "small".into(),
            id: Uuid::from_u128(u128::MAX),
            shards: vec![0],
            configs: BTreeMap::new(),
        };
        let grown = plan_growth(&full, &small, 2, 2);
        assert_eq!(grown.expect_err("over the limit").code, ec::POLICY_VIOLATION);
        let created = Metadata::plan_topic(&full, "new", 1, BTreeMap::new(), 2);
        assert_eq!(created.expect_err("over the limit").code, ec::POLICY_VIOLATION, "same code");

        let mut roomy = full.clone();
        roomy.topics.remove("t0");
        let grown = plan_growth(&roomy, &small, 3, 2).expect("room left");
        assert_eq!(grown.shards.len(), 3);
        assert_eq!((grown.name.as_str(), grown.id), ("small", small.id), "same topic");
        let same = plan_growth(&roomy, &small, 1, 2);
        assert_eq!(same.expect_err("not larger").code, ec::INVALID_PARTITIONS);
        let huge = plan_growth(&roomy, &small, crate::config::PARTITIONS_MAX + 1, 2);
        assert_eq!(huge.expect_err("per-topic limit").code, ec::INVALID_PARTITIONS);
    }

    #[test]
    fn uuids_print_as_kafka_prints_them() {
        // Kafka: Uuid.fromString("AAAAAAAAAAAAAAAAAAAAAQ") is 0:1.
        assert_eq!(uuid_base64url(Uuid::from_u128(1)), "AAAAAAAAAAAAAAAAAAAAAQ");
        assert_eq!(uuid_base64url(Uuid::from_u128(u128::MAX)), "_____________________w");
    }

    #[test]
    fn meta_properties_are_created_once_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = load_or_create_cluster_id(dir.path(), 0).expect("create");
        assert_eq!(id.len(), 22);
        assert_eq!(load_or_create_cluster_id(dir.path(), 0).expect("read"), id, "stable");
        let path = dir.path().join(META_PROPERTIES_FILE);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("version=1\n") && text.contains("node.id=0\n"), "{text}");
        let other = load_or_create_cluster_id(dir.path(), 3);
        assert!(matches!(other, Err(MetaPropertiesError::NodeIdMismatch { found: 0, .. })));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), text, "left as it was");
        let kafka = "#\n#Fri Dec 04 10:00:00 UTC 2026\nnode.id=0\nversion=1\ncluster.id=MkU3OEVBNTcwNTJENDM2Qg\n";
        std::fs::write(&path, kafka).expect("write");
        assert_eq!(
            load_or_create_cluster_id(dir.path(), 0).expect("kafka's"),
            "MkU3OEVBNTcwNTJENDM2Qg"
        );
        for bad in ["version=1\nnode.id=0\n", "version=2\nnode.id=0\ncluster.id=x\n", "junk\n"] {
            std::fs::write(&path, bad).expect("write");
            assert!(
                matches!(
                    load_or_create_cluster_id(dir.path(), 0),
                    Err(MetaPropertiesError::Invalid { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_catalogue_survives_reopen_and_partitions_spread() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = Blocking::start().expect("pool");
        let m = Metadata::open(dir.path(), pool.clone()).expect("open");
        let t = Metadata::plan_topic(&m.snapshot(), "a", 3, BTreeMap::new(), 2).expect("plan");
        assert_eq!(t.shards, vec![0, 1, 0]);
        let mut next = (*m.snapshot()).clone();
        next.topics.insert("a".into(), Arc::new(t.clone()));
        let runtime = compio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(m.publish(next)).expect("publish");
        let dup = Metadata::plan_topic(&m.snapshot(), "a", 1, BTreeMap::new(), 2);
        assert_eq!(dup.expect_err("exists").code, odradek_net::error_code::TOPIC_ALREADY_EXISTS);
        let b = Metadata::plan_topic(&m.snapshot(), "b", 1, BTreeMap::new(), 2).expect("plan");
        assert_eq!(b.shards, vec![1], "continues after the 3 existing partitions");
        let again = Metadata::open(dir.path(), pool.clone()).expect("reopen");
        assert_eq!(again.snapshot().topic("a").map(|t| (**t).clone()), Some(t.clone()));
        assert_eq!(again.snapshot().topic_by_id(t.id).map(|t| t.name.clone()), Some("a".into()));
        assert!(again.snapshot().topic_by_id(Uuid::nil()).is_none());
        assert_eq!(t.owner(2, 1), Some(0), "fewer shards after a restart wrap around");
        assert_eq!(t.owner(3, 2), None);
        std::fs::write(dir.path().join(CATALOGUE_FILE), b"{not json").expect("write");
        assert!(Metadata::open(dir.path(), pool).is_err());
    }
}
