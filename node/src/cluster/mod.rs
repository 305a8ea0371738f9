//! The cluster room: the metadata every shard reads — the brokers, which topics exist, their
//! ids, configs and partitions, each partition's replicas and leader, and which local shard
//! owns each partition this node holds — behind [`MetadataStore`]. The store is the controller
//! quorum ([`quorum::QuorumStore`], KRaft's role, on `odradek-controller`): every node follows
//! the metadata log and serves from its own copy; changes are proposed to the active
//! controller. `broker` keeps this node registered and heartbeating; `identity` is the data
//! directory's `meta.properties`; `legacy` reads a single node's `topics.json` once, to upgrade
//! it into the quorum; `topic_config` maps Kafka's topic config keys onto the log's settings.
//!
//! **Invariants.**
//! - Readers (every request on every shard) take an immutable snapshot
//!   ([`MetadataStore::snapshot`], one atomic load, no lock); snapshots only move forward, in
//!   the metadata log's order.
//! - A change is acknowledged to a client only after the quorum committed it and this node's
//!   snapshot shows it, so the client's next request to this node sees it.
//! - Only the image decides: which partitions a node holds (it is among the replicas) and
//!   leads; a node never creates a partition directory for a partition it does not hold.
//!
//! **What it does not know.** Kafka requests (the `api` room translates), partitions' data
//! (the `partition` room), or which shard runs a request.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use odradek_controller::{Command, CommandResult, QuorumStatus};
use odradek_net::error_code as ec;
use uuid::Uuid;

use crate::error::KafkaError;

pub mod broker;
pub mod identity;
pub mod legacy;
pub mod quorum;
pub mod rebalance;
pub mod topic_config;

pub use identity::{DirIdentity, MetaPropertiesError};

/// Longest topic name Kafka allows.
pub const TOPIC_NAME_MAX: usize = 249;
/// Bound on the topics one cluster holds (each costs a catalogue entry and open files).
pub const TOPICS_MAX: usize = 10_000;
/// Bound on all partitions of all topics (each is an open log with its own files).
pub const PARTITIONS_TOTAL_MAX: usize = 100_000;
/// The shard index of a partition this node does not hold (not among its replicas).
pub const NOT_HERE: u32 = u32::MAX;

/// One partition's replicas and leadership, as the controller decided them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Eligible leader replicas (KIP-966).
    pub elr: Vec<i32>,
    /// -1 while no eligible replica is live.
    pub leader: i32,
    pub leader_epoch: i32,
    /// Bumped on every change of the record (AlterPartition's optimistic check).
    pub partition_epoch: i32,
    /// A reassignment under way: replicas being added and removed.
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    pub name: String,
    pub id: Uuid,
    /// Owning shard of each partition on this node, by partition index ([`NOT_HERE`] for a
    /// partition this node does not hold). A shard index at or above the running shard count
    /// wraps around (see [`Topic::owner`]).
    pub shards: Vec<u32>,
    /// The topic-level keys set for this topic (the rest take their defaults).
    pub configs: BTreeMap<String, String>,
    /// Replicas and leader of each partition, by partition index.
    pub placement: Vec<Placement>,
}

impl Topic {
    pub fn partitions(&self) -> i32 {
        self.shards.len() as i32
    }

    /// The shard that owns `partition` on a node with `smp` shards, or `None` if the topic has
    /// no such partition or this node does not hold it.
    pub fn owner(&self, partition: i32, smp: usize) -> Option<usize> {
        let p = usize::try_from(partition).ok()?;
        self.shards.get(p).filter(|s| **s != NOT_HERE).map(|&s| s as usize % smp.max(1))
    }

    /// The leader of `partition` (-1 if none is live, `None` if there is no such partition).
    pub fn leader(&self, partition: i32) -> Option<i32> {
        self.placement_of(partition).map(|pl| pl.leader)
    }

    /// The leader epoch of `partition` (-1 if there is no such partition).
    pub fn leader_epoch(&self, partition: i32) -> i32 {
        self.placement_of(partition).map_or(-1, |pl| pl.leader_epoch)
    }

    pub fn placement_of(&self, partition: i32) -> Option<&Placement> {
        self.placement.get(usize::try_from(partition).ok()?)
    }

    /// Where requests for `partition` go from node `me` with `smp` shards.
    pub fn route(&self, partition: i32, me: i32, smp: usize) -> Route {
        match (self.leader(partition), self.owner(partition, smp)) {
            (None, _) => Route::Missing,
            (Some(l), Some(shard)) if l == me => Route::Local(shard),
            (Some(l), _) => Route::Elsewhere { leader: l, epoch: self.leader_epoch(partition) },
        }
    }
}

