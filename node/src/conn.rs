//! One client connection on one shard: read a frame, decode it, answer it, in order.
//!
//! Kafka clients pipeline requests on a connection and expect responses in request order; this
//! loop answers one request at a time, so order holds by construction. A frame whose length is
//! out of bounds, an unknown API key or an undecodable request closes the connection with a log
//! line saying why (what Kafka does); nothing of such a request is acted on.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use compio::BufResult;
use compio::buf::{IntoInner, IoBuf};
use compio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use compio::net::TcpStream;
use futures_util::future::{Either, select};
use odradek_net::fetch_response::encode_fetch_response;
use odradek_net::request::{Request, decode_request};
use odradek_net::{frame, response};
use tracing::{debug, info, warn};

use crate::handlers::{self, Payload, Reply};
use crate::shard::ShardCtx;

/// Serves one connection until the client closes it, it misbehaves, or the shard stops.
pub async fn serve(ctx: &Rc<ShardCtx>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    debug!(shard = ctx.id, %peer, "connection opened");
    match serve_requests(ctx, &stream, peer).await {
        Ok(()) => debug!(shard = ctx.id, %peer, "connection closed"),
        Err(reason) => info!(shard = ctx.id, %peer, %reason, "closing connection"),
    }
}

async fn serve_requests(
    ctx: &Rc<ShardCtx>,
    stream: &TcpStream,
    peer: SocketAddr,
) -> Result<(), String> {
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut pipe: Option<SplicePipe> = None;
    loop {
        let Some(prefix) = next_prefix(ctx, stream).await? else { return Ok(()) };
        let len =
            frame::frame_len(prefix, ctx.config.request_max_bytes).map_err(|e| e.to_string())?;
        let mut reader = stream;
        let buf = IoBuf::slice(Vec::with_capacity(len), 0..len);
        let idle = Duration::from_millis(ctx.config.connections_max_idle_ms);
        let BufResult(res, buf) = compio::time::timeout(idle, reader.read_exact(buf))
            .await
            .map_err(|_| format!("no complete {len}-byte request within {idle:?}"))?;
        res.map_err(|e| format!("reading a {len}-byte request: {e}"))?;
        let request = match decode_request(Bytes::from(buf.into_inner())) {
            Ok(r) => r,
            Err(e) => {
                match handlers::answer_decode_error(&e) {
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
                        write(stream, &mut out).await?;
                        continue;
                    }
                    None => {
                        warn!(shard = ctx.id, %peer, error = %e, "undecodable request");
                        return Err(format!("{e}"));
                    }
                }
            }
        };
        tracing::trace!(
            shard = ctx.id,
            %peer,
            api = ?request.api_key,
            version = request.header.request_api_version,
            correlation_id = request.header.correlation_id,
            client_id = request.header.client_id.as_deref().unwrap_or(""),
            "request"
        );
        respond(ctx, stream, request, &mut out, &mut pipe).await?;
    }
}

async fn respond(
    ctx: &Rc<ShardCtx>,
    stream: &TcpStream,
    request: Request,
    out: &mut BytesMut,
    pipe: &mut Option<SplicePipe>,
) -> Result<(), String> {
    let version = request.header.request_api_version;
    let correlation_id = request.header.correlation_id;
    let api_key = request.api_key;
    match handlers::handle(ctx, request).await? {
        Reply::Nothing => Ok(()),
        Reply::Body(body) => {
            out.clear();
            response::encode_response(correlation_id, api_key, version, &body, out)
                .map_err(|e| e.to_string())?;
            write(stream, out).await
        }
        Reply::Fetch(reply) => {
            let pieces = encode_fetch_response(correlation_id, version, &reply.response)
                .map_err(|e| e.to_string())?;
            // Piece i, then partition i's records: the payload is never copied into a buffer.
            let mut mem: Vec<Bytes> = Vec::with_capacity(pieces.len() + reply.records.len());
            let mut records = reply.records.into_iter();
            for piece in pieces {
                mem.push(piece);
                for payload in records.next().unwrap_or_default() {
                    match payload {
                        Payload::Mem(b) => mem.push(b),
                        Payload::File { file, position, len } => {
                            write_vectored(stream, std::mem::take(&mut mem)).await?;
                            let pipe = match pipe {
                                Some(p) => p,
                                None => pipe.insert(SplicePipe::new().await?),
                            };
                            let file = compio::driver::SharedFd::new(file);
                            pipe.send_file(stream, &file, position, len).await?;
                        }
                    }
                }
            }
            write_vectored(stream, mem).await
        }
    }
}

