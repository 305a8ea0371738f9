//! [`Controller`]: the handle other threads hold; the controller thread that runs raft, the
//! listener and the proposals on its own compio runtime.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use compio::net::{TcpListener, TcpSocket, TcpStream};
use event_listener::Event;
use futures_util::future::{Either, select};
use openraft::async_runtime::watch::WatchReceiver;
use openraft::errors::ClientWriteError;
use openraft::impls::BasicNode;
use openraft::{Config, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tracing::{debug, error, info, warn};
use uuid::Uuid;

use odradek_storage::{Backend, CompioBackend};

use crate::config::ControllerConfig;
use crate::image::{
    COMMAND_BYTES_MAX, Command, CommandError, CommandReply, CommandResult, MetadataImage,
};
use crate::log_store::{LogStore, read_file};
use crate::net::{
    self, CLUSTER_ID_FILE, FRAME_BYTES_MAX, ForwardFailure, IDLE_TIMEOUT, IMAGE_POLL, Identity,
    Network, Request, Response,
};
use crate::state_machine::StateMachine;
use crate::types::{NodeId, Raft, Snapshot};

/// What a proposal may fail with. [`ControllerError::is_retriable`] says whether the same
/// command may be sent again (after a pause, or to refreshed metadata).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControllerError {
    /// No leader is known or reachable, or leadership moved while forwarding. Nothing was
    /// applied; retry.
    #[error("no controller quorum: {reason}")]
    NoQuorum { reason: String },
    /// The command was appended but did not commit in time, or its entry was discarded by a
    /// leader change: it may or may not take effect. Retry only if the command is idempotent
    /// or after reading the image.
    #[error("the command's outcome is unknown: {reason}")]
    Unknown { reason: String },
    /// The state machine refused the command; nothing changed.
    #[error(transparent)]
    Refused(#[from] CommandError),
    #[error("the controller is shut down")]
    ShutDown,
}

impl ControllerError {
    pub fn is_retriable(&self) -> bool {
        matches!(self, ControllerError::NoQuorum { .. } | ControllerError::Unknown { .. })
    }
}

/// Why [`Controller::start`] failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("node id {node_id} is not among the voters {voters}")]
    NotAVoter { node_id: NodeId, voters: String },
    #[error("{what}: {source}")]
    Io { what: &'static str, source: io::Error },
    #[error("raft: {0}")]
    Raft(String),
    #[error("the controller thread died while starting")]
    ThreadDied,
    #[error("observer node id {node_id} is a voter's id ({voters})")]
    ObserverIsVoter { node_id: NodeId, voters: String },
}

/// How long a stopping controller waits for raft's own shutdown.
const RAFT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Most entries in one AppendEntries: with `COMMAND_BYTES_MAX` each (and JSON's overhead) a
/// request stays far below `FRAME_BYTES_MAX`.
pub const ENTRIES_PER_APPEND_MAX: u64 = 64;
const _: () = assert!(ENTRIES_PER_APPEND_MAX as usize * COMMAND_BYTES_MAX * 2 < FRAME_BYTES_MAX);

/// Most proposals forwarded to the leader at once from one node (each on its own connection).
pub const FORWARD_CONNECTIONS_MAX: usize = 8;
/// An idle forwarding connection is reused only this long (far below the server's
/// `IDLE_TIMEOUT`, so the leader has not closed it for idleness).
const FORWARD_IDLE_REUSE: Duration = Duration::from_secs(30);

/// How long a forwarded heartbeat may take, connection included. Far below any session
/// timeout: a heartbeat stuck on a leader that stopped (SIGSTOP, a partition) would otherwise
/// keep its broker from reaching the new leader until the new leader fences it.
pub const HEARTBEAT_FORWARD_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a forwarded `command` may take before its outcome counts as unknown.
pub(crate) fn forward_wait(command: &Command, propose_timeout: Duration) -> Duration {
    match command {
        Command::BrokerHeartbeat { .. } => HEARTBEAT_FORWARD_TIMEOUT,
        _ => propose_timeout * 2 + net::HANDSHAKE_TIMEOUT,
    }
}

/// Pause between rounds of greetings of a new member (see `Node::greet_peers`).
const GREET_PAUSE: Duration = Duration::from_secs(2);

/// Most accepted controller connections served at once (peers hold one per replication
/// stream and reconnect after errors; forwarded proposals open short-lived ones).
pub const CONNECTIONS_MAX: usize = 64;

pub(crate) fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> StartError {
    move |source| StartError::Io { what, source }
}

/// One voter's replication progress, as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoterStatus {
    pub node_id: NodeId,
    /// The last log index known to be replicated there (leader only; `None` elsewhere).
    pub matched_index: Option<u64>,
    /// `last_log_index − matched_index` (leader only).
    pub lag: Option<u64>,
}

/// The quorum's state as this node sees it (DescribeQuorum's material).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumStatus {
    pub node_id: NodeId,
    pub cluster_id: Option<Uuid>,
    pub leader_id: Option<NodeId>,
    /// The raft term (Kafka's leader epoch of the metadata log).
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub committed_index: Option<u64>,
    pub applied_index: Option<u64>,
    pub voters: Vec<VoterStatus>,
}

