//! A cluster of real `odradek serve` processes for node-level cluster tests.
//!
//! Node `i` (1-based) listens on `127.0.0.{i+1}` (Kafka port and controller port, both free
//! ports picked by binding port 0 on that address), has its own temporary data directory, and
//! is started with `--node-id i --controller-quorum-voters 1@…,2@…,3@…`. Each process's stderr
//! (`ODRADEK_LOG=info`) is kept in memory, across restarts, and printed when a test panics.
//!
//! Every wait is bounded: the ready line, a process's exit, every poll ([`wait_until`]).
//! Processes are signalled by PID with `kill`; dropping the [`Cluster`] SIGKILLs every child.
//! Cluster tests take a process-wide lock, so within one test binary they run one at a time
//! (three processes per test on a 2-core machine, and timing-sensitive checks such as fencing).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, DescribeQuorumRequest, DescribeQuorumResponse,
    MetadataRequest, MetadataResponse,
};
use kafka_protocol::protocol::{HeaderVersion, Request, StrBytes};
use odradek_client::blocking::{call_on, connect_tcp};
use odradek_client::requests;

/// Bound on a node's `odradek ready` line after it was started.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on a node's exit after SIGTERM (the node promises 10 s; the machine is slow).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on a formed cluster: every broker in every node's Metadata.
pub const FORM_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a wait polls.
pub const POLL: Duration = Duration::from_millis(100);
/// stderr lines kept per node (all incarnations together).
const LOG_LINES_KEPT: usize = 20_000;
/// stderr lines of each node printed when a test panics.
const LOG_LINES_SHOWN: usize = 80;
/// Metadata version the harness asks at (topic ids, racks, controller id).
pub const METADATA_VERSION: i16 = 12;
/// CreateTopics version the harness sends.
pub const CREATE_TOPICS_VERSION: i16 = 7;
/// Kafka's DescribeQuorum.
pub const DESCRIBE_QUORUM_KEY: i16 = 55;
/// The metadata log's topic, as DescribeQuorum names it.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
/// Kafka's `ConfigResource.Type` of a topic.
const RESOURCE_TOPIC: i8 = 2;
const CLIENT_ID: &str = "cluster-test";

/// Serializes cluster tests within one test binary.
static CLUSTER_LOCK: Mutex<()> = Mutex::new(());

/// The loopback address of node `id` (1-based): 127.0.0.2, 127.0.0.3, 127.0.0.4, …
pub fn host_of(id: i32) -> String {
    format!("127.0.0.{}", id + 1)
}

/// A free port on `host` (bound on port 0, then closed).
pub fn free_port(host: &str) -> u16 {
    TcpListener::bind((host, 0))
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("bind {host}:0: {e}"))
        .port()
}

/// Polls `f` every [`POLL`] until it returns `Ok`, at most `limit`; panics with `what` and the
/// last `Err` (what was observed) otherwise.
pub fn wait_until<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match f() {
            Ok(v) => return v,
            Err(seen) => {
                assert!(
                    Instant::now() < deadline,
                    "{what}: not within {limit:?}; last seen: {seen}"
                );
            }
        }
        std::thread::sleep(POLL);
    }
}

/// One request on a fresh connection to `addr`; a connection or protocol failure is an `Err`.
pub fn call_addr<Req, Resp>(addr: &str, version: i16, req: &Req) -> Result<Resp, String>
where
    Req: Request<Response = Resp>,
    Resp: HeaderVersion,
{
    let mut s = connect_tcp(addr).map_err(|e| format!("{addr}: {e}"))?;
    call_on(&mut s, CLIENT_ID, 1, version, req).map_err(|e| format!("{addr}: {e}"))
}

/// The highest version of `api_key` the broker at `addr` supports, `None` if it lacks it.
pub fn max_version(addr: &str, api_key: i16) -> Result<Option<i16>, String> {
    let resp: ApiVersionsResponse = call_addr(addr, 3, &ApiVersionsRequest::default())?;
    if resp.error_code != 0 {
        return Err(format!("{addr}: ApiVersions error {}", resp.error_code));
    }
    Ok(resp.api_keys.iter().find(|k| k.api_key == api_key).map(|k| k.max_version))
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// A broker as Metadata lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Broker {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl Broker {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One partition as Metadata lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub index: i32,
    pub error_code: i16,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// One topic as Metadata lists it, partitions in index order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub error_code: i16,
    pub id: uuid::Uuid,
    pub partitions: Vec<PartitionInfo>,
}

