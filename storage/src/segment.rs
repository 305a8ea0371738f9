//! One segment: a `.log` file of whole batches and its in-memory indexes.
//!
//! A segment covers offsets `[base_offset, next_offset)` and bytes `[0, size)` of its file;
//! `size` only ever counts complete, validated batches, so every byte a reader may be given is
//! part of a whole batch.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::backend::{Backend, StorageFile};
use crate::batch::{self, BatchHeader, HEADER_BYTES, LOG_OVERHEAD_BYTES, Strictness};
use crate::error::IoFailure;
use crate::index::{OffsetEntry, OffsetIndex, TimeEntry, TimeIndex};

/// Bytes read per I/O when walking batch headers.
pub const SCAN_CHUNK_BYTES: usize = 64 * 1024;
/// Largest batch recovery will read whole to verify (a longer length field is corruption).
pub const RECOVERY_BATCH_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Largest `offset - base_offset` a segment may hold: index entries store it as 32 bits, and
/// Kafka caps it at `i32::MAX`. The log rolls before an append would cross it, and recovery
/// treats a batch beyond it as corrupt (its base offset is not covered by the CRC).
pub const RELATIVE_OFFSET_MAX: u64 = i32::MAX as u64;

// A scan chunk holds at least a batch's length prefix and its whole header.
const _: () = assert!(SCAN_CHUNK_BYTES >= LOG_OVERHEAD_BYTES && SCAN_CHUNK_BYTES >= HEADER_BYTES);
const _: () = assert!(RECOVERY_BATCH_BYTES_MAX >= SCAN_CHUNK_BYTES);
// Index entries hold a relative offset in 32 bits (Kafka's format).
const _: () = assert!(RELATIVE_OFFSET_MAX <= u32::MAX as u64);

pub fn log_path(dir: &Path, base_offset: u64) -> PathBuf {
    dir.join(format!("{base_offset:020}.log"))
}
pub fn index_path(dir: &Path, base_offset: u64) -> PathBuf {
    dir.join(format!("{base_offset:020}.index"))
}
pub fn time_index_path(dir: &Path, base_offset: u64) -> PathBuf {
    dir.join(format!("{base_offset:020}.timeindex"))
}

/// State of one segment. Lives inside the log's state; only the log's writer mutates it.
#[derive(Debug)]
pub struct Segment<F> {
    pub base_offset: u64,
    pub path: PathBuf,
    pub file: F,
    /// Bytes of whole batches.
    pub size: u64,
    /// Offset after the last batch (== `base_offset` when empty).
    pub next_offset: u64,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    /// Largest batch `maxTimestamp` in the segment (−1 when empty).
    pub max_timestamp: i64,
    /// `maxTimestamp` of the first batch, which `segment.ms` measures from.
    pub first_timestamp: Option<i64>,
    /// Offset of the batch that holds `max_timestamp`.
    pub max_timestamp_offset: u64,
    /// Bytes appended since the last offset-index entry.
    pub bytes_since_index: u64,
    /// Everything below this position was already dropped from the page cache.
    pub cache_dropped_to: u64,
    /// Writes through the page cache: writeback to the device was started for everything below
    /// this position (see `Log::start_writeback`).
    pub writeback_from: u64,
    /// How the active segment is written directly (see [`DirectState`]).
    pub direct: DirectState<F>,
}

/// Direct-write state of a segment.
#[derive(Debug, Clone)]
pub enum DirectState<F> {
    /// No direct handle yet (opened, with the tail read back, on the first direct write).
    Unopened,
    /// A direct-write handle, and the bytes of the partial block at the end of the data
    /// (`size % DIRECT_ALIGN` of them), which the next direct write rewrites.
    Open { file: F, tail: Vec<u8> },
    /// The file system has no direct I/O, or the segment is closed: write through the cache.
    Off,
}

impl<F: StorageFile> Segment<F> {
    pub fn empty(base_offset: u64, path: PathBuf, file: F) -> Self {
        Self {
            base_offset,
            path,
            file,
            size: 0,
            next_offset: base_offset,
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            max_timestamp: -1,
            first_timestamp: None,
            max_timestamp_offset: base_offset,
            bytes_since_index: 0,
            cache_dropped_to: 0,
            writeback_from: 0,
            direct: DirectState::Unopened,
        }
    }

