//! Kafka record-batch compression codecs.
//!
//! A RecordBatch v2 compresses its records section as a whole with the codec
//! named by the low three bits of the batch `attributes`. This module maps
//! those bits to a [`Codec`] and converts between the compressed and the
//! uncompressed records section, in the exact byte formats Kafka clients
//! write and read:
//!
//! | codec  | id | wire format                                                    |
//! |--------|----|----------------------------------------------------------------|
//! | none   | 0  | the bytes themselves                                           |
//! | gzip   | 1  | one or more gzip members (RFC 1952)                            |
//! | snappy | 2  | xerial snappy-java framing, or a single raw snappy block       |
//! | lz4    | 3  | one or more standard LZ4 frames (independent blocks written)  |
//! | zstd   | 4  | one or more zstd frames                                        |
//!
//! # Decompression is bounded
//!
//! Compressed batches arrive from the network and from disk, so every
//! decompressor here is hostile-input safe: [`decompress`] takes a `limit`
//! and fails with [`CompressionError::TooLarge`] as soon as the output would
//! exceed it, and the output buffer never grows past `limit` bytes (plus one
//! byte of probe) no matter what sizes the input declares. Codec working
//! memory is bounded by constants independent of the input: at most about
//! 12 MiB for LZ4 (4 MiB blocks, linked mode) and, for zstd, a window of at
//! most `max(2^ceil(log2(limit)), 8 MiB)` capped at 128 MiB (zstd's own
//! default ceiling, which Java and librdkafka consumers also apply).
//!
//! Every decoder also rejects truncated streams and trailing garbage rather
//! than silently returning a prefix of the data, with one exception inherent
//! to the format: xerial snappy has no end marker, so a stream cut exactly
//! at a chunk boundary is itself a valid, shorter stream (the batch CRC and
//! the record count catch that one level up). LZ4 frames are located and
//! structurally checked before decoding, because the streaming LZ4 decoder
//! treats input that ends at a block boundary as a clean end and stops after
//! the first frame.

use std::io::{self, Read, Write};

use thiserror::Error;

/// A record-batch compression codec, as named by the low three bits of the
/// RecordBatch v2 `attributes` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// No compression (id 0).
    None,
    /// gzip (id 1).
    Gzip,
    /// Snappy in xerial snappy-java framing (id 2).
    Snappy,
    /// LZ4 frame format (id 3).
    Lz4,
    /// Zstandard (id 4).
    Zstd,
}

impl Codec {
    /// Every codec, in id order.
    pub const ALL: [Codec; 5] = [Codec::None, Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd];

    /// The mask of the codec bits within RecordBatch v2 `attributes`.
    pub const ATTRIBUTE_MASK: i16 = 0x07;

    /// Reads the codec from the low three bits of RecordBatch v2
    /// `attributes`; all other bits are ignored.
    ///
    /// # Errors
    ///
    /// [`CompressionError::UnknownCodec`] when those bits hold 5, 6 or 7.
    pub fn from_attributes(attributes: i16) -> Result<Codec, CompressionError> {
        match attributes & Self::ATTRIBUTE_MASK {
            0 => Ok(Codec::None),
            1 => Ok(Codec::Gzip),
            2 => Ok(Codec::Snappy),
            3 => Ok(Codec::Lz4),
            4 => Ok(Codec::Zstd),
            id => Err(CompressionError::UnknownCodec { id }),
        }
    }

    /// The codec id, `0..=4`, as stored in the low bits of `attributes`.
    pub fn id(self) -> i16 {
        match self {
            Codec::None => 0,
            Codec::Gzip => 1,
            Codec::Snappy => 2,
            Codec::Lz4 => 3,
            Codec::Zstd => 4,
        }
    }

    /// The codec's name as Kafka's `compression.type` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

/// A `compression.type` name that is none of [`Codec`]'s.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown compression {name:?} (expected none, gzip, snappy, lz4 or zstd)")]
pub struct UnknownCodecName {
    pub name: String,
}

impl std::str::FromStr for Codec {
    type Err = UnknownCodecName;

