//! The records section of a Kafka RecordBatch v2, after decompression.
//!
//! Each record is encoded as follows (`varint` and `varlong` are
//! zigzag-encoded base-128 varints of at most 5 and 10 bytes, as in
//! protobuf's `sint32`/`sint64`):
//!
//! ```text
//! length:          varint   bytes in the rest of the record
//! attributes:      int8     (unused by Kafka, carried verbatim)
//! timestampDelta:  varlong  relative to the batch's baseTimestamp
//! offsetDelta:     varint   relative to the batch's baseOffset
//! keyLength:       varint   -1 means a null key
//! key:             bytes
//! valueLength:     varint   -1 means a null value
//! value:           bytes
//! headersCount:    varint   must be >= 0
//! headers, each:   headerKeyLength varint (>= 0), headerKey bytes,
//!                  headerValueLength varint (-1 = null), headerValue bytes
//! ```
//!
//! [`decode_records`] is zero-copy: keys, values and header fields are
//! [`Bytes`] slices of the input. It validates strictly (every length, the
//! per-record `length`, and the record count against the section's size),
//! never panics and never allocates in proportion to a declared count or
//! length before checking it against the input's size.
//!
//! [`count_records`] applies the same validation without allocating, to
//! check a producer's uncompressed records section against its header.
//!
//! Header keys are carried as bytes and not validated as UTF-8: Kafka's
//! own broker does not reject records for that, so neither does this
//! decoder.

use std::ops::Range;

use bytes::Bytes;
use thiserror::Error;

/// One record header. The key is never null; the value may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header key (a UTF-8 string by convention; not validated).
    pub key: Bytes,
    /// The header value; `None` encodes as length -1.
    pub value: Option<Bytes>,
}

/// One record of a RecordBatch v2, with offsets and timestamps relative to
/// its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Record attributes (unused by Kafka; preserved verbatim).
    pub attributes: i8,
    /// Timestamp relative to the batch's `baseTimestamp`.
    pub timestamp_delta: i64,
    /// Offset relative to the batch's `baseOffset`.
    pub offset_delta: i32,
    /// The key; `None` encodes as length -1.
    pub key: Option<Bytes>,
    /// The value; `None` (a tombstone) encodes as length -1.
    pub value: Option<Bytes>,
    /// The headers, in wire order.
    pub headers: Vec<Header>,
}

/// Why a records section could not be decoded or a record encoded.
///
/// Every `at` is a byte offset into the records section passed to
/// [`decode_records`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordsError {
    /// The input, or the enclosing record as bounded by its `length`, ended
    /// inside the field starting at `at`.
    #[error("truncated: data ends inside the field at byte {at}")]
    Truncated {
        /// Offset of the field that could not be read.
        at: usize,
    },
    /// A length or count field holds a value that is never valid there: a
    /// negative record length, header count or header key length, or a
    /// key/value length below -1.
    #[error("invalid length {length} at byte {at}")]
    BadLength {
        /// Offset of the length field.
        at: usize,
        /// The value it holds.
        length: i64,
    },
    /// A length field claims more bytes than remain in the input (for a
    /// record length) or in the enclosing record (for any other field).
    #[error("length {length} at byte {at} overruns the {available} bytes that remain")]
    Overrun {
        /// Offset of the length field.
        at: usize,
        /// The length it declares.
        length: usize,
        /// How many bytes actually remain.
        available: usize,
    },
    /// A varint is longer than 5 bytes (10 for a varlong) or its value does
    /// not fit in 32 (64) bits.
    #[error("malformed varint at byte {at}")]
    BadVarint {
        /// Offset of the varint's first byte.
        at: usize,
    },
    /// Bytes remain after the declared number of records.
    #[error("{count} trailing bytes after the last record")]
    TrailingBytes {
        /// How many bytes remain.
        count: usize,
    },
    /// A record's fields end before its declared `length` does.
    #[error("record declares {declared} bytes but its fields occupy {actual}")]
    LengthMismatch {
        /// The record's `length` field.
        declared: usize,
        /// The bytes its fields actually occupy.
        actual: usize,
    },
    /// The declared record count cannot fit in the input: every record takes
    /// at least [`MIN_RECORD_LEN`] bytes.
    #[error("{count} records cannot fit in the records section")]
    TooManyRecords {
        /// The declared record count.
        count: usize,
    },
    /// A header count that cannot fit in the rest of its record (every
    /// header takes at least two bytes).
    #[error("header count {count} at byte {at} cannot fit in its record")]
    TooManyHeaders {
        /// Offset of the header count.
        at: usize,
        /// The declared header count.
        count: usize,
    },
    /// A record field is too large for the format's `int32` lengths.
    #[error("{field} of {len} cannot be encoded (the maximum is 2147483647)")]
    FieldTooLarge {
        /// Which field ("key", "value", "header key", "header value",
        /// "header count" or "record").
        field: &'static str,
        /// Its length or count.
        len: usize,
    },
}

