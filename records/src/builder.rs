//! Building complete Kafka RecordBatch v2 batches: one builder for every writer.
//!
//! [`BatchBuilder`] is the engine. It appends records to a records section it keeps between
//! batches ([`BatchBuilder::push`] for the producer's fast path, [`BatchBuilder::push_record`]
//! for a decoded [`Record`]), then [`BatchBuilder::finish`] (a producer's batch) or
//! [`BatchBuilder::finish_with`] (header fields given verbatim) writes the header, compresses the
//! section straight after it into the caller's buffer and fills `batchLength` and the CRC in
//! place. An uncompressed batch is finished in the builder's own buffer, which keeps room for the
//! header in front of the records, and changes places with the caller's: its records are never
//! copied. Nothing is allocated per batch once the buffers have grown: the bench's producers
//! encode tens of millions of records a second on one core with it.
//!
//! [`build_batch`] is the all-at-once front end (compaction, group metadata, tests): a slice of
//! records and [`BatchParams`] in, a [`Bytes`] batch out.
//!
//! The 61-byte header (big-endian; offsets in bytes):
//!
//! ```text
//!  0 baseOffset i64 | 8 batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8 (= 2)
//! 17 crc u32        | 21 attributes i16 | 23 lastOffsetDelta i32     | 27 baseTimestamp i64
//! 35 maxTimestamp i64 | 43 producerId i64 | 51 producerEpoch i16 | 53 baseSequence i32
//! 57 recordsCount i32 | 61 records (compressed as a whole unless the codec is none)
//! ```
//!
//! `batchLength` counts the bytes after itself (total length − 12) and the
//! CRC is CRC-32C (Castagnoli) over every byte from `attributes` (offset
//! 21) to the end of the batch.

use bytes::Bytes;

use crate::batch::{CRC_START, HEADER_BYTES, LOG_OVERHEAD_BYTES, MAGIC_V2};
use crate::compression::{self, Codec, CompressionError};
use crate::records::{self, Record};

/// Offset of the CRC field.
const CRC_AT: usize = 17;
/// Offset of the `batchLength` field.
const BATCH_LENGTH_AT: usize = 8;
/// Largest `batchLength` (an `int32`).
const MAX_BATCH_LENGTH: usize = i32::MAX as usize;
/// Largest key, value or record body (the format's lengths are `int32`).
const FIELD_BYTES_MAX: usize = i32::MAX as usize;
/// Records section capacity a new builder starts with.
const SECTION_BYTES_INITIAL: usize = 64 << 10;

const _: () = assert!(CRC_AT + 4 == CRC_START);

/// The header fields of a batch to build. They are written verbatim:
/// [`build_batch`] does not check them against the records (so tests can
/// build inconsistent batches on purpose).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchParams {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Leader epoch of the partition when the batch was appended.
    pub partition_leader_epoch: i32,
    /// Batch attributes: codec in bits 0–2, timestamp type in bit 3
    /// (1 = LogAppendTime), transactional in bit 4, control in bit 5.
    pub attributes: i16,
    /// Offset delta of the last record (may exceed `count - 1` after
    /// compaction).
    pub last_offset_delta: i32,
    /// Timestamp of the first record; record timestamps are relative to it.
    pub base_timestamp: i64,
    /// Largest record timestamp (or the append time for LogAppendTime).
    pub max_timestamp: i64,
    /// Producer id, -1 when not idempotent.
    pub producer_id: i64,
    /// Producer epoch, -1 when not idempotent.
    pub producer_epoch: i16,
    /// Sequence number of the first record, -1 when not idempotent.
    pub base_sequence: i32,
}

impl BatchParams {
    /// A typical non-idempotent producer batch of `record_count` records:
    /// base offset 0, partition leader epoch -1, attributes holding only
    /// `codec` (CreateTime, not transactional, not control), both
    /// timestamps `timestamp`, producer id, epoch and base sequence -1, and
    /// `last_offset_delta` `record_count - 1` (0 for an empty batch;
    /// saturating at `i32::MAX`).
    pub fn simple(codec: Codec, timestamp: i64, record_count: usize) -> Self {
        BatchParams {
            base_offset: 0,
            partition_leader_epoch: -1,
            attributes: codec.id(),
            last_offset_delta: i32::try_from(record_count.saturating_sub(1)).unwrap_or(i32::MAX),
            base_timestamp: timestamp,
            max_timestamp: timestamp,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
        }
    }
}