    /// Parses Kafka's `compression.type` spelling ([`Codec::name`]).
    fn from_str(name: &str) -> Result<Codec, UnknownCodecName> {
        Codec::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .ok_or_else(|| UnknownCodecName { name: name.to_owned() })
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a compression or decompression failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CompressionError {
    /// The codec bits of `attributes` name no known codec.
    #[error("unknown compression codec id {id} (expected 0..=4)")]
    UnknownCodec {
        /// The value of the low three attribute bits.
        id: i16,
    },
    /// Decompression would produce more than `limit` bytes.
    #[error("decompressed data exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit that was passed to [`decompress`].
        limit: usize,
    },
    /// The compressed input is malformed, truncated, or has trailing bytes.
    #[error("corrupt {codec} data: {reason}")]
    Corrupt {
        /// The codec's [`Codec::name`].
        codec: &'static str,
        /// What was wrong, with the offending offset where known.
        reason: String,
    },
    /// An input is too large to be represented in a RecordBatch (whose
    /// lengths and counts are `int32`).
    #[error("{what} of {len} exceeds the maximum of {max}")]
    InputTooLarge {
        /// What was too large (for example "compression input").
        what: &'static str,
        /// Its size or count.
        len: usize,
        /// The largest accepted size or count.
        max: usize,
    },
    /// The encoder failed (an internal codec error; not input-dependent in
    /// practice, but surfaced rather than hidden).
    #[error("{codec} compression failed: {reason}")]
    EncodeFailed {
        /// The codec's [`Codec::name`].
        codec: &'static str,
        /// The encoder's error message.
        reason: String,
    },
}

/// The largest input [`compress`] accepts: a RecordBatch's `batchLength` is
/// an `int32`, so no records section can be longer.
pub const MAX_COMPRESS_INPUT: usize = i32::MAX as usize;

/// gzip level used by [`compress`]: zlib's default (6), as Kafka's default
/// `compression.gzip.level` is.
const GZIP_LEVEL: u32 = 6;

/// zstd level used by [`compress`]: Kafka's default `compression.zstd.level`.
const ZSTD_LEVEL: i32 = 3;

/// Uncompressed bytes per xerial snappy chunk, as snappy-java's
/// `SnappyOutputStream` (which Kafka uses) writes them.
const SNAPPY_CHUNK: usize = 32 * 1024;

/// The xerial snappy-java stream header: 8 bytes of magic, then the
/// big-endian `int32` version (1) and minimum compatible version (1).
const XERIAL_HEADER: [u8; 16] = *b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";

/// Length of the xerial magic prefix of [`XERIAL_HEADER`].
const XERIAL_MAGIC_LEN: usize = 8;

/// The LZ4 frame magic number (little-endian on the wire).
const LZ4_MAGIC: u32 = 0x184D_2204;

/// zstd window-log bounds for [`decompress`]: never below 2^23 (8 MiB, which
/// covers every level up to 19 even when the producer did not declare the
/// content size), never above 2^27 (zstd's default decoder ceiling).
const ZSTD_WINDOW_LOG_FLOOR: u32 = 23;
const ZSTD_WINDOW_LOG_CEILING: u32 = 27;

/// The first output buffer size for streaming decoders (grown by doubling,
/// never past the limit).
const INITIAL_OUTPUT: usize = 16 * 1024;

fn corrupt(codec: Codec, reason: impl Into<String>) -> CompressionError {
    CompressionError::Corrupt { codec: codec.name(), reason: reason.into() }
}

fn encode_failed(codec: Codec, reason: impl std::fmt::Display) -> CompressionError {
    CompressionError::EncodeFailed { codec: codec.name(), reason: reason.to_string() }
}

/// Decompresses `data` written with `codec`, producing at most `limit` bytes.
///
/// Accepts what Kafka clients write: concatenated gzip members; xerial
/// snappy-java framing (including concatenated xerial streams) or a single
/// raw snappy block (as librdkafka may write); concatenated LZ4 frames with
/// independent or linked blocks of up to 4 MiB and optional checksums;
/// concatenated (and skippable) zstd frames. For [`Codec::None`] the output
/// is a copy of `data`.
///
/// The output buffer never exceeds `limit + 1` bytes whatever lengths the
/// input declares; see the module documentation for codec working memory.
///
/// # Errors
///
/// * [`CompressionError::TooLarge`] if the output would exceed `limit`.
/// * [`CompressionError::Corrupt`] if `data` is empty (for a real codec),
///   malformed, truncated, or followed by trailing bytes.
pub fn decompress(codec: Codec, data: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    if codec == Codec::None && data.len() <= limit {
        return Ok(data.to_vec()); // exactly sized
    }
    let mut out = Vec::new();
    decompress_into(codec, data, limit, &mut out)?;
    Ok(out)
}

/// [`decompress`] into a caller-owned buffer, which is cleared first and keeps its capacity
/// across calls (a consumer inflates every batch of a fetch into the same buffer). On error
/// `out` holds an unspecified prefix, never more than `limit + 1` bytes.
///
/// # Errors
///
/// The same as [`decompress`].
pub fn decompress_into(
    codec: Codec,
    data: &[u8],
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<(), CompressionError> {
    out.clear();
    if codec == Codec::None {
        if data.len() > limit {
            return Err(CompressionError::TooLarge { limit });
        }
        out.extend_from_slice(data);
        return Ok(());
    }
    if data.is_empty() {
        return Err(corrupt(codec, "empty input"));
    }
    match codec {
        Codec::None => {
            out.extend_from_slice(data);
            Ok(())
        }
        Codec::Gzip => {
            read_bounded_into(flate2::bufread::MultiGzDecoder::new(data), codec, limit, out)
        }
        Codec::Snappy => snappy_decompress_into(data, limit, out),
        Codec::Lz4 => {
            // The decoder stops after one frame, so frames are located first
            // (which also validates their structure) and decoded one by one.
            let mut start = 0usize;
            while start < data.len() {
                let end = lz4_frame_end(data, start)?;
                let frame = lz4_flex::frame::FrameDecoder::new(&data[start..end]);
                read_bounded_into(frame, codec, limit, out)?;
                start = end;
            }
            Ok(())
        }
        Codec::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(data)
                .map_err(|e| corrupt(codec, format!("cannot create decoder: {e}")))?;
            decoder
                .window_log_max(zstd_window_log_max(limit))
                .map_err(|e| corrupt(codec, format!("cannot bound window: {e}")))?;
            read_bounded_into(decoder, codec, limit, out)
        }
    }
}

/// Compresses `data` with `codec` in the format Kafka clients read (see the
/// module documentation). [`Codec::None`] returns a copy of `data`.
///
/// gzip uses level 6, zstd level 3 (Kafka's defaults); snappy is written in
/// xerial framing with 32 KiB chunks; LZ4 as one frame of independent
/// 64 KiB blocks without checksums, as Kafka's Java producer writes it.
///
/// # Errors
///
/// * [`CompressionError::InputTooLarge`] if `data` is longer than
///   [`MAX_COMPRESS_INPUT`].
/// * [`CompressionError::EncodeFailed`] if the codec library fails.
pub fn compress(codec: Codec, data: &[u8]) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    compress_into(codec, data, &mut out)?;
    Ok(out)
}

/// [`compress`], appending to `out` (a batch builder compresses the records section straight
/// after the header it has already written). On error `out` may hold a partial stream after
/// its original length.
///
/// # Errors
///
/// The same as [`compress`].
pub fn compress_into(codec: Codec, data: &[u8], out: &mut Vec<u8>) -> Result<(), CompressionError> {
    if data.len() > MAX_COMPRESS_INPUT {
        return Err(CompressionError::InputTooLarge {
            what: "compression input",
            len: data.len(),
            max: MAX_COMPRESS_INPUT,
        });
    }
    match codec {
        Codec::None => out.extend_from_slice(data),
        Codec::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(&mut *out, flate2::Compression::new(GZIP_LEVEL));
            encoder.write_all(data).map_err(|e| encode_failed(codec, e))?;
            encoder.finish().map_err(|e| encode_failed(codec, e))?;
        }
        Codec::Snappy => snappy_compress_into(data, out)?,
        Codec::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, &mut *out);
            encoder.write_all(data).map_err(|e| encode_failed(codec, e))?;
            encoder.finish().map_err(|e| encode_failed(codec, e))?;
        }
        Codec::Zstd => {
            let mut encoder = zstd::stream::write::Encoder::new(&mut *out, ZSTD_LEVEL)
                .map_err(|e| encode_failed(codec, e))?;
            encoder
                .set_pledged_src_size(Some(data.len() as u64))
                .map_err(|e| encode_failed(codec, e))?;
            encoder.include_contentsize(true).map_err(|e| encode_failed(codec, e))?;
            encoder.write_all(data).map_err(|e| encode_failed(codec, e))?;
            encoder.finish().map_err(|e| encode_failed(codec, e))?;
        }
    }
    Ok(())
}

