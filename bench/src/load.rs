//! The load generator: producers, consumers and the run that ties them together.
//!
//! Threads: each producer is one writer thread plus one reader thread per leader connection
//! (the writer pipelines Produce requests, at most `--max-in-flight` per connection, bounded by a
//! channel of that capacity; the reader takes responses in order and records latencies). Each
//! consumer is one thread issuing one Fetch at a time to each leader of its partitions. A
//! progress thread prints a line per second. Every loop ends at `--duration` or `--records`,
//! whichever comes first.
//!
//! Leader routing: the run asks Metadata once ([`Cluster::ensure_topic`]) and every thread sends
//! each partition's Produce or Fetch to that partition's leader, one connection per leader
//! broker. A stale route (NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION,
//! a fenced or unknown leader epoch) or a lost connection is retried at the new leader, found
//! from the answer's KIP-951 hints or a Metadata refresh, at most `--retries` tries within
//! `--retry-timeout` per partition; past that the run fails naming the partition. What one
//! thread learns it publishes on the run's [`Board`], which the others read with one atomic load
//! per request. On one broker nothing moves: no refresh, no extra connection.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Barrier, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use kafka_protocol::messages::{FetchResponse, ProduceRequest, TopicName};

use crate::breakdown::Breakdown;
use kafka_protocol::protocol::StrBytes;

use odradek_client::ClientError;
use odradek_client::blocking::{Conn, Reader, Writer};
use odradek_client::cluster::Cluster;
use odradek_client::group;
use odradek_client::partitioner::partition_for_key;
use odradek_client::requests::{self, FetchLimits};
use odradek_client::routing::{Failures, LEADER_NOT_AVAILABLE, Retry, Routes, with_retries};
use odradek_records::{BatchBuilder, BatchDecoder, Codec, ProducerStamp};

use crate::dist::{KeyDist, KeySampler, Rng, SizeDist, key_bytes};
use crate::latency::{Clock, Pacer, Recorder, new_histogram};
use crate::report::{Side, Summary};

/// The client id the bench's connections send (a broker's logs and quotas see it).
const CLIENT_ID: &str = "odradek-bench";
/// Records generated per round of a producer loop before it looks at the clock again.
const ROUND_RECORDS_MAX: u64 = 4096;
/// Per-partition bytes a consumer asks for in one Fetch.
const FETCH_PARTITION_BYTES: i32 = 1 << 20;
/// Bytes a consumer asks for in one Fetch, over all partitions.
const FETCH_BYTES: i32 = 16 << 20;
/// Longest a Fetch waits at the broker for data.
const FETCH_WAIT_MS: i32 = 100;
/// A consumer's Fetch bounds.
const FETCH_LIMITS: FetchLimits = FetchLimits {
    max_wait_ms: FETCH_WAIT_MS,
    min_bytes: 1,
    max_bytes: FETCH_BYTES,
    partition_max_bytes: FETCH_PARTITION_BYTES,
};
/// How long the broker may take to acknowledge a Produce.
const PRODUCE_TIMEOUT_MS: i32 = 30_000;
/// Bytes an embedded timestamp takes at the start of every value (µs since the epoch, BE).
pub const STAMP_BYTES: usize = 8;

/// Which sides run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    Produce,
    Consume,
    E2e,
}

/// Where consumers start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum From {
    Earliest,
    Latest,
}

/// Parameters shared by `produce`, `consume`, `e2e` and workload files.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct LoadArgs {
    /// Bootstrap broker, host:port (comma-separated list allowed; the first that answers is used
    /// for Metadata; each partition's requests then go to its leader).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Topic; created with --partitions partitions of --replication-factor replicas if absent.
    #[arg(long, default_value = "odradek-bench")]
    pub topic: String,
    /// Partitions of the topic if it has to be created.
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
    /// Replicas of each partition if the topic has to be created.
    #[arg(long, default_value_t = 1)]
    pub replication_factor: i16,
    /// Producer connections (threads), each writing to every partition.
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Consumers (threads); without --group, partitions are split statically among them.
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// Consumers join this consumer group (range assignment, committed offsets, eager
    /// rebalances); they start at the group's committed offsets, else at --from.
    #[arg(long)]
    pub group: Option<String>,
    /// Record value size in bytes: fixed (`100`, `1KiB`) or uniform range (`64..1024`).
    #[arg(long, default_value = "100")]
    pub record_size: SizeDist,
    /// Keys: `none` (sticky partitioning), `uniform:N` or `zipf:N[:S]` (murmur2 partitioning).
    #[arg(long, default_value = "none")]
    pub keys: KeyDist,
    /// Batch compression.
    #[arg(long, value_parser = crate::codec_arg::parser(), default_value = "none")]
    #[serde(serialize_with = "crate::codec_arg::serialize")]
    pub compression: Codec,
    /// Bytes of records (uncompressed) per partition batch before it is sent.
    #[arg(long, value_parser = crate::units::parse_size, default_value = "16KiB")]
    pub batch_size: u64,
    /// Longest a non-full batch waits for more records (0: sent at the end of each round).
    #[arg(long, value_parser = crate::units::parse_duration, default_value = "0ms")]
    #[serde(serialize_with = "ser_duration")]
    pub linger: Duration,
    /// acks: 0, 1 or all (-1).
    #[arg(long, value_parser = parse_acks, default_value = "1")]
    pub acks: i16,
    /// Idempotent producer (InitProducerId, sequence numbers; needs acks=all, ≤ 5 in flight).
    #[arg(long)]
    pub idempotence: bool,
    /// Open loop at this total rate (records/s), latency from each record's intended send time;
    /// without it, closed loop (as fast as the in-flight bound allows).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Produce requests in flight per connection.
    #[arg(long, default_value_t = 5)]
    pub max_in_flight: usize,
    /// How long producers (or consumers, for `consume`) run.
    #[arg(long, value_parser = crate::units::parse_duration, default_value = "10s")]
    #[serde(serialize_with = "ser_duration")]
    pub duration: Duration,
    /// Stop after this many records in total (across producers; for `consume`, consumed).
    #[arg(long)]
    pub records: Option<u64>,
    /// Records acknowledged (or consumed) during the first WARMUP are not measured.
    #[arg(long, value_parser = crate::units::parse_duration, default_value = "0s")]
    #[serde(serialize_with = "ser_duration")]
    pub warmup: Duration,
    /// Where consumers start (`consume`; `e2e` always tails from the latest offset).
    #[arg(long, value_enum, default_value = "earliest")]
    pub from: From,
    /// e2e: how long consumers may take, after producers stop, to receive every record.
    #[arg(long, value_parser = crate::units::parse_duration, default_value = "10s")]
    #[serde(serialize_with = "ser_duration")]
    pub drain_timeout: Duration,
    /// Pin the bench's threads to these CPUs, round-robin (e.g. `1` or `0,1`).
    #[arg(long, value_delimiter = ',')]
    pub cpus: Vec<usize>,
    /// Name of this run in tables, plots and comparisons (default: workload and broker).
    #[arg(long)]
    pub label: Option<String>,
    /// Write the JSON summary here (and the `.hgrm` distributions next to it).
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Write an SVG percentile plot of this run here.
    #[arg(long)]
    pub svg: Option<std::path::PathBuf>,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Seed of the record contents, sizes and keys.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Tries of a partition's Produce or Fetch (the first included) after a stale-route error
    /// (the leader moved, an election, a topic not known yet) or a lost connection, each at the
    /// leader found anew; past them the run fails naming the partition.
    #[arg(long, default_value_t = 10)]
    pub retries: u32,
    /// Longest a partition keeps retrying (backoff 50 ms, doubling up to 1 s).
    #[arg(long, value_parser = crate::units::parse_duration, default_value = "10s")]
    #[serde(serialize_with = "ser_duration")]
    pub retry_timeout: Duration,
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn parse_acks(s: &str) -> Result<i16, String> {
    match s {
        "all" | "-1" => Ok(-1),
        "0" => Ok(0),
        "1" => Ok(1),
        _ => Err(format!("acks `{s}` is not 0, 1 or all")),
    }
}

