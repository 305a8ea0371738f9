//! Transactions in the partition log: markers, ongoing transactions, the first unstable offset
//! and the aborted-transaction index, through appends, replication, reopen, crashes,
//! truncation, retention and compaction. Every expectation that survives a restart is checked
//! against an independent replay of the surviving log ([`model`]).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use common::*;
use odradek_storage::Backend;
use odradek_storage::batch::{self, BatchError, BatchHeader};
use odradek_storage::builder::{BatchParams, build_batch};
use odradek_storage::compression::Codec;
use odradek_storage::config::{CleanupPolicy, LogConfig};
use odradek_storage::error::AppendError;
use odradek_storage::log::Log;
use odradek_storage::records::Record;
use odradek_storage::sim::{SimBackend, SimRng};
use odradek_storage::txn::{AbortedTxn, MarkerKind, TxnMarker, control_batch, parse_marker};

const DIR: &str = "/data/txn-0";

/// What a log knows of transactions: its ongoing ones and every aborted one.
fn txn_state(log: &Log<SimBackend>) -> (Vec<(i64, i16, u64)>, Vec<AbortedTxn>) {
    (log.ongoing_txns(), log.aborted_transactions(0, u64::MAX))
}

fn dir() -> &'static Path {
    Path::new(DIR)
}

async fn open_with(sim: &SimBackend, cfg: LogConfig) -> Log<SimBackend> {
    Log::open_with_clock(sim.clone(), dir(), cfg, clock()).await.expect("open").0
}

async fn open(sim: &SimBackend) -> Log<SimBackend> {
    open_with(sim, config()).await
}

/// A batch of `n` records of producer `pid` (epoch `epoch`, first sequence `seq`), keyed
/// `k<i>` with value `v`, transactional when `txn`.
fn producer_batch(pid: i64, epoch: i16, seq: i32, n: usize, txn: bool, value: &str) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            attributes: 0,
            timestamp_delta: 0,
            offset_delta: i as i32,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            headers: Vec::new(),
        })
        .collect();
    let mut params = BatchParams::simple(Codec::None, 1_000, n);
    params.producer_id = pid;
    params.producer_epoch = epoch;
    params.base_sequence = seq;
    if txn {
        params.attributes |= 0x10;
    }
    build_batch(&params, &records).expect("build")
}

fn txn_batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Bytes {
    producer_batch(pid, epoch, seq, n, true, "v")
}

fn marker(pid: i64, epoch: i16, kind: MarkerKind) -> TxnMarker {
    TxnMarker {
        producer_id: pid,
        producer_epoch: epoch,
        kind,
        coordinator_epoch: 4,
        timestamp_ms: 2_000,
    }
}

fn aborted(pid: i64, first: u64, last: u64, lso: u64) -> AbortedTxn {
    AbortedTxn { producer_id: pid, first_offset: first, last_offset: last, last_stable_offset: lso }
}

/// Every stored batch of the log, in order.
async fn stored_batches(log: &Log<SimBackend>) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut at = log.log_start_offset();
    while at < log.log_end_offset() {
        let bytes = log.read_bytes(at, 1 << 20).await.expect("read");
        if bytes.is_empty() {
            break;
        }
        let mut pos = 0;
        while pos < bytes.len() {
            let h = BatchHeader::parse(&bytes[pos..]).expect("header");
            let b = bytes.slice(pos..pos + h.total_len());
            batch::validate(&b, batch::Strictness::Stored).expect("stored batch is valid");
            at = h.last_offset() as u64 + 1;
            pos += h.total_len();
            out.push(b);
        }
    }
    out
}

/// What an independent replay of `batches` implies: the ongoing transactions
/// (producer → first offset) and the aborted entries, in marker order.
fn model(batches: &[Bytes]) -> (BTreeMap<i64, u64>, Vec<AbortedTxn>) {
    let mut ongoing: BTreeMap<i64, u64> = BTreeMap::new();
    let mut out = Vec::new();
    for b in batches {
        let h = BatchHeader::parse(b).expect("header");
        let base = h.base_offset as u64;
        if h.is_control() {
            let (kind, _) = parse_marker(b).expect("a marker");
            if let Some(first) = ongoing.remove(&h.producer_id)
                && kind == MarkerKind::Abort
            {
                let lso = ongoing.values().min().copied().unwrap_or(base + 1);
                out.push(aborted(h.producer_id, first, base, lso));
            }
        } else if h.is_transactional() && h.producer_id >= 0 {
            ongoing.entry(h.producer_id).or_insert(base);
        }
    }
    (ongoing, out)
}

/// Checks the log's transaction state against [`model`] of its stored batches.
async fn assert_matches_replay(log: &Log<SimBackend>, what: &str) {
    let batches = stored_batches(log).await;
    let (ongoing, entries) = model(&batches);
    assert_eq!(log.first_unstable_offset(), ongoing.values().min().copied(), "{what}: FUO");
    let got: BTreeMap<i64, u64> =
        log.ongoing_txns().into_iter().map(|(pid, _, first)| (pid, first)).collect();
    assert_eq!(got, ongoing, "{what}: ongoing");
    let mut want = entries;
    want.sort_by_key(|e| (e.first_offset, e.last_offset));
    assert_eq!(log.aborted_transactions(0, u64::MAX), want, "{what}: aborted");
}

