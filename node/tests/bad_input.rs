//! Bad input against a real node: every refusal carries the right Kafka error code, nothing
//! of a refused request reaches a log, malformed frames close only their own connection, and
//! the node keeps serving real clients throughout.
//!
//! Requests are encoded here with kafka-protocol's client side (the point is to send what no
//! well-behaved client would); what the node stored is then checked through a real client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, FetchResponse, ProduceRequest,
    ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use odradek_storage::builder::{BatchParams, build_batch};
use odradek_storage::compression::Codec;
use odradek_storage::records::Record;

struct Node {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Node {
    fn start() -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let port =
            TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_odradek"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--smp", "2"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env("ODRADEK_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start odradek");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(20)).expect("ready line");
        assert!(line.starts_with("odradek ready"), "{line}");
        Node { child, port, _dir: dir }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        s
    }

    fn assert_alive(&mut self) {
        assert!(self.child.try_wait().expect("poll").is_none(), "the node exited");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one request and decodes its response.
fn call<Req, Resp>(s: &mut TcpStream, version: i16, req: &Req) -> Resp
where
    Req: Request + Encodable + HeaderVersion,
    Resp: Decodable,
{
    let header = RequestHeader::default()
        .with_request_api_key(Req::KEY)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("bad-input-test")));
    let mut buf = BytesMut::new();
    header.encode(&mut buf, Req::header_version(version)).expect("encode header");
    req.encode(&mut buf, version).expect("encode body");
    s.write_all(&(buf.len() as u32).to_be_bytes()).expect("write");
    s.write_all(&buf).expect("write");
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("response length");
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).expect("response body");
    let mut body = Bytes::from(body);
    let api = ApiKey::try_from(Req::KEY).expect("api key");
    let rh =
        ResponseHeader::decode(&mut body, api.response_header_version(version)).expect("header");
    assert_eq!(rh.correlation_id, 7);
    Resp::decode(&mut body, version).expect("decode response")
}

fn create_topic(s: &mut TcpStream, name: &str, configs: &[(&str, &str)]) {
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name.to_owned())))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string((*k).to_owned()))
                        .with_value(Some(StrBytes::from_string((*v).to_owned())))
                })
                .collect(),
        );
    let resp: CreateTopicsResponse =
        call(s, 7, &CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(5000));
    assert_eq!(resp.topics[0].error_code, 0, "{:?}", resp.topics[0].error_message);
}

fn batch(codec: Codec, values: &[&[u8]]) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            attributes: 0,
            timestamp_delta: 0,
            offset_delta: i as i32,
            key: None,
            value: Some(Bytes::copy_from_slice(v)),
            headers: Vec::new(),
        })
        .collect();
    build_batch(&BatchParams::simple(codec, 1_700_000_000_000, records.len()), &records)
        .expect("batch")
}

/// Produces `records` to partition 0 of `topic`; returns (error code, base offset).
fn produce(s: &mut TcpStream, version: i16, topic: &str, records: Bytes) -> (i16, i64) {
    let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![
        TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partition_data(vec![
                PartitionProduceData::default().with_index(0).with_records(Some(records)),
            ]),
    ]);
    let resp: ProduceResponse = call(s, version, &req);
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// Fetches partition 0 of `topic` from `offset`: (error code, high watermark, record bytes).
fn fetch(s: &mut TcpStream, topic: &str, offset: i64) -> (i16, i64, usize) {
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let resp: FetchResponse = call(s, 11, &req);
    let p = &resp.responses[0].partitions[0];
    (p.error_code, p.high_watermark, p.records.as_ref().map_or(0, Bytes::len))
}

const CORRUPT_MESSAGE: i16 = 2;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const MESSAGE_TOO_LARGE: i16 = 10;
const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
const INVALID_RECORD: i16 = 87;

