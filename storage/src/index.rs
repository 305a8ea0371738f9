//! Sparse offset and time indexes of one segment, in Kafka's on-disk format.
//!
//! - `.index`: 8-byte entries, big-endian `relative_offset: u32` (offset − segment base) and
//!   `position: u32` (byte position of the batch that starts at that offset).
//! - `.timeindex`: 12-byte entries, big-endian `timestamp: i64` (the largest timestamp of the
//!   segment up to and including the batch) and `relative_offset: u32` of that batch.
//!
//! Entries are added at most every `index.interval.bytes`, so lookups return a floor from which
//! the caller scans batch headers forward. Indexes live in memory (≈ 0.2 % of the data at the
//! default interval); files are written when a segment is closed or the log shuts down cleanly,
//! and rebuilt by scanning whenever they are missing or fail their checks.

/// Bytes per offset-index entry.
pub const OFFSET_ENTRY_BYTES: usize = 8;
/// Bytes per time-index entry.
pub const TIME_ENTRY_BYTES: usize = 12;
const _: () = assert!(OFFSET_ENTRY_BYTES == 4 + 4);
const _: () = assert!(TIME_ENTRY_BYTES == 8 + 4);

/// A point where a batch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// The largest timestamp seen up to the batch that starts at `relative_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

/// Why an index file was not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("index file size {size} is not a multiple of {entry} bytes")]
    Size { size: usize, entry: usize },
    #[error("index entry {at} goes backwards")]
    NotMonotonic { at: usize },
    #[error("index entry {at} points past the end of the segment")]
    PastEnd { at: usize },
}

/// Sparse map from offsets to file positions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetIndex {
    entries: Vec<OffsetEntry>,
}

impl OffsetIndex {
    pub fn entries(&self) -> &[OffsetEntry] {
        &self.entries
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn last(&self) -> Option<OffsetEntry> {
        self.entries.last().copied()
    }

    /// Appends an entry; both keys must grow strictly (a broken order is a bug).
    pub fn push(&mut self, entry: OffsetEntry) {
        if let Some(last) = self.entries.last() {
            assert!(entry.relative_offset > last.relative_offset, "offset index order");
            assert!(entry.position > last.position, "offset index position order");
        }
        self.entries.push(entry);
    }

    /// The last entry at or below `relative_offset`, or the segment start.
    pub fn floor_by_offset(&self, relative_offset: u32) -> OffsetEntry {
        let i = self.entries.partition_point(|e| e.relative_offset <= relative_offset);
        if i == 0 { OffsetEntry { relative_offset: 0, position: 0 } } else { self.entries[i - 1] }
    }

    /// The last entry whose position is at or below `position`, or the segment start.
    pub fn floor_by_position(&self, position: u32) -> OffsetEntry {
        let i = self.entries.partition_point(|e| e.position <= position);
        if i == 0 { OffsetEntry { relative_offset: 0, position: 0 } } else { self.entries[i - 1] }
    }

    /// Drops entries for batches at or after `position` (the log was truncated there).
    pub fn truncate_to_position(&mut self, position: u32) {
        let i = self.entries.partition_point(|e| e.position < position);
        self.entries.truncate(i);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * OFFSET_ENTRY_BYTES);
        for e in &self.entries {
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
            out.extend_from_slice(&e.position.to_be_bytes());
        }
        out
    }

    /// Decodes an index file and checks it against the segment size.
    pub fn decode(bytes: &[u8], segment_size: u64) -> Result<Self, IndexError> {
        if !bytes.len().is_multiple_of(OFFSET_ENTRY_BYTES) {
            return Err(IndexError::Size { size: bytes.len(), entry: OFFSET_ENTRY_BYTES });
        }
        let mut entries: Vec<OffsetEntry> = Vec::with_capacity(bytes.len() / OFFSET_ENTRY_BYTES);
        for (at, chunk) in bytes.chunks_exact(OFFSET_ENTRY_BYTES).enumerate() {
            let entry = OffsetEntry {
                relative_offset: u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]),
                position: u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]),
            };
            if let Some(last) = entries.last()
                && (entry.relative_offset <= last.relative_offset
                    || entry.position <= last.position)
            {
                return Err(IndexError::NotMonotonic { at });
            }
            if u64::from(entry.position) >= segment_size {
                return Err(IndexError::PastEnd { at });
            }
            entries.push(entry);
        }
        Ok(Self { entries })
    }
}

/// Sparse map from timestamps to offsets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeIndex {
    entries: Vec<TimeEntry>,
}

impl TimeIndex {
    pub fn entries(&self) -> &[TimeEntry] {
        &self.entries
    }
    pub fn last(&self) -> Option<TimeEntry> {
        self.entries.last().copied()
    }

