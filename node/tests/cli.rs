//! The `odradek` CLI (topic, produce, consume, group, cluster) as users run it: real processes
//! against a real node, output read back as text and as JSON, records cross-checked with kcat.

mod common;

use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::Node;
use common::process::{Out, run_bounded, run_ok, signal_and_wait, stdout_lines};
use serde_json::Value;

/// How long one CLI command may take (a group join waits 3 s for more members).
const LIMIT: Duration = Duration::from_secs(60);

/// `odradek ARGS` against the broker at `addr`.
fn odradek(addr: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_odradek"));
    cmd.args(args).env("ODRADEK_BROKERS", addr).env_remove("ODRADEK_LOG");
    cmd
}

/// Runs `odradek ARGS` against `node` with `input` on stdin.
fn cli(node: &Node, args: &[&str], input: &str) -> Out {
    let mut cmd = odradek(&node.addr(), args);
    run_bounded(&mut cmd, input.as_bytes(), LIMIT)
        .unwrap_or_else(|o| panic!("odradek {args:?} still running after {LIMIT:?}\n{}", o.text()))
}

/// Runs `odradek ARGS` and asserts it exited 0.
fn ok(node: &Node, args: &[&str], input: &str) -> Out {
    cli_at(&node.addr(), args, input)
}

/// Runs `odradek ARGS --output json` and parses its stdout.
fn json(node: &Node, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let out = ok(node, &all, "");
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.text()))
}

/// The committed offset, log end and lag of `group` on `topic`/`partition`.
fn group_offsets(node: &Node, group: &str, topic: &str, partition: i64) -> (Value, Value, Value) {
    let d = json(node, &["group", "describe", group]);
    let offsets = d["offsets"].as_array().expect("offsets");
    let row = offsets
        .iter()
        .find(|o| o["topic"] == topic && o["partition"] == partition)
        .unwrap_or_else(|| panic!("no row for {topic}/{partition}: {d}"));
    (row["committed"].clone(), row["log_end"].clone(), row["lag"].clone())
}

fn kcat(node: &Node, args: &[&str], input: &str) -> Out {
    run_ok(Command::new("kcat").args(["-b", &node.addr()]).args(args), input.as_bytes(), LIMIT)
}