    /// `offset - base_offset`; the log keeps every offset of a segment within
    /// [`RELATIVE_OFFSET_MAX`] of its base, so this never truncates.
    pub fn relative(&self, offset: u64) -> u32 {
        assert!(offset >= self.base_offset, "offset {offset} below segment {}", self.base_offset);
        let rel = offset - self.base_offset;
        assert!(rel <= RELATIVE_OFFSET_MAX, "offset {offset} outside segment {}", self.base_offset);
        rel as u32
    }

    /// Position of the last index entry at or below `offset` (a batch start from which to scan
    /// for it). Offsets outside the segment are clamped to it, so any offset is safe to ask.
    pub fn index_floor(&self, offset: u64) -> u64 {
        let rel = self.relative(offset.clamp(self.base_offset, self.next_offset));
        u64::from(self.offset_index.floor_by_offset(rel).position)
    }

    /// Whether a batch's offsets fit this segment's relative-offset range.
    pub fn fits(&self, header: &BatchHeader) -> bool {
        header.base_offset >= 0
            && header.last_offset() >= header.base_offset
            && (header.last_offset() as u64).saturating_sub(self.base_offset) <= RELATIVE_OFFSET_MAX
    }

    /// Records a batch that was just written at `position` (indexes, timestamps, sizes).
    pub fn note_batch(&mut self, position: u64, header: &BatchHeader, index_interval: u64) {
        assert_eq!(position, self.size, "batches are recorded in file order");
        assert!(header.base_offset as u64 >= self.next_offset, "offsets grow");
        let len = header.total_len() as u64;
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.max_timestamp_offset = header.base_offset as u64;
        }
        if self.first_timestamp.is_none() {
            self.first_timestamp = Some(header.max_timestamp);
        }
        if self.bytes_since_index >= index_interval && position > 0 {
            // Index entries hold the position in 32 bits.
            assert!(position <= u64::from(u32::MAX), "segment position {position} beyond 4 GiB");
            let rel = self.relative(header.base_offset as u64);
            self.offset_index.push(OffsetEntry { relative_offset: rel, position: position as u32 });
            self.push_time_entry();
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += len;
        self.size += len;
        self.next_offset = header.last_offset() as u64 + 1;
    }

    /// Adds a time-index entry for the largest timestamp so far (also done when the segment is
    /// closed, so that its last entry holds the segment's largest timestamp).
    pub fn push_time_entry(&mut self) {
        if self.max_timestamp >= 0 {
            let rel = self.relative(self.max_timestamp_offset);
            self.time_index
                .maybe_push(TimeEntry { timestamp: self.max_timestamp, relative_offset: rel });
        }
    }

    /// Walks the whole file from the start, verifying every batch (CRC-32C, length, record
    /// count, growing offsets), and rebuilds the indexes. Stops at the first batch that fails;
    /// returns the byte length of the valid prefix. Does not modify the file.
    pub async fn rebuild(
        &mut self,
        file_len: u64,
        index_interval: u64,
    ) -> Result<ScanEnd, IoFailure> {
        self.reset();
        let mut window = ScanWindow { buf: Bytes::new(), pos: 0 };
        let mut pos = 0u64;
        while pos < file_len {
            let (header, total) = match self.verify_batch_at(&mut window, pos, file_len).await? {
                Ok(found) => found,
                Err(reason) => {
                    // Pair of the append-side checks: the valid prefix is whole batches only.
                    assert_eq!(self.size, pos, "the kept prefix is whole batches");
                    return Ok(ScanEnd::Torn { valid_bytes: pos, reason });
                }
            };
            self.note_batch(pos, &header, index_interval);
            pos += total as u64;
        }
        assert_eq!(self.size, file_len, "a clean scan accounts for every byte");
        Ok(ScanEnd::Clean)
    }

