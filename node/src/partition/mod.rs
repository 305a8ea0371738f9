//! The partition room: a shard's partitions, each behind the [`Partition`] facade that owns
//! its log (private to this room), its high watermark, its leader epoch and its role (leader
//! or follower, as the controller's record says), plus what serves reads of them (the
//! recent-batch cache and incremental fetch sessions) and what replicates them: the leader's
//! view of its followers ([`replica`]) and this shard's replica fetchers ([`fetcher`]).
//!
//! **Invariants.**
//! - A partition is touched only by its owner shard's thread (`Rc`, `RefCell`, `Cell`); other
//!   shards reach it through the mesh.
//! - Nothing outside this room calls `storage::Log`: appends, reads, offsets, retention and
//!   closing all go through [`Partition`], so the high watermark and the leader epoch cannot be
//!   bypassed.
//! - The high watermark never goes backwards, never passes the log end offset, and consumers
//!   are never given records at or above it. On a leader it is the lowest log end offset in
//!   the ISR ([`replica::Replicas`]); on a follower, the leader's as its fetches report it,
//!   capped at its own log end. With one replica it is the log end offset after each append.
//! - Only the leader appends producers' batches, stamping its leader epoch in each; a follower
//!   appends the leader's batches as they are (offsets and epochs kept), and truncates only
//!   where its log diverges from the leader's (KIP-101/279/320), never blindly.
//! - An idempotent producer's batches to one partition are checked and appended one at a time
//!   (`producer_locks`), so a retry that races its original is answered as a duplicate.
//! - `acks=all` is answered only after every ISR member has the batch (the high watermark
//!   passed it) and, unless the topic sets `write.caching`, a group-committed fsync on the
//!   leader covers it; refused before appending when the ISR is below `min.insync.replicas`.
//!
//! **What it does not know.** Kafka requests and error codes (the `api` room translates its
//! typed errors), topics as metadata (it is handed a [`Topic`]), or other shards.

pub mod cache;
pub mod fetch_session;
pub mod fetcher;
mod registry;
pub mod replica;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::fd::AsFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use event_listener::Event;
use odradek_storage::batch::{BatchHeader, HEADER_BYTES, IncomingBatch, stored_header};
use odradek_storage::producers::{SeqCheck, SeqError};
use odradek_storage::txn::{AbortedTxn, TxnMarker};
use odradek_storage::{
    AppendError, CompioBackend, Log, LogConfig, LogError, ReadError, ReadResult, StorageFile,
};
use tracing::{debug, info, warn};
use uuid::Uuid;

pub use registry::{OpenError, Partitions, remove_deleted_leftovers, warn_orphans};

use crate::cluster::{Placement, Topic, topic_config};
use crate::config::DiskReads;
use cache::RecentBatches;
use replica::Replicas;

/// What this broker is for a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Takes produce requests, serves consumers and followers.
    Leader,
    /// Copies the log of `leader` (-1: none is elected now).
    Follower { leader: i32 },
}

/// The topic configs a partition acts on itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// `min.insync.replicas`: the smallest ISR that takes `acks=all` writes.
    pub min_isr: usize,
    /// `write.caching` (Redpanda's name): `acks=all` is answered once every ISR member has the
    /// batch, without waiting for the leader's fsync (Kafka's behaviour: durability from
    /// replicas).
    pub write_caching: bool,
}

impl Rules {
    pub fn of(topic: &Topic) -> Rules {
        let value = |k| topic_config::value(&topic.configs, k).unwrap_or("");
        Rules {
            min_isr: value("min.insync.replicas").parse().unwrap_or(1).max(1),
            write_caching: value("write.caching") == "true",
        }
    }
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
    /// Written on the leader (acks=0 and acks=1).
    Written,
    /// Committed (acks=all, and the node's own records): every ISR member has it, and the
    /// leader's fsync covers it unless the topic sets `write.caching`. Waits at most this long.
    Committed(Duration),
}

/// An append the log took (or had already taken: a producer's duplicate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: i64,
    /// The broker's timestamp when the topic uses `LogAppendTime`, else -1.
    pub log_append_time: i64,
    pub log_start_offset: i64,
    /// Where the append's time went (the latency breakdown).
    pub times: AppendTimes,
}

