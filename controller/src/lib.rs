//! The controller quorum of Odradek: the cluster's metadata (brokers, topics, partitions,
//! configs, producer-id blocks) replicated by raft (openraft) among the configured voters,
//! as KRaft does for Kafka.
//!
//! # How the pieces fit
//! - [`image`]: the [`MetadataImage`] and the [`Command`]s that change it — a pure,
//!   deterministic state machine; a refused command changes nothing and returns a typed
//!   [`CommandError`].
//! - [`log_store`]: the raft log as the Kafka-format partition `__cluster_metadata-0` through
//!   `odradek_storage::Log` (one entry = one record in one RecordBatch v2), and the vote in a
//!   small durably written file.
//! - [`state_machine`]: applies committed entries, publishes images, snapshots them to files.
//! - [`net`]: the controller listener's protocol — bounded length-prefixed frames, a handshake
//!   that refuses other clusters, unknown nodes and different voter lists.
//! - [`controller`]: [`Controller`], the handle; its thread runs raft, the listener and the
//!   proposals on one compio runtime.
//! - [`observer`]: [`Observer`], for a node that is not a voter (`process.roles=broker`): it
//!   follows the image from the voters and forwards proposals, without a log of its own.
//!
//! # Contract
//! - [`Controller::start`] blocks its caller until the data directory is open and the
//!   listener bound (not until a leader is elected); `shutdown` and drop block until the
//!   controller thread has stopped. Every other method is non-blocking and may be called from
//!   any thread: call `start` and `shutdown` outside the shards.
//! - [`Controller::propose`] returns `Ok` only after the command is committed by a quorum and
//!   applied on the leader; `Err(Refused)` means the state machine refused it and nothing
//!   changed; a retriable error ([`ControllerError::is_retriable`]) when there is no quorum.
//! - [`Controller::image`] is the latest image applied on this node (it may trail the leader
//!   by the replication delay); images only move forward, and every node applies the same
//!   sequence of images. After a restart the image starts from the last snapshot and the
//!   saved committed index, and catches up with the quorum.
//!
//! # Invariants
//! - An entry is acknowledged to raft only after `Log::sync` returned; a vote only after its
//!   file was written, fsynced, renamed and the directory fsynced. No fsync blocks a thread:
//!   all go through io_uring.
//! - Exactly one node initializes a cluster: the lowest voter id, on an empty log; it stores
//!   the generated cluster id first. Others adopt the id from the first peer they meet and
//!   persist it; a node whose stored id differs is refused by every peer and refuses them.
//! - Nothing a peer sends reaches raft before its handshake passed; a frame over its bound or
//!   that does not decode closes the connection.
//! - Node ids are never reused: a broker id registered with another incarnation is refused
//!   until the old one is fenced and unregistered (the lost-disk procedure).
#![forbid(unsafe_code)]

pub mod config;
pub mod controller;
pub mod image;
pub mod log_store;
pub mod net;
pub mod observer;
pub mod state_machine;
pub mod types;

pub use config::{ControllerConfig, Voters, VotersError};
pub use controller::{
    Controller, ControllerError, ImageWatch, QuorumStatus, StartError, VoterStatus,
};
pub use image::{
    AclBinding, AclFilter, BrokerRecord, Command, CommandError, CommandReply, CommandResult,
    ElectionKind, Endpoint, MetadataImage, PartitionRecord, QuotaEntity, QuotaRecord,
    ScramCredential, TopicRecord,
};
pub use net::QuorumTls;
pub use observer::{Observer, ObserverConfig};
