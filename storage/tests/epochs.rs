//! Leader epochs on the simulated backend: stamping, the epoch cache and its checkpoint across
//! restarts and crashes, replica appends, and truncation for followers.

mod common;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use common::*;
use odradek_storage::batch::{self, BatchError, BatchHeader, TimestampType};
use odradek_storage::builder::{BatchParams, build_batch};
use odradek_storage::compression::Codec;
use odradek_storage::config::LogConfig;
use odradek_storage::epochs::{CHECKPOINT_FILE, EpochCache};
use odradek_storage::error::AppendError;
use odradek_storage::log::Log;
use odradek_storage::producers::SeqCheck;
use odradek_storage::records::Record;
use odradek_storage::sim::{SimBackend, SimRng};
use odradek_storage::{Backend, EpochEntry};

const DIR: &str = "/data/topic-0";

fn dir() -> &'static Path {
    Path::new(DIR)
}

async fn open_with(sim: &SimBackend, cfg: LogConfig) -> Log<SimBackend> {
    Log::open_with_clock(sim.clone(), dir(), cfg, clock()).await.expect("open").0
}
async fn open(sim: &SimBackend) -> Log<SimBackend> {
    open_with(sim, config()).await
}

fn entries(pairs: &[(i32, u64)]) -> Vec<EpochEntry> {
    pairs.iter().map(|&(epoch, start_offset)| EpochEntry { epoch, start_offset }).collect()
}

fn checkpoint_path() -> PathBuf {
    dir().join(CHECKPOINT_FILE)
}

/// The checkpoint file's text as the page cache holds it.
fn checkpoint(sim: &SimBackend) -> Option<String> {
    sim.contents(&checkpoint_path()).map(|b| String::from_utf8(b).expect("checkpoint is text"))
}

/// A batch of `n` records (values `first..first + n`) with base offset 0 and no epoch (-1).
fn batch(first: u64, n: u64) -> Bytes {
    let values: Vec<u64> = (first..first + n).collect();
    batch_of(&values, Codec::None, 1_000, false)
}

/// A batch as a leader stored it: base offset `base`, `n` records, leader epoch `epoch`.
fn stored_batch(base: i64, n: usize, epoch: i32) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            attributes: 0,
            timestamp_delta: 0,
            offset_delta: i as i32,
            key: None,
            value: Some(Bytes::from(vec![b'r'; 40])),
            headers: Vec::new(),
        })
        .collect();
    let params = BatchParams {
        base_offset: base,
        partition_leader_epoch: epoch,
        ..BatchParams::simple(Codec::None, 1_000, n)
    };
    build_batch(&params, &records).expect("batch")
}

/// An idempotent producer's one-record batch with sequence `seq`.
fn idempotent(pid: i64, seq: i32) -> Bytes {
    let records = vec![Record {
        attributes: 0,
        timestamp_delta: 0,
        offset_delta: 0,
        key: None,
        value: Some(Bytes::from_static(b"p")),
        headers: Vec::new(),
    }];
    let params = BatchParams {
        producer_id: pid,
        producer_epoch: 0,
        base_sequence: seq,
        ..BatchParams::simple(Codec::None, 1_000, 1)
    };
    build_batch(&params, &records).expect("batch")
}

fn concat(parts: &[Bytes]) -> Bytes {
    Bytes::from(parts.iter().flat_map(|p| p.iter().copied()).collect::<Vec<u8>>())
}

/// Every stored batch of the log, in order, as bytes (each validated as stored data).
async fn stored_batches(log: &Log<SimBackend>) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut at = log.log_start_offset();
    while at < log.log_end_offset() {
        let bytes = log.read_bytes(at, 1 << 20).await.expect("read");
        let mut pos = 0;
        while pos < bytes.len() {
            let h = BatchHeader::parse(&bytes[pos..]).expect("header");
            let b = bytes.slice(pos..pos + h.total_len());
            batch::validate(&b, batch::Strictness::Stored).expect("stored batch is valid");
            at = h.last_offset() as u64 + 1;
            pos += h.total_len();
            out.push(b);
        }
    }
    out
}

