//! RecordBatch v2 (magic 2) encoder and decoder, written for speed: the encoder appends records
//! into a reusable buffer and finishes the batch (compression, header, CRC-32C) in place; the
//! decoder walks the batches of a Fetch response and hands each record's value to a callback
//! without copying it (only a compressed batch is inflated, once, into a reusable buffer).
//!
//! Wire layout (Kafka's `DefaultRecordBatch`): baseOffset i64, batchLength i32,
//! partitionLeaderEpoch i32, magic i8 = 2, crc u32 (CRC-32C of everything after it), attributes
//! i16, lastOffsetDelta i32, baseTimestamp i64, maxTimestamp i64, producerId i64, producerEpoch
//! i16, baseSequence i32, recordCount i32, then the records (compressed as one block if the
//! attributes say so). A record: length varint, attributes i8, timestampDelta varlong,
//! offsetDelta varint, keyLength varint + key, valueLength varint + value, header count varint.

use std::io::{Read, Write};

use thiserror::Error;

/// Bytes of the batch header before the records.
pub const BATCH_HEADER_BYTES: usize = 61;
/// Offset of the CRC within the batch; the CRC covers everything from `attributes` on.
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
/// Largest inflated record section accepted from a compressed batch (bounds decompression).
pub const INFLATED_BYTES_MAX: usize = 64 << 20;
/// xerial snappy framing magic (Kafka Java's `SnappyOutputStream`).
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";

/// Batch compression codec, as in the low three bits of the attributes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    fn attribute(self) -> i16 {
        match self {
            Codec::None => 0,
            Codec::Gzip => 1,
            Codec::Snappy => 2,
            Codec::Lz4 => 3,
            Codec::Zstd => 4,
        }
    }

    fn from_attribute(a: i16) -> Result<Codec, DecodeError> {
        Ok(match a & 7 {
            0 => Codec::None,
            1 => Codec::Gzip,
            2 => Codec::Snappy,
            3 => Codec::Lz4,
            4 => Codec::Zstd,
            other => return Err(DecodeError::Codec(other)),
        })
    }
}

/// Why a batch could not be encoded (compression failed).
#[derive(Debug, Error)]
#[error("compressing a batch with {codec:?}: {source}")]
pub struct EncodeError {
    codec: Codec,
    source: std::io::Error,
}

/// Why the bytes of a Fetch response could not be decoded.
#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("batch at byte {at} is truncated or malformed: {what}")]
    Malformed { at: usize, what: &'static str },
    #[error("batch magic {0} is not 2")]
    Magic(i8),
    #[error("batch crc mismatch: stored {stored:#x}, computed {computed:#x}")]
    Crc { stored: u32, computed: u32 },
    #[error("unknown compression codec {0}")]
    Codec(i16),
    #[error("decompressing a {codec:?} batch: {source}")]
    Inflate { codec: Codec, source: std::io::Error },
}

/// Producer identity stamped on a batch (idempotent producer), or none (-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerStamp {
    pub producer_id: i64,
    pub epoch: i16,
    pub base_sequence: i32,
}

impl ProducerStamp {
    pub const NONE: ProducerStamp = ProducerStamp { producer_id: -1, epoch: -1, base_sequence: -1 };
}

/// Appends records to one batch at a time. Reuse it: `begin`, `push`..., `finish`.
#[derive(Debug)]
pub struct BatchBuilder {
    codec: Codec,
    /// Uncompressed records of the batch being built.
    records: Vec<u8>,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    scratch: Vec<u8>,
}

impl BatchBuilder {
    pub fn new(codec: Codec) -> BatchBuilder {
        BatchBuilder {
            codec,
            records: Vec::with_capacity(64 << 10),
            count: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            scratch: Vec::new(),
        }
    }

    /// Records pushed since the last `finish`.
    pub fn count(&self) -> i32 {
        self.count
    }

    /// Uncompressed bytes of the records pushed since the last `finish`.
    pub fn records_bytes(&self) -> usize {
        self.records.len()
    }

