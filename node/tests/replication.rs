//! Replicated partitions on three real node processes (Kafka's ISR protocol): followers copy
//! their leaders by fetching, `acks=all` waits for the ISR, a follower takes over when its
//! leader dies, and a returning replica truncates where it diverged (KIP-101/279/320). Then
//! what moves replicas and leaders: a reassignment under load (AlterPartitionReassignments,
//! ListPartitionReassignments), ElectLeaders, and the automatic preferred-leader election.
//!
//! Same harness as `cluster.rs` (`common::cluster`; nodes on 127.0.0.2..=127.0.0.4, one test at
//! a time). Short session and lag timeouts make fencing and ISR changes take seconds. Every
//! wait is bounded; measured times are printed, never asserted.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::cluster::{
    Cluster, ClusterNode, FORM_TIMEOUT, Meta, PartitionInfo, call_addr, create_topic_rf_at,
    free_port, host_of, metadata_at, wait_until,
};
use common::process::run_bounded;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ElectLeadersRequest, ElectLeadersResponse, FetchResponse, ListOffsetsResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, ProduceResponse,
};
use odradek_client::requests::{self, FetchLimits};
use odradek_records::batch::scan_headers;
use odradek_records::{BatchDecoder, Codec};

/// Bound on a topic creation, a leader election, an ISR change.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(40);
/// Fencing in 3 s, a follower out of the ISR after 3 s without catching up.
const FAST: [&str; 6] = [
    "--broker-session-timeout-ms",
    "3000",
    "--broker-heartbeat-interval-ms",
    "500",
    "--replica-lag-time-max-ms",
    "3000",
];

const NONE: i16 = 0;
const NOT_ENOUGH_REPLICAS: i16 = 19;

/// Creates `topic` (one partition, `rf` replicas) through `asker`, retrying retriable errors.
fn create(c: &Cluster, topic: &str, rf: i16, configs: &[(&str, &str)]) {
    let addr = c.addr(1);
    let mut attempts = 0;
    wait_until(&format!("CreateTopics {topic}"), CHANGE_TIMEOUT, || {
        attempts += 1;
        match create_topic_rf_at(&addr, topic, 1, rf, configs)? {
            (0, _) => Ok(()),
            (36, _) if attempts > 1 => Ok(()),
            (code, msg) => Err(format!("error {code} {msg:?}")),
        }
    });
}

/// Partition 0 of `topic` as the live node `asker` reports it, once `ok` accepts it.
fn wait_partition(
    c: &Cluster,
    asker: i32,
    topic: &str,
    what: &str,
    ok: impl Fn(&PartitionInfo) -> bool,
) -> PartitionInfo {
    wait_until(&format!("{topic}-0: {what}"), CHANGE_TIMEOUT, || {
        let m: Meta = c.metadata(asker)?;
        let p = m.topics.get(topic).and_then(|t| t.partitions.first().cloned());
        match p {
            Some(p) if p.error_code == 0 && p.leader >= 0 && ok(&p) => Ok(p),
            other => Err(format!("{other:?}")),
        }
    })
}

/// One batch of `values` produced to partition 0 of `topic` at `addr` with `acks`:
/// (error code, base offset).
fn produce(addr: &str, topic: &str, acks: i16, values: &[&[u8]]) -> Result<(i16, i64), String> {
    let batch = common::batch(Codec::None, values);
    let req = requests::produce(requests::topic_name(topic), acks, 10_000, [(0, batch)]);
    let resp: ProduceResponse = call_addr(addr, 9, &req)?;
    let p = &resp.responses[0].partition_responses[0];
    Ok((p.error_code, p.base_offset))
}

/// Produces at the partition's leader (asked of `asker`), following it when it moves;
/// returns the base offset.
fn produce_acked(c: &Cluster, asker: i32, topic: &str, values: &[&[u8]]) -> i64 {
    wait_until(&format!("an acks=all write to {topic}"), CHANGE_TIMEOUT, || {
        let leader = wait_partition(c, asker, topic, "a leader", |_| true).leader;
        match produce(&c.addr(leader), topic, -1, values)? {
            (NONE, base) => Ok(base),
            (code, _) => Err(format!("leader {leader} answered {code}")),
        }
    })
}

/// Records as read: (offset, value).
type Read = Vec<(i64, Vec<u8>)>;

/// Every record value of partition 0 of `topic` below the high watermark, read at `addr`, with
/// its offset; and the high watermark.
fn read_all(addr: &str, topic: &str) -> Result<(Read, i64), String> {
    let mut out = Vec::new();
    let mut decoder = BatchDecoder::default();
    let mut offset = 0i64;
    for _ in 0..10_000 {
        let limits = FetchLimits {
            max_wait_ms: 0,
            min_bytes: 1,
            max_bytes: 1 << 20,
            partition_max_bytes: 1 << 20,
        };
        let req = requests::fetch(requests::topic_name(topic), &[(0, offset)], limits);
        let resp: FetchResponse = call_addr(addr, 11, &req)?;
        let p = &resp.responses[0].partitions[0];
        if p.error_code != NONE {
            return Err(format!("fetch at {offset}: error {}", p.error_code));
        }
        let records = p.records.clone().unwrap_or_default();
        decoder
            .decode(
                &records,
                |_| {},
                |r| {
                    if r.offset >= offset {
                        out.push((r.offset, r.value.unwrap_or_default().to_vec()));
                    }
                },
            )
            .map_err(|e| format!("decode: {e}"))?;
        match out.last() {
            Some((last, _)) if *last + 1 > offset => offset = *last + 1,
            _ => return Ok((out, p.high_watermark)),
        }
        if offset >= p.high_watermark {
            return Ok((out, p.high_watermark));
        }
    }
    Err("too many fetches".into())
}