fn header(b: &Bytes) -> BatchHeader {
    BatchHeader::parse(b).expect("header")
}

/// The cache the stored batches imply: the first batch of each epoch above all before it.
fn implied(batches: &[Bytes]) -> Vec<EpochEntry> {
    let mut cache = EpochCache::default();
    for b in batches {
        let h = header(b);
        cache.assign(h.partition_leader_epoch, h.base_offset as u64);
    }
    cache.entries().to_vec()
}

/// Every file of the simulated file system with its contents.
fn files(sim: &SimBackend) -> BTreeMap<PathBuf, Vec<u8>> {
    sim.paths().into_iter().filter_map(|p| Some((p.clone(), sim.contents(&p)?))).collect()
}

/// A log holding epoch 1 at 0..10, epoch 3 at 10..20 and epoch 6 at 20..30 (batches of 5).
async fn three_epochs(sim: &SimBackend) -> Log<SimBackend> {
    let log = open(sim).await;
    for (i, epoch) in [1, 1, 3, 3, 6, 6].into_iter().enumerate() {
        log.append_with_epoch(batch(i as u64 * 5, 5), epoch).await.expect("append");
    }
    assert_eq!(log.epoch_entries(), entries(&[(1, 0), (3, 10), (6, 20)]));
    assert_eq!(log.log_end_offset(), 30);
    log
}

#[test]
fn append_with_epoch_stamps_every_stored_batch() {
    runtime().block_on(async {
        let sim = SimBackend::new();
        let log = open(&sim).await;
        assert_eq!(log.latest_epoch(), None);
        let set = concat(&[batch(0, 2), batch_of(&[2, 3, 4], Codec::Gzip, 1_000, false)]);
        let info = log.append_with_epoch(set, 5).await.expect("append");
        assert_eq!((info.base_offset, info.last_offset), (0, 4));
        // `append` keeps the field as given: -1 from the builder, and 9 set by hand (outside
        // the CRC, so the batch stays valid).
        log.append(batch(5, 1)).await.expect("append");
        let mut nine = batch(6, 1).to_vec();
        nine[12..16].copy_from_slice(&9i32.to_be_bytes());
        log.append(Bytes::from(nine)).await.expect("append");
        let stored = stored_batches(&log).await;
        let epochs: Vec<i32> = stored.iter().map(|b| header(b).partition_leader_epoch).collect();
        assert_eq!(epochs, vec![5, 5, -1, 9]);
        assert_eq!(log.epoch_entries(), entries(&[(5, 0), (9, 6)]));
        assert_eq!(log.latest_epoch(), Some(9));

        // LogAppendTime rewrites the CRC; the stamped epoch survives it.
        let sim = SimBackend::new();
        let cfg = LogConfig { timestamp_type: TimestampType::LogAppendTime, ..config() };
        let log = open_with(&sim, cfg).await;
        log.append_with_epoch(batch(0, 3), 2).await.expect("append");
        let stored = stored_batches(&log).await;
        let h = header(&stored[0]);
        assert_eq!(h.partition_leader_epoch, 2);
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(h.max_timestamp, 5_000);
    });
}

#[test]
fn only_higher_epochs_enter_the_cache_and_the_checkpoint() {
    runtime().block_on(async {
        let sim = SimBackend::new();
        let log = open(&sim).await;
        assert_eq!(checkpoint(&sim).as_deref(), Some("0\n0\n"), "a new log gets a checkpoint");
        log.append_with_epoch(batch(0, 2), 1).await.expect("append");
        log.append_with_epoch(batch(2, 2), 1).await.expect("append");
        assert_eq!(checkpoint(&sim).as_deref(), Some("0\n1\n1 0\n"));
        log.append_with_epoch(batch(4, 1), 3).await.expect("append");
        // A lower epoch is accepted and stored as given, but changes nothing.
        log.append_with_epoch(batch(5, 1), 2).await.expect("append");
        log.append_with_epoch(batch(6, 1), 3).await.expect("append");
        log.append_with_epoch(batch(7, 1), -1).await.expect("append");
        assert_eq!(log.epoch_entries(), entries(&[(1, 0), (3, 4)]));
        assert_eq!(checkpoint(&sim).as_deref(), Some("0\n2\n1 0\n3 4\n"));
        let stored = stored_batches(&log).await;
        let epochs: Vec<i32> = stored.iter().map(|b| header(b).partition_leader_epoch).collect();
        assert_eq!(epochs, vec![1, 1, 3, 2, 3, -1]);
    });
}

