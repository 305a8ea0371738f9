//! One transactional id's metadata and Kafka's rules for changing it: which request may move
//! a transaction from which state, with which error otherwise. Pure: no I/O, no clocks (the
//! caller passes the time), no wire types.
//!
//! ```text
//! Empty ──AddPartitions/AddOffsets──► Ongoing ──EndTxn(commit)──► PrepareCommit ──markers──► CompleteCommit
//!   ▲                                    │      ──EndTxn(abort) / timeout / fencing──► PrepareAbort ──markers──► CompleteAbort
//!   └──────── InitProducerId (epoch + 1) ◄── CompleteCommit / CompleteAbort ──AddPartitions──► Ongoing
//! ```

use std::collections::BTreeSet;

use odradek_net::ErrorCode;
use odradek_net::error_code as ec;

/// Kafka's transaction states (the ids are its `TransactionState` ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
        }
    }

    pub fn from_id(id: i8) -> Option<Self> {
        Some(match id {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            _ => return None,
        })
    }

    /// Kafka's name, as DescribeTransactions and ListTransactions answer it.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    /// Whether markers are being written (the transaction is decided, not yet complete).
    pub fn is_preparing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// A transactional id's metadata, as stored in `__transaction_state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMeta {
    pub producer_id: i64,
    pub epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// The partitions added to the ongoing (or preparing) transaction.
    pub partitions: BTreeSet<(String, i32)>,
    pub update_ms: i64,
    /// When the ongoing transaction began (its first AddPartitions or AddOffsets).
    pub start_ms: i64,
}

/// What InitProducerId does with a transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Init {
    /// Store this (a new epoch, or a new producer id when the caller must allocate one:
    /// `producer_id` is -1 then), then answer with its producer id and epoch.
    Store(TxnMeta),
    /// An open transaction: it is aborted with this (epoch bumped, PrepareAbort) and the
    /// producer is told CONCURRENT_TRANSACTIONS, to retry once the abort completed.
    FenceAndAbort(TxnMeta),
}

/// The highest epoch handed out before a producer id is replaced (Kafka keeps `Short.MAX`
/// for markers that fence without a producer behind them).
const EPOCH_MAX: i16 = i16::MAX - 1;

fn bumped(m: &TxnMeta) -> (i64, i16) {
    if m.epoch >= EPOCH_MAX { (-1, 0) } else { (m.producer_id, m.epoch + 1) }
}

/// InitProducerId for `existing` (None: an id never seen), with the request's producer id and
/// epoch (-1, -1 unless a producer recovers from an abortable error, KIP-360), at `now`.
pub fn init(
    existing: Option<&TxnMeta>,
    req_producer_id: i64,
    req_epoch: i16,
    timeout_ms: i32,
    now: i64,
) -> Result<Init, ErrorCode> {
    let fresh = |producer_id, epoch| TxnMeta {
        producer_id,
        epoch,
        timeout_ms,
        state: TxnState::Empty,
        partitions: BTreeSet::new(),
        update_ms: now,
        start_ms: -1,
    };
    let Some(m) = existing else {
        return Ok(Init::Store(fresh(-1, 0)));
    };
    if req_producer_id >= 0 && (req_producer_id != m.producer_id || req_epoch != m.epoch) {
        // A producer that is not the current one asks to go on: it was fenced.
        return Err(ec::PRODUCER_FENCED);
    }
    match m.state {
        TxnState::PrepareCommit | TxnState::PrepareAbort => Err(ec::CONCURRENT_TRANSACTIONS),
        TxnState::Ongoing => {
            let (producer_id, epoch) = bumped(m);
            // Kafka fences with the bumped epoch on the same producer id, so the old producer's
            // late writes are refused; a producer id at its last epoch is aborted at that one.
            let epoch = if producer_id < 0 { m.epoch } else { epoch };
            Ok(Init::FenceAndAbort(TxnMeta {
                epoch,
                state: TxnState::PrepareAbort,
                update_ms: now,
                ..m.clone()
            }))
        }
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
            let (producer_id, epoch) = bumped(m);
            Ok(Init::Store(fresh(producer_id, epoch)))
        }
    }
}