#[test]
fn topics_are_created_described_altered_grown_and_deleted() {
    let node = Node::start();
    let out =
        ok(&node, &["topic", "create", "orders", "-p", "3", "-c", "retention.ms=3600000"], "");
    assert!(out.stdout.contains("created topic orders"), "{}", out.text());

    // An existing topic: exit 1 and one line naming Kafka's error and what to do.
    let again = cli(&node, &["topic", "create", "orders", "-p", "3"], "");
    assert_eq!(again.status.code(), Some(1), "{}", again.text());
    assert_eq!(again.stderr.lines().count(), 1, "{}", again.text());
    assert!(
        again.stderr.starts_with("odradek: topic orders: TOPIC_ALREADY_EXISTS: "),
        "{}",
        again.text()
    );
    assert!(again.stderr.contains("odradek topic describe orders"), "{}", again.text());

    let list = ok(&node, &["topic", "list"], "");
    assert!(
        list.stdout.lines().any(|l| l.split_whitespace().eq(["orders", "3", "1"])),
        "{}",
        list.text()
    );
    let list = json(&node, &["topic", "list"]);
    assert!(
        list.as_array()
            .expect("array")
            .iter()
            .any(|t| t["name"] == "orders" && t["partitions"] == 3)
    );

    let d = json(&node, &["topic", "describe", "orders"]);
    assert_eq!(d["partitions"].as_array().expect("partitions").len(), 3, "{d}");
    let config = |d: &Value, key: &str| {
        d["configs"].as_array().expect("configs").iter().find(|c| c["name"] == key).cloned()
    };
    let retention = config(&d, "retention.ms").expect("retention.ms");
    assert_eq!(retention["value"], "3600000", "{d}");
    assert_eq!(retention["source"], "DYNAMIC_TOPIC_CONFIG", "{d}");

    ok(&node, &["topic", "alter-config", "orders", "-c", "retention.ms=7200000"], "");
    let d = json(&node, &["topic", "describe", "orders"]);
    assert_eq!(config(&d, "retention.ms").expect("retention.ms")["value"], "7200000");
    ok(&node, &["topic", "alter-config", "orders", "--delete", "retention.ms"], "");
    let d = json(&node, &["topic", "describe", "orders"]);
    assert_ne!(config(&d, "retention.ms").expect("retention.ms")["source"], "DYNAMIC_TOPIC_CONFIG");

    let bad = cli(&node, &["topic", "alter-config", "orders", "-c", "retention.ms=soon"], "");
    assert_eq!(bad.status.code(), Some(1), "{}", bad.text());
    assert!(bad.stderr.contains("INVALID_CONFIG"), "{}", bad.text());

    ok(&node, &["topic", "add-partitions", "orders", "-p", "2"], "");
    let d = json(&node, &["topic", "describe", "orders"]);
    assert_eq!(d["partitions"].as_array().expect("partitions").len(), 5, "{d}");

    let health = ok(&node, &["cluster", "health"], "");
    assert!(health.stdout.starts_with("healthy"), "{}", health.text());
    let info = json(&node, &["cluster", "info"]);
    assert_eq!(info["brokers"].as_array().expect("brokers").len(), 1, "{info}");
    assert!(info["cluster_id"].as_str().is_some_and(|c| !c.is_empty()), "{info}");

    ok(&node, &["topic", "delete", "orders"], "");
    let list = json(&node, &["topic", "list"]);
    assert!(!list.as_array().expect("array").iter().any(|t| t["name"] == "orders"), "{list}");
    let gone = cli(&node, &["topic", "describe", "orders"], "");
    assert_eq!(gone.status.code(), Some(1), "{}", gone.text());
    assert!(gone.stderr.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{}", gone.text());

    // Usage errors exit 2; a broker nobody listens on exits 3.
    let usage = cli(&node, &["consume", "orders", "-o", "soon"], "");
    assert_eq!(usage.status.code(), Some(2), "{}", usage.text());
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .to_string();
    let down = cli(&node, &["topic", "list", "--brokers", &free], "");
    assert_eq!(down.status.code(), Some(3), "{}", down.text());
    assert_eq!(down.stderr.lines().count(), 1, "{}", down.text());
}

#[test]
fn produced_lines_come_back_with_keys_headers_offsets_and_timestamps() {
    let node = Node::start();
    ok(&node, &["topic", "create", "lines", "-p", "2"], "");
    let input = "src=web|trace=1|k1:hello\nsrc=cli|k2:world\nno-key-here\n";
    let out = ok(
        &node,
        &["produce", "lines", "--partition", "1", "-k", ":", "-H", "|", "-z", "lz4", "-a", "1"],
        input,
    );
    assert!(out.stdout.contains("produced 3 records"), "{}", out.text());

    let fmt = "%T/%p@%o [%k] %h: %v\\n";
    let got = ok(&node, &["consume", "lines", "-o", "start", "-n", "3", "-f", fmt], "");
    assert_eq!(
        got.stdout,
        "lines/1@0 [k1] src=web,trace=1: hello\nlines/1@1 [k2] src=cli: world\nlines/1@2 [] : no-key-here\n",
        "{}",
        got.text()
    );

    // The last 2 of each partition.
    let last = ok(&node, &["consume", "lines", "-o", "-2", "-e"], "");
    assert_eq!(last.stdout, "world\nno-key-here\n", "{}", last.text());

    // From a timestamp: the records produced after it, and none before.
    std::thread::sleep(Duration::from_millis(20));
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis()
        .to_string();
    std::thread::sleep(Duration::from_millis(20));
    ok(&node, &["produce", "lines", "--partition", "0", "-z", "gzip"], "later-1\nlater-2\n");
    let from_ts =
        ok(&node, &["consume", "lines", "-o", &format!("@{ts}"), "-e", "-f", "%p %t %v\\n"], "");
    let lines: Vec<&str> = from_ts.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", from_ts.text());
    for (l, want) in lines.iter().zip(["later-1", "later-2"]) {
        let f: Vec<&str> = l.split(' ').collect();
        assert_eq!((f[0], f[2]), ("0", want), "{l}");
        assert!(f[1] >= ts.as_str(), "{l} is before {ts}");
    }

    // One partition, from an offset; JSON lines.
    let one =
        ok(&node, &["consume", "lines", "-p", "1", "-o", "1", "-n", "1", "--output", "json"], "");
    let v: Value = serde_json::from_str(one.stdout.trim()).expect("a JSON line");
    assert_eq!((v["partition"].as_i64(), v["offset"].as_i64()), (Some(1), Some(1)), "{v}");
    assert_eq!((v["key"].as_str(), v["value"].as_str()), (Some("k2"), Some("world")), "{v}");
    assert_eq!(v["headers"][0]["key"], "src", "{v}");

    // From a file, unacknowledged (acks 0), at most 20 records a second.
    ok(&node, &["topic", "create", "paced", "-p", "1"], "");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("lines.txt");
    let lines: String = (0..10).map(|i| format!("line-{i}\n")).collect();
    std::fs::write(&file, &lines).expect("write");
    let file = file.to_str().expect("utf-8 path");
    let t0 = Instant::now();
    ok(&node, &["produce", "paced", "-f", file, "-a", "0", "--rate", "20"], "");
    assert!(
        t0.elapsed() >= Duration::from_millis(400),
        "10 records at 20/s took {:?}",
        t0.elapsed()
    );
    let got = ok(&node, &["consume", "paced", "-n", "10"], "");
    assert_eq!(got.stdout, lines, "{}", got.text());
    let missing = cli(&node, &["produce", "paced", "-f", "/nonexistent/lines"], "");
    assert_eq!(missing.status.code(), Some(2), "{}", missing.text());
}

#[test]
fn a_group_consumes_commits_shows_lag_seeks_and_is_deleted() {
    let node = Node::start();
    ok(&node, &["topic", "create", "jobs", "-p", "1"], "");
    ok(&node, &["produce", "jobs"], "a\nb\nc\n");
    let got = ok(&node, &["consume", "jobs", "-g", "workers", "-n", "3", "-f", "%o:%v\\n"], "");
    assert_eq!(got.stdout, "0:a\n1:b\n2:c\n", "{}", got.text());
    assert_eq!(group_offsets(&node, "workers", "jobs", 0), (3.into(), 3.into(), 0.into()));

    ok(&node, &["produce", "jobs"], "d\ne\n");
    assert_eq!(group_offsets(&node, "workers", "jobs", 0), (3.into(), 5.into(), 2.into()));
    let table = ok(&node, &["group", "describe", "workers"], "");
    assert!(table.stdout.contains("TOTAL-LAG  2"), "{}", table.text());
    let list = json(&node, &["group", "list"]);
    assert!(list.as_array().expect("array").iter().any(|g| g["group"] == "workers"), "{list}");

    // A second run starts at the committed offset.
    let next = ok(&node, &["consume", "jobs", "-g", "workers", "-n", "1"], "");
    assert_eq!(next.stdout, "d\n", "{}", next.text());
    assert_eq!(group_offsets(&node, "workers", "jobs", 0).0, 4);

    let dry = ok(&node, &["group", "seek", "workers", "--to", "start", "--dry-run"], "");
    assert!(dry.stdout.contains("dry run"), "{}", dry.text());
    assert_eq!(group_offsets(&node, "workers", "jobs", 0).0, 4, "a dry run commits nothing");
    ok(&node, &["group", "seek", "workers", "--to", "start"], "");
    assert_eq!(group_offsets(&node, "workers", "jobs", 0), (0.into(), 5.into(), 5.into()));
    ok(&node, &["group", "seek", "workers", "--to", "2", "--topic", "jobs"], "");
    assert_eq!(group_offsets(&node, "workers", "jobs", 0).0, 2);
    ok(&node, &["group", "seek", "workers", "--to", "end"], "");
    assert_eq!(group_offsets(&node, "workers", "jobs", 0).2, 0);

    ok(&node, &["group", "delete", "workers"], "");
    let gone = cli(&node, &["group", "describe", "workers"], "");
    assert_eq!(gone.status.code(), Some(1), "{}", gone.text());
    assert!(gone.stderr.contains("GROUP_ID_NOT_FOUND"), "{}", gone.text());
}

/// Waits for `n` lines from a child's stdout reader, at most `limit`.
fn lines(rx: &mpsc::Receiver<String>, n: usize, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => out.push(l),
            Err(_) => panic!("got {} of {n} lines in {limit:?}: {out:?}", out.len()),
        }
    }
    out
}

