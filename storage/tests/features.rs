//! Behaviour of the log on the real io_uring backend, one feature per test.

mod common;
use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;
use common::*;
use odradek_storage::CompioBackend;
use odradek_storage::batch::{BatchError, BatchHeader, TimestampType};
use odradek_storage::compression::Codec;
use odradek_storage::config::{CleanupPolicy, FlushPolicy, LogConfig};
use odradek_storage::error::{AppendError, ReadError};
use odradek_storage::log::{Clock, Log};

fn clock_at(now: &Rc<Cell<i64>>) -> Clock {
    let now = now.clone();
    Rc::new(move || now.get())
}

async fn open(dir: &Path, cfg: LogConfig, now: &Rc<Cell<i64>>) -> Log<CompioBackend> {
    Log::open_with_clock(CompioBackend, dir, cfg, clock_at(now)).await.expect("open").0
}

fn small() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        retention_ms: None,
        ..LogConfig::default()
    }
}

async fn all_records(log: &Log<CompioBackend>) -> Vec<(u64, Option<Bytes>, Option<Bytes>)> {
    let mut out = Vec::new();
    let mut at = log.log_start_offset();
    while at < log.log_end_offset() {
        let bytes = log.read_bytes(at, 1 << 16).await.expect("read");
        let recs = records_in(&bytes);
        let Some(last) = recs.last() else { break };
        at = last.0 + 1;
        out.extend(recs);
    }
    out
}

#[test]
fn retention_by_time_deletes_old_closed_segments_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let now = Rc::new(Cell::new(100_000));
        let cfg = LogConfig { retention_ms: Some(10_000), ..small() };
        let log = open(dir.path(), cfg, &now).await;
        for i in 0..40u64 {
            // Old records first, then new ones.
            let ts = if i < 30 { 1_000 } else { 95_000 };
            log.append(batch_of(&[i; 4], Codec::None, ts, false)).await.expect("append");
        }
        let before = log.segment_count();
        let report = log.enforce_retention().await.expect("retention");
        assert!(report.segments_deleted > 0);
        assert!(log.segment_count() < before);
        assert!(log.log_start_offset() > 0 && log.log_start_offset() <= 120);
        let err = log.read(0, 100, u64::MAX, true).await.expect_err("below start");
        assert!(matches!(err, ReadError::OffsetOutOfRange { requested: 0, .. }));
        // The active segment survives even when everything is expired.
        now.set(10_000_000);
        log.enforce_retention().await.expect("retention");
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.segment_bases(), vec![log.log_start_offset()]);
        for name in std::fs::read_dir(dir.path()).expect("ls").flatten() {
            let n = name.file_name().into_string().expect("utf8");
            if let Some(base) = n.strip_suffix(".log") {
                assert_eq!(
                    base.parse::<u64>().ok(),
                    Some(log.log_start_offset()),
                    "deleted files are gone"
                );
            }
        }
    });
}

#[test]
fn retention_by_size_keeps_the_log_under_the_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let now = Rc::new(Cell::new(0));
        let cfg = LogConfig { retention_bytes: Some(3000), ..small() };
        let log = open(dir.path(), cfg, &now).await;
        for i in 0..100u64 {
            log.append(batch_of(&[i], Codec::None, 0, false)).await.expect("append");
        }
        log.enforce_retention().await.expect("retention");
        let active = 1024;
        assert!(log.size_bytes() < 3000 + active, "size {} over the bound", log.size_bytes());
        let recs = all_records(&log).await;
        assert_eq!(recs.last().map(|r| r.0), Some(99), "newest data kept");
        assert_eq!(recs.first().map(|r| r.0), Some(log.log_start_offset()));
    });
}

#[test]
fn delete_records_moves_the_start_durably() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let now = Rc::new(Cell::new(0));
        let log = open(dir.path(), small(), &now).await;
        for i in 0..50u64 {
            log.append(batch_of(&[i, i], Codec::None, 0, false)).await.expect("append");
        }
        assert_eq!(log.delete_records(37).await.expect("delete"), 37);
        assert!(log.segment_bases()[0] <= 37);
        assert!(log.read(36, 10, u64::MAX, true).await.is_err());
        assert!(log.delete_records(1000).await.is_err(), "past the end is refused");
        drop(log); // unclean
        let log = open(dir.path(), small(), &now).await;
        assert_eq!(log.log_start_offset(), 37);
        let first = all_records(&log).await.into_iter().find(|r| r.0 >= 37).map(|r| r.0);
        assert_eq!(first, Some(37));
    });
}