/// The latest offset (high watermark) of partition 0 of `topic` at `addr`.
fn high_watermark(addr: &str, topic: &str) -> Result<i64, String> {
    let req = requests::list_offsets(topic, &[0], -1);
    let resp: ListOffsetsResponse = call_addr(addr, 8, &req)?;
    let p = &resp.topics[0].partitions[0];
    if p.error_code != NONE {
        return Err(format!("ListOffsets error {}", p.error_code));
    }
    Ok(p.offset)
}

/// The whole batches of partition 0 of `topic` in `data_dir`, concatenated in offset order
/// (segment boundaries and the direct-I/O padding of an active segment are not data).
fn log_bytes(data_dir: &Path, topic: &str) -> Vec<u8> {
    let dir = data_dir.join(format!("{topic}-0"));
    let mut segments: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segments.sort();
    let mut out = Vec::new();
    for s in segments {
        let bytes = std::fs::read(&s).unwrap_or_else(|e| panic!("{}: {e}", s.display()));
        let whole = scan_headers(&bytes, |_| true);
        out.extend_from_slice(&bytes[..whole]);
    }
    out
}

fn values(prefix: &str, range: std::ops::Range<usize>) -> Vec<Vec<u8>> {
    range.map(|i| format!("{prefix}-{i}").into_bytes()).collect()
}

fn refs(v: &[Vec<u8>]) -> Vec<&[u8]> {
    v.iter().map(Vec::as_slice).collect()
}

/// Stops every node gracefully and asserts that the replicas of `topic` hold the same bytes.
fn assert_identical(c: &mut Cluster, topic: &str) {
    let all = c.ids();
    assert_identical_on(c, topic, &all);
}

/// Stops every node gracefully and asserts that the replicas of `topic` on `holders` hold the
/// same bytes.
fn assert_identical_on(c: &mut Cluster, topic: &str, holders: &[i32]) {
    for id in c.ids() {
        let status = c.stop(id);
        assert!(status.success(), "node {id} stopped with {status}");
    }
    let logs: Vec<(i32, Vec<u8>)> = c
        .nodes
        .iter()
        .filter(|n| holders.contains(&n.id))
        .map(|n| (n.id, log_bytes(&n.data_dir(), topic)))
        .collect();
    for (id, log) in &logs[1..] {
        assert!(
            log == &logs[0].1,
            "replica on node {id} ({} bytes) differs from node {}'s ({} bytes)",
            log.len(),
            logs[0].0,
            logs[0].1.len()
        );
    }
    println!("{topic}: {} replicas of {} bytes each, identical", logs.len(), logs[0].1.len());
}

/// A new RF 3 partition has every replica in sync; acks=all writes are on all three. The
/// leader's SIGKILL elects an in-sync follower, which takes writes at once; every acknowledged
/// record is there, once, in order. The killed broker comes back, catches up, rejoins the ISR,
/// and its replica is byte for byte the others'.
#[test]
fn acknowledged_records_survive_the_leaders_sigkill() {
    let mut c = Cluster::start(3, &FAST);
    c.wait_formed();
    create(&c, "rep", 3, &[]);
    let p = wait_partition(&c, 1, "rep", "3 in sync", |p| p.isr.len() == 3);
    let before = values("a", 0..200);
    for chunk in before.chunks(4) {
        produce_acked(&c, 1, "rep", &refs(chunk));
    }
    let old = p.leader;
    let asker = c.ids().into_iter().find(|&i| i != old).expect("another node");
    let killed = Instant::now();
    c.kill(old);
    let p2 = wait_partition(&c, asker, "rep", "a new leader", |p| p.leader != old);
    let after = values("b", 0..100);
    for chunk in after.chunks(4) {
        produce_acked(&c, asker, "rep", &refs(chunk));
    }
    println!(
        "leader {old} killed; {} leads at epoch {} (was {}); writes acknowledged again after {:?}",
        p2.leader,
        p2.leader_epoch,
        p.leader_epoch,
        killed.elapsed()
    );
    assert!(p2.leader_epoch > p.leader_epoch, "a new leader epoch");
    let (got, hw) = read_all(&c.addr(p2.leader), "rep").expect("read");
    let want: Vec<Vec<u8>> = before.iter().chain(&after).cloned().collect();
    let read: Vec<Vec<u8>> = got.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(read, want, "every acknowledged record, once, in order");
    assert!(got.iter().enumerate().all(|(i, (o, _))| *o == i as i64), "dense offsets");
    assert_eq!(hw, want.len() as i64);
    c.restart(old);
    wait_partition(&c, asker, "rep", "the killed replica back in sync", |p| p.isr.len() == 3);
    assert_identical(&mut c, "rep");
}

