//! The blocking transport: `std::net::TcpStream`s, one request at a time ([`Conn`]) or split
//! into a pipelined [`Writer`] and [`Reader`] for two threads (Kafka answers in request order).
//! Every byte it sends or parses goes through [`crate::proto`]; this module only moves them.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiVersionsRequest, CreateTopicsRequest, FetchResponse, InitProducerIdRequest,
    ListOffsetsRequest, MetadataRequest, ProduceResponse,
};
use kafka_protocol::protocol::{HeaderVersion, Request};

use crate::error::{ClientError, Result};
use crate::proto::{self, FRAME_PREFIX_BYTES, Versions};
use crate::requests::{self, FetchLimits, PartitionLeader};

/// How long a blocking read or write may wait before the connection is declared dead.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`Conn::ensure_topic`] waits for every partition to have a leader.
pub const TOPIC_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often [`Conn::ensure_topic`] asks again meanwhile.
const TOPIC_READY_POLL: Duration = Duration::from_millis(100);
/// Capacity of a pipelined writer's request buffer (it grows past it for larger requests).
const WRITER_BUFFER_BYTES: usize = 1 << 20;

/// Opens a TCP connection with TCP_NODELAY and [`IO_TIMEOUT`] on reads and writes.
///
/// # Errors
///
/// [`ClientError::Io`] if `addr` does not resolve or the connection fails.
pub fn connect_tcp(addr: &str) -> Result<TcpStream> {
    let sa = addr
        .to_socket_addrs()
        .map_err(ClientError::io(format!("resolving {addr}")))?
        .next()
        .ok_or_else(|| ClientError::Unexpected {
        what: format!("{addr} resolves to no address"),
    })?;
    let s = TcpStream::connect_timeout(&sa, CONNECT_TIMEOUT)
        .map_err(ClientError::io(format!("connecting to {addr}")))?;
    let setup = |s: &TcpStream| -> std::io::Result<()> {
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        s.set_write_timeout(Some(IO_TIMEOUT))
    };
    setup(&s).map_err(ClientError::io(format!("setting up the socket to {addr}")))?;
    Ok(s)
}

/// Reads one response frame and returns it without its length prefix.
///
/// # Errors
///
/// [`ClientError::Io`], or a length [`proto::frame_len`] refuses.
pub fn read_frame(stream: &mut impl Read) -> Result<Bytes> {
    let mut prefix = [0u8; FRAME_PREFIX_BYTES];
    stream.read_exact(&mut prefix).map_err(ClientError::io("reading a response length"))?;
    let len = proto::frame_len(prefix)?;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).map_err(ClientError::io("reading a response body"))?;
    Ok(Bytes::from(body))
}

/// Sends `req` at `version` with `correlation_id` over `stream` and reads its response: one
/// call on a stream the caller owns (tests that send versions or requests no well-behaved
/// client would).
///
/// # Errors
///
/// Any of [`proto::encode_request`], I/O, [`read_frame`], [`proto::decode_response`].
pub fn call_on<R: Request>(
    stream: &mut (impl Read + Write),
    client_id: &str,
    correlation_id: i32,
    version: i16,
    req: &R,
) -> Result<R::Response>
where
    R::Response: HeaderVersion,
{
    let mut buf = BytesMut::new();
    proto::encode_request(&mut buf, client_id, correlation_id, version, req)?;
    stream.write_all(&buf).map_err(ClientError::io("sending a request"))?;
    let frame = read_frame(stream)?;
    proto::decode_response::<R>(frame, correlation_id, version)
}

/// One broker connection used synchronously (one request at a time), with the versions
/// negotiated when it was opened.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    versions: Versions,
    addr: String,
    client_id: String,
    correlation_id: i32,
    buf: BytesMut,
}

impl Conn {
    /// Connects as [`proto::CLIENT_ID`]; see [`Conn::connect_as`].
    ///
    /// # Errors
    ///
    /// As [`Conn::connect_as`].
    pub fn connect(addr: &str) -> Result<Conn> {
        Conn::connect_as(addr, proto::CLIENT_ID)
    }

    /// Connects and negotiates versions with ApiVersions ([`proto::API_VERSIONS_FIRST`], or
    /// [`proto::API_VERSIONS_FALLBACK`] on a new connection if the broker refuses it).
    ///
    /// # Errors
    ///
    /// Connecting fails, or ApiVersions fails at both versions.
    pub fn connect_as(addr: &str, client_id: &str) -> Result<Conn> {
        let mut c = Conn {
            stream: connect_tcp(addr)?,
            versions: Versions::default(),
            addr: addr.to_owned(),
            client_id: client_id.to_owned(),
            correlation_id: 0,
            buf: BytesMut::with_capacity(4096),
        };
        let resp = match c.call_at(proto::API_VERSIONS_FIRST, &proto::api_versions_request()) {
            Ok(r) if r.error_code == 0 => r,
            _ => {
                c.stream = connect_tcp(addr)?;
                c.call_at(proto::API_VERSIONS_FALLBACK, &ApiVersionsRequest::default())?
            }
        };
        c.versions = Versions::from_response(&resp)?;
        Ok(c)
    }

