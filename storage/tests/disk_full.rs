//! A full disk on every write path of the log, on the simulated backend.
//!
//! - Whatever write a full disk refuses (a segment write, the roll's indexes, producer snapshot
//!   and `.txnindex`, a new segment file, the leader-epoch checkpoint), the append fails with a
//!   disk-full I/O error, the log is unchanged and not fenced, no temporary file is left, and
//!   appends work again once there is room; after a crash every acknowledged-and-synced record
//!   is there, in order, once.
//! - DeleteRecords on a full disk frees whole segments first, then persists the new start.
//! - Compaction on a full disk leaves no partial copy behind.
//! - (A run of failures is logged once, and its end once: `disk_full_logs.rs`, a binary of
//!   its own, since tracing's per-callsite interest cache races with tests on other threads.)

mod common;
use std::collections::BTreeSet;
use std::path::Path;

use common::*;
use odradek_storage::compression::Codec;
use odradek_storage::config::{CleanupPolicy, LogConfig};
use odradek_storage::error::AppendError;
use odradek_storage::log::Log;
use odradek_storage::sim::SimBackend;

const DIR: &str = "/data/topic-0";

/// The kind of file a failed write was for: its extension, or its name without the `.tmp`.
fn kind(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let name = name.strip_suffix(".tmp").unwrap_or(&name).to_owned();
    match name.split_once('.') {
        Some((_, ext)) => ext.to_owned(),
        None => name,
    }
}

#[test]
fn every_write_path_on_a_full_disk_fails_cleanly_and_works_once_space_returns() {
    let mut kinds = BTreeSet::new();
    // Each room left on the disk makes a different write the first to fail: sweeping it hits
    // the segment write, the roll's files and the epoch checkpoint. Direct writes grow a
    // segment a block at a time, so the sweep runs through the page cache too.
    for (direct_writes, room) in
        [false, true].into_iter().flat_map(|d| (0..2600).step_by(7).map(move |r| (d, r)))
    {
        let cfg = LogConfig { direct_writes, ..config() };
        runtime().block_on(async {
            let sim = SimBackend::new();
            let (log, _) = Log::open_with_clock(sim.clone(), Path::new(DIR), cfg.clone(), clock())
                .await
                .expect("open");
            let mut acked: Vec<u64> = Vec::new();
            let mut next = 0u64;
            for _ in 0..12 {
                log.append_with_epoch(batch_of(&[next, next + 1], Codec::None, 5_000, false), 0)
                    .await
                    .expect("append");
                acked.extend([next, next + 1]);
                next += 2;
            }
            log.sync().await.expect("sync");
            sim.set_capacity(Some(used(&sim) + room));
            // Fill: every few batches a new leader epoch (a checkpoint write before the batch).
            let mut failure = None;
            for i in 0..400u64 {
                let end = log.log_end_offset();
                let batch = batch_of(&[next, next + 1, next + 2], Codec::None, 5_000, false);
                match log.append_with_epoch(batch, 1 + (i / 5) as i32).await {
                    Ok(_) => {
                        acked.extend([next, next + 1, next + 2]);
                        next += 3;
                    }
                    Err(AppendError::Io(f)) => {
                        assert!(f.is_disk_full(), "room {room}: {f}");
                        assert_eq!(log.log_end_offset(), end, "room {room}: nothing appended");
                        failure = Some(f);
                        break;
                    }
                    Err(other) => panic!("room {room}: a full disk answered {other}"),
                }
            }
            let failure = failure.expect("the disk fills");
            kinds.insert(kind(&failure.path));
            assert_eq!(log.fenced(), None, "room {room}: a full disk does not fence the log");
            assert!(log.write_failing(), "room {room}: the log knows it is failing");
            let leftovers: Vec<_> =
                sim.paths().into_iter().filter(|p| p.to_string_lossy().ends_with(".tmp")).collect();
            assert!(leftovers.is_empty(), "room {room}: {leftovers:?} left behind");
            // Still refused while full, still not fenced.
            let again = log.append(batch_of(&[999; 600], Codec::None, 5_000, false)).await;
            assert!(matches!(again, Err(AppendError::Io(_))), "room {room}: {again:?}");

            sim.set_capacity(None);
            for _ in 0..10 {
                let batch = batch_of(&[next, next + 1, next + 2], Codec::None, 5_000, false);
                log.append_with_epoch(batch, 100).await.expect("room again");
                acked.extend([next, next + 1, next + 2]);
                next += 3;
            }
            log.sync().await.expect("sync");
            let values: Vec<u64> = read_all(&log).await.into_iter().map(|(_, v)| v).collect();
            assert_eq!(values, acked, "room {room}: every acknowledged record, in order, once");
            assert_eq!(log.latest_epoch(), Some(100), "room {room}");
            drop(log);
            let (log, _) = Log::open_with_clock(sim.crash(room), Path::new(DIR), cfg, clock())
                .await
                .expect("reopen");
            let values: Vec<u64> = read_all(&log).await.into_iter().map(|(_, v)| v).collect();
            assert_eq!(values, acked, "room {room}: after a crash");
            assert_eq!(log.latest_epoch(), Some(100), "room {room}: after a crash");
        });
    }
    // The sweep reached every kind of write an append makes.
    // (`.txnindex` files are empty without transactions, so a full disk cannot refuse them;
    // they are written like the checkpoint, all or nothing through a temporary file.)
    for k in ["log", "index", "timeindex", "snapshot", "leader-epoch-checkpoint"] {
        assert!(kinds.contains(k), "no failure on a {k} write: {kinds:?}");
    }
}

