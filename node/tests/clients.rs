//! Real Kafka clients producing to and consuming from a real `odradek serve` process: kcat
//! (librdkafka 2.0), confluent-kafka (librdkafka 2.16), kafka-python and aiokafka.
//!
//! Each test starts its own node on a free loopback port and a fresh data directory, runs one
//! client (kcat, or a script from `tests/clients/` with a mode argument), and asserts on the
//! client's exit status and output. The Python scripts print `FAIL: <reason>` and exit non-zero
//! on any mismatch; on failure the assertion message also carries the node's recent log lines.
//! Every wait is bounded: the node's ready line, each client process, and the scripts' own loops.
//!
//! The clients are installed by `scripts/test.sh` (Debian's kcat, and the PyPI packages pinned
//! in `tests/clients/requirements.txt`).

#[path = "common/process.rs"]
mod process;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use process::{Out, run_bounded};

const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on one client process (kcat call or Python script).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(45);
/// Bound on a graceful stop after SIGTERM (the node promises 10 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Node log lines kept for failure messages.
const LOG_LINES_KEPT: usize = 60;

const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

/// A scratch directory and port that outlive any number of node processes using them.
struct Scratch {
    dir: tempfile::TempDir,
    port: u16,
}

impl Scratch {
    fn new() -> Scratch {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = l.local_addr().expect("addr").port();
        Scratch { dir: tempfile::tempdir().expect("tempdir"), port }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// A running `odradek serve`; killed (by PID) when dropped unless already stopped.
struct Node {
    child: Child,
    addr: String,
    data_dir: PathBuf,
    /// The last [`LOG_LINES_KEPT`] lines the node wrote to stderr.
    log: Arc<Mutex<Vec<String>>>,
}

impl Node {
    /// Starts a node on `scratch`'s port and data directory, with `extra` flags.
    fn start(scratch: &Scratch, extra: &[&str]) -> Node {
        let addr = scratch.addr();
        let data_dir = scratch.data_dir();
        let mut child = Command::new(env!("CARGO_BIN_EXE_odradek"))
            .args(["serve", "--listen", &addr, "--data-dir"])
            .arg(&data_dir)
            .args(["--smp", "2"])
            .args(extra)
            .env("ODRADEK_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start odradek");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
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
        let node = Node { child, addr, data_dir, log };
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) if line.starts_with("odradek ready") => node,
            other => panic!("no ready line within {READY_TIMEOUT:?} ({other:?}){}", node.logs()),
        }
    }

    fn logs(&self) -> String {
        let lines = self.log.lock().expect("log lock");
        format!("\n--- node stderr (last {} lines) ---\n{}", lines.len(), lines.join("\n"))
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// SIGTERM (by PID), then waits for the process to exit; returns its exit status.
    fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill").args(["-TERM", &self.pid()]).status().expect("kill");
        assert!(status.success(), "kill -TERM {} failed", self.pid());
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(s) = self.child.try_wait().expect("poll node") {
                return s;
            }
            assert!(Instant::now() < deadline, "node still running {STOP_TIMEOUT:?} after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The compression codec (attributes & 7) and record count of every batch in one
    /// partition's first segment.
    fn codecs_on_disk(&self, topic: &str, partition: u32) -> Vec<(u8, i32)> {
        let path =
            self.data_dir.join(format!("{topic}-{partition}")).join("00000000000000000000.log");
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}{}", path.display(), self.logs()));
        batch_codecs(&bytes)
    }

    /// Checks every batch of `topic` (partitions `0..partitions`) is stored with `codec`: that
    /// the client really compressed, rather than silently sending it uncompressed (librdkafka
    /// does that when it believes the broker lacks a feature). One exception: librdkafka also
    /// sends a batch uncompressed when compressing does not make it smaller, which happens to a
    /// batch of a single short record; such batches are allowed, as long as some are compressed.
    fn codec_mismatch(&self, topic: &str, partitions: u32, codec: &str) -> Option<String> {
        let want = CODECS.iter().position(|c| *c == codec).expect("known codec") as u8;
        for p in 0..partitions {
            let found = self.codecs_on_disk(topic, p);
            if found.is_empty() {
                return Some(format!("{topic}[{p}]: no batches on disk"));
            }
            let single_plain = |&(c, n): &(u8, i32)| c == 0 && n == 1;
            let compressed = found.iter().filter(|&&(c, _)| c == want).count();
            if compressed == 0 || found.iter().any(|b| b.0 != want && !single_plain(b)) {
                return Some(format!(
                    "{topic}[{p}]: batch (codec, records) {found:?} on disk, expected {want} \
                     ({codec}), uncompressed only for single records"
                ));
            }
        }
        None
    }

    /// Asserts [`Node::codec_mismatch`] finds nothing for any of `(topic, partitions, codec)`.
    fn assert_codecs(&self, topics: &[(String, u32, &str)]) {
        let bad: Vec<String> =
            topics.iter().filter_map(|(t, n, c)| self.codec_mismatch(t, *n, c)).collect();
        assert!(
            bad.is_empty(),
            "batches not stored with the producer's codec (codec ids: 0 none, 1 gzip, 2 snappy, \
             3 lz4, 4 zstd):\n{}",
            bad.join("\n")
        );
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill").args(["-KILL", &self.pid()]).status();
            let _ = self.child.wait();
        }
    }
}

