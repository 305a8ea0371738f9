//! The admin HTTP listener: `GET /metrics` (Prometheus text), `GET /health` (the process
//! serves), `GET /ready` (the broker is ready for clients). It runs on the main thread's
//! runtime, never on a shard: a scrape costs the shards only the one collection task each.
//!
//! HTTP/1.1 with `Connection: close`, one request per connection, GET only. What a client
//! sends is bounded: the request head in size ([`HEAD_MAX_BYTES`]) and time
//! ([`READ_TIMEOUT`]), and connections in number ([`CONNECTIONS_MAX`]; more are closed at
//! once). Anything else is answered with 400, 404 or 405 and one debug line.

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use compio::BufResult;
use compio::io::{AsyncRead, AsyncWriteExt};
use compio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

/// Largest request head read (request line and headers).
pub const HEAD_MAX_BYTES: usize = 8 * 1024;
/// How long a client may take to send its request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Admin connections served at once.
pub const CONNECTIONS_MAX: usize = 32;

/// What the listener asks of the node.
pub trait Admin: 'static {
    /// The whole Prometheus text of one scrape.
    fn metrics(&self) -> Pin<Box<dyn Future<Output = String>>>;
    /// Whether the broker serves clients (shards listening, registered and unfenced).
    fn ready(&self) -> bool;
}

/// Binds the admin listener (before any runtime exists: the start-up checks it first).
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(64)?;
    Ok(socket.into())
}

/// Serves admin requests on `listener` (from [`bind`]) until the task is dropped.
pub async fn serve(listener: std::net::TcpListener, admin: Rc<dyn Admin>) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            warn!(error = %e, "admin listener: cannot register the socket; serving without it");
            return;
        }
    };
    let open = Rc::new(Cell::new(0usize));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!(error = %e, "admin listener: accept failed");
                compio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if open.get() >= CONNECTIONS_MAX {
            debug!(%peer, "admin listener: too many connections; closing the new one");
            continue;
        }
        open.set(open.get() + 1);
        let (admin, open) = (admin.clone(), open.clone());
        compio::runtime::spawn(async move {
            if let Err(why) = answer(&stream, &*admin).await {
                debug!(%peer, %why, "admin request not answered");
            }
            open.set(open.get() - 1);
        })
        .detach();
    }
}

async fn answer(stream: &TcpStream, admin: &dyn Admin) -> Result<(), String> {
    let head = compio::time::timeout(READ_TIMEOUT, read_head(stream))
        .await
        .map_err(|_| format!("no request head within {READ_TIMEOUT:?}"))??;
    let (status, content_type, body) = route(&head, admin).await;
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut writer = stream;
    let BufResult(written, _) = writer.write_all(response.into_bytes()).await;
    written.map_err(|e| format!("writing the answer: {e}"))
}

/// Reads until the blank line that ends the request head.
async fn read_head(stream: &TcpStream) -> Result<String, String> {
    let mut head = Vec::with_capacity(512);
    let mut reader = stream;
    loop {
        let BufResult(read, buf) = reader.read(Vec::with_capacity(1024)).await;
        let n = read.map_err(|e| format!("reading the request: {e}"))?;
        if n == 0 {
            return Err("closed before the end of the request head".into());
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(String::from_utf8_lossy(&head).into_owned());
        }
        if head.len() > HEAD_MAX_BYTES {
            return Err(format!("request head over {HEAD_MAX_BYTES} bytes"));
        }
    }
}

const TEXT: &str = "text/plain; charset=utf-8";
/// Prometheus's text exposition format.
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

async fn route(head: &str, admin: &dyn Admin) -> (&'static str, &'static str, String) {
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let path = target.split('?').next().unwrap_or_default();
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return ("400 Bad Request", TEXT, "not an HTTP/1.x request\n".into());
    }
    if !matches!(path, "/metrics" | "/health" | "/ready") {
        return ("404 Not Found", TEXT, "try /metrics, /health or /ready\n".into());
    }
    if method != "GET" {
        return ("405 Method Not Allowed", TEXT, "only GET\n".into());
    }
    match path {
        "/metrics" => ("200 OK", PROMETHEUS, admin.metrics().await),
        "/ready" if admin.ready() => ("200 OK", TEXT, "ready\n".into()),
        "/ready" => ("503 Service Unavailable", TEXT, "not ready\n".into()),
        _ => ("200 OK", TEXT, "ok\n".into()),
    }
}