/// The producer identity stamped on a batch (idempotent producer), or none (all -1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerStamp {
    pub producer_id: i64,
    pub epoch: i16,
    pub base_sequence: i32,
}

impl ProducerStamp {
    /// Not idempotent: producer id, epoch and base sequence -1.
    pub const NONE: ProducerStamp = ProducerStamp { producer_id: -1, epoch: -1, base_sequence: -1 };
}

fn too_large(what: &'static str, len: usize, max: usize) -> CompressionError {
    CompressionError::InputTooLarge { what, len, max }
}

#[inline]
fn field_len(what: &'static str, len: usize) -> Result<i32, CompressionError> {
    i32::try_from(len).map_err(|_| too_large(what, len, FIELD_BYTES_MAX))
}

/// Appends records to one batch at a time and writes finished batches into a caller's buffer.
/// Reuse it: `push`..., `finish`, `push`..., `finish`. A finish, successful or not, leaves the
/// builder empty.
#[derive(Debug)]
pub struct BatchBuilder {
    codec: Codec,
    /// [`HEADER_BYTES`] of room for the header, then the uncompressed records section of the
    /// batch being built. An uncompressed batch is finished in this buffer, which then
    /// changes places with the caller's: the section is never copied.
    section: Vec<u8>,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
}

impl BatchBuilder {
    /// An empty builder whose [`finish`](Self::finish) compresses with `codec`.
    pub fn new(codec: Codec) -> BatchBuilder {
        BatchBuilder::with_capacity(codec, SECTION_BYTES_INITIAL)
    }

    /// An empty builder whose records section starts with room for `section_bytes`.
    pub fn with_capacity(codec: Codec, section_bytes: usize) -> BatchBuilder {
        let mut section = Vec::with_capacity(HEADER_BYTES.saturating_add(section_bytes));
        section.resize(HEADER_BYTES, 0);
        BatchBuilder { codec, section, count: 0, base_timestamp: 0, max_timestamp: 0 }
    }

    /// The codec [`finish`](Self::finish) uses.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Records pushed since the last finish.
    pub fn count(&self) -> i32 {
        self.count
    }

    /// Uncompressed bytes of the records pushed since the last finish.
    pub fn records_bytes(&self) -> usize {
        self.section.len() - HEADER_BYTES
    }

    #[inline]
    fn next_offset_delta(&self) -> Result<i32, CompressionError> {
        if self.count == i32::MAX {
            return Err(too_large("record count", i32::MAX as usize, i32::MAX as usize - 1));
        }
        Ok(self.count)
    }

    #[inline]
    fn note_timestamp(&mut self, timestamp_ms: i64) {
        if self.count == 0 {
            self.base_timestamp = timestamp_ms;
            self.max_timestamp = timestamp_ms;
        }
        self.max_timestamp = self.max_timestamp.max(timestamp_ms);
    }

    /// Appends one record without headers at the next offset delta, with timestamp
    /// `timestamp_ms` (the first record of a batch sets the base timestamp). The producer's path:
    /// no [`Record`] is built and nothing is allocated once the section has grown.
    ///
    /// # Errors
    ///
    /// [`CompressionError::InputTooLarge`] if the key, the value or the record does not fit
    /// the format's `int32` lengths, or the batch already holds `i32::MAX` records; nothing is
    /// appended then.
    #[inline]
    pub fn push(
        &mut self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: &[u8],
    ) -> Result<(), CompressionError> {
        let offset_delta = self.next_offset_delta()?;
        // Slices are at most isize::MAX bytes, so their lengths fit an i64 exactly.
        let key_len = key.map_or(-1, |k| k.len() as i64);
        let value_len = value.len() as i64;
        let ts_delta =
            if self.count == 0 { 0 } else { timestamp_ms.wrapping_sub(self.base_timestamp) };
        // Body: attributes, timestamp delta, offset delta, key, value, header count (0).
        let body = 1
            + records::varlong_len(ts_delta)
            + records::varint_len(offset_delta)
            + records::varlong_len(key_len)
            + key.map_or(0, <[u8]>::len)
            + records::varlong_len(value_len)
            + value.len()
            + 1;
        // One check covers the key and the value too: each is shorter than the body.
        let body_wire = field_len("record", body)?;
        let (key_len, value_len) = (key_len as i32, value_len as i32);
        self.note_timestamp(timestamp_ms);
        let s = &mut self.section;
        s.reserve(body + 5);
        records::write_varint(s, body_wire);
        s.push(0);
        records::write_varlong(s, ts_delta);
        records::write_varint(s, offset_delta);
        records::write_varint(s, key_len);
        if let Some(k) = key {
            s.extend_from_slice(k);
        }
        records::write_varint(s, value_len);
        s.extend_from_slice(value);
        s.push(0);
        self.count += 1;
        Ok(())
    }

