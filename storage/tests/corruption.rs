//! Corruption of segment and index files on disk, with the real io_uring backend.
//!
//! Each case writes a log in a fresh temporary directory, stops it either uncleanly (dropped
//! without `close`) or cleanly with the `clean-shutdown` marker deleted afterwards (both force
//! the recovery scan of the tail segment), damages the files with `std::fs`, reopens with
//! [`Log::open_with_clock`] and checks the [`RecoveryReport`], what reads return, and that the
//! log accepts appends at the right offset afterwards.
//!
//! The behaviour asserted here, as the code documents it:
//! - Recovery scans the tail segment from its start and truncates at the **first** batch that
//!   fails its checks (length, magic, CRC-32C, record count, growing offsets); everything from
//!   that batch on is cut, even valid batches behind it, because offsets after a hole cannot be
//!   trusted (Kafka's `LogSegment.recover` does the same).
//! - Closed segments are trusted when their index files pass their checks; an index that fails
//!   them is rebuilt by a verifying scan (counted in `indexes_rebuilt`).
//! - After a clean shutdown nothing is scanned beyond the index tail walk (Kafka semantics):
//!   a flipped payload byte is then served as is, and clients detect it by the batch CRC.

mod common;
use odradek_storage::sim::SimRng;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::*;
use odradek_storage::batch::{self, BatchError, BatchHeader, Strictness};
use odradek_storage::compression::Codec;
use odradek_storage::log::{CLEAN_SHUTDOWN_FILE, RecoveryReport, system_clock};
use odradek_storage::{CompioBackend, Log, LogConfig, segment};

/// A timestamp near now (an old one would make every append roll by `segment.ms`).
fn ts() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// How the log was stopped before it was damaged. Both leave the tail segment to be scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// `sync`, then dropped without `close`.
    Unclean,
    /// `close` (indexes and marker written), then the marker deleted.
    CleanMarkerRemoved,
}

const STOPS: [Stop; 2] = [Stop::Unclean, Stop::CleanMarkerRemoved];
const CODECS: [Codec; 5] = [Codec::None, Codec::Lz4, Codec::Zstd, Codec::Gzip, Codec::Snappy];

/// A batch as it lies in a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchAt {
    pos: u64,
    len: u64,
    base: u64,
    last: u64,
}

/// One segment (active by default) and small index intervals so indexes have entries.
/// Buffered writes: these tests reason about the raw bytes of a segment file, which after an
/// unclean stop in direct-write mode also end in zero padding (its recovery is tested in
/// `features.rs`).
fn config() -> LogConfig {
    LogConfig { index_interval_bytes: 256, direct_writes: false, ..LogConfig::default() }
}

/// The batches of a segment file, parsed from its headers (the file must be intact).
fn batches_in(path: &Path) -> Vec<BatchAt> {
    let bytes = std::fs::read(path).expect("read segment");
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        let h = BatchHeader::parse(&bytes[pos..]).expect("intact header");
        out.push(BatchAt {
            pos: pos as u64,
            len: h.total_len() as u64,
            base: h.base_offset as u64,
            last: h.last_offset() as u64,
        });
        pos += h.total_len();
    }
    assert_eq!(pos, bytes.len(), "segment ends on a batch boundary");
    out
}

/// Segment files of the log in `dir`, oldest first.
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("stat").len()
}

fn flip(path: &Path, pos: u64, mask: u8) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[pos as usize] ^= mask;
    std::fs::write(path, bytes).expect("write");
}

fn cut(path: &Path, len: u64) {
    std::fs::OpenOptions::new().write(true).open(path).expect("open").set_len(len).expect("cut");
}

fn append_raw(path: &Path, extra: &[u8]) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes.extend_from_slice(extra);
    std::fs::write(path, bytes).expect("write");
}

/// What to append: one batch per entry.
type Spec = Vec<(Vec<u64>, Codec)>;

/// `count` small batches: batch `i` holds 1 to 5 values `i * 1000 ..`; codecs in turn.
fn small_batches(count: usize) -> Spec {
    (0..count)
        .map(|i| {
            let n = 1 + (i * 7) % 5;
            let values = (0..n as u64).map(|k| i as u64 * 1000 + k).collect();
            (values, CODECS[i % CODECS.len()])
        })
        .collect()
}

/// Opens a fresh log in `dir`, appends `spec` (one append per batch; batch `i` has timestamp
/// `t0 + 100 * i`), syncs and stops it as `stop` says. Returns `t0` and the `(offset, value)` of
/// every record, per batch.
async fn fill(dir: &Path, cfg: &LogConfig, spec: &Spec, stop: Stop) -> (i64, Vec<Vec<(u64, u64)>>) {
    let log = Log::open(CompioBackend, dir, cfg.clone()).await.expect("open");
    let t0 = ts();
    let mut out = Vec::new();
    for (i, (values, codec)) in spec.iter().enumerate() {
        let batch = batch_of(values, *codec, t0 + 100 * i as i64, i % 2 == 0);
        let info = log.append(batch).await.expect("append");
        out.push(
            values.iter().enumerate().map(|(k, v)| (info.base_offset + k as u64, *v)).collect(),
        );
    }
    stop_log(log, dir, stop).await;
    (t0, out)
}