fn txn_index_files(sim: &SimBackend) -> Vec<PathBuf> {
    sim.paths()
        .into_iter()
        .filter(|p| p.starts_with(dir()) && p.extension().is_some_and(|e| e == "txnindex"))
        .collect()
}

#[test]
fn commit_and_abort_markers_end_transactions() {
    runtime().block_on(async {
        let sim = SimBackend::new();
        let log = open(&sim).await;
        assert_eq!(log.first_unstable_offset(), None);
        log.append(batch_of(&[1, 2], Codec::None, 1_000, false)).await.expect("plain");
        let a = log.append_with_epoch(txn_batch(7, 0, 0, 3), 5).await.expect("txn data");
        assert_eq!((a.base_offset, a.last_offset), (2, 4));
        assert_eq!(log.ongoing_txn(7), Some((0, 2)));
        assert_eq!(log.first_unstable_offset(), Some(2));
        log.append_with_epoch(txn_batch(7, 0, 3, 2), 5).await.expect("more of it");
        assert_eq!(log.ongoing_txn(7), Some((0, 2)), "the first offset stays");
        let c = log.append_marker(marker(7, 0, MarkerKind::Commit), 5).await.expect("commit");
        assert_eq!((c.base_offset, c.last_offset), (7, 7));
        assert_eq!(log.ongoing_txn(7), None);
        assert_eq!(log.first_unstable_offset(), None);
        assert!(log.aborted_transactions(0, u64::MAX).is_empty(), "a commit aborts nothing");

        // The stored marker is Kafka's control batch, stamped with the leader epoch.
        let batches = stored_batches(&log).await;
        let m = batches.last().expect("marker");
        let h = BatchHeader::parse(m).expect("header");
        assert!(h.is_control() && h.is_transactional());
        assert_eq!((h.base_offset, h.partition_leader_epoch, h.producer_id), (7, 5, 7));
        assert_eq!(parse_marker(m), Some((MarkerKind::Commit, 4)));

        log.append_with_epoch(txn_batch(7, 0, 5, 2), 5).await.expect("next txn");
        assert_eq!(log.ongoing_txn(7), Some((0, 8)));
        let ab = log.append_marker(marker(7, 0, MarkerKind::Abort), 5).await.expect("abort");
        assert_eq!(ab.base_offset, 10);
        assert_eq!(log.aborted_transactions(0, u64::MAX), vec![aborted(7, 8, 10, 11)]);
        assert_eq!(log.first_unstable_offset(), None);
        // A marker with no transaction open is written and completes nothing.
        let lone = log.append_marker(marker(9, 0, MarkerKind::Abort), 5).await.expect("lone");
        assert_eq!(lone.base_offset, 11);
        assert_eq!(log.aborted_transactions(0, u64::MAX).len(), 1);
        assert_matches_replay(&log, "after markers").await;
    });
}

#[test]
fn first_unstable_offset_is_the_oldest_open_transaction_of_all_producers() {
    runtime().block_on(async {
        let sim = SimBackend::new();
        let log = open(&sim).await;
        log.append(txn_batch(1, 0, 0, 2)).await.expect("p1"); // 0..=1
        log.append(txn_batch(2, 0, 0, 1)).await.expect("p2"); // 2
        log.append(txn_batch(3, 0, 0, 1)).await.expect("p3"); // 3
        log.append(producer_batch(4, 0, 0, 1, false, "x")).await.expect("idempotent only");
        assert_eq!(log.first_unstable_offset(), Some(0));
        assert_eq!(log.ongoing_txns(), vec![(1, 0, 0), (2, 0, 2), (3, 0, 3)]);
        log.append_marker(marker(2, 0, MarkerKind::Abort), 0).await.expect("abort p2"); // 5
        // p1 is still open: the entry's last stable offset is its first offset.
        assert_eq!(log.aborted_transactions(0, 100), vec![aborted(2, 2, 5, 0)]);
        assert_eq!(log.first_unstable_offset(), Some(0));
        log.append_marker(marker(1, 0, MarkerKind::Commit), 0).await.expect("commit p1"); // 6
        assert_eq!(log.first_unstable_offset(), Some(3), "p3 now the oldest");
        log.append_marker(marker(3, 0, MarkerKind::Abort), 0).await.expect("abort p3"); // 7
        assert_eq!(log.first_unstable_offset(), None);
        assert_eq!(
            log.aborted_transactions(0, 100),
            vec![aborted(2, 2, 5, 0), aborted(3, 3, 7, 8)],
            "no transaction open after p3: the log end after its marker"
        );
        assert_matches_replay(&log, "several producers").await;
    });
}