    /// Appends `record` as it is (its own offset and timestamp deltas and headers). Timestamps
    /// of the header then come from the [`BatchParams`] given to
    /// [`finish_with`](Self::finish_with).
    ///
    /// # Errors
    ///
    /// [`CompressionError::InputTooLarge`] if the record does not fit the format's `int32`
    /// lengths (see [`records::check_encodable`]); nothing is appended then.
    pub fn push_record(&mut self, record: &Record) -> Result<(), CompressionError> {
        records::check_encodable(record).map_err(|e| match e {
            records::RecordsError::FieldTooLarge { field, len } => {
                too_large(field, len, FIELD_BYTES_MAX)
            }
            _ => too_large("record", records::encoded_len(record), FIELD_BYTES_MAX),
        })?;
        self.next_offset_delta()?;
        records::encode_record(record, &mut self.section);
        self.count += 1;
        Ok(())
    }

    /// Writes a producer's batch of the records pushed so far into `out` (cleared first): base
    /// offset 0, partition leader epoch -1, CreateTime, dense offsets, the timestamps of
    /// the pushes, `stamp`'s producer fields, compressed with the builder's codec. Leaves the
    /// builder empty.
    ///
    /// # Errors
    ///
    /// [`CompressionError::InputTooLarge`] if the batch exceeds the `int32` `batchLength`;
    /// [`CompressionError::EncodeFailed`] if the codec library fails.
    pub fn finish(
        &mut self,
        stamp: ProducerStamp,
        out: &mut Vec<u8>,
    ) -> Result<(), CompressionError> {
        let params = BatchParams {
            base_offset: 0,
            partition_leader_epoch: -1,
            attributes: self.codec.id(),
            last_offset_delta: self.count.saturating_sub(1),
            base_timestamp: self.base_timestamp,
            max_timestamp: self.max_timestamp,
            producer_id: stamp.producer_id,
            producer_epoch: stamp.epoch,
            base_sequence: stamp.base_sequence,
        };
        self.finish_with(&params, out)
    }

    /// Writes a batch of the records pushed so far into `out` (cleared first) with the header
    /// fields of `params` verbatim and `recordsCount` the number pushed, compressed with the
    /// codec `params.attributes` names. Leaves the builder empty.
    ///
    /// # Errors
    ///
    /// [`CompressionError::UnknownCodec`] if `params.attributes` names no codec;
    /// [`CompressionError::InputTooLarge`] if the batch exceeds the `int32` `batchLength`;
    /// [`CompressionError::EncodeFailed`] if the codec library fails.
    pub fn finish_with(
        &mut self,
        params: &BatchParams,
        out: &mut Vec<u8>,
    ) -> Result<(), CompressionError> {
        let count = self.count;
        let capacity = self.section.capacity();
        let result = match Codec::from_attributes(params.attributes) {
            Ok(Codec::None) => fill_header(&mut self.section, params, count)
                .map(|()| std::mem::swap(out, &mut self.section)),
            Ok(codec) => write_batch(params, codec, count, &self.section[HEADER_BYTES..], out),
            Err(e) => Err(e),
        };
        // Empty again, with the room it had (after a swap it holds the caller's old buffer).
        self.section.clear();
        self.section.reserve(capacity);
        self.section.resize(HEADER_BYTES, 0);
        self.count = 0;
        result
    }
}

