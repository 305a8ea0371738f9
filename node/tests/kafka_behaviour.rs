//! Kafka behaviour that clients rely on, checked against a real `odradek serve` process: the
//! cluster id kept in `meta.properties`, null `error_message`s on success, AlterConfigs, the
//! broker's DescribeConfigs, keyless records on compacted topics.
//!
//! Each test starts its own node on a free loopback port and its own data directory. Protocol
//! details are checked with raw requests (`common::call`); what a client sees, with a real client
//! (`tests/clients/behaviour.py`, confluent-kafka and kafka-python). Every wait is bounded: the
//! node's ready line or exit, each client process.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeClusterRequest, DescribeClusterResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use common::call;
use common::process::wait_bounded;

/// Bound on the node's ready line, and on its exit when it refuses to start.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on one client process.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(45);
/// Kafka's `ConfigResource.Type`.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// A node process on a data directory the test chooses; killed (by PID) when dropped.
struct Proc {
    child: Child,
    port: u16,
}

/// How a start ended: ready, or the process exited with its stderr.
enum Started {
    Ready(Proc),
    Exited(ExitStatus, String),
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port()
}

/// Starts `odradek serve` on `data_dir` and waits (bounded) for its ready line or its exit.
fn start(data_dir: &Path) -> Started {
    start_with(data_dir, &[])
}

/// [`start`] with `extra` flags.
fn start_with(data_dir: &Path, extra: &[&str]) -> Started {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_odradek"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--smp", "2"])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env("ODRADEK_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start odradek");
    let stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (etx, erx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        let _ = etx.send(text);
    });
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(line) => {
            assert!(line.starts_with("odradek ready"), "{line}");
            Started::Ready(Proc { child, port })
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let status = wait_bounded(&mut child, START_TIMEOUT);
            let text = erx.recv_timeout(START_TIMEOUT).unwrap_or_default();
            Started::Exited(status, text)
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no ready line within {START_TIMEOUT:?}");
        }
    }
}

fn start_ready(data_dir: &Path) -> Proc {
    match start(data_dir) {
        Started::Ready(p) => p,
        Started::Exited(status, stderr) => panic!("node exited ({status}): {stderr}"),
    }
}