#[test]
fn aborted_transactions_cover_exactly_the_fetched_range() {
    runtime().block_on(async {
        let sim = SimBackend::new();
        let log = open(&sim).await;
        log.append(txn_batch(1, 0, 0, 3)).await.expect("p1"); // 0..=2
        log.append_marker(marker(1, 0, MarkerKind::Abort), 0).await.expect("abort"); // 3
        log.append(batch_of(&[1, 2, 3], Codec::None, 1_000, false)).await.expect("plain"); // 4..=6
        log.append(txn_batch(2, 0, 0, 2)).await.expect("p2"); // 7..=8
        log.append_marker(marker(2, 0, MarkerKind::Abort), 0).await.expect("abort"); // 9
        let (a, b) = (aborted(1, 0, 3, 4), aborted(2, 7, 9, 10));
        assert_eq!(log.aborted_transactions(0, 10), vec![a, b]);
        assert_eq!(log.aborted_transactions(0, 4), vec![a], "p2 starts at 7");
        assert_eq!(log.aborted_transactions(3, 8), vec![a, b], "marker 3 ≥ from");
        assert_eq!(log.aborted_transactions(4, 7), vec![], "only plain records there");
        assert_eq!(log.aborted_transactions(4, 8), vec![b]);
        assert_eq!(log.aborted_transactions(10, 20), vec![], "past every marker");
        assert_eq!(log.aborted_transactions(5, 5), vec![], "an empty range");
    });
}

#[test]
fn a_marker_from_an_older_epoch_is_fenced_and_a_newer_one_fences_the_producer() {
    runtime().block_on(async {
        let sim = SimBackend::new();
        let log = open(&sim).await;
        log.append(txn_batch(5, 3, 0, 1)).await.expect("epoch 3");
        let end = log.log_end_offset();
        let err = log.append_marker(marker(5, 2, MarkerKind::Commit), 0).await.expect_err("old");
        assert!(
            matches!(err, AppendError::FencedMarker { producer_id: 5, current: 3, got: 2 }),
            "{err:?}"
        );
        assert_eq!(log.log_end_offset(), end, "nothing written");
        assert_eq!(log.ongoing_txn(5), Some((3, 0)), "still open");
        // The coordinator fences the producer: it aborts with a bumped epoch.
        log.append_marker(marker(5, 4, MarkerKind::Abort), 0).await.expect("bumped abort");
        assert_eq!(log.ongoing_txn(5), None);
        assert_eq!(log.aborted_transactions(0, 100), vec![aborted(5, 0, 1, 2)]);
        let late = txn_batch(5, 3, 1, 1);
        let h = BatchHeader::parse(&late).expect("header");
        assert!(
            matches!(
                log.check_producer(&h),
                odradek_storage::producers::SeqCheck::Refuse(
                    odradek_storage::producers::SeqError::FencedEpoch { current: 4, got: 3, .. }
                )
            ),
            "a late write of the old epoch is refused"
        );
        let fresh = BatchHeader::parse(&txn_batch(5, 4, 0, 1)).expect("header");
        assert_eq!(log.check_producer(&fresh), odradek_storage::producers::SeqCheck::Append);
        // An unknown producer's marker at any epoch is taken.
        log.append_marker(marker(6, 0, MarkerKind::Commit), 0).await.expect("unknown producer");
    });
}

#[test]
fn append_refuses_control_batches_from_clients() {
    runtime().block_on(async {
        let sim = SimBackend::new();
        let log = open(&sim).await;
        let control = control_batch(&marker(1, 0, MarkerKind::Commit));
        for records in
            [control.clone(), [batch_of(&[1], Codec::None, 0, false), control].concat().into()]
        {
            let err = log.append(records.clone()).await.expect_err("refused");
            assert!(
                matches!(err, AppendError::InvalidBatch(BatchError::InvalidRecords { .. })),
                "{err:?}"
            );
            let err = log.append_with_epoch(records, 3).await.expect_err("refused");
            assert!(
                matches!(err, AppendError::InvalidBatch(BatchError::InvalidRecords { .. })),
                "{err:?}"
            );
        }
        assert_eq!(log.log_end_offset(), 0, "nothing of either set was written");
    });
}

