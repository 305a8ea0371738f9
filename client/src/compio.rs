//! The io_uring transport, on compio: one [`AsyncConn`] per broker, one request at a time,
//! for code that runs on a compio runtime (the node's replica fetchers, on their shard).
//! Every byte goes through [`crate::proto`], exactly as with [`crate::blocking`]; this module
//! only moves them, and bounds every wait.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use compio::BufResult;
use compio::io::compat::AsyncStream;
use compio::io::{AsyncReadExt, AsyncWriteExt};
use compio::net::{TcpSocket, TcpStream};
use futures_util::io::{AsyncReadExt as _, AsyncWriteExt as _};
use kafka_protocol::protocol::{HeaderVersion, Request};

use crate::error::{ClientError, Result};
use crate::proto::{self, FRAME_PREFIX_BYTES, Versions};

/// TLS for a connection: the rustls client config (trust roots, a client certificate) and the
/// name the broker's certificate must carry (an IP address works for an IP SAN).
#[derive(Clone)]
pub struct Tls {
    pub config: Arc<futures_rustls::rustls::ClientConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

type TlsStream = futures_rustls::client::TlsStream<Pin<Box<AsyncStream<TcpStream>>>>;

/// The connection's bytes: the socket itself, or TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stream::Plain(_) => "Plain",
            Stream::Tls(_) => "Tls",
        })
    }
}

/// A broker connection on the current compio runtime, with the versions negotiated when it
/// was opened.
#[derive(Debug)]
pub struct AsyncConn {
    stream: Stream,
    versions: Versions,
    addr: SocketAddr,
    client_id: String,
    next_correlation_id: i32,
    buf: BytesMut,
}

fn timed_out(what: String, limit: Duration) -> ClientError {
    ClientError::Io {
        what,
        source: std::io::Error::new(std::io::ErrorKind::TimedOut, format!("after {limit:?}")),
    }
}

impl AsyncConn {
    /// Connects to `addr` (from `bind`'s address when given: a node's outgoing connections
    /// leave from its own address) and negotiates versions, all within `limit`.
    ///
    /// # Errors
    ///
    /// [`ClientError::Io`] for a failed or slow connection; any error of the ApiVersions call.
    pub async fn connect(
        addr: SocketAddr,
        bind: Option<IpAddr>,
        client_id: &str,
        limit: Duration,
    ) -> Result<AsyncConn> {
        Self::connect_with(addr, bind, client_id, limit, None).await
    }

    /// As [`AsyncConn::connect`], over TLS when `tls` is given (the handshake within `limit`
    /// too; the broker's certificate must name `addr`'s IP).
    ///
    /// # Errors
    ///
    /// As [`AsyncConn::connect`]; a failed TLS handshake is [`ClientError::Io`].
    pub async fn connect_with(
        addr: SocketAddr,
        bind: Option<IpAddr>,
        client_id: &str,
        limit: Duration,
        tls: Option<&Tls>,
    ) -> Result<AsyncConn> {
        let connect = async {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4().await?
            } else {
                TcpSocket::new_v6().await?
            };
            if let Some(ip) = bind {
                socket.bind(SocketAddr::new(ip, 0)).await?;
            }
            socket.connect(addr).await
        };
        let stream = compio::time::timeout(limit, connect)
            .await
            .map_err(|_| timed_out(format!("connecting to {addr}"), limit))?
            .map_err(ClientError::io(format!("connecting to {addr}")))?;
        stream.set_nodelay(true).map_err(ClientError::io(format!("setting up {addr}")))?;
        let stream = match tls {
            None => Stream::Plain(stream),
            Some(tls) => {
                let name =
                    futures_rustls::rustls::pki_types::ServerName::IpAddress(addr.ip().into());
                let connector = futures_rustls::TlsConnector::from(tls.config.clone());
                let handshake = connector.connect(name, Box::pin(AsyncStream::new(stream)));
                let tls = compio::time::timeout(limit, handshake)
                    .await
                    .map_err(|_| timed_out(format!("a TLS handshake with {addr}"), limit))?
                    .map_err(ClientError::io(format!("a TLS handshake with {addr}")))?;
                Stream::Tls(Box::new(tls))
            }
        };
        let mut conn = AsyncConn {
            stream,
            versions: Versions::default(),
            addr,
            client_id: client_id.to_owned(),
            next_correlation_id: 0,
            buf: BytesMut::new(),
        };
        let resp = conn.call_at(0, &proto::api_versions_request(), limit).await?;
        conn.versions = Versions::from_response(&resp)?;
        Ok(conn)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn versions(&self) -> &Versions {
        &self.versions
    }

    /// Sends `req` at the highest version both sides know and reads its response.
    ///
    /// # Errors
    ///
    /// As [`AsyncConn::call_at`], or [`Versions::pick`]'s.
    pub async fn call<R: Request>(&mut self, req: &R, limit: Duration) -> Result<R::Response>
    where
        R::Response: HeaderVersion,
    {
        let version = self.versions.pick::<R>()?;
        self.call_at(version, req, limit).await
    }

    /// Sends `req` at `version` and reads its response, within `limit`. After an error the
    /// connection is in an unknown state: drop it.
    ///
    /// # Errors
    ///
    /// Encoding, I/O (including a timeout), a frame length [`proto::frame_len`] refuses, or
    /// [`proto::decode_response`]'s.
    pub async fn call_at<R: Request>(
        &mut self,
        version: i16,
        req: &R,
        limit: Duration,
    ) -> Result<R::Response>
    where
        R::Response: HeaderVersion,
    {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        proto::encode_request(&mut self.buf, &self.client_id, correlation_id, version, req)?;
        let frame = self.buf.split().freeze();
        let exchange = async {
            match &mut self.stream {
                Stream::Plain(s) => {
                    let BufResult(sent, _) = s.write_all(frame).await;
                    sent.map_err(ClientError::io("sending a request"))?;
                    read_frame(s).await
                }
                Stream::Tls(s) => {
                    s.write_all(&frame).await.map_err(ClientError::io("sending a request"))?;
                    s.flush().await.map_err(ClientError::io("sending a request"))?;
                    read_tls_frame(s).await
                }
            }
        };
        let frame = compio::time::timeout(limit, exchange)
            .await
            .map_err(|_| timed_out(format!("a response from {}", self.addr), limit))??;
        proto::decode_response::<R>(frame, correlation_id, version)
    }
}

/// As [`read_frame`], over TLS.
async fn read_tls_frame(stream: &mut TlsStream) -> Result<Bytes> {
    let mut prefix = [0u8; FRAME_PREFIX_BYTES];
    stream.read_exact(&mut prefix).await.map_err(ClientError::io("reading a response length"))?;
    let len = proto::frame_len(prefix)?;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.map_err(ClientError::io("reading a response body"))?;
    Ok(Bytes::from(body))
}

/// Reads one response frame and returns it without its length prefix.
async fn read_frame(stream: &mut TcpStream) -> Result<Bytes> {
    let BufResult(res, prefix) = stream.read_exact([0u8; FRAME_PREFIX_BYTES]).await;
    res.map_err(ClientError::io("reading a response length"))?;
    let len = proto::frame_len(prefix)?;
    let BufResult(res, body) = stream.read_exact(Vec::with_capacity(len)).await;
    res.map_err(ClientError::io("reading a response body"))?;
    Ok(Bytes::from(body))
}
