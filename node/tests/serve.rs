//! `odradek serve` as a user meets it: a real process on loopback, driven by real Kafka clients
//! (kcat, kafka-python, confluent-kafka) and by a misbehaving raw socket.
//!
//! The clients are installed by `scripts/test.sh` (Debian's kcat, and the PyPI packages pinned
//! in `tests/clients/requirements.txt`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const READY_TIMEOUT: Duration = Duration::from_secs(20);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// A running node; killed (by PID) when dropped.
struct Node {
    child: Child,
    port: u16,
    ready_line: String,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("addr").port()
}

fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_odradek"))
        .args(args)
        .env("ODRADEK_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start odradek")
}

impl Node {
    fn start() -> Node {
        Node::start_with(2, "")
    }

    /// A node with `smp` shards and `config` as its TOML config file.
    fn start_with(smp: usize, config: &str) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let data = dir.path().join("data");
        let data = data.to_str().expect("utf8 path");
        let file = dir.path().join("odradek.toml");
        std::fs::write(&file, config).expect("write config");
        let file = file.to_str().expect("utf8 path");
        let smp = smp.to_string();
        let mut child = spawn(&[
            "serve",
            "--listen",
            &listen,
            "--data-dir",
            data,
            "--smp",
            &smp,
            "--config",
            file,
        ]);
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let ready_line = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("wait");
                panic!("no ready line ({e}); stderr: {}", String::from_utf8_lossy(&out.stderr));
            }
        };
        Node { child, port, ready_line, _dir: dir }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a client command with a time bound; returns its output.
fn run(cmd: &mut Command) -> Output {
    let mut child =
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start client");
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    while child.try_wait().expect("poll client").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("client did not finish within {CLIENT_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("client output")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn python(script: &str) -> Output {
    run(Command::new("python3").arg("-c").arg(script))
}

#[test]
fn the_ready_line_says_where_and_how() {
    let node = Node::start();
    let line = &node.ready_line;
    assert!(line.starts_with("odradek ready: listening on 127.0.0.1:"), "{line}");
    assert!(line.contains(&format!("advertised as {}", node.addr())), "{line}");
    assert!(line.contains("2 shards") && line.contains("data dir"), "{line}");
}

#[test]
fn kcat_lists_the_broker() {
    let node = Node::start();
    let out = run(Command::new("kcat").args(["-L", "-b", &node.addr(), "-m", "15"]));
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("1 brokers:"), "{t}");
    assert!(t.contains(&format!("broker 0 at {} (controller)", node.addr())), "{t}");
    assert!(t.contains("0 topics:"), "{t}");
}

#[test]
fn python_clients_see_the_cluster() {
    let node = Node::start();
    let out = python(&format!(
        "from kafka import KafkaAdminClient\n\
         a = KafkaAdminClient(bootstrap_servers='{}', request_timeout_ms=10000)\n\
         print('kafka-python topics', a.list_topics())\n\
         print('kafka-python cluster', a.describe_cluster()['cluster_id'])\n\
         a.close()",
        node.addr()
    ));
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("kafka-python topics []"), "{t}");
    // The cluster id is generated at first start (meta.properties): 22 characters.
    let cluster = t
        .lines()
        .find_map(|l| l.strip_prefix("kafka-python cluster "))
        .unwrap_or_else(|| panic!("no cluster id in {t}"))
        .to_owned();
    assert_eq!(cluster.len(), 22, "{t}");

    let out = python(&format!(
        "from confluent_kafka.admin import AdminClient\n\
         md = AdminClient({{'bootstrap.servers': '{}'}}).list_topics(timeout=15)\n\
         print('confluent', md.cluster_id, sorted(md.brokers), md.controller_id, len(md.topics))",
        node.addr()
    ));
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains(&format!("confluent {cluster} [0] 0 0")), "{t}");
}

