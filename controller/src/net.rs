//! Controller-to-controller transport: length-prefixed JSON frames over TCP.
//!
//! A frame is a 4-byte big-endian length and that many bytes of JSON. The first frame of every
//! connection is a [`Handshake`] (at most [`HANDSHAKE_BYTES_MAX`]); every later frame is at most
//! [`FRAME_BYTES_MAX`]. The accepting side checks the handshake against its own configuration:
//! another cluster id, a node id that is not a configured voter (or is its own), or a different
//! voter list is refused with one `warn` line naming the reason, and the connection is closed.
//! Garbage, an oversize length or a frame that does not decode closes the connection with a log
//! line; nothing of it reaches raft. Outgoing sockets bind to the node's own controller address.
//!
//! With [`QuorumTls`] every connection is TLS first (both sides present a certificate that
//! chains to the configured CA; a peer without one never reaches the handshake), then the
//! same frames.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use compio::BufResult;
use compio::buf::{IntoInner, IoBuf};
use compio::io::compat::AsyncStream;
use compio::io::{AsyncReadExt, AsyncWriteExt};
use compio::net::{TcpSocket, TcpStream};
use futures_util::io::{AsyncReadExt as _, AsyncWriteExt as _};
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::network::v2::RaftNetworkV2;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{OptionalSend, RaftNetworkFactory};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::config::Voters;
use crate::image::{Command, CommandReply};
use crate::log_store::write_durably;
use crate::types::{Node, NodeId, Snapshot, SnapshotMeta, TypeConfig, Vote};

/// Largest frame after the handshake (a snapshot travels in one frame).
pub const FRAME_BYTES_MAX: usize = 64 << 20;
/// Largest handshake frame.
pub const HANDSHAKE_BYTES_MAX: usize = 64 << 10;
/// How long a new connection may take to send its handshake, and a connect to complete.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection may stay silent before the server closes it.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// The longest a `FetchImage` waits for a new image before answering `None`.
pub const IMAGE_POLL: Duration = Duration::from_secs(2);
/// Version tag of this protocol.
const MAGIC: &str = "odradek-controller/1";
/// The file holding the adopted cluster id.
pub const CLUSTER_ID_FILE: &str = "cluster.json";

/// The first frame of every connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Handshake {
    pub magic: String,
    pub cluster_id: Option<Uuid>,
    pub node_id: NodeId,
    /// The sender's voter list, canonical (`Voters::canonical`).
    pub voters: String,
    /// An observer (a broker-only node, not a voter): it may only follow the image and
    /// forward proposals, and its node id must not be a voter's.
    #[serde(default)]
    pub observer: bool,
}

/// The accepting side's answer to a handshake.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum HandshakeReply {
    Accepted { cluster_id: Option<Uuid> },
    Refused { reason: String },
}

/// A request after the handshake.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<TypeConfig>),
    PreVote(VoteRequest<TypeConfig>),
    /// The snapshot is JSON text, so it travels as a string (a byte array would take ~3.5×).
    Snapshot {
        vote: Vote,
        meta: SnapshotMeta,
        data: String,
    },
    /// A proposal forwarded to the leader.
    Propose(Command),
    /// The image, once it differs from the one applied at `after` (a long poll of at most
    /// `IMAGE_POLL`; `None` if nothing changed by then).
    FetchImage {
        after: u64,
    },
}

/// Why a forwarded proposal was not applied.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardFailure {
    /// This node is not (or no longer) the leader; the hint names the one it knows.
    NotLeader { leader: Option<NodeId> },
    /// The proposal did not commit in time (its outcome is unknown).
    Timeout,
    /// Raft is shutting down or failed.
    Unavailable(String),
}

/// The reply to a [`Request`].
#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    AppendEntries(Result<AppendEntriesResponse<TypeConfig>, String>),
    Vote(Result<VoteResponse<TypeConfig>, String>),
    Snapshot(Result<SnapshotResponse<TypeConfig>, String>),
    Propose(Result<CommandReply, ForwardFailure>),
    Image(Option<std::sync::Arc<crate::image::MetadataImage>>),
}

/// TLS between quorum members: the server side for accepted connections (client certificates
/// required) and the client side for outgoing ones (the peer's certificate must name its IP).
#[derive(Clone)]
pub struct QuorumTls {
    pub server: Arc<futures_rustls::rustls::ServerConfig>,
    pub client: Arc<futures_rustls::rustls::ClientConfig>,
}

impl std::fmt::Debug for QuorumTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QuorumTls")
    }
}

type TlsStream = futures_rustls::TlsStream<Pin<Box<AsyncStream<TcpStream>>>>;

/// A quorum connection: the socket, or TLS over it.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conn::Plain(_) => "Conn::Plain",
            Conn::Tls(_) => "Conn::Tls",
        })
    }
}