/// How long an append took: the write (with the producer's turn and the log's checks), and
/// for a committed append the waits for the fsync and for the ISR, each from when both began.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppendTimes {
    pub write: Duration,
    pub fsync: Duration,
    pub replicate: Duration,
}

/// Why a transactional batch (or a plain one inside a transaction) was not appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unverified {
    /// Not in the producer's transaction (or a plain batch inside one).
    #[error("{0}")]
    Refused(String),
    /// The producer was fenced (its epoch is not the transaction's).
    #[error("{0}")]
    Fenced(String),
    /// The coordinator could not be asked now; the producer may retry.
    #[error("{0}")]
    Unavailable(String),
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
    /// A transactional batch outside its producer's transaction, or a plain batch inside one.
    #[error("{0}")]
    Transaction(Unverified),
    /// The write happened but the fsync an `acks=all` waits for failed.
    #[error("fsync failed: {0}")]
    Sync(LogError),
    /// This broker does not lead the partition (any more).
    #[error("not the leader")]
    NotLeader,
    /// acks=all with fewer in-sync replicas than `min.insync.replicas`: nothing written.
    #[error("{isr} in-sync replicas, min.insync.replicas is {min}")]
    NotEnoughReplicas { isr: usize, min: usize },
    /// Written, but the ISR shrank below `min.insync.replicas` while waiting.
    #[error("written, but the ISR shrank to {isr} (min.insync.replicas {min})")]
    NotEnoughReplicasAfterAppend { isr: usize, min: usize },
    /// Written, but not replicated to every in-sync replica within the request's timeout.
    #[error("not replicated within {0:?}")]
    Timeout(Duration),
}

/// Why a fetch of this partition is refused before reading (leader epochs, KIP-320; roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FetchRefusal {
    #[error("not the leader")]
    NotLeader,
    /// The fetcher's leader epoch is older than the partition's.
    #[error("leader epoch {requested} is older than {current}")]
    FencedEpoch { requested: i32, current: i32 },
    /// The fetcher knows a newer leader epoch than this broker (its metadata is behind).
    #[error("leader epoch {requested} is newer than {current}")]
    UnknownEpoch { requested: i32, current: i32 },
}

/// What a follower's fetch position says, checked against the leader's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowerCheck {
    /// Consistent: read from the fetch offset.
    Read,
    /// The follower's last fetched epoch ends at `end_offset` here (or is unknown: -1, -1):
    /// it must truncate there first (KIP-320's diverging epoch).
    Diverging { epoch: i32, end_offset: i64 },
    /// Outside `[log start, log end]`.
    OutOfRange,
}

/// A read: the partition's offsets when it was made, and the records (or why none).
#[derive(Debug)]
pub struct Read {
    pub high_watermark: i64,
    pub last_stable_offset: i64,
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
    /// This broker's id.
    me: i32,
    log: Log<CompioBackend>,
    high_watermark: Cell<u64>,
    leader_epoch: Cell<i32>,
    role: Cell<Role>,
    rules: Cell<Rules>,
    /// The leader's view of its followers (meaningful while [`Role::Leader`]).
    replicas: RefCell<Replicas>,
    /// Notified when the high watermark moves or the role or leader epoch changes: what an
    /// `acks=all` append waits on.
    progress: Event,
    /// The log end offset when this broker's current leadership began: its leader epoch
    /// starts there (the leader-epoch cache gains the entry with the epoch's first batch).
    epoch_start: Cell<u64>,
    /// Read-ahead already asked for: (segment descriptor, end position of the advised range).
    prefetched: Cell<(i32, u64)>,
    /// One lock per idempotent producer with an append under way; an entry lives only while
    /// someone holds or waits for it.
    producer_locks: RefCell<HashMap<i64, Rc<async_lock::Mutex<()>>>>,
    /// Bytes and records in and out since the partition was opened here (metrics).
    traffic: Cell<Traffic>,
    shared: Rc<PartitionShared>,
}

/// A partition's traffic counters (read by scrapes on the owner shard).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Batches producers appended (not a producer's duplicates, not replicas' appends).
    pub bytes_in: u64,
    pub records_in: u64,
    /// Records read by consumers, and by follower replicas.
    pub bytes_out: u64,
    pub replication_bytes_out: u64,
}

