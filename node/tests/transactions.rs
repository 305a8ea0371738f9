//! Transactions (issue 17) against real `odradek serve` processes.
//!
//! - confluent-kafka and kafka-python transactional producers (`tests/clients/txn_check.py`):
//!   commit and abort seen exactly by read_committed and read_uncommitted consumers, the last
//!   stable offset while a transaction is open, fencing by a second producer with the same
//!   transactional id, the coordinator aborting a transaction past its timeout, and two
//!   producers' transactions interleaved on one partition, one committing, one aborting.
//! - Consume-transform-produce (`tests/clients/txn_eos.py`): a confluent-kafka processor
//!   SIGKILLed at seeded random moments and the node SIGKILLed under it; every input's result is
//!   in the output exactly once for read_committed readers, and a live read_committed watcher
//!   never sees a record of an aborted transaction. The same on three nodes with replication
//!   factor 3, killing the transaction coordinator's and the output partition's leaders.
//! - The protocol by hand (kafka-protocol types): a transaction's last stable offset and its
//!   aborted-transaction list in Fetch, a commit interrupted by SIGKILL completed after the
//!   restart; and bad input (unknown or fenced producers, partitions never added, control
//!   batches from clients, markers for partitions this node does not lead) refused with Kafka's
//!   error codes, nothing written, the node alive.
//!
//! Every wait is bounded. Sizes are small for CI; `TXN_SOAK=1` runs the exactly-once tests
//! with more records and kills, `TXN_SEED=<n>` replays another kill schedule.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::cluster::{self, Cluster, call_addr, wait_until};
use common::process::{Out, run_bounded};
use common::{Node, call, create_topic, create_topic_with, init_producer_id, records_of};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeTransactionsRequest, DescribeTransactionsResponse,
    EndTxnRequest, EndTxnResponse, FetchResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    GroupId, InitProducerIdRequest, InitProducerIdResponse, ListTransactionsRequest,
    ListTransactionsResponse, OffsetFetchRequest, OffsetFetchResponse, ProduceResponse, ProducerId,
    TopicName, TransactionalId, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
    WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;
use odradek_client::requests::{self, FetchLimits};
use odradek_records::{BatchParams, Codec, Record, build_batch};

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const CONCURRENT_TRANSACTIONS: i16 = 51;
const INVALID_RECORD: i16 = 87;
const PRODUCER_FENCED: i16 = 90;

/// Bound on one txn_check.py mode (its own waits are shorter; the timeout mode waits up to
/// 30 s for the coordinator's abort).
const CHECK_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound on any protocol-level wait (a coordinator loading, markers landing).
const WAIT: Duration = Duration::from_secs(30);

fn soak() -> bool {
    std::env::var_os("TXN_SOAK").is_some()
}