    /// Appends one record with timestamp `timestamp_ms` (the first one sets the base timestamp).
    pub fn push(&mut self, timestamp_ms: i64, key: Option<&[u8]>, value: &[u8]) {
        if self.count == 0 {
            self.base_timestamp = timestamp_ms;
            self.max_timestamp = timestamp_ms;
        }
        self.max_timestamp = self.max_timestamp.max(timestamp_ms);
        let ts_delta = timestamp_ms - self.base_timestamp;
        let key_len = key.map_or(-1, |k| k.len() as i64);
        // Body: attributes, timestamp delta, offset delta, key, value, header count.
        let body = 1
            + varlong_len(ts_delta)
            + varlong_len(i64::from(self.count))
            + varlong_len(key_len)
            + key.map_or(0, <[u8]>::len)
            + varlong_len(value.len() as i64)
            + value.len()
            + 1;
        let r = &mut self.records;
        r.reserve(body + 5);
        put_varlong(r, body as i64);
        r.push(0);
        put_varlong(r, ts_delta);
        put_varlong(r, i64::from(self.count));
        put_varlong(r, key_len);
        if let Some(k) = key {
            r.extend_from_slice(k);
        }
        put_varlong(r, value.len() as i64);
        r.extend_from_slice(value);
        r.push(0);
        self.count += 1;
    }

    /// Writes the finished batch (header, possibly compressed records, CRC) to `out`, which is
    /// cleared first, and resets the builder. Base offset 0, leader epoch -1, create time.
    pub fn finish(&mut self, stamp: ProducerStamp, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.clear();
        out.resize(BATCH_HEADER_BYTES, 0);
        let codec = self.codec;
        compress_into(codec, &self.records, out).map_err(|source| EncodeError { codec, source })?;
        let batch_len = (out.len() - 12) as i32;
        let h = &mut out[..BATCH_HEADER_BYTES];
        h[0..8].copy_from_slice(&0i64.to_be_bytes());
        h[8..12].copy_from_slice(&batch_len.to_be_bytes());
        h[12..16].copy_from_slice(&(-1i32).to_be_bytes());
        h[16] = 2;
        h[21..23].copy_from_slice(&codec.attribute().to_be_bytes());
        h[23..27].copy_from_slice(&(self.count - 1).to_be_bytes());
        h[27..35].copy_from_slice(&self.base_timestamp.to_be_bytes());
        h[35..43].copy_from_slice(&self.max_timestamp.to_be_bytes());
        h[43..51].copy_from_slice(&stamp.producer_id.to_be_bytes());
        h[51..53].copy_from_slice(&stamp.epoch.to_be_bytes());
        h[53..57].copy_from_slice(&stamp.base_sequence.to_be_bytes());
        h[57..61].copy_from_slice(&self.count.to_be_bytes());
        let crc = crc32c::crc32c(&out[ATTRIBUTES_OFFSET..]);
        out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        self.records.clear();
        self.scratch.clear();
        self.count = 0;
        Ok(())
    }
}

/// Appends `records` to `out`, compressed with `codec`.
fn compress_into(codec: Codec, records: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
    match codec {
        Codec::None => out.extend_from_slice(records),
        Codec::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
            enc.write_all(records)?;
            enc.finish()?;
        }
        Codec::Snappy => {
            // Raw snappy: what librdkafka produces; Kafka's xerial reader falls back to it.
            let start = out.len();
            out.resize(start + snap::raw::max_compress_len(records.len()), 0);
            let n = snap::raw::Encoder::new()
                .compress(records, &mut out[start..])
                .map_err(std::io::Error::other)?;
            out.truncate(start + n);
        }
        Codec::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, out);
            enc.write_all(records)?;
            enc.finish().map_err(std::io::Error::other)?;
        }
        Codec::Zstd => {
            let mut enc = zstd::stream::write::Encoder::new(out, 1)?;
            enc.write_all(records)?;
            enc.finish()?;
        }
    }
    Ok(())
}

