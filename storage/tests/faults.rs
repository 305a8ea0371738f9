//! Crash and fault injection on the simulated backend.
//!
//! - Crashes at random instants while several producers append and sync concurrently: every
//!   record whose `sync` returned survives, nothing after a torn batch is served, and each
//!   producer's surviving records are a gap-free prefix of what it wrote.
//! - I/O errors after N calls: errors are reported, no bad batch is ever served, and after
//!   recovery every synced record is there.
//! - A full disk: the append fails with a disk-full error, the log is unchanged and not fenced,
//!   and appends work again once there is room.
//! - Group commit: many concurrent `append + sync` calls share few writes and `fdatasync`s.
//! - A slow device: writes and syncs slower than `SLOW_IO` / `SLOW_SYNC` are logged.

mod common;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use common::*;
use odradek_storage::compression::Codec;
use odradek_storage::config::LogConfig;
use odradek_storage::error::AppendError;
use odradek_storage::log::Log;
use odradek_storage::sim::{SimBackend, SimRng};

const PRODUCERS: u64 = 3;
const DIR: &str = "/data/topic-0";

/// Value encoding: producer in the top byte, sequence in the rest.
fn value(producer: u64, seq: u64) -> u64 {
    (producer << 56) | seq
}

/// Checks a recovered log against what producers had acknowledged.
fn verify(records: &[(u64, u64)], acked: &BTreeMap<u64, u64>) {
    let mut per_producer: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for w in records.windows(2) {
        assert!(w[0].0 < w[1].0, "offsets strictly increase");
    }
    for (_, v) in records {
        per_producer.entry(v >> 56).or_default().push(v & ((1 << 56) - 1));
    }
    for p in 0..PRODUCERS {
        let seqs = per_producer.remove(&p).unwrap_or_default();
        for (i, s) in seqs.iter().enumerate() {
            assert_eq!(*s, i as u64, "producer {p}: surviving records are a gap-free prefix");
        }
        if let Some(&last_acked) = acked.get(&p) {
            assert!(
                seqs.len() as u64 > last_acked,
                "producer {p}: acked seq {last_acked} lost (survived {})",
                seqs.len()
            );
        }
    }
}

#[test]
fn crash_at_random_instants_keeps_every_synced_record() {
    let rt = runtime();
    for seed in 0..150u64 {
        rt.block_on(async move {
            let mut rng = SimRng::new(seed);
            let sim = SimBackend::new();
            sim.set_yield_on_io(true);
            let log = Rc::new(
                Log::open_with_clock(sim.clone(), Path::new(DIR), config(), clock())
                    .await
                    .expect("open")
                    .0,
            );
            let acked: Rc<RefCell<BTreeMap<u64, u64>>> = Rc::default();
            let mut tasks = Vec::new();
            for p in 0..PRODUCERS {
                let (log, acked) = (log.clone(), acked.clone());
                let batch = 1 + (seed + p) % 4;
                tasks.push(compio::runtime::spawn(async move {
                    let mut seq = 0u64;
                    for round in 0..200u64 {
                        let values: Vec<u64> = (seq..seq + batch).map(|s| value(p, s)).collect();
                        let codec = [Codec::None, Codec::Lz4, Codec::Zstd][(round % 3) as usize];
                        if log.append(batch_of(&values, codec, 5_000, false)).await.is_err() {
                            return;
                        }
                        seq += batch;
                        if log.sync().await.is_err() {
                            return;
                        }
                        acked.borrow_mut().insert(p, seq - 1);
                    }
                }));
            }
            // Let the producers run for a random number of scheduler turns, then pull the plug.
            let turns = 1 + rng.upto(400);
            for _ in 0..turns {
                compio::runtime::spawn(async {}).await.ok();
            }
            let crashed = sim.crash(seed ^ 0xC0FFEE);
            let acked_at_crash = acked.borrow().clone();
            drop(tasks);
            let (recovered, _report) =
                Log::open_with_clock(crashed, Path::new(DIR), config(), clock())
                    .await
                    .expect("recover");
            let records = read_all(&recovered).await;
            verify(&records, &acked_at_crash);
        });
    }
}