fn seed() -> u64 {
    std::env::var("TXN_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(17)
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients").join(name)
}

// --- txn_check.py: the clients' transactional producers against one node ------------------

fn txn_check(client: &str, mode: &str) {
    let node = Node::start();
    let out: Out = run_bounded(
        Command::new("python3").arg(script("txn_check.py")).args([
            "--bootstrap",
            &node.addr(),
            "--client",
            client,
            "--mode",
            mode,
        ]),
        b"",
        CHECK_TIMEOUT,
    )
    .unwrap_or_else(|o| {
        panic!("txn_check.py {client} {mode}: not done in {CHECK_TIMEOUT:?}\n{}", o.text())
    });
    assert!(
        out.status.success() && out.stdout.contains(&format!("OK {mode}")),
        "txn_check.py {client} {mode} ({})\n{}",
        out.status,
        out.text()
    );
    println!("{}", out.stdout);
}

#[test]
fn confluent_commit_and_abort_seen_exactly_by_each_isolation_level() {
    txn_check("confluent", "commit-abort");
}

#[test]
fn kafka_python_commit_and_abort_seen_exactly_by_each_isolation_level() {
    txn_check("kafka-python", "commit-abort");
}

#[test]
fn confluent_open_transaction_holds_the_last_stable_offset() {
    txn_check("confluent", "lso");
}

#[test]
fn kafka_python_open_transaction_holds_the_last_stable_offset() {
    txn_check("kafka-python", "lso");
}

#[test]
fn confluent_second_producer_fences_the_first_and_aborts_its_transaction() {
    txn_check("confluent", "fence");
}

#[test]
fn kafka_python_second_producer_fences_the_first_and_aborts_its_transaction() {
    txn_check("kafka-python", "fence");
}

#[test]
fn confluent_abandoned_transaction_is_aborted_on_timeout() {
    txn_check("confluent", "timeout");
}

#[test]
fn kafka_python_abandoned_transaction_is_aborted_on_timeout() {
    txn_check("kafka-python", "timeout");
}

#[test]
fn confluent_interleaved_transactions_of_two_producers_are_told_apart() {
    txn_check("confluent", "interleaved");
}

#[test]
fn kafka_python_interleaved_transactions_of_two_producers_are_told_apart() {
    txn_check("kafka-python", "interleaved");
}

// --- txn_eos.py: consume-transform-produce under SIGKILLs -----------------------------------

/// A small deterministic generator for the kill schedule (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// A Python client process whose stdout lines are collected as they come (stderr kept too).
struct Client {
    name: String,
    child: Child,
    rx: mpsc::Receiver<String>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Client {
    fn spawn(name: &str, args: &[String]) -> Client {
        let mut child = Command::new("python3")
            .arg(script("txn_eos.py"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start txn_eos.py");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().expect("lock").push(line.clone());
                let _ = tx.send(line);
            }
        });
        let err = child.stderr.take().expect("stderr");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                sink.lock().expect("lock").push(format!("stderr: {line}"));
            }
        });
        Client { name: name.to_owned(), child, rx, lines }
    }

    /// The exit status if it has exited.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("poll the client")
    }

    fn kill(&mut self) {
        if self.exited().is_none() {
            let _ = Command::new("kill").args(["-KILL", &self.child.id().to_string()]).status();
        }
        let _ = self.child.wait();
    }

    /// The last `n` lines it printed (stdout and stderr).
    fn tail(&self, n: usize) -> String {
        let lines = self.lines.lock().expect("lock");
        let from = lines.len().saturating_sub(n);
        format!(
            "--- {} (last {} lines) ---\n{}",
            self.name,
            lines.len() - from,
            lines[from..].join("\n")
        )
    }

    fn printed(&self, what: &str) -> bool {
        self.lines.lock().expect("lock").iter().any(|l| l.contains(what))
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the exactly-once run kills between processor progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kill {
    /// SIGKILL the processor, start a new one.
    Processor,
    /// SIGKILL the node (single node) and restart it.
    Node,
    /// SIGKILL the leader of the transactional id's `__transaction_state` partition (cluster).
    Coordinator,
    /// SIGKILL the leader of output partition 0 (cluster).
    OutputLeader,
}

/// The sizes of one exactly-once run.
struct EosPlan {
    count: u32,
    partitions: u32,
    replication_factor: u32,
    batch: u32,
    kills: Vec<Kill>,
    /// Bound on the whole run after seeding.
    limit: Duration,
}

impl EosPlan {
    fn args(&self, bootstrap: &str, mode: &str, deadline: Duration) -> Vec<String> {
        [
            "--bootstrap",
            bootstrap,
            "--mode",
            mode,
            "--count",
            &self.count.to_string(),
            "--partitions",
            &self.partitions.to_string(),
            "--replication-factor",
            &self.replication_factor.to_string(),
            "--batch",
            &self.batch.to_string(),
            "--abort-every",
            "5",
            "--pause-ms",
            "25",
            "--deadline",
            &deadline.as_secs().to_string(),
        ]
        .iter()
        .map(|s| (*s).to_string())
        .collect()
    }
}

/// The side that owns the node processes: it performs a node-level kill and says where
/// clients connect, and what the nodes logged (for failure messages).
trait Nodes {
    fn bootstrap(&self) -> String;
    fn kill(&mut self, what: Kill, rng: &mut Rng);
    fn logs(&self) -> String;
}

impl Nodes for Node {
    fn bootstrap(&self) -> String {
        self.addr()
    }

    fn kill(&mut self, what: Kill, _rng: &mut Rng) {
        assert_eq!(what, Kill::Node);
        self.kill_and_restart();
    }

    fn logs(&self) -> String {
        String::new()
    }
}

/// Runs a one-shot txn_eos.py mode (seed, verify) to success within `limit`.
fn eos_once(args: &[String], limit: Duration, nodes: &dyn Nodes) -> Out {
    let out = run_bounded(Command::new("python3").arg(script("txn_eos.py")).args(args), b"", limit)
        .unwrap_or_else(|o| {
            panic!("txn_eos.py {args:?}: not done in {limit:?}\n{}{}", o.text(), nodes.logs())
        });
    assert!(
        out.status.success(),
        "txn_eos.py {args:?} ({})\n{}{}",
        out.status,
        out.text(),
        nodes.logs()
    );
    println!("{}", out.stdout.trim());
    out
}

/// Fails the run with what the clients and nodes printed.
fn fail(what: String, processor: &Client, watcher: &Client, nodes: &dyn Nodes) -> ! {
    panic!("{what}\n{}\n{}{}", processor.tail(60), watcher.tail(20), nodes.logs())
}

/// Seeds the input, runs a processor (restarted whenever it dies) and a read_committed
/// watcher, performs `plan.kills` in order, each after the processor committed a few more
/// transactions (a seeded random number, then a random pause of up to 0.15 s so that kills
/// also land inside transactions); then waits for the processor's DONE and the watcher's OK
/// and verifies the output.
fn exactly_once_run(nodes: &mut dyn Nodes, plan: &EosPlan) {
    let seed = seed();
    println!("kill schedule seed {seed} (TXN_SEED), kills {:?}", plan.kills);
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let started = Instant::now();
    let left = |started: Instant| plan.limit.saturating_sub(started.elapsed());
    eos_once(
        &plan.args(&nodes.bootstrap(), "seed", Duration::from_secs(60)),
        Duration::from_secs(90),
        nodes,
    );

    let processor_args = |nodes: &dyn Nodes| plan.args(&nodes.bootstrap(), "process", plan.limit);
    let mut watcher = Client::spawn("watcher", &plan.args(&nodes.bootstrap(), "watch", plan.limit));
    let mut processor = Client::spawn("processor", &processor_args(nodes));
    let mut restarts = 0u32;
    let mut done = false;
    let mut performed = Vec::new();

    // Waits for `n` COMMITTED lines from the current processor, restarting it when it dies
    // (a fatal client error after a node kill, or its watchdog: librdkafka 2.16 can block in
    // send_offsets_to_transaction after the group coordinator went away, its issues #5456 and
    // #5511); true once it printed DONE.
    let wait_commits = |n: u64,
                        processor: &mut Client,
                        watcher: &mut Client,
                        restarts: &mut u32,
                        nodes: &dyn Nodes|
     -> bool {
        let mut seen = 0;
        while seen < n {
            if started.elapsed() > plan.limit {
                fail(
                    format!("no progress: not done within {:?}", plan.limit),
                    processor,
                    watcher,
                    nodes,
                );
            }
            // The watcher exits 0 once it saw every result (maybe before the processor's DONE).
            if let Some(s) = watcher.exited()
                && !s.success()
            {
                fail(format!("the watcher failed ({s})"), processor, watcher, nodes);
            }
            match processor.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) if line.starts_with("COMMITTED") => seen += 1,
                Ok(line) if line.starts_with("DONE") => return true,
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = processor.child.wait().expect("wait for the processor");
                    if status.success() && processor.printed("DONE") {
                        return true;
                    }
                    *restarts += 1;
                    println!(
                        "processor exited ({status}); restart {restarts}\n{}",
                        processor.tail(8)
                    );
                    if *restarts > 20 {
                        fail(
                            "the processor died more than 20 times".into(),
                            processor,
                            watcher,
                            nodes,
                        );
                    }
                    *processor = Client::spawn("processor", &processor_args(nodes));
                }
            }
        }
        false
    };

    for &kill in &plan.kills {
        let n = rng.range(1, 4);
        if wait_commits(n, &mut processor, &mut watcher, &mut restarts, nodes) {
            done = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(rng.range(0, 150)));
        println!("{:>6.1}s kill {kill:?}", started.elapsed().as_secs_f64());
        match kill {
            Kill::Processor => {
                processor.kill();
                processor = Client::spawn("processor", &processor_args(nodes));
            }
            other => nodes.kill(other, &mut rng),
        }
        performed.push(kill);
    }
    while !done {
        done = wait_commits(u64::MAX, &mut processor, &mut watcher, &mut restarts, nodes);
    }
    let status = processor.child.wait().expect("wait for the processor");
    assert!(status.success(), "processor after DONE: {status}\n{}", processor.tail(20));
    assert_eq!(
        performed, plan.kills,
        "the processor finished before every planned kill: the run proved less than planned"
    );
    println!(
        "{:>6.1}s processor done after {restarts} restarts after errors",
        started.elapsed().as_secs_f64()
    );

    // The watcher stops by itself once it saw every result (or fails at the first anomaly).
    let watch_limit = left(started).max(Duration::from_secs(30));
    let deadline = Instant::now() + watch_limit;
    let status = loop {
        if let Some(s) = watcher.exited() {
            break s;
        }
        if Instant::now() > deadline {
            fail(
                format!("the watcher did not see every result within {watch_limit:?}"),
                &processor,
                &watcher,
                nodes,
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if !status.success() || !watcher.printed("OK watch") {
        fail(format!("the read_committed watcher failed ({status})"), &processor, &watcher, nodes);
    }
    println!("{}", watcher.tail(1));
    let out = eos_once(
        &plan.args(&nodes.bootstrap(), "verify", Duration::from_secs(60)),
        Duration::from_secs(150),
        nodes,
    );
    assert!(out.stdout.contains("OK verify"), "{}", out.text());
}

#[test]
fn exactly_once_checker_self_test() {
    let out = run_bounded(
        Command::new("python3").arg(script("txn_eos.py")).args(["--mode", "self-test"]),
        b"",
        Duration::from_secs(60),
    )
    .unwrap_or_else(|o| panic!("self-test not done\n{}", o.text()));
    assert!(out.status.success() && out.stdout.contains("OK self-test"), "{}", out.text());
}

/// Consume-transform-produce on one node: the processor SIGKILLed and restarted five times,
/// the node SIGKILLed and restarted twice (TXN_SOAK: 20,000 records, 12 and 4).
#[test]
fn consume_transform_produce_is_exactly_once_across_processor_and_node_kills() {
    let mut node = Node::start();
    let (count, p, n) = if soak() { (20_000, 12, 4) } else { (4_000, 5, 2) };
    let mut kills = vec![Kill::Processor; p];
    // Node kills spread among the processor kills: after the 2nd, 4th, ... processor kill.
    for i in 0..n {
        kills.insert((2 * i + 2).min(kills.len()) + i, Kill::Node);
    }
    let plan = EosPlan {
        count,
        partitions: 3,
        replication_factor: 1,
        batch: 40,
        kills,
        limit: Duration::from_secs(if soak() { 900 } else { 200 }),
    };
    exactly_once_run(&mut node, &plan);
    node.assert_alive();
}

// --- The cluster variant ----------------------------------------------------------------

/// Three nodes; kills are SIGKILL, a pause of 1–4 s, and a restart.
struct Three {
    cluster: Cluster,
    transactional_id: String,
    output: String,
}

impl Three {
    /// The node id leading the transactional id's coordinator partition, as FindCoordinator
    /// answers at any live node.
    fn coordinator(&self) -> i32 {
        wait_until("the transaction coordinator", WAIT, || {
            let mut last = String::new();
            for id in self.cluster.ids() {
                let req = FindCoordinatorRequest::default()
                    .with_key(sb(&self.transactional_id))
                    .with_key_type(1);
                match call_addr::<_, FindCoordinatorResponse>(&self.cluster.addr(id), 3, &req) {
                    Ok(r) if r.error_code == 0 => return Ok(r.node_id.0),
                    Ok(r) => last = format!("error {}", r.error_code),
                    Err(e) => last = e,
                }
            }
            Err(last)
        })
    }

    fn output_leader(&self) -> i32 {
        wait_until("the output partition's leader", WAIT, || {
            for id in self.cluster.ids() {
                if let Ok(m) = cluster::topic_metadata_at(&self.cluster.addr(id), &self.output)
                    && let Some(p) = m.topics.get(&self.output).and_then(|t| t.partitions.first())
                    && p.leader >= 0
                {
                    return Ok(p.leader);
                }
            }
            Err("no leader".into())
        })
    }
}

impl Nodes for Three {
    fn bootstrap(&self) -> String {
        self.cluster.bootstrap()
    }

    fn kill(&mut self, what: Kill, rng: &mut Rng) {
        let victim = match what {
            Kill::Coordinator => self.coordinator(),
            Kill::OutputLeader => self.output_leader(),
            other => panic!("{other:?} on a cluster"),
        };
        println!("  {what:?} is node {victim}");
        self.cluster.kill(victim);
        std::thread::sleep(Duration::from_millis(rng.range(1000, 4000)));
        self.cluster.restart(victim);
    }

    fn logs(&self) -> String {
        self.cluster.logs()
    }
}

/// The same exactly-once run on three nodes, replication factor 3 for the input, the output
/// and the internal topics: SIGKILLs of the transactional id's coordinator (the leader of its
/// `__transaction_state` partition), of the output partition's leader, and of the processor.
/// First: WriteTxnMarkers at a node that does not lead the partition is refused.
#[test]
fn consume_transform_produce_is_exactly_once_across_leader_kills_on_three_nodes() {
    let cluster = Cluster::start(3, &[]);
    cluster.wait_formed();
    let mut three =
        Three { cluster, transactional_id: "eos-processor".into(), output: "eos-out".into() };

    // Markers for a partition at a follower (a replica that is not the leader): refused,
    // nothing written.
    let boot = three.cluster.addr(1);
    wait_until("CreateTopics markers", WAIT, || {
        match cluster::create_topic_rf_at(&boot, "markers", 1, 3, &[])? {
            (0, _) | (36, _) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let meta = wait_until("the markers topic's leader and in-sync followers", WAIT, || {
        let m = cluster::topic_metadata_at(&boot, "markers")?;
        match m.topics.get("markers").and_then(|t| t.partitions.first()) {
            Some(p) if p.leader >= 0 && p.isr.len() == 3 => Ok(p.clone()),
            other => Err(format!("{other:?}")),
        }
    });
    let follower = three.cluster.ids().into_iter().find(|&i| i != meta.leader).expect("another");
    let mut s =
        odradek_client::blocking::connect_tcp(&three.cluster.addr(follower)).expect("connect");
    // A new topic's ISR is all its replicas from the start, so the follower may not have
    // applied the topic yet: UNKNOWN_TOPIC_OR_PARTITION until it has (seen under load).
    wait_until("WriteTxnMarkers at a follower refused", WAIT, || {
        let codes = write_markers(&mut s, 4242, 0, false, "markers", &[0]);
        match codes.as_slice() {
            [c] if *c == NOT_LEADER_OR_FOLLOWER => Ok(()),
            [c] if *c == UNKNOWN_TOPIC_OR_PARTITION => Err(format!("{codes:?}")),
            _ => panic!("WriteTxnMarkers at node {follower}, not the leader: {codes:?}"),
        }
    });
    let mut s =
        odradek_client::blocking::connect_tcp(&three.cluster.addr(meta.leader)).expect("connect");
    assert_eq!(
        fetch_at(&mut s, "markers", 0, 0, 0).high_watermark,
        0,
        "a refused marker was written"
    );

    let kills = if soak() {
        [Kill::Coordinator, Kill::Processor, Kill::OutputLeader, Kill::Processor].repeat(3)
    } else {
        vec![Kill::Coordinator, Kill::Processor, Kill::OutputLeader, Kill::Coordinator]
    };
    let plan = EosPlan {
        count: if soak() { 20_000 } else { 3_000 },
        partitions: 3,
        replication_factor: 3,
        batch: 40,
        kills,
        limit: Duration::from_secs(if soak() { 900 } else { 240 }),
    };
    exactly_once_run(&mut three, &plan);
}

// --- The protocol by hand --------------------------------------------------------------------

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn txn_id(s: &str) -> TransactionalId {
    TransactionalId(sb(s))
}

/// Retriable coordinator answers while `__transaction_state` is created or loaded.
fn coordinator_busy(code: i16) -> bool {
    matches!(
        code,
        COORDINATOR_LOAD_IN_PROGRESS
            | COORDINATOR_NOT_AVAILABLE
            | NOT_COORDINATOR
            | CONCURRENT_TRANSACTIONS
    )
}

/// FindCoordinator(TRANSACTION) until it answers, then InitProducerId with `id` until it
/// answers: (producer id, epoch).
fn init_txn(s: &mut std::net::TcpStream, id: &str) -> (i64, i16) {
    init_txn_timeout(s, id, 60_000)
}

/// [`init_txn`] with a transaction timeout of `timeout_ms`.
fn init_txn_timeout(s: &mut std::net::TcpStream, id: &str, timeout_ms: i32) -> (i64, i16) {
    let deadline = Instant::now() + WAIT;
    loop {
        let req = FindCoordinatorRequest::default().with_key(sb(id)).with_key_type(1);
        let resp: FindCoordinatorResponse = call(s, 3, &req);
        if resp.error_code == 0 {
            break;
        }
        assert!(
            coordinator_busy(resp.error_code),
            "FindCoordinator(TRANSACTION): {}",
            resp.error_code
        );
        assert!(Instant::now() < deadline, "no transaction coordinator within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    loop {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(Some(txn_id(id)))
            .with_transaction_timeout_ms(timeout_ms);
        let resp: InitProducerIdResponse = call(s, 4, &req);
        if resp.error_code == 0 {
            return (resp.producer_id.0, resp.producer_epoch);
        }
        assert!(coordinator_busy(resp.error_code), "InitProducerId({id}): {}", resp.error_code);
        assert!(Instant::now() < deadline, "InitProducerId({id}) not answered within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// AddPartitionsToTxn v3: the error code of each partition.
fn add_partitions(
    s: &mut std::net::TcpStream,
    id: &str,
    pid: i64,
    epoch: i16,
    topic: &str,
    partitions: &[i32],
) -> Vec<i16> {
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn_id(id))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![
            AddPartitionsToTxnTopic::default()
                .with_name(requests::topic_name(topic))
                .with_partitions(partitions.to_vec()),
        ]);
    let resp: AddPartitionsToTxnResponse = call(s, 3, &req);
    resp.results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| t.results_by_partition.iter().map(|p| p.partition_error_code))
        .collect()
}

fn end_txn(s: &mut std::net::TcpStream, id: &str, pid: i64, epoch: i16, commit: bool) -> i16 {
    let req = EndTxnRequest::default()
        .with_transactional_id(txn_id(id))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    let resp: EndTxnResponse = call(s, 3, &req);
    resp.error_code
}

fn add_offsets(s: &mut std::net::TcpStream, id: &str, pid: i64, epoch: i16, group: &str) -> i16 {
    let req = AddOffsetsToTxnRequest::default()
        .with_transactional_id(txn_id(id))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_group_id(GroupId(sb(group)));
    let resp: AddOffsetsToTxnResponse = call(s, 3, &req);
    resp.error_code
}

/// TxnOffsetCommit v3 of `offset` for `topic`-0, as a consumer without a group generation.
fn txn_offset_commit(
    s: &mut std::net::TcpStream,
    id: &str,
    pid: i64,
    epoch: i16,
    group: &str,
    topic: &str,
    offset: i64,
) -> i16 {
    let req = TxnOffsetCommitRequest::default()
        .with_transactional_id(txn_id(id))
        .with_group_id(GroupId(sb(group)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_generation_id(-1)
        .with_member_id(sb(""))
        .with_topics(vec![
            TxnOffsetCommitRequestTopic::default()
                .with_name(requests::topic_name(topic))
                .with_partitions(vec![
                    TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(-1),
                ]),
        ]);
    let resp: TxnOffsetCommitResponse = call(s, 3, &req);
    resp.topics[0].partitions[0].error_code
}

/// OffsetFetch v5 of `topic`-0 for `group`: the committed offset (-1 for none).
fn committed_offset(s: &mut std::net::TcpStream, group: &str, topic: &str) -> i64 {
    let req =
        OffsetFetchRequest::default().with_group_id(GroupId(sb(group))).with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(requests::topic_name(topic))
                .with_partition_indexes(vec![0]),
        ]));
    let resp: OffsetFetchResponse = call(s, 5, &req);
    assert_eq!(resp.error_code, 0, "OffsetFetch {group}");
    resp.topics[0].partitions[0].committed_offset
}

/// WriteTxnMarkers v1 (inter-broker) for `topic` `partitions`: each partition's error code.
fn write_markers(
    s: &mut std::net::TcpStream,
    pid: i64,
    epoch: i16,
    commit: bool,
    topic: &str,
    partitions: &[i32],
) -> Vec<i16> {
    let req = WriteTxnMarkersRequest::default().with_markers(vec![
        WritableTxnMarker::default()
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_transaction_result(commit)
            .with_coordinator_epoch(0)
            .with_topics(vec![
                WritableTxnMarkerTopic::default()
                    .with_name(requests::topic_name(topic))
                    .with_partition_indexes(partitions.to_vec()),
            ]),
    ]);
    let resp: WriteTxnMarkersResponse =
        odradek_client::blocking::call_on(s, "txn-test", 7, 1, &req)
            .expect("WriteTxnMarkers answered");
    resp.markers
        .iter()
        .flat_map(|m| &m.topics)
        .flat_map(|t| &t.partitions)
        .map(|p| p.error_code)
        .collect()
}

/// A transactional batch (attributes bit 4) of `values` from sequence `seq`.
fn txn_batch(pid: i64, epoch: i16, seq: i32, values: &[&[u8]]) -> Bytes {
    let recs = records_of(values);
    let params = BatchParams {
        attributes: 0x10,
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        ..BatchParams::simple(Codec::None, 1_700_000_000_000, recs.len())
    };
    build_batch(&params, &recs).expect("batch")
}

/// A control batch (attributes bits 4 and 5) holding one COMMIT marker, as only a partition
/// leader writes on the coordinator's behalf: key version 0, type 1; value version 0,
/// coordinator epoch 0.
fn control_batch(pid: i64, epoch: i16) -> Bytes {
    let rec = Record {
        attributes: 0,
        timestamp_delta: 0,
        offset_delta: 0,
        key: Some(Bytes::from_static(&[0, 0, 0, 1])),
        value: Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0])),
        headers: Vec::new(),
    };
    let params = BatchParams {
        attributes: 0x30,
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: -1,
        ..BatchParams::simple(Codec::None, 1_700_000_000_000, 1)
    };
    build_batch(&params, &[rec]).expect("control batch")
}

/// Produce v9 (acks=all) of `batch` to `topic`-`partition`, naming `transactional_id`:
/// (error code, base offset).
fn produce_txn(
    s: &mut std::net::TcpStream,
    transactional_id: Option<&str>,
    topic: &str,
    partition: i32,
    batch: Bytes,
) -> (i16, i64) {
    let req = requests::produce(requests::topic_name(topic), -1, 5000, [(partition, batch)])
        .with_transactional_id(transactional_id.map(txn_id));
    let resp: ProduceResponse = call(s, 9, &req);
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// One partition of a Fetch (v11, no wait) answer.
#[derive(Debug)]
struct Fetched {
    error_code: i16,
    high_watermark: i64,
    last_stable_offset: i64,
    /// (producer id, first offset) of each aborted transaction in range.
    aborted: Vec<(i64, i64)>,
    bytes: usize,
}

/// Fetch (v11) of `topic`-`partition` from `offset` with `isolation` (0 read_uncommitted,
/// 1 read_committed).
fn fetch_at(
    s: &mut std::net::TcpStream,
    topic: &str,
    partition: i32,
    offset: i64,
    isolation: i8,
) -> Fetched {
    let limits = FetchLimits {
        max_wait_ms: 0,
        min_bytes: 1,
        max_bytes: 1 << 20,
        partition_max_bytes: 1 << 20,
    };
    let req = requests::fetch(requests::topic_name(topic), &[(partition, offset)], limits)
        .with_isolation_level(isolation);
    let resp: FetchResponse = call(s, 11, &req);
    let p = &resp.responses[0].partitions[0];
    Fetched {
        error_code: p.error_code,
        high_watermark: p.high_watermark,
        last_stable_offset: p.last_stable_offset,
        aborted: p
            .aborted_transactions
            .iter()
            .flatten()
            .map(|a| (a.producer_id.0, a.first_offset))
            .collect(),
        bytes: p.records.as_ref().map_or(0, Bytes::len),
    }
}

fn topic(name: &str) -> TopicName {
    requests::topic_name(name)
}

/// A transaction by hand: while it is open the last stable offset stays at its first offset
/// and read_committed gets nothing; DescribeTransactions and ListTransactions show it; after
/// the abort the marker lands and Fetch lists the aborted transaction; a transactional offset
/// commit is invisible until its transaction commits; a commit answered just before a SIGKILL
/// is completed after the restart, and the aborted-transaction list survives it.
#[test]
fn a_transaction_by_hand_aborts_commits_and_survives_a_sigkill() {
    let mut node = Node::start();
    let mut s = node.connect();
    create_topic_with(&mut s, "t", 2, &[]);
    let (pid, epoch) = init_txn(&mut s, "tx-a");

    assert_eq!(add_partitions(&mut s, "tx-a", pid, epoch, "t", &[0]), vec![0]);
    let (err, base) =
        produce_txn(&mut s, Some("tx-a"), "t", 0, txn_batch(pid, epoch, 0, &[b"a1", b"a2", b"a3"]));
    assert_eq!((err, base), (0, 0), "transactional produce to an added partition");
    let rc = fetch_at(&mut s, "t", 0, 0, 1);
    assert_eq!((rc.error_code, rc.high_watermark, rc.last_stable_offset), (0, 3, 0), "{rc:?}");
    assert_eq!(rc.bytes, 0, "read_committed got records of an open transaction: {rc:?}");
    assert!(fetch_at(&mut s, "t", 0, 0, 0).bytes > 0, "read_uncommitted sees the open transaction");

    let resp: DescribeTransactionsResponse = call(
        &mut s,
        0,
        &DescribeTransactionsRequest::default().with_transactional_ids(vec![txn_id("tx-a")]),
    );
    let st = &resp.transaction_states[0];
    assert_eq!((st.error_code, st.transaction_state.as_str()), (0, "Ongoing"), "{st:?}");
    assert_eq!((st.producer_id.0, st.producer_epoch), (pid, epoch));
    assert!(
        st.topics.iter().any(|t| t.topic == topic("t") && t.partitions == vec![0]),
        "DescribeTransactions lists t-0: {st:?}"
    );
    let resp: ListTransactionsResponse = call(&mut s, 0, &ListTransactionsRequest::default());
    assert_eq!(resp.error_code, 0);
    assert!(
        resp.transaction_states.iter().any(|t| t.transactional_id == txn_id("tx-a")
            && t.producer_id.0 == pid
            && t.transaction_state.as_str() == "Ongoing"),
        "ListTransactions: {:?}",
        resp.transaction_states
    );

    assert_eq!(end_txn(&mut s, "tx-a", pid, epoch, false), 0, "EndTxn(abort)");
    let rc = wait_until("the abort marker", WAIT, || {
        let f = fetch_at(&mut s, "t", 0, 0, 1);
        if f.last_stable_offset == 4 && f.high_watermark == 4 {
            Ok(f)
        } else {
            Err(format!("{f:?}"))
        }
    });
    assert_eq!(rc.aborted, vec![(pid, 0)], "Fetch(read_committed) lists the aborted transaction");
    assert!(rc.bytes > 0, "read_committed gets the aborted batch and the marker, to skip");
    assert!(
        fetch_at(&mut s, "t", 0, 0, 0).aborted.is_empty(),
        "read_uncommitted gets no aborted list"
    );

    // Second transaction: records on t-1 and an offset commit for group g, committed.
    assert_eq!(add_partitions(&mut s, "tx-a", pid, epoch, "t", &[1]), vec![0]);
    let (err, base) =
        produce_txn(&mut s, Some("tx-a"), "t", 1, txn_batch(pid, epoch, 0, &[b"b1", b"b2"]));
    assert_eq!((err, base), (0, 0));
    assert_eq!(add_offsets(&mut s, "tx-a", pid, epoch, "g"), 0, "AddOffsetsToTxn");
    let code = wait_until("TxnOffsetCommit", WAIT, || {
        match txn_offset_commit(&mut s, "tx-a", pid, epoch, "g", "t", 2) {
            c if coordinator_busy(c) => Err(format!("{c}")),
            c => Ok(c),
        }
    });
    assert_eq!(code, 0, "TxnOffsetCommit after AddOffsetsToTxn");
    assert_eq!(
        committed_offset(&mut s, "g", "t"),
        -1,
        "a transactional offset is invisible before the commit"
    );
    assert_eq!(end_txn(&mut s, "tx-a", pid, epoch, true), 0, "EndTxn(commit)");
    wait_until("the committed offset", WAIT, || match committed_offset(&mut s, "g", "t") {
        2 => Ok(()),
        o => Err(format!("{o}")),
    });
    let rc = wait_until("the commit marker", WAIT, || {
        let f = fetch_at(&mut s, "t", 1, 0, 1);
        if f.last_stable_offset == 3 { Ok(f) } else { Err(format!("{f:?}")) }
    });
    assert!(rc.aborted.is_empty() && rc.bytes > 0, "{rc:?}");

    // Third transaction: commit answered, then SIGKILL at once; the restarted node completes it.
    assert_eq!(add_partitions(&mut s, "tx-a", pid, epoch, "t", &[0]), vec![0]);
    let (err, base) = produce_txn(&mut s, Some("tx-a"), "t", 0, txn_batch(pid, epoch, 3, &[b"c1"]));
    assert_eq!((err, base), (0, 4));
    assert_eq!(end_txn(&mut s, "tx-a", pid, epoch, true), 0, "EndTxn(commit)");
    node.kill_and_restart();
    let mut s = node.connect();
    let rc = wait_until("the commit completed after the restart", Duration::from_secs(60), || {
        let f = fetch_at(&mut s, "t", 0, 0, 1);
        if f.last_stable_offset == 6 && f.high_watermark == 6 {
            Ok(f)
        } else {
            Err(format!("{f:?}"))
        }
    });
    assert_eq!(
        rc.aborted,
        vec![(pid, 0)],
        "only the first transaction is aborted, also after recovery"
    );
    // The coordinator stores CompleteCommit once every marker is written, so just after the
    // marker is visible it may still say PrepareCommit (as Kafka's does): wait for it.
    wait_until("the recovered commit completed", WAIT, || {
        let resp: DescribeTransactionsResponse = call(
            &mut s,
            0,
            &DescribeTransactionsRequest::default().with_transactional_ids(vec![txn_id("tx-a")]),
        );
        let st = &resp.transaction_states[0];
        assert_eq!(st.error_code, 0, "{st:?}");
        match st.transaction_state.as_str() {
            "CompleteCommit" | "Empty" => Ok(()),
            "PrepareCommit" => Err(format!("{st:?}")),
            other => panic!("state after the recovered commit: {other}: {st:?}"),
        }
    });
    node.assert_alive();
}

/// Asserts `code` is one of `want` (Kafka's choice differs between versions) and says which.
fn assert_code(what: &str, code: i16, want: &[i16]) {
    assert!(want.contains(&code), "{what}: error {code}, expected one of {want:?}");
}

/// Bad transactional input, each refused with Kafka's error code, nothing written (the high
/// watermarks stay), the node alive.
#[test]
fn bad_transactional_requests_are_refused_and_write_nothing() {
    let mut node = Node::start();
    let mut s = node.connect();
    create_topic_with(&mut s, "t", 2, &[]);
    create_topic(&mut s, "other", &[]);
    let hws = |s: &mut std::net::TcpStream| -> Vec<i64> {
        [("t", 0), ("t", 1), ("other", 0)]
            .iter()
            .map(|&(t, p)| fetch_at(s, t, p, 0, 0).high_watermark)
            .collect()
    };
    let (pid, epoch) = init_txn(&mut s, "tx-b");
    assert_eq!(add_partitions(&mut s, "tx-b", pid, epoch, "t", &[0]), vec![0]);
    assert_eq!(
        produce_txn(&mut s, Some("tx-b"), "t", 0, txn_batch(pid, epoch, 0, &[b"ok"])),
        (0, 0)
    );
    let before = hws(&mut s);
    assert_eq!(before, vec![1, 0, 0]);

    // EndTxn for an unknown transactional id, and for a known one with another producer id.
    assert_code(
        "EndTxn(unknown id)",
        end_txn(&mut s, "tx-nobody", 12345, 0, true),
        &[INVALID_PRODUCER_ID_MAPPING],
    );
    assert_code(
        "EndTxn(wrong producer id)",
        end_txn(&mut s, "tx-b", pid + 1000, epoch, true),
        &[INVALID_PRODUCER_ID_MAPPING],
    );
    // AddPartitionsToTxn with a wrong producer id.
    let codes = add_partitions(&mut s, "tx-b", pid + 1000, epoch, "t", &[1]);
    assert!(
        codes.iter().all(|&c| c == INVALID_PRODUCER_ID_MAPPING),
        "AddPartitionsToTxn(wrong id): {codes:?}"
    );
    // TxnOffsetCommit without AddOffsetsToTxn: an error, and the group sees nothing.
    let code = txn_offset_commit(&mut s, "tx-b", pid, epoch, "g-bad", "t", 1);
    assert_ne!(code, 0, "TxnOffsetCommit without AddOffsetsToTxn accepted");
    println!("TxnOffsetCommit without AddOffsetsToTxn: error {code}");
    // A transactional batch for a partition never added to the transaction.
    let (code, _) = produce_txn(&mut s, Some("tx-b"), "t", 1, txn_batch(pid, epoch, 0, &[b"x"]));
    assert_ne!(
        code, 0,
        "a transactional batch for a partition not in the transaction was accepted"
    );
    println!("transactional batch for a partition never added: error {code}");
    let (code, _) =
        produce_txn(&mut s, Some("tx-b"), "other", 0, txn_batch(pid, epoch, 0, &[b"x"]));
    assert_ne!(code, 0, "a transactional batch for a topic not in the transaction was accepted");
    // A control batch from a client.
    let (code, _) = produce_txn(&mut s, None, "t", 0, control_batch(pid, epoch));
    assert_code("a control batch in Produce", code, &[INVALID_RECORD]);
    // A transactional batch from an idempotent producer that has no transaction at all.
    let (err, ipid, iepoch) = init_producer_id(&mut s);
    assert_eq!(err, 0);
    let (code, _) = produce_txn(&mut s, None, "t", 0, txn_batch(ipid, iepoch, 0, &[b"x"]));
    assert_ne!(code, 0, "a transactional batch of a producer without a transaction was accepted");
    println!("transactional batch of a non-transactional producer: error {code}");
    // WriteTxnMarkers for a partition this node does not have.
    let codes = write_markers(&mut s, pid, epoch, true, "t", &[7]);
    assert!(
        !codes.is_empty()
            && codes
                .iter()
                .all(|&c| c == UNKNOWN_TOPIC_OR_PARTITION || c == NOT_LEADER_OR_FOLLOWER),
        "WriteTxnMarkers for t-7: {codes:?}"
    );
    assert_eq!(hws(&mut s), before, "a refused request wrote something");
    assert_eq!(
        committed_offset(&mut s, "g-bad", "t"),
        -1,
        "a refused offset commit became visible"
    );

    // A new producer with the same id fences the open transaction's epoch.
    let (pid2, epoch2) = init_txn(&mut s, "tx-b");
    assert!(
        (pid2, epoch2) > (pid, epoch) || pid2 != pid,
        "InitProducerId again: ({pid2}, {epoch2})"
    );
    let fenced = [PRODUCER_FENCED, INVALID_PRODUCER_EPOCH];
    assert_code("EndTxn(stale epoch)", end_txn(&mut s, "tx-b", pid, epoch, true), &fenced);
    if pid2 == pid {
        let codes = add_partitions(&mut s, "tx-b", pid, epoch, "t", &[1]);
        assert!(
            codes.iter().all(|c| fenced.contains(c)),
            "AddPartitionsToTxn(stale epoch): {codes:?}"
        );
    }
    let (code, _) = produce_txn(&mut s, Some("tx-b"), "t", 0, txn_batch(pid, epoch, 1, &[b"late"]));
    assert_ne!(code, 0, "a late write of a fenced epoch was accepted");
    // The new epoch has no transaction yet: its transactional batch and a commit are refused.
    let (code, _) = produce_txn(&mut s, Some("tx-b"), "t", 0, txn_batch(pid2, epoch2, 0, &[b"x"]));
    assert_ne!(code, 0, "a transactional batch before AddPartitionsToTxn was accepted");
    assert_code(
        "EndTxn(commit) with no transaction",
        end_txn(&mut s, "tx-b", pid2, epoch2, true),
        &[INVALID_TXN_STATE],
    );

    // The first transaction was aborted by the fencing InitProducerId: its marker landed.
    let rc = wait_until("the fenced transaction's abort marker", WAIT, || {
        let f = fetch_at(&mut s, "t", 0, 0, 1);
        if f.last_stable_offset == f.high_watermark { Ok(f) } else { Err(format!("{f:?}")) }
    });
    assert_eq!(rc.high_watermark, 2, "one record and one abort marker: {rc:?}");
    assert_eq!(rc.aborted, vec![(pid, 0)], "{rc:?}");
    assert_eq!(
        hws(&mut s),
        vec![2, 0, 0],
        "refused requests wrote nothing; the abort wrote its marker"
    );
    node.assert_alive();
}

/// Transactional offset commits of one transactional id across producer epochs, as a
/// processor restarted mid-transaction makes them: each epoch commits two transactions with
/// offsets and leaves a third open; the next InitProducerId fences and aborts it (with its
/// pending offsets), and AddOffsetsToTxn and TxnOffsetCommit of the new epoch are accepted
/// (Kafka writes them without sequence numbers); only committed offsets become visible.
#[test]
fn transactional_offset_commits_go_on_after_an_epoch_bump() {
    let node = Node::start();
    let mut s = node.connect();
    create_topic(&mut s, "in", &[]);
    let mut visible = -1;
    let mut offset = 0;
    for round in 1..=3 {
        let (pid, epoch) = init_txn(&mut s, "tx-o");
        for txn in 1..=3 {
            offset += 10;
            let what = format!("round {round} transaction {txn} (producer {pid} epoch {epoch})");
            let busy = |c: i16| if coordinator_busy(c) { Err(format!("{c}")) } else { Ok(c) };
            let code = wait_until("AddOffsetsToTxn", WAIT, || {
                busy(add_offsets(&mut s, "tx-o", pid, epoch, "g"))
            });
            assert_eq!(code, 0, "{what}: AddOffsetsToTxn");
            let code = wait_until("TxnOffsetCommit", WAIT, || {
                busy(txn_offset_commit(&mut s, "tx-o", pid, epoch, "g", "in", offset))
            });
            assert_eq!(code, 0, "{what}: TxnOffsetCommit");
            if txn == 3 {
                // Left open: the next round's InitProducerId aborts it.
                assert_eq!(committed_offset(&mut s, "g", "in"), visible, "{what}: pending");
                break;
            }
            assert_eq!(end_txn(&mut s, "tx-o", pid, epoch, true), 0, "{what}: EndTxn");
            visible = offset;
            wait_until("the committed offset", WAIT, || {
                match committed_offset(&mut s, "g", "in") {
                    o if o == visible => Ok(()),
                    o => Err(format!("{o}")),
                }
            });
        }
    }
}

/// Two producers' transactions overlapping on one partition (x0 y0 x1 y1): y aborts first, and
/// the last stable offset stays at x's first offset until x commits; Fetch lists y's aborted
/// transaction (from its first offset, also for a fetch from the middle of it), and all of it
/// survives a SIGKILL (the aborted index rebuilt on recovery).
#[test]
fn overlapping_transactions_keep_their_aborted_list_across_a_sigkill() {
    let mut node = Node::start();
    let mut s = node.connect();
    create_topic(&mut s, "o", &[]);
    let (px, ex) = init_txn(&mut s, "tx-x");
    let (py, ey) = init_txn(&mut s, "tx-y");
    assert_eq!(add_partitions(&mut s, "tx-x", px, ex, "o", &[0]), vec![0]);
    assert_eq!(add_partitions(&mut s, "tx-y", py, ey, "o", &[0]), vec![0]);
    assert_eq!(produce_txn(&mut s, Some("tx-x"), "o", 0, txn_batch(px, ex, 0, &[b"x0"])), (0, 0));
    assert_eq!(produce_txn(&mut s, Some("tx-y"), "o", 0, txn_batch(py, ey, 0, &[b"y0"])), (0, 1));
    assert_eq!(produce_txn(&mut s, Some("tx-x"), "o", 0, txn_batch(px, ex, 1, &[b"x1"])), (0, 2));
    assert_eq!(produce_txn(&mut s, Some("tx-y"), "o", 0, txn_batch(py, ey, 1, &[b"y1"])), (0, 3));

    assert_eq!(end_txn(&mut s, "tx-y", py, ey, false), 0, "EndTxn(abort) of y");
    let f = wait_until("y's abort marker", WAIT, || {
        let f = fetch_at(&mut s, "o", 0, 0, 1);
        if f.high_watermark == 5 { Ok(f) } else { Err(format!("{f:?}")) }
    });
    assert_eq!(f.last_stable_offset, 0, "x is still open from offset 0: {f:?}");
    assert_eq!(f.bytes, 0, "read_committed gets nothing below the LSO: {f:?}");

    assert_eq!(end_txn(&mut s, "tx-x", px, ex, true), 0, "EndTxn(commit) of x");
    let check = |s: &mut std::net::TcpStream, when: &str| {
        let f = wait_until(&format!("x's commit marker ({when})"), Duration::from_secs(60), || {
            let f = fetch_at(s, "o", 0, 0, 1);
            if f.high_watermark == 6 && f.last_stable_offset == 6 {
                Ok(f)
            } else {
                Err(format!("{f:?}"))
            }
        });
        assert_eq!(f.aborted, vec![(py, 1)], "{when}: only y's transaction is aborted: {f:?}");
        let mid = fetch_at(s, "o", 0, 2, 1);
        assert!(mid.aborted.contains(&(py, 1)), "{when}: a fetch from offset 2 lists y: {mid:?}");
        assert!(fetch_at(s, "o", 0, 0, 0).aborted.is_empty(), "{when}: read_uncommitted");
    };
    check(&mut s, "before the SIGKILL");
    node.kill_and_restart();
    let mut s = node.connect();
    check(&mut s, "after the SIGKILL");
    node.assert_alive();
}

/// A transaction past its timeout is aborted by the coordinator (its marker lands, Fetch lists
/// it as aborted), and the abandoned producer's late write and late commit with its old epoch
/// are refused: nothing written after the abort. The node checks timeouts every 500 ms here.
#[test]
fn a_timed_out_transaction_is_aborted_and_its_late_writes_refused() {
    let node =
        Node::start_args(&["--transaction-abort-timed-out-transaction-cleanup-interval-ms", "500"]);
    let mut s = node.connect();
    create_topic(&mut s, "tt", &[]);
    let (pid, epoch) = init_txn_timeout(&mut s, "tx-t", 1000);
    assert_eq!(add_partitions(&mut s, "tx-t", pid, epoch, "tt", &[0]), vec![0]);
    assert_eq!(
        produce_txn(&mut s, Some("tx-t"), "tt", 0, txn_batch(pid, epoch, 0, &[b"t0", b"t1"])),
        (0, 0)
    );
    let started = Instant::now();
    let f = wait_until("the timeout abort", WAIT, || {
        let f = fetch_at(&mut s, "tt", 0, 0, 1);
        if f.high_watermark == 3 && f.last_stable_offset == 3 {
            Ok(f)
        } else {
            Err(format!("{f:?}"))
        }
    });
    println!("aborted {:?} after the 1 s timeout", started.elapsed());
    assert_eq!(f.aborted, vec![(pid, 0)], "the timed-out transaction is aborted: {f:?}");
    let (code, _) =
        produce_txn(&mut s, Some("tx-t"), "tt", 0, txn_batch(pid, epoch, 2, &[b"late"]));
    assert_ne!(code, 0, "a late write of the timed-out transaction's epoch was accepted");
    let code = end_txn(&mut s, "tx-t", pid, epoch, true);
    assert_code("a late commit", code, &[PRODUCER_FENCED, INVALID_PRODUCER_EPOCH]);
    let f = fetch_at(&mut s, "tt", 0, 0, 1);
    assert_eq!((f.high_watermark, f.last_stable_offset), (3, 3), "nothing written late: {f:?}");
}

/// Where `topic`-0's leader is, as Metadata at any of `askers` says (a live leader only).
fn leader_of(cluster: &Cluster, askers: &[i32], topic: &str, not: i32) -> i32 {
    wait_until(&format!("a leader of {topic}-0 other than {not}"), Duration::from_secs(60), || {
        let mut seen = Vec::new();
        for &a in askers {
            let m = cluster::topic_metadata_at(&cluster.addr(a), topic)?;
            match m.topics.get(topic).and_then(|t| t.partitions.first()) {
                Some(p) if p.leader >= 0 && p.leader != not && p.isr.len() >= 2 => {
                    return Ok(p.leader);
                }
                other => seen.push(format!("{a}: {other:?}")),
            }
        }
        Err(seen.join("; "))
    })
}

/// The node coordinating `id`, as FindCoordinator at any of `askers` answers.
fn txn_coordinator(cluster: &Cluster, askers: &[i32], id: &str) -> i32 {
    wait_until(&format!("the coordinator of {id}"), Duration::from_secs(60), || {
        let req = FindCoordinatorRequest::default().with_key(sb(id)).with_key_type(1);
        let mut seen = Vec::new();
        for &a in askers {
            match call_addr::<_, FindCoordinatorResponse>(&cluster.addr(a), 3, &req) {
                Ok(r) if r.error_code == 0 && askers.contains(&r.node_id.0) => {
                    return Ok(r.node_id.0);
                }
                Ok(r) => seen.push(format!("{a}: error {} node {}", r.error_code, r.node_id.0)),
                Err(e) => seen.push(e),
            }
        }
        Err(seen.join("; "))
    })
}

/// A transaction open on a replicated partition when its leader is SIGKILLed: the new leader
/// (a follower that only replicated the transaction's batch) still holds the last stable offset
/// at the transaction's first offset, a later non-transactional record stays invisible to
/// read_committed, and the abort sent afterwards (to whichever node coordinates then) lands
/// on the new leader as an aborted transaction that Fetch lists.
#[test]
fn an_open_transaction_survives_its_partition_leaders_sigkill_on_three_nodes() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_formed();
    let all = cluster.ids();
    wait_until("CreateTopics lt", WAIT, || {
        match cluster::create_topic_rf_at(&cluster.addr(1), "lt", 1, 3, &[])? {
            (0, _) | (36, _) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let leader = leader_of(&cluster, &all, "lt", -1);
    let coord = txn_coordinator(&cluster, &all, "tx-l");
    let addrs: Vec<String> = all.iter().map(|&i| cluster.addr(i)).collect();
    let connect = |id: i32| {
        odradek_client::blocking::connect_tcp(&addrs[(id - 1) as usize]).expect("connect")
    };
    let mut c = connect(coord);
    let (pid, epoch) = init_txn(&mut c, "tx-l");
    let codes = wait_until("AddPartitionsToTxn", WAIT, || {
        match add_partitions(&mut c, "tx-l", pid, epoch, "lt", &[0]) {
            v if v.iter().any(|&e| coordinator_busy(e)) => Err(format!("{v:?}")),
            v => Ok(v),
        }
    });
    assert_eq!(codes, vec![0]);
    let mut l = connect(leader);
    assert_eq!(
        produce_txn(&mut l, Some("tx-l"), "lt", 0, txn_batch(pid, epoch, 0, &[b"o0", b"o1"])),
        (0, 0)
    );
    let plain = common::batch(Codec::None, &[b"plain"]);
    assert_eq!(common::produce(&mut l, 9, "lt", plain), (0, 2), "acks=all: on every replica");
    let f = fetch_at(&mut l, "lt", 0, 0, 1);
    assert_eq!((f.high_watermark, f.last_stable_offset), (3, 0), "before the kill: {f:?}");

    println!("leader {leader}, coordinator {coord}: SIGKILL of the leader");
    cluster.kill(leader);
    let others: Vec<i32> = all.iter().copied().filter(|&i| i != leader).collect();
    let new_leader = leader_of(&cluster, &others, "lt", leader);
    let mut l = connect(new_leader);
    let f = wait_until("the new leader's fetch", WAIT, || {
        let f = fetch_at(&mut l, "lt", 0, 0, 1);
        if f.error_code == 0 && f.high_watermark == 3 { Ok(f) } else { Err(format!("{f:?}")) }
    });
    assert_eq!(
        f.last_stable_offset, 0,
        "new leader {new_leader} forgot the open transaction: {f:?}"
    );
    assert_eq!(f.bytes, 0, "read_committed got records past the open transaction: {f:?}");

    let coord = txn_coordinator(&cluster, &others, "tx-l");
    let code = wait_until("EndTxn(abort) after the failover", Duration::from_secs(60), || {
        let mut c = odradek_client::blocking::connect_tcp(&cluster.addr(coord))
            .map_err(|e| e.to_string())?;
        match end_txn(&mut c, "tx-l", pid, epoch, false) {
            e if coordinator_busy(e) => Err(format!("{e}")),
            e => Ok(e),
        }
    });
    assert_eq!(code, 0, "EndTxn(abort) at coordinator {coord}");
    let f = wait_until("the abort marker on the new leader", Duration::from_secs(60), || {
        let f = fetch_at(&mut l, "lt", 0, 0, 1);
        if f.high_watermark == 4 && f.last_stable_offset == 4 {
            Ok(f)
        } else {
            Err(format!("{f:?}"))
        }
    });
    assert_eq!(f.aborted, vec![(pid, 0)], "the new leader lists the aborted transaction: {f:?}");
    assert!(f.bytes > 0, "read_committed now gets the batches to filter and the plain record");
    cluster.restart(leader);
}
