//! [`Observer`]: a broker-only node's view of the controller quorum (KRaft's observer role,
//! reduced): it follows the metadata image from the voters and forwards proposals to the
//! leader, without voting or storing the log.
//!
//! The observer connects from its own address with an observer handshake (its node id must not
//! be a voter's); the voters answer it only `FetchImage` (a long poll) and `Propose`. It keeps
//! the cluster id it learns from the voters in `<data_dir>/cluster.json` and refuses another.
//! Its image only moves forward: an image from a voter that is behind is ignored.

use std::cell::Cell;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use event_listener::Event;
use futures_util::future::{Either, select};
use tracing::{debug, error, info};
use uuid::Uuid;

use crate::config::Voters;
use crate::controller::{
    ControllerError, ImageWatch, NodeThread, Proposal, RunBody, Shared, StartError, failure,
    forward_wait, read_cluster_id, serve_proposals,
};
use crate::image::{Command, CommandResult, MetadataImage};
use crate::net::{
    self, FRAME_BYTES_MAX, HANDSHAKE_TIMEOUT, IMAGE_POLL, Identity, Request, Response,
};
use crate::types::NodeId;

/// Pause before an observer tries the next voter after a failure.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Empty long polls in a row after which the observer tries another voter (one that is cut off
/// from the quorum would never have anything new).
const QUIET_POLLS_MAX: u32 = 5;
/// Most proposals an observer forwards at once.
pub const OBSERVER_PROPOSALS_MAX: usize = 8;

/// What [`Observer::start`] needs.
#[derive(Debug, Clone)]
pub struct ObserverConfig {
    /// This node's id: not a voter's.
    pub node_id: NodeId,
    /// The address outgoing connections come from (the node's own, e.g. 127.0.0.5).
    pub source_ip: IpAddr,
    pub voters: Voters,
    /// Where the cluster id is kept.
    pub data_dir: PathBuf,
    pub propose_timeout: Duration,
    /// The cluster id the node already knows (see `ControllerConfig::cluster_id`).
    pub cluster_id: Option<Uuid>,
    /// TLS to the voters (see `ControllerConfig::tls`).
    pub tls: Option<crate::net::QuorumTls>,
}

impl ObserverConfig {
    pub fn new(node_id: NodeId, source_ip: IpAddr, voters: Voters, data_dir: PathBuf) -> Self {
        ObserverConfig {
            node_id,
            source_ip,
            voters,
            data_dir,
            propose_timeout: Duration::from_secs(5),
            cluster_id: None,
            tls: None,
        }
    }
}

/// A follower of the image that is not a voter; every method may be called from any thread.
#[derive(Debug)]
pub struct Observer {
    thread: NodeThread,
}

impl Observer {
    /// Starts the observer's thread; returns at once (the image arrives when a voter answers).
    pub fn start(config: ObserverConfig) -> Result<Observer, StartError> {
        if config.voters.contains(config.node_id) {
            return Err(StartError::ObserverIsVoter {
                node_id: config.node_id,
                voters: config.voters.canonical(),
            });
        }
        let node_id = config.node_id;
        let thread =
            NodeThread::spawn("observer", node_id, OBSERVER_PROPOSALS_MAX, move |shared, run| {
                Box::pin(async move {
                    let cluster_id = read_cluster_id(&config.data_dir).await?.or(config.cluster_id);
                    *shared.cluster_id.lock().unwrap_or_else(|p| p.into_inner()) = cluster_id;
                    let ident = Identity::observer(
                        config.node_id,
                        SocketAddr::new(config.source_ip, 0),
                        config.voters.clone(),
                        config.data_dir.clone(),
                        cluster_id,
                    )
                    .with_tls(config.tls.clone());
                    let node = Rc::new(ObserverNode {
                        ident,
                        config,
                        shared,
                        leader_hint: Cell::new(None),
                        next_voter: Cell::new(0),
                        stopped: Cell::new(false),
                        stopping: Event::new(),
                    });
                    Ok(Box::pin(async move { node.run(run.proposals, run.stop).await }) as RunBody)
                })
            })?;
        Ok(Observer { thread })
    }

    pub fn node_id(&self) -> NodeId {
        self.thread.node_id
    }

    /// Proposes through the leader (found from the voters' answers), as
    /// [`crate::Controller::propose`].
    pub async fn propose(&self, command: Command) -> Result<CommandResult, ControllerError> {
        self.thread.propose(command).await
    }

    /// The cluster id, once a voter has told it (or read from the data directory).
    pub fn cluster_id(&self) -> Option<Uuid> {
        self.thread.cluster_id()
    }

    /// The newest image received.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.thread.image()
    }

    /// A watch that returns each newer image.
    pub fn subscribe(&self) -> ImageWatch {
        self.thread.subscribe()
    }

    /// Stops the thread and joins it (blocks the caller briefly, like `Controller::shutdown`).
    pub fn shutdown(mut self) {
        self.thread.stop_and_join();
    }
}

struct ObserverNode {
    ident: Identity,
    config: ObserverConfig,
    shared: Arc<Shared>,
    leader_hint: Cell<Option<NodeId>>,
    next_voter: Cell<usize>,
    /// Set before `stopping` is notified: a listener made after the notification (which it
    /// would miss) sees the flag instead.
    stopped: Cell<bool>,
    stopping: Event,
}