impl Conn {
    async fn write_all(&mut self, buf: Vec<u8>) -> io::Result<()> {
        match self {
            Conn::Plain(s) => {
                let BufResult(res, _) = s.write_all(buf).await;
                res
            }
            Conn::Tls(s) => {
                s.write_all(&buf).await?;
                s.flush().await
            }
        }
    }

    async fn read_prefix(&mut self) -> io::Result<[u8; 4]> {
        match self {
            Conn::Plain(s) => {
                let BufResult(res, p) = s.read_exact([0u8; 4]).await;
                res.map(|()| p)
            }
            Conn::Tls(s) => {
                let mut p = [0u8; 4];
                s.read_exact(&mut p).await.map(|()| p)
            }
        }
    }

    async fn read_vec(&mut self, len: usize) -> io::Result<Vec<u8>> {
        match self {
            Conn::Plain(s) => {
                let BufResult(res, buf) =
                    s.read_exact(IoBuf::slice(Vec::with_capacity(len), 0..len)).await;
                res.map(|()| buf.into_inner())
            }
            Conn::Tls(s) => {
                let mut buf = vec![0u8; len];
                s.read_exact(&mut buf).await.map(|()| buf)
            }
        }
    }
}

/// Accepts TLS on an accepted connection when `tls` is set, within the handshake timeout.
pub async fn accept_tls(tls: Option<&QuorumTls>, stream: TcpStream) -> io::Result<Conn> {
    let Some(tls) = tls else { return Ok(Conn::Plain(stream)) };
    let acceptor = futures_rustls::TlsAcceptor::from(tls.server.clone());
    let s = compio::time::timeout(
        HANDSHAKE_TIMEOUT,
        acceptor.accept(Box::pin(AsyncStream::new(stream))),
    )
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
    Ok(Conn::Tls(Box::new(futures_rustls::TlsStream::Server(s))))
}

/// Who this node is and which cluster it belongs to; shared by the server, the clients and
/// the controller (one thread).
#[derive(Debug)]
pub struct Identity {
    pub node_id: NodeId,
    pub listen: SocketAddr,
    pub voters: Voters,
    pub data_dir: std::path::PathBuf,
    pub cluster_id: RefCell<Option<Uuid>>,
    /// Whether this node is an observer (see [`Handshake::observer`]).
    pub observer: bool,
    /// TLS for every quorum connection, when configured.
    pub tls: Option<QuorumTls>,
    adopt_lock: async_lock::Mutex<()>,
}

impl Identity {
    pub fn new(
        node_id: NodeId,
        listen: SocketAddr,
        voters: Voters,
        data_dir: std::path::PathBuf,
        cluster_id: Option<Uuid>,
    ) -> Self {
        Identity {
            node_id,
            listen,
            voters,
            data_dir,
            cluster_id: RefCell::new(cluster_id),
            observer: false,
            tls: None,
            adopt_lock: async_lock::Mutex::new(()),
        }
    }

    /// With TLS for every quorum connection.
    pub fn with_tls(self, tls: Option<QuorumTls>) -> Self {
        Identity { tls, ..self }
    }

    /// The identity of an observer: `node_id` must not be a voter's id.
    pub fn observer(
        node_id: NodeId,
        source: SocketAddr,
        voters: Voters,
        data_dir: std::path::PathBuf,
        cluster_id: Option<Uuid>,
    ) -> Self {
        Identity { observer: true, ..Identity::new(node_id, source, voters, data_dir, cluster_id) }
    }

    fn handshake(&self) -> Handshake {
        Handshake {
            magic: MAGIC.to_owned(),
            cluster_id: *self.cluster_id.borrow(),
            node_id: self.node_id,
            voters: self.voters.canonical(),
            observer: self.observer,
        }
    }

    /// Persists `id` as this node's cluster id (durably, before anything else is answered);
    /// a node that has one already keeps it, and a different one is an error.
    pub async fn adopt(&self, id: Uuid) -> io::Result<()> {
        let _g = self.adopt_lock.lock().await;
        match *self.cluster_id.borrow() {
            Some(own) if own == id => return Ok(()),
            Some(own) => {
                return Err(io::Error::other(format!("cluster id {id} differs from ours ({own})")));
            }
            None => {}
        }
        let bytes = serde_json::to_vec(&id).map_err(io::Error::other)?;
        write_durably(&self.data_dir, CLUSTER_ID_FILE, bytes).await?;
        *self.cluster_id.borrow_mut() = Some(id);
        info!(node = self.node_id, cluster_id = %id, "cluster id stored");
        Ok(())
    }