/// The smallest possible encoded record: a 1-byte length and six 1-byte
/// fields (attributes, timestamp delta, offset delta, key length, value
/// length, header count).
pub const MIN_RECORD_LEN: usize = 7;

/// The smallest possible encoded header: a 1-byte key length (empty key)
/// and a 1-byte value length.
const MIN_HEADER_LEN: usize = 2;

/// The largest length the format's `int32` fields can hold.
const MAX_FIELD_LEN: usize = i32::MAX as usize;

/// Decodes exactly `count` records from the records section `data`.
///
/// Keys, values and header fields are zero-copy slices of `data`.
///
/// # Errors
///
/// * [`RecordsError::TooManyRecords`] if `count` records cannot fit in
///   `data` (checked before anything is allocated);
/// * [`RecordsError::Truncated`], [`RecordsError::Overrun`],
///   [`RecordsError::BadLength`], [`RecordsError::BadVarint`],
///   [`RecordsError::TooManyHeaders`] for malformed fields;
/// * [`RecordsError::LengthMismatch`] if a record's fields do not fill
///   exactly its declared length;
/// * [`RecordsError::TrailingBytes`] if bytes remain after record `count`.
pub fn decode_records(data: &Bytes, count: usize) -> Result<Vec<Record>, RecordsError> {
    if count > data.len() / MIN_RECORD_LEN {
        return Err(RecordsError::TooManyRecords { count });
    }
    let mut records = Vec::with_capacity(count);
    let mut pos = 0usize;
    for _ in 0..count {
        records.push(decode_record(data, &mut pos)?);
    }
    if pos != data.len() {
        return Err(RecordsError::TrailingBytes { count: data.len() - pos });
    }
    Ok(records)
}

/// Validates every record of the records section `data`, exactly as
/// [`decode_records`] would, and returns how many there are. Allocates
/// nothing.
///
/// # Errors
///
/// The same as [`decode_records`] for malformed records (never
/// `TooManyRecords` or `TrailingBytes`: the section simply ends after the
/// last record).
pub fn count_records(data: &[u8]) -> Result<usize, RecordsError> {
    let mut pos = 0usize;
    let mut count = 0usize;
    while pos < data.len() {
        parse_record(data, &mut pos)?;
        count += 1;
    }
    Ok(count)
}

/// One record borrowed from a records section, as [`walk_records`] hands it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    /// `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// `None` for a null value (a tombstone).
    pub value: Option<&'a [u8]>,
}

