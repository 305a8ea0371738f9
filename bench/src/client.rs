//! A minimal blocking Kafka client over `std::net::TcpStream`: framing, version negotiation
//! (ApiVersions), and the admin calls the load generator needs (Metadata, CreateTopics,
//! ListOffsets, InitProducerId). Request/response bodies use the `kafka-protocol` codecs.
//!
//! A connection can be split into a [`Writer`] and a [`Reader`] so one thread sends pipelined
//! requests while another reads the responses, which Kafka returns in request order.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, CreateTopicsRequest, InitProducerIdRequest, ListOffsetsRequest,
    MetadataRequest, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// Largest response frame accepted (bounds the read buffer).
pub const FRAME_BYTES_MAX: usize = 256 << 20;
/// How long a blocking read or write may wait before the connection is declared dead.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);
const CLIENT_ID: &str = "odradek-bench";

/// Highest version of each API this client speaks (all name-based, pre topic-id).
fn our_max(key: ApiKey) -> i16 {
    match key {
        ApiKey::Produce => 9,
        ApiKey::Fetch => 12,
        ApiKey::ListOffsets => 7,
        ApiKey::Metadata => 12,
        ApiKey::CreateTopics => 7,
        ApiKey::InitProducerId => 4,
        ApiKey::ApiVersions => 3,
        ApiKey::FindCoordinator => 3,
        ApiKey::JoinGroup => 7,
        ApiKey::SyncGroup => 5,
        ApiKey::Heartbeat => 4,
        ApiKey::OffsetCommit => 8,
        ApiKey::OffsetFetch => 7,
        ApiKey::LeaveGroup => 2,
        _ => 0,
    }
}

/// The API versions both sides speak, from the broker's ApiVersions answer.
#[derive(Debug, Clone, Default)]
pub struct Versions {
    ranges: HashMap<i16, (i16, i16)>,
}

impl Versions {
    /// The highest version of `R` both sides support.
    pub fn pick<R: Request>(&self) -> Result<i16> {
        let key = ApiKey::try_from(R::KEY).map_err(|_| anyhow!("unknown api key {}", R::KEY))?;
        let (bmin, bmax) = *self
            .ranges
            .get(&R::KEY)
            .ok_or_else(|| anyhow!("the broker does not support {key:?}"))?;
        let v = bmax.min(our_max(key)).min(R::VERSIONS.max);
        if v < bmin.max(R::VERSIONS.min) {
            bail!("no common version of {key:?}: broker {bmin}..={bmax}, client up to {v}");
        }
        Ok(v)
    }
}

/// Encodes a request frame (length, header, body) into `buf`, which is cleared first.
pub fn encode_request<R: Request>(
    buf: &mut BytesMut,
    correlation_id: i32,
    version: i16,
    req: &R,
) -> Result<()> {
    buf.clear();
    buf.extend_from_slice(&[0; 4]);
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    header.encode(buf, R::header_version(version)).context("encoding a request header")?;
    req.encode(buf, version).with_context(|| format!("encoding api {} v{version}", R::KEY))?;
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Reads one response frame (without its length prefix).
pub fn read_frame(stream: &mut TcpStream) -> Result<Bytes> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).context("reading a response length")?;
    let len = i32::from_be_bytes(len);
    let len = usize::try_from(len).map_err(|_| anyhow!("negative response length {len}"))?;
    if len > FRAME_BYTES_MAX {
        bail!("response of {len} bytes is larger than the limit {FRAME_BYTES_MAX}");
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).context("reading a response body")?;
    Ok(Bytes::from(body))
}

/// Decodes a response frame of `R` at `version`, checking the correlation id.
pub fn decode_response<R: Request>(
    mut frame: Bytes,
    correlation_id: i32,
    version: i16,
) -> Result<R::Response>
where
    R::Response: HeaderVersion,
{
    let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version))
        .context("decoding a response header")?;
    if header.correlation_id != correlation_id {
        bail!("response correlation id {} (expected {correlation_id})", header.correlation_id);
    }
    let resp = R::Response::decode(&mut frame, version)
        .with_context(|| format!("decoding the response of api {} v{version}", R::KEY))?;
    if frame.has_remaining() {
        tracing::debug!(api = R::KEY, trailing = frame.remaining(), "response has trailing bytes");
    }
    Ok(resp)
}