/// A Metadata answer, decoded.
#[derive(Debug, Clone)]
pub struct Meta {
    pub brokers: Vec<Broker>,
    pub controller_id: i32,
    pub cluster_id: Option<String>,
    pub topics: BTreeMap<String, TopicInfo>,
}

impl Meta {
    pub fn broker_ids(&self) -> Vec<i32> {
        self.brokers.iter().map(|b| b.id).collect()
    }

    /// What must survive restarts: per topic, its id and each partition's replicas.
    pub fn assignment(&self) -> BTreeMap<String, (uuid::Uuid, Vec<Vec<i32>>)> {
        self.topics
            .iter()
            .map(|(n, t)| {
                (n.clone(), (t.id, t.partitions.iter().map(|p| p.replicas.clone()).collect()))
            })
            .collect()
    }
}

fn decode_meta(resp: MetadataResponse) -> Meta {
    let mut brokers: Vec<Broker> = resp
        .brokers
        .iter()
        .map(|b| Broker {
            id: b.node_id.0,
            host: b.host.to_string(),
            port: b.port,
            rack: b.rack.as_ref().map(|r| r.to_string()),
        })
        .collect();
    brokers.sort();
    let topics = resp
        .topics
        .iter()
        .map(|t| {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            let mut partitions: Vec<PartitionInfo> = t
                .partitions
                .iter()
                .map(|p| PartitionInfo {
                    index: p.partition_index,
                    error_code: p.error_code,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.iter().map(|r| r.0).collect(),
                    isr: p.isr_nodes.iter().map(|r| r.0).collect(),
                })
                .collect();
            partitions.sort_by_key(|p| p.index);
            (name, TopicInfo { error_code: t.error_code, id: t.topic_id, partitions })
        })
        .collect();
    Meta {
        brokers,
        controller_id: resp.controller_id.0,
        cluster_id: resp.cluster_id.map(|c| c.to_string()),
        topics,
    }
}

/// Metadata of every topic from the broker at `addr`.
pub fn metadata_at(addr: &str) -> Result<Meta, String> {
    let req = MetadataRequest::default().with_topics(None).with_allow_auto_topic_creation(false);
    let resp: MetadataResponse = call_addr(addr, METADATA_VERSION, &req)?;
    Ok(decode_meta(resp))
}

/// Metadata of one topic from the broker at `addr`.
pub fn topic_metadata_at(addr: &str, topic: &str) -> Result<Meta, String> {
    let resp: MetadataResponse =
        call_addr(addr, METADATA_VERSION, &requests::metadata(topic, METADATA_VERSION))?;
    Ok(decode_meta(resp))
}

/// A topic's configs (name → value) as DescribeConfigs (v4) at `addr` answers.
pub fn topic_configs_at(addr: &str, topic: &str) -> Result<BTreeMap<String, String>, String> {
    let req = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(str_bytes(topic))
            .with_configuration_keys(None),
    ]);
    let resp: DescribeConfigsResponse = call_addr(addr, 4, &req)?;
    let r = resp.results.first().ok_or_else(|| format!("{addr}: DescribeConfigs: no result"))?;
    if r.error_code != 0 {
        return Err(format!(
            "{addr}: DescribeConfigs {topic}: error {} {:?}",
            r.error_code, r.error_message
        ));
    }
    Ok(r.configs
        .iter()
        .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string()).unwrap_or_default()))
        .collect())
}

/// A DescribeQuorum answer, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quorum {
    /// False when [`Cluster::wait_leader`] had Metadata's controller id only (DescribeQuorum
    /// failed or named another leader): then only `leader_id` is known.
    pub from_describe_quorum: bool,
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<i32>,
    pub observers: Vec<i32>,
}

