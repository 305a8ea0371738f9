//! Log compaction (`cleanup.policy=compact`) and record-level lookups inside batches.
//!
//! A pass works on the closed segments only (the active one keeps taking appends meanwhile):
//! 1. **Map**: walk the closed segments oldest first, decompressing batches, and remember the
//!    newest offset of every key (keys are kept as 128-bit hashes; at most
//!    `compaction_keys_max` of them). Segments the map could not cover whole are left for a
//!    later pass.
//! 2. **Copy**: rewrite each covered segment into `<base>.log.cleaned`, keeping a record when no
//!    newer record has its key, and dropping tombstones (null value) whose batch is older than
//!    `delete.retention.ms`. An untouched batch is copied byte for byte; a thinned one is
//!    rebuilt with the same base offset, last offset delta, producer fields and codec, so
//!    offsets never change (gaps are allowed). A batch left with no records is dropped.
//! 3. **Verify and swap**: the cleaned file is re-read and verified like a recovery scan, then
//!    the old indexes are removed, the cleaned file is renamed over the segment, the directory is
//!    synced, and new indexes are written. A crash at any point leaves either the old or the
//!    new segment, never a mix; leftovers are removed when the log is opened.
//!
//! Readers holding the old segment's file keep reading it unchanged (Unix unlink semantics).
//!
//! Transactions: a pass cleans only segments that end at or below the first unstable offset
//! (every transaction with records there is decided). The records of aborted transactions (per
//! the aborted index: batches of that producer id with offsets in `[first_offset,
//! last_offset]`) are removed and never count as the newest value of their key, so an aborted
//! write never hides the committed value before it. A marker (control batch) is kept while any
//! record of its transaction remains, so a replay of the log still ends every transaction it
//! sees; once none remains and the marker is older than `delete.retention.ms` (time for a
//! consumer that read the records to read the marker too), it is removed, with its aborted
//! index entry (rewritten after the swap: a crash before that leaves an entry covering no
//! records, or one past the segment's end, which opening rebuilds). A pass always starts at the
//! first segment, so every record of a transaction whose marker it sees passes before it.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::Path;

use bytes::Bytes;
use tracing::{debug, info};

use crate::backend::{Backend, StorageFile, remove_if_exists};
use crate::batch::{self, BatchHeader, HEADER_BYTES, TimestampType};
use crate::builder::{BatchParams, build_batch};
use crate::compression::{self, Codec};
use crate::error::{IoFailure, LogError};
use crate::log::{Log, SegView};
use crate::records::{self, Record};
use crate::segment::{self, ScanEnd, Segment};
use crate::txn::{MarkerKind, parse_marker};

/// Bound on the decompressed size of one batch.
pub const DECOMPRESSED_BATCH_BYTES_MAX: usize = 128 * 1024 * 1024;
/// Bytes read per I/O while compacting.
const READ_CHUNK_BYTES: usize = 1024 * 1024;
/// Bytes of output buffered before they are written.
const WRITE_CHUNK_BYTES: usize = 4 * 1024 * 1024;

// A read chunk holds at least one batch header, so every chunk makes progress.
const _: () = assert!(READ_CHUNK_BYTES >= HEADER_BYTES);
const _: () = assert!(WRITE_CHUNK_BYTES >= READ_CHUNK_BYTES);

/// What a compaction pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionReport {
    pub segments_cleaned: usize,
    pub records_removed: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Decodes the records of a stored batch (decompressing them).
pub fn batch_records(batch: &Bytes) -> Result<(BatchHeader, Vec<Record>), String> {
    let header = BatchHeader::parse(batch).map_err(|e| e.to_string())?;
    let codec = header.codec().map_err(|e| e.to_string())?;
    let count =
        usize::try_from(header.records_count).map_err(|_| "negative record count".to_owned())?;
    let body = batch.slice(HEADER_BYTES..);
    let data = if codec == Codec::None {
        body
    } else {
        Bytes::from(
            compression::decompress(codec, &body, DECOMPRESSED_BATCH_BYTES_MAX)
                .map_err(|e| e.to_string())?,
        )
    };
    let records = records::decode_records(&data, count).map_err(|e| e.to_string())?;
    Ok((header, records))
}

