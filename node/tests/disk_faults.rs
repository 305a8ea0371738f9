//! A full disk and a failing device, through a live node.
//!
//! - A full disk: the node's data directory is a small ext4 file system of its own (a
//!   loop-mounted image, made and removed by [`LoopDisk`]). ext4 rather than a size-limited
//!   tmpfs: it is what a broker's data directory really is (block allocation, journal, direct
//!   I/O, `ENOSPC` from `write`), while tmpfs has no direct I/O and fills page by page.
//!   Producers fill it; the node answers KAFKA_STORAGE_ERROR, stays up, serves reads, group
//!   commits while they fit (then NOT_COORDINATOR) and metadata, and takes writes again once
//!   DeleteRecords freed space, without a restart; every acknowledged record is there, in
//!   order, exactly once, before and after a restart. A crash on the full disk: the node
//!   refuses to start, saying why, until space is freed by hand (a ballast file).
//! - Retention on a full disk runs early: a topic over its `retention.bytes` frees the space
//!   within seconds, with no operator action.
//! - A failing device: the storage crate's `faults` feature (compiled into this test's binary
//!   only) fails every write to `doomed-0` after a budget of bytes; the partition is fenced,
//!   the client gets KAFKA_STORAGE_ERROR, the rest of the node keeps serving, and a restart
//!   without faults brings back every acknowledged record.
//!
//! Making a loop device needs root. Without it the full-disk tests print one line and pass,
//! unless `ODRADEK_DISK_TESTS=require`, which makes it fail instead (for CI, where it must run).

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::{ClusterNode, free_port};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, DeleteRecordsRequest, DeleteRecordsResponse,
    FetchResponse, GroupId, MetadataResponse, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use odradek_client::requests::{self, FetchLimits};
use odradek_records::{BatchDecoder, Codec};

const NONE: i16 = 0;
const KAFKA_STORAGE_ERROR: i16 = 56;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const NOT_COORDINATOR: i16 = 16;
const REQUEST_TIMED_OUT: i16 = 7;
const PRODUCE_VERSION: i16 = 9;
/// Size of the loop-mounted file system.
const DISK_MIB: u64 = 24;

// ---------------------------------------------------------------------------------------------
// The file system.