/// Opens a TCP connection with TCP_NODELAY and I/O timeouts.
pub fn connect_tcp(addr: &str) -> Result<TcpStream> {
    let sa = addr
        .to_socket_addrs()
        .with_context(|| format!("resolving {addr}"))?
        .next()
        .ok_or_else(|| anyhow!("{addr} resolves to no address"))?;
    let s = TcpStream::connect_timeout(&sa, Duration::from_secs(10))
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

/// One broker connection used synchronously (one request at a time).
#[derive(Debug)]
pub struct Conn {
    pub stream: TcpStream,
    pub versions: Versions,
    pub addr: String,
    correlation_id: i32,
    buf: BytesMut,
}

impl Conn {
    /// Connects and negotiates versions with ApiVersions (v3, or v0 if the broker refuses it).
    pub fn connect(addr: &str) -> Result<Conn> {
        let stream = connect_tcp(addr)?;
        let mut c = Conn {
            stream,
            versions: Versions::default(),
            addr: addr.to_owned(),
            correlation_id: 0,
            buf: BytesMut::with_capacity(4096),
        };
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let resp = match c.call_at(3, &req) {
            Ok(r) if r.error_code == 0 => r,
            _ => {
                // A broker that does not speak v3 answers in v0 (or closes): retry at v0.
                c.stream = connect_tcp(addr)?;
                c.call_at(0, &ApiVersionsRequest::default())?
            }
        };
        if resp.error_code != 0 {
            bail!("{addr}: ApiVersions error code {}", resp.error_code);
        }
        for k in resp.api_keys {
            c.versions.ranges.insert(k.api_key, (k.min_version, k.max_version));
        }
        Ok(c)
    }

    fn call_at<R: Request>(&mut self, version: i16, req: &R) -> Result<R::Response>
    where
        R::Response: HeaderVersion,
    {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let id = self.correlation_id;
        encode_request(&mut self.buf, id, version, req)?;
        self.stream.write_all(&self.buf).with_context(|| format!("sending to {}", self.addr))?;
        let frame = read_frame(&mut self.stream)?;
        decode_response::<R>(frame, id, version)
    }

    /// Sends `req` at the negotiated version and waits for its response.
    pub fn call<R: Request>(&mut self, req: &R) -> Result<R::Response>
    where
        R::Response: HeaderVersion,
    {
        let v = self.versions.pick::<R>()?;
        self.call_at(v, req)
    }

    /// Splits into a writer and a reader on the same socket.
    pub fn split(self) -> Result<(Writer, Reader)> {
        let read = self.stream.try_clone().context("cloning a socket")?;
        let w = Writer {
            stream: self.stream,
            correlation_id: self.correlation_id,
            buf: BytesMut::with_capacity(1 << 20),
        };
        Ok((w, Reader { stream: read }))
    }
}

/// The sending half of a pipelined connection.
#[derive(Debug)]
pub struct Writer {
    stream: TcpStream,
    correlation_id: i32,
    buf: BytesMut,
}

impl Writer {
    /// The correlation id the next `send` will use.
    pub fn next_correlation_id(&self) -> i32 {
        self.correlation_id.wrapping_add(1)
    }

    /// Sends `req` at `version` and returns its correlation id.
    pub fn send<R: Request>(&mut self, version: i16, req: &R) -> Result<i32> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        encode_request(&mut self.buf, self.correlation_id, version, req)?;
        self.stream.write_all(&self.buf).context("sending a request")?;
        Ok(self.correlation_id)
    }
}

/// The receiving half of a pipelined connection.
#[derive(Debug)]
pub struct Reader {
    pub stream: TcpStream,
}

/// A partition's leader address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLeader {
    pub partition: i32,
    pub addr: String,
}

