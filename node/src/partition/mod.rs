//! The partition room: a shard's partitions, each behind the [`Partition`] facade that owns
//! its log (private to this room), its high watermark, its leader epoch and its role, plus
//! what serves reads of them: the recent-batch cache and incremental fetch sessions.
//!
//! **Invariants.**
//! - A partition is touched only by its owner shard's thread (`Rc`, `RefCell`, `Cell`); other
//!   shards reach it through the mesh.
//! - Nothing outside this room calls `storage::Log`: appends, reads, offsets, retention and
//!   closing all go through [`Partition`], so the high watermark and the leader epoch cannot be
//!   bypassed.
//! - The high watermark never goes backwards, never passes the log end offset, and consumers
//!   are never given records at or above it. With one replica it is the log end offset after
//!   each append (the leader has the records, which is all a single replica can promise).
//! - An idempotent producer's batches to one partition are checked and appended one at a time
//!   (`producer_locks`), so a retry that races its original is answered as a duplicate.
//! - `acks=all` is answered only after the append is covered by a group-committed fsync.
//!
//! **What it does not know.** Kafka requests and error codes (the `api` room translates its
//! typed errors), topics as metadata (it is handed a [`Topic`]), or other shards.

pub mod cache;
pub mod fetch_session;
mod registry;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::fd::AsFd;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use event_listener::Event;
use odradek_storage::batch::{BatchHeader, HEADER_BYTES, IncomingBatch, stored_header};
use odradek_storage::producers::{SeqCheck, SeqError};
use odradek_storage::{
    AppendError, CompioBackend, Log, LogConfig, LogError, ReadError, ReadResult, StorageFile,
};
use tracing::debug;
use uuid::Uuid;

pub use registry::{OpenError, Partitions, remove_deleted_leftovers, warn_orphans};

use crate::cluster::Topic;
use crate::config::DiskReads;
use cache::RecentBatches;

/// The leader epoch of every partition while a node is its only replica: leadership never
/// moves, so it never changes.
pub const LEADER_EPOCH: i32 = 0;

/// What this broker is for a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Takes produce requests and serves consumers.
    Leader,
}

/// How reads from disk reach the socket, from the node's config.
#[derive(Debug, Clone, Copy)]
pub struct ReadSettings {
    pub disk_reads: DiskReads,
    /// Read-ahead asked of the kernel after a read from disk (0: none).
    pub prefetch_bytes: u64,
}

/// What the partitions of one shard share.
#[derive(Debug)]
struct PartitionShared {
    reads: ReadSettings,
    /// Notified after every append to any partition of this shard.
    appended: Event,
    /// The batches appended last, served to tailing consumers from memory.
    recent: RecentBatches,
}

impl PartitionShared {
    fn new(reads: ReadSettings, fetch_cache_bytes: usize) -> Self {
        Self { reads, appended: Event::new(), recent: RecentBatches::new(fetch_cache_bytes) }
    }
}

/// Some of a partition's records, where they are.
#[derive(Debug, Clone)]
pub enum Payload {
    /// In memory: cached batches, or a range read from the log.
    Mem(Bytes),
    /// A range of a segment file, spliced to the socket. The descriptor is a duplicate that
    /// can cross shards (the log's own handle is shard-local) and keeps the file readable
    /// even if retention deletes the segment meanwhile.
    File { file: Arc<std::fs::File>, position: u64, len: usize },
}