async fn stop_log(log: Log<CompioBackend>, dir: &Path, stop: Stop) {
    match stop {
        Stop::Unclean => {
            log.sync().await.expect("sync");
            drop(log);
        }
        Stop::CleanMarkerRemoved => {
            log.close().await.expect("close");
            drop(log);
            std::fs::remove_file(dir.join(CLEAN_SHUTDOWN_FILE)).expect("remove marker");
        }
    }
}

async fn reopen(dir: &Path, cfg: &LogConfig) -> (Log<CompioBackend>, RecoveryReport) {
    Log::open_with_clock(CompioBackend, dir, cfg.clone(), system_clock()).await.expect("reopen")
}

/// Every record of the log, read with `read_bytes` from the start to the end. Panics (in
/// `values_in`) if a served batch fails validation.
async fn read_all(log: &Log<CompioBackend>) -> Vec<(u64, u64)> {
    let end = log.log_end_offset();
    let mut offset = log.log_start_offset();
    let mut out = Vec::new();
    for _ in 0..=end {
        if offset >= end {
            break;
        }
        let records = values_in(&log.read_bytes(offset, 64 * 1024).await.expect("read"));
        let last = records.last().expect("a read below the end returns a record").0;
        assert!(last >= offset, "reads make progress");
        offset = last + 1;
        out.extend(records);
    }
    out
}

/// Reads every offset on its own: the batch served must hold it (a read never skips records).
async fn read_each(log: &Log<CompioBackend>, expected: &[(u64, u64)], what: &str) {
    for &(o, v) in expected {
        let records = values_in(&log.read_bytes(o, 1).await.expect("read"));
        assert!(
            records.first().is_some_and(|r| r.0 <= o) && records.contains(&(o, v)),
            "{what}: reading offset {o} served offsets {:?}",
            records.iter().map(|r| r.0).collect::<Vec<_>>()
        );
    }
}

fn flat(batches: &[Vec<(u64, u64)>]) -> Vec<(u64, u64)> {
    batches.iter().flatten().copied().collect()
}

/// After a recovery that left the log ending at `end`: the next append gets offset `end`, is
/// readable, and survives another unclean reopen without further truncation.
async fn append_after_recovery(
    dir: &Path,
    cfg: &LogConfig,
    log: Log<CompioBackend>,
    mut expected: Vec<(u64, u64)>,
    end: u64,
    what: &str,
) {
    let values = [777_000, 777_001, 777_002];
    let info = log.append(batch_of(&values, Codec::Zstd, ts(), true)).await.expect("append");
    assert_eq!(info.base_offset, end, "{what}: the first append after recovery");
    expected.extend(values.iter().enumerate().map(|(k, v)| (end + k as u64, *v)));
    assert_eq!(read_all(&log).await, expected, "{what}: reads after the append");
    log.sync().await.expect("sync");
    drop(log);
    let (log, report) = reopen(dir, cfg).await;
    assert_eq!(report.truncated_bytes, 0, "{what}: second recovery: {report:?}");
    assert_eq!(log.log_end_offset(), end + values.len() as u64, "{what}: second recovery");
    assert_eq!(read_all(&log).await, expected, "{what}: reads after the second recovery");
}

/// Fills a log with `spec`, lets `damage` spoil its (only) segment file, reopens it and checks
/// that recovery kept exactly the batches before index `keep` (as `damage` returns it) and cut
/// `removed` bytes (likewise): report, file length, log end offset, reads, and appends after.
async fn expect_cut(
    stop: Stop,
    spec: &Spec,
    what: &str,
    damage: impl FnOnce(&Path, &[BatchAt]) -> (usize, u64),
) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let cfg = config();
    let (_, written) = fill(dir, &cfg, spec, stop).await;
    let segments = segment_files(dir);
    assert_eq!(segments.len(), 1, "{what}: one segment");
    let seg = &segments[0];
    let layout = batches_in(seg);
    assert_eq!(layout.len(), spec.len());
    let (keep, removed) = damage(seg, &layout);
    let what = format!("{what} ({stop:?})");
    let (log, report) = reopen(dir, &cfg).await;
    let (valid, end) = match keep {
        0 => (0, 0),
        k => (layout[k - 1].pos + layout[k - 1].len, layout[k - 1].last + 1),
    };
    assert!(!report.clean_shutdown, "{what}: {report:?}");
    assert_eq!(report.segments, 1, "{what}: {report:?}");
    assert_eq!(report.truncated_bytes, removed, "{what}: truncated bytes: {report:?}");
    assert_eq!(report.truncated_reason.is_some(), removed > 0, "{what}: reason: {report:?}");
    assert_eq!(file_len(seg), valid, "{what}: the file is cut to the last whole batch");
    assert_eq!(log.log_end_offset(), end, "{what}: log end offset");
    let expected = flat(&written[..keep]);
    assert_eq!(read_all(&log).await, expected, "{what}: surviving records");
    append_after_recovery(dir, &cfg, log, expected, end, &what).await;
}

