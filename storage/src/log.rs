//! One partition's log: segments, group-committed appends, zero-copy reads, recovery,
//! retention and truncation.
//!
//! # Concurrency
//! A `Log` lives on one shard thread and is shared by that thread's tasks through `Rc`. Methods
//! take `&self`; state sits in a `RefCell` that is never borrowed across an `.await`.
//! - Appends are **group-committed**: each caller queues its validated batches, then takes the
//!   writer lock; whoever holds it writes *every* queued batch in one vectored write, so all the
//!   batches that arrive while a write is in flight go out together in the next one.
//! - [`Log::sync`] likewise: one `fdatasync` covers every append that completed before it
//!   started, and callers whose appends it covered return without syncing again.
//! - Retention, truncation and compaction take a maintenance lock and never hold the writer lock
//!   across I/O of their own except where they must change the active segment.
//! - Locks are taken in the order maintenance → writer → syncer. With direct writes a sync also
//!   holds the writer lock, so writes and `fdatasync`s alternate instead of overlapping.
//!
//! # Contracts
//! - `append` returns `Ok` once the batches are in the page cache, have offsets, and are visible
//!   to `read`. They are durable once a later `sync` returns `Ok`.
//! - A failed write is cut off again (`ftruncate` back to the last whole batch); if even that
//!   fails, or an `fdatasync` fails (its dirty pages may be gone), the log is *fenced*: it
//!   refuses writes until it is reopened, and reopening runs recovery.
//! - Every other failed write of an append (a full disk, most often) returns
//!   [`AppendError::Io`] and leaves the log as it was, unfenced: a roll that fails part-way
//!   keeps the old segment active and is retried by the next append; a failed epoch checkpoint
//!   is rewritten before the next write; an all-or-nothing file's failed `.tmp` is removed.
//!   The next append that finds room succeeds. A run of failures is logged once
//!   (`appends failing`) and its end once ([`WRITES_OK_QUIET_MS`] after the last failure).
//! - Retention, DeleteRecords and compaction free space on a full disk: DeleteRecords deletes
//!   the whole segments below the new start before persisting it when there is no room for
//!   that small file, and a failed compaction copy is removed at once.
//! - `read` only ever returns whole batches below the log end offset.
//!
//! # Leader epochs (KIP-101/279)
//! - [`Log::append_with_epoch`] (a leader) stamps every stored batch's `partitionLeaderEpoch`;
//!   [`Log::append`] stores the field as given; [`Log::append_replica`] (a follower) writes a
//!   leader's batches byte for byte, offsets and epochs included, and only where they continue
//!   the log exactly.
//! - The epoch cache ([`crate::epochs`]) gains `(epoch, base offset)` for each batch whose epoch
//!   is ≥ 0 and above the latest; the entry is durable in `leader-epoch-checkpoint` *before*
//!   the first batch carrying it is written, so after any crash every batch on disk with an
//!   epoch is covered. Opening drops entries at or past the recovered log end (a crash between
//!   the checkpoint and the batch), and rebuilds a missing or unreadable checkpoint from the
//!   batch headers.
//! - Truncation drops the entries at or past the new end (persisted before `truncate_to`
//!   returns); a moved log start trims them from below (persisted lazily, at the next
//!   checkpoint write or close); [`Log::truncate_fully_and_start_at`] clears them.
//!
//! # Transactions
//! - [`Log::append_marker`] writes a COMMIT/ABORT marker as a control batch through the same
//!   group-commit queue; [`Log::append_replica`] takes a leader's control batches byte for byte.
//!   Either way the producer state ([`crate::producers`]) learns the marker from the batch's
//!   bytes when it is written, so a follower's ongoing transactions and aborted index match its
//!   leader's. [`Log::append`] refuses control batches.
//! - The aborted index ([`crate::txn::AbortedIndex`]) is in memory; a sealed segment's entries
//!   are also in `<base>.txnindex`, written all or nothing at roll and (for the active segment)
//!   at clean close. Opening and truncation rebuild the producer state and the active
//!   segment's entries from a snapshot plus a replay, and a lost sealed file from a replay of
//!   every batch on disk.
//! - Retention, DeleteRecords and compaction never go past the first unstable offset.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use async_lock::Mutex;
use bytes::Bytes;
use tracing::{debug, info, warn};

use crate::backend::{Backend, DIRECT_ALIGN, StorageFile, remove_if_exists};
use crate::batch::{self, BatchError, BatchHeader, IncomingBatch, TimestampType};
use crate::config::LogConfig;
use crate::direct;
use crate::epochs::{CHECKPOINT_FILE, EpochCache, EpochEntry};
use crate::error::{AppendError, IoFailure, LogError, ReadError};
use crate::producers::{ProducerStates, SeqCheck};
use crate::segment::{self, DirectState, SCAN_CHUNK_BYTES, ScanEnd, Segment};
use crate::txn::{self, AbortedIndex, AbortedTxn, MarkerKind, TxnMarker};

/// Name of the file whose presence says the log was closed cleanly.
pub const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown";
/// Name of the file that persists a log start offset set by `delete_records`.
pub const LOG_START_FILE: &str = "log-start-offset";
/// Bound on bytes queued for the writer; an append beyond it waits for the queue to drain.
pub const PENDING_BYTES_MAX: usize = 64 * 1024 * 1024;
/// A segment write (or sync) that takes this long is logged: every append waiting on it (and,
/// for a write, every acks=1 reply) waited as long.
pub const SLOW_IO: std::time::Duration = std::time::Duration::from_millis(20);
/// The default of `LogConfig::page_cache_window_bytes`.
pub const PAGE_CACHE_WINDOW_BYTES: u64 = 4 * 1024 * 1024;
/// Writes through the page cache start the device's writeback of every this many bytes of a
/// segment (see `Log::start_writeback`): the default of `LogConfig::writeback_bytes`.
pub const WRITEBACK_BYTES: u64 = 1 << 20;
/// A group-commit fdatasync that takes this long is logged (p50 is a few ms on a typical
/// disk, so this is far out in the tail).
pub const SLOW_SYNC: std::time::Duration = std::time::Duration::from_millis(100);
/// Producer-state snapshots are `<offset:020>.snapshot`, written at each roll and at close.
pub const PRODUCER_SNAPSHOT_SUFFIX: &str = "snapshot";
/// Producer-state snapshots kept per partition (the newest).
pub const PRODUCER_SNAPSHOTS_KEPT: usize = 3;

const _: () = assert!(PENDING_BYTES_MAX > 0);
// Opening falls back to an older snapshot when the newest is damaged: keep at least one.
const _: () = assert!(PRODUCER_SNAPSHOTS_KEPT >= 1);
// Recovery tells a direct write's padding by its being shorter than one block.
const _: () = assert!(DIRECT_ALIGN.is_power_of_two());

/// Milliseconds since the Unix epoch; injectable for tests.
pub type Clock = Rc<dyn Fn() -> i64>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Rc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    })
}

/// `<data_dir>/<topic>-<partition>`, the directory of one partition's log.
pub fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended.
    pub base_offset: u64,
    /// Offset of the last record appended.
    pub last_offset: u64,
    /// The broker's timestamp when the topic uses `LogAppendTime`, else `None`.
    pub log_append_time: Option<i64>,
    /// The log start offset after the append.
    pub log_start_offset: u64,
}

/// A byte range of a segment file holding whole batches: what a fetch sends to the socket
/// without copying. Holding it keeps the file open, so it stays valid if retention removes the
/// segment in the meantime.
#[derive(Debug, Clone)]
pub struct FileSlice<F> {
    pub file: F,
    pub position: u64,
    pub len: u64,
    /// Offset of the first batch in the range.
    pub first_offset: u64,
}

/// Asks the kernel to drop `seg`'s cached pages below `to` (rounded down to a page) that it
/// has not dropped yet, in steps of at least `min(WRITEBACK_BYTES, window)`: each drop is a
/// hint handed to the blocking pool, not worth a thread hop per small group commit. A hint:
/// failures are logged and ignored.
fn drop_cache_below<F: StorageFile>(seg: &mut Segment<F>, to: u64, window: u64) {
    const PAGE_BYTES: u64 = 4096;
    let to = to / PAGE_BYTES * PAGE_BYTES;
    if to < seg.cache_dropped_to + WRITEBACK_BYTES.min(window).max(PAGE_BYTES) {
        return;
    }
    let from = seg.cache_dropped_to;
    if let Err(e) = seg.file.drop_cache(from, to - from) {
        debug!(segment = %seg.path.display(), error = %e, "page cache drop-behind failed");
    }
    seg.cache_dropped_to = to;
}

/// Durably records a log start offset that segment boundaries alone would not give.
async fn persist_log_start<B: Backend>(
    backend: &B,
    dir: &Path,
    offset: u64,
) -> Result<(), LogError> {
    replace_file(backend, dir, LOG_START_FILE, offset.to_string().into_bytes()).await?;
    Ok(())
}

/// Replaces `dir/name` with `bytes` all or nothing: writes and syncs `name.tmp`, renames it over
/// `name` and syncs the directory. After a crash the file holds the old contents or the new,
/// never a mix (a leftover `.tmp` is removed at open).
async fn replace_file<B: Backend>(
    backend: &B,
    dir: &Path,
    name: &str,
    bytes: Vec<u8>,
) -> Result<(), IoFailure> {
    let tmp = dir.join(format!("{name}.tmp"));
    if let Err(failure) = segment::write_whole(backend, &tmp, bytes).await {
        // A full disk leaves a partial file: give its blocks back now rather than at the next
        // open (a failure to remove it changes nothing: open removes leftovers).
        if let Err(e) = remove_if_exists(backend, &tmp).await {
            debug!(file = %tmp.display(), error = %e, "cannot remove a failed temporary file");
        }
        return Err(failure);
    }
    let dst = dir.join(name);
    backend.rename(&tmp, &dst).await.map_err(io("rename", &dst))?;
    backend.sync_dir(dir).await.map_err(io("fsync dir", dir))?;
    Ok(())
}

/// Durably replaces the leader-epoch checkpoint of the log in `dir` with `cache`.
async fn write_epoch_checkpoint<B: Backend>(
    backend: &B,
    dir: &Path,
    cache: &EpochCache,
) -> Result<(), IoFailure> {
    replace_file(backend, dir, CHECKPOINT_FILE, cache.encode()).await?;
    debug!(dir = %dir.display(), entries = ?cache.entries(), "leader-epoch checkpoint written");
    Ok(())
}

/// Splits a record set copied from a leader ([`Log::append_replica`]) into its batches, each
/// validated as stored data (CRC included) and within the recovery bound, with offsets that
/// continue each other exactly. Nothing is rewritten.
fn split_replica_set(records: &Bytes) -> Result<Vec<IncomingBatch>, AppendError> {
    if records.is_empty() {
        return Err(BatchError::Empty.into());
    }
    let mut out = Vec::new();
    let mut pos = 0usize;
    let mut next: Option<u64> = None;
    while pos < records.len() {
        let rest = &records[pos..];
        let total = match batch::peek_total_len(rest) {
            None => {
                let available = rest.len();
                return Err(
                    BatchError::Truncated { needed: batch::LOG_OVERHEAD_BYTES, available }.into()
                );
            }
            Some(r) => r?,
        };
        // Recovery refuses larger batches, so writing one would lose it at the next crash.
        if total > segment::RECOVERY_BATCH_BYTES_MAX {
            let max = segment::RECOVERY_BATCH_BYTES_MAX;
            return Err(BatchError::TooLarge { size: total, max }.into());
        }
        if total > rest.len() {
            return Err(BatchError::Truncated { needed: total, available: rest.len() }.into());
        }
        let bytes = records.slice(pos..pos + total);
        let header = batch::validate(&bytes, batch::Strictness::Stored)?;
        let last = header.base_offset.checked_add(i64::from(header.last_offset_delta));
        if header.base_offset < 0 || last.is_none() {
            let reason = format!("batch base offset {} is out of range", header.base_offset);
            return Err(BatchError::InvalidRecords { reason }.into());
        }
        let base = header.base_offset as u64;
        // Offsets grow; a gap is what compaction left on the leader (Kafka accepts it too).
        if let Some(expected) = next
            && base < expected
        {
            return Err(AppendError::OffsetMismatch { expected, found: base });
        }
        // The producer state learns a marker's kind from its bytes when it is written; a
        // leader only stores well-formed markers, so anything else is refused before it is.
        if header.is_control() && txn::parse_marker(&bytes).is_none() {
            let reason = format!("control batch at offset {base} holds no transaction marker");
            return Err(BatchError::InvalidRecords { reason }.into());
        }
        next = Some(header.last_offset() as u64 + 1);
        out.push(IncomingBatch { header, bytes });
        pos += total;
    }
    Ok(out)
}