    /// The versions negotiated with this broker.
    pub fn versions(&self) -> &Versions {
        &self.versions
    }

    /// The client id this connection sends.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The address this connection was opened to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `req` at `version` and waits for its response.
    ///
    /// # Errors
    ///
    /// Encoding, I/O, or decoding fails.
    pub fn call_at<R: Request>(&mut self, version: i16, req: &R) -> Result<R::Response>
    where
        R::Response: HeaderVersion,
    {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let id = self.correlation_id;
        proto::encode_request(&mut self.buf, &self.client_id, id, version, req)?;
        let addr = &self.addr;
        self.stream.write_all(&self.buf).map_err(ClientError::io(format!("sending to {addr}")))?;
        let frame = read_frame(&mut self.stream)?;
        proto::decode_response::<R>(frame, id, version)
    }

    /// Sends `req` at the negotiated version and waits for its response.
    ///
    /// # Errors
    ///
    /// No common version, or as [`Conn::call_at`].
    pub fn call<R: Request>(&mut self, req: &R) -> Result<R::Response>
    where
        R::Response: HeaderVersion,
    {
        let v = self.versions.pick::<R>()?;
        self.call_at(v, req)
    }

    /// Splits into a writer and a reader on the same socket, for pipelining from two threads.
    ///
    /// # Errors
    ///
    /// [`ClientError::Io`] if the socket cannot be cloned.
    pub fn split(self) -> Result<(Writer, Reader)> {
        let read = self.stream.try_clone().map_err(ClientError::io("cloning a socket"))?;
        let w = Writer {
            stream: self.stream,
            client_id: self.client_id,
            correlation_id: self.correlation_id,
            buf: BytesMut::with_capacity(WRITER_BUFFER_BYTES),
        };
        Ok((w, Reader { stream: read }))
    }

    /// The leaders of `topic`'s partitions, or `None` if it does not exist (never creates it).
    ///
    /// # Errors
    ///
    /// As [`Conn::call`], or the topic's error code.
    pub fn topic_leaders(&mut self, topic: &str) -> Result<Option<Vec<PartitionLeader>>> {
        let v = self.versions.pick::<MetadataRequest>()?;
        let resp = self.call_at(v, &requests::metadata(topic, v))?;
        requests::leaders(&resp, topic)
    }

    /// The leaders of `topic`, creating it with `partitions` partitions (replication 1) if
    /// absent, and waiting at most [`TOPIC_READY_TIMEOUT`] until every partition has one.
    ///
    /// # Errors
    ///
    /// As [`Conn::call`], a CreateTopics error, or [`ClientError::Unexpected`] on timeout.
    pub fn ensure_topic(&mut self, topic: &str, partitions: i32) -> Result<Vec<PartitionLeader>> {
        let deadline = Instant::now() + TOPIC_READY_TIMEOUT;
        let mut created = false;
        loop {
            match self.topic_leaders(topic)? {
                Some(l) if !l.is_empty() => return Ok(l),
                None if !created => {
                    let resp: <CreateTopicsRequest as Request>::Response =
                        self.call(&requests::create_topic(topic, partitions))?;
                    requests::check_created(&resp, topic)?;
                    tracing::info!(topic, partitions, "created topic");
                    created = true;
                }
                _ => {}
            }
            if Instant::now() > deadline {
                let what = format!(
                    "topic {topic} has no leader for every partition after {TOPIC_READY_TIMEOUT:?}"
                );
                return Err(ClientError::Unexpected { what });
            }
            std::thread::sleep(TOPIC_READY_POLL);
        }
    }

    /// Offsets of `partitions` of `topic` at `timestamp` (-2 earliest, -1 latest).
    ///
    /// # Errors
    ///
    /// As [`Conn::call`], or a partition's error code.
    pub fn list_offsets(
        &mut self,
        topic: &str,
        partitions: &[i32],
        timestamp: i64,
    ) -> Result<HashMap<i32, i64>> {
        let req: ListOffsetsRequest = requests::list_offsets(topic, partitions, timestamp);
        let resp = self.call(&req)?;
        requests::offsets(resp, topic, partitions.len())
    }

    /// An idempotent producer id and epoch from InitProducerId.
    ///
    /// # Errors
    ///
    /// As [`Conn::call`], or the answer's error code.
    pub fn init_producer_id(&mut self) -> Result<(i64, i16)> {
        let req: InitProducerIdRequest = requests::init_producer_id();
        let resp = self.call(&req)?;
        if resp.error_code != 0 {
            return Err(ClientError::broker("InitProducerId", resp.error_code));
        }
        Ok((resp.producer_id.0, resp.producer_epoch))
    }
}

