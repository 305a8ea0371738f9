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

pub mod security;

pub use security::{AclBinding, AclFilter, QuotaChange, QuotaEntity, QuotaRecord, ScramCredential};

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
    /// Every listener's advertised endpoint (Metadata answers with the one a client came in
    /// on); `host`/`port` are the inter-broker listener's. Empty from a broker registered
    /// before listeners existed.
    #[serde(default)]
    pub listeners: Vec<Endpoint>,
}

/// One named listener's advertised address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// Most listeners one broker registers.
pub const LISTENERS_MAX: usize = 16;

/// One partition's replica assignment and leadership.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    /// Every replica, preferred leader first; during a reassignment the target replicas
    /// followed by those being removed.
    pub replicas: Vec<i32>,
    /// In-sync replicas: they have every committed record. Changed only by the leader's
    /// [`Command::AlterPartition`] and by fencing.
    pub isr: Vec<i32>,
    /// Eligible leader replicas (KIP-966): replicas removed from the ISR while it was smaller
    /// than `min.insync.replicas`. The high watermark cannot advance then, so they still have
    /// every committed record and may be elected when no ISR member is live.
    #[serde(default)]
    pub elr: Vec<i32>,
    /// -1 when no eligible replica is unfenced.
    pub leader: i32,
    /// Bumped on every change of leader.
    pub leader_epoch: i32,
    /// Bumped on every change of this record.
    pub partition_epoch: i32,
    /// A reassignment under way: replicas being added (not yet in sync) and being removed.
    #[serde(default)]
    pub adding: Vec<i32>,
    #[serde(default)]
    pub removing: Vec<i32>,
}

