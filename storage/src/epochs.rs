//! The leader-epoch cache of one partition (Kafka's `LeaderEpochFileCache`, KIP-101/279).
//!
//! Each entry `(epoch, start_offset)` says that the first batch written with leader epoch
//! `epoch` starts at `start_offset`. Followers ask a leader for the end offset of their latest
//! epoch ([`EpochCache::end_offset_for`]) and truncate their log there before they fetch, so
//! that a log never keeps records a new leader does not have.
//!
//! Rules (the log keeps them; `EpochCache::check` asserts them):
//! - entries are strictly increasing in epoch *and* in start offset, and every epoch is ≥ 0;
//! - an append adds `(epoch, base_offset)` for a batch whose epoch is ≥ 0 and greater than the
//!   latest cached one; a batch with a lower epoch changes nothing;
//! - every entry starts below the log end offset, except that when the log start moves up to
//!   the log end (DeleteRecords or retention emptying the log) the one entry left may start
//!   there (Kafka's `truncateFromStart` keeps it);
//! - truncating the log end drops the entries starting at or after the new end; moving the log
//!   start drops the entries wholly below it and moves the one spanning it up to the new start.
//!
//! The cache is persisted as Kafka's `leader-epoch-checkpoint` text file: `0` (the version),
//! the number of entries, then one `epoch start_offset` line per entry.

use std::fmt::Write as _;

/// Name of the checkpoint file in the partition directory (Kafka's name and format).
pub const CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
/// The only checkpoint format version there is.
pub const CHECKPOINT_VERSION: u32 = 0;
/// Bound on entries read from a checkpoint: one per leadership change, so a file claiming more
/// is damaged (and is rebuilt from the log instead of being allocated for).
pub const CHECKPOINT_ENTRIES_MAX: usize = 1 << 20;

/// One entry of the leader-epoch cache: the first offset written in `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: u64,
}

/// The cache itself: entries strictly increasing in epoch and start offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochCache {
    entries: Vec<EpochEntry>,
}

impl EpochCache {
    /// A cache of `entries`, or `None` when they break the ordering rules.
    pub fn from_entries(entries: Vec<EpochEntry>) -> Option<Self> {
        let cache = EpochCache { entries };
        cache.is_ordered().then_some(cache)
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Whether a batch of `epoch` would add an entry: it is ≥ 0 and above the latest epoch.
    pub fn is_new_epoch(&self, epoch: i32) -> bool {
        epoch >= 0 && self.latest_epoch().is_none_or(|latest| epoch > latest)
    }

    /// Records that a batch of `epoch` starts at `start_offset`; returns whether an entry was
    /// added. Entries that would conflict with the new one (a start offset at or after it)
    /// are dropped first, as Kafka's `assign` does; the log never produces such a case, since
    /// every entry starts below the log end where the batch goes.
    pub fn assign(&mut self, epoch: i32, start_offset: u64) -> bool {
        if !self.is_new_epoch(epoch) {
            return false;
        }
        self.entries.retain(|e| e.start_offset < start_offset);
        self.entries.push(EpochEntry { epoch, start_offset });
        true
    }

    /// Drops every entry starting at or after `end` (the log was cut back to `end`). Returns
    /// whether anything changed.
    pub fn truncate_from_end(&mut self, end: u64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end);
        self.entries.len() != before
    }

    /// The log now starts at `start`: drops the entries wholly below it and moves the one
    /// spanning it (the last starting at or below it) up to `start` (Kafka's
    /// `truncateFromStart`). Returns whether anything changed.
    pub fn truncate_from_start(&mut self, start: u64) -> bool {
        let below = self.entries.iter().take_while(|e| e.start_offset <= start).count();
        if below == 0 {
            return false;
        }
        let spanning = self.entries[below - 1];
        if below == 1 && spanning.start_offset == start {
            return false;
        }
        self.entries.drain(..below - 1);
        self.entries[0].start_offset = start;
        true
    }

    pub fn clear(&mut self) -> bool {
        let changed = !self.entries.is_empty();
        self.entries.clear();
        changed
    }

    /// Kafka's `LeaderEpochFileCache.endOffsetFor`: the largest epoch at or below `epoch` that
    /// the cache knows and the offset where the epoch after it starts (`log_end` for the latest
    /// epoch). `None` for a negative epoch, or one at or above which nothing is known.
    pub fn end_offset_for(&self, epoch: i32, log_end: u64) -> Option<(i32, u64)> {
        if epoch < 0 {
            return None;
        }
        if self.latest_epoch() == Some(epoch) {
            return Some((epoch, log_end));
        }
        let higher_at = self.entries.iter().position(|e| e.epoch > epoch)?;
        let higher = self.entries[higher_at];
        match higher_at.checked_sub(1).map(|i| self.entries[i]) {
            None => Some((epoch, higher.start_offset)),
            Some(floor) => Some((floor.epoch, higher.start_offset)),
        }
    }

    fn is_ordered(&self) -> bool {
        self.entries.first().is_none_or(|e| e.epoch >= 0)
            && self
                .entries
                .windows(2)
                .all(|w| w[0].epoch < w[1].epoch && w[0].start_offset < w[1].start_offset)
    }

    /// Asserts the cache's rules against the log's bounds (see the module docs). O(entries).
    pub(crate) fn check(&self, log_start: u64, log_end: u64) {
        assert!(self.is_ordered(), "epoch cache out of order: {:?}", self.entries);
        if let Some(last) = self.latest() {
            let at_emptied_end = last.start_offset == log_end && log_start == log_end;
            assert!(
                last.start_offset < log_end || at_emptied_end,
                "epoch entry {last:?} at or beyond the log end {log_end}"
            );
        }
    }