/// A flipped byte anywhere in the CRC-covered part of the last batch (header fields after the
/// CRC, and the records), in the CRC itself, the magic byte or the length field: recovery cuts
/// exactly that batch, every earlier record stays readable, and the next append reuses its
/// base offset.
#[test]
fn flipped_byte_in_last_batch_truncates_exactly_that_batch() {
    let rt = runtime();
    rt.block_on(async {
        let spec = small_batches(12);
        // Header: length (8, 11), magic (16), CRC (17, 20), then one byte of every field the
        // CRC covers: attributes, lastOffsetDelta, baseTimestamp, maxTimestamp, producerId,
        // producerEpoch, baseSequence, recordsCount.
        let header_at = [8, 11, 16, 17, 20, 21, 22, 23, 26, 27, 34, 35, 42, 43, 50, 51, 52, 53];
        let header_at = header_at.into_iter().chain([56, 57, 60]);
        for stop in STOPS {
            for at in header_at.clone() {
                expect_cut(stop, &spec, &format!("header byte {at} flipped"), |seg, layout| {
                    let last = layout[layout.len() - 1];
                    flip(seg, last.pos + at, 0x10);
                    (layout.len() - 1, last.len)
                })
                .await;
            }
            for part in ["first", "middle", "last"] {
                expect_cut(stop, &spec, &format!("{part} payload byte flipped"), |seg, layout| {
                    let last = layout[layout.len() - 1];
                    let body = last.len - batch::HEADER_BYTES as u64;
                    let at = match part {
                        "first" => 0,
                        "middle" => body / 2,
                        _ => body - 1,
                    };
                    flip(seg, last.pos + batch::HEADER_BYTES as u64 + at, 0x01);
                    (layout.len() - 1, last.len)
                })
                .await;
            }
        }
    });
}

/// A file cut inside its last batch (a torn write): inside the 12-byte length prefix, inside
/// the 61-byte header, inside the records. Recovery cuts back to the previous batch boundary;
/// a cut exactly at a boundary loses nothing more.
#[test]
fn torn_last_batch_is_cut_back_to_the_previous_boundary() {
    let rt = runtime();
    rt.block_on(async {
        let spec = small_batches(12);
        for stop in STOPS {
            // Where to cut, as a function of the batch length.
            type CutAt = fn(u64) -> u64;
            let cuts: [(&str, CutAt); 14] = [
                ("at the batch start", |_| 0),
                ("after 1 byte", |_| 1),
                ("inside the base offset", |_| 6),
                ("inside the length field", |_| 11),
                ("right after the prefix", |_| 12),
                ("inside the leader epoch", |_| 14),
                ("after the magic", |_| 17),
                ("inside the CRC", |_| 19),
                ("inside the attributes", |_| 22),
                ("inside the timestamps", |_| 40),
                ("inside the records count", |_| 59),
                ("right after the header", |_| 61),
                ("in the middle of the records", |len| 61 + (len - 61) / 2),
                ("one byte short", |len| len - 1),
            ];
            for (what, cut_at) in cuts {
                expect_cut(stop, &spec, &format!("cut {what}"), |seg, layout| {
                    let last = layout[layout.len() - 1];
                    let torn = cut_at(last.len);
                    cut(seg, last.pos + torn);
                    (layout.len() - 1, torn)
                })
                .await;
            }
        }
    });
}

/// A last batch larger than recovery's 64 KiB read chunk, torn or corrupted beyond the first
/// chunk: recovery reads it whole and still cuts exactly that batch.
#[test]
fn torn_or_corrupt_batch_larger_than_the_scan_chunk() {
    let rt = runtime();
    rt.block_on(async {
        let mut spec = small_batches(5);
        spec.push(((0..12_000).map(|k| 5_000_000 + k).collect(), Codec::None));
        for stop in STOPS {
            let mut big_len = 0;
            expect_cut(stop, &spec, "big batch intact", |_, layout| {
                big_len = layout[5].len;
                (6, 0)
            })
            .await;
            assert!(big_len > segment::SCAN_CHUNK_BYTES as u64 + 1000, "batch of {big_len} bytes");
            for torn in [30_000, segment::SCAN_CHUNK_BYTES as u64 + 100, big_len - 1] {
                expect_cut(stop, &spec, &format!("big batch cut after {torn} bytes"), |seg, l| {
                    cut(seg, l[5].pos + torn);
                    (5, torn)
                })
                .await;
            }
            expect_cut(stop, &spec, "big batch flipped after 100 000 bytes", |seg, l| {
                flip(seg, l[5].pos + 100_000, 0x04);
                (5, l[5].len)
            })
            .await;
        }
    });
}