impl ObserverNode {
    async fn run(
        self: Rc<Self>,
        proposals: async_channel::Receiver<Proposal>,
        mut stop: futures_channel::oneshot::Receiver<()>,
    ) {
        info!(node = self.config.node_id, voters = %self.config.voters.canonical(), "observer started");
        let follower = compio::runtime::spawn(self.clone().follow());
        let node = self.clone();
        serve_proposals(proposals, &mut stop, OBSERVER_PROPOSALS_MAX, move |command| {
            let node = node.clone();
            async move { node.propose(command).await }
        })
        .await;
        self.stopped.set(true);
        self.stopping.notify(usize::MAX);
        let _ = follower.await;
        info!(node = self.config.node_id, "observer stopped");
    }

    /// The voter to try next, round robin.
    fn rotate(&self) -> (NodeId, SocketAddr) {
        let voters: Vec<(NodeId, SocketAddr)> = self.config.voters.iter().collect();
        let i = self.next_voter.get();
        self.next_voter.set(i.wrapping_add(1));
        voters[i % voters.len()]
    }

    /// Follows the image from one voter after another until stopped.
    async fn follow(self: Rc<Self>) {
        loop {
            let (id, addr) = self.rotate();
            let stop = self.stopping.listen();
            if self.stopped.get() {
                return;
            }
            let poll = std::pin::pin!(self.follow_one(addr));
            match select(poll, stop).await {
                Either::Right(_) => return,
                Either::Left((Err(e), _)) if e.kind() == io::ErrorKind::PermissionDenied => {
                    error!(node = self.config.node_id, voter = id, reason = %e, "this node is refused by the controller quorum")
                }
                Either::Left((r, _)) => {
                    debug!(node = self.config.node_id, voter = id, result = ?r, "observer switches voter")
                }
            }
            let stop = self.stopping.listen();
            if self.stopped.get() {
                return;
            }
            if let Either::Right(_) =
                select(std::pin::pin!(compio::time::sleep(RETRY_PAUSE)), stop).await
            {
                return;
            }
        }
    }

    async fn follow_one(&self, addr: SocketAddr) -> io::Result<()> {
        let mut stream = net::connect(&self.ident, addr).await?;
        if let Some(id) = *self.ident.cluster_id.borrow() {
            *self.shared.cluster_id.lock().unwrap_or_else(|p| p.into_inner()) = Some(id);
        }
        let mut quiet = 0;
        while quiet < QUIET_POLLS_MAX {
            let after = self.shared.image.load().applied_index;
            net::write_frame(&mut stream, &Request::FetchImage { after }).await?;
            let timeout = IMAGE_POLL + HANDSHAKE_TIMEOUT;
            match net::read_frame::<Response>(&mut stream, FRAME_BYTES_MAX, timeout).await? {
                Some(Response::Image(Some(image))) if image.applied_index > after => {
                    quiet = 0;
                    self.shared.publish(image);
                }
                Some(Response::Image(_)) => quiet += 1,
                other => return Err(io::Error::other(format!("unexpected reply {other:?}"))),
            }
        }
        Ok(())
    }

    /// Sends `command` to the leader: the hinted one, else the voters in turn; a voter that
    /// names another leader is followed once; a voter that cannot be reached is skipped.
    async fn propose(&self, command: Command) -> Result<CommandResult, ControllerError> {
        let mut redirected = false;
        let mut target = self.leader_hint.get().unwrap_or_else(|| self.rotate().0);
        for _ in 0..=self.config.voters.ids().count() {
            let Some(addr) = self.config.voters.addr(target) else { break };
            let wait = forward_wait(&command, self.config.propose_timeout);
            let connected = compio::time::timeout(wait, net::connect(&self.ident, addr)).await;
            let connected = connected.unwrap_or_else(|_| {
                Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))
            });
            let mut stream = match connected {
                Ok(s) => s,
                Err(e) => {
                    debug!(node = self.config.node_id, voter = target, error = %e, "voter unreachable");
                    self.leader_hint.set(None);
                    target = self.rotate().0;
                    continue;
                }
            };
            let exchange = async {
                net::write_frame(&mut stream, &Request::Propose(command.clone())).await?;
                let wait = self.config.propose_timeout * 2;
                net::read_frame::<Response>(&mut stream, FRAME_BYTES_MAX, wait).await
            };
            let exchanged = compio::time::timeout(wait, exchange).await.unwrap_or_else(|_| {
                Err(io::Error::new(io::ErrorKind::TimedOut, format!("no answer in {wait:?}")))
            });
            match exchanged {
                Ok(Some(Response::Propose(Ok(reply)))) => {
                    self.leader_hint.set(Some(target));
                    return reply.map_err(ControllerError::Refused);
                }
                Ok(Some(Response::Propose(Err(net::ForwardFailure::NotLeader {
                    leader: Some(l),
                }))))
                    if !redirected && l != target =>
                {
                    redirected = true;
                    self.leader_hint.set(Some(l));
                    target = l;
                }
                Ok(Some(Response::Propose(Err(f)))) => return Err(failure(f)),
                Ok(_) => {
                    return Err(ControllerError::Unknown {
                        reason: format!("voter {target} closed or answered oddly"),
                    });
                }
                Err(e) => {
                    return Err(ControllerError::Unknown {
                        reason: format!("voter {target}: {e}"),
                    });
                }
            }
        }
        Err(ControllerError::NoQuorum { reason: "no voter reachable".into() })
    }
}