#[test]
fn the_checkpoint_survives_close_reopen_and_crashes() {
    runtime().block_on(async {
        let sim = SimBackend::new();
        let log = open(&sim).await;
        // Enough to roll segments several times.
        for i in 0..60u64 {
            log.append_with_epoch(batch(i * 4, 4), (i / 15) as i32 * 2).await.expect("append");
        }
        assert!(log.segment_count() > 3, "rolled");
        let expected = entries(&[(0, 0), (2, 60), (4, 120), (6, 180)]);
        assert_eq!(log.epoch_entries(), expected);
        log.close().await.expect("close");
        drop(log);
        assert_eq!(checkpoint(&sim).as_deref(), Some("0\n4\n0 0\n2 60\n4 120\n6 180\n"));
        let log = open(&sim).await;
        assert_eq!(log.epoch_entries(), expected, "after a clean restart");
        log.append_with_epoch(batch(240, 4), 8).await.expect("append");
        log.sync().await.expect("sync");
        drop(log);
        for seed in 0..20 {
            let crashed = sim.crash(seed);
            let log = open(&crashed).await;
            let mut want = expected.clone();
            want.push(EpochEntry { epoch: 8, start_offset: 240 });
            assert_eq!(log.epoch_entries(), want, "seed {seed}: after a crash");
            assert_eq!(log.end_offset_for_epoch(6), Some((6, 240)));
        }
    });
}

/// Crashes at random instants (mid-write included) of a run of appends whose epochs rise:
/// after recovery the cache is exactly what the surviving batches imply, every entry below the
/// log end. Some crashes must fall between a checkpoint write and its batch (the entry is then
/// dropped at open).
#[test]
fn crashes_leave_exactly_the_epochs_of_the_surviving_batches() {
    let rt = runtime();
    let mut beyond_end = 0;
    for seed in 0..300u64 {
        beyond_end += rt.block_on(async move {
            let mut rng = SimRng::new(seed);
            let sim = SimBackend::new();
            sim.set_yield_on_io(true);
            let log = Rc::new(open(&sim).await);
            let appender = {
                let log = log.clone();
                let mut rng = SimRng::new(seed ^ 0xE90C);
                compio::runtime::spawn(async move {
                    let mut epoch = 0;
                    for i in 0..200 {
                        if rng.upto(3) == 0 {
                            epoch += 1 + rng.upto(2) as i32;
                        }
                        let stamped = log.append_with_epoch(batch(i * 3, 3), epoch);
                        if stamped.await.is_err() || (rng.upto(2) == 0 && log.sync().await.is_err())
                        {
                            return;
                        }
                    }
                })
            };
            for _ in 0..1 + rng.upto(300) {
                compio::runtime::spawn(async {}).await.ok();
            }
            let crashed = sim.crash(seed);
            drop(appender);
            let on_disk = crashed
                .contents(&checkpoint_path())
                .map(|b| EpochCache::decode(&b).expect("a checkpoint is never torn"));
            let log = open(&crashed).await;
            let end = log.log_end_offset();
            let cache = log.epoch_entries();
            assert_eq!(cache, implied(&stored_batches(&log).await), "seed {seed}");
            assert!(cache.iter().all(|e| e.start_offset < end), "seed {seed}: {cache:?} end {end}");
            let reopened = checkpoint(&crashed).expect("checkpoint rewritten");
            assert_eq!(EpochCache::decode(reopened.as_bytes()).expect("parses").entries(), cache);
            u32::from(on_disk.is_some_and(|c| c.entries().iter().any(|e| e.start_offset >= end)))
        });
    }
    assert!(beyond_end > 0, "no crash fell between a checkpoint write and its batch");
}

