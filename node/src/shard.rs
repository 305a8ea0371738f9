//! Shards: one pinned thread per shard, each with its own compio runtime (io_uring), its own
//! listener on the shared port (`SO_REUSEPORT`: the kernel spreads connections across shards),
//! the connections it accepted and the partitions it owns. Shards share only the immutable
//! config, the topic catalogue (read through lock-free snapshots) and the mesh of inboxes
//! through which they send each other work.
//!
//! Start-up: a shard opens (and recovers) every partition it owns before it reports ready.
//! Shutdown: the node sends every shard its stop signal; a shard stops accepting, lets each
//! connection finish the request it is in (idle connections close at once), waits for them up
//! to [`DRAIN_TIMEOUT`], goes on serving its inbox until every shard got that far (a request
//! under way on another shard may still need it), closes its partitions cleanly (flush and
//! clean-shutdown marker), and its thread ends.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use compio::net::TcpListener;
use event_listener::Event;
use futures_channel::oneshot;
use futures_util::future::{Either, select};
use tracing::{info, warn};

use crate::checks::StartupError;
use crate::config::NodeConfig;
use crate::conn;
use crate::fetch_session::Sessions;
use crate::group_offsets::Coordinated;
use crate::mesh::{self, Mesh, Task};
use crate::metadata::Metadata;
use crate::partitions::Partitions;
use crate::producer_ids::ProducerIds;
use odradek_storage::LogConfig;

/// How long a stopping shard waits for its connections to finish their requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(8);
/// Pending connections the kernel queues per shard listener.
const LISTEN_BACKLOG: i32 = 1024;
/// How often the stall watch wakes up, and how late it must be to say the shard stalled.
const STALL_TICK: Duration = Duration::from_millis(10);
const STALL_WARN: Duration = Duration::from_millis(20);

/// What every task of one shard shares (shard-local: `Rc`, never crosses threads).
#[derive(Debug)]
pub struct ShardCtx {
    pub id: usize,
    pub config: Arc<NodeConfig>,
    pub metadata: Arc<Metadata>,
    pub mesh: Arc<Mesh>,
    pub producer_ids: Arc<ProducerIds>,
    pub partitions: Partitions,
    /// Incremental fetch sessions of this shard's connections.
    pub fetch_sessions: RefCell<Sessions>,
    /// Committed offsets of the groups this shard coordinates.
    pub groups: RefCell<Coordinated>,
    /// Set once the shard is stopping; `stop_event` wakes connections waiting for a request.
    pub stopping: Cell<bool>,
    pub stop_event: Event,
    pub connections: Cell<usize>,
}

/// The running shards.
#[derive(Debug)]
pub struct Shards {
    threads: Vec<JoinHandle<()>>,
    stops: Vec<oneshot::Sender<()>>,
}

impl Shards {
    /// Starts `config.smp` shards and returns once every one listens, or the first failure.
    pub fn start(
        config: Arc<NodeConfig>,
        metadata: Arc<Metadata>,
        producer_ids: Arc<ProducerIds>,
    ) -> Result<Self, StartupError> {
        probe_port_free(config.listen)?;
        let (mesh, inboxes) = Mesh::new(config.smp);
        let mesh = Arc::new(mesh);
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), StartupError>>();
        let mut shards = Shards { threads: Vec::new(), stops: Vec::new() };
        for (id, inbox) in inboxes.into_iter().enumerate() {
            let (stop_tx, stop_rx) = oneshot::channel();
            let core = (config.pin_shards && !cores.is_empty()).then(|| cores[id % cores.len()]);
            let shared = Shared {
                config: config.clone(),
                metadata: metadata.clone(),
                mesh: mesh.clone(),
                producer_ids: producer_ids.clone(),
            };
            let ready = ready_tx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("shard-{id}"))
                .spawn(move || run_shard(id, core, shared, inbox, stop_rx, ready))
                .map_err(|e| {
                    StartupError::new(
                        format!("cannot start shard thread: {e}"),
                        "check the process's thread limit (ulimit -u)",
                    )
                })?;
            shards.threads.push(thread);
            shards.stops.push(stop_tx);
        }
        drop(ready_tx);
        for _ in 0..config.smp {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    shards.stop(Duration::from_secs(1));
                    return Err(e);
                }
                Err(_) => {
                    shards.stop(Duration::from_secs(1));
                    return Err(StartupError::new(
                        "a shard thread died while starting",
                        "see the log lines above",
                    ));
                }
            }
        }
        Ok(shards)
    }

    /// Stops every shard and waits for their threads, at most `timeout` in all. Returns whether
    /// all of them ended in time.
    pub fn stop(self, timeout: Duration) -> bool {
        for stop in self.stops {
            let _ = stop.send(());
        }
        let deadline = Instant::now() + timeout;
        let mut all = true;
        for t in self.threads {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                all = false;
            }
        }
        all
    }
}