#[test]
fn refused_batches_get_their_error_code_and_write_nothing() {
    let mut node = Node::start();
    let mut s = node.connect();
    create_topic(&mut s, "bad", &[("max.message.bytes", "2000")]);

    let good = batch(Codec::None, &[b"one", b"two"]);
    let mut flipped = BytesMut::from(&good[..]);
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    assert_eq!(produce(&mut s, 9, "bad", flipped.freeze()).0, CORRUPT_MESSAGE, "a wrong CRC");

    let mut short = BytesMut::from(&good[..]);
    short.truncate(good.len() - 3);
    // Kafka reads no complete batch out of it, so it is not "exactly one batch" either.
    assert_eq!(produce(&mut s, 9, "bad", short.freeze()).0, INVALID_RECORD, "a truncated batch");

    let mut two = BytesMut::from(&good[..]);
    two.extend_from_slice(&good);
    assert_eq!(
        produce(&mut s, 9, "bad", two.freeze()).0,
        INVALID_RECORD,
        "two batches in one partition"
    );

    let zstd = batch(Codec::Zstd, &[b"z"]);
    assert_eq!(
        produce(&mut s, 6, "bad", zstd.clone()).0,
        UNSUPPORTED_COMPRESSION_TYPE,
        "zstd before v7"
    );

    let big = vec![7u8; 4000];
    assert_eq!(produce(&mut s, 9, "bad", batch(Codec::None, &[&big])).0, MESSAGE_TOO_LARGE);

    assert_eq!(produce(&mut s, 9, "no-such-topic-", good.clone()).0, UNKNOWN_TOPIC_OR_PARTITION);

    // Nothing of the refused requests was written: the first good batch gets offset 0.
    assert_eq!(fetch(&mut s, "bad", 0), (0, 0, 0), "empty log");
    assert_eq!(produce(&mut s, 9, "bad", good.clone()), (0, 0));
    assert_eq!(produce(&mut s, 7, "bad", zstd), (0, 2), "zstd from v7 is fine");
    let (err, hw, bytes) = fetch(&mut s, "bad", 0);
    assert_eq!((err, hw), (0, 3));
    assert!(bytes > 0);
    assert_eq!(fetch(&mut s, "bad", 4).0, OFFSET_OUT_OF_RANGE, "past the end");
    assert_eq!(fetch(&mut s, "bad", 3), (0, 3, 0), "at the end: nothing yet");
    node.assert_alive();
}

/// Random frames with valid headers of served APIs and random bodies: each is answered or its
/// connection closed; the node stays up and serves a real client afterwards.
#[test]
fn random_bodies_never_take_the_node_down() {
    let mut node = Node::start();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let apis: [(i16, i16); 14] = [
        (0, 11),
        (1, 16),
        (10, 6),
        (2, 6),
        (3, 12),
        (18, 3),
        (19, 7),
        (20, 6),
        (21, 2),
        (23, 4),
        (32, 4),
        (37, 3),
        (44, 1),
        (60, 1),
    ];
    for i in 0..300i32 {
        let (api, max_version) = apis[(next() % apis.len() as u64) as usize];
        let version = (next() % (max_version as u64 + 1)) as i16;
        let body_len = (next() % 300) as usize;
        let mut frame = Vec::with_capacity(14 + body_len);
        frame.extend_from_slice(&api.to_be_bytes());
        frame.extend_from_slice(&version.to_be_bytes());
        frame.extend_from_slice(&i.to_be_bytes());
        frame.extend_from_slice(&(-1i16).to_be_bytes());
        frame.extend((0..body_len).map(|_| next() as u8));
        let mut s = node.connect();
        s.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        let mut wire = (frame.len() as u32).to_be_bytes().to_vec();
        wire.extend_from_slice(&frame);
        // The node may close before reading everything; either outcome is fine.
        let _ = s.write_all(&wire);
        let mut buf = [0u8; 256];
        let _ = s.read(&mut buf);
    }
    node.assert_alive();
    let out = Command::new("kcat")
        .args(["-b", &node.addr(), "-t", "after-fuzz", "-P", "-m", "15"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().expect("stdin").write_all(b"still here\n")?;
            c.wait_with_output()
        })
        .expect("kcat produce");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new("kcat")
        .args(["-b", &node.addr(), "-t", "after-fuzz", "-C", "-e", "-m", "15"])
        .output()
        .expect("kcat consume");
    assert!(String::from_utf8_lossy(&out.stdout).contains("still here"));
    node.assert_alive();
}
