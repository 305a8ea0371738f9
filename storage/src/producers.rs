//! Idempotent-producer state of one partition: for each producer id, its epoch and the last
//! [`BATCHES_KEPT`] batches it wrote (their sequence ranges and offsets), as Kafka's
//! `ProducerStateManager` keeps it.
//!
//! What it decides ([`ProducerStates::check`]), for a batch with a producer id:
//! - an older epoch than the producer's: refused (`INVALID_PRODUCER_EPOCH`);
//! - a newer epoch: accepted only from sequence 0 (the producer was re-initialized);
//! - the same sequence range as one of the last five batches: a duplicate (a retry of a batch
//!   already written), answered with the offsets it got the first time and not written again;
//! - otherwise the first sequence must follow the last one written (wrapping after `i32::MAX`),
//!   else `OUT_OF_ORDER_SEQUENCE_NUMBER`;
//! - a producer id the partition has never seen (new, or whose batches were all deleted by
//!   retention) is accepted at any sequence.
//!
//! Transactions (see [`crate::txn`]): a producer's first transactional batch since its last
//! marker opens its *ongoing transaction* here (its first offset is kept); a marker
//! ([`ProducerStates::record_marker`]) ends it, and an ABORT marker that ended one yields the
//! [`AbortedTxn`] entry of the aborted index. The lowest first offset of the ongoing
//! transactions is the partition's first unstable offset.
//!
//! The state is rebuilt from the log at start-up; snapshots ([`ProducerStates::encode`]) taken
//! at each segment roll and at clean shutdown bound how much of the log that scan reads.

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::batch::BatchHeader;
use crate::txn::{AbortedTxn, MarkerKind};

/// Batches remembered per producer: Kafka's `max.in.flight.requests.per.connection` bound for
/// idempotence is 5, so a retry is always of one of the last five.
pub const BATCHES_KEPT: usize = 5;
/// Bound on the producers one partition remembers; beyond it, the one that wrote least
/// recently is forgotten (it may then retry once without being recognized as a duplicate).
pub const PRODUCERS_MAX: usize = 100_000;

/// One written batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSeq {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: u64,
    pub last_offset: u64,
}

/// One producer's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchSeq>,
    /// Offset of its last batch, for choosing whom to forget.
    pub last_offset: u64,
    /// First offset of its ongoing transaction here, if one is open.
    pub ongoing: Option<u64>,
}

/// What to do with an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqCheck {
    /// Write it (also for batches without a producer id).
    Append,
    /// Already written: answer with these offsets, write nothing.
    Duplicate { base_offset: u64, last_offset: u64 },
    /// Refuse it.
    Refuse(SeqError),
}

/// Why a batch's sequence is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SeqError {
    #[error("producer {producer_id} epoch {got} is older than its current epoch {current}")]
    FencedEpoch { producer_id: i64, current: i16, got: i16 },
    #[error("producer {producer_id} sent sequence {got}, expected {expected} (epoch {epoch})")]
    OutOfOrder { producer_id: i64, epoch: i16, expected: i32, got: i32 },
}

/// The last sequence of a batch starting at `first` with `count` records (sequences wrap
/// after `i32::MAX`, as Kafka's do).
fn last_seq(first: i32, count: i32) -> i32 {
    let span = i64::from(count.max(1)) - 1;
    ((i64::from(first) + span) % (i64::from(i32::MAX) + 1)) as i32
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX { 0 } else { seq + 1 }
}

/// First bytes of a snapshot in the current format (version 2, with ongoing transactions).
/// A version-1 snapshot starts with its producer count, which never reaches this value
/// ([`PRODUCERS_MAX`] is far below it), so the two cannot be mistaken for each other.
const SNAPSHOT_V2_MAGIC: u32 = 0xFFFF_0002;
const _: () = assert!((PRODUCERS_MAX as u64) < SNAPSHOT_V2_MAGIC as u64);

/// The producers of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStates {
    pub producers: HashMap<i64, ProducerEntry>,
    /// `(first offset, producer id)` of every ongoing transaction: the same facts as the
    /// entries' `ongoing`, ordered so that the first unstable offset is the first element.
    txns: BTreeSet<(u64, i64)>,
}