/// A pipe for splicing file ranges to this connection's socket (splice needs a pipe on one
/// side): file → pipe, then pipe → socket, both as io_uring operations.
pub struct SplicePipe {
    rx: compio::fs::pipe::Receiver,
    tx: compio::fs::pipe::Sender,
    capacity: usize,
}

/// The pipe size asked for: one splice moves up to this much.
const PIPE_BYTES: usize = 1 << 20;

impl SplicePipe {
    async fn new() -> Result<Self, String> {
        let (rx, tx) = compio::fs::pipe::anonymous()
            .await
            .map_err(|e| format!("creating a splice pipe: {e}"))?;
        // A larger pipe means fewer splices per fetch; the system limit
        // (/proc/sys/fs/pipe-max-size) may refuse, and then the default 64 KiB stays.
        let capacity = rustix::pipe::fcntl_setpipe_size(&tx, PIPE_BYTES).unwrap_or(64 * 1024);
        Ok(Self { rx, tx, capacity })
    }

    async fn send_file(
        &self,
        stream: &TcpStream,
        file: &compio::driver::SharedFd<Arc<std::fs::File>>,
        mut position: u64,
        mut len: usize,
    ) -> Result<(), String> {
        use compio::fs::pipe::splice;
        let err = |e: std::io::Error| format!("splicing records to the socket: {e}");
        while len > 0 {
            let offset =
                i64::try_from(position).map_err(|_| "file position beyond i64".to_owned())?;
            let n = splice(file, &self.tx, len.min(self.capacity))
                .offset_in(offset)
                .await
                .map_err(err)?;
            if n == 0 {
                return Err("splicing records: the segment file ended early".to_owned());
            }
            let mut left = n;
            while left > 0 {
                let m = splice(&self.rx, stream, left).await.map_err(err)?;
                if m == 0 {
                    return Err("splicing records: the socket took 0 bytes".to_owned());
                }
                left -= m;
            }
            position += n as u64;
            len -= n;
        }
        Ok(())
    }
}

async fn write(stream: &TcpStream, out: &mut BytesMut) -> Result<(), String> {
    let mut writer = stream;
    // `split` hands over the filled bytes and keeps the buffer's spare capacity for the next
    // response.
    let bytes = out.split().freeze();
    let BufResult(res, _) = writer.write_all(bytes).await;
    res.map_err(|e| format!("writing a response: {e}"))
}

/// Most buffers one `writev` takes (Linux's `UIO_MAXIOV`).
const IOVECS_PER_WRITE_MAX: usize = 1024;

/// Writes `bufs` in order with vectored writes, however the kernel splits them.
async fn write_vectored(stream: &TcpStream, bufs: Vec<Bytes>) -> Result<(), String> {
    let mut pending: VecDeque<Bytes> = bufs.into_iter().filter(|b| !b.is_empty()).collect();
    let mut writer = stream;
    while !pending.is_empty() {
        let take = pending.len().min(IOVECS_PER_WRITE_MAX);
        let chunk: Vec<Bytes> = pending.iter().take(take).cloned().collect();
        let BufResult(res, _) = writer.write_vectored(chunk).await;
        let written = res.map_err(|e| format!("writing a response: {e}"))?;
        if written == 0 {
            return Err("writing a response: the socket took 0 bytes".to_owned());
        }
        odradek_storage::backend::advance(&mut pending, written);
    }
    Ok(())
}

/// The next request's 4-byte length prefix; `None` when the client closed the connection
/// between requests, or the shard is stopping and no request is under way.
async fn next_prefix(ctx: &ShardCtx, stream: &TcpStream) -> Result<Option<[u8; 4]>, String> {
    if ctx.stopping.get() {
        return Ok(None);
    }
    let stop = ctx.stop_event.listen();
    if ctx.stopping.get() {
        return Ok(None);
    }
    let mut reader = stream;
    let idle = Duration::from_millis(ctx.config.connections_max_idle_ms);
    let read = std::pin::pin!(compio::time::timeout(idle, reader.read_exact([0u8; 4])));
    match select(read, stop).await {
        Either::Right(_) => Ok(None),
        Either::Left((Err(_), _)) => Err(format!("idle for {idle:?} (connections.max.idle.ms)")),
        Either::Left((Ok(BufResult(Ok(()), prefix)), _)) => Ok(Some(prefix)),
        Either::Left((Ok(BufResult(Err(e), _)), _))
            if e.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            Ok(None)
        }
        Either::Left((Ok(BufResult(Err(e), _)), _)) => Err(format!("reading a request: {e}")),
    }
}