/// Looks up `topic`; returns its partitions' leaders, or `None` if the topic does not exist.
pub fn topic_leaders(c: &mut Conn, topic: &str) -> Result<Option<Vec<PartitionLeader>>> {
    let t = MetadataRequestTopic::default()
        .with_name(Some(TopicName(StrBytes::from(topic.to_owned()))));
    let v = c.versions.pick::<MetadataRequest>()?;
    let mut req = MetadataRequest::default().with_topics(Some(vec![t]));
    if v >= 4 {
        // Never auto-create: the topic is created with the asked partition count.
        req = req.with_allow_auto_topic_creation(false);
    }
    let resp = c.call_at(v, &req)?;
    let brokers: HashMap<i32, String> = resp
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
        .collect();
    let Some(t) = resp.topics.into_iter().next() else { return Ok(None) };
    if t.error_code == 3 {
        return Ok(None); // UNKNOWN_TOPIC_OR_PARTITION
    }
    if t.error_code != 0 {
        bail!("metadata of {topic}: error code {}", t.error_code);
    }
    let mut out = Vec::with_capacity(t.partitions.len());
    for p in t.partitions {
        let addr = brokers.get(&p.leader_id.0).cloned();
        match addr {
            Some(addr) if p.error_code == 0 => {
                out.push(PartitionLeader { partition: p.partition_index, addr })
            }
            _ => return Ok(Some(Vec::new())), // leader not elected yet
        }
    }
    out.sort_by_key(|p| p.partition);
    Ok(Some(out))
}

/// Returns the leaders of `topic`, creating it with `partitions` partitions (replication 1) if
/// absent, and waiting (at most 30 s) until every partition has a leader.
pub fn ensure_topic(c: &mut Conn, topic: &str, partitions: i32) -> Result<Vec<PartitionLeader>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut created = false;
    loop {
        match topic_leaders(c, topic)? {
            Some(l) if !l.is_empty() => return Ok(l),
            None if !created => {
                let t = CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from(topic.to_owned())))
                    .with_num_partitions(partitions)
                    .with_replication_factor(1);
                let resp = c.call(
                    &CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(20_000),
                )?;
                for r in &resp.topics {
                    // 36 = TOPIC_ALREADY_EXISTS: another client created it meanwhile.
                    if r.error_code != 0 && r.error_code != 36 {
                        bail!("creating {topic}: error code {}", r.error_code);
                    }
                }
                tracing::info!(topic, partitions, "created topic");
                created = true;
            }
            _ => {}
        }
        if Instant::now() > deadline {
            bail!("topic {topic} has no leader for every partition after 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Offsets of `partitions` of `topic` at `timestamp` (-2 earliest, -1 latest).
pub fn list_offsets(
    c: &mut Conn,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
) -> Result<HashMap<i32, i64>> {
    let parts = partitions
        .iter()
        .map(|&p| ListOffsetsPartition::default().with_partition_index(p).with_timestamp(timestamp))
        .collect();
    let t = ListOffsetsTopic::default()
        .with_name(TopicName(StrBytes::from(topic.to_owned())))
        .with_partitions(parts);
    let resp = c.call(&ListOffsetsRequest::default().with_topics(vec![t]))?;
    let mut out = HashMap::new();
    for t in resp.topics {
        for p in t.partitions {
            if p.error_code != 0 {
                bail!("ListOffsets {topic}/{}: error code {}", p.partition_index, p.error_code);
            }
            out.insert(p.partition_index, p.offset);
        }
    }
    if out.len() != partitions.len() {
        bail!("ListOffsets {topic}: {} of {} partitions answered", out.len(), partitions.len());
    }
    Ok(out)
}

/// An idempotent producer id and epoch from InitProducerId.
pub fn init_producer_id(c: &mut Conn) -> Result<(i64, i16)> {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000);
    let resp = c.call(&req)?;
    if resp.error_code != 0 {
        bail!("InitProducerId: error code {}", resp.error_code);
    }
    Ok((resp.producer_id.0, resp.producer_epoch))
}