#[test]
fn log_append_time_stamps_batches_and_keeps_them_valid() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let now = Rc::new(Cell::new(777_000));
        let cfg = LogConfig { timestamp_type: TimestampType::LogAppendTime, ..small() };
        let log = open(dir.path(), cfg, &now).await;
        let info = log.append(batch_of(&[1, 2, 3], Codec::Zstd, 5, false)).await.expect("append");
        assert_eq!(info.log_append_time, Some(777_000));
        let bytes = log.read_bytes(0, 1 << 20).await.expect("read");
        let h = BatchHeader::parse(&bytes).expect("header");
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(h.max_timestamp, 777_000);
        assert_eq!(records_in(&bytes).len(), 3, "CRC recomputed: records_in validates");
        assert_eq!(log.offset_for_timestamp(700_000).await.expect("ts"), Some((0, 777_000)));
    });
}

#[test]
fn offsets_by_timestamp_find_the_first_record_at_or_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let now = Rc::new(Cell::new(0));
        let log = open(dir.path(), small(), &now).await;
        // Batch i holds 3 records with timestamps 1000*i, +1, +2.
        for i in 0..60i64 {
            log.append(batch_of(&[i as u64; 3], Codec::Lz4, 1000 * i, false))
                .await
                .expect("append");
        }
        assert!(log.segment_count() > 3);
        assert_eq!(log.offset_for_timestamp(0).await.expect("ts"), Some((0, 0)));
        assert_eq!(log.offset_for_timestamp(25_001).await.expect("ts"), Some((76, 25_001)));
        assert_eq!(log.offset_for_timestamp(25_003).await.expect("ts"), Some((78, 26_000)));
        assert_eq!(log.offset_for_timestamp(59_002).await.expect("ts"), Some((179, 59_002)));
        assert_eq!(log.offset_for_timestamp(59_003).await.expect("ts"), None);
    });
}

#[test]
fn reads_return_whole_batches_within_bounds() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let now = Rc::new(Cell::new(0));
        let cfg = LogConfig { segment_bytes: 1 << 20, ..small() };
        let log = open(dir.path(), cfg, &now).await;
        let mut sizes = Vec::new();
        for i in 0..20u64 {
            let b = batch_of(&[i, i, i, i], Codec::None, 0, false);
            sizes.push(b.len() as u64);
            log.append(b).await.expect("append");
        }
        let one = sizes[0];
        // Offset 5 is inside batch 1 (offsets 4..7): the read starts at that batch.
        let r = log.read(5, one * 3, u64::MAX, false).await.expect("read");
        let s = r.slice.expect("slice");
        assert_eq!((s.first_offset, s.position, s.len), (4, one, one * 3));
        assert!(
            s.file.raw_fd_for_test().is_some(),
            "real files expose a descriptor for zero-copy sends"
        );
        // A limit inside a batch rounds down to whole batches.
        let r = log.read(0, one * 2 + 10, u64::MAX, false).await.expect("read");
        assert_eq!(r.slice.expect("slice").len, one * 2);
        // A limit smaller than one batch: nothing, unless at least one batch is asked for.
        assert!(log.read(0, 10, u64::MAX, false).await.expect("read").slice.is_none());
        assert_eq!(
            log.read(0, 10, u64::MAX, true).await.expect("read").slice.expect("one").len,
            one
        );
        // `upto` stops before the batch that starts at or after it.
        let r = log.read(0, 1 << 20, 8, true).await.expect("read");
        assert_eq!(r.slice.expect("slice").len, one * 2);
        assert!(log.read(8, 1 << 20, 8, true).await.expect("read").slice.is_none());
        // At the end: empty; past it: out of range.
        assert!(log.read(80, 100, u64::MAX, true).await.expect("read").slice.is_none());
        assert!(matches!(
            log.read(81, 100, u64::MAX, true).await,
            Err(ReadError::OffsetOutOfRange { .. })
        ));
    });
}