/// Removes what an interrupted compaction swap or small-file write left (`.cleaned`, `.tmp`)
/// and index files without a segment. Returns the segments' base offsets, ascending, and
/// whether a name in the directory changed.
async fn remove_leftovers<B: Backend>(
    backend: &B,
    dir: &Path,
    names: &[String],
) -> Result<(Vec<u64>, bool), LogError> {
    let mut bases: Vec<u64> = Vec::new();
    let mut dir_changed = false;
    for name in names {
        if let Some(base) = name.strip_suffix(".log").and_then(|s| s.parse::<u64>().ok()) {
            bases.push(base);
        } else if name.ends_with(".cleaned") || name.ends_with(".tmp") {
            let p = dir.join(name);
            backend.remove_file(&p).await.map_err(io("remove", &p))?;
            dir_changed = true;
        }
    }
    bases.sort_unstable();
    for name in names {
        let orphan = [".index", ".timeindex", ".txnindex"].iter().any(|ext| {
            name.strip_suffix(ext)
                .and_then(|s| s.parse::<u64>().ok())
                .is_some_and(|b| bases.binary_search(&b).is_err())
        });
        if orphan {
            let p = dir.join(name);
            backend.remove_file(&p).await.map_err(io("remove", &p))?;
            dir_changed = true;
        }
    }
    Ok((bases, dir_changed))
}

/// Opens segment `base` at recovery: loads it from its indexes when they can be trusted (after
/// a clean shutdown, or any segment but the last), else rebuilds it with a verifying scan and
/// cuts a torn tail off its file. A rebuilt closed segment gets its indexes written.
async fn recover_segment<B: Backend>(
    backend: &B,
    dir: &Path,
    base: u64,
    clean: bool,
    is_last: bool,
    cfg: &LogConfig,
    report: &mut RecoveryReport,
) -> Result<Segment<B::File>, LogError> {
    let path = segment::log_path(dir, base);
    let file = backend.open(&path, false).await.map_err(io("open", &path))?;
    let len = file.size().await.map_err(io("stat", &path))?;
    let mut seg = Segment::empty(base, path, file);
    if (clean || !is_last) && seg.load(backend, dir, len).await? {
        return Ok(seg);
    }
    report.indexes_rebuilt += 1;
    if let ScanEnd::Torn { valid_bytes, reason } =
        seg.rebuild(len, cfg.index_interval_bytes).await?
    {
        cut_torn_tail(&seg, len, valid_bytes, reason, cfg.direct_writes, report).await?;
    }
    // Pair of the append-side checks: what recovery keeps is whole validated batches, and the
    // file now ends where they do.
    assert!(seg.size <= len, "a segment never counts bytes its file lacks");
    if !is_last {
        // Save the repaired indexes so the next open does not scan again. Only an optimisation:
        // on a full disk the log opens with them in memory, and the files (a partial one
        // removed) are rebuilt at the next open.
        seg.push_time_entry();
        let (ix, tx) = (seg.offset_index.encode(), seg.time_index.encode());
        let (ipath, tpath) = (segment::index_path(dir, base), segment::time_index_path(dir, base));
        let saved = async {
            segment::write_whole(backend, &ipath, ix).await?;
            segment::write_whole(backend, &tpath, tx).await
        };
        if let Err(failure) = saved.await {
            if !failure.is_disk_full() {
                return Err(failure.into());
            }
            warn!(segment = %seg.path.display(), error = %failure, "cannot save the rebuilt indexes on a full disk; they are rebuilt again at the next open");
            for p in [&ipath, &tpath] {
                remove_if_exists(backend, p).await.map_err(io("remove", p))?;
            }
        }
    }
    Ok(seg)
}

/// Cuts the file of `seg` (of `len` bytes) back to its `valid_bytes` of whole batches and syncs
/// the cut, telling the zero padding of a direct write from a torn or corrupt tail.
async fn cut_torn_tail<F: StorageFile>(
    seg: &Segment<F>,
    len: u64,
    valid_bytes: u64,
    reason: String,
    direct_writes: bool,
    report: &mut RecoveryReport,
) -> Result<(), LogError> {
    assert_eq!(seg.size, valid_bytes, "the scan keeps exactly the valid prefix");
    let (path, cut) = (&seg.path, len - valid_bytes);
    // In direct mode a sub-block zero tail is the padding of the last write; in buffered mode
    // zeros mean a write that never reached the disk.
    let padding = direct_writes
        && cut < DIRECT_ALIGN as u64
        && seg
            .file
            .read_at(valid_bytes, cut as usize)
            .await
            .is_ok_and(|b| b.iter().all(|&x| x == 0));
    if padding {
        info!(segment = %path.display(), cut_bytes = cut, log_end_offset = seg.next_offset,
            "recovery cuts the zero padding of a direct write");
    } else {
        warn!(
            segment = %path.display(),
            valid_bytes,
            truncated_bytes = cut,
            log_end_offset = seg.next_offset,
            %reason,
            "recovery truncates a torn or corrupt segment tail"
        );
    }
    seg.file.set_len(valid_bytes).await.map_err(io("truncate", path))?;
    seg.file.sync_data().await.map_err(io("fdatasync", path))?;
    if padding {
        report.padding_bytes += cut;
    } else {
        report.truncated_bytes += cut;
        report.truncated_reason = Some(reason);
    }
    Ok(())
}

/// The log start offset at open: the first segment's base or a persisted DeleteRecords start,
/// whichever is higher. An empty directory gets its first segment here, at the persisted start
/// (or 0). Returns the start and whether a file was created.
async fn recover_log_start<B: Backend>(
    backend: &B,
    dir: &Path,
    segments: &mut BTreeMap<u64, Segment<B::File>>,
) -> Result<(u64, bool), LogError> {
    let persisted_start = match segment::read_whole(backend, &dir.join(LOG_START_FILE)).await? {
        Some(b) => std::str::from_utf8(&b).ok().and_then(|s| s.trim().parse::<u64>().ok()),
        None => None,
    };
    if segments.is_empty() {
        let base = persisted_start.unwrap_or(0);
        let path = segment::log_path(dir, base);
        let file = backend.open(&path, true).await.map_err(io("create", &path))?;
        segments.insert(base, Segment::empty(base, path, file));
        return Ok((base, true));
    }
    let first_base = segments.keys().next().copied().unwrap_or(0);
    Ok((first_base.max(persisted_start.unwrap_or(0)), false))
}

/// The result of a read.
#[derive(Debug, Clone)]
pub struct ReadResult<F> {
    /// Whole batches starting with the one that holds the requested offset; `None` at the end.
    pub slice: Option<FileSlice<F>>,
    pub log_start_offset: u64,
    /// The offset the next append will get (Kafka's log end offset).
    pub log_end_offset: u64,
}

/// What recovery found when the log was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub clean_shutdown: bool,
    pub segments: usize,
    /// Bytes cut off the tail, and the offset the log ends at after the cut.
    pub truncated_bytes: u64,
    pub truncated_reason: Option<String>,
    /// Zero padding of direct writes cut off the tail (not data: nothing was lost).
    pub padding_bytes: u64,
    pub indexes_rebuilt: usize,
}

/// What a retention pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
    pub log_start_offset: u64,
}

type AppendSlot = Rc<RefCell<Option<Result<AppendInfo, AppendError>>>>;

/// How a pending append's batches are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreMode {
    /// A leader's append ([`Log::append`]): offsets assigned from the log end; the batches'
    /// leader epochs kept as given.
    AsGiven,
    /// A leader's append ([`Log::append_with_epoch`]): offsets assigned, and every batch's
    /// `partitionLeaderEpoch` set to this epoch.
    Stamp(i32),
    /// A follower's append ([`Log::append_replica`]): written exactly as received, offsets and
    /// epochs included; the first batch must start at the log end when it is written.
    Replica,
}

struct PendingAppend {
    batches: Vec<IncomingBatch>,
    bytes: usize,
    records: u64,
    mode: StoreMode,
    slot: AppendSlot,
}

impl PendingAppend {
    /// The offsets the entry's batches span.
    fn span(&self) -> u64 {
        self.batches.iter().map(|b| b.header.offset_span()).sum()
    }
    /// For a replica append, the offset its first batch carries.
    fn replica_base(&self) -> Option<u64> {
        match self.mode {
            StoreMode::Replica => self.batches.first().map(|b| b.header.base_offset as u64),
            StoreMode::AsGiven | StoreMode::Stamp(_) => None,
        }
    }
}

/// One group write, ready to go: the stored headers joined to the producers' payloads, what
/// each append will be told, the log end offset after it, and the epoch cache after it when
/// its batches start new leader epochs.
struct Staged {
    iov: Vec<Bytes>,
    headers: Vec<BatchHeader>,
    /// For each of `headers`, the marker a control batch holds (`None` for data batches).
    markers: Vec<Option<MarkerKind>>,
    infos: Vec<AppendInfo>,
    records: u64,
    bytes: usize,
    end_offset: u64,
    epochs: Option<EpochCache>,
}

/// Assigns offsets from `next` (the log end) on to every batch of `entries`, in order (a
/// replica entry keeps its own, which `write_pending` checked start at `next`), builds their
/// stored headers, and the epoch cache `epochs` becomes once they are written; no I/O.
fn stage(
    entries: &[PendingAppend],
    mut next: u64,
    log_append_time: Option<i64>,
    epochs: &EpochCache,
) -> Staged {
    let mut iov: Vec<Bytes> = Vec::with_capacity(entries.len() * 4);
    let mut headers: Vec<BatchHeader> = Vec::new();
    let mut markers: Vec<Option<MarkerKind>> = Vec::new();
    let mut infos = Vec::with_capacity(entries.len());
    let mut records = 0u64;
    let mut new_epochs: Option<EpochCache> = None;
    for entry in entries {
        if let (StoreMode::Replica, Some(first)) = (entry.mode, entry.batches.first()) {
            // A leader's batches keep their offsets, past a compaction gap if there is one.
            next = next.max(first.header.base_offset as u64);
        }
        let base = next;
        let entry_time = match entry.mode {
            StoreMode::Replica => None,
            StoreMode::AsGiven | StoreMode::Stamp(_) => log_append_time,
        };
        for b in &entry.batches {
            let header = match entry.mode {
                StoreMode::Replica => {
                    // Written exactly as the leader stored it (validated, CRC included).
                    iov.push(b.bytes.clone());
                    b.header
                }
                StoreMode::AsGiven | StoreMode::Stamp(_) => {
                    let mut raw = batch::stored_header(b, next as i64, log_append_time);
                    if let StoreMode::Stamp(epoch) = entry.mode {
                        // Outside the CRC (which starts at byte 21): no checksum to redo.
                        raw[12..16].copy_from_slice(&epoch.to_be_bytes());
                    }
                    let header = BatchHeader::parse(&raw).expect("a validated header still parses");
                    debug_assert!(
                        batch::validate(
                            &[&raw[..], &b.bytes[batch::HEADER_BYTES..]].concat(),
                            batch::Strictness::Stored
                        )
                        .is_ok(),
                        "a batch about to be written fails the recovery check"
                    );
                    iov.push(Bytes::copy_from_slice(&raw));
                    iov.push(b.bytes.slice(batch::HEADER_BYTES..));
                    header
                }
            };
            // Offsets only grow, densely from the log end (a replica's past a leader's
            // compaction gaps); and what is written passes the check that recovery runs when it
            // reads the batch back (CRC included).
            if entry.mode == StoreMode::Replica {
                assert!(header.base_offset as u64 >= next, "replica batches only go forward");
                next = header.base_offset as u64;
            }
            assert_eq!(header.base_offset as u64, next, "batches are written at the log end");
            assert!(header.offset_span() >= 1, "a stored batch spans at least one offset");
            let epoch = header.partition_leader_epoch;
            let cache = new_epochs.as_ref().unwrap_or(epochs);
            if cache.is_new_epoch(epoch) {
                new_epochs.get_or_insert_with(|| epochs.clone()).assign(epoch, next);
            } else if epoch >= 0 && cache.latest_epoch() != Some(epoch) {
                debug!(
                    offset = next,
                    epoch,
                    latest_epoch = ?cache.latest_epoch(),
                    "batch with an epoch below the latest; epoch cache unchanged"
                );
            }
            next += header.offset_span();
            // Checked when the batch was taken (`append_marker` builds it, a replica's is
            // refused unless it parses, `append` refuses control batches).
            let marker = header.is_control().then(|| txn::parse_marker(&b.bytes)).flatten();
            assert!(!header.is_control() || marker.is_some(), "a control batch holds a marker");
            markers.push(marker.map(|(kind, _)| kind));
            headers.push(header);
        }
        records += entry.records;
        infos.push(AppendInfo {
            base_offset: base,
            last_offset: next - 1,
            log_append_time: entry_time,
            log_start_offset: 0,
        });
    }
    let bytes: usize = iov.iter().map(Bytes::len).sum();
    Staged { iov, headers, markers, infos, records, bytes, end_offset: next, epochs: new_epochs }
}

/// How the leader-epoch checkpoint file stands against the cache in memory, from best to
/// worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum EpochFile {
    /// The file holds the cache.
    Current,
    /// The file also holds entries below the log start (a moved start is persisted lazily:
    /// they only add information about records that are gone).
    Behind,
    /// The file may hold entries the log does not (a checkpoint written for batches whose
    /// write then failed, or a rewrite that failed): it is rewritten before the next write.
    Unsafe,
}