impl Route {
    /// The owning shard, or the error code to answer: NOT_LEADER_OR_FOLLOWER for a partition
    /// another broker leads (or none does), UNKNOWN_TOPIC_OR_PARTITION for none at all.
    pub fn local(self) -> Result<usize, odradek_net::ErrorCode> {
        match self {
            Route::Local(shard) => Ok(shard),
            Route::Elsewhere { .. } => Err(ec::NOT_LEADER_OR_FOLLOWER),
            Route::Missing => Err(ec::UNKNOWN_TOPIC_OR_PARTITION),
        }
    }
}

/// Where a partition's produce and fetch requests are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// This node leads it; the shard that owns it.
    Local(usize),
    /// Another broker leads it (or none, `leader == -1`), at leader epoch `epoch`:
    /// NOT_LEADER_OR_FOLLOWER.
    Elsewhere { leader: i32, epoch: i32 },
    /// No such partition: UNKNOWN_TOPIC_OR_PARTITION.
    Missing,
}

/// A live (unfenced) broker, as clients are told of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub id: i32,
    /// The inter-broker listener's advertised address.
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    /// Every listener's advertised address: (name, host, port).
    pub listeners: Vec<(String, String, u16)>,
}

impl Broker {
    /// The address to give a client that came in on `listener`: the broker's listener of
    /// that name (as Kafka, which leaves out a broker without it; here the inter-broker
    /// address stands in, so that a cluster whose brokers differ still answers).
    pub fn endpoint(&self, listener: &str) -> (&str, u16) {
        self.listeners
            .iter()
            .find(|(name, _, _)| name == listener)
            .map_or((self.host.as_str(), self.port), |(_, h, p)| (h.as_str(), *p))
    }
}

/// An immutable view of the cluster's metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalogue {
    pub topics: BTreeMap<String, Arc<Topic>>,
    /// Topic id → name, for requests that name topics by id (Fetch v13+, DeleteTopics v6,
    /// Metadata by id): derived from `topics` when a catalogue is built.
    ids: HashMap<Uuid, String>,
    /// Unfenced brokers, by id.
    pub brokers: BTreeMap<i32, Broker>,
    /// The cluster id as Kafka prints it (empty until known).
    pub cluster_id: String,
    /// The metadata log index this view reflects.
    pub applied_index: u64,
    /// This node's broker registration epoch (0 while unregistered): AlterPartition carries it.
    pub broker_epoch: u64,
    /// Whether this image has this run's registration of the node, unfenced: only then may
    /// its partitions lead. A restarted node's image from before its crash (it may still name
    /// it leader) never does, so a stale image cannot make it take writes (KRaft's brokers
    /// likewise act only once caught up with their own registration).
    pub leadable: bool,
    /// The ACLs and SCRAM credentials of this image.
    pub security: Arc<crate::security::SecurityView>,
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

    pub(crate) fn reindex(&mut self) {
        self.ids = self.topics.values().map(|t| (t.id, t.name.clone())).collect();
    }

    pub fn partition_count(&self) -> usize {
        self.topics.values().map(|t| t.shards.len()).sum()
    }

    /// Whether `added` more partitions fit under [`PARTITIONS_TOTAL_MAX`] (`POLICY_VIOLATION`
    /// otherwise, for CreateTopics and CreatePartitions alike).
    pub fn check_partitions_room(&self, added: usize) -> Result<(), KafkaError> {
        if self.partition_count().saturating_add(added) > PARTITIONS_TOTAL_MAX {
            return Err(KafkaError::new(
                ec::POLICY_VIOLATION,
                format!(
                    "the cluster holds at most {PARTITIONS_TOTAL_MAX} partitions in all; {} exist, {added} more asked for",
                    self.partition_count()
                ),
            ));
        }
        Ok(())
    }

    /// Checks a new topic against the name rules and the cluster's bounds (the controller
    /// checks again; this answers early with Kafka's codes).
    pub fn check_new_topic(&self, name: &str, partitions: i32) -> Result<(), KafkaError> {
        check_topic_name(name).map_err(|m| KafkaError::new(ec::INVALID_TOPIC_EXCEPTION, m))?;
        if self.topics.contains_key(name) {
            return Err(KafkaError::new(
                ec::TOPIC_ALREADY_EXISTS,
                format!("topic `{name}` already exists"),
            ));
        }
        if self.topics.len() >= TOPICS_MAX {
            return Err(KafkaError::new(
                ec::POLICY_VIOLATION,
                format!("the cluster holds at most {TOPICS_MAX} topics"),
            ));
        }
        let max = crate::config::PARTITIONS_MAX;
        if partitions < 1 || partitions > max {
            return Err(KafkaError::new(
                ec::INVALID_PARTITIONS,
                format!("partitions must be 1..={max}, not {partitions}"),
            ));
        }
        self.check_partitions_room(partitions as usize)
    }

    /// Checks growing `topic` to `count` partitions.
    pub fn check_growth(&self, topic: &Topic, count: i32) -> Result<(), KafkaError> {
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
        self.check_partitions_room((count - have) as usize)
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
    /// Notified after every new snapshot.
    fn changed(&self) -> event_listener::EventListener;
    /// Proposes `command` to the active controller (forwarded there if this node is not it);
    /// answered once committed, with the refusal or the quorum's failure as a Kafka error.
    fn propose(&self, command: Command) -> BoxFuture<'_, Result<CommandResult, KafkaError>>;
    /// The controller quorum's state as this node sees it (`None` on a broker-only node).
    fn quorum_status(&self) -> Option<Arc<QuorumStatus>>;
}