/// Appends everything `reader` produces to `out`, failing with `TooLarge`
/// once `out` would hold more than `limit` bytes. `out` never grows past
/// `limit + 1` bytes: it doubles from [`INITIAL_OUTPUT`] and is capped there.
fn read_bounded_into<R: Read>(
    mut reader: R,
    codec: Codec,
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<(), CompressionError> {
    // One byte past the limit is enough to prove the output is too large.
    let cap = limit.saturating_add(1);
    let mut filled = out.len();
    if filled > limit {
        return Err(CompressionError::TooLarge { limit });
    }
    loop {
        if filled == out.len() {
            if out.len() >= cap {
                return Err(CompressionError::TooLarge { limit });
            }
            let grown = out.len().saturating_mul(2).max(INITIAL_OUTPUT).min(cap);
            out.reserve_exact(grown - out.len());
            out.resize(grown, 0);
        }
        match reader.read(&mut out[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                out.truncate(filled);
                return Err(corrupt(codec, e.to_string()));
            }
        }
    }
    out.truncate(filled);
    if filled > limit {
        return Err(CompressionError::TooLarge { limit });
    }
    Ok(())
}

/// The zstd `windowLogMax` for a given output limit: the window a frame may
/// demand is at most the power of two covering `limit`, clamped to
/// `[ZSTD_WINDOW_LOG_FLOOR, ZSTD_WINDOW_LOG_CEILING]`.
fn zstd_window_log_max(limit: usize) -> u32 {
    let ceil_log2 = usize::BITS - limit.saturating_sub(1).leading_zeros();
    ceil_log2.clamp(ZSTD_WINDOW_LOG_FLOOR, ZSTD_WINDOW_LOG_CEILING)
}

/// Grows `out` by `additional` zero bytes without letting its capacity
/// exceed `limit` (the caller has checked `out.len() + additional <= limit`),
/// doubling otherwise so that repeated growth stays amortised.
fn grow_bounded(out: &mut Vec<u8>, additional: usize, limit: usize) {
    let needed = out.len() + additional;
    if needed > out.capacity() {
        let target = out.capacity().saturating_mul(2).clamp(needed, limit.max(needed));
        out.reserve_exact(target - out.len());
    }
    out.resize(needed, 0);
}

/// Decompresses snappy: xerial framing when `data` starts with the full
/// 16-byte header's magic (as snappy-java decides), a raw block otherwise.
fn snappy_decompress_into(
    data: &[u8],
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<(), CompressionError> {
    let codec = Codec::Snappy;
    let is_xerial = data.len() >= XERIAL_HEADER.len()
        && data[..XERIAL_MAGIC_LEN] == XERIAL_HEADER[..XERIAL_MAGIC_LEN];
    let mut decoder = snap::raw::Decoder::new();
    if !is_xerial {
        return snappy_block_into(&mut decoder, data, out, limit, 0);
    }

    // Header versions are not checked, as snappy-java does not check them.
    let mut pos = XERIAL_HEADER.len();
    while pos < data.len() {
        let Some(len_bytes) = data.get(pos..pos + 4) else {
            return Err(corrupt(codec, format!("truncated chunk length at offset {pos}")));
        };
        let mut len_arr = [0u8; 4];
        len_arr.copy_from_slice(len_bytes);
        // A concatenated xerial stream: its header reappears where a chunk
        // length would be (the magic's first four bytes read as a negative
        // int32, which no real chunk length can be).
        if len_arr[..] == XERIAL_HEADER[..4] {
            match data.get(pos..pos + XERIAL_HEADER.len()) {
                Some(h) if h[..XERIAL_MAGIC_LEN] == XERIAL_HEADER[..XERIAL_MAGIC_LEN] => {
                    pos += XERIAL_HEADER.len();
                    continue;
                }
                _ => {
                    return Err(corrupt(
                        codec,
                        format!("bad concatenated xerial header at offset {pos}"),
                    ));
                }
            }
        }
        let chunk_len = i32::from_be_bytes(len_arr);
        let Ok(chunk_len) = usize::try_from(chunk_len) else {
            return Err(corrupt(
                codec,
                format!("negative chunk length {chunk_len} at offset {pos}"),
            ));
        };
        let start = pos + 4;
        let Some(chunk) = data.get(start..start.saturating_add(chunk_len)) else {
            return Err(corrupt(
                codec,
                format!(
                    "chunk of {chunk_len} bytes at offset {start} overruns the input ({} bytes remain)",
                    data.len() - start
                ),
            ));
        };
        snappy_block_into(&mut decoder, chunk, out, limit, start)?;
        pos = start + chunk_len;
    }
    Ok(())
}

/// Appends the decompression of one raw snappy block (at input offset `at`)
/// to `out`, checking its declared length against `limit` before growing.
fn snappy_block_into(
    decoder: &mut snap::raw::Decoder,
    block: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
    at: usize,
) -> Result<(), CompressionError> {
    let codec = Codec::Snappy;
    let len = snap::raw::decompress_len(block)
        .map_err(|e| corrupt(codec, format!("block at offset {at}: {e}")))?;
    let start = out.len();
    if len > limit - start {
        return Err(CompressionError::TooLarge { limit });
    }
    grow_bounded(out, len, limit);
    let written = decoder
        .decompress(block, &mut out[start..])
        .map_err(|e| corrupt(codec, format!("block at offset {at}: {e}")))?;
    if written != len {
        return Err(corrupt(
            codec,
            format!("block at offset {at} declared {len} bytes but produced {written}"),
        ));
    }
    Ok(())
}

/// Writes xerial snappy-java framing: the 16-byte header, then for each
/// chunk of at most [`SNAPPY_CHUNK`] input bytes a big-endian `int32`
/// compressed length and the raw snappy block.
fn snappy_compress_into(data: &[u8], out: &mut Vec<u8>) -> Result<(), CompressionError> {
    let codec = Codec::Snappy;
    let chunks = data.len().div_ceil(SNAPPY_CHUNK);
    out.reserve(XERIAL_HEADER.len() + chunks * 4 + snap::raw::max_compress_len(data.len()));
    out.extend_from_slice(&XERIAL_HEADER);
    let mut encoder = snap::raw::Encoder::new();
    for chunk in data.chunks(SNAPPY_CHUNK) {
        let len_at = out.len();
        let block_at = len_at + 4;
        out.resize(block_at + snap::raw::max_compress_len(chunk.len()), 0);
        let written =
            encoder.compress(chunk, &mut out[block_at..]).map_err(|e| encode_failed(codec, e))?;
        out.truncate(block_at + written);
        let written =
            i32::try_from(written).map_err(|_| encode_failed(codec, "block length overflow"))?;
        out[len_at..block_at].copy_from_slice(&written.to_be_bytes());
    }
    Ok(())
}

/// Walks the structure of the LZ4 frame starting at `start` without
/// decoding it and returns where it ends, so that truncation and trailing
/// bytes are detected (the streaming decoder treats input ending at a block
/// boundary as a clean end) and only the standard frame magic and block
/// sizes of 64 KiB to 4 MiB are accepted. Header checksums, block checksums
/// and block contents are verified by the decoder itself.
fn lz4_frame_end(data: &[u8], start: usize) -> Result<usize, CompressionError> {
    let codec = Codec::Lz4;
    let read_u32 = |at: usize| -> Result<u32, CompressionError> {
        data.get(at..at.saturating_add(4))
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| corrupt(codec, format!("truncated at offset {at}")))
    };
    let need = |at: usize, len: usize| -> Result<usize, CompressionError> {
        let end = at.saturating_add(len);
        if end > data.len() {
            Err(corrupt(
                codec,
                format!(
                    "{len} bytes needed at offset {at}, {} available",
                    data.len().saturating_sub(at)
                ),
            ))
        } else {
            Ok(end)
        }
    };

    let magic = read_u32(start)?;
    if magic != LZ4_MAGIC {
        return Err(corrupt(codec, format!("bad frame magic {magic:#010x} at offset {start}")));
    }
    let descriptor = start + 4;
    need(descriptor, 2)?;
    let flg = data[descriptor];
    let bd = data[descriptor + 1];
    if flg >> 6 != 0b01 {
        return Err(corrupt(
            codec,
            format!("unsupported frame version {} at offset {descriptor}", flg >> 6),
        ));
    }
    if flg & 0b10 != 0 || bd & 0b1000_1111 != 0 {
        return Err(corrupt(codec, format!("reserved descriptor bits set at offset {descriptor}")));
    }
    if flg & 0b1 != 0 {
        return Err(corrupt(
            codec,
            format!("dictionary frames are not supported (offset {descriptor})"),
        ));
    }
    let block_checksums = flg & 0b1_0000 != 0;
    let content_size = flg & 0b1000 != 0;
    let content_checksum = flg & 0b100 != 0;
    let size_code = (bd >> 4) & 0b111;
    if !(4..=7).contains(&size_code) {
        return Err(corrupt(
            codec,
            format!("unsupported block size code {size_code} at offset {}", descriptor + 1),
        ));
    }
    let max_block = 1usize << (8 + 2 * u32::from(size_code));
    // FLG, BD, optional 8-byte content size, header checksum.
    let mut pos = need(descriptor, 2 + if content_size { 8 } else { 0 } + 1)?;

    loop {
        let block = read_u32(pos)?;
        pos += 4;
        if block == 0 {
            return if content_checksum { need(pos, 4) } else { Ok(pos) };
        }
        let size = (block & 0x7FFF_FFFF) as usize;
        if size > max_block {
            return Err(corrupt(
                codec,
                format!(
                    "block of {size} bytes at offset {} exceeds the frame's {max_block}-byte maximum",
                    pos - 4
                ),
            ));
        }
        pos = need(pos, size + if block_checksums { 4 } else { 0 })?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Deterministic pseudo-random bytes (xorshift), incompressible enough.
    fn random_bytes(len: usize, mut seed: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            out.extend_from_slice(&seed.to_le_bytes());
        }
        out.truncate(len);
        out
    }

    fn repetitive_bytes(len: usize) -> Vec<u8> {
        b"kafka record batch payload ".iter().copied().cycle().take(len).collect()
    }

    fn samples() -> Vec<Vec<u8>> {
        vec![
            Vec::new(),
            vec![0x42],
            repetitive_bytes(100 * 1024),
            random_bytes(100 * 1024, 0x9E37_79B9_7F4A_7C15),
        ]
    }

    const BIG: usize = 64 * 1024 * 1024;

    #[test]
    fn codec_ids_names_and_attributes() {
        for (i, codec) in Codec::ALL.iter().enumerate() {
            assert_eq!(codec.id(), i as i16);
            assert_eq!(Codec::from_attributes(codec.id()).expect("known"), *codec);
            // Higher attribute bits (timestamp type, transactional, ...) ignored.
            assert_eq!(Codec::from_attributes(codec.id() | 0x78).expect("known"), *codec);
        }
        let names: Vec<_> = Codec::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names, ["none", "gzip", "snappy", "lz4", "zstd"]);
        for id in 5..=7i16 {
            match Codec::from_attributes(id | 0x10) {
                Err(CompressionError::UnknownCodec { id: got }) => assert_eq!(got, id),
                other => panic!("expected UnknownCodec for {id}, got {other:?}"),
            }
        }
    }

    #[test]
    fn round_trip_every_codec() {
        for codec in Codec::ALL {
            for data in samples() {
                let packed = compress(codec, &data).expect("compress");
                let unpacked =
                    decompress(codec, &packed, data.len()).expect("decompress at exact limit");
                assert_eq!(unpacked, data, "{codec} round trip of {} bytes", data.len());
                // The output buffer never grew past the limit plus one probe byte.
                assert!(
                    unpacked.capacity() <= data.len() + 1,
                    "{codec}: capacity {}",
                    unpacked.capacity()
                );
            }
        }
    }

    #[test]
    fn repetitive_data_actually_compresses() {
        let data = repetitive_bytes(100 * 1024);
        for codec in Codec::ALL.into_iter().filter(|c| *c != Codec::None) {
            let packed = compress(codec, &data).expect("compress");
            assert!(
                packed.len() < data.len() / 4,
                "{codec}: {} bytes from {}",
                packed.len(),
                data.len()
            );
        }
    }

    #[test]
    fn limit_is_enforced_for_every_codec() {
        for codec in Codec::ALL {
            for data in samples().into_iter().filter(|d| !d.is_empty()) {
                let packed = compress(codec, &data).expect("compress");
                for limit in [0, data.len() / 2, data.len() - 1] {
                    match decompress(codec, &packed, limit) {
                        Err(CompressionError::TooLarge { limit: got }) => assert_eq!(got, limit),
                        other => panic!("{codec} with limit {limit} of {}: {other:?}", data.len()),
                    }
                }
            }
        }
    }

    #[test]
    fn snappy_writes_xerial_chunks_of_at_most_32k() {
        let data = random_bytes(100 * 1024, 7);
        let packed = compress(Codec::Snappy, &data).expect("compress");
        assert_eq!(packed[..16], XERIAL_HEADER);
        let mut pos = 16;
        let mut total = 0;
        let mut chunks = 0;
        while pos < packed.len() {
            let len =
                i32::from_be_bytes(packed[pos..pos + 4].try_into().expect("4 bytes")) as usize;
            let block = &packed[pos + 4..pos + 4 + len];
            let n = snap::raw::decompress_len(block).expect("raw block");
            assert!(n <= SNAPPY_CHUNK);
            total += n;
            chunks += 1;
            pos += 4 + len;
        }
        assert_eq!(pos, packed.len());
        assert_eq!(total, data.len());
        assert_eq!(chunks, 4);
    }

    #[test]
    fn snappy_accepts_raw_blocks() {
        for data in samples().into_iter().filter(|d| !d.is_empty()) {
            let raw = snap::raw::Encoder::new().compress_vec(&data).expect("raw");
            assert_ne!(
                raw[..XERIAL_MAGIC_LEN.min(raw.len())],
                XERIAL_HEADER[..XERIAL_MAGIC_LEN.min(raw.len())]
            );
            assert_eq!(decompress(Codec::Snappy, &raw, data.len()).expect("raw"), data);
            assert!(matches!(
                decompress(Codec::Snappy, &raw, data.len() - 1),
                Err(CompressionError::TooLarge { .. })
            ));
        }
        // The empty raw block is a single zero varint.
        assert_eq!(decompress(Codec::Snappy, &[0], 0).expect("empty raw"), b"");
    }

    #[test]
    fn snappy_accepts_concatenated_xerial_streams() {
        let a = repetitive_bytes(40 * 1024);
        let b = random_bytes(1000, 3);
        let mut packed = compress(Codec::Snappy, &a).expect("a");
        packed.extend_from_slice(&compress(Codec::Snappy, &b).expect("b"));
        let out = decompress(Codec::Snappy, &packed, BIG).expect("concatenated");
        assert_eq!(out, [a, b].concat());
    }

    #[test]
    fn snappy_rejects_bad_xerial_chunks() {
        let mut packed = compress(Codec::Snappy, b"hello hello hello").expect("compress");
        // Negative chunk length.
        let mut neg = packed.clone();
        neg[16..20].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(matches!(
            decompress(Codec::Snappy, &neg, BIG),
            Err(CompressionError::Corrupt { .. })
        ));
        // Chunk length overrunning the input.
        let mut over = packed.clone();
        over[16..20].copy_from_slice(&1_000_000i32.to_be_bytes());
        assert!(matches!(
            decompress(Codec::Snappy, &over, BIG),
            Err(CompressionError::Corrupt { .. })
        ));
        // Stray bytes after the last chunk.
        packed.extend_from_slice(&[0, 0]);
        assert!(matches!(
            decompress(Codec::Snappy, &packed, BIG),
            Err(CompressionError::Corrupt { .. })
        ));
    }

    #[test]
    fn gzip_and_lz4_and_zstd_accept_concatenation() {
        for codec in [Codec::Gzip, Codec::Lz4, Codec::Zstd] {
            let a = repetitive_bytes(70 * 1024);
            let b = random_bytes(3000, 11);
            let mut packed = compress(codec, &a).expect("a");
            packed.extend_from_slice(&compress(codec, &b).expect("b"));
            let out = decompress(codec, &packed, BIG).expect("concatenated");
            assert_eq!(out, [a, b].concat(), "{codec}");
        }
    }

    #[test]
    fn empty_input_is_corrupt_for_real_codecs() {
        assert_eq!(decompress(Codec::None, &[], 0).expect("none"), b"");
        for codec in Codec::ALL.into_iter().filter(|c| *c != Codec::None) {
            assert!(
                matches!(decompress(codec, &[], BIG), Err(CompressionError::Corrupt { .. })),
                "{codec}"
            );
        }
    }

    /// Checks that `packed[..cut]` (a strict prefix of `codec`'s encoding
    /// of `data`) is rejected.
    fn assert_prefix_rejected(codec: Codec, data: &[u8], packed: &[u8], cut: usize) {
        match decompress(codec, &packed[..cut], BIG) {
            Err(_) => {}
            // xerial framing has no end marker: a stream cut at a chunk
            // boundary is a valid, shorter stream (the batch CRC and the
            // record count catch that at the batch level).
            Ok(out) if codec == Codec::Snappy => {
                assert!(out.len() < data.len() && data.starts_with(&out));
                assert!(cut == XERIAL_HEADER.len() || out.len() % SNAPPY_CHUNK == 0);
            }
            Ok(_) => panic!("{codec}: prefix of {cut}/{} bytes accepted", packed.len()),
        }
    }

    #[test]
    fn truncation_and_trailing_bytes_are_rejected() {
        let small = [repetitive_bytes(3000), random_bytes(2000, 5)].concat();
        // Several snappy chunks and LZ4 blocks.
        let large = [repetitive_bytes(150_000), random_bytes(70_000, 6)].concat();
        for codec in Codec::ALL.into_iter().filter(|c| *c != Codec::None) {
            let packed = compress(codec, &small).expect("compress");
            for cut in 0..packed.len() {
                assert_prefix_rejected(codec, &small, &packed, cut);
            }
            let packed_large = compress(codec, &large).expect("compress");
            let tail = packed_large.len().saturating_sub(64)..packed_large.len();
            for cut in (0..packed_large.len()).step_by(509).chain(tail) {
                assert_prefix_rejected(codec, &large, &packed_large, cut);
            }
            for packed in [packed, packed_large] {
                let mut trailing = packed.clone();
                trailing.push(0x00);
                assert!(
                    decompress(codec, &trailing, BIG).is_err(),
                    "{codec}: trailing byte accepted"
                );
            }
        }
    }

    #[test]
    fn bit_flips_never_panic() {
        let data = [repetitive_bytes(5000), random_bytes(500, 9)].concat();
        for codec in Codec::ALL {
            let packed = compress(codec, &data).expect("compress");
            for i in 0..packed.len() {
                for bit in [0x01u8, 0x80] {
                    let mut broken = packed.clone();
                    broken[i] ^= bit;
                    if let Ok(out) = decompress(codec, &broken, 2 * data.len()) {
                        assert!(out.len() <= 2 * data.len());
                    }
                }
            }
        }
    }

    #[test]
    fn hostile_declared_sizes_are_refused_before_allocating() {
        // Raw snappy block declaring 2^32 - 1 bytes.
        let raw = [0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x00];
        assert!(matches!(
            decompress(Codec::Snappy, &raw, 1024),
            Err(CompressionError::TooLarge { limit: 1024 })
        ));
        // xerial chunk whose block declares 2^32 - 1 bytes.
        let mut xerial = XERIAL_HEADER.to_vec();
        xerial.extend_from_slice(&(raw.len() as i32).to_be_bytes());
        xerial.extend_from_slice(&raw);
        assert!(matches!(
            decompress(Codec::Snappy, &xerial, 1024),
            Err(CompressionError::TooLarge { limit: 1024 })
        ));
        // zstd frame header declaring a 64 MiB window (windowLog 26), which
        // zstd's default ceiling (27) would accept.
        let mut zstd_frame = 0xFD2F_B528u32.to_le_bytes().to_vec();
        zstd_frame.push(0x00); // no content size, not single-segment
        zstd_frame.push((26 - 10) << 3); // window descriptor
        zstd_frame.extend_from_slice(&[0x01, 0x00, 0x00]); // last raw block, 0 bytes
        assert!(matches!(
            decompress(Codec::Zstd, &zstd_frame, 1024),
            Err(CompressionError::Corrupt { codec: "zstd", .. })
        ));
        // The same frame is valid once the limit justifies its window.
        assert_eq!(decompress(Codec::Zstd, &zstd_frame, 1 << 26).expect("valid frame"), b"");
        // LZ4 block larger than the frame's declared maximum.
        let mut lz4 = compress(Codec::Lz4, &random_bytes(100, 1)).expect("lz4");
        let block_at = 7; // magic, FLG, BD, HC
        lz4[block_at..block_at + 4].copy_from_slice(&0x7FFF_0000u32.to_le_bytes());
        assert!(matches!(
            decompress(Codec::Lz4, &lz4, BIG),
            Err(CompressionError::Corrupt { codec: "lz4", .. })
        ));
    }

    #[test]
    fn zstd_window_log_is_bounded() {
        assert_eq!(zstd_window_log_max(0), ZSTD_WINDOW_LOG_FLOOR);
        assert_eq!(zstd_window_log_max(1024), ZSTD_WINDOW_LOG_FLOOR);
        assert_eq!(zstd_window_log_max((1 << 24) + 1), 25);
        assert_eq!(zstd_window_log_max(1 << 25), 25);
        assert_eq!(zstd_window_log_max(usize::MAX), ZSTD_WINDOW_LOG_CEILING);
    }

    #[test]
    fn garbage_is_rejected() {
        for codec in Codec::ALL.into_iter().filter(|c| *c != Codec::None) {
            for seed in 1..200u64 {
                let garbage = random_bytes((seed as usize * 37) % 700 + 1, seed);
                assert!(decompress(codec, &garbage, 1 << 20).is_err(), "{codec} seed {seed}");
            }
        }
    }

    proptest! {
        #[test]
        fn prop_round_trip(data in proptest::collection::vec(any::<u8>(), 0..4096), codec_id in 0i16..5) {
            let codec = Codec::from_attributes(codec_id).expect("known codec");
            let packed = compress(codec, &data).expect("compress");
            prop_assert_eq!(decompress(codec, &packed, data.len()).expect("decompress"), data);
        }

        #[test]
        fn prop_arbitrary_input_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512), codec_id in 0i16..5) {
            let codec = Codec::from_attributes(codec_id).expect("known codec");
            if let Ok(out) = decompress(codec, &data, 1 << 16) {
                prop_assert!(out.len() <= 1 << 16);
            }
        }
    }
}