impl Proc {
    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        s
    }

    /// SIGTERM, then a bounded wait for the exit.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        wait_bounded(&mut self.child, Duration::from_secs(15));
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `tests/clients/behaviour.py <mode> <args>` against `addr`; asserts it succeeded and
/// returns its stdout.
fn client(addr: &str, mode: &str, args: &[&str]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/behaviour.py");
    let mut child = Command::new("python3")
        .arg(&path)
        .args(["--bootstrap", addr, mode])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = wait_bounded(&mut child, CLIENT_TIMEOUT);
    let (out, err) = (out.join().expect("join"), err.join().expect("join"));
    assert!(status.success(), "behaviour.py {mode} {args:?} failed ({status})\n{out}\n{err}");
    out
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// `key=value` lines of a properties file.
fn properties(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .expect("read properties")
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

fn meta_cluster_id(data_dir: &Path) -> String {
    let props = properties(&data_dir.join("meta.properties"));
    let get = |k: &str| props.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    assert_eq!(get("version").as_deref(), Some("1"), "{props:?}");
    assert_eq!(get("node.id").as_deref(), Some("0"), "{props:?}");
    get("cluster.id").expect("cluster.id")
}

fn described_cluster_id(node: &Proc) -> String {
    let resp: DescribeClusterResponse =
        call(&mut node.connect(), 0, &DescribeClusterRequest::default());
    resp.cluster_id.to_string()
}

fn data_dir(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("data")
}

// ---- The cluster id in meta.properties ----

#[test]
fn the_cluster_id_is_generated_once_kept_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start_ready(&data_dir(&dir));
    let id = meta_cluster_id(&data_dir(&dir));
    assert_eq!(id.len(), 22, "a base64url UUID: {id}");
    assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{id}");
    assert_eq!(described_cluster_id(&node), id, "DescribeCluster");
    let seen = client(&node.addr(), "cluster-id", &[]);
    assert!(seen.contains(&format!("confluent cluster id {id}")), "{seen}");
    node.stop();

    let node = start_ready(&data_dir(&dir));
    assert_eq!(meta_cluster_id(&data_dir(&dir)), id, "kept across a restart");
    assert_eq!(described_cluster_id(&node), id, "reported after a restart");
    node.stop();

    let other = tempfile::tempdir().expect("tempdir");
    let node = start_ready(&data_dir(&other));
    let other_id = meta_cluster_id(&data_dir(&other));
    assert_ne!(other_id, id, "a fresh data directory gets its own id");
    assert_eq!(described_cluster_id(&node), other_id);
}

#[test]
fn a_data_directory_without_meta_properties_gets_one_and_keeps_its_topics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start_ready(&data_dir(&dir));
    common::create_topic(&mut node.connect(), "kept", &[]);
    let seen = client(&node.addr(), "cluster-id", &[]);
    assert!(seen.contains("topic kept"), "{seen}");
    node.stop();
    // An older node's data directory: its topics in topics.json, no meta.properties and no
    // controller quorum. The topic's id is not known here, so any id will do.
    let data = data_dir(&dir);
    std::fs::remove_file(data.join("meta.properties")).expect("remove meta.properties");
    std::fs::remove_dir_all(data.join("controller")).expect("remove the quorum's files");
    let catalogue = r#"{"topics":{"kept":{"name":"kept","id":"00000000-0000-0000-0000-00000000abcd","shards":[0],"configs":{}}}}"#;
    std::fs::write(data.join("topics.json"), catalogue).expect("write topics.json");

    let node = start_ready(&data_dir(&dir));
    let id = meta_cluster_id(&data_dir(&dir));
    assert_eq!(described_cluster_id(&node), id);
    let seen = client(&node.addr(), "cluster-id", &[]);
    assert!(seen.contains(&format!("confluent cluster id {id}")), "{seen}");
    assert!(seen.contains("topic kept"), "the topics are kept: {seen}");
}

#[test]
fn a_meta_properties_of_another_node_refuses_the_start_and_is_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = data_dir(&dir);
    std::fs::create_dir_all(&data).expect("mkdir");
    let text = "#\nversion=1\ncluster.id=MkU3OEVBNTcwNTJENDM2Qg\nnode.id=7\n";
    std::fs::write(data.join("meta.properties"), text).expect("write");
    match start(&data) {
        Started::Ready(_) => panic!("a node started on another node's data directory"),
        Started::Exited(status, stderr) => {
            assert!(!status.success(), "{status}");
            assert!(
                stderr.contains("belongs to node 7") && stderr.contains("node 0"),
                "a clear message: {stderr}"
            );
        }
    }
    let after = std::fs::read_to_string(data.join("meta.properties")).expect("read");
    assert_eq!(after, text, "the file is not changed");
}

#[test]
fn the_node_id_and_rack_are_kept_and_given_to_clients() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = data_dir(&dir);
    let node = match start_with(&data, &["--node-id", "7", "--rack", "r1"]) {
        Started::Ready(p) => p,
        Started::Exited(status, stderr) => panic!("node exited ({status}): {stderr}"),
    };
    let meta = std::fs::read_to_string(data.join("meta.properties")).expect("read");
    assert!(meta.lines().any(|l| l == "node.id=7"), "{meta}");
    let seen = client(&node.addr(), "brokers", &[]);
    assert!(seen.lines().any(|l| l == "confluent broker 7"), "{seen}");
    assert!(seen.lines().any(|l| l == "kafka-python broker 7 rack r1"), "{seen}");
    let configs = client(&node.addr(), "broker-configs", &["7", "0"]);
    for line in ["node.id=7 source=4", "broker.id=7 source=4", "broker.rack=r1 source=4"] {
        let line = format!("confluent {line} read_only=True");
        assert!(configs.lines().any(|l| l == line), "missing `{line}` in\n{configs}");
    }
    node.stop();
    // The id is the data directory's: another one is refused, and the file is left alone.
    match start_with(&data, &["--node-id", "8"]) {
        Started::Ready(_) => panic!("node 8 started on node 7's data directory"),
        Started::Exited(status, stderr) => {
            assert!(!status.success(), "{status}");
            assert!(stderr.contains("belongs to node 7"), "a clear message: {stderr}");
        }
    }
    assert_eq!(std::fs::read_to_string(data.join("meta.properties")).expect("read"), meta);
}