/// Inflates a compressed record section into `out` (cleared first), at most
/// [`INFLATED_BYTES_MAX`] bytes.
fn inflate(codec: Codec, data: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
    out.clear();
    let limit = INFLATED_BYTES_MAX as u64 + 1;
    match codec {
        Codec::None => out.extend_from_slice(data),
        Codec::Gzip => {
            flate2::read::GzDecoder::new(data).take(limit).read_to_end(out)?;
        }
        Codec::Snappy => inflate_snappy(data, out)?,
        Codec::Lz4 => {
            lz4_flex::frame::FrameDecoder::new(data).take(limit).read_to_end(out)?;
        }
        Codec::Zstd => {
            zstd::stream::read::Decoder::new(data)?.take(limit).read_to_end(out)?;
        }
    }
    if out.len() > INFLATED_BYTES_MAX {
        return Err(std::io::Error::other("inflated batch larger than the limit"));
    }
    Ok(())
}

/// Snappy as Kafka writes it: xerial framing (magic, versions, then length-prefixed raw blocks)
/// or one raw block.
fn inflate_snappy(data: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
    let raw = |block: &[u8], out: &mut Vec<u8>| -> std::io::Result<()> {
        let n = snap::raw::decompress_len(block).map_err(std::io::Error::other)?;
        if out.len() + n > INFLATED_BYTES_MAX {
            return Err(std::io::Error::other("inflated batch larger than the limit"));
        }
        let start = out.len();
        out.resize(start + n, 0);
        snap::raw::Decoder::new()
            .decompress(block, &mut out[start..])
            .map_err(std::io::Error::other)?;
        Ok(())
    };
    if !data.starts_with(XERIAL_MAGIC) {
        return raw(data, out);
    }
    let mut rest = data.get(16..).ok_or_else(|| std::io::Error::other("short xerial header"))?;
    while !rest.is_empty() {
        let len = rest.get(..4).ok_or_else(|| std::io::Error::other("short xerial block"))?;
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let block =
            rest.get(4..4 + len).ok_or_else(|| std::io::Error::other("short xerial block"))?;
        raw(block, out)?;
        rest = &rest[4 + len..];
    }
    Ok(())
}

/// What the decoder reports about one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    pub record_count: i32,
    pub bytes: usize,
}

/// Walks the record batches in a Fetch response's records bytes. Reuse it across fetches (it
/// keeps an inflate buffer).
#[derive(Debug, Default)]
pub struct BatchDecoder {
    inflated: Vec<u8>,
}

impl BatchDecoder {
    /// Calls `on_record(offset, key, value)` for every record of every complete batch in `data`
    /// and `on_batch` for every batch. A partial batch at the end (a fetch may cut one) is
    /// skipped. Returns the number of bytes of complete batches.
    pub fn decode(
        &mut self,
        data: &[u8],
        mut on_batch: impl FnMut(&BatchInfo),
        mut on_record: impl FnMut(i64, Option<&[u8]>, &[u8]),
    ) -> Result<usize, DecodeError> {
        let mut pos = 0;
        while data.len() - pos >= BATCH_HEADER_BYTES {
            let at = pos;
            let h = &data[pos..];
            let batch_len = i32::from_be_bytes([h[8], h[9], h[10], h[11]]);
            if batch_len < (BATCH_HEADER_BYTES - 12) as i32 {
                return Err(DecodeError::Malformed { at, what: "batch length" });
            }
            let total = 12 + batch_len as usize;
            if data.len() - pos < total {
                break;
            }
            let batch = &data[pos..pos + total];
            pos += total;
            if batch[16] as i8 != 2 {
                return Err(DecodeError::Magic(batch[16] as i8));
            }
            let stored = be_u32(&batch[CRC_OFFSET..]);
            let computed = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
            if stored != computed {
                return Err(DecodeError::Crc { stored, computed });
            }
            let base_offset = be_i64(&batch[0..]);
            let attributes = i16::from_be_bytes([batch[21], batch[22]]);
            let last_delta = be_u32(&batch[23..]) as i32;
            let count = be_u32(&batch[57..]) as i32;
            let info = BatchInfo {
                base_offset,
                last_offset: base_offset + i64::from(last_delta),
                record_count: count,
                bytes: total,
            };
            on_batch(&info);
            if attributes & 0x20 != 0 {
                continue; // control batch (transaction marker): no user records
            }
            let codec = Codec::from_attribute(attributes)?;
            let body = &batch[BATCH_HEADER_BYTES..];
            let records = if codec == Codec::None {
                body
            } else {
                inflate(codec, body, &mut self.inflated)
                    .map_err(|source| DecodeError::Inflate { codec, source })?;
                &self.inflated[..]
            };
            walk_records(records, base_offset, count, at, &mut on_record)?;
        }
        Ok(pos)
    }
}