    /// Checks a peer's handshake; `Err` is the reason to refuse it.
    fn check(&self, h: &Handshake) -> Result<(), String> {
        if h.magic != MAGIC {
            return Err(format!("unknown protocol {:?}", h.magic));
        }
        if h.voters != self.voters.canonical() {
            return Err(format!(
                "voter list differs: peer {:?}, ours {:?}",
                h.voters,
                self.voters.canonical()
            ));
        }
        if h.observer && self.voters.contains(h.node_id) {
            return Err(format!("observer node id {} is a voter's id", h.node_id));
        }
        if !h.observer && (h.node_id == self.node_id || !self.voters.contains(h.node_id)) {
            return Err(format!("node id {} is not another configured voter", h.node_id));
        }
        if let (Some(theirs), Some(ours)) = (h.cluster_id, *self.cluster_id.borrow())
            && theirs != ours
        {
            return Err(format!("cluster id differs: peer {theirs}, ours {ours}"));
        }
        Ok(())
    }
}

/// Writes one frame.
pub async fn write_frame<T: Serialize>(stream: &mut Conn, msg: &T) -> io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(io::Error::other)?;
    if body.len() > FRAME_BYTES_MAX {
        return Err(io::Error::other(format!(
            "frame of {} bytes exceeds {FRAME_BYTES_MAX}",
            body.len()
        )));
    }
    let len = u32::try_from(body.len()).map_err(io::Error::other)?;
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(&body);
    stream.write_all(buf).await
}

/// Reads one frame of at most `max` bytes within `timeout`; `Ok(None)` on a clean close.
pub async fn read_frame<T: DeserializeOwned>(
    stream: &mut Conn,
    max: usize,
    timeout: Duration,
) -> io::Result<Option<T>> {
    let read = compio::time::timeout(timeout, stream.read_prefix());
    let prefix = match read.await {
        Err(_) => {
            return Err(io::Error::new(io::ErrorKind::TimedOut, format!("silent for {timeout:?}")));
        }
        Ok(Ok(p)) => p,
        Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Ok(Err(e)) => return Err(e),
    };
    let len = frame_body_len(prefix, max)?;
    let body = compio::time::timeout(timeout, stream.read_vec(len)).await.map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no complete {len}-byte frame in {timeout:?}"),
        )
    })??;
    decode_frame_body(&body).map(Some)
}

/// The body length a frame's 4-byte prefix announces, refused (`InvalidData`) outside
/// `1..=max`, before any of the body is read. [`read_frame`]'s first step; public for the
/// fuzz target `controller_frame`.
pub fn frame_body_len(prefix: [u8; 4], max: usize) -> io::Result<usize> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len == 0 || len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame length {len} outside 1..={max}"),
        ));
    }
    Ok(len)
}

/// Decodes a frame's body (JSON) as a `T`; `InvalidData` if it does not decode. [`read_frame`]'s
/// last step; public for the fuzz target `controller_frame`.
pub fn decode_frame_body<T: DeserializeOwned>(body: &[u8]) -> io::Result<T> {
    serde_json::from_slice(body)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("undecodable frame: {e}")))
}

/// Opens a connection to `addr` from our own controller address and exchanges handshakes.
pub async fn connect(ident: &Identity, addr: SocketAddr) -> io::Result<Conn> {
    let connect = async {
        let socket =
            if addr.is_ipv4() { TcpSocket::new_v4().await? } else { TcpSocket::new_v6().await? };
        socket.bind(SocketAddr::new(ident.listen.ip(), 0)).await?;
        socket.connect(addr).await
    };
    let stream = compio::time::timeout(HANDSHAKE_TIMEOUT, connect)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true).ok();
    let mut stream = match &ident.tls {
        None => Conn::Plain(stream),
        Some(tls) => {
            let connector = futures_rustls::TlsConnector::from(tls.client.clone());
            let name = futures_rustls::rustls::pki_types::ServerName::IpAddress(addr.ip().into());
            let handshake = connector.connect(name, Box::pin(AsyncStream::new(stream)));
            let s = compio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await.map_err(|_| {
                io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
            })??;
            Conn::Tls(Box::new(futures_rustls::TlsStream::Client(s)))
        }
    };
    write_frame(&mut stream, &ident.handshake()).await?;
    match read_frame::<HandshakeReply>(&mut stream, HANDSHAKE_BYTES_MAX, HANDSHAKE_TIMEOUT).await? {
        Some(HandshakeReply::Accepted { cluster_id }) => {
            if let Some(id) = cluster_id {
                ident.adopt(id).await?;
            }
            Ok(stream)
        }
        Some(HandshakeReply::Refused { reason }) => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("refused by {addr}: {reason}"),
        )),
        None => Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            format!("{addr} closed during handshake"),
        )),
    }
}

