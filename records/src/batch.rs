//! RecordBatch v2 headers: parsing, validation and offset assignment.
//!
//! A Kafka RecordBatch v2 is a 61-byte big-endian header followed by the (possibly compressed)
//! records. The CRC-32C in the header covers every byte from `attributes` (offset 21) to the end
//! of the batch, so the base offset and the partition leader epoch can be rewritten without
//! touching the CRC; only a `LogAppendTime` rewrite (attributes and max timestamp) needs a new one.
//!
//! Layout (offsets in bytes):
//! ```text
//!  0 baseOffset i64 | 8 batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8 | 17 crc u32
//! 21 attributes i16 | 23 lastOffsetDelta i32 | 27 baseTimestamp i64 | 35 maxTimestamp i64
//! 43 producerId i64 | 51 producerEpoch i16 | 53 baseSequence i32 | 57 recordsCount i32 | 61 records
//! ```

use bytes::Bytes;

use crate::compression::{Codec, CompressionError};
use crate::records;

/// Size of the fixed RecordBatch v2 header.
pub const HEADER_BYTES: usize = 61;
/// `baseOffset` + `batchLength`: the prefix that gives a batch's total size.
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// The only record-batch format this log stores.
pub const MAGIC_V2: i8 = 2;
/// Byte offset of the first byte covered by the CRC.
pub const CRC_START: usize = 21;
const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;
/// Smallest possible encoded record (length, attributes, ts delta, offset delta, key, value, headers).
const RECORD_BYTES_MIN: usize = 7;

const _: () = assert!(HEADER_BYTES == 61);
const _: () = assert!(LOG_OVERHEAD_BYTES == 8 + 4);

/// Why a batch was refused. The network layer maps these to Kafka error codes
/// (`CORRUPT_MESSAGE`, `INVALID_RECORD`, `MESSAGE_TOO_LARGE`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch truncated: needs {needed} bytes, {available} available")]
    Truncated { needed: usize, available: usize },
    #[error("batch length field {length} is out of range")]
    BadLength { length: i64 },
    #[error("unsupported record batch magic {found} (only v2 is stored)")]
    BadMagic { found: i8 },
    #[error("CRC-32C mismatch: header says {expected:#010x}, bytes give {computed:#010x}")]
    CrcMismatch { expected: u32, computed: u32 },
    #[error("record count {count} is inconsistent with last offset delta {last_offset_delta}")]
    BadRecordCount { count: i32, last_offset_delta: i32 },
    #[error("batch of {size} bytes exceeds max.message.bytes {max}")]
    TooLarge { size: usize, max: usize },
    #[error("records section is malformed: {reason}")]
    InvalidRecords { reason: String },
    #[error("compressed records: {0}")]
    Compression(#[from] CompressionError),
    #[error("no batch in an empty record set")]
    Empty,
}

/// How strictly to check a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// Batches from a producer: offsets must be dense (`lastOffsetDelta == count - 1`, count ≥ 1)
    /// and an uncompressed records section must hold exactly `count` records.
    Produce,
    /// Batches read back from the log: compaction may leave gaps (`lastOffsetDelta ≥ count - 1`)
    /// and even empty batches.
    Stored,
}

/// Timestamp semantics of a batch (attribute bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// The decoded fixed header of a RecordBatch v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

/// Reads the total size (`batchLength + 12`) from the first 12 bytes of a batch.
///
/// Returns `None` when fewer than 12 bytes are given; `Err` when the length cannot be a batch.
pub fn peek_total_len(buf: &[u8]) -> Option<Result<usize, BatchError>> {
    if buf.len() < LOG_OVERHEAD_BYTES {
        return None;
    }
    let length = be_i32(buf, 8);
    let min = (HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32;
    if length < min {
        return Some(Err(BatchError::BadLength { length: i64::from(length) }));
    }
    Some(Ok(length as usize + LOG_OVERHEAD_BYTES))
}

impl BatchHeader {
    /// Decodes the fixed header. Checks only that 61 bytes are present and that the length
    /// field can describe a batch; see [`validate`] for the full checks.
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        if buf.len() < HEADER_BYTES {
            return Err(BatchError::Truncated { needed: HEADER_BYTES, available: buf.len() });
        }
        let header = BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length: be_i32(buf, 8),
            partition_leader_epoch: be_i32(buf, 12),
            magic: buf[16] as i8,
            crc: be_i32(buf, 17) as u32,
            attributes: be_i16(buf, 21),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, 35),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            records_count: be_i32(buf, 57),
        };
        if (header.batch_length as i64) < (HEADER_BYTES - LOG_OVERHEAD_BYTES) as i64 {
            return Err(BatchError::BadLength { length: i64::from(header.batch_length) });
        }
        if header.magic != MAGIC_V2 {
            return Err(BatchError::BadMagic { found: header.magic });
        }
        Ok(header)
    }

    /// Total bytes of the batch, header included.
    pub fn total_len(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD_BYTES
    }
    /// Offset of the last record the batch covers (compaction may have removed it).
    ///
    /// Saturates at `i64::MAX` (`MIN`): a damaged or hostile header can put the base offset so near
    /// it that adding the delta overflows (the `batch` fuzz target found the consumer's decoder
    /// panicking on one); no real batch comes near.
    pub fn last_offset(&self) -> i64 {
        self.base_offset.saturating_add(i64::from(self.last_offset_delta))
    }
    /// The number of offsets the batch spans.
    pub fn offset_span(&self) -> u64 {
        self.last_offset_delta as u64 + 1
    }
    pub fn codec(&self) -> Result<Codec, CompressionError> {
        Codec::from_attributes(self.attributes)
    }
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & ATTR_TIMESTAMP_TYPE != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }
}

