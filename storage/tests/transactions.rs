//! Transactions in the partition log: markers, ongoing transactions, the first unstable offset
//! and the aborted-transaction index, through appends, replication, reopen, crashes,
//! truncation, retention and compaction. Every expectation that survives a restart is checked
//! against an independent replay of the surviving log ([`model`]).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::*;
use odradek_storage::batch::{self, BatchError, BatchHeader};
use odradek_storage::builder::{BatchParams, build_batch};
use odradek_storage::compression::Codec;
use odradek_storage::config::LogConfig;
use odradek_storage::error::AppendError;
use odradek_storage::log::Log;
use odradek_storage::records::Record;
use odradek_storage::sim::SimBackend;
use odradek_storage::txn::{AbortedTxn, MarkerKind, TxnMarker, control_batch, parse_marker};

const DIR: &str = "/data/txn-0";

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

#[allow(dead_code)]
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
