//! The transaction room: the transaction coordinator for the transactional ids whose
//! `__transaction_state` partition this shard owns and this broker leads.
//!
//! - `records`: Kafka's `__transaction_state` record layouts and the id → partition rule.
//! - `state`: one transaction's metadata and Kafka's state machine (Empty → Ongoing →
//!   PrepareCommit/PrepareAbort → CompleteCommit/CompleteAbort), pure.
//! - `coordinator`: a shard's transactions in memory ([`Transactions`]), loading a partition
//!   back, each request's decision made durable, writing the markers of a decided transaction
//!   (through [`TxnHost::write_markers`]), and the ticker that resumes decided transactions
//!   after a load and aborts those past their timeout.
//!
//! **Invariants.**
//! - Every state change is committed to the transactional id's `__transaction_state`
//!   partition (replicated to the ISR and fsynced) before it is answered or acted on: a
//!   transaction is PrepareCommit/PrepareAbort on disk before any marker is written, and
//!   CompleteCommit/CompleteAbort only after every marker was written on its partition's
//!   leader.
//! - One change at a time per transactional id (`Transactions::busy`): a request arriving
//!   while one is under way (or while markers are being written) is answered
//!   CONCURRENT_TRANSACTIONS, which clients retry.
//! - A decided transaction is always finished: by the task that decided it, or, after a
//!   failure, a restart or a leadership change, by the ticker of whichever shard then
//!   coordinates it (the decision is in the log, the markers are idempotent).
//! - No request is answered from a partition before it has been read back on this leader
//!   ([`coordinator::ensure_loaded`]); a coordinator that lost the leadership forgets the
//!   partition's transactions, and its writes fail (only a leader appends).
//!
//! **What it does not know.** Kafka requests (the `api` room's `txn` translates), where a
//! partition's leader is or how a marker reaches it (the host's `write_markers`), shards.

pub mod coordinator;
pub mod records;
pub mod state;

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use odradek_net::ErrorCode;

pub use coordinator::Transactions;

use crate::partition::Partition;

/// The coordinator's settings, from the node's config (Kafka's names in brackets).
#[derive(Debug, Clone, Copy)]
pub struct TxnSettings {
    /// The longest `transaction.timeout.ms` a producer may ask for
    /// (`transaction.max.timeout.ms`).
    pub max_timeout_ms: i32,
    /// How often open transactions are checked against their timeout
    /// (`transaction.abort.timed.out.transaction.cleanup.interval.ms`).
    pub abort_check_interval: Duration,
}

/// The markers of one decided transaction, to write on each partition's leader.
#[derive(Debug, Clone)]
pub struct Markers {
    pub producer_id: i64,
    pub epoch: i16,
    pub commit: bool,
    /// The leader epoch of the coordinator's `__transaction_state` partition.
    pub coordinator_epoch: i32,
    pub partitions: Vec<(String, i32)>,
}

/// What the transaction room needs from the shard it runs on.
pub trait TxnHost {
    fn txns(&self) -> &RefCell<Transactions>;
    fn txn_settings(&self) -> TxnSettings;
    /// Whether the shard is stopping (the ticker ends, marker retries stop).
    fn stopping(&self) -> bool;
    /// The `__transaction_state` partitions this shard owns and this broker leads.
    fn owned_txn_partitions(&self) -> Vec<i32>;
    /// This shard's `__transaction_state` partition `index`, opened.
    fn txn_partition(&self, index: i32) -> impl Future<Output = Result<Rc<Partition>, ErrorCode>>;
    /// The number of `__transaction_state` partitions, once the topic exists.
    fn txn_partition_count(&self) -> Option<i32>;
    /// A producer id never handed out before.
    fn allocate_producer_id(&self) -> impl Future<Output = Result<i64, ErrorCode>>;
    /// This shard's counters (transactions completed, timed out).
    fn stats(&self) -> &crate::metrics::ShardStats;
    /// Writes `markers` on each partition's leader, once; returns the partitions whose marker
    /// is not written yet (to try again). A partition that no longer exists counts as written.
    fn write_markers(&self, markers: Markers) -> impl Future<Output = Vec<(String, i32)>>;
}