impl LoadArgs {
    /// The retry bound of every request of the run.
    fn retry(&self) -> Retry {
        Retry { attempts: self.retries, timeout: self.retry_timeout, ..Retry::default() }
    }

    fn validate(&self, w: Workload) -> Result<()> {
        if !(1..=1000).contains(&self.retries) {
            bail!("--retries must be 1..=1000");
        }
        if self.partitions < 1 || self.partitions > 100_000 {
            bail!("--partitions must be 1..=100000");
        }
        if !(1..=1024).contains(&self.producers) || !(1..=1024).contains(&self.consumers) {
            bail!("--producers and --consumers must be 1..=1024");
        }
        if !(1..=1024).contains(&self.max_in_flight) {
            bail!("--max-in-flight must be 1..=1024");
        }
        if self.batch_size < 1 || self.batch_size > 64 << 20 {
            bail!("--batch-size must be 1 B..=64 MiB");
        }
        if self.rate.is_some_and(|r| !(r > 0.0 && r <= 1e9)) {
            bail!("--rate must be in (0, 1e9]");
        }
        if self.idempotence && (self.acks != -1 || self.max_in_flight > 5) {
            bail!("--idempotence needs --acks all and --max-in-flight ≤ 5");
        }
        if w == Workload::E2e && self.record_size.max() < STAMP_BYTES {
            bail!("e2e needs records of at least {STAMP_BYTES} bytes (the embedded timestamp)");
        }
        if w == Workload::E2e && self.acks == 0 {
            bail!("e2e needs acks 1 or all (it checks every acknowledged record is consumed)");
        }
        Ok(())
    }
}

/// Counters shared by every thread of a run, read by the progress line.
#[derive(Debug, Default)]
struct Shared {
    produced: AtomicU64,
    consumed: AtomicU64,
    errors: AtomicU64,
    /// Latencies so far of every thread together, merged into once a second by each thread,
    /// read by the progress line (its "p99 so far").
    produce_so_far: Mutex<Option<Histogram<u64>>>,
    e2e_so_far: Mutex<Option<Histogram<u64>>>,
    /// Consumers stop once `consumed` reaches this (u64::MAX: not known yet).
    consume_target: AtomicU64,
    stop: AtomicBool,
}

/// Adds what `hist` recorded since `published` to `so_far`; `published` becomes `hist`.
fn publish(
    so_far: &Mutex<Option<Histogram<u64>>>,
    hist: &Histogram<u64>,
    published: &mut Histogram<u64>,
) {
    let mut delta = hist.clone();
    if delta.subtract(&*published).is_err() {
        return;
    }
    if let Ok(mut merged) = so_far.lock() {
        match merged.as_mut() {
            Some(h) => {
                let _ = h.add(&delta);
            }
            None => *merged = Some(delta),
        }
    }
    published.clone_from(hist);
}

/// The 99th percentile of what `so_far` holds (0 before anything was merged).
fn p99_so_far(so_far: &Mutex<Option<Histogram<u64>>>) -> u64 {
    so_far.lock().ok().and_then(|h| h.as_ref().map(|h| h.value_at_quantile(0.99))).unwrap_or(0)
}

/// What a thread measured.
#[derive(Debug)]
struct Part {
    hist: Histogram<u64>,
    /// Records and payload bytes acknowledged/consumed in total and after the warm-up.
    records: u64,
    measured: u64,
    measured_bytes: u64,
    errors: u64,
    /// Records a fetch returned twice (same partition and offset), not counted as consumed.
    repeated: u64,
    /// e2e records stamped before the run began (an earlier run's), not counted as consumed.
    stale: u64,
    /// Last time (µs) a record was acknowledged or consumed.
    last_us: u64,
    /// The broker's stage times, from the responses that carry them (Odradek's).
    stages: Breakdown,
}

impl Part {
    fn new() -> Part {
        Part {
            hist: new_histogram(),
            records: 0,
            measured: 0,
            measured_bytes: 0,
            errors: 0,
            repeated: 0,
            stale: 0,
            last_us: 0,
            stages: Breakdown::default(),
        }
    }

    fn merge(&mut self, o: Part) {
        // Same bounds everywhere: adding cannot fail.
        let _ = self.hist.add(&o.hist);
        self.records += o.records;
        self.measured += o.measured;
        self.measured_bytes += o.measured_bytes;
        self.errors += o.errors;
        self.repeated += o.repeated;
        self.stale += o.stale;
        self.last_us = self.last_us.max(o.last_us);
        self.stages.merge(o.stages);
    }
}

/// The leaders every thread of a run routes by. A thread that learns a leader moved (from an
/// answer's hints or a Metadata refresh) or that a connection broke publishes it here; the
/// others notice at their next request, by one atomic load of the generation.
#[derive(Debug, Default)]
struct Board {
    routes: Mutex<Routes>,
    generation: AtomicU64,
}

impl Board {
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Makes every thread look at the routes again (a connection broke).
    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Merges what `c` knows; bumps the generation if a leader changed.
    fn push(&self, c: &Cluster) {
        if let Ok(mut r) = self.routes.lock()
            && r.merge(c.routes().clone())
        {
            self.bump();
        }
    }

    /// Gives `c` what the board knows.
    fn pull(&self, c: &mut Cluster) {
        let routes = self.routes.lock().map(|r| r.clone()).unwrap_or_default();
        c.adopt(routes);
    }
}

/// Everything a worker thread needs to know.
#[derive(Debug, Clone)]
struct Plan {
    args: Arc<LoadArgs>,
    clock: Clock,
    shared: Arc<Shared>,
    /// Partitions of the topic.
    partitions: i32,
    /// The partitions' leaders, shared by every thread.
    board: Arc<Board>,
    topic: TopicName,
    /// When (µs) the run began, before any thread started: every record this run produces has a
    /// stamp at or after it, so an e2e consumer can tell records of an earlier run.
    begun_us: u64,
}

fn pin(cpus: &[usize], slot: usize) {
    if cpus.is_empty() {
        return;
    }
    let id = cpus[slot % cpus.len()];
    if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
        tracing::warn!(cpu = id, "could not pin a thread");
    }
}

impl Plan {
    /// A thread's own client of the topic (its own connections), knowing what the board knows.
    fn cluster(&self) -> Cluster {
        let mut c =
            Cluster::new(&self.args.brokers, CLIENT_ID, &self.args.topic, self.args.retry());
        self.board.pull(&mut c);
        c
    }
}

