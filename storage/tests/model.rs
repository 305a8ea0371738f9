//! The log against an in-memory model: random appends, reads, syncs, rolls, retention,
//! DeleteRecords, truncation, clean reopen and simulated crashes. After every step the log and
//! the model must agree on the log start, the log end and every record in between.

mod common;
use std::collections::BTreeMap;
use std::rc::Rc;

use common::*;
use odradek_storage::compression::Codec;
use odradek_storage::config::LogConfig;
use odradek_storage::log::{Clock, Log};
use odradek_storage::sim::SimBackend;
use proptest::prelude::*;

const CODECS: [Codec; 5] = [Codec::None, Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd];

#[derive(Debug, Clone)]
enum Op {
    Append { records: usize, codec: usize },
    Sync,
    Read { at: u16, max_bytes: u16 },
    Retention { keep_bytes: u16 },
    DeleteRecords { at: u16 },
    Truncate { at: u16 },
    Reopen,
    Crash { seed: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1usize..12, 0usize..5).prop_map(|(records, codec)| Op::Append { records, codec }),
        2 => Just(Op::Sync),
        3 => (any::<u16>(), 1u16..3000).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        1 => (500u16..6000).prop_map(|keep_bytes| Op::Retention { keep_bytes }),
        1 => any::<u16>().prop_map(|at| Op::DeleteRecords { at }),
        1 => any::<u16>().prop_map(|at| Op::Truncate { at }),
        1 => Just(Op::Reopen),
        1 => any::<u64>().prop_map(|seed| Op::Crash { seed }),
    ]
}

/// Batches by base offset, each with its record values.
#[derive(Debug, Default)]
struct Model {
    batches: BTreeMap<u64, Vec<u64>>,
    start: u64,
    end: u64,
}

impl Model {
    fn records(&self) -> Vec<(u64, u64)> {
        self.batches
            .iter()
            .flat_map(|(b, vs)| vs.iter().enumerate().map(move |(i, v)| (b + i as u64, *v)))
            .filter(|(o, _)| *o >= self.start)
            .collect()
    }
    fn truncate_batches_from(&mut self, base: u64) {
        self.batches.retain(|b, _| *b < base);
        self.end = base;
    }
    /// The base of the batch holding `offset`, if any.
    fn batch_holding(&self, offset: u64) -> Option<u64> {
        self.batches
            .range(..=offset)
            .next_back()
            .filter(|(b, vs)| offset < *b + vs.len() as u64)
            .map(|(b, _)| *b)
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1500,
        index_interval_bytes: 200,
        retention_ms: None,
        ..LogConfig::default()
    }
}

fn clock() -> Clock {
    Rc::new(|| 1_000_000)
}

async fn read_all(log: &Log<SimBackend>) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = log.log_start_offset();
    while at < log.log_end_offset() {
        let bytes = log.read_bytes(at, 700).await.expect("read");
        let recs = values_in(&bytes);
        let last = recs.last().expect("a read below the end returns a batch").0;
        out.extend(recs.into_iter().filter(|(o, _)| *o >= at));
        at = last + 1;
    }
    out
}

async fn check(log: &Log<SimBackend>, model: &Model) {
    assert_eq!(log.log_start_offset(), model.start, "log start");
    assert_eq!(log.log_end_offset(), model.end, "log end");
    assert_eq!(read_all(log).await, model.records(), "records");
}