trait RawFdForTest {
    fn raw_fd_for_test(&self) -> Option<i32>;
}
impl<F: odradek_storage::StorageFile> RawFdForTest for F {
    fn raw_fd_for_test(&self) -> Option<i32> {
        self.raw_fd()
    }
}

#[test]
fn bad_batches_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let now = Rc::new(Cell::new(0));
        let cfg = LogConfig { max_message_bytes: 600, ..small() };
        let log = open(dir.path(), cfg, &now).await;
        log.append(batch_of(&[1], Codec::None, 0, false)).await.expect("append");
        let good = batch_of(&[2, 3], Codec::Gzip, 0, false);
        let mut bad_crc = good.to_vec();
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 1;
        // A good batch followed by a bad one: the whole record set is refused.
        let mut set = good.to_vec();
        set.extend_from_slice(&bad_crc);
        let cases: Vec<(Bytes, &str)> = vec![
            (Bytes::from(bad_crc), "crc"),
            (Bytes::from(set), "crc in second batch"),
            (good.slice(..good.len() - 3), "truncated"),
            (Bytes::new(), "empty"),
            (batch_of(&[7; 80], Codec::None, 0, false), "too large"),
        ];
        for (bytes, what) in cases {
            let err = log.append(bytes).await.expect_err(what);
            assert!(matches!(err, AppendError::InvalidBatch(_)), "{what}: {err}");
            if what == "too large" {
                assert!(matches!(err, AppendError::InvalidBatch(BatchError::TooLarge { .. })));
            }
        }
        assert_eq!(log.log_end_offset(), 1, "nothing of a refused set was written");
        assert_eq!(all_records(&log).await.len(), 1);
    });
}

#[test]
fn segments_roll_by_time_and_stop_at_the_segment_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let now = Rc::new(Cell::new(1_000));
        let cfg = LogConfig { segment_bytes: 1 << 20, segment_ms: 500, segments_max: 3, ..small() };
        let log = open(dir.path(), cfg, &now).await;
        log.append(batch_of(&[1], Codec::None, 1_000, false)).await.expect("append");
        log.append(batch_of(&[2], Codec::None, 1_000, false)).await.expect("append");
        assert_eq!(log.segment_count(), 1);
        now.set(1_600);
        log.append(batch_of(&[3], Codec::None, 1_600, false)).await.expect("append");
        assert_eq!(log.segment_bases(), vec![0, 2]);
        now.set(2_200);
        log.append(batch_of(&[4], Codec::None, 2_200, false)).await.expect("append");
        now.set(2_800);
        let err = log.append(batch_of(&[5], Codec::None, 2_800, false)).await.expect_err("limit");
        assert!(matches!(err, AppendError::TooManySegments { max: 3 }));
        assert_eq!(log.log_end_offset(), 4);
    });
}

#[test]
fn flush_messages_and_flush_ms_sync_on_their_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let now = Rc::new(Cell::new(0));
        let cfg =
            LogConfig { flush: FlushPolicy { messages: Some(5), ms: Some(1_000) }, ..small() };
        let log = open(dir.path(), cfg, &now).await;
        log.append(batch_of(&[1, 2, 3], Codec::None, 0, false)).await.expect("append");
        assert_eq!(log.synced_offset(), 0);
        log.append(batch_of(&[4, 5], Codec::None, 0, false)).await.expect("append");
        assert_eq!(log.synced_offset(), 5, "flush.messages=5 reached");
        log.append(batch_of(&[6], Codec::None, 0, false)).await.expect("append");
        assert!(!log.flush_if_due().await.expect("flush"));
        now.set(1_000);
        assert!(log.flush_if_due().await.expect("flush"));
        assert_eq!(log.synced_offset(), 6);
    });
}

