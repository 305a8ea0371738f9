//! Writing responses to a connection's socket: vectored writes of in-memory pieces, and file
//! ranges spliced (file → pipe → socket, both io_uring operations) so that a Fetch's records
//! never pass through user space.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use compio::BufResult;
use compio::buf::IoBuf;
use compio::io::{AsyncWrite, AsyncWriteExt};
use compio::net::TcpStream;

/// A pipe for splicing file ranges to this connection's socket (splice needs a pipe on one
/// side): file → pipe, then pipe → socket, both as io_uring operations.
pub struct SplicePipe {
    rx: compio::fs::pipe::Receiver,
    tx: compio::fs::pipe::Sender,
    capacity: usize,
}

/// The pipe size asked for: one splice moves up to this much.
const PIPE_BYTES: usize = 1 << 20;

impl std::fmt::Debug for SplicePipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SplicePipe").field("capacity", &self.capacity).finish_non_exhaustive()
    }
}

impl SplicePipe {
    pub async fn new() -> Result<Self, String> {
        let (rx, tx) = compio::fs::pipe::anonymous()
            .await
            .map_err(|e| format!("creating a splice pipe: {e}"))?;
        // A larger pipe means fewer splices per fetch; the system limit
        // (/proc/sys/fs/pipe-max-size) may refuse, and then the default 64 KiB stays.
        let capacity = rustix::pipe::fcntl_setpipe_size(&tx, PIPE_BYTES).unwrap_or(64 * 1024);
        Ok(Self { rx, tx, capacity })
    }

    pub async fn send_file(
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

impl SplicePipe {
    /// Reads `len` bytes of `file` at `position` into memory through the pipe (file → pipe by
    /// splice, pipe → memory by read; both io_uring operations), for a stream that cannot
    /// take a splice (TLS encrypts in user space).
    pub async fn read_file(
        &self,
        file: &compio::driver::SharedFd<Arc<std::fs::File>>,
        position: u64,
        len: usize,
    ) -> Result<Bytes, String> {
        use compio::fs::pipe::splice;
        use compio::io::AsyncReadExt;
        let err = |e: std::io::Error| format!("reading records for a TLS fetch: {e}");
        let mut out = BytesMut::with_capacity(len);
        let mut at = position;
        while out.len() < len {
            let offset = i64::try_from(at).map_err(|_| "file position beyond i64".to_owned())?;
            let want = (len - out.len()).min(self.capacity);
            let n = splice(file, &self.tx, want).offset_in(offset).await.map_err(err)?;
            if n == 0 {
                return Err("reading records: the segment file ended early".to_owned());
            }
            let mut rx = &self.rx;
            let BufResult(res, chunk) = rx.read_exact(Vec::with_capacity(n).slice(0..n)).await;
            res.map_err(err)?;
            out.extend_from_slice(&compio::buf::IntoInner::into_inner(chunk));
            at += n as u64;
        }
        Ok(out.freeze())
    }
}

pub async fn write(stream: &TcpStream, out: &mut BytesMut) -> Result<(), String> {
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
pub async fn write_vectored(stream: &TcpStream, bufs: Vec<Bytes>) -> Result<(), String> {
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