/// The checkpoint is written before the batch; when the batch write then fails, the file is
/// ahead of the log, and the next append (even of an epoch already cached) rewrites it first.
#[test]
fn a_failed_write_after_a_new_epoch_does_not_leave_the_entry_behind() {
    runtime().block_on(async {
        let sim = SimBackend::new();
        let cfg = LogConfig { direct_writes: false, ..config() };
        let log = open_with(&sim, cfg.clone()).await;
        log.append_with_epoch(batch(0, 3), 1).await.expect("append");
        log.sync().await.expect("sync");
        let used: u64 = files(&sim).values().map(|c| c.len() as u64).sum();
        // Room for a checkpoint rewrite, not for the batch.
        sim.set_capacity(Some(used + 64));
        let err = log.append_with_epoch(batch(3, 40), 2).await.expect_err("disk full");
        assert!(matches!(&err, AppendError::Io(f) if f.is_disk_full()), "{err:?}");
        assert_eq!(checkpoint(&sim).as_deref(), Some("0\n2\n1 0\n2 3\n"), "written first");
        assert_eq!(log.epoch_entries(), entries(&[(1, 0)]));
        assert_eq!(log.log_end_offset(), 3);
        assert_eq!(log.fenced(), None);
        sim.set_capacity(None);
        log.append_with_epoch(batch(3, 3), 1).await.expect("append");
        assert_eq!(checkpoint(&sim).as_deref(), Some("0\n1\n1 0\n"), "rewritten before the write");
        log.sync().await.expect("sync");
        drop(log);
        let log = open_with(&sim.crash(1), cfg).await;
        assert_eq!(log.epoch_entries(), entries(&[(1, 0)]));
        assert_eq!(log.log_end_offset(), 6);
    });
}

#[test]
fn append_replica_keeps_offsets_and_epochs_byte_for_byte() {
    runtime().block_on(async {
        let leader_sim = SimBackend::new();
        let leader = open(&leader_sim).await;
        leader.append_with_epoch(batch(0, 4), 1).await.expect("append");
        let idem = idempotent(42, 0);
        leader.append_with_epoch(idem.clone(), 1).await.expect("append");
        leader.append_with_epoch(batch_of(&[9; 7], Codec::Zstd, 2_000, true), 4).await.expect("a");
        leader.append_with_epoch(batch(20, 2), 2).await.expect("append");
        leader.append_with_epoch(batch(22, 3), 7).await.expect("append");
        let batches = stored_batches(&leader).await;
        let all = concat(&batches);

        // max.message.bytes does not apply to what the leader already took.
        let tiny = LogConfig { max_message_bytes: 64, ..config() };
        let sim = SimBackend::new();
        let follower = open_with(&sim, tiny.clone()).await;
        let info = follower.append_replica(all.clone()).await.expect("replica append");
        assert_eq!((info.base_offset, info.last_offset), (0, leader.log_end_offset() - 1));
        assert_eq!(follower.log_end_offset(), leader.log_end_offset());
        assert_eq!(concat(&stored_batches(&follower).await), all, "byte for byte");
        assert_eq!(follower.epoch_entries(), leader.epoch_entries());
        assert_eq!(follower.epoch_entries(), entries(&[(1, 0), (4, 5), (7, 14)]));
        assert_eq!(checkpoint(&sim), checkpoint(&leader_sim));
        assert_eq!(
            follower.check_producer(&header(&idem)),
            SeqCheck::Duplicate { base_offset: 4, last_offset: 4 },
            "producer state follows replica appends"
        );

        // Batch by batch, two at a time racing through the group-commit queue.
        let sim = SimBackend::new();
        sim.set_yield_on_io(true);
        let follower = open_with(&sim, tiny).await;
        for pair in batches.chunks(2) {
            let appends: Vec<_> = pair.iter().map(|b| follower.append_replica(b.clone())).collect();
            for r in futures_util::future::join_all(appends).await {
                r.expect("consecutive replica appends coalesce");
            }
        }
        assert_eq!(concat(&stored_batches(&follower).await), all, "byte for byte");
        assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    });
}