#[test]
fn sigterm_stops_the_node_cleanly_and_quickly() {
    let mut node = Node::start();
    // A connected, idle client must not hold the shutdown up.
    let _idle = TcpStream::connect(node.addr()).expect("connect");
    let pid = node.child.id().to_string();
    let start = Instant::now();
    let status = Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
    assert!(status.success());
    let deadline = start + Duration::from_secs(10);
    let exit = loop {
        if let Some(s) = node.child.try_wait().expect("poll") {
            break s;
        }
        assert!(Instant::now() < deadline, "still running 10 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "exit status {exit}");
}

fn fails_with(args: &[&str], expect: &[&str]) {
    let child = spawn(args);
    let out = child.wait_with_output().expect("wait");
    let t = text(&out);
    assert!(!out.status.success(), "should have failed: {t}");
    for e in expect {
        assert!(t.contains(e), "missing {e:?} in: {t}");
    }
}

#[test]
fn startup_problems_end_with_one_clear_line_and_a_non_zero_exit() {
    let node = Node::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("d");
    let data = data.to_str().expect("utf8");
    fails_with(
        &["serve", "--listen", &node.addr(), "--data-dir", data],
        &["already in use", "Fix:"],
    );

    let blocker = tmp.path().join("file");
    std::fs::write(&blocker, b"x").expect("write");
    let inside = blocker.join("data");
    let inside = inside.to_str().expect("utf8");
    fails_with(&["serve", "--listen", "127.0.0.1:1", "--data-dir", inside], &["data dir", "Fix:"]);
    fails_with(&["serve", "--smp", "0"], &["--smp"]);
}

/// Sends raw bytes on a fresh connection and reports whether the node closed it.
fn closes_after(addr: &str, bytes: &[u8]) -> bool {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    s.write_all(bytes).expect("write");
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(0))
}

#[test]
fn bad_input_closes_only_that_connection() {
    let node = Node::start();
    let addr = node.addr();
    let huge = 0x7fff_ffffu32.to_be_bytes();
    assert!(closes_after(&addr, &huge), "a huge length prefix closes the connection");
    assert!(closes_after(&addr, &(-5i32).to_be_bytes()), "a negative length closes it");
    // api key 9999, version 0, correlation id 7, client id null
    let unknown = [0, 0, 0, 10, 0x27, 0x0f, 0, 0, 0, 0, 0, 7, 0xff, 0xff];
    assert!(closes_after(&addr, &unknown), "an unknown API closes it");
    let garbage: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
    let mut framed = (garbage.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(&garbage);
    assert!(closes_after(&addr, &framed), "garbage closes it");
    // A Produce (api 0) v3 header with no body: truncated, so closed, not answered.
    let produce = [0, 0, 0, 10, 0, 0, 0, 3, 0, 0, 0, 9, 0xff, 0xff];
    assert!(closes_after(&addr, &produce), "a truncated request closes it");
    // ...and the node still serves everyone else.
    let out = run(Command::new("kcat").args(["-L", "-b", &addr, "-m", "15"]));
    assert!(out.status.success() && text(&out).contains("1 brokers:"), "{}", text(&out));
}

#[test]
fn api_versions_beyond_what_is_served_gets_the_v0_fallback() {
    let node = Node::start();
    let mut s = TcpStream::connect(node.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    // ApiVersions (18) v99, correlation id 42, client id null.
    s.write_all(&[0, 0, 0, 10, 0, 18, 0, 99, 0, 0, 0, 42, 0xff, 0xff]).expect("write");
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("response length");
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).expect("response");
    assert_eq!(&body[0..4], &42i32.to_be_bytes(), "correlation id");
    assert_eq!(&body[4..6], &35i16.to_be_bytes(), "UNSUPPORTED_VERSION");
    // v0 body: error_code, then an int32 array of (key, min, max): only what is served.
    let n = i32::from_be_bytes([body[6], body[7], body[8], body[9]]);
    let mut keys: Vec<i16> =
        (0..n as usize).map(|i| i16::from_be_bytes([body[10 + i * 6], body[11 + i * 6]])).collect();
    keys.sort_unstable();
    // Produce, Fetch, ListOffsets, Metadata, OffsetCommit, OffsetFetch, FindCoordinator,
    // JoinGroup, Heartbeat, LeaveGroup, SyncGroup, DescribeGroups, ListGroups, DeleteGroups,
    // OffsetDelete, ApiVersions, CreateTopics, DeleteTopics, DeleteRecords, InitProducerId,
    // OffsetForLeaderEpoch, DescribeConfigs, AlterConfigs, CreatePartitions,
    // IncrementalAlterConfigs, ElectLeaders, AlterPartitionReassignments,
    // ListPartitionReassignments, DescribeQuorum, DescribeCluster, UnregisterBroker,
    // DescribeLogDirs, SaslHandshake, SaslAuthenticate, Describe/Create/DeleteAcls,
    // Describe/AlterClientQuotas, Describe/AlterUserScramCredentials, AddPartitionsToTxn,
    // AddOffsetsToTxn, EndTxn, WriteTxnMarkers, TxnOffsetCommit, DescribeTransactions,
    // ListTransactions: what is served, nothing else.
    assert_eq!(
        keys,
        vec![
            0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26,
            27, 28, 29, 30, 31, 32, 33, 35, 36, 37, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 55, 60,
            64, 65, 66
        ]
    );
}

#[test]
fn idle_and_stalled_connections_are_closed() {
    let node = Node::start_with(1, "connections_max_idle_ms = 300\n");
    let start = Instant::now();
    assert!(closes_after(&node.addr(), &[]), "an idle connection is closed");
    // A client that stops halfway through a request is closed too.
    assert!(closes_after(&node.addr(), &[0, 0, 0, 40, 0, 3]), "a stalled request is closed");
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
}

/// One ApiVersions v0 round trip; `false` if the node closed the connection instead.
fn api_versions_roundtrip(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    // ApiVersions (18) v0, correlation id 1, client id null.
    if s.write_all(&[0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff]).is_err() {
        return false;
    }
    let mut len = [0u8; 4];
    if s.read_exact(&mut len).is_err() {
        return false;
    }
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).is_ok() && body[0..4] == 1i32.to_be_bytes()
}

#[test]
fn connections_beyond_the_shard_limit_are_refused_and_the_rest_keep_working() {
    let node = Node::start_with(1, "connections_per_shard_max = 2\n");
    // A round trip proves each held connection was accepted (and counted) by the shard.
    let mut held: Vec<TcpStream> =
        (0..2).map(|_| TcpStream::connect(node.addr()).expect("connect")).collect();
    for s in &mut held {
        assert!(api_versions_roundtrip(s), "a connection within the limit is served");
    }
    let mut third = TcpStream::connect(node.addr()).expect("connect");
    assert!(!api_versions_roundtrip(&mut third), "the third connection is closed unserved");
    drop(held);
    // Once the node has seen the two close, new connections are served again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = TcpStream::connect(node.addr()).expect("connect");
        if api_versions_roundtrip(&mut s) {
            break;
        }
        assert!(Instant::now() < deadline, "no connection served after the others closed");
    }
}
