//! The admin listener against a real node: `/metrics` (checked by Prometheus's own `promtool`
//! and scraped by a real Prometheus whose PromQL answers are read back), `/health`, `/ready`,
//! bad HTTP, the latency breakdown in Produce and Fetch responses, and the Grafana dashboard's
//! every query.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::process::run_bounded;
use common::{Node, batch, call, create_topic_with};
use kafka_protocol::messages::{FetchResponse, ProduceResponse};
use odradek_client::requests::{self, FetchLimits};
use odradek_client::stages::{self, Kind, STAGES_TAG, Stage};
use odradek_records::Codec;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port()
}

/// A node with its admin listener on a free port; returns it and the admin address.
fn node_with_admin() -> (Node, String) {
    let admin = format!("127.0.0.1:{}", free_port());
    (Node::start_args(&["--admin-listen", &admin]), admin)
}

/// Sends `request` raw and returns the whole answer (the server closes after answering), or
/// `None` when nothing listens or the connection is closed without an answer.
fn http_raw(addr: &str, request: &[u8]) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    s.write_all(request).expect("send");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    (!out.is_empty()).then(|| String::from_utf8_lossy(&out).into_owned())
}

/// GET `path`: (status code, body).
fn get(addr: &str, path: &str) -> (u16, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let answer = http_raw(addr, req.as_bytes()).expect("an answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status code");
    (status, body.to_owned())
}

/// The value of the series `series` (name with its labels, as printed) in a scrape.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

/// A response's stage times, in microseconds.
type Breakdown = Vec<(Stage, u64)>;

/// Produces `n` single-record batches (acks=all, Produce v9) and reads them back with Fetch
/// v12; returns the stage breakdowns the two answers carried.
fn produce_and_fetch(node: &Node, topic: &str, n: usize) -> (Breakdown, Breakdown) {
    let mut s = node.connect();
    let mut produced = Vec::new();
    for i in 0..n {
        let value = format!("record-{i}");
        let req = requests::produce(
            requests::topic_name(topic),
            -1,
            5000,
            [(0, batch(Codec::None, &[value.as_bytes()]))],
        );
        let resp: ProduceResponse = call(&mut s, 9, &req);
        assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
        let field = resp.unknown_tagged_fields.get(&STAGES_TAG).expect("the breakdown field");
        let (kind, times) = stages::decode(field).expect("a breakdown this client reads");
        assert_eq!(kind, Kind::Produce);
        produced = times;
    }
    let limits = FetchLimits {
        max_wait_ms: 0,
        min_bytes: 1,
        max_bytes: 1 << 20,
        partition_max_bytes: 1 << 20,
    };
    let req = requests::fetch(requests::topic_name(topic), &[(0, 0)], limits);
    let resp: FetchResponse = call(&mut s, 12, &req);
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    assert!(p.high_watermark >= n as i64, "{} < {n}", p.high_watermark);
    let field = resp.unknown_tagged_fields.get(&STAGES_TAG).expect("the breakdown field");
    let (kind, fetched) = stages::decode(field).expect("a breakdown this client reads");
    assert_eq!(kind, Kind::Fetch);
    (produced, fetched)
}

/// A consumer group reads `topic` to its end with kcat and commits (librdkafka commits on
/// close).
fn group_reads(node: &Node, group: &str, topic: &str) -> usize {
    let mut cmd = Command::new("kcat");
    cmd.args(["-C", "-b", &node.addr(), "-G", group, topic, "-o", "beginning", "-e", "-q"]);
    let out = run_bounded(&mut cmd, b"", Duration::from_secs(60))
        .unwrap_or_else(|o| panic!("kcat did not finish: {}", o.text()));
    assert!(out.status.success(), "{}", out.text());
    out.stdout.lines().count()
}

#[test]
fn health_ready_and_bad_http() {
    let (_node, admin) = node_with_admin();
    assert_eq!(get(&admin, "/health"), (200, "ok\n".into()));
    assert_eq!(get(&admin, "/ready"), (200, "ready\n".into()));
    assert_eq!(get(&admin, "/nope").0, 404);
    let post = http_raw(&admin, b"POST /metrics HTTP/1.1\r\n\r\n").expect("an answer");
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    let garbage = http_raw(&admin, b"\x16\x03\x01 hello\r\n\r\n").expect("an answer");
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
    // A head that never ends is cut off at its bound, without an answer.
    let endless = vec![b'a'; 64 * 1024];
    assert!(http_raw(&admin, &endless).is_none(), "an oversize head closes the connection");
    assert_eq!(get(&admin, "/health").0, 200, "the listener still serves");
}

