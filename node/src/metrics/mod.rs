//! The metrics room: what the node counts, and the Prometheus text it is scraped as.
//!
//! Two kinds of figures, kept two ways:
//! - **Hot counters** (requests, errors and latency per API, the stages of Produce and Fetch,
//!   device writes and fsyncs, connections, stalls, busy time, the recent-batch cache, ISR
//!   changes) live in one [`ShardStats`] per shard: relaxed atomics that only their shard
//!   writes, so counting costs an uncontended add and no lock. A scrape reads and sums them
//!   from the admin thread without asking the shards anything.
//! - **State** (each partition's offsets, size and bytes in and out; each group's committed
//!   offsets) stays where it lives, shard-local, and is collected at scrape time: the admin
//!   thread sends each shard one task ([`crate::runtime::Mesh::call`]) that copies it into a
//!   [`ShardSample`]. A scrape costs each shard one pass over its partitions and groups; an
//!   unscraped node pays nothing for it.
//!
//! [`render`] turns both into Prometheus's text format (version 0.0.4), every family with a
//! HELP line that names the Kafka or Redpanda metric it corresponds to.
//!
//! **Invariants.** Counters only grow (a restart starts them at zero, which Prometheus's
//! `rate()` understands); histograms are cumulative with fixed buckets ([`BUCKETS_US`]); label
//! values are escaped; nothing here blocks or allocates on a shard's hot path.
//!
//! **What it does not know.** Kafka requests, partitions or groups as such: rooms hand it plain
//! numbers and names. The HTTP side is [`http`].

pub mod http;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use odradek_client::stages::{Kind, Stage};

/// Upper bounds of the latency histograms' buckets, in microseconds (50 µs to 10 s); one more
/// bucket, `+Inf`, takes the rest.
pub const BUCKETS_US: [u64; 17] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];
const SLOTS: usize = BUCKETS_US.len() + 1;
/// API keys counted (Kafka's go up to ~80); a request with a larger key is counted as -1.
const API_SLOTS: usize = 128;

/// A latency histogram with fixed buckets, written by one shard and read by the scraper.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; SLOTS],
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let slot = BUCKETS_US.partition_point(|&b| b < us);
        self.counts[slot].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    fn read(&self) -> Counts {
        Counts {
            counts: std::array::from_fn(|i| self.counts[i].load(Relaxed)),
            sum_us: self.sum_us.load(Relaxed),
        }
    }
}

/// A histogram's figures at one moment (per bucket, not cumulative), addable across shards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    counts: [u64; SLOTS],
    sum_us: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
        self.sum_us += other.sum_us;
    }

    fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// One API's counters on one shard.
#[derive(Debug, Default)]
struct ApiStats {
    errors: AtomicU64,
    latency: Histogram,
}

/// The hot counters of one shard. Only that shard writes them (relaxed atomics: one
/// uncontended add each); the scraper reads them from another thread.
#[derive(Debug)]
pub struct ShardStats {
    pub shard: usize,
    apis: Box<[ApiStats]>,
    /// Stage histograms of Produce ([`Kind::Produce`]) and Fetch, by [`Stage`] discriminant.
    stages: [[Histogram; Stage::ALL.len()]; 2],
    pub connections: AtomicU64,
    pub connections_accepted: AtomicU64,
    pub connections_refused: AtomicU64,
    /// Connections the node closed for misbehaving, by [`crate::server::abuse::Abuse`] class.
    pub connections_closed: [AtomicU64; crate::server::abuse::Abuse::ALL.len()],
    /// SASL authentications that failed, and TLS handshakes that failed.
    pub auth_failures: AtomicU64,
    pub tls_handshake_failures: AtomicU64,
    /// Time connections were muted for exceeding a client quota, in microseconds.
    pub throttle_us: AtomicU64,
    pub stalls: AtomicU64,
    pub stall_us: AtomicU64,
    /// CPU time of the shard's thread, as last sampled by its stall watch.
    pub busy_us: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub isr_shrinks: AtomicU64,
    pub isr_expands: AtomicU64,
    /// Transactions this shard coordinated to completion, by outcome, and those aborted for
    /// their timeout.
    pub txn_commits: AtomicU64,
    pub txn_aborts: AtomicU64,
    pub txn_timeouts: AtomicU64,
    device_write: Histogram,
    device_write_bytes: AtomicU64,
    fsync: Histogram,
}

