//! Per-partition log configuration, named and defaulted as Kafka's topic configs are.
//!
//! Every limit here is a bound the log enforces; units are in the name.

use std::sync::Arc;
use std::time::Duration;

use crate::batch::TimestampType;

/// Told how long each device write and `fdatasync` of segment data took, for the node's
/// metrics. Called on the log's thread right after the operation completes; it must be cheap
/// (a few relaxed atomic adds) and must not block.
pub trait IoObserver: std::fmt::Debug + Send + Sync {
    /// One write of `bytes` of segment data (an append's chunk) took `took`.
    fn data_write(&self, took: Duration, bytes: u64);
    /// One `fdatasync` of a segment (a group commit) took `took`.
    fn data_sync(&self, took: Duration);
}

/// `cleanup.policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    /// `delete`: whole segments are removed by `retention.ms` / `retention.bytes`.
    pub delete: bool,
    /// `compact`: closed segments keep only the newest record per key.
    pub compact: bool,
}

impl CleanupPolicy {
    pub const DELETE: Self = Self { delete: true, compact: false };
    pub const COMPACT: Self = Self { delete: false, compact: true };
}

/// When the log calls `fdatasync` on its own, in addition to explicit [`crate::Log::sync`] calls
/// (which the node makes before answering an `acks=all` produce).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    /// `flush.messages`: sync once this many records are unsynced. `None` = never (Kafka's
    /// default, `Long.MAX_VALUE`).
    pub messages: Option<u64>,
    /// `flush.ms`: sync when the oldest unsynced append is this old, checked by
    /// [`crate::Log::flush_if_due`]. `None` = never.
    pub ms: Option<u64>,
}

/// Configuration of one partition's log.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `segment.bytes`: roll the active segment before it would exceed this size.
    pub segment_bytes: u64,
    /// `segment.ms`: roll the active segment when its first batch is older than this.
    pub segment_ms: u64,
    /// `index.interval.bytes`: add a sparse index entry at most every this many bytes.
    pub index_interval_bytes: u64,
    /// `max.message.bytes`: largest batch accepted from a producer.
    pub max_message_bytes: usize,
    /// `retention.ms`: delete closed segments whose newest record is older. `None` = forever.
    pub retention_ms: Option<u64>,
    /// `retention.bytes`: delete the oldest closed segments while the log is larger. `None` = no
    /// size limit.
    pub retention_bytes: Option<u64>,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// `delete.retention.ms`: how long compaction keeps tombstones.
    pub delete_retention_ms: u64,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// `flush.messages` / `flush.ms`.
    pub flush: FlushPolicy,
    /// Bound on the number of segments a partition may hold; an append that would roll past it
    /// fails with [`crate::AppendError::TooManySegments`] rather than exhaust file descriptors.
    pub segments_max: usize,
    /// Page cache kept per partition: once bytes are synced and more than this far behind the
    /// log end, the log asks the kernel to drop them (`posix_fadvise(DONTNEED)`), so that a
    /// write-heavy partition recycles a bounded set of cache pages instead of growing the
    /// cache (on this VM every new page-cache page costs a host page fault). Consumers tailing
    /// within the window read from memory; older reads go to the disk. `None` = never drop.
    pub page_cache_window_bytes: Option<u64>,
    /// Write segment data with `O_DIRECT` (through a reused, 4 KiB-aligned staging buffer; the
    /// partial last block is kept in memory and rewritten with the next write) instead of
    /// through the page cache. Falls back to buffered writes where the file system has no direct
    /// I/O. Reads always go through the page cache.
    pub direct_writes: bool,
    /// Writes through the page cache: start the device's writeback of a segment's dirty bytes
    /// every this many bytes (see `Log::start_writeback`). `None` = leave it to the kernel.
    pub writeback_bytes: Option<u64>,
    /// Bound on the keys compaction holds in memory in one pass (each costs ~40 bytes).
    pub compaction_keys_max: usize,
    /// Told the duration of every data write and `fdatasync` (the node's latency histograms).
    /// `None` = nobody listens.
    pub observer: Option<Arc<dyn IoObserver>>,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
            retention_ms: Some(7 * 24 * 3600 * 1000),
            retention_bytes: None,
            cleanup_policy: CleanupPolicy::DELETE,
            delete_retention_ms: 24 * 3600 * 1000,
            timestamp_type: TimestampType::CreateTime,
            flush: FlushPolicy { messages: None, ms: None },
            segments_max: 10_000,
            compaction_keys_max: 4_000_000,
            page_cache_window_bytes: Some(crate::log::PAGE_CACHE_WINDOW_BYTES),
            direct_writes: true,
            writeback_bytes: Some(crate::log::WRITEBACK_BYTES),
            observer: None,
        }
    }
}