#[test]
fn append_replica_refuses_overlaps_and_damage_writing_nothing_and_takes_compaction_gaps() {
    runtime().block_on(async {
        let b: Vec<Bytes> = (0..5).map(|i| stored_batch(i * 3, 3, 2 + i as i32)).collect();
        let sim = SimBackend::new();
        let log = open(&sim).await;
        log.append_replica(concat(&b[..2])).await.expect("replica append");
        assert_eq!(log.log_end_offset(), 6);
        let before = (files(&sim), log.epoch_entries());
        let mut bad_crc = b[2].to_vec();
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 1;
        let truncated = b[2].slice(..b[2].len() - 1);
        let cases: Vec<(&str, Bytes, AppendError)> = vec![
            ("overlap", b[1].clone(), AppendError::OffsetMismatch { expected: 6, found: 3 }),
            ("rewind", b[0].clone(), AppendError::OffsetMismatch { expected: 6, found: 0 }),
            (
                "overlap inside",
                concat(&[b[2].clone(), b[2].clone()]),
                AppendError::OffsetMismatch { expected: 9, found: 6 },
            ),
            (
                "bad crc",
                concat(&[b[2].clone(), Bytes::from(bad_crc)]),
                AppendError::InvalidBatch(BatchError::CrcMismatch { expected: 0, computed: 0 }),
            ),
            (
                "truncated",
                truncated,
                AppendError::InvalidBatch(BatchError::Truncated { needed: 0, available: 0 }),
            ),
            ("empty", Bytes::new(), AppendError::InvalidBatch(BatchError::Empty)),
        ];
        for (name, set, want) in cases {
            let err = log.append_replica(set).await.expect_err(name);
            let same = match (&err, &want) {
                (AppendError::OffsetMismatch { .. }, _) => {
                    format!("{err:?}") == format!("{want:?}")
                }
                (AppendError::InvalidBatch(e), AppendError::InvalidBatch(w)) => {
                    std::mem::discriminant(e) == std::mem::discriminant(w)
                }
                _ => false,
            };
            assert!(same, "{name}: {err:?}, wanted {want:?}");
            assert_eq!(log.log_end_offset(), 6, "{name}");
            assert_eq!((files(&sim), log.epoch_entries()), before, "{name}: nothing written");
        }
        log.append_replica(concat(&b[2..])).await.expect("the right continuation");
        assert_eq!(concat(&stored_batches(&log).await), concat(&b));
        assert_eq!(log.epoch_entries(), entries(&[(2, 0), (3, 3), (4, 6), (5, 9), (6, 12)]));
        // A leader's compacted log has offset gaps: a replica copies them as they are.
        let sim = SimBackend::new();
        let log = open(&sim).await;
        log.append_replica(b[0].clone()).await.expect("first");
        log.append_replica(concat(&[b[2].clone(), b[4].clone()])).await.expect("past gaps");
        assert_eq!(log.log_end_offset(), 15);
        assert_eq!(
            concat(&stored_batches(&log).await),
            concat(&[b[0].clone(), b[2].clone(), b[4].clone()])
        );
        assert_eq!(log.epoch_entries(), entries(&[(2, 0), (4, 6), (6, 12)]));
    });
}