impl ShardStats {
    pub fn new(shard: usize) -> Self {
        Self {
            shard,
            apis: (0..API_SLOTS).map(|_| ApiStats::default()).collect(),
            stages: Default::default(),
            connections: AtomicU64::new(0),
            connections_accepted: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            connections_closed: Default::default(),
            auth_failures: AtomicU64::new(0),
            tls_handshake_failures: AtomicU64::new(0),
            throttle_us: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            stall_us: AtomicU64::new(0),
            busy_us: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            isr_shrinks: AtomicU64::new(0),
            isr_expands: AtomicU64::new(0),
            txn_commits: AtomicU64::new(0),
            txn_aborts: AtomicU64::new(0),
            txn_timeouts: AtomicU64::new(0),
            device_write: Histogram::default(),
            device_write_bytes: AtomicU64::new(0),
            fsync: Histogram::default(),
        }
    }

    /// One request answered (or failed) after `took`, from its first byte to its last.
    pub fn request(&self, api_key: i16, took: Duration, error: bool) {
        let Some(api) = usize::try_from(api_key).ok().and_then(|k| self.apis.get(k)) else {
            return;
        };
        api.latency.observe(took);
        if error {
            api.errors.fetch_add(1, Relaxed);
        }
    }

    /// A request of `kind` spent `took` in `stage`.
    pub fn stage(&self, kind: Kind, stage: Stage, took: Duration) {
        self.stages[kind as usize][stage as usize].observe(took);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}

impl odradek_storage::IoObserver for ShardStats {
    fn data_write(&self, took: Duration, bytes: u64) {
        self.device_write.observe(took);
        self.device_write_bytes.fetch_add(bytes, Relaxed);
    }

    fn data_sync(&self, took: Duration) {
        self.fsync.observe(took);
    }
}

/// Where one Produce or Fetch spent its time, filled in as it goes: by the connection
/// (receive, send) and the api room (the rest). The longest of parallel work counts (a request
/// waits for its slowest partition).
#[derive(Debug, Clone, Default)]
pub struct Timing {
    spent: [Duration; Stage::ALL.len()],
}

impl Timing {
    /// Adds `took` to `stage`.
    pub fn add(&mut self, stage: Stage, took: Duration) {
        self.spent[stage as usize] += took;
    }

    /// Raises `stage` to `took` if it was shorter (parallel work).
    pub fn at_least(&mut self, stage: Stage, took: Duration) {
        let s = &mut self.spent[stage as usize];
        *s = (*s).max(took);
    }

    pub fn get(&self, stage: Stage) -> Duration {
        self.spent[stage as usize]
    }

    /// The stages of `kind` in microseconds, for the response's tagged field (all but `send`,
    /// which happens after the response is encoded).
    pub fn encode(&self, kind: Kind) -> bytes::Bytes {
        let stages: Vec<(Stage, u64)> = Stage::of(kind)
            .iter()
            .filter(|&&s| s != Stage::Send)
            .map(|&s| (s, u64::try_from(self.get(s).as_micros()).unwrap_or(u64::MAX)))
            .collect();
        odradek_client::stages::encode(kind, &stages)
    }

    /// Records every stage of `kind` in `stats`' histograms.
    pub fn record(&self, kind: Kind, stats: &ShardStats) {
        for &stage in Stage::of(kind) {
            stats.stage(kind, stage, self.get(stage));
        }
    }
}

/// A partition as its owner shard saw it at scrape time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSample {
    pub topic: String,
    pub partition: i32,
    pub leader: bool,
    pub log_start: u64,
    pub log_end: u64,
    pub high_watermark: u64,
    pub size_bytes: u64,
    pub replicas: usize,
    pub isr: usize,
    pub bytes_in: u64,
    pub records_in: u64,
    pub bytes_out: u64,
    pub replication_bytes_out: u64,
}

/// One committed offset of a group this shard coordinates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSample {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub committed: i64,
}

/// What one shard reports at scrape time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardSample {
    pub partitions: Vec<PartitionSample>,
    pub groups: Vec<GroupSample>,
}