/// A log on a new simulated disk holding 200 one-record batches, synced (several segments).
async fn two_hundred_synced_records() -> (SimBackend, Log<SimBackend>) {
    let sim = SimBackend::new();
    let (log, _) =
        Log::open_with_clock(sim.clone(), Path::new(DIR), config(), clock()).await.expect("open");
    for s in 0..200 {
        log.append(batch_of(&[s], Codec::None, 5_000, false)).await.expect("append");
    }
    log.sync().await.expect("sync");
    (sim, log)
}

#[test]
fn delete_records_on_a_full_disk_frees_segments_then_persists_the_start() {
    runtime().block_on(async {
        let (sim, log) = two_hundred_synced_records().await;
        assert!(log.segment_count() > 4, "several segments");
        // Not a byte to spare: even the small log-start file cannot be written.
        sim.set_capacity(Some(used(&sim)));
        let big = batch_of(&[200; 600], Codec::None, 5_000, false);
        assert!(log.append(big).await.is_err(), "the disk is full");
        // (Cutting the failed write back may have freed the direct-write padding: full again.)
        sim.set_capacity(Some(used(&sim)));
        let start = log.delete_records(150).await.expect("DeleteRecords on a full disk");
        assert_eq!((start, log.log_start_offset()), (150, 150));
        let values: Vec<u64> = read_all(&log).await.into_iter().map(|(_, v)| v).collect();
        assert_eq!(values, (150..200).collect::<Vec<_>>());
        // The freed space takes appends again.
        log.append(batch_of(&[200], Codec::None, 5_000, false)).await.expect("room again");
        log.sync().await.expect("sync");
        drop(log);
        let (log, _) = Log::open_with_clock(sim.crash(7), Path::new(DIR), config(), clock())
            .await
            .expect("reopen");
        assert_eq!(log.log_start_offset(), 150, "the new start was persisted");
        let values: Vec<u64> = read_all(&log).await.into_iter().map(|(_, v)| v).collect();
        assert_eq!(values, (150..201).collect::<Vec<_>>());
    });
}

#[test]
fn compaction_on_a_full_disk_leaves_no_partial_copy() {
    runtime().block_on(async {
        let sim = SimBackend::new();
        let cfg = LogConfig {
            cleanup_policy: CleanupPolicy { delete: false, compact: true },
            ..config()
        };
        let (log, _) =
            Log::open_with_clock(sim.clone(), Path::new(DIR), cfg, clock()).await.expect("open");
        let long = "v".repeat(200);
        for i in 0..60 {
            // Every segment keeps its unique keys and loses its older `dup`s: each cleaned copy
            // needs new space.
            let key = if i % 2 == 0 { format!("u{i}") } else { "dup".to_owned() };
            log.append(keyed_batch(&[(key.as_str(), Some(long.as_str()))], Codec::None, 5_000))
                .await
                .expect("append");
        }
        log.sync().await.expect("sync");
        let before = read_all_keyed(&log).await;
        sim.set_capacity(Some(used(&sim)));
        let refused = log.compact().await;
        assert!(refused.is_err(), "no room for the cleaned copy: {refused:?}");
        let leftovers: Vec<_> =
            sim.paths().into_iter().filter(|p| p.to_string_lossy().ends_with(".cleaned")).collect();
        assert!(leftovers.is_empty(), "{leftovers:?} left behind");
        assert_eq!(log.fenced(), None);
        assert_eq!(read_all_keyed(&log).await, before, "the log is unchanged");
        sim.set_capacity(None);
        let report = log.compact().await.expect("compaction with room");
        assert!(report.segments_cleaned > 0);
    });
}