#[test]
fn end_offset_for_epoch_answers_as_kafka() {
    runtime().block_on(async {
        let sim = SimBackend::new();
        assert_eq!(open(&SimBackend::new()).await.end_offset_for_epoch(0), None, "empty");
        let log = three_epochs(&sim).await;
        assert_eq!(log.end_offset_for_epoch(6), Some((6, 30)), "latest: the log end");
        assert_eq!(log.end_offset_for_epoch(3), Some((3, 20)), "older: the next one's start");
        assert_eq!(log.end_offset_for_epoch(1), Some((1, 10)));
        assert_eq!(log.end_offset_for_epoch(4), Some((3, 20)), "unknown: the floor epoch");
        assert_eq!(log.end_offset_for_epoch(0), Some((0, 0)), "lower than all");
        assert_eq!(log.end_offset_for_epoch(7), None, "unknown higher");
        assert_eq!(log.end_offset_for_epoch(-1), None, "negative");
        log.append(batch(30, 2)).await.expect("append");
        assert_eq!(log.end_offset_for_epoch(6), Some((6, 32)), "follows the log end");
    });
}

#[test]
fn truncate_to_trims_the_cache_durably() {
    runtime().block_on(async {
        let sim = SimBackend::new();
        let log = three_epochs(&sim).await;
        assert_eq!(log.truncate_to(25).await.expect("truncate"), 25);
        assert_eq!(log.epoch_entries(), entries(&[(1, 0), (3, 10), (6, 20)]));
        assert_eq!(log.truncate_to(20).await.expect("truncate"), 20);
        assert_eq!(log.epoch_entries(), entries(&[(1, 0), (3, 10)]));
        assert_eq!(log.latest_epoch(), Some(3));
        assert_eq!(log.end_offset_for_epoch(3), Some((3, 20)));
        assert_eq!(checkpoint(&sim).as_deref(), Some("0\n2\n1 0\n3 10\n"));
        drop(log);
        for seed in 0..10 {
            let log = open(&sim.crash(seed)).await;
            assert_eq!(log.log_end_offset(), 20, "seed {seed}: the cut was synced");
            assert_eq!(log.epoch_entries(), entries(&[(1, 0), (3, 10)]), "seed {seed}");
        }
        let log = open(&sim).await;
        log.append_with_epoch(batch(20, 1), 7).await.expect("append");
        assert_eq!(log.epoch_entries(), entries(&[(1, 0), (3, 10), (7, 20)]));
        log.truncate_to(5).await.expect("truncate");
        assert_eq!(log.epoch_entries(), entries(&[(1, 0)]));
    });
}

#[test]
fn moving_the_log_start_trims_the_cache_from_below() {
    runtime().block_on(async {
        let sim = SimBackend::new();
        let log = three_epochs(&sim).await;
        log.delete_records(15).await.expect("delete records");
        assert_eq!(log.epoch_entries(), entries(&[(3, 15), (6, 20)]));
        assert_eq!(log.end_offset_for_epoch(1), Some((1, 15)), "below all now");
        log.close().await.expect("close");
        drop(log);
        assert_eq!(checkpoint(&sim).as_deref(), Some("0\n2\n3 15\n6 20\n"), "persisted at close");
        let log = open(&sim).await;
        assert_eq!(log.epoch_entries(), entries(&[(3, 15), (6, 20)]));
        // Up to the end: the last epoch is kept at the log end (Kafka's truncateFromStart).
        log.delete_records(30).await.expect("delete records");
        assert_eq!(log.epoch_entries(), entries(&[(6, 30)]));
        log.append_with_epoch(batch(30, 1), 6).await.expect("append");
        assert_eq!(log.epoch_entries(), entries(&[(6, 30)]));
    });
}

