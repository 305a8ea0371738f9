//! Shared helpers for the storage integration tests.
#![allow(dead_code)]

use bytes::Bytes;
use odradek_storage::batch::{self, BatchHeader};
use odradek_storage::builder::{BatchParams, build_batch};
use odradek_storage::compact::batch_records;
use odradek_storage::compression::Codec;
use odradek_storage::config::LogConfig;
use odradek_storage::log::Clock;
use odradek_storage::records::Record;

/// A producer batch whose records carry `values` (and key `k<value>` when `keyed`).
pub fn batch_of(values: &[u64], codec: Codec, timestamp: i64, keyed: bool) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            attributes: 0,
            timestamp_delta: i as i64,
            offset_delta: i as i32,
            key: keyed.then(|| Bytes::from(format!("k{v}"))),
            value: Some(Bytes::from(v.to_be_bytes().to_vec())),
            headers: vec![],
        })
        .collect();
    let mut params = BatchParams::simple(codec, timestamp, values.len());
    params.max_timestamp = timestamp + values.len() as i64 - 1;
    build_batch(&params, &records).expect("build batch")
}

/// A batch of `(key, value)` records; `None` value is a tombstone.
pub fn keyed_batch(pairs: &[(&str, Option<&str>)], codec: Codec, timestamp: i64) -> Bytes {
    let records = keyed_records(pairs);
    build_batch(&BatchParams::simple(codec, timestamp, pairs.len()), &records).expect("build batch")
}

/// The records of `(key, value)` pairs, offset deltas from 0; `None` value is a tombstone.
pub fn keyed_records(pairs: &[(&str, Option<&str>)]) -> Vec<Record> {
    pairs
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            attributes: 0,
            timestamp_delta: 0,
            offset_delta: i as i32,
            key: Some(Bytes::copy_from_slice(k.as_bytes())),
            value: v.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            headers: vec![],
        })
        .collect()
}

/// Every record in a byte range of whole stored batches: `(offset, key, value)`. Panics on a
/// batch that fails validation: tests must never be served a bad batch.
pub fn records_in(bytes: &Bytes) -> Vec<(u64, Option<Bytes>, Option<Bytes>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let h = BatchHeader::parse(&bytes[pos..]).expect("batch header");
        let b = bytes.slice(pos..pos + h.total_len());
        batch::validate(&b, batch::Strictness::Stored).expect("served batch is valid");
        let (h, recs) = batch_records(&b).expect("records decode");
        for r in recs {
            out.push(((h.base_offset + i64::from(r.offset_delta)) as u64, r.key, r.value));
        }
        pos += h.total_len();
    }
    out
}

/// The u64 values of records (as written by [`batch_of`]).
pub fn values_in(bytes: &Bytes) -> Vec<(u64, u64)> {
    records_in(bytes)
        .into_iter()
        .map(|(o, _, v)| {
            let v = v.expect("value");
            let mut a = [0u8; 8];
            a.copy_from_slice(&v);
            (o, u64::from_be_bytes(a))
        })
        .collect()
}

pub fn runtime() -> compio::runtime::Runtime {
    compio::runtime::Runtime::new().expect("compio runtime (io_uring)")
}

/// Small segments (2 KiB, an index entry every 256 B) and no retention: rolls, indexes and
/// recovery get exercised by a few hundred records.
pub fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 256,
        retention_ms: None,
        ..LogConfig::default()
    }
}

/// A clock stopped at 5 000 ms after the epoch.
pub fn clock() -> Clock {
    std::rc::Rc::new(|| 5_000)
}

/// Every record of `log`, start to end, as (offset, value) pairs (see [`values_in`]).
pub async fn read_all<B: odradek_storage::Backend>(
    log: &odradek_storage::log::Log<B>,
) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = log.log_start_offset();
    while at < log.log_end_offset() {
        let bytes = log.read_bytes(at, 4096).await.expect("read");
        let recs = values_in(&bytes);
        at = recs.last().expect("progress").0 + 1;
        out.extend(recs);
    }
    out
}

/// Bytes all files of `sim` hold.
pub fn used(sim: &odradek_storage::sim::SimBackend) -> u64 {
    sim.paths().iter().filter_map(|p| sim.contents(p)).map(|c| c.len() as u64).sum()
}

/// Log lines at `level` and above written while `work` runs on this thread.
pub fn logs_at(level: tracing::Level, work: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log buffer").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .with_max_level(level)
        .finish();
    tracing::subscriber::with_default(subscriber, work);
    let bytes = buf.0.lock().expect("log buffer").clone();
    String::from_utf8_lossy(&bytes).into_owned()
}
