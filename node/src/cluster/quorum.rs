//! [`QuorumStore`]: the node's [`MetadataStore`] on the controller quorum. A node with the
//! controller role runs a voter ([`Controller`]), a broker-only node an [`Observer`]; either
//! way the node follows the metadata image and turns each new one into the [`Catalogue`] its
//! shards read, and sends changes to the active controller.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use event_listener::Event;
use futures_util::future::BoxFuture;
use odradek_controller::{
    Command, CommandError, CommandResult, Controller, ControllerConfig, ControllerError,
    ImageWatch, MetadataImage, Observer, ObserverConfig, QuorumStatus, TopicRecord,
};
use odradek_net::error_code as ec;
use uuid::Uuid;

use super::identity::uuid_base64url;
use super::{Broker, Catalogue, MetadataStore, NOT_HERE, Placement, Topic};
use crate::config::NodeConfig;
use crate::error::KafkaError;

/// The controller's own directory inside the node's data directory.
pub const CONTROLLER_DIR: &str = "controller";

/// The node's part in the quorum.
#[derive(Debug)]
enum Member {
    Voter(Controller),
    Observer(Observer),
}

/// The cluster metadata as this node follows it.
#[derive(Debug)]
pub struct QuorumStore {
    me: i32,
    /// `None` once shut down. Swapped atomically, so no request path takes a lock.
    member: ArcSwapOption<Member>,
    current: ArcSwap<Catalogue>,
    changed: Event,
    /// This run's broker registration epoch (0 until registered): only an image with this
    /// registration, unfenced, lets the node lead partitions.
    registered: std::sync::atomic::AtomicU64,
}

/// Why the quorum could not be joined.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JoinError(pub String);

impl QuorumStore {
    /// Starts this node's voter or observer (their threads), with the cluster id the data
    /// directory already belongs to, if any.
    /// `tls`: mutual TLS on the controller port, when configured.
    pub fn start(
        config: &NodeConfig,
        cluster_id: Option<Uuid>,
        tls: Option<odradek_controller::QuorumTls>,
    ) -> Result<Self, JoinError> {
        let c = &config.cluster;
        let id = u64::try_from(config.node_id).map_err(|_| JoinError("negative node id".into()))?;
        let dir = config.data_dir.join(CONTROLLER_DIR);
        let member = if c.roles.controller {
            let mut cc = ControllerConfig::new(id, c.controller_listen, c.voters.clone(), dir);
            cc.broker_session_timeout = Duration::from_millis(c.broker_session_timeout_ms);
            cc.cluster_id = cluster_id;
            cc.tls = tls;
            Member::Voter(Controller::start(cc).map_err(|e| JoinError(e.to_string()))?)
        } else {
            let mut oc = ObserverConfig::new(id, config.listen.ip(), c.voters.clone(), dir);
            oc.cluster_id = cluster_id;
            oc.tls = tls;
            Member::Observer(Observer::start(oc).map_err(|e| JoinError(e.to_string()))?)
        };
        let store = QuorumStore {
            me: config.node_id,
            member: ArcSwapOption::from_pointee(member),
            current: ArcSwap::from_pointee(Catalogue::default()),
            changed: Event::new(),
            registered: std::sync::atomic::AtomicU64::new(0),
        };
        store.refresh();
        Ok(store)
    }

    fn with_member<T>(&self, f: impl FnOnce(&Member) -> T) -> Option<T> {
        self.member.load().as_deref().map(f)
    }

    /// A watch over the images this node applies (`None` once shut down).
    pub fn subscribe(&self) -> Option<ImageWatch> {
        self.with_member(|m| match m {
            Member::Voter(c) => c.subscribe(),
            Member::Observer(o) => o.subscribe(),
        })
    }

    /// The cluster id, once this node knows it.
    pub fn cluster_id(&self) -> Option<Uuid> {
        self.with_member(|m| match m {
            Member::Voter(c) => c.cluster_id(),
            Member::Observer(o) => o.cluster_id(),
        })
        .flatten()
    }