impl Partition {
    fn new(
        topic: &Topic,
        index: i32,
        me: i32,
        log: Log<CompioBackend>,
        shared: Rc<PartitionShared>,
    ) -> Self {
        // Nothing recovered is known to be committed: a leader learns its high watermark
        // again from its ISR (at once when it is the only member), a follower from its leader.
        let high_watermark = Cell::new(log.log_start_offset());
        Self {
            topic: topic.name.clone(),
            topic_id: topic.id,
            index,
            me,
            log,
            high_watermark,
            leader_epoch: Cell::new(-1),
            role: Cell::new(Role::Follower { leader: -1 }),
            rules: Cell::new(Rules::of(topic)),
            replicas: RefCell::new(Replicas::new(me, &[me], &[me], 0, 0)),
            progress: Event::new(),
            epoch_start: Cell::new(0),
            prefetched: Cell::new((-1, 0)),
            producer_locks: RefCell::new(HashMap::new()),
            traffic: Cell::new(Traffic::default()),
            shared,
        }
    }

    /// Bytes and records in and out so far.
    pub fn traffic(&self) -> Traffic {
        self.traffic.get()
    }

    /// Counts bytes read by a consumer (`follower` false) or a follower replica.
    pub fn count_out(&self, bytes: u64, follower: bool) {
        let mut t = self.traffic.get();
        if follower {
            t.replication_bytes_out += bytes;
        } else {
            t.bytes_out += bytes;
        }
        self.traffic.set(t);
    }

    /// Bytes of the partition's segments.
    pub fn size_bytes(&self) -> u64 {
        self.log.size_bytes()
    }