#[test]
fn compaction_keeps_the_newest_record_per_key_for_every_codec() {
    for codec in [Codec::None, Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
        let dir = tempfile::tempdir().expect("tempdir");
        runtime().block_on(async {
            let now = Rc::new(Cell::new(10_000_000));
            let cfg = LogConfig {
                cleanup_policy: CleanupPolicy::COMPACT,
                delete_retention_ms: 1_000,
                segment_bytes: 600,
                ..small()
            };
            let log = open(dir.path(), cfg.clone(), &now).await;
            // Offsets: a=v0(0) b=v0(1) | a=v1(2) c=v0(3) | b=tombstone(4, old) c=tombstone(5, new)
            // | d=v0(6) a=v2(7), then filler to close the segments.
            log.append(keyed_batch(&[("a", Some("v0")), ("b", Some("v0"))], codec, 1_000))
                .await
                .expect("append");
            log.append(keyed_batch(&[("a", Some("v1")), ("c", Some("v0"))], codec, 1_000))
                .await
                .expect("append");
            log.append(keyed_batch(&[("b", None)], codec, 1_000)).await.expect("append");
            log.append(keyed_batch(&[("c", None)], codec, 9_999_999)).await.expect("append");
            log.append(keyed_batch(&[("d", Some("v0")), ("a", Some("v2"))], codec, 1_000))
                .await
                .expect("append");
            for i in 0..12 {
                let k = format!("z{i}");
                log.append(keyed_batch(
                    &[(k.as_str(), Some("filler-filler-filler"))],
                    codec,
                    1_000,
                ))
                .await
                .expect("append");
            }
            let end = log.log_end_offset();
            let report = log.compact().await.expect("compact");
            assert!(report.segments_cleaned > 0, "{codec:?}: {report:?}");
            assert!(report.records_removed >= 5, "{codec:?}: {report:?}");
            let check = |recs: Vec<(u64, Option<Bytes>, Option<Bytes>)>| {
                let view: Vec<(u64, String, Option<String>)> = recs
                    .into_iter()
                    .filter(|r| r.0 < 8)
                    .map(|(o, k, v)| {
                        let k = String::from_utf8(k.expect("key").to_vec()).expect("utf8");
                        (o, k, v.map(|v| String::from_utf8(v.to_vec()).expect("utf8")))
                    })
                    .collect();
                assert_eq!(
                    view,
                    vec![
                        (5, "c".to_owned(), None),
                        (6, "d".to_owned(), Some("v0".to_owned())),
                        (7, "a".to_owned(), Some("v2".to_owned())),
                    ],
                    "{codec:?}: newest per key, offsets kept, old tombstone dropped, young one kept"
                );
            };
            check(all_records(&log).await);
            assert_eq!(log.log_end_offset(), end, "compaction never moves the end");
            // Reads of a removed offset land on the next surviving record.
            let b = log.read_bytes(1, 1 << 16).await.expect("read");
            assert_eq!(records_in(&b)[0].0, 5);
            // Batches keep their codec.
            let h = BatchHeader::parse(&log.read_bytes(5, 1).await.expect("read")).expect("header");
            assert_eq!(h.codec().expect("codec"), codec);
            // Appends continue, and the result survives a reopen with and without a clean close.
            log.append(keyed_batch(&[("e", Some("v0"))], codec, 1_000)).await.expect("append");
            drop(log);
            let log = open(dir.path(), cfg.clone(), &now).await;
            check(all_records(&log).await);
            log.close().await.expect("close");
            let log = open(dir.path(), cfg, &now).await;
            check(all_records(&log).await);
            let second = log.compact().await.expect("compact again");
            assert_eq!(second.records_removed, 0, "a second pass finds nothing new");
        });
    }
}