#[test]
fn a_follower_tracks_markers_it_copies_as_its_leader_does() {
    runtime().block_on(async {
        let leader_sim = SimBackend::new();
        let leader = open(&leader_sim).await;
        leader.append_with_epoch(txn_batch(1, 0, 0, 2), 2).await.expect("p1");
        leader.append_with_epoch(txn_batch(2, 0, 0, 1), 2).await.expect("p2");
        leader.append_marker(marker(1, 0, MarkerKind::Abort), 2).await.expect("abort p1");
        leader.append_with_epoch(txn_batch(3, 1, 0, 3), 2).await.expect("p3");
        leader.append_marker(marker(2, 0, MarkerKind::Commit), 2).await.expect("commit p2");
        let batches = stored_batches(&leader).await;

        let follower_sim = SimBackend::new();
        let follower = open(&follower_sim).await;
        // In two fetches, the second starting with a marker.
        follower.append_replica(Bytes::from(batches[..2].concat())).await.expect("first part");
        assert_eq!(follower.first_unstable_offset(), Some(0));
        follower.append_replica(Bytes::from(batches[2..].concat())).await.expect("the rest");
        assert_eq!(follower.log_end_offset(), leader.log_end_offset());
        assert_eq!(follower.first_unstable_offset(), leader.first_unstable_offset());
        assert_eq!(follower.first_unstable_offset(), Some(4));
        assert_eq!(follower.ongoing_txns(), leader.ongoing_txns());
        assert_eq!(follower.aborted_transactions(0, 100), leader.aborted_transactions(0, 100));
        assert_eq!(follower.aborted_transactions(0, 100), vec![aborted(1, 0, 3, 2)]);
        assert_matches_replay(&follower, "follower").await;

        // A control batch that holds no marker is refused whole.
        let mut params = BatchParams::simple(Codec::None, 0, 1);
        params.attributes = 0x30;
        params.base_offset = follower.log_end_offset() as i64;
        params.producer_id = 3;
        params.producer_epoch = 1;
        let junk = build_batch(
            &params,
            &[Record {
                attributes: 0,
                timestamp_delta: 0,
                offset_delta: 0,
                key: Some(Bytes::from_static(&[0, 0, 0, 9])),
                value: None,
                headers: vec![],
            }],
        )
        .expect("build");
        let err = follower.append_replica(junk).await.expect_err("refused");
        assert!(
            matches!(err, AppendError::InvalidBatch(BatchError::InvalidRecords { .. })),
            "{err:?}"
        );
        assert_eq!(follower.ongoing_txn(3), Some((1, 4)));
    });
}

/// A random mix over three producers: transactional batches, commits, aborts (some with no
/// transaction open), plain batches. With [`config`]'s 2 KiB segments it rolls often.
struct Workload {
    rng: SimRng,
    seqs: [i32; 3],
}

impl Workload {
    fn new(seed: u64) -> Self {
        Self { rng: SimRng::new(seed), seqs: [0; 3] }
    }

    async fn step(&mut self, log: &Log<SimBackend>) -> Result<(), AppendError> {
        let p = self.rng.upto(2);
        let pid = 10 + p as i64;
        match self.rng.upto(6) {
            0..=2 => {
                let n = 1 + self.rng.upto(4);
                log.append_with_epoch(txn_batch(pid, 0, self.seqs[p], n), 1).await?;
                self.seqs[p] += n as i32;
            }
            3 => {
                log.append_marker(marker(pid, 0, MarkerKind::Commit), 1).await?;
            }
            4 | 5 => {
                log.append_marker(marker(pid, 0, MarkerKind::Abort), 1).await?;
            }
            _ => {
                let n = 1 + self.rng.upto(3) as u64;
                let values: Vec<u64> = (0..n).collect();
                log.append_with_epoch(batch_of(&values, Codec::None, 1_000, true), 1).await?;
            }
        }
        Ok(())
    }
}

#[test]
fn state_survives_a_clean_close_and_reopen() {
    runtime().block_on(async {
        let sim = SimBackend::new();
        let log = open(&sim).await;
        let mut w = Workload::new(7);
        for _ in 0..300 {
            w.step(&log).await.expect("step");
        }
        assert!(log.segment_count() > 5, "rolled: {}", log.segment_count());
        assert!(log.aborted_transactions(0, u64::MAX).len() > 10, "aborts happened");
        // One transaction surely open across the restart.
        log.append_with_epoch(txn_batch(99, 2, 0, 2), 1).await.expect("open txn");
        assert_matches_replay(&log, "live").await;
        let before = txn_state(&log);
        assert!(before.0.iter().any(|&(pid, epoch, _)| pid == 99 && epoch == 2));
        log.close().await.expect("close");
        drop(log);
        // Every segment (the last one too, at close) has its index on disk.
        assert_eq!(txn_index_files(&sim).len(), log_files(&sim));
        let log = open(&sim).await;
        assert_eq!(txn_state(&log), before);
        assert_matches_replay(&log, "reopened").await;
        // And it goes on from there.
        for _ in 0..100 {
            w.step(&log).await.expect("step");
        }
        assert_matches_replay(&log, "after more").await;
    });
}

fn log_files(sim: &SimBackend) -> usize {
    sim.paths()
        .iter()
        .filter(|p| p.starts_with(dir()) && p.extension().is_some_and(|e| e == "log"))
        .count()
}