    /// (replicas, in-sync replicas) as this broker last saw them.
    pub fn replica_counts(&self) -> (usize, usize) {
        let r = self.replicas.borrow();
        (r.replicas().len().max(1), r.isr().len())
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

    pub fn is_leader(&self) -> bool {
        self.role.get() == Role::Leader
    }

    /// The committed ISR as this broker last saw it.
    pub fn isr(&self) -> Vec<i32> {
        self.replicas.borrow().isr().to_vec()
    }

    /// How far behind each follower is, in offsets (leader only; empty otherwise).
    pub fn follower_lag(&self) -> Vec<(i32, u64)> {
        if !self.is_leader() {
            return Vec::new();
        }
        self.replicas.borrow().lag(self.log_end_offset())
    }

    /// The log, for this room's maintenance.
    fn log(&self) -> &Log<CompioBackend> {
        &self.log
    }

    fn set_config(&self, config: LogConfig, rules: Rules) {
        self.log.set_config(config);
        self.rules.set(rules);
        self.progress.notify(usize::MAX);
    }

    async fn close(&self) -> Result<(), LogError> {
        self.log.close().await
    }

    /// Applies the controller's record of this partition: leadership (a new leader epoch
    /// starts a new leadership), the replicas and the ISR. Leads only if `leadable` (the
    /// record comes from an image with this run's registration, unfenced); otherwise waits
    /// as a follower of nobody.
    async fn apply_placement(&self, placement: &Placement, leadable: bool) -> Result<(), LogError> {
        let epoch_changed = placement.leader_epoch != self.leader_epoch.get();
        if placement.leader == self.me && leadable {
            if epoch_changed || !self.is_leader() {
                let start = self.log.log_end_offset();
                self.epoch_start.set(start);
                *self.replicas.borrow_mut() = Replicas::new(
                    self.me,
                    &placement.replicas,
                    &placement.isr,
                    placement.partition_epoch,
                    start,
                );
                self.leader_epoch.set(placement.leader_epoch);
                self.role.set(Role::Leader);
                info!(topic = %self.topic, partition = self.index, leader_epoch = placement.leader_epoch, log_end_offset = start, high_watermark = self.high_watermark(), isr = ?placement.isr, "leading");
            } else {
                self.replicas.borrow_mut().update(
                    &placement.replicas,
                    &placement.isr,
                    placement.partition_epoch,
                );
            }
            self.maybe_advance_high_watermark();
        } else {
            let leader = if placement.leader == self.me { -1 } else { placement.leader };
            let role = Role::Follower { leader };
            if role != self.role.get() || epoch_changed {
                if self.is_leader() {
                    info!(topic = %self.topic, partition = self.index, leader = placement.leader, leader_epoch = placement.leader_epoch, "following");
                }
                // What this broker wrote as leader may be cut by divergence truncation: the
                // cache must not serve it afterwards.
                self.shared.recent.forget((self.topic_id, self.index));
                self.leader_epoch.set(placement.leader_epoch);
                self.role.set(role);
            }
            *self.replicas.borrow_mut() = Replicas::new(
                self.me,
                &placement.replicas,
                &placement.isr,
                placement.partition_epoch,
                0,
            );
        }
        self.progress.notify(usize::MAX);
        Ok(())
    }

    /// Leader: moves the high watermark up to the lowest log end offset in the ISR.
    fn maybe_advance_high_watermark(&self) {
        if !self.is_leader() {
            return;
        }
        let end = self.log.log_end_offset();
        let Some(hw) = self.replicas.borrow().high_watermark(end) else { return };
        self.raise_high_watermark(hw.min(end));
    }

    /// Sets the high watermark to `hw` if that is higher, waking whoever waits on it.
    fn raise_high_watermark(&self, hw: u64) {
        if hw > self.high_watermark.get() {
            self.high_watermark.set(hw);
            self.progress.notify(usize::MAX);
            self.shared.appended.notify(usize::MAX);
        }
    }

    /// Checks a fetcher's view of the leader epoch (KIP-320): -1 skips the check. A follower
    /// fetch must also reach the leader.
    pub fn check_fetch_epoch(
        &self,
        current_leader_epoch: i32,
        follower: bool,
    ) -> Result<(), FetchRefusal> {
        if follower && !self.is_leader() {
            return Err(FetchRefusal::NotLeader);
        }
        let current = self.leader_epoch.get();
        if current_leader_epoch < 0 || current_leader_epoch == current {
            Ok(())
        } else if current_leader_epoch < current {
            Err(FetchRefusal::FencedEpoch { requested: current_leader_epoch, current })
        } else {
            Err(FetchRefusal::UnknownEpoch { requested: current_leader_epoch, current })
        }
    }

    /// Leader: a follower `replica` fetches from `offset` after its last fetched epoch
    /// `last_fetched_epoch`. Checks divergence (KIP-320), then records its progress, which may
    /// move the high watermark; returns the ISR to propose if it has now caught up.
    pub fn follower_fetch(
        &self,
        replica: i32,
        offset: i64,
        last_fetched_epoch: i32,
    ) -> (FollowerCheck, Option<Vec<i32>>) {
        let end = self.log.log_end_offset();
        if last_fetched_epoch >= 0 {
            let (epoch, end_offset) = match self.end_offset_for_epoch(last_fetched_epoch) {
                Some((e, o)) => (e, o as i64),
                None => (-1, -1),
            };
            if epoch < last_fetched_epoch || end_offset < offset {
                return (FollowerCheck::Diverging { epoch, end_offset }, None);
            }
        }
        let Some(offset) =
            u64::try_from(offset).ok().filter(|o| *o >= self.log_start_offset() && *o <= end)
        else {
            return (FollowerCheck::OutOfRange, None);
        };
        let mut replicas = self.replicas.borrow_mut();
        if !replicas.is_replica(replica) {
            return (FollowerCheck::OutOfRange, None);
        }
        replicas.on_fetch(replica, offset, end, Instant::now());
        drop(replicas);
        self.maybe_advance_high_watermark();
        let expand = self.replicas.borrow().expansion(replica, self.high_watermark());
        (FollowerCheck::Read, expand)
    }

    /// Leader: the ISR to propose without followers that lagged more than `lag_max`.
    pub fn lagging(&self, lag_max: Duration) -> Option<Vec<i32>> {
        if !self.is_leader() {
            return None;
        }
        self.replicas.borrow().shrink(lag_max, Instant::now())
    }

    /// What an ISR proposal needs: (leader epoch, partition epoch), while leading.
    pub fn isr_proposal(&self, isr: Vec<i32>) -> Option<(i32, i32)> {
        if !self.is_leader() {
            return None;
        }
        let mut r = self.replicas.borrow_mut();
        r.propose(isr);
        Some((self.leader_epoch.get(), r.partition_epoch()))
    }

    /// An ISR proposal was answered: `committed` is the record when it was accepted.
    pub fn isr_settled(&self, leader_epoch: i32, committed: Option<(&[i32], &[i32], i32)>) {
        let mut r = self.replicas.borrow_mut();
        r.settle();
        if let Some((replicas, isr, partition_epoch)) = committed
            && leader_epoch == self.leader_epoch.get()
            && self.is_leader()
            && partition_epoch > r.partition_epoch()
        {
            r.update(replicas, isr, partition_epoch);
        }
        drop(r);
        self.maybe_advance_high_watermark();
        self.progress.notify(usize::MAX);
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
        self.append_verified(
            records,
            durability,
            None::<std::future::Ready<Result<(), Unverified>>>,
        )
        .await
    }

    /// As [`Partition::append`], for a producer's batch that may be transactional (KIP-890
    /// part 1): the first transactional batch of a producer's transaction on this partition
    /// is written only once `verify` (asking the transaction coordinator whether the partition
    /// was added to the producer's ongoing transaction) agrees, under the producer's turn, so
    /// no marker can slip in between; a non-transactional batch from a producer with an open
    /// transaction here is refused. Without `verify`, transactional batches are the node's own
    /// (offset commits of a transaction, checked by their writer).
    pub async fn append_verified<F>(
        &self,
        records: Bytes,
        durability: Durability,
        verify: Option<F>,
    ) -> Result<Appended, AppendFailure>
    where
        F: std::future::Future<Output = Result<(), Unverified>>,
    {
        if !self.is_leader() {
            return Err(AppendFailure::NotLeader);
        }
        let rules = self.rules.get();
        if let Durability::Committed(_) = durability {
            let isr = self.replicas.borrow().isr().len();
            if isr < rules.min_isr {
                return Err(AppendFailure::NotEnoughReplicas { isr, min: rules.min_isr });
            }
        }
        let epoch = self.leader_epoch.get();
        let began = Instant::now();
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
            SeqCheck::Append => match self.transaction_check(&header, verify).await {
                Ok(()) => self.write(header, records, epoch).await,
                Err(e) => Err(e),
            },
            SeqCheck::Duplicate { base_offset, last_offset } => {
                debug!(topic = %self.topic, partition = self.index, producer_id = header.producer_id, base_offset, "duplicate batch acknowledged, not written again");
                Ok((
                    Appended {
                        base_offset: base_offset as i64,
                        log_append_time: -1,
                        log_start_offset: self.log.log_start_offset() as i64,
                        times: AppendTimes::default(),
                    },
                    last_offset + 1,
                ))
            }
            SeqCheck::Refuse(e) => Err(AppendFailure::Sequence(e)),
        };
        drop(guard);
        self.release_producer_lock(header.producer_id, lock);
        let (mut appended, end) = written?;
        appended.times.write = began.elapsed();
        // A duplicate's original may not be committed yet: acks=all waits for it like any.
        if let Durability::Committed(timeout) = durability {
            (appended.times.fsync, appended.times.replicate) =
                self.commit(end, epoch, rules, timeout).await?;
        }
        Ok(appended)
    }

