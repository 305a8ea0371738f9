//! `odradek_node`: the Kafka node as a library, with the `odradek` binary as a thin wrapper.
//!
//! The node is organised in rooms, each a module whose `mod.rs` states its invariants and what
//! it deliberately does not know. A request's path: [`server`] reads and decodes it on the
//! connection's shard and hands it, with the connection's [`server::Session`], to [`api`],
//! which translates wire ⇄ domain and sends each partition's work to its owner shard through
//! [`runtime::mesh`]; there the [`partition`], [`group`], [`cluster`] and [`producers`] rooms
//! do the work.
//!
//! ```text
//! serve ─► shard ─► server ─► api ─► partition ─► storage
//!            │                  ├──► group ──────► partition
//!            │                  ├──► cluster (MetadataStore)
//!            │                  └──► producers
//!            └──► runtime (threads, mesh, blocking pool)
//! ```
//!
//! Only `shard` (the per-shard composition of the rooms) and the rooms above it (`server`,
//! `api`) know every room; `partition`, `cluster`, `group` and `producers` know none of the
//! others except what their signatures name, and `runtime` knows none at all (it only uses
//! `checks::StartupError` to report a shard that cannot start).
#![forbid(unsafe_code)]

pub mod api;
pub mod checks;
pub mod cluster;
pub mod config;
pub mod error;
pub mod group;
pub mod metrics;
pub mod partition;
pub mod producers;
pub mod runtime;
pub mod security;
pub mod serve;
pub mod server;
pub mod shard;
pub mod tune;
pub mod txn;