/// Node-wide figures from the metadata image and the controller quorum.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSample {
    pub node_id: i32,
    /// Whether this node's controller is the quorum's active one.
    pub active_controller: bool,
    pub live_brokers: usize,
    /// Partitions of the cluster without a live leader.
    pub offline_partitions: usize,
    pub topics: usize,
    /// Shards that did not answer the scrape in time (their state is missing from it).
    pub shards_unanswered: usize,
}

/// Escapes a label value for the text format (backslash, double quote, newline).
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Writes Prometheus text: families with HELP and TYPE, then their samples.
struct Text {
    out: String,
}

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let mut first = true;
        for (k, v) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
            if !first {
                self.out.push(',');
            }
            first = false;
            let _ = write!(self.out, "{k}=\"{}\"", escape(v));
        }
        self.out.push('}');
    }

    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Counts) {
        let mut cumulative = 0;
        for (i, n) in h.counts.iter().enumerate() {
            cumulative += n;
            let le = match BUCKETS_US.get(i) {
                Some(&us) => seconds(us),
                None => "+Inf".to_owned(),
            };
            let _ = write!(self.out, "{name}_bucket");
            self.labels(labels, Some(&le));
            let _ = writeln!(self.out, " {cumulative}");
        }
        let _ = write!(self.out, "{name}_sum");
        self.labels(labels, None);
        let _ = writeln!(self.out, " {}", seconds(h.sum_us));
        let _ = write!(self.out, "{name}_count");
        self.labels(labels, None);
        let _ = writeln!(self.out, " {cumulative}");
    }
}

/// Microseconds as seconds, exactly.
fn seconds(us: u64) -> String {
    let (s, frac) = (us / 1_000_000, us % 1_000_000);
    if frac == 0 {
        format!("{s}")
    } else {
        let f = format!("{frac:06}");
        format!("{s}.{}", f.trim_end_matches('0'))
    }
}

fn api_name(key: usize) -> String {
    i16::try_from(key)
        .ok()
        .and_then(|k| ApiKey::try_from(k).ok())
        .map_or_else(|| format!("api_{key}"), |k| format!("{k:?}"))
}

/// The whole scrape: hot counters summed over `shards`, state from `samples`.
pub fn render(node: &NodeSample, shards: &[Arc<ShardStats>], samples: &[ShardSample]) -> String {
    let mut t = Text { out: String::with_capacity(64 * 1024) };
    let node_id = node.node_id.to_string();
    t.family(
        "odradek_build_info",
        "gauge",
        "Always 1; the labels say which build and node (Redpanda: redpanda_application_build).",
    );
    t.sample(
        "odradek_build_info",
        &[("version", env!("CARGO_PKG_VERSION")), ("node_id", &node_id)],
        1,
    );
    requests(&mut t, shards);
    stages(&mut t, shards);
    storage(&mut t, shards);
    per_shard(&mut t, shards);
    partitions(&mut t, samples);
    groups(&mut t, samples);
    cluster(&mut t, node, samples);
    t.out
}

fn requests(t: &mut Text, shards: &[Arc<ShardStats>]) {
    let mut by_api: BTreeMap<String, (Counts, u64)> = BTreeMap::new();
    for s in shards {
        for (key, api) in s.apis.iter().enumerate() {
            let h = api.latency.read();
            if h.count() == 0 {
                continue;
            }
            let entry = by_api.entry(api_name(key)).or_default();
            entry.0.add(&h);
            entry.1 += api.errors.load(Relaxed);
        }
    }
    t.family("odradek_requests_total", "counter", "Requests answered, by API (Kafka: kafka.network RequestMetrics RequestsPerSec; Redpanda: redpanda_kafka_request_latency_seconds_count).");
    for (api, (h, _)) in &by_api {
        t.sample("odradek_requests_total", &[("api", api)], h.count());
    }
    t.family("odradek_request_errors_total", "counter", "Requests answered with an error code or that closed the connection, by API (Kafka: RequestMetrics ErrorsPerSec).");
    for (api, (_, errors)) in &by_api {
        t.sample("odradek_request_errors_total", &[("api", api)], errors);
    }
    t.family("odradek_request_duration_seconds", "histogram", "Time from a request's first byte to its answer's last, by API (Kafka: RequestMetrics TotalTimeMs; Redpanda: redpanda_kafka_request_latency_seconds).");
    for (api, (h, _)) in &by_api {
        t.histogram("odradek_request_duration_seconds", &[("api", api)], h);
    }
}