impl ProducerStates {
    /// Decides what to do with a batch (see the module documentation).
    pub fn check(&self, h: &BatchHeader) -> SeqCheck {
        if h.producer_id < 0 {
            return SeqCheck::Append;
        }
        let Some(entry) = self.producers.get(&h.producer_id) else { return SeqCheck::Append };
        let first = h.base_sequence;
        let last = last_seq(first, h.records_count);
        if h.producer_epoch < entry.epoch {
            return SeqCheck::Refuse(SeqError::FencedEpoch {
                producer_id: h.producer_id,
                current: entry.epoch,
                got: h.producer_epoch,
            });
        }
        // A batch without sequence numbers (a transaction's offset commits, written by the
        // group coordinator for the producer) is checked for fencing only.
        if h.base_sequence < 0 {
            return SeqCheck::Append;
        }
        if h.producer_epoch > entry.epoch {
            if first == 0 {
                return SeqCheck::Append;
            }
            return SeqCheck::Refuse(SeqError::OutOfOrder {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                expected: 0,
                got: first,
            });
        }
        if let Some(b) = entry.batches.iter().find(|b| b.first_seq == first && b.last_seq == last) {
            return SeqCheck::Duplicate { base_offset: b.base_offset, last_offset: b.last_offset };
        }
        let expected = entry.batches.back().map_or(first, |b| next_seq(b.last_seq));
        if first == expected {
            SeqCheck::Append
        } else {
            SeqCheck::Refuse(SeqError::OutOfOrder {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                expected,
                got: first,
            })
        }
    }

    /// Records a data batch written at `base_offset..=last_offset` (no-op without a producer
    /// id or sequence). A transactional batch opens the producer's ongoing transaction at
    /// `base_offset` when none is open. Control batches go to [`Self::record_marker`].
    pub fn record(&mut self, h: &BatchHeader, base_offset: u64, last_offset: u64) {
        if h.producer_id < 0 || h.base_sequence < 0 || h.is_control() {
            return;
        }
        let seq = BatchSeq {
            first_seq: h.base_sequence,
            last_seq: last_seq(h.base_sequence, h.records_count),
            base_offset,
            last_offset,
        };
        let entry = self.producers.entry(h.producer_id).or_insert_with(|| ProducerEntry {
            epoch: h.producer_epoch,
            batches: VecDeque::new(),
            last_offset,
            ongoing: None,
        });
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(seq);
        while entry.batches.len() > BATCHES_KEPT {
            entry.batches.pop_front();
        }
        entry.last_offset = last_offset;
        if h.is_transactional() && entry.ongoing.is_none() {
            entry.ongoing = Some(base_offset);
            self.txns.insert((base_offset, h.producer_id));
        }
        self.forget_one_if_full();
    }

    /// Records a control batch (a marker) of producer `h.producer_id` written at `offset`:
    /// ends the producer's ongoing transaction, and takes the marker's epoch when it is newer
    /// (the coordinator bumps the epoch when it fences a producer; the producer's batches of
    /// the older epoch are then refused by [`Self::check`]). Returns the aborted index's entry
    /// when an ABORT marker ended a transaction; a marker with no transaction open completes
    /// nothing (Kafka writes it all the same). The epoch is not checked here: a leader checks
    /// it before the write ([`Self::marker_fenced`]), a follower and recovery take what the
    /// leader wrote.
    pub fn record_marker(
        &mut self,
        h: &BatchHeader,
        offset: u64,
        kind: MarkerKind,
    ) -> Option<AbortedTxn> {
        if h.producer_id < 0 {
            return None;
        }
        let entry = self.producers.entry(h.producer_id).or_insert_with(|| ProducerEntry {
            epoch: h.producer_epoch,
            batches: VecDeque::new(),
            last_offset: offset,
            ongoing: None,
        });
        if h.producer_epoch > entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        entry.last_offset = offset;
        let first = entry.ongoing.take();
        if let Some(first) = first {
            self.txns.remove(&(first, h.producer_id));
        }
        let completed = first.map(|first_offset| AbortedTxn {
            producer_id: h.producer_id,
            first_offset,
            last_offset: offset,
            last_stable_offset: self.first_unstable_offset().unwrap_or(offset + 1),
        });
        self.forget_one_if_full();
        match kind {
            MarkerKind::Abort => completed,
            MarkerKind::Commit => None,
        }
    }

    /// Whether a marker of `producer_id` at `epoch` must be refused: the producer's current
    /// epoch here is newer (a zombie coordinator's or producer's marker). Returns the current
    /// epoch when it is.
    pub fn marker_fenced(&self, producer_id: i64, epoch: i16) -> Option<i16> {
        self.producers.get(&producer_id).map(|e| e.epoch).filter(|current| *current > epoch)
    }