/// How long start-up waits for a port still held by a node that just died.
const PORT_RELEASE_WAIT: Duration = Duration::from_secs(5);

/// Fails with a clear message if something (another broker, another odradek) holds the port:
/// shard listeners use `SO_REUSEPORT`, which would otherwise share it silently.
///
/// A node killed a moment ago still holds its listeners for a while after its process is gone
/// (the kernel tears down an io_uring instance, and the sockets its pending accepts hold, in
/// the background), so a port in use is retried for up to [`PORT_RELEASE_WAIT`]: an immediate
/// restart after a crash then succeeds.
fn probe_port_free(addr: SocketAddr) -> Result<(), StartupError> {
    let deadline = Instant::now() + PORT_RELEASE_WAIT;
    let mut result = std::net::TcpListener::bind(addr).map(drop);
    while matches!(&result, Err(e) if e.kind() == std::io::ErrorKind::AddrInUse)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
        result = std::net::TcpListener::bind(addr).map(drop);
    }
    result.map_err(|e| {
        let problem = if e.kind() == std::io::ErrorKind::AddrInUse {
            format!("{addr} is already in use (another broker or odradek is listening there)")
        } else {
            format!("cannot listen on {addr}: {e}")
        };
        StartupError::new(problem, "stop the other process or pass --listen HOST:PORT")
    })
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// What every shard thread is handed.
struct Shared {
    config: Arc<NodeConfig>,
    metadata: Arc<Metadata>,
    mesh: Arc<Mesh>,
    producer_ids: Arc<ProducerIds>,
}

fn run_shard(
    id: usize,
    core: Option<core_affinity::CoreId>,
    shared: Shared,
    inbox: async_channel::Receiver<Task>,
    stop: oneshot::Receiver<()>,
    ready: mpsc::Sender<Result<(), StartupError>>,
) {
    if let Some(core) = core
        && !core_affinity::set_for_current(core)
    {
        warn!(shard = id, core = core.id, "could not pin the shard thread to its core");
    }
    let runtime = match compio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(StartupError::new(
                format!("shard {id}: cannot create an io_uring: {e}"),
                "see `odradek tune` (io_uring checks)",
            )));
            return;
        }
    };
    let Shared { config, metadata, mesh, producer_ids } = shared;
    runtime.block_on(async move {
        let listener = match bind(config.listen) {
            Ok(l) => l,
            Err(e) => {
                let _ = ready.send(Err(StartupError::new(
                    format!("shard {id}: cannot listen on {}: {e}", config.listen),
                    "pass --listen HOST:PORT",
                )));
                return;
            }
        };
        let engine = LogConfig { direct_writes: config.direct_writes, ..LogConfig::default() };
        let partitions =
            Partitions::new(&config.data_dir, metadata.clone(), engine, config.fetch_cache_bytes);
        let smp = config.smp;
        let ctx = Rc::new(ShardCtx {
            id,
            config,
            metadata,
            mesh,
            producer_ids,
            partitions,
            fetch_sessions: RefCell::new(Sessions::new(id, smp)),
            groups: RefCell::new(Coordinated::default()),
            stopping: Cell::new(false),
            stop_event: Event::new(),
            connections: Cell::new(0),
        });
        compio::runtime::spawn(mesh::serve_inbox(ctx.clone(), inbox)).detach();
        if let Err(e) = open_owned(&ctx).await {
            let _ = ready.send(Err(e));
            return;
        }
        let _ = ready.send(Ok(()));
        let maintenance = {
            let ctx = ctx.clone();
            compio::runtime::spawn(async move {
                let stopping = || ctx.stopping.get();
                ctx.partitions.maintain(stopping).await;
            })
        };
        let expiry = compio::runtime::spawn(crate::handlers::expire_offsets(ctx.clone()));
        let ticker = compio::runtime::spawn(crate::handlers::tick_groups(ctx.clone()));
        let watch = {
            let ctx = ctx.clone();
            let id = ctx.id;
            compio::runtime::spawn(async move {
                stall_watch(
                    || ctx.stopping.get(),
                    |late| {
                        warn!(
                            shard = id,
                            late_ms = late.as_millis() as u64,
                            "shard event loop stalled"
                        )
                    },
                )
                .await;
            })
        };
        accept_loop(&ctx, listener, stop).await;
        drain(&ctx).await;
        let _ = watch.await;
        let _ = expiry.await;
        let _ = ticker.await;
        let _ = maintenance.await;
        ctx.partitions.close_all().await;
        info!(shard = ctx.id, "partitions closed");
    });
}