/// Codec of each RecordBatch v2 in a segment file, stopping at the end or at zero padding.
fn batch_codecs(bytes: &[u8]) -> Vec<(u8, i32)> {
    let mut codecs = Vec::new();
    let mut pos = 0usize;
    while pos + 61 <= bytes.len() {
        let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().expect("4 bytes"));
        if len <= 0 {
            break;
        }
        assert_eq!(bytes[pos + 16], 2, "magic of the batch at file position {pos}");
        let attributes = i16::from_be_bytes(bytes[pos + 21..pos + 23].try_into().expect("2 bytes"));
        let records = i32::from_be_bytes(bytes[pos + 57..pos + 61].try_into().expect("4 bytes"));
        codecs.push(((attributes & 7) as u8, records));
        pos += 12 + len as usize;
    }
    codecs
}

/// Runs a client with `input` on stdin; fails the test (with the node's log) if it is still
/// running after [`CLIENT_TIMEOUT`] (it is then killed by PID).
fn run(cmd: &mut Command, input: &[u8], node: &Node) -> Out {
    run_bounded(cmd, input, CLIENT_TIMEOUT).unwrap_or_else(|out| {
        panic!("{cmd:?} did not finish within {CLIENT_TIMEOUT:?}\n{}{}", out.text(), node.logs())
    })
}

/// Runs `tests/clients/<script>` against `node` and asserts it succeeded.
fn script(node: &Node, script: &str, args: &[&str]) -> Out {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients").join(script);
    let out = run(
        Command::new("python3").arg(&path).args(["--bootstrap", &node.addr]).args(args),
        b"",
        node,
    );
    assert!(
        out.status.success(),
        "{script} {args:?} failed ({})\n{}{}",
        out.status,
        out.text(),
        node.logs()
    );
    out
}

/// Runs kcat against `node` with `input` on stdin.
fn kcat(node: &Node, args: &[&str], input: &str) -> Out {
    run(Command::new("kcat").args(["-b", &node.addr]).args(args), input.as_bytes(), node)
}

/// Runs kcat and asserts it exited 0 without reporting an error.
fn kcat_ok(node: &Node, args: &[&str], input: &str) -> Out {
    let out = kcat(node, args, input);
    assert!(
        out.status.success() && !out.stderr.contains("ERROR"),
        "kcat {args:?} failed ({})\n{}{}",
        out.status,
        out.text(),
        node.logs()
    );
    out
}

/// The topics a roundtrip script writes: `<prefix>-<codec>[-acks<acks>]`, 4 partitions each.
fn codec_topics(prefix: &str, with_acks: bool) -> Vec<(String, u32, &'static str)> {
    let acks: &[&str] = if with_acks { &["0", "1", "all"] } else { &[""] };
    CODECS
        .iter()
        .flat_map(|&c| {
            acks.iter().map(move |a| {
                let suffix = if a.is_empty() { String::new() } else { format!("-acks{a}") };
                (format!("{prefix}-{c}{suffix}"), 4, c)
            })
        })
        .collect()
}

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis()
}

/// Format for kcat -C: key | value | offset | headers | partition.
const FORMAT: &str = "%k|%s|%o|%h|%p\n";

fn lines(out: &Out) -> Vec<&str> {
    out.stdout.lines().collect()
}

// --- kcat ------------------------------------------------------------------------------------