/// Bytes after the last valid batch (zeros from a file extended but never written, random
/// garbage, a replayed copy of an earlier batch): cut off, every batch before them intact.
#[test]
fn garbage_after_the_last_batch_is_cut_off() {
    let rt = runtime();
    rt.block_on(async {
        let spec = small_batches(10);
        let mut rng = SimRng::new(0x6A5B_A9E0);
        let mut cases: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        for n in [1, 11, 12, 61, 4096] {
            cases.push((format!("{n} zero bytes"), Some(vec![0; n])));
        }
        for n in [1, 12, 100, 70_000] {
            cases.push((format!("{n} random bytes"), Some(rng.bytes(n))));
        }
        cases.push(("100 0xff bytes".into(), Some(vec![0xff; 100])));
        // `None`: a copy of the last batch as it is (its base offset is below the log end).
        cases.push(("a replayed copy of the last batch".into(), None));
        for stop in STOPS {
            for (what, garbage) in &cases {
                expect_cut(stop, &spec, what, |seg, layout| {
                    let extra = garbage.clone().unwrap_or_else(|| {
                        let last = layout[layout.len() - 1];
                        let bytes = std::fs::read(seg).expect("read");
                        bytes[last.pos as usize..].to_vec()
                    });
                    append_raw(seg, &extra);
                    (layout.len(), extra.len() as u64)
                })
                .await;
            }
        }
    });
}

/// A bad batch in the middle of the active segment: recovery cuts at the first batch that
/// fails its checks, so every batch from it on is gone, valid or not. This is the intended
/// behaviour (Kafka's `LogSegment.recover` does the same): offsets after a hole cannot be
/// trusted, and a batch whose length is damaged leaves no way to find the next batch start.
#[test]
fn corrupt_batch_in_the_middle_cuts_everything_from_it() {
    let rt = runtime();
    rt.block_on(async {
        let spec = small_batches(12);
        for stop in STOPS {
            for k in [0usize, 1, 5, 10] {
                expect_cut(stop, &spec, &format!("payload of batch {k} flipped"), |seg, layout| {
                    let b = layout[k];
                    flip(seg, b.pos + b.len - 3, 0x80);
                    (k, file_len(seg) - b.pos)
                })
                .await;
            }
            expect_cut(stop, &spec, "length of batch 6 zeroed", |seg, layout| {
                let b = layout[6];
                let mut bytes = std::fs::read(seg).expect("read");
                bytes[b.pos as usize + 8..b.pos as usize + 12].fill(0);
                std::fs::write(seg, bytes).expect("write");
                (6, file_len(seg) - b.pos)
            })
            .await;
            expect_cut(stop, &spec, "batch 3 replaced by zeros", |seg, layout| {
                let b = layout[3];
                let mut bytes = std::fs::read(seg).expect("read");
                bytes[b.pos as usize..(b.pos + b.len) as usize].fill(0);
                std::fs::write(seg, bytes).expect("write");
                (3, file_len(seg) - b.pos)
            })
            .await;
        }
    });
}

/// Several segments: 1 KiB segments of small batches, an index entry every 128 bytes.
fn multi_segment_config() -> LogConfig {
    LogConfig { segment_bytes: 1024, index_interval_bytes: 128, ..LogConfig::default() }
}

fn decode_pairs(bytes: &[u8], entry: usize) -> Vec<(u64, u32)> {
    bytes
        .chunks_exact(entry)
        .map(|c| {
            let (key, rest) = c.split_at(entry - 4);
            let mut k = [0u8; 8];
            k[8 - key.len()..].copy_from_slice(key);
            (u64::from_be_bytes(k), u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]))
        })
        .collect()
}

/// How one case spoils the first (closed) segment's index files.
type IndexDamage = fn(&Path, &Path, u64, &mut SimRng);