// ---- Null error messages on success ----

#[test]
fn admin_responses_carry_a_null_error_message_on_success() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start_ready(&data_dir(&dir));
    let mut s = node.connect();
    for version in [2, 5, 7] {
        let name = format!("nulls-v{version}");
        let topic = CreatableTopic::default()
            .with_name(TopicName(str_bytes(&name)))
            .with_num_partitions(1)
            .with_replication_factor(1);
        let resp: CreateTopicsResponse = call(
            &mut s,
            version,
            &CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(5000),
        );
        assert_eq!(resp.topics[0].error_code, 0, "CreateTopics v{version}");
        assert_eq!(resp.topics[0].error_message, None, "CreateTopics v{version}");
    }
    let resource = |t: i8, name: &str| {
        DescribeConfigsResource::default()
            .with_resource_type(t)
            .with_resource_name(str_bytes(name))
            .with_configuration_keys(None)
    };
    for version in [1, 4] {
        let resp: DescribeConfigsResponse = call(
            &mut s,
            version,
            &DescribeConfigsRequest::default().with_resources(vec![
                resource(RESOURCE_TOPIC, "nulls-v7"),
                resource(RESOURCE_BROKER, "0"),
            ]),
        );
        for r in &resp.results {
            assert_eq!((r.error_code, &r.error_message), (0, &None), "DescribeConfigs v{version}");
        }
    }
    for version in [0, 1] {
        let alter = AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(str_bytes("nulls-v7"))
            .with_configs(vec![
                AlterableConfig::default()
                    .with_name(str_bytes("retention.ms"))
                    .with_config_operation(0)
                    .with_value(Some(str_bytes("60000"))),
            ]);
        let resp: IncrementalAlterConfigsResponse = call(
            &mut s,
            version,
            &IncrementalAlterConfigsRequest::default().with_resources(vec![alter]),
        );
        let r = &resp.responses[0];
        assert_eq!((r.error_code, &r.error_message), (0, &None), "IncrementalAlterConfigs");
    }
    for (version, name) in [(5, "nulls-v2"), (6, "nulls-v5")] {
        let req = if version >= 6 {
            DeleteTopicsRequest::default().with_topics(vec![
                DeleteTopicState::default().with_name(Some(TopicName(str_bytes(name)))),
            ])
        } else {
            DeleteTopicsRequest::default().with_topic_names(vec![TopicName(str_bytes(name))])
        };
        let resp: DeleteTopicsResponse = call(&mut s, version, &req.with_timeout_ms(5000));
        let r = &resp.responses[0];
        assert_eq!((r.error_code, &r.error_message), (0, &None), "DeleteTopics v{version}");
    }
    let out = client(&node.addr(), "admin-success", &[]);
    assert!(out.contains("kafka-python ok") && out.contains("confluent ok"), "{out}");
}

// ---- DescribeConfigs for the broker ----