#[test]
fn an_admin_port_given_but_taken_refuses_the_start() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port().to_string();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_odradek"));
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--admin-listen", &addr])
        .arg("--data-dir")
        .arg(dir.path().join("data"));
    let out = run_bounded(&mut cmd, b"", Duration::from_secs(30))
        .unwrap_or_else(|o| panic!("the node did not exit: {}", o.text()));
    assert!(!out.status.success(), "{}", out.text());
    let line = out.stderr.lines().find(|l| l.starts_with("odradek: ")).expect("one error line");
    assert!(line.contains("admin API") && line.contains("Fix:"), "{line}");
}

#[test]
fn metrics_follow_what_clients_do_and_pass_promtool() {
    let (node, admin) = node_with_admin();
    create_topic_with(&mut node.connect(), "orders", 1, &[]);
    let (produced, fetched) = produce_and_fetch(&node, "orders", 20);
    let names = |t: &[(Stage, u64)]| t.iter().map(|(s, _)| *s).collect::<Vec<_>>();
    assert_eq!(
        names(&produced),
        [Stage::Receive, Stage::Validate, Stage::Hop, Stage::Write, Stage::Fsync, Stage::Replicate]
    );
    assert_eq!(names(&fetched), [Stage::Receive, Stage::Hop, Stage::Read, Stage::Wait]);
    assert!(produced.iter().any(|&(s, us)| s == Stage::Write && us > 0), "{produced:?}");
    assert_eq!(group_reads(&node, "billing", "orders"), 20);

    let (status, text) = get(&admin, "/metrics");
    assert_eq!(status, 200);
    let at = |series: &str| value(&text, series).unwrap_or_else(|| panic!("no {series}:\n{text}"));
    let p = "{topic=\"orders\",partition=\"0\"}";
    assert_eq!(at(&format!("odradek_partition_log_end_offset{p}")), 20.0);
    assert_eq!(at(&format!("odradek_partition_high_watermark{p}")), 20.0);
    assert!(at(&format!("odradek_partition_size_bytes{p}")) > 20.0 * 10.0);
    assert_eq!(at(&format!("odradek_partition_leader{p}")), 1.0);
    assert_eq!(at("odradek_topic_records_in_total{topic=\"orders\"}"), 20.0);
    assert!(at("odradek_topic_bytes_out_total{topic=\"orders\"}") > 0.0);
    let g = "{group=\"billing\",topic=\"orders\",partition=\"0\"}";
    assert_eq!(at(&format!("odradek_group_committed_offset{g}")), 20.0);
    assert_eq!(at(&format!("odradek_group_lag{g}")), 0.0);
    assert!(at("odradek_requests_total{api=\"Produce\"}") >= 20.0);
    assert!(at("odradek_request_duration_seconds_count{api=\"Fetch\"}") >= 1.0);
    assert!(
        at("odradek_request_stage_duration_seconds_count{api=\"Produce\",stage=\"fsync\"}") >= 20.0
    );
    assert!(at("odradek_storage_fsync_duration_seconds_count") >= 1.0);
    assert!(at("odradek_storage_write_duration_seconds_count") >= 20.0);
    assert_eq!(at("odradek_active_controller"), 1.0);
    assert_eq!(at("odradek_live_brokers"), 1.0);
    assert_eq!(at("odradek_under_replicated_partitions"), 0.0);
    assert_eq!(at("odradek_offline_partitions"), 0.0);
    assert_eq!(at("odradek_scrape_shards_unanswered"), 0.0);
    assert!(at("odradek_shard_busy_seconds_total{shard=\"0\"}") > 0.0);

    // More records, no reads: the group's lag grows by as many.
    produce_and_fetch(&node, "orders", 5);
    let (_, text) = get(&admin, "/metrics");
    assert_eq!(value(&text, &format!("odradek_group_lag{g}")), Some(25.0 - 20.0));

    // Prometheus's own checker: format, and its naming lints (units, _total on counters).
    let mut check = Command::new("promtool");
    check.args(["check", "metrics"]);
    let out = run_bounded(&mut check, text.as_bytes(), Duration::from_secs(30))
        .unwrap_or_else(|o| panic!("promtool did not finish: {}", o.text()));
    assert!(out.status.success(), "promtool check metrics: {}", out.text());
}

