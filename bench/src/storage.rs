//! `odradek-bench storage`: the storage-engine benchmark.
//!
//! Concurrent producer tasks on one compio runtime (one thread, one io_uring) append prebuilt
//! RecordBatch v2 batches to ONE partition [`Log`] shared through `Rc`, optionally following
//! every append with [`Log::sync`] (acks=all with fsync). Concurrent producers share the log's
//! group-committed writes and `fdatasync`s.
//!
//! Timeline: `warmup` (appends run but are not counted), then the measured phase, which ends
//! at `duration` or once `total-bytes` have been issued, whichever comes first. An operation
//! counts if it *started* in the measured phase; throughput is its bytes over the time from
//! the end of warmup to the completion of the last counted operation.

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use odradek_records::{BatchParams, Codec, Record, build_batch};
use odradek_storage::{Backend, CompioBackend, Log, LogConfig};
use serde::Serialize;

use crate::counting::{CountingBackend, IoCounters, new_histogram, record_since};
use crate::units::{format_size, parse_duration, parse_size};

/// Upper bound on the memory held by the pool of prebuilt batches.
const POOL_BYTES_MAX: u64 = 128 << 20;
/// Most batches kept in the pool.
const POOL_BATCHES_MAX: usize = 64;
/// Upper bound on concurrent producers (each is a task; the log queues their batches).
const PRODUCERS_MAX: usize = 4096;
/// Largest record value: a batch must fit Kafka's int32 lengths with room to spare.
const RECORD_SIZE_MAX: u64 = 64 << 20;
/// Largest batch: `max.message.bytes` is an int32 and the pool must fit in memory.
const BATCH_BYTES_MAX: u64 = 64 << 20;
/// Interval of the live progress line.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// When producers make their appends durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SyncMode {
    /// Every append is followed by `Log::sync` (acks=all with fsync); concurrent producers share
    /// `fdatasync`s through the log's group commit.
    Each,
    /// Never sync while measuring (acks=1 / page-cache durability); the log is synced once when
    /// it is closed, outside the measurement.
    None,
}

/// Options of `odradek-bench storage`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "\
Sizes accept B, KiB/k, MiB/m, GiB/g (powers of 1024) and KB, MB, GB (powers of 1000);
durations accept ms, s, m, h (a bare number is seconds).

Examples:
  odradek-bench storage --batch-bytes 1MiB --sync each --producers 4
  odradek-bench storage --batch-bytes 4KiB --producers 1 --sync each --json out.json
  odradek-bench storage --codec lz4 --sync none --duration 30s --total-bytes 8GiB")]
pub struct StorageArgs {
    /// Parent directory of the run: the log is written to a fresh `run-<pid>-<time>`
    /// directory created under it, which is removed afterwards unless --keep. Use a directory
    /// on the disk you want to measure (not a tmpfs).
    #[arg(long, value_name = "DIR", default_value = "./odradek-bench-data")]
    pub dir: PathBuf,

    /// Keep the run directory (the log's segments) instead of removing it.
    #[arg(long)]
    pub keep: bool,

    /// Size of each record's value in bytes (keys are null, no headers; each record adds about
    /// 8 bytes of framing).
    #[arg(long, value_name = "SIZE", default_value = "1024", value_parser = parse_size)]
    pub record_size: u64,

