//! One shard: the composition of every room's per-shard service, and its life from start-up to
//! a clean stop. This is the only module besides `server` and `api` that knows every room.
//!
//! Start-up: a shard binds its listener (`SO_REUSEPORT`: the kernel spreads connections across
//! shards), opens (and recovers) every partition it owns, and only then reports ready.
//! Shutdown: the node sends every shard its stop signal; a shard stops accepting, lets each
//! connection finish the request it is in (idle connections close at once), waits for them up
//! to [`DRAIN_TIMEOUT`], goes on serving its inbox until every shard got that far (a request
//! under way on another shard may still need it), closes its partitions cleanly (flush and
//! clean-shutdown marker), and its thread ends.

use odradek_net::ErrorCode;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use event_listener::Event;
use tracing::{info, warn};

use crate::checks::StartupError;
use crate::cluster::MetadataStore;
use crate::config::NodeConfig;
use crate::group::records::OFFSETS_TOPIC;
use crate::group::{self, Coordinated, GroupHost, GroupSettings};
use crate::metrics::{GroupSample, PartitionSample, ShardSample, ShardStats};
use crate::partition::Partition;
use crate::partition::fetch_session::Sessions;
use crate::partition::fetcher::{self, FetcherSettings};
use crate::partition::{Partitions, ReadSettings};
use crate::producers::ProducerIds;
use crate::runtime::blocking::Blocking;
use crate::runtime::{self, Mesh, ShardStart, ShardThreads, Sharded};
use crate::server;
use crate::server::abuse::AbuseLog;
use crate::server::budget::RequestBudget;
use crate::server::per_ip::ConnectionsPerIp;
use crate::txn::records::TXN_TOPIC;
use crate::txn::{Markers, Transactions, TxnHost, TxnSettings};
use odradek_storage::LogConfig;

/// How long a stopping shard waits for its connections to finish their requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(8);

/// What every task of one shard shares (shard-local: `Rc`, never crosses threads): the shard's
/// service of each room, and its life cycle.
#[derive(Debug)]
pub struct Shard {
    pub id: usize,
    pub config: Arc<NodeConfig>,
    pub mesh: Arc<Mesh<Shard>>,
    /// The cluster's metadata, shared by every shard (read through atomic snapshots).
    pub metadata: Arc<dyn MetadataStore>,
    /// Producer ids, shared by every shard.
    pub producer_ids: Arc<ProducerIds>,
    /// The partitions this shard owns.
    pub partitions: Partitions,
    /// Incremental fetch sessions of this shard's connections.
    pub fetch_sessions: RefCell<Sessions>,
    /// The groups this shard coordinates: committed offsets and membership.
    pub groups: RefCell<Coordinated>,
    /// The transactions this shard coordinates.
    pub txns: RefCell<Transactions>,
    /// Idle connections to other brokers for transaction markers and verifications.
    pub broker_conns: RefCell<HashMap<i32, Vec<odradek_client::compio::AsyncConn>>>,
    /// This shard's hot counters (the metrics room), read by the admin listener's scrapes.
    pub stats: Arc<ShardStats>,
    /// Listeners' security: TLS, SASL users, super users.
    pub security: Arc<crate::security::Security>,
    /// Connections closed for misbehaving, logged once per class for the whole node.
    pub abuse: Arc<AbuseLog>,
    /// Client connections per address, counted for the whole node (`max_connections_per_ip`).
    pub per_ip: Arc<ConnectionsPerIp>,
    /// Threads for work that would block the shard (PBKDF2 of a PLAIN login).
    pub pool: Blocking,
    pub life: Life,
}

/// A shard's life cycle: whether it is stopping, and its open connections.
#[derive(Debug, Default)]
pub struct Life {
    /// Set once the shard is stopping; `stop_event` wakes connections waiting for a request.
    pub stopping: Cell<bool>,
    pub stop_event: Event,
    pub connections: Cell<usize>,
    /// Request bytes this shard's connections hold: its share of `queued.max.request.bytes`.
    pub requests: RequestBudget,
}

impl Sharded for Shard {
    fn shard_id(&self) -> usize {
        self.id
    }

    fn mesh(&self) -> &Mesh<Self> {
        &self.mesh
    }
}

impl GroupHost for Shard {
    fn groups(&self) -> &RefCell<Coordinated> {
        &self.groups
    }