/// A closed segment's `.index` or `.timeindex` that fails its checks (wrong size, garbage,
/// entries out of order or past the segment end, an entry off a batch boundary, a missing
/// file) is detected when the log opens, cleanly or not, and rebuilt by a verifying scan:
/// `indexes_rebuilt` counts it, nothing is truncated, and every read (by offset, one by one,
/// and by timestamp) is still right.
#[test]
fn corrupt_index_of_a_closed_segment_is_rebuilt() {
    let cases: [(&str, IndexDamage); 11] = [
        ("index with 3 trailing bytes", |ix, _, _, _| append_raw(ix, &[1, 2, 3])),
        ("index cut to 5 bytes", |ix, _, _, _| cut(ix, 5)),
        ("index entries reversed", |ix, _, _, _| {
            let bytes = std::fs::read(ix).expect("read");
            let rev: Vec<u8> = bytes.chunks_exact(8).rev().flatten().copied().collect();
            std::fs::write(ix, rev).expect("write");
        }),
        ("index of random bytes", |ix, _, _, rng| {
            let n = std::fs::read(ix).expect("read").len();
            std::fs::write(ix, rng.bytes(n)).expect("write");
        }),
        ("index entry past the segment end", |ix, _, seg_len, _| {
            let mut bytes = std::fs::read(ix).expect("read");
            let n = bytes.len();
            bytes[n - 4..].copy_from_slice(&(seg_len as u32 + 8).to_be_bytes());
            std::fs::write(ix, bytes).expect("write");
        }),
        ("last index entry off a batch boundary", |ix, _, _, _| {
            let mut bytes = std::fs::read(ix).expect("read");
            let n = bytes.len();
            let pos = u32::from_be_bytes([bytes[n - 4], bytes[n - 3], bytes[n - 2], bytes[n - 1]]);
            bytes[n - 4..].copy_from_slice(&(pos + 5).to_be_bytes());
            std::fs::write(ix, bytes).expect("write");
        }),
        ("index missing", |ix, _, _, _| std::fs::remove_file(ix).expect("remove")),
        ("time index with 5 trailing bytes", |_, tx, _, _| append_raw(tx, &[9; 5])),
        ("time index entries reversed", |_, tx, _, _| {
            let bytes = std::fs::read(tx).expect("read");
            let rev: Vec<u8> = bytes.chunks_exact(12).rev().flatten().copied().collect();
            std::fs::write(tx, rev).expect("write");
        }),
        ("time index missing", |_, tx, _, _| std::fs::remove_file(tx).expect("remove")),
        ("both indexes garbage", |ix, tx, _, rng| {
            std::fs::write(ix, rng.bytes(13)).expect("write");
            std::fs::write(tx, rng.bytes(7)).expect("write");
        }),
    ];
    let rt = runtime();
    rt.block_on(async {
        let cfg = multi_segment_config();
        let spec = small_batches(30);
        for clean in [false, true] {
            for (i, (what, damage)) in cases.iter().enumerate() {
                let what = format!("{what} (clean shutdown: {clean})");
                let tmp = tempfile::tempdir().expect("tempdir");
                let dir = tmp.path();
                let log = Log::open(CompioBackend, dir, cfg.clone()).await.expect("open");
                let t0 = ts();
                let mut written = Vec::new();
                for (b, (values, codec)) in spec.iter().enumerate() {
                    let batch = batch_of(values, *codec, t0 + 100 * b as i64, false);
                    let info = log.append(batch).await.expect("append");
                    written.push((info.base_offset, values.clone()));
                }
                if clean {
                    log.close().await.expect("close");
                } else {
                    log.sync().await.expect("sync");
                }
                drop(log);
                let segments = segment_files(dir);
                assert!(segments.len() >= 3, "{what}: segments {segments:?}");
                let (ix, tx) = (segment::index_path(dir, 0), segment::time_index_path(dir, 0));
                let entries = decode_pairs(&std::fs::read(&ix).expect("index"), 8);
                let times = decode_pairs(&std::fs::read(&tx).expect("time index"), 12);
                assert!(entries.len() >= 2 && times.len() >= 2, "{what}: {entries:?} {times:?}");
                let mut rng = SimRng::new(0x1DE5 + i as u64);
                damage(&ix, &tx, file_len(&segments[0]), &mut rng);

                let (log, report) = reopen(dir, &cfg).await;
                let tail_scans = usize::from(!clean);
                assert_eq!(report.clean_shutdown, clean, "{what}: {report:?}");
                assert_eq!(report.indexes_rebuilt, 1 + tail_scans, "{what}: {report:?}");
                assert_eq!(report.truncated_bytes, 0, "{what}: {report:?}");
                assert_eq!(report.segments, segments.len(), "{what}: {report:?}");
                let expected: Vec<(u64, u64)> = written
                    .iter()
                    .flat_map(|(base, vs)| {
                        vs.iter().enumerate().map(move |(k, v)| (base + k as u64, *v))
                    })
                    .collect();
                assert_eq!(log.log_end_offset(), expected.len() as u64, "{what}");
                assert_eq!(read_all(&log).await, expected, "{what}");
                read_each(&log, &expected, &what).await;
                for (b, (base, _)) in written.iter().enumerate() {
                    let t = t0 + 100 * b as i64;
                    let found = log.offset_for_timestamp(t).await.expect("by time");
                    assert_eq!(
                        found,
                        Some((*base, t)),
                        "{what}: offset for timestamp of batch {b}"
                    );
                }
                drop(log);
                // The damaged file is still on disk: the next open rebuilds again, still right.
                let (log, report) = reopen(dir, &cfg).await;
                assert_eq!(report.truncated_bytes, 0, "{what}: third open {report:?}");
                assert_eq!(read_all(&log).await, expected, "{what}: third open");
            }
        }
    });
}