#[test]
fn kcat_lists_brokers_topics_and_partitions() {
    let scratch = Scratch::new();
    let node = Node::start(&scratch, &["--default-partitions", "3"]);
    // Producing to an unknown topic auto-creates it with the default partition count.
    kcat_ok(&node, &["-P", "-t", "meta-a"], "hello\n");
    let out = kcat_ok(&node, &["-L", "-m", "15"], "");
    let t = out.text();
    assert!(t.contains("1 brokers:"), "{t}");
    assert!(t.contains(&format!("broker 0 at {} (controller)", node.addr)), "{t}");
    assert!(t.contains("1 topics:"), "{t}");
    assert!(t.contains("topic \"meta-a\" with 3 partitions:"), "{t}");
    for p in 0..3 {
        assert!(t.contains(&format!("partition {p}, leader 0, replicas: 0, isrs: 0")), "{t}");
    }
    let out = kcat_ok(&node, &["-L", "-t", "meta-a", "-m", "15"], "");
    assert!(out.stdout.contains("topic \"meta-a\" with 3 partitions:"), "{}", out.text());
}

#[test]
fn kcat_round_trips_keys_values_and_headers_with_every_codec() {
    let scratch = Scratch::new();
    let node = Node::start(&scratch, &[]);
    // Compressible values, so librdkafka does not fall back to sending a batch uncompressed.
    let input: String = (0..20)
        .map(|i| {
            if i == 7 {
                format!("k{i}:\n") // empty value
            } else {
                format!("k{i}:{}\n", format!("value-{i}-").repeat(20))
            }
        })
        .collect();
    for codec in CODECS {
        let topic = format!("kc-{codec}");
        kcat_ok(
            &node,
            &[
                "-P",
                "-t",
                &topic,
                "-K:",
                "-z",
                codec,
                "-H",
                "h1=v1",
                "-H",
                "h1=dup",
                "-H",
                "trace=a b",
                "-X",
                "linger.ms=20",
            ],
            &input,
        );
        let out = kcat_ok(&node, &["-C", "-t", &topic, "-e", "-f", FORMAT], "");
        let want: Vec<String> = input
            .lines()
            .enumerate()
            .map(|(i, l)| {
                let (k, v) = l.split_once(':').expect("key:value");
                format!("{k}|{v}|{i}|h1=v1,h1=dup,trace=a b|0")
            })
            .collect();
        assert_eq!(lines(&out), want, "codec {codec}\n{}", out.text());
        assert!(
            out.stderr.contains(&format!("Reached end of topic {topic} [0] at offset 20")),
            "{}",
            out.text()
        );
    }
    node.assert_codecs(&CODECS.map(|c| (format!("kc-{c}"), 1, c)));
}

#[test]
fn kcat_produces_with_acks_0_1_and_all() {
    let scratch = Scratch::new();
    let node = Node::start(&scratch, &[]);
    let input: String = (0..20).map(|i| format!("k{i}:v{i}\n")).collect();
    for acks in ["0", "1", "all", "-1"] {
        let topic = format!("kc-acks{acks}");
        kcat_ok(&node, &["-P", "-t", &topic, "-K:", "-X", &format!("acks={acks}")], &input);
        // acks=0 is not confirmed: wait (bounded) for all 20, then check there is nothing more.
        kcat_ok(&node, &["-C", "-t", &topic, "-c", "20", "-f", "%o\n"], "");
        let out = kcat_ok(&node, &["-C", "-t", &topic, "-e", "-f", "%k|%s|%o\n"], "");
        let want: Vec<String> = (0..20).map(|i| format!("k{i}|v{i}|{i}")).collect();
        assert_eq!(lines(&out), want, "acks={acks}\n{}", out.text());
    }
}

