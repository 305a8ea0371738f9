//! Transactions in one partition, as Kafka stores them: COMMIT/ABORT markers (control batches),
//! and the aborted-transaction index (Kafka's `.txnindex`).
//!
//! - A marker is a control batch (attributes: transactional 0x10 and control 0x20) holding one
//!   record: key `[version i16 = 0][type i16]` (0 = ABORT, 1 = COMMIT), value
//!   `[version i16 = 0][coordinator_epoch i32]`, base sequence -1 and the producer id and epoch
//!   of the transaction. [`control_batch`] builds one, [`parse_marker`] reads one back.
//! - Per producer id the partition tracks its *ongoing transaction* (the offset of the first
//!   transactional batch written since the producer's last marker; see
//!   [`crate::producers::ProducerStates`]); the first unstable offset is the lowest of them.
//! - Each ABORT marker that completes a transaction adds an [`AbortedTxn`] to the index of the
//!   segment holding the marker: read_committed consumers are told of every aborted transaction
//!   overlapping what they fetch, so they can drop its records. [`AbortedIndex`] keeps every
//!   entry in memory (the log's fetch path asks on each read_committed fetch); sealed segments
//!   also have them on disk in Kafka's 34-byte format so that opening does not replay the log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::batch::{BatchHeader, HEADER_BYTES};
use crate::builder::{BatchParams, build_batch};
use crate::compression::Codec;
use crate::records::{Record, walk_records};

/// Attribute bits of a marker: transactional (0x10) and control (0x20), uncompressed.
const MARKER_ATTRIBUTES: i16 = 0x10 | 0x20;
/// Control record types (the key's second field).
const CONTROL_TYPE_ABORT: i16 = 0;
const CONTROL_TYPE_COMMIT: i16 = 1;
/// Bytes of one `.txnindex` entry: version i16, producer id, first, last, last stable offset.
pub const TXN_INDEX_ENTRY_BYTES: usize = 2 + 8 + 8 + 8 + 8;
/// Bound on what [`AbortedIndex::overlapping`] returns: a read_committed fetch is told of at
/// most this many aborted transactions (Kafka bounds it by the segments a fetch reads; a fetch
/// of at most `max_bytes` cannot span more aborted transactions than that in practice).
pub const ABORTED_PER_FETCH_MAX: usize = 10_000;
/// Bound on the entries one [`AbortedIndex::overlapping`] call looks at, so a fetch never walks
/// an unbounded index on the shard thread; reaching it is logged.
pub const ABORTED_SCAN_MAX: usize = 1_000_000;

const _: () = assert!(TXN_INDEX_ENTRY_BYTES == 34);
const _: () = assert!(ABORTED_SCAN_MAX >= ABORTED_PER_FETCH_MAX);

/// What a marker decides about its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MarkerKind {
    Abort,
    Commit,
}

/// A transaction marker to append (WriteTxnMarkers, from a transaction coordinator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub kind: MarkerKind,
    pub coordinator_epoch: i32,
    pub timestamp_ms: i64,
}

/// One aborted transaction, as Kafka's `.txnindex` and a Fetch response's
/// `aborted_transactions` describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    /// The transaction's first offset in this partition.
    pub first_offset: u64,
    /// The offset of its ABORT marker.
    pub last_offset: u64,
    /// The first unstable offset right after the marker (the log end after it when no other
    /// transaction was open): a fetch reading below it needs no later entry.
    pub last_stable_offset: u64,
}

/// The bytes of one control batch for `marker` (base offset 0, CRC filled), as a leader stores
/// it once offsets are assigned.
pub fn control_batch(marker: &TxnMarker) -> Bytes {
    let kind = match marker.kind {
        MarkerKind::Abort => CONTROL_TYPE_ABORT,
        MarkerKind::Commit => CONTROL_TYPE_COMMIT,
    };
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&kind.to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    let record = Record {
        attributes: 0,
        timestamp_delta: 0,
        offset_delta: 0,
        key: Some(Bytes::from(key)),
        value: Some(Bytes::from(value)),
        headers: Vec::new(),
    };
    let params = BatchParams {
        base_offset: 0,
        partition_leader_epoch: -1,
        attributes: MARKER_ATTRIBUTES,
        last_offset_delta: 0,
        base_timestamp: marker.timestamp_ms,
        max_timestamp: marker.timestamp_ms,
        producer_id: marker.producer_id,
        producer_epoch: marker.producer_epoch,
        base_sequence: -1,
    };
    // Uncompressed, one record of 10 bytes of key and value: nothing here can exceed a limit
    // (the builder only fails on a codec error or a section over 2 GiB).
    build_batch(&params, &[record]).expect("a one-record uncompressed control batch always builds")
}

