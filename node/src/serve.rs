//! `odradek serve`: the process around the shards. It resolves the config (autotune fills in
//! what no flag or file sets), checks the host, joins the controller quorum (a voter, or an
//! observer on a broker-only node; a quorum of one by default), keeps the broker registered,
//! starts the shards, prints one line when ready, and on SIGTERM or SIGINT stops accepting,
//! lets in-flight requests finish and returns within [`SHUTDOWN_TIMEOUT`]. A start-up problem
//! is returned as an error that says what is wrong and how to fix it.
//!
//! The main thread, idle otherwise, follows the metadata image (turning each into the shards'
//! catalogue) and runs the broker's registration and heartbeats. A quorum of one is ready only
//! once its broker is unfenced (and a single node's old `topics.json` upgraded); a member of a
//! larger cluster is ready once it listens, and registers as soon as a quorum forms.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use event_listener::Event;
use futures_util::future::{Either, select};
use tracing::{error, info, warn};

use odradek_tuning::autotune::{self, HostFacts, InUse};
use odradek_tuning::{Host, RealSystem, iotune, startup};

use crate::checks::{self, StartupError};
use crate::cluster::quorum::{self, QuorumStore};
use crate::cluster::{self, DirIdentity, MetadataStore, broker, identity, legacy, rebalance};
use crate::config::{AdminListen, HostDefaults, NodeConfig, ServeArgs};
use crate::metrics::http::Admin;
use crate::metrics::{self, NodeSample, ShardStats};
use crate::partition;
use crate::producers::ProducerIds;
use crate::runtime::blocking::Blocking;
use crate::runtime::{Mesh, ShardThreads};
use crate::security::Security;
use crate::server;
use crate::shard::{self, Shard};
use odradek_controller::net::CLUSTER_ID_FILE;

/// Total time a graceful shutdown may take before the process exits anyway.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

/// Runs a node until SIGTERM or SIGINT.
pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let config = Arc::new(resolve_config(args)?);
    let pool = Blocking::start().map_err(|e| {
        StartupError::new(
            format!("cannot start the blocking pool's threads: {e}"),
            "check the process's thread limit (ulimit -u)",
        )
    })?;
    let legacy = legacy::read(&config.data_dir).map_err(|e| {
        StartupError::new(e.to_string(), "restore the file from a backup, or move it away")
    })?;
    if legacy.is_some() && config.cluster.configured_voters {
        return Err(StartupError::new(
            format!("{} holds a single node's topics.json", config.data_dir.display()),
            "start it once without --controller-quorum-voters to upgrade it in place (a quorum of one), then grow the cluster",
        )
        .into());
    }
    let dir_identity = identity(&config)?;
    // The Kafka port is checked and held before the controller starts connecting out.
    let mut reservation = Vec::new();
    if config.cluster.roles.broker {
        for l in &config.security.listeners {
            server::probe_port_free(l.addr)?;
            reservation.extend(server::reserve(l.addr).map_err(|e| {
                StartupError::new(
                    format!("cannot bind {} ({}): {e}", l.addr, l.name),
                    "pass --listen HOST:PORT or other --listeners",
                )
            })?);
        }
    }
    // Certificates and the PLAIN users file: a bad file stops the start, saying which.
    let security =
        Arc::new(Security::load(&config.security).map_err(|e| {
            StartupError::new(e, "fix the file named, or the --ssl-*/--sasl-* flags")
        })?);
    // The admin port too, before anything starts that a refusal would have to stop.
    let admin_listener = bind_admin(&config)?;
    let store = Arc::new(QuorumStore::start(&config, dir_identity.cluster_id, security.quorum_tls.clone()).map_err(|e| {
        StartupError::new(
            format!("cannot start the controller quorum member: {e}"),
            "check --controller-listen (free, this host's address) and the data directory; another cluster's data directory is refused",
        )
    })?);
    partition::remove_deleted_leftovers(&config.data_dir);
    let runtime = compio::runtime::Runtime::new()?;
    let result = runtime.block_on(serve(
        config.clone(),
        store.clone(),
        dir_identity,
        legacy,
        pool,
        (reservation, security),
        admin_listener,
    ));
    store.shutdown();
    result
}