#[test]
fn io_errors_never_serve_bad_data_and_recovery_keeps_synced_records() {
    let rt = runtime();
    for seed in 0..120u64 {
        rt.block_on(async move {
            let sim = SimBackend::new();
            let (log, _) = Log::open_with_clock(sim.clone(), Path::new(DIR), config(), clock())
                .await
                .expect("open");
            sim.fail_after(5 + (seed * 7) % 150);
            let mut acked: BTreeMap<u64, u64> = BTreeMap::new();
            let mut seq = 0u64;
            let mut failures = 0;
            for _ in 0..80 {
                let values: Vec<u64> = (seq..seq + 3).map(|s| value(0, s)).collect();
                match log.append(batch_of(&values, Codec::Snappy, 5_000, false)).await {
                    Ok(_) => seq += 3,
                    Err(_) => {
                        failures += 1;
                        continue;
                    }
                }
                match log.sync().await {
                    Ok(()) => {
                        acked.insert(0, seq - 1);
                    }
                    Err(_) => failures += 1,
                }
            }
            assert!(failures > 0, "the fault was injected");
            // Whatever reads still succeed must be valid (values_in validates every batch).
            let _ = log.read_bytes(log.log_start_offset(), 1 << 20).await;
            drop(log);
            sim.heal();
            let (recovered, _) =
                Log::open_with_clock(sim.crash(seed), Path::new(DIR), config(), clock())
                    .await
                    .expect("recover");
            verify(&read_all(&recovered).await, &acked);
            // And the recovered log takes appends again.
            let end = recovered.log_end_offset();
            let info = recovered
                .append(batch_of(&[value(1, 0)], Codec::None, 5_000, false))
                .await
                .expect("append");
            assert_eq!(info.base_offset, end);
        });
    }
}

#[test]
fn a_full_disk_fails_the_append_cleanly_and_recovers_when_space_returns() {
    runtime().block_on(async {
        let sim = SimBackend::new();
        let (log, _) = Log::open_with_clock(sim.clone(), Path::new(DIR), config(), clock())
            .await
            .expect("open");
        for s in 0..5 {
            log.append(batch_of(&[value(0, s)], Codec::None, 5_000, false)).await.expect("append");
        }
        let used: u64 =
            sim.paths().iter().filter_map(|p| sim.contents(p)).map(|c| c.len() as u64).sum();
        sim.set_capacity(Some(used + 10));
        // Larger than a block, so it needs new space whether written directly (into the padded
        // last block and beyond) or through the cache.
        let big: Vec<u64> = vec![value(0, 99); 600];
        let err =
            log.append(batch_of(&big, Codec::None, 5_000, false)).await.expect_err("disk full");
        match &err {
            AppendError::Io(f) => assert!(f.is_disk_full(), "{err}"),
            other => panic!("expected a disk-full I/O error, got {other}"),
        }
        assert_eq!(log.fenced(), None, "a cut-back write does not fence the log");
        assert_eq!(log.log_end_offset(), 5, "nothing of the failed append is visible");
        sim.set_capacity(None);
        let info = log
            .append(batch_of(&[value(0, 5)], Codec::None, 5_000, false))
            .await
            .expect("room again");
        assert_eq!(info.base_offset, 5);
        log.sync().await.expect("sync");
        let values: Vec<u64> = read_all(&log).await.into_iter().map(|(_, v)| v).collect();
        assert_eq!(values, (0..6).map(|s| value(0, s)).collect::<Vec<_>>());
    });
}