/// CRC-32C of a whole batch, as it should appear in its header.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[CRC_START..])
}

/// Fully validates one batch occupying exactly `batch` (no trailing bytes): header, length,
/// magic, CRC-32C and record count.
pub fn validate(batch: &[u8], strictness: Strictness) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if header.total_len() != batch.len() {
        return Err(BatchError::Truncated { needed: header.total_len(), available: batch.len() });
    }
    let computed = compute_crc(batch);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch { expected: header.crc, computed });
    }
    check_record_count(&header, batch, strictness)?;
    Ok(header)
}

fn check_record_count(
    header: &BatchHeader,
    batch: &[u8],
    strictness: Strictness,
) -> Result<(), BatchError> {
    let count = header.records_count;
    let delta = header.last_offset_delta;
    let bad = BatchError::BadRecordCount { count, last_offset_delta: delta };
    let consistent = match strictness {
        Strictness::Produce => count >= 1 && i64::from(delta) == i64::from(count) - 1,
        Strictness::Stored => count >= 0 && delta >= 0 && i64::from(delta) >= i64::from(count) - 1,
    };
    if !consistent {
        return Err(bad);
    }
    let body = &batch[HEADER_BYTES..];
    let codec = header.codec()?;
    if codec == Codec::None {
        if (count as usize).saturating_mul(RECORD_BYTES_MIN) > body.len() {
            return Err(bad);
        }
        if strictness == Strictness::Produce {
            let found = records::count_records(body)
                .map_err(|e| BatchError::InvalidRecords { reason: e.to_string() })?;
            if found != count as usize {
                return Err(BatchError::InvalidRecords {
                    reason: format!("header says {count} records, section holds {found}"),
                });
            }
        }
    }
    Ok(())
}

/// One validated batch of a producer's record set, ready to be stored.
#[derive(Debug, Clone)]
pub struct IncomingBatch {
    pub header: BatchHeader,
    /// The producer's bytes, untouched.
    pub bytes: Bytes,
}

/// Splits a producer's record set (one or more concatenated batches) and validates each batch
/// with [`Strictness::Produce`]. Refuses the whole set if any batch is bad or larger than
/// `max_batch_bytes`, so nothing of a bad request is ever written.
pub fn split_record_set(
    records: &Bytes,
    max_batch_bytes: usize,
) -> Result<Vec<IncomingBatch>, BatchError> {
    if records.is_empty() {
        return Err(BatchError::Empty);
    }
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < records.len() {
        let rest = &records[pos..];
        let total = match peek_total_len(rest) {
            None => {
                return Err(BatchError::Truncated {
                    needed: LOG_OVERHEAD_BYTES,
                    available: rest.len(),
                });
            }
            Some(r) => r?,
        };
        if total > max_batch_bytes {
            return Err(BatchError::TooLarge { size: total, max: max_batch_bytes });
        }
        if total > rest.len() {
            return Err(BatchError::Truncated { needed: total, available: rest.len() });
        }
        let bytes = records.slice(pos..pos + total);
        let header = validate(&bytes, Strictness::Produce)?;
        out.push(IncomingBatch { header, bytes });
        pos += total;
    }
    Ok(out)
}

