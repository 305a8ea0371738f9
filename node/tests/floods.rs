//! Floods through a live node (issue 18): ten thousand idle connections, a thousand slow-loris
//! clients, clients that never read their answers, and a client pipelining far faster than it
//! reads. Each class comes from `tests/clients/flood.py` (one implementation, also used by
//! `bench/scripts/flood-bench.sh`), against a real node process. Throughout, a well-behaved
//! client keeps producing and fetching and must never fail; the node's resident memory must
//! stay within the bound its server room states; each class of abuse is logged once, not once
//! per connection, and counted in `odradek_connections_closed_total{reason}`.
//!
//! `connections_max_idle_ms` is 3 s here so that the node closes the abusers within the test.
//! Timings are printed for the record, never asserted (figures live in bench/RESULTS.md).

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::cluster::free_port;
use common::process::{Served, run_ok};
use common::{batch, create_topic, fetch, produce};
use odradek_records::Codec;

/// Resident memory the flood classes together may add to a quiet node: 10,000 idle
/// connections cost about 3.5 KiB each in a debug build (a task, its pending read and timer),
/// and a connection buffers at most 64 KiB of a request before it is charged to the request
/// budget. 128 MiB is well above the first and far below 10,000 × 64 KiB (625 MiB), which an
/// eager per-connection buffer would cost, or 10,000 × 9 KiB, which the request handlers'
/// futures cost when they were part of every connection's task.
const RSS_GROWTH_MAX_KIB: u64 = 128 * 1024;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A well-behaved client producing one record and fetching it back every 50 ms until stopped;
/// counts round trips and failures, and the node's peak resident memory meanwhile.
struct Probe {
    stop: Arc<AtomicBool>,
    peak_rss: Arc<AtomicU64>,
    thread: Option<JoinHandle<(u64, Vec<String>, Duration)>>,
}

impl Probe {
    fn start(addr: &str, pid: u32) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let peak_rss = Arc::new(AtomicU64::new(0));
        let (addr, stop2, peak2) = (addr.to_owned(), stop.clone(), peak_rss.clone());
        let thread = std::thread::spawn(move || {
            let mut s = TcpStream::connect(&addr).expect("probe connects");
            s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
            let (mut rounds, mut failures, mut slowest) = (0u64, Vec::new(), Duration::ZERO);
            while !stop2.load(Ordering::Relaxed) {
                peak2.fetch_max(rss_kib(pid), Ordering::Relaxed);
                let began = Instant::now();
                let (err, base) = produce(&mut s, 9, "steady", batch(Codec::None, &[b"probe"]));
                let (ferr, hw, bytes) = fetch(&mut s, "steady", base.max(0));
                slowest = slowest.max(began.elapsed());
                if err != 0 || ferr != 0 || hw <= base || bytes == 0 {
                    failures
                        .push(format!("produce {err} at {base}, fetch {ferr} hw {hw} {bytes} B"));
                }
                rounds += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            (rounds, failures, slowest)
        });
        Probe { stop, peak_rss, thread: Some(thread) }
    }

    /// Stops the probe; asserts it made progress and never failed. Returns the peak RSS.
    fn finish(mut self, class: &str) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let (rounds, failures, slowest) =
            self.thread.take().expect("running").join().expect("the probe thread panicked");
        println!("{class}: probe made {rounds} round trips, slowest {slowest:?}");
        assert!(rounds > 0, "{class}: the probe made no round trip");
        assert!(failures.is_empty(), "{class}: the well-behaved client failed: {failures:?}");
        self.peak_rss.load(Ordering::Relaxed)
    }
}

/// Runs `flood.py CLASS COUNT SECONDS [TOPIC]` against `addr` with a probe beside it; returns
/// the flood's JSON summary and the node's peak RSS meanwhile.
fn flood(node: &Served, addr: &str, args: &[&str]) -> (serde_json::Value, u64) {
    let probe = Probe::start(addr, node.child.id());
    let mut cmd = Command::new("python3");
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/clients/flood.py")).arg(addr).args(args);
    let out = run_ok(&mut cmd, b"", Duration::from_secs(120));
    let peak = probe.finish(args[0]);
    let line = out.stdout.lines().last().unwrap_or_default();
    let summary: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {}", out.text()));
    println!("{summary}, node peak RSS {peak} KiB");
    (summary, peak)
}

