//! Walking the batches of a Fetch response: the consumer's path.
//!
//! [`BatchDecoder::decode`] checks each whole batch (header, magic, CRC-32C), inflates a
//! compressed one into a buffer it keeps between calls (bounded by [`INFLATED_BYTES_MAX`]), and
//! hands every record to a callback borrowed from the response or that buffer: nothing is
//! copied or allocated per record. A partial batch at the end (a broker may cut the last one
//! at the fetch size) is left for the next fetch; control batches (transaction markers) are
//! reported but carry no user records.

use crate::batch::{BatchError, BatchHeader, HEADER_BYTES, LOG_OVERHEAD_BYTES, compute_crc};
use crate::compression::{self, Codec, CompressionError};
use crate::records::{self, RecordsError};

/// Largest inflated records section accepted from one compressed batch.
pub const INFLATED_BYTES_MAX: usize = 64 << 20;

/// Why the record bytes of a Fetch response could not be decoded. `at` is the batch's byte
/// position within the bytes given to [`BatchDecoder::decode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("batch at byte {at}: {source}")]
    Batch { at: usize, source: BatchError },
    #[error("batch at byte {at}: {source}")]
    Inflate { at: usize, source: CompressionError },
    #[error("batch at byte {at}: {source}")]
    Records { at: usize, source: RecordsError },
}

/// What the decoder reports about one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    pub base_offset: i64,
    /// The offset after which the next fetch starts (compaction may have removed this record).
    pub last_offset: i64,
    pub record_count: i32,
    pub is_control: bool,
    /// Bytes of the whole batch.
    pub bytes: usize,
}

/// One record of a decoded batch, borrowed from the response or the decoder's inflate buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodedRecord<'a> {
    pub offset: i64,
    pub timestamp: i64,
    /// `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// `None` for a null value (a tombstone).
    pub value: Option<&'a [u8]>,
}

/// Walks the record batches of Fetch responses. Reuse it across fetches: it keeps its inflate
/// buffer.
#[derive(Debug, Default)]
pub struct BatchDecoder {
    inflated: Vec<u8>,
}

