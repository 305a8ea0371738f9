//! Segment recovery from arbitrary file bytes, on the in-memory `SimBackend`.
//!
//! A log is written (two small batches), stopped, and its segment file replaced by the fuzz
//! input; then it is reopened. The first byte chooses:
//! - bit 0: stop cleanly (`close`, which writes the indexes and the `clean-shutdown` marker)
//!   instead of uncleanly (dropped after `sync`, which makes recovery scan the segment);
//! - bit 1: split the rest at the point given by the next byte, and put the second part in the
//!   segment's offset index (`.index`) instead of its original contents.
//!
//! Recovery may refuse to open (an `Err`), but it must not panic. After an unclean stop (the
//! segment was scanned) a log that opens must be valid: reads from the log start to the log end
//! return whole batches that pass `validate`, whose offsets grow strictly and stay below the log
//! end. After a clean stop the files are trusted, as in Kafka, so damaged bytes are served as
//! they are (the client's CRC check catches them) and only the reads are exercised. Either way
//! an append afterwards gets the log end offset and reads back.
#![no_main]

use std::path::Path;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use odradek_storage::batch::{Strictness, peek_total_len, validate};
use odradek_storage::builder::{BatchParams, build_batch};
use odradek_storage::compression::Codec;
use odradek_storage::log::Clock;
use odradek_storage::records::Record;
use odradek_storage::segment::log_path;
use odradek_storage::sim::SimBackend;
use odradek_storage::{Log, LogConfig};

const DIR: &str = "/fuzz/t-0";
const TIMESTAMP: i64 = 5_000;
/// At most this many reads walk the recovered log (a segment of at most a few KiB holds fewer
/// batches than this: a batch is at least 61 bytes).
const READS_MAX: usize = 4096;

thread_local! {
    static RUNTIME: compio::runtime::Runtime =
        compio::runtime::Runtime::new().expect("compio runtime");
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        index_interval_bytes: 64,
        retention_ms: None,
        direct_writes: false,
        ..LogConfig::default()
    }
}

fn clock() -> Clock {
    std::rc::Rc::new(|| TIMESTAMP)
}

fn batch(values: &[u8]) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            attributes: 0,
            timestamp_delta: i as i64,
            offset_delta: i as i32,
            key: None,
            value: Some(Bytes::from(vec![*v; 8])),
            headers: vec![],
        })
        .collect();
    build_batch(&BatchParams::simple(Codec::None, TIMESTAMP, values.len()), &records)
        .expect("build batch")
}

async fn run(clean: bool, segment: Vec<u8>, index: Option<Vec<u8>>) {
    let dir = Path::new(DIR);
    let sim = SimBackend::new();
    {
        let (log, _) = Log::open_with_clock(sim.clone(), dir, config(), clock())
            .await
            .expect("open an empty log");
        log.append(batch(&[1, 2, 3])).await.expect("append");
        log.append(batch(&[4])).await.expect("append");
        if clean {
            log.close().await.expect("close");
        } else {
            log.sync().await.expect("sync");
        }
    }
    assert!(sim.poke(&log_path(dir, 0), segment), "the segment file exists");
    if let Some(index) = index {
        let _ = sim.poke(&dir.join(format!("{:020}.index", 0)), index);
    }
    let Ok((log, _report)) = Log::open_with_clock(sim.clone(), dir, config(), clock()).await else {
        return;
    };
    let start = log.log_start_offset();
    let end = log.log_end_offset();
    assert!(start <= end, "log start {start} past log end {end}");
    // After a clean stop the files are trusted (Kafka's semantics, see
    // storage/tests/corruption.rs): damaged bytes are served as they are and the client's CRC
    // check finds them, so only the reads themselves are exercised there. After an unclean
    // stop the segment was scanned, and what is kept must be a valid log.
    if !clean {
        check_recovered(&log, start, end).await;
    } else {
        for at in start..end.min(start + 64) {
            let _ = log.read_bytes(at, 1 << 16).await;
        }
    }
    let info = log.append(batch(&[9])).await.expect("append after recovery");
    assert_eq!(info.base_offset, end, "the append after recovery gets the log end offset");
    let back = log.read_bytes(info.base_offset, 1 << 16).await.expect("read the append");
    let first = match peek_total_len(&back) {
        Some(Ok(total)) if total <= back.len() => &back[..total],
        other => panic!("the append does not read back as a whole batch: {other:?}"),
    };
    let h = validate(first, Strictness::Stored).expect("the append reads back valid");
    assert_eq!(h.base_offset as u64, info.base_offset, "the append reads back at its offset");
}

/// Reads the whole log after an unclean stop: every batch is whole and valid, offsets grow
/// strictly and stay below the log end.
async fn check_recovered(log: &Log<SimBackend>, start: u64, end: u64) {
    let mut at = start;
    let mut prev_last: Option<i64> = None;
    for _ in 0..READS_MAX {
        if at >= end {
            break;
        }
        let bytes = log.read_bytes(at, 1 << 16).await.expect("a read below the log end");
        assert!(!bytes.is_empty(), "a read at {at} below the log end {end} returned nothing");
        let mut pos = 0usize;
        let mut last_here = None;
        while pos < bytes.len() {
            let total = match peek_total_len(&bytes[pos..]) {
                Some(Ok(t)) if t <= bytes.len() - pos => t,
                other => panic!("read at {at} returned a partial or bad batch at {pos}: {other:?}"),
            };
            let h = validate(&bytes[pos..pos + total], Strictness::Stored)
                .expect("a recovered batch passes validation");
            if let Some(p) = prev_last {
                assert!(h.base_offset > p, "offsets grow: batch at {} after {p}", h.base_offset);
            }
            assert!(h.base_offset >= 0);
            let last = h.last_offset();
            assert!((last as u64) < end, "batch ending at {last} past the log end {end}");
            prev_last = Some(last);
            last_here = Some(last);
            pos += total;
        }
        match last_here {
            Some(last) if last as u64 + 1 > at => at = last as u64 + 1,
            _ => panic!("a read at {at} made no progress"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let clean = mode & 1 == 1;
    let (segment, index) = if mode & 2 == 2 {
        let Some((&cut, rest)) = rest.split_first() else { return };
        let at = rest.len() * cut as usize / 255;
        let (s, i) = rest.split_at(at);
        (s.to_vec(), Some(i.to_vec()))
    } else {
        (rest.to_vec(), None)
    };
    RUNTIME.with(|rt| rt.block_on(run(clean, segment, index)));
});