    /// Producer batch size: each batch holds batch-bytes / record-size records (at least one).
    /// Typical Kafka producers send 64KiB to 1MiB.
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = parse_size)]
    pub batch_bytes: u64,

    /// Compression codec of the batches (values are random, so they barely compress; this
    /// measures the log's handling of compressed batches, not codec speed: batches are built
    /// before timing starts).
    #[arg(long, value_parser = crate::codec_arg::parser(), default_value = "none")]
    pub codec: Codec,

    /// Number of concurrent producer tasks, all on one compio runtime, appending to ONE log.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub producers: usize,

    /// Length of the measured phase (after warmup).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Also stop the measured phase once this many batch bytes have been issued.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub total_bytes: Option<u64>,

    /// Time spent appending before measuring starts (excluded from all figures).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,

    /// `each`: every append is followed by `Log::sync` (acks=all + fdatasync, group-committed
    /// across producers); `none`: no syncs while measuring.
    #[arg(long, value_enum, default_value_t = SyncMode::Each)]
    pub sync: SyncMode,

    /// Segment size (`segment.bytes`): the log rolls to a new segment file beyond it.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_size)]
    pub segment_bytes: u64,

    /// Also write the configuration and results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Run on the bare CompioBackend instead of wrapping it to count and time pwritev and
    /// fdatasync calls (the wrapper costs two clock reads per I/O).
    #[arg(long)]
    pub no_io_counters: bool,

    /// Do not print the progress line every second.
    #[arg(long)]
    pub quiet: bool,

    /// The log's page-cache window (`page_cache_window_bytes`): synced bytes further than
    /// this behind the end are dropped from the page cache. `none` keeps everything cached
    /// (plain buffered I/O), to measure what the window buys.
    #[arg(long, value_name = "SIZE|none", default_value = "64MiB", value_parser = parse_window)]
    pub page_cache_window: Window,

    /// How the log writes segment data: `direct` (O_DIRECT through aligned staging buffers,
    /// the engine's default) or `buffered` (through the page cache).
    #[arg(long, value_enum, default_value = "direct")]
    pub write_mode: WriteMode,
}

/// `--write-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WriteMode {
    Direct,
    Buffered,
}

/// A page-cache window: a size, or `None` for "never drop".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window(pub Option<u64>);

fn parse_window(s: &str) -> Result<Window, String> {
    if s.eq_ignore_ascii_case("none") {
        Ok(Window(None))
    } else {
        parse_size(s).map(|n| Window(Some(n)))
    }
}

/// Error of the benchmark: a sentence for the operator.
pub type BenchResult<T> = Result<T, String>;

/// What the benchmark derives from the arguments before running.
#[derive(Debug, Clone, Serialize)]
struct Plan {
    dir: PathBuf,
    record_size: u64,
    records_per_batch: u64,
    batch_bytes_requested: u64,
    /// Size of each prebuilt batch as written to the log (header + framed records).
    batch_bytes_on_disk: u64,
    codec: &'static str,
    producers: usize,
    duration_s: f64,
    warmup_s: f64,
    total_bytes: Option<u64>,
    sync: &'static str,
    segment_bytes: u64,
    max_message_bytes: usize,
    pool_batches: usize,
    io_counters: bool,
    /// The log's page-cache window in bytes (`None`: never drop).
    page_cache_window_bytes: Option<u64>,
    /// `direct` or `buffered`.
    write_mode: &'static str,
}

impl Plan {
    fn new(args: &StorageArgs, run_dir: PathBuf) -> BenchResult<Self> {
        if args.record_size == 0 || args.record_size > RECORD_SIZE_MAX {
            return Err(format!(
                "--record-size must be between 1 and {}",
                format_size(RECORD_SIZE_MAX)
            ));
        }
        if args.batch_bytes == 0 || args.batch_bytes > BATCH_BYTES_MAX {
            return Err(format!(
                "--batch-bytes must be between 1 and {}",
                format_size(BATCH_BYTES_MAX)
            ));
        }
        if args.producers == 0 || args.producers > PRODUCERS_MAX {
            return Err(format!("--producers must be between 1 and {PRODUCERS_MAX}"));
        }
        if args.segment_bytes < 4096 {
            return Err("--segment-bytes must be at least 4KiB".to_owned());
        }
        if args.total_bytes == Some(0) {
            return Err("--total-bytes must be positive".to_owned());
        }
        let records_per_batch = (args.batch_bytes / args.record_size).max(1);
        Ok(Plan {
            dir: run_dir,
            record_size: args.record_size,
            records_per_batch,
            batch_bytes_requested: args.batch_bytes,
            batch_bytes_on_disk: 0,
            codec: args.codec.name(),
            producers: args.producers,
            duration_s: args.duration.as_secs_f64(),
            warmup_s: args.warmup.as_secs_f64(),
            total_bytes: args.total_bytes,
            sync: match args.sync {
                SyncMode::Each => "each",
                SyncMode::None => "none",
            },
            segment_bytes: args.segment_bytes,
            max_message_bytes: 0,
            pool_batches: 0,
            io_counters: !args.no_io_counters,
            page_cache_window_bytes: args.page_cache_window.0,
            write_mode: match args.write_mode {
                WriteMode::Direct => "direct",
                WriteMode::Buffered => "buffered",
            },
        })
    }
}