    fn group_settings(&self) -> GroupSettings {
        let c = &self.config;
        GroupSettings {
            initial_rebalance_delay: Duration::from_millis(c.group_initial_rebalance_delay_ms),
            session_timeout_min_ms: c.group_min_session_timeout_ms,
            session_timeout_max_ms: c.group_max_session_timeout_ms,
            offsets_retention: Duration::from_millis(c.offsets_retention_ms),
            offsets_retention_check_interval: Duration::from_millis(
                c.offsets_retention_check_interval_ms,
            ),
        }
    }

    fn stopping(&self) -> bool {
        self.life.stopping.get()
    }

    fn owned_offsets_partitions(&self) -> Vec<i32> {
        let Some(topic) = self.metadata.snapshot().topic(OFFSETS_TOPIC).cloned() else {
            return Vec::new();
        };
        // Only those this node leads: a follower's copy is not this shard's to coordinate (nor
        // to write expiry tombstones to).
        let (me, smp) = (self.config.node_id, self.config.smp);
        (0..topic.partitions())
            .filter(|&p| topic.route(p, me, smp) == crate::cluster::Route::Local(self.id))
            .collect()
    }

    async fn offsets_partition(&self, index: i32) -> Result<Rc<Partition>, ErrorCode> {
        let topic = self.metadata.snapshot().topic(OFFSETS_TOPIC).cloned();
        let topic = topic.ok_or(odradek_net::error_code::COORDINATOR_NOT_AVAILABLE)?;
        self.partitions.get(&topic, index).await.map_err(|e| e.code())
    }

    fn offsets_partition_count(&self) -> Option<i32> {
        self.metadata.snapshot().topic(OFFSETS_TOPIC).map(|t| t.partitions())
    }
}

impl TxnHost for Rc<Shard> {
    fn txns(&self) -> &RefCell<Transactions> {
        &self.txns
    }

    fn txn_settings(&self) -> TxnSettings {
        let t = &self.config.transactions;
        TxnSettings {
            max_timeout_ms: t.max_timeout_ms,
            abort_check_interval: Duration::from_millis(t.abort_check_interval_ms),
        }
    }

    fn stopping(&self) -> bool {
        self.life.stopping.get()
    }

    fn owned_txn_partitions(&self) -> Vec<i32> {
        let Some(topic) = self.metadata.snapshot().topic(TXN_TOPIC).cloned() else {
            return Vec::new();
        };
        let (me, smp) = (self.config.node_id, self.config.smp);
        (0..topic.partitions())
            .filter(|&p| topic.route(p, me, smp) == crate::cluster::Route::Local(self.id))
            .filter(|&p| self.partitions.get_open(topic.id, p).is_some_and(|p| p.is_leader()))
            .collect()
    }

    async fn txn_partition(&self, index: i32) -> Result<Rc<Partition>, ErrorCode> {
        let topic = self.metadata.snapshot().topic(TXN_TOPIC).cloned();
        let topic = topic.ok_or(odradek_net::error_code::COORDINATOR_NOT_AVAILABLE)?;
        self.partitions.get(&topic, index).await.map_err(|e| e.code())
    }

    fn txn_partition_count(&self) -> Option<i32> {
        self.metadata.snapshot().topic(TXN_TOPIC).map(|t| t.partitions())
    }

    async fn allocate_producer_id(&self) -> Result<i64, ErrorCode> {
        self.producer_ids.allocate().await.map_err(|e| {
            warn!(code = %e.code, error = %e.message, "cannot allocate a producer id");
            odradek_net::error_code::COORDINATOR_NOT_AVAILABLE
        })
    }

    fn stats(&self) -> &ShardStats {
        &self.stats
    }

    async fn write_markers(&self, markers: Markers) -> Vec<(String, i32)> {
        crate::api::txn::write_markers(self, markers).await
    }
}