/// The marker a control batch's bytes hold: its kind and coordinator epoch. `None` when `batch`
/// is not a well-formed control batch (not control, compressed, not exactly one record, or a
/// key or value too short or of an unknown type). The CRC is not checked here: callers pass
/// batches that were validated already.
pub fn parse_marker(batch: &[u8]) -> Option<(MarkerKind, i32)> {
    let header = BatchHeader::parse(batch).ok()?;
    if !header.is_control() || header.records_count != 1 {
        return None;
    }
    if header.codec().ok()? != Codec::None || batch.len() < header.total_len() {
        return None;
    }
    let section = batch.get(HEADER_BYTES..header.total_len())?;
    let mut found: Option<(MarkerKind, i32)> = None;
    walk_records(section, 1, |r| {
        found = marker_of(r.key, r.value);
    })
    .ok()?;
    found
}

/// Kafka's `ControlRecordType.parse` and `EndTransactionMarker.deserializeValue`: a newer
/// version than 0 is read as version 0 (its fields are a prefix), a negative one is refused.
fn marker_of(key: Option<&[u8]>, value: Option<&[u8]>) -> Option<(MarkerKind, i32)> {
    let key = key?;
    let value = value?;
    let key_version = i16::from_be_bytes([*key.first()?, *key.get(1)?]);
    let kind = match i16::from_be_bytes([*key.get(2)?, *key.get(3)?]) {
        CONTROL_TYPE_ABORT => MarkerKind::Abort,
        CONTROL_TYPE_COMMIT => MarkerKind::Commit,
        _ => return None,
    };
    let value_version = i16::from_be_bytes([*value.first()?, *value.get(1)?]);
    if key_version < 0 || value_version < 0 {
        return None;
    }
    let epoch = value.get(2..6)?;
    let coordinator_epoch = i32::from_be_bytes([epoch[0], epoch[1], epoch[2], epoch[3]]);
    Some((kind, coordinator_epoch))
}

/// `<dir>/<base:020>.txnindex`, the aborted-transaction index of segment `base`.
pub fn txn_index_path(dir: &Path, base_offset: u64) -> PathBuf {
    dir.join(format!("{base_offset:020}.txnindex"))
}

/// The aborted transactions of one partition, keyed by their marker's offset (markers are
/// written in offset order, so this is also the order they were aborted in).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AbortedIndex {
    by_marker: BTreeMap<u64, AbortedTxn>,
}

impl AbortedIndex {
    /// Adds (or replaces: replays are idempotent) the entry of the marker at `last_offset`.
    pub fn insert(&mut self, entry: AbortedTxn) {
        self.by_marker.insert(entry.last_offset, entry);
    }

    /// Every entry, in marker order.
    pub fn entries(&self) -> impl Iterator<Item = &AbortedTxn> {
        self.by_marker.values()
    }

    pub fn len(&self) -> usize {
        self.by_marker.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_marker.is_empty()
    }

    /// Forgets the entry of the marker at `last_offset` (compaction removed the marker, and
    /// no record of its transaction remained).
    pub fn remove(&mut self, last_offset: u64) {
        self.by_marker.remove(&last_offset);
    }

    /// Forgets the entries whose marker is at or after `offset` (the log was cut back there:
    /// their markers are gone).
    pub fn truncate_from(&mut self, offset: u64) {
        self.by_marker.split_off(&offset);
    }

    /// Forgets the entries whose marker is below `offset` (their segments were deleted).
    pub fn remove_below(&mut self, offset: u64) {
        self.by_marker = self.by_marker.split_off(&offset);
    }

    /// The entries whose marker lies in `[from, to)`, in marker order (one segment's).
    pub fn in_range(&self, from: u64, to: u64) -> Vec<AbortedTxn> {
        if from >= to {
            return Vec::new();
        }
        self.by_marker.range(from..to).map(|(_, e)| *e).collect()
    }