/// A small xorshift generator: fast, deterministic, and its output does not compress.
#[derive(Debug)]
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn fill(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// Builds `count` batches of `records_per_batch` records with `record_size`-byte random values.
/// Record values are disjoint windows of one random buffer, shifted per batch, so batches differ
/// and nothing compresses.
fn build_pool(
    codec: Codec,
    record_size: usize,
    records_per_batch: usize,
    count: usize,
) -> BenchResult<Vec<Bytes>> {
    let span = record_size * records_per_batch;
    let shift = 4099usize;
    let random = Bytes::from(XorShift(0x9E37_79B9_7F4A_7C15).fill(span + shift * count));
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let mut pool = Vec::with_capacity(count);
    for b in 0..count {
        let base = b * shift;
        let records: Vec<Record> = (0..records_per_batch)
            .map(|i| Record {
                attributes: 0,
                timestamp_delta: 0,
                offset_delta: i32::try_from(i).unwrap_or(i32::MAX),
                key: None,
                value: Some(random.slice(base + i * record_size..base + (i + 1) * record_size)),
                headers: Vec::new(),
            })
            .collect();
        let params = BatchParams::simple(codec, now_ms, records_per_batch);
        let batch = build_batch(&params, &records).map_err(|e| format!("building a batch: {e}"))?;
        pool.push(batch);
    }
    Ok(pool)
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Serialize)]
struct Latency {
    count: u64,
    mean: f64,
    min: u64,
    p50: u64,
    p90: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Self {
        Latency {
            count: h.len(),
            mean: h.mean(),
            min: if h.is_empty() { 0 } else { h.min() },
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// What the disk saw during the measured phase (from the counting backend).
#[derive(Debug, Clone, Serialize)]
struct IoReport {
    fdatasyncs: u64,
    fdatasyncs_per_s: f64,
    /// Appends covered by one fdatasync on average (group commit factor).
    appends_per_fdatasync: f64,
    bytes_per_fdatasync: f64,
    writes: u64,
    write_bytes: u64,
    /// Appends coalesced into one vectored write on average.
    appends_per_write: f64,
    write_buffers: u64,
    dir_syncs: u64,
    /// The log's page-cache drop-behind calls (`posix_fadvise(DONTNEED)`) and bytes.
    cache_drops: u64,
    cache_dropped_bytes: u64,
    fdatasync_latency_us: Latency,
    write_latency_us: Latency,
}

#[derive(Debug, Clone, Serialize)]
struct Results {
    elapsed_s: f64,
    bytes: u64,
    records: u64,
    batches: u64,
    bytes_per_s: f64,
    mb_per_s: f64,
    mib_per_s: f64,
    records_per_s: f64,
    batches_per_s: f64,
    /// Per append: `Log::append` plus `Log::sync` when --sync each.
    latency_us: Latency,
    append_latency_us: Latency,
    sync_latency_us: Option<Latency>,
    segments: usize,
    io: Option<IoReport>,
}

#[derive(Debug, Clone, Serialize)]
struct Report {
    benchmark: &'static str,
    version: &'static str,
    unix_time_s: u64,
    config: Plan,
    results: Results,
}

/// Figures shared by the producer tasks and the progress task (one thread, so `Cell`s).
#[derive(Debug)]
struct Shared {
    start: Instant,
    warmup_end: Instant,
    end: Instant,
    total_bytes: u64,
    /// Set when a producer fails or all are done: every loop checks it.
    stop: Cell<bool>,
    /// Bytes issued in the measured phase (the `--total-bytes` bound).
    issued_bytes: Cell<u64>,
    /// Every completed append, warmup included (for the progress line).
    all_bytes: Cell<u64>,
    bytes: Cell<u64>,
    records: Cell<u64>,
    batches: Cell<u64>,
    last_completion: Cell<Option<Instant>>,
    total_us: RefCell<Histogram<u64>>,
    append_us: RefCell<Histogram<u64>>,
    sync_us: RefCell<Histogram<u64>>,
}

fn add(c: &Cell<u64>, by: u64) {
    c.set(c.get().saturating_add(by));
}

/// One producer: appends batches from the pool until the measured phase ends.
async fn producer<B: Backend>(
    id: usize,
    log: Rc<Log<B>>,
    pool: Rc<Vec<Bytes>>,
    records_per_batch: u64,
    producers: usize,
    sync: bool,
    shared: Rc<Shared>,
) -> BenchResult<()> {
    let mut next = id;
    while !shared.stop.get() {
        let start = Instant::now();
        if start >= shared.end {
            break;
        }
        let batch = pool[next % pool.len()].clone();
        next = next.wrapping_add(producers);
        let len = batch.len() as u64;
        let measured = start >= shared.warmup_end;
        if measured {
            if shared.issued_bytes.get() >= shared.total_bytes {
                break;
            }
            add(&shared.issued_bytes, len);
        }
        if let Err(e) = log.append(batch).await {
            shared.stop.set(true);
            return Err(format!("producer {id}: append failed: {e}"));
        }
        let appended = Instant::now();
        if sync && let Err(e) = log.sync().await {
            shared.stop.set(true);
            return Err(format!("producer {id}: sync failed: {e}"));
        }
        let done = Instant::now();
        add(&shared.all_bytes, len);
        if measured {
            add(&shared.bytes, len);
            add(&shared.records, records_per_batch);
            add(&shared.batches, 1);
            shared
                .last_completion
                .set(Some(shared.last_completion.get().map_or(done, |t| t.max(done))));
            record_since(&mut shared.total_us.borrow_mut(), start);
            let append_us = u64::try_from((appended - start).as_micros()).unwrap_or(u64::MAX);
            shared.append_us.borrow_mut().saturating_record(append_us.max(1));
            if sync {
                let sync_us = u64::try_from((done - appended).as_micros()).unwrap_or(u64::MAX);
                shared.sync_us.borrow_mut().saturating_record(sync_us.max(1));
            }
        }
    }
    Ok(())
}

fn mb(bytes: f64) -> f64 {
    bytes / 1e6
}

fn fmt_us(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else if us >= 1000 {
        format!("{:.2} ms", us as f64 / 1000.0)
    } else {
        format!("{us} µs")
    }
}

/// Prints one progress line per second to stderr until the producers are done.
async fn progress(shared: Rc<Shared>, counters: Option<Rc<IoCounters>>, sync: bool) {
    let mut last_bytes = 0u64;
    let mut last_at = shared.start;
    let mut tick = 1u32;
    while !shared.stop.get() {
        let due = shared.start + PROGRESS_EVERY * tick;
        tick = tick.saturating_add(1);
        let now = Instant::now();
        if due > now {
            compio::time::sleep(due - now).await;
        }
        if shared.stop.get() {
            break;
        }
        let now = Instant::now();
        let all = shared.all_bytes.get();
        let window = (now - last_at).as_secs_f64().max(1e-9);
        let recent = mb((all - last_bytes) as f64) / window;
        last_bytes = all;
        last_at = now;
        let t = (now - shared.start).as_secs_f64();
        // A tick that lands within a few ms after warmup still describes the warmup second.
        let mut line = if now < shared.warmup_end + Duration::from_millis(50) {
            format!("[{t:5.1}s] warmup    last 1s {recent:8.1} MB/s")
        } else {
            let elapsed = (now - shared.warmup_end).as_secs_f64().max(1e-9);
            let rate = mb(shared.bytes.get() as f64) / elapsed;
            let batches = shared.batches.get() as f64 / elapsed;
            let p99 = shared.total_us.borrow().value_at_quantile(0.99);
            let what = if sync { "append+sync" } else { "append" };
            format!(
                "[{t:5.1}s] measuring last 1s {recent:8.1} MB/s | so far {rate:8.1} MB/s \
                 {batches:8.0} batches/s, {what} p99 {}",
                fmt_us(p99)
            )
        };
        if let Some(c) = &counters
            && c.measuring.get()
        {
            let _ = write!(line, ", {} fdatasyncs", c.fdatasyncs.get());
        }
        eprintln!("{line}");
        // Bounded: the producers stop at `end`; this loop only outlives them while their last
        // I/O completes.
        if now > shared.end + Duration::from_secs(600) {
            eprintln!(
                "progress: producers still busy 10 minutes after the end; giving up on progress"
            );
            break;
        }
    }
}

/// Sets `measuring` on the I/O counters at the end of warmup.
async fn start_measuring(shared: Rc<Shared>, counters: Rc<IoCounters>) {
    let now = Instant::now();
    if shared.warmup_end > now {
        compio::time::sleep(shared.warmup_end - now).await;
    }
    if !shared.stop.get() {
        counters.measuring.set(true);
    }
}

/// Opens the log, runs the producers, closes the log, and returns the figures.
async fn drive<B: Backend>(
    backend: B,
    plan: &Plan,
    args: &StorageArgs,
    pool: Rc<Vec<Bytes>>,
    counters: Option<Rc<IoCounters>>,
) -> BenchResult<Results> {
    let config = LogConfig {
        segment_bytes: plan.segment_bytes,
        max_message_bytes: plan.max_message_bytes,
        page_cache_window_bytes: plan.page_cache_window_bytes,
        direct_writes: plan.write_mode == "direct",
        ..LogConfig::default()
    };
    let log = Rc::new(
        Log::open(backend, &plan.dir, config)
            .await
            .map_err(|e| format!("opening the log in {}: {e}", plan.dir.display()))?,
    );
    let start = Instant::now();
    let warmup_end = start + args.warmup;
    let shared = Rc::new(Shared {
        start,
        warmup_end,
        end: warmup_end + args.duration,
        total_bytes: args.total_bytes.unwrap_or(u64::MAX),
        stop: Cell::new(false),
        issued_bytes: Cell::new(0),
        all_bytes: Cell::new(0),
        bytes: Cell::new(0),
        records: Cell::new(0),
        batches: Cell::new(0),
        last_completion: Cell::new(None),
        total_us: RefCell::new(new_histogram()),
        append_us: RefCell::new(new_histogram()),
        sync_us: RefCell::new(new_histogram()),
    });
    let sync = args.sync == SyncMode::Each;
    let meter =
        counters.clone().map(|c| compio::runtime::spawn(start_measuring(shared.clone(), c)));
    let progress_task = (!args.quiet)
        .then(|| compio::runtime::spawn(progress(shared.clone(), counters.clone(), sync)));
    let tasks: Vec<_> = (0..plan.producers)
        .map(|id| {
            compio::runtime::spawn(producer(
                id,
                log.clone(),
                pool.clone(),
                plan.records_per_batch,
                plan.producers,
                sync,
                shared.clone(),
            ))
        })
        .collect();
    let mut first_error = None;
    for t in tasks {
        let res = t.await.map_err(|e| format!("producer task: {e}")).and_then(|r| r);
        if let Err(e) = res {
            first_error.get_or_insert(e);
        }
    }
    shared.stop.set(true);
    if let Some(c) = &counters {
        c.measuring.set(false);
    }
    if let Some(m) = meter {
        // Already past warmup, or woken to find `stop` set: returns promptly either way.
        let _ = m.await;
    }
    if let Some(p) = progress_task {
        let _ = p.await;
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let segments = log.segment_count();
    log.close().await.map_err(|e| format!("closing the log: {e}"))?;

    let elapsed = shared
        .last_completion
        .get()
        .map_or(0.0, |t| t.saturating_duration_since(warmup_end).as_secs_f64());
    let per_s = |n: f64| if elapsed > 0.0 { n / elapsed } else { 0.0 };
    let bytes = shared.bytes.get();
    let batches = shared.batches.get();
    let io = counters.as_ref().map(|c| {
        let syncs = c.fdatasyncs.get();
        let writes = c.writes.get();
        let ratio = |a: f64, b: u64| if b > 0 { a / b as f64 } else { 0.0 };
        IoReport {
            fdatasyncs: syncs,
            fdatasyncs_per_s: per_s(syncs as f64),
            appends_per_fdatasync: ratio(batches as f64, syncs),
            bytes_per_fdatasync: ratio(bytes as f64, syncs),
            writes,
            write_bytes: c.write_bytes.get(),
            appends_per_write: ratio(batches as f64, writes),
            write_buffers: c.write_buffers.get(),
            dir_syncs: c.dir_syncs.get(),
            cache_drops: c.drops.get(),
            cache_dropped_bytes: c.dropped_bytes.get(),
            fdatasync_latency_us: Latency::of(&c.fdatasync_us.borrow()),
            write_latency_us: Latency::of(&c.write_us.borrow()),
        }
    });
    Ok(Results {
        elapsed_s: elapsed,
        bytes,
        records: shared.records.get(),
        batches,
        bytes_per_s: per_s(bytes as f64),
        mb_per_s: per_s(mb(bytes as f64)),
        mib_per_s: per_s(bytes as f64 / f64::from(1u32 << 20)),
        records_per_s: per_s(shared.records.get() as f64),
        batches_per_s: per_s(batches as f64),
        latency_us: Latency::of(&shared.total_us.borrow()),
        append_latency_us: Latency::of(&shared.append_us.borrow()),
        sync_latency_us: sync.then(|| Latency::of(&shared.sync_us.borrow())),
        segments,
        io,
    })
}

fn latency_row(out: &mut String, name: &str, l: &Latency) {
    let _ = writeln!(
        out,
        "  {name:<22} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        fmt_us(l.p50),
        fmt_us(l.p90),
        fmt_us(l.p99),
        fmt_us(l.p999),
        fmt_us(l.max),
        format!("{:.0} µs", l.mean),
    );
}

/// The human-readable report.
fn render(plan: &Plan, r: &Results) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "odradek-bench storage");
    let _ = writeln!(
        out,
        "  config: {} producers, batch {} ({} records x {} B, {} B on disk), codec {}, sync {}, \
         segment {}, {} writes",
        plan.producers,
        format_size(plan.batch_bytes_requested),
        plan.records_per_batch,
        plan.record_size,
        plan.batch_bytes_on_disk,
        plan.codec,
        plan.sync,
        format_size(plan.segment_bytes),
        plan.write_mode,
    );
    let _ = writeln!(
        out,
        "  run:    warmup {:.1}s, measured {:.2}s{}, dir {}",
        plan.warmup_s,
        r.elapsed_s,
        plan.total_bytes.map(|b| format!(" (bound {})", format_size(b))).unwrap_or_default(),
        plan.dir.display()
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "  {:<22} {:>12}", "throughput", "");
    let _ = writeln!(out, "  {:<22} {:>12.1}   ({:.1} MiB/s)", "MB/s", r.mb_per_s, r.mib_per_s);
    let _ = writeln!(out, "  {:<22} {:>12.0}", "records/s", r.records_per_s);
    let _ = writeln!(out, "  {:<22} {:>12.1}", "batches/s", r.batches_per_s);
    let _ = writeln!(
        out,
        "  {:<22} {:>12}   ({} records, {} batches, {} segments)",
        "bytes",
        format_size(r.bytes),
        r.records,
        r.batches,
        r.segments
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "  {:<22} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "latency", "p50", "p90", "p99", "p99.9", "max", "mean"
    );
    let main = if r.sync_latency_us.is_some() { "append+sync" } else { "append" };
    latency_row(&mut out, main, &r.latency_us);
    if let Some(s) = &r.sync_latency_us {
        latency_row(&mut out, "  append only", &r.append_latency_us);
        latency_row(&mut out, "  sync only", s);
    }
    if let Some(io) = &r.io {
        latency_row(&mut out, "disk fdatasync", &io.fdatasync_latency_us);
        latency_row(&mut out, "disk pwritev", &io.write_latency_us);
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "  io: {} fdatasyncs ({:.1}/s, {:.2} appends and {} each), {} pwritev ({:.2} appends \
             each), {} dir fsyncs",
            io.fdatasyncs,
            io.fdatasyncs_per_s,
            io.appends_per_fdatasync,
            format_size(io.bytes_per_fdatasync as u64),
            io.writes,
            io.appends_per_write,
            io.dir_syncs,
        );
        let window = plan.page_cache_window_bytes.map_or_else(|| "none".to_owned(), format_size);
        let _ = writeln!(
            out,
            "  page-cache window {window}: {} posix_fadvise(DONTNEED) dropped {}",
            io.cache_drops,
            format_size(io.cache_dropped_bytes),
        );
    }
    out
}

/// A fresh run directory under `parent`.
fn run_dir(parent: &Path) -> PathBuf {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    parent.join(format!("run-{}-{nanos}", std::process::id()))
}

/// Runs the benchmark described by `args`.
pub fn run(args: StorageArgs) -> BenchResult<()> {
    let parent_existed = args.dir.exists();
    let dir = run_dir(&args.dir);
    let mut plan = Plan::new(&args, dir.clone())?;
    let codec = args.codec;

    let record_size = usize::try_from(plan.record_size).map_err(|e| e.to_string())?;
    let rpb = usize::try_from(plan.records_per_batch).map_err(|e| e.to_string())?;
    let probe = build_pool(codec, record_size, rpb, 1)?;
    let one = probe.first().map_or(0, |b| b.len() as u64).max(1);
    let count = usize::try_from((POOL_BYTES_MAX / one).max(1)).unwrap_or(1).min(POOL_BATCHES_MAX);
    let built = Instant::now();
    let pool = build_pool(codec, record_size, rpb, count)?;
    plan.pool_batches = pool.len();
    let largest = pool.iter().map(Bytes::len).max().unwrap_or(0);
    plan.batch_bytes_on_disk = pool.iter().map(|b| b.len() as u64).sum::<u64>() / pool.len() as u64;
    // A 1 MiB batch of 1 KiB records is a little over Kafka's default max.message.bytes
    // (1 MiB + 12); let the log accept the batches this benchmark builds.
    plan.max_message_bytes = LogConfig::default().max_message_bytes.max(largest);
    if !args.quiet {
        eprintln!(
            "built {} batches of {} B ({} records each, codec {}) in {:.2}s; log in {}",
            pool.len(),
            plan.batch_bytes_on_disk,
            plan.records_per_batch,
            plan.codec,
            built.elapsed().as_secs_f64(),
            dir.display()
        );
    }

    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let runtime =
        compio::runtime::Runtime::new().map_err(|e| format!("starting the compio runtime: {e}"))?;
    let pool = Rc::new(pool);
    let outcome = runtime.block_on(async {
        if args.no_io_counters {
            drive(CompioBackend, &plan, &args, pool, None).await
        } else {
            let counters = Rc::new(IoCounters::default());
            let backend = CountingBackend::new(CompioBackend, counters.clone());
            drive(backend, &plan, &args, pool, Some(counters)).await
        }
    });
    drop(runtime);

    if !args.keep {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            eprintln!("warning: could not remove {}: {e}", dir.display());
        }
        if !parent_existed {
            // Only succeeds if nothing else lives there.
            let _ = std::fs::remove_dir(&args.dir);
        }
    } else if !args.quiet {
        eprintln!("kept the log in {}", dir.display());
    }