fn stages(t: &mut Text, shards: &[Arc<ShardStats>]) {
    t.family("odradek_request_stage_duration_seconds", "histogram", "Time Produce and Fetch spend in each stage: receive, validate, hop (to the owner shard and back), write, fsync, replicate, read, wait (long poll), send (Kafka splits TotalTimeMs into RequestQueueTimeMs, LocalTimeMs, RemoteTimeMs, ResponseSendTimeMs).");
    for (kind, api) in [(Kind::Produce, "Produce"), (Kind::Fetch, "Fetch")] {
        for &stage in Stage::of(kind) {
            let mut h = Counts::default();
            for s in shards {
                h.add(&s.stages[kind as usize][stage as usize].read());
            }
            t.histogram(
                "odradek_request_stage_duration_seconds",
                &[("api", api), ("stage", stage.name())],
                &h,
            );
        }
    }
}

fn storage(t: &mut Text, shards: &[Arc<ShardStats>]) {
    let (mut write, mut fsync, mut bytes) = (Counts::default(), Counts::default(), 0);
    for s in shards {
        write.add(&s.device_write.read());
        fsync.add(&s.fsync.read());
        bytes += s.device_write_bytes.load(Relaxed);
    }
    t.family("odradek_storage_write_duration_seconds", "histogram", "Time of each write of appended batches to a segment (page cache or O_DIRECT) (Redpanda: vectorized_io_queue_total_write_ops and its delay).");
    t.histogram("odradek_storage_write_duration_seconds", &[], &write);
    t.family("odradek_storage_written_bytes_total", "counter", "Bytes of appended batches written to segments (Kafka: BrokerTopicMetrics BytesInPerSec, after validation).");
    t.sample("odradek_storage_written_bytes_total", &[], bytes);
    t.family("odradek_storage_fsync_duration_seconds", "histogram", "Time of each group-committed fdatasync of a segment (Kafka: LogFlushStats LogFlushRateAndTimeMs).");
    t.histogram("odradek_storage_fsync_duration_seconds", &[], &fsync);
    let (hits, misses) = shards.iter().fold((0, 0), |(h, m), s| {
        (h + s.cache_hits.load(Relaxed), m + s.cache_misses.load(Relaxed))
    });
    t.family("odradek_fetch_cache_hits_total", "counter", "Partition reads of consumers answered wholly from the recent-batch cache (Redpanda: vectorized_storage_log_batch_cache_hits).");
    t.sample("odradek_fetch_cache_hits_total", &[], hits);
    t.family("odradek_fetch_cache_misses_total", "counter", "Partition reads of consumers that went to segment files (Redpanda: vectorized_storage_log_batch_cache_misses).");
    t.sample("odradek_fetch_cache_misses_total", &[], misses);
}

