//! One client connection on one shard: read a frame, decode it, answer it, in order.
//!
//! Kafka clients pipeline requests on a connection and expect responses in request order; this
//! loop answers one request at a time, so order holds by construction. A frame whose length is
//! out of bounds, an unknown API key or an undecodable request closes the connection with a log
//! line saying why (what Kafka does); nothing of such a request is acted on.
//!
//! What one connection can cost the node is bounded: a request's body is read into a buffer
//! of at most [`FIRST_READ_BYTES`] until that much has arrived, and only then into one of its
//! announced size, which is first charged to the shard's share of `queued.max.request.bytes`
//! (a slow client announcing 100 MiB holds 64 KiB, not 100 MiB); the request's bytes are given
//! back before its response is written, so a client that never reads holds only its response.
//! Every read and every write is bounded in time by `connections.max.idle.ms`. Connections
//! closed for misbehaving are logged once per class ([`super::abuse`]), not once each.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use compio::io::compat::AsyncStream;
use compio::net::TcpStream;
use futures_util::future::{Either, select};
use odradek_net::fetch_response::encode_fetch_response;
use odradek_net::request::decode_request;
use odradek_net::{frame, response};
use tracing::{debug, info, warn};

use super::abuse::Abuse;
use super::sasl;
use super::session::{ListenerInfo, Principal, SaslState, Session};
use super::stream::Stream;
use super::transport::SplicePipe;
use crate::api::{self, Reply};
use crate::metrics::Timing;
use crate::shard::Shard;
use kafka_protocol::messages::{ApiKey, RequestKind};
use odradek_client::stages::{Kind, Stage};

/// How long a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A request body is read into a buffer of at most this size first; a larger one is allocated
/// (and charged to `queued.max.request.bytes`) only once this much of it has arrived.
pub const FIRST_READ_BYTES: usize = 64 * 1024;

/// Why the node ended a connection.
#[derive(Debug)]
enum Close {
    /// The client misbehaved (logged by class, see [`super::abuse`]).
    Abuse(Abuse, String),
    /// The client went away: a reset or broken pipe while reading or writing (logged at debug,
    /// as Kafka does).
    Gone(String),
    /// Anything else: a refused SASL exchange, a request the node could not answer.
    Error(String),
}

impl From<String> for Close {
    fn from(reason: String) -> Self {
        Close::Error(reason)
    }
}

/// Serves one connection until the client closes it, it misbehaves, or the shard stops.
pub async fn serve(
    ctx: &Rc<Shard>,
    stream: TcpStream,
    peer: SocketAddr,
    listener: Rc<ListenerInfo>,
) {
    let _ = stream.set_nodelay(true);
    debug!(shard = ctx.id, %peer, listener = %listener.name, "connection opened");
    let mut session = Session::new(ctx.id, peer, listener.clone());
    let mut stream = if listener.protocol.tls() {
        let Some(tls) = ctx.security.tls.as_ref() else {
            warn!(shard = ctx.id, %peer, "TLS listener without a TLS context; closing");
            return;
        };
        let accept = tls.acceptor().accept(Box::pin(AsyncStream::new(stream)));
        match compio::time::timeout(TLS_HANDSHAKE_TIMEOUT, accept).await {
            Ok(Ok(tls)) => {
                let cert = tls.get_ref().1.peer_certificates().and_then(|c| c.first());
                if let Some(p) = cert.and_then(crate::security::tls::principal_of) {
                    session.principal = Principal::from_full(p);
                }
                Stream::Tls(Box::new(tls))
            }
            Ok(Err(e)) => {
                crate::metrics::ShardStats::add(&ctx.stats.tls_handshake_failures, 1);
                let detail = format!("listener {}: {e}", listener.name);
                ctx.abuse.closed(&ctx.stats, Abuse::TlsHandshake, peer, &detail);
                return;
            }
            Err(_) => {
                crate::metrics::ShardStats::add(&ctx.stats.tls_handshake_failures, 1);
                let detail = format!(
                    "listener {}: no TLS handshake within {TLS_HANDSHAKE_TIMEOUT:?}",
                    listener.name
                );
                ctx.abuse.closed(&ctx.stats, Abuse::TlsHandshake, peer, &detail);
                return;
            }
        }
    } else {
        Stream::Plain(stream)
    };
    session.superuser = ctx.security.is_super(session.principal.as_str());
    match serve_requests(ctx, &mut stream, &mut session).await {
        Ok(()) => debug!(shard = ctx.id, %peer, "connection closed"),
        Err(Close::Abuse(class, detail)) => {
            ctx.abuse.closed(&ctx.stats, class, peer, &detail);
        }
        Err(Close::Gone(reason)) => debug!(shard = ctx.id, %peer, %reason, "connection lost"),
        Err(Close::Error(reason)) => info!(shard = ctx.id, %peer, %reason, "closing connection"),
    }
}