/// Crashes at random instants of a random transactional workload (mid-write, mid-roll,
/// mid-close of the earlier phase included): after recovery the ongoing transactions, the
/// first unstable offset and the aborted list are exactly what a replay of the surviving log
/// gives, and stay so across a further clean restart.
#[test]
fn crashes_leave_the_transaction_state_of_the_surviving_log() {
    let rt = runtime();
    for seed in 0..120u64 {
        rt.block_on(async move {
            let mut rng = SimRng::new(seed);
            let sim = SimBackend::new();
            // Half the runs start from a log closed cleanly (its active segment's index and a
            // snapshot at its end on disk), the other half from scratch.
            let mut w = Workload::new(seed ^ 0x7A11);
            if seed % 2 == 0 {
                let log = open(&sim).await;
                for _ in 0..rng.upto(150) {
                    w.step(&log).await.expect("step");
                }
                log.close().await.expect("close");
            }
            sim.set_yield_on_io(true);
            let log = Rc::new(open(&sim).await);
            let appender = {
                let log = log.clone();
                let mut sync_rng = SimRng::new(seed ^ 0x51);
                compio::runtime::spawn(async move {
                    for _ in 0..200 {
                        if w.step(&log).await.is_err()
                            || (sync_rng.upto(3) == 0 && log.sync().await.is_err())
                        {
                            return;
                        }
                    }
                })
            };
            for _ in 0..1 + rng.upto(600) {
                compio::runtime::spawn(async {}).await.ok();
            }
            let crashed = sim.crash(seed);
            drop(appender);
            let log = open(&crashed).await;
            assert_matches_replay(&log, &format!("seed {seed}: after the crash")).await;
            let state = txn_state(&log);
            log.close().await.expect("close");
            drop(log);
            let log = open(&crashed).await;
            assert_eq!(txn_state(&log), state, "seed {seed}: after a clean restart");
        });
    }
}

#[test]
fn lost_or_damaged_txn_indexes_are_rebuilt_the_same() {
    runtime().block_on(async {
        let sim = SimBackend::new();
        let log = open(&sim).await;
        let mut w = Workload::new(11);
        for _ in 0..300 {
            w.step(&log).await.expect("step");
        }
        let want = log.aborted_transactions(0, u64::MAX);
        let ongoing = log.ongoing_txns();
        assert!(want.len() > 10);
        // Unclean stop (no close): sealed segments have their files, the active one not.
        log.sync().await.expect("sync");
        drop(log);
        let files = txn_index_files(&sim);
        assert_eq!(files.len(), log_files(&sim) - 1, "every sealed segment has one");
        for f in &files {
            sim.remove_file(f).await.expect("remove");
        }
        let log = open(&sim).await;
        assert_eq!(log.aborted_transactions(0, u64::MAX), want, "rebuilt after deletion");
        assert_eq!(log.ongoing_txns(), ongoing);
        assert_eq!(txn_index_files(&sim), files, "written again");
        // An abort inside the active segment, whose entry is on disk only once it is closed.
        let first = log.append(txn_batch(50, 0, 0, 1)).await.expect("txn").base_offset;
        let end = log.append_marker(marker(50, 0, MarkerKind::Abort), 0).await.expect("abort");
        let mut want = want;
        want.push(aborted(
            50,
            first,
            end.base_offset,
            ongoing.first().map_or(end.base_offset + 1, |o| o.2),
        ));
        want.sort_by_key(|e| (e.first_offset, e.last_offset));
        assert_eq!(log.aborted_transactions(0, u64::MAX), want);
        assert!(first >= *log.segment_bases().last().expect("active"), "in the active segment");
        log.close().await.expect("close");
        drop(log);
        // Every file deleted after a clean close (the active segment's included), one damaged.
        let files = txn_index_files(&sim);
        for f in &files[1..] {
            sim.remove_file(f).await.expect("remove");
        }
        let torn = sim.contents(&files[0]).map(|mut b| {
            b.push(0);
            b
        });
        assert!(sim.poke(&files[0], torn.expect("exists")));
        let log = open(&sim).await;
        assert_eq!(log.aborted_transactions(0, u64::MAX), want, "rebuilt after damage");
        assert_eq!(log.ongoing_txns(), ongoing);
        assert_matches_replay(&log, "rebuilt").await;
    });
}