/// Starts `config.smp` shards (shard `i` counting into `stats[i]`) and returns once every one
/// listens, with the mesh that reaches them, or the first failure. The caller has checked that
/// the port is free (`server::probe_port_free`).
pub fn start(
    config: Arc<NodeConfig>,
    metadata: Arc<dyn MetadataStore>,
    producer_ids: Arc<ProducerIds>,
    pool: Blocking,
    stats: Vec<Arc<ShardStats>>,
    security: Arc<crate::security::Security>,
) -> Result<(ShardThreads, Arc<Mesh<Shard>>), StartupError> {
    let (smp, pin) = (config.smp, config.pin_shards);
    let abuse = Arc::new(AbuseLog::default());
    let per_ip = Arc::new(ConnectionsPerIp::new(config.connections_per_ip.clone()));
    let body: runtime::ShardBody<Shard> = Arc::new(move |start| {
        let (config, metadata) = (config.clone(), metadata.clone());
        let (producer_ids, pool) = (producer_ids.clone(), pool.clone());
        let stats =
            stats.get(start.id).cloned().unwrap_or_else(|| Arc::new(ShardStats::new(start.id)));
        let node = (pool, security.clone(), abuse.clone(), per_ip.clone());
        Box::pin(run(start, config, metadata, producer_ids, node, stats))
    });
    ShardThreads::start(smp, pin, body)
}

async fn run(
    start: ShardStart<Shard>,
    config: Arc<NodeConfig>,
    metadata: Arc<dyn MetadataStore>,
    producer_ids: Arc<ProducerIds>,
    (pool, security, abuse, per_ip): (
        Blocking,
        Arc<crate::security::Security>,
        Arc<AbuseLog>,
        Arc<ConnectionsPerIp>,
    ),
    stats: Arc<ShardStats>,
) {
    let ShardStart { id, mesh, inbox, stop, ready } = start;
    let mut listeners = Vec::new();
    for l in &config.security.listeners {
        match server::bind(l.addr) {
            Ok(bound) => {
                let info = server::ListenerInfo { name: l.name.clone(), protocol: l.protocol };
                listeners.push((bound, Rc::new(info)));
            }
            Err(e) => {
                let _ = ready.send(Err(StartupError::new(
                    format!("shard {id}: cannot listen on {} ({}): {e}", l.addr, l.name),
                    "pass other --listeners addresses",
                )));
                return;
            }
        }
    }
    let engine = LogConfig {
        direct_writes: config.direct_writes,
        writeback_bytes: (config.writeback_bytes > 0).then_some(config.writeback_bytes),
        page_cache_window_bytes: (config.page_cache_window_bytes > 0)
            .then_some(config.page_cache_window_bytes),
        observer: Some(stats.clone()),
        ..LogConfig::default()
    };
    let reads = ReadSettings {
        disk_reads: config.fetch_disk_reads,
        prefetch_bytes: config.fetch_prefetch_bytes,
    };
    let partitions = Partitions::new(
        &config.data_dir,
        metadata.clone(),
        engine,
        reads,
        config.fetch_cache_bytes,
        pool.clone(),
        FetcherSettings {
            me: config.node_id,
            // Outgoing connections leave from the node's own address (several nodes may share
            // a host on different loopback addresses); a wildcard listen leaves it to routing.
            bind: Some(config.listen.ip()).filter(|ip| !ip.is_unspecified()),
            tls: security.inter_broker_tls.clone(),
            sasl: security.inter_broker_login.clone(),
        },
        stats.clone(),
    );
    let smp = config.smp;
    // Each shard gets an even share of the node's request budget.
    let config_requests = config.queued_max_request_bytes / smp.max(1);
    let ctx = Rc::new(Shard {
        id,
        config,
        mesh,
        metadata,
        producer_ids,
        partitions,
        fetch_sessions: RefCell::new(Sessions::new(id, smp)),
        groups: RefCell::new(Coordinated::default()),
        txns: RefCell::new(Transactions::default()),
        broker_conns: RefCell::new(HashMap::new()),
        stats,
        security,
        abuse,
        per_ip,
        pool,
        life: Life { requests: RequestBudget::new(config_requests), ..Life::default() },
    });
    compio::runtime::spawn(runtime::serve_inbox(ctx.clone(), inbox)).detach();
    if let Err(e) = open_owned(&ctx).await {
        let _ = ready.send(Err(e));
        return;
    }
    let _ = ready.send(Ok(()));
    let background = spawn_background(&ctx);
    server::accept_loop(&ctx, listeners, stop).await;
    drain(&ctx).await;
    for task in background {
        let _ = task.await;
    }
    ctx.partitions.close_all().await;
    info!(shard = ctx.id, "partitions closed");
}