/// Waits until `done` holds for `store`'s snapshot, at most `wait`; whether it does.
pub async fn wait_for(
    store: &dyn MetadataStore,
    wait: std::time::Duration,
    done: impl Fn(&Catalogue) -> bool,
) -> bool {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let listener = store.changed();
        if done(&store.snapshot()) {
            return true;
        }
        let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) else {
            return false;
        };
        if compio::time::timeout(left, listener).await.is_err() {
            return done(&store.snapshot());
        }
    }
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

    fn topic(name: &str, id: u128, partitions: usize) -> Topic {
        Topic {
            name: name.into(),
            id: Uuid::from_u128(id),
            shards: vec![0; partitions],
            configs: BTreeMap::new(),
            placement: vec![Placement { leader: 1, ..Placement::default() }; partitions],
        }
    }

    #[test]
    fn growing_a_topic_obeys_the_cluster_wide_partition_limit() {
        let per_topic = crate::config::PARTITIONS_MAX as usize;
        let mut full = Catalogue::default();
        for i in 0..PARTITIONS_TOTAL_MAX / per_topic {
            let t = topic(&format!("t{i}"), i as u128 + 1, per_topic);
            full.topics.insert(t.name.clone(), Arc::new(t));
        }
        let small = topic("small", u128::MAX, 1);
        let grown = full.check_growth(&small, 2);
        assert_eq!(grown.expect_err("over the limit").code, ec::POLICY_VIOLATION);
        let created = full.check_new_topic("new", 1);
        assert_eq!(created.expect_err("over the limit").code, ec::POLICY_VIOLATION, "same code");

        let mut roomy = full.clone();
        roomy.topics.remove("t0");
        roomy.check_growth(&small, 3).expect("room left");
        let same = roomy.check_growth(&small, 1);
        assert_eq!(same.expect_err("not larger").code, ec::INVALID_PARTITIONS);
        let huge = roomy.check_growth(&small, crate::config::PARTITIONS_MAX + 1);
        assert_eq!(huge.expect_err("per-topic limit").code, ec::INVALID_PARTITIONS);
        roomy.topics.insert("small".into(), Arc::new(small));
        let dup = roomy.check_new_topic("small", 1);
        assert_eq!(dup.expect_err("exists").code, ec::TOPIC_ALREADY_EXISTS);
    }

    #[test]
    fn routes_follow_leaders_and_local_replicas() {
        let mut t = topic("t", 1, 3);
        t.shards = vec![0, NOT_HERE, 5];
        t.placement[1].leader = 2;
        t.placement[2].leader = -1;
        assert_eq!(t.route(0, 1, 2), Route::Local(0));
        assert_eq!(t.route(1, 1, 2), Route::Elsewhere { leader: 2, epoch: 0 });
        assert_eq!(t.route(2, 1, 2), Route::Elsewhere { leader: -1, epoch: 0 }, "no live leader");
        assert_eq!(t.route(3, 1, 2), Route::Missing);
        assert_eq!(t.owner(2, 2), Some(1), "fewer shards after a restart wrap around");
        assert_eq!(t.owner(1, 2), None, "not held here");
    }
}