#[test]
fn truncation_across_markers_gives_the_state_of_the_remaining_log() {
    runtime().block_on(async {
        let sim = SimBackend::new();
        let log = open(&sim).await;
        log.append(txn_batch(1, 0, 0, 2)).await.expect("p1"); // 0..=1
        log.append(txn_batch(2, 0, 0, 1)).await.expect("p2"); // 2
        log.append_marker(marker(1, 0, MarkerKind::Abort), 0).await.expect("abort p1"); // 3
        log.append_marker(marker(2, 0, MarkerKind::Commit), 0).await.expect("commit p2"); // 4
        assert_eq!(log.first_unstable_offset(), None);
        assert_eq!(log.aborted_transactions(0, 10), vec![aborted(1, 0, 3, 2)]);
        // Cut the commit: p2's transaction is open again.
        assert_eq!(log.truncate_to(4).await.expect("truncate"), 4);
        assert_eq!(log.ongoing_txns(), vec![(2, 0, 2)]);
        assert_eq!(log.aborted_transactions(0, 10), vec![aborted(1, 0, 3, 2)]);
        // Cut the abort too: its entry goes and p1 is open again.
        assert_eq!(log.truncate_to(3).await.expect("truncate"), 3);
        assert_eq!(log.ongoing_txns(), vec![(1, 0, 0), (2, 0, 2)]);
        assert_eq!(log.first_unstable_offset(), Some(0));
        assert!(log.aborted_transactions(0, 10).is_empty());
        assert_matches_replay(&log, "after the cuts").await;
        // A follower gets the leader's new history: p1 commits this time.
        log.append_marker(marker(1, 0, MarkerKind::Commit), 0).await.expect("commit p1");
        assert_eq!(log.first_unstable_offset(), Some(2));

        // Across segments, with snapshots and sealed indexes on disk, and a crash after.
        let mut w = Workload::new(23);
        for _ in 0..250 {
            w.step(&log).await.expect("step");
        }
        let markers: Vec<u64> = stored_batches(&log)
            .await
            .iter()
            .map(|b| BatchHeader::parse(b).expect("header"))
            .filter(|h| h.is_control())
            .map(|h| h.base_offset as u64)
            .collect();
        // A clean restart puts the active segment's index and a snapshot at its end on disk;
        // a cut past them must still give the active segment's entries below the snapshot.
        let first = log.append(txn_batch(60, 0, 0, 1)).await.expect("txn").base_offset;
        log.append_marker(marker(60, 0, MarkerKind::Abort), 0).await.expect("abort");
        assert!(first >= *log.segment_bases().last().expect("active"), "in the active segment");
        log.close().await.expect("close");
        drop(log);
        let log = open(&sim).await;
        let closed_end = log.log_end_offset();
        log.append(txn_batch(61, 0, 0, 1)).await.expect("txn");
        log.append_marker(marker(61, 0, MarkerKind::Abort), 0).await.expect("abort");
        log.truncate_to(closed_end + 1).await.expect("truncate past the snapshot");
        assert_eq!(log.ongoing_txn(61), Some((0, closed_end)), "its abort was cut");
        assert!(log.aborted_transactions(0, u64::MAX).iter().any(|e| e.producer_id == 60));
        assert_matches_replay(&log, "cut past a clean close").await;
        let crashed = open(&sim.crash(99)).await;
        assert_matches_replay(&crashed, "and crashed").await;
        drop(crashed);

        let mut rng = SimRng::new(5);
        for round in 0..6 {
            let segments = log.segment_count();
            // Cut at a marker some way back (so earlier segments go), then at a random offset.
            let candidates: Vec<u64> =
                markers.iter().copied().filter(|m| *m < log.log_end_offset()).collect();
            let at = if round % 2 == 0 {
                candidates[candidates.len() - 1 - rng.upto(candidates.len().min(8) - 1)]
            } else {
                log.log_end_offset() - 1 - rng.upto(20) as u64
            };
            log.truncate_to(at).await.expect("truncate");
            assert_matches_replay(&log, &format!("round {round}: cut at {at}")).await;
            assert!(log.segment_count() <= segments);
            for _ in 0..rng.upto(40) {
                w.step(&log).await.expect("step");
            }
            log.sync().await.expect("sync");
            let state = txn_state(&log);
            let crashed = open(&sim.crash(round as u64)).await;
            assert_eq!(txn_state(&crashed), state, "round {round}: after a crash");
        }
    });
}

#[test]
fn retention_and_delete_records_stop_at_the_first_unstable_offset() {
    runtime().block_on(async {
        let sim = SimBackend::new();
        let cfg = LogConfig { retention_bytes: Some(1), ..config() };
        let log = open_with(&sim, cfg).await;
        for i in 0..60u64 {
            log.append(batch_of(&[i; 5], Codec::None, 1_000, true)).await.expect("plain");
        }
        let open_at = log.log_end_offset();
        log.append(txn_batch(1, 0, 0, 2)).await.expect("txn");
        for i in 0..60u64 {
            log.append(batch_of(&[i; 5], Codec::None, 1_000, true)).await.expect("plain");
        }
        assert!(log.segment_count() > 6);
        let report = log.enforce_retention().await.expect("retention");
        assert!(report.segments_deleted > 0, "segments before the transaction go");
        assert!(log.log_start_offset() <= open_at, "{} > {open_at}", log.log_start_offset());
        let bases = log.segment_bases();
        let holder = bases.iter().rev().find(|b| **b <= open_at).copied().expect("held");
        assert_eq!(bases[0], holder, "stops at the segment holding the transaction's start");
        assert_eq!(log.first_unstable_offset(), Some(open_at));
        // DeleteRecords past it is held at it.
        let end = log.log_end_offset();
        assert_eq!(log.delete_records(end).await.expect("delete"), open_at);
        assert_eq!(log.log_start_offset(), open_at);
        assert!(log.delete_records(open_at - 1).await.expect("below") <= open_at);
        // Once decided, both go on.
        log.append_marker(marker(1, 0, MarkerKind::Abort), 0).await.expect("abort");
        assert_eq!(log.aborted_transactions(0, u64::MAX).len(), 1);
        for i in 0..30u64 {
            log.append(batch_of(&[i; 5], Codec::None, 1_000, true)).await.expect("plain");
        }
        log.enforce_retention().await.expect("retention");
        assert_eq!(log.segment_count(), 1, "only the active segment is left");
        assert!(log.aborted_transactions(0, u64::MAX).is_empty(), "its segment went");
        assert!(txn_index_files(&sim).is_empty(), "and its index file with it");
        let end = log.log_end_offset();
        assert_eq!(log.delete_records(end).await.expect("delete"), end);
    });
}