fn walk_records(
    mut r: &[u8],
    base_offset: i64,
    count: i32,
    at: usize,
    on_record: &mut impl FnMut(i64, Option<&[u8]>, &[u8]),
) -> Result<(), DecodeError> {
    let bad = |what| DecodeError::Malformed { at, what };
    for _ in 0..count {
        let len = get_varlong(&mut r).ok_or(bad("record length"))?;
        let len = usize::try_from(len).map_err(|_| bad("record length"))?;
        let mut rec = r.get(..len).ok_or(bad("record body"))?;
        r = &r[len..];
        rec = rec.get(1..).ok_or(bad("record attributes"))?;
        let _ts_delta = get_varlong(&mut rec).ok_or(bad("timestamp delta"))?;
        let offset_delta = get_varlong(&mut rec).ok_or(bad("offset delta"))?;
        let key_len = get_varlong(&mut rec).ok_or(bad("key length"))?;
        let key = if key_len < 0 {
            None
        } else {
            let k = rec.get(..key_len as usize).ok_or(bad("key"))?;
            rec = &rec[key_len as usize..];
            Some(k)
        };
        let value_len = get_varlong(&mut rec).ok_or(bad("value length"))?;
        let value = if value_len < 0 {
            &[][..]
        } else {
            rec.get(..value_len as usize).ok_or(bad("value"))?
        };
        on_record(base_offset + offset_delta, key, value);
    }
    Ok(())
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be_i64(b: &[u8]) -> i64 {
    i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// Bytes of `v` as a zigzag varlong.
pub fn varlong_len(v: i64) -> usize {
    let z = ((v << 1) ^ (v >> 63)) as u64;
    (64 - (z | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends `v` as a zigzag varlong.
pub fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Reads a zigzag varlong from the front of `r`, advancing it; `None` if truncated or too long.
pub fn get_varlong(r: &mut &[u8]) -> Option<i64> {
    let mut z: u64 = 0;
    for (i, &b) in r.iter().enumerate().take(10) {
        z |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *r = &r[i + 1..];
            return Some((z >> 1) as i64 ^ -((z & 1) as i64));
        }
    }
    None
}

/// Kafka's default partitioner hash (murmur2, seed 0x9747b28c), as the Java client computes it.
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Partition of a keyed record, as Kafka's default partitioner chooses it.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    ((murmur2(key) & 0x7fff_ffff) as u32) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::records::RecordBatchDecoder;

    fn build(codec: Codec, n: usize, stamp: ProducerStamp) -> Vec<u8> {
        let mut b = BatchBuilder::new(codec);
        for i in 0..n {
            let key = format!("key-{i}");
            let value = vec![(i % 251) as u8; 100 + i % 7];
            let k = if i % 3 == 0 { None } else { Some(key.as_bytes()) };
            b.push(1_700_000_000_000 + i as i64, k, &value);
        }
        let mut out = Vec::new();
        b.finish(stamp, &mut out).expect("finish");
        out
    }

    #[test]
    fn varlongs_round_trip_at_every_length() {
        for v in [0i64, 1, -1, 63, -64, 64, 300, -300, i64::from(i32::MAX), i64::MIN, i64::MAX] {
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            assert_eq!(out.len(), varlong_len(v), "{v}");
            let mut r = &out[..];
            assert_eq!(get_varlong(&mut r), Some(v));
            assert!(r.is_empty());
        }
        assert_eq!(get_varlong(&mut &[0x80u8][..]), None);
    }

    #[test]
    fn every_codec_round_trips_through_kafka_protocol_decoder() {
        let stamp = ProducerStamp { producer_id: 7, epoch: 2, base_sequence: 40 };
        for codec in [Codec::None, Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let bytes = build(codec, 50, stamp);
            let mut buf = Bytes::from(bytes);
            let set = RecordBatchDecoder::decode(&mut buf).expect("kafka-protocol decodes");
            assert_eq!(set.records.len(), 50, "{codec:?}");
            for (i, r) in set.records.iter().enumerate() {
                assert_eq!(r.offset, i as i64);
                assert_eq!(r.timestamp, 1_700_000_000_000 + i as i64);
                assert_eq!(r.producer_id, 7);
                assert_eq!(r.sequence, 40 + i as i32);
                let want_key = (i % 3 != 0).then(|| format!("key-{i}"));
                assert_eq!(r.key.as_deref(), want_key.as_deref().map(str::as_bytes));
                assert_eq!(r.value.as_deref(), Some(&vec![(i % 251) as u8; 100 + i % 7][..]));
            }
        }
    }

    #[test]
    fn every_codec_round_trips_through_own_decoder() {
        for codec in [Codec::None, Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let mut data = build(codec, 20, ProducerStamp::NONE);
            // Second batch at base offset 20, then a truncated third: skipped.
            let mut second = build(codec, 5, ProducerStamp::NONE);
            second[0..8].copy_from_slice(&20i64.to_be_bytes());
            let complete = data.len() + second.len();
            data.extend_from_slice(&second);
            data.extend_from_slice(&second[..30]);
            let mut seen = Vec::new();
            let mut batches = Vec::new();
            let used = BatchDecoder::default()
                .decode(&data, |b| batches.push(*b), |o, k, v| seen.push((o, k.is_some(), v.len())))
                .expect("decode");
            assert_eq!(used, complete, "{codec:?}");
            assert_eq!(batches.len(), 2);
            assert_eq!(batches[1].last_offset, 24);
            assert_eq!(seen.len(), 25);
            assert_eq!(seen[21], (21, true, 101));
            assert_eq!(seen[3], (3, false, 103));
        }
    }

    #[test]
    fn xerial_framed_snappy_is_inflated() {
        let records = b"hello hello hello hello snappy".repeat(10);
        let block = snap::raw::Encoder::new().compress_vec(&records).expect("compress");
        let mut framed = XERIAL_MAGIC.to_vec();
        framed.extend_from_slice(&1u32.to_be_bytes());
        framed.extend_from_slice(&1u32.to_be_bytes());
        framed.extend_from_slice(&(block.len() as u32).to_be_bytes());
        framed.extend_from_slice(&block);
        let mut out = Vec::new();
        inflate(Codec::Snappy, &framed, &mut out).expect("inflate");
        assert_eq!(out, records);
    }

    #[test]
    fn a_flipped_bit_fails_the_crc() {
        let mut data = build(Codec::None, 3, ProducerStamp::NONE);
        let last = data.len() - 2;
        data[last] ^= 1;
        let err = BatchDecoder::default().decode(&data, |_| {}, |_, _, _| {});
        assert!(matches!(err, Err(DecodeError::Crc { .. })), "{err:?}");
    }

    #[test]
    fn murmur2_matches_the_java_client() {
        // Values from Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971);
        assert_eq!(murmur2(b"abc"), 479470107);
    }
}
