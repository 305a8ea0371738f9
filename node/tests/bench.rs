//! `odradek-bench` against a real Odradek node on 127.0.0.1: produce, consume and e2e with
//! exact counts, and librdkafka (kcat) reading back every record the bench's encoder wrote.
//!
//! It lives with the node's tests to share their node harness and `CARGO_BIN_EXE_odradek`. The
//! bench binary is the `odradek-bench` next to `odradek`, (re)built first with `cargo build -p
//! odradek-bench` (a no-op when `cargo test --workspace` already built it). The kcat check is
//! skipped (with a message) when kcat is not installed.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use common::Node;

/// The bench binary of the same profile, built once per test process.
fn bench_binary() -> &'static Path {
    static BENCH: OnceLock<PathBuf> = OnceLock::new();
    BENCH.get_or_init(|| {
        let dir = Path::new(env!("CARGO_BIN_EXE_odradek")).parent().expect("binary directory");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
        cmd.args(["build", "--quiet", "-p", "odradek-bench", "--bin", "odradek-bench"]);
        if dir.file_name().is_some_and(|d| d == "release") {
            cmd.arg("--release");
        }
        let ok = cmd
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build")
            .success();
        let bench = dir.join("odradek-bench");
        assert!(ok && bench.exists(), "could not build {}", bench.display());
        bench
    })
}

/// Runs the bench (bounded by `timeout`-free flags: every run here has --records or a short
/// --duration) and returns its JSON summary.
fn bench(args: &[&str], json: &Path) -> serde_json::Value {
    let out = Command::new(bench_binary())
        .args(args)
        .args(["--quiet", "--json"])
        .arg(json)
        .output()
        .expect("run odradek-bench");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "odradek-bench {args:?} failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(json).expect("json written"))
        .expect("json parses")
}

fn u(v: &serde_json::Value, path: &[&str]) -> u64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_u64().unwrap_or_else(|| panic!("{path:?} in {v}"))
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_micros() as u64
}

#[test]
fn produce_then_consume_then_kcat_reads_every_record() {
    let node = Node::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let t0 = now_us();
    let n = 3000;
    let records = n.to_string();
    let p = bench(
        &[
            "produce",
            "--brokers",
            &node.addr(),
            "--topic",
            "pc",
            "--partitions",
            "4",
            "--records",
            &records,
            "--keys",
            "uniform:50",
            "--compression",
            "lz4",
            "--acks",
            "all",
            "--idempotence",
            "--batch-size",
            "4KiB",
            "--duration",
            "30s",
        ],
        &dir.path().join("p.json"),
    );
    let t1 = now_us();
    assert_eq!(u(&p, &["produce", "records"]), n);
    assert_eq!(u(&p, &["produce", "errors"]), 0);
    assert_eq!(u(&p, &["latency", "produce", "count"]), n);
    assert!(dir.path().join("p.produce.hgrm").exists());

    let c = bench(
        &["consume", "--brokers", &node.addr(), "--topic", "pc", "--consumers", "2"],
        &dir.path().join("c.json"),
    );
    assert_eq!(u(&c, &["consume", "records"]), n);
    assert_eq!(u(&c, &["consume", "errors"]), 0);

    kcat_check(&node.addr(), "pc", n, 4, (t0, t1));
}