/// How [`Command::ElectLeader`] chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionKind {
    /// The first replica, if it is live and in sync (Kafka's preferred-leader election).
    Preferred,
    /// Any live replica when no eligible one is: may lose committed records.
    Unclean,
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
    /// ACL bindings (the ACL authorizer's source).
    #[serde(default)]
    pub acls: BTreeSet<AclBinding>,
    /// SCRAM credentials: user → mechanism (`SCRAM-SHA-256`) → credential.
    #[serde(default)]
    pub scram: BTreeMap<String, BTreeMap<String, ScramCredential>>,
    /// Client quotas (KIP-546), sorted by entity.
    #[serde(default)]
    pub quotas: Vec<QuotaRecord>,
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
        #[serde(default)]
        listeners: Vec<Endpoint>,
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
    /// A partition leader's change of the ISR (Kafka's AlterPartition). Refused unless
    /// `broker_id` leads the partition at `leader_epoch`, the record is still at
    /// `partition_epoch` (no concurrent change), and every replica added is unfenced.
    AlterPartition {
        broker_id: i32,
        broker_epoch: u64,
        topic_id: Uuid,
        partition: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
    },
    /// Elects a leader for one partition (Kafka's ElectLeaders).
    ElectLeader {
        topic: String,
        partition: i32,
        kind: ElectionKind,
    },
    /// Starts (`Some(target)`) or cancels (`None`) moving a partition to other replicas
    /// (Kafka's AlterPartitionReassignments): the new replicas follow the leader, and once
    /// every one of them is in the ISR the old ones are dropped.
    Reassign {
        topic: String,
        partition: i32,
        target: Option<Vec<i32>>,
    },
    /// Adds ACL bindings (Kafka's CreateAcls); all or none.
    CreateAcls {
        bindings: Vec<AclBinding>,
    },
    /// Removes every binding each filter matches (Kafka's DeleteAcls).
    DeleteAcls {
        filters: Vec<AclFilter>,
    },
    /// Sets and removes SCRAM credentials (Kafka's AlterUserScramCredentials): `upsert` is
    /// (user, mechanism, credential), `delete` (user, mechanism); all or none.
    AlterScram {
        upsert: Vec<(String, String, ScramCredential)>,
        delete: Vec<(String, String)>,
    },
    /// Sets (`Some`) and removes (`None`) client quotas per entity (Kafka's
    /// AlterClientQuotas); all or none.
    AlterQuotas {
        entries: Vec<security::QuotaChange>,
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
    /// A partition's record after a [`Command::AlterPartition`].
    Partition {
        record: PartitionRecord,
    },
    /// The log index a [`Command::Barrier`] was applied at.
    Barrier {
        index: u64,
    },
    /// The bindings each filter of a [`Command::DeleteAcls`] removed, in filter order.
    AclsDeleted {
        matched: Vec<Vec<AclBinding>>,
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
    #[error("topic {topic} has no partition {partition}")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("broker {broker_id} does not lead the partition (leader {leader})")]
    NotLeader { broker_id: i32, leader: i32 },
    #[error("leader epoch {requested} is not the partition's {current}")]
    FencedLeaderEpoch { current: i32, requested: i32 },
    #[error("partition epoch {requested} is not the partition's {current}")]
    InvalidUpdateVersion { current: i32, requested: i32 },
    #[error("replica {replica} cannot join the ISR: {reason}")]
    IneligibleReplica { replica: i32, reason: String },
    #[error("invalid replica assignment: {reason}")]
    InvalidReplicaAssignment { reason: String },
    #[error("no reassignment is under way")]
    NoReassignment,
    #[error("the partition's leader is already the one asked for")]
    ElectionNotNeeded,
    #[error("the preferred leader {replica} is not live and in sync")]
    PreferredLeaderNotAvailable { replica: i32 },
    #[error("no live replica can be elected")]
    EligibleLeadersNotAvailable,
    #[error("invalid ACL: {reason}")]
    InvalidAcl { reason: String },
    #[error("invalid SCRAM credential: {reason}")]
    InvalidScram { reason: String },
    #[error("invalid client quota: {reason}")]
    InvalidQuota { reason: String },
    #[error("the command takes {bytes} bytes, more than {COMMAND_BYTES_MAX}")]
    TooLarge { bytes: usize },
}

/// The reply the state machine gives for one log entry.
pub type CommandReply = Result<CommandResult, CommandError>;

impl MetadataImage {
    /// Applies `command`, committed at log `index`. On `Err` nothing but `applied_index` moves.
    pub fn apply(&mut self, index: u64, command: &Command) -> CommandReply {
        let reply = match command {
            Command::RegisterBroker { broker_id, incarnation, host, port, rack, listeners } => self
                .register_broker(index, *broker_id, *incarnation, (host, *port, listeners), rack),
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
            Command::AlterPartition {
                broker_id,
                broker_epoch,
                topic_id,
                partition,
                leader_epoch,
                partition_epoch,
                isr,
            } => self.alter_partition(
                (*broker_id, *broker_epoch),
                *topic_id,
                *partition,
                (*leader_epoch, *partition_epoch),
                isr,
            ),
            Command::ElectLeader { topic, partition, kind } => {
                self.elect_leader(topic, *partition, *kind)
            }
            Command::Reassign { topic, partition, target } => {
                self.reassign(topic, *partition, target.as_deref())
            }
            Command::Barrier => Ok(CommandResult::Barrier { index }),
            Command::CreateAcls { bindings } => self.create_acls(bindings),
            Command::DeleteAcls { filters } => self.delete_acls(filters),
            Command::AlterScram { upsert, delete } => self.alter_scram(upsert, delete),
            Command::AlterQuotas { entries } => self.alter_quotas(entries),
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
        (host, port, listeners): (&str, u16, &[Endpoint]),
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
        if listeners.len() > LISTENERS_MAX
            || listeners.iter().any(|l| {
                l.name.is_empty()
                    || l.name.len() > HOST_BYTES_MAX
                    || l.host.is_empty()
                    || l.host.len() > HOST_BYTES_MAX
                    || l.port == 0
            })
        {
            return Err(CommandError::InvalidBroker { reason: "listener endpoints".into() });
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
                listeners: listeners.to_vec(),
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
        let live: BTreeSet<i32> = self.unfenced_brokers().map(|b| b.id).collect();
        for t in self.topics.values_mut() {
            let rules = Rules::of(&t.configs);
            for p in t.partitions.iter_mut() {
                if !p.isr.contains(&broker_id) && p.leader != broker_id {
                    continue;
                }
                // A fenced broker is out of every ISR (it may be behind when it returns);
                // while the ISR is below min.insync.replicas it stays eligible (KIP-966).
                shrink_isr(p, &[broker_id], rules.min_isr);
                if p.leader == broker_id {
                    p.leader = -1;
                    elect(p, &live, rules.unclean);
                    p.leader_epoch += 1;
                }
                p.partition_epoch += 1;
            }
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
        let live: BTreeSet<i32> = self.unfenced_brokers().map(|b| b.id).collect();
        for t in self.topics.values_mut() {
            let rules = Rules::of(&t.configs);
            for p in t.partitions.iter_mut().filter(|p| p.leader == -1) {
                if elect(p, &live, rules.unclean) {
                    p.leader_epoch += 1;
                    p.partition_epoch += 1;
                }
            }
        }
        Ok(CommandResult::Done)
    }

    fn partition_mut(
        &mut self,
        pred: impl Fn(&TopicRecord) -> bool,
        name: &str,
        partition: i32,
    ) -> Result<(Rules, &mut PartitionRecord), CommandError> {
        let unknown = || CommandError::UnknownPartition { topic: name.to_owned(), partition };
        let topic = self.topics.values_mut().find(|t| pred(t)).ok_or_else(unknown)?;
        let rules = Rules::of(&topic.configs);
        let p = usize::try_from(partition).ok().and_then(|i| topic.partitions.get_mut(i));
        Ok((rules, p.ok_or_else(unknown)?))
    }

    fn alter_partition(
        &mut self,
        (broker_id, broker_epoch): (i32, u64),
        topic_id: Uuid,
        partition: i32,
        (leader_epoch, partition_epoch): (i32, i32),
        isr: &[i32],
    ) -> CommandReply {
        match self.brokers.get(&broker_id) {
            None => return Err(CommandError::UnknownBroker { broker_id }),
            Some(b) if b.epoch != broker_epoch => {
                return Err(CommandError::StaleBrokerEpoch {
                    broker_id,
                    current: b.epoch,
                    requested: broker_epoch,
                });
            }
            Some(_) => {}
        }
        let live: BTreeSet<i32> = self.unfenced_brokers().map(|b| b.id).collect();
        let (rules, p) =
            self.partition_mut(|t| t.id == topic_id, &topic_id.to_string(), partition)?;
        if p.leader != broker_id {
            return Err(CommandError::NotLeader { broker_id, leader: p.leader });
        }
        if p.leader_epoch != leader_epoch {
            return Err(CommandError::FencedLeaderEpoch {
                current: p.leader_epoch,
                requested: leader_epoch,
            });
        }
        if p.partition_epoch != partition_epoch {
            return Err(CommandError::InvalidUpdateVersion {
                current: p.partition_epoch,
                requested: partition_epoch,
            });
        }
        let ineligible = |replica: i32, reason: &str| {
            Err(CommandError::IneligibleReplica { replica, reason: reason.to_owned() })
        };
        if !isr.contains(&broker_id) {
            return ineligible(broker_id, "the leader must stay in the ISR");
        }
        for &r in isr {
            if !p.replicas.contains(&r) {
                return ineligible(r, "not a replica");
            }
            if !p.isr.contains(&r) && !live.contains(&r) {
                return ineligible(r, "fenced");
            }
        }
        let removed: Vec<i32> = p.isr.iter().copied().filter(|r| !isr.contains(r)).collect();
        let mut next = p.clone();
        shrink_isr(&mut next, &removed, rules.min_isr);
        // Kept in replica order, without duplicates.
        next.isr = next.replicas.iter().copied().filter(|r| isr.contains(r)).collect();
        if next.isr.len() >= rules.min_isr {
            next.elr.clear();
        }
        next.elr.retain(|r| !next.isr.contains(r));
        next.partition_epoch += 1;
        complete_reassignment(&mut next, &live);
        *p = next;
        Ok(CommandResult::Partition { record: p.clone() })
    }

    fn elect_leader(&mut self, topic: &str, partition: i32, kind: ElectionKind) -> CommandReply {
        let live: BTreeSet<i32> = self.unfenced_brokers().map(|b| b.id).collect();
        let (_, p) = self.partition_mut(|t| t.name == topic, topic, partition)?;
        match kind {
            ElectionKind::Preferred => {
                let preferred = p.replicas.first().copied().unwrap_or(-1);
                if p.leader == preferred {
                    return Err(CommandError::ElectionNotNeeded);
                }
                if !p.isr.contains(&preferred) || !live.contains(&preferred) {
                    return Err(CommandError::PreferredLeaderNotAvailable { replica: preferred });
                }
                p.leader = preferred;
            }
            ElectionKind::Unclean => {
                if p.leader != -1 {
                    return Err(CommandError::ElectionNotNeeded);
                }
                if !elect(p, &live, true) {
                    return Err(CommandError::EligibleLeadersNotAvailable);
                }
            }
        }
        p.leader_epoch += 1;
        p.partition_epoch += 1;
        Ok(CommandResult::Done)
    }

    fn reassign(&mut self, topic: &str, partition: i32, target: Option<&[i32]>) -> CommandReply {
        let live: BTreeSet<i32> = self.unfenced_brokers().map(|b| b.id).collect();
        let registered: BTreeSet<i32> = self.brokers.keys().copied().collect();
        let (_, p) = self.partition_mut(|t| t.name == topic, topic, partition)?;
        let bad = |reason: String| Err(CommandError::InvalidReplicaAssignment { reason });
        let Some(target) = target else {
            if p.adding.is_empty() && p.removing.is_empty() {
                return Err(CommandError::NoReassignment);
            }
            // Cancelling: back to the replicas before it began (adding ones go).
            let adding = std::mem::take(&mut p.adding);
            p.removing.clear();
            p.replicas.retain(|r| !adding.contains(r));
            p.isr.retain(|r| !adding.contains(r));
            p.elr.retain(|r| !adding.contains(r));
            if adding.contains(&p.leader) {
                p.leader = -1;
                elect(p, &live, false);
                p.leader_epoch += 1;
            }
            p.partition_epoch += 1;
            return Ok(CommandResult::Done);
        };
        let distinct: BTreeSet<i32> = target.iter().copied().collect();
        if target.is_empty() || distinct.len() != target.len() {
            return bad(format!("{target:?}: empty or with duplicates"));
        }
        if let Some(r) = target.iter().find(|r| !registered.contains(r)) {
            return bad(format!("broker {r} is not registered"));
        }
        if !p.adding.is_empty() || !p.removing.is_empty() {
            return bad("a reassignment is already under way; cancel it first".to_owned());
        }
        let current = p.replicas.clone();
        p.adding = target.iter().copied().filter(|r| !current.contains(r)).collect();
        p.removing = current.iter().copied().filter(|r| !target.contains(r)).collect();
        p.replicas = target.iter().chain(p.removing.iter()).copied().collect();
        p.partition_epoch += 1;
        complete_reassignment(p, &live);
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
            // Every replica of a new partition is in sync: all of them hold the same (empty) log.
            out.push(PartitionRecord {
                isr: replicas.clone(),
                leader: replicas[0],
                replicas,
                ..PartitionRecord::default()
            });
        }
        Ok(out)
    }
}

/// The topic configs the controller itself acts on.
#[derive(Debug, Clone, Copy)]
struct Rules {
    /// `min.insync.replicas` (Kafka's default 1).
    min_isr: usize,
    /// `unclean.leader.election.enable` (default false).
    unclean: bool,
}

impl Rules {
    fn of(configs: &BTreeMap<String, String>) -> Rules {
        let min_isr = configs
            .get("min.insync.replicas")
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n >= 1)
            .unwrap_or(1);
        let unclean = configs.get("unclean.leader.election.enable").is_some_and(|v| v == "true");
        Rules { min_isr, unclean }
    }
}

/// Removes `removed` from the ISR. While the ISR is smaller than `min_isr`, those removed stay
/// eligible (ELR, KIP-966); once it has `min_isr` members, the ELR is empty.
fn shrink_isr(p: &mut PartitionRecord, removed: &[i32], min_isr: usize) {
    let was: Vec<i32> = p.isr.iter().copied().filter(|r| removed.contains(r)).collect();
    p.isr.retain(|r| !removed.contains(r));
    if p.isr.len() >= min_isr {
        p.elr.clear();
    } else {
        for r in was {
            if !p.elr.contains(&r) {
                p.elr.push(r);
            }
        }
    }
}

/// Chooses a leader for `p` (which has none) among `live` brokers: an ISR member in replica
/// order, else an eligible one (ELR: it then forms the ISR alone), else, only if `unclean`,
/// any replica (committed records may be lost). Returns whether one was found; the caller
/// bumps the epochs.
fn elect(p: &mut PartitionRecord, live: &BTreeSet<i32>, unclean: bool) -> bool {
    let pick =
        |set: &[i32]| p.replicas.iter().copied().find(|r| set.contains(r) && live.contains(r));
    if let Some(l) = pick(&p.isr) {
        p.leader = l;
        return true;
    }
    let chosen = pick(&p.elr).or_else(|| unclean.then(|| pick(&p.replicas)).flatten());
    match chosen {
        Some(l) => {
            p.leader = l;
            p.isr = vec![l];
            p.elr.retain(|r| *r != l);
            true
        }
        None => false,
    }
}

/// Finishes a reassignment once every added replica is in sync: the removed replicas go, and
/// leadership moves to the first target replica in the ISR if the leader was removed.
fn complete_reassignment(p: &mut PartitionRecord, live: &BTreeSet<i32>) {
    if (p.adding.is_empty() && p.removing.is_empty()) || !p.adding.iter().all(|r| p.isr.contains(r))
    {
        return;
    }
    let removing = std::mem::take(&mut p.removing);
    p.adding.clear();
    p.replicas.retain(|r| !removing.contains(r));
    p.isr.retain(|r| !removing.contains(r));
    p.elr.retain(|r| !removing.contains(r));
    if removing.contains(&p.leader) {
        p.leader = -1;
        elect(p, live, false);
        p.leader_epoch += 1;
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