/// With `min.insync.replicas=2` and two of three replicas killed, the ISR shrinks to the
/// leader and acks=all is refused with NOT_ENOUGH_REPLICAS, nothing written: the high
/// watermark stays. A follower's return re-opens acks=all. Five nodes, so that the controller
/// quorum outlives the two replicas (an ISR changes only through it).
#[test]
fn acks_all_below_min_insync_replicas_is_refused_and_writes_nothing() {
    let mut c = Cluster::start(5, &FAST);
    c.wait_formed();
    create(&c, "minisr", 3, &[("min.insync.replicas", "2")]);
    let p = wait_partition(&c, 1, "minisr", "3 in sync", |p| p.isr.len() == 3);
    let leader = p.leader;
    produce_acked(&c, leader, "minisr", &[b"one", b"two"]);
    let followers: Vec<i32> = p.replicas.iter().copied().filter(|&i| i != leader).collect();
    for &f in &followers {
        c.kill(f);
    }
    wait_partition(&c, leader, "minisr", "the ISR shrunk to the leader", |p| p.isr == vec![leader]);
    let hw = high_watermark(&c.addr(leader), "minisr").expect("high watermark");
    assert_eq!(hw, 2);
    for _ in 0..3 {
        let (code, _) = produce(&c.addr(leader), "minisr", -1, &[b"refused"]).expect("produce");
        assert_eq!(code, NOT_ENOUGH_REPLICAS, "acks=all with an ISR of 1");
    }
    assert_eq!(high_watermark(&c.addr(leader), "minisr").expect("hw"), hw, "nothing committed");
    c.restart(followers[0]);
    wait_partition(&c, leader, "minisr", "a follower back in sync", |p| p.isr.len() == 2);
    let base = produce_acked(&c, leader, "minisr", &[b"three"]);
    assert_eq!(base, 2, "the refused batches were never written");
    let (got, _) = read_all(&c.addr(leader), "minisr").expect("read");
    let read: Vec<&[u8]> = got.iter().map(|(_, v)| v.as_slice()).collect();
    assert_eq!(read, vec![&b"one"[..], b"two", b"three"]);
}

/// A follower paused (SIGSTOP) longer than `replica.lag.time.max.ms` but shorter than its
/// session is dropped from the ISR by its leader (AlterPartition), while it stays a live
/// broker; after SIGCONT it catches up and rejoins. Writes go on throughout.
#[test]
fn a_paused_follower_leaves_the_isr_and_rejoins() {
    let flags = [
        "--broker-session-timeout-ms",
        "20000",
        "--broker-heartbeat-interval-ms",
        "500",
        "--replica-lag-time-max-ms",
        "1500",
    ];
    // Each node's admin listener, to watch the leader's replication metrics.
    let admin: Vec<String> =
        (1..=3).map(|id| format!("{}:{}", host_of(id), free_port(&host_of(id)))).collect();
    let mut c = Cluster::start_with(3, |id| {
        let mut args: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
        args.extend(["--admin-listen".to_owned(), admin[(id - 1) as usize].clone()]);
        args
    });
    c.wait_formed();
    create(&c, "lag", 3, &[]);
    let p = wait_partition(&c, 1, "lag", "3 in sync", |p| p.isr.len() == 3);
    let leader_admin = &admin[(p.leader - 1) as usize];
    assert_eq!(scraped(leader_admin, "odradek_under_replicated_partitions"), 0.0);
    let paused = *p.replicas.iter().find(|&&r| r != p.leader).expect("a follower");
    c.sigstop(paused);
    let stopped = Instant::now();
    let mut n = 0;
    let shrunk = wait_partition(&c, p.leader, "lag", "the paused follower out of the ISR", |q| {
        !q.isr.contains(&paused)
    });
    println!("ISR {:?} after {:?} paused", shrunk.isr, stopped.elapsed());
    // The leader's metrics say so (Kafka's UnderReplicatedPartitions, IsrShrinksPerSec).
    let metric = |family: &'static str, ok: fn(f64) -> bool| {
        wait_until(family, Duration::from_secs(10), || {
            let v = scraped(leader_admin, family);
            if ok(v) { Ok(v) } else { Err(format!("{family} = {v}")) }
        })
    };
    metric("odradek_under_replicated_partitions", |v| v == 1.0);
    metric("odradek_isr_shrinks_total", |v| v >= 1.0);
    for chunk in values("w", 0..40).chunks(4) {
        produce_acked(&c, p.leader, "lag", &refs(chunk));
        n += chunk.len();
    }
    let m = c.metadata(p.leader).expect("metadata");
    assert!(m.brokers.iter().any(|b| b.id == paused), "paused, not fenced");
    c.sigcont(paused);
    let resumed = Instant::now();
    wait_partition(&c, p.leader, "lag", "the follower back in the ISR", |q| {
        q.isr.contains(&paused)
    });
    println!("back in the ISR {:?} after SIGCONT", resumed.elapsed());
    metric("odradek_isr_expands_total", |v| v >= 1.0);
    metric("odradek_under_replicated_partitions", |v| v == 0.0);
    let (got, _) = read_all(&c.addr(p.leader), "lag").expect("read");
    assert_eq!(got.len(), n);
    assert_identical(&mut c, "lag");
}