    /// The transactional checks of a batch about to be written (see
    /// [`Partition::append_verified`]).
    async fn transaction_check<F>(
        &self,
        header: &BatchHeader,
        verify: Option<F>,
    ) -> Result<(), AppendFailure>
    where
        F: std::future::Future<Output = Result<(), Unverified>>,
    {
        if header.producer_id < 0 {
            return Ok(());
        }
        let open = self.log.ongoing_txn(header.producer_id);
        if !header.is_transactional() {
            return match open {
                Some((epoch, first)) => {
                    Err(AppendFailure::Transaction(Unverified::Refused(format!(
                        "producer {} has a transaction open here since offset {first} (epoch {epoch}); a non-transactional batch cannot join it",
                        header.producer_id
                    ))))
                }
                None => Ok(()),
            };
        }
        if open.is_some_and(|(epoch, _)| epoch == header.producer_epoch) {
            return Ok(());
        }
        match verify {
            Some(verify) => verify.await.map_err(AppendFailure::Transaction),
            None => Ok(()),
        }
    }

    /// Writes a transaction marker (WriteTxnMarkers, from a transaction coordinator): a
    /// control batch ending producer `marker.producer_id`'s transaction here, as durable as
    /// `durability` asks. A marker from an older producer epoch is refused (a zombie
    /// coordinator's or producer's).
    pub async fn append_marker(
        &self,
        marker: TxnMarker,
        durability: Durability,
    ) -> Result<Appended, AppendFailure> {
        if !self.is_leader() {
            return Err(AppendFailure::NotLeader);
        }
        let rules = self.rules.get();
        let epoch = self.leader_epoch.get();
        let began = Instant::now();
        let lock = self.producer_lock(marker.producer_id);
        let guard = lock.lock().await;
        let written = self.log.append_marker(marker, epoch).await;
        drop(guard);
        self.release_producer_lock(marker.producer_id, Some(lock));
        let info = written?;
        self.maybe_advance_high_watermark();
        self.shared.appended.notify(usize::MAX);
        let mut appended = Appended {
            base_offset: info.base_offset as i64,
            log_append_time: -1,
            log_start_offset: info.log_start_offset as i64,
            times: AppendTimes { write: began.elapsed(), ..AppendTimes::default() },
        };
        if let Durability::Committed(timeout) = durability {
            (appended.times.fsync, appended.times.replicate) =
                self.commit(info.last_offset + 1, epoch, rules, timeout).await?;
        }
        Ok(appended)
    }

