//! The metadata image and the commands that change it: a pure, deterministic state machine.
//!
//! Every replica applies the same commands in the same log order and must reach the same image,
//! so nothing here reads a clock, a random source or the host: whatever must be chosen once (a
//! topic id) is chosen by the proposer and carried in the command. A command is validated
//! against the image before anything changes; a refused command leaves the image untouched and
//! returns a typed [`CommandError`].

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Most partitions one topic may have.
pub const TOPIC_PARTITIONS_MAX: i32 = 10_000;
/// Most configs one topic may carry, and the longest key and value.
pub const TOPIC_CONFIGS_MAX: usize = 256;
pub const CONFIG_KEY_BYTES_MAX: usize = 256;
pub const CONFIG_VALUE_BYTES_MAX: usize = 4096;
/// Kafka's longest topic name.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;
/// Largest producer-id block one request may take.
pub const PRODUCER_ID_BLOCK_SIZE_MAX: i32 = 10_000;
/// Largest command, serialized: it bounds an entry of the metadata log (below the log's
/// `max.message.bytes`) and, times `ENTRIES_PER_APPEND_MAX`, a replication frame.
pub const COMMAND_BYTES_MAX: usize = 128 << 10;
/// Longest host name in a broker's endpoint, and longest rack name.
pub const HOST_BYTES_MAX: usize = 255;
pub const RACK_BYTES_MAX: usize = 255;

/// A broker as the cluster knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRecord {
    pub id: i32,
    /// The identity of the broker's data directory, generated when it was first formatted.
    pub incarnation: Uuid,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    /// The log index of the registration that produced this record (KRaft's broker epoch).
    pub epoch: u64,
    /// A fenced broker leads nothing and is left out of Metadata.
    pub fenced: bool,
}

/// One partition's replica assignment and leadership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// -1 when no replica in the ISR is unfenced.
    pub leader: i32,
    pub leader_epoch: i32,
    /// Bumped on every change of this record.
    pub partition_epoch: i32,
}

/// A topic: its id, configs and partitions (index = partition number).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    pub name: String,
    pub id: Uuid,
    pub configs: BTreeMap<String, String>,
    pub partitions: Vec<PartitionRecord>,
}

/// The whole cluster metadata, as of one applied log index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    /// The raft log index of the last entry applied (0 before any).
    pub applied_index: u64,
    pub brokers: BTreeMap<i32, BrokerRecord>,
    pub topics: BTreeMap<String, TopicRecord>,
    /// The first producer id of the next block handed out.
    pub next_producer_id: i64,
}

/// A change to the metadata, proposed to the controller quorum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Registers a broker, or re-registers the same broker (same incarnation) after a restart.
    /// The broker starts fenced. A different incarnation under a registered id is refused:
    /// see [`CommandError::DuplicateBrokerId`].
    RegisterBroker {
        broker_id: i32,
        incarnation: Uuid,
        host: String,
        port: u16,
        rack: Option<String>,
    },
    /// Removes a fenced broker's registration so that its id can be registered by a replacement
    /// (the lost-disk procedure).
    UnregisterBroker {
        broker_id: i32,
    },
    FenceBroker {
        broker_id: i32,
    },
    /// `epoch` must be the broker's current registration epoch (a stale broker cannot unfence).
    UnfenceBroker {
        broker_id: i32,
        epoch: u64,
    },
    /// `topic_id` is chosen by the proposer ([`crate::Controller::propose`] fills a nil one).
    CreateTopic {
        name: String,
        topic_id: Uuid,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        name: String,
    },
    /// Grows the topic to `total` partitions.
    CreatePartitions {
        name: String,
        total: i32,
    },
    AlterTopicConfigs {
        name: String,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    },
    AllocateProducerIdBlock {
        broker_id: i32,
        size: i32,
    },
    /// Moves the producer-id counter to at least `at_least` (never back): a single node's
    /// data directory upgraded into a cluster keeps its ids unique.
    AdvanceProducerIds {
        at_least: i64,
    },
    /// A broker's liveness signal. Answered by the active controller from memory (it unfences
    /// the broker if it is fenced with this epoch) and never appended to the log; the state
    /// machine ignores one if it ever meets it.
    BrokerHeartbeat {
        broker_id: i32,
        epoch: u64,
    },
    /// Changes nothing; its reply carries the log index it was applied at, so that a node
    /// that waits until its own image reaches that index has seen every change committed
    /// before it (a read barrier).
    Barrier,
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// What an applied command produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    /// A membership or blank entry (not a command).
    None,
    BrokerRegistered {
        broker_epoch: u64,
    },
    Done,
    TopicCreated {
        topic_id: Uuid,
        partitions: Vec<PartitionRecord>,
    },
    ProducerIdBlock {
        first: i64,
        size: i32,
    },
    /// The log index a [`Command::Barrier`] was applied at.
    Barrier {
        index: u64,
    },
}