/// The sum over every series of `family` (summing the shard labels) on a node's `/metrics`.
fn scraped(admin: &str, family: &str) -> f64 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(admin).expect("connect to the admin listener");
    s.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    s.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {admin}\r\n\r\n").as_bytes())
        .expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read the scrape");
    text.lines()
        .filter(|l| l.strip_prefix(family).is_some_and(|r| r.starts_with([' ', '{'])))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// KIP-101/279's case, twice. The leader takes acks=1 writes its followers never fetch (both
/// paused a moment), then dies; a follower leads at a new epoch and takes acks=all writes. The
/// old leader returns as a follower, learns where its log diverges and truncates there (not
/// blindly at its high watermark), then copies the new leader. A second failover repeats it.
/// In the end all three replicas are byte-identical and hold every acknowledged acks=all
/// record once.
#[test]
fn a_double_failover_leaves_replicas_byte_identical() {
    let mut c = Cluster::start(3, &FAST);
    c.wait_formed();
    create(&c, "div", 3, &[]);
    let p = wait_partition(&c, 1, "div", "3 in sync", |p| p.isr.len() == 3);
    let mut acked: Vec<Vec<u8>> = Vec::new();
    let mut leader = p.leader;
    for round in 0..2 {
        let batch = values(&format!("r{round}-acked"), 0..20);
        for chunk in batch.chunks(4) {
            produce_acked(&c, leader, "div", &refs(chunk));
        }
        acked.extend(batch);
        // The followers pause; the leader takes writes they do not have.
        let followers: Vec<i32> = c.ids().into_iter().filter(|&i| i != leader).collect();
        for &f in &followers {
            c.sigstop(f);
        }
        for i in 0..5 {
            let v = format!("r{round}-unreplicated-{i}");
            let (code, _) = produce(&c.addr(leader), "div", 1, &[v.as_bytes()]).expect("produce");
            assert_eq!(code, NONE);
        }
        c.kill(leader);
        for &f in &followers {
            c.sigcont(f);
        }
        let old = leader;
        let next = wait_partition(&c, followers[0], "div", "a new leader", |q| q.leader != old);
        leader = next.leader;
        let batch = values(&format!("r{round}-after"), 0..20);
        for chunk in batch.chunks(4) {
            produce_acked(&c, leader, "div", &refs(chunk));
        }
        acked.extend(batch);
        c.restart(old);
        wait_partition(&c, leader, "div", "the old leader back in sync", |q| q.isr.len() == 3);
        let truncated = c.node(old).find_log(|l| l.contains("truncated to the leader's log"));
        println!("round {round}: {old} -> {leader}; {truncated:?}");
    }
    let (got, _) = read_all(&c.addr(leader), "div").expect("read");
    let read: Vec<Vec<u8>> = got.iter().map(|(_, v)| v.clone()).collect();
    let kept: Vec<Vec<u8>> =
        read.iter().filter(|v| !v.windows(12).any(|w| w == b"unreplicated")).cloned().collect();
    assert_eq!(kept, acked, "every acks=all record once, in order");
    assert_identical(&mut c, "div");
}

/// KIP-392: with `--replica-selector rack-aware`, a consumer's Fetch (v11+) naming a rack where
/// a follower lives is answered by the leader with that follower as its preferred read replica
/// and no records; the follower then serves the consumer's fetches itself, up to its high
/// watermark. A consumer without a rack reads at the leader.
#[test]
fn a_consumer_reads_from_the_replica_in_its_rack() {
    let c = Cluster::start_with(3, |id| {
        let mut flags: Vec<String> = FAST.iter().map(|s| (*s).to_owned()).collect();
        flags.extend(["--rack".into(), format!("rack-{id}")]);
        flags.extend(["--replica-selector".into(), "rack-aware".into()]);
        flags
    });
    c.wait_formed();
    create(&c, "near", 3, &[]);
    let p = wait_partition(&c, 1, "near", "3 in sync", |p| p.isr.len() == 3);
    let written = values("n", 0..30);
    for chunk in written.chunks(5) {
        produce_acked(&c, 1, "near", &refs(chunk));
    }
    let follower = *p.replicas.iter().find(|&&r| r != p.leader).expect("a follower");
    let fetch = |addr: &str, rack: &str| -> FetchResponse {
        let limits = FetchLimits {
            max_wait_ms: 0,
            min_bytes: 1,
            max_bytes: 1 << 20,
            partition_max_bytes: 1 << 20,
        };
        let mut req = requests::fetch(requests::topic_name("near"), &[(0, 0)], limits);
        req.rack_id = kafka_protocol::protocol::StrBytes::from_string(rack.to_owned());
        call_addr(addr, 11, &req).expect("fetch")
    };
    let at_leader = fetch(&c.addr(p.leader), &format!("rack-{follower}"));
    let part = &at_leader.responses[0].partitions[0];
    assert_eq!(part.error_code, NONE);
    assert_eq!(part.preferred_read_replica.0, follower, "sent to the replica in its rack");
    assert!(part.records.as_ref().is_none_or(|r| r.is_empty()), "no records with the redirect");
    // The follower serves it (a consumer's Fetch v11 may read any replica), up to its high
    // watermark, once that has caught up with the leader's.
    let got = wait_until("the follower's replica readable", CHANGE_TIMEOUT, || {
        let (read, hw) = read_all(&c.addr(follower), "near")?;
        if hw == 30 && read.len() == 30 {
            Ok(read.len())
        } else {
            Err(format!("hw {hw}, {} records", read.len()))
        }
    });
    assert_eq!(got, 30);
    let plain = fetch(&c.addr(p.leader), "");
    assert_eq!(
        plain.responses[0].partitions[0].preferred_read_replica.0, -1,
        "no rack: the leader"
    );
    let (read, _) = read_all(&c.addr(p.leader), "near").expect("read");
    assert_eq!(read.len(), 30);
}

