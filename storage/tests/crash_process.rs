//! SIGKILL crash test, modelled on sled's: the test re-executes its own binary as a writer,
//! kills it with SIGKILL at a random moment, and checks what recovery finds.
//!
//! The writer ([`crash_child_writer`], a no-op unless [`ENV_DIR`] is set) opens the log on the
//! real io_uring backend and runs [`PRODUCERS`] concurrent producer tasks that share it through
//! `Rc`. Each task appends batches of 1–20 records whose values are `task << 48 | seq` with a
//! per-task sequence that grows by one per record, calls `sync`, and only then prints
//! `acked <last value>`. The parent reads those lines, kills the child, reopens the log
//! in-process and checks:
//! - every value ever acked is present;
//! - offsets run densely from 0 to the log end offset, every batch passes its CRC, and the log
//!   end offset is the last surviving offset + 1 (recovery never stops at a torn batch in the
//!   middle);
//! - per task the surviving sequence numbers are exactly `0..n` (no duplicate, no hole: a crash
//!   may keep unacked values at the tail, never lose one in the middle), and `n` never shrinks
//!   from one iteration to the next;
//! - opening the recovered log again truncates nothing (recovery is idempotent).
//!
//! Every iteration reuses the same directory, so later children append after recovery, across
//! segment rolls, and on top of logs that were recovered (or closed cleanly) before.

mod common;
use odradek_storage::sim::SimRng;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use odradek_storage::compression::Codec;
use odradek_storage::log::system_clock;
use odradek_storage::{CompioBackend, Log, LogConfig};

/// The name of the child test function, as `--exact` wants it.
const CHILD_TEST: &str = "crash_child_writer";
/// Directory of the log; its presence makes [`crash_child_writer`] act as the writer.
const ENV_DIR: &str = "ODRADEK_CRASH_CHILD_DIR";
/// Seed of the child's batch sizes and codecs.
const ENV_SEED: &str = "ODRADEK_CRASH_CHILD_SEED";
/// Comma-separated next sequence number of every producer task.
const ENV_NEXT: &str = "ODRADEK_CRASH_CHILD_NEXT";
/// The log end offset the parent verified; the child checks it sees the same after its open.
const ENV_LEO: &str = "ODRADEK_CRASH_CHILD_LEO";

/// `SIGKILL` (9 on every Linux architecture).
const SIGKILL: i32 = 9;
const ITERATIONS: u64 = 60;
const PRODUCERS: usize = 2;
const TASK_SHIFT: u32 = 48;
const SEQ_MASK: u64 = (1 << TASK_SHIFT) - 1;
const CODECS: [Codec; 5] = [Codec::None, Codec::Lz4, Codec::Zstd, Codec::Gzip, Codec::Snappy];

/// A child stops on its own after this long or this many batches per task (the parent normally
/// kills it within 150 ms of its first ack).
const CHILD_RUN_MAX: Duration = Duration::from_secs(20);
const CHILD_BATCHES_MAX: u64 = 200_000;
/// How long the parent waits for a child's first ack before killing it anyway.
const FIRST_ACK_WAIT_MAX: Duration = Duration::from_secs(20);
/// Bound on the whole test, so a pathological slowdown fails instead of hanging.
const TEST_TIME_MAX: Duration = Duration::from_secs(300);

fn config() -> LogConfig {
    LogConfig { segment_bytes: 64 * 1024, index_interval_bytes: 512, ..LogConfig::default() }
}

fn value_of(task: usize, seq: u64) -> u64 {
    ((task as u64) << TASK_SHIFT) | seq
}