/// Checks that the request's producer id and epoch are the transaction's current ones.
fn current(m: &TxnMeta, producer_id: i64, epoch: i16) -> Result<(), ErrorCode> {
    if producer_id != m.producer_id {
        return Err(ec::INVALID_PRODUCER_ID_MAPPING);
    }
    if epoch != m.epoch {
        return Err(ec::PRODUCER_FENCED);
    }
    Ok(())
}

/// AddPartitionsToTxn or AddOffsetsToTxn: the metadata with `partitions` added, or `None` when
/// nothing changes (all already in the ongoing transaction: answered without a write).
pub fn add_partitions(
    m: &TxnMeta,
    producer_id: i64,
    epoch: i16,
    partitions: &[(String, i32)],
    now: i64,
) -> Result<Option<TxnMeta>, ErrorCode> {
    current(m, producer_id, epoch)?;
    if m.state.is_preparing() {
        return Err(ec::CONCURRENT_TRANSACTIONS);
    }
    if m.state == TxnState::Ongoing && partitions.iter().all(|p| m.partitions.contains(p)) {
        return Ok(None);
    }
    let mut next = m.clone();
    if m.state != TxnState::Ongoing {
        next.partitions.clear();
        next.start_ms = now;
    }
    next.state = TxnState::Ongoing;
    next.partitions.extend(partitions.iter().cloned());
    next.update_ms = now;
    Ok(Some(next))
}

/// What EndTxn does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Store this (PrepareCommit or PrepareAbort), answer, then write the markers.
    Prepare(TxnMeta),
    /// Already done that way (a retry): answer at once.
    Done,
}

/// EndTxn (`commit` or abort).
pub fn end(
    m: &TxnMeta,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    now: i64,
) -> Result<End, ErrorCode> {
    current(m, producer_id, epoch)?;
    match (m.state, commit) {
        (TxnState::Ongoing, _) => Ok(End::Prepare(TxnMeta {
            state: if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort },
            update_ms: now,
            ..m.clone()
        })),
        (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(End::Done),
        (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
            Err(ec::CONCURRENT_TRANSACTIONS)
        }
        _ => Err(ec::INVALID_TXN_STATE),
    }
}

/// The metadata once every marker of a preparing transaction is written.
pub fn completed(m: &TxnMeta, now: i64) -> TxnMeta {
    TxnMeta {
        state: if m.state == TxnState::PrepareCommit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        },
        partitions: BTreeSet::new(),
        update_ms: now,
        ..m.clone()
    }
}