/// Validates exactly `count` records of the records section `data`, as [`decode_records`]
/// does, and calls `visit` with each, borrowed from `data`: the consumer's path, which copies
/// and allocates nothing.
///
/// # Errors
///
/// The same as [`decode_records`]; records before the bad one have been visited.
pub fn walk_records(
    data: &[u8],
    count: usize,
    mut visit: impl FnMut(RecordRef<'_>),
) -> Result<(), RecordsError> {
    if count > data.len() / MIN_RECORD_LEN {
        return Err(RecordsError::TooManyRecords { count });
    }
    let mut pos = 0usize;
    for _ in 0..count {
        let raw = parse_record(data, &mut pos)?;
        visit(RecordRef {
            attributes: raw.attributes,
            timestamp_delta: raw.timestamp_delta,
            offset_delta: raw.offset_delta,
            key: raw.key.map(|k| &data[k]),
            value: raw.value.map(|v| &data[v]),
        });
    }
    if pos != data.len() {
        return Err(RecordsError::TrailingBytes { count: data.len() - pos });
    }
    Ok(())
}

/// The fixed fields of one validated record, with its variable-length
/// fields as byte ranges of the records section.
struct RawRecord {
    attributes: i8,
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<Range<usize>>,
    value: Option<Range<usize>>,
    /// Where the first header starts; the headers are known to be valid.
    headers_at: usize,
    header_count: usize,
    /// The end of the record (exclusive).
    end: usize,
}

/// Decodes the record starting at `*pos`, leaving `*pos` just after it.
fn decode_record(data: &Bytes, pos: &mut usize) -> Result<Record, RecordsError> {
    let raw = parse_record(data, pos)?;
    let body = &data[..raw.end];
    let mut headers = Vec::with_capacity(raw.header_count);
    let mut at = raw.headers_at;
    for _ in 0..raw.header_count {
        // Already validated by `parse_record`; errors here are impossible
        // but are still propagated rather than assumed away.
        let key_at = at;
        let key = read_nullable(body, &mut at)?
            .ok_or(RecordsError::BadLength { at: key_at, length: -1 })?;
        let value = read_nullable(body, &mut at)?;
        headers.push(Header { key: data.slice(key), value: value.map(|v| data.slice(v)) });
    }
    Ok(Record {
        attributes: raw.attributes,
        timestamp_delta: raw.timestamp_delta,
        offset_delta: raw.offset_delta,
        key: raw.key.map(|k| data.slice(k)),
        value: raw.value.map(|v| data.slice(v)),
        headers,
    })
}

/// Parses and fully validates the record starting at `*pos`, leaving `*pos`
/// just after it.
fn parse_record(all: &[u8], pos: &mut usize) -> Result<RawRecord, RecordsError> {
    let at = *pos;
    let declared = read_varint(all, pos)?;
    let length = usize::try_from(declared)
        .map_err(|_| RecordsError::BadLength { at, length: declared.into() })?;
    let body_start = *pos;
    let available = all.len() - body_start;
    if length > available {
        return Err(RecordsError::Overrun { at, length, available });
    }
    let body_end = body_start + length;
    // Every field below is read within the record's declared bounds.
    let body = &all[..body_end];

    let attributes = read_i8(body, pos)?;
    let timestamp_delta = read_varlong(body, pos)?;
    let offset_delta = read_varint(body, pos)?;
    let key = read_nullable(body, pos)?;
    let value = read_nullable(body, pos)?;

    let count_at = *pos;
    let header_count = read_varint(body, pos)?;
    let header_count = usize::try_from(header_count)
        .map_err(|_| RecordsError::BadLength { at: count_at, length: header_count.into() })?;
    if header_count > (body_end - *pos) / MIN_HEADER_LEN {
        return Err(RecordsError::TooManyHeaders { at: count_at, count: header_count });
    }
    let headers_at = *pos;
    for _ in 0..header_count {
        let key_at = *pos;
        if read_nullable(body, pos)?.is_none() {
            return Err(RecordsError::BadLength { at: key_at, length: -1 });
        }
        read_nullable(body, pos)?;
    }

    if *pos != body_end {
        return Err(RecordsError::LengthMismatch { declared: length, actual: *pos - body_start });
    }
    Ok(RawRecord {
        attributes,
        timestamp_delta,
        offset_delta,
        key,
        value,
        headers_at,
        header_count,
        end: body_end,
    })
}

#[inline]
fn read_i8(buf: &[u8], pos: &mut usize) -> Result<i8, RecordsError> {
    let byte = *buf.get(*pos).ok_or(RecordsError::Truncated { at: *pos })?;
    *pos += 1;
    Ok(i8::from_be_bytes([byte]))
}

/// Reads a varint length then skips that many bytes, returning their
/// range (or `None` for length -1); `buf` ends where the enclosing record
/// ends.
#[inline]
fn read_nullable(buf: &[u8], pos: &mut usize) -> Result<Option<Range<usize>>, RecordsError> {
    let at = *pos;
    let declared = read_varint(buf, pos)?;
    if declared == -1 {
        return Ok(None);
    }
    let length = usize::try_from(declared)
        .map_err(|_| RecordsError::BadLength { at, length: declared.into() })?;
    let start = *pos;
    let available = buf.len() - start;
    if length > available {
        return Err(RecordsError::Overrun { at, length, available });
    }
    *pos = start + length;
    Ok(Some(start..start + length))
}

/// Reads a zigzag varint (at most 5 bytes, value within `i32`) at `*pos`,
/// advancing `*pos` past it only on success.
#[inline]
pub fn read_varint(buf: &[u8], pos: &mut usize) -> Result<i32, RecordsError> {
    let at = *pos;
    // One byte: most lengths, deltas and counts of small records.
    if let Some(&byte) = buf.get(at)
        && byte & 0x80 == 0
    {
        *pos = at + 1;
        let raw = u32::from(byte);
        return Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32));
    }
    let mut raw: u32 = 0;
    for i in 0..5usize {
        let byte = *buf.get(at + i).ok_or(RecordsError::Truncated { at })?;
        // The fifth byte carries bits 28..32: only its low 4 bits may be set
        // and it may not continue.
        if i == 4 && byte > 0x0F {
            return Err(RecordsError::BadVarint { at });
        }
        raw |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            *pos = at + i + 1;
            return Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32));
        }
    }
    Err(RecordsError::BadVarint { at })
}

