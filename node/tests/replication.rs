//! Replicated partitions on three real node processes (Kafka's ISR protocol): followers copy
//! their leaders by fetching, `acks=all` waits for the ISR, a follower takes over when its
//! leader dies, and a returning replica truncates where it diverged (KIP-101/279/320).
//!
//! Same harness as `cluster.rs` (`common::cluster`; nodes on 127.0.0.2..=127.0.0.4, one test at
//! a time). Short session and lag timeouts make fencing and ISR changes take seconds. Every
//! wait is bounded; measured times are printed, never asserted.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, Meta, PartitionInfo, call_addr, create_topic_rf_at, wait_until};
use common::process::run_bounded;
use kafka_protocol::messages::{FetchResponse, ListOffsetsResponse, ProduceResponse};
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
    for id in c.ids() {
        let status = c.stop(id);
        assert!(status.success(), "node {id} stopped with {status}");
    }
    let logs: Vec<(i32, Vec<u8>)> =
        c.nodes.iter().map(|n| (n.id, log_bytes(&n.data_dir(), topic))).collect();
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
    let mut c = Cluster::start(3, &flags);
    c.wait_formed();
    create(&c, "lag", 3, &[]);
    let p = wait_partition(&c, 1, "lag", "3 in sync", |p| p.isr.len() == 3);
    let paused = *p.replicas.iter().find(|&&r| r != p.leader).expect("a follower");
    c.sigstop(paused);
    let stopped = Instant::now();
    let mut n = 0;
    let shrunk = wait_partition(&c, p.leader, "lag", "the paused follower out of the ISR", |q| {
        !q.isr.contains(&paused)
    });
    println!("ISR {:?} after {:?} paused", shrunk.isr, stopped.elapsed());
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
    let (got, _) = read_all(&c.addr(p.leader), "lag").expect("read");
    assert_eq!(got.len(), n);
    assert_identical(&mut c, "lag");
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
