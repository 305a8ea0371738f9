//! Kafka's RecordBatch v2, and nothing else: the one codec of Odradek's broker, bench, tests
//! and tools.
//!
//! # How the pieces fit
//! - [`batch`]: the 61-byte header layout, parsing and validation ([`batch::validate`],
//!   [`batch::split_record_set`]), offset assignment ([`batch::stored_header`]) and header scans.
//! - [`records`]: the records section inside a batch, with its zigzag varints; decoding to owned
//!   [`records::Record`]s (zero-copy [`bytes::Bytes`] slices) or walking borrowed
//!   [`records::RecordRef`]s.
//! - [`compression`]: the one [`compression::Codec`] enum and Kafka's four codecs (gzip,
//!   snappy, lz4, zstd), every decompression bounded by a caller's limit.
//! - [`builder`]: [`builder::BatchBuilder`] appends records into a reused buffer and finishes a
//!   batch in place (header, compression, CRC-32C); [`builder::build_batch`] builds one from a
//!   slice of records.
//! - [`decoder`]: [`decoder::BatchDecoder`] walks the batches of a Fetch response, inflating a
//!   compressed batch once into a reused buffer and handing out borrowed records.
//!
//! # Guarantees
//! - Pure: no I/O, no async, no threads, no global state. Bytes in, bytes out; buffers are the
//!   caller's where speed matters.
//! - Hostile-input safe: every length and count read from the wire is checked against the bytes
//!   present before it is used or allocated for; no decoder panics on any input.
//! - What the builder writes passes [`batch::validate`] and Kafka's own decoders read it
//!   (checked against kafka-protocol in the tests).
//!
//! # What this crate does not know
//! Requests, sockets, partitions, logs and offsets beyond a batch's own fields.
#![forbid(unsafe_code)]

pub mod batch;
pub mod builder;
pub mod compression;
pub mod decoder;
pub mod records;

pub use batch::{BatchError, BatchHeader};
pub use builder::{BatchBuilder, BatchParams, ProducerStamp, build_batch};
pub use compression::{Codec, CompressionError};
pub use decoder::{BatchDecoder, BatchInfo, DecodeError, DecodedRecord};
pub use records::{Record, RecordRef, RecordsError};