/// Handles the handshake of an accepted connection; `Ok(peer id)` if it may go on.
pub async fn accept_handshake(
    ident: &Identity,
    stream: &mut Conn,
    peer: SocketAddr,
) -> Option<(NodeId, bool)> {
    let hs = match read_frame::<Handshake>(stream, HANDSHAKE_BYTES_MAX, HANDSHAKE_TIMEOUT).await {
        Ok(Some(h)) => h,
        Ok(None) => {
            debug!(%peer, "controller connection closed before its handshake");
            return None;
        }
        Err(e) => {
            warn!(%peer, error = %e, "controller connection closed: bad handshake");
            return None;
        }
    };
    let verdict = match ident.check(&hs) {
        // Only a voter's cluster id is adopted; an observer follows the voters' one.
        Ok(()) => match hs.cluster_id {
            Some(id) if !hs.observer => ident.adopt(id).await.map_err(|e| e.to_string()),
            _ => Ok(()),
        },
        Err(reason) => Err(reason),
    };
    match verdict {
        Ok(()) => {
            let reply = HandshakeReply::Accepted { cluster_id: *ident.cluster_id.borrow() };
            write_frame(stream, &reply).await.ok()?;
            Some((hs.node_id, hs.observer))
        }
        Err(reason) => {
            warn!(%peer, node = hs.node_id, %reason, "controller connection refused");
            let _ = write_frame(stream, &HandshakeReply::Refused { reason }).await;
            None
        }
    }
}

/// openraft's network factory: one [`PeerClient`] per target.
#[derive(Debug, Clone)]
pub struct Network {
    pub ident: Rc<Identity>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerClient {
        PeerClient { ident: self.ident.clone(), target, addr: node.addr.parse().ok(), stream: None }
    }
}

/// A lazily (re)connected client to one peer; one request in flight at a time.
#[derive(Debug)]
pub struct PeerClient {
    ident: Rc<Identity>,
    target: NodeId,
    addr: Option<SocketAddr>,
    stream: Option<Conn>,
}

enum Fail {
    Unreachable(io::Error),
    Network(io::Error),
}

impl PeerClient {
    async fn call(&mut self, req: &Request, timeout: Duration) -> Result<Response, Fail> {
        if self.stream.is_none() {
            let addr = self.addr.ok_or_else(|| {
                Fail::Unreachable(io::Error::other(format!("node {} has no address", self.target)))
            })?;
            let s = connect(&self.ident, addr).await.map_err(Fail::Unreachable)?;
            self.stream = Some(s);
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(Fail::Unreachable(io::Error::other("not connected")));
        };
        let exchange = async {
            write_frame(stream, req).await?;
            read_frame::<Response>(stream, FRAME_BYTES_MAX, timeout)
                .await?
                .ok_or_else(|| io::Error::new(io::ErrorKind::ConnectionAborted, "peer closed"))
        };
        let res = compio::time::timeout(timeout, exchange)
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "rpc timed out")));
        if res.is_err() {
            // The stream may hold half a frame: start over on the next call.
            self.stream = None;
        }
        res.map_err(Fail::Network)
    }

    fn rpc_error(fail: Fail) -> RPCError<TypeConfig> {
        match fail {
            Fail::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
            Fail::Network(e) => RPCError::Network(NetworkError::new(&e)),
        }
    }

    fn unexpected(what: &str) -> RPCError<TypeConfig> {
        RPCError::Network(NetworkError::new(&io::Error::other(format!("unexpected reply: {what}"))))
    }
}

fn remote(e: String) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::new(&io::Error::other(e)))
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self
            .call(&Request::AppendEntries(rpc), option.hard_ttl())
            .await
            .map_err(Self::rpc_error)?
        {
            Response::AppendEntries(r) => r.map_err(remote),
            _ => Err(Self::unexpected("append")),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(&Request::Vote(rpc), option.hard_ttl()).await.map_err(Self::rpc_error)? {
            Response::Vote(r) => r.map_err(remote),
            _ => Err(Self::unexpected("vote")),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(&Request::PreVote(rpc), option.hard_ttl()).await.map_err(Self::rpc_error)? {
            Response::Vote(r) => r.map_err(remote),
            _ => Err(Self::unexpected("pre-vote")),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let data = String::from_utf8(snapshot.snapshot).map_err(|e| {
            StreamingError::Network(NetworkError::new(&io::Error::other(e.to_string())))
        })?;
        let req = Request::Snapshot { vote, meta: snapshot.meta, data };
        let reply = self.call(&req, option.hard_ttl()).await.map_err(|f| match f {
            Fail::Unreachable(e) => StreamingError::Unreachable(Unreachable::new(&e)),
            Fail::Network(e) => StreamingError::Network(NetworkError::new(&e)),
        })?;
        match reply {
            Response::Snapshot(Ok(r)) => Ok(r),
            Response::Snapshot(Err(e)) => {
                Err(StreamingError::Network(NetworkError::new(&io::Error::other(e))))
            }
            _ => Err(StreamingError::Network(NetworkError::new(&io::Error::other(
                "unexpected reply",
            )))),
        }
    }
}