/// librdkafka (confluent-kafka) and kafka-python producers and consumers ride through a
/// partition leader's SIGKILL (`tests/clients/failover_clients.py` kills it, given each node's
/// PID): every acknowledged record is read by both consumers once, at its acknowledged offset,
/// nothing skipped, each producer's records in order. The killed node then returns.
#[test]
fn python_clients_ride_through_a_leader_kill() {
    let mut c = Cluster::start(3, &FAST);
    c.wait_formed();
    let pids: Vec<String> =
        c.nodes.iter().map(|n| format!("{}:{}", n.id, n.pid().expect("running"))).collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/failover_clients.py");
    let out = run_bounded(
        std::process::Command::new("python3").arg(&script).args([
            "--bootstrap",
            &c.bootstrap(),
            "--pids",
            &pids.join(","),
        ]),
        b"",
        Duration::from_secs(240),
    )
    .unwrap_or_else(|out| panic!("failover_clients.py did not finish\n{}", out.text()));
    println!("{}", out.stdout);
    assert!(out.status.success(), "failover_clients.py failed ({})\n{}", out.status, out.text());
    let killed: i32 = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("killed ").and_then(|n| n.trim().parse().ok()))
        .expect("the killed node's id");
    c.node(killed).wait_exit(Duration::from_secs(10));
    c.restart(killed);
    wait_partition(&c, killed, "ride", "the killed node back in sync", |p| p.isr.len() == 3);
}

/// SIGTERM is a controlled shutdown: the stopping broker is fenced first, so an in-sync
/// follower leads its partition at once (no session timeout to wait for: the session here is
/// 20 s), every acknowledged record is there, and writes go on.
#[test]
fn sigterm_moves_leadership_before_the_broker_stops() {
    let flags = ["--broker-session-timeout-ms", "20000", "--broker-heartbeat-interval-ms", "500"];
    let mut c = Cluster::start(3, &flags);
    c.wait_formed();
    create(&c, "calm", 3, &[]);
    let p = wait_partition(&c, 1, "calm", "3 in sync", |p| p.isr.len() == 3);
    let before = values("s", 0..40);
    for chunk in before.chunks(4) {
        produce_acked(&c, 1, "calm", &refs(chunk));
    }
    let asker = c.ids().into_iter().find(|&i| i != p.leader).expect("another node");
    let stopping = Instant::now();
    let status = c.stop(p.leader);
    assert!(status.success(), "graceful stop: {status}");
    let moved = wait_partition(&c, asker, "calm", "a new leader", |q| q.leader != p.leader);
    println!(
        "leader {} stopped with SIGTERM; {} leads after {:?}",
        p.leader,
        moved.leader,
        stopping.elapsed()
    );
    assert!(!moved.isr.contains(&p.leader), "the stopped broker left the ISR");
    let after = values("t", 0..20);
    for chunk in after.chunks(4) {
        produce_acked(&c, asker, "calm", &refs(chunk));
    }
    let (got, _) = read_all(&c.addr(moved.leader), "calm").expect("read");
    let read: Vec<Vec<u8>> = got.into_iter().map(|(_, v)| v).collect();
    let want: Vec<Vec<u8>> = before.into_iter().chain(after).collect();
    assert_eq!(read, want);
}

const ELECTION_NOT_NEEDED: i16 = 84;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;