fn per_shard(t: &mut Text, shards: &[Arc<ShardStats>]) {
    type Field = fn(&ShardStats) -> u64;
    let families: [(&str, &str, &str, Field); 14] = [
        (
            "odradek_connections",
            "gauge",
            "Open client connections, by shard (Kafka: socket-server-metrics connection-count).",
            |s| s.connections.load(Relaxed),
        ),
        (
            "odradek_connections_accepted_total",
            "counter",
            "Client connections accepted, by shard (Kafka: socket-server-metrics connection-creation-total).",
            |s| s.connections_accepted.load(Relaxed),
        ),
        (
            "odradek_connections_refused_total",
            "counter",
            "Client connections closed at once because the shard held connections_per_shard_max (Kafka: max.connections refusals).",
            |s| s.connections_refused.load(Relaxed),
        ),
        (
            "odradek_sasl_authentication_failures_total",
            "counter",
            "SASL authentications refused (wrong credentials, malformed tokens), by shard (Kafka: failed-authentication-total).",
            |s| s.auth_failures.load(Relaxed),
        ),
        (
            "odradek_tls_handshake_failures_total",
            "counter",
            "TLS handshakes that failed or timed out, by shard.",
            |s| s.tls_handshake_failures.load(Relaxed),
        ),
        (
            "odradek_quota_throttle_seconds_total",
            "counter",
            "Time connections were muted for exceeding a client quota, by shard (Kafka: throttle-time).",
            |s| s.throttle_us.load(Relaxed),
        ),
        (
            "odradek_shard_stalls_total",
            "counter",
            "Times a shard's event loop was held up 20 ms or more (Redpanda: vectorized_stall_detector_reported).",
            |s| s.stalls.load(Relaxed),
        ),
        (
            "odradek_isr_shrinks_total",
            "counter",
            "ISR shrinks this node's leader partitions had accepted, by shard (Kafka: ReplicaManager IsrShrinksPerSec).",
            |s| s.isr_shrinks.load(Relaxed),
        ),
        (
            "odradek_isr_expands_total",
            "counter",
            "ISR expansions this node's leader partitions had accepted, by shard (Kafka: ReplicaManager IsrExpandsPerSec).",
            |s| s.isr_expands.load(Relaxed),
        ),
        (
            "odradek_transactions_committed_total",
            "counter",
            "Transactions this node coordinated that completed committed, by shard (Kafka: the transaction coordinator's commit rate).",
            |s| s.txn_commits.load(Relaxed),
        ),
        (
            "odradek_transactions_aborted_total",
            "counter",
            "Transactions this node coordinated that completed aborted (by their producer, a fencing producer or their timeout), by shard (Kafka: the transaction coordinator's abort rate).",
            |s| s.txn_aborts.load(Relaxed),
        ),
        (
            "odradek_transactions_timed_out_total",
            "counter",
            "Open transactions this node aborted because they outlived their transaction.timeout.ms, by shard.",
            |s| s.txn_timeouts.load(Relaxed),
        ),
        (
            "odradek_shard_stall_seconds_total",
            "counter",
            "Time shards' event loops were held up beyond their 10 ms tick, summed over stalls (Redpanda: vectorized_reactor_stalls).",
            |s| s.stall_us.load(Relaxed),
        ),
        (
            "odradek_shard_busy_seconds_total",
            "counter",
            "CPU time of each shard's thread (Redpanda: vectorized_reactor_utilization; rate() of it is the shard's busy fraction).",
            |s| s.busy_us.load(Relaxed),
        ),
    ];
    for (name, kind, help, field) in families {
        t.family(name, kind, help);
        for s in shards {
            let shard = s.shard.to_string();
            let v = field(s);
            // Times are kept in microseconds and exported in seconds.
            if name.ends_with("_seconds_total") {
                t.sample(name, &[("shard", &shard)], seconds(v));
            } else {
                t.sample(name, &[("shard", &shard)], v);
            }
        }
    }
    let closed = "odradek_connections_closed_total";
    t.family(closed, "counter", "Client connections the node closed for misbehaving, by reason (idle, slow_request, slow_reader, oversize_frame, undecodable, tls_handshake, connection_limit, connections_per_ip) and shard (Kafka: socket-server-metrics connection-close-total).");
    for s in shards {
        let shard = s.shard.to_string();
        for class in crate::server::abuse::Abuse::ALL {
            let v = s.connections_closed[class as usize].load(Relaxed);
            t.sample(closed, &[("reason", class.label()), ("shard", &shard)], v);
        }
    }
}