    /// The last stable offset: below it every transaction is decided (the high watermark, or
    /// the first offset of the oldest open transaction if lower).
    pub fn last_stable_offset(&self) -> u64 {
        let hw = self.high_watermark();
        self.log.first_unstable_offset().map_or(hw, |first| first.min(hw))
    }

    /// Producer `producer_id`'s open transaction here: its epoch and first offset.
    pub fn ongoing_txn(&self, producer_id: i64) -> Option<(i16, u64)> {
        self.log.ongoing_txn(producer_id)
    }

    /// Every open transaction here: (producer id, epoch, first offset).
    pub fn ongoing_txns(&self) -> Vec<(i64, i16, u64)> {
        self.log.ongoing_txns()
    }

    /// The aborted transactions a read_committed fetch of `[from, upto)` must be told of.
    pub fn aborted_transactions(&self, from: u64, upto: u64) -> Vec<AbortedTxn> {
        self.log.aborted_transactions(from, upto)
    }

    /// Waits until everything below `end` is committed: the high watermark passed it (every
    /// ISR member has it) and, unless `write.caching`, the leader's fsync covers it. Returns
    /// how long each took: (fsync, replication), both from the start of the wait.
    async fn commit(
        &self,
        end: u64,
        epoch: i32,
        rules: Rules,
        timeout: Duration,
    ) -> Result<(Duration, Duration), AppendFailure> {
        let began = Instant::now();
        let replicated = async {
            loop {
                let listener = self.progress.listen();
                if !self.is_leader() || self.leader_epoch.get() != epoch {
                    return Err(AppendFailure::NotLeader);
                }
                if self.high_watermark() >= end {
                    return Ok(began.elapsed());
                }
                listener.await;
            }
        };
        let synced = async {
            if !rules.write_caching {
                self.log.sync().await.map_err(AppendFailure::Sync)?;
            }
            Ok(began.elapsed())
        };
        let both = futures_util::future::try_join(synced, replicated);
        let times = match compio::time::timeout(timeout, both).await {
            Ok(result) => result?,
            Err(_) => return Err(AppendFailure::Timeout(timeout)),
        };
        let isr = self.replicas.borrow().isr().len();
        let min = self.rules.get().min_isr;
        if isr < min {
            return Err(AppendFailure::NotEnoughReplicasAfterAppend { isr, min });
        }
        Ok(times)
    }