/// The first record of `batch` at or after `timestamp` whose offset is at least `min_offset`.
pub fn first_record_at_or_after(
    batch: &Bytes,
    timestamp: i64,
    min_offset: u64,
) -> Result<Option<(u64, i64)>, String> {
    let (h, recs) = batch_records(batch)?;
    for r in recs {
        let offset = (h.base_offset + i64::from(r.offset_delta)) as u64;
        let ts = match h.timestamp_type() {
            TimestampType::LogAppendTime => h.max_timestamp,
            TimestampType::CreateTime => h.base_timestamp.saturating_add(r.timestamp_delta),
        };
        if offset >= min_offset && ts >= timestamp {
            return Ok(Some((offset, ts)));
        }
    }
    Ok(None)
}

fn key_hash(key: &[u8]) -> u128 {
    let mut a = std::hash::DefaultHasher::new();
    0xA5u8.hash(&mut a);
    key.hash(&mut a);
    let mut b = std::hash::DefaultHasher::new();
    0x5Au8.hash(&mut b);
    key.hash(&mut b);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

/// Calls `visit` with every whole batch of a segment, reading it in bounded chunks.
async fn for_each_batch<F: StorageFile>(
    seg: &SegView<F>,
    mut visit: impl FnMut(Bytes) -> Result<(), LogError>,
) -> Result<(), LogError> {
    let mut pos = 0u64;
    while pos < seg.size {
        let chunk = seg.read(pos, READ_CHUNK_BYTES).await?;
        let mut spans = Vec::new();
        let covered = batch::scan_headers(&chunk, |s| {
            spans.push((s.position, s.header.total_len()));
            true
        });
        if covered == 0 {
            let whole = seg.read_batch(pos).await?;
            pos += whole.len() as u64;
            visit(whole)?;
        } else {
            for (p, len) in spans {
                visit(chunk.slice(p..p + len))?;
            }
            pos += covered as u64;
        }
        // At most one read chunk (or one batch) of work between cooperative yields, so a pass
        // never holds the shard for long.
        crate::backend::yield_now().await;
    }
    Ok(())
}

impl<B: Backend> Log<B> {
    /// Runs one compaction pass over the closed segments; see the module docs. Does nothing
    /// unless `cleanup.policy` includes `compact`.
    pub async fn compact(&self) -> Result<CompactionReport, LogError> {
        let _m = self.maintenance.lock().await;
        let cfg = self.config();
        let mut report = CompactionReport::default();
        if !cfg.cleanup_policy.compact {
            return Ok(report);
        }
        let unstable = self.first_unstable_offset();
        let closed: Vec<SegView<B::File>> = {
            let st = self.state.borrow();
            let n = st.segments.len();
            st.segments
                .values()
                .take(n.saturating_sub(1))
                .take_while(|s| unstable.is_none_or(|first| s.next_offset <= first))
                .map(SegView::of)
                .collect()
        };
        let aborted = self.aborted_ranges(&closed);
        // 1. Map: newest offset per key, over as many whole segments as fit.
        let mut newest: HashMap<u128, u64> = HashMap::new();
        let mut covered = 0usize;
        for seg in &closed {
            let mut segment_keys: Vec<(u128, u64)> = Vec::new();
            for_each_batch(seg, |b| {
                let (h, recs) = batch_records(&b).map_err(|reason| seg_corrupt(seg, &reason))?;
                if h.is_control() || aborted.holds(&h) {
                    return Ok(());
                }
                for r in recs {
                    if let Some(k) = &r.key {
                        segment_keys.push((
                            key_hash(k),
                            (h.base_offset + i64::from(r.offset_delta)) as u64,
                        ));
                    }
                }
                Ok(())
            })
            .await?;
            if newest.len() + segment_keys.len() > cfg.compaction_keys_max && covered > 0 {
                break;
            }
            newest.extend(segment_keys);
            covered += 1;
        }
        // 2 and 3. Copy, verify and swap each covered segment, in order (markers follow the
        // records of their transactions).
        let horizon = (self.clock)().saturating_sub(cfg.delete_retention_ms as i64);
        let mut txns = TxnCleaning::default();
        for seg in closed.iter().take(covered) {
            if let Some((removed, after)) =
                self.clean_segment(seg, &newest, &aborted, &mut txns, horizon).await?
            {
                report.segments_cleaned += 1;
                report.records_removed += removed;
                report.bytes_before += seg.size;
                report.bytes_after += after;
            }
        }
        if report.segments_cleaned > 0 {
            info!(
                dir = %self.dir.display(),
                segments = report.segments_cleaned,
                records_removed = report.records_removed,
                bytes_before = report.bytes_before,
                bytes_after = report.bytes_after,
                "compaction pass done"
            );
        }
        Ok(report)
    }

    /// The aborted transactions whose records may lie in `segments` (all decided: they end at
    /// or below the first unstable offset).
    fn aborted_ranges(&self, segments: &[SegView<B::File>]) -> AbortedRanges {
        let mut ranges = AbortedRanges::default();
        let Some(from) = segments.first().map(|s| s.base_offset) else { return ranges };
        let aborted = self.aborted.borrow();
        // Only a transaction whose marker lies at or after the first cleaned segment can have
        // records in them (its records lie below its marker).
        for e in aborted.entries().filter(|e| e.last_offset >= from) {
            match ranges.by_producer.entry(e.producer_id) {
                Entry::Occupied(mut o) => o.get_mut().push((e.first_offset, e.last_offset)),
                Entry::Vacant(v) => {
                    v.insert(vec![(e.first_offset, e.last_offset)]);
                }
            }
        }
        ranges
    }

    /// Rewrites one segment; `None` when it had nothing to remove.
    async fn clean_segment(
        &self,
        seg: &SegView<B::File>,
        newest: &HashMap<u128, u64>,
        aborted: &AbortedRanges,
        txns: &mut TxnCleaning,
        horizon: i64,
    ) -> Result<Option<(u64, u64)>, LogError> {
        let (out, removed) = thin_segment(seg, newest, aborted, txns, horizon).await?;
        if removed == 0 {
            return Ok(None);
        }
        let cleaned = self.dir.join(format!("{:020}.log.cleaned", seg.base_offset));
        let (file, written) = match self.write_cleaned(&cleaned, out).await {
            Ok(done) => done,
            Err(e) => {
                // A full disk, most often: the partial copy's blocks go back now, not at the
                // next open (which removes leftovers anyway).
                if let Err(r) = remove_if_exists(&self.backend, &cleaned).await {
                    debug!(file = %cleaned.display(), error = %r, "cannot remove a failed compaction copy");
                }
                return Err(e);
            }
        };
        let after = self.swap_cleaned(seg, &cleaned, file, written).await?;
        if !txns.dropped_aborts.is_empty() {
            // The removed ABORT markers' entries go, from memory and from the segment's
            // `.txnindex` (after the swap: see the module docs).
            let end = {
                let mut index = self.aborted.borrow_mut();
                for offset in txns.dropped_aborts.drain(..) {
                    index.remove(offset);
                }
                let st = self.state.borrow();
                st.segments.get(&seg.base_offset).map_or(seg.base_offset, |s| s.next_offset)
            };
            self.write_txn_index(seg.base_offset, end).await?;
        }
        Ok(Some((removed, after)))
    }

    /// Writes `batches` to a fresh `cleaned` file in groups of about [`WRITE_CHUNK_BYTES`],
    /// and syncs it. Returns the file and the bytes written.
    async fn write_cleaned(
        &self,
        cleaned: &Path,
        batches: Vec<Bytes>,
    ) -> Result<(B::File, u64), LogError> {
        let file = self
            .backend
            .open(cleaned, true)
            .await
            .map_err(|e| IoFailure::new("create", cleaned, e))?;
        file.set_len(0).await.map_err(|e| IoFailure::new("truncate", cleaned, e))?;
        let mut pos = 0u64;
        let mut group: Vec<Bytes> = Vec::new();
        let mut group_bytes = 0usize;
        let total = batches.len();
        for (i, b) in batches.into_iter().enumerate() {
            group_bytes += b.len();
            group.push(b);
            if group_bytes >= WRITE_CHUNK_BYTES || i + 1 == total {
                let n = group_bytes as u64;
                file.write_at(pos, std::mem::take(&mut group))
                    .await
                    .map_err(|e| IoFailure::new("write", cleaned, e))?;
                pos += n;
                group_bytes = 0;
            }
        }
        file.sync_data().await.map_err(|e| IoFailure::new("fdatasync", cleaned, e))?;
        Ok((file, pos))
    }

    /// Verifies the `cleaned` file (of `len` bytes) exactly as recovery would, then puts it in
    /// place of `seg`: old indexes removed, rename, directory synced, new indexes written.
    /// Returns the new segment's size.
    async fn swap_cleaned(
        &self,
        seg: &SegView<B::File>,
        cleaned: &Path,
        file: B::File,
        len: u64,
    ) -> Result<u64, LogError> {
        let dir = &self.dir;
        let interval = self.config.borrow().index_interval_bytes;
        let mut fresh = Segment::empty(seg.base_offset, seg.path.clone(), file);
        if let ScanEnd::Torn { valid_bytes, reason } = fresh.rebuild(len, interval).await? {
            let path = cleaned.to_path_buf();
            return Err(LogError::Corrupt { path, position: valid_bytes, reason });
        }
        fresh.push_time_entry();
        let index = segment::index_path(dir, seg.base_offset);
        let tindex = segment::time_index_path(dir, seg.base_offset);
        for p in [&index, &tindex] {
            remove_if_exists(&self.backend, p).await.map_err(|e| IoFailure::new("remove", p, e))?;
        }
        self.backend.sync_dir(dir).await.map_err(|e| IoFailure::new("fsync dir", dir, e))?;
        self.backend
            .rename(cleaned, &seg.path)
            .await
            .map_err(|e| IoFailure::new("rename", &seg.path, e))?;
        self.backend.sync_dir(dir).await.map_err(|e| IoFailure::new("fsync dir", dir, e))?;
        // The cleaned file is the segment now: the log follows it before the index writes, so
        // that a failed one (a full disk) leaves the log agreeing with the disk; a missing
        // index is rebuilt at the next open.
        let (ix, tx) = (fresh.offset_index.encode(), fresh.time_index.encode());
        let after = fresh.size;
        {
            let mut st = self.state.borrow_mut();
            // Offsets never move: the cleaned segment ends where the old one did, or before.
            let old = st.segments.get(&seg.base_offset).map(|s| s.next_offset);
            assert!(old.is_none_or(|end| fresh.next_offset <= end), "compaction renumbered");
            st.segments.insert(seg.base_offset, fresh);
        }
        segment::write_whole(&self.backend, &index, ix).await?;
        segment::write_whole(&self.backend, &tindex, tx).await?;
        Ok(after)
    }
}

/// Per producer id, the `[first_offset, last_offset]` ranges of its aborted transactions.
#[derive(Debug, Default)]
struct AbortedRanges {
    by_producer: HashMap<i64, Vec<(u64, u64)>>,
}

impl AbortedRanges {
    /// Whether `h` is a data batch of an aborted transaction.
    fn holds(&self, h: &BatchHeader) -> bool {
        if !h.is_transactional() || h.is_control() || h.base_offset < 0 {
            return false;
        }
        let base = h.base_offset as u64;
        self.by_producer
            .get(&h.producer_id)
            .is_some_and(|ranges| ranges.iter().any(|&(first, last)| first <= base && base <= last))
    }
}

/// What a pass knows of transactions as it walks the segments in order.
#[derive(Debug, Default)]
struct TxnCleaning {
    /// Producers whose current transaction (since their last marker) kept a record so far.
    kept_records: HashSet<i64>,
    /// Offsets of the ABORT markers removed from the segment being cleaned.
    dropped_aborts: Vec<u64>,
}

/// The batches of `seg` with superseded records, expired tombstones, aborted transactions'
/// records and expired markers of transactions with no record left removed (see the module
/// docs), and how many records were removed.
async fn thin_segment<F: StorageFile>(
    seg: &SegView<F>,
    newest: &HashMap<u128, u64>,
    aborted: &AbortedRanges,
    txns: &mut TxnCleaning,
    horizon: i64,
) -> Result<(Vec<Bytes>, u64), LogError> {
    let mut out: Vec<Bytes> = Vec::new();
    let mut removed = 0u64;
    txns.dropped_aborts.clear();
    for_each_batch(seg, |b| {
        let (h, recs) = batch_records(&b).map_err(|reason| seg_corrupt(seg, &reason))?;
        if h.is_control() {
            let kept_records = txns.kept_records.remove(&h.producer_id);
            if !kept_records && h.max_timestamp < horizon {
                removed += recs.len() as u64;
                if matches!(parse_marker(&b), Some((MarkerKind::Abort, _))) {
                    txns.dropped_aborts.push(h.base_offset as u64);
                }
                return Ok(());
            }
            out.push(b);
            return Ok(());
        }
        if aborted.holds(&h) {
            removed += recs.len() as u64;
            return Ok(());
        }
        let before = recs.len();
        let kept: Vec<Record> = recs
            .into_iter()
            .filter(|r| {
                let offset = (h.base_offset + i64::from(r.offset_delta)) as u64;
                let Some(k) = &r.key else { return true };
                let is_newest = newest.get(&key_hash(k)).is_none_or(|&o| o <= offset);
                let expired_tombstone = r.value.is_none() && h.max_timestamp < horizon;
                is_newest && !expired_tombstone
            })
            .collect();
        removed += (before - kept.len()) as u64;
        if h.is_transactional() && h.producer_id >= 0 && !kept.is_empty() {
            txns.kept_records.insert(h.producer_id);
        }
        if kept.len() == before {
            out.push(b);
        } else if !kept.is_empty() {
            out.push(rebuild_thinned(seg, &h, &kept)?);
        }
        Ok(())
    })
    .await?;
    Ok((out, removed))
}

/// A batch holding `kept`, a subset of the records of the batch `h` heads, with `h`'s base
/// offset, last offset delta, producer fields and codec, so that no offset moves.
fn rebuild_thinned<F: StorageFile>(
    seg: &SegView<F>,
    h: &BatchHeader,
    kept: &[Record],
) -> Result<Bytes, LogError> {
    let params = BatchParams {
        base_offset: h.base_offset,
        partition_leader_epoch: h.partition_leader_epoch,
        attributes: h.attributes,
        last_offset_delta: h.last_offset_delta,
        base_timestamp: h.base_timestamp,
        max_timestamp: h.max_timestamp,
        producer_id: h.producer_id,
        producer_epoch: h.producer_epoch,
        base_sequence: h.base_sequence,
    };
    let rebuilt = build_batch(&params, kept).map_err(|e| seg_corrupt(seg, &e.to_string()))?;
    debug_assert!(
        BatchHeader::parse(&rebuilt)
            .is_ok_and(|r| r.base_offset == h.base_offset && r.last_offset() == h.last_offset()),
        "a thinned batch keeps its offsets"
    );
    Ok(rebuilt)
}

fn seg_corrupt<F: StorageFile>(seg: &SegView<F>, reason: &str) -> LogError {
    LogError::Corrupt { path: seg.path.clone(), position: 0, reason: reason.to_owned() }
}