    /// Beyond [`PRODUCERS_MAX`], forgets the producer that wrote least recently, but never one
    /// with a transaction open here (forgetting it would lose the first unstable offset and
    /// let read_committed consumers read its records before its marker).
    fn forget_one_if_full(&mut self) {
        if self.producers.len() <= PRODUCERS_MAX {
            return;
        }
        let oldest = self
            .producers
            .iter()
            .filter(|(_, e)| e.ongoing.is_none())
            .min_by_key(|(_, e)| e.last_offset)
            .map(|(id, _)| *id);
        if let Some(oldest) = oldest {
            self.producers.remove(&oldest);
        }
    }

    /// The lowest first offset of the ongoing transactions (`None` when none is open).
    pub fn first_unstable_offset(&self) -> Option<u64> {
        self.txns.first().map(|(first, _)| *first)
    }

    /// The producer's ongoing transaction: its epoch and first offset.
    pub fn ongoing_txn(&self, producer_id: i64) -> Option<(i16, u64)> {
        let e = self.producers.get(&producer_id)?;
        e.ongoing.map(|first| (e.epoch, first))
    }

    /// Every ongoing transaction, `(producer id, epoch, first offset)`, oldest first.
    pub fn ongoing_txns(&self) -> Vec<(i64, i16, u64)> {
        self.txns
            .iter()
            .filter_map(|&(first, id)| self.producers.get(&id).map(|e| (id, e.epoch, first)))
            .collect()
    }

    /// Forgets every batch at or after `offset` (the log was cut back there), and the ongoing
    /// transactions that start there. Approximate (a marker that was cut does not reopen its
    /// transaction): the log rebuilds its state by replay instead; this is for callers that
    /// only need sequences.
    pub fn truncate(&mut self, offset: u64) {
        for entry in self.producers.values_mut() {
            entry.batches.retain(|b| b.last_offset < offset);
            if entry.ongoing.is_some_and(|first| first >= offset) {
                entry.ongoing = None;
            }
        }
        self.producers.retain(|_, e| !e.batches.is_empty() || e.ongoing.is_some());
        self.txns.retain(|&(first, _)| first < offset);
    }

    /// A snapshot (version 2): `[0xFFFF0002 u32][count u32]` then per producer
    /// `[id i64][epoch i16][last_offset u64][ongoing i64, -1 for none][n u8]` and
    /// `n × [first i32][last i32][base u64][last u64]`, big-endian, then a CRC-32C of
    /// everything before it. [`Self::decode`] also reads version 1 (no magic, no `ongoing`).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.producers.len() * 72);
        out.extend_from_slice(&SNAPSHOT_V2_MAGIC.to_be_bytes());
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort_unstable();
        for id in ids {
            let e = &self.producers[id];
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&e.last_offset.to_be_bytes());
            let ongoing = e.ongoing.and_then(|o| i64::try_from(o).ok()).unwrap_or(-1);
            out.extend_from_slice(&ongoing.to_be_bytes());
            // At most BATCHES_KEPT, so it fits the count byte.
            out.push(e.batches.len().min(usize::from(u8::MAX)) as u8);
            for b in e.batches.iter().take(usize::from(u8::MAX)) {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.base_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Reads a snapshot written by [`ProducerStates::encode`] (version 2) or by the version
    /// before transactions (version 1: no ongoing transactions); `None` if it is damaged.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        Self::decode_versioned(bytes).map(|(s, _)| s)
    }