/// The node's life on the main thread: follows the metadata, keeps the broker registered,
/// starts the shards, and stops them on a signal or a fatal refusal.
async fn serve(
    config: Arc<NodeConfig>,
    store: Arc<QuorumStore>,
    dir_identity: DirIdentity,
    legacy: Option<legacy::Legacy>,
    pool: Blocking,
    (reservation, security): (Vec<socket2::Socket>, Arc<Security>),
    admin_listener: Option<std::net::TcpListener>,
) -> anyhow::Result<()> {
    // Register the signal handlers before saying "ready", so a SIGTERM sent right after the
    // ready line is never met by the default action (which would kill the process).
    let mut term = std::pin::pin!(compio::signal::unix::signal(SIGTERM));
    let mut int = std::pin::pin!(compio::signal::unix::signal(SIGINT));
    let early = std::future::poll_fn(|cx| {
        let t = term.as_mut().poll(cx).is_ready();
        let i = int.as_mut().poll(cx).is_ready();
        Poll::Ready(t || i)
    })
    .await;
    let stop = Arc::new(broker::Stop::default());
    let follower = compio::runtime::spawn(follow(store.clone(), config.clone(), dir_identity));
    // Leadership back to preferred replicas, proposed while this node's controller is active.
    let rebalancer = config.cluster.auto_leader_rebalance_enable.then(|| {
        let interval = Duration::from_secs(config.cluster.leader_imbalance_check_interval_seconds);
        compio::runtime::spawn(rebalance::run(store.clone(), config.node_id, interval))
    });
    let (fatal_tx, fatal_rx) = async_channel::bounded::<String>(1);
    let admin = Rc::new(NodeAdmin::new(&config, store.clone()));
    let _admin_task = admin_listener.map(|listener| {
        compio::runtime::spawn(metrics::http::serve(listener, admin.clone() as Rc<dyn Admin>))
    });
    let _tls_reload = security.tls.is_some().then(|| {
        let security = security.clone();
        compio::runtime::spawn(async move { reload_tls(&security).await })
    });
    let mut shards = None;
    if config.cluster.roles.broker {
        let broker = Broker {
            store: store.clone(),
            dir_identity,
            stop: stop.clone(),
            fatal_tx,
            security: security.clone(),
        };
        shards = Some(broker.start(&config, legacy, pool, &fatal_rx, &admin).await?);
    }
    // The shards listen on the port now.
    drop(reservation);
    admin.ready.set(true);
    print_ready(&config);
    let mut failure = None;
    if !early {
        let signal = select(term, int);
        if let Either::Right((Ok(why), _)) = select(signal, std::pin::pin!(fatal_rx.recv())).await {
            error!(reason = %why, "the controller refused this broker; stopping");
            failure = Some(why);
        }
    }
    let began = std::time::Instant::now();
    admin.ready.set(false);
    stop.stop();
    if let Some((_, lifecycle)) = &mut shards {
        // Heartbeats end first, so that none unfences the broker after the controller
        // fenced it (a controlled shutdown), unless the controller refused this broker.
        let ended = compio::time::timeout(Duration::from_secs(1), lifecycle).await.is_ok();
        if ended && failure.is_none() {
            broker::leave(&store, config.node_id).await;
        }
    }
    info!("shutting down: no new connections; finishing in-flight requests");
    if let Some((shards, _)) = shards {
        // The whole shutdown stays within SHUTDOWN_TIMEOUT.
        let left = SHUTDOWN_TIMEOUT.saturating_sub(began.elapsed()).max(Duration::from_secs(1));
        if shards.stop(left) {
            info!("stopped cleanly");
        } else {
            warn!(
                timeout_s = SHUTDOWN_TIMEOUT.as_secs(),
                "shards did not stop in time; exiting anyway"
            );
        }
    }
    drop(rebalancer);
    drop(follower);
    match failure {
        None => Ok(()),
        Some(why) => Err(StartupError::new(why, LOST_DISK_FIX).into()),
    }
}

/// How long a scrape waits for each shard's sample.
const SCRAPE_SHARD_TIMEOUT: Duration = Duration::from_secs(5);

/// What the admin listener reads: the shards' counters and, once they run, their mesh (to
/// collect their state), the metadata, and whether the node is ready.
struct NodeAdmin {
    node_id: i32,
    stats: Vec<Arc<ShardStats>>,
    mesh: RefCell<Option<Arc<Mesh<Shard>>>>,
    store: Arc<QuorumStore>,
    ready: Cell<bool>,
}