/// Writes the header of `params` with `count`, then `section` compressed with `codec`, into
/// `out` (cleared first), and fills `batchLength` and the CRC in place.
fn write_batch(
    params: &BatchParams,
    codec: Codec,
    count: i32,
    section: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), CompressionError> {
    let max_section = MAX_BATCH_LENGTH - (HEADER_BYTES - LOG_OVERHEAD_BYTES);
    if section.len() > max_section {
        return Err(too_large("records section", section.len(), max_section));
    }
    out.clear();
    out.reserve(HEADER_BYTES + section.len());
    out.resize(HEADER_BYTES, 0);
    compression::compress_into(codec, section, out)?;
    fill_header(out, params, count)
}

/// Fills the header of the whole batch `batch` (its first [`HEADER_BYTES`], the records after
/// them already in place): the fields of `params`, `count`, then `batchLength` and the CRC.
fn fill_header(batch: &mut [u8], params: &BatchParams, count: i32) -> Result<(), CompressionError> {
    assert!(batch.len() >= HEADER_BYTES, "a batch holds at least its header");
    let batch_length = batch.len() - LOG_OVERHEAD_BYTES;
    let batch_length = i32::try_from(batch_length)
        .map_err(|_| too_large("batch length", batch_length, MAX_BATCH_LENGTH))?;
    let h = &mut batch[..HEADER_BYTES];
    h[0..8].copy_from_slice(&params.base_offset.to_be_bytes());
    h[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&batch_length.to_be_bytes());
    h[12..16].copy_from_slice(&params.partition_leader_epoch.to_be_bytes());
    h[16..17].copy_from_slice(&MAGIC_V2.to_be_bytes());
    h[21..23].copy_from_slice(&params.attributes.to_be_bytes());
    h[23..27].copy_from_slice(&params.last_offset_delta.to_be_bytes());
    h[27..35].copy_from_slice(&params.base_timestamp.to_be_bytes());
    h[35..43].copy_from_slice(&params.max_timestamp.to_be_bytes());
    h[43..51].copy_from_slice(&params.producer_id.to_be_bytes());
    h[51..53].copy_from_slice(&params.producer_epoch.to_be_bytes());
    h[53..57].copy_from_slice(&params.base_sequence.to_be_bytes());
    h[57..61].copy_from_slice(&count.to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// Builds a complete RecordBatch v2: encodes `records` in order, compresses
/// them with the codec named by `params.attributes`, writes the header from
/// `params` with `recordsCount = records.len()`, and fills `batchLength` and
/// the CRC-32C. The result is a valid batch that Kafka clients accept
/// whenever `params` are consistent with the records.
///
/// # Errors
///
/// * [`CompressionError::UnknownCodec`] if `params.attributes` names no codec;
/// * [`CompressionError::InputTooLarge`] if there are more than `i32::MAX`
///   records, a record does not fit the format's `int32` lengths, or the
///   batch would exceed the `int32` `batchLength`;
/// * [`CompressionError::EncodeFailed`] if the codec library fails.
pub fn build_batch(params: &BatchParams, records: &[Record]) -> Result<Bytes, CompressionError> {
    let codec = Codec::from_attributes(params.attributes)?;
    if i32::try_from(records.len()).is_err() {
        return Err(too_large("record count", records.len(), i32::MAX as usize));
    }
    let section_bytes =
        records.iter().map(records::encoded_len).fold(0usize, usize::saturating_add);
    let max_section = MAX_BATCH_LENGTH - (HEADER_BYTES - LOG_OVERHEAD_BYTES);
    if section_bytes > max_section {
        return Err(too_large("records section", section_bytes, max_section));
    }
    let mut builder = BatchBuilder::with_capacity(codec, section_bytes);
    for record in records {
        builder.push_record(record)?;
    }
    let mut out = Vec::with_capacity(HEADER_BYTES + section_bytes);
    builder.finish_with(params, &mut out)?;
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compression::decompress;
    use crate::records::{Header, decode_records};
    use bytes::BytesMut;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{
        Compression, Record as KRecord, RecordBatchDecoder, RecordBatchEncoder,
        RecordEncodeOptions, TimestampType,
    };

    const LIMIT: usize = 64 * 1024 * 1024;

    fn be_i16(b: &[u8], at: usize) -> i16 {
        i16::from_be_bytes(b[at..at + 2].try_into().expect("2 bytes"))
    }
    fn be_i32(b: &[u8], at: usize) -> i32 {
        i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
    }
    fn be_u32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
    }
    fn be_i64(b: &[u8], at: usize) -> i64 {
        i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
    }

    fn kafka_compression(codec: Codec) -> Compression {
        match codec {
            Codec::None => Compression::None,
            Codec::Gzip => Compression::Gzip,
            Codec::Snappy => Compression::Snappy,
            Codec::Lz4 => Compression::Lz4,
            Codec::Zstd => Compression::Zstd,
        }
    }

    /// Records with every shape: null and empty keys/values, headers with
    /// null values, large values, and offset gaps (as after compaction).
    fn sample_records() -> Vec<Record> {
        (0..40)
            .map(|i: i32| Record {
                attributes: 0,
                timestamp_delta: i64::from(i) * 7,
                offset_delta: i * 2,
                key: match i % 4 {
                    0 => None,
                    1 => Some(Bytes::new()),
                    _ => Some(Bytes::from(format!("key-{i}"))),
                },
                value: match i % 5 {
                    0 => None,
                    1 => Some(Bytes::from(vec![b'x'; 5000 + i as usize])),
                    _ => Some(Bytes::from(format!("value-{i}-").repeat(i as usize))),
                },
                headers: (0..(i % 3))
                    .map(|h| Header {
                        key: Bytes::from(format!("h{h}")),
                        value: if h == 1 { None } else { Some(Bytes::from(format!("hv{i}.{h}"))) },
                    })
                    .collect(),
            })
            .collect()
    }

    fn params(codec: Codec, records: &[Record]) -> BatchParams {
        BatchParams {
            base_offset: 1_000_000,
            partition_leader_epoch: 7,
            attributes: codec.id() | 0x10, // transactional
            last_offset_delta: records.last().map_or(0, |r| r.offset_delta),
            base_timestamp: 1_700_000_000_000,
            max_timestamp: 1_700_000_000_000
                + records.iter().map(|r| r.timestamp_delta).max().unwrap_or(0),
            producer_id: 4242,
            producer_epoch: 3,
            base_sequence: 100,
        }
    }

    #[test]
    fn header_layout_length_and_crc() {
        let records = sample_records();
        for codec in Codec::ALL {
            let p = params(codec, &records);
            let batch = build_batch(&p, &records).expect("build");
            assert_eq!(be_i64(&batch, 0), p.base_offset);
            assert_eq!(be_i32(&batch, 8) as usize, batch.len() - 12);
            assert_eq!(be_i32(&batch, 12), p.partition_leader_epoch);
            assert_eq!(batch[16], 2);
            assert_eq!(be_u32(&batch, 17), crc32c::crc32c(&batch[21..]));
            assert_eq!(be_i16(&batch, 21), p.attributes);
            assert_eq!(be_i32(&batch, 23), p.last_offset_delta);
            assert_eq!(be_i64(&batch, 27), p.base_timestamp);
            assert_eq!(be_i64(&batch, 35), p.max_timestamp);
            assert_eq!(be_i64(&batch, 43), p.producer_id);
            assert_eq!(be_i16(&batch, 51), p.producer_epoch);
            assert_eq!(be_i32(&batch, 53), p.base_sequence);
            assert_eq!(be_i32(&batch, 57) as usize, records.len());
            // Our own reader gets the records back.
            let section = decompress(codec, &batch[61..], LIMIT).expect("decompress");
            assert_eq!(
                decode_records(&Bytes::from(section), records.len()).expect("decode"),
                records
            );
        }
    }

    #[test]
    fn compressed_batches_are_smaller() {
        let records = sample_records();
        let plain = build_batch(&params(Codec::None, &records), &records).expect("none").len();
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let packed = build_batch(&params(codec, &records), &records).expect("build").len();
            assert!(packed < plain / 2, "{codec}: {packed} vs {plain}");
        }
    }

    #[test]
    fn kafka_protocol_reads_our_batches() {
        let records = sample_records();
        for codec in Codec::ALL {
            let p = params(codec, &records);
            let mut wire = build_batch(&p, &records).expect("build");
            let set =
                RecordBatchDecoder::decode(&mut wire).expect("kafka-protocol decodes our batch");
            assert!(wire.is_empty(), "{codec}: decoder left bytes");
            assert_eq!(set.version, 2);
            assert_eq!(set.compression, kafka_compression(codec));
            assert_eq!(set.records.len(), records.len());
            for (theirs, ours) in set.records.iter().zip(&records) {
                assert_eq!(theirs.offset, p.base_offset + i64::from(ours.offset_delta));
                assert_eq!(theirs.timestamp, p.base_timestamp + ours.timestamp_delta);
                assert_eq!(theirs.sequence, p.base_sequence + ours.offset_delta);
                assert_eq!(theirs.key, ours.key);
                assert_eq!(theirs.value, ours.value);
                assert!(theirs.transactional);
                assert!(!theirs.control);
                assert_eq!(theirs.timestamp_type, TimestampType::Creation);
                assert_eq!(theirs.producer_id, p.producer_id);
                assert_eq!(theirs.producer_epoch, p.producer_epoch);
                assert_eq!(theirs.partition_leader_epoch, p.partition_leader_epoch);
                let their_headers: Vec<(Vec<u8>, Option<Bytes>)> = theirs
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
                    .collect();
                let our_headers: Vec<(Vec<u8>, Option<Bytes>)> =
                    ours.headers.iter().map(|h| (h.key.to_vec(), h.value.clone())).collect();
                assert_eq!(their_headers, our_headers);
            }
        }
    }

    #[test]
    fn kafka_protocol_rejects_a_corrupted_batch() {
        let records = sample_records();
        let good = build_batch(&params(Codec::None, &records), &records).expect("build");
        let mut bad = good.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0x01;
        assert!(RecordBatchDecoder::decode(&mut Bytes::from(bad)).is_err());
    }

    fn kafka_records(count: i64) -> Vec<KRecord> {
        (0..count)
            .map(|i| KRecord {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 5,
                producer_id: 77,
                producer_epoch: 2,
                timestamp_type: TimestampType::Creation,
                offset: 500 + i,
                sequence: 10 + i as i32,
                // Not monotonic, so some deltas from the minimum are large.
                timestamp: 1_600_000_000_000 + (i * 7919) % 1000,
                key: if i % 3 == 0 { None } else { Some(Bytes::from(format!("k{i}"))) },
                value: if i % 7 == 0 {
                    None
                } else {
                    Some(Bytes::from(format!("payload {i} ").repeat(50)))
                },
                headers: (0..i % 3)
                    .map(|h| {
                        (
                            StrBytes::from_string(format!("hdr-{h}")),
                            if h == 0 { None } else { Some(Bytes::from(vec![h as u8; 3])) },
                        )
                    })
                    .collect(),
            })
            .collect()
    }

    #[test]
    fn we_read_kafka_protocol_batches() {
        let theirs = kafka_records(100);
        for codec in Codec::ALL {
            let mut buf = BytesMut::new();
            RecordBatchEncoder::encode(
                &mut buf,
                &theirs,
                &RecordEncodeOptions { version: 2, compression: kafka_compression(codec) },
            )
            .expect("kafka-protocol encodes");
            let batch = buf.freeze();
            assert_eq!(be_i32(&batch, 8) as usize, batch.len() - 12, "{codec}: one batch");
            assert_eq!(be_u32(&batch, 17), crc32c::crc32c(&batch[21..]), "{codec}: crc");
            assert_eq!(batch[16], 2);
            let attributes = be_i16(&batch, 21);
            assert_eq!(Codec::from_attributes(attributes).expect("codec"), codec);
            let base_offset = be_i64(&batch, 0);
            let base_timestamp = be_i64(&batch, 27);
            let count = be_i32(&batch, 57) as usize;
            assert_eq!(count, theirs.len());

            let section = decompress(codec, &batch[61..], LIMIT).expect("our decompress");
            let ours = decode_records(&Bytes::from(section), count).expect("our decode");
            for (k, o) in theirs.iter().zip(&ours) {
                assert_eq!(base_offset + i64::from(o.offset_delta), k.offset);
                assert_eq!(base_timestamp + o.timestamp_delta, k.timestamp);
                assert_eq!(o.key, k.key);
                assert_eq!(o.value, k.value);
                let their_headers: Vec<(Vec<u8>, Option<Bytes>)> =
                    k.headers.iter().map(|(hk, hv)| (hk.as_bytes().to_vec(), hv.clone())).collect();
                let our_headers: Vec<(Vec<u8>, Option<Bytes>)> =
                    o.headers.iter().map(|h| (h.key.to_vec(), h.value.clone())).collect();
                assert_eq!(our_headers, their_headers);
            }

            // Re-building their batch from our decoded records reproduces
            // it byte for byte when uncompressed.
            if codec == Codec::None {
                let p = BatchParams {
                    base_offset,
                    partition_leader_epoch: be_i32(&batch, 12),
                    attributes,
                    last_offset_delta: be_i32(&batch, 23),
                    base_timestamp,
                    max_timestamp: be_i64(&batch, 35),
                    producer_id: be_i64(&batch, 43),
                    producer_epoch: be_i16(&batch, 51),
                    base_sequence: be_i32(&batch, 53),
                };
                assert_eq!(build_batch(&p, &ours).expect("rebuild"), batch);
            }
        }
    }

    #[test]
    fn simple_params() {
        let p = BatchParams::simple(Codec::Zstd, 123, 10);
        assert_eq!(
            p,
            BatchParams {
                base_offset: 0,
                partition_leader_epoch: -1,
                attributes: 4,
                last_offset_delta: 9,
                base_timestamp: 123,
                max_timestamp: 123,
                producer_id: -1,
                producer_epoch: -1,
                base_sequence: -1,
            }
        );
        assert_eq!(BatchParams::simple(Codec::None, 0, 0).last_offset_delta, 0);
        assert_eq!(BatchParams::simple(Codec::None, 0, usize::MAX).last_offset_delta, i32::MAX);
    }

    #[test]
    fn empty_batches_and_bad_codecs() {
        for codec in Codec::ALL {
            let batch = build_batch(&BatchParams::simple(codec, 5, 0), &[]).expect("empty batch");
            assert_eq!(be_i32(&batch, 57), 0);
            assert_eq!(be_u32(&batch, 17), crc32c::crc32c(&batch[21..]));
            let section = decompress(codec, &batch[61..], LIMIT).expect("decompress");
            assert!(section.is_empty());
        }
        let mut p = BatchParams::simple(Codec::None, 5, 0);
        p.attributes = 0x0D; // codec 5
        assert_eq!(build_batch(&p, &[]), Err(CompressionError::UnknownCodec { id: 5 }));
    }

    #[test]
    fn an_oversized_field_is_refused_before_anything_is_appended() {
        let mut b = BatchBuilder::new(Codec::None);
        b.push(1, None, b"a").expect("push");
        let before = b.records_bytes();
        // A key longer than i32::MAX cannot be made cheaply; the record count limit can.
        b.count = i32::MAX;
        assert!(matches!(
            b.push(1, None, b"b"),
            Err(CompressionError::InputTooLarge { what: "record count", .. })
        ));
        assert_eq!(b.records_bytes(), before);
    }

    #[test]
    fn a_reused_builder_writes_independent_batches_into_reused_and_fresh_buffers() {
        for codec in Codec::ALL {
            let mut b = BatchBuilder::new(codec);
            let mut out = Vec::new();
            let mut kept = Vec::new();
            for round in 0..4usize {
                for i in 0..=round {
                    b.push(10 + i as i64, None, &[round as u8; 40]).expect("push");
                }
                if round % 2 == 0 {
                    b.finish(ProducerStamp::NONE, &mut out).expect("finish");
                    kept.push(out.clone());
                } else {
                    let mut fresh = Vec::new();
                    b.finish(ProducerStamp::NONE, &mut fresh).expect("finish");
                    kept.push(fresh);
                }
                assert_eq!((b.count(), b.records_bytes()), (0, 0));
            }
            for (round, batch) in kept.iter().enumerate() {
                let h = crate::batch::validate(batch, crate::batch::Strictness::Produce)
                    .expect("valid");
                assert_eq!(h.records_count as usize, round + 1, "{codec}");
                let section = decompress(codec, &batch[61..], 1 << 20).expect("decompress");
                let records = decode_records(&Bytes::from(section), round + 1).expect("decode");
                assert!(records.iter().all(|r| r.value.as_deref() == Some(&[round as u8; 40][..])));
            }
        }
    }
}