/// What the controller thread publishes for every other thread.
#[derive(Debug, Default)]
pub struct Shared {
    pub(crate) image: ArcSwap<MetadataImage>,
    image_changed: Event,
    status: ArcSwap<QuorumStatus>,
    /// The cluster id once this node has one (generated or adopted).
    pub(crate) cluster_id: std::sync::Mutex<Option<Uuid>>,
}

impl Shared {
    /// The image, once its applied index differs from `after`; `None` after `wait`.
    pub async fn next_image(&self, after: u64, wait: Duration) -> Option<Arc<MetadataImage>> {
        let deadline = Instant::now() + wait;
        loop {
            let listener = self.image_changed.listen();
            let image = self.image.load_full();
            if image.applied_index != after {
                return Some(image);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            compio::time::timeout(left, listener).await.ok()?;
        }
    }

    /// Publishes a newly applied image and wakes every watcher.
    pub fn publish(&self, image: Arc<MetadataImage>) {
        self.image.store(image);
        self.image_changed.notify(usize::MAX);
    }
}

/// Waits for new images; see [`Controller::subscribe`].
#[derive(Debug)]
pub struct ImageWatch {
    pub(crate) shared: Arc<Shared>,
    pub(crate) seen: u64,
}

impl ImageWatch {
    /// Returns the next image applied after the last one this watch returned (at once if one
    /// was applied in between). Images in between may be skipped: each is complete.
    pub async fn changed(&mut self) -> Arc<MetadataImage> {
        loop {
            let listener = self.shared.image_changed.listen();
            let image = self.shared.image.load_full();
            if image.applied_index != self.seen {
                self.seen = image.applied_index;
                return image;
            }
            listener.await;
        }
    }
}

pub(crate) struct Proposal {
    pub(crate) command: Command,
    pub(crate) reply: futures_channel::oneshot::Sender<Result<CommandResult, ControllerError>>,
}

/// Answers queued proposals with `propose`, at most `inflight` at once, until the queue closes
/// or `stop` fires (shared by controller and observer).
pub(crate) async fn serve_proposals<F, Fut>(
    proposals: async_channel::Receiver<Proposal>,
    stop: &mut futures_channel::oneshot::Receiver<()>,
    inflight: usize,
    propose: F,
) where
    F: Fn(Command) -> Fut,
    Fut: std::future::Future<Output = Result<CommandResult, ControllerError>> + 'static,
{
    let slots = Arc::new(async_lock::Semaphore::new(inflight.max(1)));
    loop {
        let permit = slots.acquire_arc().await;
        let next = std::pin::pin!(proposals.recv());
        match select(next, &mut *stop).await {
            Either::Left((Ok(p), _)) => {
                let answer = propose(p.command);
                compio::runtime::spawn(async move {
                    let _ = p.reply.send(answer.await);
                    drop(permit);
                })
                .detach();
            }
            Either::Left((Err(_), _)) | Either::Right(_) => break,
        }
    }
}

/// Queues `command` on `proposals` and waits for its answer (shared by controller and observer).
pub(crate) async fn submit(
    proposals: &async_channel::Sender<Proposal>,
    mut command: Command,
) -> Result<CommandResult, ControllerError> {
    if let Command::CreateTopic { topic_id, .. } = &mut command
        && topic_id.is_nil()
    {
        *topic_id = Uuid::new_v4();
    }
    let (reply, rx) = futures_channel::oneshot::channel();
    proposals.send(Proposal { command, reply }).await.map_err(|_| ControllerError::ShutDown)?;
    rx.await.unwrap_or(Err(ControllerError::ShutDown))
}

/// The cluster id stored in `dir`, if any.
pub(crate) async fn read_cluster_id(dir: &std::path::Path) -> Result<Option<Uuid>, StartError> {
    CompioBackend.create_dir_all(dir).await.map_err(io_err("create data dir"))?;
    match read_file(dir, CLUSTER_ID_FILE).await.map_err(io_err("read cluster id"))? {
        Some(b) => Ok(Some(serde_json::from_slice(&b).map_err(|e| StartError::Io {
            what: "parse cluster id",
            source: io::Error::new(io::ErrorKind::InvalidData, e),
        })?)),
        None => Ok(None),
    }
}

/// The controller: a member of the controller quorum running on its own thread.
///
/// Every method may be called from any thread and none blocks on I/O: `propose` is async and
/// only queues toward the controller thread (bounded by `proposals_queued_max`); `image` and
/// `quorum_status` read an atomically swapped `Arc`.
#[derive(Debug)]
pub struct Controller {
    thread: NodeThread,
}

/// What the thread running a node (controller or observer) is handed besides its shared
/// state: the proposals to serve and its stop signal.
pub(crate) struct RunInputs {
    pub(crate) proposals: async_channel::Receiver<Proposal>,
    pub(crate) stop: futures_channel::oneshot::Receiver<()>,
}

/// A node's main loop, returned by its boot once it is ready to serve.
pub(crate) type RunBody = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;
type Boot = std::pin::Pin<Box<dyn std::future::Future<Output = Result<RunBody, StartError>>>>;

/// The thread of a controller or an observer, with its own compio runtime, and the handle's
/// side of it: the proposals queue, the published image and status, the stop signal.
#[derive(Debug)]
pub(crate) struct NodeThread {
    kind: &'static str,
    pub(crate) node_id: NodeId,
    pub(crate) shared: Arc<Shared>,
    proposals: async_channel::Sender<Proposal>,
    stop: Option<futures_channel::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl NodeThread {
    /// Starts `kind-node_id`'s thread and returns once `boot` has finished there (its error if
    /// it failed); the loop `boot` returns then runs until the stop signal.
    pub(crate) fn spawn<B>(
        kind: &'static str,
        node_id: NodeId,
        proposals_queued_max: usize,
        boot: B,
    ) -> Result<Self, StartError>
    where
        B: FnOnce(Arc<Shared>, RunInputs) -> Boot + Send + 'static,
    {
        let shared = Arc::new(Shared::default());
        let (tx, rx) = async_channel::bounded(proposals_queued_max);
        let (stop_tx, stop_rx) = futures_channel::oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("{kind}-{node_id}"))
            .spawn(move || {
                let rt = match compio::runtime::Runtime::new() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(StartError::Io { what: "runtime", source: e }));
                        return;
                    }
                };
                rt.block_on(async move {
                    let inputs = RunInputs { proposals: rx, stop: stop_rx };
                    match boot(thread_shared, inputs).await {
                        Ok(run) => {
                            let _ = ready_tx.send(Ok(()));
                            run.await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
            })
            .map_err(io_err("spawn thread"))?;
        let failed = match ready_rx.recv() {
            Ok(Ok(())) => {
                let (stop, thread) = (Some(stop_tx), Some(thread));
                return Ok(NodeThread { kind, node_id, shared, proposals: tx, stop, thread });
            }
            Ok(Err(e)) => e,
            Err(_) => StartError::ThreadDied,
        };
        let _ = thread.join();
        Err(failed)
    }

    pub(crate) async fn propose(&self, command: Command) -> Result<CommandResult, ControllerError> {
        submit(&self.proposals, command).await
    }

    pub(crate) fn image(&self) -> Arc<MetadataImage> {
        self.shared.image.load_full()
    }

    pub(crate) fn subscribe(&self) -> ImageWatch {
        ImageWatch { shared: self.shared.clone(), seen: self.shared.image.load().applied_index }
    }

    pub(crate) fn cluster_id(&self) -> Option<Uuid> {
        *self.shared.cluster_id.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends the stop signal and joins the thread (blocks the caller briefly).
    pub(crate) fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.proposals.close();
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            error!(node = self.node_id, kind = self.kind, "node thread panicked");
        }
    }
}

impl Drop for NodeThread {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

impl std::fmt::Debug for Proposal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proposal").field("command", &self.command).finish()
    }
}