async fn read_all_keyed<B: odradek_storage::Backend>(log: &Log<B>) -> Vec<u64> {
    let mut out = Vec::new();
    let mut at = log.log_start_offset();
    while at < log.log_end_offset() {
        let bytes = log.read_bytes(at, 4096).await.expect("read");
        let recs = records_in(&bytes);
        at = recs.last().expect("progress").0 + 1;
        out.extend(recs.into_iter().map(|(o, _, _)| o));
    }
    out
}

#[test]
fn recovery_on_a_full_disk_keeps_rebuilt_indexes_in_memory() {
    use odradek_storage::Backend;
    runtime().block_on(async {
        let (sim, log) = two_hundred_synced_records().await;
        drop(log);
        // Lost indexes (an operator's mistake, a crash while they were written): recovery
        // rebuilds them, and cannot save them on a full disk.
        let indexes: Vec<_> =
            sim.paths().into_iter().filter(|p| p.to_string_lossy().ends_with(".index")).collect();
        assert!(indexes.len() > 2, "several sealed segments");
        for p in &indexes {
            sim.remove_file(p).await.expect("remove");
        }
        sim.set_capacity(Some(used(&sim)));
        let (log, _) = Log::open_with_clock(sim.clone(), Path::new(DIR), config(), clock())
            .await
            .expect("a full disk does not keep the log from opening");
        let values: Vec<u64> = read_all(&log).await.into_iter().map(|(_, v)| v).collect();
        assert_eq!(values, (0..200).collect::<Vec<_>>());
        let offset = log.offset_for_timestamp(5_000).await.expect("lookup");
        assert!(offset.is_some(), "the time index works from memory");
        drop(log);
        // With room, the next open saves them.
        sim.set_capacity(None);
        let (log, _) = Log::open_with_clock(sim.clone(), Path::new(DIR), config(), clock())
            .await
            .expect("reopen");
        assert_eq!(read_all(&log).await.len(), 200);
        let saved =
            sim.paths().into_iter().filter(|p| p.to_string_lossy().ends_with(".index")).count();
        assert!(saved >= indexes.len() - 1, "rebuilt indexes saved once there is room");
    });
}

#[test]
fn a_lost_epoch_checkpoint_on_a_full_disk_is_rebuilt_in_memory_and_written_before_the_next_append()
{
    use odradek_storage::Backend;
    runtime().block_on(async {
        let sim = SimBackend::new();
        let (log, _) = Log::open_with_clock(sim.clone(), Path::new(DIR), config(), clock())
            .await
            .expect("open");
        for (s, epoch) in [(0, 0), (1, 0), (2, 3), (3, 3)] {
            let batch = batch_of(&[s], Codec::None, 5_000, false);
            log.append_with_epoch(batch, epoch).await.expect("append");
        }
        log.sync().await.expect("sync");
        let entries = log.epoch_entries();
        drop(log);
        let checkpoint = Path::new(DIR).join("leader-epoch-checkpoint");
        sim.remove_file(&checkpoint).await.expect("remove");
        // No room at all (recovery may first free the active segment's direct-write padding).
        sim.set_capacity(Some(0));
        let (log, _) = Log::open_with_clock(sim.clone(), Path::new(DIR), config(), clock())
            .await
            .expect("a full disk does not keep the log from opening");
        assert_eq!(log.epoch_entries(), entries, "rebuilt from the batches");
        assert_eq!(sim.contents(&checkpoint), None, "not written on the full disk");
        sim.set_capacity(None);
        log.append_with_epoch(batch_of(&[4], Codec::None, 5_000, false), 3).await.expect("room");
        assert!(sim.contents(&checkpoint).is_some(), "written before the next append");
        drop(log);
        let (log, _) = Log::open_with_clock(sim.crash(3), Path::new(DIR), config(), clock())
            .await
            .expect("reopen");
        assert_eq!(log.epoch_entries(), entries);
    });
}