pub(crate) struct State<F> {
    pub(crate) segments: BTreeMap<u64, Segment<F>>,
    pub(crate) log_start_offset: u64,
    /// Every offset below this is on stable storage.
    pub(crate) synced_offset: u64,
    /// Bumped whenever a name in the directory changes; `dir_synced_gen` trails it.
    pub(crate) dir_gen: u64,
    pub(crate) dir_synced_gen: u64,
    pub(crate) records_written: u64,
    pub(crate) records_synced: u64,
    pub(crate) oldest_unsynced_ms: Option<i64>,
    pub(crate) fenced: Option<String>,
    pub(crate) closed: bool,
    /// The leader-epoch cache, and how its checkpoint file stands against it.
    pub(crate) epochs: EpochCache,
    pub(crate) epoch_file: EpochFile,
}

impl<F: StorageFile> State<F> {
    /// The state recovery found: `segments` (at least one) starting at `log_start`, everything
    /// in them on stable storage (recovery synced every cut, and kept only what it read back).
    fn recovered(segments: BTreeMap<u64, Segment<F>>, log_start: u64) -> Self {
        let end = segments.values().next_back().map(|s| s.next_offset).unwrap_or(0);
        let state = State {
            segments,
            log_start_offset: log_start,
            synced_offset: end,
            dir_gen: 0,
            dir_synced_gen: 0,
            records_written: 0,
            records_synced: 0,
            oldest_unsynced_ms: None,
            fenced: None,
            closed: false,
            epochs: EpochCache::default(),
            epoch_file: EpochFile::Current,
        };
        state.assert_invariants();
        state
    }

    /// Asserts the log's documented invariants (ARCHITECTURE.md, `storage/`) where they are
    /// established: at open, and after a roll, a truncation or a segment deletion. O(segments).
    pub(crate) fn assert_invariants(&self) {
        assert!(!self.segments.is_empty(), "a log always has an active segment");
        let end = self.log_end_offset();
        let (start, synced) = (self.log_start_offset, self.synced_offset);
        assert!(synced <= end, "synced offset {synced} beyond the log end {end}");
        assert!(start <= end, "log start {start} beyond the log end {end}");
        let active = self.active().base_offset;
        let mut prev_end: Option<u64> = None;
        for (&base, seg) in &self.segments {
            assert_eq!(base, seg.base_offset, "segments are keyed by their base offset");
            assert!(seg.next_offset >= base, "segment {base} ends before it starts");
            // Offsets only grow: no segment starts below the end of the one before it.
            assert!(prev_end.is_none_or(|p| base >= p), "segment {base} overlaps its predecessor");
            prev_end = Some(seg.next_offset);
            // Only the active segment is written directly, so only it may end in padding.
            let direct = matches!(seg.direct, DirectState::Open { .. });
            assert!(base == active || !direct, "sealed segment {base} is open for direct writes");
        }
        // Epochs strictly increasing, each starting below the log end (or, once the start
        // moved to the end, the one left at it).
        self.epochs.check(start, end);
    }

    /// The log start moved up: drops the epoch entries below it. Persisting that is lazy.
    fn epochs_follow_start(&mut self) {
        if self.epochs.truncate_from_start(self.log_start_offset) {
            self.epoch_file = self.epoch_file.max(EpochFile::Behind);
        }
    }

    pub(crate) fn active(&self) -> &Segment<F> {
        self.segments.values().next_back().expect("a log always has an active segment")
    }
    pub(crate) fn active_mut(&mut self) -> &mut Segment<F> {
        self.segments.values_mut().next_back().expect("a log always has an active segment")
    }
    pub(crate) fn log_end_offset(&self) -> u64 {
        self.active().next_offset
    }
    pub(crate) fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size).sum()
    }
    /// Base offsets of the sealed segments that end at or below `offset` (the active segment
    /// never goes: DeleteRecords' candidates).
    fn sealed_below(&self, offset: u64) -> Vec<u64> {
        let sealed = self.segments.len() - 1;
        self.segments
            .values()
            .take(sealed)
            .filter(|s| s.next_offset <= offset)
            .map(|s| s.base_offset)
            .collect()
    }
    fn check_writable(&self) -> Result<(), AppendError> {
        if self.closed {
            return Err(AppendError::Closed);
        }
        if let Some(reason) = &self.fenced {
            return Err(AppendError::Fenced { reason: reason.clone() });
        }
        Ok(())
    }
}

/// One partition's log. See the module docs for its contracts.
pub struct Log<B: Backend> {
    pub(crate) backend: B,
    pub(crate) dir: PathBuf,
    pub(crate) config: RefCell<LogConfig>,
    pub(crate) clock: Clock,
    pub(crate) state: RefCell<State<B::File>>,
    pending: RefCell<VecDeque<PendingAppend>>,
    pending_bytes: Cell<usize>,
    writer: Mutex<()>,
    syncer: Mutex<()>,
    pub(crate) maintenance: Mutex<()>,
    /// Idempotent producers' last batches and ongoing transactions, updated as batches are
    /// written.
    producers: RefCell<ProducerStates>,
    /// Every aborted transaction whose marker is in the log (see [`crate::txn`]); sealed
    /// segments also have theirs in `<base>.txnindex`.
    pub(crate) aborted: RefCell<AbortedIndex>,
    /// Appends are failing with I/O errors (a full disk, most often): set by the first failed
    /// group write, which is logged once; cleared (and logged) by a write that succeeds once
    /// none failed for [`WRITES_OK_QUIET_MS`]. The failures in between are logged at debug level.
    write_failing: Cell<bool>,
    /// When the last group write failed (the log's clock, ms), and how many failed since the
    /// first was logged.
    last_write_failure: Cell<Option<i64>>,
    write_failures: Cell<u64>,
}

/// Appends that failed count as succeeding again once none failed for this long (ms of the
/// log's clock). Without it a nearly full disk, which refuses large batches and takes small
/// ones, would log a pair of lines per flap.
pub const WRITES_OK_QUIET_MS: i64 = 5_000;

impl<B: Backend> std::fmt::Debug for Log<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.state.borrow();
        f.debug_struct("Log")
            .field("dir", &self.dir)
            .field("segments", &st.segments.len())
            .field("log_start_offset", &st.log_start_offset)
            .field("log_end_offset", &st.log_end_offset())
            .finish()
    }
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> IoFailure + 'a {
    move |e| IoFailure::new(op, path, e)
}

impl<B: Backend> Log<B> {
    /// Opens (creating if needed) the log in `dir`, recovering it if it was not closed cleanly.
    pub async fn open(backend: B, dir: &Path, config: LogConfig) -> Result<Self, LogError> {
        Self::open_with_clock(backend, dir, config, system_clock()).await.map(|(log, _)| log)
    }

    /// [`Log::open`] with an injected clock; also returns what recovery found.
    pub async fn open_with_clock(
        backend: B,
        dir: &Path,
        config: LogConfig,
        clock: Clock,
    ) -> Result<(Self, RecoveryReport), LogError> {
        backend.create_dir_all(dir).await.map_err(io("mkdir", dir))?;
        let names = backend.list_dir(dir).await.map_err(io("list", dir))?;
        let clean = names.iter().any(|n| n == CLEAN_SHUTDOWN_FILE);
        let mut report = RecoveryReport { clean_shutdown: clean, ..Default::default() };
        let (bases, mut dir_changed) = remove_leftovers(&backend, dir, &names).await?;
        let mut segments = BTreeMap::new();
        for (i, &base) in bases.iter().enumerate() {
            let is_last = i + 1 == bases.len();
            let seg =
                recover_segment(&backend, dir, base, clean, is_last, &config, &mut report).await?;
            if let Some(prev) =
                segments.values().next_back().map(|s: &Segment<B::File>| s.next_offset)
                && base < prev
            {
                return Err(LogError::Corrupt {
                    path: seg.path,
                    position: 0,
                    reason: format!(
                        "segment base {base} overlaps the previous segment ending at {prev}"
                    ),
                });
            }
            segments.insert(base, seg);
        }
        let (mut log_start, created) = recover_log_start(&backend, dir, &mut segments).await?;
        dir_changed |= created;
        if clean {
            let marker = dir.join(CLEAN_SHUTDOWN_FILE);
            backend.remove_file(&marker).await.map_err(io("remove", &marker))?;
            dir_changed = true;
        }
        if dir_changed {
            backend.sync_dir(dir).await.map_err(io("fsync dir", dir))?;
        }
        let end = segments.values().next_back().map(|s| s.next_offset).unwrap_or(0);
        if log_start > end {
            // A DeleteRecords start was synced but the records below it were not (a crash took
            // them): the log now starts at its end, and says so durably.
            warn!(dir = %dir.display(), persisted_start = log_start, log_end_offset = end, "log start beyond recovered end");
            persist_log_start(&backend, dir, end).await?;
            log_start = end;
        }
        report.segments = segments.len();
        info!(
            dir = %dir.display(),
            clean_shutdown = clean,
            segments = segments.len(),
            log_start_offset = log_start,
            log_end_offset = end,
            truncated_bytes = report.truncated_bytes,
            "partition log opened"
        );
        let state = State::recovered(segments, log_start);
        let log = Log::with_state(backend, dir, config, clock, state);
        log.load_txn_state().await?;
        log.load_epochs().await?;
        Ok((log, report))
    }

    /// A log over recovered `state`, with nothing queued and no producer state yet.
    fn with_state(
        backend: B,
        dir: &Path,
        config: LogConfig,
        clock: Clock,
        state: State<B::File>,
    ) -> Self {
        Log {
            backend,
            dir: dir.to_path_buf(),
            config: RefCell::new(config),
            clock,
            state: RefCell::new(state),
            pending: RefCell::new(VecDeque::new()),
            pending_bytes: Cell::new(0),
            writer: Mutex::new(()),
            syncer: Mutex::new(()),
            maintenance: Mutex::new(()),
            producers: RefCell::new(ProducerStates::default()),
            aborted: RefCell::new(AbortedIndex::default()),
            write_failing: Cell::new(false),
            last_write_failure: Cell::new(None),
            write_failures: Cell::new(0),
        }
    }

    /// Whether appends have been failing with I/O errors: from the first failed group write
    /// until one succeeds after [`WRITES_OK_QUIET_MS`] without failures.
    pub fn write_failing(&self) -> bool {
        self.write_failing.get()
    }

    /// Logs a group write that failed with an I/O error (`step`: the write, the roll, the epoch
    /// checkpoint) once per run of failures: a full disk fails every produce until space is
    /// freed, and a line per request would flood the log. Other refusals are not write failures.
    fn note_write_failed(&self, step: &'static str, failure: &AppendError) {
        if !matches!(failure, AppendError::Io(_)) {
            return;
        }
        self.last_write_failure.set(Some((self.clock)()));
        if self.write_failing.replace(true) {
            self.write_failures.set(self.write_failures.get() + 1);
            debug!(dir = %self.dir.display(), step, error = %failure, "append failed again");
            return;
        }
        self.write_failures.set(1);
        let disk_full = matches!(failure, AppendError::Io(f) if f.is_disk_full());
        // Unless fenced (logged on its own), the log is unchanged: it takes writes again once
        // the cause is gone (space freed).
        let fenced = self.state.borrow().fenced.is_some();
        warn!(dir = %self.dir.display(), step, disk_full, fenced, error = %failure, "appends failing");
    }