    /// Writes a new batch stamped with leader epoch `epoch`; returns its offsets and the
    /// offset after it.
    async fn write(
        &self,
        header: BatchHeader,
        records: Bytes,
        epoch: i32,
    ) -> Result<(Appended, u64), AppendFailure> {
        let info = self.log.append_with_epoch(records.clone(), epoch).await?;
        let mut traffic = self.traffic.get();
        traffic.bytes_in += records.len() as u64;
        traffic.records_in += u64::from(header.records_count.max(0).unsigned_abs());
        self.traffic.set(traffic);
        self.maybe_advance_high_watermark();
        // Keep the batch as stored (offsets and epoch assigned) for tailing consumers.
        let incoming = IncomingBatch { header, bytes: records.clone() };
        let mut stored = stored_header(&incoming, info.base_offset as i64, info.log_append_time);
        stored[12..16].copy_from_slice(&epoch.to_be_bytes());
        self.shared.recent.insert(
            (self.topic_id, self.index),
            info.base_offset,
            info.last_offset + 1,
            &stored,
            records.slice(HEADER_BYTES..),
        );
        self.shared.appended.notify(usize::MAX);
        let appended = Appended {
            base_offset: info.base_offset as i64,
            log_append_time: info.log_append_time.unwrap_or(-1),
            log_start_offset: info.log_start_offset as i64,
            times: AppendTimes::default(),
        };
        Ok((appended, info.last_offset + 1))
    }

    /// Follower: where to fetch from next: (fetch offset, last fetched epoch or -1, log start).
    pub fn fetch_position(&self) -> (u64, i32, u64) {
        let epoch = self.log.latest_epoch().unwrap_or(-1);
        (self.log.log_end_offset(), epoch, self.log.log_start_offset())
    }

    /// Follower: appends the leader's batches as they are (whole batches only; a partial one at
    /// the end is left for the next fetch), then takes the leader's high watermark as far as
    /// its own log reaches. Returns the bytes appended.
    pub async fn append_replica(
        &self,
        records: Bytes,
        leader_hw: i64,
    ) -> Result<usize, AppendFailure> {
        if self.is_leader() {
            return Err(AppendFailure::NotLeader);
        }
        let whole = odradek_storage::batch::scan_headers(&records, |_| true);
        if whole > 0 {
            self.log.append_replica(records.slice(..whole)).await?;
        }
        if let Ok(hw) = u64::try_from(leader_hw) {
            self.raise_high_watermark(hw.min(self.log.log_end_offset()));
        }
        Ok(whole)
    }

    /// Follower: the leader says its log diverges from ours after `epoch`, whose end on the
    /// leader is `end_offset` (KIP-320). Truncates to where both agree: the lower of the
    /// leader's end for that epoch and ours (or, if the leader does not know the epoch at all,
    /// our high watermark: only a log written before epochs were recorded gets there).
    pub async fn truncate_diverging(&self, epoch: i32, end_offset: i64) -> Result<u64, LogError> {
        let ours = self.log.log_end_offset();
        let target = if epoch < 0 || end_offset < 0 {
            warn!(topic = %self.topic, partition = self.index, "the leader knows no epoch of this log; truncating to the high watermark");
            self.high_watermark()
        } else {
            let leader_end = end_offset as u64;
            match self.log.end_offset_for_epoch(epoch) {
                Some((_, local_end)) => leader_end.min(local_end),
                None => leader_end.min(ours),
            }
        };
        self.truncate(target).await
    }

    /// Follower: cuts the log back to `offset` (whole batches), keeping the high watermark at
    /// most the new log end.
    pub async fn truncate(&self, offset: u64) -> Result<u64, LogError> {
        self.shared.recent.forget((self.topic_id, self.index));
        let before = self.log.log_end_offset();
        let end = self.log.truncate_to(offset).await?;
        if end < self.high_watermark() {
            warn!(topic = %self.topic, partition = self.index, high_watermark = self.high_watermark(), log_end_offset = end, "truncated below the high watermark");
            self.high_watermark.set(end);
        }
        if end < before {
            info!(topic = %self.topic, partition = self.index, from = before, to = end, "truncated to the leader's log");
        }
        Ok(end)
    }

    /// Follower: the leader's log starts past ours ends: start over, empty, at `offset`.
    pub async fn restart_at(&self, offset: u64) -> Result<(), LogError> {
        self.shared.recent.forget((self.topic_id, self.index));
        self.log.truncate_fully_and_start_at(offset).await?;
        self.high_watermark.set(offset);
        warn!(topic = %self.topic, partition = self.index, offset, "log emptied: the leader's log starts after it ended");
        Ok(())
    }