    /// [`Self::decode`], also telling the snapshot's format version (1 or 2).
    pub fn decode_versioned(bytes: &[u8]) -> Option<(Self, u8)> {
        let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
        if crc32c::crc32c(body).to_be_bytes() != crc {
            return None;
        }
        let mut r = crate::wire::Reader::new(body);
        let mut count = r.u32()?;
        let version = if count == SNAPSHOT_V2_MAGIC {
            count = r.u32()?;
            2
        } else {
            1
        };
        let mut state = Self::default();
        for _ in 0..count {
            let id = r.i64()?;
            let epoch = r.i16()?;
            let last_offset = r.u64()?;
            let ongoing = if version == 2 { u64::try_from(r.i64()?).ok() } else { None };
            let n = r.u8()?;
            let mut batches = VecDeque::with_capacity(usize::from(n));
            for _ in 0..n {
                batches.push_back(BatchSeq {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    base_offset: r.u64()?,
                    last_offset: r.u64()?,
                });
            }
            if let Some(first) = ongoing {
                state.txns.insert((first, id));
            }
            state.producers.insert(id, ProducerEntry { epoch, batches, last_offset, ongoing });
        }
        r.is_empty().then_some((state, version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, count: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: -1,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: count,
        }
    }

    #[test]
    fn batches_without_sequences_are_checked_for_fencing_only() {
        let mut s = ProducerStates::default();
        s.record(&header(7, 1, 0, 2), 0, 1);
        assert_eq!(s.check(&header(7, 1, -1, 3)), SeqCheck::Append, "the same epoch");
        assert_eq!(s.check(&header(7, 2, -1, 3)), SeqCheck::Append, "a newer epoch");
        assert!(matches!(
            s.check(&header(7, 0, -1, 3)),
            SeqCheck::Refuse(SeqError::FencedEpoch { current: 1, got: 0, .. })
        ));
    }

    #[test]
    fn sequences_follow_kafka() {
        let mut s = ProducerStates::default();
        let a = header(7, 0, 0, 3);
        assert_eq!(s.check(&a), SeqCheck::Append, "a new producer");
        s.record(&a, 10, 12);
        assert_eq!(s.check(&a), SeqCheck::Duplicate { base_offset: 10, last_offset: 12 });
        let b = header(7, 0, 3, 2);
        assert_eq!(s.check(&b), SeqCheck::Append);
        s.record(&b, 20, 21);
        let gap = header(7, 0, 9, 1);
        assert!(matches!(
            s.check(&gap),
            SeqCheck::Refuse(SeqError::OutOfOrder { expected: 5, got: 9, .. })
        ));
        assert_eq!(
            s.check(&a),
            SeqCheck::Duplicate { base_offset: 10, last_offset: 12 },
            "still kept"
        );
        let old_epoch = header(7, -1, 5, 1);
        assert!(matches!(s.check(&old_epoch), SeqCheck::Refuse(SeqError::FencedEpoch { .. })));
        assert!(matches!(
            s.check(&header(7, 1, 5, 1)),
            SeqCheck::Refuse(SeqError::OutOfOrder { .. })
        ));
        assert_eq!(s.check(&header(7, 1, 0, 1)), SeqCheck::Append, "a new epoch starts at 0");
        assert_eq!(s.check(&header(-1, -1, -1, 5)), SeqCheck::Append, "not idempotent");
        assert_eq!(s.check(&header(8, 0, 42, 1)), SeqCheck::Append, "an unknown producer");
    }

    #[test]
    fn only_the_last_five_batches_are_kept_and_sequences_wrap() {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            s.record(&header(1, 0, i * 2, 2), u64::from(i as u32) * 2, u64::from(i as u32) * 2 + 1);
        }
        assert_eq!(s.producers[&1].batches.len(), BATCHES_KEPT);
        assert_eq!(
            s.check(&header(1, 0, 0, 2)).clone(),
            SeqCheck::Refuse(SeqError::OutOfOrder {
                producer_id: 1,
                epoch: 0,
                expected: 14,
                got: 0
            })
        );
        let mut w = ProducerStates::default();
        w.record(&header(2, 0, i32::MAX - 1, 2), 0, 1);
        assert_eq!(w.check(&header(2, 0, 0, 1)), SeqCheck::Append, "after i32::MAX comes 0");
    }

