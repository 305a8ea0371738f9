//! A run of append failures on a full disk is logged once, and its end once (after a quiet
//! period, so that a nearly full disk that flaps is not logged per flap); a fenced log is
//! logged once, whatever fails after.
//!
//! Alone in its test binary: tracing's per-callsite interest cache, computed when a callsite is
//! first hit, races with tests on other threads that run without a subscriber.

mod common;
use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;

use common::*;
use odradek_storage::compression::Codec;
use odradek_storage::log::Log;
use odradek_storage::sim::SimBackend;

const DIR: &str = "/data/topic-0";

#[test]
fn a_run_of_failures_is_logged_once_and_its_end_once() {
    let now = Rc::new(Cell::new(5_000i64));
    let clock_now = now.clone();
    let logs = logs_at(tracing::Level::INFO, || {
        runtime().block_on(async {
            let sim = SimBackend::new();
            let clock: odradek_storage::log::Clock = Rc::new(move || clock_now.get());
            let (log, _) = Log::open_with_clock(sim.clone(), Path::new(DIR), config(), clock)
                .await
                .expect("open");
            log.append(batch_of(&[0], Codec::None, 5_000, false)).await.expect("append");
            sim.set_capacity(Some(used(&sim)));
            for _ in 0..50 {
                assert!(log.append(batch_of(&[1; 600], Codec::None, 5_000, false)).await.is_err());
            }
            sim.set_capacity(None);
            // Succeeding at once after a failure is not yet "succeeding again" (a nearly full
            // disk flaps); after the quiet period it is.
            log.append(batch_of(&[2], Codec::None, 5_000, false)).await.expect("room");
            assert!(log.write_failing());
            now.set(now.get() + odradek_storage::WRITES_OK_QUIET_MS);
            log.append(batch_of(&[3], Codec::None, 5_000, false)).await.expect("room");
            assert!(!log.write_failing());

            // A device gone bad: the write and its cut-back fail (fenced, one line); a sync
            // of the fenced log fails too, without a second line.
            sim.fail_after(0);
            assert!(log.append(batch_of(&[4], Codec::None, 5_000, false)).await.is_err());
            assert!(log.fenced().is_some());
            assert!(log.sync().await.is_err());
            assert!(log.append(batch_of(&[5], Codec::None, 5_000, false)).await.is_err());
        });
    });
    assert_eq!(logs.matches("log fenced").count(), 1, "{logs}");
    // One per run of failures: the full disk, then the bad device.
    assert_eq!(logs.matches("appends failing").count(), 2, "{logs}");
    assert_eq!(logs.matches("appends succeed again").count(), 1, "{logs}");
    assert!(logs.contains("disk_full=true"), "{logs}");
    assert!(logs.contains("failed_writes=50"), "{logs}");
}