#[test]
fn the_broker_configs_are_described_under_kafkas_names_with_their_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("odradek.toml");
    std::fs::write(
        &file,
        "connections_max_idle_ms = 120000\ngroup_initial_rebalance_delay_ms = 0\n\
         max_connections_per_ip_overrides = \"127.0.0.9:5,[::1]:7\"\n",
    )
    .expect("write config");
    let file_arg = file.display().to_string();
    let node =
        match start_with(&data_dir(&dir), &["--default-partitions", "3", "--config", &file_arg]) {
            Started::Ready(p) => p,
            Started::Exited(status, stderr) => panic!("node exited ({status}): {stderr}"),
        };
    let out = client(&node.addr(), "broker-configs", &["0", "1"]);
    let data = data_dir(&dir).display().to_string();
    let (static_, default) = (4, 5);
    let expected = [
        ("log.dirs", data.as_str(), static_),
        ("listeners", &format!("PLAINTEXT://{}", node.addr()), static_),
        ("num.partitions", "3", static_),
        ("connections.max.idle.ms", "120000", static_),
        ("group.initial.rebalance.delay.ms", "0", static_),
        ("max.connections.per.ip.overrides", "127.0.0.9:5,[::1]:7", static_),
        ("max.connections.per.ip", "2147483647", default),
        ("advertised.listeners", &format!("PLAINTEXT://{}", node.addr()), default),
        ("broker.id", "0", default),
        ("node.id", "0", default),
        ("auto.create.topics.enable", "true", default),
        ("log.retention.ms", "604800000", default),
        ("log.segment.bytes", "1073741824", default),
        ("socket.request.max.bytes", "104857600", default),
        ("offsets.retention.minutes", "10080", default),
        ("auto.leader.rebalance.enable", "true", default),
        ("leader.imbalance.check.interval.seconds", "300", default),
    ];
    for (name, value, source) in expected {
        let line = format!("confluent {name}={value} source={source} read_only=True");
        assert!(out.lines().any(|l| l == line), "missing `{line}` in\n{out}");
        let kp = if source == static_ { "STATIC_BROKER_CONFIG" } else { "DEFAULT_CONFIG" };
        let line = format!("kafka-python {name}={value} source={kp}");
        assert!(out.lines().any(|l| l == line), "missing `{line}` in\n{out}");
    }
    assert!(out.contains("confluent broker 1 refused"), "{out}");

    // Raw: another broker's id is INVALID_REQUEST (as Kafka); "" is this node's defaults view.
    let resource = |name: &str, keys: Option<Vec<StrBytes>>| {
        DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_BROKER)
            .with_resource_name(str_bytes(name))
            .with_configuration_keys(keys)
    };
    let resp: DescribeConfigsResponse = call(
        &mut node.connect(),
        4,
        &DescribeConfigsRequest::default().with_resources(vec![
            resource("1", None),
            resource("x", None),
            resource("", Some(vec![str_bytes("node.id")])),
        ]),
    );
    let codes: Vec<i16> = resp.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, [42, 42, 0], "INVALID_REQUEST for brokers that are not this node");
    assert!(resp.results[0].error_message.is_some());
    let only: Vec<&str> = resp.results[2].configs.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(only, ["node.id"], "configuration_keys filters");
}

// ---- AlterConfigs (API 33), the whole-set form ----

/// AlterConfigs of one resource with `configs` (a `None` value is a null); its (code, message).
fn alter_whole(
    s: &mut TcpStream,
    version: i16,
    resource_type: i8,
    name: &str,
    configs: &[(&str, Option<&str>)],
    validate_only: bool,
) -> (i16, Option<String>) {
    use kafka_protocol::messages::alter_configs_request::{
        AlterConfigsResource as WholeResource, AlterableConfig as WholeConfig,
    };
    use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
    let resource = WholeResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(str_bytes(name))
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    WholeConfig::default().with_name(str_bytes(k)).with_value(v.map(str_bytes))
                })
                .collect(),
        );
    let req = AlterConfigsRequest::default()
        .with_resources(vec![resource])
        .with_validate_only(validate_only);
    let resp: AlterConfigsResponse = call(s, version, &req);
    let r = &resp.responses[0];
    assert_eq!((r.resource_type, r.resource_name.as_str()), (resource_type, name));
    (r.error_code, r.error_message.as_ref().map(|m| m.to_string()))
}