/// Runs one workload and returns its summary.
pub fn run(workload: Workload, args: LoadArgs) -> Result<Summary> {
    args.validate(workload)?;
    let clock = Clock::new();
    let mut cluster = Cluster::new(&args.brokers, CLIENT_ID, &args.topic, args.retry());
    cluster.set_replication_factor(args.replication_factor);
    cluster.ensure_topic(args.partitions)?;
    let board = Board::default();
    board.push(&cluster);
    let shared = Arc::new(Shared { consume_target: AtomicU64::new(u64::MAX), ..Shared::default() });
    let plan = Plan {
        args: Arc::new(args.clone()),
        clock,
        shared: shared.clone(),
        partitions: cluster.routes().partitions(),
        board: Arc::new(board),
        topic: TopicName(StrBytes::from(args.topic.clone())),
        begun_us: clock.now_us(),
    };
    let consumers = if workload == Workload::Produce { 0 } else { args.consumers };
    let producers = if workload == Workload::Consume { 0 } else { args.producers };
    let offsets =
        if consumers > 0 { start_offsets(&plan, &mut cluster, workload)? } else { BTreeMap::new() };
    drop(cluster); // every thread has its own connections
    if workload == Workload::Consume {
        let available: u64 = offsets.values().map(|(s, e)| e.saturating_sub(*s) as u64).sum();
        // A group starts at its committed offsets, so "what the topic held" is not its target.
        let target = match (args.records, args.from) {
            (Some(n), _) => n,
            (None, From::Earliest) if args.group.is_none() => available,
            (None, _) => u64::MAX,
        };
        shared.consume_target.store(target, Ordering::Relaxed);
    }
    let barrier = Arc::new(Barrier::new(producers + consumers + 1));
    let mut slot = 0;
    let mut consumer_threads = Vec::new();
    let starts: Arc<BTreeMap<i32, i64>> =
        Arc::new(offsets.iter().map(|(p, (s, _))| (*p, *s)).collect());
    for c in 0..consumers {
        let (plan, barrier, e2e, starts) =
            (plan.clone(), barrier.clone(), workload == Workload::E2e, starts.clone());
        let s = slot;
        slot += 1;
        consumer_threads.push(spawn(format!("consumer-{c}"), move || {
            pin(&plan.args.cpus, s);
            consumer(&plan, c, &starts, e2e, &barrier)
        })?);
    }
    let mut producer_threads = Vec::new();
    for p in 0..producers {
        let (plan, barrier) = (plan.clone(), barrier.clone());
        let s = slot;
        slot += 2;
        producer_threads
            .push(spawn(format!("producer-{p}"), move || producer(&plan, p, s, &barrier))?);
    }
    barrier.wait();
    let start_us = clock.now_us();
    let progress = spawn_progress(&plan, workload, start_us)?;
    let mut first_err = None;
    let produced = join_all(producer_threads, &shared, &mut first_err);
    let produce_end_us = clock.now_us();
    if workload == Workload::E2e {
        shared.consume_target.store(produced.records, Ordering::Relaxed);
    }
    let consumed = join_all(consumer_threads, &shared, &mut first_err);
    shared.stop.store(true, Ordering::Relaxed);
    let _ = progress.join();
    if let Some(e) = first_err {
        return Err(e);
    }
    let end_us = clock.now_us();
    let warm_us = args.warmup.as_micros() as u64;
    let side = |part: &Part, until_us: u64| Side {
        records: part.records,
        measured_records: part.measured,
        seconds: (until_us.saturating_sub(start_us + warm_us)).max(1) as f64 / 1e6,
        measured_bytes: part.measured_bytes,
        errors: part.errors,
    };
    let mut hists = BTreeMap::new();
    let produce = (producers > 0)
        .then(|| side(&produced, produced.last_us.max(start_us).min(produce_end_us)));
    if producers > 0 && args.acks != 0 {
        hists.insert("produce".to_owned(), produced.hist);
    }
    let consume =
        (consumers > 0).then(|| side(&consumed, consumed.last_us.max(start_us).min(end_us)));
    if workload == Workload::E2e {
        hists.insert("e2e".to_owned(), consumed.hist);
    }
    let mut summary = Summary::new(workload, &args, produce, consume, hists);
    let mut stages = produced.stages;
    stages.merge(consumed.stages);
    summary.breakdown = stages.figures();
    if consumed.repeated > 0 {
        summary
            .notes
            .push(format!("the broker returned {} records twice (same offset)", consumed.repeated));
    }
    if consumed.stale > 0 {
        summary.notes.push(format!(
            "{} records older than this run arrived: the latest offset the broker listed at start \
             was behind its log end",
            consumed.stale
        ));
    }
    if workload == Workload::E2e && consumed.records != produced.records {
        summary.notes.push(format!(
            "consumed {} records but {} were acknowledged",
            consumed.records, produced.records
        ));
    }
    Ok(summary)
}

/// Joins `threads`, merging what they measured; the first error stops the run and is kept.
fn join_all(
    threads: Vec<JoinHandle<Result<Part>>>,
    shared: &Shared,
    first_err: &mut Option<anyhow::Error>,
) -> Part {
    let mut all = Part::new();
    for t in threads {
        match t.join().map_err(|_| anyhow!("a worker thread panicked")).and_then(|r| r) {
            Ok(part) => all.merge(part),
            Err(e) => {
                shared.stop.store(true, Ordering::Relaxed);
                first_err.get_or_insert(e);
            }
        }
    }
    all
}

fn spawn<T: Send + 'static>(
    name: String,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>> {
    std::thread::Builder::new().name(name).spawn(f).context("spawning a thread")
}

/// Connects to the first broker of a comma-separated list that answers.
fn bootstrap(brokers: &str) -> Result<Conn> {
    let mut last = None;
    for b in brokers.split(',').map(str::trim).filter(|b| !b.is_empty()) {
        match Conn::connect_as(b, CLIENT_ID) {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(anyhow::Error::from(e)),
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("no broker given")))
}

/// Start and end offsets of every partition, asked of each partition's leader (following it if
/// it moves).
fn start_offsets(
    plan: &Plan,
    cluster: &mut Cluster,
    workload: Workload,
) -> Result<BTreeMap<i32, (i64, i64)>> {
    let parts: Vec<i32> = (0..plan.partitions).collect();
    let from_latest = workload == Workload::E2e || plan.args.from == From::Latest;
    let latest = cluster.list_offsets(&parts, -1)?;
    let earliest = cluster.list_offsets(&parts, -2)?;
    plan.board.push(cluster);
    let mut out = BTreeMap::new();
    for p in parts {
        let (e, l) = (earliest.get(&p).copied().unwrap_or(0), latest.get(&p).copied().unwrap_or(0));
        out.insert(p, (if from_latest { l } else { e }, l));
    }
    Ok(out)
}