/// Starts node `id` as a broker-only member (`--process-roles broker`) of `c`, with `extra`
/// flags, and waits until every node lists it.
fn add_broker(c: &mut Cluster, id: i32, extra: &[&str]) {
    let host = "127.0.0.2";
    let port = free_port(host);
    let mut args: Vec<String> = [
        "--node-id",
        &id.to_string(),
        "--listen",
        &format!("{host}:{port}"),
        "--controller-quorum-voters",
        &c.voters,
        "--process-roles",
        "broker",
        "--smp",
        "1",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let mut n = ClusterNode::new(id, host, port, 0, args);
    n.start();
    c.nodes.push(n);
    let all = c.ids();
    c.wait_brokers(&all, &all, FORM_TIMEOUT);
}

/// An acks=all write of `values` to partition 0 of `topic` at its leader, asked of the
/// brokers at `askers` (from another thread, which cannot hold the `Cluster`); the base offset.
fn produce_acked_at(askers: &[String], topic: &str, values: &[&[u8]]) -> i64 {
    wait_until(&format!("an acks=all write to {topic}"), CHANGE_TIMEOUT, || {
        let mut last = String::new();
        for a in askers {
            let m = match metadata_at(a) {
                Ok(m) => m,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            let Some(p) = m.topics.get(topic).and_then(|t| t.partitions.first()) else {
                continue;
            };
            let Some(b) = m.brokers.iter().find(|b| b.id == p.leader) else { continue };
            match produce(&b.addr(), topic, -1, values)? {
                (NONE, base) => return Ok(base),
                (code, _) => last = format!("leader {} answered {code}", p.leader),
            }
        }
        Err(last)
    })
}

/// AlterPartitionReassignments v0 of partition 0 of `topic` at `addr` (`None` cancels): the
/// partition's error code.
fn reassign(addr: &str, topic: &str, target: Option<&[i32]>) -> Result<i16, String> {
    let partition = ReassignablePartition::default()
        .with_partition_index(0)
        .with_replicas(target.map(|t| t.iter().copied().map(BrokerId).collect()));
    let req = AlterPartitionReassignmentsRequest::default().with_topics(vec![
        ReassignableTopic::default()
            .with_name(requests::topic_name(topic))
            .with_partitions(vec![partition]),
    ]);
    let resp: AlterPartitionReassignmentsResponse = call_addr(addr, 0, &req)?;
    if resp.error_code != NONE {
        return Err(format!("top-level error {}", resp.error_code));
    }
    Ok(resp.responses[0].partitions[0].error_code)
}

/// ListPartitionReassignments v0 at `addr` (every topic when `topic` is `None`): per topic
/// and partition, (replicas, adding, removing).
type Ongoing = Vec<(String, i32, Vec<i32>, Vec<i32>, Vec<i32>)>;
fn list_reassignments(addr: &str, topic: Option<&str>) -> Result<Ongoing, String> {
    let topics = topic.map(|t| {
        vec![
            ListPartitionReassignmentsTopics::default()
                .with_name(requests::topic_name(t))
                .with_partition_indexes(vec![0]),
        ]
    });
    let req = ListPartitionReassignmentsRequest::default().with_topics(topics);
    let resp: ListPartitionReassignmentsResponse = call_addr(addr, 0, &req)?;
    if resp.error_code != NONE {
        return Err(format!("error {}", resp.error_code));
    }
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<i32>>();
    Ok(resp
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                let name = t.name.0.to_string();
                let (r, a, d) =
                    (ids(&p.replicas), ids(&p.adding_replicas), ids(&p.removing_replicas));
                (name, p.partition_index, r, a, d)
            })
        })
        .collect())
}

/// ElectLeaders v2 (`election_type` 0 preferred) of `partitions` of `topic` at `addr`:
/// (partition, error code) as answered.
fn elect_preferred(addr: &str, topic: &str, partitions: &[i32]) -> Result<Vec<(i32, i16)>, String> {
    elect(addr, 0, topic, partitions)
}

/// ElectLeaders v2 of `election_type` (0 preferred, 1 unclean).
fn elect(
    addr: &str,
    election_type: i8,
    topic: &str,
    partitions: &[i32],
) -> Result<Vec<(i32, i16)>, String> {
    let req = ElectLeadersRequest::default()
        .with_election_type(election_type)
        .with_topic_partitions(Some(vec![
            TopicPartitions::default()
                .with_topic(requests::topic_name(topic))
                .with_partitions(partitions.to_vec()),
        ]));
    let resp: ElectLeadersResponse = call_addr(addr, 2, &req)?;
    if resp.error_code != NONE {
        return Err(format!("top-level error {}", resp.error_code));
    }
    Ok(resp
        .replica_election_results
        .iter()
        .flat_map(|t| t.partition_result.iter().map(|p| (p.partition_id, p.error_code)))
        .collect())
}