fn partitions(t: &mut Text, samples: &[ShardSample]) {
    let mut all: Vec<&PartitionSample> = samples.iter().flat_map(|s| &s.partitions).collect();
    all.sort_unstable_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    type Field = fn(&PartitionSample) -> u64;
    let gauges: [(&str, &str, Field); 7] = [
        (
            "odradek_partition_log_start_offset",
            "First offset of each partition's log on this node (Kafka: kafka.log Log LogStartOffset).",
            |p| p.log_start,
        ),
        (
            "odradek_partition_log_end_offset",
            "Offset the next append to each partition gets on this node (Kafka: kafka.log Log LogEndOffset).",
            |p| p.log_end,
        ),
        (
            "odradek_partition_high_watermark",
            "Offset below which each partition's records are committed and readable (Redpanda: redpanda_kafka_max_offset).",
            |p| p.high_watermark,
        ),
        (
            "odradek_partition_size_bytes",
            "Bytes of each partition's segments on this node (Kafka: kafka.log Log Size).",
            |p| p.size_bytes,
        ),
        (
            "odradek_partition_leader",
            "1 where this node leads the partition, 0 where it follows (Kafka: ReplicaManager LeaderCount, per partition).",
            |p| u64::from(p.leader),
        ),
        (
            "odradek_partition_replicas",
            "Replicas of each partition, as its leader on this node sees them (Redpanda: redpanda_kafka_replicas).",
            |p| p.replicas as u64,
        ),
        (
            "odradek_partition_in_sync_replicas",
            "In-sync replicas of each partition, as its leader on this node sees them (Kafka: Partition InSyncReplicasCount).",
            |p| p.isr as u64,
        ),
    ];
    for (name, help, field) in gauges {
        t.family(name, "gauge", help);
        for p in &all {
            let index = p.partition.to_string();
            t.sample(name, &[("topic", &p.topic), ("partition", &index)], field(p));
        }
    }
    let mut topics: BTreeMap<&str, [u64; 4]> = BTreeMap::new();
    for p in &all {
        let e = topics.entry(&p.topic).or_default();
        e[0] += p.bytes_in;
        e[1] += p.records_in;
        e[2] += p.bytes_out;
        e[3] += p.replication_bytes_out;
    }
    let counters = [
        (
            "odradek_topic_bytes_in_total",
            "Bytes of batches producers appended to each topic on this node (Kafka: BrokerTopicMetrics BytesInPerSec).",
        ),
        (
            "odradek_topic_records_in_total",
            "Records producers appended to each topic on this node (Kafka: BrokerTopicMetrics MessagesInPerSec).",
        ),
        (
            "odradek_topic_bytes_out_total",
            "Bytes of records read by consumers from each topic on this node (Kafka: BrokerTopicMetrics BytesOutPerSec; records out are not counted, as in Kafka: spliced file ranges are never parsed).",
        ),
        (
            "odradek_topic_replication_bytes_out_total",
            "Bytes of records read by follower replicas from each topic on this node (Kafka: BrokerTopicMetrics ReplicationBytesOutPerSec).",
        ),
    ];
    for (i, (name, help)) in counters.into_iter().enumerate() {
        t.family(name, "counter", help);
        for (topic, v) in &topics {
            t.sample(name, &[("topic", topic)], v[i]);
        }
    }
}

fn groups(t: &mut Text, samples: &[ShardSample]) {
    // Lag against the high watermark this node has for the partition (any of its shards).
    let hw: HashMap<(&str, i32), u64> = samples
        .iter()
        .flat_map(|s| &s.partitions)
        .map(|p| ((p.topic.as_str(), p.partition), p.high_watermark))
        .collect();
    let mut all: Vec<&GroupSample> = samples.iter().flat_map(|s| &s.groups).collect();
    all.sort_unstable_by(|a, b| {
        (&a.group, &a.topic, a.partition).cmp(&(&b.group, &b.topic, b.partition))
    });
    t.family("odradek_group_committed_offset", "gauge", "Each group's committed offset per partition, on the group's coordinator (Kafka: kafka-consumer-groups.sh CURRENT-OFFSET; Redpanda: redpanda_kafka_consumer_group_committed_offset).");
    for g in &all {
        let index = g.partition.to_string();
        let labels = [("group", g.group.as_str()), ("topic", &g.topic), ("partition", &index)];
        t.sample("odradek_group_committed_offset", &labels, g.committed);
    }
    t.family("odradek_group_lag", "gauge", "High watermark minus committed offset, per group and partition, where the coordinator also holds the partition (Kafka: kafka-consumer-groups.sh LAG, records-lag-max; Redpanda: redpanda_kafka_consumer_group_lag_max).");
    for g in &all {
        let Some(&end) = hw.get(&(g.topic.as_str(), g.partition)) else { continue };
        let index = g.partition.to_string();
        let labels = [("group", g.group.as_str()), ("topic", &g.topic), ("partition", &index)];
        let lag = i64::try_from(end).unwrap_or(i64::MAX).saturating_sub(g.committed.max(0));
        t.sample("odradek_group_lag", &labels, lag.max(0));
    }
}