    fn image(&self) -> Option<Arc<MetadataImage>> {
        self.with_member(|m| match m {
            Member::Voter(c) => c.image(),
            Member::Observer(o) => o.image(),
        })
    }

    /// Publishes the catalogue of the newest image if it is newer than the current one (or
    /// the cluster id became known); whether it did.
    pub fn refresh(&self) -> bool {
        let Some(image) = self.image() else { return false };
        let cluster_id = self.cluster_id().map(uuid_base64url).unwrap_or_default();
        let current = self.current.load_full();
        let registered = self.registered.load(std::sync::atomic::Ordering::Acquire);
        let leadable = image
            .brokers
            .get(&self.me)
            .is_some_and(|b| !b.fenced && registered != 0 && b.epoch == registered);
        if image.applied_index == current.applied_index
            && cluster_id == current.cluster_id
            && current.applied_index != 0
            && leadable == current.leadable
        {
            return false;
        }
        let mut next = build(&image, &current, self.me, cluster_id);
        next.leadable = leadable;
        self.current.store(Arc::new(next));
        self.changed.notify(usize::MAX);
        true
    }

    /// Records this run's registration epoch (see [`Catalogue::leadable`]) and republishes.
    pub fn set_registered(&self, epoch: u64) {
        self.registered.store(epoch, std::sync::atomic::Ordering::Release);
        self.refresh();
    }

    /// Proposes `command`, with the controller's own error.
    pub async fn propose_raw(&self, command: Command) -> Result<CommandResult, ControllerError> {
        // A clone of the handle: proposing only queues toward the member's thread.
        let member = self.member.load_full();
        match member.as_deref() {
            Some(Member::Voter(c)) => c.propose(command).await,
            Some(Member::Observer(o)) => o.propose(command).await,
            None => Err(ControllerError::ShutDown),
        }
    }

    /// Stops the voter or observer and joins its thread (blocks briefly: call from the main
    /// thread after the shards stopped; a proposal still in flight elsewhere keeps the member
    /// until it is answered).
    pub fn shutdown(&self) {
        drop(self.member.swap(None));
    }
}

impl MetadataStore for QuorumStore {
    fn snapshot(&self) -> Arc<Catalogue> {
        self.current.load_full()
    }

    fn changed(&self) -> event_listener::EventListener {
        self.changed.listen()
    }

    fn propose(&self, command: Command) -> BoxFuture<'_, Result<CommandResult, KafkaError>> {
        Box::pin(async move { self.propose_raw(command).await.map_err(kafka_error) })
    }

    fn quorum_status(&self) -> Option<Arc<QuorumStatus>> {
        self.with_member(|m| match m {
            Member::Voter(c) => Some(c.quorum_status()),
            Member::Observer(_) => None,
        })
        .flatten()
    }
}