/// A partition of an RF 2 topic on brokers 1–3 moves, under a thread of acks=all writes, to
/// a broker-only fourth node (paused at first, so that ListPartitionReassignments sees it
/// under way) while one old replica is dropped. Afterwards Metadata shows the target replicas
/// in sync, every acknowledged record is there once in order, the new replica's log is byte
/// for byte the other's, and the dropped broker deleted its copy.
#[test]
fn a_reassignment_under_acks_all_load_moves_a_partition() {
    let mut c = Cluster::start(3, &FAST);
    c.wait_formed();
    create(&c, "moved", 2, &[]);
    let p = wait_partition(&c, 1, "moved", "2 in sync", |p| p.isr.len() == 2);
    add_broker(&mut c, 4, &FAST);
    let kept = p.leader;
    let dropped = *p.replicas.iter().find(|&&r| r != kept).expect("a follower");
    let target = vec![kept, 4];

    let askers: Vec<String> = c.ids().into_iter().map(|i| c.addr(i)).collect();
    let acked = Arc::new(AtomicUsize::new(0));
    let counter = acked.clone();
    let writer = std::thread::spawn(move || {
        let mut written: Vec<Vec<u8>> = Vec::new();
        for i in 0..300 {
            let batch = values(&format!("w{i}"), 0..2);
            produce_acked_at(&askers, "moved", &refs(&batch));
            written.extend(batch);
            counter.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(10));
        }
        written
    });
    wait_until("the first writes", CHANGE_TIMEOUT, || {
        let n = acked.load(Ordering::SeqCst);
        if n >= 30 { Ok(()) } else { Err(format!("{n} batches")) }
    });

    // Paused, the new replica cannot catch up: the reassignment stays under way.
    c.sigstop(4);
    let began = Instant::now();
    let before_move = acked.load(Ordering::SeqCst);
    let code = reassign(&c.addr(1), "moved", Some(&target)).expect("AlterPartitionReassignments");
    assert_eq!(code, NONE, "reassignment accepted");
    let ongoing = list_reassignments(&c.addr(2), Some("moved")).expect("list");
    let want_ongoing =
        vec![("moved".to_owned(), 0, vec![kept, 4, dropped], vec![4], vec![dropped])];
    let all = list_reassignments(&c.addr(3), None).expect("list all");
    c.sigcont(4);
    assert_eq!(ongoing, want_ongoing, "under way, asked by partition");
    assert_eq!(all, want_ongoing, "under way, asked for every topic");
    let code = reassign(&c.addr(1), "moved", Some(&[kept, dropped])).expect("second alter");
    assert_eq!(code, INVALID_REPLICA_ASSIGNMENT, "one reassignment at a time");

    let done = wait_partition(&c, 1, "moved", "the target replicas in sync", |q| {
        q.replicas == target && q.isr.len() == 2
    });
    let after_move = acked.load(Ordering::SeqCst);
    println!(
        "reassigned to {:?} in {:?} (ISR {:?}); acks=all batches acknowledged: {before_move} \
         before, {after_move} by the end of the move",
        done.replicas,
        began.elapsed(),
        done.isr
    );
    wait_until("no reassignment listed", CHANGE_TIMEOUT, || {
        match list_reassignments(&c.addr(4), None)? {
            l if l.is_empty() => Ok(()),
            l => Err(format!("{l:?}")),
        }
    });
    let written = writer.join().expect("the writer thread");
    println!("{} acks=all batches in all", acked.load(Ordering::SeqCst));

    for asker in c.ids() {
        wait_partition(&c, asker, "moved", "the target replicas", |q| q.replicas == target);
    }
    let leader = wait_partition(&c, 1, "moved", "a leader", |_| true).leader;
    let (got, hw) = read_all(&c.addr(leader), "moved").expect("read");
    let read: Vec<Vec<u8>> = got.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(read, written, "every acknowledged record, once, in order");
    assert_eq!(hw, written.len() as i64);

    // Refusals, each with Kafka's code.
    assert_eq!(reassign(&c.addr(2), "moved", None).expect("cancel"), NO_REASSIGNMENT_IN_PROGRESS);
    assert_eq!(
        reassign(&c.addr(2), "moved", Some(&[kept, 9])).expect("alter"),
        INVALID_REPLICA_ASSIGNMENT
    );
    assert_eq!(
        reassign(&c.addr(2), "nosuch", Some(&[1])).expect("alter"),
        UNKNOWN_TOPIC_OR_PARTITION
    );

    // Metadata says the follower is in sync once it has the high watermark; the byte
    // comparison below needs every batch, which the acks=all writes guarantee.
    let gone = c.node(dropped).data_dir().join("moved-0");
    wait_until("the dropped replica's directory removed", CHANGE_TIMEOUT, || {
        if gone.exists() { Err(format!("{} exists", gone.display())) } else { Ok(()) }
    });
    assert_identical_on(&mut c, "moved", &target);
}

/// Partition 0 of a fresh RF 3 topic whose preferred leader (its first replica) is SIGKILLed,
/// leaves the ISR, returns and catches up: (the preferred replica, the leader meanwhile).
fn lose_the_preferred_leader(c: &mut Cluster, topic: &str) -> (i32, i32) {
    create(c, topic, 3, &[]);
    let p = wait_partition(c, 1, topic, "3 in sync", |p| p.isr.len() == 3);
    let preferred = p.replicas[0];
    assert_eq!(p.leader, preferred, "a new partition is led by its first replica");
    produce_acked(c, preferred, topic, &[b"before"]);
    let asker = c.ids().into_iter().find(|&i| i != preferred).expect("another node");
    c.kill(preferred);
    let moved = wait_partition(c, asker, topic, "another leader", |q| q.leader != preferred);
    produce_acked(c, asker, topic, &[b"meanwhile"]);
    c.restart(preferred);
    wait_partition(c, asker, topic, "the preferred replica back in sync", |q| q.isr.len() == 3);
    (preferred, moved.leader)
}