/// A topic's (value, config_source) of `keys`, by DescribeConfigs.
fn topic_configs(s: &mut TcpStream, topic: &str, keys: &[&str]) -> Vec<(String, i8)> {
    let resource = DescribeConfigsResource::default()
        .with_resource_type(RESOURCE_TOPIC)
        .with_resource_name(str_bytes(topic))
        .with_configuration_keys(Some(keys.iter().map(|k| str_bytes(k)).collect()));
    let resp: DescribeConfigsResponse =
        call(s, 4, &DescribeConfigsRequest::default().with_resources(vec![resource]));
    keys.iter()
        .map(|k| {
            let c = resp.results[0]
                .configs
                .iter()
                .find(|c| c.name.as_str() == *k)
                .unwrap_or_else(|| panic!("no {k}"));
            (c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(), c.config_source)
        })
        .collect()
}

#[test]
fn alter_configs_replaces_the_whole_set_of_a_topics_configs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start_ready(&data_dir(&dir));
    let mut s = node.connect();
    let keys = ["retention.ms", "cleanup.policy", "segment.bytes"];
    let (set, default) = (1, 5);
    for version in [0, 1, 2] {
        let topic = format!("whole-v{version}");
        common::create_topic(
            &mut s,
            &topic,
            &[("retention.ms", "1000"), ("cleanup.policy", "compact")],
        );
        let before = topic_configs(&mut s, &topic, &keys);
        let given = [("segment.bytes", Some("1048576"))];
        let checked = alter_whole(&mut s, version, RESOURCE_TOPIC, &topic, &given, true);
        assert_eq!(checked, (0, None), "validate_only v{version}");
        assert_eq!(topic_configs(&mut s, &topic, &keys), before, "validate_only changes nothing");

        // Refusals leave the configs as they were.
        let bad = [("segment.bytes", Some("1048576")), ("retention.ms", Some("soon"))];
        let refused = alter_whole(&mut s, version, RESOURCE_TOPIC, &topic, &bad, false);
        assert_eq!(refused.0, 40, "INVALID_CONFIG: {refused:?}");
        let unknown = [("preallocate", Some("true"))];
        let refused = alter_whole(&mut s, version, RESOURCE_TOPIC, &topic, &unknown, false);
        assert_eq!(refused.0, 40, "INVALID_CONFIG for a key this node ignores: {refused:?}");
        let null = [("retention.ms", None)];
        let refused = alter_whole(&mut s, version, RESOURCE_TOPIC, &topic, &null, false);
        assert_eq!(refused.0, 42, "INVALID_REQUEST for a null value: {refused:?}");
        assert_eq!(topic_configs(&mut s, &topic, &keys), before, "refusals change nothing");

        let done = alter_whole(&mut s, version, RESOURCE_TOPIC, &topic, &given, false);
        assert_eq!(done, (0, None), "v{version}");
        let after = topic_configs(&mut s, &topic, &keys);
        let expected = [
            ("604800000".to_owned(), default),
            ("delete".to_owned(), default),
            ("1048576".to_owned(), set),
        ];
        assert_eq!(after, expected, "keys not given return to their defaults");
    }
    let broker =
        alter_whole(&mut s, 1, RESOURCE_BROKER, "0", &[("num.partitions", Some("2"))], false);
    assert_eq!(broker.0, 42, "INVALID_REQUEST: broker settings are read-only: {broker:?}");
    let missing = alter_whole(&mut s, 1, RESOURCE_TOPIC, "nope", &[], false);
    assert_eq!(missing.0, 3, "UNKNOWN_TOPIC_OR_PARTITION: {missing:?}");

    common::create_topic(&mut s, "whole-kp", &[]);
    let out = client(&node.addr(), "whole-set-alter", &["whole-kp"]);
    assert!(out.contains("kafka-python retention.ms=3600000"), "{out}");
    assert_eq!(topic_configs(&mut s, "whole-kp", &["retention.ms"]), [("3600000".to_owned(), set)]);
}