/// DescribeQuorum of `__cluster_metadata-0` at `addr`, at the highest version both sides know.
pub fn describe_quorum_at(addr: &str) -> Result<Quorum, String> {
    let version = max_version(addr, DESCRIBE_QUORUM_KEY)?
        .ok_or_else(|| format!("{addr}: ApiVersions does not list DescribeQuorum (55)"))?
        .min(2);
    let req = DescribeQuorumRequest::default().with_topics(vec![
        TopicData::default()
            .with_topic_name(requests::topic_name(METADATA_TOPIC))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)]),
    ]);
    let resp: DescribeQuorumResponse = call_addr(addr, version, &req)?;
    if resp.error_code != 0 {
        return Err(format!(
            "{addr}: DescribeQuorum v{version}: error {} {:?}",
            resp.error_code, resp.error_message
        ));
    }
    let t = resp.topics.first().ok_or_else(|| format!("{addr}: DescribeQuorum: no topic"))?;
    let p = t.partitions.first().ok_or_else(|| format!("{addr}: DescribeQuorum: no partition"))?;
    if p.error_code != 0 {
        return Err(format!(
            "{addr}: DescribeQuorum partition error {} {:?}",
            p.error_code, p.error_message
        ));
    }
    let mut voters: Vec<i32> = p.current_voters.iter().map(|v| v.replica_id.0).collect();
    voters.sort_unstable();
    let mut observers: Vec<i32> = p.observers.iter().map(|v| v.replica_id.0).collect();
    observers.sort_unstable();
    Ok(Quorum {
        from_describe_quorum: true,
        leader_id: p.leader_id.0,
        leader_epoch: p.leader_epoch,
        high_watermark: p.high_watermark,
        voters,
        observers,
    })
}

/// CreateTopics of one topic (replication factor 1) at `addr`: (error code, message).
pub fn create_topic_at(
    addr: &str,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> Result<(i16, Option<String>), String> {
    create_topic_rf_at(addr, name, partitions, 1, configs)
}

/// CreateTopics of one topic with `rf` replicas at `addr`: (error code, message).
pub fn create_topic_rf_at(
    addr: &str,
    name: &str,
    partitions: i32,
    rf: i16,
    configs: &[(&str, &str)],
) -> Result<(i16, Option<String>), String> {
    let topic = CreatableTopic::default()
        .with_name(requests::topic_name(name))
        .with_num_partitions(partitions)
        .with_replication_factor(rf)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(str_bytes(k))
                        .with_value(Some(str_bytes(v)))
                })
                .collect(),
        );
    let req = CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(20_000);
    let resp: CreateTopicsResponse = call_addr(addr, CREATE_TOPICS_VERSION, &req)?;
    let t = resp.topics.first().ok_or_else(|| format!("{addr}: CreateTopics: no topic"))?;
    Ok((t.error_code, t.error_message.as_ref().map(|m| m.to_string())))
}

/// Creates `name` at `addr`, retrying while the answer is a retriable error or the connection
/// fails (no quorum yet, a controller election); `TOPIC_ALREADY_EXISTS` after a retry counts
/// as created (an earlier attempt committed). Panics on a non-retriable error.
pub fn create_topic_retrying(
    addr: &str,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
    limit: Duration,
) {
    let mut attempts = 0;
    wait_until(&format!("CreateTopics {name} at {addr}"), limit, || {
        attempts += 1;
        match create_topic_at(addr, name, partitions, configs)? {
            (0, _) => Ok(()),
            (36, _) if attempts > 1 => Ok(()),
            (code, msg) if ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable()) => {
                Err(format!("retriable error {code} {msg:?}"))
            }
            (code, msg) => panic!("CreateTopics {name} at {addr}: error {code} {msg:?}"),
        }
    });
}

/// Polls Metadata at one address every [`POLL`] in a thread (at most [`WATCH_MAX`]) and
/// keeps every answer whose brokers lack one of `must_list`: for checking that live brokers
/// are never fenced while something else happens.
pub struct BrokerWatch {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<Sample>>>,
}

/// A Metadata answer a [`BrokerWatch`] kept: time since it started, brokers listed.
pub type Sample = (Duration, Vec<i32>);

/// The longest a [`BrokerWatch`] polls.
pub const WATCH_MAX: Duration = Duration::from_secs(120);

impl BrokerWatch {
    pub fn start(addr: String, must_list: Vec<i32>) -> BrokerWatch {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut missing = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::SeqCst) && started.elapsed() < WATCH_MAX {
                if let Ok(m) = metadata_at(&addr) {
                    let ids = m.broker_ids();
                    if must_list.iter().any(|b| !ids.contains(b)) {
                        missing.push((started.elapsed(), ids));
                    }
                }
                std::thread::sleep(POLL);
            }
            missing
        });
        BrokerWatch { stop, thread: Some(thread) }
    }

    /// Stops polling; returns (time since start, brokers listed) of every answer that lacked
    /// one of the brokers.
    pub fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.take().expect("running").join().expect("watch thread")
    }
}