    /// Appends an entry if it raises the timestamp (entries grow in both keys).
    pub fn maybe_push(&mut self, entry: TimeEntry) {
        match self.entries.last() {
            Some(last) if entry.timestamp <= last.timestamp => {}
            Some(last) if entry.relative_offset <= last.relative_offset => {}
            _ => self.entries.push(entry),
        }
    }

    /// The last entry whose timestamp is below `timestamp`: every batch before its offset is
    /// older than `timestamp`, so a search may start there.
    pub fn floor_below(&self, timestamp: i64) -> Option<TimeEntry> {
        let i = self.entries.partition_point(|e| e.timestamp < timestamp);
        if i == 0 { None } else { Some(self.entries[i - 1]) }
    }

    /// Drops entries at or after `relative_offset`.
    pub fn truncate_to_offset(&mut self, relative_offset: u32) {
        let i = self.entries.partition_point(|e| e.relative_offset < relative_offset);
        self.entries.truncate(i);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * TIME_ENTRY_BYTES);
        for e in &self.entries {
            out.extend_from_slice(&e.timestamp.to_be_bytes());
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, IndexError> {
        if !bytes.len().is_multiple_of(TIME_ENTRY_BYTES) {
            return Err(IndexError::Size { size: bytes.len(), entry: TIME_ENTRY_BYTES });
        }
        let mut entries: Vec<TimeEntry> = Vec::with_capacity(bytes.len() / TIME_ENTRY_BYTES);
        for (at, c) in bytes.chunks_exact(TIME_ENTRY_BYTES).enumerate() {
            let entry = TimeEntry {
                timestamp: i64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
                relative_offset: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
            };
            if let Some(last) = entries.last()
                && (entry.timestamp <= last.timestamp
                    || entry.relative_offset < last.relative_offset)
            {
                return Err(IndexError::NotMonotonic { at });
            }
            entries.push(entry);
        }
        Ok(Self { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(entries: &[(u32, u32)]) -> OffsetIndex {
        let mut ix = OffsetIndex::default();
        for &(relative_offset, position) in entries {
            ix.push(OffsetEntry { relative_offset, position });
        }
        ix
    }

    #[test]
    fn floors_find_the_last_entry_at_or_below() {
        let ix = index(&[(10, 4096), (20, 8192), (35, 12288)]);
        assert_eq!(ix.floor_by_offset(5).position, 0);
        assert_eq!(ix.floor_by_offset(10).position, 4096);
        assert_eq!(ix.floor_by_offset(34).position, 8192);
        assert_eq!(ix.floor_by_offset(1000).position, 12288);
        assert_eq!(ix.floor_by_position(8191).relative_offset, 10);
        assert_eq!(ix.floor_by_position(8192).relative_offset, 20);
    }

    #[test]
    fn encode_decode_round_trip_and_checks() {
        let ix = index(&[(1, 10), (5, 100), (9, 5000)]);
        let bytes = ix.encode();
        assert_eq!(bytes.len(), 3 * OFFSET_ENTRY_BYTES);
        assert_eq!(OffsetIndex::decode(&bytes, 6000), Ok(ix.clone()));
        assert_eq!(OffsetIndex::decode(&bytes, 5000), Err(IndexError::PastEnd { at: 2 }));
        assert!(matches!(OffsetIndex::decode(&bytes[..7], 6000), Err(IndexError::Size { .. })));
        let mut swapped = bytes.clone();
        swapped[8..16].copy_from_slice(&bytes[0..8]);
        assert_eq!(OffsetIndex::decode(&swapped, 6000), Err(IndexError::NotMonotonic { at: 1 }));
    }

    #[test]
    fn truncation_drops_entries_at_and_after_the_cut() {
        let mut ix = index(&[(1, 10), (5, 100), (9, 5000)]);
        ix.truncate_to_position(100);
        assert_eq!(ix.entries().len(), 1);
        let mut tx = TimeIndex::default();
        tx.maybe_push(TimeEntry { timestamp: 5, relative_offset: 1 });
        tx.maybe_push(TimeEntry { timestamp: 4, relative_offset: 2 });
        tx.maybe_push(TimeEntry { timestamp: 9, relative_offset: 7 });
        assert_eq!(tx.entries().len(), 2, "a non-increasing timestamp adds nothing");
        assert_eq!(tx.floor_below(9).map(|e| e.relative_offset), Some(1));
        assert_eq!(tx.floor_below(5), None);
        assert_eq!(TimeIndex::decode(&tx.encode()), Ok(tx.clone()));
        tx.truncate_to_offset(7);
        assert_eq!(tx.entries().len(), 1);
    }
}