fn spawn_progress(plan: &Plan, workload: Workload, start_us: u64) -> Result<JoinHandle<()>> {
    let (shared, clock, quiet) = (plan.shared.clone(), plan.clock, plan.args.quiet);
    spawn("progress".to_owned(), move || {
        let (mut last_p, mut last_c, mut last_us) = (0, 0, start_us);
        while !shared.stop.load(Ordering::Relaxed) {
            // Sleep a second in short steps so the end of the run is not delayed.
            for _ in 0..20 {
                if shared.stop.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let now = clock.now_us();
            let (p, c) =
                (shared.produced.load(Ordering::Relaxed), shared.consumed.load(Ordering::Relaxed));
            let secs = (now - last_us).max(1) as f64 / 1e6;
            if !quiet {
                let mut line = format!("[{:>5.1}s]", (now - start_us) as f64 / 1e6);
                if workload != Workload::Consume {
                    let p99 = crate::report::fmt_us(p99_so_far(&shared.produce_so_far));
                    line += &format!(
                        "  produced {:>9.0} rec/s  produce p99 {p99:>8}",
                        (p - last_p) as f64 / secs
                    );
                }
                if workload != Workload::Produce {
                    line += &format!("  consumed {:>9.0} rec/s", (c - last_c) as f64 / secs);
                }
                if workload == Workload::E2e {
                    line += &format!(
                        "  e2e p99 {:>8}",
                        crate::report::fmt_us(p99_so_far(&shared.e2e_so_far))
                    );
                }
                eprintln!("{line}  errors {}", shared.errors.load(Ordering::Relaxed));
            }
            (last_p, last_c, last_us) = (p, c, now);
        }
    })
    .context("spawning the progress thread")
}

/// A Produce request sent and not yet answered.
#[derive(Debug)]
struct InFlight {
    correlation_id: i32,
    /// (partition, records, payload bytes) per batch, in request order.
    batches: Vec<(i32, u32, u64)>,
    /// Each batch's encoded records (shared with the request), to send again if its leader
    /// moved.
    data: Vec<Bytes>,
    /// Each record's stamp (intended or creation time, µs), batch after batch.
    stamps: Vec<u64>,
}

/// Records of one partition waiting to be sent.
#[derive(Debug)]
struct Acc {
    builder: BatchBuilder,
    stamps: Vec<u64>,
    bytes: u64,
    /// When (µs) the first record was added.
    since_us: u64,
    sequence: i32,
}

/// One producer connection to one leader.
struct Link {
    addr: String,
    writer: Writer,
    version: i16,
    tx: Option<SyncSender<InFlight>>,
    reader: Option<JoinHandle<Result<Part>>>,
    /// Set when the connection failed: the writer replaces the link, its reader sends what is
    /// still in flight again through its own connections.
    broken: Arc<AtomicBool>,
}

struct Producer<'a> {
    plan: &'a Plan,
    /// CPU slot of this producer (its readers take the next one).
    slot: usize,
    /// The writer's client of the topic: its routes, and Metadata when a leader is unknown.
    cluster: Cluster,
    /// The board generation the links were laid out for (None: not yet).
    seen: Option<u64>,
    links: Vec<Link>,
    /// What the readers of links already closed measured.
    retired: Part,
    /// Link of each partition.
    link_of: Vec<usize>,
    accs: Vec<Acc>,
    stamp: ProducerStamp,
    out: Vec<u8>,
    acks: i16,
}

