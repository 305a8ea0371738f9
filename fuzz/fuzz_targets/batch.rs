//! RecordBatch v2: the validator at both strictness levels, the producer's record-set splitter,
//! the consumer's decoder (which inflates every codec) and each codec's decompressor on its own.
//!
//! The first byte chooses:
//! - bit 0: make each batch's CRC-32C right before checking (otherwise almost every mutated
//!   batch stops at the CRC and the record and codec code is never reached);
//! - bits 1-3: a codec to force into the first batch's attributes (values 5-7 leave them);
//! - the whole input after it is also fed to every decompressor with a small limit, which must
//!   hold: the output never passes `limit + 1` bytes (decompression bombs are bounded).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use odradek_records::batch::{
    CRC_START, HEADER_BYTES, LOG_OVERHEAD_BYTES, Strictness, compute_crc, peek_total_len,
    split_record_set, validate,
};
use odradek_records::compression::{Codec, CompressionError, decompress_into};
use odradek_records::decoder::BatchDecoder;

/// The inflate limit for the direct decompressor calls: small, so a bomb shows at once.
const LIMIT: usize = 1 << 20;
/// The producer path's largest batch (`max.message.bytes` is about 1 MiB by default).
const MAX_BATCH_BYTES: usize = 1 << 20;

/// Rewrites the CRC of every whole batch in `set`, front to back, and returns their ranges.
fn fix_crcs(set: &mut [u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while let Some(Ok(total)) = peek_total_len(&set[pos..]) {
        if total < HEADER_BYTES || total > set.len() - pos {
            break;
        }
        let batch = &mut set[pos..pos + total];
        let crc = compute_crc(batch);
        batch[CRC_START - 4..CRC_START].copy_from_slice(&crc.to_be_bytes());
        out.push(pos..pos + total);
        pos += total;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut set = rest.to_vec();
    let forced = (mode >> 1) & 0x07;
    if forced < 5 && set.len() >= HEADER_BYTES {
        // Attributes are the i16 at byte 21; the codec is their low 3 bits.
        set[22] = (set[22] & !0x07) | forced;
    }
    let ranges = if mode & 1 == 1 { fix_crcs(&mut set) } else { Vec::new() };
    for r in &ranges {
        for strictness in [Strictness::Produce, Strictness::Stored] {
            if let Ok(h) = validate(&set[r.clone()], strictness) {
                assert_eq!(h.total_len(), r.len());
                assert!(h.total_len() >= HEADER_BYTES && h.total_len() >= LOG_OVERHEAD_BYTES);
            }
        }
    }
    let set = Bytes::from(set);
    if let Ok(batches) = split_record_set(&set, MAX_BATCH_BYTES) {
        let total: usize = batches.iter().map(|b| b.bytes.len()).sum();
        assert_eq!(total, set.len(), "a split record set covers every byte");
    }
    let mut decoder = BatchDecoder::default();
    let mut records = 0usize;
    if let Ok(used) = decoder.decode(&set, |_| {}, |_| records += 1) {
        assert!(used <= set.len());
    }
    let mut out = Vec::new();
    for codec in Codec::ALL {
        let result = decompress_into(codec, rest, LIMIT, &mut out);
        assert!(out.len() <= LIMIT + 1, "{codec:?} inflated {} bytes past its limit", out.len());
        if result.is_ok() {
            assert!(out.len() <= LIMIT);
        } else if let Err(CompressionError::TooLarge { limit }) = result {
            assert_eq!(limit, LIMIT);
        }
    }
});