/// Why the state machine refused a command. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CommandError {
    #[error(
        "broker id {broker_id} is registered by another data directory ({registered}, this one is {offered}); \
         if its disk was lost, fence and unregister id {broker_id} first, or use a new id"
    )]
    DuplicateBrokerId { broker_id: i32, registered: Uuid, offered: Uuid },
    #[error("broker {broker_id} is not registered")]
    UnknownBroker { broker_id: i32 },
    #[error("broker {broker_id} has epoch {current}, the request carries {requested}")]
    StaleBrokerEpoch { broker_id: i32, current: u64, requested: u64 },
    #[error("broker {broker_id} is unfenced; fence it before unregistering it")]
    BrokerNotFenced { broker_id: i32 },
    #[error("invalid broker registration: {reason}")]
    InvalidBroker { reason: String },
    #[error("topic {name} already exists")]
    TopicExists { name: String },
    #[error("topic id {topic_id} is already used")]
    TopicIdExists { topic_id: Uuid },
    #[error("topic {name} does not exist")]
    UnknownTopic { name: String },
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName { name: String, reason: String },
    #[error("invalid partition count {requested} (current {current}, max {TOPIC_PARTITIONS_MAX})")]
    InvalidPartitions { requested: i32, current: i32 },
    #[error("replication factor {requested} but {available} unfenced brokers")]
    InvalidReplicationFactor { requested: i16, available: usize },
    #[error("invalid config: {reason}")]
    InvalidConfig { reason: String },
    #[error("invalid producer-id block size {size} (1..={PRODUCER_ID_BLOCK_SIZE_MAX})")]
    InvalidBlockSize { size: i32 },
    #[error("producer ids are exhausted")]
    ProducerIdsExhausted,
    #[error("the command takes {bytes} bytes, more than {COMMAND_BYTES_MAX}")]
    TooLarge { bytes: usize },
}

/// The reply the state machine gives for one log entry.
pub type CommandReply = Result<CommandResult, CommandError>;

impl MetadataImage {
    /// Applies `command`, committed at log `index`. On `Err` nothing but `applied_index` moves.
    pub fn apply(&mut self, index: u64, command: &Command) -> CommandReply {
        let reply = match command {
            Command::RegisterBroker { broker_id, incarnation, host, port, rack } => {
                self.register_broker(index, *broker_id, *incarnation, host, *port, rack)
            }
            Command::UnregisterBroker { broker_id } => self.unregister_broker(*broker_id),
            Command::FenceBroker { broker_id } => self.fence_broker(*broker_id),
            Command::UnfenceBroker { broker_id, epoch } => self.unfence_broker(*broker_id, *epoch),
            Command::CreateTopic { name, topic_id, partitions, replication_factor, configs } => {
                self.create_topic(name, *topic_id, *partitions, *replication_factor, configs)
            }
            Command::DeleteTopic { name } => match self.topics.remove(name) {
                Some(_) => Ok(CommandResult::Done),
                None => Err(CommandError::UnknownTopic { name: name.clone() }),
            },
            Command::CreatePartitions { name, total } => self.create_partitions(name, *total),
            Command::AlterTopicConfigs { name, set, delete } => {
                self.alter_configs(name, set, delete)
            }
            Command::AllocateProducerIdBlock { broker_id, size } => {
                self.allocate_producer_ids(*broker_id, *size)
            }
            Command::AdvanceProducerIds { at_least } => {
                if *at_least < 0 {
                    Err(CommandError::InvalidBlockSize { size: -1 })
                } else {
                    self.next_producer_id = self.next_producer_id.max(*at_least);
                    Ok(CommandResult::Done)
                }
            }
            Command::BrokerHeartbeat { .. } => Ok(CommandResult::Done),
            Command::Barrier => Ok(CommandResult::Barrier { index }),
        };
        self.applied_index = index;
        reply
    }