impl BatchDecoder {
    /// Calls `on_batch` for every complete batch in `data` and `on_record` for each of its
    /// records, in order. Returns the bytes of complete batches (a partial batch at the end is
    /// skipped).
    ///
    /// # Errors
    ///
    /// A batch that fails its checks (length, magic, CRC), cannot be inflated within
    /// [`INFLATED_BYTES_MAX`], or whose records are malformed; the batches before it have been
    /// reported.
    pub fn decode(
        &mut self,
        data: &[u8],
        mut on_batch: impl FnMut(&BatchInfo),
        mut on_record: impl FnMut(DecodedRecord<'_>),
    ) -> Result<usize, DecodeError> {
        let mut pos = 0usize;
        while data.len() - pos >= HEADER_BYTES {
            let at = pos;
            let header = BatchHeader::parse(&data[pos..])
                .map_err(|source| DecodeError::Batch { at, source })?;
            let total = header.total_len();
            if data.len() - pos < total {
                break;
            }
            let batch = &data[pos..pos + total];
            pos += total;
            let computed = compute_crc(batch);
            if computed != header.crc {
                let source = BatchError::CrcMismatch { expected: header.crc, computed };
                return Err(DecodeError::Batch { at, source });
            }
            on_batch(&BatchInfo {
                base_offset: header.base_offset,
                last_offset: header.last_offset(),
                record_count: header.records_count,
                is_control: header.is_control(),
                bytes: total,
            });
            if header.is_control() {
                continue;
            }
            self.walk(&header, batch, at, &mut on_record)?;
        }
        debug_assert!(pos <= data.len());
        Ok(pos)
    }

    fn walk(
        &mut self,
        header: &BatchHeader,
        batch: &[u8],
        at: usize,
        on_record: &mut impl FnMut(DecodedRecord<'_>),
    ) -> Result<(), DecodeError> {
        let codec = header.codec().map_err(|source| DecodeError::Inflate { at, source })?;
        let body = &batch[HEADER_BYTES..];
        let section = if codec == Codec::None {
            body
        } else {
            compression::decompress_into(codec, body, INFLATED_BYTES_MAX, &mut self.inflated)
                .map_err(|source| DecodeError::Inflate { at, source })?;
            &self.inflated[..]
        };
        let count = usize::try_from(header.records_count).map_err(|_| DecodeError::Batch {
            at,
            source: BatchError::BadRecordCount {
                count: header.records_count,
                last_offset_delta: header.last_offset_delta,
            },
        })?;
        let (base_offset, base_timestamp) = (header.base_offset, header.base_timestamp);
        records::walk_records(section, count, |r| {
            on_record(DecodedRecord {
                offset: base_offset.wrapping_add(i64::from(r.offset_delta)),
                timestamp: base_timestamp.wrapping_add(r.timestamp_delta),
                key: r.key,
                value: r.value,
            })
        })
        .map_err(|source| DecodeError::Records { at, source })
    }
}

const _: () = assert!(LOG_OVERHEAD_BYTES < HEADER_BYTES);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::{BatchBuilder, ProducerStamp};
    use bytes::Bytes;
    use kafka_protocol::records::RecordBatchDecoder;

    fn value_of(i: usize) -> Vec<u8> {
        vec![(i % 251) as u8; 100 + i % 7]
    }

    /// `n` records; every third has no key.
    fn build(codec: Codec, n: usize, stamp: ProducerStamp) -> Vec<u8> {
        let mut b = BatchBuilder::new(codec);
        for i in 0..n {
            let key = format!("key-{i}");
            let k = if i % 3 == 0 { None } else { Some(key.as_bytes()) };
            b.push(1_700_000_000_000 + i as i64, k, &value_of(i)).expect("push");
        }
        let mut out = Vec::new();
        b.finish(stamp, &mut out).expect("finish");
        assert_eq!(b.count(), 0, "finish leaves the builder empty");
        out
    }

    #[test]
    fn pushed_batches_of_every_codec_read_back_through_kafka_protocol() {
        let stamp = ProducerStamp { producer_id: 7, epoch: 2, base_sequence: 40 };
        for codec in Codec::ALL {
            let mut buf = Bytes::from(build(codec, 50, stamp));
            let set = RecordBatchDecoder::decode(&mut buf).expect("kafka-protocol decodes");
            assert_eq!(set.records.len(), 50, "{codec}");
            for (i, r) in set.records.iter().enumerate() {
                assert_eq!(r.offset, i as i64);
                assert_eq!(r.timestamp, 1_700_000_000_000 + i as i64);
                assert_eq!(r.producer_id, 7);
                assert_eq!(r.sequence, 40 + i as i32);
                let want_key = (i % 3 != 0).then(|| format!("key-{i}"));
                assert_eq!(r.key.as_deref(), want_key.as_deref().map(str::as_bytes));
                assert_eq!(r.value.as_deref(), Some(&value_of(i)[..]));
            }
        }
    }

    #[test]
    fn pushed_batches_pass_produce_validation() {
        for codec in Codec::ALL {
            let batch = build(codec, 9, ProducerStamp::NONE);
            let h =
                crate::batch::validate(&batch, crate::batch::Strictness::Produce).expect("valid");
            assert_eq!((h.records_count, h.last_offset_delta), (9, 8), "{codec}");
            assert_eq!(h.max_timestamp, 1_700_000_000_008);
        }
    }

    #[test]
    fn every_codec_round_trips_and_a_cut_batch_at_the_end_is_left() {
        for codec in Codec::ALL {
            let mut data = build(codec, 20, ProducerStamp::NONE);
            let mut second = build(codec, 5, ProducerStamp::NONE);
            second[0..8].copy_from_slice(&20i64.to_be_bytes()); // the CRC does not cover it
            let complete = data.len() + second.len();
            data.extend_from_slice(&second);
            data.extend_from_slice(&second[..30]);
            let (mut seen, mut batches) = (Vec::new(), Vec::new());
            let used = BatchDecoder::default()
                .decode(
                    &data,
                    |b| batches.push(*b),
                    |r| seen.push((r.offset, r.key.is_some(), r.value.map_or(0, <[u8]>::len))),
                )
                .expect("decode");
            assert_eq!(used, complete, "{codec}");
            assert_eq!(batches.len(), 2);
            assert_eq!(batches[1].last_offset, 24);
            assert_eq!(seen.len(), 25);
            assert_eq!(seen[21], (21, true, 101));
            assert_eq!(seen[3], (3, false, 103));
        }
    }

    #[test]
    fn a_flipped_bit_fails_the_crc() {
        let mut data = build(Codec::None, 3, ProducerStamp::NONE);
        let last = data.len() - 2;
        data[last] ^= 1;
        let err = BatchDecoder::default().decode(&data, |_| {}, |_| {});
        assert!(
            matches!(
                err,
                Err(DecodeError::Batch { at: 0, source: BatchError::CrcMismatch { .. } })
            ),
            "{err:?}"
        );
    }
}