async fn serve_requests(
    ctx: &Rc<Shard>,
    stream: &mut Stream,
    session: &mut Session,
) -> Result<(), Close> {
    let peer = session.peer;
    // Grown by the first response that needs it: an idle connection holds no buffer.
    let mut out = BytesMut::new();
    let mut pipe: Option<SplicePipe> = None;
    let idle = Duration::from_millis(ctx.config.connections_max_idle_ms);
    loop {
        let Some(prefix) = next_prefix(ctx, stream).await? else { return Ok(()) };
        // The request's clock starts with its first bytes: time before that is the client's.
        let began = Instant::now();
        let len = frame::frame_len(prefix, ctx.config.request_max_bytes)
            .map_err(|e| Close::Abuse(Abuse::OversizeFrame, e.to_string()))?;
        let (buf, queued) = read_body(ctx, stream, len, began + idle).await?;
        if let SaslState::RawTokens(_) = session.sasl {
            // After SaslHandshake v0 the frames are bare SASL tokens.
            if let Err(reason) = Box::pin(sasl::raw_token(ctx, session, stream, &buf)).await {
                // No error frame in this framing: the close, after the delay, is the answer.
                mute(ctx, sasl::FAILED_AUTHENTICATION_DELAY).await;
                return Err(Close::Error(reason));
            }
            continue;
        }
        let request = match decode_request(Bytes::from(buf)) {
            Ok(r) => r,
            Err(e) => {
                match api::answer_decode_error(&e) {
                    Some((correlation_id, api_key, version, body)) => {
                        // Answerable (an ApiVersions version newer than ours: clients probe
                        // with their newest and retry with what we list).
                        debug!(shard = ctx.id, %peer, error = %e, "request answered with an error");
                        out.clear();
                        response::encode_response(
                            correlation_id,
                            api_key,
                            version,
                            &body,
                            &mut out,
                        )
                        .map_err(|e| e.to_string())?;
                        stream.write_buf(&mut out).await.map_err(Close::Gone)?;
                        continue;
                    }
                    None => return Err(Close::Abuse(Abuse::Undecodable, e.to_string())),
                }
            }
        };
        // The target predates the library (`odradek::conn`); operators' filters name it.
        tracing::trace!(
            target: "odradek::conn",
            shard = ctx.id,
            %peer,
            api = ?request.api_key,
            version = request.header.request_api_version,
            correlation_id = request.header.correlation_id,
            client_id = request.header.client_id.as_deref().unwrap_or(""),
            "request"
        );
        sasl::admit(session, request.api_key)?;
        session.client_id.clone_from(&request.header.client_id.as_ref().map(|c| c.to_string()));
        let mut timing = Timing::default();
        timing.add(Stage::Receive, began.elapsed());
        let api_key = request.api_key;
        let correlation_id = request.header.correlation_id;
        let version = request.header.request_api_version;
        // Replicas' fetches are not held to client quotas (as in Kafka).
        let replica_fetch = matches!(&request.body, RequestKind::Fetch(f)
            if f.replica_id.0 >= 0 || f.replica_state.replica_id.0 >= 0);
        let (mut handled, close) = match api_key {
            ApiKey::SaslHandshake | ApiKey::SaslAuthenticate => {
                let (body, close) = Box::pin(sasl::handle(ctx, session, request)).await;
                (Reply::Body(Box::new(body)), close)
            }
            // Boxed: the handlers' futures are large, and inline they would make every
            // connection's task that large, idle ones included (10,000 idle connections cost
            // about 100 MiB more without the box).
            _ => (Box::pin(api::handle(ctx, session, request, &mut timing)).await?, None),
        };
        let error = api::reply_has_error(&handled);
        let throttle = if replica_fetch {
            Duration::ZERO
        } else {
            throttle_for(ctx, session, (api_key, len), &mut handled, began.elapsed())
        };
        // The request's bytes are given back before the response is written: a client that is
        // slow to read holds its response, not the node's request budget.
        drop(queued);
        let sending = Instant::now();
        let sent = compio::time::timeout(
            idle,
            Box::pin(respond(
                stream,
                handled,
                (correlation_id, api_key, version),
                &mut out,
                &mut pipe,
            )),
        )
        .await
        .unwrap_or_else(|_| {
            let detail = format!("{api_key:?} response not read within {idle:?}");
            Err(Close::Abuse(Abuse::SlowReader, detail))
        });
        timing.add(Stage::Send, sending.elapsed());
        let took = began.elapsed();
        ctx.stats.request(api_key as i16, took, error || sent.is_err());
        let kind = match api_key {
            ApiKey::Produce => Some(Kind::Produce),
            ApiKey::Fetch => Some(Kind::Fetch),
            _ => None,
        };
        if let Some(kind) = kind {
            timing.record(kind, &ctx.stats);
            if tracing::enabled!(target: "odradek::conn", tracing::Level::TRACE) {
                trace_stages(ctx.id, peer, correlation_id, kind, &timing, took);
            }
        }
        sent?;
        if let Some(reason) = close {
            // Kafka's delayed close: the answer first, the end of the connection later.
            mute(ctx, sasl::FAILED_AUTHENTICATION_DELAY).await;
            return Err(Close::Error(reason));
        }
        if !throttle.is_zero() {
            mute(ctx, throttle).await;
        }
    }
}