/// Reads a zigzag varlong (at most 10 bytes, value within `i64`) at `*pos`,
/// advancing `*pos` past it only on success.
#[inline]
pub fn read_varlong(buf: &[u8], pos: &mut usize) -> Result<i64, RecordsError> {
    let at = *pos;
    if let Some(&byte) = buf.get(at)
        && byte & 0x80 == 0
    {
        *pos = at + 1;
        let raw = u64::from(byte);
        return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
    }
    let mut raw: u64 = 0;
    for i in 0..10usize {
        let byte = *buf.get(at + i).ok_or(RecordsError::Truncated { at })?;
        // The tenth byte carries bit 63 only.
        if i == 9 && byte > 0x01 {
            return Err(RecordsError::BadVarint { at });
        }
        raw |= u64::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            *pos = at + i + 1;
            return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    Err(RecordsError::BadVarint { at })
}

/// Appends the zigzag varint encoding of `value` (1 to 5 bytes) to `out`.
#[inline]
pub fn write_varint(out: &mut Vec<u8>, value: i32) {
    let mut raw = ((value << 1) ^ (value >> 31)) as u32;
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

/// Appends the zigzag varlong encoding of `value` (1 to 10 bytes) to `out`.
#[inline]
pub fn write_varlong(out: &mut Vec<u8>, value: i64) {
    let mut raw = ((value << 1) ^ (value >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

/// The number of bytes [`write_varint`] writes for `value`.
#[inline]
pub fn varint_len(value: i32) -> usize {
    let raw = ((value << 1) ^ (value >> 31)) as u32;
    // Bits needed (at least one), seven per byte.
    let bits = (u32::BITS - raw.leading_zeros()).max(1) as usize;
    bits.div_ceil(7)
}

/// The number of bytes [`write_varlong`] writes for `value`.
#[inline]
pub fn varlong_len(value: i64) -> usize {
    let raw = ((value << 1) ^ (value >> 63)) as u64;
    let bits = (u64::BITS - raw.leading_zeros()).max(1) as usize;
    bits.div_ceil(7)
}

/// Converts a length known to be at most [`MAX_FIELD_LEN`] for the wire.
///
/// # Panics
///
/// If `len` exceeds `i32::MAX`, which [`check_encodable`] rules out.
fn wire_len(len: usize, field: &'static str) -> i32 {
    match i32::try_from(len) {
        Ok(len) => len,
        Err(_) => panic!("record {field} of {len} bytes exceeds i32::MAX; see check_encodable"),
    }
}

/// Saturating length of a nullable field: the length varint plus the bytes.
fn nullable_len(field: Option<&Bytes>) -> usize {
    match field {
        None => varint_len(-1),
        Some(bytes) => {
            varint_len(i32::try_from(bytes.len()).unwrap_or(i32::MAX)).saturating_add(bytes.len())
        }
    }
}

/// The length of a record's body (everything after its `length` varint),
/// saturating at `usize::MAX`.
fn body_len(record: &Record) -> usize {
    let mut len = 1 // attributes
        + varlong_len(record.timestamp_delta)
        + varint_len(record.offset_delta);
    len = len
        .saturating_add(nullable_len(record.key.as_ref()))
        .saturating_add(nullable_len(record.value.as_ref()))
        .saturating_add(varint_len(i32::try_from(record.headers.len()).unwrap_or(i32::MAX)));
    for header in &record.headers {
        len = len
            .saturating_add(nullable_len(Some(&header.key)))
            .saturating_add(nullable_len(header.value.as_ref()));
    }
    len
}

/// Checks that `record` can be encoded: its key, value, header keys and
/// values, header count and total body each fit the format's `int32`
/// lengths. Records produced by [`decode_records`] always pass.
///
/// # Errors
///
/// [`RecordsError::FieldTooLarge`] naming the first field that does not fit.
pub fn check_encodable(record: &Record) -> Result<(), RecordsError> {
    let check = |field: &'static str, len: usize| {
        if len > MAX_FIELD_LEN { Err(RecordsError::FieldTooLarge { field, len }) } else { Ok(()) }
    };
    check("key", record.key.as_ref().map_or(0, Bytes::len))?;
    check("value", record.value.as_ref().map_or(0, Bytes::len))?;
    check("header count", record.headers.len())?;
    for header in &record.headers {
        check("header key", header.key.len())?;
        check("header value", header.value.as_ref().map_or(0, Bytes::len))?;
    }
    check("record", body_len(record))
}

/// The number of bytes [`encode_record`] appends for `record`, including
/// its `length` prefix. Saturates at `usize::MAX` for records that fail
/// [`check_encodable`].
pub fn encoded_len(record: &Record) -> usize {
    let body = body_len(record);
    varint_len(i32::try_from(body).unwrap_or(i32::MAX)).saturating_add(body)
}

/// Appends the encoding of one record, `length` prefix included, to `out`.
///
/// # Panics
///
/// If the record fails [`check_encodable`] (a key, value, header field,
/// header count or whole record longer than `i32::MAX`), since such a
/// record has no valid encoding. Records from [`decode_records`] always
/// pass; [`crate::builder::build_batch`] checks before encoding.
pub fn encode_record(record: &Record, out: &mut Vec<u8>) {
    let body = body_len(record);
    let body_wire = wire_len(body, "body");
    out.reserve(varint_len(body_wire) + body);
    write_varint(out, body_wire);
    out.extend_from_slice(&record.attributes.to_be_bytes());
    write_varlong(out, record.timestamp_delta);
    write_varint(out, record.offset_delta);
    write_nullable(out, record.key.as_ref(), "key");
    write_nullable(out, record.value.as_ref(), "value");
    write_varint(out, wire_len(record.headers.len(), "header count"));
    for header in &record.headers {
        write_nullable(out, Some(&header.key), "header key");
        write_nullable(out, header.value.as_ref(), "header value");
    }
}

fn write_nullable(out: &mut Vec<u8>, field: Option<&Bytes>, name: &'static str) {
    match field {
        None => write_varint(out, -1),
        Some(bytes) => {
            write_varint(out, wire_len(bytes.len(), name));
            out.extend_from_slice(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn b(s: &[u8]) -> Bytes {
        Bytes::copy_from_slice(s)
    }

    fn sample_records() -> Vec<Record> {
        vec![
            Record {
                attributes: 0,
                timestamp_delta: 0,
                offset_delta: 0,
                key: Some(b(b"key-0")),
                value: Some(b(b"value-0")),
                headers: vec![],
            },
            Record {
                attributes: 0,
                timestamp_delta: -1234,
                offset_delta: -7,
                key: None,
                value: None,
                headers: vec![
                    Header { key: b(b"trace-id"), value: Some(b(b"abc")) },
                    Header { key: b(b"null-valued"), value: None },
                    Header { key: b(b""), value: Some(b(b"")) },
                ],
            },
            Record {
                attributes: -1,
                timestamp_delta: i64::MIN,
                offset_delta: i32::MIN,
                key: Some(b(b"")),
                value: Some(Bytes::from(vec![0xAB; 300])),
                headers: vec![],
            },
            Record {
                attributes: 5,
                timestamp_delta: i64::MAX,
                offset_delta: i32::MAX,
                key: Some(Bytes::from(vec![7; 70_000])),
                value: None,
                headers: vec![Header {
                    key: Bytes::from(vec![b'h'; 200]),
                    value: Some(Bytes::from(vec![1; 129])),
                }],
            },
        ]
    }

    fn encode_all(records: &[Record]) -> Bytes {
        let mut out = Vec::new();
        for record in records {
            let before = out.len();
            encode_record(record, &mut out);
            assert_eq!(out.len() - before, encoded_len(record));
        }
        Bytes::from(out)
    }

    #[test]
    fn varint_known_encodings() {
        let cases: &[(i32, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-64, &[0x7F]),
            (64, &[0x80, 0x01]),
            (300, &[0xD8, 0x04]),
            (i32::MAX, &[0xFE, 0xFF, 0xFF, 0xFF, 0x0F]),
            (i32::MIN, &[0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
        ];
        for &(value, bytes) in cases {
            let mut out = Vec::new();
            write_varint(&mut out, value);
            assert_eq!(out, bytes, "{value}");
            assert_eq!(varint_len(value), bytes.len(), "{value}");
            let mut pos = 0;
            assert_eq!(read_varint(bytes, &mut pos).expect("valid"), value);
            assert_eq!(pos, bytes.len());
        }
        let long_cases: &[(i64, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1000, &[0xD0, 0x0F]),
            (i64::MAX, &[0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
            (i64::MIN, &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
        ];
        for &(value, bytes) in long_cases {
            let mut out = Vec::new();
            write_varlong(&mut out, value);
            assert_eq!(out, bytes, "{value}");
            assert_eq!(varlong_len(value), bytes.len(), "{value}");
            let mut pos = 0;
            assert_eq!(read_varlong(bytes, &mut pos).expect("valid"), value);
            assert_eq!(pos, bytes.len());
        }
    }

    #[test]
    fn varint_rejects_overlong_and_truncated() {
        let mut pos = 0;
        // Six bytes.
        assert!(matches!(
            read_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00], &mut pos),
            Err(RecordsError::BadVarint { at: 0 })
        ));
        // Fifth byte with bits beyond 32.
        assert!(matches!(
            read_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0x1F], &mut pos),
            Err(RecordsError::BadVarint { at: 0 })
        ));
        // Eleven-byte varlong and a tenth byte with bits beyond 64.
        assert!(matches!(
            read_varlong(&[0x80; 11], &mut pos),
            Err(RecordsError::BadVarint { at: 0 })
        ));
        assert!(matches!(
            read_varlong(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02], &mut pos),
            Err(RecordsError::BadVarint { at: 0 })
        ));
        assert!(matches!(
            read_varint(&[0x80, 0x80], &mut pos),
            Err(RecordsError::Truncated { at: 0 })
        ));
        assert!(matches!(read_varlong(&[], &mut pos), Err(RecordsError::Truncated { at: 0 })));
        assert_eq!(pos, 0, "failed reads must not advance");
        // Non-canonical (padded) encodings are accepted, as Kafka accepts them.
        assert_eq!(read_varint(&[0x82, 0x00], &mut pos).expect("padded"), 1);
        assert_eq!(pos, 2);
    }

    #[test]
    fn decodes_a_record_written_by_kafka() {
        // A record from a Kafka broker's fetch response: attributes 1,
        // timestampDelta 1000, offsetDelta 1, key "hello", value "world".
        let wire = b(&[
            0x22, 0x01, 0xD0, 0x0F, 0x02, 0x0A, b'h', b'e', b'l', b'l', b'o', 0x0A, b'w', b'o',
            b'r', b'l', b'd', 0x00,
        ]);
        let records = decode_records(&wire, 1).expect("valid");
        assert_eq!(
            records,
            vec![Record {
                attributes: 1,
                timestamp_delta: 1000,
                offset_delta: 1,
                key: Some(b(b"hello")),
                value: Some(b(b"world")),
                headers: vec![],
            }]
        );
        assert_eq!(encode_all(&records), wire);
    }

    #[test]
    fn round_trip() {
        let records = sample_records();
        let wire = encode_all(&records);
        let decoded = decode_records(&wire, records.len()).expect("valid");
        assert_eq!(decoded, records);
        assert!(decode_records(&Bytes::new(), 0).expect("empty").is_empty());
    }

    #[test]
    fn decoding_is_zero_copy() {
        let wire = encode_all(&sample_records());
        let range = wire.as_ptr() as usize..wire.as_ptr() as usize + wire.len();
        for record in decode_records(&wire, 4).expect("valid") {
            for field in [record.key, record.value].into_iter().flatten() {
                if !field.is_empty() {
                    assert!(range.contains(&(field.as_ptr() as usize)));
                }
            }
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        let records = sample_records();
        let wire = encode_all(&records);
        for cut in 0..wire.len() {
            let prefix = wire.slice(..cut);
            assert!(
                decode_records(&prefix, records.len()).is_err(),
                "prefix of {cut} bytes accepted"
            );
        }
    }

    #[test]
    fn count_records_validates_like_decode() {
        let records = sample_records();
        let wire = encode_all(&records);
        assert_eq!(count_records(&wire).expect("valid"), records.len());
        assert_eq!(count_records(&[]).expect("empty"), 0);
        let mut boundaries = vec![0];
        for record in &records {
            boundaries.push(boundaries.last().copied().unwrap_or(0) + encoded_len(record));
        }
        for cut in 0..wire.len() {
            match count_records(&wire[..cut]) {
                Ok(n) => assert_eq!(boundaries[n], cut, "prefix of {cut} bytes counted {n}"),
                Err(_) => assert!(!boundaries.contains(&cut), "boundary {cut} rejected"),
            }
        }
        let slack = with_length(7, &[0, 0, 0, 0x01, 0x01, 0x00, 0xEE]);
        assert_eq!(
            count_records(&slack),
            Err(RecordsError::LengthMismatch { declared: 7, actual: 6 })
        );
    }

    #[test]
    fn wrong_count_is_an_error() {
        let records = sample_records();
        let wire = encode_all(&records);
        let first_len = encoded_len(&records[0]);
        match decode_records(&wire, 1) {
            Err(RecordsError::TrailingBytes { count }) => assert_eq!(count, wire.len() - first_len),
            other => panic!("expected TrailingBytes, got {other:?}"),
        }
        assert!(matches!(
            decode_records(&wire, records.len() + 1),
            Err(RecordsError::Truncated { .. })
        ));
        assert!(matches!(
            decode_records(&wire, usize::MAX),
            Err(RecordsError::TooManyRecords { count: usize::MAX })
        ));
        assert!(matches!(
            decode_records(&b(&[0; 13]), 2),
            Err(RecordsError::TooManyRecords { count: 2 })
        ));
    }

    /// Encodes a record body by hand: `fields` after the length prefix.
    fn with_length(declared: i32, fields: &[u8]) -> Bytes {
        let mut out = Vec::new();
        write_varint(&mut out, declared);
        out.extend_from_slice(fields);
        Bytes::from(out)
    }

    #[test]
    fn malformed_fields_are_reported_precisely() {
        // attributes, ts 0, offset 0, key -2 (zigzag 3), ...
        let bad_key = with_length(6, &[0, 0, 0, 0x03, 0x01, 0x00]);
        assert!(matches!(
            decode_records(&bad_key, 1),
            Err(RecordsError::BadLength { at: 4, length: -2 })
        ));
        // Value length -5.
        let bad_value = with_length(6, &[0, 0, 0, 0x01, 0x09, 0x00]);
        assert!(matches!(
            decode_records(&bad_value, 1),
            Err(RecordsError::BadLength { at: 5, length: -5 })
        ));
        // Negative record length.
        let negative = with_length(-3, &[0; 8]);
        assert!(matches!(
            decode_records(&negative, 1),
            Err(RecordsError::BadLength { at: 0, length: -3 })
        ));
        // Record length beyond the data.
        let overrun = with_length(100, &[0; 8]);
        assert!(matches!(
            decode_records(&overrun, 1),
            Err(RecordsError::Overrun { at: 0, length: 100, available: 8 })
        ));
        // Key length beyond the record (though within the data).
        let key_overrun = with_length(6, &[0, 0, 0, 0x08, 0x01, 0x00, 0, 0, 0, 0]);
        assert!(matches!(
            decode_records(&key_overrun, 1),
            Err(RecordsError::Overrun { at: 4, length: 4, available: 2 })
        ));
        // Negative header count.
        let neg_headers = with_length(6, &[0, 0, 0, 0x01, 0x01, 0x01]);
        assert!(matches!(
            decode_records(&neg_headers, 1),
            Err(RecordsError::BadLength { at: 6, length: -1 })
        ));
        // Header count that cannot fit.
        let many_headers = with_length(8, &[0, 0, 0, 0x01, 0x01, 0xFE, 0xFF, 0x0F]);
        assert!(matches!(
            decode_records(&many_headers, 1),
            Err(RecordsError::TooManyHeaders { at: 6, count: 131_071 })
        ));
        // Null header key.
        let null_header_key = with_length(8, &[0, 0, 0, 0x01, 0x01, 0x02, 0x01, 0x01]);
        assert!(matches!(
            decode_records(&null_header_key, 1),
            Err(RecordsError::BadLength { at: 7, length: -1 })
        ));
        // Declared length longer than the fields (slack inside the record).
        let slack = with_length(7, &[0, 0, 0, 0x01, 0x01, 0x00, 0xEE]);
        assert!(matches!(
            decode_records(&slack, 1),
            Err(RecordsError::LengthMismatch { declared: 7, actual: 6 })
        ));
        // Declared length shorter than the fields: the last field is cut.
        let short = with_length(5, &[0, 0, 0, 0x01, 0x01, 0x00]);
        assert!(matches!(decode_records(&short, 1), Err(RecordsError::Truncated { at: 6 })));
        // Overlong varint in the offset delta.
        let overlong =
            with_length(11, &[0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x01, 0x01, 0x00]);
        assert!(matches!(decode_records(&overlong, 1), Err(RecordsError::BadVarint { at: 3 })));
    }

    #[test]
    fn check_encodable_accepts_normal_records() {
        for record in sample_records() {
            check_encodable(&record).expect("encodable");
        }
    }

    fn arb_bytes() -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from)
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        (
            any::<i8>(),
            any::<i64>(),
            any::<i32>(),
            proptest::option::of(arb_bytes()),
            proptest::option::of(arb_bytes()),
            proptest::collection::vec(
                (arb_bytes(), proptest::option::of(arb_bytes()))
                    .prop_map(|(key, value)| Header { key, value }),
                0..4,
            ),
        )
            .prop_map(
                |(attributes, timestamp_delta, offset_delta, key, value, headers)| Record {
                    attributes,
                    timestamp_delta,
                    offset_delta,
                    key,
                    value,
                    headers,
                },
            )
    }

    proptest! {
        #[test]
        fn prop_round_trip(records in proptest::collection::vec(arb_record(), 0..8)) {
            let wire = encode_all(&records);
            prop_assert_eq!(decode_records(&wire, records.len()).expect("valid"), records);
        }

        #[test]
        fn prop_varints_round_trip(a in any::<i32>(), l in any::<i64>()) {
            let mut out = Vec::new();
            write_varint(&mut out, a);
            write_varlong(&mut out, l);
            prop_assert_eq!(out.len(), varint_len(a) + varlong_len(l));
            let mut pos = 0;
            prop_assert_eq!(read_varint(&out, &mut pos).expect("varint"), a);
            prop_assert_eq!(read_varlong(&out, &mut pos).expect("varlong"), l);
            prop_assert_eq!(pos, out.len());
        }

        #[test]
        fn prop_arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256), count in 0usize..40) {
            let data = Bytes::from(data);
            if let Ok(records) = decode_records(&data, count) {
                prop_assert_eq!(records.len(), count);
                // Re-encoding is canonical, so never longer than the input
                // (which may have used padded varints).
                let reencoded: usize = records.iter().map(encoded_len).sum();
                prop_assert!(reencoded <= data.len());
            }
        }
    }
}