/// A loop-mounted ext4 image in a temporary directory: mounted at [`LoopDisk::mount_point`],
/// unmounted and detached on drop (also when the test fails).
struct LoopDisk {
    dir: tempfile::TempDir,
    device: String,
    mounted: bool,
}

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd).args(args).output().map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("{cmd} {args:?}: {} {}", out.status, err.trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl LoopDisk {
    /// Makes and mounts a file system of `mib` MiB, or says why it cannot.
    fn make(mib: u64) -> Result<LoopDisk, String> {
        if run("id", &["-u"])? != "0" {
            return Err("not root".into());
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let image = dir.path().join("disk.img");
        let image_s = image.to_str().ok_or("temporary path is not UTF-8")?.to_owned();
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(mib << 20))
            .map_err(|e| format!("image: {e}"))?;
        // No blocks reserved for root: the node runs as root here and would fill them too.
        run("mkfs.ext4", &["-q", "-F", "-m", "0", &image_s])?;
        let device = run("losetup", &["-f", "--show", &image_s])?;
        let mut disk = LoopDisk { dir, device, mounted: false };
        let mnt = disk.mount_point();
        std::fs::create_dir(&mnt).map_err(|e| format!("mount point: {e}"))?;
        let mnt_s = mnt.to_str().ok_or("temporary path is not UTF-8")?.to_owned();
        run("mount", &[&disk.device, &mnt_s])?;
        disk.mounted = true;
        Ok(disk)
    }

    fn mount_point(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    /// Bytes free for files (`df`).
    fn free_bytes(&self) -> u64 {
        let mnt = self.mount_point();
        let out = run("df", &["-B1", "--output=avail", mnt.to_str().expect("utf-8")]).expect("df");
        out.lines().last().and_then(|l| l.trim().parse().ok()).expect("df number")
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        let mnt = self.mount_point();
        let mnt_s = mnt.to_string_lossy().into_owned();
        if self.mounted {
            // The node was killed just before; its descriptors may take a moment to close.
            let mut unmounted = false;
            for _ in 0..50 {
                if run("umount", &[&mnt_s]).is_ok() {
                    unmounted = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if !unmounted && let Err(e) = run("umount", &["-l", &mnt_s]) {
                eprintln!("disk_faults: cannot unmount {mnt_s}: {e}");
            }
        }
        if let Err(e) = run("losetup", &["-d", &self.device]) {
            eprintln!("disk_faults: cannot detach {}: {e}", self.device);
        }
    }
}

/// The disk, or `None` after one printed line when this machine cannot make one.
fn loop_disk(test: &str) -> Option<LoopDisk> {
    match LoopDisk::make(DISK_MIB) {
        Ok(disk) => Some(disk),
        Err(why) => {
            let required = std::env::var("ODRADEK_DISK_TESTS").is_ok_and(|v| v == "require");
            assert!(!required, "{test}: cannot make a loop-mounted file system: {why}");
            println!("{test}: skipped: cannot make a loop-mounted file system ({why})");
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The node.

/// A one-node cluster whose data directory is `data_dir` (a symlink from the node's own
/// directory). Declared before the disk in [`Rig`] so that it is killed before the unmount.
fn node_on(data_dir: Option<&Path>, envs: &[(&str, &str)]) -> ClusterNode {
    let port = free_port("127.0.0.1");
    let args = vec!["--listen".into(), format!("127.0.0.1:{port}"), "--smp".into(), "1".into()];
    let mut node = ClusterNode::new(0, "127.0.0.1", port, 0, args);
    node.envs = envs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    if let Some(dir) = data_dir {
        std::fs::create_dir_all(dir).expect("data dir");
        std::os::unix::fs::symlink(dir, node.data_dir()).expect("symlink the data dir");
    }
    node.start();
    node
}

/// The node and the file system under it; fields drop in order: the node is killed first.
struct Rig {
    node: ClusterNode,
    disk: LoopDisk,
}

impl Drop for Rig {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.node.logs(80));
        }
    }
}

/// Prints the node's log lines about storage failures (for the record of a run).
fn print_storage_lines(test: &str, node: &ClusterNode) {
    let marks =
        ["appends failing", "appends succeed", "DeleteRecords", "log fenced", "fault injection"];
    for line in node.log_lines() {
        if marks.iter().any(|m| line.contains(m)) {
            println!("{test}: node: {line}");
        }
    }
}

fn connect(node: &ClusterNode) -> TcpStream {
    let s = TcpStream::connect(node.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    s
}

// ---------------------------------------------------------------------------------------------
// Records.

/// A record's value: `tag`, its sequence number, and filler up to `len` bytes.
fn value(tag: &str, seq: u64, len: usize) -> Vec<u8> {
    let mut v = format!("{tag}-{seq:010}-").into_bytes();
    v.resize(len.max(v.len()), b'.');
    v
}

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| d.as_millis() as i64)
}

/// What the node acknowledged: (offset, value) in offset order.
#[derive(Default)]
struct Acked {
    records: Vec<(i64, Vec<u8>)>,
    next_seq: u64,
}

impl Acked {
    /// Produces `count` records of `len` bytes (acks=all) to `topic`-`partition`: the answer's
    /// error code. Acknowledged records are remembered.
    fn produce(
        &mut self,
        s: &mut TcpStream,
        (topic, partition): (&str, i32),
        tag: &str,
        (count, len): (usize, usize),
    ) -> i16 {
        let values: Vec<Vec<u8>> =
            (0..count as u64).map(|i| value(tag, self.next_seq + i, len)).collect();
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        // Stamped now: with a fixed old timestamp every append would roll a segment (segment.ms).
        let batch = common::batch_at(Codec::None, now_ms(), &refs);
        let (code, base) = common::produce_to(s, PRODUCE_VERSION, topic, partition, batch);
        if code == NONE {
            for (i, v) in values.into_iter().enumerate() {
                self.records.push((base + i as i64, v));
            }
            self.next_seq += count as u64;
        }
        code
    }

    /// The acknowledged records at or after `from`.
    fn from(&self, from: i64) -> Vec<(i64, Vec<u8>)> {
        self.records.iter().filter(|(o, _)| *o >= from).cloned().collect()
    }
}

/// Every record of `topic`-`partition` from `from` up to the high watermark, in order, or the
/// first fetch error code.
fn read_all(
    s: &mut TcpStream,
    (topic, partition): (&str, i32),
    from: i64,
) -> Result<Vec<(i64, Vec<u8>)>, i16> {
    let mut out = Vec::new();
    let mut offset = from;
    let mut decoder = BatchDecoder::default();
    // Bounded: each fetch returns at least one batch or we stop at the high watermark.
    for _ in 0..100_000 {
        let limits = FetchLimits {
            max_wait_ms: 0,
            min_bytes: 1,
            max_bytes: 1 << 20,
            partition_max_bytes: 1 << 20,
        };
        let req = requests::fetch(requests::topic_name(topic), &[(partition, offset)], limits);
        let resp: FetchResponse = common::call(s, 11, &req);
        let p = &resp.responses[0].partitions[0];
        if p.error_code != NONE {
            return Err(p.error_code);
        }
        let records = p.records.clone().unwrap_or_default();
        let before = out.len();
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
            .expect("the node serves valid batches");
        if let Some((last, _)) = out.last() {
            offset = last + 1;
        }
        if offset >= p.high_watermark || out.len() == before {
            assert!(offset >= p.high_watermark, "no progress below the high watermark at {offset}");
            return Ok(out);
        }
    }
    panic!("more than 100000 fetches")
}

/// Asserts that `topic`-`partition` holds exactly `expected` from its first offset on.
fn assert_holds(s: &mut TcpStream, tp: (&str, i32), expected: &[(i64, Vec<u8>)], when: &str) {
    let from = expected.first().map_or(0, |(o, _)| *o);
    let got = read_all(s, tp, from).unwrap_or_else(|code| panic!("{when}: fetch answered {code}"));
    assert_eq!(got.len(), expected.len(), "{when}: record count");
    for (g, e) in got.iter().zip(expected) {
        assert!(
            g == e,
            "{when}: offset {} holds {:?}, expected {:?} at {}",
            g.0,
            String::from_utf8_lossy(&g.1[..g.1.len().min(24)]),
            String::from_utf8_lossy(&e.1[..e.1.len().min(24)]),
            e.0
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Requests.

fn metadata_ok(s: &mut TcpStream) {
    let resp: MetadataResponse = common::call(s, 12, &requests::metadata("fill", 12));
    assert_eq!(resp.brokers.len(), 1, "Metadata lists the broker");
    let versions: ApiVersionsResponse = common::call(s, 3, &ApiVersionsRequest::default());
    assert_eq!(versions.error_code, NONE, "ApiVersions answers");
}

fn commit(s: &mut TcpStream, group: &str, topic: &str, offset: i64) -> i16 {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset),
                ]),
        ]);
    let resp: OffsetCommitResponse = common::call(s, 8, &req);
    resp.topics[0].partitions[0].error_code
}

fn committed(s: &mut TcpStream, group: &str, topic: &str) -> i64 {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partition_indexes(vec![0]),
        ]));
    let resp: OffsetFetchResponse = common::call(s, 7, &req);
    assert_eq!(resp.error_code, NONE, "OffsetFetch");
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, NONE, "OffsetFetch partition");
    p.committed_offset
}