/// An ongoing transaction past its timeout, to abort: the epoch is bumped so the producer,
/// still at the old one, is fenced (Kafka's `abortTimedOutTransactions`).
pub fn timed_out(m: &TxnMeta, now: i64) -> Option<TxnMeta> {
    let deadline = m.start_ms.saturating_add(i64::from(m.timeout_ms));
    if m.state != TxnState::Ongoing || now < deadline {
        return None;
    }
    let (producer_id, epoch) = bumped(m);
    let epoch = if producer_id < 0 { m.epoch } else { epoch };
    Some(TxnMeta { epoch, state: TxnState::PrepareAbort, update_ms: now, ..m.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(state: TxnState) -> TxnMeta {
        TxnMeta {
            producer_id: 7,
            epoch: 2,
            timeout_ms: 1000,
            state,
            partitions: [("t".to_owned(), 0)].into_iter().collect(),
            update_ms: 0,
            start_ms: 100,
        }
    }

    #[test]
    fn init_bumps_fences_and_waits() {
        let Ok(Init::Store(m)) = init(None, -1, -1, 5000, 1) else { panic!("new id") };
        assert_eq!((m.producer_id, m.epoch, m.state), (-1, 0, TxnState::Empty));
        let Ok(Init::Store(m)) = init(Some(&meta(TxnState::CompleteCommit)), -1, -1, 5000, 1)
        else {
            panic!("bump")
        };
        assert_eq!((m.producer_id, m.epoch, m.timeout_ms), (7, 3, 5000));
        assert!(m.partitions.is_empty());
        let Ok(Init::FenceAndAbort(m)) = init(Some(&meta(TxnState::Ongoing)), -1, -1, 5000, 1)
        else {
            panic!("fence")
        };
        assert_eq!((m.epoch, m.state), (3, TxnState::PrepareAbort));
        assert_eq!(m.partitions.len(), 1, "the open transaction's partitions get markers");
        assert_eq!(
            init(Some(&meta(TxnState::PrepareCommit)), -1, -1, 5000, 1),
            Err(ec::CONCURRENT_TRANSACTIONS)
        );
        assert_eq!(init(Some(&meta(TxnState::Empty)), 7, 1, 5000, 1), Err(ec::PRODUCER_FENCED));
        let mut last = meta(TxnState::CompleteAbort);
        last.epoch = EPOCH_MAX;
        let Ok(Init::Store(m)) = init(Some(&last), -1, -1, 5000, 1) else { panic!("new id") };
        assert_eq!((m.producer_id, m.epoch), (-1, 0), "an exhausted id is replaced");
    }

    #[test]
    fn partitions_are_added_only_by_the_current_producer() {
        let m = meta(TxnState::CompleteCommit);
        let p = [("u".to_owned(), 3)];
        let next = add_partitions(&m, 7, 2, &p, 500).expect("allowed").expect("a change");
        assert_eq!(next.state, TxnState::Ongoing);
        assert_eq!(next.start_ms, 500);
        assert_eq!(next.partitions.len(), 1, "a new transaction starts with no partitions");
        assert_eq!(add_partitions(&next, 7, 2, &p, 600), Ok(None), "already added");
        assert_eq!(add_partitions(&m, 8, 2, &p, 1), Err(ec::INVALID_PRODUCER_ID_MAPPING));
        assert_eq!(add_partitions(&m, 7, 1, &p, 1), Err(ec::PRODUCER_FENCED));
        let preparing = meta(TxnState::PrepareAbort);
        assert_eq!(add_partitions(&preparing, 7, 2, &p, 1), Err(ec::CONCURRENT_TRANSACTIONS));
    }

    #[test]
    fn end_follows_kafka() {
        let m = meta(TxnState::Ongoing);
        let Ok(End::Prepare(p)) = end(&m, 7, 2, true, 9) else { panic!("prepare") };
        assert_eq!(p.state, TxnState::PrepareCommit);
        assert_eq!(end(&p, 7, 2, true, 9), Err(ec::CONCURRENT_TRANSACTIONS));
        assert_eq!(end(&p, 7, 2, false, 9), Err(ec::INVALID_TXN_STATE));
        let done = completed(&p, 10);
        assert_eq!((done.state, done.partitions.len()), (TxnState::CompleteCommit, 0));
        assert_eq!(end(&done, 7, 2, true, 11), Ok(End::Done), "a retried commit");
        assert_eq!(end(&done, 7, 2, false, 11), Err(ec::INVALID_TXN_STATE));
        assert_eq!(end(&meta(TxnState::Empty), 7, 2, true, 1), Err(ec::INVALID_TXN_STATE));
        assert_eq!(end(&m, 7, 1, true, 1), Err(ec::PRODUCER_FENCED));
        assert_eq!(end(&m, 1, 2, true, 1), Err(ec::INVALID_PRODUCER_ID_MAPPING));
    }

    #[test]
    fn only_ongoing_transactions_past_their_timeout_are_aborted() {
        let m = meta(TxnState::Ongoing);
        assert_eq!(timed_out(&m, 1099), None);
        let aborted = timed_out(&m, 1100).expect("timed out");
        assert_eq!((aborted.state, aborted.epoch), (TxnState::PrepareAbort, 3));
        assert_eq!(timed_out(&meta(TxnState::PrepareCommit), 10_000), None);
        for id in 0..6 {
            let s = TxnState::from_id(id).expect("known");
            assert_eq!(s.id(), id);
        }
        assert_eq!(TxnState::from_id(6), None);
    }
}