#[test]
fn truncate_fully_then_replicate_from_the_new_start() {
    runtime().block_on(async {
        let sim = SimBackend::new();
        let log = open(&sim).await;
        for i in 0..40u64 {
            log.append_with_epoch(batch(i * 4, 4), 1 + (i / 20) as i32).await.expect("append");
        }
        let idem = idempotent(42, 0);
        let at = log.append_with_epoch(idem.clone(), 2).await.expect("append").base_offset;
        let dup = SeqCheck::Duplicate { base_offset: at, last_offset: at };
        assert_eq!(log.check_producer(&header(&idem)), dup);
        assert!(log.segment_count() > 2, "rolled");
        log.sync().await.expect("sync");
        log.truncate_fully_and_start_at(1_000).await.expect("truncate fully");
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (1_000, 1_000));
        assert_eq!(log.segment_bases(), vec![1_000]);
        assert_eq!(log.epoch_entries(), Vec::new());
        assert_eq!(log.latest_epoch(), None);
        assert_eq!(checkpoint(&sim).as_deref(), Some("0\n0\n"));
        let names: Vec<String> = sim
            .paths()
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .filter(|n| n.ends_with(".log") || n.ends_with(".snapshot") || n.ends_with("index"))
            .collect();
        assert_eq!(names, vec![format!("{:020}.log", 1_000)], "old segments and snapshots gone");
        assert!(log.read_bytes(0, 100).await.is_err(), "old offsets are out of range");
        assert_eq!(log.check_producer(&header(&idem)), SeqCheck::Append);
        for seed in 0..10 {
            let crashed = open(&sim.crash(seed)).await;
            assert_eq!(
                (crashed.log_start_offset(), crashed.log_end_offset()),
                (1_000, 1_000),
                "seed {seed}: durable when it returned"
            );
            assert_eq!(crashed.epoch_entries(), Vec::new(), "seed {seed}");
        }

        let set = concat(&[stored_batch(1_000, 3, 7), stored_batch(1_003, 2, 8)]);
        let info = log.append_replica(set.clone()).await.expect("replica append");
        assert_eq!((info.base_offset, info.last_offset), (1_000, 1_004));
        assert_eq!(log.epoch_entries(), entries(&[(7, 1_000), (8, 1_003)]));
        assert_eq!(concat(&stored_batches(&log).await), set);
        log.close().await.expect("close");
        drop(log);
        let log = open(&sim).await;
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (1_000, 1_005));
        assert_eq!(log.epoch_entries(), entries(&[(7, 1_000), (8, 1_003)]));
    });
}

#[test]
fn a_log_without_a_checkpoint_is_scanned_once_and_gets_one() {
    runtime().block_on(async {
        let sim = SimBackend::new();
        let log = three_epochs(&sim).await;
        log.close().await.expect("close");
        drop(log);
        // As a log written before epochs were kept.
        sim.remove_file(&checkpoint_path()).await.expect("remove");
        sim.sync_dir(dir()).await.expect("sync dir");
        let log = open(&sim).await;
        assert_eq!(log.epoch_entries(), entries(&[(1, 0), (3, 10), (6, 20)]), "scanned");
        assert_eq!(checkpoint(&sim).as_deref(), Some("0\n3\n1 0\n3 10\n6 20\n"), "and written");
        drop(log);
        // From now on the file is trusted: a (valid) different one is what the log reads.
        assert!(sim.poke(&checkpoint_path(), b"0\n1\n1 0\n".to_vec()));
        let log = open(&sim).await;
        assert_eq!(log.epoch_entries(), entries(&[(1, 0)]), "read, not scanned");
        drop(log);
        // An unreadable one is rebuilt from the log.
        assert!(sim.poke(&checkpoint_path(), b"0\n3\n1 0\nbogus\n".to_vec()));
        let log = open(&sim).await;
        assert_eq!(log.epoch_entries(), entries(&[(1, 0), (3, 10), (6, 20)]), "rebuilt");
        assert_eq!(checkpoint(&sim).as_deref(), Some("0\n3\n1 0\n3 10\n6 20\n"));
        drop(log);
        // Entries at or beyond the log end (the tail was cut) are dropped and the file fixed.
        assert!(sim.poke(&checkpoint_path(), b"0\n3\n1 0\n3 10\n9 30\n".to_vec()));
        let log = open(&sim).await;
        assert_eq!(log.epoch_entries(), entries(&[(1, 0), (3, 10)]));
        assert_eq!(checkpoint(&sim).as_deref(), Some("0\n2\n1 0\n3 10\n"));
    });
}