/// After its preferred leader's SIGKILL and return, ElectLeaders (preferred) gives the
/// partition back to it, answered once the answering broker's Metadata shows it; asked again,
/// ELECTION_NOT_NEEDED; a partition the topic lacks, UNKNOWN_TOPIC_OR_PARTITION.
#[test]
fn elect_leaders_gives_leadership_back_to_the_preferred_replica() {
    let flags: Vec<&str> =
        FAST.iter().copied().chain(["--auto-leader-rebalance-enable", "false"]).collect();
    let mut c = Cluster::start(3, &flags);
    c.wait_formed();
    let (preferred, other) = lose_the_preferred_leader(&mut c, "pref");
    let still = wait_partition(&c, other, "pref", "a leader", |_| true);
    assert_eq!(still.leader, other, "no automatic election");
    let asker = c.ids().into_iter().find(|&i| i != preferred && i != other).expect("a third");
    let answer = wait_until("ElectLeaders", CHANGE_TIMEOUT, || {
        match elect_preferred(&c.addr(asker), "pref", &[0])? {
            a if a == vec![(0, NONE)] => Ok(a),
            a => Err(format!("{a:?}")),
        }
    });
    println!("ElectLeaders: {answer:?}");
    let m = c.metadata(asker).expect("metadata");
    assert_eq!(m.topics["pref"].partitions[0].leader, preferred, "visible where it was asked");
    let again = elect_preferred(&c.addr(other), "pref", &[0, 5]).expect("ElectLeaders again");
    assert_eq!(again, vec![(0, ELECTION_NOT_NEEDED), (5, UNKNOWN_TOPIC_OR_PARTITION)]);
    let unclean = elect(&c.addr(other), 1, "pref", &[0]).expect("an unclean election");
    assert_eq!(unclean, vec![(0, ELECTION_NOT_NEEDED)], "the partition has a leader");
    let (got, _) = wait_until("a read at the preferred leader", CHANGE_TIMEOUT, || {
        read_all(&c.addr(preferred), "pref")
    });
    let read: Vec<&[u8]> = got.iter().map(|(_, v)| v.as_slice()).collect();
    assert_eq!(read, vec![&b"before"[..], b"meanwhile"]);
}

/// With a 2 s imbalance check, leadership returns to the preferred replica by itself.
#[test]
fn leadership_returns_to_the_preferred_replica_by_itself() {
    let flags: Vec<&str> =
        FAST.iter().copied().chain(["--leader-imbalance-check-interval-seconds", "2"]).collect();
    let mut c = Cluster::start(3, &flags);
    c.wait_formed();
    let (preferred, other) = lose_the_preferred_leader(&mut c, "auto");
    let back = Instant::now();
    wait_partition(&c, other, "auto", "the preferred replica leading again", |q| {
        q.leader == preferred
    });
    println!(
        "leadership back at {preferred} (from {other}) {:?} after it was in sync",
        back.elapsed()
    );
}

/// Committed offsets survive their coordinator's broker dying: `__consumer_offsets` has three
/// replicas (the default `offsets.topic.replication.factor` on three brokers), the group's
/// coordinator is its offsets partition's leader, and after that broker's SIGKILL the new
/// leader coordinates the group and answers OffsetFetch with what was committed.
#[test]
fn committed_offsets_survive_the_coordinators_sigkill() {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
    use kafka_protocol::messages::{
        FindCoordinatorRequest, FindCoordinatorResponse, GroupId, OffsetCommitRequest,
        OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    };
    use kafka_protocol::protocol::StrBytes;
    let mut c = Cluster::start(3, &FAST);
    c.wait_formed();
    create(&c, "tracked", 3, &[]);
    let group = || GroupId(StrBytes::from_static_str("survivors"));
    let coordinator = |c: &Cluster, asker: i32| -> i32 {
        wait_until("the group's coordinator", CHANGE_TIMEOUT, || {
            // v4+ names the groups in `coordinator_keys` (KIP-699).
            let req = FindCoordinatorRequest::default()
                .with_coordinator_keys(vec![StrBytes::from_static_str("survivors")]);
            let resp: FindCoordinatorResponse = call_addr(&c.addr(asker), 4, &req)?;
            match resp.coordinators.first() {
                Some(k) if k.error_code == NONE => Ok(k.node_id.0),
                other => Err(format!("{other:?}")),
            }
        })
    };
    let first = coordinator(&c, 1);
    let commit = OffsetCommitRequest::default()
        .with_group_id(group())
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(requests::topic_name("tracked"))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(42),
                ]),
        ]);
    wait_until("a commit at the coordinator", CHANGE_TIMEOUT, || {
        let resp: OffsetCommitResponse = call_addr(&c.addr(first), 9, &commit)?;
        match resp.topics[0].partitions[0].error_code {
            NONE => Ok(()),
            code => Err(format!("error {code}")),
        }
    });
    let offsets = wait_partition(&c, 1, "__consumer_offsets", "offsets replicated", |p| {
        p.replicas.len() == 3
    });
    assert_eq!(offsets.replicas.len(), 3, "__consumer_offsets has three replicas");
    c.kill(first);
    let asker = c.ids().into_iter().find(|&i| i != first).expect("a survivor");
    let next = wait_until("a new coordinator", CHANGE_TIMEOUT, || {
        let id = coordinator(&c, asker);
        if id != first { Ok(id) } else { Err(format!("still {id}")) }
    });
    // Null topics: every committed offset of the group.
    let fetch = OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default().with_group_id(group()).with_topics(None),
    ]);
    let committed =
        wait_until("the committed offset at the new coordinator", CHANGE_TIMEOUT, || {
            let resp: OffsetFetchResponse = call_addr(&c.addr(next), 9, &fetch)?;
            let g = &resp.groups[0];
            let found =
                g.topics.iter().flat_map(|t| &t.partitions).find(|p| p.partition_index == 0);
            match found {
                Some(p) if g.error_code == NONE && p.error_code == NONE => Ok(p.committed_offset),
                other => Err(format!("group error {}, {other:?}", g.error_code)),
            }
        });
    assert_eq!(committed, 42, "the commit survived its coordinator (now {next}, was {first})");
}