    #[test]
    fn snapshots_round_trip_and_refuse_damage() {
        let mut s = ProducerStates::default();
        s.record(&header(1, 3, 0, 4), 0, 3);
        s.record(&header(9, 0, 0, 1), 4, 4);
        let bytes = s.encode();
        assert_eq!(ProducerStates::decode(&bytes), Some(s.clone()));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert_eq!(ProducerStates::decode(&bad), None, "flip at {i}");
        }
        assert_eq!(ProducerStates::decode(&bytes[..bytes.len() - 1]), None);
        s.truncate(4);
        assert!(!s.producers.contains_key(&9));
        assert_eq!(s.producers[&1].batches.len(), 1);
    }

    fn txn_header(pid: i64, epoch: i16, seq: i32, count: i32) -> BatchHeader {
        BatchHeader { attributes: 0x10, ..header(pid, epoch, seq, count) }
    }

    fn marker_header(pid: i64, epoch: i16) -> BatchHeader {
        BatchHeader { attributes: 0x30, base_sequence: -1, ..header(pid, epoch, -1, 1) }
    }

    #[test]
    fn transactions_open_at_their_first_batch_and_end_at_a_marker() {
        let mut s = ProducerStates::default();
        s.record(&header(1, 0, 0, 2), 0, 1);
        assert_eq!(s.first_unstable_offset(), None, "not transactional");
        s.record(&txn_header(2, 0, 0, 2), 2, 3);
        s.record(&txn_header(3, 0, 0, 1), 4, 4);
        s.record(&txn_header(2, 0, 2, 1), 5, 5);
        assert_eq!(s.ongoing_txn(2), Some((0, 2)), "the first batch's offset");
        assert_eq!(s.first_unstable_offset(), Some(2));
        assert_eq!(s.ongoing_txns(), vec![(2, 0, 2), (3, 0, 4)]);
        assert_eq!(s.record_marker(&marker_header(2, 0), 6, MarkerKind::Commit), None);
        assert_eq!(s.first_unstable_offset(), Some(4));
        let entry = s.record_marker(&marker_header(3, 1), 7, MarkerKind::Abort);
        assert_eq!(
            entry,
            Some(AbortedTxn {
                producer_id: 3,
                first_offset: 4,
                last_offset: 7,
                last_stable_offset: 8
            })
        );
        assert_eq!(s.producers[&3].epoch, 1, "a newer epoch is taken from the marker");
        assert_eq!(s.marker_fenced(3, 0), Some(1));
        assert_eq!(s.marker_fenced(3, 1), None);
        assert_eq!(s.marker_fenced(99, 0), None, "unknown producer");
        assert_eq!(s.record_marker(&marker_header(9, 0), 8, MarkerKind::Abort), None, "no txn");
        assert_eq!(s.first_unstable_offset(), None);
        // A marker is no data batch: `record` ignores control batches.
        s.record(&marker_header(4, 0), 9, 9);
        assert!(!s.producers.contains_key(&4));
    }

    #[test]
    fn a_full_table_never_forgets_a_producer_with_an_open_transaction() {
        let mut s = ProducerStates::default();
        s.record(&txn_header(5, 0, 0, 1), 0, 0);
        for i in 0..PRODUCERS_MAX as i64 {
            s.record(&header(100 + i, 0, 0, 1), 1 + i as u64, 1 + i as u64);
        }
        assert_eq!(s.producers.len(), PRODUCERS_MAX);
        assert_eq!(s.ongoing_txn(5), Some((0, 0)), "the oldest writer, but its txn is open");
        assert!(!s.producers.contains_key(&100), "the oldest one without a transaction went");
    }

    #[test]
    fn snapshots_keep_ongoing_transactions_and_read_the_old_format() {
        let mut s = ProducerStates::default();
        s.record(&txn_header(1, 3, 0, 4), 0, 3);
        s.record(&header(9, 0, 0, 1), 4, 4);
        s.record(&txn_header(5, 0, 0, 1), 5, 5);
        s.record_marker(&marker_header(5, 0), 6, MarkerKind::Commit);
        let bytes = s.encode();
        let (back, version) = ProducerStates::decode_versioned(&bytes).expect("decodes");
        assert_eq!(version, 2);
        assert_eq!(back, s);
        assert_eq!(back.first_unstable_offset(), Some(0));
        assert_eq!(back.ongoing_txns(), vec![(1, 3, 0)]);
        // Version 1, as written before transactions: `[count]` then producers without
        // `ongoing`, then the CRC.
        let mut v1 = Vec::new();
        v1.extend_from_slice(&1u32.to_be_bytes());
        v1.extend_from_slice(&7i64.to_be_bytes());
        v1.extend_from_slice(&2i16.to_be_bytes());
        v1.extend_from_slice(&11u64.to_be_bytes());
        v1.push(1);
        v1.extend_from_slice(&0i32.to_be_bytes());
        v1.extend_from_slice(&1i32.to_be_bytes());
        v1.extend_from_slice(&10u64.to_be_bytes());
        v1.extend_from_slice(&11u64.to_be_bytes());
        let crc = crc32c::crc32c(&v1);
        v1.extend_from_slice(&crc.to_be_bytes());
        let (old, version) = ProducerStates::decode_versioned(&v1).expect("old format");
        assert_eq!(version, 1);
        assert_eq!(old.producers[&7].epoch, 2);
        assert_eq!(old.producers[&7].batches.len(), 1);
        assert_eq!(old.first_unstable_offset(), None);
        assert_eq!(
            old.check(&header(7, 2, 0, 2)),
            SeqCheck::Duplicate { base_offset: 10, last_offset: 11 }
        );
    }
}