/// I/O failing at every step of `truncate_fully_and_start_at`, then a crash: the log reopens
/// as a prefix of the old one or empty at the new start, with exactly the epochs of what is
/// left; a failure fences the log.
#[test]
fn truncate_fully_fails_or_crashes_into_a_prefix_or_the_empty_log() {
    let rt = runtime();
    let mut outcomes = BTreeMap::new();
    for calls in 0..60u64 {
        rt.block_on(async {
            let sim = SimBackend::new();
            let log = open(&sim).await;
            for i in 0..30u64 {
                log.append_with_epoch(batch(i * 4, 4), 1 + (i / 8) as i32).await.expect("append");
            }
            log.sync().await.expect("sync");
            let old = stored_batches(&log).await;
            sim.fail_after(calls);
            let result = log.truncate_fully_and_start_at(500).await;
            assert_eq!(result.is_err(), log.fenced().is_some(), "calls {calls}: {result:?}");
            sim.heal();
            drop(log);
            for seed in 0..4 {
                let log = open(&sim.crash(seed)).await;
                let left = stored_batches(&log).await;
                let bounds = (log.log_start_offset(), log.log_end_offset());
                let outcome = if bounds == (500, 500) {
                    "empty at the new start"
                } else {
                    assert_eq!(left[..], old[..left.len()], "calls {calls} seed {seed}: a prefix");
                    "a prefix of the old log"
                };
                *outcomes.entry(outcome).or_insert(0) += 1;
                assert_eq!(log.epoch_entries(), implied(&left), "calls {calls} seed {seed}");
                if result.is_ok() {
                    assert_eq!(bounds, (500, 500), "calls {calls} seed {seed}: durable");
                }
                // It takes a follower's batches again.
                let end = log.log_end_offset();
                log.append_replica(stored_batch(end as i64, 2, 9)).await.expect("replica");
            }
        });
    }
    assert_eq!(outcomes.len(), 2, "both outcomes seen: {outcomes:?}");
}

/// The same on io_uring and a real directory: the checkpoint is Kafka's file, replaced through
/// the backend, and read back at open; truncate_fully_and_start_at leaves only the new segment.
#[test]
fn the_checkpoint_on_the_real_backend() {
    use odradek_storage::CompioBackend;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("topic-0");
    let file = dir.join(CHECKPOINT_FILE);
    runtime().block_on(async {
        let open = || async {
            Log::open_with_clock(CompioBackend, &dir, config(), clock()).await.expect("open").0
        };
        let log = open().await;
        assert_eq!(std::fs::read_to_string(&file).expect("checkpoint"), "0\n0\n");
        for (i, epoch) in [1, 1, 3, 3, 6, 6].into_iter().enumerate() {
            log.append_with_epoch(batch(i as u64 * 5, 5), epoch).await.expect("append");
        }
        assert_eq!(std::fs::read_to_string(&file).expect("checkpoint"), "0\n3\n1 0\n3 10\n6 20\n");
        log.truncate_to(20).await.expect("truncate");
        assert_eq!(std::fs::read_to_string(&file).expect("checkpoint"), "0\n2\n1 0\n3 10\n");
        log.close().await.expect("close");
        drop(log);
        let log = open().await;
        assert_eq!(log.epoch_entries(), entries(&[(1, 0), (3, 10)]));
        log.truncate_fully_and_start_at(77).await.expect("truncate fully");
        log.append_replica(stored_batch(77, 2, 4)).await.expect("replica");
        log.close().await.expect("close");
        drop(log);
        let log = open().await;
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (77, 79));
        assert_eq!(log.epoch_entries(), entries(&[(4, 77)]));
        let logs: Vec<String> = std::fs::read_dir(&dir)
            .expect("ls")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".log"))
            .collect();
        assert_eq!(logs, vec![format!("{:020}.log", 77)]);
    });
}