    /// Follower: the leader moved its log start (retention, DeleteRecords): follow, as far as
    /// what is committed here.
    pub async fn follow_log_start(&self, leader_start: i64) -> Result<(), LogError> {
        let Ok(start) = u64::try_from(leader_start) else { return Ok(()) };
        let start = start.min(self.high_watermark());
        if start > self.log.log_start_offset() {
            self.log.delete_records(start).await?;
        }
        Ok(())
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
        self.read_below(offset, max_bytes, first, self.high_watermark()).await
    }

    /// As [`Partition::read`] for a read_committed consumer: never past the last stable
    /// offset.
    pub async fn read_committed(&self, offset: i64, max_bytes: u64, first: bool) -> Read {
        let mut read = self.read_below(offset, max_bytes, first, self.last_stable_offset()).await;
        read.high_watermark = self.high_watermark() as i64;
        read
    }

    /// As [`Partition::read`], for a follower: up to the log end, not the high watermark.
    pub async fn read_for_follower(&self, offset: i64, max_bytes: u64) -> Read {
        let mut read = self.read_below(offset, max_bytes, true, self.log_end_offset()).await;
        read.high_watermark = self.high_watermark() as i64;
        read
    }

    async fn read_below(&self, offset: i64, max_bytes: u64, first: bool, hw: u64) -> Read {
        let start = self.log.log_start_offset();
        let end = self.log.log_end_offset();
        let last_stable_offset = self.last_stable_offset() as i64;
        let answer = |records| Read {
            high_watermark: hw as i64,
            last_stable_offset,
            log_start_offset: start as i64,
            records,
        };
        // Out of range is judged against the log end, as Kafka does: an offset between the
        // high watermark and the log end (a restarted leader re-learning its high watermark)
        // reads nothing yet, without sending the consumer to its reset policy.
        let offset = match u64::try_from(offset) {
            Ok(o) if o >= start && o <= end.max(hw) => o,
            _ => {
                let requested = offset.max(0) as u64;
                let e = ReadError::OffsetOutOfRange { requested, log_start: start, log_end: end };
                return answer(Err(e.into()));
            }
        };
        if offset >= hw || (max_bytes == 0 && !first) {
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
        // start reading it now (synced bytes behind the page-cache window were dropped, and with
        // O_DIRECT writes none of it is in the page cache). Once per half window read, not per
        // fetch: each hint is a hop to the blocking pool (3-4 % of consume CPU when per fetch).
        let reads = self.shared.reads;
        let end = s.position + s.len;
        let fd = s.file.raw_fd().unwrap_or(-1);
        let (advised_fd, advised_to) = self.prefetched.get();
        if reads.prefetch_bytes > 0
            && (advised_fd != fd || end + reads.prefetch_bytes / 2 > advised_to)
        {
            let from = if advised_fd == fd { end.max(advised_to) } else { end };
            let to = end + reads.prefetch_bytes;
            match s.file.prefetch(from, to - from) {
                Ok(true) => self.prefetched.set((fd, to)),
                // Skipped: too many under way; the next fetch asks again.
                Ok(false) => {}
                Err(e) => {
                    debug!(topic = %self.topic, partition = self.index, error = %e, "prefetch hint refused");
                }
            }
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

    /// OffsetForLeaderEpoch: the largest epoch at or below `epoch` this log has and where it
    /// ends (Kafka's leader-epoch cache); `None` if unknown. A leader whose current epoch has
    /// no batch yet answers as if the cache had it, starting where the leadership began (Kafka
    /// assigns it on becoming leader), so that a follower's latest epoch is judged against it.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, u64)> {
        let current = self.leader_epoch.get();
        let cached = self.log.latest_epoch();
        let pending = self.is_leader() && cached.is_none_or(|c| c < current);
        if pending && epoch >= 0 {
            if epoch >= current {
                return (epoch == current).then(|| (current, self.log.log_end_offset()));
            }
            if cached.is_none_or(|c| epoch >= c) {
                // Between the last cached epoch and the current one: the current one starts
                // where the leadership began.
                return Some((cached.unwrap_or(epoch), self.epoch_start.get()));
            }
        }
        self.log.end_offset_for_epoch(epoch)
    }
}