fn split_value(value: u64) -> (usize, u64) {
    ((value >> TASK_SHIFT) as usize, value & SEQ_MASK)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn env_u64(name: &str) -> u64 {
    let raw = std::env::var(name).unwrap_or_else(|_| panic!("{name} is set by the parent"));
    raw.trim().parse().unwrap_or_else(|e| panic!("{name}={raw:?}: {e}"))
}

/// The writer. Passes at once in a normal test run; acts only when the parent sets [`ENV_DIR`].
#[test]
fn crash_child_writer() {
    let Some(dir) = std::env::var_os(ENV_DIR) else { return };
    let seed = env_u64(ENV_SEED);
    let expected_leo = env_u64(ENV_LEO);
    let next: Vec<u64> = std::env::var(ENV_NEXT)
        .unwrap_or_else(|_| panic!("{ENV_NEXT} is set by the parent"))
        .split(',')
        .map(|s| s.trim().parse().expect("a sequence number"))
        .collect();
    assert_eq!(next.len(), PRODUCERS);
    let rt = runtime();
    rt.block_on(async move {
        let log = Log::open(CompioBackend, Path::new(&dir), config()).await.expect("child open");
        assert_eq!(
            log.log_end_offset(),
            expected_leo,
            "the child's recovery must find the log the parent verified"
        );
        let log = Rc::new(log);
        let deadline = Instant::now() + CHILD_RUN_MAX;
        let tasks: Vec<_> = (0..PRODUCERS)
            .map(|task| {
                let log = log.clone();
                let mut rng = SimRng::new(seed ^ (0xA5A5_0000 + task as u64));
                let mut seq = next[task];
                compio::runtime::spawn(async move {
                    for _ in 0..CHILD_BATCHES_MAX {
                        if Instant::now() >= deadline {
                            break;
                        }
                        let n = rng.range(1, 20);
                        let values: Vec<u64> = (seq..seq + n).map(|s| value_of(task, s)).collect();
                        let codec = CODECS[rng.range(0, CODECS.len() as u64 - 1) as usize];
                        let keyed = rng.range(0, 1) == 1;
                        let batch = batch_of(&values, codec, now_ms(), keyed);
                        log.append(batch).await.expect("append");
                        log.sync().await.expect("sync");
                        seq += n;
                        // Only now, after `sync` returned, may the value count as durable.
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "acked {}", values[values.len() - 1])
                            .and_then(|()| out.flush())
                            .expect("stdout");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("producer task");
        }
    });
}

/// What the parent knows about the log between iterations.
#[derive(Debug)]
struct Model {
    /// Per task: how many values survived (== the next sequence number to write).
    survived: Vec<u64>,
    /// Per task: the largest sequence number ever acked.
    max_acked: Vec<Option<u64>>,
    log_end_offset: u64,
    /// `(offset, value)` of the last record, checked again by the next incremental scan.
    last_record: Option<(u64, u64)>,
}

#[derive(Debug, Default)]
struct Stats {
    acked_total: u64,
    iterations_with_acks: u64,
    killed_before_first_ack: u64,
    early_kills: u64,
    exited_on_their_own: u64,
    truncations: u64,
    truncated_bytes: u64,
    clean_closes: u64,
    unacked_survivors: u64,
}

/// What one child run produced.
#[derive(Debug)]
struct ChildRun {
    acked: Vec<u64>,
    status: ExitStatus,
    stderr: String,
    killed: bool,
    /// Killed after a short random delay from spawn, not after its first ack.
    early: bool,
}

fn run_child(exe: &Path, dir: &Path, iteration: u64, model: &Model, rng: &mut SimRng) -> ChildRun {
    let next: Vec<String> = model.survived.iter().map(u64::to_string).collect();
    let mut child: Child = Command::new(exe)
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(ENV_DIR, dir)
        .env(ENV_SEED, (0x5EED_0000 + iteration).to_string())
        .env(ENV_NEXT, next.join(","))
        .env(ENV_LEO, model.log_end_offset.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child test binary");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let (first_ack_tx, first_ack_rx) = mpsc::channel::<()>();
    let reader = thread::spawn(move || {
        let mut acked = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(v) = line.strip_prefix("acked ") {
                let v: u64 =
                    v.trim().parse().unwrap_or_else(|e| panic!("bad ack line {line:?}: {e}"));
                if acked.is_empty() {
                    let _ = first_ack_tx.send(());
                }
                acked.push(v);
            }
        }
        acked
    });
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    // One run in six is killed 0–20 ms after spawn: during start-up, open and recovery, or its
    // first appends; the others 5–150 ms after their first ack.
    let early = rng.range(0, 5) == 0;
    if early {
        thread::sleep(Duration::from_millis(rng.range(0, 20)));
    } else if first_ack_rx.recv_timeout(FIRST_ACK_WAIT_MAX).is_ok() {
        thread::sleep(Duration::from_millis(rng.range(5, 150)));
    }
    let killed = child.try_wait().expect("try_wait").is_none();
    if killed {
        child.kill().expect("SIGKILL the child");
    }
    let status = child.wait().expect("wait for the child");
    let acked = reader.join().expect("stdout reader");
    let stderr = err_reader.join().expect("stderr reader");
    ChildRun { acked, status, stderr, killed, early }
}

/// Reopens the log after a crash and checks it against the model; updates the model. Reads the
/// whole log when `full`, else what was added since the last check (and the record before it).
fn verify(
    dir: &Path,
    iteration: u64,
    model: &mut Model,
    stats: &mut Stats,
    close_cleanly: bool,
    full: bool,
) {
    let rt = runtime();
    rt.block_on(async {
        let (log, report) =
            Log::open_with_clock(CompioBackend, dir, config(), system_clock()).await.expect("open");
        if report.truncated_bytes > 0 {
            stats.truncations += 1;
            stats.truncated_bytes += report.truncated_bytes;
            assert!(report.truncated_reason.is_some(), "iteration {iteration}: {report:?}");
        }
        assert_eq!(log.log_start_offset(), 0, "iteration {iteration}");
        let end = log.log_end_offset();
        assert!(
            end >= model.log_end_offset,
            "iteration {iteration}: the log end went back from {} to {end}",
            model.log_end_offset
        );
        let (mut offset, mut next_seq) = if full {
            (0, vec![0u64; PRODUCERS])
        } else {
            (model.log_end_offset, model.survived.clone())
        };
        let mut last: Option<(u64, u64)> = None;
        if let (false, Some((o, v))) = (full, model.last_record) {
            let bytes = log.read_bytes(o, 1).await.expect("read the old last record");
            assert_eq!(
                values_in(&bytes).into_iter().find(|r| r.0 == o),
                Some((o, v)),
                "iteration {iteration}: the last record verified before is intact"
            );
            last = Some((o, v));
        }
        // Every read returns at least one record, so `end` reads always suffice.
        for _ in 0..=end {
            if offset >= end {
                break;
            }
            let bytes = log.read_bytes(offset, 256 * 1024).await.expect("read");
            let records = values_in(&bytes);
            assert!(!records.is_empty(), "iteration {iteration}: empty read at {offset} < {end}");
            for (o, v) in records {
                assert_eq!(o, offset, "iteration {iteration}: offsets are dense and in order");
                let (task, seq) = split_value(v);
                assert!(task < PRODUCERS, "iteration {iteration}: value {v:#x} at {o}");
                assert!(
                    seq >= next_seq[task],
                    "iteration {iteration}: task {task} value {seq} at offset {o} appears twice \
                     or out of order (expected {})",
                    next_seq[task]
                );
                assert_eq!(
                    seq, next_seq[task],
                    "iteration {iteration}: task {task} has a hole before {seq} at offset {o}"
                );
                next_seq[task] += 1;
                last = Some((o, v));
                offset = o + 1;
            }
        }
        assert_eq!(offset, end, "iteration {iteration}: reading stopped before the log end");
        assert_eq!(
            last.map_or(0, |(o, _)| o + 1),
            end,
            "iteration {iteration}: log end offset is the last surviving offset + 1"
        );
        for (task, &survived) in next_seq.iter().enumerate() {
            let before = model.survived[task];
            assert!(
                survived >= before,
                "iteration {iteration}: task {task} lost values it had before: {survived} < {before}"
            );
            if let Some(acked) = model.max_acked[task] {
                assert!(
                    acked < survived,
                    "iteration {iteration}: task {task} acked {acked} but only 0..{survived} survived"
                );
            }
            // Values this child wrote that survived although their ack never came.
            let acked_or_known = model.max_acked[task].map_or(0, |a| a + 1).max(before);
            stats.unacked_survivors += survived.saturating_sub(acked_or_known);
        }
        drop(log);

        // Recovery is idempotent: a second open finds nothing left to cut.
        let (log, again) =
            Log::open_with_clock(CompioBackend, dir, config(), system_clock()).await.expect("open");
        assert_eq!(again.truncated_bytes, 0, "iteration {iteration}: second recovery: {again:?}");
        assert_eq!(log.log_end_offset(), end, "iteration {iteration}: second recovery");
        if close_cleanly {
            stats.clean_closes += 1;
            log.close().await.expect("close");
        }
        model.survived = next_seq;
        model.log_end_offset = end;
        model.last_record = last;
    });
}

#[test]
fn sigkill_crash_recovery_keeps_acked_prefixes() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("current_exe");
    let mut model = Model {
        survived: vec![0; PRODUCERS],
        max_acked: vec![None; PRODUCERS],
        log_end_offset: 0,
        last_record: None,
    };
    let mut stats = Stats::default();
    let mut recent: VecDeque<String> = VecDeque::new();
    for iteration in 0..ITERATIONS {
        assert!(started.elapsed() < TEST_TIME_MAX, "crash test too slow at iteration {iteration}");
        let mut rng = SimRng::new(0x0D4A_DE4B_0000 + iteration);
        let run = run_child(&exe, dir.path(), iteration, &model, &mut rng);
        let signal = run.status.signal();
        if run.killed {
            assert!(
                signal == Some(SIGKILL) || run.status.success(),
                "iteration {iteration}: child ended with {} before the kill landed\n{}",
                run.status,
                run.stderr
            );
        } else {
            stats.exited_on_their_own += 1;
            assert!(
                run.status.success(),
                "iteration {iteration}: child failed: {}\n{}",
                run.status,
                run.stderr
            );
        }
        stats.early_kills += u64::from(run.early);
        if run.acked.is_empty() {
            stats.killed_before_first_ack += 1;
        } else {
            stats.iterations_with_acks += 1;
        }
        stats.acked_total += run.acked.len() as u64;
        let mut last_per_task: Vec<Option<u64>> = vec![None; PRODUCERS];
        for &v in &run.acked {
            let (task, seq) = split_value(v);
            assert!(task < PRODUCERS, "iteration {iteration}: acked value {v:#x}");
            assert!(
                last_per_task[task].is_none_or(|l| seq > l),
                "iteration {iteration}: task {task} acks go backwards"
            );
            last_per_task[task] = Some(seq);
            model.max_acked[task] = model.max_acked[task].max(Some(seq));
        }
        // Every seventh log is closed cleanly, so the next child opens it through the trusted
        // index path (`Segment::load`) instead of a rebuild of the tail segment.
        let close_cleanly = iteration % 7 == 6;
        // A full scan every tenth iteration (and the last); otherwise only the new tail, plus
        // the record at the old end, is read, so the test stays linear in the data written.
        let full = iteration % 10 == 9;
        verify(dir.path(), iteration, &mut model, &mut stats, close_cleanly, full);
        recent.push_back(format!("{iteration}: acked {} -> {:?}", run.acked.len(), model.survived));
        if recent.len() > 3 {
            recent.pop_front();
        }
    }
    let segments = {
        let rt = runtime();
        rt.block_on(async {
            let log = Log::open(CompioBackend, dir.path(), config()).await.expect("final open");
            log.segment_count()
        })
    };
    println!(
        "crash_process: {ITERATIONS} iterations in {:.1?}: {} acks ({} runs with acks, {} early \
         kills, {} killed before the first ack, {} exited on their own), {} records survived ({} unacked at the \
         tail), {} recoveries truncated ({} bytes), {} clean closes, {} segments",
        started.elapsed(),
        stats.acked_total,
        stats.iterations_with_acks,
        stats.early_kills,
        stats.killed_before_first_ack,
        stats.exited_on_their_own,
        model.log_end_offset,
        stats.unacked_survivors,
        stats.truncations,
        stats.truncated_bytes,
        stats.clean_closes,
        segments,
    );
    assert!(
        stats.iterations_with_acks >= ITERATIONS / 2,
        "most children must get to ack something: {stats:?}; last runs: {recent:?}"
    );
    assert!(segments > 1, "the test must roll segments: {segments}");
}