/// librdkafka reads what the bench's encoder wrote: every record's key, value size, timestamp
/// and the timestamp embedded in its value; offsets dense per partition; one partition per key.
fn kcat_check(addr: &str, topic: &str, n: u64, partitions: u32, (t0, t1): (u64, u64)) {
    if Command::new("kcat").arg("-V").output().is_err() {
        eprintln!("kcat not installed: librdkafka check skipped");
        return;
    }
    let out = Command::new("kcat")
        .args(["-C", "-b", addr, "-t", topic, "-e", "-q", "-f", "%p|%o|%k|%S|%T|%s\n"])
        .output()
        .expect("run kcat");
    assert!(out.status.success(), "kcat: {}", String::from_utf8_lossy(&out.stderr));
    let mut rest = &out.stdout[..];
    let mut offsets: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
    let mut key_partition: BTreeMap<String, u32> = BTreeMap::new();
    let mut count = 0;
    while !rest.is_empty() {
        let mut fields = Vec::new();
        for _ in 0..5 {
            let i = rest.iter().position(|&b| b == b'|').expect("field separator");
            fields.push(String::from_utf8(rest[..i].to_vec()).expect("ascii field"));
            rest = &rest[i + 1..];
        }
        let size: usize = fields[3].parse().expect("value size");
        let value = &rest[..size];
        assert_eq!(rest[size], b'\n');
        rest = &rest[size + 1..];
        let p: u32 = fields[0].parse().expect("partition");
        offsets.entry(p).or_default().push(fields[1].parse().expect("offset"));
        let key = fields[2].clone();
        assert!(key.len() == 11 && key.starts_with('k'), "key {key}");
        assert!(key[1..].parse::<u64>().expect("key number") < 50);
        assert_eq!(*key_partition.entry(key).or_insert(p), p, "a key in two partitions");
        assert_eq!(size, 100);
        let stamp = u64::from_be_bytes(value[..8].try_into().expect("8 bytes"));
        assert!((t0..=t1).contains(&stamp), "embedded stamp {stamp} outside the run [{t0}, {t1}]");
        let ts_ms: u64 = fields[4].parse().expect("timestamp");
        assert_eq!(ts_ms, stamp / 1000, "record timestamp and embedded stamp disagree");
        count += 1;
    }
    assert_eq!(count, n);
    assert_eq!(offsets.len() as u32, partitions, "records in every partition");
    for (p, mut o) in offsets {
        o.sort_unstable();
        let want: Vec<i64> = (0..o.len() as i64).collect();
        assert_eq!(o, want, "offsets of partition {p} are not dense from 0");
    }
    let keys: BTreeSet<&String> = key_partition.keys().collect();
    assert_eq!(keys.len(), 50);
}

#[test]
fn e2e_open_loop_receives_every_acknowledged_record() {
    let node = Node::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let s = bench(
        &[
            "e2e",
            "--brokers",
            &node.addr(),
            "--topic",
            "e2e",
            "--partitions",
            "3",
            "--producers",
            "2",
            "--consumers",
            "2",
            "--rate",
            "2000",
            "--duration",
            "2s",
            "--compression",
            "zstd",
            "--linger",
            "2ms",
        ],
        &dir.path().join("e.json"),
    );
    let produced = u(&s, &["produce", "records"]);
    // 2 s at 2000/s: 4000 records, give or take the pacer's last tick.
    assert!((3900..=4002).contains(&produced), "{produced}");
    assert_eq!(u(&s, &["consume", "records"]), produced);
    assert_eq!(u(&s, &["latency", "e2e", "count"]), produced);
    assert_eq!(u(&s, &["latency", "produce", "count"]), produced);
    assert_eq!(u(&s, &["produce", "errors"]), 0);
    let p50 = u(&s, &["latency", "e2e", "percentiles_us", "p50"]);
    let max = u(&s, &["latency", "e2e", "max_us"]);
    assert!(p50 > 0 && p50 <= max && max < 10_000_000, "e2e p50 {p50} max {max}");
}

#[test]
fn a_consumer_group_shares_the_partitions_and_resumes_at_its_commits() {
    let node = Node::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = node.addr();
    let common = ["--brokers", &addr, "--topic", "grp", "--group", "bench-group"];
    let e2e = [
        &common[..],
        &["--partitions", "4", "--consumers", "3", "--rate", "1000", "--duration", "2s"],
    ]
    .concat();
    let s = bench(&[&["e2e"][..], &e2e].concat(), &dir.path().join("g.json"));
    let produced = u(&s, &["produce", "records"]);
    assert!(produced >= 1900, "{produced}");
    assert_eq!(u(&s, &["consume", "records"]), produced);
    // The group committed where it stopped: it reads exactly the records produced since.
    let p = bench(
        &["produce", "--brokers", &addr, "--topic", "grp", "--records", "500"],
        &dir.path().join("p.json"),
    );
    assert_eq!(u(&p, &["produce", "records"]), 500);
    let c =
        [&["consume"][..], &common, &["--consumers", "2", "--records", "500", "--duration", "20s"]]
            .concat();
    let c = bench(&c, &dir.path().join("c.json"));
    assert_eq!(u(&c, &["consume", "records"]), 500);
}

#[test]
fn a_missing_broker_is_a_clean_error() {
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let out = Command::new(bench_binary())
        .args(["produce", "--brokers", &format!("127.0.0.1:{port}"), "--records", "10", "--quiet"])
        .output()
        .expect("run odradek-bench");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("connecting to"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