impl Drop for BrokerWatch {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// One node process (and the directory and ports that outlive its incarnations).
pub struct ClusterNode {
    pub id: i32,
    pub host: String,
    pub port: u16,
    pub controller_port: u16,
    /// Its data directory is `dir/data`; replaced by [`ClusterNode::wipe`].
    pub dir: tempfile::TempDir,
    /// Flags after `serve` other than `--data-dir`.
    pub args: Vec<String>,
    /// Environment variables set on the process (besides the log settings).
    pub envs: Vec<(String, String)>,
    pub child: Option<Child>,
    /// stderr lines of every incarnation; each start adds a `=== start N ===` marker.
    pub log: Arc<Mutex<Vec<String>>>,
    starts: usize,
    ready_rx: Option<mpsc::Receiver<String>>,
}

impl ClusterNode {
    /// A node with `id`, on `host`, fresh ports and a fresh directory; not started.
    pub fn new(id: i32, host: &str, port: u16, controller_port: u16, args: Vec<String>) -> Self {
        ClusterNode {
            id,
            host: host.to_owned(),
            port,
            controller_port,
            dir: tempfile::tempdir().expect("tempdir"),
            args,
            envs: Vec::new(),
            child: None,
            log: Arc::new(Mutex::new(Vec::new())),
            starts: 0,
            ready_rx: None,
        }
    }

    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    pub fn controller_addr(&self) -> String {
        format!("{}:{}", self.host, self.controller_port)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the process without waiting for its ready line.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none() || !self.is_running(), "node {} already running", self.id);
        self.starts += 1;
        let mut child = Command::new(env!("CARGO_BIN_EXE_odradek"))
            .arg("serve")
            .args(&self.args)
            .arg("--data-dir")
            .arg(self.data_dir())
            .env("ODRADEK_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start odradek");
        self.log.lock().expect("log lock").push(format!("=== start {} ===", self.starts));
        let stderr = child.stderr.take().expect("stderr");
        let sink = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut lines = sink.lock().expect("log lock");
                if lines.len() == LOG_LINES_KEPT {
                    lines.remove(0);
                }
                lines.push(line);
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        self.ready_rx = Some(rx);
        self.child = Some(child);
    }

    /// Waits for the `odradek ready` line of the current incarnation.
    pub fn wait_ready(&mut self) {
        let rx = self.ready_rx.as_ref().expect("spawned");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with("odradek ready") => return,
                Ok(_) => continue,
                Err(e) => panic!(
                    "node {}: no `odradek ready` line within {READY_TIMEOUT:?} ({e}); exit: {:?}{}",
                    self.id,
                    self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()),
                    self.logs(LOG_LINES_SHOWN)
                ),
            }
        }
    }

    /// Starts the process and waits for its ready line.
    pub fn start(&mut self) {
        self.spawn();
        self.wait_ready();
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// The exit status if the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().expect("poll node"))
    }

    /// Sends `sig` (as `kill` takes it: `-KILL`, `-TERM`, `-STOP`, `-CONT`) by PID.
    pub fn signal(&self, sig: &str) {
        let pid = self.pid().expect("started").to_string();
        let ok = Command::new("kill").args([sig, &pid]).status().expect("kill").success();
        assert!(ok, "kill {sig} {pid} (node {})", self.id);
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.exited() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "node {} still running after {limit:?}{}",
                self.id,
                self.logs(LOG_LINES_SHOWN)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if self.is_running() {
            self.signal("-KILL");
        }
        if let Some(c) = self.child.as_mut() {
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for the exit; returns its status.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal("-TERM");
        self.wait_exit(STOP_TIMEOUT)
    }

    /// Replaces the data directory with an empty one (the process must not be running).
    pub fn wipe(&mut self) {
        assert!(!self.is_running(), "wipe of running node {}", self.id);
        self.dir = tempfile::tempdir().expect("tempdir");
    }

    /// All kept stderr lines.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }

    /// The first kept stderr line matching `pred`.
    pub fn find_log(&self, pred: impl Fn(&str) -> bool) -> Option<String> {
        self.log.lock().expect("log lock").iter().find(|l| pred(l)).cloned()
    }

    /// The last `n` stderr lines, for failure messages.
    pub fn logs(&self, n: usize) -> String {
        let lines = self.log.lock().expect("log lock");
        let from = lines.len().saturating_sub(n);
        format!(
            "\n--- node {} stderr (last {} of {} lines) ---\n{}",
            self.id,
            lines.len() - from,
            lines.len(),
            lines[from..].join("\n")
        )
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        // SIGKILL works on a SIGSTOPped process too.
        self.kill();
    }
}