    /// The entries a fetch of `[from, upto)` must be told about: marker at or after `from` and
    /// first offset below `upto`, ordered by first offset. Walks markers from `from` on and
    /// stops, as Kafka's `collectAbortedTxns` does, at the first entry whose last stable offset
    /// reaches `upto` (every later aborted transaction started at or after it); bounded by
    /// [`ABORTED_PER_FETCH_MAX`] results and [`ABORTED_SCAN_MAX`] entries looked at.
    pub fn overlapping(&self, from: u64, upto: u64) -> Vec<AbortedTxn> {
        let mut out = Vec::new();
        if from >= upto {
            return out;
        }
        for (scanned, entry) in self.by_marker.range(from..).map(|(_, e)| e).enumerate() {
            if scanned >= ABORTED_SCAN_MAX {
                tracing::warn!(
                    from,
                    upto,
                    scanned,
                    "aborted-transaction lookup cut at its scan bound"
                );
                break;
            }
            if entry.first_offset < upto {
                out.push(*entry);
                if out.len() >= ABORTED_PER_FETCH_MAX {
                    tracing::warn!(
                        from,
                        upto,
                        "aborted-transaction lookup cut at its result bound"
                    );
                    break;
                }
            }
            if entry.last_stable_offset >= upto {
                break;
            }
        }
        out.sort_by_key(|e| (e.first_offset, e.last_offset));
        out
    }

    /// Kafka's `.txnindex` bytes for `entries`: 34 bytes each, big-endian.
    pub fn encode(entries: &[AbortedTxn]) -> Vec<u8> {
        let mut out = Vec::with_capacity(entries.len() * TXN_INDEX_ENTRY_BYTES);
        for e in entries {
            out.extend_from_slice(&0i16.to_be_bytes());
            out.extend_from_slice(&e.producer_id.to_be_bytes());
            out.extend_from_slice(&(e.first_offset as i64).to_be_bytes());
            out.extend_from_slice(&(e.last_offset as i64).to_be_bytes());
            out.extend_from_slice(&(e.last_stable_offset as i64).to_be_bytes());
        }
        out
    }