fn keyed_txn(pid: i64, seq: i32, pairs: &[(&str, &str)]) -> Bytes {
    let pairs: Vec<(&str, Option<&str>)> = pairs.iter().map(|(k, v)| (*k, Some(*v))).collect();
    let records = keyed_records(&pairs);
    let mut params = BatchParams::simple(Codec::None, 1_000, pairs.len());
    params.producer_id = pid;
    params.producer_epoch = 0;
    params.base_sequence = seq;
    params.attributes |= 0x10;
    build_batch(&params, &records).expect("build")
}

#[test]
fn compaction_drops_aborted_records_keeps_markers_and_spares_open_transactions() {
    runtime().block_on(async {
        let sim = SimBackend::new();
        let cfg = LogConfig { cleanup_policy: CleanupPolicy::COMPACT, ..config() };
        let log = open_with(&sim, cfg).await;
        log.append(keyed_txn(1, 0, &[("a", "good"), ("b", "good")])).await.expect("txn 1");
        log.append_marker(marker(1, 0, MarkerKind::Commit), 0).await.expect("commit"); // 2
        log.append(keyed_txn(2, 0, &[("a", "bad"), ("c", "bad")])).await.expect("txn 2");
        log.append_marker(marker(2, 0, MarkerKind::Abort), 0).await.expect("abort"); // 5
        let filler = |i: u64| keyed_batch(&[(&format!("f{i}"), Some("x"))], Codec::None, 1_000);
        for i in 0..40 {
            log.append(filler(i)).await.expect("filler");
        }
        // An open transaction later on: what ends past it is not cleaned.
        let open_at = log.log_end_offset();
        log.append(keyed_txn(3, 0, &[("a", "pending")])).await.expect("txn 3");
        for i in 0..40 {
            log.append(filler(i)).await.expect("filler");
        }
        let before = stored_batches(&log).await;
        let report = log.compact().await.expect("compact");
        assert!(report.records_removed >= 2, "{report:?}");
        let after = stored_batches(&log).await;
        let records = records_in(&Bytes::from(after.concat()));
        let value = |key: &str| -> Vec<(u64, Bytes)> {
            records
                .iter()
                .filter(|(_, k, _)| k.as_deref() == Some(key.as_bytes()))
                .map(|(o, _, v)| (*o, v.clone().expect("value")))
                .collect()
        };
        // The aborted write is gone and did not hide the committed value before it.
        let a = value("a");
        assert!(a.contains(&(0, Bytes::from_static(b"good"))), "{a:?}");
        assert!(!a.iter().any(|(_, v)| v == "bad"), "{a:?}");
        assert!(a.iter().any(|(o, v)| *o == open_at && v == "pending"), "{a:?}");
        assert!(value("c").is_empty(), "aborted-only key gone");
        assert_eq!(value("b"), vec![(1, Bytes::from_static(b"good"))]);
        // Markers stay; the aborted index is unchanged.
        let markers = |batches: &[Bytes]| -> Vec<u64> {
            batches
                .iter()
                .map(|b| BatchHeader::parse(b).expect("header"))
                .filter(|h| h.is_control())
                .map(|h| h.base_offset as u64)
                .collect()
        };
        assert_eq!(markers(&after), markers(&before));
        assert_eq!(markers(&after), vec![2, 5]);
        assert_eq!(log.aborted_transactions(0, u64::MAX), vec![aborted(2, 3, 5, 6)]);
        assert_eq!(log.first_unstable_offset(), Some(open_at));
        // Nothing at or past the open transaction's segment was rewritten.
        let tail = |batches: &[Bytes]| -> Vec<Bytes> {
            batches
                .iter()
                .filter(|b| {
                    let h = BatchHeader::parse(b).expect("header");
                    h.last_offset() as u64 >= open_at
                })
                .cloned()
                .collect()
        };
        assert_eq!(tail(&after), tail(&before));
        // A restart sees the same.
        log.close().await.expect("close");
        drop(log);
        let log =
            open_with(&sim, LogConfig { cleanup_policy: CleanupPolicy::COMPACT, ..config() }).await;
        assert_eq!(log.aborted_transactions(0, u64::MAX), vec![aborted(2, 3, 5, 6)]);
        assert_eq!(log.first_unstable_offset(), Some(open_at));
    });
}