fn closed_total(metrics: &str, reason: &str) -> u64 {
    let prefix = format!("odradek_connections_closed_total{{reason=\"{reason}\",");
    metrics
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn scrape(admin: &str) -> String {
    let mut s = TcpStream::connect(admin).expect("admin listener");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    std::io::Write::write_all(
        &mut s,
        format!("GET /metrics HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .expect("scrape request");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("scrape");
    body
}

#[test]
fn floods_leave_other_clients_served_memory_bounded_and_one_log_line_per_class() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("odradek.toml");
    std::fs::write(&config, "connections_max_idle_ms = 3000\n").expect("config");
    let (port, admin_port) = (free_port("127.0.0.1"), free_port("127.0.0.1"));
    let (addr, admin) = (format!("127.0.0.1:{port}"), format!("127.0.0.1:{admin_port}"));
    let flags: Vec<String> = [
        "--listen",
        &addr,
        "--admin-listen",
        &admin,
        "--smp",
        "2",
        "--config",
        config.to_str().expect("utf8 path"),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut node = Served::start(&flags);
    let mut s = TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    create_topic(&mut s, "steady", &[]);
    create_topic(&mut s, "flood-data", &[]);
    // A few MiB for the non-readers' fetches: answers large enough to fill the socket buffers.
    let value = vec![b'x'; 10_000];
    let values: Vec<&[u8]> = (0..100).map(|_| value.as_slice()).collect();
    for _ in 0..4 {
        assert_eq!(produce(&mut s, 9, "flood-data", batch(Codec::None, &values)).0, 0);
    }
    drop(s);
    let quiet = Probe::start(&addr, node.child.id());
    std::thread::sleep(Duration::from_secs(1));
    let quiet_rss = quiet.finish("quiet");
    println!("quiet: node RSS {quiet_rss} KiB");

    let (idle, idle_rss) = flood(&node, &addr, &["idle", "10000", "6"]);
    assert_eq!(idle["opened"], 10000, "{idle}");
    assert_eq!(idle["closed_by_node"], 10000, "every idle connection is closed: {idle}");
    let (loris, loris_rss) = flood(&node, &addr, &["loris", "1000", "6"]);
    assert_eq!(loris["opened"], 1000, "{loris}");
    assert_eq!(loris["closed_by_node"], 1000, "every slow client is closed: {loris}");
    let (nonreader, _) = flood(&node, &addr, &["nonreader", "20", "8", "flood-data"]);
    assert_eq!(nonreader["closed_by_node"], 20, "every non-reader is closed: {nonreader}");
    let (pipeline, pipeline_rss) = flood(&node, &addr, &["pipeline", "1", "4"]);
    assert_eq!(
        pipeline["closed_by_node"], 0,
        "a pipelining client that reads is served: {pipeline}"
    );
    assert_eq!(pipeline["in_order"], true, "answers in request order: {pipeline}");
    assert!(pipeline["answers"].as_u64().unwrap_or(0) > 100, "{pipeline}");

    let peak = idle_rss.max(loris_rss).max(pipeline_rss);
    assert!(
        peak.saturating_sub(quiet_rss) <= RSS_GROWTH_MAX_KIB,
        "the floods grew the node from {quiet_rss} KiB to {peak} KiB (bound: +{RSS_GROWTH_MAX_KIB} KiB)"
    );
    let exited = node.child.try_wait().expect("poll the node");
    assert!(exited.is_none(), "the node exited: {exited:?}");

    let metrics = scrape(&admin);
    assert!(closed_total(&metrics, "idle") >= 10_000, "idle closes counted");
    assert!(closed_total(&metrics, "slow_request") >= 1000, "slow clients counted");
    assert!(closed_total(&metrics, "slow_reader") >= 20, "non-readers counted");

    // Once per class (a summary line may follow a minute after the first), not per connection.
    let log = node.logs();
    for what in [
        "closing idle connections",
        "request did not arrive in full",
        "did not read their responses",
    ] {
        let n = log.lines().filter(|l| l.contains(what)).count();
        assert!((1..=2).contains(&n), "{n} log lines saying {what:?}:\n{log}");
    }
    let per_connection = log.lines().filter(|l| l.contains("closing connection")).count();
    assert!(per_connection < 5, "{per_connection} per-connection close lines:\n{log}");
}

/// Connects from `source` (any 127/8 address is this host's) to `addr`.
fn connect_from(source: &str, addr: &str) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let local: std::net::SocketAddr = format!("{source}:0").parse().expect("source address");
    let target: std::net::SocketAddr = addr.parse().expect("node address");
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket.bind(&local.into()).expect("bind the source address");
    socket.connect_timeout(&target.into(), Duration::from_secs(5)).expect("connect");
    let s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    s
}

/// Whether the node answers an ApiVersions request on `s` (false: it closed the connection).
fn answered(s: &mut TcpStream) -> bool {
    use kafka_protocol::messages::ApiVersionsRequest;
    odradek_client::blocking::call_on(s, "per-ip-test", 1, 0, &ApiVersionsRequest::default())
        .is_ok_and(|r| r.error_code == 0)
}

#[test]
fn max_connections_per_ip_closes_an_address_beyond_its_limit_across_shards() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("odradek.toml");
    std::fs::write(
        &config,
        "max_connections_per_ip = 4\nmax_connections_per_ip_overrides = \"127.0.0.2:1\"\n",
    )
    .expect("config");
    let (port, admin_port) = (free_port("127.0.0.1"), free_port("127.0.0.1"));
    let (addr, admin) = (format!("127.0.0.1:{port}"), format!("127.0.0.1:{admin_port}"));
    let flags: Vec<String> =
        ["--listen", &addr, "--admin-listen", &admin, "--smp", "2", "--config"]
            .iter()
            .map(|s| (*s).to_owned())
            .chain([config.to_str().expect("utf8 path").to_owned()])
            .collect();
    let mut node = Served::start(&flags);

    // Four from 127.0.0.1 are served, spread over both shards by the kernel; the count is the
    // node's, so the fifth is closed whichever shard takes it.
    let mut held: Vec<TcpStream> = (0..4).map(|_| connect_from("127.0.0.1", &addr)).collect();
    for (i, s) in held.iter_mut().enumerate() {
        assert!(answered(s), "connection {i} of 4 from 127.0.0.1 refused");
    }
    for i in 0..6 {
        let mut extra = connect_from("127.0.0.1", &addr);
        assert!(!answered(&mut extra), "connection {} from 127.0.0.1 served", 5 + i);
    }
    // Another address has a count of its own, here its override of 1.
    let mut other = connect_from("127.0.0.2", &addr);
    assert!(answered(&mut other), "127.0.0.2's first connection refused");
    assert!(!answered(&mut connect_from("127.0.0.2", &addr)), "127.0.0.2's second served");
    assert!(answered(&mut connect_from("127.0.0.3", &addr)), "127.0.0.3 (its own count) refused");

    // A closed connection gives its place back (the node notices the close a moment later).
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if answered(&mut connect_from("127.0.0.1", &addr)) {
            break;
        }
        assert!(Instant::now() < deadline, "a closed connection's place was never given back");
        std::thread::sleep(Duration::from_millis(50));
    }
    for s in held.iter_mut().chain([&mut other]) {
        assert!(answered(s), "an admitted connection stopped being served");
    }

    let metrics = scrape(&admin);
    let refused = closed_total(&metrics, "connections_per_ip");
    assert!(refused >= 7, "{refused} closes counted as connections_per_ip:\n{metrics}");
    let exited = node.child.try_wait().expect("poll the node");
    assert!(exited.is_none(), "the node exited: {exited:?}");
    let log = node.logs();
    let lines = log.lines().filter(|l| l.contains("max_connections_per_ip")).count();
    assert_eq!(lines, 1, "one log line for the class, not one per connection:\n{log}");
}