#[test]
fn a_failed_fsync_fences_the_log_until_reopen() {
    runtime().block_on(async {
        let sim = SimBackend::new();
        let (log, _) = Log::open_with_clock(sim.clone(), Path::new(DIR), config(), clock())
            .await
            .expect("open");
        log.append(batch_of(&[1], Codec::None, 5_000, false)).await.expect("append");
        sim.fail_after(0);
        assert!(log.sync().await.is_err());
        sim.heal();
        assert!(log.fenced().is_some(), "after a failed fsync the page cache cannot be trusted");
        assert!(matches!(
            log.append(batch_of(&[2], Codec::None, 5_000, false)).await,
            Err(AppendError::Fenced { .. })
        ));
        drop(log);
        let (log, _) = Log::open_with_clock(sim.crash(1), Path::new(DIR), config(), clock())
            .await
            .expect("reopen");
        assert_eq!(log.fenced(), None);
        log.append(batch_of(&[3], Codec::None, 5_000, false)).await.expect("append after reopen");
    });
}

#[test]
fn concurrent_appends_share_writes_and_fsyncs() {
    runtime().block_on(async {
        let sim = SimBackend::new();
        sim.set_yield_on_io(true);
        let cfg = LogConfig { segment_bytes: 1 << 30, ..config() };
        let log = Rc::new(
            Log::open_with_clock(sim.clone(), Path::new(DIR), cfg, clock()).await.expect("open").0,
        );
        let (w0, s0) = sim.write_sync_counts();
        const TASKS: u64 = 64;
        let tasks: Vec<_> = (0..TASKS)
            .map(|i| {
                let log = log.clone();
                compio::runtime::spawn(async move {
                    let info = log
                        .append(batch_of(&[i], Codec::None, 5_000, false))
                        .await
                        .expect("append");
                    log.sync().await.expect("sync");
                    info.base_offset
                })
            })
            .collect();
        let mut offsets = Vec::new();
        for t in tasks {
            offsets.push(t.await.expect("task"));
        }
        offsets.sort_unstable();
        assert_eq!(offsets, (0..TASKS).collect::<Vec<_>>(), "every append got its own offset");
        let (w1, s1) = sim.write_sync_counts();
        let (writes, syncs) = (w1 - w0, s1 - s0);
        assert!(writes <= TASKS / 4, "{writes} writes for {TASKS} appends: not coalesced");
        assert!(syncs <= TASKS / 4, "{syncs} fsyncs for {TASKS} acks=all appends: no group commit");
        assert_eq!(log.synced_offset(), TASKS);
    });
}

/// Opens a log on `sim` and appends 200 batches of 8 records (about 33 KB), unsynced.
async fn open_and_fill(sim: &SimBackend, cfg: LogConfig) -> Log<SimBackend> {
    let (log, _) =
        Log::open_with_clock(sim.clone(), Path::new(DIR), cfg, clock()).await.expect("open");
    for s in 0..200 {
        log.append(batch_of(&[value(0, s); 8], Codec::None, 5_000, false)).await.expect("append");
    }
    log
}

#[test]
fn synced_bytes_beyond_the_page_cache_window_are_dropped() {
    runtime().block_on(async {
        for window in [None, Some(8192u64)] {
            let sim = SimBackend::new();
            let cfg =
                LogConfig { segment_bytes: 1 << 30, page_cache_window_bytes: window, ..config() };
            let log = open_and_fill(&sim, cfg).await;
            assert_eq!(sim.dropped_cache_bytes(), 0, "unsynced pages are never dropped");
            log.sync().await.expect("sync");
            let dropped = sim.dropped_cache_bytes();
            match window {
                None => assert_eq!(dropped, 0),
                Some(w) => {
                    let expected = (log.size_bytes() - w) / 4096 * 4096;
                    assert_eq!(
                        dropped, expected,
                        "everything synced beyond the window, page-aligned"
                    );
                }
            }
            // Dropping is a hint: every record still reads back.
            assert_eq!(read_all(&log).await.len(), 200 * 8);
        }
    });
}