/// The Kafka error a client gets for a failed proposal: retriable ones when the quorum is
/// unavailable, the matching code for a refusal.
pub fn kafka_error(e: ControllerError) -> KafkaError {
    let message = e.to_string();
    let code = match &e {
        ControllerError::NoQuorum { .. } => ec::NOT_CONTROLLER,
        ControllerError::Unknown { .. } => ec::REQUEST_TIMED_OUT,
        ControllerError::ShutDown => ec::BROKER_NOT_AVAILABLE,
        ControllerError::Refused(r) => match r {
            CommandError::TopicExists { .. } | CommandError::TopicIdExists { .. } => {
                ec::TOPIC_ALREADY_EXISTS
            }
            CommandError::UnknownTopic { .. } => ec::UNKNOWN_TOPIC_OR_PARTITION,
            CommandError::InvalidTopicName { .. } => ec::INVALID_TOPIC_EXCEPTION,
            CommandError::InvalidPartitions { .. } => ec::INVALID_PARTITIONS,
            CommandError::InvalidReplicationFactor { .. } => ec::INVALID_REPLICATION_FACTOR,
            CommandError::InvalidConfig { .. } => ec::INVALID_CONFIG,
            CommandError::TooLarge { .. } => ec::POLICY_VIOLATION,
            CommandError::UnknownBroker { .. } => ec::BROKER_ID_NOT_REGISTERED,
            // Unregistering a live broker: stop it and wait for its session timeout first.
            CommandError::BrokerNotFenced { .. } => ec::INVALID_REQUEST,
            CommandError::UnknownPartition { .. } => ec::UNKNOWN_TOPIC_OR_PARTITION,
            CommandError::ElectionNotNeeded => ec::ELECTION_NOT_NEEDED,
            CommandError::PreferredLeaderNotAvailable { .. } => ec::PREFERRED_LEADER_NOT_AVAILABLE,
            CommandError::EligibleLeadersNotAvailable => ec::ELIGIBLE_LEADERS_NOT_AVAILABLE,
            CommandError::InvalidReplicaAssignment { .. } => ec::INVALID_REPLICA_ASSIGNMENT,
            CommandError::NoReassignment => ec::NO_REASSIGNMENT_IN_PROGRESS,
            // AlterPartition's refusals, as Kafka's controller answers them.
            CommandError::NotLeader { .. } => ec::NOT_LEADER_OR_FOLLOWER,
            CommandError::FencedLeaderEpoch { .. } => ec::FENCED_LEADER_EPOCH,
            CommandError::InvalidUpdateVersion { .. } => ec::INVALID_UPDATE_VERSION,
            CommandError::IneligibleReplica { .. } => ec::INELIGIBLE_REPLICA,
            CommandError::StaleBrokerEpoch { .. } => ec::STALE_BROKER_EPOCH,
            CommandError::InvalidAcl { .. } => ec::INVALID_REQUEST,
            CommandError::InvalidScram { .. } => ec::UNACCEPTABLE_CREDENTIAL,
            CommandError::InvalidQuota { .. } => ec::INVALID_REQUEST,
            _ => ec::UNKNOWN_SERVER_ERROR,
        },
    };
    KafkaError::new(code, message)
}

/// Spreads a topic's partitions over the shards, starting at a place derived from its id (so
/// that many small topics do not all start on shard 0).
fn first_shard(id: Uuid) -> u32 {
    (id.as_u64_pair().0 % 4096) as u32
}

/// The catalogue of `image` for node `me`; topics that did not change keep their `Arc`.
fn build(image: &MetadataImage, prev: &Catalogue, me: i32, cluster_id: String) -> Catalogue {
    let topics: BTreeMap<String, Arc<Topic>> = image
        .topics
        .iter()
        .map(|(name, record)| {
            let topic = topic_of(record, me);
            let kept = prev.topics.get(name).filter(|t| ***t == topic).cloned();
            (name.clone(), kept.unwrap_or_else(|| Arc::new(topic)))
        })
        .collect();
    let brokers = image
        .unfenced_brokers()
        .map(|b| {
            let broker = Broker {
                id: b.id,
                host: b.host.clone(),
                port: b.port,
                rack: b.rack.clone(),
                listeners: b
                    .listeners
                    .iter()
                    .map(|l| (l.name.clone(), l.host.clone(), l.port))
                    .collect(),
            };
            (b.id, broker)
        })
        .collect();
    let mut catalogue = Catalogue {
        topics,
        brokers,
        cluster_id,
        applied_index: image.applied_index,
        broker_epoch: image.brokers.get(&me).map_or(0, |b| b.epoch),
        security: crate::security::SecurityView::of(image, &prev.security),
        ..Catalogue::default()
    };
    catalogue.reindex();
    catalogue
}

fn topic_of(record: &TopicRecord, me: i32) -> Topic {
    let first = first_shard(record.id);
    Topic {
        name: record.name.clone(),
        id: record.id,
        shards: record
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| {
                if p.replicas.contains(&me) {
                    first.wrapping_add(i as u32) % NOT_HERE
                } else {
                    NOT_HERE
                }
            })
            .collect(),
        configs: record.configs.clone(),
        placement: record
            .partitions
            .iter()
            .map(|p| Placement {
                replicas: p.replicas.clone(),
                isr: p.isr.clone(),
                elr: p.elr.clone(),
                leader: p.leader,
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
                adding: p.adding.clone(),
                removing: p.removing.clone(),
            })
            .collect(),
    }
}