/// The first [`HEADER_BYTES`] of a batch as they will be stored: base offset rewritten and, for
/// `LogAppendTime`, the timestamp type bit and max timestamp set and the CRC recomputed.
///
/// The rest of the batch is stored from the producer's buffer as is (a vectored write joins the
/// two), so assigning offsets copies 61 bytes per batch, never the payload.
pub fn stored_header(
    batch: &IncomingBatch,
    base_offset: i64,
    log_append_time: Option<i64>,
) -> [u8; HEADER_BYTES] {
    let mut header = [0u8; HEADER_BYTES];
    header.copy_from_slice(&batch.bytes[..HEADER_BYTES]);
    header[0..8].copy_from_slice(&base_offset.to_be_bytes());
    if let Some(now) = log_append_time {
        let attributes = batch.header.attributes | ATTR_TIMESTAMP_TYPE;
        header[21..23].copy_from_slice(&attributes.to_be_bytes());
        header[35..43].copy_from_slice(&now.to_be_bytes());
        let mut crc = crc32c::crc32c(&header[CRC_START..]);
        crc = crc32c::crc32c_append(crc, &batch.bytes[HEADER_BYTES..]);
        header[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    header
}

/// Result of scanning a byte range of stored batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scanned {
    /// Position of the batch within the scanned buffer.
    pub position: usize,
    pub header: BatchHeader,
}

/// Walks the headers of whole batches in `buf` (no CRC check), stopping at the first incomplete
/// or malformed header. Returns the batches found and the number of bytes they cover.
pub fn scan_headers(buf: &[u8], mut visit: impl FnMut(Scanned) -> bool) -> usize {
    let mut pos = 0usize;
    while let Ok(header) = BatchHeader::parse(&buf[pos..]) {
        let total = header.total_len();
        if pos + total > buf.len() {
            break;
        }
        if !visit(Scanned { position: pos, header }) {
            break;
        }
        pos += total;
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::{BatchParams, build_batch};
    use crate::records::Record;

    fn batch(n: usize, codec: Codec) -> Bytes {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                attributes: 0,
                timestamp_delta: i as i64,
                offset_delta: i as i32,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(vec![b'v'; 20])),
                headers: vec![],
            })
            .collect();
        build_batch(&BatchParams::simple(codec, 1_000, n), &records).expect("build")
    }

    #[test]
    fn valid_batches_pass_for_every_codec() {
        for codec in [Codec::None, Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let b = batch(5, codec);
            let h = validate(&b, Strictness::Produce).expect("valid");
            assert_eq!(h.records_count, 5);
            assert_eq!(h.last_offset_delta, 4);
            assert_eq!(h.codec().expect("codec"), codec);
        }
    }

    #[test]
    fn every_single_bit_flip_after_the_crc_is_detected() {
        let b = batch(3, Codec::None);
        for i in CRC_START..b.len() {
            let mut m = b.to_vec();
            m[i] ^= 0x40;
            assert!(validate(&m, Strictness::Stored).is_err(), "flip at {i} not detected");
        }
    }

    #[test]
    fn truncated_batches_are_refused_at_every_length() {
        let b = batch(3, Codec::Lz4);
        for len in 0..b.len() {
            let set = b.slice(..len);
            assert!(split_record_set(&set, 1 << 20).is_err(), "length {len} accepted");
        }
    }

    #[test]
    fn inconsistent_record_count_is_refused() {
        let b = batch(3, Codec::None);
        let mut m = b.to_vec();
        m[57..61].copy_from_slice(&4i32.to_be_bytes());
        let crc = compute_crc(&m);
        m[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate(&m, Strictness::Produce),
            Err(BatchError::BadRecordCount { .. })
        ));
    }

    #[test]
    fn record_count_must_match_uncompressed_records() {
        let b = batch(3, Codec::None);
        let mut m = b.to_vec();
        m[57..61].copy_from_slice(&2i32.to_be_bytes());
        m[23..27].copy_from_slice(&1i32.to_be_bytes());
        let crc = compute_crc(&m);
        m[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate(&m, Strictness::Produce),
            Err(BatchError::InvalidRecords { .. })
        ));
    }

    #[test]
    fn old_magic_and_oversize_are_refused() {
        let b = batch(1, Codec::None);
        let mut m = b.to_vec();
        m[16] = 1;
        assert!(matches!(BatchHeader::parse(&m), Err(BatchError::BadMagic { found: 1 })));
        assert!(matches!(split_record_set(&b, b.len() - 1), Err(BatchError::TooLarge { .. })));
    }

    #[test]
    fn offset_rewrite_keeps_crc_and_log_append_time_recomputes_it() {
        let b = batch(2, Codec::Gzip);
        let incoming = split_record_set(&b, 1 << 20).expect("split").remove(0);
        let header = stored_header(&incoming, 42, None);
        let mut stored = header.to_vec();
        stored.extend_from_slice(&b[HEADER_BYTES..]);
        let h = validate(&stored, Strictness::Stored).expect("still valid");
        assert_eq!(h.base_offset, 42);
        assert_eq!(&stored[17..21], &b[17..21], "CRC untouched by an offset rewrite");

        let header = stored_header(&incoming, 7, Some(99_999));
        let mut stored = header.to_vec();
        stored.extend_from_slice(&b[HEADER_BYTES..]);
        let h = validate(&stored, Strictness::Stored).expect("valid after LogAppendTime");
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(h.max_timestamp, 99_999);
    }

    #[test]
    fn multi_batch_record_sets_split_and_scan() {
        let mut set = batch(2, Codec::None).to_vec();
        set.extend_from_slice(&batch(3, Codec::Zstd));
        let set = Bytes::from(set);
        let parts = split_record_set(&set, 1 << 20).expect("split");
        assert_eq!(parts.len(), 2);
        let mut seen = 0;
        let covered = scan_headers(&set[..set.len() - 1], |_| {
            seen += 1;
            true
        });
        assert_eq!(seen, 1, "the torn second batch is not reported");
        assert_eq!(covered, parts[0].bytes.len());
    }
}