    let results = outcome?;
    print!("{}", render(&plan, &results));
    if let Some(path) = &args.json {
        let report = Report {
            benchmark: "storage",
            version: env!("CARGO_PKG_VERSION"),
            unix_time_s: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            config: plan,
            results,
        };
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| format!("encoding the JSON report: {e}"))?;
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: StorageArgs,
    }

    fn parse(argv: &[&str]) -> Result<StorageArgs, clap::Error> {
        let mut full = vec!["storage"];
        full.extend_from_slice(argv);
        Cli::try_parse_from(full).map(|c| c.args)
    }

    #[test]
    fn defaults() {
        let a = parse(&[]).expect("defaults parse");
        assert_eq!(a.record_size, 1024);
        assert_eq!(a.batch_bytes, 1 << 20);
        assert_eq!(a.codec, Codec::None);
        assert_eq!(a.producers, 4);
        assert_eq!(a.duration, Duration::from_secs(10));
        assert_eq!(a.warmup, Duration::from_secs(2));
        assert_eq!(a.sync, SyncMode::Each);
        assert_eq!(a.segment_bytes, 1 << 30);
        assert_eq!(a.total_bytes, None);
        assert!(!a.keep);
        let plan = Plan::new(&a, PathBuf::from("x")).expect("valid plan");
        assert_eq!(plan.records_per_batch, 1024);
    }

    #[test]
    fn options() {
        let a = parse(&[
            "--batch-bytes",
            "4KiB",
            "--record-size",
            "1KiB",
            "--codec",
            "zstd",
            "--sync",
            "none",
            "--duration",
            "500ms",
            "--total-bytes",
            "1GiB",
            "--producers",
            "1",
        ])
        .expect("options parse");
        assert_eq!(a.codec, Codec::Zstd);
        assert_eq!(a.sync, SyncMode::None);
        assert_eq!(a.duration, Duration::from_millis(500));
        assert_eq!(a.total_bytes, Some(1 << 30));
        let plan = Plan::new(&a, PathBuf::from("x")).expect("valid plan");
        assert_eq!(plan.records_per_batch, 4);
        assert!(parse(&["--batch-bytes", "lots"]).is_err());
        assert!(parse(&["--codec", "brotli"]).is_err());
    }

    #[test]
    fn invalid_plans() {
        for argv in [
            &["--producers", "0"][..],
            &["--record-size", "0"],
            &["--batch-bytes", "0"],
            &["--batch-bytes", "1GiB"],
            &["--total-bytes", "0"],
            &["--segment-bytes", "1k"],
        ] {
            let a = parse(argv).expect("parses");
            assert!(Plan::new(&a, PathBuf::from("x")).is_err(), "{argv:?} should be refused");
        }
    }

    #[test]
    fn pool_batches_are_valid_and_incompressible() {
        for codec in [Codec::None, Codec::Lz4] {
            let pool = build_pool(codec, 1024, 4, 3).expect("pool builds");
            assert_eq!(pool.len(), 3);
            for b in &pool {
                let set =
                    odradek_storage::batch::split_record_set(b, 1 << 20).expect("valid batch");
                assert_eq!(set.len(), 1);
                assert_eq!(set[0].header.records_count, 4);
                // Random values: the batch does not shrink below its payload.
                assert!(b.len() >= 4 * 1024, "{codec}: {}", b.len());
            }
            assert_ne!(pool[0], pool[1]);
        }
    }

    #[test]
    fn small_run_on_disk() {
        let parent =
            std::env::temp_dir().join(format!("odradek-bench-test-{}", std::process::id()));
        let a = parse(&[
            "--dir",
            parent.to_str().expect("utf-8 temp dir"),
            "--batch-bytes",
            "8KiB",
            "--producers",
            "3",
            "--warmup",
            "50ms",
            "--duration",
            "300ms",
            "--total-bytes",
            "256KiB",
            "--segment-bytes",
            "64KiB",
            "--quiet",
        ])
        .expect("parses");
        run(a).expect("a small run succeeds");
        assert!(!parent.exists(), "the run directory is removed");
    }
}