/// Records the request against the connection's client quotas and returns how long the
/// connection is to be muted; a throttled Produce or Fetch answer carries it as
/// `throttle_time_ms` (KIP-219).
fn throttle_for(
    ctx: &Shard,
    session: &mut Session,
    (api_key, request_bytes): (ApiKey, usize),
    reply: &mut Reply,
    handling: Duration,
) -> Duration {
    use crate::security::quota::Kind as Quota;
    let view = ctx.metadata.snapshot().security.clone();
    if view.quotas.is_empty() {
        session.quota = None;
        return Duration::ZERO;
    }
    let fresh = session
        .quota
        .as_ref()
        .is_some_and(|b| b.is_for(&view.quotas, session.quota_user(), session.client_id()));
    if !fresh {
        let bound =
            ctx.security.quotas.bind(&view.quotas, session.quota_user(), session.client_id());
        session.quota = Some(bound);
    }
    let Some(bound) = session.quota.as_ref() else { return Duration::ZERO };
    let registry = &ctx.security.quotas;
    let mut throttle = registry.record(bound, Quota::Request, handling.as_secs_f64());
    match (api_key, &mut *reply) {
        (ApiKey::Produce, _) => {
            throttle = throttle.max(registry.record(bound, Quota::Produce, request_bytes as f64));
        }
        (ApiKey::Fetch, Reply::Fetch(f)) => {
            let bytes: usize = f
                .records
                .iter()
                .flatten()
                .map(|p| match p {
                    crate::partition::Payload::Mem(b) => b.len(),
                    crate::partition::Payload::File { len, .. } => *len,
                })
                .sum();
            throttle = throttle.max(registry.record(bound, Quota::Fetch, bytes as f64));
        }
        _ => {}
    }
    if !throttle.is_zero() {
        let ms = i32::try_from(throttle.as_millis()).unwrap_or(i32::MAX);
        match reply {
            Reply::Fetch(f) => f.response.throttle_time_ms = ms,
            Reply::Body(b) => {
                if let kafka_protocol::messages::ResponseKind::Produce(r) = &mut **b {
                    r.throttle_time_ms = ms;
                }
            }
            Reply::Nothing => {}
        }
        crate::metrics::ShardStats::add(&ctx.stats.throttle_us, throttle.as_micros() as u64);
        tracing::debug!(shard = ctx.id, peer = %session.peer, user = session.quota_user(), client = session.client_id(), throttle_ms = ms, "client over its quota: muted");
    }
    throttle
}

/// Reads nothing from the connection for `pause`, unless the shard stops: KIP-219's mute of a
/// throttled client, and the delayed close after a failed authentication.
async fn mute(ctx: &Shard, pause: Duration) {
    let stop = ctx.life.stop_event.listen();
    if ctx.life.stopping.get() {
        return;
    }
    let _ = select(std::pin::pin!(compio::time::sleep(pause)), stop).await;
}

/// The per-request trace line of a Produce or Fetch, with its stages in microseconds.
fn trace_stages(
    shard: usize,
    peer: SocketAddr,
    correlation_id: i32,
    kind: Kind,
    timing: &Timing,
    took: Duration,
) {
    let stages: Vec<String> = Stage::of(kind)
        .iter()
        .map(|&s| format!("{}={}", s.name(), timing.get(s).as_micros()))
        .collect();
    tracing::trace!(
        target: "odradek::conn",
        shard,
        %peer,
        correlation_id,
        api = ?kind,
        total_us = took.as_micros() as u64,
        stages_us = %stages.join(" "),
        "answered"
    );
}