fn producer(plan: &Plan, id: usize, slot: usize, barrier: &Barrier) -> Result<Part> {
    let mut p = Producer::new(plan, slot);
    let setup = p.connect();
    barrier.wait();
    pin(&plan.args.cpus, slot);
    let result = setup.and_then(|()| p.generate(id));
    // A reader's error (a partition that found no leader within the bound) is the cause of the
    // writer's ("the response reader of a producer stopped"), so it is the one reported.
    match (p.finish(), result) {
        (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        (Ok(part), Ok(())) => Ok(part),
    }
}

/// Opens a pipelined link to `addr` and its reader thread.
fn open_link(plan: &Plan, addr: &str, slot: usize) -> Result<Link, ClientError> {
    let c = Conn::connect_as(addr, CLIENT_ID)?;
    let version = c.versions().pick::<ProduceRequest>()?;
    let (writer, reader) = c.split()?;
    let (tx, rx) = sync_channel(plan.args.max_in_flight);
    let broken = Arc::new(AtomicBool::new(false));
    let (rplan, acks, rbroken) = (plan.clone(), plan.args.acks, broken.clone());
    let reader = spawn("producer-reader".to_owned(), move || {
        pin(&rplan.args.cpus, slot + 1);
        read_acks(&rplan, reader, rx, version, acks, &rbroken)
    })
    .map_err(|e| ClientError::Unexpected { what: format!("{e:#}") })?;
    Ok(Link { addr: addr.to_owned(), writer, version, tx: Some(tx), reader: Some(reader), broken })
}

impl<'a> Producer<'a> {
    fn new(plan: &'a Plan, slot: usize) -> Producer<'a> {
        let args = &plan.args;
        let accs = (0..plan.partitions)
            .map(|_| Acc {
                builder: BatchBuilder::new(args.compression),
                stamps: Vec::new(),
                bytes: 0,
                since_us: 0,
                sequence: 0,
            })
            .collect();
        Producer {
            plan,
            slot,
            cluster: plan.cluster(),
            seen: None,
            links: Vec::new(),
            retired: Part::new(),
            link_of: Vec::new(),
            accs,
            stamp: ProducerStamp::NONE,
            out: Vec::new(),
            acks: args.acks,
        }
    }

    /// Opens a link to each leader and, for an idempotent producer, takes a producer id.
    fn connect(&mut self) -> Result<()> {
        self.reroute()?;
        if self.plan.args.idempotence {
            let addr = self.links.first().map(|l| l.addr.clone()).context("no producer link")?;
            let (pid, epoch) = self.cluster.conn(&addr)?.init_producer_id()?;
            self.cluster.forget(&addr);
            self.stamp = ProducerStamp { producer_id: pid, epoch, base_sequence: 0 };
        }
        Ok(())
    }

    /// Lays the links out again if the board changed since they were (a leader moved, a
    /// connection broke): one link per leader. One atomic load when nothing changed.
    ///
    /// Every old link is closed and its reader joined first, so every batch sent before (and
    /// any it had to send again at a new leader) is answered before a later batch of the same
    /// partition leaves: an idempotent producer's sequence numbers reach each leader in order.
    fn reroute(&mut self) -> Result<()> {
        let generation = self.plan.board.generation();
        if self.seen == Some(generation) {
            return Ok(());
        }
        let mut first_err = None;
        for l in std::mem::take(&mut self.links) {
            if let Err(e) = self.retire(l) {
                first_err.get_or_insert(e);
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        // Read after the readers ended, so what they learnt is in.
        self.seen = Some(self.plan.board.generation());
        self.plan.board.pull(&mut self.cluster);
        let mut pool: BTreeMap<String, Link> = BTreeMap::new();
        let mut link_of = Vec::with_capacity(self.accs.len());
        for p in 0..self.accs.len() as i32 {
            match route(self.plan, &mut self.cluster, &mut pool, self.slot, p) {
                Ok(addr) => link_of.push(addr),
                Err(e) => {
                    for l in pool.into_values() {
                        let _ = self.retire(l);
                    }
                    return Err(e.into());
                }
            }
        }
        self.links = pool.into_values().collect();
        self.link_of = link_of
            .iter()
            .map(|a| self.links.iter().position(|l| &l.addr == a).unwrap_or(0))
            .collect();
        self.plan.board.push(&self.cluster);
        Ok(())
    }

    /// Closes a link's sending side and waits for its reader, which ends once it has answered
    /// (or sent again, within the retry bound) what is in flight.
    fn retire(&mut self, mut l: Link) -> Result<()> {
        l.tx = None;
        if let Some(r) = l.reader.take() {
            self.retired.merge(r.join().map_err(|_| anyhow!("a producer reader panicked"))??);
        }
        Ok(())
    }

    /// Generates records until the duration or the record quota is reached.
    fn generate(&mut self, id: usize) -> Result<()> {
        let args = self.plan.args.clone();
        let clock = self.plan.clock;
        let producers = args.producers as u64;
        let quota = args.records.map(|n| n / producers + u64::from((id as u64) < n % producers));
        let start_us = clock.now_us();
        let end_us = start_us + args.duration.as_micros() as u64;
        let mut pacer = args.rate.map(|r| Pacer::new(start_us, r / producers as f64));
        let mut rng = Rng::new(args.seed.wrapping_add(id as u64));
        let noise: Vec<u8> =
            (0..args.record_size.max() + 4096).map(|_| rng.next_u64() as u8).collect();
        let keys = KeySampler::new(&args.keys);
        let partitions = self.accs.len();
        let mut sticky = id % partitions;
        let (mut value, mut key) = (Vec::with_capacity(args.record_size.max()), Vec::new());
        let per_round = (args.batch_size as f64 / (args.record_size.mean() + 16.0))
            .ceil()
            .clamp(1.0, ROUND_RECORDS_MAX as f64) as u64;
        let linger_us = args.linger.as_micros() as u64;
        let mut generated = 0u64;
        loop {
            let now = clock.now_us();
            let left = quota.map_or(u64::MAX, |q| q - generated);
            if now >= end_us || left == 0 || self.plan.shared.stop.load(Ordering::Relaxed) {
                break;
            }
            let n = match &pacer {
                Some(p) => p.due(now).min(ROUND_RECORDS_MAX),
                None => per_round,
            }
            .min(left);
            if n == 0 {
                self.flush(|a| now >= a.since_us + linger_us)?;
                let mut wake = pacer.as_ref().map_or(end_us, Pacer::next_due_us).min(end_us);
                if let Some(oldest) =
                    self.accs.iter().filter(|a| a.builder.count() > 0).map(|a| a.since_us).min()
                {
                    wake = wake.min(oldest + linger_us);
                }
                if wake > now {
                    std::thread::sleep(Duration::from_micros(wake - now));
                }
                continue;
            }
            for _ in 0..n {
                let stamp = pacer.as_mut().map_or(now, Pacer::take);
                let size = args.record_size.sample(&mut rng);
                let off = rng.below(4096) as usize;
                value.clear();
                value.extend_from_slice(&noise[off..off + size]);
                if size >= STAMP_BYTES {
                    value[..STAMP_BYTES].copy_from_slice(&stamp.to_be_bytes());
                }
                let k = keys.sample(&mut rng);
                let p = match k {
                    Some(k) => {
                        key_bytes(k, &mut key);
                        partition_for_key(&key, partitions as u32) as usize
                    }
                    None => sticky,
                };
                let acc = &mut self.accs[p];
                if acc.builder.count() == 0 {
                    acc.since_us = now;
                }
                acc.builder.push((stamp / 1000) as i64, k.map(|_| &key[..]), &value)?;
                acc.stamps.push(stamp);
                acc.bytes += (size + k.map_or(0, |_| key.len())) as u64;
                if acc.builder.records_bytes() as u64 >= args.batch_size {
                    if k.is_none() {
                        sticky = (sticky + 1) % partitions;
                    }
                    self.flush_one(p)?;
                }
            }
            generated += n;
            self.flush(|a| now >= a.since_us + linger_us)?;
        }
        self.flush(|_| true)
    }

    fn flush_one(&mut self, p: usize) -> Result<()> {
        self.reroute()?;
        let link = self.link_of[p];
        self.send(link, &[p])
    }

    /// Sends every non-empty batch `due` selects, one request per link.
    fn flush(&mut self, due: impl Fn(&Acc) -> bool) -> Result<()> {
        self.reroute()?;
        for link in 0..self.links.len() {
            let ready: Vec<usize> = (0..self.accs.len())
                .filter(|&p| {
                    self.link_of[p] == link
                        && self.accs[p].builder.count() > 0
                        && due(&self.accs[p])
                })
                .collect();
            if !ready.is_empty() {
                self.send(link, &ready)?;
            }
        }
        Ok(())
    }

    fn send(&mut self, link: usize, parts: &[usize]) -> Result<()> {
        let mut data = Vec::with_capacity(parts.len());
        let mut flight = InFlight {
            correlation_id: 0,
            batches: Vec::with_capacity(parts.len()),
            data: Vec::with_capacity(parts.len()),
            stamps: Vec::new(),
        };
        for &p in parts {
            let acc = &mut self.accs[p];
            let count = acc.builder.count();
            let stamp = if self.stamp.producer_id >= 0 {
                ProducerStamp { base_sequence: acc.sequence, ..self.stamp }
            } else {
                self.stamp
            };
            acc.builder.finish(stamp, &mut self.out)?;
            acc.sequence = acc.sequence.wrapping_add(count);
            let batch = Bytes::from(std::mem::take(&mut self.out));
            if self.acks != 0 {
                flight.data.push(batch.clone());
            }
            data.push((p as i32, batch));
            flight.batches.push((p as i32, count as u32, acc.bytes));
            flight.stamps.append(&mut acc.stamps);
            acc.bytes = 0;
        }
        let req = requests::produce(self.plan.topic.clone(), self.acks, PRODUCE_TIMEOUT_MS, data);
        let l = &mut self.links[link];
        let shared = &self.plan.shared;
        if self.acks == 0 {
            let n: u64 = flight.batches.iter().map(|b| u64::from(b.1)).sum();
            match l.writer.send(l.version, &req) {
                Ok(_) => shared.produced.fetch_add(n, Ordering::Relaxed),
                Err(e) if e.is_retriable() => {
                    // Nobody answers acks=0: the records are lost; the link is replaced.
                    tracing::warn!(broker = %l.addr, error = %e, records = n, "produce failed");
                    broken_link(self.plan, l);
                    shared.errors.fetch_add(n, Ordering::Relaxed)
                }
                Err(e) => return Err(e.into()),
            };
            return Ok(());
        }
        flight.correlation_id = l.writer.next_correlation_id();
        let tx = l.tx.as_ref().ok_or_else(|| anyhow!("producer link already closed"))?;
        // Blocks while max_in_flight requests are unanswered: the in-flight bound.
        tx.send(flight).map_err(|_| anyhow!("the response reader of a producer stopped"))?;
        match l.writer.send(l.version, &req) {
            Ok(_) => Ok(()),
            // The reader has the batches: it sends them again at their leaders.
            Err(e) if e.is_retriable() => {
                tracing::warn!(broker = %l.addr, error = %e, "producer connection lost");
                broken_link(self.plan, l);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Closes the links and gathers what the readers measured.
    fn finish(mut self) -> Result<Part> {
        let mut first_err = None;
        for l in std::mem::take(&mut self.links) {
            if let Err(e) = self.retire(l) {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(self.retired),
        }
    }
}

/// Marks `l` broken after a failed send: its socket is shut so its reader stops waiting for
/// answers that will not come, and every writer lays its links out again.
fn broken_link(plan: &Plan, l: &Link) {
    l.writer.shutdown();
    l.broken.store(true, Ordering::Release);
    plan.board.bump();
}

/// The address of partition `p`'s leader, with a link to it in `pool` (opened if need be):
/// Metadata is asked again, under the run's retry bound, while the leader is unknown or cannot
/// be reached.
fn route(
    plan: &Plan,
    cluster: &mut Cluster,
    pool: &mut BTreeMap<String, Link>,
    slot: usize,
    p: i32,
) -> Result<String, ClientError> {
    let policy = *cluster.retry();
    let topic = plan.args.topic.clone();
    with_retries(
        &policy,
        || format!("connecting to the leader of {topic}/{p}"),
        std::thread::sleep,
        |n| {
            if n > 0 || cluster.routes().addr_of(p).is_none() {
                cluster.refresh_quietly();
            }
            let addr = cluster.leader_addr(p)?;
            if !pool.contains_key(&addr) {
                let link = open_link(plan, &addr, slot)?;
                pool.insert(addr.clone(), link);
            }
            Ok(addr)
        },
    )
}

/// Reads Produce responses in order and records each record's latency. A batch refused for a
/// stale route, or every batch in flight once the connection is lost, is sent again at its
/// leader through this reader's own [`Cluster`] (under the run's retry bound); latency counts
/// to the answer that took it.
fn read_acks(
    plan: &Plan,
    mut reader: Reader,
    rx: Receiver<InFlight>,
    version: i16,
    acks: i16,
    broken: &AtomicBool,
) -> Result<Part> {
    let mut part = Part::new();
    if acks == 0 {
        return Ok(part); // no responses; producers counted records as they sent them
    }
    let warm_end = plan.clock.now_us() + plan.args.warmup.as_micros() as u64;
    let mut rec = Recorder::new(warm_end);
    let mut last_publish = 0u64;
    let mut published = crate::latency::new_histogram();
    // Opened at the first retry.
    let mut cluster: Option<Cluster> = None;
    let mut dead = false;
    while let Ok(flight) = rx.recv() {
        let answer = if dead || broken.load(Ordering::Acquire) {
            None
        } else {
            match reader.recv::<ProduceRequest>(flight.correlation_id, version) {
                Ok(resp) => Some(resp),
                Err(e) if e.is_retriable() => {
                    tracing::warn!(error = %e, "producer connection lost; sending again");
                    dead = true;
                    broken.store(true, Ordering::Release);
                    let c = cluster.get_or_insert_with(|| plan.cluster());
                    plan.board.pull(c);
                    c.refresh_quietly();
                    plan.board.push(c);
                    plan.board.bump();
                    None
                }
                Err(e) => return Err(e.into()),
            }
        };
        let mut now = plan.clock.now_us();
        let mut failed: Vec<(i32, i16)> = Vec::new();
        if let Some(resp) = &answer
            && !rec.in_warmup(now)
        {
            part.stages.record(&resp.unknown_tagged_fields);
        }
        if let Some(resp) = &answer {
            failed.extend(
                resp.responses
                    .iter()
                    .flat_map(|t| t.partition_responses.iter())
                    .filter(|p| p.error_code != 0)
                    .map(|p| (p.index, p.error_code)),
            );
            if failed.iter().any(|f| is_stale(f.1)) {
                // Where to send them again: the answer's hints, else a Metadata refresh.
                let c = cluster.get_or_insert_with(|| plan.cluster());
                plan.board.pull(c);
                if !c.apply_produce_hints(resp) {
                    c.refresh_quietly();
                }
                plan.board.push(c);
            }
        }
        let mut at = 0;
        for (i, &(p, n, bytes)) in flight.batches.iter().enumerate() {
            let stamps = flight.stamps.get(at..at + n as usize).unwrap_or_default();
            at += n as usize;
            let code = match &answer {
                Some(_) => failed.iter().find(|f| f.0 == p).map(|f| f.1),
                None => Some(LEADER_NOT_AVAILABLE), // unanswered: send it again
            };
            let mut code = code.unwrap_or(0);
            if is_stale(code) {
                let batch = flight.data.get(i).cloned().unwrap_or_default();
                let c = cluster.get_or_insert_with(|| plan.cluster());
                plan.board.pull(c);
                let sent = c.produce(p, acks, PRODUCE_TIMEOUT_MS, batch);
                plan.board.push(c);
                code = match sent {
                    Ok(_) => 0,
                    Err(ClientError::Broker { code, .. }) => code,
                    Err(e) => return Err(anyhow::Error::from(e)),
                };
                now = plan.clock.now_us();
            }
            if code != 0 {
                tracing::warn!(partition = p, error_code = code, records = n, "produce failed");
                part.errors += u64::from(n);
                plan.shared.errors.fetch_add(u64::from(n), Ordering::Relaxed);
                continue;
            }
            part.records += u64::from(n);
            part.last_us = now;
            if !rec.in_warmup(now) {
                part.measured += u64::from(n);
                part.measured_bytes += bytes;
                for &s in stamps {
                    rec.record(s, now);
                }
            }
            plan.shared.produced.fetch_add(u64::from(n), Ordering::Relaxed);
        }
        if now >= last_publish + 1_000_000 {
            last_publish = now;
            publish(&plan.shared.produce_so_far, &rec.hist, &mut published);
        }
    }
    part.hist = rec.hist;
    Ok(part)
}

/// A stale-route error code: the batch goes again to the partition's (new) leader.
fn is_stale(code: i16) -> bool {
    odradek_client::routing::is_stale_route(code)
}

/// The timestamp a producer embedded in the first bytes of `value` (at least [`STAMP_BYTES`]).
fn stamp_of(value: &[u8]) -> u64 {
    let mut s = [0u8; STAMP_BYTES];
    s.copy_from_slice(&value[..STAMP_BYTES]);
    u64::from_be_bytes(s)
}

/// A leader's address (None while it is unknown) and the (partition, next offset)s it leads.
type FetchGroup = (Option<String>, Vec<(i32, i64)>);

/// A consumer's partitions with their next offsets, grouped by leader, and its own client of
/// the topic (one connection per leader, reused from Fetch to Fetch).
struct Fetcher {
    cluster: Cluster,
    groups: Vec<FetchGroup>,
    /// The (board, cluster) generations `groups` were laid out for (None: not yet).
    seen: Option<(u64, u64)>,
    /// Consecutive stale-route or connection failures per partition, bounded by the run's
    /// retry bound.
    failures: Failures,
}

impl Fetcher {
    fn new(plan: &Plan, parts: Vec<(i32, i64)>) -> Fetcher {
        let cluster = plan.cluster();
        Fetcher { cluster, groups: vec![(None, parts)], seen: None, failures: Failures::default() }
    }

    /// Replaces the partitions (a new group assignment).
    fn set_parts(&mut self, parts: Vec<(i32, i64)>) {
        self.groups = vec![(None, parts)];
        self.seen = None;
        self.failures = Failures::default();
    }

    fn positions(&self) -> Vec<(i32, i64)> {
        self.groups.iter().flat_map(|(_, parts)| parts.iter().copied()).collect()
    }

    fn is_empty(&self) -> bool {
        self.groups.iter().all(|(_, parts)| parts.is_empty())
    }

    /// Groups the partitions by leader again if the routes changed since (two atomic loads
    /// when nothing did).
    fn regroup(&mut self, plan: &Plan) {
        let board = plan.board.generation();
        if self.seen.is_some_and(|(b, _)| b != board) {
            plan.board.pull(&mut self.cluster);
        }
        let now = (board, self.cluster.generation());
        if self.seen == Some(now) {
            return;
        }
        let routes = self.cluster.routes();
        let mut by: BTreeMap<Option<String>, Vec<(i32, i64)>> = BTreeMap::new();
        for (p, o) in self.positions() {
            by.entry(routes.addr_of(p).map(str::to_owned)).or_default().push((p, o));
        }
        self.groups = by.into_iter().collect();
        self.seen = Some(now);
    }

    /// Lays the partitions out and opens a connection to each leader (before the run starts).
    fn connect(&mut self, plan: &Plan) -> Result<()> {
        self.regroup(plan);
        for (addr, _) in &self.groups {
            if let Some(addr) = addr {
                self.cluster.conn(addr)?;
            }
        }
        Ok(())
    }

    /// One Fetch to each leader; a partition refused for a stale route (or on a connection that
    /// failed) is fetched again, from its leader found anew, in the next round: at once if the
    /// answer's hints named the leader (KIP-951), else after a Metadata refresh and a backoff.
    /// Its failures in a row are bounded by the run's retry bound.
    fn round(
        &mut self,
        plan: &Plan,
        decoder: &mut BatchDecoder,
        rec: &mut Recorder,
        part: &mut Part,
        e2e: bool,
    ) -> Result<()> {
        self.regroup(plan);
        let Fetcher { cluster, groups, failures, .. } = self;
        let generation = cluster.generation();
        let topic = plan.args.topic.as_str();
        let policy = *cluster.retry();
        let what = |p: i32| move || format!("fetch of {topic}/{p}");
        // The longest backoff a failed partition asks for; whether a partition failed this
        // round with no hint naming its new leader (then Metadata is asked, after the backoff).
        let (mut wait, mut unhinted) = (Duration::ZERO, false);
        for (addr, parts) in groups.iter_mut() {
            let Some(addr) = addr.as_deref() else {
                for &(p, _) in parts.iter() {
                    let why = ClientError::Broker {
                        what: format!("no known leader of {topic}/{p}"),
                        code: LEADER_NOT_AVAILABLE,
                    };
                    wait = wait.max(failures.failed(&policy, what(p), p, why)?);
                }
                unhinted = true;
                continue;
            };
            let resp = match cluster.conn(addr).and_then(|c| c.fetch(topic, parts, FETCH_LIMITS)) {
                Ok(r) => r,
                Err(e) if e.is_retriable() => {
                    tracing::warn!(broker = %addr, error = %e, "fetch failed; retrying");
                    if matches!(e, ClientError::Io { .. }) {
                        cluster.forget(addr);
                    }
                    for &(p, _) in parts.iter() {
                        let why = ClientError::Unexpected { what: format!("at {addr}: {e}") };
                        wait = wait.max(failures.failed(&policy, what(p), p, why)?);
                    }
                    unhinted = true;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let moved = cluster.apply_fetch_hints(&resp);
            let mut refused: Vec<(i32, i16)> = Vec::new();
            let n = fetch_once(plan, resp, parts, decoder, rec, part, e2e, &mut refused)?;
            plan.shared.consumed.fetch_add(n, Ordering::Relaxed);
            if !refused.is_empty() || !failures.is_empty() {
                for &(p, _) in parts.iter() {
                    match refused.iter().find(|r| r.0 == p) {
                        Some(&(_, code)) => {
                            let why = ClientError::Broker {
                                what: format!("Fetch {topic}/{p} at {addr}"),
                                code,
                            };
                            wait = wait.max(failures.failed(&policy, what(p), p, why)?);
                            unhinted |= !moved.contains(&p);
                        }
                        None => failures.succeeded(p),
                    }
                }
            }
        }
        if unhinted {
            cluster.refresh_quietly();
            std::thread::sleep(wait);
        }
        // What hints or Metadata taught this thread, for the others.
        if cluster.generation() != generation {
            plan.board.push(cluster);
        }
        Ok(())
    }
}

/// Fetches `partitions` (with their start offsets) from their leaders until the run's target or
/// deadline; with `e2e`, records each value's embedded timestamp against the arrival time.
fn consumer(
    plan: &Plan,
    index: usize,
    starts: &BTreeMap<i32, i64>,
    e2e: bool,
    barrier: &Barrier,
) -> Result<Part> {
    let setup = consumer_setup(plan, index, starts);
    barrier.wait();
    let (mut member, mut fetcher) = setup?;
    let args = &plan.args;
    let clock = plan.clock;
    let start = clock.now_us();
    let mut rec = Recorder::new(start + args.warmup.as_micros() as u64);
    let mut part = Part::new();
    let mut decoder = BatchDecoder::default();
    let shared = &plan.shared;
    let mut last_publish = 0u64;
    let mut published = crate::latency::new_histogram();
    let mut producers_done_at: Option<u64> = None;
    loop {
        let now = clock.now_us();
        let target = shared.consume_target.load(Ordering::Relaxed);
        if shared.consumed.load(Ordering::Relaxed) >= target {
            break;
        }
        if e2e {
            // Producers run for --duration; then consumers have --drain-timeout to catch up.
            if target != u64::MAX {
                let since = *producers_done_at.get_or_insert(now);
                if now > since + args.drain_timeout.as_micros() as u64 {
                    break;
                }
            } else if shared.stop.load(Ordering::Relaxed) {
                break;
            }
        } else if now >= start + args.duration.as_micros() as u64
            || shared.stop.load(Ordering::Relaxed)
        {
            break;
        }
        if fetcher.is_empty() {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        fetcher.round(plan, &mut decoder, &mut rec, &mut part, e2e)?;
        if let Some(m) = member.as_mut()
            && m.heartbeat()?
        {
            // Eager rebalance: commit what was read, give everything up, take the new share.
            m.commit(&fetcher.positions())?;
            let assigned = m.rejoin()?;
            fetcher.set_parts(group_parts(m, &assigned, starts)?);
            fetcher.connect(plan)?;
        }
        let now = clock.now_us();
        if now >= last_publish + 1_000_000 && e2e {
            last_publish = now;
            publish(&shared.e2e_so_far, &rec.hist, &mut published);
        }
    }
    if let Some(mut m) = member {
        m.commit(&fetcher.positions())?;
        m.leave();
    }
    part.hist = rec.hist;
    Ok(part)
}

/// Connects a consumer: with `--group`, joins and takes its assignment; otherwise partitions
/// `p` with `p % consumers == index`.
fn consumer_setup(
    plan: &Plan,
    index: usize,
    starts: &BTreeMap<i32, i64>,
) -> Result<(Option<group::Member>, Fetcher)> {
    let args = &plan.args;
    match &args.group {
        Some(g) => {
            let mut boot = bootstrap(&args.brokers)?;
            let (mut m, assigned) =
                group::Member::join(&mut boot, g, &args.topic, plan.partitions)?;
            let mut f = Fetcher::new(plan, group_parts(&mut m, &assigned, starts)?);
            f.connect(plan)?;
            Ok((Some(m), f))
        }
        None => {
            let n = args.consumers;
            let mine = starts
                .iter()
                .filter(|(p, _)| **p as usize % n == index)
                .map(|(p, o)| (*p, *o))
                .collect();
            let mut f = Fetcher::new(plan, mine);
            f.connect(plan)?;
            Ok((None, f))
        }
    }
}

/// A group member's `assigned` partitions with their start: the group's committed offset or,
/// where none is committed, the run's start offset.
fn group_parts(
    m: &mut group::Member,
    assigned: &[i32],
    starts: &BTreeMap<i32, i64>,
) -> Result<Vec<(i32, i64)>> {
    let committed = m.committed(assigned)?;
    Ok(assigned
        .iter()
        .map(|p| (*p, committed.get(p).or_else(|| starts.get(p)).copied().unwrap_or(0)))
        .collect())
}

/// Reads one Fetch answer for `parts` (partition, next offset), advancing the offsets; returns
/// the records consumed. Partitions refused for a stale route go to `refused` (fetched again at
/// their leader), other partition errors are counted.
#[allow(clippy::too_many_arguments)]
fn fetch_once(
    plan: &Plan,
    resp: FetchResponse,
    parts: &mut [(i32, i64)],
    decoder: &mut BatchDecoder,
    rec: &mut Recorder,
    part: &mut Part,
    e2e: bool,
    refused: &mut Vec<(i32, i16)>,
) -> Result<u64> {
    let now = plan.clock.now_us();
    let measuring = !rec.in_warmup(now);
    if measuring {
        part.stages.record(&resp.unknown_tagged_fields);
    }
    let mut n = 0u64;
    for t in resp.responses {
        for pd in t.partitions {
            let Some(slot) = parts.iter_mut().find(|x| x.0 == pd.partition_index) else { continue };
            if is_stale(pd.error_code) {
                refused.push((pd.partition_index, pd.error_code));
                continue;
            }
            if pd.error_code != 0 {
                tracing::warn!(
                    partition = pd.partition_index,
                    error_code = pd.error_code,
                    "fetch error"
                );
                part.errors += 1;
                plan.shared.errors.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let Some(records) = pd.records.as_ref() else { continue };
            let from = slot.1;
            let mut next = from;
            // Counts each offset once even if a response repeats one (a broker bug, reported).
            let mut cursor = from;
            let (mut count, mut bytes, mut repeated, mut stale) = (0u64, 0u64, 0u64, 0u64);
            decoder.decode(
                records,
                |b| next = next.max(b.last_offset + 1),
                |r| {
                    let (offset, key, value) = (r.offset, r.key, r.value.unwrap_or_default());
                    if offset < cursor {
                        repeated += u64::from(offset >= from);
                        return;
                    }
                    cursor = offset + 1;
                    if e2e && value.len() >= STAMP_BYTES && stamp_of(value) < plan.begun_us {
                        stale += 1; // written before this run: the start offset was not the end
                        return;
                    }
                    count += 1;
                    bytes += (value.len() + key.map_or(0, <[u8]>::len)) as u64;
                    if e2e && measuring && value.len() >= STAMP_BYTES {
                        rec.record(stamp_of(value), now);
                    }
                },
            )?;
            slot.1 = next;
            part.repeated += repeated;
            part.stale += stale;
            n += count;
            part.records += count;
            if count > 0 {
                part.last_us = now;
            }
            if measuring {
                part.measured += count;
                part.measured_bytes += bytes;
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::{BrokerId, MetadataResponse};

    fn args(extra: &[&str]) -> LoadArgs {
        args_of("produce", extra)
    }

    fn args_of(workload: &str, extra: &[&str]) -> LoadArgs {
        let argv = ["odradek-bench", workload].into_iter().chain(extra.iter().copied());
        let cli = <crate::Cli as clap::Parser>::try_parse_from(argv).expect("parses");
        match cli.command {
            crate::Command::Produce(a) | crate::Command::Consume(a) => a,
            _ => panic!("{workload}"),
        }
    }

    #[test]
    fn producers_follow_a_leader_that_moves_and_lose_nothing() {
        let (fake, boot) = crate::fake_broker::Fake::start("moving", 3, 0);
        let a = args_of(
            "produce",
            &["--brokers", &boot, "--topic", "moving", "--records", "3000", "--duration", "30s"],
        );
        let a = LoadArgs { keys: "uniform:100".parse().expect("keys"), quiet: true, ..a };
        let s = run(Workload::Produce, a).expect("the run follows the leader");
        let p = s.produce.expect("a produce side");
        assert_eq!((p.records, p.errors), (3000, 0));
        assert!(fake.refused.load(Ordering::Relaxed) >= 1, "broker 1 refused");
        assert_eq!(fake.accepted.load(Ordering::Relaxed), 3000, "broker 2 took every record");
    }

    #[test]
    fn a_partition_that_finds_no_leader_fails_the_run_naming_it() {
        let (fake, boot) = crate::fake_broker::Fake::start("nowhere", 1, 0);
        fake.nobody_leads.store(true, Ordering::Relaxed);
        let a = args_of(
            "produce",
            &["--brokers", &boot, "--topic", "nowhere", "--records", "10", "--retries", "3"],
        );
        let err = run(Workload::Produce, LoadArgs { quiet: true, ..a }).expect_err("no leader");
        let text = format!("{err:#}");
        assert!(text.contains("produce to nowhere/0"), "{text}");
        assert!(text.contains("3 tries") && text.contains("error code 6"), "{text}");
    }

    #[test]
    fn consumers_follow_a_leader_that_moves_and_read_everything() {
        let (fake, boot) = crate::fake_broker::Fake::start("moving-c", 2, 50);
        let a = args_of(
            "consume",
            &["--brokers", &boot, "--topic", "moving-c", "--consumers", "2", "--duration", "30s"],
        );
        let s = run(Workload::Consume, LoadArgs { quiet: true, ..a }).expect("follows");
        let c = s.consume.expect("a consume side");
        assert_eq!((c.records, c.errors), (100, 0));
        assert!(fake.refused.load(Ordering::Relaxed) >= 1, "broker 1 refused");
    }

    #[test]
    fn the_retry_flags_default_to_the_clients_bound_and_are_checked() {
        let a = args(&[]);
        assert_eq!(a.retry(), Retry::default());
        let a = args(&["--retries", "3", "--retry-timeout", "2s"]);
        assert_eq!(a.retry().attempts, 3);
        assert_eq!(a.retry().timeout, Duration::from_secs(2));
        assert!(args(&["--retries", "0"]).validate(Workload::Produce).is_err());
    }

    /// A cluster client knowing partition 0's leader is `leader` (of brokers 1 and 2).
    fn cluster_led_by(leader: i32) -> Cluster {
        let brokers = (1..=2)
            .map(|n| {
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(n))
                    .with_host(StrBytes::from_static_str("127.0.0.1"))
                    .with_port(9000 + n)
            })
            .collect();
        let p = MetadataResponsePartition::default()
            .with_partition_index(0)
            .with_leader_id(BrokerId(leader))
            .with_leader_epoch(leader);
        let t = MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
            .with_partitions(vec![p]);
        let resp = MetadataResponse::default().with_brokers(brokers).with_topics(vec![t]);
        let routes = Routes::from_metadata(&resp, "t").expect("ok").expect("exists");
        let mut c = Cluster::new("127.0.0.1:9001", CLIENT_ID, "t", Retry::default());
        c.adopt(routes);
        c
    }

    #[test]
    fn the_board_moves_its_generation_only_when_a_leader_moves() {
        let board = Board::default();
        board.push(&cluster_led_by(1));
        let g = board.generation();
        board.push(&cluster_led_by(1));
        assert_eq!(board.generation(), g, "nothing new");
        board.push(&cluster_led_by(2));
        assert!(board.generation() > g, "the leader moved");
        let mut other = Cluster::new("127.0.0.1:9001", CLIENT_ID, "t", Retry::default());
        board.pull(&mut other);
        assert_eq!(other.routes().addr_of(0), Some("127.0.0.1:9002"));
        let g = board.generation();
        board.bump();
        assert!(board.generation() > g, "a broken connection makes everyone look again");
    }

    #[test]
    fn the_progress_p99_merges_every_thread_and_can_come_down() {
        let so_far = Mutex::new(None);
        assert_eq!(p99_so_far(&so_far), 0, "nothing merged yet");
        let (mut a, mut b) = (crate::latency::new_histogram(), crate::latency::new_histogram());
        let (mut a_published, mut b_published) =
            (crate::latency::new_histogram(), crate::latency::new_histogram());
        // Thread a saw a slow second, thread b a fast one.
        a.record_n(50_000, 100).expect("record");
        b.record_n(1_000, 100).expect("record");
        publish(&so_far, &a, &mut a_published);
        publish(&so_far, &b, &mut b_published);
        let first = p99_so_far(&so_far);
        assert!((49_000..=51_000).contains(&first), "p99 of both threads: {first}");
        // Thread a's next second is fast: only what it recorded since is added, and the p99
        // so far comes down (a running maximum would not).
        a.record_n(1_000, 10_000).expect("record");
        publish(&so_far, &a, &mut a_published);
        publish(&so_far, &b, &mut b_published);
        let merged = so_far.lock().expect("lock").as_ref().map(Histogram::len);
        assert_eq!(merged, Some(10_200), "each record merged once");
        assert!(p99_so_far(&so_far) <= 1_001, "p99 now {}", p99_so_far(&so_far));
    }
}