/// An empty `.index` file is a valid (if useless) sparse index: it is trusted, not rebuilt,
/// and reads stay right (they scan from the segment start).
#[test]
fn empty_index_of_a_closed_segment_is_trusted_and_reads_stay_right() {
    let rt = runtime();
    rt.block_on(async {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let cfg = multi_segment_config();
        let (_, written) = fill(dir, &cfg, &small_batches(30), Stop::Unclean).await;
        assert!(segment_files(dir).len() >= 3);
        cut(&segment::index_path(dir, 0), 0);
        let (log, report) = reopen(dir, &cfg).await;
        assert_eq!(report.indexes_rebuilt, 1, "only the tail segment is scanned: {report:?}");
        assert_eq!(report.truncated_bytes, 0, "{report:?}");
        let expected = flat(&written);
        assert_eq!(read_all(&log).await, expected);
        read_each(&log, &expected, "empty index").await;
    });
}

/// The batches of `bytes` (whole stored batches) with what validation says of each.
fn validate_each(bytes: &Bytes) -> Vec<(u64, Result<(), BatchError>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let h = BatchHeader::parse(&bytes[pos..]).expect("header");
        let b = &bytes[pos..pos + h.total_len()];
        out.push((h.base_offset as u64, batch::validate(b, Strictness::Stored).map(|_| ())));
        pos += h.total_len();
    }
    out
}

/// After a clean shutdown the tail segment is not scanned (Kafka semantics): `open` trusts the
/// indexes and walks only the batch headers after the last index entry. A flipped byte inside
/// a batch's records is therefore not noticed: the batch is served as it is, and its CRC-32C,
/// which clients check, fails. This is acceptable and documented: the crate only promises that
/// recovery after an *unclean* stop never serves a corrupt batch.
///
/// The latent corruption is found by the next recovery scan, after an unclean stop: it cuts
/// at the corrupt batch, so batches appended (and synced) after it are cut with it.
#[test]
fn clean_shutdown_trusts_the_tail_and_serves_a_crc_bad_batch() {
    let rt = runtime();
    rt.block_on(async {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let cfg = config();
        let log = Log::open(CompioBackend, dir, cfg.clone()).await.expect("open");
        let mut written: Vec<Vec<(u64, u64)>> = Vec::new();
        for (i, (values, codec)) in small_batches(8).iter().enumerate() {
            let info =
                log.append(batch_of(values, *codec, ts(), i % 2 == 0)).await.expect("append");
            let base = info.base_offset;
            written.push(values.iter().enumerate().map(|(k, v)| (base + k as u64, *v)).collect());
        }
        log.close().await.expect("close");
        drop(log);
        let seg = segment_files(dir).pop().expect("segment");
        let layout = batches_in(&seg);
        let last = layout[layout.len() - 1];
        flip(&seg, last.pos + last.len - 2, 0x01);

        let (log, report) = reopen(dir, &cfg).await;
        assert!(report.clean_shutdown, "{report:?}");
        assert_eq!(report.indexes_rebuilt, 0, "nothing is scanned after a clean stop: {report:?}");
        assert_eq!(report.truncated_bytes, 0, "{report:?}");
        assert_eq!(log.log_end_offset(), last.last + 1);
        assert!(!dir.join(CLEAN_SHUTDOWN_FILE).exists(), "open consumes the marker");
        let earlier = flat(&written[..written.len() - 1]);
        let mut got = Vec::new();
        let mut offset = 0;
        while offset < last.base {
            let records = values_in(&log.read_bytes(offset, 1).await.expect("read"));
            offset = records.last().expect("records").0 + 1;
            got.extend(records);
        }
        assert_eq!(got, earlier, "the batches before the damaged one are intact");
        let served = log.read_bytes(last.base, 1 << 20).await.expect("read the damaged batch");
        let verdicts = validate_each(&served);
        assert_eq!(verdicts.len(), 1, "{verdicts:?}");
        assert_eq!(verdicts[0].0, last.base);
        assert!(
            matches!(verdicts[0].1, Err(BatchError::CrcMismatch { .. })),
            "the damaged batch is served as it is and fails its CRC: {verdicts:?}"
        );

        // Appends go after it; then an unclean stop. Recovery scans the tail from its start and
        // cuts at the damaged batch, taking the later (synced) batch with it.
        let info = log.append(batch_of(&[424_242], Codec::Lz4, ts(), false)).await.expect("append");
        assert_eq!(info.base_offset, last.last + 1);
        log.sync().await.expect("sync");
        drop(log);
        let appended_len = file_len(&seg) - (last.pos + last.len);
        let (log, report) = reopen(dir, &cfg).await;
        assert!(!report.clean_shutdown, "{report:?}");
        assert_eq!(report.truncated_bytes, last.len + appended_len, "{report:?}");
        assert!(
            report.truncated_reason.as_deref().is_some_and(|r| r.contains("CRC")),
            "{report:?}"
        );
        assert_eq!(log.log_end_offset(), last.base);
        assert_eq!(read_all(&log).await, earlier);
    });
}

