//! The server room: listeners, connections, and each connection's session.
//!
//! `conn` reads one frame at a time, decodes it (`odradek_net`), hands it with the
//! connection's [`Session`] to `api::handle`, and writes the answer with `transport` (vectored
//! writes; file ranges spliced to the socket).
//!
//! **Invariants.**
//! - Responses leave in request order: a connection answers one request at a time.
//! - Every read from a client is bounded in size (`socket.request.max.bytes`, checked before
//!   the body is read) and in time (`connections.max.idle.ms`), and so is every write of a
//!   response (a client that does not read is closed).
//! - A connection holds at most one request: its body is buffered 64 KiB at a time until it
//!   proves larger, and a larger body is charged to the shard's share of
//!   `queued.max.request.bytes` ([`budget`]) until it is handled. An idle connection holds no
//!   buffer. So the node's memory for clients is bounded by connections × 64 KiB plus the
//!   budget plus the responses being written.
//! - A shard holds at most `connections_per_shard_max` connections, and one client address at
//!   most its `max_connections_per_ip` on the whole node ([`per_ip`]); more are closed at once.
//! - A frame that cannot be decoded, or an API this node does not serve, closes the
//!   connection; nothing of it is acted on.
//! - Connections closed for misbehaving are logged once per class, then summarised at most
//!   once a minute ([`abuse`]), and counted in `odradek_connections_closed_total{reason}`.
//!
//! **What it does not know.** What a request means (that is `api`), or where records live
//! (a Fetch answer names memory or file ranges; the transport sends them).

pub mod abuse;
pub mod budget;
pub mod conn;
pub mod per_ip;
pub mod sasl;
pub mod session;
pub mod stream;
pub mod transport;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use compio::net::TcpListener;
use futures_channel::oneshot;
use futures_util::future::{Either, select};
use tracing::warn;

pub use session::{ListenerInfo, Principal, Session};

use crate::checks::StartupError;
use crate::shard::Shard;

/// Pending connections the kernel queues per shard listener.
const LISTEN_BACKLOG: i32 = 1024;
/// At most one "accept failed" line per shard this often.
const ACCEPT_FAILURE_LOG_EVERY: Duration = Duration::from_secs(10);
/// How long start-up waits for a port still held by a node that just died.
const PORT_RELEASE_WAIT: Duration = Duration::from_secs(5);

/// Fails with a clear message if something (another broker, another odradek) holds the port:
/// shard listeners use `SO_REUSEPORT`, which would otherwise share it silently.
///
/// A node killed a moment ago still holds its listeners for a while after its process is gone
/// (the kernel tears down an io_uring instance, and the sockets its pending accepts hold, in
/// the background), so a port in use is retried for up to [`PORT_RELEASE_WAIT`]: an immediate
/// restart after a crash then succeeds.
pub fn probe_port_free(addr: SocketAddr) -> Result<(), StartupError> {
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

/// Holds the node's port from start-up until the shards listen on it: a bound socket that
/// does not listen (`SO_REUSEPORT`, like the shards' listeners). Without it, the controller's
/// outgoing connections, which bind the same IP with an ephemeral port, could be given the
/// node's port meanwhile (in tests, ports come from the ephemeral range). `None` for port 0.
pub fn reserve(addr: SocketAddr) -> std::io::Result<Option<socket2::Socket>> {
    use socket2::{Domain, Socket, Type};
    if addr.port() == 0 {
        return Ok(None);
    }
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // SO_REUSEPORT only: the shards (same user, SO_REUSEPORT) may bind beside it, but another
    // process's probe (SO_REUSEADDR, no SO_REUSEPORT) still finds the port taken.
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    Ok(Some(socket))
}

/// A shard's listener on the node's port (`SO_REUSEPORT`: every shard has one).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Accepts connections on every listener until `stop` fires, each served by its own task on
/// this shard.
pub async fn accept_loop(
    ctx: &Rc<Shard>,
    listeners: Vec<(TcpListener, Rc<ListenerInfo>)>,
    stop: oneshot::Receiver<()>,
) {
    let stopped = Rc::new(event_listener::Event::new());
    let flag = Rc::new(std::cell::Cell::new(false));
    let tasks: Vec<_> = listeners
        .into_iter()
        .map(|(listener, info)| {
            let (ctx, stopped, flag) = (ctx.clone(), stopped.clone(), flag.clone());
            compio::runtime::spawn(async move {
                accept_on(&ctx, listener, info, &flag, &stopped).await;
            })
        })
        .collect();
    let _ = stop.await;
    flag.set(true);
    stopped.notify(usize::MAX);
    for task in tasks {
        let _ = task.await;
    }
}

async fn accept_on(
    ctx: &Rc<Shard>,
    listener: TcpListener,
    info: Rc<ListenerInfo>,
    flag: &std::cell::Cell<bool>,
    stopped: &event_listener::Event,
) {
    // Accept failures (out of descriptors, mostly) repeat every few milliseconds while they
    // last: one line when they start, then one per ACCEPT_FAILURE_LOG_EVERY with the count.
    let mut failures: (u64, Option<Instant>) = (0, None);
    loop {
        let stop = stopped.listen();
        if flag.get() {
            break;
        }
        let accept = std::pin::pin!(listener.accept());
        match select(accept, stop).await {
            Either::Right(_) => break,
            Either::Left((Ok((stream, peer)), _)) => {
                let limit = ctx.config.connections_per_shard_max;
                let life = &ctx.life;
                if life.connections.get() >= limit {
                    // Closing at once is all a client can be told before it sent a request.
                    let detail = format!("{limit} connections on shard {}", ctx.id);
                    ctx.abuse.closed(&ctx.stats, abuse::Abuse::ConnectionLimit, peer, &detail);
                    crate::metrics::ShardStats::add(&ctx.stats.connections_refused, 1);
                    drop(stream);
                    continue;
                }
                let slot = match ctx.per_ip.admit(peer.ip()) {
                    Ok(slot) => slot,
                    Err(refused) => {
                        let detail = format!("{} connections from {}", refused.limit, peer.ip());
                        ctx.abuse.closed(&ctx.stats, abuse::Abuse::ConnectionsPerIp, peer, &detail);
                        drop(stream);
                        continue;
                    }
                };
                let ctx = ctx.clone();
                life.connections.set(life.connections.get() + 1);
                let stats = &ctx.stats;
                crate::metrics::ShardStats::add(&stats.connections_accepted, 1);
                stats.connections.store(life.connections.get() as u64, Ordering::Relaxed);
                let info = info.clone();
                compio::runtime::spawn(async move {
                    conn::serve(&ctx, stream, peer, info).await;
                    drop(slot);
                    ctx.life.connections.set(ctx.life.connections.get() - 1);
                    ctx.stats
                        .connections
                        .store(ctx.life.connections.get() as u64, Ordering::Relaxed);
                })
                .detach();
            }
            Either::Left((Err(e), _)) => {
                // Out of descriptors and the like: say so, back off a little, keep serving.
                failures.0 += 1;
                let due = failures.1.is_none_or(|t| t.elapsed() >= ACCEPT_FAILURE_LOG_EVERY);
                if due {
                    let count = std::mem::take(&mut failures.0);
                    warn!(shard = ctx.id, error = %e, count, "accept failed (count: failures since the last such line; the file descriptor limit is `ulimit -n`)");
                    failures.1 = Some(Instant::now());
                }
                compio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