    /// Reads the batch at `pos` (through `window`) and verifies it as recovery must: its length
    /// within the file and the recovery bound, [`batch::validate`] (CRC included), offsets that
    /// fit this segment and follow its last batch. `Ok(Err(reason))`: the batch is torn or
    /// corrupt. Returns the header and the batch's length.
    async fn verify_batch_at(
        &self,
        window: &mut ScanWindow,
        pos: u64,
        file_len: u64,
    ) -> Result<Result<(BatchHeader, usize), String>, IoFailure> {
        // The batch's 12-byte prefix, then the whole batch, each read only when missing.
        let prefix = window.at(&self.file, &self.path, pos, LOG_OVERHEAD_BYTES, file_len).await?;
        let total = match batch::peek_total_len(prefix) {
            None => return Ok(Err("incomplete batch header".into())),
            Some(Err(e)) => return Ok(Err(e.to_string())),
            Some(Ok(n)) => n,
        };
        if pos + total as u64 > file_len {
            return Ok(Err(format!("batch of {total} bytes runs past the end of the file")));
        }
        if total > RECOVERY_BATCH_BYTES_MAX {
            return Ok(Err(format!("batch length {total} exceeds the recovery bound")));
        }
        let rest = window.at(&self.file, &self.path, pos, total, file_len).await?;
        if total > rest.len() {
            return Ok(Err(format!("short read: {} of {total} bytes", rest.len())));
        }
        let header = match batch::validate(&rest[..total], Strictness::Stored) {
            Ok(h) => h,
            Err(e) => return Ok(Err(e.to_string())),
        };
        Ok(self.check_follows(&header).map(|()| (header, total)))
    }

    /// Whether a verified batch may be the next one of this segment: its offsets fit the
    /// segment's relative range and start at or after the segment's end (offsets only grow).
    fn check_follows(&self, header: &BatchHeader) -> Result<(), String> {
        if !self.fits(header) {
            return Err(format!(
                "batch offsets {}..={} do not fit segment {}",
                header.base_offset,
                header.last_offset(),
                self.base_offset
            ));
        }
        if (header.base_offset as u64) < self.next_offset {
            return Err(format!(
                "batch base offset {} is below the expected {}",
                header.base_offset, self.next_offset
            ));
        }
        Ok(())
    }

    /// Restores the segment from its index files, trusting them and the data (a clean shutdown
    /// or a closed segment): checks the indexes, then walks the batch headers after the last
    /// index entry to find the end. Returns `false` (and leaves the segment reset) when anything
    /// does not add up, so the caller can [`Self::rebuild`] instead.
    pub async fn load<B: Backend<File = F>>(
        &mut self,
        backend: &B,
        dir: &Path,
        file_len: u64,
    ) -> Result<bool, IoFailure> {
        self.reset();
        let loaded =
            self.load_indexes(backend, dir, file_len).await? && self.walk_tail(file_len).await?;
        if !loaded {
            self.reset();
            return Ok(false);
        }
        // The index entries and the tail walk account for every byte, in whole batches.
        assert_eq!(self.size, file_len, "a loaded segment ends where its file does");
        if self.size > 0 {
            let head = self.read_header(0).await?;
            self.first_timestamp = BatchHeader::parse(&head).ok().map(|h| h.max_timestamp);
        }
        Ok(true)
    }

    /// Reads both index files and takes the segment's state at the last offset-index entry
    /// from them; `false` when one is missing or damaged, or the last entry does not name the
    /// batch that really starts at its position.
    async fn load_indexes<B: Backend<File = F>>(
        &mut self,
        backend: &B,
        dir: &Path,
        file_len: u64,
    ) -> Result<bool, IoFailure> {
        let ipath = index_path(dir, self.base_offset);
        let tpath = time_index_path(dir, self.base_offset);
        let (Some(ibytes), Some(tbytes)) =
            (read_whole(backend, &ipath).await?, read_whole(backend, &tpath).await?)
        else {
            return Ok(false);
        };
        let (Ok(offset_index), Ok(time_index)) =
            (OffsetIndex::decode(&ibytes, file_len), TimeIndex::decode(&tbytes))
        else {
            return Ok(false);
        };
        let start = offset_index.last().unwrap_or(OffsetEntry { relative_offset: 0, position: 0 });
        self.size = u64::from(start.position);
        self.next_offset = self.base_offset + u64::from(start.relative_offset);
        if let Some(last) = time_index.last() {
            self.max_timestamp = last.timestamp;
            self.max_timestamp_offset = self.base_offset + u64::from(last.relative_offset);
        }
        self.offset_index = offset_index;
        self.time_index = time_index;
        if self.size > 0 {
            // The last entry must name the batch that really starts there.
            let head = self.read_header(self.size).await?;
            let agrees =
                BatchHeader::parse(&head).is_ok_and(|h| h.base_offset as u64 == self.next_offset);
            return Ok(agrees);
        }
        Ok(true)
    }