impl Conn {
    /// Produces `batches` (partition, record batches built with `odradek-records`) to `topic`
    /// at the negotiated version and returns the answer (per-partition error codes and base
    /// offsets). With `acks` 0 the broker does not answer: use a [`Writer`] for that.
    ///
    /// # Errors
    ///
    /// As [`Conn::call`].
    pub fn produce(
        &mut self,
        topic: &str,
        acks: i16,
        timeout_ms: i32,
        batches: impl IntoIterator<Item = (i32, Bytes)>,
    ) -> Result<ProduceResponse> {
        self.call(&requests::produce(requests::topic_name(topic), acks, timeout_ms, batches))
    }

    /// Fetches `(partition, offset)`s of `topic` within `limits` at the negotiated version;
    /// decode the records with `odradek_records::BatchDecoder`.
    ///
    /// # Errors
    ///
    /// As [`Conn::call`], or the answer's top-level error code.
    pub fn fetch(
        &mut self,
        topic: &str,
        wanted: &[(i32, i64)],
        limits: FetchLimits,
    ) -> Result<FetchResponse> {
        let resp = self.call(&requests::fetch(requests::topic_name(topic), wanted, limits))?;
        if resp.error_code != 0 {
            return Err(ClientError::broker(format!("Fetch {topic}"), resp.error_code));
        }
        Ok(resp)
    }
}

/// The sending half of a pipelined connection.
#[derive(Debug)]
pub struct Writer {
    stream: TcpStream,
    client_id: String,
    correlation_id: i32,
    buf: BytesMut,
}

impl Writer {
    /// The correlation id the next [`Writer::send`] will use.
    pub fn next_correlation_id(&self) -> i32 {
        self.correlation_id.wrapping_add(1)
    }

    /// Sends `req` at `version` and returns its correlation id; the [`Reader`] receives the
    /// answer in request order.
    ///
    /// # Errors
    ///
    /// Encoding or I/O fails.
    pub fn send<R: Request>(&mut self, version: i16, req: &R) -> Result<i32> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        proto::encode_request(&mut self.buf, &self.client_id, self.correlation_id, version, req)?;
        self.stream.write_all(&self.buf).map_err(ClientError::io("sending a request"))?;
        Ok(self.correlation_id)
    }

    /// Shuts the socket down both ways (after a failed send), so that the [`Reader`] waiting on
    /// it fails at once instead of after [`IO_TIMEOUT`].
    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// The receiving half of a pipelined connection.
#[derive(Debug)]
pub struct Reader {
    stream: TcpStream,
}

impl Reader {
    /// Reads the next response, which must answer `correlation_id`, as `R` at `version`.
    ///
    /// # Errors
    ///
    /// I/O, framing or decoding fails, or the answer is to another request.
    pub fn recv<R: Request>(&mut self, correlation_id: i32, version: i16) -> Result<R::Response>
    where
        R::Response: HeaderVersion,
    {
        let frame = read_frame(&mut self.stream)?;
        proto::decode_response::<R>(frame, correlation_id, version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use kafka_protocol::messages::{MetadataResponse, ResponseHeader};
    use kafka_protocol::protocol::Encodable;

    /// A stream whose reads come from a prepared answer and whose writes are kept.
    struct Scripted {
        answer: std::io::Cursor<Vec<u8>>,
        sent: Vec<u8>,
    }

    impl Read for Scripted {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.answer.read(buf)
        }
    }

    impl Write for Scripted {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.sent.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn answer(correlation_id: i32, version: i16) -> Vec<u8> {
        let mut body = BytesMut::new();
        let header = ResponseHeader::default().with_correlation_id(correlation_id);
        header.encode(&mut body, MetadataResponse::header_version(version)).expect("header");
        MetadataResponse::default().encode(&mut body, version).expect("body");
        let mut frame = Vec::new();
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        frame
    }

    #[test]
    fn call_on_sends_one_frame_and_reads_its_answer() {
        let mut s = Scripted { answer: std::io::Cursor::new(answer(9, 12)), sent: Vec::new() };
        let resp = call_on(&mut s, "t", 9, 12, &MetadataRequest::default()).expect("answered");
        assert_eq!(resp, MetadataResponse::default());
        let len = proto::frame_len([s.sent[0], s.sent[1], s.sent[2], s.sent[3]]).expect("len");
        assert_eq!(len, s.sent.len() - FRAME_PREFIX_BYTES, "exactly one frame sent");
    }

    #[test]
    fn an_answer_to_another_request_is_refused() {
        let mut s = Scripted { answer: std::io::Cursor::new(answer(8, 12)), sent: Vec::new() };
        let err = call_on(&mut s, "t", 9, 12, &MetadataRequest::default());
        assert!(matches!(err, Err(ClientError::Correlation { expected: 9, found: 8 })), "{err:?}");
    }

    #[test]
    fn a_cut_answer_is_an_io_error() {
        let mut cut = answer(9, 12);
        cut.truncate(cut.len() - 1);
        let mut s = Scripted { answer: std::io::Cursor::new(cut), sent: Vec::new() };
        let err = call_on(&mut s, "t", 9, 12, &MetadataRequest::default());
        assert!(matches!(err, Err(ClientError::Io { .. })), "{err:?}");
    }
}