impl Controller {
    /// Opens the data directory, binds the listener and starts raft on a new thread; returns
    /// once the node is running (not once a leader is elected). With an empty data directory
    /// the lowest voter id initializes the cluster and generates its id; the others adopt it
    /// from the first peer they talk to.
    pub fn start(config: ControllerConfig) -> Result<Controller, StartError> {
        if !config.voters.contains(config.node_id) {
            return Err(StartError::NotAVoter {
                node_id: config.node_id,
                voters: config.voters.canonical(),
            });
        }
        let node_id = config.node_id;
        let queued = config.proposals_queued_max.max(1);
        let thread = NodeThread::spawn("controller", node_id, queued, move |shared, run| {
            Box::pin(async move {
                let node = Node::boot(config, shared).await?;
                Ok(Box::pin(async move { node.run(run.proposals, run.stop).await }) as RunBody)
            })
        })?;
        Ok(Controller { thread })
    }

    pub fn node_id(&self) -> NodeId {
        self.thread.node_id
    }

    /// Proposes `command` to the quorum: applied through the active leader (forwarded to it if
    /// this node is not), answered once committed and applied there. A nil topic id in
    /// `CreateTopic` is replaced by a random one.
    pub async fn propose(&self, command: Command) -> Result<CommandResult, ControllerError> {
        self.thread.propose(command).await
    }