/// N node processes forming one cluster (node ids 1..=N, all voters, both roles by default).
pub struct Cluster {
    pub nodes: Vec<ClusterNode>,
    /// `--controller-quorum-voters` of every node.
    pub voters: String,
    _lock: MutexGuard<'static, ()>,
}

impl Cluster {
    /// Starts `n` nodes (1..=3 on 127.0.0.2..=127.0.0.4) with `extra` flags on every node, and
    /// waits for each one's ready line (not for the quorum: see [`Cluster::wait_formed`]).
    pub fn start(n: i32, extra: &[&str]) -> Cluster {
        Cluster::start_with(n, |_| extra.iter().map(|s| (*s).to_owned()).collect())
    }

    /// As [`Cluster::start`], with per-node extra flags.
    pub fn start_with(n: i32, extra: impl Fn(i32) -> Vec<String>) -> Cluster {
        let mut c = Cluster::configure_with(n, extra);
        c.start_all();
        c
    }

    /// The cluster's nodes, configured (addresses, directories, flags) but not started.
    pub fn configure_with(n: i32, extra: impl Fn(i32) -> Vec<String>) -> Cluster {
        let lock = CLUSTER_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let ports: Vec<(String, u16, u16)> = (1..=n)
            .map(|id| {
                let host = host_of(id);
                let (p, c) = (free_port(&host), free_port(&host));
                (host, p, c)
            })
            .collect();
        let voters = ports
            .iter()
            .enumerate()
            .map(|(i, (h, _, c))| format!("{}@{h}:{c}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = ports
            .iter()
            .enumerate()
            .map(|(i, (host, port, cport))| {
                let id = i as i32 + 1;
                let mut args = node_args(id, host, *port, *cport, &voters);
                args.extend(extra(id));
                ClusterNode::new(id, host, *port, *cport, args)
            })
            .collect();
        Cluster { nodes, voters, _lock: lock }
    }

    /// Spawns every node that is not running, then waits for each one's ready line.
    pub fn start_all(&mut self) {
        let mut spawned = Vec::new();
        for (i, n) in self.nodes.iter_mut().enumerate() {
            if !n.is_running() {
                n.spawn();
                spawned.push(i);
            }
        }
        for i in spawned {
            self.nodes[i].wait_ready();
        }
    }

    /// Node with `id` (1-based).
    pub fn node(&mut self, id: i32) -> &mut ClusterNode {
        &mut self.nodes[(id - 1) as usize]
    }

    pub fn ids(&self) -> Vec<i32> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    pub fn addr(&self, id: i32) -> String {
        self.nodes[(id - 1) as usize].addr()
    }

    /// Every node's Kafka address, comma-separated (a client's bootstrap list).
    pub fn bootstrap(&self) -> String {
        self.nodes.iter().map(ClusterNode::addr).collect::<Vec<_>>().join(",")
    }

    /// The brokers Metadata should list for `ids`: node id, host, port, rack (`--rack`).
    pub fn expected_brokers(&self, ids: &[i32]) -> Vec<Broker> {
        ids.iter()
            .map(|&id| {
                let n = &self.nodes[(id - 1) as usize];
                let rack = n.args.iter().position(|a| a == "--rack").map(|i| n.args[i + 1].clone());
                Broker { id, host: n.host.clone(), port: i32::from(n.port), rack }
            })
            .collect()
    }

    pub fn kill(&mut self, id: i32) {
        self.node(id).kill();
    }

    pub fn stop(&mut self, id: i32) -> ExitStatus {
        self.node(id).stop()
    }

    pub fn sigstop(&mut self, id: i32) {
        self.node(id).signal("-STOP");
    }

    pub fn sigcont(&mut self, id: i32) {
        self.node(id).signal("-CONT");
    }

    /// Starts node `id` again (it must have exited) on its directory and ports; waits ready.
    pub fn restart(&mut self, id: i32) {
        self.node(id).start();
    }

    pub fn metadata(&self, id: i32) -> Result<Meta, String> {
        metadata_at(&self.addr(id))
    }

    /// Waits until Metadata from each of `askers` lists exactly the brokers `ids` (with their
    /// hosts, ports and racks); returns the last answer of the first asker.
    pub fn wait_brokers(&self, askers: &[i32], ids: &[i32], limit: Duration) -> Meta {
        let want = self.expected_brokers(ids);
        let mut first = None;
        for &a in askers {
            let m =
                wait_until(&format!("node {a}'s Metadata to list brokers {ids:?}"), limit, || {
                    let m = self.metadata(a)?;
                    if m.brokers == want { Ok(m) } else { Err(format!("{:?}", m.brokers)) }
                });
            first.get_or_insert(m);
        }
        first.expect("at least one asker")
    }

    /// Waits until every node's Metadata lists every broker: the cluster formed.
    pub fn wait_formed(&self) -> Meta {
        let ids = self.ids();
        self.wait_brokers(&ids, &ids, FORM_TIMEOUT)
    }

    /// DescribeQuorum at node `id`.
    pub fn quorum(&self, id: i32) -> Result<Quorum, String> {
        describe_quorum_at(&self.addr(id))
    }

    /// Waits until Metadata from every node in `askers` names the same controller id, one of
    /// `among` (the node sets it to the active controller when that is a live broker); then,
    /// where the first asker answers DescribeQuorum naming the same leader, returns its answer
    /// (with the epoch and voters), else the controller id alone (`from_describe_quorum`
    /// false; the DescribeQuorum test itself checks that request).
    pub fn wait_leader(&self, askers: &[i32], among: &[i32], limit: Duration) -> Quorum {
        let leader =
            wait_until(&format!("an agreed active controller among {among:?}"), limit, || {
                let ids: Vec<i32> = askers
                    .iter()
                    .map(|&a| self.metadata(a).map(|m| m.controller_id))
                    .collect::<Result<_, _>>()?;
                if among.contains(&ids[0]) && ids.iter().all(|&i| i == ids[0]) {
                    Ok(ids[0])
                } else {
                    Err(format!("controller ids {ids:?} from nodes {askers:?}"))
                }
            });
        match self.quorum(askers[0]) {
            Ok(q) if q.leader_id == leader => q,
            other => {
                println!("DescribeQuorum at node {} not used: {other:?}", askers[0]);
                Quorum {
                    from_describe_quorum: false,
                    leader_id: leader,
                    leader_epoch: -1,
                    high_watermark: -1,
                    voters: Vec::new(),
                    observers: Vec::new(),
                }
            }
        }
    }

    /// The first line (of any node, any incarnation) matching `pred`, with its node id.
    pub fn find_log(&self, pred: impl Fn(&str) -> bool) -> Option<(i32, String)> {
        self.nodes.iter().find_map(|n| n.find_log(&pred).map(|l| (n.id, l)))
    }

    /// How many stderr lines each node has so far (for [`Cluster::find_log_since`]).
    pub fn log_marks(&self) -> Vec<usize> {
        self.nodes.iter().map(|n| n.log.lock().expect("log lock").len()).collect()
    }

    /// The first line written after `marks` (by any node) matching `pred`, with its node id.
    /// Lines are only dropped past [`LOG_LINES_KEPT`], far beyond any test's output.
    pub fn find_log_since(
        &self,
        marks: &[usize],
        pred: impl Fn(&str) -> bool,
    ) -> Option<(i32, String)> {
        self.nodes.iter().zip(marks).find_map(|(n, &from)| {
            let lines = n.log.lock().expect("log lock");
            lines.iter().skip(from).find(|l| pred(l)).map(|l| (n.id, l.clone()))
        })
    }

    /// The last lines of every node's stderr.
    pub fn logs(&self) -> String {
        self.nodes.iter().map(|n| n.logs(LOG_LINES_SHOWN)).collect()
    }
}

/// The flags of node `id` in a cluster with `voters`.
pub fn node_args(id: i32, host: &str, port: u16, cport: u16, voters: &str) -> Vec<String> {
    vec![
        "--node-id".into(),
        id.to_string(),
        "--listen".into(),
        format!("{host}:{port}"),
        "--controller-listen".into(),
        format!("{host}:{cport}"),
        "--controller-quorum-voters".into(),
        voters.to_owned(),
        "--smp".into(),
        "1".into(),
    ]
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        // CLUSTER_TEST_LOGS=DIR keeps every node's whole stderr as DIR/<test>-node<i>.log.
        if let Some(dir) = std::env::var_os("CLUSTER_TEST_LOGS") {
            let test = std::thread::current().name().unwrap_or("test").replace("::", "-");
            for n in &self.nodes {
                let path = PathBuf::from(&dir).join(format!("{test}-node{}.log", n.id));
                let _ = std::fs::write(path, n.log_lines().join("\n"));
            }
        }
        for n in &mut self.nodes {
            n.kill();
        }
    }
}