/// A Prometheus server scraping `target` every second, on a free port; killed on drop.
struct Prometheus {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: odradek\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .expect("write the config");
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus (scripts/test.sh installs the prometheus package)");
        Prometheus { child, addr, _dir: dir }
    }

    /// An instant PromQL query through the HTTP API: the `data.result` array.
    fn query(&self, promql: &str) -> Result<Vec<serde_json::Value>, String> {
        let mut encoded = String::new();
        for b in promql.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                encoded.push(b as char);
            } else {
                encoded.push_str(&format!("%{b:02X}"));
            }
        }
        let req = format!(
            "GET /api/v1/query?query={encoded} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        let answer = http_raw(&self.addr, req.as_bytes()).ok_or("no answer")?;
        let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).ok_or("no body")?;
        // Prometheus may answer chunked: the JSON object is between the outer braces.
        let json = &body[body.find('{').ok_or("no JSON")?..=body.rfind('}').ok_or("no JSON")?];
        let v: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("{e}: {json}"))?;
        if v["status"] != "success" {
            return Err(format!("{promql}: {v}"));
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// Waits until `promql` returns at least one series, at most `limit`.
    fn wait_for(&self, promql: &str, limit: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + limit;
        loop {
            match self.query(promql) {
                Ok(r) if !r.is_empty() => return r,
                other if Instant::now() > deadline => panic!("{promql}: {other:?}"),
                _ => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The dashboard's queries with Grafana's variables given values Prometheus takes.
fn dashboard_queries() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/grafana-dashboard.json");
    let text = std::fs::read_to_string(&path).expect("ops/grafana-dashboard.json");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut out = Vec::new();
    for panel in dash["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("an expr");
            out.push(expr.replace("$__rate_interval", "20s").replace("$instance", ".*"));
        }
    }
    assert!(out.len() >= 20, "the dashboard has {} queries", out.len());
    out
}

/// The metric names a query uses.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("odradek_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        names.insert(expr[start..end].to_owned());
        i = end;
    }
    names
}

#[test]
fn prometheus_scrapes_a_loaded_node_and_every_dashboard_query_answers() {
    let (node, admin) = node_with_admin();
    create_topic_with(&mut node.connect(), "clicks", 1, &[]);
    let prometheus = Prometheus::start(&admin);
    prometheus.wait_for("up{job=\"odradek\"} == 1", Duration::from_secs(60));
    // Load while Prometheus scrapes: rate() needs two scrapes of a moving counter.
    let began = Instant::now();
    let mut rounds = 0;
    while began.elapsed() < Duration::from_secs(6) {
        produce_and_fetch(&node, "clicks", 10 * (rounds + 1));
        rounds += 1;
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(group_reads(&node, "dash", "clicks") > 0);
    produce_and_fetch(&node, "clicks", 10);
    std::thread::sleep(Duration::from_secs(3));

    // The series an operator graphs: request latency and consumer lag.
    let p99 = "histogram_quantile(0.99, sum by (le) (rate(odradek_request_duration_seconds_bucket{api=\"Produce\"}[20s])))";
    let r = prometheus.wait_for(p99, Duration::from_secs(30));
    let seconds: f64 = r[0]["value"][1].as_str().and_then(|v| v.parse().ok()).expect("a number");
    assert!(seconds > 0.0 && seconds < 10.0, "Produce p99 {seconds} s");
    let lag = prometheus
        .wait_for("odradek_group_lag{group=\"dash\",topic=\"clicks\"}", Duration::from_secs(30));
    let lag: f64 = lag[0]["value"][1].as_str().and_then(|v| v.parse().ok()).expect("a number");
    assert_eq!(lag, 10.0, "the group read everything but the last 10 records");
    for promql in [
        "odradek_partition_log_end_offset{topic=\"clicks\"}",
        "sum(rate(odradek_topic_bytes_in_total{topic=\"clicks\"}[20s])) > 0",
        "odradek_request_stage_duration_seconds_bucket{api=\"Fetch\",stage=\"wait\"}",
        "odradek_storage_fsync_duration_seconds_count > 0",
        "odradek_active_controller == 1",
    ] {
        prometheus.wait_for(promql, Duration::from_secs(30));
    }

    // Every query of the Grafana dashboard is valid PromQL over metrics a live node exports.
    let (_, text) = get(&admin, "/metrics");
    let exported: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    for q in dashboard_queries() {
        for name in metric_names(&q) {
            assert!(exported.contains(name.as_str()), "the dashboard queries {name}, not exported");
        }
        if let Err(e) = prometheus.query(&q) {
            panic!("dashboard query refused by Prometheus: {e}");
        }
    }
}
