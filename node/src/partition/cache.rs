//! The recent-batch cache: the batches a shard appended last, kept in memory so that consumers
//! at the tail of a partition are served without touching the disk.
//!
//! Why: a tailing consumer is then served with no system call but the send, and with
//! `direct_writes = true` (O_DIRECT) the page cache does not even hold what was just written,
//! so such a consumer would otherwise read every batch back from the device. Batches are held
//! as stored (offsets assigned) and sent to the socket from here with a vectored write: no copy
//! into a response buffer.
//!
//! Bounds: one byte budget per shard (`NodeConfig::fetch_cache_bytes`, chosen by autotune
//! unless configured), evicted oldest-first
//! across all its partitions. A read is served only from a contiguous run of cached batches
//! starting at the requested offset; anything else goes to the log.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::Bytes;
use uuid::Uuid;

type Key = (Uuid, i32);

#[derive(Debug)]
struct Cached {
    /// Offset after the batch's last record.
    end: u64,
    /// The batch header as stored (offsets and epoch assigned).
    header: Bytes,
    /// The rest of the batch: the producer's bytes, a slice of its request (not a copy).
    body: Bytes,
}

impl Cached {
    fn len(&self) -> usize {
        self.header.len() + self.body.len()
    }
}

/// One shard's cache of recently appended batches.
#[derive(Debug)]
pub struct RecentBatches {
    budget: usize,
    bytes: Cell<usize>,
    parts: RefCell<HashMap<Key, BTreeMap<u64, Cached>>>,
    /// Insertion order, for eviction: (partition, base offset). Entries already removed by
    /// [`RecentBatches::forget`] are skipped when reached.
    order: RefCell<VecDeque<(Key, u64)>>,
}

impl RecentBatches {
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            bytes: Cell::new(0),
            parts: RefCell::new(HashMap::new()),
            order: RefCell::new(VecDeque::new()),
        }
    }

    /// Bytes held now.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes.get()
    }

    /// Caches a stored batch (`header` as stored, then the producer's `body`) covering offsets
    /// `base..end`. The body is kept as the slice of the producer's request it is, not copied:
    /// copying every produced byte (into fresh memory, a page fault per 4 KiB) was 17-18 % of
    /// the produce path's CPU. A cached batch keeps its request's buffer alive; the batches of
    /// one request are inserted together and evicted in insertion order, so beyond the budget a
    /// shard holds only the rest of the requests whose batches straddle the eviction point
    /// (topic names and other batches' framing: tens of bytes per partition).
    pub fn insert(&self, key: Key, base: u64, end: u64, header: &[u8], body: Bytes) {
        let cached = Cached { end, header: Bytes::copy_from_slice(header), body };
        let len = cached.len();
        if len > self.budget {
            return;
        }
        let replaced = self.parts.borrow_mut().entry(key).or_default().insert(base, cached);
        if let Some(old) = replaced {
            self.bytes.set(self.bytes.get() - old.len());
        }
        self.bytes.set(self.bytes.get() + len);
        self.order.borrow_mut().push_back((key, base));
        self.evict();
    }

    fn evict(&self) {
        while self.bytes.get() > self.budget {
            let Some((key, base)) = self.order.borrow_mut().pop_front() else { return };
            let mut parts = self.parts.borrow_mut();
            if let Some(map) = parts.get_mut(&key) {
                if let Some(c) = map.remove(&base) {
                    self.bytes.set(self.bytes.get() - c.len());
                }
                if map.is_empty() {
                    parts.remove(&key);
                }
            }
        }
    }

    /// Whole batches from the one holding `offset`, below `upto`, within `max_bytes` (but the
    /// first even if larger when `at_least_one`), each as two buffers (header, body) to be
    /// sent back to back. `None` when `offset` is not cached.
    pub fn read(
        &self,
        key: Key,
        offset: u64,
        max_bytes: u64,
        upto: u64,
        at_least_one: bool,
    ) -> Option<Vec<Bytes>> {
        let parts = self.parts.borrow();
        let map = parts.get(&key)?;
        let start = map.range(..=offset).next_back().filter(|(_, c)| c.end > offset)?;
        let mut out = Vec::new();
        let mut total = 0u64;
        let mut expected: Option<u64> = None;
        for (&base, c) in std::iter::once(start).chain(map.range(offset + 1..)) {
            if expected.is_some_and(|e| e != base) || base >= upto {
                break;
            }
            let len = c.len() as u64;
            if total + len > max_bytes && !(out.is_empty() && at_least_one) {
                break;
            }
            total += len;
            out.push(c.header.clone());
            out.push(c.body.clone());
            expected = Some(c.end);
        }
        Some(out)
    }

    /// Drops a partition's batches (its topic was deleted, or its log moved backwards).
    pub fn forget(&self, key: Key) {
        if let Some(map) = self.parts.borrow_mut().remove(&key) {
            let freed: usize = map.values().map(Cached::len).sum();
            self.bytes.set(self.bytes.get() - freed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: Key = (Uuid::nil(), 0);

    fn filled(budget: usize) -> RecentBatches {
        let c = RecentBatches::new(budget);
        // Batches of 100 bytes covering 0..10, 10..20, 20..30.
        for i in 0..3u64 {
            c.insert(K, i * 10, i * 10 + 10, &[i as u8; 10], Bytes::from_static(&[0; 90]));
        }
        c
    }

    #[test]
    fn reads_whole_contiguous_batches_within_limits() {
        let c = filled(1 << 20);
        // Each batch comes as its header (10 bytes here) and its body (90).
        let lens = |v: Option<Vec<Bytes>>| {
            v.map(|v| v.chunks(2).map(|b| b.iter().map(Bytes::len).sum()).collect::<Vec<usize>>())
        };
        assert_eq!(lens(c.read(K, 0, 1000, 30, false)), Some(vec![100, 100, 100]));
        assert_eq!(
            lens(c.read(K, 15, 1000, 30, false)),
            Some(vec![100, 100]),
            "from the batch holding 15"
        );
        assert_eq!(lens(c.read(K, 0, 250, 30, false)), Some(vec![100, 100]), "max bytes");
        assert_eq!(lens(c.read(K, 0, 50, 30, true)), Some(vec![100]), "at least one");
        assert_eq!(lens(c.read(K, 0, 50, 30, false)), Some(vec![]));
        assert_eq!(lens(c.read(K, 0, 1000, 20, false)), Some(vec![100, 100]), "upto");
        assert_eq!(c.read(K, 30, 1000, 40, false), None, "not cached");
        assert_eq!(c.read((Uuid::nil(), 1), 0, 1000, 30, false), None);
        let first = c.read(K, 12, 1000, 30, false).expect("hit");
        assert_eq!(first[0][0], 1, "the batch at 10");
    }

    #[test]
    fn a_gap_ends_the_run_and_the_budget_evicts_oldest_first() {
        let c = filled(1 << 20);
        c.insert(K, 40, 50, &[4; 10], Bytes::from_static(&[0; 90]));
        assert_eq!(c.read(K, 20, 1000, 50, false).map(|v| v.len()), Some(2), "30..40 is missing");
        let small = filled(250);
        assert_eq!(small.bytes(), 200);
        assert_eq!(small.read(K, 5, 1000, 30, false), None, "the oldest batch went");
        assert_eq!(small.read(K, 10, 1000, 30, false).map(|v| v.len()), Some(4));
        small.forget(K);
        assert_eq!(small.bytes(), 0);
        assert_eq!(small.read(K, 10, 1000, 30, false), None);
    }
}