// ---- Keyless records on compacted topics ----

/// A batch of records with `keys` (`None`: no key), each with a value.
fn keyed_batch(keys: &[Option<&str>]) -> bytes::Bytes {
    use odradek_storage::builder::{BatchParams, build_batch};
    use odradek_storage::compression::Codec;
    use odradek_storage::records::Record;
    let records: Vec<Record> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| Record {
            attributes: 0,
            timestamp_delta: 0,
            offset_delta: i as i32,
            key: k.map(|k| bytes::Bytes::copy_from_slice(k.as_bytes())),
            value: Some(bytes::Bytes::from_static(b"value")),
            headers: Vec::new(),
        })
        .collect();
    let params = BatchParams::simple(Codec::Lz4, 1_700_000_000_000, records.len());
    build_batch(&params, &records).expect("batch")
}

/// Produce of `records` to partition 0 of `topic`: the partition's response.
fn produce_partition(
    s: &mut TcpStream,
    version: i16,
    topic: &str,
    records: bytes::Bytes,
) -> kafka_protocol::messages::produce_response::PartitionProduceResponse {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
    let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![
        TopicProduceData::default().with_name(TopicName(str_bytes(topic))).with_partition_data(
            vec![PartitionProduceData::default().with_index(0).with_records(Some(records))],
        ),
    ]);
    let mut resp: ProduceResponse = call(s, version, &req);
    resp.responses.remove(0).partition_responses.remove(0)
}

#[test]
fn a_record_without_a_key_is_refused_by_a_compacted_topic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start_ready(&data_dir(&dir));
    let mut s = node.connect();
    common::create_topic(&mut s, "compacted", &[("cleanup.policy", "compact,delete")]);
    common::create_topic(&mut s, "plain", &[]);

    // Raw, compressed: the whole batch is refused, each keyless record named by its index.
    for version in [8, 9, 11] {
        let r =
            produce_partition(&mut s, version, "compacted", keyed_batch(&[Some("a"), None, None]));
        assert_eq!(r.error_code, 87, "INVALID_RECORD v{version}");
        let indexes: Vec<i32> = r.record_errors.iter().map(|e| e.batch_index).collect();
        assert_eq!(indexes, [1, 2], "v{version}");
        assert!(r.record_errors.iter().all(|e| e.batch_index_error_message.is_some()));
        assert!(r.error_message.is_some(), "v{version}");
    }
    let r = produce_partition(&mut s, 7, "compacted", keyed_batch(&[None]));
    assert_eq!((r.error_code, r.record_errors.len()), (87, 0), "v7 has no record_errors");
    let (code, hw, _) = common::fetch(&mut s, "compacted", 0);
    assert_eq!((code, hw), (0, 0), "nothing of the refused batches was written");
    let r = produce_partition(&mut s, 9, "plain", keyed_batch(&[None]));
    assert_eq!((r.error_code, r.base_offset), (0, 0), "keys are optional elsewhere");
    let r = produce_partition(&mut s, 9, "compacted", keyed_batch(&[Some("a"), Some("b")]));
    assert_eq!((r.error_code, r.base_offset, r.error_message), (0, 0, None));
    let (_, hw, _) = common::fetch(&mut s, "compacted", 0);
    assert_eq!(hw, 2);

    common::create_topic(&mut s, "compacted-client", &[("cleanup.policy", "compact")]);
    let out = client(&node.addr(), "compacted-keys", &["compacted-client"]);
    assert!(out.contains("keyless refused: INVALID_RECORD"), "{out}");
    let (_, hw, _) = common::fetch(&mut s, "compacted-client", 0);
    assert_eq!(hw, 2, "only the two keyed records are in the log");
}