    /// The latest applied image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.thread.image()
    }

    /// A watch that returns each newly applied image.
    pub fn subscribe(&self) -> ImageWatch {
        self.thread.subscribe()
    }

    /// The cluster id, once this node has one (generated by the bootstrapping voter, adopted
    /// by the others from the first peer they meet, or read from the data directory).
    pub fn cluster_id(&self) -> Option<Uuid> {
        self.thread.cluster_id()
    }

    /// The quorum's state as last reported by raft on this node.
    pub fn quorum_status(&self) -> Arc<QuorumStatus> {
        self.thread.shared.status.load_full()
    }

    /// Stops raft, closes the listener and the metadata log cleanly, and joins the thread.
    /// Blocks the calling thread until then (milliseconds): call it (or drop the controller)
    /// from a thread that may block, not from a shard.
    pub fn shutdown(mut self) {
        self.thread.stop_and_join();
    }
}

/// The controller thread's state.
struct Node {
    raft: Raft,
    log_store: LogStore,
    ident: Rc<Identity>,
    config: ControllerConfig,
    listener: std::cell::RefCell<Option<TcpListener>>,
    stopping: Event,
    /// Accepted connections being served.
    connections: std::cell::Cell<usize>,
    /// Idle connections for forwarded proposals: (leader, idle since, stream).
    forward_idle: std::cell::RefCell<Vec<(NodeId, Instant, net::Conn)>>,
    forward_slots: async_lock::Semaphore,
    shared: Arc<Shared>,
    /// The last heartbeat of each broker, as this node saw it while it was the active
    /// controller (in memory only, as in KRaft: a new active controller starts every broker's
    /// clock afresh).
    liveness: std::cell::RefCell<HashMap<i32, Instant>>,
    /// A new member that does not initialize the cluster greets the other voters until one
    /// accepts it, so that a refusal (another cluster, another voter list) is logged at once
    /// rather than the node waiting in silence for a leader that will never call.
    probe: bool,
}

