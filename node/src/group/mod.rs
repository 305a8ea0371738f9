//! The group room: consumer groups and their committed offsets, for the groups this shard
//! coordinates (those whose `__consumer_offsets` partition it owns).
//!
//! - `state`: one group's state machine (members, generation, protocol, leader, join deadline,
//!   session expiry) and its stored form.
//! - `records`: Kafka's `__consumer_offsets` record layouts (offset commits, group metadata),
//!   the group → partition rule, and [`Coordinated`], a shard's in-memory view of its groups,
//!   rebuilt by replaying the partitions (newest value per key wins).
//! - `coordinator`: the decisions of a coordinator — admitting a JoinGroup, checking a member
//!   or a committer, waiting for a group to change.
//! - `store`: reading a group partition back, and writing commits, tombstones and group
//!   metadata to it (fsynced before anything is acknowledged).
//! - `timers`: offsets expiry, session timeouts and join deadlines.
//!
//! **Invariants.**
//! - A group is coordinated by the shard owning its `__consumer_offsets` partition; a commit is
//!   durable (fsynced) before it is visible or acknowledged, and a generation's assignment is
//!   durable before any member receives it.
//! - No group request is answered before the group's partition has been read back after a
//!   start ([`store::ensure_loaded`]).
//! - Every string written to a record fits its length prefix, or the request is refused before
//!   anything is written ([`records::RecordError`]).
//!
//! **What it does not know.** Kafka requests (the `api` room's `groups` translates them and
//! routes each to its coordinator), shards or the mesh: it runs on the shard it is given,
//! through [`GroupHost`].

pub mod coordinator;
pub mod records;
pub mod state;
pub mod store;
pub mod timers;

use odradek_net::ErrorCode;
use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

pub use records::Coordinated;

use crate::partition::Partition;

/// The coordinator's settings, from the node's config (Kafka's names in brackets).
#[derive(Debug, Clone, Copy)]
pub struct GroupSettings {
    /// How long a new group's first rebalance waits for more members
    /// (`group.initial.rebalance.delay.ms`).
    pub initial_rebalance_delay: Duration,
    /// Bounds on a member's session timeout (`group.min.session.timeout.ms`,
    /// `group.max.session.timeout.ms`).
    pub session_timeout_min_ms: i32,
    pub session_timeout_max_ms: i32,
    /// Committed offsets of groups without members expire after this (`offsets.retention.ms`).
    pub offsets_retention: Duration,
    /// How often expiry runs (`offsets.retention.check.interval.ms`).
    pub offsets_retention_check_interval: Duration,
}

/// What the group room needs from the shard it runs on.
pub trait GroupHost {
    /// The groups this shard coordinates.
    fn groups(&self) -> &RefCell<Coordinated>;
    fn group_settings(&self) -> GroupSettings;
    /// Whether the shard is stopping (timers end).
    fn stopping(&self) -> bool;
    /// The `__consumer_offsets` partitions this shard owns and this node leads (none before the
    /// topic exists): the groups it coordinates.
    fn owned_offsets_partitions(&self) -> Vec<i32>;
    /// This shard's `__consumer_offsets` partition `index`, opened, or the Kafka error code
    /// to answer with.
    fn offsets_partition(
        &self,
        index: i32,
    ) -> impl Future<Output = Result<Rc<Partition>, ErrorCode>>;
    /// The number of `__consumer_offsets` partitions, once the topic exists.
    fn offsets_partition_count(&self) -> Option<i32>;
}