#[test]
fn kcat_consumes_from_offsets_and_timestamps() {
    let scratch = Scratch::new();
    let node = Node::start(&scratch, &[]);
    let t = "kc-off";
    let first: String = (0..10).map(|i| format!("v{i}\n")).collect();
    let second: String = (10..20).map(|i| format!("v{i}\n")).collect();
    kcat_ok(&node, &["-P", "-t", t, "-X", "acks=all"], &first);
    std::thread::sleep(Duration::from_millis(200));
    let split = now_ms().to_string();
    std::thread::sleep(Duration::from_millis(200));
    kcat_ok(&node, &["-P", "-t", t, "-X", "acks=all"], &second);
    let offsets = |out: &Out| -> Vec<u64> {
        out.stdout.lines().map(|l| l.parse().expect("offset")).collect()
    };

    // From the middle.
    let out = kcat_ok(&node, &["-C", "-t", t, "-o", "7", "-e", "-f", "%o\n"], "");
    assert_eq!(offsets(&out), (7..20).collect::<Vec<_>>(), "{}", out.text());
    let out = kcat_ok(&node, &["-C", "-t", t, "-o", "7", "-c", "2", "-f", "%o %s\n"], "");
    assert_eq!(lines(&out), ["7 v7", "8 v8"], "{}", out.text());
    // Relative to the end, and at the end.
    let out = kcat_ok(&node, &["-C", "-t", t, "-o", "-3", "-e", "-f", "%o\n"], "");
    assert_eq!(offsets(&out), [17, 18, 19], "{}", out.text());
    let out = kcat_ok(&node, &["-C", "-t", t, "-o", "end", "-e", "-f", "%o\n"], "");
    assert!(out.stdout.is_empty(), "{}", out.text());
    assert!(out.stderr.contains("Reached end of topic kc-off [0] at offset 20"), "{}", out.text());

    // Past the end: out of range, reset to the end (the default), no data.
    let out = kcat_ok(&node, &["-C", "-t", t, "-o", "100", "-e", "-f", "%o\n"], "");
    assert!(out.stdout.is_empty(), "{}", out.text());
    assert!(out.stderr.contains("Offset out of range"), "{}", out.text());
    assert!(out.stderr.contains("Reached end of topic kc-off [0] at offset 20"), "{}", out.text());
    // ...and with auto.offset.reset=error, an error.
    let out = kcat(
        &node,
        &["-C", "-t", t, "-o", "100", "-e", "-f", "%o\n", "-X", "auto.offset.reset=error"],
        "",
    );
    assert!(out.stdout.is_empty(), "{}", out.text());
    assert!(
        out.stderr.contains("ERROR") && out.stderr.contains("Offset out of range"),
        "{}",
        out.text()
    );

    // By time: s@ starts at the first record at or after the time, e@ stops before it.
    let out = kcat_ok(&node, &["-C", "-t", t, "-o", &format!("s@{split}"), "-e", "-f", "%o\n"], "");
    assert_eq!(offsets(&out), (10..20).collect::<Vec<_>>(), "{}", out.text());
    let out = kcat_ok(&node, &["-C", "-t", t, "-o", &format!("e@{split}"), "-e", "-f", "%o\n"], "");
    assert_eq!(offsets(&out), (0..10).collect::<Vec<_>>(), "{}", out.text());
    let out = kcat_ok(&node, &["-Q", "-t", &format!("{t}:0:{split}")], "");
    assert!(out.stdout.contains("kc-off [0] offset 10"), "{}", out.text());
    let out = kcat_ok(&node, &["-Q", "-t", &format!("{t}:0:1")], "");
    assert!(out.stdout.contains("kc-off [0] offset 0"), "{}", out.text());
    let later = (now_ms() + 3_600_000).to_string();
    let out = kcat_ok(&node, &["-Q", "-t", &format!("{t}:0:{later}")], "");
    assert!(out.stdout.contains("kc-off [0] offset -1"), "{}", out.text());
}

// --- confluent-kafka -------------------------------------------------------------------------

#[test]
fn confluent_admin_creates_lists_and_deletes_topics() {
    let scratch = Scratch::new();
    let node = Node::start(&scratch, &[]);
    let out = script(&node, "confluent_check.py", &["admin"]);
    assert!(out.stdout.contains("OK admin"), "{}", out.text());
}

#[test]
fn confluent_describes_and_alters_configs_adds_partitions_and_deletes_records() {
    let scratch = Scratch::new();
    let node = Node::start(&scratch, &[]);
    let out = script(&node, "confluent_check.py", &["configs"]);
    assert!(out.stdout.contains("OK configs"), "{}", out.text());
}

#[test]
fn confluent_round_trips_every_codec_and_acks_level_over_four_partitions() {
    let scratch = Scratch::new();
    let node = Node::start(&scratch, &[]);
    let out = script(&node, "confluent_check.py", &["roundtrip", "--count", "40"]);
    assert!(out.stdout.contains("OK roundtrip"), "{}", out.text());
    node.assert_codecs(&codec_topics("cf", true));
}