    /// Unfenced brokers, by id.
    pub fn unfenced_brokers(&self) -> impl Iterator<Item = &BrokerRecord> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    fn register_broker(
        &mut self,
        index: u64,
        broker_id: i32,
        incarnation: Uuid,
        host: &str,
        port: u16,
        rack: &Option<String>,
    ) -> CommandReply {
        if broker_id < 0 {
            return Err(CommandError::InvalidBroker { reason: format!("negative id {broker_id}") });
        }
        if host.is_empty() || host.len() > HOST_BYTES_MAX || port == 0 {
            return Err(CommandError::InvalidBroker { reason: format!("endpoint {host}:{port}") });
        }
        if rack.as_ref().is_some_and(|r| r.is_empty() || r.len() > RACK_BYTES_MAX) {
            return Err(CommandError::InvalidBroker { reason: "rack name length".into() });
        }
        if let Some(old) = self.brokers.get(&broker_id)
            && old.incarnation != incarnation
        {
            return Err(CommandError::DuplicateBrokerId {
                broker_id,
                registered: old.incarnation,
                offered: incarnation,
            });
        }
        // A (re-)registered broker is fenced until it unfences with its new epoch.
        self.fence_broker(broker_id).ok();
        self.brokers.insert(
            broker_id,
            BrokerRecord {
                id: broker_id,
                incarnation,
                host: host.to_owned(),
                port,
                rack: rack.clone(),
                epoch: index,
                fenced: true,
            },
        );
        Ok(CommandResult::BrokerRegistered { broker_epoch: index })
    }

    fn unregister_broker(&mut self, broker_id: i32) -> CommandReply {
        match self.brokers.get(&broker_id) {
            None => Err(CommandError::UnknownBroker { broker_id }),
            Some(b) if !b.fenced => Err(CommandError::BrokerNotFenced { broker_id }),
            Some(_) => {
                self.brokers.remove(&broker_id);
                Ok(CommandResult::Done)
            }
        }
    }

    fn fence_broker(&mut self, broker_id: i32) -> CommandReply {
        let Some(b) = self.brokers.get_mut(&broker_id) else {
            return Err(CommandError::UnknownBroker { broker_id });
        };
        b.fenced = true;
        let unfenced: BTreeSet<i32> = self.unfenced_brokers().map(|b| b.id).collect();
        for p in self.topics.values_mut().flat_map(|t| t.partitions.iter_mut()) {
            if p.leader != broker_id {
                continue;
            }
            // Kafka keeps the last ISR member in the ISR (it may be the only complete copy).
            if p.isr.len() > 1 {
                p.isr.retain(|r| *r != broker_id);
            }
            p.leader = p.isr.iter().copied().find(|r| unfenced.contains(r)).unwrap_or(-1);
            p.leader_epoch += 1;
            p.partition_epoch += 1;
        }
        Ok(CommandResult::Done)
    }