impl Payload {
    pub fn len(&self) -> usize {
        match self {
            Payload::Mem(b) => b.len(),
            Payload::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How durable an append must be before it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Written (acks=0 and acks=1).
    Written,
    /// Written and covered by an fsync (acks=all, and the node's own records).
    Synced,
}

/// An append the log took (or had already taken: a producer's duplicate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: i64,
    /// The broker's timestamp when the topic uses `LogAppendTime`, else -1.
    pub log_append_time: i64,
    pub log_start_offset: i64,
}

/// Why an append was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AppendFailure {
    /// The log refused the batch or could not write it.
    #[error(transparent)]
    Log(#[from] AppendError),
    /// The producer's epoch or sequence does not follow what the partition has.
    #[error(transparent)]
    Sequence(#[from] SeqError),
    /// The write happened but the fsync an `acks=all` waits for failed.
    #[error("fsync failed: {0}")]
    Sync(LogError),
}

/// A read: the partition's offsets when it was made, and the records (or why none).
#[derive(Debug)]
pub struct Read {
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub records: Result<Vec<Payload>, ReadFailure>,
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadFailure {
    #[error(transparent)]
    Log(#[from] ReadError),
    #[error("cannot duplicate a segment descriptor: {0}")]
    Descriptor(std::io::Error),
    #[error("reading a segment: {0}")]
    Io(std::io::Error),
}

/// One open partition, on its owner shard.
#[derive(Debug)]
pub struct Partition {
    pub topic: String,
    pub topic_id: Uuid,
    pub index: i32,
    log: Log<CompioBackend>,
    high_watermark: Cell<u64>,
    leader_epoch: Cell<i32>,
    role: Cell<Role>,
    /// One lock per idempotent producer with an append under way; an entry lives only while
    /// someone holds or waits for it.
    producer_locks: RefCell<HashMap<i64, Rc<async_lock::Mutex<()>>>>,
    shared: Rc<PartitionShared>,
}

impl Partition {
    fn new(
        topic: &Topic,
        index: i32,
        log: Log<CompioBackend>,
        shared: Rc<PartitionShared>,
    ) -> Self {
        // Every record the log recovered is the only replica's: all of it is committed.
        let high_watermark = Cell::new(log.log_end_offset());
        Self {
            topic: topic.name.clone(),
            topic_id: topic.id,
            index,
            log,
            high_watermark,
            leader_epoch: Cell::new(LEADER_EPOCH),
            role: Cell::new(Role::Leader),
            producer_locks: RefCell::new(HashMap::new()),
            shared,
        }
    }

    /// The offset below which records are committed and visible to consumers.
    pub fn high_watermark(&self) -> u64 {
        self.high_watermark.get()
    }

    pub fn log_start_offset(&self) -> u64 {
        self.log.log_start_offset()
    }

    /// The offset the next append gets.
    pub fn log_end_offset(&self) -> u64 {
        self.log.log_end_offset()
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.get()
    }

    pub fn role(&self) -> Role {
        self.role.get()
    }

    /// The log, for this room's maintenance.
    fn log(&self) -> &Log<CompioBackend> {
        &self.log
    }

    fn set_config(&self, config: LogConfig) {
        self.log.set_config(config);
    }

    async fn close(&self) -> Result<(), LogError> {
        self.log.close().await
    }

    /// Moves the high watermark up to the log end: a single replica commits what it wrote.
    fn advance_high_watermark(&self) {
        let end = self.log.log_end_offset();
        debug_assert!(end >= self.high_watermark.get(), "the high watermark never goes back");
        self.high_watermark.set(end.max(self.high_watermark.get()));
    }

    /// Appends one producer's batch (validated by the log): a new batch is written, a
    /// duplicate of an idempotent producer's recent batch is answered with its original
    /// offsets, a batch out of sequence is refused. Returns once the batch is as durable as
    /// `durability` asks.
    pub async fn append(
        &self,
        records: Bytes,
        durability: Durability,
    ) -> Result<Appended, AppendFailure> {
        let header = BatchHeader::parse(&records)
            .map_err(|e| AppendFailure::Log(AppendError::InvalidBatch(e)))?;
        // An idempotent producer's batches are checked and appended one at a time per producer
        // and partition, so that a retry arriving while the original is being written (on
        // another connection) is recognized as a duplicate. Other producers are not held up.
        let lock = (header.producer_id >= 0).then(|| self.producer_lock(header.producer_id));
        let guard = match &lock {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        let written = match self.log.check_producer(&header) {
            SeqCheck::Append => self.write(header, records).await,
            SeqCheck::Duplicate { base_offset, .. } => {
                debug!(topic = %self.topic, partition = self.index, producer_id = header.producer_id, base_offset, "duplicate batch acknowledged, not written again");
                Ok(Appended {
                    base_offset: base_offset as i64,
                    log_append_time: -1,
                    log_start_offset: self.log.log_start_offset() as i64,
                })
            }
            SeqCheck::Refuse(e) => Err(AppendFailure::Sequence(e)),
        };
        drop(guard);
        self.release_producer_lock(header.producer_id, lock);
        let appended = written?;
        // A duplicate's original may not be durable yet: acks=all waits for it like any append.
        if durability == Durability::Synced {
            self.log.sync().await.map_err(AppendFailure::Sync)?;
        }
        Ok(appended)
    }

    async fn write(&self, header: BatchHeader, records: Bytes) -> Result<Appended, AppendFailure> {
        let info = self.log.append(records.clone()).await?;
        self.advance_high_watermark();
        // Keep the batch as stored (offsets assigned) for tailing consumers.
        let incoming = IncomingBatch { header, bytes: records.clone() };
        let stored = stored_header(&incoming, info.base_offset as i64, info.log_append_time);
        self.shared.recent.insert(
            (self.topic_id, self.index),
            info.base_offset,
            info.last_offset + 1,
            &stored,
            &records[HEADER_BYTES..],
        );
        self.shared.appended.notify(usize::MAX);
        Ok(Appended {
            base_offset: info.base_offset as i64,
            log_append_time: info.log_append_time.unwrap_or(-1),
            log_start_offset: info.log_start_offset as i64,
        })
    }

    /// The lock that orders `producer_id`'s appends to this partition.
    fn producer_lock(&self, producer_id: i64) -> Rc<async_lock::Mutex<()>> {
        self.producer_locks.borrow_mut().entry(producer_id).or_default().clone()
    }

    /// Gives back a lock from [`Partition::producer_lock`]; the entry goes when unused.
    fn release_producer_lock(&self, producer_id: i64, lock: Option<Rc<async_lock::Mutex<()>>>) {
        let Some(lock) = lock else { return };
        let mut locks = self.producer_locks.borrow_mut();
        // The map's reference and ours: nobody else holds or waits for it.
        if Rc::strong_count(&lock) <= 2 {
            locks.remove(&producer_id);
        }
    }

    /// Whole batches from `offset`, at most `max_bytes` unless `first` (then the first batch
    /// whole, however large: KIP-74), never past the high watermark: from the recent-batch
    /// cache when it has them, else a range of a segment file (spliced, or read into memory).
    /// An offset outside `[log start, high watermark]` is `OffsetOutOfRange`.
    pub async fn read(&self, offset: i64, max_bytes: u64, first: bool) -> Read {
        let hw = self.high_watermark();
        let start = self.log.log_start_offset();
        let answer =
            |records| Read { high_watermark: hw as i64, log_start_offset: start as i64, records };
        let offset = match u64::try_from(offset) {
            Ok(o) if o >= start && o <= hw => o,
            _ => {
                let requested = offset.max(0) as u64;
                let e = ReadError::OffsetOutOfRange { requested, log_start: start, log_end: hw };
                return answer(Err(e.into()));
            }
        };
        if offset == hw || (max_bytes == 0 && !first) {
            return answer(Ok(Vec::new()));
        }
        let key = (self.topic_id, self.index);
        if let Some(cached) = self.shared.recent.read(key, offset, max_bytes, hw, first)
            && !cached.is_empty()
        {
            return answer(Ok(cached.into_iter().map(Payload::Mem).collect()));
        }
        answer(self.read_log(offset, max_bytes, hw, first).await)
    }

    async fn read_log(
        &self,
        offset: u64,
        max_bytes: u64,
        hw: u64,
        first: bool,
    ) -> Result<Vec<Payload>, ReadFailure> {
        let ReadResult { slice, .. } = self.log.read(offset, max_bytes, hw, first).await?;
        let Some(s) = slice else { return Ok(Vec::new()) };
        // A consumer reading the log from disk will want what follows next: have the kernel
        // start reading it now (the log writes with O_DIRECT, so it is not in the page cache).
        let reads = self.shared.reads;
        if let Err(e) = s.file.prefetch(s.position + s.len, reads.prefetch_bytes) {
            debug!(topic = %self.topic, partition = self.index, error = %e, "prefetch hint refused");
        }
        if reads.disk_reads == DiskReads::Splice {
            let fd = s.file.file().as_fd().try_clone_to_owned().map_err(ReadFailure::Descriptor)?;
            let file = Arc::new(std::fs::File::from(fd));
            return Ok(vec![Payload::File { file, position: s.position, len: s.len as usize }]);
        }
        let bytes = s.file.read_at(s.position, s.len as usize).await.map_err(ReadFailure::Io)?;
        Ok(vec![Payload::Mem(bytes)])
    }

    /// Up to `max_bytes` of whole batches from `offset`, copied into memory (the node reading
    /// its own records back, such as a group coordinator loading `__consumer_offsets`).
    pub async fn read_bytes(&self, offset: u64, max_bytes: u64) -> Result<Bytes, ReadError> {
        self.log.read_bytes(offset, max_bytes).await
    }

    /// The largest record timestamp in the log, if any.
    pub fn max_timestamp(&self) -> Option<i64> {
        self.log.max_timestamp()
    }

    /// The first record at or after `timestamp`: its offset and timestamp.
    pub async fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<(u64, i64)>, ReadError> {
        self.log.offset_for_timestamp(timestamp).await
    }

    /// DeleteRecords: moves the log start offset up to `offset` (at most the high watermark).
    pub async fn delete_records(&self, offset: u64) -> Result<u64, LogError> {
        if offset > self.high_watermark() {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                log_start: self.log_start_offset(),
                log_end: self.high_watermark(),
            });
        }
        self.log.delete_records(offset).await
    }

    /// The end offset of `epoch` (OffsetForLeaderEpoch), if this partition had that epoch.
    /// One epoch spans the whole log while the node is its only replica.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<u64> {
        (epoch == self.leader_epoch()).then(|| self.log_end_offset())
    }
}