/// With the recent-batch cache off, every fetch reads the segment files: by a copy through
/// memory, and by io_uring splice (file → pipe → socket).
#[test]
fn fetches_from_segment_files_by_copy_and_by_splice() {
    for mode in ["copy", "splice"] {
        let scratch = Scratch::new();
        let config = scratch.dir.path().join("odradek.toml");
        let text = format!("fetch_cache_bytes = 0\nfetch_disk_reads = \"{mode}\"\n");
        std::fs::write(&config, text).expect("write the config file");
        let node = Node::start(&scratch, &["--config", config.to_str().expect("utf8 path")]);
        let out = script(&node, "confluent_check.py", &["roundtrip", "--count", "40"]);
        assert!(out.stdout.contains("OK roundtrip"), "{mode}: {}", out.text());
        let out = script(&node, "kafka_python_check.py", &["roundtrip"]);
        assert!(out.stdout.contains("OK roundtrip"), "{mode}: {}", out.text());
    }
}

#[test]
fn confluent_consumes_from_offsets_and_timestamps() {
    let scratch = Scratch::new();
    let node = Node::start(&scratch, &[]);
    let out = script(&node, "confluent_check.py", &["offsets"]);
    assert!(out.stdout.contains("OK offsets"), "{}", out.text());
}

// --- kafka-python ----------------------------------------------------------------------------

#[test]
fn kafka_python_admin_creates_and_deletes_topics() {
    let scratch = Scratch::new();
    let node = Node::start(&scratch, &[]);
    let out = script(&node, "kafka_python_check.py", &["admin"]);
    assert!(out.stdout.contains("OK admin"), "{}", out.text());
}

#[test]
fn kafka_python_describes_log_dirs_with_partition_sizes() {
    let scratch = Scratch::new();
    let node = Node::start(&scratch, &[]);
    let dir = scratch.data_dir();
    let dir = dir.to_str().expect("utf-8 path");
    let out = script(&node, "kafka_python_check.py", &["logdirs", "--data-dir", dir]);
    assert!(out.stdout.contains("OK logdirs"), "{}", out.text());
}

#[test]
fn kafka_python_round_trips_every_codec() {
    let scratch = Scratch::new();
    let node = Node::start(&scratch, &[]);
    let out = script(&node, "kafka_python_check.py", &["roundtrip", "--count", "40"]);
    assert!(out.stdout.contains("OK roundtrip"), "{}", out.text());
    node.assert_codecs(&codec_topics("kp", false));
}

#[test]
fn kafka_python_seeks_and_looks_up_offsets() {
    let scratch = Scratch::new();
    let node = Node::start(&scratch, &[]);
    let out = script(&node, "kafka_python_check.py", &["offsets"]);
    assert!(out.stdout.contains("OK offsets"), "{}", out.text());
}

// --- aiokafka --------------------------------------------------------------------------------

#[test]
fn aiokafka_round_trips_every_codec_and_acks_level() {
    let scratch = Scratch::new();
    // aiokafka's topics are auto-created on first produce, with 4 partitions.
    let node = Node::start(&scratch, &["--default-partitions", "4"]);
    let out = script(&node, "aiokafka_check.py", &["roundtrip", "--count", "40"]);
    assert!(out.stdout.contains("OK roundtrip"), "{}", out.text());
    node.assert_codecs(&codec_topics("ai", true));
}

// --- durability ------------------------------------------------------------------------------

#[test]
fn acknowledged_records_survive_a_graceful_restart() {
    let scratch = Scratch::new();
    let n = "500";
    let mut node = Node::start(&scratch, &[]);
    script(&node, "confluent_check.py", &["produce", "--topic", "durable", "--count", n]);
    let status = node.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status}{}", node.logs());
    drop(node);

    let node = Node::start(&scratch, &[]);
    let out = script(&node, "confluent_check.py", &["consume", "--topic", "durable", "--count", n]);
    assert!(out.stdout.contains("OK consumed exactly 500"), "{}", out.text());
    // The log continues after the restored end.
    kcat_ok(&node, &["-P", "-t", "durable", "-p", "0", "-X", "acks=all"], "after-restart\n");
    let out = kcat_ok(&node, &["-C", "-t", "durable", "-o", "500", "-e", "-f", "%o %s\n"], "");
    assert_eq!(lines(&out), ["500 after-restart"], "{}", out.text());
}