    /// After a group write succeeded: logs that appends succeed again, once none failed for
    /// [`WRITES_OK_QUIET_MS`].
    fn note_write_ok(&self) {
        let now = (self.clock)();
        let quiet = self.last_write_failure.get().is_none_or(|t| now - t >= WRITES_OK_QUIET_MS);
        if quiet && self.write_failing.replace(false) {
            let failed_writes = self.write_failures.replace(0);
            info!(dir = %self.dir.display(), log_end_offset = self.log_end_offset(), failed_writes, "appends succeed again");
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn config(&self) -> LogConfig {
        self.config.borrow().clone()
    }
    /// Replaces the configuration (topic config changes); takes effect for the next append,
    /// roll, retention or compaction pass.
    pub fn set_config(&self, config: LogConfig) {
        *self.config.borrow_mut() = config;
    }
    pub fn log_start_offset(&self) -> u64 {
        self.state.borrow().log_start_offset
    }
    /// The offset the next appended record gets.
    pub fn log_end_offset(&self) -> u64 {
        self.state.borrow().log_end_offset()
    }
    /// Every offset below this is on stable storage.
    pub fn synced_offset(&self) -> u64 {
        self.state.borrow().synced_offset
    }
    pub fn size_bytes(&self) -> u64 {
        self.state.borrow().size_bytes()
    }
    pub fn segment_count(&self) -> usize {
        self.state.borrow().segments.len()
    }
    /// Base offsets of every segment, oldest first.
    pub fn segment_bases(&self) -> Vec<u64> {
        self.state.borrow().segments.keys().copied().collect()
    }
    /// Why the log refuses writes, if it does.
    pub fn fenced(&self) -> Option<String> {
        self.state.borrow().fenced.clone()
    }

    /// The latest leader epoch written to the log (the last entry of the epoch cache).
    pub fn latest_epoch(&self) -> Option<i32> {
        self.state.borrow().epochs.latest_epoch()
    }

    /// The leader-epoch cache: for each epoch, the first offset written in it, ascending.
    pub fn epoch_entries(&self) -> Vec<EpochEntry> {
        self.state.borrow().epochs.entries().to_vec()
    }

    /// Kafka's `OffsetsForLeaderEpoch` answer (`LeaderEpochFileCache.endOffsetFor`): for a
    /// follower whose latest epoch is `epoch`, the largest epoch at or below it that this log
    /// knows and the offset where the next epoch starts (the log end for the latest epoch).
    /// `None` when `epoch` is negative or above every known epoch.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, u64)> {
        let st = self.state.borrow();
        st.epochs.end_offset_for(epoch, st.log_end_offset())
    }

    /// Validates a producer's record set (one or more RecordBatch v2) and appends it.
    ///
    /// Nothing is written unless every batch passes. Returns once the batches are written (in
    /// the page cache) and visible to readers; call [`Log::sync`] for durability. Appends that
    /// arrive while a write is in flight are coalesced into the next vectored write.
    ///
    /// The batches' `partitionLeaderEpoch` fields are stored as given; a leader uses
    /// [`Log::append_with_epoch`] to stamp its own.
    pub async fn append(&self, records: Bytes) -> Result<AppendInfo, AppendError> {
        self.append_as(records, StoreMode::AsGiven).await
    }

    /// [`Log::append`] for a partition leader: every stored batch's `partitionLeaderEpoch` is
    /// set to `leader_epoch` (outside the CRC, so it costs nothing). The first batch of an
    /// epoch above the latest one adds `(leader_epoch, its base offset)` to the epoch cache,
    /// durably in the checkpoint before the batch is written.
    pub async fn append_with_epoch(
        &self,
        records: Bytes,
        leader_epoch: i32,
    ) -> Result<AppendInfo, AppendError> {
        self.append_as(records, StoreMode::Stamp(leader_epoch)).await
    }

    async fn append_as(&self, records: Bytes, mode: StoreMode) -> Result<AppendInfo, AppendError> {
        self.state.borrow().check_writable()?;
        let max = self.config.borrow().max_message_bytes;
        let batches = batch::split_record_set(&records, max)?;
        // Only a transaction coordinator writes markers (`append_marker`); Kafka refuses
        // control batches from clients with INVALID_RECORD.
        if let Some(b) = batches.iter().find(|b| b.header.is_control()) {
            let reason = format!(
                "control batch of producer {} in a client's records (markers come only from a transaction coordinator)",
                b.header.producer_id
            );
            return Err(BatchError::InvalidRecords { reason }.into());
        }
        self.enqueue(batches, records.len(), mode).await
    }

    /// Appends a transaction marker as a control batch stamped with `leader_epoch`, queued and
    /// group-committed like any append. It ends the producer's ongoing transaction here and,
    /// for ABORT, adds the aborted index's entry. Refused with [`AppendError::FencedMarker`]
    /// when its producer epoch is older than the producer's current one here (a newer epoch
    /// is taken: the coordinator bumps it when it fences a producer). As with
    /// [`Log::check_producer`], the caller keeps other batches of the same producer out
    /// between this call's check and the end of its write.
    pub async fn append_marker(
        &self,
        marker: TxnMarker,
        leader_epoch: i32,
    ) -> Result<AppendInfo, AppendError> {
        self.state.borrow().check_writable()?;
        if let Some(current) =
            self.producers.borrow().marker_fenced(marker.producer_id, marker.producer_epoch)
        {
            return Err(AppendError::FencedMarker {
                producer_id: marker.producer_id,
                current,
                got: marker.producer_epoch,
            });
        }
        let bytes = txn::control_batch(&marker);
        let batches = batch::split_record_set(&bytes, usize::MAX)?;
        let info = self.enqueue(batches, bytes.len(), StoreMode::Stamp(leader_epoch)).await?;
        debug!(
            dir = %self.dir.display(),
            producer_id = marker.producer_id,
            producer_epoch = marker.producer_epoch,
            kind = ?marker.kind,
            offset = info.base_offset,
            "transaction marker written"
        );
        Ok(info)
    }

    /// The lowest first offset of the ongoing transactions, if any: read_committed readers
    /// stop below it (the node's last stable offset is the lower of it and the high
    /// watermark), and retention never moves the log start past it.
    pub fn first_unstable_offset(&self) -> Option<u64> {
        self.producers.borrow().first_unstable_offset()
    }

    /// The producer's ongoing transaction here: its epoch and the transaction's first offset.
    pub fn ongoing_txn(&self, producer_id: i64) -> Option<(i16, u64)> {
        self.producers.borrow().ongoing_txn(producer_id)
    }

    /// Every ongoing transaction here, `(producer id, epoch, first offset)`, oldest first (for
    /// DescribeProducers).
    pub fn ongoing_txns(&self) -> Vec<(i64, i16, u64)> {
        self.producers.borrow().ongoing_txns()
    }

    /// The aborted transactions a read_committed fetch of `[from, upto)` must be told about:
    /// marker at or after `from` and first offset below `upto`, ordered by first offset; in
    /// memory, bounded by [`txn::ABORTED_PER_FETCH_MAX`].
    pub fn aborted_transactions(&self, from: u64, upto: u64) -> Vec<AbortedTxn> {
        self.aborted.borrow().overlapping(from, upto)
    }

    /// A follower's append of batches copied from its leader: they keep their offsets and
    /// leader epochs and are written byte for byte. Each batch is validated as stored data
    /// (CRC included), but `max.message.bytes` is not applied (the leader took them). The
    /// first batch must start at or after the log end offset and each next one at or after
    /// where the one before ended (a gap is what compaction left on the leader, kept as is),
    /// else [`AppendError::OffsetMismatch`] and nothing is written. Producer states and
    /// the epoch cache follow as for a leader's append. Returns the offsets of the whole set.
    pub async fn append_replica(&self, records: Bytes) -> Result<AppendInfo, AppendError> {
        self.state.borrow().check_writable()?;
        let batches = split_replica_set(&records)?;
        self.enqueue(batches, records.len(), StoreMode::Replica).await
    }

    /// Queues validated batches for the next group write and waits for its outcome (then
    /// syncs if `flush.messages` says so).
    async fn enqueue(
        &self,
        batches: Vec<IncomingBatch>,
        bytes: usize,
        mode: StoreMode,
    ) -> Result<AppendInfo, AppendError> {
        let records_n: u64 = batches.iter().map(|b| b.header.records_count as u64).sum();
        let slot: AppendSlot = Rc::new(RefCell::new(None));
        // Bounded queue: while it is full, help drain it instead of queueing more.
        while self.pending_bytes.get() > 0 && self.pending_bytes.get() + bytes > PENDING_BYTES_MAX {
            let _w = self.writer.lock().await;
            self.write_pending().await;
        }
        self.pending.borrow_mut().push_back(PendingAppend {
            batches,
            bytes,
            records: records_n,
            mode,
            slot: slot.clone(),
        });
        self.pending_bytes.set(self.pending_bytes.get() + bytes);
        {
            let _w = self.writer.lock().await;
            if slot.borrow().is_none() {
                self.write_pending().await;
            }
        }
        let result = slot.borrow_mut().take().unwrap_or(Err(AppendError::Closed));
        let info = result?;
        let due = {
            let st = self.state.borrow();
            let unsynced = st.records_written - st.records_synced;
            self.config.borrow().flush.messages.is_some_and(|n| unsynced >= n)
        };
        if due {
            self.sync().await.map_err(|e| AppendError::Fenced { reason: e.to_string() })?;
        }
        Ok(info)
    }

    /// Writes every queued append. Caller holds the writer lock.
    async fn write_pending(&self) {
        let entries: Vec<PendingAppend> = self.pending.borrow_mut().drain(..).collect();
        self.pending_bytes.set(0);
        let mut i = 0;
        while i < entries.len() {
            if let Err(e) = self.state.borrow().check_writable() {
                for entry in &entries[i..] {
                    *entry.slot.borrow_mut() = Some(Err(e.clone()));
                }
                return;
            }
            // A replica append must continue the log (from its end, or past a gap that
            // compaction left on the leader); one that overlaps it is refused alone, and the
            // entries after it go on.
            let end = self.log_end_offset();
            if let Some(found) = entries[i].replica_base()
                && found < end
            {
                let refused = AppendError::OffsetMismatch { expected: end, found };
                *entries[i].slot.borrow_mut() = Some(Err(refused));
                i += 1;
                continue;
            }
            // Roll before an entry that would overflow the active segment or that arrives after
            // `segment.ms`, so that one record set always lands in one segment.
            let span = entries[i].span();
            if let Err(e) = self.maybe_roll(entries[i].bytes as u64, span).await {
                self.note_write_failed("roll", &e);
                for entry in &entries[i..] {
                    *entry.slot.borrow_mut() = Some(Err(e.clone()));
                }
                return;
            }
            let end = self.chunk_end(&entries, i);
            let result = self.write_chunk(&entries[i..end]).await;
            match result {
                Ok(infos) => {
                    self.note_write_ok();
                    for (entry, info) in entries[i..end].iter().zip(infos) {
                        *entry.slot.borrow_mut() = Some(Ok(info));
                    }
                }
                Err(e) => {
                    self.note_write_failed("write", &e);
                    for entry in &entries[i..] {
                        *entry.slot.borrow_mut() = Some(Err(e.clone()));
                    }
                    return;
                }
            }
            i = end;
        }
    }

    /// The entries from `start` that fit in the active segment (at least one), up to a replica
    /// entry that does not start where the entries before it end (it is refused on its own).
    fn chunk_end(&self, entries: &[PendingAppend], start: usize) -> usize {
        let st = self.state.borrow();
        let limit = self.config.borrow().segment_bytes;
        let mut size = st.active().size;
        let mut next = st.active().next_offset;
        let mut end = start;
        while end < entries.len() {
            let len = entries[end].bytes as u64;
            if end > start && size + len > limit {
                break;
            }
            if end > start && entries[end].replica_base().is_some_and(|b| b != next) {
                break;
            }
            size += len;
            next += entries[end].span();
            end += 1;
        }
        end
    }

    /// Assigns offsets to a run of entries, writes them with one vectored write, then records
    /// them in the active segment. On a write error the file is cut back and nothing changes.
    async fn write_chunk(&self, entries: &[PendingAppend]) -> Result<Vec<AppendInfo>, AppendError> {
        // A fenced log takes no more writes. Checked again here, with no `.await` before the
        // write: a buffered-mode sync (which does not take the writer lock) may have failed and
        // fenced the log while `write_pending` was rolling the segment.
        self.state.borrow().check_writable()?;
        let now = (self.clock)();
        let log_append_time =
            (self.config.borrow().timestamp_type == TimestampType::LogAppendTime).then_some(now);
        let (file, path, start_pos, staged) = {
            let st = self.state.borrow();
            let seg = st.active();
            let staged = stage(entries, seg.next_offset, log_append_time, &st.epochs);
            (seg.file.clone(), seg.path.clone(), seg.size, staged)
        };
        let Staged { iov, headers, markers, mut infos, records, bytes, end_offset, epochs } =
            staged;
        self.checkpoint_before_write(epochs.as_ref()).await?;
        let started = std::time::Instant::now();
        let written = self.write_data(&file, &path, start_pos, iov).await;
        let took = started.elapsed();
        if let Some(observer) = &self.config.borrow().observer {
            observer.data_write(took, bytes as u64);
        }
        if took >= SLOW_IO {
            let direct = self.config.borrow().direct_writes;
            warn!(segment = %path.display(), bytes, ms = took.as_millis() as u64, direct, "slow segment write");
        }
        if let Err(e) = written {
            let failure = IoFailure::new("write", &path, e);
            debug!(segment = %path.display(), position = start_pos, error = %failure, "append write failed; cutting it back");
            if let Err(e2) = file.set_len(start_pos).await {
                let reason = format!("write failed ({failure}) and cutting it back failed ({e2})");
                let mut st = self.state.borrow_mut();
                if st.fenced.is_none() {
                    warn!(segment = %path.display(), %reason, "log fenced");
                    st.fenced = Some(reason);
                }
            }
            return Err(AppendError::Io(failure));
        }
        let interval = self.config.borrow().index_interval_bytes;
        let mut st = self.state.borrow_mut();
        let seg = st.active_mut();
        let mut pos = start_pos;
        for h in &headers {
            seg.note_batch(pos, h, interval);
            pos += h.total_len() as u64;
        }
        // The segment counts exactly the whole batches just written, and ends at their end.
        assert_eq!(seg.size, start_pos + bytes as u64, "segment size counts whole batches");
        assert_eq!(seg.next_offset, end_offset, "the log end follows the last batch written");
        {
            let mut producers = self.producers.borrow_mut();
            let mut aborted = self.aborted.borrow_mut();
            for (h, marker) in headers.iter().zip(&markers) {
                match marker {
                    Some(kind) => {
                        if let Some(entry) = producers.record_marker(h, h.base_offset as u64, *kind)
                        {
                            aborted.insert(entry);
                        }
                    }
                    None => producers.record(h, h.base_offset as u64, h.last_offset() as u64),
                }
            }
        }
        if let Some(cache) = epochs {
            // The checkpoint already holds it (`checkpoint_before_write`).
            st.epochs = cache;
            st.epoch_file = EpochFile::Current;
            st.epochs.check(st.log_start_offset, end_offset);
        }
        st.records_written += records;
        st.oldest_unsynced_ms.get_or_insert(now);
        let start = st.log_start_offset;
        for info in &mut infos {
            info.log_start_offset = start;
        }
        drop(st);
        self.start_writeback();
        Ok(infos)
    }

    /// Writes through the page cache: once `writeback_bytes` of the active segment are dirty,
    /// has the kernel start writing them to the device in the background. Without it the
    /// kernel's flusher writes gigabytes at once (after 30 s or 10 % of RAM), and while it does,
    /// ext4 holds page-cache writes up for hundreds of milliseconds, which an acks=1 reply
    /// waits for; and an acks=all `fdatasync` would find all of it still to write.
    fn start_writeback(&self) {
        let (direct, step) = {
            let cfg = self.config.borrow();
            (cfg.direct_writes, cfg.writeback_bytes)
        };
        let Some(step) = step else { return };
        let mut st = self.state.borrow_mut();
        let seg = st.active_mut();
        if direct && !matches!(seg.direct, DirectState::Off) {
            return;
        }
        let from = seg.writeback_from.min(seg.size);
        if seg.size - from >= step.max(1) && seg.file.start_writeback(from, seg.size - from) {
            seg.writeback_from = seg.size;
            // What an earlier hint started writing back (below `from`) and lies beyond the
            // page-cache window is dropped, as a sync's drop-behind would: a partition that is
            // never synced (acks=1) otherwise grows the cache by everything it writes, and on a
            // VM every new cache page can cost a host page fault that the writer waits for.
            if let Some(window) = self.config.borrow().page_cache_window_bytes {
                drop_cache_below(seg, from.min(seg.size.saturating_sub(window)), window);
            }
        }
    }

    /// Before a group write: makes `new_epochs` (the cache once the group's batches start new
    /// epochs) durable in the checkpoint, so that every batch on disk with an epoch is covered
    /// after any crash; or rewrites the checkpoint from the cache when an earlier failure left
    /// it unsafe. Until the group is written the file is ahead of the log (`Unsafe`: a crash
    /// drops its extra entries at open, a failed write leaves it to be rewritten). Caller holds
    /// the writer lock. Rechecks that the log takes writes, since this awaits.
    async fn checkpoint_before_write(
        &self,
        new_epochs: Option<&EpochCache>,
    ) -> Result<(), AppendError> {
        let cache = match new_epochs {
            Some(cache) => cache.clone(),
            None if self.state.borrow().epoch_file == EpochFile::Unsafe => {
                self.state.borrow().epochs.clone()
            }
            None => return Ok(()),
        };
        self.state.borrow_mut().epoch_file = EpochFile::Unsafe;
        if let Err(failure) = write_epoch_checkpoint(&self.backend, &self.dir, &cache).await {
            debug!(dir = %self.dir.display(), error = %failure, "leader-epoch checkpoint write failed; append refused");
            return Err(AppendError::Io(failure));
        }
        if let Some(latest) = new_epochs.and_then(EpochCache::latest) {
            info!(dir = %self.dir.display(), epoch = latest.epoch, start_offset = latest.start_offset, "new leader epoch");
        } else {
            self.state.borrow_mut().epoch_file = EpochFile::Current;
        }
        self.state.borrow().check_writable()
    }

    /// Writes `iov` at `start_pos`, the end of the active segment's data: with `O_DIRECT` when
    /// `direct_writes` is set and the file system supports it, else through the page cache.
    /// Caller holds the writer lock (so the active segment cannot change meanwhile).
    async fn write_data(
        &self,
        file: &B::File,
        path: &Path,
        start_pos: u64,
        iov: Vec<Bytes>,
    ) -> std::io::Result<()> {
        if !self.config.borrow().direct_writes {
            return file.write_at(start_pos, iov).await;
        }
        let state =
            std::mem::replace(&mut self.state.borrow_mut().active_mut().direct, DirectState::Off);
        let (direct, tail) = match state {
            DirectState::Off => return file.write_at(start_pos, iov).await,
            DirectState::Open { file, tail } => (file, tail),
            DirectState::Unopened => match self.open_direct(file, path, start_pos).await {
                Ok(Some(opened)) => opened,
                Ok(None) => return file.write_at(start_pos, iov).await,
                Err(e) => {
                    self.state.borrow_mut().active_mut().direct = DirectState::Unopened;
                    return Err(e);
                }
            },
        };
        let result = direct::write(&direct, &tail, start_pos, &iov).await;
        let tail = match result {
            Ok(ref new_tail) => new_tail.clone(),
            // The caller cuts the file back to `start_pos`, where `tail` is still right.
            Err(_) => tail,
        };
        self.state.borrow_mut().active_mut().direct = DirectState::Open { file: direct, tail };
        result.map(|_| ())
    }

    /// Opens the active segment for direct writes and reads back its partial last block.
    /// `Ok(None)`: the file system has no direct I/O; the segment is written through the cache.
    async fn open_direct(
        &self,
        file: &B::File,
        path: &Path,
        size: u64,
    ) -> std::io::Result<Option<(B::File, Vec<u8>)>> {
        match self.backend.open_direct(path).await {
            Ok(direct) => {
                let aligned = size / DIRECT_ALIGN as u64 * DIRECT_ALIGN as u64;
                let tail = file.read_at(aligned, (size - aligned) as usize).await?;
                Ok(Some((direct, tail.to_vec())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                warn!(segment = %path.display(), error = %e, "no direct I/O here; writing through the page cache");
                self.state.borrow_mut().active_mut().direct = DirectState::Off;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Rolls the active segment if `incoming` more bytes (spanning `span` offsets) would overflow
    /// it or its relative-offset range, or it is older than `segment.ms`. Caller holds the
    /// writer lock.
    async fn maybe_roll(&self, incoming: u64, span: u64) -> Result<(), AppendError> {
        let cfg = self.config.borrow().clone();
        let now = (self.clock)();
        let roll = {
            let st = self.state.borrow();
            let seg = st.active();
            seg.size > 0
                && (seg.size + incoming > cfg.segment_bytes
                    || seg
                        .first_timestamp
                        .is_some_and(|t| now.saturating_sub(t) > cfg.segment_ms as i64)
                    || seg.next_offset - seg.base_offset + span > segment::RELATIVE_OFFSET_MAX)
        };
        if !roll {
            return Ok(());
        }
        if self.state.borrow().segments.len() >= cfg.segments_max {
            return Err(AppendError::TooManySegments { max: cfg.segments_max });
        }
        self.roll().await.map_err(|e| match e {
            LogError::Io(f) => AppendError::Io(f),
            other => AppendError::Fenced { reason: other.to_string() },
        })
    }

    /// Closes the active segment (sealing and syncing it with its indexes) and starts a new one
    /// at the log end offset. Caller holds the writer lock.
    async fn roll(&self) -> Result<(), LogError> {
        let (sealed_base, sealed_size) = {
            let st = self.state.borrow();
            (st.active().base_offset, st.active().size)
        };
        let end = self.seal_active().await?;
        self.write_producer_snapshot(end).await?;
        self.drop_behind(sealed_base, sealed_size);
        let new_path = segment::log_path(&self.dir, end);
        let new_file = self.backend.open(&new_path, true).await.map_err(io("create", &new_path))?;
        let mut st = self.state.borrow_mut();
        // The new segment starts where the sealed one ends: offsets only grow, with no gap.
        assert_eq!(end, st.log_end_offset(), "the log end moved during a roll");
        // Every earlier segment was synced when it was rolled; this one just was.
        st.synced_offset = st.synced_offset.max(end);
        st.dir_gen += 1;
        st.segments.insert(end, Segment::empty(end, new_path.clone(), new_file));
        st.assert_invariants();
        debug!(segment = %new_path.display(), base_offset = end, "rolled segment");
        Ok(())
    }

    /// Syncs the active segment and writes its indexes (with a final time-index entry), as a
    /// roll or a clean close needs. Returns the segment's end offset. Caller holds the writer
    /// lock.
    async fn seal_active(&self) -> Result<u64, LogError> {
        let (file, path, base, end, size, padded, index, tindex) = {
            let mut st = self.state.borrow_mut();
            let seg = st.active_mut();
            seg.push_time_entry();
            // Direct writes leave zero padding up to the next block; a closed segment has none.
            let padded = matches!(seg.direct, DirectState::Open { .. });
            seg.direct = DirectState::Off;
            let (ix, tx) = (seg.offset_index.encode(), seg.time_index.encode());
            let (f, p) = (seg.file.clone(), seg.path.clone());
            (f, p, seg.base_offset, seg.next_offset, seg.size, padded, ix, tx)
        };
        if padded {
            // Only the active segment may end in padding: a sealed one is exactly its data.
            file.set_len(size).await.map_err(io("truncate", &path))?;
        }
        file.sync_data().await.map_err(io("fdatasync", &path))?;
        segment::write_whole(&self.backend, &segment::index_path(&self.dir, base), index).await?;
        let tpath = segment::time_index_path(&self.dir, base);
        segment::write_whole(&self.backend, &tpath, tindex).await?;
        self.write_txn_index(base, end).await?;
        Ok(end)
    }

    /// Durably writes `<base>.txnindex` with the aborted index's entries whose marker lies in
    /// `[base, end)` (an empty file when there are none: a missing file means "lost, rebuild").
    /// All or nothing (tmp and rename): unlike the sparse offset index, a shorter file would
    /// be wrong, not merely less precise.
    pub(crate) async fn write_txn_index(&self, base: u64, end: u64) -> Result<(), LogError> {
        let entries = self.aborted.borrow().in_range(base, end);
        let name = format!("{base:020}.txnindex");
        replace_file(&self.backend, &self.dir, &name, AbortedIndex::encode(&entries)).await?;
        Ok(())
    }

    /// Asks the kernel to drop the cached pages of segment `base` that are synced (below
    /// `synced_pos`) and more than `page_cache_window_bytes` behind it. A hint: failures are
    /// logged and ignored.
    fn drop_behind(&self, base: u64, synced_pos: u64) {
        let Some(window) = self.config.borrow().page_cache_window_bytes else { return };
        let mut st = self.state.borrow_mut();
        let Some(seg) = st.segments.get_mut(&base) else { return };
        drop_cache_below(seg, synced_pos.saturating_sub(window), window);
    }

    /// Removes a segment's index files, and its log file when `with_log` is set.
    async fn remove_segment_files(&self, base: u64, with_log: bool) -> Result<(), LogError> {
        let mut paths = vec![
            segment::index_path(&self.dir, base),
            segment::time_index_path(&self.dir, base),
            txn::txn_index_path(&self.dir, base),
        ];
        if with_log {
            paths.insert(0, segment::log_path(&self.dir, base));
        }
        for p in paths {
            remove_if_exists(&self.backend, &p)
                .await
                .map_err(|e| IoFailure::new("remove", &p, e))?;
        }
        Ok(())
    }

    /// Makes every append that returned before this call durable (`fdatasync`, plus a directory
    /// sync after a segment roll). Concurrent callers share one `fdatasync` (group commit).
    pub async fn sync(&self) -> Result<(), LogError> {
        let target = self.log_end_offset();
        if self.state.borrow().synced_offset >= target {
            return Ok(());
        }
        // With direct writes an fdatasync waits for in-flight direct writes to the file anyway
        // (ext4's inode_dio_wait) and both slow down when they overlap, so syncs and writes
        // alternate: appends queue up while a sync runs and go out as one larger write after.
        let _w =
            if self.config.borrow().direct_writes { Some(self.writer.lock().await) } else { None };
        let _s = self.syncer.lock().await;
        let (file, path, upto, records, dir_gen, need_dir, (synced_base, synced_pos)) = {
            let st = self.state.borrow();
            if let Some(reason) = &st.fenced {
                return Err(LogError::Fenced { reason: reason.clone() });
            }
            if st.synced_offset >= target {
                return Ok(());
            }
            let seg = st.active();
            (
                seg.file.clone(),
                seg.path.clone(),
                seg.next_offset,
                st.records_written,
                st.dir_gen,
                st.dir_gen > st.dir_synced_gen,
                (seg.base_offset, seg.size),
            )
        };
        let started = std::time::Instant::now();
        let synced = async {
            file.sync_data().await.map_err(io("fdatasync", &path))?;
            let took = started.elapsed();
            if let Some(observer) = &self.config.borrow().observer {
                observer.data_sync(took);
            }
            if took >= SLOW_SYNC {
                warn!(segment = %path.display(), ms = took.as_millis() as u64, "slow fdatasync");
            }
            if need_dir {
                self.backend.sync_dir(&self.dir).await.map_err(io("fsync dir", &self.dir))?;
            }
            Ok::<(), IoFailure>(())
        }
        .await;
        let mut st = self.state.borrow_mut();
        if let Err(failure) = synced {
            // After a failed fsync the kernel may have dropped the dirty pages: what we wrote
            // can no longer be trusted to reach the disk. Refuse writes until recovery.
            let reason = format!("sync failed: {failure}");
            if st.fenced.is_none() {
                warn!(dir = %self.dir.display(), %reason, "log fenced");
                st.fenced = Some(reason);
            } else {
                // Fenced meanwhile (a failed write of a failing device): logged then.
                debug!(dir = %self.dir.display(), %reason, "sync of a fenced log failed");
            }
            return Err(LogError::Io(failure));
        }
        st.synced_offset = st.synced_offset.max(upto);
        // The syncer lock keeps truncation out, so the log end only grew meanwhile.
        assert!(st.synced_offset <= st.log_end_offset(), "synced beyond the log end");
        drop(st);
        self.drop_behind(synced_base, synced_pos);
        let mut st = self.state.borrow_mut();
        st.dir_synced_gen = st.dir_synced_gen.max(dir_gen);
        st.records_synced = st.records_synced.max(records);
        if st.records_synced == st.records_written {
            st.oldest_unsynced_ms = None;
        }
        Ok(())
    }

    /// Syncs if `flush.ms` says the oldest unsynced append is due. The owner calls this on a
    /// timer; returns whether it synced.
    pub async fn flush_if_due(&self) -> Result<bool, LogError> {
        let due = {
            let st = self.state.borrow();
            let ms = self.config.borrow().flush.ms;
            match (ms, st.oldest_unsynced_ms) {
                (Some(ms), Some(oldest)) => (self.clock)().saturating_sub(oldest) >= ms as i64,
                _ => false,
            }
        };
        if due {
            self.sync().await?;
        }
        Ok(due)
    }

    /// Finds whole batches from `offset` on, up to `max_bytes` (but at least one batch when
    /// `at_least_one`), within one segment and below `upto` (exclusive; pass
    /// [`Log::log_end_offset`] to read everything). The bytes are not copied: the result
    /// names a file range.
    pub async fn read(
        &self,
        offset: u64,
        max_bytes: u64,
        upto: u64,
        at_least_one: bool,
    ) -> Result<ReadResult<B::File>, ReadError> {
        let (start, end) = {
            let st = self.state.borrow();
            (st.log_start_offset, st.log_end_offset())
        };
        if offset < start || offset > end {
            return Err(ReadError::OffsetOutOfRange {
                requested: offset,
                log_start: start,
                log_end: end,
            });
        }
        let upto = upto.min(end);
        let empty = ReadResult { slice: None, log_start_offset: start, log_end_offset: end };
        if offset >= upto {
            return Ok(empty);
        }
        let Some((seg, start_pos, first)) = self.locate(offset).await? else {
            return Ok(empty);
        };
        let limit_pos = start_pos.saturating_add(max_bytes).min(seg.size);
        // Scan for the end boundary from the nearest index entry below both bounds.
        let from = {
            let st = self.state.borrow();
            st.segments.get(&seg.base_offset).map_or(start_pos, |s| {
                let by_pos = u64::from(
                    s.offset_index
                        .floor_by_position(limit_pos.min(u64::from(u32::MAX)) as u32)
                        .position,
                );
                let by_off = s.index_floor(upto);
                start_pos.max(by_pos.min(by_off))
            })
        };
        let crosses = |pos: u64, h: &BatchHeader| {
            pos + h.total_len() as u64 > limit_pos || h.base_offset as u64 >= upto
        };
        let mut end_pos = seg.find(from, crosses).await?.map_or(seg.size, |(pos, _)| pos);
        if end_pos == start_pos && at_least_one && (first.base_offset as u64) < upto {
            end_pos = start_pos + first.total_len() as u64;
        }
        if end_pos == start_pos {
            return Ok(empty);
        }
        Ok(ReadResult {
            slice: Some(FileSlice {
                file: seg.file,
                position: start_pos,
                len: end_pos - start_pos,
                first_offset: first.base_offset as u64,
            }),
            log_start_offset: start,
            log_end_offset: end,
        })
    }

    /// A copying read: the bytes of [`Log::read`]'s range.
    pub async fn read_bytes(&self, offset: u64, max_bytes: u64) -> Result<Bytes, ReadError> {
        let end = self.log_end_offset();
        let r = self.read(offset, max_bytes, end, true).await?;
        match r.slice {
            None => Ok(Bytes::new()),
            Some(s) => s
                .file
                .read_at(s.position, s.len as usize)
                .await
                .map_err(|e| ReadError::Io(IoFailure::new("read", self.dir.clone(), e))),
        }
    }

    /// The segment holding `offset`, and the position and header of the batch that contains it.
    /// A segment may have lost `offset` to compaction; then the first later batch counts.
    async fn locate(
        &self,
        offset: u64,
    ) -> Result<Option<(SegView<B::File>, u64, BatchHeader)>, ReadError> {
        let mut probe = Some(offset);
        // Only the first probe may look at the segment below `offset`; later ones look past
        // the segment just searched. (Keyed on `at == offset`, a segment based at `offset - 1`
        // that does not hold `offset` was searched again forever: the segment_recovery fuzz
        // target hung there.) Segment bases grow, so this ends after every segment at most.
        let mut first = true;
        while let Some(at) = probe {
            let (seg, from) = {
                let st = self.state.borrow();
                let found = if first {
                    st.segments.range(..=at).next_back().or_else(|| st.segments.range(at..).next())
                } else {
                    st.segments.range(at..).next()
                };
                let Some((_, s)) = found else { return Ok(None) };
                (SegView::of(s), s.index_floor(offset))
            };
            first = false;
            let holds = |_, h: &BatchHeader| h.last_offset() as u64 >= offset;
            if let Some((pos, header)) = seg.find(from, holds).await? {
                return Ok(Some((seg, pos, header)));
            }
            probe = seg.base_offset.checked_add(1);
        }
        Ok(None)
    }

    /// What to do with an idempotent producer's batch (see [`crate::producers`]): write it,
    /// answer it as a duplicate of a batch already written, or refuse it. The caller must not
    /// let two batches of one producer between this check and the end of their append.
    pub fn check_producer(&self, header: &BatchHeader) -> SeqCheck {
        self.producers.borrow().check(header)
    }

    /// Writes the producer state as of `offset` (a segment boundary or the log end) to
    /// `<offset>.snapshot`, and keeps only the newest [`PRODUCER_SNAPSHOTS_KEPT`].
    async fn write_producer_snapshot(&self, offset: u64) -> Result<(), LogError> {
        let bytes = self.producers.borrow().encode();
        let path = self.dir.join(format!("{offset:020}.{PRODUCER_SNAPSHOT_SUFFIX}"));
        segment::write_whole(&self.backend, &path, bytes).await?;
        let mut offsets = self.producer_snapshot_offsets().await?;
        offsets.sort_unstable_by(|a, b| b.cmp(a));
        let keep: Vec<u64> = offsets.into_iter().take(PRODUCER_SNAPSHOTS_KEPT).collect();
        self.remove_producer_snapshots(|o| !keep.contains(&o)).await
    }

    async fn producer_snapshot_offsets(&self) -> Result<Vec<u64>, LogError> {
        let names = self.backend.list_dir(&self.dir).await.map_err(io("list", &self.dir))?;
        Ok(names
            .iter()
            .filter_map(|n| {
                n.strip_suffix(PRODUCER_SNAPSHOT_SUFFIX)?.strip_suffix('.')?.parse().ok()
            })
            .collect())
    }

    async fn remove_producer_snapshots(
        &self,
        doomed: impl Fn(u64) -> bool,
    ) -> Result<(), LogError> {
        for offset in self.producer_snapshot_offsets().await? {
            if doomed(offset) {
                let path = self.dir.join(format!("{offset:020}.{PRODUCER_SNAPSHOT_SUFFIX}"));
                remove_if_exists(&self.backend, &path).await.map_err(io("remove", &path))?;
            }
        }
        Ok(())
    }

    /// Rebuilds the producer state (ongoing transactions included) and the aborted index at
    /// open. Sealed segments' aborted entries come from their `.txnindex` files; a missing or
    /// damaged one is rebuilt by a replay of every batch on disk and written again (a log whose
    /// newest snapshot predates transactions has no markers: its missing files are written
    /// empty without a replay). The rest comes from [`Log::rebuild_txn_state`].
    async fn load_txn_state(&self) -> Result<(), LogError> {
        let (start, sealed) = {
            let st = self.state.borrow();
            let n = st.segments.len().saturating_sub(1);
            let sealed: Vec<(u64, u64)> =
                st.segments.values().take(n).map(|s| (s.base_offset, s.next_offset)).collect();
            (st.segments.keys().next().copied().unwrap_or(st.log_start_offset), sealed)
        };
        let mut aborted = AbortedIndex::default();
        let mut missing: Vec<(u64, u64)> = Vec::new();
        for &(base, next) in &sealed {
            let path = txn::txn_index_path(&self.dir, base);
            let bytes = segment::read_whole(&self.backend, &path).await?;
            match bytes.as_deref().map(|b| AbortedIndex::decode(b, base, next)) {
                Some(Some(entries)) => entries.into_iter().for_each(|e| aborted.insert(e)),
                Some(None) => {
                    warn!(index = %path.display(), "damaged aborted-transaction index; rebuilding it");
                    missing.push((base, next));
                }
                None => missing.push((base, next)),
            }
        }
        if !missing.is_empty() {
            let legacy = matches!(self.newest_snapshot(u64::MAX).await?, Some((_, _, 1)));
            if legacy {
                info!(dir = %self.dir.display(), segments = missing.len(), "log predates transactions; writing empty aborted-transaction indexes");
            } else {
                warn!(dir = %self.dir.display(), segments = missing.len(), "aborted-transaction indexes missing or damaged; replaying every batch on disk");
                let mut scratch = ProducerStates::default();
                let mut rebuilt = AbortedIndex::default();
                self.replay(start, &mut scratch, &mut rebuilt).await?;
                for &(base, next) in &missing {
                    rebuilt.in_range(base, next).into_iter().for_each(|e| aborted.insert(e));
                }
            }
        }
        self.rebuild_txn_state(aborted).await?;
        for (base, next) in missing {
            self.write_txn_index(base, next).await?;
        }
        Ok(())
    }

    /// Rebuilds the producer state and the active segment's aborted entries on top of
    /// `aborted` (the sealed segments' entries): loads the active segment's `.txnindex` when it
    /// is there and whole (written at a clean close: then any snapshot up to the log end will
    /// do), takes the newest readable snapshot at or below the log end (else at or below the
    /// active segment's base, so that the replay covers every marker the file would have
    /// held), and replays every batch after it.
    async fn rebuild_txn_state(&self, mut aborted: AbortedIndex) -> Result<(), LogError> {
        // Replays start from the first batch on disk, not the log start: a DeleteRecords start
        // may lie inside a transaction whose first records (and marker) are still there.
        let (start, end, active_base) = {
            let st = self.state.borrow();
            let first = st.segments.keys().next().copied().unwrap_or(st.log_start_offset);
            (first, st.log_end_offset(), st.active().base_offset)
        };
        let path = txn::txn_index_path(&self.dir, active_base);
        let active = segment::read_whole(&self.backend, &path)
            .await?
            .and_then(|b| AbortedIndex::decode(&b, active_base, end));
        let bound = match active {
            Some(entries) => {
                entries.into_iter().for_each(|e| aborted.insert(e));
                end
            }
            None => active_base,
        };
        let (mut state, from) = match self.newest_snapshot(bound).await? {
            Some((offset, state, _)) => (state, offset),
            None => (ProducerStates::default(), start),
        };
        let scanned = self.replay(from, &mut state, &mut aborted).await?;
        aborted.truncate_from(end);
        debug!(
            dir = %self.dir.display(),
            snapshot_offset = from,
            batches_scanned = scanned,
            producers = state.producers.len(),
            ongoing_txns = state.ongoing_txns().len(),
            aborted_txns = aborted.len(),
            "producer and transaction state loaded"
        );
        *self.producers.borrow_mut() = state;
        *self.aborted.borrow_mut() = aborted;
        Ok(())
    }

    /// The newest readable producer snapshot at or below `bound`: its offset, state and format
    /// version. Damaged ones are skipped (logged).
    async fn newest_snapshot(
        &self,
        bound: u64,
    ) -> Result<Option<(u64, ProducerStates, u8)>, LogError> {
        let mut offsets = self.producer_snapshot_offsets().await?;
        offsets.sort_unstable_by(|a, b| b.cmp(a));
        for offset in offsets.into_iter().filter(|o| *o <= bound) {
            let path = self.dir.join(format!("{offset:020}.{PRODUCER_SNAPSHOT_SUFFIX}"));
            let bytes = segment::read_whole(&self.backend, &path).await?.unwrap_or_default();
            match ProducerStates::decode_versioned(&bytes) {
                Some((state, version)) => return Ok(Some((offset, state, version))),
                None => {
                    warn!(snapshot = %path.display(), "damaged producer snapshot; using an older one")
                }
            }
        }
        Ok(None)
    }

    /// Replays every batch from offset `from` (a batch boundary: a snapshot's offset or a
    /// segment's base) on into `state` (sequences, ongoing transactions) and `aborted` (the
    /// entries of ABORT markers), as the write path records them. Reads batch headers, and the
    /// bytes of control batches only (they are small). Returns the batches replayed.
    async fn replay(
        &self,
        from: u64,
        state: &mut ProducerStates,
        aborted: &mut AbortedIndex,
    ) -> Result<u64, LogError> {
        let views: Vec<(SegView<B::File>, u64)> = {
            let st = self.state.borrow();
            st.segments
                .values()
                .filter(|s| s.next_offset > from)
                .map(|s| (SegView::of(s), s.index_floor(from)))
                .collect()
        };
        let mut scanned = 0u64;
        let mut apply = |h: &BatchHeader, bytes: Option<&[u8]>, view: &SegView<B::File>| {
            if (h.base_offset as u64) < from {
                return;
            }
            scanned += 1;
            if !h.is_control() {
                state.record(h, h.base_offset as u64, h.last_offset() as u64);
                return;
            }
            match bytes.and_then(txn::parse_marker) {
                Some((kind, _)) => {
                    if let Some(entry) = state.record_marker(h, h.base_offset as u64, kind) {
                        aborted.insert(entry);
                    }
                }
                None => warn!(
                    segment = %view.path.display(),
                    offset = h.base_offset,
                    "control batch holds no transaction marker; skipped"
                ),
            }
        };
        for (view, mut pos) in views {
            // One pass over the segment in chunks: a control batch is read from the chunk that
            // holds it, so markers cost no extra reads.
            while pos < view.size {
                let chunk = view.read(pos, SCAN_CHUNK_BYTES).await?;
                let covered = batch::scan_headers(&chunk, |b| {
                    let len = b.header.total_len();
                    apply(&b.header, chunk.get(b.position..b.position + len), &view);
                    true
                });
                if covered == 0 {
                    // A batch larger than the chunk (never a control batch when well-formed).
                    let h = view.header_at(pos).await?;
                    let bytes =
                        if h.is_control() { Some(view.read_batch(pos).await?) } else { None };
                    apply(&h, bytes.as_deref(), &view);
                    pos += h.total_len() as u64;
                } else {
                    pos += covered as u64;
                }
            }
        }
        Ok(scanned)
    }

    /// Loads the leader-epoch cache at open: the checkpoint file, or, when it is missing (a log
    /// written before epochs were kept) or unreadable, one scan of every batch header; then
    /// drops what recovery cut off the end and what lies below the log start. Writes the
    /// checkpoint when it was rebuilt or lost entries at the end.
    async fn load_epochs(&self) -> Result<(), LogError> {
        let path = self.dir.join(CHECKPOINT_FILE);
        let loaded = match segment::read_whole(&self.backend, &path).await? {
            Some(bytes) => EpochCache::decode(&bytes).map_err(|reason| {
                warn!(checkpoint = %path.display(), %reason, "unreadable leader-epoch checkpoint; rebuilding it from the log");
            }),
            None => {
                if self.log_end_offset() > self.log_start_offset() {
                    info!(dir = %self.dir.display(), "no leader-epoch checkpoint; building it from the log");
                }
                Err(())
            }
        };
        let (mut cache, mut write) = match loaded {
            Ok(cache) => (cache, false),
            Err(()) => (self.scan_epochs().await?, true),
        };
        let (start, end) = (self.log_start_offset(), self.log_end_offset());
        if cache.truncate_from_end(end) {
            info!(dir = %self.dir.display(), log_end_offset = end, "leader-epoch entries beyond the recovered log end dropped");
            write = true;
        }
        let behind = cache.truncate_from_start(start);
        let mut unsaved = false;
        if write
            && let Err(failure) = write_epoch_checkpoint(&self.backend, &self.dir, &cache).await
        {
            if !failure.is_disk_full() {
                return Err(failure.into());
            }
            // A full disk must not keep the log from opening (its reads and DeleteRecords free
            // space): the file stays unsafe and is rewritten before the next append.
            warn!(dir = %self.dir.display(), error = %failure, "cannot rewrite the leader-epoch checkpoint on a full disk; it is rewritten before the next append");
            unsaved = true;
        }
        let mut st = self.state.borrow_mut();
        st.epochs = cache;
        st.epoch_file = if unsaved {
            EpochFile::Unsafe
        } else if behind && !write {
            EpochFile::Behind
        } else {
            EpochFile::Current
        };
        st.assert_invariants();
        Ok(())
    }

    /// The epoch cache the batches of the log imply: each batch whose epoch is ≥ 0 and above
    /// every epoch before it starts an entry. Reads every batch header once.
    async fn scan_epochs(&self) -> Result<EpochCache, LogError> {
        let views: Vec<SegView<B::File>> =
            self.state.borrow().segments.values().map(SegView::of).collect();
        let cache = RefCell::new(EpochCache::default());
        for view in views {
            let record = |_, h: &BatchHeader| {
                cache.borrow_mut().assign(h.partition_leader_epoch, h.base_offset as u64);
                false
            };
            view.find(0, record).await?;
        }
        let cache = cache.into_inner();
        debug!(dir = %self.dir.display(), entries = ?cache.entries(), "leader-epoch cache built from the log");
        Ok(cache)
    }

    /// The largest record timestamp in the log (batch max timestamps; `None` when the log has
    /// no records). With [`Log::offset_for_timestamp`] it answers Kafka's ListOffsets
    /// `MAX_TIMESTAMP` (KIP-734): the first record carrying it.
    pub fn max_timestamp(&self) -> Option<i64> {
        let st = self.state.borrow();
        st.segments
            .values()
            .filter(|s| s.next_offset > s.base_offset)
            .map(|s| s.max_timestamp)
            .max()
    }

    /// The offset and timestamp of the first record whose timestamp is at or after `timestamp`
    /// (Kafka's ListOffsets by time), or `None` if every record is older.
    pub async fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<(u64, i64)>, ReadError> {
        let mut after: Option<u64> = None;
        loop {
            let (seg, from, start) = {
                let st = self.state.borrow();
                let range = match after {
                    None => st.segments.range(..),
                    Some(b) => st.segments.range(b + 1..),
                };
                let Some(s) = range.map(|(_, s)| s).find(|s| s.max_timestamp >= timestamp) else {
                    return Ok(None);
                };
                let rel = s.time_index.floor_below(timestamp).map_or(0, |e| e.relative_offset);
                let from = u64::from(s.offset_index.floor_by_offset(rel).position);
                (SegView::of(s), from, st.log_start_offset)
            };
            after = Some(seg.base_offset);
            let wanted = |_: u64, h: &BatchHeader| {
                h.max_timestamp >= timestamp && h.last_offset() as u64 >= start
            };
            let Some((pos, _)) = seg.find(from, wanted).await? else { continue };
            let bytes = seg.read_batch(pos).await?;
            let found = crate::compact::first_record_at_or_after(&bytes, timestamp, start)
                .map_err(|reason| seg.corrupt(pos, &reason))?;
            if found.is_some() {
                return Ok(found);
            }
        }
    }

    /// Deletes closed segments by `retention.ms` and `retention.bytes` (never the active one)
    /// and advances the log start offset past them. Never deletes a segment that ends past the
    /// first unstable offset: an open transaction keeps its records (and everything after its
    /// first one) until its marker is written.
    pub async fn enforce_retention(&self) -> Result<RetentionReport, LogError> {
        let _m = self.maintenance.lock().await;
        let cfg = self.config.borrow().clone();
        let now = (self.clock)();
        let unstable = self.first_unstable_offset();
        let doomed: Vec<u64> = {
            let st = self.state.borrow();
            if !cfg.cleanup_policy.delete {
                return Ok(RetentionReport {
                    log_start_offset: st.log_start_offset,
                    ..Default::default()
                });
            }
            let mut total = st.size_bytes();
            let closed: Vec<&Segment<B::File>> = st.segments.values().rev().skip(1).rev().collect();
            let mut doomed = Vec::new();
            for seg in closed {
                let by_time = cfg
                    .retention_ms
                    .is_some_and(|ms| seg.max_timestamp < now.saturating_sub(ms as i64));
                let by_size =
                    cfg.retention_bytes.is_some_and(|max| total.saturating_sub(seg.size) >= max);
                let below_start = seg.next_offset <= st.log_start_offset;
                if !(by_time || by_size || below_start) {
                    break;
                }
                if unstable.is_some_and(|first| seg.next_offset > first) {
                    debug!(dir = %self.dir.display(), segment = seg.base_offset, first_unstable_offset = ?unstable, "retention stops at an open transaction");
                    break;
                }
                total -= seg.size;
                doomed.push(seg.base_offset);
            }
            doomed
        };
        self.delete_segments(&doomed).await
    }

    /// Removes the given (oldest, closed) segments from the log and from disk.
    pub(crate) async fn delete_segments(
        &self,
        doomed: &[u64],
    ) -> Result<RetentionReport, LogError> {
        let mut report = RetentionReport::default();
        let removed: Vec<Segment<B::File>> = {
            let mut st = self.state.borrow_mut();
            let mut out = Vec::new();
            for base in doomed {
                if st.segments.len() <= 1 {
                    break;
                }
                if let Some(seg) = st.segments.remove(base) {
                    out.push(seg);
                }
            }
            let first = st.segments.keys().next().copied().unwrap_or(0);
            st.log_start_offset = st.log_start_offset.max(first);
            st.epochs_follow_start();
            // The deleted segments' markers are gone, and so are their `.txnindex` files.
            self.aborted.borrow_mut().remove_below(first);
            report.log_start_offset = st.log_start_offset;
            st.assert_invariants();
            out
        };
        for seg in &removed {
            self.remove_segment_files(seg.base_offset, true).await?;
            report.segments_deleted += 1;
            report.bytes_deleted += seg.size;
            info!(segment = %seg.path.display(), bytes = seg.size, next_offset = seg.next_offset, "deleted segment");
        }
        if !removed.is_empty() {
            self.backend.sync_dir(&self.dir).await.map_err(io("fsync dir", &self.dir))?;
        }
        Ok(report)
    }

    /// Kafka's DeleteRecords: moves the log start offset up to `offset` (persisted), deleting
    /// segments that fall wholly below it. Reads below the new start fail with
    /// `OffsetOutOfRange`. Returns the log start offset after the call: `offset`, or the first
    /// unstable offset when `offset` lies past it (the start never cuts through an open
    /// transaction: its first records and marker must stay together for read_committed
    /// readers and for a replay of the log; the caller reports the returned start as the new
    /// low watermark, and may retry once the transaction is decided).
    pub async fn delete_records(&self, offset: u64) -> Result<u64, LogError> {
        let _m = self.maintenance.lock().await;
        let (start, end) = (self.log_start_offset(), self.log_end_offset());
        if offset > end {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                log_start: start,
                log_end: end,
            });
        }
        // A transaction that opens meanwhile starts at the log end, at or above `offset`, so
        // reading the first unstable offset once is enough.
        let offset = match self.first_unstable_offset() {
            Some(first) if first < offset => {
                info!(dir = %self.dir.display(), requested = offset, first_unstable_offset = first, "DeleteRecords held at an open transaction");
                first
            }
            _ => offset,
        };
        if offset <= start {
            return Ok(start);
        }
        if let Err(e) = self.persist_log_start(offset).await {
            self.free_space_for_log_start(offset, e).await?;
        }
        let doomed: Vec<u64> = {
            let mut st = self.state.borrow_mut();
            assert!(offset <= st.log_end_offset(), "the maintenance lock keeps truncation out");
            st.log_start_offset = offset;
            st.epochs_follow_start();
            st.sealed_below(offset)
        };
        self.delete_segments(&doomed).await?;
        Ok(offset)
    }

    async fn persist_log_start(&self, offset: u64) -> Result<(), LogError> {
        persist_log_start(&self.backend, &self.dir, offset).await
    }

    /// DeleteRecords on a full disk: persisting the new start (a small file) failed with
    /// `failure`. If that was `ENOSPC`, deletes the segments wholly below `offset` first — safe
    /// without the file, since the first remaining segment's base (≤ `offset`) is then the log
    /// start that recovery finds — and persists again in the space they freed. Otherwise, or
    /// when no segment can go, returns `failure`. Caller holds the maintenance lock.
    async fn free_space_for_log_start(
        &self,
        offset: u64,
        failure: LogError,
    ) -> Result<(), LogError> {
        let LogError::Io(io_failure) = &failure else { return Err(failure) };
        if !io_failure.is_disk_full() {
            return Err(failure);
        }
        let below = self.state.borrow().sealed_below(offset);
        if below.is_empty() {
            return Err(failure);
        }
        info!(dir = %self.dir.display(), requested = offset, segments = below.len(), "disk full: DeleteRecords frees whole segments before persisting the new log start");
        self.delete_segments(&below).await?;
        self.persist_log_start(offset).await
    }

    /// Removes every batch whose last offset is at or after `offset`; the log then ends at the
    /// base offset of the first batch removed. The cut is synced before this returns.
    pub async fn truncate_to(&self, offset: u64) -> Result<u64, LogError> {
        let _m = self.maintenance.lock().await;
        let _w = self.writer.lock().await;
        let _s = self.syncer.lock().await;
        let (start, end) = (self.log_start_offset(), self.log_end_offset());
        if offset >= end {
            return Ok(end);
        }
        if offset < start {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                log_start: start,
                log_end: end,
            });
        }
        // Drop whole segments that start at or after the cut, but keep the one holding it.
        let drop: Vec<u64> = {
            let st = self.state.borrow();
            let holder = st.segments.range(..=offset).next_back().map(|(b, _)| *b).unwrap_or(start);
            st.segments.keys().filter(|b| **b > holder).copied().collect()
        };
        for base in drop.iter().rev() {
            let seg = self.state.borrow_mut().segments.remove(base);
            if seg.is_some() {
                self.remove_segment_files(*base, true).await?;
            }
        }
        let (view, from) = {
            let st = self.state.borrow();
            let a = st.active();
            (SegView::of(a), a.index_floor(offset))
        };
        let holds = |_, h: &BatchHeader| h.last_offset() as u64 >= offset;
        let cut = view.find(from, holds).await?.map_or(view.size, |(pos, _)| pos);
        view.file.set_len(cut).await.map_err(io("truncate", &view.path))?;
        view.file.sync_data().await.map_err(io("fdatasync", &view.path))?;
        // Remove stale index files of the segment that is active again; rebuild its state.
        self.remove_segment_files(view.base_offset, false).await?;
        self.backend.sync_dir(&self.dir).await.map_err(io("fsync dir", &self.dir))?;
        let interval = self.config.borrow().index_interval_bytes;
        let mut rebuilt = Segment::empty(view.base_offset, view.path.clone(), view.file.clone());
        if let ScanEnd::Torn { valid_bytes, reason } = rebuilt.rebuild(cut, interval).await? {
            return Err(LogError::Corrupt { path: view.path, position: valid_bytes, reason });
        }
        let new_end = rebuilt.next_offset;
        if new_end < start {
            // The cut went below a DeleteRecords start: the log now starts where it ends.
            self.persist_log_start(new_end).await?;
        }
        self.remove_producer_snapshots(|offset| offset > new_end).await?;
        let epochs = {
            let mut st = self.state.borrow_mut();
            st.segments.insert(view.base_offset, rebuilt);
            st.synced_offset = st.synced_offset.min(new_end);
            st.log_start_offset = st.log_start_offset.min(new_end);
            if st.epochs.truncate_from_end(new_end) {
                st.epoch_file = EpochFile::Unsafe;
            }
            st.epochs_follow_start();
            assert!(new_end <= end, "truncation never moves the log end forward");
            st.assert_invariants();
            (st.epoch_file == EpochFile::Unsafe).then(|| st.epochs.clone())
        };
        // The cut is synced; now the checkpoint loses the epochs that started past it (a crash
        // before this drops them at open, as they start at or after the log end).
        if let Some(cache) = epochs {
            self.rewrite_epoch_checkpoint(&cache).await?;
        }
        // Producers, ongoing transactions and the active segment's aborted entries become what
        // a replay of the remaining log gives (a cut marker reopens its transaction, an entry
        // whose marker was cut goes): the sealed segments' entries stay, the rest is replayed
        // from the newest snapshot at or below the active segment's base (its `.txnindex` was
        // removed with its other indexes above).
        let mut sealed = self.aborted.borrow().clone();
        sealed.truncate_from(view.base_offset);
        self.rebuild_txn_state(sealed).await?;
        info!(dir = %self.dir.display(), requested = offset, log_end_offset = new_end, first_unstable_offset = ?self.first_unstable_offset(), "log truncated");
        Ok(new_end)
    }

    /// The disk side of [`Log::truncate_fully_and_start_at`]: removes the epoch checkpoint,
    /// the producer snapshots and every segment (newest first), persists the log start, creates
    /// the empty segment at `offset` and writes an empty checkpoint, all synced. Leaves the
    /// state alone; returns the new segment's path and file.
    async fn start_over_on_disk(&self, offset: u64) -> Result<(PathBuf, B::File), LogError> {
        // The checkpoint goes first: if a crash keeps some old segments, opening finds no
        // checkpoint and rebuilds it from them, so no batch is left uncovered.
        let checkpoint = self.dir.join(CHECKPOINT_FILE);
        remove_if_exists(&self.backend, &checkpoint).await.map_err(io("remove", &checkpoint))?;
        self.remove_producer_snapshots(|_| true).await?;
        // Newest first, so that a crash part way leaves a prefix of the log (names change in
        // order: the directory sync below makes them durable together).
        let bases: Vec<u64> = self.state.borrow().segments.keys().rev().copied().collect();
        for base in bases {
            self.remove_segment_files(base, true).await?;
        }
        self.persist_log_start(offset).await?;
        let path = segment::log_path(&self.dir, offset);
        let file = self.backend.open(&path, true).await.map_err(io("create", &path))?;
        self.backend.sync_dir(&self.dir).await.map_err(io("fsync dir", &self.dir))?;
        write_epoch_checkpoint(&self.backend, &self.dir, &EpochCache::default()).await?;
        Ok((path, file))
    }

    /// Rewrites the checkpoint from `cache` (the cache in memory). On failure the file stays
    /// marked unsafe, so the next write rewrites it first.
    async fn rewrite_epoch_checkpoint(&self, cache: &EpochCache) -> Result<(), LogError> {
        self.state.borrow_mut().epoch_file = EpochFile::Unsafe;
        write_epoch_checkpoint(&self.backend, &self.dir, cache).await?;
        let mut st = self.state.borrow_mut();
        if st.epochs == *cache {
            st.epoch_file = EpochFile::Current;
        }
        Ok(())
    }

    /// For a follower whose log is entirely below its leader's log start (or otherwise has to
    /// start over): removes every segment, and the log becomes empty at `offset` (log start =
    /// log end = `offset`, persisted as DeleteRecords persists a start). The epoch cache and
    /// producer states are cleared with their files. Durable when it returns; a crash part way
    /// leaves a shorter prefix of the old log or the empty one.
    pub async fn truncate_fully_and_start_at(&self, offset: u64) -> Result<(), LogError> {
        let _m = self.maintenance.lock().await;
        let _w = self.writer.lock().await;
        let _s = self.syncer.lock().await;
        {
            let st = self.state.borrow();
            if st.closed {
                return Err(LogError::Closed);
            }
            if let Some(reason) = &st.fenced {
                return Err(LogError::Fenced { reason: reason.clone() });
            }
        }
        if offset > i64::MAX as u64 {
            let (log_start, log_end) = (self.log_start_offset(), self.log_end_offset());
            return Err(LogError::OffsetOutOfRange { requested: offset, log_start, log_end });
        }
        let old_end = self.log_end_offset();
        let (path, file) = match self.start_over_on_disk(offset).await {
            Ok(created) => created,
            Err(e) => {
                // Files are gone that the state still lists: only recovery can tell what is
                // left, so the log takes no more writes until it is reopened.
                let reason = format!("truncating fully to {offset} failed: {e}");
                warn!(dir = %self.dir.display(), %reason, "log fenced");
                self.state.borrow_mut().fenced = Some(reason);
                return Err(e);
            }
        };
        *self.producers.borrow_mut() = ProducerStates::default();
        *self.aborted.borrow_mut() = AbortedIndex::default();
        let mut st = self.state.borrow_mut();
        // Readers holding the old segments' handles still read them (removed files stay
        // readable through open handles); new reads see the empty log.
        st.segments = BTreeMap::from([(offset, Segment::empty(offset, path, file))]);
        st.log_start_offset = offset;
        st.synced_offset = offset;
        st.dir_synced_gen = st.dir_gen;
        st.records_synced = st.records_written;
        st.oldest_unsynced_ms = None;
        st.epochs = EpochCache::default();
        st.epoch_file = EpochFile::Current;
        st.assert_invariants();
        info!(dir = %self.dir.display(), old_log_end_offset = old_end, log_start_offset = offset, "log truncated fully; starts over");
        Ok(())
    }

    /// Flushes everything, writes the active segment's indexes and the clean-shutdown marker.
    /// Further appends fail with [`AppendError::Closed`]. Reopening skips the recovery scan.
    pub async fn close(&self) -> Result<(), LogError> {
        let _m = self.maintenance.lock().await;
        let _w = self.writer.lock().await;
        let _s = self.syncer.lock().await;
        {
            let mut st = self.state.borrow_mut();
            if let Some(reason) = &st.fenced {
                return Err(LogError::Fenced { reason: reason.clone() });
            }
            st.closed = true;
        }
        let end = self.seal_active().await?;
        self.write_producer_snapshot(end).await?;
        let epochs = {
            let st = self.state.borrow();
            (st.epoch_file != EpochFile::Current).then(|| st.epochs.clone())
        };
        if let Some(cache) = epochs {
            self.rewrite_epoch_checkpoint(&cache).await?;
        }
        let marker = self.dir.join(CLEAN_SHUTDOWN_FILE);
        segment::write_whole(&self.backend, &marker, Vec::new()).await?;
        self.backend.sync_dir(&self.dir).await.map_err(io("fsync dir", &self.dir))?;
        let mut st = self.state.borrow_mut();
        assert_eq!(end, st.log_end_offset(), "the writer lock keeps appends out of a close");
        st.synced_offset = st.log_end_offset();
        st.assert_invariants();
        info!(dir = %self.dir.display(), log_end_offset = st.log_end_offset(), "partition log closed cleanly");
        Ok(())
    }
}

/// What a reader needs of a segment, taken without holding the state borrow across I/O.
#[derive(Debug, Clone)]
pub(crate) struct SegView<F> {
    pub(crate) base_offset: u64,
    pub(crate) path: PathBuf,
    pub(crate) file: F,
    pub(crate) size: u64,
}

impl<F: StorageFile> SegView<F> {
    pub(crate) fn of(s: &Segment<F>) -> Self {
        Self {
            base_offset: s.base_offset,
            path: s.path.clone(),
            file: s.file.clone(),
            size: s.size,
        }
    }

    pub(crate) fn corrupt(&self, position: u64, reason: &str) -> ReadError {
        ReadError::Corrupt { path: self.path.clone(), position, reason: reason.to_owned() }
    }

    pub(crate) async fn read(&self, pos: u64, len: usize) -> Result<Bytes, ReadError> {
        let len = len.min(self.size.saturating_sub(pos) as usize);
        self.file
            .read_at(pos, len)
            .await
            .map_err(|e| ReadError::Io(IoFailure::new("read", &self.path, e)))
    }

    pub(crate) async fn header_at(&self, pos: u64) -> Result<BatchHeader, ReadError> {
        let head = self.read(pos, batch::HEADER_BYTES).await?;
        BatchHeader::parse(&head).map_err(|e| self.corrupt(pos, &e.to_string()))
    }

    pub(crate) async fn read_batch(&self, pos: u64) -> Result<Bytes, ReadError> {
        let h = self.header_at(pos).await?;
        let bytes = self.read(pos, h.total_len()).await?;
        if bytes.len() != h.total_len() {
            return Err(self.corrupt(pos, "batch runs past the segment end"));
        }
        Ok(bytes)
    }

    /// Position and header of the first batch at or after `from` (a batch start) that satisfies
    /// `pred`.
    pub(crate) async fn find(
        &self,
        from: u64,
        pred: impl Fn(u64, &BatchHeader) -> bool,
    ) -> Result<Option<(u64, BatchHeader)>, ReadError> {
        let mut pos = from;
        while pos < self.size {
            let chunk = self.read(pos, SCAN_CHUNK_BYTES).await?;
            let mut found = None;
            let covered = batch::scan_headers(&chunk, |s| {
                if pred(pos + s.position as u64, &s.header) {
                    found = Some((pos + s.position as u64, s.header));
                    return false;
                }
                true
            });
            if found.is_some() {
                return Ok(found);
            }
            if covered == 0 {
                // A batch larger than the chunk: judge it by its header and step over it.
                let h = self.header_at(pos).await?;
                if pred(pos, &h) {
                    return Ok(Some((pos, h)));
                }
                pos += h.total_len() as u64;
            } else {
                pos += covered as u64;
            }
        }
        Ok(None)
    }
}