    fn unfence_broker(&mut self, broker_id: i32, epoch: u64) -> CommandReply {
        let Some(b) = self.brokers.get_mut(&broker_id) else {
            return Err(CommandError::UnknownBroker { broker_id });
        };
        if b.epoch != epoch {
            return Err(CommandError::StaleBrokerEpoch {
                broker_id,
                current: b.epoch,
                requested: epoch,
            });
        }
        b.fenced = false;
        for p in self.topics.values_mut().flat_map(|t| t.partitions.iter_mut()) {
            if p.leader == -1 && p.isr.contains(&broker_id) {
                p.leader = broker_id;
                p.leader_epoch += 1;
                p.partition_epoch += 1;
            }
        }
        Ok(CommandResult::Done)
    }

    fn create_topic(
        &mut self,
        name: &str,
        topic_id: Uuid,
        partitions: i32,
        replication_factor: i16,
        configs: &BTreeMap<String, String>,
    ) -> CommandReply {
        validate_topic_name(name)?;
        if self.topics.contains_key(name) {
            return Err(CommandError::TopicExists { name: name.to_owned() });
        }
        if topic_id.is_nil() || self.topics.values().any(|t| t.id == topic_id) {
            return Err(CommandError::TopicIdExists { topic_id });
        }
        if !(1..=TOPIC_PARTITIONS_MAX).contains(&partitions) {
            return Err(CommandError::InvalidPartitions { requested: partitions, current: 0 });
        }
        validate_configs(configs.iter())?;
        let placed = self.place(0, partitions, replication_factor)?;
        self.topics.insert(
            name.to_owned(),
            TopicRecord {
                name: name.to_owned(),
                id: topic_id,
                configs: configs.clone(),
                partitions: placed.clone(),
            },
        );
        Ok(CommandResult::TopicCreated { topic_id, partitions: placed })
    }

    fn create_partitions(&mut self, name: &str, total: i32) -> CommandReply {
        let Some(topic) = self.topics.get(name) else {
            return Err(CommandError::UnknownTopic { name: name.to_owned() });
        };
        let current = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
        if total <= current || total > TOPIC_PARTITIONS_MAX {
            return Err(CommandError::InvalidPartitions { requested: total, current });
        }
        let rf = topic.partitions.first().map_or(1, |p| p.replicas.len());
        let rf = i16::try_from(rf).unwrap_or(i16::MAX);
        let placed = self.place(current, total - current, rf)?;
        if let Some(topic) = self.topics.get_mut(name) {
            topic.partitions.extend(placed);
        }
        Ok(CommandResult::Done)
    }

    fn alter_configs(
        &mut self,
        name: &str,
        set: &BTreeMap<String, String>,
        delete: &[String],
    ) -> CommandReply {
        let Some(topic) = self.topics.get(name) else {
            return Err(CommandError::UnknownTopic { name: name.to_owned() });
        };
        let mut configs = topic.configs.clone();
        for k in delete {
            configs.remove(k);
        }
        configs.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
        validate_configs(configs.iter())?;
        if let Some(topic) = self.topics.get_mut(name) {
            topic.configs = configs;
        }
        Ok(CommandResult::Done)
    }

    fn allocate_producer_ids(&mut self, broker_id: i32, size: i32) -> CommandReply {
        if !self.brokers.contains_key(&broker_id) {
            return Err(CommandError::UnknownBroker { broker_id });
        }
        if !(1..=PRODUCER_ID_BLOCK_SIZE_MAX).contains(&size) {
            return Err(CommandError::InvalidBlockSize { size });
        }
        let first = self.next_producer_id;
        let next = first.checked_add(i64::from(size)).ok_or(CommandError::ProducerIdsExhausted)?;
        self.next_producer_id = next;
        Ok(CommandResult::ProducerIdBlock { first, size })
    }

