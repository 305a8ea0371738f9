//! Helpers for tests that speak the Kafka protocol to a real node directly: start a node, send
//! one request at a version the test chooses and decode its response (through `odradek-client`'s
//! framing), build batches with `odradek-records`.
#![allow(dead_code)] // each test file uses its own subset

pub mod cluster;
pub mod process;

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, FetchResponse, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::{HeaderVersion, Request, StrBytes};
use odradek_client::blocking::call_on;
use odradek_client::requests::{self, FetchLimits};
use odradek_records::{BatchParams, Codec, Record, build_batch};

pub struct Node {
    pub child: Child,
    pub port: u16,
    extra: Vec<String>,
    dir: tempfile::TempDir,
}

fn spawn_ready(dir: &std::path::Path, port: u16, extra: &[String]) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_odradek"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--smp", "2"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(extra)
        .env("ODRADEK_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start odradek");
    let rx = process::stdout_lines(&mut child);
    let line = rx.recv_timeout(Duration::from_secs(20)).expect("ready line");
    assert!(line.starts_with("odradek ready"), "{line}");
    child
}

impl Node {
    pub fn start() -> Node {
        Node::start_args(&[])
    }

    /// A node on a fresh data directory and a free port, with `extra` flags.
    pub fn start_args(extra: &[&str]) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let port =
            TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        let child = spawn_ready(dir.path(), port, &extra);
        Node { child, port, extra, dir }
    }

    /// SIGKILLs the node and starts it again on the same data directory and port.
    pub fn kill_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.restart();
    }

    /// Starts the node again (after it exited) on the same data directory and port.
    pub fn restart(&mut self) {
        self.child = spawn_ready(self.dir.path(), self.port, &self.extra);
    }

    /// Sends `sig` (as `kill` takes it, e.g. `-TERM`) to the node.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args([sig, &pid]).status().expect("kill").success();
        assert!(ok, "kill {sig} {pid}");
    }

    /// Waits for the node to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().expect("poll node") {
                return s;
            }
            assert!(std::time::Instant::now() < deadline, "node still running after {limit:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The node's data directory.
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        s
    }

    pub fn assert_alive(&mut self) {
        assert!(self.child.try_wait().expect("poll").is_none(), "the node exited");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Correlation id of every request a test sends (one at a time per connection).
const CORRELATION_ID: i32 = 7;

/// Sends one request at `version` and decodes its response.
pub fn call<Req, Resp>(s: &mut TcpStream, version: i16, req: &Req) -> Resp
where
    Req: Request<Response = Resp>,
    Resp: HeaderVersion,
{
    call_on(s, "bad-input-test", CORRELATION_ID, version, req).expect("request answered")
}

pub fn create_topic(s: &mut TcpStream, name: &str, configs: &[(&str, &str)]) {
    create_topic_with(s, name, 1, configs);
}

pub fn create_topic_with(s: &mut TcpStream, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name.to_owned())))
        .with_num_partitions(partitions)
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

pub fn batch(codec: Codec, values: &[&[u8]]) -> Bytes {
    batch_at(codec, 1_700_000_000_000, values)
}

/// An idempotent producer's batch: `values` from sequence `seq`.
pub fn idempotent_batch(producer_id: i64, epoch: i16, seq: i32, values: &[&[u8]]) -> Bytes {
    let records = records_of(values);
    let params = BatchParams {
        producer_id,
        producer_epoch: epoch,
        base_sequence: seq,
        ..BatchParams::simple(Codec::None, 1_700_000_000_000, records.len())
    };
    build_batch(&params, &records).expect("batch")
}

/// Records with `values`, no keys or headers.
pub fn records_of(values: &[&[u8]]) -> Vec<Record> {
    values
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
        .collect()
}

/// InitProducerId (v4) for an idempotent producer: (error code, producer id, epoch).
pub fn init_producer_id(s: &mut TcpStream) -> (i16, i64, i16) {
    init_producer_id_for(s, None)
}

/// InitProducerId (v4) with `transactional_id`: (error code, producer id, epoch).
pub fn init_producer_id_for(s: &mut TcpStream, transactional_id: Option<&str>) -> (i16, i64, i16) {
    use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};
    let req = InitProducerIdRequest::default()
        .with_transactional_id(
            transactional_id
                .map(|t| kafka_protocol::protocol::StrBytes::from_string(t.to_owned()).into()),
        )
        .with_transaction_timeout_ms(60_000);
    let resp: InitProducerIdResponse = call(s, 4, &req);
    (resp.error_code, resp.producer_id.0, resp.producer_epoch)
}

/// A batch whose records all carry `timestamp`.
pub fn batch_at(codec: Codec, timestamp: i64, values: &[&[u8]]) -> Bytes {
    let records = records_of(values);
    build_batch(&BatchParams::simple(codec, timestamp, records.len()), &records).expect("batch")
}

/// Produces `records` to partition 0 of `topic`; returns (error code, base offset).
pub fn produce(s: &mut TcpStream, version: i16, topic: &str, records: Bytes) -> (i16, i64) {
    produce_to(s, version, topic, 0, records)
}

/// Produces `records` to `partition` of `topic`; returns (error code, base offset).
pub fn produce_to(
    s: &mut TcpStream,
    version: i16,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> (i16, i64) {
    let req = requests::produce(requests::topic_name(topic), -1, 5000, [(partition, records)]);
    let resp: ProduceResponse = call(s, version, &req);
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// Fetches partition 0 of `topic` from `offset`: (error code, high watermark, record bytes).
pub fn fetch(s: &mut TcpStream, topic: &str, offset: i64) -> (i16, i64, usize) {
    let got = fetch_many(s, topic, &[(0, offset)], 1 << 20, 1 << 20);
    (got[0].1, got[0].2, got[0].3)
}

/// Fetches `(partition, offset)`s of `topic` (v11, no wait) within `max_bytes` and
/// `partition_max_bytes`: per partition (partition, error code, high watermark, record bytes).
pub fn fetch_many(
    s: &mut TcpStream,
    topic: &str,
    wanted: &[(i32, i64)],
    max_bytes: i32,
    partition_max_bytes: i32,
) -> Vec<(i32, i16, i64, usize)> {
    let limits = FetchLimits { max_wait_ms: 0, min_bytes: 1, max_bytes, partition_max_bytes };
    let req = requests::fetch(requests::topic_name(topic), wanted, limits);
    let resp: FetchResponse = call(s, 11, &req);
    resp.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| {
            let len = p.records.as_ref().map_or(0, Bytes::len);
            (p.partition_index, p.error_code, p.high_watermark, len)
        })
        .collect()
}

/// ListOffsets (v8) for partition 0 of `topic` at `timestamp`: (error code, timestamp, offset).
pub fn list_offset(s: &mut TcpStream, topic: &str, timestamp: i64) -> (i16, i64, i64) {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, ListOffsetsResponse};
    let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
        ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(timestamp)]),
    ]);
    let resp: ListOffsetsResponse = call(s, 8, &req);
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.timestamp, p.offset)
}