/// Damage that breaks the batch *structure* of the tail is noticed even after a clean
/// shutdown: `Segment::load` walks the headers after the last index entry, fails, and the
/// segment is rebuilt by a verifying scan that cuts exactly the bad tail.
#[test]
fn clean_shutdown_still_notices_a_broken_tail_structure() {
    let rt = runtime();
    rt.block_on(async {
        let spec = small_batches(10);
        // Each case damages the segment and says how many bytes recovery must cut, and whether
        // the cut takes the last batch (or only what follows it).
        type TailDamage = fn(&Path, BatchAt) -> (u64, bool);
        let cases: [(&str, TailDamage); 4] = [
            ("cut inside the last batch", |seg, last| {
                cut(seg, last.pos + 40);
                (40, true)
            }),
            ("magic of the last batch flipped", |seg, last| {
                flip(seg, last.pos + 16, 0x04);
                (last.len, true)
            }),
            ("length of the last batch grown", |seg, last| {
                flip(seg, last.pos + 9, 0x01);
                (last.len, true)
            }),
            ("zeros after the last batch", |seg, _| {
                append_raw(seg, &[0; 100]);
                (100, false)
            }),
        ];
        for (what, damage) in cases {
            let tmp = tempfile::tempdir().expect("tempdir");
            let dir = tmp.path();
            let cfg = config();
            let log = Log::open(CompioBackend, dir, cfg.clone()).await.expect("open");
            let mut expected = Vec::new();
            for (i, (values, codec)) in spec.iter().enumerate() {
                let info =
                    log.append(batch_of(values, *codec, ts(), i % 2 == 1)).await.expect("append");
                expected.extend(
                    values.iter().enumerate().map(|(k, v)| (info.base_offset + k as u64, *v)),
                );
            }
            log.close().await.expect("close");
            drop(log);
            let seg = segment_files(dir).pop().expect("segment");
            let layout = batches_in(&seg);
            let last = layout[layout.len() - 1];
            let (removed, cuts_last) = damage(&seg, last);
            if cuts_last {
                expected.truncate(expected.len() - spec[spec.len() - 1].0.len());
            }
            let (log, report) = reopen(dir, &cfg).await;
            assert!(report.clean_shutdown, "{what}: {report:?}");
            assert_eq!(report.indexes_rebuilt, 1, "{what}: {report:?}");
            assert_eq!(report.truncated_bytes, removed, "{what}: {report:?}");
            let end = if cuts_last { last.base } else { last.last + 1 };
            assert_eq!(log.log_end_offset(), end, "{what}");
            assert_eq!(read_all(&log).await, expected, "{what}");
            append_after_recovery(dir, &cfg, log, expected, end, what).await;
        }
    });
}

/// Bytes outside the CRC (base offset, partition leader epoch) are checked only for offset
/// order, as in Kafka: a base offset that goes backwards is cut; a leader epoch flip, or a base
/// offset that jumps forward (a gap, which compaction may legitimately leave), is kept.
#[test]
fn flips_outside_the_crc_are_caught_only_by_the_offset_order() {
    let rt = runtime();
    rt.block_on(async {
        let spec = small_batches(12);
        for stop in STOPS {
            expect_cut(stop, &spec, "base offset of the last batch lowered", |seg, layout| {
                let last = layout[layout.len() - 1];
                let prev = layout[layout.len() - 2];
                assert!(prev.last > 0);
                let mut bytes = std::fs::read(seg).expect("read");
                let at = last.pos as usize;
                bytes[at..at + 8].copy_from_slice(&(prev.last as i64).to_be_bytes());
                std::fs::write(seg, bytes).expect("write");
                (layout.len() - 1, last.len)
            })
            .await;
            expect_cut(stop, &spec, "leader epoch of the last batch flipped", |seg, layout| {
                let last = layout[layout.len() - 1];
                flip(seg, last.pos + 13, 0x20);
                (layout.len(), 0)
            })
            .await;

            let tmp = tempfile::tempdir().expect("tempdir");
            let dir = tmp.path();
            let cfg = config();
            let (_, written) = fill(dir, &cfg, &spec, stop).await;
            let seg = segment_files(dir).pop().expect("segment");
            let last = *batches_in(&seg).last().expect("batch");
            flip(&seg, last.pos + 6, 0x01); // base offset + 256
            let (log, report) = reopen(dir, &cfg).await;
            assert_eq!(report.truncated_bytes, 0, "{stop:?}: {report:?}");
            assert_eq!(log.log_end_offset(), last.last + 1 + 256, "{stop:?}: a gap of 256");
            let mut expected = flat(&written[..written.len() - 1]);
            expected.extend(written[written.len() - 1].iter().map(|(o, v)| (o + 256, *v)));
            assert_eq!(read_all(&log).await, expected, "{stop:?}");
        }
    });
}

