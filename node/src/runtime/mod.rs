//! The runtime room: pinned shard threads, each with its own compio runtime (io_uring), the
//! mesh of bounded inboxes through which shards hand each other work, the stall watch, and the
//! bounded pool for the few blocking file calls the node must make.
//!
//! **Invariants.**
//! - One thread per shard, pinned to its core when asked; everything a shard owns stays on its
//!   thread (`Rc`, `RefCell`). Shards reach each other only through [`mesh::on_shard`], whose
//!   inboxes are bounded ([`mesh::INBOX_CAPACITY`]).
//! - No blocking disk call runs on a shard thread while it serves, with one exception: the
//!   file calls io_uring cannot make (a directory's `fsync` after a rename, `remove_dir_all`)
//!   go to [`blocking`], a small pool with a bounded queue, and the shard awaits the answer.
//!   The exception: opening a partition lists its directory (`CompioBackend::list_dir`, a
//!   `read_dir`, since io_uring has no `getdents`) on the owner shard — at start-up, and when a
//!   topic is created or grows.
//! - [`ShardThreads::start`] returns only after every shard reported ready (or the first one
//!   failed, and then every thread is stopped).
//!
//! **What it does not know.** Kafka, partitions, connections: a shard's context is a type
//! parameter, and what a shard runs is the body it is given.

pub mod blocking;
pub mod mesh;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use tracing::warn;

use crate::checks::StartupError;
pub use mesh::{Mesh, ShardGone, Sharded, Task, on_shard, serve_inbox};

/// How often the stall watch wakes up, and how late it must be to say the shard stalled.
const STALL_TICK: Duration = Duration::from_millis(10);
const STALL_WARN: Duration = Duration::from_millis(20);

/// What one shard thread is handed when it starts.
#[derive(Debug)]
pub struct ShardStart<S> {
    /// This shard's index, `0..smp`.
    pub id: usize,
    /// The mesh of every shard's inbox.
    pub mesh: Arc<Mesh<S>>,
    /// This shard's inbox: serve it with [`serve_inbox`].
    pub inbox: async_channel::Receiver<Task<S>>,
    /// Fires when the node stops.
    pub stop: oneshot::Receiver<()>,
    /// Report `Ok` once the shard serves, or why it cannot.
    pub ready: mpsc::Sender<Result<(), StartupError>>,
}

/// The body every shard thread runs inside its own compio runtime.
pub type ShardBody<S> =
    Arc<dyn Fn(ShardStart<S>) -> Pin<Box<dyn Future<Output = ()>>> + Send + Sync>;

/// The running shard threads.
#[derive(Debug)]
pub struct ShardThreads {
    threads: Vec<JoinHandle<()>>,
    stops: Vec<oneshot::Sender<()>>,
}

impl ShardThreads {
    /// Starts `smp` shard threads (pinned to cores `0..` when `pin`), each running `body` in a
    /// compio runtime of its own, and returns once every one reported ready (with the mesh of
    /// their inboxes, through which other threads reach them), or the first failure.
    pub fn start<S: 'static>(
        smp: usize,
        pin: bool,
        body: ShardBody<S>,
    ) -> Result<(Self, Arc<Mesh<S>>), StartupError> {
        if pin {
            // Before any shard pins itself: the blocking pool's threads, which shards start,
            // get the process's CPUs back rather than their shard's one core.
            match rustix::thread::sched_getaffinity(None) {
                Ok(cpus) => odradek_storage::backend::set_pool_cpus(cpus),
                Err(e) => {
                    warn!(error = %e, "cannot read the process's CPUs; blocking work stays on shard cores")
                }
            }
        }
        let (mesh, inboxes) = Mesh::new(smp);
        let mesh = Arc::new(mesh);
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), StartupError>>();
        let mut shards = ShardThreads { threads: Vec::new(), stops: Vec::new() };
        for (id, inbox) in inboxes.into_iter().enumerate() {
            let (stop_tx, stop) = oneshot::channel();
            let core = (pin && !cores.is_empty()).then(|| cores[id % cores.len()]);
            let start = ShardStart { id, mesh: mesh.clone(), inbox, stop, ready: ready_tx.clone() };
            let body = body.clone();
            let thread = std::thread::Builder::new()
                .name(format!("shard-{id}"))
                .spawn(move || run_thread(core, start, body))
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
        for _ in 0..smp {
            let failed = match ready_rx.recv() {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e,
                Err(_) => StartupError::new(
                    "a shard thread died while starting",
                    "see the log lines above",
                ),
            };
            shards.stop(Duration::from_secs(1));
            return Err(failed);
        }
        Ok((shards, mesh))
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

fn run_thread<S>(core: Option<core_affinity::CoreId>, start: ShardStart<S>, body: ShardBody<S>) {
    let id = start.id;
    if let Some(core) = core
        && !core_affinity::set_for_current(core)
    {
        warn!(shard = id, core = core.id, "could not pin the shard thread to its core");
    }
    let runtime = match compio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = start.ready.send(Err(StartupError::new(
                format!("shard {id}: cannot create an io_uring: {e}"),
                "see `odradek tune` (io_uring checks)",
            )));
            return;
        }
    };
    runtime.block_on(body(start));
}

/// Logs when the shard's event loop was held up: a timer of [`STALL_TICK`] that fires more than
/// [`STALL_WARN`] late means nothing on this shard ran for that long (a blocking call, a long
/// computation, or the thread not being scheduled). Every request of the shard waited as long.
pub async fn stall_watch(stopping: impl Fn() -> bool, on_stall: impl Fn(Duration)) {
    while !stopping() {
        let started = Instant::now();
        compio::time::sleep(STALL_TICK).await;
        let late = started.elapsed().saturating_sub(STALL_TICK);
        if late >= STALL_WARN {
            on_stall(late);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;

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