    /// Places `count` new partitions numbered from `first`: Kafka's rack-aware assignment over
    /// the unfenced brokers. Brokers are ordered alternating racks; partition `p`'s leader is
    /// the `(start + p)`th of them, so leaders spread evenly; followers are taken after the
    /// leader with a shift that grows every round, preferring racks not yet used.
    fn place(&self, first: i32, count: i32, rf: i16) -> Result<Vec<PartitionRecord>, CommandError> {
        let brokers = rack_alternated(self.unfenced_brokers());
        let n = brokers.len();
        let rf_n = usize::try_from(rf).unwrap_or(0);
        if rf_n == 0 || rf_n > n {
            return Err(CommandError::InvalidReplicationFactor { requested: rf, available: n });
        }
        // Start where the cluster's existing partitions leave off, so leaders of many topics
        // spread too (deterministic: the image is the same on every replica).
        let existing: usize = self.topics.values().map(|t| t.partitions.len()).sum();
        let start = existing % n;
        let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
        for p in first..first + count {
            let p = usize::try_from(p).unwrap_or(0);
            let lead = (start + p) % n;
            let shift = (p / n) % n.max(1);
            let mut replicas = vec![brokers[lead].0];
            let mut racks: BTreeSet<&str> = BTreeSet::from([brokers[lead].1.as_str()]);
            let order: Vec<usize> =
                (0..n - 1).map(|k| (lead + 1 + (shift + k) % (n - 1).max(1)) % n).collect();
            // First pass: new racks only; second pass: anything not yet taken.
            for pass in 0..2 {
                for &i in &order {
                    if replicas.len() == rf_n {
                        break;
                    }
                    let (id, rack) = &brokers[i];
                    if replicas.contains(id) || (pass == 0 && racks.contains(rack.as_str())) {
                        continue;
                    }
                    replicas.push(*id);
                    racks.insert(rack.as_str());
                }
            }
            assert_eq!(replicas.len(), rf_n, "placement must fill every replica");
            // Only the leader is in sync at first: a follower joins the ISR once it has caught
            // up by fetching (replication), so leadership never moves to a replica that lacks
            // acknowledged records.
            out.push(PartitionRecord {
                isr: vec![replicas[0]],
                leader: replicas[0],
                replicas,
                leader_epoch: 0,
                partition_epoch: 0,
            });
        }
        Ok(out)
    }
}

/// Brokers ordered so that consecutive ones are on different racks where possible: racks in
/// name order, brokers in id order within a rack, taken round-robin (Kafka's rack-alternated
/// list). Brokers without a rack form one rack named "".
fn rack_alternated<'a>(brokers: impl Iterator<Item = &'a BrokerRecord>) -> Vec<(i32, String)> {
    let mut by_rack: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for b in brokers {
        by_rack.entry(b.rack.clone().unwrap_or_default()).or_default().push(b.id);
    }
    let longest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::new();
    for i in 0..longest {
        for (rack, ids) in &by_rack {
            if let Some(id) = ids.get(i) {
                out.push((*id, rack.clone()));
            }
        }
    }
    out
}

fn validate_topic_name(name: &str) -> Result<(), CommandError> {
    let bad = |reason: &str| {
        Err(CommandError::InvalidTopicName { name: name.to_owned(), reason: reason.to_owned() })
    };
    if name.is_empty() || name.len() > TOPIC_NAME_BYTES_MAX {
        return bad("length must be 1..=249");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not allowed");
    }
    if !name.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-')) {
        return bad("only ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

/// Bounds only: which keys exist and what values mean is the node's business (it validates
/// before proposing); the state machine keeps the image bounded.
fn validate_configs<'a>(
    mut configs: impl ExactSizeIterator<Item = (&'a String, &'a String)>,
) -> Result<(), CommandError> {
    if configs.len() > TOPIC_CONFIGS_MAX {
        return Err(CommandError::InvalidConfig {
            reason: format!("{} configs, at most {TOPIC_CONFIGS_MAX}", configs.len()),
        });
    }
    match configs.find(|(k, v)| {
        k.is_empty() || k.len() > CONFIG_KEY_BYTES_MAX || v.len() > CONFIG_VALUE_BYTES_MAX
    }) {
        Some((k, _)) => {
            Err(CommandError::InvalidConfig { reason: format!("key or value of {k:?}") })
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