fn cluster(t: &mut Text, node: &NodeSample, samples: &[ShardSample]) {
    let under = samples
        .iter()
        .flat_map(|s| &s.partitions)
        .filter(|p| p.leader && p.isr < p.replicas)
        .count();
    let gauges: [(&str, &str, u64); 5] = [
        (
            "odradek_under_replicated_partitions",
            "Partitions this node leads with fewer in-sync replicas than replicas (Kafka: ReplicaManager UnderReplicatedPartitions).",
            under as u64,
        ),
        (
            "odradek_offline_partitions",
            "Partitions of the cluster without a live leader, in this node's metadata image (Kafka: KafkaController OfflinePartitionsCount).",
            node.offline_partitions as u64,
        ),
        (
            "odradek_active_controller",
            "1 on the node whose controller is the quorum's active one (Kafka: KafkaController ActiveControllerCount).",
            u64::from(node.active_controller),
        ),
        (
            "odradek_live_brokers",
            "Unfenced brokers in this node's metadata image (Kafka: KafkaController ActiveBrokerCount).",
            node.live_brokers as u64,
        ),
        (
            "odradek_topics",
            "Topics in this node's metadata image (Kafka: KafkaController GlobalTopicCount).",
            node.topics as u64,
        ),
    ];
    for (name, help, v) in gauges {
        t.family(name, "gauge", help);
        t.sample(name, &[], v);
    }
    t.family("odradek_scrape_shards_unanswered", "gauge", "Shards that did not answer this scrape within its timeout: their partitions and groups are missing from it.");
    t.sample("odradek_scrape_shards_unanswered", &[], node.shards_unanswered);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_exact() {
        assert_eq!(seconds(0), "0");
        assert_eq!(seconds(50), "0.00005");
        assert_eq!(seconds(2_500_000), "2.5");
        assert_eq!(seconds(10_000_000), "10");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn histograms_are_cumulative_and_summed_over_shards() {
        let shards: Vec<Arc<ShardStats>> = (0..2).map(|i| Arc::new(ShardStats::new(i))).collect();
        shards[0].request(0, Duration::from_micros(40), false);
        shards[1].request(0, Duration::from_micros(700), true);
        shards[1].request(0, Duration::from_secs(20), false);
        let text = render(&NodeSample::default(), &shards, &[]);
        assert!(text.contains("odradek_requests_total{api=\"Produce\"} 3\n"), "{text}");
        assert!(text.contains("odradek_request_errors_total{api=\"Produce\"} 1\n"));
        let bucket = |le: &str| {
            format!("odradek_request_duration_seconds_bucket{{api=\"Produce\",le=\"{le}\"}}")
        };
        assert!(text.contains(&format!("{} 1\n", bucket("0.00005"))));
        assert!(text.contains(&format!("{} 2\n", bucket("0.001"))));
        assert!(text.contains(&format!("{} 2\n", bucket("10"))));
        assert!(text.contains(&format!("{} 3\n", bucket("+Inf"))));
        assert!(text.contains("odradek_request_duration_seconds_sum{api=\"Produce\"} 20.00074\n"));
        assert!(!text.contains("api=\"Fetch\"} "), "APIs never asked for are left out");
    }

    #[test]
    fn lag_is_the_high_watermark_minus_the_committed_offset() {
        let p = PartitionSample {
            topic: "t".into(),
            partition: 0,
            leader: true,
            log_start: 0,
            log_end: 12,
            high_watermark: 10,
            size_bytes: 100,
            replicas: 3,
            isr: 2,
            bytes_in: 0,
            records_in: 0,
            bytes_out: 0,
            replication_bytes_out: 0,
        };
        let g = |partition| GroupSample {
            group: "g".into(),
            topic: "t".into(),
            partition,
            committed: 4,
        };
        let sample = ShardSample { partitions: vec![p], groups: vec![g(0), g(1)] };
        let text = render(&NodeSample::default(), &[], &[sample]);
        assert!(text.contains("odradek_group_lag{group=\"g\",topic=\"t\",partition=\"0\"} 6\n"));
        assert!(!text.contains("odradek_group_lag{group=\"g\",topic=\"t\",partition=\"1\"}"));
        assert!(text.contains(
            "odradek_group_committed_offset{group=\"g\",topic=\"t\",partition=\"1\"} 4\n"
        ));
        assert!(text.contains("odradek_under_replicated_partitions 1\n"));
    }
}
