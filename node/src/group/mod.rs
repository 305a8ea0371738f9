//! The group room: consumer groups and their committed offsets, for the groups this shard
//! coordinates (those whose `__consumer_offsets` partition it owns).
//!
//! - `state`: one group's state machine (members, generation, protocol, leader, join deadline,
//!   session expiry) and its stored form.
//! - `records`: Kafka's `__consumer_offsets` record layouts (offset commits, group metadata),
//!   the group → partition rule, and [`Coordinated`], a shard's in-memory view of its groups,
//!   rebuilt by replaying the partitions (newest value per key wins).
//!
//! **Invariants.**
//! - A group is coordinated by the shard owning its `__consumer_offsets` partition; a commit is
//!   durable (fsynced) before it is visible or acknowledged, and a generation's assignment is
//!   durable before any member receives it.
//! - No group request is answered before the group's partition has been read back after a
//!   start.
//!
//! **What it does not know.** Kafka requests (the `api` room's `groups` translates them and
//! drives the state machine), or how records reach the disk (through the `partition` room).

pub mod records;
pub mod state;

pub use records::Coordinated;