    /// Reads a segment's `.txnindex` (the segment covers markers in `[base, end)`). `None` when
    /// it is damaged: not whole entries, a version other than 0, a marker outside the segment
    /// or out of order, or a first offset past its marker.
    pub fn decode(bytes: &[u8], base: u64, end: u64) -> Option<Vec<AbortedTxn>> {
        if !bytes.len().is_multiple_of(TXN_INDEX_ENTRY_BYTES) {
            return None;
        }
        let mut out = Vec::with_capacity(bytes.len() / TXN_INDEX_ENTRY_BYTES);
        let mut prev: Option<u64> = None;
        for chunk in bytes.chunks_exact(TXN_INDEX_ENTRY_BYTES) {
            let mut r = crate::wire::Reader::new(chunk);
            if r.i16()? != 0 {
                return None;
            }
            let producer_id = r.i64()?;
            let first = u64::try_from(r.i64()?).ok()?;
            let last = u64::try_from(r.i64()?).ok()?;
            let lso = u64::try_from(r.i64()?).ok()?;
            if last < base || last >= end || first > last || prev.is_some_and(|p| p >= last) {
                return None;
            }
            prev = Some(last);
            out.push(AbortedTxn {
                producer_id,
                first_offset: first,
                last_offset: last,
                last_stable_offset: lso,
            });
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{Strictness, validate};

    fn marker(kind: MarkerKind) -> TxnMarker {
        TxnMarker {
            producer_id: 77,
            producer_epoch: 3,
            kind,
            coordinator_epoch: 9,
            timestamp_ms: 1_234,
        }
    }

    #[test]
    fn control_batches_are_what_kafka_writes_and_read_back() {
        for kind in [MarkerKind::Abort, MarkerKind::Commit] {
            let bytes = control_batch(&marker(kind));
            let h = validate(&bytes, Strictness::Produce).expect("a valid batch");
            assert!(h.is_control() && h.is_transactional());
            assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (77, 3, -1));
            assert_eq!((h.records_count, h.base_offset, h.max_timestamp), (1, 0, 1_234));
            assert_eq!(parse_marker(&bytes), Some((kind, 9)));
        }
        // Kafka's own bytes: key 00 00 00 01 (COMMIT), value 00 00 00 00 00 09.
        let commit = control_batch(&marker(MarkerKind::Commit));
        let section = &commit[HEADER_BYTES..];
        assert!(section.windows(4).any(|w| w == [0, 0, 0, 1]), "{section:?}");
        assert!(section.windows(6).any(|w| w == [0, 0, 0, 0, 0, 9]), "{section:?}");
    }

    #[test]
    fn parse_marker_refuses_what_is_not_a_marker() {
        let data = build_batch(
            &BatchParams::simple(Codec::None, 0, 1),
            &[Record {
                attributes: 0,
                timestamp_delta: 0,
                offset_delta: 0,
                key: Some(Bytes::from_static(&[0, 0, 0, 0])),
                value: Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0])),
                headers: vec![],
            }],
        )
        .expect("build");
        assert_eq!(parse_marker(&data), None, "not a control batch");
        let good = control_batch(&marker(MarkerKind::Abort));
        assert_eq!(parse_marker(&good[..good.len() - 1]), None, "cut short");
        assert_eq!(parse_marker(&[]), None);
        assert_eq!(marker_of(Some(&[0, 0, 0, 7]), Some(&[0, 0, 0, 0, 0, 1])), None, "type 7");
        assert_eq!(marker_of(Some(&[0, 0, 0]), Some(&[0, 0, 0, 0, 0, 1])), None, "short key");
        assert_eq!(marker_of(Some(&[0, 0, 0, 1]), Some(&[0, 0, 0, 0])), None, "short value");
        assert_eq!(marker_of(None, Some(&[0, 0, 0, 0, 0, 1])), None, "null key");
        assert_eq!(
            marker_of(Some(&[0, 1, 0, 1, 9]), Some(&[0, 1, 0, 0, 0, 2, 5])),
            Some((MarkerKind::Commit, 2)),
            "a newer version's prefix"
        );
    }

    fn entry(pid: i64, first: u64, last: u64, lso: u64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        }
    }

    #[test]
    fn overlapping_follows_kafka_ranges() {
        let mut ix = AbortedIndex::default();
        ix.insert(entry(1, 0, 5, 6));
        ix.insert(entry(2, 3, 10, 11));
        ix.insert(entry(3, 12, 20, 15));
        ix.insert(entry(4, 15, 30, 31));
        ix.insert(entry(5, 40, 50, 51));
        let pids = |v: Vec<AbortedTxn>| v.iter().map(|e| e.producer_id).collect::<Vec<_>>();
        assert_eq!(pids(ix.overlapping(0, 100)), vec![1, 2, 3, 4, 5]);
        assert_eq!(pids(ix.overlapping(6, 12)), vec![2], "marker ≥ from, first < upto");
        assert_eq!(pids(ix.overlapping(11, 13)), vec![3]);
        assert_eq!(pids(ix.overlapping(21, 40)), vec![4]);
        assert_eq!(pids(ix.overlapping(31, 40)), Vec::<i64>::new());
        assert_eq!(pids(ix.overlapping(5, 5)), Vec::<i64>::new(), "empty range");
        // Ordered by first offset even when markers come in another order.
        let mut j = AbortedIndex::default();
        j.insert(entry(8, 10, 12, 13));
        j.insert(entry(9, 2, 14, 15));
        assert_eq!(pids(j.overlapping(0, 20)), vec![9, 8]);
        ix.truncate_from(20);
        assert_eq!(pids(ix.overlapping(0, 100)), vec![1, 2]);
        ix.remove_below(10);
        assert_eq!(pids(ix.overlapping(0, 100)), vec![2]);
    }

    #[test]
    fn txnindex_round_trips_and_refuses_damage() {
        let entries = vec![entry(1, 0, 5, 6), entry(-7, 3, 10, 11)];
        let bytes = AbortedIndex::encode(&entries);
        assert_eq!(bytes.len(), 68);
        assert_eq!(&bytes[..10], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(AbortedIndex::decode(&bytes, 0, 11), Some(entries.clone()));
        assert_eq!(AbortedIndex::decode(&[], 0, 11), Some(vec![]));
        assert_eq!(AbortedIndex::decode(&bytes[..67], 0, 11), None, "torn");
        assert_eq!(AbortedIndex::decode(&bytes, 0, 10), None, "marker past the segment");
        assert_eq!(AbortedIndex::decode(&bytes, 6, 11), None, "marker before the segment");
        let mut bad = bytes.clone();
        bad[1] = 1;
        assert_eq!(AbortedIndex::decode(&bad, 0, 11), None, "version");
        let swapped = AbortedIndex::encode(&[entries[1], entries[0]]);
        assert_eq!(AbortedIndex::decode(&swapped, 0, 11), None, "out of order");
    }
}