    /// Walks the batch headers from the end the indexes gave to the end of the file, keeping
    /// the loaded index entries and accounting the tail batch by batch; `false` when a header
    /// does not parse, runs past the file, or goes back in offsets.
    async fn walk_tail(&mut self, file_len: u64) -> Result<bool, IoFailure> {
        let mut pos = self.size;
        while pos < file_len {
            let head = self.read_header(pos).await?;
            let Ok(header) = BatchHeader::parse(&head) else {
                return Ok(false);
            };
            if pos + header.total_len() as u64 > file_len
                || (header.base_offset as u64) < self.next_offset
                || !self.fits(&header)
            {
                return Ok(false);
            }
            let len = header.total_len() as u64;
            if header.max_timestamp > self.max_timestamp {
                self.max_timestamp = header.max_timestamp;
                self.max_timestamp_offset = header.base_offset as u64;
            }
            self.bytes_since_index += len;
            self.size += len;
            self.next_offset = header.last_offset() as u64 + 1;
            pos += len;
        }
        Ok(true)
    }

    /// Reads the batch header at `pos` (fewer bytes where the file ends).
    async fn read_header(&self, pos: u64) -> Result<Bytes, IoFailure> {
        self.file
            .read_at(pos, HEADER_BYTES)
            .await
            .map_err(|e| IoFailure::new("read", &self.path, e))
    }

    fn reset(&mut self) {
        let (base, path, file) = (self.base_offset, self.path.clone(), self.file.clone());
        *self = Segment::empty(base, path, file);
    }
}

/// How a verifying scan of a segment ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanEnd {
    /// Every byte of the file is part of a valid batch.
    Clean,
    /// The file holds `valid_bytes` of valid batches, then something that is not one.
    Torn { valid_bytes: u64, reason: String },
}

/// The bytes a verifying scan read last, from file position `pos` on.
struct ScanWindow {
    buf: Bytes,
    pos: u64,
}

impl ScanWindow {
    /// The bytes from `at` on, at least `want` of them unless the file ends first: those
    /// already read, else a fresh read of `max(want, SCAN_CHUNK_BYTES)` bytes at `at`.
    async fn at<F: StorageFile>(
        &mut self,
        file: &F,
        path: &Path,
        at: u64,
        want: usize,
        file_len: u64,
    ) -> Result<&[u8], IoFailure> {
        assert!(at >= self.pos, "a scan only moves forward");
        if (at - self.pos) as usize + want > self.buf.len() {
            self.buf = read_upto(file, path, at, want.max(SCAN_CHUNK_BYTES), file_len).await?;
            self.pos = at;
        }
        Ok(&self.buf[(at - self.pos) as usize..])
    }
}

/// Reads `len` bytes at `pos`, or fewer where the file (of `file_len` bytes) ends.
async fn read_upto<F: StorageFile>(
    file: &F,
    path: &Path,
    pos: u64,
    len: usize,
    file_len: u64,
) -> Result<Bytes, IoFailure> {
    let len = len.min(file_len.saturating_sub(pos) as usize);
    file.read_at(pos, len).await.map_err(|e| IoFailure::new("read", path, e))
}

/// Reads a whole small file (an index); `None` when it does not exist.
pub async fn read_whole<B: Backend>(backend: &B, path: &Path) -> Result<Option<Bytes>, IoFailure> {
    if !backend.exists(path).await.map_err(|e| IoFailure::new("stat", path, e))? {
        return Ok(None);
    }
    let file = backend.open(path, false).await.map_err(|e| IoFailure::new("open", path, e))?;
    let len = file.size().await.map_err(|e| IoFailure::new("stat", path, e))?;
    let bytes = file.read_at(0, len as usize).await.map_err(|e| IoFailure::new("read", path, e))?;
    Ok(Some(bytes))
}

/// Writes a small file's whole contents in place and syncs it. Used for index files, whose
/// new contents always extend the old (entries are only appended between two writes; a
/// truncation removes the file first), so a torn write leaves a shorter but still correct
/// index; files that need all-or-nothing replacement go through a `.tmp` and a rename.
pub async fn write_whole<B: Backend>(
    backend: &B,
    path: &Path,
    bytes: Vec<u8>,
) -> Result<(), IoFailure> {
    let file = backend.open(path, true).await.map_err(|e| IoFailure::new("open", path, e))?;
    let len = bytes.len() as u64;
    file.write_at(0, vec![Bytes::from(bytes)])
        .await
        .map_err(|e| IoFailure::new("write", path, e))?;
    file.set_len(len).await.map_err(|e| IoFailure::new("truncate", path, e))?;
    file.sync_data().await.map_err(|e| IoFailure::new("fdatasync", path, e))?;
    Ok(())
}
