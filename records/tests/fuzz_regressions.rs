//! Inputs the `batch` fuzz target (fuzz/fuzz_targets/batch.rs) found crashing, kept as tests.

use odradek_records::batch::{BatchHeader, CRC_START, compute_crc};
use odradek_records::decoder::BatchDecoder;

/// `fuzz/artifacts/batch/crash-f78e2714…` without its mode byte: a batch whose base offset is
/// `0x7fffffffffffff00` and whose last offset delta is large enough that their sum overflowed
/// `i64` in `BatchHeader::last_offset` ("attempt to add with overflow" in the consumer's
/// decoder). The target fixes the CRC first, as done here.
const OVERFLOWING_LAST_OFFSET: [u8; 63] = [
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x31, 0x00, 0x00, 0x00, 0x00,
    0x02, 0x84, 0xbf, 0xde, 0x05, 0x00, 0x17, 0x65, 0x65, 0x65, 0x65, 0x65, 0x65, 0x65, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x63, 0x34, 0x18, 0x6b, 0x63, 0x61, 0x00,
    0x44, 0x08, 0x04, 0x74, 0x34, 0x14, 0x00, 0x50, 0x75, 0x65, 0x20, 0x34, 0x04, 0x00, 0x00,
];

#[test]
fn a_last_offset_past_i64_max_saturates_instead_of_overflowing() {
    let mut batch = OVERFLOWING_LAST_OFFSET.to_vec();
    // The batch is its first 61 bytes (length field 49); two trailing bytes follow it.
    let total = BatchHeader::parse(&batch).expect("the header parses").total_len();
    let crc = compute_crc(&batch[..total]);
    batch[CRC_START - 4..CRC_START].copy_from_slice(&crc.to_be_bytes());
    let header = BatchHeader::parse(&batch).expect("the header parses");
    assert!(header.base_offset.checked_add(i64::from(header.last_offset_delta)).is_none());
    assert_eq!(header.last_offset(), i64::MAX);

    let mut reported = Vec::new();
    let _ = BatchDecoder::default().decode(&batch, |b| reported.push(*b), |_| {});
    assert_eq!(reported.len(), 1, "the batch is reported before its records are walked");
    assert_eq!(reported[0].last_offset, i64::MAX);
}

#[test]
fn a_negative_base_offset_saturates_at_i64_min() {
    let mut batch = OVERFLOWING_LAST_OFFSET.to_vec();
    batch[..8].copy_from_slice(&i64::MIN.to_be_bytes());
    batch[23..27].copy_from_slice(&(-5i32).to_be_bytes());
    let header = BatchHeader::parse(&batch).expect("the header parses");
    assert_eq!(header.last_offset(), i64::MIN);
}