#[test]
fn direct_writes_pad_blocks_and_recovery_cuts_the_padding_without_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let now = Rc::new(Cell::new(0));
        let cfg = LogConfig { direct_writes: true, segment_bytes: 8 * 1024, ..small() };
        let log = open(dir.path(), cfg.clone(), &now).await;
        let mut expected = Vec::new();
        for i in 0..300u64 {
            // Odd sizes, so appends almost never end on a block boundary.
            let values: Vec<u64> = (0..1 + i % 7).map(|k| i * 10 + k).collect();
            let info = log.append(batch_of(&values, Codec::None, 0, false)).await.expect("append");
            expected
                .extend(values.iter().enumerate().map(|(k, v)| (info.base_offset + k as u64, *v)));
            if i % 3 == 0 {
                log.sync().await.expect("sync");
            }
        }
        log.sync().await.expect("sync");
        assert!(log.segment_count() > 1, "rolled");
        let got = |recs: Vec<(u64, Option<Bytes>, Option<Bytes>)>| -> Vec<(u64, u64)> {
            recs.into_iter()
                .map(|(o, _, v)| {
                    let v = v.expect("value");
                    (o, u64::from_be_bytes(v[..8].try_into().expect("8 bytes")))
                })
                .collect()
        };
        assert_eq!(got(all_records(&log).await), expected, "reads between direct writes");
        let files = |d: &Path| -> Vec<(String, u64)> {
            let mut v: Vec<(String, u64)> = std::fs::read_dir(d)
                .expect("ls")
                .flatten()
                .filter_map(|e| {
                    let n = e.file_name().into_string().ok()?;
                    n.ends_with(".log").then(|| (n, e.metadata().map(|m| m.len()).unwrap_or(0)))
                })
                .collect();
            v.sort();
            v
        };
        let active_size = log.size_bytes()
            - files(dir.path())[..files(dir.path()).len() - 1].iter().map(|f| f.1).sum::<u64>();
        let on_disk = files(dir.path()).last().expect("active").1;
        assert_eq!(on_disk % 4096, 0, "an unsealed direct-written segment ends on a block");
        assert!(on_disk > active_size, "zero padding past the data");
        for (name, len) in &files(dir.path())[..files(dir.path()).len() - 1] {
            assert_ne!(len % 4096, 0, "sealed segment {name} was cut to its data (odd sizes)");
        }
        drop(log); // unclean
        let (log, report) =
            Log::open_with_clock(CompioBackend, dir.path(), cfg.clone(), clock_at(&now))
                .await
                .expect("recover");
        assert_eq!(report.truncated_bytes, 0, "padding is not data: {report:?}");
        assert!(report.padding_bytes > 0 && report.padding_bytes < 4096, "{report:?}");
        assert_eq!(got(all_records(&log).await), expected, "nothing lost");
        // Appending after recovery re-reads the partial block and continues exactly there.
        let info = log.append(batch_of(&[424242], Codec::Lz4, 0, false)).await.expect("append");
        expected.push((info.base_offset, 424242));
        log.close().await.expect("close");
        assert_eq!(
            files(dir.path()).last().expect("active").1,
            log.size_bytes()
                - files(dir.path())[..files(dir.path()).len() - 1].iter().map(|f| f.1).sum::<u64>(),
            "a clean close leaves no padding"
        );
        let (log, report) = Log::open_with_clock(CompioBackend, dir.path(), cfg, clock_at(&now))
            .await
            .expect("reopen");
        assert!(report.clean_shutdown);
        assert_eq!(got(all_records(&log).await), expected);
    });
}

#[test]
fn direct_writes_of_groups_larger_than_the_staging_pieces_read_back_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let now = Rc::new(Cell::new(0));
        let cfg = LogConfig {
            direct_writes: true,
            segment_bytes: 64 << 20,
            max_message_bytes: 4 << 20,
            ..small()
        };
        let log = open(dir.path(), cfg.clone(), &now).await;
        // One record set of three ~2.3 MiB batches (~7 MiB: two rounds of concurrent 1 MiB
        // direct writes), after a small append so the group starts mid-block.
        log.append(batch_of(&[1], Codec::None, 0, false)).await.expect("append");
        let mut set = Vec::new();
        let mut expected: Vec<u64> = vec![1];
        for b in 0..3u64 {
            let values: Vec<u64> = (0..120_000).map(|i| b * 1_000_000 + i).collect();
            set.extend_from_slice(&batch_of(&values, Codec::None, 0, false));
            expected.extend(values);
        }
        assert!(set.len() > 6 << 20);
        log.append(Bytes::from(set)).await.expect("append the large set");
        log.append(batch_of(&[7, 8, 9], Codec::None, 0, false)).await.expect("append");
        expected.extend([7, 8, 9]);
        log.sync().await.expect("sync");
        let read = |recs: Vec<(u64, Option<Bytes>, Option<Bytes>)>| -> Vec<u64> {
            recs.into_iter()
                .map(|(_, _, v)| u64::from_be_bytes(v.expect("v")[..8].try_into().expect("8")))
                .collect()
        };
        let same = |got: Vec<u64>, when: &str| {
            let first_diff = got.iter().zip(&expected).position(|(a, b)| a != b);
            assert!(
                got.len() == expected.len() && first_diff.is_none(),
                "{when}: {} records vs {} expected, first difference at {first_diff:?}",
                got.len(),
                expected.len()
            );
        };
        same(read(all_records(&log).await), "before reopening");
        drop(log);
        let (log, report) = Log::open_with_clock(CompioBackend, dir.path(), cfg, clock_at(&now))
            .await
            .expect("recover");
        assert_eq!(report.truncated_bytes, 0, "{report:?}");
        same(read(all_records(&log).await), "after recovery");
    });
}

