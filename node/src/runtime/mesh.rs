//! Message passing between shards: how a request decoded on one shard gets work done on the
//! shard that owns a partition (Seastar's `submit_to`).
//!
//! Each shard has one bounded inbox ([`INBOX_CAPACITY`] tasks). A task is a closure that runs
//! on the target shard's thread and spawns a shard-local future there; its result comes back
//! on a oneshot channel. Work for a shard's own partitions runs inline and never touches a
//! channel, so a request whose partitions are all local never crosses cores. Callers group the
//! work of one request by owner shard, so one request costs at most one hop per other shard.

use std::future::Future;
use std::rc::Rc;

use futures_channel::oneshot;

/// Tasks that may wait in one shard's inbox; a sender waits (async) when it is full.
pub const INBOX_CAPACITY: usize = 1024;

/// A unit of work sent to another shard, run there with that shard's context `S`.
pub type Task<S> = Box<dyn FnOnce(&Rc<S>) + Send>;

/// What a shard's context tells the mesh: which shard it is, and the mesh it belongs to. The
/// mesh knows nothing else of it.
pub trait Sharded: Sized + 'static {
    /// This shard's index, `0..smp`.
    fn shard_id(&self) -> usize;
    /// The mesh of every shard's inbox.
    fn mesh(&self) -> &Mesh<Self>;
}

/// The inboxes of every shard, shared by all of them.
pub struct Mesh<S> {
    inboxes: Vec<async_channel::Sender<Task<S>>>,
    /// Shards whose own connections have finished during a stop; a shard keeps serving its
    /// inbox until all have, so a request still under way elsewhere can reach it.
    drained: std::sync::atomic::AtomicUsize,
}

/// The target shard stopped before it answered.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("shard {0} is not running")]
pub struct ShardGone(pub usize);

impl<S> std::fmt::Debug for Mesh<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh").field("shards", &self.inboxes.len()).finish_non_exhaustive()
    }
}

impl<S> Mesh<S> {
    /// A mesh of `smp` shards and the inbox receiver of each.
    pub fn new(smp: usize) -> (Self, Vec<async_channel::Receiver<Task<S>>>) {
        let (inboxes, receivers) = (0..smp).map(|_| async_channel::bounded(INBOX_CAPACITY)).unzip();
        (Self { inboxes, drained: std::sync::atomic::AtomicUsize::new(0) }, receivers)
    }

    /// Runs `work` on shard `target` through its inbox and returns its result: how shards reach
    /// each other ([`on_shard`]), and how other threads reach a shard (the admin listener's
    /// scrapes). Waits (async) while the target's inbox is full.
    pub async fn call<T, F, Fut>(&self, target: usize, work: F) -> Result<T, ShardGone>
    where
        F: FnOnce(Rc<S>) -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
        T: Send + 'static,
    {
        let inbox = self.inboxes.get(target).ok_or(ShardGone(target))?;
        let (tx, rx) = oneshot::channel();
        let task: Task<S> = Box::new(move |there: &Rc<S>| {
            let fut = work(there.clone());
            compio::runtime::spawn(async move {
                let _ = tx.send(fut.await);
            })
            .detach();
        });
        inbox.send(task).await.map_err(|_| ShardGone(target))?;
        rx.await.map_err(|_| ShardGone(target))
    }

    /// The number of shards.
    pub fn len(&self) -> usize {
        self.inboxes.len()
    }

    /// Whether the mesh has no shard (never, for a running node).
    pub fn is_empty(&self) -> bool {
        self.inboxes.is_empty()
    }

    /// Says this shard's connections are done; whether every shard's are.
    pub fn drained(&self, this_one: bool) -> bool {
        use std::sync::atomic::Ordering;
        let n = if this_one {
            self.drained.fetch_add(1, Ordering::AcqRel) + 1
        } else {
            self.drained.load(Ordering::Acquire)
        };
        n >= self.inboxes.len()
    }
}

/// Runs `work` on shard `target` and returns its result. Inline when `target` is this shard.
pub async fn on_shard<S, T, F, Fut>(ctx: &Rc<S>, target: usize, work: F) -> Result<T, ShardGone>
where
    S: Sharded,
    F: FnOnce(Rc<S>) -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    if target == ctx.shard_id() {
        return Ok(work(ctx.clone()).await);
    }
    ctx.mesh().call(target, work).await
}

/// Runs tasks from this shard's inbox until every sender is gone or the shard stops.
pub async fn serve_inbox<S>(ctx: Rc<S>, inbox: async_channel::Receiver<Task<S>>) {
    while let Ok(task) = inbox.recv().await {
        task(&ctx);
    }
}