/// CreateTopics of `name` (one partition) within `timeout_ms`: the topic's error code.
fn create_topic_code(s: &mut TcpStream, name: &str, timeout_ms: i32) -> i16 {
    let req = requests::create_topic(name, 1).with_timeout_ms(timeout_ms);
    let resp: kafka_protocol::messages::CreateTopicsResponse = common::call(s, 7, &req);
    resp.topics[0].error_code
}

/// DeleteRecords below `offset` of `topic`-0: (error code, low watermark).
fn delete_records(s: &mut TcpStream, topic: &str, offset: i64) -> (i16, i64) {
    let req = DeleteRecordsRequest::default().with_timeout_ms(10_000).with_topics(vec![
        DeleteRecordsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partitions(vec![
                DeleteRecordsPartition::default().with_partition_index(0).with_offset(offset),
            ]),
    ]);
    let resp: DeleteRecordsResponse = common::call(s, 2, &req);
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.low_watermark)
}

/// Produces until the node answers KAFKA_STORAGE_ERROR, with smaller and smaller batches
/// (64 KiB down to 256 bytes), so that the disk is full for all of them. Any other answer
/// fails the test. Returns the number of refusals.
fn fill(s: &mut TcpStream, acked: &mut Acked, tp: (&str, i32)) -> usize {
    let mut refusals = 0;
    for (count, len) in [(16, 4096), (4, 1024), (1, 1024), (1, 256)] {
        // Bounded: the disk holds at most DISK_MIB MiB.
        for _ in 0..((DISK_MIB << 20) / (count * len) as u64 + 10) {
            match acked.produce(s, tp, "fill", (count, len)) {
                NONE => continue,
                KAFKA_STORAGE_ERROR => {
                    refusals += 1;
                    break;
                }
                other => panic!("produce answered {other} on a filling disk"),
            }
        }
    }
    refusals
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn a_full_disk_refuses_writes_keeps_serving_and_takes_writes_again_once_space_is_freed() {
    let test = "a_full_disk";
    let Some(disk) = loop_disk(test) else { return };
    // Ballast next to the data dir: what an operator deletes to let a node start on a full
    // disk (see the crash below).
    let ballast = disk.mount_point().join("ballast");
    std::fs::write(&ballast, vec![0xba; 2 << 20]).expect("ballast");
    let data = disk.mount_point().join("data");
    let node = node_on(Some(&data), &[]);
    let mut rig = Rig { node, disk };
    let mut s = connect(&rig.node);
    // Segments of 1 MiB: DeleteRecords frees whole segments.
    common::create_topic(&mut s, "fill", &[("segment.bytes", "1048576")]);
    let tp = ("fill", 0);
    let mut acked = Acked::default();
    assert_eq!(acked.produce(&mut s, tp, "fill", (1, 100)), NONE, "an empty disk takes writes");
    assert_eq!(commit(&mut s, "g", "fill", 1), NONE, "a commit on an empty disk");

    let refusals = fill(&mut s, &mut acked, tp);
    assert_eq!(refusals, 4, "every batch size was refused in the end");
    let free = rig.disk.free_bytes();
    assert!(free < 1 << 20, "the disk is full: {free} bytes free");
    // Refused again: the refusal is not a one-off.
    assert_eq!(acked.produce(&mut s, tp, "fill", (16, 4096)), KAFKA_STORAGE_ERROR);

    // The node stays up and serves.
    assert!(rig.node.is_running(), "the node lives");
    metadata_ok(&mut s);
    assert_holds(&mut s, tp, &acked.records, "on a full disk");
    // A group commit either fits (the offsets partition has room in its segment) or is refused
    // with a code that a consumer retries; the group is not broken either way.
    let on_full = commit(&mut s, "g", "fill", 2);
    assert!([NONE, NOT_COORDINATOR].contains(&on_full), "OffsetCommit on a full disk: {on_full}");
    println!("{test}: OffsetCommit on the full disk answered {on_full}");
    // Commits fill the last block of the offsets segment; then they are refused with
    // NOT_COORDINATOR (Kafka's answer, which consumers retry), and the last one that was
    // acknowledged is what the group has.
    let mut last_ok = if on_full == NONE { 2 } else { 1 };
    let mut refused = None;
    for offset in 3..400 {
        match commit(&mut s, "g", "fill", offset) {
            NONE => last_ok = offset,
            code => {
                refused = Some(code);
                break;
            }
        }
    }
    println!(
        "{test}: OffsetCommits on the full disk: acknowledged up to {last_ok}, then {refused:?}"
    );
    assert!(
        refused.is_none_or(|c| c == NOT_COORDINATOR),
        "a refused commit answers NOT_COORDINATOR"
    );
    assert_eq!(committed(&mut s, "g", "fill"), last_ok, "the group keeps its last commit");
    // The controller's metadata log is on the same disk: a topic created now is committed (its
    // record still fits) or waits for space (REQUEST_TIMED_OUT; it completes once space is
    // freed), never half made (checked after the restart below).
    let late = create_topic_code(&mut s, "late", 2_000);
    println!("{test}: CreateTopics on the full disk answered {late}");
    assert!([NONE, REQUEST_TIMED_OUT].contains(&late), "CreateTopics on a full disk: {late}");
    assert!(rig.node.is_running(), "the node lives after a metadata write on a full disk");
    metadata_ok(&mut s);

    // One line when appends start failing, not one per refused request (nor per flap of a
    // nearly full disk that refuses large batches and takes small ones). Counted in the
    // current incarnation of the node.
    let lines = |node: &ClusterNode, what: &str| {
        let all = node.log_lines();
        let from = all.iter().rposition(|l| l.starts_with("=== start")).map_or(0, |i| i + 1);
        all[from..].iter().filter(|l| l.contains(what) && l.contains("fill-0")).count()
    };
    let failing = lines(&rig.node, "appends failing");
    assert_eq!(failing, 1, "lines for one full disk{}", rig.node.logs(40));

    // A crash on the full disk. The node does not start on a disk without a free block (its
    // start-up probe and its controller must write): it exits at once, saying so. The way out
    // is to free some space by hand — here the ballast — after which it starts, serves every
    // acknowledged record and, once the disk is full again, refuses writes as before.
    drop(s);
    rig.node.kill();
    rig.node.spawn();
    let status = rig.node.wait_exit(Duration::from_secs(30));
    assert!(!status.success(), "a start on a full disk fails");
    let said = rig.node.find_log(|l| l.contains("not writable") && l.contains("No space left"));
    assert!(said.is_some(), "the failed start names the full disk{}", rig.node.logs(20));
    std::fs::remove_file(&ballast).expect("remove the ballast");
    rig.node.start();
    let mut s = connect(&rig.node);
    assert_holds(&mut s, tp, &acked.records, "after a crash on the full disk");
    assert_eq!(fill(&mut s, &mut acked, tp), 4, "the disk is full again");
    metadata_ok(&mut s);
    assert_eq!(lines(&rig.node, "appends failing"), 1, "{}", rig.node.logs(40));

    // Free space: delete the first half of the records. Then produce works again without a
    // restart.
    let cut = acked.records[acked.records.len() / 2].0;
    let freed_at = Instant::now();
    let (code, low) = delete_records(&mut s, "fill", cut);
    assert_eq!((code, low), (NONE, cut), "DeleteRecords on a full disk");
    let answered = freed_at.elapsed();
    let mut tries = 0;
    let accepted = loop {
        tries += 1;
        match acked.produce(&mut s, tp, "again", (4, 1024)) {
            NONE => break freed_at.elapsed(),
            KAFKA_STORAGE_ERROR if tries < 200 => std::thread::sleep(Duration::from_millis(50)),
            other => panic!("produce after DeleteRecords answered {other} (try {tries})"),
        }
    };
    println!(
        "{test}: DeleteRecords answered in {answered:?}; first produce accepted {accepted:?} after \
         space was freed ({tries} tries); {} bytes free",
        rig.disk.free_bytes()
    );
    for _ in 0..20 {
        assert_eq!(acked.produce(&mut s, tp, "again", (16, 4096)), NONE, "writes after freeing");
    }
    assert_eq!(commit(&mut s, "g", "fill", 3), NONE, "a commit once space is free");
    // The controller takes metadata writes again once space is free, without a restart.
    let after = create_topic_code(&mut s, "after", 30_000);
    assert_eq!(after, NONE, "CreateTopics once space is free, before a restart");
    assert_eq!(committed(&mut s, "g", "fill"), 3);
    // One line once writes succeed again (after a quiet period without failures).
    let logged_back = (0..100).any(|_| {
        assert_eq!(acked.produce(&mut s, tp, "again", (1, 100)), NONE, "writes after freeing");
        let back = lines(&rig.node, "appends succeed again");
        std::thread::sleep(Duration::from_millis(100 * u64::from(back == 0)));
        back > 0
    });
    assert!(logged_back, "the recovery is logged{}", rig.node.logs(40));
    assert_eq!(lines(&rig.node, "appends succeed again"), 1, "{}", rig.node.logs(40));
    assert_eq!(lines(&rig.node, "appends failing"), 1, "{}", rig.node.logs(40));

    // Below the new start: gone; from it: every acknowledged record, in order, once.
    assert_eq!(read_all(&mut s, tp, cut - 1), Err(OFFSET_OUT_OF_RANGE));
    assert_holds(&mut s, tp, &acked.from(cut), "after DeleteRecords");

    print_storage_lines(test, &rig.node);
    // A restart on the same data keeps them all.
    drop(s);
    rig.node.stop();
    rig.node.start();
    let mut s = connect(&rig.node);
    assert_holds(&mut s, tp, &acked.from(cut), "after a restart");
    assert_eq!(committed(&mut s, "g", "fill"), 3, "the group's commit after a restart");
    // The metadata survived the full disk: the acknowledged topics exist (`late` too when it
    // was acknowledged; a timed-out one may have completed once space was freed).
    for (topic, acknowledged) in [("after", true), ("late", late == NONE)] {
        let meta: MetadataResponse = common::call(&mut s, 12, &requests::metadata(topic, 12));
        let exists = meta.topics.iter().any(|t| t.error_code == NONE);
        assert!(exists || !acknowledged, "topic `{topic}` after a restart: {meta:?}");
        println!("{test}: after the restart topic `{topic}` exists: {exists}");
    }
}

#[test]
fn on_a_full_disk_retention_runs_early_and_writes_come_back_without_an_operator() {
    let test = "retention_on_a_full_disk";
    let Some(disk) = loop_disk(test) else { return };
    let data = disk.mount_point().join("data");
    let node = node_on(Some(&data), &[]);
    let rig = Rig { node, disk };
    let mut s = connect(&rig.node);
    // `ret` keeps 4 MiB, but retention has not run yet (it runs every few minutes): it holds
    // 12 MiB when the disk fills.
    let segment = ("segment.bytes", "1048576");
    common::create_topic(&mut s, "ret", &[segment, ("retention.bytes", "4194304")]);
    common::create_topic(&mut s, "fill", &[segment]);
    let (ret, tp) = (("ret", 0), ("fill", 0));
    let mut kept = Acked::default();
    for _ in 0..(12 << 20) / (16 * 4096) {
        assert_eq!(kept.produce(&mut s, ret, "ret", (16, 4096)), NONE, "filling ret");
    }
    let mut acked = Acked::default();
    assert_eq!(fill(&mut s, &mut acked, tp), 4, "the disk is full");
    let full_at = Instant::now();
    // No DeleteRecords, no config change: the node's own retention frees the space.
    let mut tries = 0;
    let accepted = loop {
        tries += 1;
        match acked.produce(&mut s, tp, "again", (16, 4096)) {
            NONE => break full_at.elapsed(),
            KAFKA_STORAGE_ERROR if full_at.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            other => panic!("produce on a full disk answered {other} after {tries} tries"),
        }
    };
    println!("{test}: first produce accepted {accepted:?} after the disk filled ({tries} tries)");
    let start =
        rig.node.find_log(|l| l.contains("deleted segment") && l.contains("ret-0")).map(|_| ());
    assert!(start.is_some(), "retention deleted ret's old segments{}", rig.node.logs(40));
    assert_holds(&mut s, tp, &acked.records, "fill after retention");
    // `ret` kept its newest records, at least retention.bytes of them, all acknowledged ones.
    let (code, _, ret_start) = common::list_offset(&mut s, "ret", -2);
    assert_eq!(code, NONE);
    assert!(ret_start > 0, "ret's start moved");
    let kept_now = kept.from(ret_start);
    let bytes: usize = kept_now.iter().map(|(_, v)| v.len()).sum();
    assert!(bytes >= 4 << 20, "retention keeps retention.bytes: {bytes}");
    assert_holds(&mut s, ret, &kept_now, "ret after retention");
    print_storage_lines(test, &rig.node);
}

#[test]
fn a_failing_device_fences_its_partition_and_the_rest_of_the_node_keeps_serving() {
    let test = "a_failing_device";
    // Partition doomed-0's files accept 256 KiB, then fail like a device gone bad.
    let budget = 256 * 1024;
    let faults = format!("doomed-0/,after={budget}");
    let mut node = node_on(None, &[("ODRADEK_STORAGE_FAULTS", &faults)]);
    // `cargo test` builds `odradek` with the storage crate's `faults` feature; a `cargo build`
    // run meanwhile in the same target directory re-links target/debug/odradek without it.
    let on = node.find_log(|l| l.contains("storage fault injection is on"));
    assert!(
        on.is_some(),
        "{} runs without the `faults` feature (did a concurrent `cargo build` replace it?)",
        env!("CARGO_BIN_EXE_odradek")
    );
    let mut s = connect(&node);
    common::create_topic(&mut s, "doomed", &[]);
    common::create_topic(&mut s, "healthy", &[]);
    let (doomed, healthy) = (("doomed", 0), ("healthy", 0));
    let mut acked = Acked::default();
    let mut fine = Acked::default();

    // Early writes succeed; then the error reaches the client.
    let mut first_error = None;
    for _ in 0..200 {
        match acked.produce(&mut s, doomed, "doomed", (8, 1024)) {
            NONE => continue,
            code => {
                first_error = Some(code);
                break;
            }
        }
    }
    assert_eq!(first_error, Some(KAFKA_STORAGE_ERROR), "the failed write reaches the client");
    assert!(!acked.records.is_empty(), "writes before the fault succeeded");
    let written: usize = acked.records.iter().map(|(_, v)| v.len()).sum();
    assert!(written < budget, "no more than the budget was acknowledged");
    // Fenced: later produces fail too, logged once.
    for _ in 0..5 {
        assert_eq!(acked.produce(&mut s, doomed, "doomed", (1, 10)), KAFKA_STORAGE_ERROR);
    }
    let fenced = node.log_lines().iter().filter(|l| l.contains("log fenced")).count();
    assert_eq!(fenced, 1, "one line for the fenced log{}", node.logs(40));

    // The rest of the node keeps serving.
    assert!(node.is_running(), "the node lives");
    metadata_ok(&mut s);
    for _ in 0..10 {
        assert_eq!(fine.produce(&mut s, healthy, "healthy", (8, 1024)), NONE);
    }
    assert_holds(&mut s, healthy, &fine.records, "another topic");
    assert_eq!(commit(&mut s, "g", "healthy", 5), NONE, "a group commit");
    assert_eq!(committed(&mut s, "g", "healthy"), 5);
    // The acknowledged records of the fenced partition stay readable (reads do not fail).
    assert_holds(&mut s, doomed, &acked.records, "the fenced partition");

    print_storage_lines(test, &node);
    // A restart without faults: recovery brings back every acknowledged record.
    drop(s);
    node.stop();
    node.envs.clear();
    node.start();
    let mut s = connect(&node);
    assert_holds(&mut s, doomed, &acked.records, "after a restart without faults");
    assert_holds(&mut s, healthy, &fine.records, "the healthy topic after a restart");
    assert_eq!(acked.produce(&mut s, doomed, "doomed", (8, 1024)), NONE, "writes again");
    println!("{test}: {} records acknowledged before the fault", acked.records.len());
}
