//! A client connection's byte stream: the TCP socket itself, or TLS over it (rustls through
//! compio's futures-io adaptor, the pairing compio-tls uses). Reads are bounded by the caller;
//! a TLS stream's writes are flushed before a response counts as sent.

use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use compio::BufResult;
use compio::buf::{IntoInner, IoBuf};
use compio::io::AsyncReadExt;
use compio::io::compat::AsyncStream;
use compio::net::TcpStream;
use futures_util::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::transport::{SplicePipe, write, write_vectored};
use crate::partition::Payload;

/// The TLS side of a connection.
pub type TlsStream = futures_rustls::server::TlsStream<Pin<Box<AsyncStream<TcpStream>>>>;

/// A connection's stream.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Plain(_) => "Stream::Plain",
            Self::Tls(_) => "Stream::Tls",
        })
    }
}

/// Bytes of a file range read per step when it cannot be spliced (TLS): one pipe's worth.
const TLS_FILE_CHUNK: usize = 1 << 20;

impl Stream {
    /// Reads bytes onto the end of `buf` until it holds `upto` bytes (growing it if need be).
    pub async fn read_to(&mut self, mut buf: Vec<u8>, upto: usize) -> std::io::Result<Vec<u8>> {
        let from = buf.len();
        let upto = upto.max(from);
        buf.reserve_exact(upto - from);
        match self {
            Self::Plain(s) => {
                let mut reader = &*s;
                let BufResult(res, buf) = reader.read_exact(IoBuf::slice(buf, from..upto)).await;
                res.map(|()| buf.into_inner())
            }
            Self::Tls(s) => {
                buf.resize(upto, 0);
                s.read_exact(&mut buf[from..]).await.map(|()| buf)
            }
        }
    }

    /// Reads a 4-byte length prefix.
    pub async fn read_prefix(&mut self) -> std::io::Result<[u8; 4]> {
        match self {
            Self::Plain(s) => {
                let mut reader = &*s;
                let BufResult(res, prefix) = reader.read_exact([0u8; 4]).await;
                res.map(|()| prefix)
            }
            Self::Tls(s) => {
                let mut prefix = [0u8; 4];
                s.read_exact(&mut prefix).await.map(|()| prefix)
            }
        }
    }

    /// Writes the filled bytes of `out` (keeping its spare capacity for the next response).
    pub async fn write_buf(&mut self, out: &mut BytesMut) -> Result<(), String> {
        match self {
            Self::Plain(s) => write(s, out).await,
            Self::Tls(s) => {
                let bytes = out.split().freeze();
                tls_write(s, vec![bytes]).await
            }
        }
    }

    /// Writes `bufs` in order.
    pub async fn write_all_bufs(&mut self, bufs: Vec<Bytes>) -> Result<(), String> {
        match self {
            Self::Plain(s) => write_vectored(s, bufs).await,
            Self::Tls(s) => tls_write(s, bufs).await,
        }
    }

    /// Sends a Fetch response's pieces and records: spliced from the file on a plain socket;
    /// under TLS the file range is moved into memory (spliced through the pipe, still without
    /// a user-space read of the file) and encrypted, as Kafka does.
    pub async fn send_payload(
        &mut self,
        mem: &mut Vec<Bytes>,
        payload: Payload,
        pipe: &mut Option<SplicePipe>,
    ) -> Result<(), String> {
        match payload {
            Payload::Mem(b) => {
                mem.push(b);
                Ok(())
            }
            Payload::File { file, position, len } => {
                let pipe = match pipe {
                    Some(p) => p,
                    None => pipe.insert(SplicePipe::new().await?),
                };
                let file = compio::driver::SharedFd::new(file);
                match self {
                    Self::Plain(s) => {
                        write_vectored(s, std::mem::take(mem)).await?;
                        pipe.send_file(s, &file, position, len).await
                    }
                    Self::Tls(_) => {
                        let (mut at, end) = (position, position + len as u64);
                        while at < end {
                            let n = ((end - at) as usize).min(TLS_FILE_CHUNK);
                            mem.push(pipe.read_file(&file, at, n).await?);
                            at += n as u64;
                        }
                        Ok(())
                    }
                }
            }
        }
    }
}

async fn tls_write(s: &mut TlsStream, bufs: Vec<Bytes>) -> Result<(), String> {
    for b in bufs.into_iter().filter(|b| !b.is_empty()) {
        s.write_all(&b).await.map_err(|e| format!("writing a response: {e}"))?;
    }
    s.flush().await.map_err(|e| format!("writing a response: {e}"))
}