/// Opens every partition this shard owns, so that recovery happens before the node says it is
/// ready. A partition that cannot be opened stops the node: serving without it would answer
/// its clients as if its data did not exist.
async fn open_owned(ctx: &Rc<ShardCtx>) -> Result<(), StartupError> {
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

async fn accept_loop(ctx: &Rc<ShardCtx>, listener: TcpListener, mut stop: oneshot::Receiver<()>) {
    loop {
        let accept = std::pin::pin!(listener.accept());
        match select(accept, &mut stop).await {
            Either::Right(_) => break,
            Either::Left((Ok((stream, peer)), _)) => {
                let limit = ctx.config.connections_per_shard_max;
                if ctx.connections.get() >= limit {
                    // Closing at once is all a client can be told before it sent a request.
                    warn!(shard = ctx.id, %peer, limit, "connection limit reached; closing the new connection");
                    drop(stream);
                    continue;
                }
                let ctx = ctx.clone();
                ctx.connections.set(ctx.connections.get() + 1);
                compio::runtime::spawn(async move {
                    conn::serve(&ctx, stream, peer).await;
                    ctx.connections.set(ctx.connections.get() - 1);
                })
                .detach();
            }
            Either::Left((Err(e), _)) => {
                // Out of descriptors and the like: say so, back off a little, keep serving.
                warn!(shard = ctx.id, error = %e, "accept failed");
                compio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Logs when the shard's event loop was held up: a timer of [`STALL_TICK`] that fires more than
/// [`STALL_WARN`] late means nothing on this shard ran for that long (a blocking call, a long
/// computation, or the thread not being scheduled). Every request of the shard waited as long.
async fn stall_watch(stopping: impl Fn() -> bool, on_stall: impl Fn(Duration)) {
    while !stopping() {
        let started = Instant::now();
        compio::time::sleep(STALL_TICK).await;
        let late = started.elapsed().saturating_sub(STALL_TICK);
        if late >= STALL_WARN {
            on_stall(late);
        }
    }
}

async fn drain(ctx: &Rc<ShardCtx>) {
    ctx.stopping.set(true);
    ctx.stop_event.notify(usize::MAX);
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while ctx.connections.get() > 0 && Instant::now() < deadline {
        compio::time::sleep(Duration::from_millis(5)).await;
    }
    info!(shard = ctx.id, open_connections = ctx.connections.get(), "shard stopped");
    // Requests still under way on other shards may need this one (a fetch of a partition it
    // owns): its inbox is served until every shard's connections are done.
    let mut all = ctx.mesh.drained(true);
    while !all && Instant::now() < deadline {
        compio::time::sleep(Duration::from_millis(5)).await;
        all = ctx.mesh.drained(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stall_watch_sees_a_blocked_event_loop() {
        let runtime = compio::runtime::Runtime::new().expect("runtime");
        let stalls = runtime.block_on(async {
            let stop = Rc::new(Cell::new(false));
            let seen = Rc::new(RefCell::new(Vec::new()));
            let watch = {
                let (stop, seen) = (stop.clone(), seen.clone());
                compio::runtime::spawn(async move {
                    stall_watch(|| stop.get(), |late| seen.borrow_mut().push(late)).await;
                })
            };
            // Idle for a while: no stall.
            compio::time::sleep(Duration::from_millis(60)).await;
            let idle = seen.borrow().len();
            // A blocking call holds the event loop for 80 ms.
            std::thread::sleep(Duration::from_millis(80));
            compio::time::sleep(Duration::from_millis(30)).await;
            stop.set(true);
            let _ = watch.await;
            let seen = seen.borrow().clone();
            (idle, seen)
        });
        let (idle, seen) = stalls;
        // (A busy test machine may deschedule the thread too, so smaller stalls are allowed.)
        let blocked = seen[idle..].iter().filter(|l| **l >= Duration::from_millis(60)).count();
        assert_eq!(blocked, 1, "the 80 ms block is seen once, late by most of it: {seen:?}");
    }
}