/// The shard's background tasks, each running until the shard stops: partition maintenance,
/// the group timers, and the stall watch.
fn spawn_background(ctx: &Rc<Shard>) -> Vec<compio::runtime::JoinHandle<()>> {
    let id = ctx.id;
    let stopping = {
        let ctx = ctx.clone();
        move || ctx.life.stopping.get()
    };
    let maintenance = {
        let (ctx, stopping) = (ctx.clone(), stopping.clone());
        compio::runtime::spawn(async move { ctx.partitions.maintain(stopping).await })
    };
    let follow = {
        let (ctx, stopping) = (ctx.clone(), stopping.clone());
        compio::runtime::spawn(async move {
            ctx.partitions.follow_metadata(ctx.id, ctx.config.smp, stopping).await
        })
    };
    let expiry = {
        let ctx = ctx.clone();
        compio::runtime::spawn(async move { group::timers::expire_offsets(&*ctx).await })
    };
    let ticker = {
        let ctx = ctx.clone();
        compio::runtime::spawn(async move { group::timers::tick_groups(&*ctx).await })
    };
    let transactions = {
        let ctx = ctx.clone();
        compio::runtime::spawn(crate::txn::coordinator::tick(ctx))
    };
    let replication = {
        let (ctx, stopping) = (ctx.clone(), stopping.clone());
        compio::runtime::spawn(async move { replicate(&ctx, stopping).await })
    };
    let stats = ctx.stats.clone();
    let busy = {
        let (stats, stopping) = (stats.clone(), stopping.clone());
        compio::runtime::spawn(async move {
            while !stopping() {
                sample_busy(&stats);
                compio::time::sleep(BUSY_SAMPLE_INTERVAL).await;
            }
        })
    };
    let watch = compio::runtime::spawn(runtime::stall_watch(stopping, move |late| {
        ShardStats::add(&stats.stalls, 1);
        ShardStats::add(&stats.stall_us, u64::try_from(late.as_micros()).unwrap_or(u64::MAX));
        warn!(shard = id, late_ms = late.as_millis() as u64, "shard event loop stalled")
    }));
    vec![watch, busy, expiry, ticker, transactions, maintenance, follow, replication]
}

/// How often a shard samples its thread's CPU time for `odradek_shard_busy_seconds_total`.
const BUSY_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Records the CPU time of the calling (shard) thread: a vDSO-less `clock_gettime`, once a
/// second.
fn sample_busy(stats: &ShardStats) {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    let us = u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000
        + u64::try_from(t.tv_nsec).unwrap_or(0) / 1_000;
    stats.busy_us.store(us, std::sync::atomic::Ordering::Relaxed);
}

/// What this shard holds, for one scrape: its partitions' offsets, sizes and byte counts, and
/// the committed offsets of the groups it coordinates. One pass, no `.await`.
pub fn sample(ctx: &Shard) -> ShardSample {
    let partitions = ctx
        .partitions
        .all()
        .into_iter()
        .map(|p| {
            let (replicas, isr) = p.replica_counts();
            let traffic = p.traffic();
            PartitionSample {
                topic: p.topic.clone(),
                partition: p.index,
                leader: p.is_leader(),
                log_start: p.log_start_offset(),
                log_end: p.log_end_offset(),
                high_watermark: p.high_watermark(),
                size_bytes: p.size_bytes(),
                replicas,
                isr,
                bytes_in: traffic.bytes_in,
                records_in: traffic.records_in,
                bytes_out: traffic.bytes_out,
                replication_bytes_out: traffic.replication_bytes_out,
            }
        })
        .collect();
    let groups = ctx.groups.borrow();
    let groups = groups
        .offsets
        .groups()
        .into_iter()
        .flat_map(|group| {
            let committed = groups.offsets.all(&group);
            committed.into_iter().map(move |(topic, partition, c)| GroupSample {
                group: group.clone(),
                topic,
                partition,
                committed: c.offset,
            })
        })
        .collect();
    ShardSample { partitions, groups }
}

/// How often follower lag is logged (target `replication_lag`, debug level: enable it with
/// `ODRADEK_LOG=info,replication_lag=debug`).
const LAG_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Logs, for each partition this shard leads, how many offsets its furthest follower is behind.
fn report_lag(ctx: &Shard) {
    for p in ctx.partitions.all() {
        if let Some((follower, lag)) = p.follower_lag().into_iter().max_by_key(|(_, lag)| *lag) {
            tracing::debug!(target: "replication_lag", topic = %p.topic, partition = p.index, follower, lag, log_end_offset = p.log_end_offset(), high_watermark = p.high_watermark(), "replication lag");
        }
    }
}