    /// The checkpoint file's contents (Kafka's text format).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!("{CHECKPOINT_VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "{} {}", e.epoch, e.start_offset);
        }
        out.into_bytes()
    }

    /// Parses a checkpoint file; `Err` says what is wrong with it. Entries must keep the
    /// ordering rules.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())?;
        let mut lines = text.lines();
        let version = lines.next().ok_or("empty file")?.trim();
        if version != CHECKPOINT_VERSION.to_string() {
            return Err(format!("unknown version {version:?}"));
        }
        let count_line = lines.next().ok_or("no entry count")?.trim();
        let count: usize =
            count_line.parse().map_err(|_| format!("bad entry count {count_line:?}"))?;
        if count > CHECKPOINT_ENTRIES_MAX {
            return Err(format!("entry count {count} beyond {CHECKPOINT_ENTRIES_MAX}"));
        }
        let mut entries = Vec::with_capacity(count);
        for i in 0..count {
            let line = lines.next().ok_or_else(|| format!("{count} entries, {i} present"))?;
            let mut fields = line.split_whitespace();
            let (Some(epoch), Some(start), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(format!("entry {i} is not `epoch offset`: {line:?}"));
            };
            let epoch: i32 =
                epoch.parse().map_err(|_| format!("entry {i}: bad epoch {epoch:?}"))?;
            let start_offset: u64 =
                start.parse().map_err(|_| format!("entry {i}: bad offset {start:?}"))?;
            entries.push(EpochEntry { epoch, start_offset });
        }
        if let Some(extra) = lines.find(|l| !l.trim().is_empty()) {
            return Err(format!("more than {count} entries: {extra:?}"));
        }
        EpochCache::from_entries(entries)
            .ok_or_else(|| "entries not strictly increasing in epoch and offset".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, u64)]) -> EpochCache {
        let entries =
            entries.iter().map(|&(epoch, start_offset)| EpochEntry { epoch, start_offset });
        EpochCache::from_entries(entries.collect()).expect("ordered")
    }

    #[test]
    fn assign_adds_only_higher_non_negative_epochs() {
        let mut c = EpochCache::default();
        assert!(!c.assign(-1, 0), "no epoch");
        assert!(c.assign(0, 0));
        assert!(!c.assign(0, 5), "same epoch");
        assert!(c.assign(3, 10));
        assert!(!c.assign(2, 12), "a lower epoch changes nothing");
        assert_eq!(c, cache(&[(0, 0), (3, 10)]));
        // A conflicting start offset drops the entries at or after it (Kafka's assign).
        assert!(c.assign(4, 10));
        assert_eq!(c, cache(&[(0, 0), (4, 10)]));
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        let c = cache(&[(1, 0), (3, 10), (6, 20)]);
        assert_eq!(c.end_offset_for(6, 30), Some((6, 30)), "latest: the log end");
        assert_eq!(c.end_offset_for(3, 30), Some((3, 20)), "known: where the next starts");
        assert_eq!(c.end_offset_for(4, 30), Some((3, 20)), "unknown between: the floor's");
        assert_eq!(c.end_offset_for(0, 30), Some((0, 0)), "below all: the first start");
        assert_eq!(c.end_offset_for(7, 30), None, "above all");
        assert_eq!(c.end_offset_for(-1, 30), None, "negative");
        assert_eq!(EpochCache::default().end_offset_for(0, 30), None, "empty");
    }

    #[test]
    fn truncation_from_either_end() {
        let mut c = cache(&[(1, 0), (3, 10), (6, 20)]);
        assert!(!c.truncate_from_end(21));
        assert!(c.truncate_from_end(20));
        assert_eq!(c, cache(&[(1, 0), (3, 10)]));
        let mut c = cache(&[(1, 0), (3, 10), (6, 20)]);
        assert!(!c.truncate_from_start(0));
        assert!(c.truncate_from_start(15));
        assert_eq!(c, cache(&[(3, 15), (6, 20)]));
        assert!(c.truncate_from_start(20));
        assert_eq!(c, cache(&[(6, 20)]));
        assert!(!c.truncate_from_start(20));
        assert!(c.truncate_from_start(25));
        assert_eq!(c, cache(&[(6, 25)]));
        let mut c = cache(&[(3, 10)]);
        assert!(!c.truncate_from_start(5), "nothing below the new start");
    }

    #[test]
    fn checkpoint_round_trips_in_kafkas_format() {
        let c = cache(&[(0, 0), (2, 150), (7, 1_000_000)]);
        let bytes = c.encode();
        assert_eq!(std::str::from_utf8(&bytes).expect("utf8"), "0\n3\n0 0\n2 150\n7 1000000\n");
        assert_eq!(EpochCache::decode(&bytes), Ok(c));
        assert_eq!(EpochCache::decode(b"0\n0\n"), Ok(EpochCache::default()));
    }

    #[test]
    fn damaged_checkpoints_are_refused() {
        for bad in [
            &b""[..],
            b"1\n0\n",
            b"0\n",
            b"0\nx\n",
            b"0\n2\n0 0\n",
            b"0\n1\n0 0\n1 5\n",
            b"0\n1\n0\n",
            b"0\n1\n0 0 0\n",
            b"0\n1\nx 0\n",
            b"0\n1\n0 -3\n",
            b"0\n2\n3 0\n2 5\n",
            b"0\n2\n1 5\n2 5\n",
            b"0\n1\n-1 0\n",
            b"0\n99999999999\n",
            b"\xff\n",
        ] {
            assert!(
                EpochCache::decode(bad).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