impl NodeAdmin {
    fn new(config: &NodeConfig, store: Arc<QuorumStore>) -> Self {
        let stats = (0..config.smp).map(|i| Arc::new(ShardStats::new(i))).collect();
        Self {
            node_id: config.node_id,
            stats,
            mesh: RefCell::new(None),
            store,
            ready: Cell::new(false),
        }
    }

    fn node_sample(&self) -> NodeSample {
        let snapshot = self.store.snapshot();
        let offline = snapshot
            .topics
            .values()
            .flat_map(|t| &t.placement)
            .filter(|p| p.leader < 0 || !snapshot.brokers.contains_key(&p.leader))
            .count();
        let active = self.store.quorum_status().is_some_and(|q| {
            q.leader_id.is_some_and(|l| u64::try_from(self.node_id).is_ok_and(|me| me == l))
        });
        NodeSample {
            node_id: self.node_id,
            active_controller: active,
            live_brokers: snapshot.brokers.len(),
            offline_partitions: offline,
            topics: snapshot.topics.len(),
            shards_unanswered: 0,
        }
    }
}

impl Admin for NodeAdmin {
    fn metrics(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = String>>> {
        let mut node = self.node_sample();
        let stats = self.stats.clone();
        let mesh = self.mesh.borrow().clone();
        Box::pin(async move {
            let mut samples = Vec::new();
            if let Some(mesh) = mesh {
                let calls = (0..mesh.len()).map(|i| {
                    let call = mesh.call(i, |ctx| async move { shard::sample(&ctx) });
                    compio::time::timeout(SCRAPE_SHARD_TIMEOUT, call)
                });
                for answer in futures_util::future::join_all(calls).await {
                    match answer {
                        Ok(Ok(sample)) => samples.push(sample),
                        _ => node.shards_unanswered += 1,
                    }
                }
            }
            metrics::render(&node, &stats, &samples)
        })
    }

    fn ready(&self) -> bool {
        self.ready.get()
    }
}

/// Binds the admin HTTP listener (served on the main thread once the runtime runs). A port
/// given explicitly that cannot be had stops the start; the default's only logs a warning.
fn bind_admin(config: &NodeConfig) -> anyhow::Result<Option<std::net::TcpListener>> {
    let Some(AdminListen { addr, explicit }) = config.admin_listen else { return Ok(None) };
    match metrics::http::bind(addr) {
        Ok(listener) => {
            info!(%addr, "admin listener: GET /metrics, /health, /ready");
            Ok(Some(listener))
        }
        Err(e) if explicit => Err(StartupError::new(
            format!("cannot listen on {addr} for the admin API: {e}"),
            "pass another --admin-listen HOST:PORT, or --admin-listen none",
        )
        .into()),
        Err(e) => {
            warn!(%addr, error = %e, "admin listener not started (its default port is taken); pass --admin-listen HOST:PORT");
            Ok(None)
        }
    }
}

/// What starting the broker role needs besides the config.
struct Broker {
    store: Arc<QuorumStore>,
    dir_identity: DirIdentity,
    stop: Arc<broker::Stop>,
    /// Where the registration loop reports a refusal for good.
    fatal_tx: async_channel::Sender<String>,
    security: Arc<Security>,
}

impl Broker {
    /// Starts the registration and heartbeats, then the shards. A quorum of one first waits
    /// until its broker is unfenced and upgrades a single node's old catalogue, so that it
    /// serves its partitions from the ready line on.
    async fn start(
        self,
        config: &Arc<NodeConfig>,
        legacy: Option<legacy::Legacy>,
        pool: Blocking,
        fatal_rx: &async_channel::Receiver<String>,
        admin: &NodeAdmin,
    ) -> anyhow::Result<(ShardThreads, compio::runtime::JoinHandle<()>)> {
        let Broker { store, dir_identity, stop, fatal_tx, security } = self;
        let registered = Arc::new(Event::new());
        let listener = registered.listen();
        let lifecycle = broker::run(
            store.clone(),
            registration(config, dir_identity),
            Duration::from_millis(config.cluster.broker_heartbeat_interval_ms),
            stop,
            registered.clone(),
        );
        let lifecycle = compio::runtime::spawn(async move {
            if let Err(e) = lifecycle.await {
                let _ = fatal_tx.try_send(e.to_string());
            }
        });
        if !config.cluster.configured_voters {
            wait_unfenced(listener, fatal_rx).await?;
            if let Some(legacy) = &legacy {
                upgrade(&store, config, legacy).await?;
            }
            partition::warn_orphans(&config.data_dir, &store.snapshot());
        }
        let metadata: Arc<dyn MetadataStore> = store.clone();
        let producer_ids = Arc::new(ProducerIds::new(config.node_id, store.clone()));
        let stats = admin.stats.clone();
        let (shards, mesh) =
            shard::start(config.clone(), metadata, producer_ids, pool, stats, security)?;
        *admin.mesh.borrow_mut() = Some(mesh);
        Ok((shards, lifecycle))
    }
}

/// How often the TLS files are looked at for a change.
const TLS_RELOAD_INTERVAL: Duration = Duration::from_secs(10);

/// Re-reads the TLS certificate, key and CA when they change (on the main thread: the file
/// reads block), so that a renewed certificate is served without a restart. New connections
/// get it; open ones keep theirs.
async fn reload_tls(security: &Security) {
    let Some(tls) = &security.tls else { return };
    loop {
        compio::time::sleep(TLS_RELOAD_INTERVAL).await;
        match tls.reload_if_changed() {
            None => {}
            Some(Ok(())) => info!("TLS certificate reloaded"),
            Some(Err(e)) => {
                warn!(error = %e, "TLS files changed but do not load; the old certificate stays")
            }
        }
    }
}

/// What to do when the controller refuses this broker's registration.
const LOST_DISK_FIX: &str = "if this node's disk was lost, follow README \"Replacing a broker whose disk was lost\" (unregister the old id), or start it with a node id never used before";

fn print_ready(config: &NodeConfig) {
    let c = &config.cluster;
    let roles = match (c.roles.broker, c.roles.controller) {
        (true, true) => "broker,controller",
        (true, false) => "broker",
        _ => "controller",
    };
    if c.roles.broker {
        // The inter-broker listener first (what `--listen` gives), then any others.
        let others: String = config
            .security
            .listeners
            .iter()
            .filter(|l| l.addr != config.listen)
            .map(|l| format!(", {}://{}", l.name, l.addr))
            .collect();
        println!(
            "odradek ready: listening on {} (advertised as {}:{}){others}, {} shard{}, data dir {}, node {} ({roles})",
            config.listen,
            config.advertise.0,
            config.advertise.1,
            config.smp,
            if config.smp == 1 { "" } else { "s" },
            config.data_dir.display(),
            config.node_id,
        );
    } else {
        println!(
            "odradek ready: controller on {}, data dir {}, node {} ({roles})",
            c.controller_listen,
            config.data_dir.display(),
            config.node_id
        );
    }
}

/// Turns each new metadata image into the shards' catalogue, and records the cluster id in
/// `meta.properties` once a joining node learns it.
async fn follow(store: Arc<QuorumStore>, config: Arc<NodeConfig>, mut dir: DirIdentity) {
    let Some(mut watch) = store.subscribe() else { return };
    loop {
        store.refresh();
        if dir.cluster_id.is_none()
            && let Some(id) = store.cluster_id()
        {
            dir.cluster_id = Some(id);
            // A small blocking write, once, on the main thread (never a shard).
            if let Err(e) = identity::record_cluster_id(&config.data_dir, config.node_id, dir) {
                error!(error = %e, "cannot record the cluster id in meta.properties");
            }
            store.refresh();
        }
        // Wakes on every image, and at least every second for the cluster id.
        let _ = compio::time::timeout(Duration::from_secs(1), watch.changed()).await;
    }
}

fn registration(config: &NodeConfig, dir: DirIdentity) -> broker::Registration {
    broker::Registration {
        broker_id: config.node_id,
        incarnation: dir.directory_id,
        host: config.advertise.0.clone(),
        port: config.advertise.1,
        rack: config.rack.clone(),
        listeners: config
            .security
            .listeners
            .iter()
            .map(|l| odradek_controller::Endpoint {
                name: l.name.clone(),
                host: l.advertised.0.clone(),
                port: l.advertised.1,
            })
            .collect(),
    }
}

/// How long a quorum of one may take to elect itself and unfence its broker.
const SOLO_START_TIMEOUT: Duration = Duration::from_secs(60);

async fn wait_unfenced(
    listener: event_listener::EventListener,
    fatal: &async_channel::Receiver<String>,
) -> anyhow::Result<()> {
    let fatal = std::pin::pin!(fatal.recv());
    match compio::time::timeout(SOLO_START_TIMEOUT, select(listener, fatal)).await {
        Ok(Either::Left(_)) => Ok(()),
        Ok(Either::Right((why, _))) => {
            Err(StartupError::new(why.unwrap_or_default(), LOST_DISK_FIX).into())
        }
        Err(_) => Err(StartupError::new(
            "the controller (a quorum of one) did not unfence this broker in time",
            "see the log lines above for the controller's error",
        )
        .into()),
    }
}

async fn upgrade(
    store: &QuorumStore,
    config: &NodeConfig,
    legacy: &legacy::Legacy,
) -> anyhow::Result<()> {
    legacy::upgrade(store, legacy).await.map_err(|e| {
        StartupError::new(
            format!("cannot upgrade the single node's topics into the controller quorum: {e}"),
            "nothing was removed; fix the cause above and start again (the upgrade resumes)",
        )
    })?;
    legacy::retire(&config.data_dir).map_err(|e| {
        StartupError::new(
            format!("cannot rename topics.json and producer-ids aside: {e}"),
            "check the data directory's permissions",
        )
    })?;
    let want = legacy.topics.len();
    let caught_up = cluster::wait_for(store, Duration::from_secs(10), |c| {
        legacy.topics.iter().all(|t| c.topic(&t.name).is_some())
    });
    if !caught_up.await {
        warn!(topics = want, "upgraded topics not yet visible; they appear shortly");
    }
    info!(topics = want, "single-node data directory upgraded into a quorum of one");
    Ok(())
}

/// The config the node runs with: flags, environment, file, then autotune's defaults for what
/// none of them set (each decision logged); the data directory checked writable, the cluster
/// id read or created, and the host checked.
fn resolve_config(args: &ServeArgs) -> anyhow::Result<NodeConfig> {
    let host = args.host_root.as_deref().map_or_else(Host::real, Host::new);
    let facts = HostFacts::detect(&host, &RealSystem);
    let mut tuned = None;
    let config = NodeConfig::resolve_with(args, |dir, smp| {
        let io = iotune::load(dir).unwrap_or_else(|e| {
            warn!(error = %e, "ignoring the iotune result; run `odradek tune iotune` again");
            None
        });
        let t = autotune::derive(facts, io.as_ref(), smp);
        let defaults = HostDefaults {
            smp: t.smp.value,
            fetch_cache_bytes: usize::try_from(t.fetch_cache_bytes.value).unwrap_or(usize::MAX),
            direct_writes: t.direct_writes.value,
        };
        tuned = Some(t);
        defaults
    })?;
    checks::data_dir_writable(&config.data_dir)?;
    checks::host(args.host_root.as_deref(), &config.data_dir, config.smp)?;
    if let Some(t) = &tuned {
        let in_use = InUse {
            smp: config.smp,
            fetch_cache_bytes: config.fetch_cache_bytes as u64,
            direct_writes: config.direct_writes,
        };
        startup::log_autotune(t, &in_use);
    }
    Ok(config)
}

/// The data directory's identity from `meta.properties`. Created on first start: with the
/// cluster id the controller's directory already holds (an older node's data directory), else
/// a new one if this node initializes a new cluster; the others adopt the quorum's.
fn identity(config: &NodeConfig) -> Result<DirIdentity, StartupError> {
    let c = &config.cluster;
    let bootstraps =
        c.roles.controller && c.voters.bootstrapper() == u64::try_from(config.node_id).ok();
    let stored = || {
        let path = config.data_dir.join(quorum::CONTROLLER_DIR).join(CLUSTER_ID_FILE);
        std::fs::read(path).ok().and_then(|b| serde_json::from_slice::<uuid::Uuid>(&b).ok())
    };
    let new_file_cluster = || stored().or_else(|| bootstraps.then(identity::random_uuid));
    identity::load_or_create(&config.data_dir, config.node_id, new_file_cluster).map_err(|e| {
        let fix = match e {
            cluster::MetaPropertiesError::NodeIdMismatch { .. } => {
                "point --data-dir at this node's own data directory"
            }
            _ => "restore meta.properties from a backup, or fix the line named",
        };
        StartupError::new(e.to_string(), fix)
    })
}