/// An idempotent producer's batch: `count` records from sequence `seq`.
fn idempotent(pid: i64, epoch: i16, seq: i32, count: usize) -> Bytes {
    use odradek_storage::builder::{BatchParams, build_batch};
    use odradek_storage::records::Record;
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            attributes: 0,
            timestamp_delta: 0,
            offset_delta: i as i32,
            key: None,
            value: Some(Bytes::from(vec![b'p'; 100])),
            headers: Vec::new(),
        })
        .collect();
    let params = BatchParams {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        ..BatchParams::simple(Codec::None, 1_000, count)
    };
    build_batch(&params, &records).expect("batch")
}

fn header_of(bytes: &Bytes) -> BatchHeader {
    BatchHeader::parse(bytes).expect("header")
}

#[test]
fn producer_state_survives_rolls_clean_restarts_and_unclean_ones() {
    use odradek_storage::producers::SeqCheck;
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let now = Rc::new(Cell::new(1_000));
        let log = open(dir.path(), small(), &now).await;
        // 12 batches of 3 records: several rolls at 1 KiB segments.
        let mut written = Vec::new();
        for i in 0..12 {
            let b = idempotent(42, 0, i * 3, 3);
            assert_eq!(log.check_producer(&header_of(&b)), SeqCheck::Append);
            let info = log.append(b.clone()).await.expect("append");
            written.push((b, info.base_offset));
        }
        assert!(log.segment_count() > 3, "rolled");
        let (last, last_base) = written.last().cloned().expect("batches");
        assert_eq!(
            log.check_producer(&header_of(&last)),
            SeqCheck::Duplicate { base_offset: last_base, last_offset: last_base + 2 }
        );
        log.close().await.expect("close");
        drop(log);

        let log = open(dir.path(), small(), &now).await;
        assert_eq!(
            log.check_producer(&header_of(&last)),
            SeqCheck::Duplicate { base_offset: last_base, last_offset: last_base + 2 },
            "after a clean restart"
        );
        let next = idempotent(42, 0, 36, 3);
        assert_eq!(log.check_producer(&header_of(&next)), SeqCheck::Append);
        let gap = idempotent(42, 0, 40, 1);
        assert!(matches!(log.check_producer(&header_of(&gap)), SeqCheck::Refuse(_)));
        // Two more batches, no close: the restart must find them by scanning past the snapshot.
        let mut tail = Vec::new();
        for i in 12..14 {
            let b = idempotent(42, 0, i * 3, 3);
            let info = log.append(b.clone()).await.expect("append");
            tail.push((b, info.base_offset));
        }
        log.sync().await.expect("sync");
        drop(log);
        let log = open(dir.path(), small(), &now).await;
        for (b, base) in &tail {
            assert_eq!(
                log.check_producer(&header_of(b)),
                SeqCheck::Duplicate { base_offset: *base, last_offset: base + 2 },
                "after an unclean restart"
            );
        }
        let snapshots = std::fs::read_dir(dir.path())
            .expect("list")
            .filter(|e| {
                e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".snapshot"))
            })
            .count();
        assert!((1..=3).contains(&snapshots), "{snapshots} snapshots kept");
    });
}