/// Forgets the groups of `__consumer_offsets` partitions this shard no longer leads: their
/// coordinator moved with the leadership (and they are read again if it comes back).
fn unload_moved_groups(ctx: &Shard) {
    let Some(topic) = ctx.metadata.snapshot().topic(OFFSETS_TOPIC).cloned() else { return };
    let loaded: Vec<i32> = ctx.groups.borrow().loaded.iter().copied().collect();
    for index in loaded {
        let leads = ctx.partitions.get_open(topic.id, index).is_some_and(|p| p.is_leader());
        if !leads {
            let groups = ctx.groups.borrow_mut().unload(index, topic.partitions());
            info!(
                partition = index,
                groups, "no longer the group coordinator of this offsets partition"
            );
        }
    }
}

/// How often the shard looks for leaders to fetch from and lagging followers, at most.
const REPLICATION_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// Keeps one replica fetcher running per leader this shard's follower partitions follow, and
/// shrinks the ISR of its leader partitions whose followers lag (`replica.lag.time.max.ms`).
async fn replicate(ctx: &Rc<Shard>, stopping: impl Fn() -> bool + Clone + 'static) {
    let lag_max = Duration::from_millis(ctx.config.cluster.replica_lag_time_max_ms);
    let interval = REPLICATION_CHECK_INTERVAL.min(lag_max / 2);
    let mut fetchers: HashMap<i32, compio::runtime::JoinHandle<()>> = HashMap::new();
    let mut last_lag_report = Instant::now();
    while !stopping() {
        let listener = ctx.metadata.changed();
        fetchers.retain(|_, task| !task.is_finished());
        for leader in ctx.partitions.followed_leaders() {
            if fetchers.contains_key(&leader) {
                continue;
            }
            let (there, stopping) = (ctx.clone(), stopping.clone());
            let task = compio::runtime::spawn(async move {
                fetcher::run(&there.partitions, leader, stopping).await
            });
            fetchers.insert(leader, task);
        }
        ctx.partitions.shrink_lagging(lag_max);
        unload_moved_groups(ctx);
        if last_lag_report.elapsed() >= LAG_REPORT_INTERVAL
            && tracing::enabled!(target: "replication_lag", tracing::Level::DEBUG)
        {
            last_lag_report = Instant::now();
            report_lag(ctx);
        }
        let _ = compio::time::timeout(interval, listener).await;
    }
    for (_, task) in fetchers {
        let _ = task.await;
    }
}

/// Opens every partition this shard owns, so that recovery happens before the node says it is
/// ready. A partition that cannot be opened stops the node: serving without it would answer
/// its clients as if its data did not exist.
async fn open_owned(ctx: &Rc<Shard>) -> Result<(), StartupError> {
    let snapshot = ctx.metadata.snapshot();
    for topic in snapshot.topics.values() {
        for p in 0..topic.partitions() {
            if topic.owner(p, ctx.config.smp) != Some(ctx.id) {
                continue;
            }
            ctx.partitions.get(topic, p).await.map_err(|e| {
                StartupError::new(
                    format!("shard {}: cannot open partition {}-{p}: {e}", ctx.id, topic.name),
                    "check the data directory's disk and permissions; the log line above says what recovery found",
                )
            })?;
        }
    }
    Ok(())
}

async fn drain(ctx: &Rc<Shard>) {
    ctx.life.stopping.set(true);
    ctx.life.stop_event.notify(usize::MAX);
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while ctx.life.connections.get() > 0 && Instant::now() < deadline {
        compio::time::sleep(Duration::from_millis(5)).await;
    }
    info!(shard = ctx.id, open_connections = ctx.life.connections.get(), "shard stopped");
    // Requests still under way on other shards may need this one (a fetch of a partition it
    // owns): its inbox is served until every shard's connections are done.
    let mut all = ctx.mesh.drained(true);
    while !all && Instant::now() < deadline {
        compio::time::sleep(Duration::from_millis(5)).await;
        all = ctx.mesh.drained(false);
    }
}