impl Node {
    async fn boot(config: ControllerConfig, shared: Arc<Shared>) -> Result<Node, StartError> {
        let dir = config.data_dir.clone();
        CompioBackend.create_dir_all(&dir).await.map_err(io_err("create data dir"))?;
        let cluster_id = read_cluster_id(&dir).await?;
        let log_store = LogStore::open(&dir, config.segment_bytes)
            .await
            .map_err(io_err("open metadata log"))?;
        let sm =
            StateMachine::open(&dir, shared.clone()).await.map_err(io_err("open snapshots"))?;
        let ident = Rc::new(
            Identity::new(
                config.node_id,
                config.listen,
                config.voters.clone(),
                dir.clone(),
                cluster_id,
            )
            .with_tls(config.tls.clone()),
        );
        if let Some(seed) = config.cluster_id {
            ident.adopt(seed).await.map_err(io_err("check the configured cluster id"))?;
        }
        let listener = bind(config.listen).await.map_err(io_err("bind controller listener"))?;
        let hb = u64::try_from(config.heartbeat.as_millis()).unwrap_or(100).max(10);
        let raft_config = Config {
            cluster_name: "odradek".into(),
            heartbeat_interval: hb,
            election_timeout_min: hb * 3,
            election_timeout_max: hb * 6,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every_entries.max(1)),
            max_in_snapshot_log_to_keep: config.keep_after_snapshot,
            max_payload_entries: ENTRIES_PER_APPEND_MAX,
            // A snapshot travels in one frame of up to FRAME_BYTES_MAX; 200 ms (the default)
            // would time out a large one forever.
            install_snapshot_timeout: 10_000,
            // Pre-Vote: a voter cut off from the others (a network partition) asks before it
            // starts an election, so it does not return with a higher term and depose a
            // healthy leader (the queue-safety checker's partition-net fault saw the metadata
            // epoch jump by twenty and the quorum stall for ~2 s after each heal without it).
            enable_pre_vote: Some(true),
            ..Default::default()
        }
        .validate()
        .map_err(|e| StartError::Raft(e.to_string()))?;
        let pristine = log_store.is_pristine();
        let network = Network { ident: ident.clone() };
        let raft = Raft::new(config.node_id, Arc::new(raft_config), network, log_store.clone(), sm)
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        let mut node = Node {
            raft,
            log_store,
            ident,
            config,
            listener: std::cell::RefCell::new(Some(listener)),
            stopping: Event::new(),
            connections: std::cell::Cell::new(0),
            forward_idle: std::cell::RefCell::new(Vec::new()),
            forward_slots: async_lock::Semaphore::new(FORWARD_CONNECTIONS_MAX),
            shared,
            liveness: std::cell::RefCell::new(HashMap::new()),
            probe: false,
        };
        let bootstrapper = node.config.voters.bootstrapper() == Some(node.config.node_id);
        if pristine && bootstrapper {
            node.bootstrap().await?;
        }
        node.probe = pristine && !bootstrapper;
        info!(node = node.config.node_id, listen = %node.config.listen, voters = %node.config.voters.canonical(),
            cluster_id = ?*node.ident.cluster_id.borrow(), "controller started");
        Ok(node)
    }

    /// Initializes a new cluster: only the lowest voter id, only on an empty log. The cluster
    /// id is stored before the membership entry, so a restart never generates a second one.
    async fn bootstrap(&self) -> Result<(), StartError> {
        let existing = *self.ident.cluster_id.borrow();
        let id = existing.unwrap_or_else(Uuid::new_v4);
        self.ident.adopt(id).await.map_err(io_err("store cluster id"))?;
        let members: BTreeMap<NodeId, BasicNode> = self
            .config
            .voters
            .iter()
            .map(|(id, addr)| (id, BasicNode { addr: addr.to_string() }))
            .collect();
        match self.raft.initialize(members).await {
            Ok(()) => info!(node = self.config.node_id, cluster_id = %id, "cluster initialized"),
            Err(e) => warn!(node = self.config.node_id, error = %e, "cluster not initialized"),
        }
        Ok(())
    }

    async fn run(
        self,
        proposals: async_channel::Receiver<Proposal>,
        mut stop: futures_channel::oneshot::Receiver<()>,
    ) {
        let me = Rc::new(self);
        compio::runtime::spawn(me.clone().watch_metrics()).detach();
        compio::runtime::spawn(me.clone().fence_silent_brokers()).detach();
        if me.probe {
            compio::runtime::spawn(me.clone().greet_peers()).detach();
        }
        let acceptor = compio::runtime::spawn(me.clone().accept_loop());
        // Bounds the proposals in flight on this thread (each waits at most `propose_timeout`).
        let node = me.clone();
        let inflight = me.config.proposals_queued_max.max(1);
        serve_proposals(proposals, &mut stop, inflight, move |command| {
            let node = node.clone();
            async move { node.propose(command).await }
        })
        .await;
        info!(node = me.config.node_id, "controller stopping");
        // Close the listener first, so that a restart can bind the address at once.
        me.stopping.notify(usize::MAX);
        let _ = acceptor.await;
        // Bounded: a stop that comes while raft is still electing itself must not hold the
        // process (a start-up refusal right after the controller started once hung here).
        match compio::time::timeout(RAFT_SHUTDOWN_TIMEOUT, me.raft.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(node = me.config.node_id, error = %e, "raft shutdown"),
            Err(_) => warn!(
                node = me.config.node_id,
                timeout_s = RAFT_SHUTDOWN_TIMEOUT.as_secs(),
                "raft did not shut down in time; closing the metadata log anyway"
            ),
        }
        if let Err(e) = me.log_store.close().await {
            warn!(node = me.config.node_id, error = %e, "closing the metadata log");
        }
    }

    async fn accept_loop(self: Rc<Self>) {
        let Some(listener) = self.listener.borrow_mut().take() else { return };
        loop {
            let stop = self.stopping.listen();
            let accept = std::pin::pin!(listener.accept());
            match select(accept, stop).await {
                Either::Right(_) => break,
                Either::Left((Ok((stream, peer)), _)) => {
                    if self.connections.get() >= CONNECTIONS_MAX {
                        warn!(node = self.config.node_id, %peer, limit = CONNECTIONS_MAX, "controller connection refused: too many");
                        continue;
                    }
                    self.connections.set(self.connections.get() + 1);
                    let node = self.clone();
                    compio::runtime::spawn(async move {
                        node.clone().serve_conn(stream, peer).await;
                        node.connections.set(node.connections.get() - 1);
                    })
                    .detach();
                }
                Either::Left((Err(e), _)) => {
                    warn!(node = self.config.node_id, error = %e, "controller accept failed");
                    compio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        if let Err(e) = listener.close().await {
            debug!(node = self.config.node_id, error = %e, "closing the controller listener");
        }
    }

    async fn serve_conn(self: Rc<Self>, stream: TcpStream, peer: SocketAddr) {
        stream.set_nodelay(true).ok();
        let mut stream = match net::accept_tls(self.ident.tls.as_ref(), stream).await {
            Ok(s) => s,
            Err(e) => {
                warn!(node = self.config.node_id, %peer, error = %e, "controller connection closed: TLS handshake failed");
                return;
            }
        };
        let Some((peer_id, observer)) = net::accept_handshake(&self.ident, &mut stream, peer).await
        else {
            return;
        };
        loop {
            let req = match net::read_frame::<Request>(&mut stream, FRAME_BYTES_MAX, IDLE_TIMEOUT)
                .await
            {
                Ok(Some(r)) => r,
                Ok(None) => {
                    return debug!(%peer, node = peer_id, "controller connection closed by peer");
                }
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    return warn!(%peer, node = peer_id, error = %e, "controller connection closed: bad frame");
                }
                Err(e) => {
                    return info!(%peer, node = peer_id, error = %e, "controller connection lost");
                }
            };
            if observer && !matches!(req, Request::Propose(_) | Request::FetchImage { .. }) {
                return warn!(%peer, node = peer_id, "controller connection closed: an observer sent a raft request");
            }
            let raft = &self.raft;
            let resp = match req {
                Request::AppendEntries(r) => {
                    Response::AppendEntries(raft.append_entries(r).await.map_err(|e| e.to_string()))
                }
                Request::Vote(r) => Response::Vote(raft.vote(r).await.map_err(|e| e.to_string())),
                Request::PreVote(r) => {
                    Response::Vote(raft.pre_vote(r).await.map_err(|e| e.to_string()))
                }
                Request::Snapshot { vote, meta, data } => Response::Snapshot(
                    raft.install_full_snapshot(
                        vote,
                        Snapshot { meta, snapshot: data.into_bytes() },
                    )
                    .await
                    .map_err(|e| e.to_string()),
                ),
                Request::Propose(cmd) => Response::Propose(self.propose_local(cmd).await),
                Request::FetchImage { after } => {
                    Response::Image(self.shared.next_image(after, IMAGE_POLL).await)
                }
            };
            if let Err(e) = net::write_frame(&mut stream, &resp).await {
                return debug!(%peer, node = peer_id, error = %e, "controller connection closed while replying");
            }
        }
    }

    /// Greets the other voters in turn (a handshake, nothing more) until one accepts this
    /// node or raft has heard from a leader; each refusal is logged with its reason, once per
    /// peer and reason. Runs until then or until the controller stops.
    async fn greet_peers(self: Rc<Self>) {
        let mut logged: HashMap<NodeId, String> = HashMap::new();
        loop {
            for (id, addr) in self.config.voters.iter().filter(|(id, _)| *id != self.config.node_id)
            {
                if self.shared.status.load().leader_id.is_some() {
                    return;
                }
                match net::connect(&self.ident, addr).await {
                    Ok(_) => {
                        info!(
                            node = self.config.node_id,
                            peer = id,
                            "a voter accepted this node; waiting for the leader"
                        );
                        return;
                    }
                    Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                        let reason = e.to_string();
                        if logged.get(&id) != Some(&reason) {
                            error!(node = self.config.node_id, peer = id, %reason, "this node is refused by the controller quorum");
                            logged.insert(id, reason);
                        }
                    }
                    Err(e) => {
                        debug!(node = self.config.node_id, peer = id, error = %e, "voter not reachable yet")
                    }
                }
            }
            let stop = self.stopping.listen();
            if let Either::Right(_) =
                select(std::pin::pin!(compio::time::sleep(GREET_PAUSE)), stop).await
            {
                return;
            }
        }
    }

    /// Whether this node is the active controller, as raft last reported.
    fn is_leader(&self) -> bool {
        self.shared.status.load().leader_id == Some(self.config.node_id)
    }

    /// A broker's heartbeat, on the active controller: recorded in memory; a broker fenced
    /// with this registration epoch is unfenced through the log. A stale epoch or an unknown
    /// broker is refused, and the broker registers again.
    async fn heartbeat(&self, broker_id: i32, epoch: u64) -> Result<CommandReply, ForwardFailure> {
        if !self.is_leader() {
            let leader = self.shared.status.load().leader_id;
            return Err(ForwardFailure::NotLeader { leader });
        }
        let image = self.shared.image.load_full();
        let Some(broker) = image.brokers.get(&broker_id) else {
            return Ok(Err(CommandError::UnknownBroker { broker_id }));
        };
        if broker.epoch != epoch {
            return Ok(Err(CommandError::StaleBrokerEpoch {
                broker_id,
                current: broker.epoch,
                requested: epoch,
            }));
        }
        self.liveness.borrow_mut().insert(broker_id, Instant::now());
        if broker.fenced {
            info!(
                node = self.config.node_id,
                broker_id, epoch, "broker heartbeats again: unfencing it"
            );
            return Box::pin(self.propose_local(Command::UnfenceBroker { broker_id, epoch })).await;
        }
        Ok(Ok(CommandResult::Done))
    }

    /// While this node is the active controller: fences every unfenced broker whose last
    /// heartbeat is older than `broker_session_timeout` (a broker gets a full session from the
    /// moment this node became active). Runs until the controller stops.
    async fn fence_silent_brokers(self: Rc<Self>) {
        let timeout = self.config.broker_session_timeout;
        let tick = (timeout / 4).max(Duration::from_millis(50));
        let mut active_term = None;
        let mut last_tick = Instant::now();
        loop {
            let stop = self.stopping.listen();
            if let Either::Right(_) = select(std::pin::pin!(compio::time::sleep(tick)), stop).await
            {
                return;
            }
            let status = self.shared.status.load_full();
            if status.leader_id != Some(self.config.node_id) {
                active_term = None;
                self.liveness.borrow_mut().clear();
                continue;
            }
            let now = Instant::now();
            // This node itself stalled (stopped, starved): the silence it saw is its own, so
            // every broker gets a full session again (a deposed leader learns it meanwhile).
            let stalled = now.saturating_duration_since(last_tick) > timeout / 2;
            last_tick = now;
            if active_term != Some(status.term) || stalled {
                active_term = Some(status.term);
                self.liveness.borrow_mut().clear();
            }
            let image = self.shared.image.load_full();
            let silent: Vec<(i32, Duration)> = {
                let mut live = self.liveness.borrow_mut();
                image
                    .unfenced_brokers()
                    .filter_map(|b| {
                        let last = *live.entry(b.id).or_insert(now);
                        let quiet = now.saturating_duration_since(last);
                        (quiet > timeout).then_some((b.id, quiet))
                    })
                    .collect()
            };
            for (broker_id, quiet) in silent {
                warn!(
                    node = self.config.node_id,
                    broker_id,
                    quiet_ms = quiet.as_millis() as u64,
                    "broker missed its session timeout: fencing it"
                );
                if let Err(e) = self.propose_local(Command::FenceBroker { broker_id }).await {
                    warn!(node = self.config.node_id, broker_id, error = ?e, "fencing failed; will retry");
                }
            }
        }
    }

    /// Proposes on this node's raft; no forwarding.
    async fn propose_local(&self, command: Command) -> Result<CommandReply, ForwardFailure> {
        if let Command::BrokerHeartbeat { broker_id, epoch } = command {
            return self.heartbeat(broker_id, epoch).await;
        }
        // Refused before raft sees it: an entry the log cannot take would stop the quorum.
        let bytes = serde_json::to_vec(&command).map_or(usize::MAX, |b| b.len());
        if bytes > COMMAND_BYTES_MAX {
            return Ok(Err(CommandError::TooLarge { bytes }));
        }
        let timeout = self.config.propose_timeout;
        match compio::time::timeout(timeout, self.raft.client_write(command)).await {
            Err(_) => Err(ForwardFailure::Timeout),
            Ok(Ok(resp)) => Ok(resp.data),
            Ok(Err(e)) => match e.into_api_error() {
                Some(ClientWriteError::ForwardToLeader(f)) => {
                    Err(ForwardFailure::NotLeader { leader: f.leader_id })
                }
                // Appended, then discarded by a new leader: it may still commit elsewhere.
                Some(ClientWriteError::LogEntryDiscarded(_)) => Err(ForwardFailure::Timeout),
                Some(other) => Err(ForwardFailure::Unavailable(other.to_string())),
                None => Err(ForwardFailure::Unavailable("raft stopped".into())),
            },
        }
    }

    /// Proposes locally, or forwards to the leader once (a single hop: a moved leadership is
    /// answered as retriable, never chased).
    async fn propose(&self, command: Command) -> Result<CommandResult, ControllerError> {
        let leader = match self.propose_local(command.clone()).await {
            Ok(reply) => return reply.map_err(ControllerError::Refused),
            Err(f) => match f {
                ForwardFailure::NotLeader { leader: Some(l) } if l != self.config.node_id => l,
                other => return Err(failure(other)),
            },
        };
        let Some(addr) = self.config.voters.addr(leader) else {
            return Err(ControllerError::NoQuorum {
                reason: format!("leader {leader} is not a configured voter"),
            });
        };
        // At most FORWARD_CONNECTIONS_MAX forwards at once, each on a connection of its own,
        // reused while it is fresh (well within the leader's idle timeout).
        let _slot = self.forward_slots.acquire().await;
        let pooled = {
            let mut idle = self.forward_idle.borrow_mut();
            idle.retain(|(_, since, _)| since.elapsed() < FORWARD_IDLE_REUSE);
            idle.iter().position(|(id, _, _)| *id == leader).map(|i| idle.swap_remove(i).2)
        };
        let wait = forward_wait(&command, self.config.propose_timeout);
        let exchange = async {
            let mut stream = match pooled {
                Some(s) => s,
                None => net::connect(&self.ident, addr).await?,
            };
            net::write_frame(&mut stream, &Request::Propose(command)).await?;
            let reply = net::read_frame::<Response>(
                &mut stream,
                FRAME_BYTES_MAX,
                self.config.propose_timeout * 2,
            )
            .await?;
            if reply.is_some() {
                let mut idle = self.forward_idle.borrow_mut();
                if idle.len() < FORWARD_CONNECTIONS_MAX {
                    idle.push((leader, Instant::now(), stream));
                }
            }
            Ok::<_, io::Error>(reply)
        };
        let exchanged = compio::time::timeout(wait, exchange).await.unwrap_or_else(|_| {
            Err(io::Error::new(io::ErrorKind::TimedOut, format!("no answer in {wait:?}")))
        });
        match exchanged {
            Ok(Some(Response::Propose(Ok(reply)))) => reply.map_err(ControllerError::Refused),
            Ok(Some(Response::Propose(Err(f)))) => Err(failure(f)),
            Ok(_) => Err(ControllerError::Unknown {
                reason: format!("leader {leader} closed or answered oddly"),
            }),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                Err(ControllerError::Unknown { reason: e.to_string() })
            }
            Err(e) => Err(ControllerError::NoQuorum {
                reason: format!("forwarding to leader {leader}: {e}"),
            }),
        }
    }

    async fn watch_metrics(self: Rc<Self>) {
        let mut rx = self.raft.metrics();
        loop {
            let status = {
                let m = rx.borrow_watched();
                let last = m.last_log_index;
                let replication = m.replication.clone();
                let voters = self
                    .config
                    .voters
                    .ids()
                    .map(|id| {
                        let matched = if id == self.config.node_id && replication.is_some() {
                            last
                        } else {
                            replication
                                .as_ref()
                                .and_then(|r| r.get(&id).cloned().flatten().map(|l| l.index))
                        };
                        let lag = match (last, matched) {
                            (Some(l), Some(mi)) => Some(l.saturating_sub(mi)),
                            (Some(l), None) if replication.is_some() => Some(l + 1),
                            _ => None,
                        };
                        VoterStatus { node_id: id, matched_index: matched, lag }
                    })
                    .collect();
                QuorumStatus {
                    node_id: self.config.node_id,
                    cluster_id: *self.ident.cluster_id.borrow(),
                    leader_id: m.current_leader,
                    term: m.current_term,
                    last_log_index: last,
                    committed_index: m.cluster_committed.as_ref().map(|l| l.index),
                    applied_index: m.last_applied.as_ref().map(|l| l.index),
                    voters,
                }
            };
            if let Some(id) = status.cluster_id {
                *self.shared.cluster_id.lock().unwrap_or_else(|p| p.into_inner()) = Some(id);
            }
            self.shared.status.store(Arc::new(status));
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

pub(crate) fn failure(f: ForwardFailure) -> ControllerError {
    match f {
        ForwardFailure::NotLeader { leader } => ControllerError::NoQuorum {
            reason: match leader {
                Some(l) => format!("leadership moved to {l}"),
                None => "no leader elected".into(),
            },
        },
        ForwardFailure::Timeout => {
            ControllerError::Unknown { reason: "not committed in time".into() }
        }
        ForwardFailure::Unavailable(reason) => ControllerError::NoQuorum { reason },
    }
}

async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket =
        if addr.is_ipv4() { TcpSocket::new_v4().await? } else { TcpSocket::new_v6().await? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr).await?;
    socket.listen(128).await
}

// The node shares one `Controller` between its shard threads.
const _: fn() = || {
    fn shared_across_threads<T: Send + Sync>() {}
    shared_across_threads::<Controller>();
    shared_across_threads::<ImageWatch>();
};