/// Encodes `reply` to the request (`correlation_id`, `api_key`, `version`) and writes it.
async fn respond(
    stream: &mut Stream,
    reply: Reply,
    (correlation_id, api_key, version): (i32, ApiKey, i16),
    out: &mut BytesMut,
    pipe: &mut Option<SplicePipe>,
) -> Result<(), Close> {
    match reply {
        Reply::Nothing => Ok(()),
        Reply::Body(body) => {
            out.clear();
            response::encode_response(correlation_id, api_key, version, &body, out)
                .map_err(|e| Close::Error(e.to_string()))?;
            stream.write_buf(out).await.map_err(Close::Gone)
        }
        Reply::Fetch(reply) => {
            let pieces = encode_fetch_response(correlation_id, version, &reply.response)
                .map_err(|e| Close::Error(e.to_string()))?;
            // Piece i, then partition i's records: the payload is never copied into a buffer.
            let mut mem: Vec<Bytes> = Vec::with_capacity(pieces.len() + reply.records.len());
            let mut records = reply.records.into_iter();
            for piece in pieces {
                mem.push(piece);
                for payload in records.next().unwrap_or_default() {
                    stream.send_payload(&mut mem, payload, pipe).await.map_err(Close::Gone)?;
                }
            }
            stream.write_all_bufs(mem).await.map_err(Close::Gone)
        }
    }
}

/// Reads a `len`-byte request body, all of it before `deadline` (else the client is a slow
/// one): first into a buffer of at most [`FIRST_READ_BYTES`], then, once that much arrived,
/// into one of the full size, charged to the shard's request budget (waiting for it if other
/// requests hold it). Returns the body and the charge, which gives the bytes back when dropped.
async fn read_body<'a>(
    ctx: &'a Shard,
    stream: &mut Stream,
    len: usize,
    deadline: Instant,
) -> Result<(Vec<u8>, Option<super::budget::Charge<'a>>), Close> {
    let slow =
        || Close::Abuse(Abuse::SlowRequest, format!("no complete {len}-byte request in time"));
    let failed = |e: std::io::Error| Close::Gone(format!("reading a {len}-byte request: {e}"));
    let left = |d: Instant| d.saturating_duration_since(Instant::now());
    let first = len.min(FIRST_READ_BYTES);
    let buf = Vec::with_capacity(first);
    let buf = compio::time::timeout(left(deadline), stream.read_to(buf, first))
        .await
        .map_err(|_| slow())?
        .map_err(failed)?;
    if first == len {
        return Ok((buf, None));
    }
    let charge = compio::time::timeout(left(deadline), ctx.life.requests.charge(len))
        .await
        .map_err(|_| {
            let held = ctx.life.requests.held();
            Close::Error(format!(
                "no room for a {len}-byte request in time (the shard's requests hold {held} bytes of queued.max.request.bytes)"
            ))
        })?;
    // `read_to` grows the buffer to the whole body at once.
    let buf = compio::time::timeout(left(deadline), stream.read_to(buf, len))
        .await
        .map_err(|_| slow())?
        .map_err(failed)?;
    Ok((buf, Some(charge)))
}

/// The next request's 4-byte length prefix; `None` when the client closed the connection
/// between requests, or the shard is stopping and no request is under way.
async fn next_prefix(ctx: &Shard, stream: &mut Stream) -> Result<Option<[u8; 4]>, Close> {
    if ctx.life.stopping.get() {
        return Ok(None);
    }
    let stop = ctx.life.stop_event.listen();
    if ctx.life.stopping.get() {
        return Ok(None);
    }
    let idle = Duration::from_millis(ctx.config.connections_max_idle_ms);
    let read = std::pin::pin!(compio::time::timeout(idle, stream.read_prefix()));
    match select(read, stop).await {
        Either::Right(_) => Ok(None),
        Either::Left((Err(_), _)) => Err(Close::Abuse(Abuse::Idle, format!("idle for {idle:?}"))),
        Either::Left((Ok(Ok(prefix)), _)) => Ok(Some(prefix)),
        Either::Left((Ok(Err(e)), _)) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Either::Left((Ok(Err(e)), _)) => Err(Close::Gone(format!("reading a request: {e}"))),
    }
}
