//! The partition log of Odradek.
//!
//! One [`Log`] keeps one partition: an append-only sequence of Kafka RecordBatch v2 batches in
//! segment files `<dir>/<base_offset:020>.log`, each with a sparse offset index (`.index`) and a
//! time index (`.timeindex`) in Kafka's on-disk layout.
//!
//! # How the pieces fit
//! - [`batch`] parses and validates batch headers (CRC-32C, lengths, magic, record count) and
//!   rewrites base offsets; [`records`], [`compression`] and [`builder`] read and write the
//!   records inside a batch (used by compaction and timestamp lookups). All four are
//!   `odradek-records`, the one RecordBatch codec, re-exported here at their old paths.
//! - [`backend`] is the narrow file-I/O trait. [`backend::CompioBackend`] drives io_uring through
//!   compio; [`sim::SimBackend`] keeps files in memory, injects I/O errors and simulates crashes
//!   that keep only what was fsynced. With the `faults` cargo feature (tests only), `faults`
//!   makes the real backend fail writes to chosen files after a byte budget, as a failing
//!   device would (`ODRADEK_STORAGE_FAULTS`).
//! - [`index`] and [`segment`] hold the per-segment state; [`log::Log`] ties segments into a
//!   partition: group-committed appends, zero-copy reads, recovery, retention, truncation and
//!   ([`compact`]) log compaction.
//! - [`epochs`] is the leader-epoch cache (Kafka's `leader-epoch-checkpoint`): the first offset
//!   of each leader epoch, kept by every append (a leader's, which stamps its epoch with
//!   [`Log::append_with_epoch`], and a follower's [`Log::append_replica`], which writes a
//!   leader's batches as they are) and answering [`Log::end_offset_for_epoch`] for replication.
//! - [`txn`] holds transactions' markers (control batches) and the aborted-transaction index
//!   (Kafka's `.txnindex`); [`producers`] tracks each producer's ongoing transaction, so the
//!   log answers [`Log::first_unstable_offset`] and [`Log::aborted_transactions`] for
//!   read_committed fetches.
//!
//! # Guarantees
//! - After [`Log::append`] returns `Ok`, the batches have offsets and are visible to readers;
//!   after [`Log::sync`] returns `Ok`, every batch appended before the call is on stable storage
//!   and survives a crash of the process or the machine.
//! - Recovery after an unclean stop never serves a torn or corrupt batch: the tail is truncated
//!   at the first batch that fails its checks, and the truncation is logged.
//! - A failed append changes nothing and, unless the failure left the log unknowable (a write
//!   that cannot be cut back, a failed `fdatasync`: the log is then *fenced* until reopened),
//!   the next append that finds room succeeds: a full disk costs refused appends, never data.
//! - Every batch on disk whose leader epoch is ≥ 0 is covered by the epoch cache after any
//!   crash: a new epoch's entry is durable before its first batch is written, and entries past
//!   the recovered log end are dropped at open.
//!
//! # What this crate does not know
//! Kafka requests, sockets, topics-as-metadata and shards. It stores bytes of one partition,
//! on the thread that calls it (a `Log` is `!Send`; one shard owns it).
#![forbid(unsafe_code)]

pub mod backend;
/// The RecordBatch v2 codec lives in `odradek-records`; re-exported at its old paths.
pub use odradek_records::{batch, builder, compression, records};
pub mod compact;
pub mod config;
mod direct;
pub mod epochs;
pub mod error;
#[cfg(feature = "faults")]
pub mod faults;
pub mod index;
pub mod log;
pub mod producers;
pub mod segment;
pub mod sim;
pub mod txn;
pub mod wire;

pub use backend::{Backend, CompioBackend, StorageFile};
pub use config::{IoObserver, LogConfig};
pub use epochs::EpochEntry;
pub use error::{AppendError, LogError, ReadError};
pub use log::{
    AppendInfo, FileSlice, Log, PAGE_CACHE_WINDOW_BYTES, ReadResult, WRITEBACK_BYTES,
    WRITES_OK_QUIET_MS,
};
pub use txn::{AbortedTxn, MarkerKind, TxnMarker, control_batch, parse_marker};