/// DeleteRecords may move the start into the middle of a decided transaction's batch; opening
/// must still know it was aborted (the replay reads every batch on disk, not only those from
/// the log start), or read_committed readers would get its remaining records.
#[test]
fn a_log_start_inside_an_aborted_transaction_keeps_its_entry_across_a_crash() {
    runtime().block_on(async {
        let sim = SimBackend::new();
        let log = open(&sim).await;
        log.append(txn_batch(1, 0, 0, 5)).await.expect("txn"); // 0..=4
        log.append(batch_of(&[1], Codec::None, 1_000, false)).await.expect("plain"); // 5
        log.append_marker(marker(1, 0, MarkerKind::Abort), 0).await.expect("abort"); // 6
        assert_eq!(log.delete_records(2).await.expect("delete"), 2);
        log.sync().await.expect("sync");
        let want = vec![aborted(1, 0, 6, 7)];
        assert_eq!(log.aborted_transactions(2, 10), want);
        drop(log);
        let log = open(&sim.crash(3)).await;
        assert_eq!(log.log_start_offset(), 2);
        assert_eq!(log.aborted_transactions(2, 10), want, "after a crash");
    });
}

/// Batches larger than one scan chunk (64 KiB) are replayed from their header alone.
#[test]
fn transactions_of_batches_larger_than_a_scan_chunk_are_replayed() {
    runtime().block_on(async {
        let sim = SimBackend::new();
        let cfg = LogConfig { segment_bytes: 4 << 20, ..config() };
        let log = open_with(&sim, cfg.clone()).await;
        let big = "x".repeat(100 * 1024);
        log.append(producer_batch(1, 0, 0, 2, true, &big)).await.expect("big txn"); // 0..=1
        log.append(producer_batch(2, 0, 0, 1, true, &big)).await.expect("big txn"); // 2
        log.append_marker(marker(1, 0, MarkerKind::Abort), 0).await.expect("abort"); // 3
        log.append(producer_batch(3, 0, 0, 1, false, &big)).await.expect("big plain"); // 4
        log.sync().await.expect("sync");
        drop(log);
        let log = open_with(&sim.crash(1), cfg).await;
        assert_eq!(log.ongoing_txns(), vec![(2, 0, 2)]);
        assert_eq!(log.aborted_transactions(0, 10), vec![aborted(1, 0, 3, 2)]);
        assert_matches_replay(&log, "big batches").await;
    });
}

/// Past `delete.retention.ms`, compaction removes a marker once no record of its transaction
/// is left (and an ABORT marker's index entry with it); a marker whose transaction kept a
/// record stays.
#[test]
fn compaction_removes_old_markers_of_transactions_with_nothing_left() {
    runtime().block_on(async {
        let sim = SimBackend::new();
        // The clock stands at 5 000 ms; markers are stamped 2 000 ms: past a 1 s horizon.
        let cfg = LogConfig {
            cleanup_policy: CleanupPolicy::COMPACT,
            delete_retention_ms: 1_000,
            ..config()
        };
        let log = open_with(&sim, cfg.clone()).await;
        log.append(keyed_txn(1, 0, &[("a", "good"), ("b", "good")])).await.expect("txn 1");
        log.append_marker(marker(1, 0, MarkerKind::Commit), 0).await.expect("commit"); // 2
        log.append(keyed_txn(2, 0, &[("a", "bad"), ("c", "bad")])).await.expect("txn 2");
        log.append_marker(marker(2, 0, MarkerKind::Abort), 0).await.expect("abort"); // 5
        log.append(keyed_txn(4, 0, &[("d", "old")])).await.expect("txn 4"); // 6
        log.append_marker(marker(4, 0, MarkerKind::Commit), 0).await.expect("commit"); // 7
        log.append(keyed_batch(&[("d", Some("new"))], Codec::None, 1_000)).await.expect("d"); // 8
        for i in 0..40 {
            let filler = keyed_batch(&[(&format!("f{i}"), Some("x"))], Codec::None, 1_000);
            log.append(filler).await.expect("filler");
        }
        assert_eq!(log.aborted_transactions(0, u64::MAX), vec![aborted(2, 3, 5, 6)]);
        log.compact().await.expect("compact");
        let markers: Vec<u64> = stored_batches(&log)
            .await
            .iter()
            .map(|b| BatchHeader::parse(b).expect("header"))
            .filter(|h| h.is_control())
            .map(|h| h.base_offset as u64)
            .collect();
        assert_eq!(markers, vec![2], "txn 1 kept records; txn 2 was aborted; txn 4's went");
        assert!(log.aborted_transactions(0, u64::MAX).is_empty(), "its marker is gone");
        assert_matches_replay(&log, "after removing markers").await;
        // The rewritten index files agree: after a restart, and rebuilt from scratch.
        log.close().await.expect("close");
        drop(log);
        let log = open_with(&sim, cfg.clone()).await;
        assert!(log.aborted_transactions(0, u64::MAX).is_empty());
        drop(log);
        for f in txn_index_files(&sim) {
            sim.remove_file(&f).await.expect("remove");
        }
        let log = open_with(&sim, cfg).await;
        assert!(log.aborted_transactions(0, u64::MAX).is_empty());
        assert_eq!(log.first_unstable_offset(), None);
    });
}