/// The base offset is not covered by the CRC. A flip in its upper half moves a tail batch more
/// than `u32::MAX` offsets past its segment's base, which the segment's 32-bit relative offsets
/// (index entries) cannot express. Recovery must treat such a batch as corrupt (Kafka's
/// `LogSegment.recover` refuses it with `ensureOffsetInRange`).
///
/// Recovery used to accept it: the log end offset jumps by 2^32, `Segment::relative` saturates
/// to `u32::MAX`, and the second index entry at a saturated offset trips the `offset index
/// order` assertion in `OffsetIndex::push`, so the next appends panic the writer and, once
/// such a batch was written behind it, every later `open` panics during the rebuild: the
/// partition can no longer be opened.
#[test]
fn base_offset_beyond_the_segment_offset_range_is_cut_not_a_panic() {
    let rt = runtime();
    rt.block_on(async {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let cfg = config();
        let (_, written) = fill(dir, &cfg, &small_batches(10), Stop::Unclean).await;
        let seg = segment_files(dir).pop().expect("segment");
        let last = *batches_in(&seg).last().expect("batch");
        flip(&seg, last.pos + 3, 0x01); // base offset + 2^32
        let (log, report) = reopen(dir, &cfg).await;
        // Append batches large enough that each earns an index entry, then reopen.
        let big: Vec<u64> = (0..40).map(|k| 900_000 + k).collect();
        for _ in 0..3 {
            log.append(batch_of(&big, Codec::None, ts(), true)).await.expect("append");
        }
        log.sync().await.expect("sync");
        drop(log);
        let (log, _) = reopen(dir, &cfg).await;
        assert_eq!(report.truncated_bytes, last.len, "the overflowing batch is cut: {report:?}");
        assert!(report.truncated_reason.is_some(), "{report:?}");
        let mut expected = flat(&written[..written.len() - 1]);
        for b in 0..3u64 {
            let base = last.base + b * big.len() as u64;
            expected.extend(big.iter().enumerate().map(|(k, v)| (base + k as u64, *v)));
        }
        assert_eq!(log.log_end_offset(), last.base + 3 * big.len() as u64);
        assert_eq!(read_all(&log).await, expected);
    });
}

/// An index whose last entry names a smaller offset than the batch at its position (still in
/// order, so the order checks pass) must not be trusted: a read of an offset between the two
/// would be served the later batch, silently skipping records. `Segment::load` checks that the
/// batch at the last entry starts at the entry's offset, and rebuilds the index otherwise.
#[test]
fn index_entry_disagreeing_with_its_batch_is_rebuilt() {
    let rt = runtime();
    rt.block_on(async {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let cfg = multi_segment_config();
        let (_, written) = fill(dir, &cfg, &small_batches(30), Stop::Unclean).await;
        assert!(segment_files(dir).len() >= 3);
        let ix = segment::index_path(dir, 0);
        let mut bytes = std::fs::read(&ix).expect("index");
        let entries = decode_pairs(&bytes, 8);
        let n = entries.len();
        assert!(n >= 2, "{entries:?}");
        let (prev_rel, last_rel) = (entries[n - 2].0, entries[n - 1].0);
        assert!(last_rel > prev_rel + 1, "room for a smaller, still ordered offset: {entries:?}");
        let wrong = prev_rel as u32 + 1;
        let at = bytes.len() - 8;
        bytes[at..at + 4].copy_from_slice(&wrong.to_be_bytes());
        std::fs::write(&ix, bytes).expect("write");
        let (log, report) = reopen(dir, &cfg).await;
        let expected = flat(&written);
        read_each(&log, &expected, "index entry off by offsets").await;
        assert_eq!(report.indexes_rebuilt, 2, "the bad index and the tail: {report:?}");
    });
}