#[test]
fn writes_through_the_page_cache_start_writeback_every_step() {
    runtime().block_on(async {
        const STEP: u64 = 4096;
        for (direct_writes, step) in [(false, Some(STEP)), (false, None), (true, Some(STEP))] {
            let sim = SimBackend::new();
            let cfg = LogConfig {
                segment_bytes: 1 << 30,
                direct_writes,
                writeback_bytes: step,
                page_cache_window_bytes: Some(2 * STEP),
                ..config()
            };
            let log = open_and_fill(&sim, cfg).await;
            let ranges = sim.writeback_ranges();
            let dropped = sim.dropped_cache_bytes();
            if direct_writes || step.is_none() {
                assert!(ranges.is_empty(), "direct writes or no step: none, got {ranges:?}");
                assert_eq!(dropped, 0, "nothing synced, nothing written back: nothing dropped");
                continue;
            }
            // Written back a step ago and beyond the window: dropped, whole pages, never the
            // window itself, though nothing was synced (an acks=1 partition).
            assert!(dropped > 0 && dropped.is_multiple_of(4096), "dropped {dropped}");
            assert!(dropped <= log.size_bytes() - 2 * STEP, "the window stays: {dropped}");
            // Back to back from the start of the segment, each at least a step, and what is
            // left dirty at the end is under a step.
            let mut next = 0;
            for &(pos, len) in &ranges {
                assert_eq!(pos, next, "contiguous: {ranges:?}");
                assert!(len >= STEP, "at least a step: {ranges:?}");
                next = pos + len;
            }
            assert!(log.size_bytes() - next < STEP, "{} left dirty", log.size_bytes() - next);
            assert!(ranges.len() >= 5, "the load wrote several steps: {ranges:?}");
        }
    });
}

#[test]
fn without_direct_io_the_log_writes_through_the_page_cache() {
    runtime().block_on(async {
        let sim = SimBackend::new();
        sim.set_no_direct_io(true);
        let cfg = LogConfig { direct_writes: true, ..config() };
        let (log, _) =
            Log::open_with_clock(sim.clone(), Path::new(DIR), cfg, clock()).await.expect("open");
        for s in 0..50 {
            log.append(batch_of(&[value(0, s)], Codec::None, 5_000, false)).await.expect("append");
        }
        log.sync().await.expect("sync");
        let bases = log.segment_bases();
        let active = Path::new(DIR).join(format!("{:020}.log", bases[bases.len() - 1]));
        let len = sim.contents(&active).expect("segment").len() as u64;
        let sealed: u64 = bases[..bases.len() - 1]
            .iter()
            .map(|b| {
                sim.contents(&Path::new(DIR).join(format!("{b:020}.log"))).expect("seg").len()
                    as u64
            })
            .sum();
        assert_eq!(len, log.size_bytes() - sealed, "buffered writes: no padding");
        assert_eq!(read_all(&log).await.len(), 50);
    });
}

#[test]
fn a_slow_device_is_named_in_the_log_and_a_fast_one_is_not() {
    let run = |delay: Option<std::time::Duration>| {
        logs_at(tracing::Level::WARN, || {
            runtime().block_on(async {
                let sim = SimBackend::new();
                let (log, _) = Log::open_with_clock(sim.clone(), Path::new(DIR), config(), clock())
                    .await
                    .expect("open");
                sim.set_io_delay(delay);
                log.append(batch_of(&[value(0, 0)], Codec::None, 5_000, false))
                    .await
                    .expect("append");
                log.sync().await.expect("sync");
            })
        })
    };
    let slow = run(Some(odradek_storage::log::SLOW_SYNC));
    assert!(slow.contains("slow segment write"), "{slow}");
    assert!(slow.contains("slow fdatasync"), "{slow}");
    let fast = run(None);
    assert!(!fast.contains("slow"), "{fast}");
}