async fn run(ops: Vec<Op>) {
    let mut sim = SimBackend::new();
    let dir = std::path::Path::new("/p/t-0");
    let mut log = Log::open_with_clock(sim.clone(), dir, config(), clock()).await.expect("open").0;
    let mut model = Model::default();
    let mut next_value = 0u64;
    for op in ops {
        match op {
            Op::Append { records, codec } => {
                let values: Vec<u64> = (next_value..next_value + records as u64).collect();
                next_value += records as u64;
                let info = log
                    .append(batch_of(&values, CODECS[codec], 1000, false))
                    .await
                    .expect("append");
                assert_eq!(info.base_offset, model.end);
                assert_eq!(info.last_offset, model.end + records as u64 - 1);
                model.batches.insert(model.end, values);
                model.end += records as u64;
            }
            Op::Sync => {
                log.sync().await.expect("sync");
                assert_eq!(log.synced_offset(), model.end);
            }
            Op::Read { at, max_bytes } => {
                let span = (model.end - model.start + 1).max(1);
                let offset = model.start + u64::from(at) % span;
                let got =
                    log.read_bytes(offset, u64::from(max_bytes)).await.expect("read in range");
                let recs = values_in(&got);
                if offset == model.end {
                    assert!(recs.is_empty());
                } else {
                    let want_base = model.batch_holding(offset).expect("model batch");
                    assert_eq!(recs[0].0, want_base, "read starts at the batch holding the offset");
                    assert!(
                        got.len() <= usize::from(max_bytes)
                            || recs.len() == model.batches[&want_base].len(),
                        "over max_bytes only for a single first batch"
                    );
                }
                let beyond = log.read_bytes(model.end + 1, 100).await;
                assert!(beyond.is_err(), "reading past the end is out of range");
            }
            Op::Retention { keep_bytes } => {
                let mut cfg = config();
                cfg.retention_bytes = Some(u64::from(keep_bytes));
                log.set_config(cfg);
                let r = log.enforce_retention().await.expect("retention");
                log.set_config(config());
                assert!(r.log_start_offset >= model.start && r.log_start_offset <= model.end);
                if r.log_start_offset > model.start {
                    assert!(
                        model.batches.contains_key(&r.log_start_offset)
                            || r.log_start_offset == model.end,
                        "retention moves the start to a batch boundary"
                    );
                }
                model.start = r.log_start_offset;
                let bases = log.segment_bases();
                assert!(bases.len() == 1 || log.size_bytes() < u64::from(keep_bytes) + 1500 * 2);
            }
            Op::DeleteRecords { at } => {
                let span = model.end - model.start + 1;
                let offset = model.start + u64::from(at) % span;
                log.delete_records(offset).await.expect("delete records");
                model.start = offset;
                if offset > 0 {
                    let below = log.read_bytes(offset - 1, 10).await;
                    assert!(below.is_err(), "a read below the new start is out of range");
                }
            }
            Op::Truncate { at } => {
                let span = model.end - model.start + 1;
                let offset = model.start + u64::from(at) % span;
                let end = log.truncate_to(offset).await.expect("truncate");
                if offset < model.end {
                    let base = model.batch_holding(offset).expect("batch");
                    model.truncate_batches_from(base);
                }
                assert_eq!(end, model.end);
                model.start = model.start.min(model.end);
            }
            Op::Reopen => {
                log.close().await.expect("close");
                drop(log);
                let (l, report) = Log::open_with_clock(sim.clone(), dir, config(), clock())
                    .await
                    .expect("reopen");
                assert!(report.clean_shutdown);
                assert_eq!(report.truncated_bytes, 0);
                log = l;
            }
            Op::Crash { seed } => {
                let synced = log.synced_offset();
                drop(log);
                sim = sim.crash(seed);
                let (l, _) = Log::open_with_clock(sim.clone(), dir, config(), clock())
                    .await
                    .expect("recover");
                log = l;
                let end = log.log_end_offset();
                assert!(
                    end >= synced && end <= model.end,
                    "recovered end {end} outside [{synced}, {}]",
                    model.end
                );
                assert!(
                    end == model.end || model.batches.contains_key(&end),
                    "recovery cuts at a batch boundary"
                );
                model.truncate_batches_from(end);
                // A DeleteRecords start offset is synced when set; retention's follows segments.
                model.start = log.log_start_offset();
            }
        }
        check(&log, &model).await;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, max_shrink_iters: 2000, ..ProptestConfig::default() })]
    #[test]
    fn log_agrees_with_model(ops in proptest::collection::vec(op(), 1..60)) {
        runtime().block_on(run(ops));
    }
}
