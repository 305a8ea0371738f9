//! Inputs the `segment_recovery` fuzz target (fuzz/fuzz_targets/segment_recovery.rs) found
//! failing, replayed the way the target runs them: a log with two batches is stopped, its
//! segment file replaced by the input (less its first byte, the target's mode), and reopened.

mod common;

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use odradek_storage::compression::Codec;
use odradek_storage::segment::log_path;
use odradek_storage::sim::SimBackend;
use odradek_storage::{Log, LogConfig};

/// How long a replay may take before it counts as the hang it reproduces (it takes
/// milliseconds when it works).
const HANG_BOUND: Duration = Duration::from_secs(60);

/// The fuzz target's log settings.
fn fuzz_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        index_interval_bytes: 64,
        retention_ms: None,
        direct_writes: false,
        ..LogConfig::default()
    }
}

/// Stops a two-batch log (cleanly when `clean`), puts `segment` in its segment file, reopens
/// it and reads at every offset from its start to its end; returns the offsets it read.
async fn replay(clean: bool, segment: Vec<u8>) -> Vec<u64> {
    let dir = Path::new("/fuzz/t-0");
    let sim = SimBackend::new();
    {
        let (log, _) =
            Log::open_with_clock(sim.clone(), dir, fuzz_config(), clock()).await.expect("open");
        log.append(batch_of(&[1, 2, 3], Codec::None, 5_000, false)).await.expect("append");
        log.append(batch_of(&[4], Codec::None, 5_000, false)).await.expect("append");
        if clean {
            log.close().await.expect("close");
        } else {
            log.sync().await.expect("sync");
        }
    }
    assert!(sim.poke(&log_path(dir, 0), segment));
    let Ok((log, _)) = Log::open_with_clock(sim.clone(), dir, fuzz_config(), clock()).await else {
        return Vec::new();
    };
    let mut read = Vec::new();
    for at in log.log_start_offset()..log.log_end_offset() {
        let _ = log.read_bytes(at, 1 << 16).await;
        read.push(at);
    }
    read
}

/// Runs `replay` on a thread of its own and fails if it has not finished within
/// [`HANG_BOUND`] (the thread of a hung replay is left behind; the test process ends).
fn replay_bounded(clean: bool, segment: Vec<u8>) -> Vec<u64> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(runtime().block_on(replay(clean, segment)));
    });
    rx.recv_timeout(HANG_BOUND).expect("the replay finished: no read hangs")
}

/// `fuzz_inputs/locate-hang-clean-stop.bin`: after a clean stop the segment holds a damaged
/// batch, so the segment based at 0 does not hold offset 1. `Log::locate` then probed
/// `base + 1 == offset` again, which again picked the segment below `offset`: a read at
/// offset 1 looped forever (a shard would hang). Now it moves past that segment.
#[test]
fn a_read_past_the_batches_of_the_segment_below_it_ends() {
    let input = include_bytes!("fuzz_inputs/locate-hang-clean-stop.bin");
    let (mode, segment) = input.split_first().expect("non-empty input");
    assert_eq!(mode & 1, 1, "the input's mode is a clean stop");
    let read = replay_bounded(true, segment.to_vec());
    assert!(read.contains(&1), "offset 1 was read: {read:?}");
}