#[test]
fn sigint_commits_what_consume_printed_leaves_the_group_and_exits_0() {
    let node = Node::start();
    ok(&node, &["topic", "create", "events", "-p", "1"], "");
    ok(&node, &["produce", "events"], "e0\ne1\ne2\ne3\n");
    let mut child = Command::new(env!("CARGO_BIN_EXE_odradek"))
        .args(["consume", "events", "-g", "sig", "-f", "%o\\n"])
        .env("ODRADEK_BROKERS", node.addr())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start consume");
    let rx = stdout_lines(&mut child);
    let printed = lines(&rx, 4, LIMIT);
    assert_eq!(printed, ["0", "1", "2", "3"]);
    let status = signal_and_wait(&mut child, "-INT", Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    // Committed: the offset after the last printed record; the member has left.
    assert_eq!(group_offsets(&node, "sig", "events", 0).0, 4);
    let d = json(&node, &["group", "describe", "sig"]);
    assert_eq!(d["members"].as_array().map(Vec::len), Some(0), "{d}");
}

#[test]
fn kcat_reads_what_odradek_produced_and_odradek_reads_what_kcat_produced() {
    if Command::new("kcat").arg("-V").output().is_err() {
        panic!("kcat is not installed (scripts/test.sh installs it)");
    }
    let node = Node::start();
    ok(&node, &["topic", "create", "to-kcat", "-p", "1"], "");
    ok(&node, &["produce", "to-kcat", "-k", "=", "-H", "|", "-z", "snappy"], "h=1|k1=v1\nk2=v2\n");
    let got =
        kcat(&node, &["-C", "-t", "to-kcat", "-o", "beginning", "-e", "-f", "%h %k:%s\\n"], "");
    assert_eq!(got.stdout, "h=1 k1:v1\n k2:v2\n", "{}", got.text());

    ok(&node, &["topic", "create", "from-kcat", "-p", "1"], "");
    kcat(
        &node,
        &["-P", "-t", "from-kcat", "-K", ":", "-z", "zstd", "-H", "src=kcat"],
        "a:x\nb:y\n",
    );
    let got = ok(&node, &["consume", "from-kcat", "-e", "-f", "%h %k=%v\\n"], "");
    assert_eq!(got.stdout, "src=kcat a=x\nsrc=kcat b=y\n", "{}", got.text());
}

/// Tansu (another Kafka-compatible broker) on a free port, killed when dropped.
struct Tansu {
    child: std::process::Child,
    addr: String,
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `odradek ARGS` against `addr` and asserts it exited 0.
fn cli_at(addr: &str, args: &[&str], input: &str) -> Out {
    run_ok(&mut odradek(addr, args), input.as_bytes(), LIMIT)
}

/// The CLI speaks only Kafka, so it works against another broker: Tansu, whose binary
/// scripts/test.sh fetches and names in ODRADEK_TANSU (skipped without it).
#[test]
fn the_cli_works_against_tansu() {
    let Ok(bin) = std::env::var("ODRADEK_TANSU") else {
        eprintln!("skipped: ODRADEK_TANSU names no Tansu binary (scripts/test.sh fetches one)");
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(&bin)
        .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
        .args(["--storage-engine", "memory://tansu/"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {bin}: {e}"));
    let tansu = Tansu { child, addr: format!("127.0.0.1:{port}") };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&tansu.addr).is_err() {
        assert!(Instant::now() < deadline, "Tansu does not listen on {}", tansu.addr);
        std::thread::sleep(Duration::from_millis(50));
    }
    let a = tansu.addr.as_str();
    cli_at(a, &["topic", "create", "peer", "-p", "2"], "");
    let list = cli_at(a, &["topic", "list", "--output", "json"], "");
    let list: Value = serde_json::from_str(&list.stdout).expect("json");
    assert!(
        list.as_array().expect("array").iter().any(|t| t["name"] == "peer" && t["partitions"] == 2)
    );
    cli_at(a, &["produce", "peer", "--partition", "1", "-k", ":"], "k1:one\nk2:two\n");
    let got = cli_at(a, &["consume", "peer", "-n", "2", "-f", "%p %o %k=%v\\n"], "");
    assert_eq!(got.stdout, "1 0 k1=one\n1 1 k2=two\n", "{}", got.text());
    let got = cli_at(a, &["consume", "peer", "-g", "peers", "-n", "2"], "");
    assert_eq!(got.stdout, "one\ntwo\n", "{}", got.text());
    let d = cli_at(a, &["group", "describe", "peers", "--output", "json"], "");
    let d: Value = serde_json::from_str(&d.stdout).expect("json");
    let row = d["offsets"]
        .as_array()
        .expect("offsets")
        .iter()
        .find(|o| o["partition"] == 1)
        .cloned()
        .unwrap_or_default();
    assert_eq!(row["committed"], 2, "{d}");
    let health = cli_at(a, &["cluster", "health"], "");
    assert!(health.stdout.starts_with("healthy"), "{}", health.text());
    cli_at(a, &["topic", "delete", "peer"], "");
}

/// Runs `odradek ARGS` against `brokers` and returns what it did, whatever its exit code.
fn cli_on(brokers: &str, args: &[&str], input: &str) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_odradek"));
    cmd.args(args).env("ODRADEK_BROKERS", brokers);
    run_bounded(&mut cmd, input.as_bytes(), LIMIT)
        .unwrap_or_else(|o| panic!("odradek {args:?} still running after {LIMIT:?}\n{}", o.text()))
}

/// On three brokers: records go to each partition's leader and come back from it, and
/// `cluster health` turns unhealthy (exit 4, naming the partitions) when a broker dies.
#[test]
fn on_a_cluster_partitions_route_to_leaders_and_health_sees_a_dead_broker() {
    use common::cluster::Cluster;
    let flags = ["--broker-session-timeout-ms", "2000", "--broker-heartbeat-interval-ms", "500"];
    let mut c = Cluster::start(3, &flags);
    c.wait_formed();
    let b = c.bootstrap();
    let ok_on = |args: &[&str], input: &str| {
        let out = cli_on(&b, args, input);
        assert!(out.status.success(), "odradek {args:?}: {}\n{}", out.status, out.text());
        out
    };
    ok_on(&["topic", "create", "spread", "-p", "6", "-r", "3"], "");
    let info = ok_on(&["cluster", "info", "--output", "json"], "");
    let info: Value = serde_json::from_str(&info.stdout).expect("json");
    assert_eq!(info["brokers"].as_array().map(Vec::len), Some(3), "{info}");
    let input: String = (0..60).map(|i| format!("key{i}:value{i}\n")).collect();
    ok_on(&["produce", "spread", "-k", ":"], &input);
    let got = ok_on(&["consume", "spread", "-n", "60", "-f", "%k:%v\\n"], "");
    let mut got: Vec<&str> = got.stdout.lines().collect();
    let mut want: Vec<&str> = input.lines().collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);
    // Health waits for every ISR to be full after creation.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cli_on(&b, &["cluster", "health"], "").status.success() {
        assert!(Instant::now() < deadline, "never healthy");
        std::thread::sleep(Duration::from_millis(200));
    }
    c.kill(3);
    let alive = format!("{},{}", c.addr(1), c.addr(2));
    let deadline = Instant::now() + Duration::from_secs(30);
    let sick = loop {
        let out = cli_on(&alive, &["cluster", "health"], "");
        if out.status.code() == Some(4) {
            break out;
        }
        assert!(Instant::now() < deadline, "still healthy with a dead broker: {}", out.text());
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(sick.stdout.starts_with("unhealthy"), "{}", sick.text());
    assert!(sick.stdout.contains("spread/"), "{}", sick.text());
}

/// Ctrl-C in an interactive `produce` (stdin still open) sends what was typed and exits 0.
#[test]
fn sigint_ends_an_interactive_produce_with_exit_0() {
    use std::io::Write;
    let node = Node::start();
    ok(&node, &["topic", "create", "typed", "-p", "1"], "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_odradek"))
        .args(["produce", "typed"])
        .env("ODRADEK_BROKERS", node.addr())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start produce");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"one\ntwo\n").expect("type");
    stdin.flush().expect("flush");
    // The lines are sent within the linger; the consumer proves it before the signal.
    let got = ok(&node, &["consume", "typed", "-n", "2"], "");
    assert_eq!(got.stdout, "one\ntwo\n", "{}", got.text());
    let status = signal_and_wait(&mut child, "-INT", Duration::from_secs(10));
    drop(stdin);
    assert_eq!(status.code(), Some(0));
}
